//! End to end under faults: the deployed functions' S3 calls go through
//! tests/harness/fault_proxy.py, which answers a share of them as S3 does on
//! a bad day (503 SlowDown, 500 InternalError, a reset connection, a late
//! answer, 200 OK with an error document). Whatever S3 does, no object may
//! be lost silently: it reaches its destination or the failure queue, with
//! its error.
//!
//! One test function, because the proxy and the harness's bootstrap
//! environment are shared by every function the local AWS runs.

use std::collections::{BTreeSet, HashMap};

use crate::common::{Clients, FaultProxy, LocalAws, access_key, assert_ok, s3fan_at, unique};
use futures::StreamExt;
use serde_json::{Value, json};

/// This module's own local AWS: its tests change how every function runs
/// (`set_bootstrap_env`), which no other test may see.
fn local_aws() -> &'static LocalAws {
    crate::common::isolated_local_aws("faults")
}

const MIB: usize = 1024 * 1024;

/// Objects in the failure queue, per destination bucket: `s3fan failures`.
async fn failed_objects(source: &str) -> HashMap<String, BTreeSet<String>> {
    let listed = local_aws()
        .s3fan(
            &access_key(),
            &["failures", "--source", source, "--output", "json"],
        )
        .await;
    crate::common::assert_answered(&listed);
    let report = listed.json();
    let mut failed: HashMap<String, BTreeSet<String>> = HashMap::new();
    for event in report["events"].as_array().expect("events") {
        let destination = event["destination"]
            .as_str()
            .expect("destination")
            .trim_start_matches("s3://")
            .trim_end_matches('/')
            .to_owned();
        let prefix = format!("s3://{source}/");
        for object in event["objects"].as_array().expect("objects") {
            let key = object.as_str().expect("object").trim_start_matches(&prefix);
            failed
                .entry(destination.clone())
                .or_default()
                .insert(key.to_owned());
        }
    }
    failed
}

