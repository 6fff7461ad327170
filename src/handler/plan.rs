//! What to do with each notice of an invocation, decided before any S3 call.
//! Pure: the handler's rules (what is copied, what is skipped, what is refused)
//! are all here and tested without a server.

use super::event::{Notice, ObjectEvent};

/// One server-side copy to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    pub source_bucket: String,
    pub key: String,
    /// Copy exactly this version when the event named one.
    pub version_id: Option<String>,
    /// Copy only if the source still has this ETag (unquoted): a changed
    /// source has its own, newer event.
    pub if_match: Option<String>,
    /// As the event reported it; for the log line.
    pub size: Option<u64>,
    pub destination_bucket: String,
}

/// One key to delete from the destination, because it was deleted from the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    pub source_bucket: String,
    pub key: String,
    pub destination_bucket: String,
}

/// What the handler will do with one notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Copy(CopyRequest),
    Delete(DeleteRequest),
    /// Logged and counted as success.
    Skip {
        notice: String,
        reason: String,
    },
    /// Logged, and fails the invocation once every other step has run.
    Refuse {
        notice: String,
        reason: String,
    },
}

/// Where this function copies, and which keys: the same prefix and suffix
/// that deploy put on the bucket notification, checked again here so that a
/// direct invocation or a widened notification copies nothing outside them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub bucket: String,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    /// Opt-in: an ObjectRemoved event deletes the key in the destination.
    pub replicate_deletes: bool,
}

impl Target {
    /// Why `key` is outside the filter, if it is.
    fn excludes(&self, key: &str) -> Option<String> {
        if let Some(prefix) = self.prefix.as_deref().filter(|p| !key.starts_with(p)) {
            return Some(format!(
                "key does not start with the filter prefix {prefix:?}"
            ));
        }
        if let Some(suffix) = self.suffix.as_deref().filter(|s| !key.ends_with(s)) {
            return Some(format!(
                "key does not end with the filter suffix {suffix:?}"
            ));
        }
        None
    }
}

/// Plans every notice of one invocation against the function's target.
pub fn plan(notices: Vec<Notice>, target: &Target) -> Vec<Step> {
    notices
        .into_iter()
        .map(|notice| plan_one(notice, target))
        .collect()
}

fn plan_one(notice: Notice, target: &Target) -> Step {
    match notice {
        Notice::TestEvent { bucket } => Step::Skip {
            notice: format!(
                "s3:TestEvent for {}",
                bucket.as_deref().unwrap_or("unknown bucket")
            ),
            reason: "test event: S3 saved a notification configuration".into(),
        },
        Notice::Invalid { location, reason } => Step::Refuse {
            notice: location,
            reason,
        },
        Notice::Object(event) => plan_object(event, target),
    }
}

fn plan_object(event: ObjectEvent, target: &Target) -> Step {
    let destination = target.bucket.as_str();
    let notice = format!("{} s3://{}/{}", event.event_name, event.bucket, event.key);
    let removed = event.event_name.starts_with("ObjectRemoved:");
    let wanted = event.is_object_created() || (removed && target.replicate_deletes);
    if !wanted {
        return Step::Skip {
            notice,
            reason: format!(
                "{} is not an ObjectCreated event",
                display_name(&event.event_name)
            ),
        };
    }
    if let Some(reason) = target.excludes(&event.key) {
        return Step::Skip { notice, reason };
    }
    if event.bucket == destination {
        return Step::Refuse {
            notice,
            reason: format!(
                "the destination bucket {destination:?} is the event's source bucket: copying \
                 would trigger itself forever; point this function at another bucket"
            ),
        };
    }
    if removed {
        return Step::Delete(DeleteRequest {
            source_bucket: event.bucket,
            key: event.key,
            destination_bucket: destination.to_owned(),
        });
    }
    Step::Copy(CopyRequest {
        source_bucket: event.bucket,
        key: event.key,
        version_id: event.version_id,
        if_match: event.etag,
        size: event.size,
        destination_bucket: destination.to_owned(),
    })
}

