//! Multipart uploads open in a destination, under its key prefix, for
//! `status` and `destroy`. s3fan aborts each upload of its own that fails,
//! and a chained copy keeps one open only while it runs; one that stays open
//! was left by an interruption nothing reported. Parts of an open upload are
//! billed.
//!
//! S3 names who started each upload: for a Lambda function, its role's
//! session (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/FUNCTION`). The role is
//! s3fan's own and only Lambda may assume it, so an upload started by any
//! session of it is s3fan's; every other upload belongs to another writer of
//! the bucket, is listed apart and is never aborted.

use aws_sdk_s3::error::ProvideErrorMetadata;
use serde::Serialize;

use super::plan::{Action, Change, Kind};
use crate::fanout::{Context, DeployError, aws_failure, names};

/// At most this many are listed; the count says if there are more.
const LISTED: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenUpload {
    pub key: String,
    pub upload_id: String,
    /// When it was started, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiated: Option<String>,
    /// Who started it, as S3 names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    /// Started by the destination's function (its role's session).
    pub started_by_s3fan: bool,
}

/// Whether S3's initiator of an upload is a session of `role`: the ID is
/// the session's ARN, the display name `ROLE/SESSION`.
fn is_session_of(role: &str, id: Option<&str>, display_name: Option<&str>) -> bool {
    let in_arn = format!(":assumed-role/{role}/");
    let in_name = format!("{role}/");
    id.is_some_and(|id| id.contains(&in_arn))
        || display_name.is_some_and(|name| name.starts_with(&in_name))
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
        .await;
    let page = match page {
        // A destination already deleted holds no uploads.
        Err(err) if err.code() == Some("NoSuchBucket") => return Ok(Vec::new()),
        page => page,
    }
    .map_err(|err| {
        aws_failure(
            format!(
                "cannot list the open multipart uploads of {destination} \
                     (s3:ListBucketMultipartUploads)"
            ),
            &err,
        )
    })?;
    let role = names::role_name(destination);
    let mut open: Vec<OpenUpload> = page
        .uploads()
        .iter()
        .map(|upload| {
            let id = upload.initiator().and_then(|i| i.id());
            let display_name = upload.initiator().and_then(|i| i.display_name());
            OpenUpload {
                key: upload.key().unwrap_or_default().to_owned(),
                upload_id: upload.upload_id().unwrap_or_default().to_owned(),
                initiated: upload
                    .initiated()
                    .and_then(|at| at.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
                initiator: id.or(display_name).map(str::to_owned),
                started_by_s3fan: is_session_of(&role, id, display_name),
            }
        })
        .collect();
    open.sort_by(|a, b| a.initiated.cmp(&b.initiated));
    Ok(open)
}

/// The status line: `2 open multipart uploads s3fan started (the oldest
/// started T): ...`, and how many others started, if any.
pub fn render(open: &[OpenUpload]) -> Option<String> {
    let (ours, others): (Vec<&OpenUpload>, Vec<&OpenUpload>) =
        open.iter().partition(|u| u.started_by_s3fan);
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let mut line = String::new();
    if let Some(oldest) = ours.first() {
        line.push_str(&format!(
            "{} open multipart upload{} s3fan started{}: a chained copy still running, or parts \
             left by an interrupted one (billed until aborted; destroy aborts them, and a \
             lifecycle rule with AbortIncompleteMultipartUpload removes what is left)",
            ours.len(),
            plural(ours.len()),
            oldest
                .initiated
                .as_deref()
                .map(|at| format!(" (the oldest started {at})"))
                .unwrap_or_default()
        ));
    }
    if !others.is_empty() {
        if !line.is_empty() {
            line.push_str("; ");
        }
        line.push_str(&format!(
            "{} open multipart upload{} started by other writers of the bucket (s3fan leaves them alone)",
            others.len(),
            plural(others.len())
        ));
    }
    (!line.is_empty()).then_some(line)
}

/// Aborting one upload s3fan started, once its function is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub key: String,
    pub upload_id: String,
}

