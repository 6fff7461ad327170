//! One server-side copy: the only place the handler talks to S3.
//!
//! Up to the multipart threshold (5 GiB, CopyObject's limit, by default),
//! CopyObject: it keeps the source's metadata, Content-Type and tags (COPY
//! directives) and moves no bytes through Lambda. Past it, a multipart copy
//! (see `multipart`). `CopySourceIfMatch` on the event's ETag makes a late
//! event harmless: if the object changed since, S3 answers 412 and the newer
//! write's own event does the copy.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{MetadataDirective, TaggingDirective};

use super::key::copy_source;
use super::multipart::{GIB, MAX_PART, MIB, MIN_PART, copy_in_parts};
use super::plan::{CopyRequest, DeleteRequest};

/// How copies are made; from the function's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopySettings {
    /// Objects larger than this are copied in parts (`S3FAN_MULTIPART_THRESHOLD`).
    pub multipart_threshold: u64,
    /// Preferred part size (`S3FAN_PART_SIZE`).
    pub part_size: u64,
    /// Parts copied at once (`S3FAN_COPY_CONCURRENCY`).
    pub concurrency: usize,
}

impl Default for CopySettings {
    fn default() -> CopySettings {
        CopySettings {
            multipart_threshold: 5 * GIB,
            // Not yet chosen by measurement (the benchmarks issue): 256 MiB
            // parts, 8 at a time, keep a 5 TiB object near 20,000 requests
            // fewer than 5 MiB parts would, at modest concurrency.
            part_size: 256 * MIB,
            concurrency: 8,
        }
    }
}

impl CopySettings {
    /// Reads the variables through `get`; an unusable value is an error that
    /// names the variable.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<CopySettings, String> {
        let defaults = CopySettings::default();
        let number = |name: &str, default: u64, min: u64, max: u64| -> Result<u64, String> {
            let Some(text) = get(name) else {
                return Ok(default);
            };
            match text.trim().parse::<u64>() {
                Ok(value) if (min..=max).contains(&value) => Ok(value),
                _ => Err(format!(
                    "{name}={text:?} is not a whole number of bytes from {min} to {max}"
                )),
            }
        };
        Ok(CopySettings {
            multipart_threshold: number(
                "S3FAN_MULTIPART_THRESHOLD",
                defaults.multipart_threshold,
                MIN_PART,
                MAX_PART,
            )?,
            part_size: number("S3FAN_PART_SIZE", defaults.part_size, MIN_PART, MAX_PART)?,
            concurrency: number("S3FAN_COPY_CONCURRENCY", defaults.concurrency as u64, 1, 64)?
                as usize,
        })
    }
}

/// How a copy that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyOutcome {
    Copied,
    /// The source no longer matches the event's ETag: a newer write has its
    /// own event, so there is nothing to do for this one.
    SourceChanged,
}

impl CopyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyOutcome::Copied => "copied",
            CopyOutcome::SourceChanged => "source_changed",
        }
    }
}

/// A copy S3 refused or that never reached S3; names everything needed to
/// find the object and the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "copy of s3://{source_bucket}/{key} to s3://{destination_bucket}/{key} failed: {code}: {message}"
)]
pub struct CopyFailure {
    pub source_bucket: String,
    pub key: String,
    pub destination_bucket: String,
    /// S3's error code (`NoSuchKey`, `AccessDenied`, ...) or the kind of
    /// transport failure when S3 never answered.
    pub code: String,
    pub message: String,
}

