//! One server-side copy: the only place the handler talks to S3.
//!
//! Up to the multipart threshold (5 GiB, CopyObject's limit, by default),
//! CopyObject: it keeps the source's metadata, Content-Type and tags (COPY
//! directives) and moves no bytes through Lambda. Past it, a multipart copy
//! (see `multipart`). `CopySourceIfMatch` on the event's ETag makes a late
//! event harmless: if the object changed since, S3 answers 412 and the newer
//! write's own event does the copy (the ordering rule is in `plan`).

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    MetadataDirective, ObjectCannedAcl, RequestPayer, ServerSideEncryption, StorageClass,
    TaggingDirective,
};

use super::key::copy_source;
use super::multipart::{GIB, MAX_PART, MIB, MIN_PART, copy_in_parts, head_source};
use super::plan::{CopyRequest, DeleteRequest, S3Options};

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
            // Measured in bench/RESULTS.md: larger parts amortise each
            // request's cost, and parts in flight are used up to what the
            // server can do; S3 copies parts on its own fleet, so 8 at a
            // time of 256 MiB (grown by the part plan past 2.5 TiB).
            part_size: 256 * MIB,
            concurrency: 8,
        }
    }
}

impl CopySettings {
    /// The settings of this process: the function's, or the local backfill
    /// and retry commands', which honour the same variables.
    pub fn from_process_env() -> Result<CopySettings, String> {
        CopySettings::from_env(|name| std::env::var(name).ok())
    }

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
    /// The source no longer matches the event's ETag, or is gone: a newer
    /// write or delete has its own event, so there is nothing to do for this one.
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

/// How a delete that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    /// The source has the key again: the delete event is older than the
    /// write whose own event keeps (or makes) the copy.
    SourceRecreated,
}

/// Which S3 operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Copy,
    Delete,
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
        }
    }
}

impl std::error::Error for Failure {}

/// A request whose failure can be reported: copies and deletes.
pub trait Described {
    fn operation(&self) -> Operation;
    /// Source bucket, key, destination bucket, destination key.
    fn route(&self) -> [&str; 4];

    fn source(&self) -> String {
        let [bucket, key, ..] = self.route();
        format!("s3://{bucket}/{key}")
    }

    fn destination(&self) -> String {
        let [.., bucket, key] = self.route();
        format!("s3://{bucket}/{key}")
    }
}

impl Described for CopyRequest {
    fn operation(&self) -> Operation {
        Operation::Copy
    }
    fn route(&self) -> [&str; 4] {
        [
            &self.source_bucket,
            &self.key,
            &self.destination_bucket,
            &self.destination_key,
        ]
    }
}

impl Described for DeleteRequest {
    fn operation(&self) -> Operation {
        Operation::Delete
    }
    fn route(&self) -> [&str; 4] {
        [
            &self.source_bucket,
            &self.key,
            &self.destination_bucket,
            &self.destination_key,
        ]
    }
}