fn count(stats: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(stats, |value, name| &value[*name])
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_object_is_lost_whatever_s3_answers() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let proxy = FaultProxy::start(
        &aws.endpoint,
        &["--rate", "0", "--seed", "7", "--delay", "0.2"],
    );
    // Every function's S3 calls go through the proxy; multipart from 5 MiB,
    // in 5 MiB parts.
    aws.set_bootstrap_env(json!({
        "AWS_ENDPOINT_URL_S3": proxy.endpoint,
        "S3FAN_MULTIPART_THRESHOLD": (5 * MIB).to_string(),
        "S3FAN_PART_SIZE": (5 * MIB).to_string(),
    }));
    let source = unique("src-faults");
    let destinations = [unique("dst-faults-a"), unique("dst-faults-b")];
    for bucket in [&source, &destinations[0], &destinations[1]] {
        clients.create_bucket(bucket).await;
    }
    let deploy = aws
        .deploy(
            &access_key(),
            &source,
            &[&destinations[0], &destinations[1]],
            &[],
        )
        .await;
    assert_ok(&deploy);
    aws.drain();

    // 1. 200 OK with an error document, once, on each operation S3 may send
    //    it for: the SDK must see an error and try again, so every copy
    //    arrives. Had a 200 been taken for success, the copy would be
    //    missing: the proxy does not forward the spoiled request.
    proxy.next("ok-error", "CopyObject");
    proxy.next("ok-error", "UploadPartCopy");
    proxy.next("ok-error", "CompleteMultipartUpload");
    let small = "ok-error/small.txt";
    let large = "ok-error/large.bin";
    let large_body: Vec<u8> = (0..12 * MIB).map(|i| (i % 251) as u8).collect();
    clients
        .put(&source, small, b"small".to_vec(), "text/plain", &[])
        .await;
    clients
        .put(
            &source,
            large,
            large_body.clone(),
            "application/octet-stream",
            &[],
        )
        .await;
    aws.drain();
    let stats = proxy.stats();
    for operation in ["CopyObject", "UploadPartCopy", "CompleteMultipartUpload"] {
        assert_eq!(
            count(&stats, &["by_operation", operation, "ok-error"]),
            1,
            "{stats}"
        );
    }
    for destination in &destinations {
        assert_eq!(
            clients.get(destination, small).await.map(|o| o.bytes),
            Some(b"small".to_vec())
        );
        assert_eq!(
            clients.get(destination, large).await.map(|o| o.bytes),
            Some(large_body.clone()),
            "the 12 MiB multipart copy in {destination}"
        );
    }

    // 2. A 200 with an error document on every attempt: a failure, retried
    //    by Lambda, then in the failure queue with S3's error, never a copy.
    proxy.configure(json!({"rate": 1.0, "kinds": ["ok-error"], "only": ["CopyObject"]}));
    let doomed = "ok-error/always.txt";
    clients
        .put(&source, doomed, b"doomed".to_vec(), "text/plain", &[])
        .await;
    aws.drain();
    proxy.configure(json!({"rate": 0.0, "kinds": ["slowdown"], "only": null}));
    let failed = failed_objects(&source).await;
    for destination in &destinations {
        assert!(clients.get(destination, doomed).await.is_none());
        assert!(
            failed
                .get(destination)
                .is_some_and(|keys| keys.contains(doomed)),
            "{doomed} for {destination} is in the failure queue: {failed:?}"
        );
    }
    let retried = aws
        .s3fan(&access_key(), &["retry", "--source", &source])
        .await;
    assert_ok(&retried);
    for destination in &destinations {
        assert!(clients.get(destination, doomed).await.is_some());
    }

    // 3. A fifth of all S3 requests spoiled at random, over many objects.
    let objects: usize = std::env::var("S3FAN_FAULT_OBJECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    proxy.configure(json!({
        "rate": 0.2,
        "kinds": ["slowdown", "internal", "reset", "delay"],
        "only": null,
    }));
    let before = proxy.stats();
    let keys: Vec<String> = (0..objects)
        .map(|i| format!("random/{} é {i:05}.txt", i % 10))
        .collect();
    futures::stream::iter(keys.iter())
        .map(|key| clients.put(&source, key, key.clone().into_bytes(), "text/plain", &[]))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    aws.drain();
    proxy.configure(json!({"rate": 0.0}));
    let after = proxy.stats();
    let failed = failed_objects(&source).await;
    let mut report = Vec::new();
    for destination in &destinations {
        let copied = clients.keys(destination).await;
        let queued = failed.get(destination).cloned().unwrap_or_default();
        let lost: Vec<&String> = keys
            .iter()
            .filter(|key| !copied.contains(*key) && !queued.contains(*key))
            .collect();
        let arrived = keys.iter().filter(|key| copied.contains(*key)).count();
        let in_queue = keys.iter().filter(|key| queued.contains(*key)).count();
        report.push(format!(
            "{destination}: {arrived} copied, {in_queue} in the failure queue, {} lost",
            lost.len()
        ));
        assert!(lost.is_empty(), "lost in {destination}: {lost:?}");
        assert_eq!(arrived + in_queue, objects, "{destination}");
    }
    let faults: Vec<String> = ["slowdown", "internal", "reset", "delay"]
        .iter()
        .map(|kind| {
            let made = count(&after, &["faults", kind]) - count(&before, &["faults", kind]);
            assert!(made > 0, "no {kind} fault was made: {after}");
            format!("{kind} {made}")
        })
        .collect();
    let requests = count(&after, &["requests"]) - count(&before, &["requests"]);
    // For the record (cargo test -- --nocapture shows it).
    eprintln!(
        "faults: {objects} objects, {requests} S3 requests from the functions, faults made: {}; {}",
        faults.join(", "),
        report.join("; ")
    );
}

