//! Multipart uploads open in a destination, under its key prefix, for
//! `status`. s3fan aborts each upload of its own that fails, and a chained
//! copy keeps one open only while it runs; one that stays open was left by
//! an interruption nothing reported (or by another writer of the bucket:
//! S3 names the initiator, but only as the role's session, which status
//! does not try to tell apart). Parts of an open upload are billed.

use serde::Serialize;

use crate::fanout::{Context, DeployError, aws_failure};

/// At most this many are listed; the count says if there are more.
const LISTED: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenUpload {
    pub key: String,
    pub upload_id: String,
    /// When it was started, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiated: Option<String>,
}

/// The open uploads of `destination` under `key_prefix` (the first
/// [`LISTED`] in key order), oldest first.
pub async fn observe(
    ctx: &Context,
    destination: &str,
    key_prefix: Option<&str>,
) -> Result<Vec<OpenUpload>, DeployError> {
    let page = ctx
        .s3_for(destination)?
        .list_multipart_uploads()
        .bucket(destination)
        .set_prefix(key_prefix.map(str::to_owned))
        .set_expected_bucket_owner(ctx.other_account(destination).map(str::to_owned))
        .max_uploads(LISTED as i32)
        .send()
        .await
        .map_err(|err| {
            aws_failure(
                format!(
                    "cannot list the open multipart uploads of {destination} \
                     (s3:ListBucketMultipartUploads)"
                ),
                &err,
            )
        })?;
    let mut open: Vec<OpenUpload> = page
        .uploads()
        .iter()
        .map(|upload| OpenUpload {
            key: upload.key().unwrap_or_default().to_owned(),
            upload_id: upload.upload_id().unwrap_or_default().to_owned(),
            initiated: upload
                .initiated()
                .and_then(|at| at.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
        })
        .collect();
    open.sort_by(|a, b| a.initiated.cmp(&b.initiated));
    Ok(open)
}

/// The status line: `2 open multipart uploads (the oldest started T): ...`.
pub fn render(open: &[OpenUpload]) -> Option<String> {
    let oldest = open.first()?;
    Some(format!(
        "{} open multipart upload{}{}: a chained copy still running, or parts left by an \
         interrupted one (billed until aborted; a lifecycle rule with \
         AbortIncompleteMultipartUpload removes what is left)",
        open.len(),
        if open.len() == 1 { "" } else { "s" },
        oldest
            .initiated
            .as_deref()
            .map(|at| format!(" (the oldest started {at})"))
            .unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_uploads_are_named_with_the_oldest_and_none_say_nothing() {
        assert_eq!(render(&[]), None);
        let upload = |at: &str| OpenUpload {
            key: "big.bin".into(),
            upload_id: "u".into(),
            initiated: Some(at.into()),
        };
        let text = render(&[
            upload("2026-12-01T00:00:00Z"),
            upload("2026-12-02T00:00:00Z"),
        ])
        .unwrap();
        assert!(
            text.starts_with("2 open multipart uploads (the oldest started 2026-12-01T00:00:00Z)"),
            "{text}"
        );
    }
}
