//! End to end: `s3fan backfill` and `s3fan verify`, the release binary run
//! as a user runs it, against the local AWS.

use crate::common::{
    Clients, FaultProxy, RecordedRequest, access_key, assert_ok, local_aws, s3fan_with_env, unique,
    writes_by,
};
use futures::StreamExt;
use serde_json::{Value, json};

/// `count` objects of different sizes and keys (spaces, unicode), written
/// 16 at a time.
async fn fill(clients: &Clients, bucket: &str, count: usize) -> Vec<String> {
    let keys: Vec<String> = (0..count)
        .map(|i| format!("dir {}/obj é {i:04}.txt", i % 7))
        .collect();
    futures::stream::iter(keys.iter())
        .map(|key| {
            let body = key.repeat(1 + key.len() % 3).into_bytes();
            clients.put(bucket, key, body, "text/plain", &[("n", "1")])
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    keys
}

async fn count_objects(clients: &Clients, bucket: &str, prefix: &str) -> usize {
    let mut pages = clients
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        count += page.expect("list").contents().len();
    }
    count
}

fn destination<'a>(report: &'a Value, bucket: &str) -> &'a Value {
    report["destinations"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["destination"] == bucket))
        .unwrap_or_else(|| panic!("no {bucket} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_copies_what_is_missing_and_verify_finds_every_difference() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-backfill");
    let plain = unique("dst-backfill");
    let prefixed = unique("dst-backfill-kp");
    for bucket in [&source, &plain, &prefixed] {
        clients.create_bucket(bucket).await;
    }
    let keys = fill(&clients, &source, 500).await;
    let under_prefix = format!("{prefixed}:copies/");
    let fanout = [
        "--source",
        &source,
        "--dest",
        &plain,
        "--dest",
        &under_prefix,
    ];
    let run = |command: &'static str, extra: &'static [&'static str]| {
        let args: Vec<&str> = [command]
            .into_iter()
            .chain(fanout.iter().copied())
            .chain(extra.iter().copied())
            .chain(["--output", "json"])
            .collect();
        let key = access_key();
        async move {
            let run = aws.s3fan(&key, &args).await;
            (run, key)
        }
    };

    // Before: verify says what is missing, and fails.
    let (before, _) = run("verify", &[]).await;
    assert!(!before.success, "{}", before.stdout);
    let report = before.json();
    assert_eq!(destination(&report, &plain)["missing"], 500, "{report}");
    assert_eq!(report["ok"], false);

    // A dry run copies nothing and says what it would.
    let (dry, key) = run("backfill", &["--dry-run"]).await;
    crate::common::assert_exit(&dry, 3);
    assert_eq!(destination(&dry.json(), &prefixed)["copied"], 500);
    // The bytes it would copy are the source's bytes, as `fill` wrote them.
    let total: u64 = keys
        .iter()
        .map(|key| (key.len() * (1 + key.len() % 3)) as u64)
        .sum();
    assert_eq!(destination(&dry.json(), &prefixed)["bytes"], total);
    assert_eq!(
        writes_by(&key),
        Vec::<String>::new(),
        "a dry run writes nothing"
    );

    // The backfill copies all 500 to both, the second under its prefix.
    let (backfill, _) = run("backfill", &[]).await;
    assert_ok(&backfill);
    let report = backfill.json();
    for bucket in [&plain, &prefixed] {
        let d = destination(&report, bucket);
        assert_eq!(
            (
                d["copied"].as_u64(),
                d["failed"].as_u64(),
                d["bytes"].as_u64()
            ),
            (Some(500), Some(0), Some(total)),
            "{d}"
        );
    }
    assert_eq!(count_objects(&clients, &plain, "").await, 500);
    assert_eq!(count_objects(&clients, &prefixed, "copies/").await, 500);
    assert_eq!(
        count_objects(&clients, &prefixed, "").await,
        500,
        "nothing outside the prefix"
    );
    let sample = &keys[123];
    let original = clients.get(&source, sample).await.expect("source object");
    for copy in [
        clients.get(&plain, sample).await,
        clients.get(&prefixed, &format!("copies/{sample}")).await,
    ] {
        assert_eq!(copy.as_ref(), Some(&original), "bytes, type and metadata");
    }

    // A re-run copies nothing, and writes nothing.
    let (again, key) = run("backfill", &[]).await;
    assert_ok(&again);
    let report = again.json();
    for bucket in [&plain, &prefixed] {
        let d = destination(&report, bucket);
        assert_eq!(
            (d["copied"].as_u64(), d["in_sync"].as_u64()),
            (Some(0), Some(500)),
            "{d}"
        );
    }
    assert_eq!(writes_by(&key), Vec::<String>::new());
    let (in_sync, _) = run("verify", &[]).await;
    assert_ok(&in_sync);
    assert_eq!(in_sync.json()["ok"], true);

    // Break the plain destination three ways.
    let (deleted, changed) = (&keys[7], &keys[300]);
    clients
        .s3
        .delete_object()
        .bucket(&plain)
        .key(deleted)
        .send()
        .await
        .expect("delete");
    clients
        .put(
            &plain,
            changed,
            b"not the original".to_vec(),
            "text/plain",
            &[],
        )
        .await;
    clients
        .put(
            &plain,
            "zz extra.txt",
            b"only here".to_vec(),
            "text/plain",
            &[],
        )
        .await;
    let (broken, _) = run("verify", &[]).await;
    assert!(!broken.success, "out of sync must fail: {}", broken.stdout);
    let report = broken.json();
    let d = destination(&report, &plain);
    assert_eq!(
        (&d["missing"], &d["different"], &d["extra"], &d["in_sync"]),
        (&json!(1), &json!(1), &json!(1), &json!(498)),
        "{d}"
    );
    assert_eq!(d["missing_keys"], json!([deleted]));
    assert!(
        d["different_keys"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with(changed.as_str()),
        "{d}"
    );
    assert_eq!(d["extra_keys"], json!(["zz extra.txt"]));
    assert_eq!(
        destination(&report, &prefixed)["in_sync"],
        500,
        "the other is untouched"
    );
    let text = aws
        .s3fan(
            &access_key(),
            &["verify", "--source", &source, "--dest", &plain],
        )
        .await;
    assert!(!text.success);
    for expected in [
        "OUT OF SYNC",
        &format!("missing   {deleted}"),
        "extra     zz extra.txt",
    ] {
        assert!(
            text.stdout.contains(expected),
            "{expected:?} not in {}",
            text.stdout
        );
    }

    // Backfill mends the missing and the different; the extra stays.
    let (mend, _) = run("backfill", &[]).await;
    assert_ok(&mend);
    let d = destination(&mend.json(), &plain).clone();
    assert_eq!((&d["copied"], &d["extra"]), (&json!(2), &json!(1)), "{d}");
    assert_eq!(
        clients.get(&plain, changed).await.map(|o| o.bytes),
        Some(original_bytes(&clients, &source, changed).await)
    );
    let (after, _) = run("verify", &[]).await;
    let d = destination(&after.json(), &plain).clone();
    assert_eq!(
        (&d["missing"], &d["different"], &d["extra"]),
        (&json!(0), &json!(0), &json!(1)),
        "{d}"
    );
}

async fn original_bytes(clients: &Clients, bucket: &str, key: &str) -> Vec<u8> {
    clients.get(bucket, key).await.expect("source object").bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dest_the_deployed_fanout_and_its_filter_are_used() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-bf-deployed");
    let destination = unique("dst-bf-deployed");
    for bucket in [&source, &destination] {
        clients.create_bucket(bucket).await;
    }
    // Objects from before the deploy: the original never copied these.
    for key in ["docs/a.pdf", "docs/b.txt", "img/c.pdf", "docs/sub/d.pdf"] {
        clients
            .put(&source, key, b"old".to_vec(), "application/pdf", &[])
            .await;
    }
    assert_ok(
        &aws.deploy(
            &access_key(),
            &source,
            &[&format!("{destination}:bk/")],
            &["--prefix", "docs/", "--suffix", ".pdf"],
        )
        .await,
    );
    assert_eq!(count_objects(&clients, &destination, "").await, 0);

    let report = aws
        .s3fan_json(&access_key(), &["backfill", "--source", &source])
        .await;
    assert_eq!(report["destinations"][0]["key_prefix"], "bk/", "{report}");
    assert_eq!(report["destinations"][0]["copied"], 2, "{report}");
    for key in ["bk/docs/a.pdf", "bk/docs/sub/d.pdf"] {
        assert!(clients.get(&destination, key).await.is_some(), "{key}");
    }
    assert_eq!(
        count_objects(&clients, &destination, "").await,
        2,
        "only the filter's keys"
    );

    // --prefix narrows within the filter; outside it is refused before any work.
    let run = aws
        .s3fan(
            &access_key(),
            &["verify", "--source", &source, "--prefix", "docs/sub/"],
        )
        .await;
    assert_ok(&run);
    let refused = aws
        .s3fan(
            &access_key(),
            &["backfill", "--source", &source, "--prefix", "img/"],
        )
        .await;
    assert!(!refused.success);
    assert!(
        refused
            .stderr
            .contains("--prefix \"img/\" is outside the fan-out's key filter \"docs/\""),
        "{}",
        refused.stderr
    );

    // A source with nothing deployed and no --dest says what to do.
    let lonely = unique("src-bf-lonely");
    clients.create_bucket(&lonely).await;
    let refused = aws
        .s3fan(&access_key(), &["verify", "--source", &lonely])
        .await;
    assert!(!refused.success);
    assert!(refused.stderr.contains("--dest DST"), "{}", refused.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_waits_in_the_failure_queue_until_retry_delivers_it() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-failq");
    let destination = unique("dst-failq");
    for bucket in [&source, &destination] {
        clients.create_bucket(bucket).await;
    }
    let deploy = aws
        .deploy(
            &access_key(),
            &source,
            &[&destination],
            &["--retry-attempts", "0", "--output", "json"],
        )
        .await;
    assert_ok(&deploy);
    let queue = format!("{source}-fanout-failures");
    let config = clients
        .lambda
        .get_function_event_invoke_config()
        .function_name(&destination)
        .send()
        .await
        .expect("invoke config");
    assert_eq!(config.maximum_retry_attempts(), Some(0));
    assert_eq!(
        config
            .destination_config()
            .and_then(|d| d.on_failure())
            .and_then(|f| f.destination()),
        Some(format!("arn:aws:sqs:us-east-1:123456789012:{queue}").as_str())
    );

    // The destination disappears; a new object cannot be copied.
    clients
        .s3
        .delete_bucket()
        .bucket(&destination)
        .send()
        .await
        .expect("delete destination");
    clients
        .put(
            &source,
            "lost and found.txt",
            b"keep me".to_vec(),
            "text/plain",
            &[],
        )
        .await;
    aws.drain();
    let attempts = aws
        .invocations()
        .into_iter()
        .filter(|i| i.function == destination && !i.event.to_string().contains("s3:TestEvent"))
        .count();
    assert_eq!(attempts, 1, "--retry-attempts 0: one attempt, no retry");

    let report = aws
        .s3fan_json_exit(&access_key(), &["failures", "--source", &source], 3)
        .await;
    let events = report["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{report}");
    assert_eq!(
        events[0]["objects"],
        json!([format!("s3://{source}/lost and found.txt")])
    );
    assert_eq!(
        events[0]["destination"],
        json!(format!("s3://{destination}/"))
    );
    assert!(
        events[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("NoSuchBucket"),
        "{report}"
    );
    // Listing consumed nothing; destroy would keep the queue and say why.
    let dry = aws
        .s3fan(
            &access_key(),
            &[
                "destroy",
                "--source",
                &source,
                "--dry-run",
                "--output",
                "json",
            ],
        )
        .await;
    let queue_change = dry.json()["changes"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["kind"] == "queue").cloned())
        .expect("queue in the destroy plan");
    assert_eq!(queue_change["action"], "unchanged", "{queue_change}");
    assert!(
        queue_change["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("kept: 1")
    );

    // A retry before the cause is fixed keeps the event, and keeps it in
    // sight: the very next retry, failures and status all see it.
    for round in ["first", "second, at once"] {
        let kept = aws
            .s3fan(
                &access_key(),
                &["retry", "--source", &source, "--output", "json"],
            )
            .await;
        assert!(!kept.success, "a kept event is a failure: {}", kept.stdout);
        let report = kept.json();
        assert_eq!(
            (&report["delivered"], &report["kept"], &report["in_flight"]),
            (&json!(0), &json!(1), &json!(0)),
            "{round} retry: {report}"
        );
    }
    let listed = aws
        .s3fan(
            &access_key(),
            &["failures", "--source", &source, "--output", "json"],
        )
        .await
        .json();
    assert_eq!(
        (
            listed["events"].as_array().map(Vec::len),
            &listed["in_flight"]
        ),
        (Some(1), &json!(0)),
        "{listed}"
    );
    let status = aws
        .s3fan(
            &access_key(),
            &["status", "--source", &source, "--output", "json"],
        )
        .await
        .json();
    assert_eq!(
        (&status["failed_events"], &status["failed_in_flight"]),
        (&json!(1), &json!(0)),
        "{status}"
    );

    // Once the cause is fixed, retry delivers it and empties the queue.
    clients.create_bucket(&destination).await;
    let report = aws
        .s3fan_json(&access_key(), &["retry", "--source", &source])
        .await;
    assert_eq!(
        (&report["delivered"], &report["kept"]),
        (&json!(1), &json!(0)),
        "{report}"
    );
    let copy = clients
        .get(&destination, "lost and found.txt")
        .await
        .expect("delivered");
    assert_eq!(copy.bytes, b"keep me");
    let after = aws
        .s3fan(
            &access_key(),
            &["failures", "--source", &source, "--output", "json"],
        )
        .await;
    assert_eq!(after.json()["events"], json!([]));
    let status = aws
        .s3fan(
            &access_key(),
            &["status", "--source", &source, "--output", "json"],
        )
        .await;
    assert_eq!(status.json()["failed_events"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_via_lambda_publishes_s3_events_that_the_functions_copy() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-bf-lambda");
    let (plain, prefixed) = (unique("dst-bf-lambda"), unique("dst-bf-lambda-kp"));
    for bucket in [&source, &plain, &prefixed] {
        clients.create_bucket(bucket).await;
    }
    // 150 objects from before the deploy: two messages of at most 100 records.
    let keys = fill(&clients, &source, 150).await;
    let under_prefix = format!("{prefixed}:bk/");
    assert_ok(
        &aws.deploy(&access_key(), &source, &[&plain, &under_prefix], &[])
            .await,
    );
    aws.drain(); // the TestEvent deploy's notification sends
    let invocations_before = aws.invocations().len();

    let dry = aws
        .s3fan(
            &access_key(),
            &[
                "backfill",
                "--source",
                &source,
                "--via-lambda",
                "--dry-run",
                "--output",
                "json",
            ],
        )
        .await;
    crate::common::assert_exit(&dry, 3);
    assert_eq!(
        (&dry.json()["objects"], &dry.json()["messages"]),
        (&json!(150), &json!(2))
    );
    aws.drain();
    // (Other tests' functions run in the same local AWS meanwhile.)
    let ours = |from: usize| -> Vec<String> {
        aws.invocations()[from..]
            .iter()
            .filter(|i| !i.is_error && (i.function == plain || i.function == prefixed))
            .map(|i| i.function.clone())
            .collect()
    };
    assert_eq!(
        ours(invocations_before),
        Vec::<String>::new(),
        "a dry run publishes nothing"
    );

    let key = access_key();
    let report = aws
        .s3fan_json(&key, &["backfill", "--source", &source, "--via-lambda"])
        .await;
    assert_eq!(
        (&report["objects"], &report["messages"]),
        (&json!(150), &json!(2)),
        "{report}"
    );
    let writes = writes_by(&key);
    assert!(
        writes.iter().all(|w| w.contains("Publish")),
        "the local process only publishes: {writes:?}"
    );
    aws.drain();
    // Two messages, each to two functions: the copying ran on Lambda.
    let copying = ours(invocations_before);
    assert_eq!(copying.len(), 4, "{copying:?}");
    let verify = aws
        .s3fan(
            &access_key(),
            &["verify", "--source", &source, "--output", "json"],
        )
        .await;
    assert_ok(&verify);
    let sample = &keys[77];
    assert!(
        clients
            .get(&prefixed, &format!("bk/{sample}"))
            .await
            .is_some()
    );

    // Once every destination has everything, there is nothing to publish.
    clients
        .s3
        .delete_object()
        .bucket(&plain)
        .key(sample)
        .send()
        .await
        .expect("delete a copy");
    let again = aws
        .s3fan(
            &access_key(),
            &[
                "backfill",
                "--source",
                &source,
                "--via-lambda",
                "--output",
                "json",
            ],
        )
        .await;
    assert_ok(&again);
    assert_eq!(
        again.json()["objects"],
        1,
        "only the object one destination lacks"
    );
    aws.drain();
    assert!(clients.get(&plain, sample).await.is_some());

    // --dest makes no sense with it: the functions decide the destinations.
    let refused = aws
        .s3fan(
            &access_key(),
            &[
                "backfill",
                "--source",
                &source,
                "--dest",
                &plain,
                "--via-lambda",
            ],
        )
        .await;
    assert!(!refused.success);
    assert!(refused.stderr.contains("drop --dest"), "{}", refused.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_xml_cannot_carry_are_listed_copied_and_verified_by_their_real_keys() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-xmlkeys");
    let target = unique("dst-xmlkeys");
    for bucket in [&source, &target] {
        clients.create_bucket(bucket).await;
    }
    // U+0001 and U+001F (no XML 1.0 character), U+FFFE (a noncharacter XML
    // excludes), next to keys that sort between them.
    let keys = [
        "ctl\u{1}one",
        "ctl two",
        "ctl+three",
        "ctl\u{1f}four",
        "ctl\u{fffe}five",
        "plain",
    ];
    for key in keys {
        clients
            .put(&source, key, key.as_bytes().to_vec(), "text/plain", &[])
            .await;
    }
    let fanout = ["--source", &source, "--dest", &target, "--output", "json"];
    let backfill = aws
        .s3fan(&access_key(), &[&["backfill"][..], &fanout].concat())
        .await;
    assert_ok(&backfill);
    let report = backfill.json();
    let d = destination(&report, &target);
    assert_eq!(
        (
            d["copied"].as_u64(),
            d["source_changed"].as_u64(),
            d["failed"].as_u64()
        ),
        (Some(keys.len() as u64), Some(0), Some(0)),
        "{d}"
    );
    for key in keys {
        let copy = clients.get(&target, key).await;
        assert_eq!(
            copy.map(|c| c.bytes),
            Some(key.as_bytes().to_vec()),
            "{key:?} copied to its real key"
        );
    }
    let verify = aws
        .s3fan(&access_key(), &[&["verify"][..], &fanout].concat())
        .await;
    assert_ok(&verify);
    let report = verify.json();
    let d = destination(&report, &target);
    assert_eq!(
        (
            d["in_sync"].as_u64(),
            d["missing"].as_u64(),
            d["extra"].as_u64()
        ),
        (Some(keys.len() as u64), Some(0), Some(0)),
        "{d}"
    );
}

/// A bucket that throttles: backfill halves its copies at once, every 503
/// counts (also those the SDK's retry then hid from the copy), and every
/// object arrives. moto never throttles; the fault proxy answers a share of
/// CopyObject requests with S3's `503 SlowDown`, not forwarding them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_slows_down_when_s3_throttles_and_copies_everything() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-throttled");
    let target = unique("dst-throttled");
    for bucket in [&source, &target] {
        clients.create_bucket(bucket).await;
    }
    let keys = fill(&clients, &source, 60).await;
    let proxy = FaultProxy::start(&aws.endpoint, &["--rate", "0", "--seed", "11"]);
    proxy.configure(json!({"rate": 0.2, "kinds": ["slowdown"], "only": ["CopyObject"]}));
    let run = s3fan_with_env(
        &proxy.endpoint,
        &access_key(),
        // The SDK's own setting, as a user would raise it for a bucket
        // that throttles: a copy throttled three times would fail.
        &[("AWS_MAX_ATTEMPTS", "10")],
        &[
            "backfill", "--source", &source, "--dest", &target, "--output", "json",
        ],
    )
    .await;
    assert_ok(&run);
    let report: Value = serde_json::from_str(&run.stdout).expect("backfill's JSON report");
    let copied = destination(&report, &target);
    assert_eq!(copied["copied"], keys.len(), "{report}");
    assert_eq!(count_objects(&clients, &target, "").await, keys.len());
    let stats = proxy.stats();
    let throttled = stats["by_operation"]["CopyObject"]["slowdown"]
        .as_u64()
        .unwrap_or(0);
    assert!(throttled > 0, "the proxy throttled nothing: {stats}");
    assert_eq!(copied["pace"]["throttled"], throttled, "{report}");
    assert!(
        copied["pace"]["last"].as_u64() < copied["pace"]["most"].as_u64(),
        "the copies at once did not come down: {report}"
    );
}

/// The lists of `s3fan backfill` that replace a listing of the source. S3
/// Inventory does not run on moto: the test writes the report as S3 would
/// (manifest.json, a gzip CSV data file with URL-encoded keys, an older
/// version and a delete marker in it), and asserts that the source bucket
/// is never listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_from_a_key_file_or_an_inventory_lists_no_source() {
    use std::io::Write;
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-named");
    let from_file = unique("dst-named-file");
    let from_inventory = unique("dst-named-inv");
    let inventories = unique("inventories");
    for bucket in [&source, &from_file, &from_inventory, &inventories] {
        clients.create_bucket(bucket).await;
    }
    let keys = fill(&clients, &source, 40).await;
    let named: Vec<&String> = keys.iter().step_by(4).collect();
    // One of them is there already, and equal: not copied again.
    let body = original_bytes(&clients, &source, named[0]).await;
    clients
        .put(&from_file, named[0], body, "text/plain", &[("n", "1")])
        .await;

    // 1. --files-from: the keys as they are, and one the source lacks.
    let dir = std::env::temp_dir().join(unique("files-from"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let list = dir.join("keys.txt");
    let mut text: String = named.iter().map(|k| format!("{k}\n")).collect();
    text.push_str("gone/never-there.txt\n");
    std::fs::write(&list, text).expect("write the key file");
    let key = access_key();
    let run = aws
        .s3fan(
            &key,
            &[
                "backfill",
                "--source",
                &source,
                "--dest",
                &from_file,
                "--files-from",
                list.to_str().expect("utf-8 path"),
                "--output",
                "json",
            ],
        )
        .await;
    assert_ok(&run);
    let report: Value = serde_json::from_str(&run.stdout).expect("backfill's JSON report");
    let d = destination(&report, &from_file);
    assert_eq!(
        (&d["copied"], &d["in_sync"], &report["not_in_source"]),
        (&json!(named.len() - 1), &json!(1), &json!(1)),
        "{report}"
    );
    let copied = clients.keys(&from_file).await;
    let expected: std::collections::BTreeSet<String> =
        named.iter().map(|k| k.to_string()).collect();
    assert_eq!(copied, expected);

    // 2. --inventory: what S3 Inventory writes, for the same keys.
    let mut csv = String::new();
    for k in &named {
        let head = clients
            .s3
            .head_object()
            .bucket(&source)
            .key(k.as_str())
            .send()
            .await
            .expect("head");
        let encoded: String = form_urlencoded(k);
        csv.push_str(&format!(
            "\"{source}\",\"{encoded}\",\"v2\",\"true\",\"false\",\"{}\",\"2026-12-01T00:00:00.000Z\",\"{}\"\n",
            head.content_length().unwrap_or(0),
            head.e_tag().unwrap_or_default().trim_matches('"')
        ));
    }
    // An older version and a delete marker: neither is copied.
    csv.push_str(&format!(
        "\"{source}\",\"old/version.txt\",\"v1\",\"false\",\"false\",\"3\",\"2026-11-01T00:00:00.000Z\",\"abc\"\n\
         \"{source}\",\"deleted.txt\",\"v3\",\"true\",\"true\",\"\",\"2026-11-02T00:00:00.000Z\",\"\"\n"
    ));
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(csv.as_bytes()).expect("gzip");
    let data = gzip.finish().expect("gzip");
    let data_key = format!("{source}/daily/data/part-0.csv.gz");
    clients
        .put(&inventories, &data_key, data, "application/gzip", &[])
        .await;
    let manifest = json!({
        "sourceBucket": source,
        "destinationBucket": format!("arn:aws:s3:::{inventories}"),
        "version": "2016-11-30",
        "creationTimestamp": "1764547200000",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag",
        "files": [{"key": data_key, "size": 1, "MD5checksum": "unused"}],
    });
    let manifest_key = format!("{source}/daily/2026-12-01T01-00Z/manifest.json");
    clients
        .put(
            &inventories,
            &manifest_key,
            manifest.to_string().into_bytes(),
            "application/json",
            &[],
        )
        .await;
    let url = format!("s3://{inventories}/{manifest_key}");
    let run = aws
        .s3fan(
            &key,
            &[
                "backfill",
                "--source",
                &source,
                "--dest",
                &from_inventory,
                "--inventory",
                &url,
            ],
        )
        .await;
    assert_ok(&run);
    assert_eq!(
        clients.keys(&from_inventory).await,
        expected,
        "{}",
        run.stdout
    );

    // Neither run listed the source.
    let listings: Vec<RecordedRequest> = aws
        .requests()
        .into_iter()
        .filter(|r| r.access_key.as_deref() == Some(key.as_str()))
        .filter(|r| r.method == "GET" && r.path.trim_matches('/') == source)
        .filter(|r| !r.query.contains("location"))
        .collect();
    assert!(listings.is_empty(), "the source was listed: {listings:?}");

    // A bad address and a manifest of another bucket are refused by name.
    let bad = aws
        .s3fan(
            &key,
            &[
                "backfill",
                "--source",
                &source,
                "--dest",
                &from_inventory,
                "--inventory",
                "inventories/manifest.json",
            ],
        )
        .await;
    assert!(
        !bad.success && bad.stderr.contains("s3://BUCKET/PATH/manifest.json"),
        "{}",
        bad.stderr
    );
    let other = aws
        .s3fan(
            &key,
            &[
                "backfill",
                "--source",
                &from_file,
                "--dest",
                &from_inventory,
                "--inventory",
                &url,
            ],
        )
        .await;
    // Found once the manifest is read: the report says where it stopped.
    assert!(
        !other.success && other.stdout.contains(&format!("lists bucket {source}")),
        "{}{}",
        other.stdout,
        other.stderr
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A key as S3 Inventory writes it in CSV: URL-encoded, `+` for a space.
fn form_urlencoded(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b'/' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// moto has no S3 Batch Operations: the harness runs the job as AWS does
/// (its checks, one schema 2.0 invocation per manifest row, the completion
/// report), so what is proven here is s3fan's side: the role, the manifest,
/// the job request, and the function's answers and failure records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_via_batch_operations_runs_a_job_per_destination_whose_failures_reach_the_queue() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-batch");
    let dest = unique("dst-batch");
    let reports = unique("reports-batch");
    for bucket in [&source, &dest, &reports] {
        clients.create_bucket(bucket).await;
    }
    // From before the deploy: no event will ever copy them.
    let keys = fill(&clients, &source, 5).await;
    // One whose copy under the destination's key prefix would be longer
    // than S3 allows: a task that fails for good.
    let too_long = format!("long/{}", "x".repeat(1015));
    clients
        .put(&source, &too_long, b"long".to_vec(), "text/plain", &[])
        .await;
    let under_prefix = format!("{dest}:copies/");
    assert_ok(
        &aws.deploy(&access_key(), &source, &[&under_prefix], &[])
            .await,
    );
    aws.drain();
    let before = aws.invocations().len();
    let dir = std::env::temp_dir().join(unique("batch-keys"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let list = dir.join("keys.txt");
    let mut text: String = keys.iter().map(|k| format!("{k}\n")).collect();
    text.push_str(&format!("{too_long}\ngone/never there.txt\n"));
    std::fs::write(&list, text).expect("write the key file");
    let report_to = format!("s3://{reports}/batch");
    let args = [
        "backfill",
        "--source",
        &source,
        "--via-batch-operations",
        "--files-from",
        list.to_str().expect("utf-8 path"),
        "--report-to",
        &report_to,
    ];
    let key = access_key();
    let first = aws.s3fan_json(&key, &args).await;
    assert_eq!(first["ok"], true, "{first}");
    let job_id = first["jobs"][0]["job_id"]
        .as_str()
        .expect("a job id")
        .to_owned();
    assert_eq!(first["jobs"].as_array().map(Vec::len), Some(1), "{first}");
    aws.drain();

    // Every named object that exists is copied, by the function.
    assert_eq!(
        clients.keys(&dest).await,
        keys.iter().map(|k| format!("copies/{k}")).collect()
    );
    let tasks: Vec<Value> = aws.invocations()[before..]
        .iter()
        .filter(|i| i.function == dest && i.event["invocationSchemaVersion"] == "2.0")
        .map(|i| serde_json::from_str(i.result.as_deref().unwrap_or("null")).unwrap_or(Value::Null))
        .collect();
    assert_eq!(
        tasks.len(),
        keys.len() + 2,
        "one invocation per manifest row"
    );
    let codes: Vec<&str> = tasks
        .iter()
        .map(|answer| {
            answer["results"][0]["resultCode"]
                .as_str()
                .unwrap_or("none")
        })
        .collect();
    // The object gone from the source is no failure: nothing is left to copy.
    assert_eq!(
        codes.iter().filter(|c| **c == "Succeeded").count(),
        keys.len() + 1,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == "PermanentFailure").count(),
        1,
        "{codes:?}"
    );

    // The missing object is where every failure goes, named.
    let failures = aws
        .s3fan_json_exit(&key, &["failures", "--source", &source], 3)
        .await;
    let objects: Vec<&Value> = failures["events"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["objects"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(
        objects,
        [&json!(format!("s3://{source}/{too_long}"))],
        "{failures}"
    );
    // The job's completion report, under --report-to.
    let written = clients.keys(&reports).await;
    assert!(
        written
            .iter()
            .any(|k| k.starts_with(&format!("batch/job-{job_id}/results/"))),
        "{written:?}"
    );

    // The same command again makes no second job.
    let again = aws.s3fan_json(&key, &args).await;
    assert_eq!(again["jobs"][0]["job_id"], json!(job_id), "{again}");

    // Status shows the job and how far it got.
    let status = aws.s3fan_json(&key, &["status", "--source", &source]).await;
    let jobs = status["batch_jobs"].as_array().cloned().unwrap_or_default();
    assert_eq!(jobs.len(), 1, "{status}");
    assert_eq!(jobs[0]["job_id"], json!(job_id));
    assert_eq!(jobs[0]["destination"], json!(dest));
    assert_eq!(jobs[0]["status"], "Complete");
    assert_eq!(
        (&jobs[0]["tasks"], &jobs[0]["failed"]),
        (&json!(keys.len() + 2), &json!(1)),
        "{status}"
    );

    // Destroy takes the jobs' role with the rest of the fan-out.
    let role = format!("s3fan-{source}_batch");
    assert!(clients.iam.get_role().role_name(&role).send().await.is_ok());
    let destroyed = aws
        .s3fan_json(&key, &["destroy", "--yes", "--source", &source])
        .await;
    assert_eq!(destroyed["ok"], true, "{destroyed}");
    assert!(
        clients
            .iam
            .get_role()
            .role_name(&role)
            .send()
            .await
            .is_err(),
        "the Batch Operations role is gone: {destroyed}"
    );
}