impl CopyFailure {
    /// A failure S3 did not report as an error, e.g. an answer missing a field.
    pub fn about(request: &CopyRequest, code: &str, message: &str) -> CopyFailure {
        CopyFailure {
            source_bucket: request.source_bucket.clone(),
            key: request.key.clone(),
            destination_bucket: request.destination_bucket.clone(),
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// How one object was copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub outcome: CopyOutcome,
    /// 0 for CopyObject, else the number of parts.
    pub parts: usize,
    pub bytes: Option<u64>,
}

/// The copy ran out of the invocation's time: fail with the reason before
/// Lambda kills the process, so the retry and failure paths see it.
pub fn deadline_exceeded(request: &CopyRequest) -> CopyFailure {
    CopyFailure::about(
        request,
        "DeadlineExceeded",
        "the copy did not finish within the invocation's time (the function's timeout less \
         a margin to report it); raise the timeout (s3fan deploy --timeout, at most 900 s) \
         or the copy's parallelism (S3FAN_COPY_CONCURRENCY)",
    )
}

/// Copies one object as planned: CopyObject up to the threshold, in parts
/// past it; gives up at `deadline`.
pub async fn copy(
    s3: &Client,
    settings: &CopySettings,
    request: &CopyRequest,
    deadline: tokio::time::Instant,
) -> Result<Copied, CopyFailure> {
    let size = match request.size {
        Some(size) => Some(size),
        None => source_size(s3, request).await?,
    };
    match size {
        Some(size) if size > settings.multipart_threshold => {
            let (outcome, parts) = copy_in_parts(
                s3,
                request,
                size,
                settings.part_size,
                settings.concurrency,
                deadline,
            )
            .await?;
            Ok(Copied {
                outcome,
                parts,
                bytes: Some(size),
            })
        }
        _ => Ok(Copied {
            outcome: tokio::time::timeout_at(deadline, copy_object(s3, request))
                .await
                .unwrap_or_else(|_| Err(deadline_exceeded(request)))?,
            parts: 0,
            bytes: size,
        }),
    }
}

/// The source's size when the event did not say; `None` if it is gone (the
/// copy then reports why).
async fn source_size(s3: &Client, request: &CopyRequest) -> Result<Option<u64>, CopyFailure> {
    match s3
        .head_object()
        .bucket(&request.source_bucket)
        .key(&request.key)
        .set_version_id(request.version_id.clone())
        .send()
        .await
    {
        Ok(head) => Ok(head.content_length().and_then(|n| u64::try_from(n).ok())),
        Err(err) if err.raw_response().map(|r| r.status().as_u16()) == Some(404) => Ok(None),
        Err(err) => Err(failure(request, &err)),
    }
}

/// Deletes one key from the destination. S3 answers a delete of a missing
/// key with success, so a repeated event is harmless.
pub async fn delete_object(s3: &Client, request: &DeleteRequest) -> Result<(), CopyFailure> {
    s3.delete_object()
        .bucket(&request.destination_bucket)
        .key(&request.key)
        .send()
        .await
        .map(|_| ())
        .map_err(|err| {
            let as_copy = CopyRequest {
                source_bucket: request.source_bucket.clone(),
                key: request.key.clone(),
                version_id: None,
                if_match: None,
                size: None,
                destination_bucket: request.destination_bucket.clone(),
            };
            failure(&as_copy, &err)
        })
}

/// Copies one object with CopyObject.
pub async fn copy_object(s3: &Client, request: &CopyRequest) -> Result<CopyOutcome, CopyFailure> {
    let mut call = s3
        .copy_object()
        .bucket(&request.destination_bucket)
        .key(&request.key)
        .copy_source(copy_source(
            &request.source_bucket,
            &request.key,
            request.version_id.as_deref(),
        ))
        .metadata_directive(MetadataDirective::Copy)
        .tagging_directive(TaggingDirective::Copy);
    if let Some(etag) = &request.if_match {
        call = call.copy_source_if_match(format!("\"{etag}\""));
    }
    match call.send().await {
        Ok(_) => Ok(CopyOutcome::Copied),
        Err(err) if is_precondition_failed(&err) => Ok(CopyOutcome::SourceChanged),
        Err(err) => Err(failure(request, &err)),
    }
}

fn is_precondition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool
where
    R: std::fmt::Debug,
{
    err.code() == Some("PreconditionFailed")
}

pub(super) fn failure<E, R>(request: &CopyRequest, err: &SdkError<E, R>) -> CopyFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().map(str::to_owned).unwrap_or_else(|| {
        match err {
            SdkError::ConstructionFailure(_) => "ConstructionFailure",
            SdkError::TimeoutError(_) => "Timeout",
            SdkError::DispatchFailure(_) => "DispatchFailure",
            SdkError::ResponseError(_) => "ResponseError",
            _ => "ServiceError",
        }
        .to_owned()
    });
    let message = err
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| DisplayErrorContext(err).to_string());
    CopyFailure {
        source_bucket: request.source_bucket.clone(),
        key: request.key.clone(),
        destination_bucket: request.destination_bucket.clone(),
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    //! The copy layer against the in-process S3 of `test_s3`: moto ignores
    //! `x-amz-copy-source-if-match`, so the 412 path is shown here.

    use super::*;
    use crate::handler::test_s3::{Reply, client, header, serve};
    use tokio::net::TcpListener;

    fn copied(_: &str, _: &str) -> Reply {
        let ok = "<CopyObjectResult><ETag>\"0123abcd\"</ETag></CopyObjectResult>";
        (200, vec![], ok.into())
    }

    fn changed(_: &str, _: &str) -> Reply {
        let error = "<Error><Code>PreconditionFailed</Code><Message>At least one of the \
                     pre-conditions you specified did not hold</Message></Error>";
        (412, vec![], error.into())
    }

    fn missing(_: &str, _: &str) -> Reply {
        let error = "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>";
        (404, vec![], error.into())
    }

    /// The one request the fake received.
    fn only_request(seen: &std::sync::Mutex<Vec<String>>) -> String {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        seen[0].clone()
    }

    fn request() -> CopyRequest {
        CopyRequest {
            source_bucket: "src".into(),
            key: "dir/a b+é.txt".into(),
            version_id: Some("v1".into()),
            if_match: Some("0123abcd".into()),
            size: Some(3),
            destination_bucket: "dst.two".into(),
        }
    }

    #[tokio::test]
    async fn sends_an_encoded_copy_source_and_the_etag_condition() {
        let (client, seen) = serve(copied).await;
        assert_eq!(
            copy_object(&client, &request()).await,
            Ok(CopyOutcome::Copied)
        );
        let head = only_request(&seen);
        assert!(
            head.starts_with("PUT /dst.two/dir/a%20b%2B%C3%A9.txt"),
            "{head}"
        );
        assert_eq!(
            header(&head, "x-amz-copy-source"),
            Some("src/dir/a%20b%2B%C3%A9.txt?versionId=v1")
        );
        assert_eq!(
            header(&head, "x-amz-copy-source-if-match"),
            Some("\"0123abcd\"")
        );
        assert_eq!(header(&head, "x-amz-metadata-directive"), Some("COPY"));
        assert_eq!(header(&head, "x-amz-tagging-directive"), Some("COPY"));
    }

    #[tokio::test]
    async fn without_an_etag_there_is_no_condition() {
        let (client, seen) = serve(copied).await;
        let unconditional = CopyRequest {
            if_match: None,
            version_id: None,
            ..request()
        };
        assert_eq!(
            copy_object(&client, &unconditional).await,
            Ok(CopyOutcome::Copied)
        );
        let head = only_request(&seen);
        assert_eq!(header(&head, "x-amz-copy-source-if-match"), None);
        assert_eq!(
            header(&head, "x-amz-copy-source"),
            Some("src/dir/a%20b%2B%C3%A9.txt")
        );
    }

    #[tokio::test]
    async fn a_changed_source_is_not_a_failure() {
        let (client, _) = serve(changed).await;
        assert_eq!(
            copy_object(&client, &request()).await,
            Ok(CopyOutcome::SourceChanged)
        );
    }

    #[tokio::test]
    async fn s3_errors_carry_code_message_and_names() {
        let (client, _) = serve(missing).await;
        let failure = copy_object(&client, &request()).await.unwrap_err();
        assert_eq!(failure.code, "NoSuchKey");
        assert_eq!(failure.message, "The specified key does not exist.");
        assert_eq!(
            failure.to_string(),
            "copy of s3://src/dir/a b+é.txt to s3://dst.two/dir/a b+é.txt failed: NoSuchKey: \
             The specified key does not exist."
        );
    }

    #[test]
    fn settings_come_from_the_environment_and_name_bad_values() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            CopySettings::from_env(env(&[])),
            Ok(CopySettings::default())
        );
        let set = CopySettings::from_env(env(&[
            ("S3FAN_MULTIPART_THRESHOLD", "5242880"),
            ("S3FAN_COPY_CONCURRENCY", "3"),
        ]))
        .unwrap();
        assert_eq!((set.multipart_threshold, set.concurrency), (5 * MIB, 3));
        let err = CopySettings::from_env(env(&[("S3FAN_PART_SIZE", "1MB")])).unwrap_err();
        assert!(
            err.contains("S3FAN_PART_SIZE") && err.contains("5242880"),
            "{err}"
        );
        assert!(
            CopySettings::from_env(env(&[("S3FAN_MULTIPART_THRESHOLD", "6000000000")])).is_err(),
            "over 5 GiB"
        );
        assert!(CopySettings::from_env(env(&[("S3FAN_COPY_CONCURRENCY", "0")])).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_s3_is_a_dispatch_failure() {
        // Bind then drop: nothing listens on this port any more.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = client(&format!("http://127.0.0.1:{port}"));
        let failure = copy_object(&client, &request()).await.unwrap_err();
        assert_eq!(failure.code, "DispatchFailure");
        assert!(
            failure.message.contains("connect") || failure.message.contains("refused"),
            "{}",
            failure.message
        );
    }
}
