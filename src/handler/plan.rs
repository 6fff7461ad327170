//! What to do with each notice of an invocation, decided before any S3 call.
//! Pure: the handler's rules (what is copied, what is skipped, what is refused)
//! are all here and tested without a server.
//!
//! # Ordering and duplicates
//!
//! S3 delivers events at least once and in no particular order. The rule
//! that keeps a destination from ending up older than its source: an event
//! is a hint that a key changed, and the handler makes the destination match
//! the source's *current* object, but only when that object is the one the
//! event describes.
//!
//! - A copy takes the source's current object (never a named version), on
//!   condition that its ETag is still the event's (`CopySourceIfMatch`). A
//!   late event for an older write finds another ETag, S3 answers 412, and
//!   the copy is skipped as `source_changed`: the newer write has its own
//!   event. A duplicate of the newest event copies the same bytes again.
//! - A delete removes the destination's key only when the source no longer
//!   has it, so a late delete never removes a key written again since.
//! - A tag change makes the copy's tags the source's *current* tags, read
//!   when the event is handled (and read again after writing them, until
//!   they agree), so a late tag event never puts older tags over newer.
//! - Within one invocation, records for the same key are reduced to the one
//!   with the greatest `sequencer` (S3's order of events per key): the
//!   others are skipped without a request.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::event::{Notice, ObjectEvent};
use crate::settings::FunctionSettings;

/// Where a request reads and where it writes: what its log line and its
/// failure name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub source_bucket: String,
    pub key: String,
    pub destination_bucket: String,
    /// `key` under the destination's key prefix, if it has one.
    pub destination_key: String,
}

impl Route {
    /// `s3://SOURCE/KEY`.
    pub fn source(&self) -> String {
        format!("s3://{}/{}", self.source_bucket, self.key)
    }

    /// `s3://DESTINATION/KEY`, the key under its prefix.
    pub fn destination(&self) -> String {
        format!("s3://{}/{}", self.destination_bucket, self.destination_key)
    }
}

/// One server-side copy to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    pub route: Route,
    /// As the event reported it; for the log line only: the copy takes the
    /// current object (see the module's ordering rule).
    pub version_id: Option<String>,
    /// Copy only if the source still has this ETag (unquoted): a changed
    /// source has its own, newer event.
    pub if_match: Option<String>,
    /// As the event reported it; `None` makes the copy ask S3.
    pub size: Option<u64>,
    /// When the source was written, as the event says: the replication
    /// latency is measured from here to the copy's completion. `None` for
    /// copies no event asked for (backfill).
    pub event_time_ms: Option<u64>,
    pub options: S3Options,
    /// A multipart copy an earlier invocation began and handed on.
    pub resume: Option<Resume>,
}

/// Where a multipart copy handed on by an earlier invocation stands: its
/// upload, its part size (the part layout follows from it and the size),
/// and how many invocations it has taken so far. The parts already copied
/// are asked of S3 (ListParts), not carried.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resume {
    pub upload_id: String,
    pub part_size: u64,
    pub hops: u32,
}

/// How every request for one destination is made, beyond bucket and key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// The storage class of the copies (`--storage-class`); None keeps the
    /// destination's default.
    pub storage_class: Option<String>,
    /// Encrypt the copies with this KMS key (`--dest-kms-key`); None keeps
    /// the destination's default encryption.
    pub kms_key: Option<String>,
    /// The destination's owner when it is another account: every write
    /// says the bucket must be its (ExpectedBucketOwner, so a bucket of the
    /// same name owned by anyone else is never written), and copies are
    /// handed to it (ACL bucket-owner-full-control; accepted also where
    /// the bucket owner enforces ownership).
    pub owner: Option<String>,
    /// Say that the requester pays (`--request-payer`), as requester-pays
    /// buckets demand of other accounts' requests.
    pub request_payer: bool,
}

/// One key to delete from the destination, because it was deleted from the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    pub route: Route,
    pub options: S3Options,
}

/// The tags of one copy to make equal to its source's (`--replicate-tags`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagsRequest {
    pub route: Route,
    /// The object the event names: its tags are not the copy's business once
    /// the source holds another (whose own event copies it, tags and all).
    pub if_match: Option<String>,
    pub options: S3Options,
}

