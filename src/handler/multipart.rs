//! Copies past CopyObject's 5 GB limit: CreateMultipartUpload, UploadPartCopy
//! of byte ranges with bounded concurrency, CompleteMultipartUpload.
//!
//! A multipart upload does not copy what CopyObject would, so this carries it
//! over itself: Content-Type, -Encoding, -Disposition, -Language,
//! Cache-Control, Expires and user metadata (from HeadObject) and the tags
//! (GetObjectTagging). On any failure the upload is aborted, so no orphan
//! parts are left to be billed.

use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::stream::{self, StreamExt, TryStreamExt};
use tokio::time::Instant;

use super::continuation::{Continuation, Handoff};
use super::encoding::{copy_source, tagging_header};
use super::limits::{CopySettings, MAX_PART, MAX_PARTS, MIN_PART};
use super::plan::{CopyRequest, Resume, Route, S3Options};
use super::s3::{
    CopyOutcome, Failure, Operation, S3Clients, deadline_exceeded, failure, source_changed, status,
};

/// One part: its number (from 1) and inclusive byte range in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub number: i32,
    pub first: u64,
    pub last: u64,
}

/// Splits `size` bytes into parts of `preferred` bytes, grown where needed so
/// that there are at most 10,000, and never under 5 MiB (but the last).
pub fn part_plan(size: u64, preferred: u64) -> Vec<Part> {
    let part = part_size(size, preferred);
    let mut parts = Vec::new();
    let mut first = 0;
    while first < size {
        let last = (first + part).min(size) - 1;
        parts.push(Part {
            number: parts.len() as i32 + 1,
            first,
            last,
        });
        first = last + 1;
    }
    parts
}

/// How many parts [`part_plan`] makes of `size` bytes, without making them
/// (for the cost of a copy).
pub fn part_count(size: u64, preferred: u64) -> u64 {
    size.div_ceil(part_size(size, preferred))
}

fn part_size(size: u64, preferred: u64) -> u64 {
    preferred
        .max(MIN_PART)
        .max(size.div_ceil(MAX_PARTS))
        .min(MAX_PART)
}

/// What the source carries that a multipart upload must be given.
pub struct SourceObject {
    pub size: u64,
    etag: Option<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<aws_smithy_types::DateTime>,
    metadata: Option<std::collections::HashMap<String, String>>,
}

/// HeadObject of the source's current object; `None` when it no longer
/// matches the event's ETag or is gone.
pub async fn head_source(
    s3: &S3Clients,
    request: &CopyRequest,
) -> Result<Option<SourceObject>, Failure> {
    let Some(head) = head_if_match(
        s3,
        Operation::Copy,
        &request.route,
        &request.options,
        request.if_match.as_deref(),
    )
    .await?
    else {
        return Ok(None);
    };
    let size = head
        .content_length()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| {
            Failure::about(
                Operation::Copy,
                &request.route,
                "HeadObject",
                "S3 returned no Content-Length",
            )
        })?;
    Ok(Some(SourceObject {
        size,
        etag: head.e_tag().map(|e| e.trim_matches('"').to_owned()),
        content_type: head.content_type,
        content_encoding: head.content_encoding,
        content_disposition: head.content_disposition,
        content_language: head.content_language,
        cache_control: head.cache_control,
        // CreateMultipartUpload takes a date: an Expires that is not an
        // HTTP date (S3 stores any string) cannot be carried over.
        expires: head.expires_string.as_deref().and_then(|text| {
            aws_smithy_types::DateTime::from_str(
                text,
                aws_smithy_types::date_time::Format::HttpDate,
            )
            .ok()
        }),
        metadata: head.metadata,
    }))
}

