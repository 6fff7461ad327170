//! The handler's vocabulary for S3: the clients a copy uses, how a copy or
//! delete ended, and how an S3 error becomes a `Failure` that names both
//! objects and the cause. Every S3 call of the handler (`copy`, `multipart`)
//! reports through here.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{ObjectCannedAcl, RequestPayer, ServerSideEncryption, StorageClass};

use super::plan::{CopyRequest, Route, S3Options};

/// How a copy that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyOutcome {
    Copied,
    /// The source no longer matches the event's ETag, or is gone: a newer
    /// write or delete has its own event, so there is nothing to do for this one.
    SourceChanged,
    /// A multipart copy handed on to a fresh invocation, which goes on.
    Continued,
}

impl CopyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CopyOutcome::Copied => "copied",
            CopyOutcome::SourceChanged => "source_changed",
            CopyOutcome::Continued => "continued",
        }
    }
}

/// How a delete that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    /// The source has the key again: the delete event is older than the
    /// write whose own event keeps (or makes) the copy.
    SourceRecreated,
}

/// How a tag change that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagsOutcome {
    /// The copy's tags are the source's.
    Replicated,
    /// The source holds another object than the event names: its own event
    /// copies it, tags and all.
    SourceChanged,
    /// The destination has no copy yet: its copy brings the tags.
    NoCopyYet,
}

impl TagsOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            TagsOutcome::Replicated => "tags_replicated",
            TagsOutcome::SourceChanged => "source_changed",
            TagsOutcome::NoCopyYet => "no_copy_yet",
        }
    }
}

/// Which S3 operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Copy,
    Delete,
    Tags,
}

/// An operation S3 refused or that never reached S3; names everything needed
/// to find the object and the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub operation: Operation,
    /// `s3://bucket/key` of the source object.
    pub source: String,
    /// `s3://bucket/key` of its copy.
    pub destination: String,
    /// S3's error code (`NoSuchKey`, `AccessDenied`, ...) or the kind of
    /// transport failure when S3 never answered.
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Failure {
            source,
            destination,
            code,
            message,
            ..
        } = self;
        match self.operation {
            Operation::Copy => {
                write!(
                    f,
                    "copy of {source} to {destination} failed: {code}: {message}"
                )
            }
            Operation::Delete => write!(
                f,
                "delete of {destination} (deleted from {source}) failed: {code}: {message}"
            ),
            Operation::Tags => write!(
                f,
                "setting the tags of {destination} to those of {source} failed: {code}: {message}"
            ),
        }
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// A failure S3 did not report as an error, e.g. an answer missing a field.
    pub fn about(operation: Operation, route: &Route, code: &str, message: &str) -> Failure {
        Failure {
            operation,
            source: route.source(),
            destination: route.destination(),
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
pub fn deadline_exceeded(request: &CopyRequest) -> Failure {
    Failure::about(
        Operation::Copy,
        &request.route,
        "DeadlineExceeded",
        "the copy did not finish within the invocation's time (the function's timeout less \
         a margin to report it); raise the timeout (s3fan deploy --timeout, at most 900 s) \
         or the copy's parallelism (S3FAN_COPY_CONCURRENCY)",
    )
}

/// The clients one copy uses: reads of the source go to the source's region,
/// writes to the destination's (S3 answers a request sent to another region
/// with 301 PermanentRedirect; CopyObject itself goes to the destination's
/// region and may read a source anywhere). One client when both share one.
#[derive(Debug, Clone)]
pub struct S3Clients {
    pub source: Client,
    pub destination: Client,
}

impl S3Clients {
    /// Both buckets through one client.
    #[cfg(test)]
    pub fn one(client: &Client) -> S3Clients {
        S3Clients {
            source: client.clone(),
            destination: client.clone(),
        }
    }

    /// The source through `config`'s region; the destination through
    /// `destination_region` when given and different.
    pub fn for_regions(
        config: &aws_config::SdkConfig,
        destination_region: Option<String>,
    ) -> S3Clients {
        let source = crate::aws::s3_client(config);
        let destination = match destination_region {
            Some(region) if Some(region.as_str()) != config.region().map(|r| r.as_ref()) => {
                crate::aws::s3_client_in(config, &region)
            }
            _ => source.clone(),
        };
        S3Clients {
            source,
            destination,
        }
    }
}

impl S3Options {
    /// `x-amz-request-payer: requester`, when asked.
    pub fn payer(&self) -> Option<RequestPayer> {
        self.request_payer.then_some(RequestPayer::Requester)
    }

    /// SSE-KMS when a key is named; else the destination's default applies.
    pub fn encryption(&self) -> Option<ServerSideEncryption> {
        self.kms_key.as_ref().map(|_| ServerSideEncryption::AwsKms)
    }

    /// bucket-owner-full-control when the destination is another account's.
    pub fn acl(&self) -> Option<ObjectCannedAcl> {
        self.owner
            .as_ref()
            .map(|_| ObjectCannedAcl::BucketOwnerFullControl)
    }

    /// The copies' storage class, when one is set.
    pub fn class(&self) -> Option<StorageClass> {
        self.storage_class.as_deref().map(StorageClass::from)
    }
}

/// S3's answer when a copy's source is no longer the event's object: 412 on
/// the ETag condition, or NoSuchKey once it has been deleted.
pub fn source_changed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool
where
    R: std::fmt::Debug,
{
    matches!(err.code(), Some("PreconditionFailed" | "NoSuchKey"))
}

/// The HTTP status S3 answered with, if it answered.
pub fn status<E>(err: &SdkError<E>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// What S3 answered `operation` on `route`, as a failure.
pub fn failure<E, R>(operation: Operation, route: &Route, err: &SdkError<E, R>) -> Failure
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
    let mut message = err
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| crate::aws::sdk_error_sentence(err));
    if let Some(advice) = kms_advice(&message) {
        message.push_str(&advice);
    }
    Failure {
        operation,
        source: route.source(),
        destination: route.destination(),
        code,
        message,
    }
}

/// What to add when S3 failed because the role may not use a KMS key: S3
/// passes on KMS's "... is not authorized to perform: kms:Decrypt on
/// resource: arn:aws:kms:...", which names both.
pub(super) fn kms_advice(message: &str) -> Option<String> {
    let words: Vec<&str> = message
        .split(|c: char| c.is_whitespace() || c == ',')
        .collect();
    let action = words.iter().find(|w| w.starts_with("kms:"))?;
    let key = words
        .iter()
        .find(|w| w.starts_with("arn:") && w.contains(":kms:"))?
        .trim_end_matches('.');
    Some(format!(
        "; the function's role may not use KMS key {key}: add to its policy \
         {{\"Effect\": \"Allow\", \"Action\": \"{action}\", \"Resource\": \"{key}\"}} \
         (s3fan deploy grants the keys of the buckets' default encryption and of \
         --dest-kms-key; a key of another account must also admit the role in its key policy)"
    ))
}