/// What the handler will do with one notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Copy(CopyRequest),
    Delete(DeleteRequest),
    Tags(TagsRequest),
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
    /// Opt-in: an ObjectTagging event sets the copy's tags to the source's.
    pub replicate_tags: bool,
    /// `--dest DST:backup/` copies `k` to `backup/k`.
    pub key_prefix: Option<String>,
    pub options: S3Options,
}

impl Target {
    /// What the planning of copies to `bucket` needs of what the function
    /// was told (also what backfill and retry were told for it).
    pub fn new(bucket: String, told: &FunctionSettings) -> Target {
        Target {
            bucket,
            prefix: told.filter_prefix.clone(),
            suffix: told.filter_suffix.clone(),
            replicate_deletes: told.replicate_deletes,
            replicate_tags: told.replicate_tags,
            key_prefix: told.key_prefix.clone(),
            options: S3Options {
                storage_class: told.storage_class.clone(),
                kms_key: told.kms_key.clone(),
                owner: told.owner.clone(),
                request_payer: told.request_payer,
            },
        }
    }

    /// Why `key` is outside the filter, if it is.
    pub fn excludes(&self, key: &str) -> Option<String> {
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

    /// Where the copy of `key` lives in the destination.
    pub fn destination_key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix.as_deref().unwrap_or(""))
    }
}

/// S3 object keys are at most 1,024 bytes; a key prefix can push a copy past it.
const MAX_KEY_BYTES: usize = 1024;

/// Plans every notice of one invocation against the function's target.
pub fn plan(notices: Vec<Notice>, target: &Target) -> Vec<Step> {
    let newer = newer_sequencers(&notices);
    notices
        .into_iter()
        .zip(newer)
        .map(|(notice, newer)| match (notice, newer) {
            (Notice::Object(event), Some(newer)) => Step::Skip {
                notice: format!("{} s3://{}/{}", event.event_name, event.bucket, event.key),
                reason: format!(
                    "superseded by a later event for the same key in this invocation \
                     (sequencer {} < {newer})",
                    event.sequencer.as_deref().unwrap_or("")
                ),
            },
            (notice, _) => plan_one(notice, target),
        })
        .collect()
}

/// For each notice, the greatest sequencer of the invocation's records for
/// the same (bucket, key) when that is later than its own.
fn newer_sequencers(notices: &[Notice]) -> Vec<Option<String>> {
    let mut latest: HashMap<(&str, &str), &str> = HashMap::new();
    for (object, sequencer) in notices.iter().filter_map(sequenced) {
        let seen = latest.entry(object).or_insert(sequencer);
        if compare_sequencers(sequencer, seen) == Ordering::Greater {
            *seen = sequencer;
        }
    }
    notices
        .iter()
        .map(|notice| {
            let (object, own) = sequenced(notice)?;
            let newest = latest.get(&object)?;
            (compare_sequencers(own, newest) == Ordering::Less).then(|| (*newest).to_owned())
        })
        .collect()
}

/// A record's (bucket, key) and sequencer, when it has one.
fn sequenced(notice: &Notice) -> Option<((&str, &str), &str)> {
    match notice {
        Notice::Object(event) => event
            .sequencer
            .as_deref()
            .map(|sequencer| ((event.bucket.as_str(), event.key.as_str()), sequencer)),
        _ => None,
    }
}