/// Copies the `source` of `request` in parts, giving up (and aborting) at
/// `deadline`; with a `handoff` (in the function), handing the rest on to
/// a fresh invocation before then instead.
pub async fn copy_in_parts(
    s3: &S3Clients,
    request: &CopyRequest,
    source: SourceObject,
    settings: &CopySettings,
    deadline: Instant,
    handoff: Option<&Handoff>,
) -> Result<(CopyOutcome, usize), Failure> {
    // Every request is made only while the source still has the ETag read
    // by HeadObject: a write in the middle fails the copy instead of mixing
    // versions.
    let if_match = source.etag.clone().or_else(|| request.if_match.clone());
    let tags = s3
        .source
        .get_object_tagging()
        .bucket(&request.route.source_bucket)
        .set_request_payer(request.options.payer())
        .key(&request.route.key)
        .send()
        .await
        .map_err(|err| failure(Operation::Copy, &request.route, &err))?;
    let tagging = tagging_header(tags.tag_set().iter().map(|t| (t.key(), t.value())));
    let size = source.size;
    let created = s3
        .destination
        .create_multipart_upload()
        .bucket(&request.route.destination_bucket)
        .key(&request.route.destination_key)
        .set_storage_class(request.options.class())
        .set_server_side_encryption(request.options.encryption())
        .set_ssekms_key_id(request.options.kms_key.clone())
        .set_acl(request.options.acl())
        .set_expected_bucket_owner(request.options.owner.clone())
        .set_request_payer(request.options.payer())
        .set_content_type(source.content_type)
        .set_content_encoding(source.content_encoding)
        .set_content_disposition(source.content_disposition)
        .set_content_language(source.content_language)
        .set_cache_control(source.cache_control)
        .set_expires(source.expires)
        .set_metadata(source.metadata)
        .set_tagging((!tagging.is_empty()).then_some(tagging))
        .send()
        .await
        .map_err(|err| failure(Operation::Copy, &request.route, &err))?;
    let Some(upload_id) = created.upload_id().map(str::to_owned) else {
        return Err(Failure::about(
            Operation::Copy,
            &request.route,
            "CreateMultipartUpload",
            "S3 returned no UploadId",
        ));
    };
    let upload = Upload {
        resume: Resume {
            upload_id,
            part_size: settings.part_size,
            hops: 0,
        },
        size,
        if_match,
    };
    finish_parts(
        s3,
        request,
        &upload,
        Vec::new(),
        settings,
        deadline,
        handoff,
    )
    .await
}

/// Goes on with a multipart copy an earlier invocation handed on: the parts
/// S3 has (ListParts) are kept, the others copied.
pub async fn resume_parts(
    s3: &S3Clients,
    request: &CopyRequest,
    resume: &Resume,
    settings: &CopySettings,
    deadline: Instant,
    handoff: Option<&Handoff>,
) -> Result<(CopyOutcome, usize), Failure> {
    let upload = Upload {
        resume: resume.clone(),
        size: request.size.unwrap_or(0),
        if_match: request.if_match.clone(),
    };
    let listed = tokio::time::timeout_at(deadline, done_parts(s3, request, &resume.upload_id))
        .await
        .unwrap_or_else(|_| Err(deadline_exceeded(request)));
    match listed {
        Ok(done) => finish_parts(s3, request, &upload, done, settings, deadline, handoff).await,
        Err(err) => abort(s3, request, &resume.upload_id, Interrupted::Failed(err), 0).await,
    }
}

/// One multipart upload of a copy: where it is, how big the object, and
/// the source ETag its parts are copied under.
struct Upload {
    resume: Resume,
    size: u64,
    if_match: Option<String>,
}

/// The parts of `upload_id` S3 has, as completed parts.
async fn done_parts(
    s3: &S3Clients,
    request: &CopyRequest,
    upload_id: &str,
) -> Result<Vec<CompletedPart>, Failure> {
    let mut done = Vec::new();
    let mut pages = s3
        .destination
        .list_parts()
        .bucket(&request.route.destination_bucket)
        .key(&request.route.destination_key)
        .set_expected_bucket_owner(request.options.owner.clone())
        .set_request_payer(request.options.payer())
        .upload_id(upload_id)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| failure(Operation::Copy, &request.route, &err))?;
        for part in page.parts() {
            if let (Some(number), Some(etag)) = (part.part_number(), part.e_tag()) {
                done.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .e_tag(etag)
                        .build(),
                );
            }
        }
    }
    Ok(done)
}

