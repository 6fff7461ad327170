//! One server-side copy or delete: which S3 calls a request takes.
//!
//! Up to the multipart threshold (5 GiB, CopyObject's limit, by default),
//! CopyObject: it keeps the source's metadata, Content-Type and tags (COPY
//! directives) and moves no bytes through Lambda. Past it, a multipart copy
//! (see `multipart`). `CopySourceIfMatch` on the event's ETag makes a late
//! event harmless: if the object changed since, S3 answers 412 and the newer
//! write's own event does the copy (the ordering rule is in `plan`).

use aws_sdk_s3::types::{MetadataDirective, Tag, Tagging, TaggingDirective};

use super::continuation::Handoff;
use super::encoding::copy_source;
use super::limits::CopySettings;
use super::multipart::{copy_in_parts, head_if_match, head_source, resume_parts};
use super::plan::{CopyRequest, DeleteRequest, TagsRequest};
use super::s3::{
    Copied, CopyOutcome, DeleteOutcome, Failure, Operation, S3Clients, TagsOutcome,
    deadline_exceeded, failure, source_changed, status,
};

/// How many times a tag change writes the copy's tags before it stops:
/// each write is followed by a read of the source's, and only a source
/// whose tags keep changing needs more than one (each change has its own
/// event, which starts over).
const TAG_ROUNDS: usize = 3;

/// Makes the copy's tags the source's current tags. The source's are read
/// when the event is handled and again after each write, and written again
/// until the two agree: of two events handled at once, the one that writes
/// last has seen the source's latest tags, so an older set never stays.
pub async fn replicate_tags(s3: &S3Clients, request: &TagsRequest) -> Result<TagsOutcome, Failure> {
    let route = &request.route;
    // The object the event names, or none of this event's business.
    let head = head_if_match(
        s3,
        Operation::Tags,
        route,
        &request.options,
        request.if_match.as_deref(),
    )
    .await?;
    if head.is_none() {
        return Ok(TagsOutcome::SourceChanged);
    }
    let mut tags = source_tags(s3, request).await?;
    for _ in 0..TAG_ROUNDS {
        match write_tags(s3, request, &tags).await? {
            Some(()) => {}
            None => return Ok(TagsOutcome::NoCopyYet),
        }
        let now = source_tags(s3, request).await?;
        if now == tags {
            return Ok(TagsOutcome::Replicated);
        }
        tags = now;
    }
    Err(Failure::about(
        Operation::Tags,
        route,
        "TagsKeptChanging",
        &format!(
            "the source's tags changed during each of {TAG_ROUNDS} writes; Lambda's retry \
             writes them again"
        ),
    ))
}

/// Gives the copy exactly `tags`: PutObjectTagging, or DeleteObjectTagging
/// for none (the documented way to remove them all). `None` when the
/// destination has no copy.
async fn write_tags(
    s3: &S3Clients,
    request: &TagsRequest,
    tags: &[(String, String)],
) -> Result<Option<()>, Failure> {
    let route = &request.route;
    let written = if tags.is_empty() {
        s3.destination
            .delete_object_tagging()
            .bucket(&route.destination_bucket)
            .key(&route.destination_key)
            .set_expected_bucket_owner(request.options.owner.clone())
            .send()
            .await
            .map(|_| ())
            .map_err(|err| (status(&err), failure(Operation::Tags, route, &err)))
    } else {
        let tag_set = tags
            .iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| {
                Failure::about(Operation::Tags, route, "InvalidTag", &err.to_string())
            })?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(tag_set))
            .build()
            .map_err(|err| {
                Failure::about(Operation::Tags, route, "InvalidTag", &err.to_string())
            })?;
        s3.destination
            .put_object_tagging()
            .bucket(&route.destination_bucket)
            .key(&route.destination_key)
            .set_expected_bucket_owner(request.options.owner.clone())
            .set_request_payer(request.options.payer())
            .tagging(tagging)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| (status(&err), failure(Operation::Tags, route, &err)))
    };
    match written {
        Ok(()) => Ok(Some(())),
        Err((Some(404), _)) => Ok(None),
        Err((_, failure)) => Err(failure),
    }
}

/// The source's current tags, in S3's order.
async fn source_tags(
    s3: &S3Clients,
    request: &TagsRequest,
) -> Result<Vec<(String, String)>, Failure> {
    let route = &request.route;
    let tags = s3
        .source
        .get_object_tagging()
        .bucket(&route.source_bucket)
        .key(&route.key)
        .set_request_payer(request.options.payer())
        .send()
        .await
        .map_err(|err| failure(Operation::Tags, route, &err))?;
    Ok(tags
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect())
}

/// Copies one object as planned: CopyObject up to the threshold, in parts
/// past it; gives up at `deadline`.
pub async fn copy(
    s3: &S3Clients,
    settings: &CopySettings,
    request: &CopyRequest,
    deadline: tokio::time::Instant,
    handoff: Option<&Handoff>,
) -> Result<Copied, Failure> {
    if let Some(resume) = &request.resume {
        let (outcome, parts) =
            resume_parts(s3, request, resume, settings, deadline, handoff).await?;
        return Ok(Copied {
            outcome,
            parts,
            bytes: request.size,
        });
    }
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
    let (outcome, parts) = copy_in_parts(s3, request, source, settings, deadline, handoff).await?;
    Ok(Copied {
        outcome,
        parts,
        bytes: Some(size),
    })
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
        .bucket(&request.route.source_bucket)
        .key(&request.route.key)
        .set_request_payer(request.options.payer())
        .send()
        .await
    {
        Ok(_) => return Ok(DeleteOutcome::SourceRecreated),
        Err(err) if status(&err) == Some(404) => {}
        Err(err) => return Err(failure(Operation::Delete, &request.route, &err)),
    }
    s3.destination
        .delete_object()
        .bucket(&request.route.destination_bucket)
        .key(&request.route.destination_key)
        .set_expected_bucket_owner(request.options.owner.clone())
        .set_request_payer(request.options.payer())
        .send()
        .await
        .map(|_| DeleteOutcome::Deleted)
        .map_err(|err| failure(Operation::Delete, &request.route, &err))
}

/// Copies one object with CopyObject: the source's current object, on
/// condition that it is still the event's (see `plan` for the ordering rule).
pub async fn copy_object(s3: &S3Clients, request: &CopyRequest) -> Result<CopyOutcome, Failure> {
    let mut call = s3
        .destination
        .copy_object()
        .bucket(&request.route.destination_bucket)
        .key(&request.route.destination_key)
        .copy_source(copy_source(
            &request.route.source_bucket,
            &request.route.key,
        ))
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
        Err(err) => Err(failure(Operation::Copy, &request.route, &err)),
    }
}

#[cfg(test)]
mod tests {
    //! The copy layer against the in-process S3 of `test_s3`: moto ignores
    //! `x-amz-copy-source-if-match`, so the 412 path is shown here.

    use super::*;
    use crate::handler::plan::{Route, S3Options};
    use crate::handler::s3::kms_advice;
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
            route: Route {
                source_bucket: "src".into(),
                key: "dir/a b+é.txt".into(),
                destination_bucket: "dst.two".into(),
                destination_key: "copies/dir/a b+é.txt".into(),
            },
            options: Default::default(),
            version_id: Some("v1".into()),
            if_match: Some("0123abcd".into()),
            size: Some(3),
            event_time_ms: None,
            resume: None,
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
            route: Route {
                source_bucket: "src".into(),
                key: "gone.txt".into(),
                destination_bucket: "dst".into(),
                destination_key: "copies/gone.txt".into(),
            },
            options: Default::default(),
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
            None,
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