/// S3's documented comparison: sequencers are hexadecimal strings of varying
/// length; left-pad the shorter with zeros, then compare lexicographically.
pub fn compare_sequencers(a: &str, b: &str) -> Ordering {
    let width = a.len().max(b.len());
    format!("{a:0>width$}")
        .to_ascii_uppercase()
        .cmp(&format!("{b:0>width$}").to_ascii_uppercase())
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
    let tagged = event.event_name.starts_with("ObjectTagging:");
    let wanted = event.is_object_created()
        || (removed && target.replicate_deletes)
        || (tagged && target.replicate_tags);
    if removed && wanted && event.event_name == "ObjectRemoved:Delete" {
        if let Some(version) = &event.version_id {
            // A delete that names a version removes that version only; the
            // key's other versions (and a delete marker, which has its own
            // DeleteMarkerCreated event) stay. S3 Replication does not
            // replicate these either.
            return Step::Skip {
                notice,
                reason: format!(
                    "a delete of version {version} only, not of the key: a versioned \
                     source's deletes are replicated as delete markers"
                ),
            };
        }
    }
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
    let destination_key = target.destination_key(&event.key);
    if destination_key.len() > MAX_KEY_BYTES {
        return Step::Refuse {
            notice,
            reason: format!(
                "the destination key under prefix {:?} would be {} bytes, over S3's limit of \
                 {MAX_KEY_BYTES}; shorten the destination's key prefix",
                target.key_prefix.as_deref().unwrap_or(""),
                destination_key.len()
            ),
        };
    }
    let route = || Route {
        source_bucket: event.bucket.clone(),
        key: event.key.clone(),
        destination_bucket: destination.to_owned(),
        destination_key: destination_key.clone(),
    };
    if tagged {
        return Step::Tags(TagsRequest {
            route: route(),
            if_match: event.etag.clone(),
            options: target.options.clone(),
        });
    }
    if removed {
        return Step::Delete(DeleteRequest {
            route: Route {
                source_bucket: event.bucket,
                key: event.key,
                destination_bucket: destination.to_owned(),
                destination_key,
            },
            options: target.options.clone(),
        });
    }
    Step::Copy(CopyRequest {
        route: Route {
            source_bucket: event.bucket,
            key: event.key,
            destination_bucket: destination.to_owned(),
            destination_key,
        },
        version_id: event.version_id,
        if_match: event.etag,
        size: event.size,
        event_time_ms: event.event_time_ms,
        options: target.options.clone(),
        resume: None,
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
            ..Target::default()
        };
        let keys = ["docs/a.pdf", "img/a.pdf", "docs/a.txt"];
        let steps = plan(
            keys.iter()
                .map(|k| Notice::Object(created("src", k)))
                .collect(),
            &target,
        );
        assert!(matches!(&steps[0], Step::Copy(c) if c.route.key == "docs/a.pdf"));
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
        // An unversioned bucket's delete names no version.
        removed.version_id = None;
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
                route: Route {
                    source_bucket: "src".into(),
                    key: "old.txt".into(),
                    destination_bucket: "dst".into(),
                    destination_key: "old.txt".into(),
                },
                options: Default::default(),
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

    #[test]
    fn a_delete_marker_is_a_delete_and_a_deleted_version_is_not() {
        let on = Target {
            replicate_deletes: true,
            ..to("dst")
        };
        let mut marker = created("src", "k");
        marker.event_name = "ObjectRemoved:DeleteMarkerCreated".into();
        marker.version_id = Some("marker-version".into());
        assert!(matches!(
            &plan(vec![Notice::Object(marker)], &on)[0],
            Step::Delete(d) if d.route.destination_key == "k"
        ));
        let mut version = created("src", "k");
        version.event_name = "ObjectRemoved:Delete".into();
        version.version_id = Some("v7".into());
        let steps = plan(vec![Notice::Object(version)], &on);
        assert!(
            matches!(&steps[0], Step::Skip { reason, .. }
                if reason.starts_with("a delete of version v7 only, not of the key")),
            "{steps:?}"
        );
    }

    #[test]
    fn tag_changes_set_the_copys_tags_only_when_asked() {
        for name in ["ObjectTagging:Put", "ObjectTagging:Delete"] {
            let mut tagged = created("src", "t.jpg");
            tagged.event_name = name.into();
            let off = plan(vec![Notice::Object(tagged.clone())], &to("dst"));
            assert!(matches!(&off[0], Step::Skip { .. }), "{name}: {off:?}");
            let on = Target {
                replicate_tags: true,
                key_prefix: Some("copies/".into()),
                ..to("dst")
            };
            assert_eq!(
                plan(vec![Notice::Object(tagged)], &on),
                vec![Step::Tags(TagsRequest {
                    route: Route {
                        source_bucket: "src".into(),
                        key: "t.jpg".into(),
                        destination_bucket: "dst".into(),
                        destination_key: "copies/t.jpg".into(),
                    },
                    if_match: Some("abc".into()),
                    options: Default::default(),
                })],
                "{name}"
            );
        }
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
            event_time_ms: Some(1_700_000_000_000),
        }
    }

    #[test]
    fn object_created_becomes_a_copy_to_the_destination() {
        let steps = plan(vec![Notice::Object(created("src", "a b/é"))], &to("dst"));
        assert_eq!(
            steps,
            vec![Step::Copy(CopyRequest {
                route: Route {
                    source_bucket: "src".into(),
                    key: "a b/é".into(),
                    destination_bucket: "dst".into(),
                    destination_key: "a b/é".into(),
                },
                options: Default::default(),
                version_id: Some("v1".into()),
                if_match: Some("abc".into()),
                size: Some(5),
                event_time_ms: Some(1_700_000_000_000),
                resume: None,
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
        assert!(matches!(&steps[3], Step::Copy(c) if c.route.key == "k"));
    }

    #[test]
    fn a_destination_equal_to_the_source_is_refused() {
        let steps = plan(vec![Notice::Object(created("same", "k"))], &to("same"));
        assert!(
            matches!(&steps[0], Step::Refuse { reason, .. } if reason.contains("trigger itself"))
        );
    }

    #[test]
    fn a_destination_key_prefix_goes_in_front_of_every_key() {
        let target = Target {
            key_prefix: Some("backup/".into()),
            replicate_deletes: true,
            ..to("dst")
        };
        let mut removed = created("src", "old");
        removed.event_name = "ObjectRemoved:Delete".into();
        removed.version_id = None;
        let steps = plan(
            vec![
                Notice::Object(created("src", "a/k")),
                Notice::Object(removed),
            ],
            &target,
        );
        assert!(
            matches!(&steps[0], Step::Copy(c) if c.route.key == "a/k" && c.route.destination_key == "backup/a/k")
        );
        assert!(
            matches!(&steps[1], Step::Delete(d) if d.route.key == "old" && d.route.destination_key == "backup/old")
        );
        // A prefix that pushes a key past 1,024 bytes is refused, named.
        let long_key = "k".repeat(1020);
        let steps = plan(vec![Notice::Object(created("src", &long_key))], &target);
        assert!(
            matches!(&steps[0], Step::Refuse { reason, .. } if reason.contains("1027 bytes") && reason.contains("\"backup/\""))
        );
    }

    #[test]
    fn sequencers_compare_as_zero_padded_hex() {
        assert_eq!(compare_sequencers("0A", "9"), Ordering::Greater);
        assert_eq!(compare_sequencers("00FF", "FF"), Ordering::Equal);
        assert_eq!(
            compare_sequencers("0055AED6DCD90281E5", "0055AED6DCD90281E6"),
            Ordering::Less
        );
        assert_eq!(compare_sequencers("ff", "FE"), Ordering::Greater);
    }

    #[test]
    fn only_the_latest_event_for_a_key_in_an_invocation_acts() {
        let event = |key: &str, sequencer: Option<&str>, name: &str| {
            let mut e = created("src", key);
            e.sequencer = sequencer.map(str::to_owned);
            e.event_name = name.into();
            if name.starts_with("ObjectRemoved:") {
                // An unversioned bucket's delete names no version.
                e.version_id = None;
            }
            Notice::Object(e)
        };
        let target = Target {
            replicate_deletes: true,
            ..to("dst")
        };
        let steps = plan(
            vec![
                // Created, then deleted, delivered newest first.
                event("k", Some("0055B0"), "ObjectRemoved:Delete"),
                event("k", Some("0055AF"), "ObjectCreated:Put"),
                // Another key is unaffected; so is a record without sequencer.
                event("other", Some("0055A0"), "ObjectCreated:Put"),
                event("k", None, "ObjectCreated:Put"),
            ],
            &target,
        );
        assert!(matches!(&steps[0], Step::Delete(d) if d.route.key == "k"));
        assert!(
            matches!(&steps[1], Step::Skip { reason, .. } if reason.contains("superseded") && reason.contains("0055AF < 0055B0")),
            "{:?}",
            steps[1]
        );
        assert!(matches!(&steps[2], Step::Copy(c) if c.route.key == "other"));
        assert!(matches!(&steps[3], Step::Copy(c) if c.route.key == "k"));
    }
}