/// An IAM policy document as IAM returns it (URL-encoded JSON), parsed.
fn iam_document(text: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// What deploy makes for one fan-out, read back through the APIs: topic and
/// its policy, subscriptions, the source's whole notification configuration,
/// failure queue, and per destination the function's configuration, its
/// resource policy and asynchronous settings, its role's trust and inline
/// policies. Bucket names are replaced by placeholders, so that the
/// fan-outs of two sets of buckets compare; what differs between two
/// identical deploys (ARN suffixes of subscriptions, times) is left out.
async fn snapshot(clients: &Clients, source: &str, destinations: &[String]) -> Value {
    let account = "123456789012";
    let topic_arn = format!("arn:aws:sns:us-east-1:{account}:{source}-fanout");
    let topic = match clients
        .sns
        .get_topic_attributes()
        .topic_arn(&topic_arn)
        .send()
        .await
    {
        Ok(out) => {
            let attributes = out.attributes().cloned().unwrap_or_default();
            json!({"policy": attributes.get("Policy").map(|p| iam_document(p))})
        }
        Err(_) => Value::Null,
    };
    let mut subscriptions: Vec<String> = match clients
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic_arn)
        .send()
        .await
    {
        Ok(out) => out
            .subscriptions()
            .iter()
            .map(|s| format!("{:?} {:?}", s.protocol(), s.endpoint()))
            .collect(),
        Err(_) => Vec::new(),
    };
    subscriptions.sort();
    let notification = clients
        .s3
        .get_bucket_notification_configuration()
        .bucket(source)
        .send()
        .await
        .expect("read the source's notification configuration");
    let mut notifications: Vec<String> = notification
        .topic_configurations()
        .iter()
        .map(|c| format!("{c:?}"))
        .chain(
            notification
                .queue_configurations()
                .iter()
                .map(|c| format!("{c:?}")),
        )
        .chain(
            notification
                .lambda_function_configurations()
                .iter()
                .map(|c| format!("{c:?}")),
        )
        .collect();
    notifications.sort();
    let queue = match clients
        .sqs
        .get_queue_url()
        .queue_name(format!("{source}-fanout-failures"))
        .send()
        .await
    {
        Ok(out) => {
            let attributes = clients
                .sqs
                .get_queue_attributes()
                .queue_url(out.queue_url().unwrap_or_default())
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send()
                .await
                .expect("queue attributes");
            let attributes = attributes.attributes().cloned().unwrap_or_default();
            let get = |name: &str| {
                attributes
                    .iter()
                    .find(|(k, _)| k.as_str() == name)
                    .map(|(_, v)| v.clone())
            };
            json!({
                "policy": get("Policy").map(|p| iam_document(&p)),
                "retention": get("MessageRetentionPeriod"),
            })
        }
        Err(_) => Value::Null,
    };
    let mut functions = Vec::new();
    for destination in destinations {
        let name = crate::common::function_name_for(destination);
        let Ok(function) = clients
            .lambda
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await
        else {
            functions.push(json!({"function": name, "absent": true}));
            continue;
        };
        let role_arn = function.role().unwrap_or_default().to_owned();
        let role_name = role_arn.rsplit('/').next().unwrap_or_default().to_owned();
        let role = clients.iam.get_role().role_name(&role_name).send().await;
        let mut inline = Vec::new();
        if let Ok(names) = clients
            .iam
            .list_role_policies()
            .role_name(&role_name)
            .send()
            .await
        {
            for policy in names.policy_names() {
                let document = clients
                    .iam
                    .get_role_policy()
                    .role_name(&role_name)
                    .policy_name(policy)
                    .send()
                    .await
                    .expect("role policy");
                inline.push(
                    json!({"name": policy, "document": iam_document(document.policy_document())}),
                );
            }
        }
        let resource_policy = clients
            .lambda
            .get_policy()
            .function_name(&name)
            .send()
            .await
            .ok()
            .and_then(|p| p.policy().map(iam_document));
        let invoke_config = clients
            .lambda
            .get_function_event_invoke_config()
            .function_name(&name)
            .send()
            .await
            .ok()
            .map(|c| {
                format!(
                    "{:?} {:?} {:?}",
                    c.maximum_retry_attempts(),
                    c.maximum_event_age_in_seconds(),
                    c.destination_config()
                )
            });
        let mut environment: Vec<String> = function
            .environment()
            .and_then(|e| e.variables())
            .map(|v| v.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default();
        environment.sort();
        functions.push(json!({
            "function": name,
            "runtime": format!("{:?}", function.runtime()),
            "handler": function.handler(),
            "role": role_arn,
            "trust": role.ok().and_then(|r| r.role().map(|r| iam_document(r.assume_role_policy_document().unwrap_or_default()))),
            "inline_policies": inline,
            "memory": function.memory_size(),
            "timeout": function.timeout(),
            "architectures": format!("{:?}", function.architectures()),
            "code_sha256": function.code_sha256(),
            "environment": environment,
            "resource_policy": resource_policy,
            "invoke_config": invoke_config,
        }));
    }
    // Every role deploy names after a destination, found by its name and
    // not through a function: a role whose function is gone still may read
    // the source and write the destination.
    let mut roles = Vec::new();
    for destination in destinations {
        let name = format!("s3fan-{}", crate::common::function_name_for(destination));
        if clients
            .iam
            .get_role()
            .role_name(&name)
            .send()
            .await
            .is_err()
        {
            continue;
        }
        let policies = clients
            .iam
            .list_role_policies()
            .role_name(&name)
            .send()
            .await
            .map(|out| out.policy_names().to_vec())
            .unwrap_or_default();
        roles.push(json!({"role": name, "inline_policies": policies}));
    }
    let mut text = json!({
        "topic": topic,
        "subscriptions": subscriptions,
        "notifications": notifications,
        "queue": queue,
        "functions": functions,
        "roles": roles,
    })
    .to_string();
    // Longest first: one name may be the start of another (x-1, x-10).
    let mut names: Vec<(String, String)> = destinations
        .iter()
        .enumerate()
        .map(|(i, d)| (d.clone(), format!("DST{i}")))
        .chain([(source.to_owned(), "SRC".to_owned())])
        .collect();
    names.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, placeholder) in names {
        text = text.replace(&name, &placeholder);
    }
    serde_json::from_str(&text).expect("snapshot JSON")
}