/// destroy: an abort of each upload the destination's function started.
/// Nothing can finish them once the function is gone, and their parts are
/// billed until someone aborts them. Others' uploads are not s3fan's.
pub fn plan_abort(destination: &str, open: &[OpenUpload]) -> Vec<Change<Op>> {
    open.iter()
        .filter(|upload| upload.started_by_s3fan)
        .map(|upload| Change {
            kind: Kind::Upload,
            name: format!("s3://{destination}/{}", upload.key),
            destination: Some(destination.to_owned()),
            action: Action::Delete,
            detail: upload
                .initiated
                .as_deref()
                .map(|at| format!("started {at}, never completed"))
                .unwrap_or_else(|| "never completed".into()),
            diff: Vec::new(),
            op: Op {
                key: upload.key.clone(),
                upload_id: upload.upload_id.clone(),
            },
        })
        .collect()
}

/// What destroy says of a destination whose open uploads it could not list.
pub fn not_listed(destination: &str, error: &str) -> Change<Op> {
    Change {
        kind: Kind::Upload,
        name: format!("s3://{destination}/"),
        destination: Some(destination.to_owned()),
        action: Action::Unchanged,
        detail: format!("open uploads not checked: {error}"),
        diff: Vec::new(),
        op: Op {
            key: String::new(),
            upload_id: String::new(),
        },
    }
}

pub async fn apply(ctx: &Context, destination: &str, op: &Op) -> Result<(), DeployError> {
    let aborted = ctx
        .s3_for(destination)?
        .abort_multipart_upload()
        .bucket(destination)
        .key(&op.key)
        .upload_id(&op.upload_id)
        .set_expected_bucket_owner(ctx.other_account(destination).map(str::to_owned))
        .send()
        .await;
    match aborted {
        Ok(_) => Ok(()),
        // Aborted or completed meanwhile: nothing is left open.
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_no_such_upload()) =>
        {
            Ok(())
        }
        Err(err) => Err(aws_failure(
            format!(
                "cannot abort the multipart upload {} of s3://{destination}/{} \
                 (s3:AbortMultipartUpload)",
                op.upload_id, op.key
            ),
            &err,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_uploads_are_named_with_the_oldest_and_none_say_nothing() {
        assert_eq!(render(&[]), None);
        let upload = |at: &str, ours: bool| OpenUpload {
            key: "big.bin".into(),
            upload_id: "u".into(),
            initiated: Some(at.into()),
            initiator: None,
            started_by_s3fan: ours,
        };
        let text = render(&[
            upload("2026-12-01T00:00:00Z", true),
            upload("2026-12-02T00:00:00Z", true),
        ])
        .unwrap();
        assert!(
            text.starts_with(
                "2 open multipart uploads s3fan started (the oldest started 2026-12-01T00:00:00Z)"
            ),
            "{text}"
        );
        let text = render(&[upload("2026-12-01T00:00:00Z", false)]).unwrap();
        assert!(
            text.starts_with("1 open multipart upload started by other writers"),
            "{text}"
        );
    }

    #[test]
    fn only_sessions_of_the_destinations_role_are_s3fans() {
        let role = "s3fan-dst";
        let arn = |role: &str| format!("arn:aws:sts::123456789012:assumed-role/{role}/dst");
        assert!(is_session_of(role, Some(&arn(role)), None));
        assert!(is_session_of(role, None, Some("s3fan-dst/dst")));
        // A role whose name only begins like ours is another's.
        assert!(!is_session_of(
            role,
            Some(&arn("s3fan-dst-2")),
            Some("s3fan-dst-2/x")
        ));
        assert!(!is_session_of(
            role,
            Some("arn:aws:iam::123456789012:user/alice"),
            Some("alice")
        ));
        assert!(!is_session_of(role, None, None));
    }

    #[test]
    fn destroy_aborts_only_the_uploads_s3fan_started() {
        let upload = |key: &str, ours: bool| OpenUpload {
            key: key.into(),
            upload_id: format!("id-{key}"),
            initiated: None,
            initiator: None,
            started_by_s3fan: ours,
        };
        let plan = plan_abort(
            "dst",
            &[upload("ours.bin", true), upload("theirs.bin", false)],
        );
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].name, "s3://dst/ours.bin");
        assert_eq!(plan[0].action, Action::Delete);
        assert_eq!(plan[0].op.upload_id, "id-ours.bin");
    }
}
