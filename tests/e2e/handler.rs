//! End to end: the release binary as the Lambda function, behind the real
//! Lambda Runtime API protocol, against moto. PutObject on the source ->
//! S3 notification -> SNS -> one function per destination -> CopyObject.

use std::collections::HashMap;

use crate::common::{Clients, Invocation, function_name_for, local_aws, unique};
use aws_sdk_lambda::primitives::Blob;
use serde_json::{Value, json};

/// Keys that break naive handlers: form encoding, percent signs, unicode,
/// nesting.
const AWKWARD_KEYS: &[&str] = &[
    "plain.txt",
    "with space.txt",
    "a+b.txt",
    "100%.txt",
    "café.txt",
    "日本/語 ファイル.txt",
    "a/b/c/deep.txt",
    "(x) & =y?.txt",
];

fn body_for(key: &str) -> Vec<u8> {
    format!("contents of {key}\n").into_bytes()
}

async fn assert_replicated(clients: &Clients, source: &str, destinations: &[String], key: &str) {
    let original = clients
        .get(source, key)
        .await
        .unwrap_or_else(|| panic!("source object {key:?} missing"));
    for destination in destinations {
        let copy = clients
            .get(destination, key)
            .await
            .unwrap_or_else(|| panic!("{key:?} was not copied to {destination}"));
        assert_eq!(
            copy.bytes.len(),
            original.bytes.len(),
            "{key:?} in {destination}: size"
        );
        assert!(
            copy.bytes == original.bytes,
            "{key:?} in {destination}: bytes differ"
        );
        assert_eq!(
            copy.content_type, original.content_type,
            "{key:?} in {destination}"
        );
        assert_eq!(copy.metadata, original.metadata, "{key:?} in {destination}");
    }
}

fn invocations_of(function: &str) -> Vec<Invocation> {
    local_aws()
        .invocations()
        .into_iter()
        .filter(|i| i.function == function)
        .collect()
}