/// A source with a notification of its own (deletes, to an SQS queue) that
/// every deploy and destroy must keep, and two destinations.
async fn fresh_buckets(clients: &Clients) -> (String, Vec<String>) {
    let source = unique("int");
    let destinations = vec![unique("int-a"), unique("int-b")];
    for bucket in std::iter::once(&source).chain(&destinations) {
        clients.create_bucket(bucket).await;
    }
    let queue = clients
        .sqs
        .create_queue()
        .queue_name(format!("{source}-theirs"))
        .send()
        .await
        .expect("create their queue");
    let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{source}-theirs");
    let _ = queue;
    clients
        .s3
        .put_bucket_notification_configuration()
        .bucket(&source)
        .notification_configuration(
            aws_sdk_s3::types::NotificationConfiguration::builder()
                .queue_configurations(
                    aws_sdk_s3::types::QueueConfiguration::builder()
                        .id("theirs")
                        .queue_arn(queue_arn)
                        .events(aws_sdk_s3::types::Event::S3ObjectRemoved)
                        .build()
                        .expect("queue configuration"),
                )
                .build(),
        )
        .send()
        .await
        .expect("their notification");
    (source, destinations)
}

fn fanout_args<'a>(command: &'a str, source: &'a str, destinations: &'a [String]) -> Vec<&'a str> {
    let mut args = vec![command, "--source", source];
    for destination in destinations {
        args.extend(["--dest", destination.as_str()]);
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_deploy_or_destroy_completes_when_run_again() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let proxy = FaultProxy::start(&aws.endpoint, &["--rate", "0"]);

    // What an uninterrupted deploy makes, and how many writes it takes.
    let (source, destinations) = fresh_buckets(&clients).await;
    let untouched = snapshot(&clients, &source, &destinations).await;
    proxy.fail_write(0);
    let deploy = fanout_args("deploy", &source, &destinations);
    assert_ok(&s3fan_at(&proxy.endpoint, &access_key(), &deploy).await);
    let deploy_writes = proxy.writes();
    let deployed = snapshot(&clients, &source, &destinations).await;
    assert_ne!(deployed, untouched);
    proxy.fail_write(0);
    let destroy = ["destroy", "--yes", "--source", source.as_str()];
    assert_ok(&s3fan_at(&proxy.endpoint, &access_key(), &destroy).await);
    let destroy_writes = proxy.writes();
    assert_eq!(
        snapshot(&clients, &source, &destinations).await,
        untouched,
        "destroy leaves the bucket as it was"
    );
    aws.drain();

    // Each write of deploy refused in turn: the deploy fails, saying what
    // was refused, and the next deploy ends where an uninterrupted one does.
    for nth in 1..=deploy_writes.len() {
        let (source, destinations) = fresh_buckets(&clients).await;
        let deploy = fanout_args("deploy", &source, &destinations);
        proxy.fail_write(nth);
        let interrupted = s3fan_at(&proxy.endpoint, &access_key(), &deploy).await;
        let refused = proxy.writes().get(nth - 1).cloned();
        assert!(
            !interrupted.success
                && format!("{}{}", interrupted.stdout, interrupted.stderr).contains("AccessDenied"),
            "deploy with write {nth} ({refused:?}) refused:\n{}\n{}",
            interrupted.stdout,
            interrupted.stderr
        );
        proxy.fail_write(0);
        let again = s3fan_at(&proxy.endpoint, &access_key(), &deploy).await;
        assert_ok(&again);
        assert_eq!(
            snapshot(&clients, &source, &destinations).await,
            deployed,
            "after write {nth} ({refused:?}) of deploy was refused, and deploy ran again"
        );
        aws.drain();
    }

    // The same for destroy.
    for nth in 1..=destroy_writes.len() {
        let (source, destinations) = fresh_buckets(&clients).await;
        let untouched = snapshot(&clients, &source, &destinations).await;
        let deploy = fanout_args("deploy", &source, &destinations);
        assert_ok(&s3fan_at(&aws.endpoint, &access_key(), &deploy).await);
        aws.drain();
        let destroy = ["destroy", "--yes", "--source", source.as_str()];
        proxy.fail_write(nth);
        let interrupted = s3fan_at(&proxy.endpoint, &access_key(), &destroy).await;
        let refused = proxy.writes().get(nth - 1).cloned();
        assert!(
            !interrupted.success
                && format!("{}{}", interrupted.stdout, interrupted.stderr).contains("AccessDenied"),
            "destroy with write {nth} ({refused:?}) refused:\n{}\n{}",
            interrupted.stdout,
            interrupted.stderr
        );
        proxy.fail_write(0);
        assert_ok(&s3fan_at(&proxy.endpoint, &access_key(), &destroy).await);
        assert_eq!(
            snapshot(&clients, &source, &destinations).await,
            untouched,
            "after write {nth} ({refused:?}) of destroy was refused, and destroy ran again"
        );
    }
    // A deploy interrupted at each of its writes, then destroyed: nothing of
    // s3fan's is left, roles included (a deploy stopped after CreateRole and
    // before CreateFunction leaves a role that no function leads to).
    for nth in 1..=deploy_writes.len() {
        let (source, destinations) = fresh_buckets(&clients).await;
        let untouched = snapshot(&clients, &source, &destinations).await;
        let deploy = fanout_args("deploy", &source, &destinations);
        proxy.fail_write(nth);
        let interrupted = s3fan_at(&proxy.endpoint, &access_key(), &deploy).await;
        let refused = proxy.writes().get(nth - 1).cloned();
        assert!(
            !interrupted.success,
            "deploy with write {nth} ({refused:?}) refused"
        );
        proxy.fail_write(0);
        aws.drain();
        let destroy = ["destroy", "--yes", "--source", source.as_str()];
        assert_ok(&s3fan_at(&proxy.endpoint, &access_key(), &destroy).await);
        assert_eq!(
            snapshot(&clients, &source, &destinations).await,
            untouched,
            "after write {nth} ({refused:?}) of deploy was refused, and destroy ran"
        );
    }
    eprintln!(
        "interruptions: deploy at each of its {} writes ({}), destroy at each of its {} ({})",
        deploy_writes.len(),
        deploy_writes.join(", "),
        destroy_writes.len(),
        destroy_writes.join(", ")
    );
}