impl Failure {
    /// A failure S3 did not report as an error, e.g. an answer missing a field.
    pub fn about(request: &impl Described, code: &str, message: &str) -> Failure {
        Failure {
            operation: request.operation(),
            source: request.source(),
            destination: request.destination(),
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
    s3: &S3Clients,
    settings: &CopySettings,
    request: &CopyRequest,
    deadline: tokio::time::Instant,
) -> Result<Copied, Failure> {
    let single = || async {
        tokio::time::timeout_at(deadline, copy_object(s3, request))
            .await
            .unwrap_or_else(|_| Err(deadline_exceeded(request)))
    };
    if let Some(size) = request
        .size
        .filter(|&size| size <= settings.multipart_threshold)
    {
        return Ok(Copied {
            outcome: single().await?,
            parts: 0,
            bytes: Some(size),
        });
    }
    // Past the threshold, or of unknown size: one HeadObject (conditional on
    // the event's ETag) gives the size and what a multipart upload must carry.
    let source = tokio::time::timeout_at(deadline, head_source(s3, request))
        .await
        .unwrap_or_else(|_| Err(deadline_exceeded(request)))?;
    let Some(source) = source else {
        return Ok(Copied {
            outcome: CopyOutcome::SourceChanged,
            parts: 0,
            bytes: request.size,
        });
    };
    let size = source.size;
    if size <= settings.multipart_threshold {
        return Ok(Copied {
            outcome: single().await?,
            parts: 0,
            bytes: Some(size),
        });
    }
    let (outcome, parts) = copy_in_parts(s3, request, source, settings, deadline).await?;
    Ok(Copied {
        outcome,
        parts,
        bytes: Some(size),
    })
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

/// Deletes one key from the destination, unless the source has it again.
/// S3 answers a delete of a missing key with success, so a repeated event is
/// harmless.
pub async fn delete_object(
    s3: &S3Clients,
    request: &DeleteRequest,
) -> Result<DeleteOutcome, Failure> {
    // A late delete event must not remove a key written again since. (The
    // role's s3:ListBucket on the source is what makes S3 answer 404 here
    // rather than 403.)
    match s3
        .source
        .head_object()
        .bucket(&request.source_bucket)
        .key(&request.key)
        .set_request_payer(request.options.payer())
        .send()
        .await
    {
        Ok(_) => return Ok(DeleteOutcome::SourceRecreated),
        Err(err) if status(&err) == Some(404) => {}
        Err(err) => return Err(failure(request, &err)),
    }
    s3.destination
        .delete_object()
        .bucket(&request.destination_bucket)
        .key(&request.destination_key)
        .set_expected_bucket_owner(request.options.owner.clone())
        .set_request_payer(request.options.payer())
        .send()
        .await
        .map(|_| DeleteOutcome::Deleted)
        .map_err(|err| failure(request, &err))
}

/// Copies one object with CopyObject: the source's current object, on
/// condition that it is still the event's (see `plan` for the ordering rule).
pub async fn copy_object(s3: &S3Clients, request: &CopyRequest) -> Result<CopyOutcome, Failure> {
    let mut call = s3
        .destination
        .copy_object()
        .bucket(&request.destination_bucket)
        .key(&request.destination_key)
        .copy_source(copy_source(&request.source_bucket, &request.key))
        .metadata_directive(MetadataDirective::Copy)
        .tagging_directive(TaggingDirective::Copy)
        .set_storage_class(request.options.class())
        .set_server_side_encryption(request.options.encryption())
        .set_ssekms_key_id(request.options.kms_key.clone())
        .set_acl(request.options.acl())
        .set_expected_bucket_owner(request.options.owner.clone())
        .set_request_payer(request.options.payer());
    if let Some(etag) = &request.if_match {
        call = call.copy_source_if_match(format!("\"{etag}\""));
    }
    match call.send().await {
        Ok(_) => Ok(CopyOutcome::Copied),
        Err(err) if source_changed(&err) => Ok(CopyOutcome::SourceChanged),
        Err(err) => Err(failure(request, &err)),
    }
}

/// S3's answer when a copy's source is no longer the event's object: 412 on
/// the ETag condition, or NoSuchKey once it has been deleted.
pub(super) fn source_changed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool
where
    R: std::fmt::Debug,
{
    matches!(err.code(), Some("PreconditionFailed" | "NoSuchKey"))
}

/// The HTTP status S3 answered with, if it answered.
pub(super) fn status<E>(err: &SdkError<E>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

pub(super) fn failure<E, R>(request: &impl Described, err: &SdkError<E, R>) -> Failure
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
        operation: request.operation(),
        source: request.source(),
        destination: request.destination(),
        code,
        message,
    }
}

/// What to add when S3 failed because the role may not use a KMS key: S3
/// passes on KMS's "... is not authorized to perform: kms:Decrypt on
/// resource: arn:aws:kms:...", which names both.
fn kms_advice(message: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    //! The copy layer against the in-process S3 of `test_s3`: moto ignores
    //! `x-amz-copy-source-if-match`, so the 412 path is shown here.

    use super::*;
    use crate::test_endpoint::{Reply, client, header, serve};
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

    fn no_bucket(_: &str, _: &str) -> Reply {
        let error = "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist.</Message></Error>";
        (404, vec![], error.into())
    }

    /// The one request the fake received.
    fn kms_denied(_: &str, _: &str) -> Reply {
        let error = "<Error><Code>AccessDenied</Code><Message>User: arn:aws:sts::123456789012:\
                     assumed-role/s3fan-dst/dst is not authorized to perform: kms:Decrypt on resource: \
                     arn:aws:kms:us-east-1:123456789012:key/1111aaaa-11aa-11aa-11aa-111111aaaaaa \
                     because no identity-based policy allows the kms:Decrypt action</Message></Error>";
        (403, vec![], error.into())
    }

    #[tokio::test]
    async fn a_key_the_role_may_not_use_is_named_with_the_statement_to_add() {
        let (client, _) = serve(kms_denied).await;
        let failure = copy_object(&S3Clients::one(&client), &request())
            .await
            .unwrap_err();
        assert_eq!(failure.code, "AccessDenied");
        assert!(
            failure.message.contains(
                "may not use KMS key arn:aws:kms:us-east-1:123456789012:key/1111aaaa-11aa-11aa-11aa-111111aaaaaa: \
                 add to its policy {\"Effect\": \"Allow\", \"Action\": \"kms:Decrypt\", \
                 \"Resource\": \"arn:aws:kms:us-east-1:123456789012:key/1111aaaa-11aa-11aa-11aa-111111aaaaaa\"}"
            ),
            "{failure}"
        );
        // Other denials get no KMS advice.
        assert_eq!(kms_advice("Access Denied"), None);
    }

    fn only_request(seen: &std::sync::Mutex<Vec<String>>) -> String {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        seen[0].clone()
    }

    fn request() -> CopyRequest {
        CopyRequest {
            options: Default::default(),
            source_bucket: "src".into(),
            key: "dir/a b+é.txt".into(),
            version_id: Some("v1".into()),
            if_match: Some("0123abcd".into()),
            size: Some(3),
            destination_bucket: "dst.two".into(),
            destination_key: "copies/dir/a b+é.txt".into(),
        }
    }

    #[tokio::test]
    async fn sends_an_encoded_copy_source_and_the_etag_condition() {
        let (client, seen) = serve(copied).await;
        assert_eq!(
            copy_object(&S3Clients::one(&client), &request()).await,
            Ok(CopyOutcome::Copied)
        );
        let head = only_request(&seen);
        assert!(
            head.starts_with("PUT /dst.two/copies/dir/a%20b%2B%C3%A9.txt"),
            "{head}"
        );
        // The current object, not the event's version: see the ordering rule.
        assert_eq!(
            header(&head, "x-amz-copy-source"),
            Some("src/dir/a%20b%2B%C3%A9.txt")
        );
        assert_eq!(
            header(&head, "x-amz-copy-source-if-match"),
            Some("\"0123abcd\"")
        );
        assert_eq!(header(&head, "x-amz-metadata-directive"), Some("COPY"));
        assert_eq!(header(&head, "x-amz-tagging-directive"), Some("COPY"));
    }

    #[tokio::test]
    async fn class_encryption_and_requester_pays_are_sent_only_when_set() {
        let (client, seen) = serve(copied).await;
        copy_object(&S3Clients::one(&client), &request())
            .await
            .unwrap();
        let plain = only_request(&seen);
        assert_eq!(header(&plain, "x-amz-storage-class"), None);
        assert_eq!(header(&plain, "x-amz-request-payer"), None);
        // No key named: the destination's default encryption applies.
        assert_eq!(header(&plain, "x-amz-server-side-encryption"), None);
        assert_eq!(header(&plain, "x-amz-acl"), None);
        assert_eq!(header(&plain, "x-amz-expected-bucket-owner"), None);

        let (client, seen) = serve(copied).await;
        let archived = CopyRequest {
            options: S3Options {
                storage_class: Some("GLACIER_IR".into()),
                kms_key: Some("alias/backups".into()),
                owner: Some("210987654321".into()),
                request_payer: true,
            },
            ..request()
        };
        copy_object(&S3Clients::one(&client), &archived)
            .await
            .unwrap();
        let head = only_request(&seen);
        assert_eq!(header(&head, "x-amz-storage-class"), Some("GLACIER_IR"));
        assert_eq!(header(&head, "x-amz-request-payer"), Some("requester"));
        assert_eq!(
            header(&head, "x-amz-server-side-encryption"),
            Some("aws:kms")
        );
        assert_eq!(
            header(&head, "x-amz-server-side-encryption-aws-kms-key-id"),
            Some("alias/backups")
        );
        // Another account's destination: only its bucket, and the copy is its.
        assert_eq!(
            header(&head, "x-amz-expected-bucket-owner"),
            Some("210987654321")
        );
        assert_eq!(
            header(&head, "x-amz-acl"),
            Some("bucket-owner-full-control")
        );
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
            copy_object(&S3Clients::one(&client), &unconditional).await,
            Ok(CopyOutcome::Copied)
        );
        let head = only_request(&seen);
        assert_eq!(header(&head, "x-amz-copy-source-if-match"), None);
    }

    #[tokio::test]
    async fn a_changed_source_is_not_a_failure() {
        let (client, _) = serve(changed).await;
        assert_eq!(
            copy_object(&S3Clients::one(&client), &request()).await,
            Ok(CopyOutcome::SourceChanged)
        );
    }

    #[tokio::test]
    async fn a_deleted_source_is_not_a_failure() {
        let (client, _) = serve(missing).await;
        assert_eq!(
            copy_object(&S3Clients::one(&client), &request()).await,
            Ok(CopyOutcome::SourceChanged)
        );
    }

    #[tokio::test]
    async fn s3_errors_carry_code_message_and_names() {
        let (client, _) = serve(no_bucket).await;
        let failure = copy_object(&S3Clients::one(&client), &request())
            .await
            .unwrap_err();
        assert_eq!(failure.code, "NoSuchBucket");
        assert_eq!(failure.message, "The specified bucket does not exist.");
        assert_eq!(
            failure.to_string(),
            "copy of s3://src/dir/a b+é.txt to s3://dst.two/copies/dir/a b+é.txt failed: \
             NoSuchBucket: The specified bucket does not exist."
        );
    }

    fn delete_request() -> DeleteRequest {
        DeleteRequest {
            options: Default::default(),
            source_bucket: "src".into(),
            key: "gone.txt".into(),
            destination_bucket: "dst".into(),
            destination_key: "copies/gone.txt".into(),
        }
    }

    fn source_deleted(method: &str, _: &str) -> Reply {
        match method {
            "HEAD" => (404, vec![], String::new()),
            _ => (204, vec![], String::new()),
        }
    }

    #[tokio::test]
    async fn a_delete_removes_the_copy_once_the_source_is_gone() {
        let (client, seen) = serve(source_deleted).await;
        assert_eq!(
            delete_object(&S3Clients::one(&client), &delete_request()).await,
            Ok(DeleteOutcome::Deleted)
        );
        let seen = seen.lock().unwrap().clone();
        assert!(seen[0].starts_with("HEAD /src/gone.txt\n"), "{seen:?}");
        assert!(
            seen[1].starts_with("DELETE /dst/copies/gone.txt?"),
            "{seen:?}"
        );
        assert_eq!(seen.len(), 2);
    }

    fn source_written_again(method: &str, _: &str) -> Reply {
        match method {
            "HEAD" => (200, vec![("Content-Length", "3".into())], String::new()),
            _ => (204, vec![], String::new()),
        }
    }

    #[tokio::test]
    async fn a_late_delete_never_removes_a_key_written_again() {
        let (client, seen) = serve(source_written_again).await;
        assert_eq!(
            delete_object(&S3Clients::one(&client), &delete_request()).await,
            Ok(DeleteOutcome::SourceRecreated)
        );
        assert!(
            !seen.lock().unwrap().iter().any(|r| r.starts_with("DELETE")),
            "no delete was sent"
        );
    }

    fn delete_denied(method: &str, _: &str) -> Reply {
        match method {
            "HEAD" => (404, vec![], String::new()),
            _ => (
                403,
                vec![],
                "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>".into(),
            ),
        }
    }

    #[tokio::test]
    async fn a_failed_delete_says_delete_and_names_both_objects() {
        let (client, _) = serve(delete_denied).await;
        let failure = delete_object(&S3Clients::one(&client), &delete_request())
            .await
            .unwrap_err();
        assert_eq!(
            failure.to_string(),
            "delete of s3://dst/copies/gone.txt (deleted from s3://src/gone.txt) failed: \
             AccessDenied: Access Denied"
        );
    }

    fn small_source(method: &str, target: &str) -> Reply {
        match method {
            "HEAD" => (
                200,
                vec![
                    ("Content-Length", "3".into()),
                    ("ETag", "\"0123abcd\"".into()),
                ],
                String::new(),
            ),
            _ => copied(method, target),
        }
    }

    #[tokio::test]
    async fn without_a_size_one_conditional_head_decides_the_method() {
        let (client, seen) = serve(small_source).await;
        let sizeless = CopyRequest {
            size: None,
            ..request()
        };
        let later = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let done = copy(
            &S3Clients::one(&client),
            &CopySettings::default(),
            &sizeless,
            later,
        )
        .await
        .unwrap();
        assert_eq!(
            done,
            Copied {
                outcome: CopyOutcome::Copied,
                parts: 0,
                bytes: Some(3)
            }
        );
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "one HEAD, one CopyObject: {seen:?}");
        assert_eq!(header(&seen[0], "if-match"), Some("\"0123abcd\""));
        assert!(seen[1].starts_with("PUT /dst.two/copies/"), "{seen:?}");
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
        let failure = copy_object(&S3Clients::one(&client), &request())
            .await
            .unwrap_err();
        assert_eq!(failure.code, "DispatchFailure");
        assert!(
            failure.message.contains("connect") || failure.message.contains("refused"),
            "{}",
            failure.message
        );
    }
}