fn display_name(event_name: &str) -> &str {
    if event_name.is_empty() {
        "a record without eventName"
    } else {
        event_name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(bucket: &str) -> Target {
        Target {
            bucket: bucket.into(),
            ..Target::default()
        }
    }

    #[test]
    fn keys_outside_the_filter_are_skipped() {
        let target = Target {
            bucket: "dst".into(),
            prefix: Some("docs/".into()),
            suffix: Some(".pdf".into()),
            replicate_deletes: false,
        };
        let keys = ["docs/a.pdf", "img/a.pdf", "docs/a.txt"];
        let steps = plan(
            keys.iter()
                .map(|k| Notice::Object(created("src", k)))
                .collect(),
            &target,
        );
        assert!(matches!(&steps[0], Step::Copy(c) if c.key == "docs/a.pdf"));
        assert!(
            matches!(&steps[1], Step::Skip { reason, .. } if reason.contains("prefix \"docs/\""))
        );
        assert!(
            matches!(&steps[2], Step::Skip { reason, .. } if reason.contains("suffix \".pdf\""))
        );
    }

    #[test]
    fn deletes_are_replicated_only_when_asked() {
        let mut removed = created("src", "old.txt");
        removed.event_name = "ObjectRemoved:Delete".into();
        let off = plan(vec![Notice::Object(removed.clone())], &to("dst"));
        assert!(
            matches!(&off[0], Step::Skip { reason, .. } if reason.contains("not an ObjectCreated"))
        );
        let on = Target {
            replicate_deletes: true,
            ..to("dst")
        };
        assert_eq!(
            plan(vec![Notice::Object(removed.clone())], &on),
            vec![Step::Delete(DeleteRequest {
                source_bucket: "src".into(),
                key: "old.txt".into(),
                destination_bucket: "dst".into(),
            })]
        );
        // The filter and the loop guard hold for deletes too.
        let filtered = Target {
            prefix: Some("docs/".into()),
            ..on.clone()
        };
        assert!(matches!(
            &plan(vec![Notice::Object(removed.clone())], &filtered)[0],
            Step::Skip { .. }
        ));
        let looping = Target {
            replicate_deletes: true,
            ..to("src")
        };
        assert!(matches!(
            &plan(vec![Notice::Object(removed)], &looping)[0],
            Step::Refuse { .. }
        ));
    }

    fn created(bucket: &str, key: &str) -> ObjectEvent {
        ObjectEvent {
            location: "Records[0]".into(),
            event_name: "ObjectCreated:Put".into(),
            bucket: bucket.into(),
            key: key.into(),
            size: Some(5),
            etag: Some("abc".into()),
            version_id: Some("v1".into()),
            sequencer: None,
        }
    }

    #[test]
    fn object_created_becomes_a_copy_to_the_destination() {
        let steps = plan(vec![Notice::Object(created("src", "a b/é"))], &to("dst"));
        assert_eq!(
            steps,
            vec![Step::Copy(CopyRequest {
                source_bucket: "src".into(),
                key: "a b/é".into(),
                version_id: Some("v1".into()),
                if_match: Some("abc".into()),
                size: Some(5),
                destination_bucket: "dst".into(),
            })]
        );
    }

    #[test]
    fn every_notice_gets_a_step_in_order() {
        let mut removed = created("src", "gone");
        removed.event_name = "ObjectRemoved:Delete".into();
        let steps = plan(
            vec![
                Notice::TestEvent {
                    bucket: Some("src".into()),
                },
                Notice::Object(removed),
                Notice::Invalid {
                    location: "Records[2]".into(),
                    reason: "no key".into(),
                },
                Notice::Object(created("src", "k")),
            ],
            &to("dst"),
        );
        assert!(matches!(&steps[0], Step::Skip { reason, .. } if reason.contains("test event")));
        assert!(
            matches!(&steps[1], Step::Skip { reason, .. } if reason.contains("ObjectRemoved:Delete"))
        );
        assert!(
            matches!(&steps[2], Step::Refuse { notice, reason } if notice == "Records[2]" && reason == "no key")
        );
        assert!(matches!(&steps[3], Step::Copy(c) if c.key == "k"));
    }

    #[test]
    fn a_destination_equal_to_the_source_is_refused() {
        let steps = plan(vec![Notice::Object(created("same", "k"))], &to("same"));
        assert!(
            matches!(&steps[0], Step::Refuse { reason, .. } if reason.contains("trigger itself"))
        );
    }
}
