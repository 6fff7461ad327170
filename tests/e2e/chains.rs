//! End to end: multipart copies that outlive an invocation hand the rest on
//! to a fresh invocation of their own function, as many times as the object
//! needs. Small parts (5 MiB) and a cap of two parts per invocation (test
//! settings, given to every bootstrap of this module's own local AWS) stand
//! in for a multi-terabyte object near the deadline: the hand-over is the
//! same code either way. The harness holds its queued deliveries while the
//! test changes the source or removes the destination between two
//! invocations of a chain.

use aws_sdk_lambda::primitives::Blob;
use serde_json::{Value, json};

use crate::common::{Clients, LocalAws, access_key, unique};

fn local_aws() -> &'static LocalAws {
    crate::common::isolated_local_aws("chains")
}

const MIB: usize = 1024 * 1024;

fn body(seed: u32) -> Vec<u8> {
    (0..23 * MIB as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2246822519) >> 16) as u8)
        .collect()
}

/// The S3 event of one new object, as SNS would wrap it for the function.
fn created_event(bucket: &str, key: &str, etag: &str, size: usize) -> Value {
    let record = json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-12-02T00:00:00.000Z",
        "eventName": "ObjectCreated:CompleteMultipartUpload",
        "s3": {"bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key, "size": size, "eTag": etag}}}]});
    json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": record.to_string()}}]})
}

async fn open_uploads(clients: &Clients, bucket: &str) -> usize {
    clients
        .s3
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("list uploads")
        .uploads()
        .len()
}

/// Writes `key` to `source` and runs the first invocation of its copy by
/// `function` at once, while deliveries are held: the copy hands on, and
/// its continuation waits in the queue.
async fn start_chain(clients: &Clients, source: &str, function: &str, key: &str, bytes: &[u8]) {
    let written = clients
        .s3
        .put_object()
        .bucket(source)
        .key(key)
        .body(bytes.to_vec().into())
        .send()
        .await
        .expect("put");
    let etag = written
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned();
    let started = invoke_now(
        clients,
        function,
        &created_event(source, key, &etag, bytes.len()),
    )
    .await;
    assert_eq!(started["continued"], 1, "{started}");
}

async fn invoke_now(clients: &Clients, function: &str, payload: &Value) -> Value {
    let answer = clients
        .lambda
        .invoke()
        .function_name(function)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .expect("invoke");
    assert!(answer.function_error().is_none(), "{answer:?}");
    let body = answer
        .payload()
        .map(|b| b.as_ref().to_vec())
        .unwrap_or_default();
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

#[tokio::test]
async fn copies_past_one_invocation_hand_on_and_never_leave_a_mixed_object_or_an_open_upload() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("chain-src");
    let (kept, gone) = (unique("chain-dst"), unique("chain-gone"));
    for bucket in [&source, &kept, &gone] {
        clients.create_bucket(bucket).await;
    }
    aws.set_bootstrap_env(json!({
        "S3FAN_MULTIPART_THRESHOLD": "5242880",
        "S3FAN_PART_SIZE": "5242880",
        "S3FAN_PARTS_PER_INVOCATION": "2",
    }));
    aws.deploy_json(
        &access_key(),
        &source,
        &[&kept, &gone],
        &["--retry-attempts", "0"],
    )
    .await;

    // 23 MiB in five parts, two per invocation: three invocations each.
    let big = body(1);
    clients
        .s3
        .put_object()
        .bucket(&source)
        .key("big.bin")
        .body(big.clone().into())
        .content_type("application/x-test")
        .metadata("origin", "camera 7")
        .tagging("tier=gold")
        .send()
        .await
        .expect("put");
    aws.drain();
    for destination in [&kept, &gone] {
        let Some(copy) = clients.get(destination, "big.bin").await else {
            let logs: Vec<String> = aws.invocations().iter().map(|i| i.logs.clone()).collect();
            panic!("not copied to {destination}; the functions logged: {logs:#?}");
        };
        assert!(copy.bytes == big, "byte-identical in {destination}");
        let head = clients
            .s3
            .head_object()
            .bucket(destination)
            .key("big.bin")
            .send()
            .await
            .expect("head");
        assert_eq!(head.content_type(), Some("application/x-test"));
        assert_eq!(
            head.metadata()
                .and_then(|m| m.get("origin"))
                .map(String::as_str),
            Some("camera 7")
        );
        let tags = clients
            .s3
            .get_object_tagging()
            .bucket(destination)
            .key("big.bin")
            .send()
            .await
            .expect("tags");
        assert_eq!(tags.tag_set().len(), 1);
        assert_eq!(open_uploads(&clients, destination).await, 0);
    }
    let hops: Vec<u64> = aws
        .invocations()
        .iter()
        .filter(|i| i.function == kept && i.event["s3fan"] == "copy")
        .filter_map(|i| i.event["upload"]["hops"].as_u64())
        .collect();
    assert_eq!(
        hops,
        [1, 2],
        "three invocations for {kept}: the event's, then two more"
    );

    // The source overwritten in the middle of a chain: the continuation's
    // parts are refused (their ETag is gone), its upload aborted, and the
    // newer object's own event copies it whole.
    aws.pause_deliveries(true);
    let first = body(2);
    start_chain(&clients, &source, &kept, "swap.bin", &first).await;
    let second = body(3);
    clients
        .s3
        .put_object()
        .bucket(&source)
        .key("swap.bin")
        .body(second.clone().into())
        .send()
        .await
        .expect("overwrite");
    aws.pause_deliveries(false);
    aws.drain();
    let copy = clients
        .get(&kept, "swap.bin")
        .await
        .expect("the newer object");
    assert!(copy.bytes == second, "never mixed, never stale");
    assert_eq!(
        open_uploads(&clients, &kept).await,
        0,
        "the stale chain's upload aborted"
    );
    let stopped = aws
        .invocations()
        .iter()
        .filter(|i| i.function == kept && i.event["s3fan"] == "copy")
        .flat_map(|i| i.log_lines())
        .any(|line| line["key"] == "swap.bin" && line["outcome"] == "source_changed");
    assert!(stopped, "the continuation saw the source change");

    // The destination removed between two invocations: the chain ends in
    // the failure queue, and retry completes it once the bucket is back.
    aws.pause_deliveries(true);
    let third = body(4);
    start_chain(&clients, &source, &gone, "gone.bin", &third).await;
    for key in ["big.bin", "swap.bin"] {
        clients
            .s3
            .delete_object()
            .bucket(&gone)
            .key(key)
            .send()
            .await
            .expect("empty the bucket");
    }
    clients
        .s3
        .delete_bucket()
        .bucket(&gone)
        .send()
        .await
        .expect("delete the destination");
    aws.pause_deliveries(false);
    aws.drain();
    let failures = aws
        .s3fan_json_exit(&access_key(), &["failures", "--source", &source], 3)
        .await;
    let waiting = failures["events"].as_array().map(Vec::len).unwrap_or(0);
    assert!(
        waiting >= 1,
        "the chain ended in the failure queue: {failures}"
    );
    clients.create_bucket(&gone).await;
    let retried = aws
        .s3fan_json(&access_key(), &["retry", "--source", &source])
        .await;
    assert_eq!(retried["kept"], 0, "{retried}");
    let copy = clients
        .get(&gone, "gone.bin")
        .await
        .expect("copied by retry");
    assert!(copy.bytes == third, "byte-identical");
    assert_eq!(open_uploads(&clients, &gone).await, 0);
    assert_eq!(open_uploads(&clients, &kept).await, 0);

    // Uploads left open in a destination are reported by status, s3fan's
    // own apart from other writers': a chain held between two invocations
    // (its upload started by the function's role session) and an upload
    // this test starts with its own credentials. destroy aborts s3fan's,
    // which nothing could finish once the function is gone, and leaves the
    // other writer's alone.
    let status = aws
        .s3fan_json(&access_key(), &["status", "--source", &source])
        .await;
    let open = |status: &Value, bucket: &str| {
        status["destinations"]
            .as_array()
            .expect("destinations")
            .iter()
            .find(|d| d["destination"] == json!(bucket))
            .map(|d| d["open_uploads"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(open(&status, &kept), json!([]), "{status}");
    let theirs = clients
        .s3
        .create_multipart_upload()
        .bucket(&kept)
        .key("theirs.bin")
        .send()
        .await
        .expect("an upload left open");
    aws.pause_deliveries(true);
    let held = body(5);
    start_chain(&clients, &source, &kept, "held.bin", &held).await;
    let status = aws
        .s3fan_json(&access_key(), &["status", "--source", &source])
        .await;
    let listed = open(&status, &kept);
    let by_key = |key: &str| {
        listed
            .as_array()
            .and_then(|all| all.iter().find(|u| u["key"] == key))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        by_key("theirs.bin")["upload_id"],
        json!(theirs.upload_id()),
        "{status}"
    );
    assert_eq!(by_key("theirs.bin")["started_by_s3fan"], false, "{status}");
    assert_eq!(by_key("held.bin")["started_by_s3fan"], true, "{status}");
    assert!(
        by_key("held.bin")["initiator"]
            .as_str()
            .is_some_and(|arn| arn.contains(":assumed-role/")),
        "{status}"
    );
    let text = aws
        .s3fan(&access_key(), &["status", "--source", &source])
        .await;
    assert!(
        text.stdout
            .contains("1 open multipart upload s3fan started")
            && text
                .stdout
                .contains("1 open multipart upload started by other writers"),
        "{}",
        text.stdout
    );
    let destroyed = aws
        .s3fan_json(&access_key(), &["destroy", "--yes", "--source", &source])
        .await;
    let aborted: Vec<&Value> = destroyed["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["kind"] == "upload")
        .collect();
    assert_eq!(aborted.len(), 1, "{destroyed}");
    assert_eq!(
        aborted[0]["name"],
        format!("s3://{kept}/held.bin"),
        "{destroyed}"
    );
    assert_eq!(aborted[0]["action"], "delete", "{destroyed}");
    assert_eq!(aborted[0]["status"], "done", "{destroyed}");
    let left = clients
        .s3
        .list_multipart_uploads()
        .bucket(&kept)
        .send()
        .await
        .expect("list uploads");
    let keys: Vec<&str> = left.uploads().iter().filter_map(|u| u.key()).collect();
    assert_eq!(keys, ["theirs.bin"], "only the other writer's upload stays");
    // The held continuation finds its function gone, as in Lambda.
    aws.pause_deliveries(false);
    aws.drain();
    clients
        .s3
        .abort_multipart_upload()
        .bucket(&kept)
        .key("theirs.bin")
        .upload_id(theirs.upload_id().unwrap_or_default())
        .send()
        .await
        .expect("abort");
}
