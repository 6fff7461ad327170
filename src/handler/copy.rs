//! One server-side copy: the only place the handler talks to S3.
//!
//! CopyObject keeps the source's metadata, Content-Type and tags (COPY
//! directives) and moves no bytes through Lambda. `CopySourceIfMatch` on the
//! event's ETag makes a late event harmless: if the object changed since, S3
//! answers 412 and the newer write's own event does the copy.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{MetadataDirective, TaggingDirective};

use super::key::copy_source;
use super::plan::CopyRequest;

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

/// Copies one object as planned.
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

fn failure<E, R>(request: &CopyRequest, err: &SdkError<E, R>) -> CopyFailure
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