fn sns_message(invocation: &Invocation) -> String {
    invocation.event["Records"][0]["Sns"]["Message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_objects_reach_every_destination_through_sns() {
    let started = std::time::Instant::now();
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src");
    // One destination with a dot: its function name cannot be the bucket name.
    let destinations = vec![unique("dst-a"), unique("dst.b")];
    clients.wire_fanout(&source, &destinations).await;

    for (index, key) in AWKWARD_KEYS.iter().enumerate() {
        let index = index.to_string();
        clients
            .put(
                &source,
                key,
                body_for(key),
                "text/plain; charset=utf-8",
                &[("index", &index), ("origin", "e2e")],
            )
            .await;
    }
    clients
        .put(
            &source,
            "empty.bin",
            Vec::new(),
            "application/octet-stream",
            &[],
        )
        .await;
    let large: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    clients
        .put(
            &source,
            "large/20MB.bin",
            large,
            "application/x-test",
            &[("size", "20MiB")],
        )
        .await;
    aws.drain();

    for key in AWKWARD_KEYS
        .iter()
        .copied()
        .chain(["empty.bin", "large/20MB.bin"])
    {
        assert_replicated(&clients, &source, &destinations, key).await;
    }

    // Every invocation the puts caused ran our binary and succeeded; the
    // structured log has one line per record.
    for destination in &destinations {
        let invocations = invocations_of(&function_name_for(destination));
        let copies: Vec<&Invocation> = invocations
            .iter()
            .filter(|i| sns_message(i).contains("ObjectCreated"))
            .collect();
        assert_eq!(
            copies.len(),
            AWKWARD_KEYS.len() + 2,
            "one invocation per object for {destination}"
        );
        for invocation in &copies {
            assert!(!invocation.is_error, "{invocation:?}");
            let lines = invocation.log_lines();
            let line = lines
                .iter()
                .find(|l| l["outcome"] == "copied")
                .unwrap_or_else(|| panic!("no copied line in {}", invocation.logs));
            assert_eq!(line["bucket"], json!(source));
            assert_eq!(line["destination"], json!(destination));
            for field in ["key", "bytes", "duration_ms", "request_id"] {
                assert!(!line[field].is_null(), "log line lacks {field}: {line}");
            }
            // From the write (the event's eventTime) to the copy: never
            // negative, never longer than this test has run.
            let latency = line["replication_latency_ms"]
                .as_u64()
                .unwrap_or_else(|| panic!("no replication_latency_ms in {line}"));
            assert!(
                u128::from(latency) <= started.elapsed().as_millis(),
                "{latency} ms: {line}"
            );
        }
        let large_line = copies
            .iter()
            .flat_map(|i| i.log_lines())
            .find(|l| l["key"] == "large/20MB.bin")
            .expect("a log line for the large object");
        assert_eq!(large_line["bytes"], json!(20 * 1024 * 1024));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_event_is_logged_and_succeeds() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-test-event");
    let destination = unique("dst-test-event");
    clients
        .wire_fanout(&source, std::slice::from_ref(&destination))
        .await;
    aws.drain();

    let invocations = invocations_of(&function_name_for(&destination));
    let test_events: Vec<&Invocation> = invocations
        .iter()
        .filter(|i| sns_message(i).contains("s3:TestEvent"))
        .collect();
    assert_eq!(test_events.len(), 1, "{invocations:?}");
    let invocation = test_events[0];
    assert!(!invocation.is_error, "{invocation:?}");
    let result: Value =
        serde_json::from_str(invocation.result.as_deref().unwrap_or("")).expect("JSON result");
    assert_eq!(
        result,
        json!({"copied": 0, "source_changed": 0, "skipped": 1})
    );
    assert!(
        invocation
            .log_lines()
            .iter()
            .any(|l| l["outcome"] == "skipped"
                && l["notice"].as_str().is_some_and(|n| n.contains(&source))),
        "{}",
        invocation.logs
    );
}

/// A bare S3 event, as S3 sends it when it invokes a function directly.
fn s3_event(bucket: &str, records: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|(event_name, encoded_key)| {
            json!({
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventName": event_name,
                "userIdentity": {"principalId": "EXAMPLE"},
                "s3": {"bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
                       "object": {"key": encoded_key, "size": 1}}
            })
        })
        .collect();
    json!({ "Records": records })
}

async fn invoke(clients: &Clients, function: &str, payload: &Value) -> (Option<String>, Value) {
    let response = clients
        .lambda
        .invoke()
        .function_name(function)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .expect("invoke");
    let body = response
        .payload()
        .map(|b| b.as_ref().to_vec())
        .unwrap_or_default();
    let value =
        serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
    (response.function_error().map(str::to_owned), value)
}

/// A source without notifications and one destination function, for events
/// invoked by hand.
async fn direct_setup(clients: &Clients) -> (String, String, String) {
    let source = unique("src-direct");
    let destination = unique("dst.direct");
    clients.create_bucket(&source).await;
    clients.create_bucket(&destination).await;
    let function = function_name_for(&destination);
    clients.create_function(&function, &destination).await;
    (source, destination, function)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_of_a_directly_invoked_event_is_copied() {
    let clients = local_aws().clients().await;
    let (source, destination, function) = direct_setup(&clients).await;
    for key in ["one.txt", "two words.txt", "三.txt"] {
        clients
            .put(&source, key, body_for(key), "text/plain", &[("k", key)])
            .await;
    }
    let event = s3_event(
        &source,
        &[
            ("ObjectCreated:Put", "one.txt"),
            ("ObjectCreated:Copy", "two+words.txt"),
            ("ObjectCreated:CompleteMultipartUpload", "%E4%B8%89.txt"),
            ("ObjectRemoved:Delete", "not-copied.txt"),
        ],
    );
    let (error, result) = invoke(&clients, &function, &event).await;
    assert_eq!(error, None, "{result}");
    assert_eq!(
        result,
        json!({"copied": 3, "source_changed": 0, "skipped": 1})
    );
    for key in ["one.txt", "two words.txt", "三.txt"] {
        assert_replicated(&clients, &source, std::slice::from_ref(&destination), key).await;
    }
    assert_eq!(clients.get(&destination, "not-copied.txt").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_event_gets_a_clear_error_not_a_crash() {
    let clients = local_aws().clients().await;
    let (_, _, function) = direct_setup(&clients).await;

    let (error, result) = invoke(&clients, &function, &json!({"hello": "world"})).await;
    assert!(
        error.is_some(),
        "a malformed event must fail the invocation: {result}"
    );
    assert_eq!(result["errorType"], "S3fan.UnrecognisedEvent", "{result}");
    let message = result["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("keys [hello]"), "{message}");

    // The original parsed the SNS message as a Python literal; we want JSON.
    let python_literal =
        json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{'Records': []}"}}]});
    let (error, result) = invoke(&clients, &function, &python_literal).await;
    assert!(error.is_some(), "{result}");
    assert_eq!(result["errorType"], "S3fan.ReplicationFailed", "{result}");
    assert!(
        result["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("not JSON"),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_record_is_reported_after_the_other_records() {
    let clients = local_aws().clients().await;
    let (source, destination, function) = direct_setup(&clients).await;
    clients
        .put(&source, "stays.txt", b"y".to_vec(), "text/plain", &[])
        .await;
    let missing_bucket = unique("src-never-made");
    let mut event = s3_event(&missing_bucket, &[("ObjectCreated:Put", "lost+one.txt")]);
    let good = s3_event(&source, &[("ObjectCreated:Put", "stays.txt")]);
    event["Records"]
        .as_array_mut()
        .expect("records")
        .push(good["Records"][0].clone());

    let (error, result) = invoke(&clients, &function, &event).await;
    assert!(
        error.is_some(),
        "the failed copy must fail the invocation: {result}"
    );
    assert_eq!(result["errorType"], "S3fan.ReplicationFailed");
    let message = result["errorMessage"].as_str().unwrap_or_default();
    for expected in [
        "1 of 2 records failed",
        &format!("copy of s3://{missing_bucket}/lost one.txt"),
        &format!("to s3://{destination}/lost one.txt"),
        "NoSuchBucket",
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?}"
        );
    }
    // The other record was still attempted, and copied.
    assert_replicated(
        &clients,
        &source,
        std::slice::from_ref(&destination),
        "stays.txt",
    )
    .await;

    let invocation = invocations_of(&function).pop().expect("an invocation");
    let failed: Vec<Value> = invocation
        .log_lines()
        .into_iter()
        .filter(|l| l["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{}", invocation.logs);
    assert_eq!(failed[0]["error_code"], "NoSuchBucket");
    assert_eq!(failed[0]["key"], "lost one.txt");
}

/// An S3 event for one write of `key`, with the ETag S3 gave it.
fn write_event(bucket: &str, key: &str, etag: &str) -> Value {
    let mut event = s3_event(bucket, &[("ObjectCreated:Put", key)]);
    event["Records"][0]["s3"]["object"]["eTag"] = json!(etag);
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_out_of_order_or_twice_never_leave_an_older_copy() {
    let clients = local_aws().clients().await;
    let (source, destination, function) = direct_setup(&clients).await;
    let first = clients
        .put(&source, "k.txt", b"first write".to_vec(), "text/plain", &[])
        .await;
    let second = clients
        .put(
            &source,
            "k.txt",
            b"second write".to_vec(),
            "text/plain",
            &[],
        )
        .await;
    assert_ne!(first, second);

    // The newer write's event arrives first, and twice; the older one last.
    for _ in 0..2 {
        let (error, result) =
            invoke(&clients, &function, &write_event(&source, "k.txt", &second)).await;
        assert_eq!(error, None, "{result}");
        assert_eq!(
            result,
            json!({"copied": 1, "source_changed": 0, "skipped": 0})
        );
    }
    let (error, result) = invoke(&clients, &function, &write_event(&source, "k.txt", &first)).await;
    assert_eq!(error, None, "a late event is not a failure: {result}");
    assert_eq!(
        result,
        json!({"copied": 0, "source_changed": 1, "skipped": 0})
    );
    let copy = clients.get(&destination, "k.txt").await.expect("copied");
    assert_eq!(copy.bytes, b"second write");

    // An event for an object deleted since is late too, not a failure.
    clients
        .s3
        .delete_object()
        .bucket(&source)
        .key("k.txt")
        .send()
        .await
        .expect("delete");
    let (error, result) =
        invoke(&clients, &function, &write_event(&source, "k.txt", &second)).await;
    assert_eq!(error, None, "{result}");
    assert_eq!(result["source_changed"], 1, "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_for_an_older_version_never_overwrites_the_newer() {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let clients = local_aws().clients().await;
    let (source, destination, function) = direct_setup(&clients).await;
    clients
        .s3
        .put_bucket_versioning()
        .bucket(&source)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("enable versioning");
    let mut writes = Vec::new();
    for body in ["first write", "second write"] {
        let put = clients
            .s3
            .put_object()
            .bucket(&source)
            .key("v.txt")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .expect("put");
        writes.push((
            put.version_id().expect("a version id").to_owned(),
            put.e_tag().expect("an etag").trim_matches('"').to_owned(),
        ));
    }
    let event_for = |(version, etag): &(String, String)| {
        let mut event = write_event(&source, "v.txt", etag);
        event["Records"][0]["s3"]["object"]["versionId"] = json!(version);
        event
    };
    let (error, result) = invoke(&clients, &function, &event_for(&writes[1])).await;
    assert_eq!(error, None, "{result}");
    let (error, result) = invoke(&clients, &function, &event_for(&writes[0])).await;
    assert_eq!(error, None, "{result}");
    assert_eq!(result["source_changed"], 1, "{result}");
    let copy = clients.get(&destination, "v.txt").await.expect("copied");
    assert_eq!(
        copy.bytes, b"second write",
        "the late event for the first version must not copy it over the second"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_delete_never_removes_a_key_written_again() {
    let clients = local_aws().clients().await;
    let source = unique("src-late-del");
    let destination = unique("dst-late-del");
    clients.create_bucket(&source).await;
    clients.create_bucket(&destination).await;
    let function = function_name_for(&destination);
    clients
        .create_function_with_env(
            &function,
            &destination,
            &[("S3FAN_REPLICATE_DELETES", "true")],
        )
        .await;
    // Written, deleted, written again: the events arrive create, create, delete.
    clients
        .put(&source, "k.txt", b"old".to_vec(), "text/plain", &[])
        .await;
    clients
        .s3
        .delete_object()
        .bucket(&source)
        .key("k.txt")
        .send()
        .await
        .expect("delete");
    let again = clients
        .put(&source, "k.txt", b"new".to_vec(), "text/plain", &[])
        .await;
    let (error, result) = invoke(&clients, &function, &write_event(&source, "k.txt", &again)).await;
    assert_eq!(error, None, "{result}");
    let delete = s3_event(&source, &[("ObjectRemoved:Delete", "k.txt")]);
    let (error, result) = invoke(&clients, &function, &delete).await;
    assert_eq!(error, None, "{result}");
    assert_eq!(
        result,
        json!({"copied": 0, "source_changed": 1, "skipped": 0})
    );
    let copy = clients
        .get(&destination, "k.txt")
        .await
        .expect("the copy stays");
    assert_eq!(copy.bytes, b"new");

    // Once the source really is gone, the same delete event removes the copy.
    clients
        .s3
        .delete_object()
        .bucket(&source)
        .key("k.txt")
        .send()
        .await
        .expect("delete");
    let (error, result) = invoke(&clients, &function, &delete).await;
    assert_eq!(error, None, "{result}");
    assert_eq!(result["deleted"], 1, "{result}");
    assert_eq!(clients.get(&destination, "k.txt").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_whose_destination_is_its_source_refuses_to_loop() {
    let clients = local_aws().clients().await;
    let source = unique("src-loop");
    clients.create_bucket(&source).await;
    let function = unique("loop-fn");
    clients.create_function(&function, &source).await;
    clients
        .put(&source, "k.txt", b"z".to_vec(), "text/plain", &[])
        .await;

    let (error, result) = invoke(
        &clients,
        &function,
        &s3_event(&source, &[("ObjectCreated:Put", "k.txt")]),
    )
    .await;
    assert!(error.is_some(), "{result}");
    assert!(
        result["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("trigger itself"),
        "{result}"
    );
    let objects = clients
        .s3
        .list_objects_v2()
        .bucket(&source)
        .send()
        .await
        .expect("list");
    let keys: HashMap<&str, ()> = objects
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .map(|k| (k, ()))
        .collect();
    assert_eq!(keys.len(), 1, "nothing was written: {keys:?}");
}

async fn tags(clients: &Clients, bucket: &str, key: &str) -> Vec<(String, String)> {
    let out = clients
        .s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get tagging");
    let mut tags: Vec<(String, String)> = out
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    tags.sort();
    tags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_past_the_threshold_are_copied_in_parts_with_everything_carried() {
    let clients = local_aws().clients().await;
    let source = unique("src-parts");
    let destination = unique("dst.parts");
    clients.create_bucket(&source).await;
    clients.create_bucket(&destination).await;
    let function = function_name_for(&destination);
    // A 5 MiB threshold stands in for CopyObject's 5 GB.
    clients
        .create_function_with_env(
            &function,
            &destination,
            &[
                ("S3FAN_MULTIPART_THRESHOLD", "5242880"),
                ("S3FAN_PART_SIZE", "5242880"),
            ],
        )
        .await;

    let large: Vec<u8> = (0..23 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2246822519) >> 16) as u8)
        .collect();
    for (key, body) in [("big/23MiB.bin", large), ("small.txt", b"small".to_vec())] {
        clients
            .s3
            .put_object()
            .bucket(&source)
            .key(key)
            .body(body.into())
            .content_type("application/x-test")
            .content_disposition("attachment; filename=\"x.bin\"")
            .cache_control("max-age=60")
            .content_language("fr")
            .metadata("origin", "camera 7")
            .tagging("team=media%20film%2F2026%3Aq4&tier=gold")
            .send()
            .await
            .expect("put");
    }
    let event = s3_event(
        &source,
        &[
            ("ObjectCreated:CompleteMultipartUpload", "big%2F23MiB.bin"),
            ("ObjectCreated:Put", "small.txt"),
        ],
    );
    let mut event = event;
    event["Records"][0]["s3"]["object"]["size"] = json!(23 * 1024 * 1024);
    event["Records"][1]["s3"]["object"]["size"] = json!(5);
    let (error, result) = invoke(&clients, &function, &event).await;
    assert_eq!(error, None, "{result}");
    assert_eq!(result["copied"], 2);

    for key in ["big/23MiB.bin", "small.txt"] {
        assert_replicated(&clients, &source, std::slice::from_ref(&destination), key).await;
        let (from, to) = (
            clients
                .s3
                .head_object()
                .bucket(&source)
                .key(key)
                .send()
                .await
                .expect("head source"),
            clients
                .s3
                .head_object()
                .bucket(&destination)
                .key(key)
                .send()
                .await
                .expect("head copy"),
        );
        assert_eq!(
            to.content_disposition(),
            from.content_disposition(),
            "{key}"
        );
        assert_eq!(to.cache_control(), from.cache_control(), "{key}");
        assert_eq!(to.content_language(), from.content_language(), "{key}");
        assert_eq!(
            tags(&clients, &destination, key).await,
            tags(&clients, &source, key).await,
            "{key}"
        );
        assert_eq!(
            tags(&clients, &destination, key).await,
            vec![
                ("team".to_owned(), "media film/2026:q4".to_owned()),
                ("tier".to_owned(), "gold".to_owned())
            ]
        );
    }
    let invocation = invocations_of(&function).pop().expect("an invocation");
    let lines = invocation.log_lines();
    let big = lines
        .iter()
        .find(|l| l["key"] == "big/23MiB.bin")
        .expect("a line for the big object");
    assert_eq!(
        (big["method"].as_str(), big["parts"].as_u64()),
        (Some("multipart"), Some(5)),
        "{big}"
    );
    let small = lines
        .iter()
        .find(|l| l["key"] == "small.txt")
        .expect("a line for the small object");
    assert_eq!(small["method"], "copy_object");
}
