//! End to end: the estimates `deploy --dry-run` and `backfill --dry-run`
//! print, from what the fan-out holds (the bucket's storage metrics, the
//! functions' measured Duration, each copy's size) at the dated prices.
//! Moto keeps no metrics of its own: each test puts what AWS would have
//! (`put_metric`), and the figures must follow what was put.

use serde_json::Value;

use crate::common::{
    access_key, assert_exit, assert_ok, local_aws, put_metric, s3fan_with_env, unique,
};

const MIB: u64 = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;

fn estimate<'a>(case: &'a Value, by: &str) -> &'a Value {
    case["estimates"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["by"] == by))
        .unwrap_or_else(|| panic!("no estimate by {by} in {case:#}"))
}

fn item<'a>(estimate: &'a Value, name: &str) -> &'a Value {
    estimate["items"]
        .as_array()
        .and_then(|all| all.iter().find(|i| i["item"] == name))
        .unwrap_or_else(|| panic!("no {name} in {estimate:#}"))
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_dry_run_prices_the_fan_out_beside_s3_replication() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-cost");
    let near = unique("dst-cost-near");
    let far = unique("dst-cost-far");
    for bucket in [&source, &near] {
        clients.create_bucket(bucket).await;
    }
    aws.clients_in("eu-west-1").await.create_bucket(&far).await;
    // What S3's daily storage metrics would say of a bucket of 2,000
    // objects of 4 MiB.
    let dimensions = |storage| [("BucketName", source.as_str()), ("StorageType", storage)];
    put_metric(
        "AWS/S3",
        "NumberOfObjects",
        &dimensions("AllStorageTypes"),
        2_000.0,
    )
    .await;
    let bytes = 2_000.0 * (4 * MIB) as f64;
    put_metric(
        "AWS/S3",
        "BucketSizeBytes",
        &dimensions("StandardStorage"),
        bytes,
    )
    .await;

    let args = [
        "deploy",
        "--source",
        &source,
        "--dest",
        &near,
        "--dest",
        &far,
        "--memory",
        "256",
        "--dry-run",
        "--output",
        "json",
    ];
    let run = aws.s3fan(&access_key(), &args).await;
    assert_exit(&run, 3);
    let report = run.json();
    let cost = &report["cost"];
    assert_eq!(cost["prices_as_of"], "2026-12-01", "{cost:#}");
    let million = &cost["cases"][0];
    assert_eq!(million["label"], "per million new objects");
    assert_eq!(
        million["bytes"],
        1_000_000 * 4 * MIB,
        "the bucket's mean size"
    );
    let ours = estimate(million, "s3fan");
    assert_eq!(item(ours, "SNS publishes")["quantity"], 1_000_000.0);
    assert_eq!(item(ours, "Lambda invocations")["quantity"], 2_000_000.0);
    assert_eq!(item(ours, "COPY and PUT requests")["quantity"], 2_000_000.0);
    // Only the copies to eu-west-1 cross regions.
    let far_gb = 1_000_000.0 * (4 * MIB) as f64 / GIB;
    let transfer = item(ours, "transfer to other regions");
    assert!(close(number(&transfer["quantity"]), far_gb), "{transfer}");
    assert!(close(number(&transfer["usd"]), far_gb * 0.02), "{transfer}");
    let duration = item(ours, "Lambda duration");
    let basis = duration["basis"].as_str().unwrap_or_default();
    assert!(
        basis.contains("256 MB") && basis.contains("assumed"),
        "{basis}"
    );
    // RTC is $0.015 a GB of every copy on top of S3 Replication.
    let replication = number(&estimate(million, "S3 Replication")["usd"]);
    let rtc = number(&estimate(million, "S3 Replication with RTC")["usd"]);
    assert!(
        close(rtc - replication, 2.0 * far_gb * 0.015),
        "{replication} {rtc}"
    );
    // And what the objects there now would take to copy.
    let now = &cost["cases"][1];
    assert_eq!(now["objects"], 2_000);
    let batch = estimate(now, "S3 Batch Replication");
    assert_eq!(item(batch, "Batch Operations job")["usd"], 0.25);
    assert_eq!(item(batch, "objects processed")["quantity"], 2_000.0);

    // Deployed and run for a while: the measured Duration replaces the
    // assumption, for the function that has one.
    assert_ok(
        &aws.deploy(&access_key(), &source, &[&near, &far], &["--memory", "256"])
            .await,
    );
    let function = crate::common::function_name_for(&near);
    put_metric(
        "AWS/Lambda",
        "Duration",
        &[("FunctionName", function.as_str())],
        850.0,
    )
    .await;
    let args = [
        "deploy",
        "--source",
        &source,
        "--dest",
        &near,
        "--dest",
        &far,
        "--memory",
        "256",
        "--dry-run",
    ];
    let text = aws.s3fan(&access_key(), &args).await;
    assert_exit(&text, 0);
    assert!(
        text.stdout
            .contains("cost, estimated at us-east-1 list prices of 2026-12-01"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("measured where a function has run, else assumed"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("S3 Replication with RTC"),
        "{}",
        text.stdout
    );
    assert_ok(
        &aws.s3fan(&access_key(), &["destroy", "--source", &source, "--yes"])
            .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_dry_run_prices_the_copies_it_found_as_they_would_be_made() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-bfcost");
    let one = unique("dst-bfcost-one");
    let two = unique("dst-bfcost-two");
    for bucket in [&source, &one, &two] {
        clients.create_bucket(bucket).await;
    }
    for (key, size) in [("a.txt", 10), ("b.txt", 20), ("big.bin", 12 * MIB)] {
        let body = vec![b'x'; size as usize];
        clients
            .put(&source, key, body, "application/octet-stream", &[])
            .await;
    }
    clients
        .put(
            &one,
            "a.txt",
            vec![b'x'; 10],
            "application/octet-stream",
            &[],
        )
        .await;
    assert_ok(&aws.deploy(&access_key(), &source, &[&one, &two], &[]).await);
    // Copies past 5 MiB in 5 MiB parts, as the function would be told:
    // big.bin is a multipart copy of 3 parts.
    let env = [
        ("S3FAN_MULTIPART_THRESHOLD", "5242880"),
        ("S3FAN_PART_SIZE", "5242880"),
    ];
    let args = [
        "backfill",
        "--source",
        &source,
        "--dry-run",
        "--output",
        "json",
    ];
    let run = s3fan_with_env(&aws.endpoint, &access_key(), &env, &args).await;
    assert_exit(&run, 3);
    let report = run.json();
    let found = &report["cost"]["cases"][0];
    assert_eq!(
        found["label"], "the 5 copies this backfill would make",
        "{found:#}"
    );
    let ours = estimate(found, "s3fan backfill");
    // one: b.txt and big.bin; two: all three. A CopyObject each, and for
    // big.bin create + 3 parts + complete.
    assert_eq!(
        item(ours, "COPY and PUT requests")["quantity"],
        (1.0 + 5.0) + (2.0 + 5.0)
    );
    // big.bin's HeadObject and GetObjectTagging, per destination.
    assert_eq!(item(ours, "HEAD and GET requests")["quantity"], 4.0);
    // A page of the source and one of each destination.
    assert_eq!(item(ours, "LIST requests")["quantity"], 3.0);
    assert!(
        !ours["items"].to_string().contains("Lambda"),
        "a backfill runs here: {ours:#}"
    );
    let batch = estimate(found, "S3 Batch Replication");
    assert_eq!(
        item(batch, "objects processed")["quantity"],
        3.0,
        "one manifest of 3 objects"
    );
    assert_eq!(item(batch, "replication PUT requests")["quantity"], 5.0);

    let text = s3fan_with_env(&aws.endpoint, &access_key(), &env, &args[..4]).await;
    assert_exit(&text, 3);
    assert!(
        text.stdout.contains("S3 Batch Replication"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("per million objects missing from every destination"),
        "{}",
        text.stdout
    );
    // A dry run copies nothing.
    let listed = clients
        .s3
        .list_objects_v2()
        .bucket(&two)
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(0));
    assert_ok(
        &aws.s3fan(&access_key(), &["destroy", "--source", &source, "--yes"])
            .await,
    );
}
