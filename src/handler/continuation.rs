//! Copies that outlive an invocation. A multipart copy still running near
//! the deadline stops starting parts, lets those in flight finish, and hands
//! the rest to a fresh invocation of its own function: an asynchronous
//! Invoke with this event, `{"s3fan": "copy", ...}`, which carries the
//! record (source, key, ETag, size, event time) and the upload (its id, the
//! part size, the invocations so far). The next invocation asks S3 which
//! parts are done (ListParts), so nothing rests on the hand-over being
//! exact; as many invocations as the object needs.
//!
//! A continuation that fails goes, like any event, through Lambda's retries
//! to the failure queue; `s3fan retry` then copies the object afresh.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::plan::{CopyRequest, Resume, Route, Target};

const COPY: &str = "copy";

/// The event a copy hands on with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continuation {
    /// Always `copy`: what tells this event from S3's and a reconcile's.
    pub s3fan: String,
    pub source_bucket: String,
    pub key: String,
    /// The source's ETag every part is copied under.
    pub etag: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time_ms: Option<u64>,
    pub upload: Resume,
}

impl Continuation {
    /// The continuation a payload is, if it is one.
    pub fn parse(payload: &Value) -> Option<Result<Continuation, String>> {
        if payload.get("s3fan").and_then(Value::as_str) != Some(COPY) {
            return None;
        }
        Some(
            serde_json::from_value(payload.clone())
                .map_err(|err| format!("a copy continuation s3fan cannot read: {err}")),
        )
    }

    /// The rest of `request`'s copy, in `upload`.
    pub fn of(request: &CopyRequest, etag: &str, size: u64, upload: Resume) -> Continuation {
        Continuation {
            s3fan: COPY.to_owned(),
            source_bucket: request.route.source_bucket.clone(),
            key: request.route.key.clone(),
            etag: etag.to_owned(),
            size,
            version_id: request.version_id.clone(),
            event_time_ms: request.event_time_ms,
            upload,
        }
    }

    /// The copy to go on with, to this function's destination; refused
    /// when `source` (the fan-out's, as the function was told) is another
    /// bucket or the key is outside the function's filter.
    pub fn request(&self, target: &Target, source: Option<&str>) -> Result<CopyRequest, String> {
        if source.is_some_and(|s| s != self.source_bucket) {
            return Err(format!(
                "a copy continuation from bucket {:?}, which is not this fan-out's source",
                self.source_bucket
            ));
        }
        if let Some(reason) = target.excludes(&self.key) {
            return Err(format!(
                "a copy continuation for {:?}, outside the filter: {reason}",
                self.key
            ));
        }
        Ok(CopyRequest {
            route: Route {
                source_bucket: self.source_bucket.clone(),
                key: self.key.clone(),
                destination_bucket: target.bucket.clone(),
                destination_key: target.destination_key(&self.key),
            },
            version_id: self.version_id.clone(),
            if_match: Some(self.etag.clone()),
            size: Some(self.size),
            event_time_ms: self.event_time_ms,
            options: target.options.clone(),
            resume: Some(self.upload.clone()),
        })
    }

    /// The same object copied afresh, for `s3fan retry` of a continuation
    /// that failed for good (its upload was aborted, or may be gone).
    pub fn restart(&self, target: &Target) -> Result<CopyRequest, String> {
        let mut request = self.request(target, None)?;
        request.resume = None;
        Ok(request)
    }
}

/// How a copy hands on: its own function, invoked asynchronously.
#[derive(Debug, Clone)]
pub struct Handoff {
    pub lambda: aws_sdk_lambda::Client,
    /// The invoked function's ARN, as the Runtime API names it.
    pub function: String,
}

impl Handoff {
    pub async fn hand_over(&self, continuation: &Continuation) -> Result<(), String> {
        let payload = serde_json::to_vec(continuation)
            .map_err(|err| format!("cannot write the continuation: {err}"))?;
        crate::aws::invoke_async(&self.lambda, &self.function, payload)
            .await
            .map_err(|err| {
                format!(
                    "cannot hand the copy on to {} (lambda:InvokeFunction): {}",
                    self.function,
                    crate::aws::error_chain(&err)
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::plan::S3Options;

    fn continuation() -> Continuation {
        Continuation {
            s3fan: "copy".into(),
            source_bucket: "src".into(),
            key: "big/file.bin".into(),
            etag: "abc".into(),
            size: 30 * 1024 * 1024,
            version_id: None,
            event_time_ms: Some(7),
            upload: Resume {
                upload_id: "u-1".into(),
                part_size: 5 * 1024 * 1024,
                hops: 2,
            },
        }
    }

    #[test]
    fn a_continuation_round_trips_and_goes_on_to_this_functions_destination() {
        let written = serde_json::to_value(continuation()).unwrap();
        assert_eq!(written["s3fan"], "copy");
        assert_eq!(Continuation::parse(&written), Some(Ok(continuation())));
        assert!(Continuation::parse(&serde_json::json!({"s3fan": "reconcile"})).is_none());
        assert!(matches!(
            Continuation::parse(&serde_json::json!({"s3fan": "copy"})),
            Some(Err(_))
        ));
        let target = Target {
            bucket: "dst".into(),
            key_prefix: Some("copies/".into()),
            options: S3Options::default(),
            ..Target::default()
        };
        let request = continuation().request(&target, Some("src")).unwrap();
        assert_eq!(request.route.destination_key, "copies/big/file.bin");
        assert_eq!(request.if_match.as_deref(), Some("abc"));
        assert_eq!(request.resume.as_ref().map(|r| r.hops), Some(2));
        assert!(continuation().request(&target, Some("other")).is_err());
        assert_eq!(continuation().restart(&target).unwrap().resume, None);
        let filtered = Target {
            prefix: Some("small/".into()),
            ..target
        };
        assert!(continuation().request(&filtered, None).is_err());
    }
}