/// Copies the parts of `upload` not in `done`, then completes it; or, with
/// a `handoff`, stops starting parts in the last fifth of the time left
/// (or after `S3FAN_PARTS_PER_INVOCATION`, for tests) and hands the rest
/// on. Aborts on failure and when the source changed.
async fn finish_parts(
    s3: &S3Clients,
    request: &CopyRequest,
    upload: &Upload,
    mut done: Vec<CompletedPart>,
    settings: &CopySettings,
    deadline: Instant,
    handoff: Option<&Handoff>,
) -> Result<(CopyOutcome, usize), Failure> {
    let upload_id = &upload.resume.upload_id;
    let if_match = upload.if_match.as_deref();
    let parts = part_plan(upload.size, upload.resume.part_size);
    let count = parts.len();
    let todo: Vec<Part> = parts
        .into_iter()
        .filter(|part| !done.iter().any(|d| d.part_number() == Some(part.number)))
        .collect();
    let now = Instant::now();
    let stop_starting = match handoff {
        Some(_) => now + deadline.saturating_duration_since(now).mul_f64(0.8),
        None => deadline,
    };
    let cap = match handoff {
        Some(_) => settings.parts_per_invocation.unwrap_or(usize::MAX),
        None => usize::MAX,
    };
    let copying = async {
        let copied = stream::iter(todo.into_iter().take(cap))
            .take_while(|_| std::future::ready(Instant::now() < stop_starting))
            .map(|part| copy_part(s3, request, upload_id, if_match, part))
            .buffer_unordered(settings.concurrency.max(1))
            .try_collect::<Vec<CompletedPart>>()
            .await?;
        done.extend(copied);
        // The parts are all from the event's object; if the source changed
        // since the last of them, a newer event copies the newer object, and
        // completing (or handing on) this one could land after it.
        if !still_matches(s3, request, if_match).await? {
            return Err(Interrupted::SourceChanged);
        }
        done.sort_by_key(|p| p.part_number());
        Ok(std::mem::take(&mut done))
    };
    let copied = tokio::time::timeout_at(deadline, copying)
        .await
        .unwrap_or_else(|_| Err(deadline_exceeded(request).into()));
    let completed = match copied {
        Ok(completed) => completed,
        Err(interrupted) => return abort(s3, request, upload_id, interrupted, count).await,
    };
    if completed.len() < count {
        // Stopped early, with a handoff: the next invocation goes on.
        let rest = Resume {
            hops: upload.resume.hops + 1,
            ..upload.resume.clone()
        };
        let etag = if_match.unwrap_or_default();
        let continuation = Continuation::of(request, etag, upload.size, rest);
        let handed = match handoff {
            Some(handoff) => handoff.hand_over(&continuation).await,
            None => Err("no way to hand the copy on".to_owned()),
        };
        return match handed {
            Ok(()) => Ok((CopyOutcome::Continued, completed.len())),
            Err(reason) => {
                let err = Failure::about(Operation::Copy, &request.route, "HandOffFailed", &reason);
                abort(s3, request, upload_id, Interrupted::Failed(err), count).await
            }
        };
    }
    let finished = s3
        .destination
        .complete_multipart_upload()
        .bucket(&request.route.destination_bucket)
        .key(&request.route.destination_key)
        .set_expected_bucket_owner(request.options.owner.clone())
        .set_request_payer(request.options.payer())
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await;
    match finished {
        Ok(_) => Ok((CopyOutcome::Copied, count)),
        Err(err) => {
            let err = failure(Operation::Copy, &request.route, &err);
            abort(s3, request, upload_id, Interrupted::Failed(err), count).await
        }
    }
}