/// Their queue entry, for ObjectRemoved events, as another tool would add it
/// with its own read-modify-write.
async fn add_their_queue(clients: &Clients, bucket: &str, id: &str) {
    clients
        .sqs
        .create_queue()
        .queue_name(id)
        .send()
        .await
        .expect("create their queue");
    let mut configuration = notification_configuration(clients, bucket).await;
    configuration
        .queue_configurations
        .get_or_insert_with(Vec::new)
        .push(
            aws_sdk_s3::types::QueueConfiguration::builder()
                .id(id)
                .queue_arn(format!("arn:aws:sqs:us-east-1:123456789012:{id}"))
                .events(aws_sdk_s3::types::Event::S3ObjectRemoved)
                .build()
                .expect("queue configuration"),
        );
    clients
        .s3
        .put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(configuration)
        .send()
        .await
        .expect("their notification");
}

async fn notification_configuration(
    clients: &Clients,
    bucket: &str,
) -> aws_sdk_s3::types::NotificationConfiguration {
    let read = clients
        .s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
        .expect("read the notification configuration");
    aws_sdk_s3::types::NotificationConfiguration::builder()
        .set_topic_configurations(read.topic_configurations)
        .set_queue_configurations(read.queue_configurations)
        .set_lambda_function_configurations(read.lambda_function_configurations)
        .build()
}