/// Aborts `upload_id` after `interrupted`, so no parts are left to be
/// billed; a source that changed is no failure.
async fn abort(
    s3: &S3Clients,
    request: &CopyRequest,
    upload_id: &str,
    interrupted: Interrupted,
    count: usize,
) -> Result<(CopyOutcome, usize), Failure> {
    let aborted = s3
        .destination
        .abort_multipart_upload()
        .bucket(&request.route.destination_bucket)
        .key(&request.route.destination_key)
        .set_expected_bucket_owner(request.options.owner.clone())
        .set_request_payer(request.options.payer())
        .upload_id(upload_id)
        .send()
        .await;
    match (interrupted, aborted) {
        (Interrupted::SourceChanged, Ok(_)) => Ok((CopyOutcome::SourceChanged, count)),
        (Interrupted::Failed(err), Ok(_)) => Err(err),
        (interrupted, Err(abort)) => {
            let err = match interrupted {
                Interrupted::Failed(err) => err,
                Interrupted::SourceChanged => Failure::about(
                    Operation::Copy,
                    &request.route,
                    "PreconditionFailed",
                    "the source changed before the copy completed",
                ),
            };
            let abort = failure(Operation::Copy, &request.route, &abort);
            Err(Failure {
                message: format!(
                    "{}; and aborting multipart upload {upload_id} failed too ({}: {}), \
                     so its parts remain until a lifecycle rule or a retry removes them",
                    err.message, abort.code, abort.message
                ),
                ..err
            })
        }
    }
}

/// Why the parts stopped before the upload could be completed. A source
/// that changed is no failure: the newer write's own event copies it.
enum Interrupted {
    SourceChanged,
    Failed(Failure),
}

impl From<Failure> for Interrupted {
    fn from(failure: Failure) -> Interrupted {
        Interrupted::Failed(failure)
    }
}

/// Whether the source still has the ETag the parts were copied under.
async fn still_matches(
    s3: &S3Clients,
    request: &CopyRequest,
    if_match: Option<&str>,
) -> Result<bool, Failure> {
    let Some(etag) = if_match else {
        return Ok(true);
    };
    let head = head_if_match(
        s3,
        Operation::Copy,
        &request.route,
        &request.options,
        Some(etag),
    )
    .await?;
    Ok(head.is_some())
}

/// HeadObject of the source, on condition that it has the ETag `if_match`
/// when given; `None` when it has another or is gone (412 or 404). Also
/// how a tag change checks the object is still the event's.
pub(super) async fn head_if_match(
    s3: &S3Clients,
    operation: Operation,
    route: &Route,
    options: &S3Options,
    if_match: Option<&str>,
) -> Result<Option<HeadObjectOutput>, Failure> {
    let head = s3
        .source
        .head_object()
        .bucket(&route.source_bucket)
        .key(&route.key)
        .set_request_payer(options.payer())
        .set_if_match(if_match.map(|etag| format!("\"{etag}\"")))
        .send()
        .await;
    match head {
        Ok(head) => Ok(Some(head)),
        Err(err) if matches!(status(&err), Some(404 | 412)) => Ok(None),
        Err(err) => Err(failure(operation, route, &err)),
    }
}