/// S3 has no conditional write for a bucket's notification configuration.
/// A deploy is held just before its last per-destination write (Subscribe),
/// long after it read the configuration for its plan; meanwhile another tool
/// adds its entry and a second deploy of the same fan-out runs to the end.
/// When the first deploy goes on, neither their entry nor s3fan's is lost,
/// and s3fan's appears once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_deploys_and_tools_never_lose_a_notification_entry() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let proxy = FaultProxy::start(&aws.endpoint, &["--rate", "0"]);
    let source = unique("race");
    let destination = unique("race-d");
    for bucket in [&source, &destination] {
        clients.create_bucket(bucket).await;
    }
    let args = ["deploy", "--source", &source, "--dest", &destination].map(String::from);

    proxy.hold("Subscribe");
    let first = {
        let (endpoint, args) = (proxy.endpoint.clone(), args.clone());
        tokio::spawn(async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            s3fan_at(&endpoint, &access_key(), &args).await
        })
    };
    assert_eq!(proxy.held().await, "Subscribe");
    let theirs = format!("{source}-late");
    add_their_queue(&clients, &source, &theirs).await;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_ok(&s3fan_at(&aws.endpoint, &access_key(), &args).await);
    proxy.release();
    assert_ok(&first.await.expect("first deploy"));

    let configuration = notification_configuration(&clients, &source).await;
    let queues: Vec<_> = configuration
        .queue_configurations()
        .iter()
        .filter_map(|q| q.id())
        .collect();
    assert_eq!(
        queues,
        [theirs.as_str()],
        "their entry survived both deploys"
    );
    let topics: Vec<_> = configuration
        .topic_configurations()
        .iter()
        .filter_map(|t| t.id())
        .collect();
    assert_eq!(topics, ["s3fan-fanout"], "s3fan's entry, once");
}