async fn copy_part(
    s3: &S3Clients,
    request: &CopyRequest,
    upload_id: &str,
    if_match: Option<&str>,
    part: Part,
) -> Result<CompletedPart, Interrupted> {
    let copied = s3
        .destination
        .upload_part_copy()
        .bucket(&request.route.destination_bucket)
        .key(&request.route.destination_key)
        .set_expected_bucket_owner(request.options.owner.clone())
        .set_request_payer(request.options.payer())
        .upload_id(upload_id)
        .part_number(part.number)
        .copy_source(copy_source(
            &request.route.source_bucket,
            &request.route.key,
        ))
        .copy_source_range(format!("bytes={}-{}", part.first, part.last))
        .set_copy_source_if_match(if_match.map(|etag| format!("\"{etag}\"")))
        .send()
        .await
        .map_err(|err| {
            if source_changed(&err) {
                Interrupted::SourceChanged
            } else {
                Interrupted::Failed(failure(Operation::Copy, &request.route, &err))
            }
        })?;
    let etag = copied
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .ok_or_else(|| {
            Failure::about(
                Operation::Copy,
                &request.route,
                "UploadPartCopy",
                &format!("S3 returned no ETag for part {}", part.number),
            )
        })?;
    Ok(CompletedPart::builder()
        .part_number(part.number)
        .e_tag(etag)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::limits::{GIB, MIB};
    use crate::handler::plan::Route;
    use crate::test_endpoint::{Reply, header, serve};

    const TIB: u64 = 1024 * GIB;

    /// Contiguous, complete, numbered from 1, within S3's limits.
    fn assert_valid(size: u64, parts: &[Part]) {
        assert!(
            parts.len() as u64 <= MAX_PARTS,
            "{size}: {} parts",
            parts.len()
        );
        let mut next = 0;
        for (index, part) in parts.iter().enumerate() {
            assert_eq!(part.number as usize, index + 1);
            assert_eq!(part.first, next, "{size}: gap before part {}", part.number);
            let length = part.last - part.first + 1;
            assert!(
                length <= MAX_PART,
                "{size}: part {} is {length}",
                part.number
            );
            if index + 1 < parts.len() {
                assert!(
                    length >= MIN_PART,
                    "{size}: part {} is {length}",
                    part.number
                );
            }
            next = part.last + 1;
        }
        assert_eq!(next, size, "{size}: parts cover every byte");
    }

    #[test]
    fn part_plans_at_the_edges() {
        let preferred = 256 * MIB;
        assert_eq!(part_plan(0, preferred), vec![]);
        assert_eq!(
            part_plan(1, preferred),
            vec![Part {
                number: 1,
                first: 0,
                last: 0
            }]
        );
        assert_eq!(part_plan(5 * MIB, preferred).len(), 1);
        assert_eq!(part_plan(5 * GIB, preferred).len(), 20);
        assert_eq!(part_plan(5 * GIB + 1, preferred).len(), 21);
        assert_eq!(
            part_plan(5 * GIB + 1, preferred)[20],
            Part {
                number: 21,
                first: 5 * GIB,
                last: 5 * GIB
            }
        );
        for size in [0, 1, 5 * MIB, 5 * GIB, 5 * GIB + 1, 5 * TIB, 23 * MIB] {
            assert_valid(size, &part_plan(size, preferred));
        }
    }

    #[test]
    fn the_part_count_is_the_length_of_the_plan() {
        for preferred in [1, MIN_PART, 128 * MIB, 6 * GIB] {
            for size in [0, 1, 5 * MIB, 5 * MIB + 1, 5 * GIB + 1, 23 * MIB, 5 * TIB] {
                assert_eq!(
                    part_count(size, preferred),
                    part_plan(size, preferred).len() as u64,
                    "{size} bytes in parts of {preferred}"
                );
            }
        }
    }

    #[test]
    fn part_size_grows_to_stay_under_ten_thousand_parts() {
        // 5 TiB in 5 MiB parts would be 1,048,576 parts.
        let parts = part_plan(5 * TIB, MIN_PART);
        assert_eq!(parts.len(), 10_000);
        assert_valid(5 * TIB, &parts);
    }

    #[test]
    fn parts_never_go_under_five_mib() {
        let parts = part_plan(23 * MIB, 1);
        assert_eq!(parts.len(), 5);
        assert_eq!(parts[4].last - parts[4].first + 1, 3 * MIB);
        assert_valid(23 * MIB, &parts);
    }

    fn later() -> Instant {
        Instant::now() + std::time::Duration::from_secs(60)
    }

    fn request() -> CopyRequest {
        CopyRequest {
            route: Route {
                source_bucket: "src".into(),
                key: "big.bin".into(),
                destination_bucket: "dst".into(),
                destination_key: "big.bin".into(),
            },
            options: Default::default(),
            version_id: None,
            if_match: Some("abc".into()),
            size: Some(23 * MIB),
            event_time_ms: None,
            resume: None,
        }
    }

    fn source() -> SourceObject {
        SourceObject {
            size: 23 * MIB,
            etag: Some("abc".into()),
            content_type: Some("application/x-big".into()),
            content_encoding: None,
            content_disposition: None,
            content_language: None,
            cache_control: None,
            expires: None,
            metadata: None,
        }
    }

    fn settings(concurrency: usize) -> CopySettings {
        CopySettings {
            multipart_threshold: MIN_PART,
            part_size: MIN_PART,
            concurrency,
            reconcile_slice: None,
            parts_per_invocation: None,
        }
    }

    /// Part 3 is refused; everything else works.
    fn part_three_fails(method: &str, target: &str) -> Reply {
        match method {
            "HEAD" => (
                200,
                vec![("Content-Length", (23 * MIB).to_string()), ("ETag", "\"abc\"".into()), ("Content-Type", "application/x-big".into())],
                String::new(),
            ),
            "GET" if target.contains("tagging") => (200, vec![], "<Tagging><TagSet></TagSet></Tagging>".into()),
            "POST" if target.contains("uploads") => (
                200,
                vec![],
                "<InitiateMultipartUploadResult><Bucket>dst</Bucket><Key>big.bin</Key><UploadId>U1</UploadId></InitiateMultipartUploadResult>".into(),
            ),
            "PUT" if target.contains("partNumber=3") => (
                403,
                vec![],
                "<Error><Code>AccessDenied</Code><Message>no part three for you</Message></Error>".into(),
            ),
            "PUT" => (200, vec![], "<CopyPartResult><ETag>\"p\"</ETag></CopyPartResult>".into()),
            "DELETE" => (204, vec![], String::new()),
            _ => (500, vec![], "<Error><Code>Unexpected</Code><Message>unscripted</Message></Error>".into()),
        }
    }

    #[tokio::test]
    async fn a_failed_part_aborts_the_upload_and_never_completes_it() {
        let (client, seen) = serve(part_three_fails).await;
        let failure = copy_in_parts(
            &S3Clients::one(&client),
            &request(),
            source(),
            &settings(2),
            later(),
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(failure.code, "AccessDenied");
        assert!(failure.message.contains("no part three"), "{failure}");
        let seen = seen.lock().unwrap().clone();
        let aborted =
            |r: &&String| r.starts_with("DELETE /dst/big.bin?") && r.contains("uploadId=U1");
        assert_eq!(
            seen.iter().filter(aborted).count(),
            1,
            "aborted once: {seen:?}"
        );
        let completed =
            |r: &&String| r.starts_with("POST /dst/big.bin?") && r.contains("uploadId=U1");
        assert_eq!(
            seen.iter().filter(completed).count(),
            0,
            "never completed: {seen:?}"
        );
    }

    fn all_parts_succeed(method: &str, target: &str) -> Reply {
        match method {
            "POST" if target.contains("uploadId=U1") => (
                200,
                vec![],
                "<CompleteMultipartUploadResult><Bucket>dst</Bucket><Key>big.bin</Key><ETag>\"x-5\"</ETag></CompleteMultipartUploadResult>".into(),
            ),
            "PUT" => (200, vec![], "<CopyPartResult><ETag>\"p\"</ETag></CopyPartResult>".into()),
            _ => part_three_fails(method, target),
        }
    }

    #[tokio::test]
    async fn parts_carry_the_storage_class_and_requester_pays() {
        let (client, seen) = serve(all_parts_succeed).await;
        let archived = CopyRequest {
            options: crate::handler::plan::S3Options {
                storage_class: Some("STANDARD_IA".into()),
                kms_key: Some("alias/backups".into()),
                owner: Some("210987654321".into()),
                request_payer: true,
            },
            ..request()
        };
        copy_in_parts(
            &S3Clients::one(&client),
            &archived,
            source(),
            &settings(3),
            later(),
            None,
        )
        .await
        .unwrap();
        let seen = seen.lock().unwrap().clone();
        let created = seen
            .iter()
            .find(|r| r.starts_with("POST /dst/big.bin?uploads"))
            .expect("CreateMultipartUpload");
        assert_eq!(header(created, "x-amz-storage-class"), Some("STANDARD_IA"));
        assert_eq!(
            header(created, "x-amz-server-side-encryption-aws-kms-key-id"),
            Some("alias/backups")
        );
        assert_eq!(
            header(created, "x-amz-acl"),
            Some("bucket-owner-full-control")
        );
        // Every request of the upload says who pays, and whose bucket it is.
        for request in &seen {
            if !request.starts_with("HEAD") && !request.starts_with("GET") {
                assert_eq!(
                    header(request, "x-amz-expected-bucket-owner"),
                    Some("210987654321"),
                    "{request}"
                );
            }
            assert_eq!(
                header(request, "x-amz-request-payer"),
                Some("requester"),
                "{request}"
            );
        }
    }

    #[tokio::test]
    async fn every_part_is_a_ranged_conditional_copy() {
        let (client, seen) = serve(all_parts_succeed).await;
        let done = copy_in_parts(
            &S3Clients::one(&client),
            &request(),
            source(),
            &settings(3),
            later(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(done, (CopyOutcome::Copied, 5));
        let seen = seen.lock().unwrap().clone();
        let parts: Vec<&String> = seen.iter().filter(|r| r.starts_with("PUT ")).collect();
        assert_eq!(parts.len(), 5, "{seen:?}");
        assert!(
            seen.iter()
                .any(|r| r.starts_with("POST /dst/big.bin?uploadId=U1")),
            "completed: {seen:?}"
        );
        assert!(
            !seen.iter().any(|r| r.starts_with("DELETE")),
            "not aborted: {seen:?}"
        );
    }

    /// Parts answer after 5 s.
    fn parts_are_slow(method: &str, target: &str) -> Reply {
        match method {
            "PUT" => (
                200,
                vec![("x-test-delay-ms", "5000".into())],
                "<CopyPartResult><ETag>\"p\"</ETag></CopyPartResult>".into(),
            ),
            _ => part_three_fails(method, target),
        }
    }

    #[tokio::test]
    async fn a_copy_that_outlasts_its_deadline_fails_and_aborts() {
        let (client, seen) = serve(parts_are_slow).await;
        let deadline = Instant::now() + std::time::Duration::from_millis(300);
        let failure = copy_in_parts(
            &S3Clients::one(&client),
            &request(),
            source(),
            &settings(2),
            deadline,
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(failure.code, "DeadlineExceeded");
        assert!(failure.message.contains("--timeout"), "{failure}");
        let seen = seen.lock().unwrap().clone();
        assert!(
            seen.iter()
                .any(|r| r.starts_with("DELETE /dst/big.bin?") && r.contains("uploadId=U1")),
            "aborted: {seen:?}"
        );
        assert!(
            Instant::now() < deadline + std::time::Duration::from_secs(4),
            "gave up at the deadline, not after the parts"
        );
    }

    #[test]
    fn tags_are_form_encoded() {
        let tags = [("team", "media & film"), ("é", "a=b")];
        assert_eq!(
            tagging_header(tags.into_iter()),
            "team=media%20%26%20film&%C3%A9=a%3Db"
        );
    }
}
