//! End to end: `s3fan deploy`, `status` and `destroy`, the release binary run
//! as a user runs it, against the local AWS. Functions it deploys run the
//! same binary as their bootstrap, so an upload after deploy proves the whole
//! fan-out.

use crate::common::{Clients, access_key, assert_ok, assert_refused, local_aws, unique, writes_by};
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, LambdaFunctionConfiguration, NotificationConfiguration,
    NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter, TopicConfiguration,
};
use serde_json::{Value, json};

fn reads_by(key: &str) -> usize {
    local_aws()
        .requests()
        .into_iter()
        .filter(|r| r.access_key.as_deref() == Some(key) && !r.is_write())
        .count()
}

async fn buckets(clients: &Clients, names: &[&str]) {
    for name in names {
        clients.create_bucket(name).await;
    }
}

/// The names deploy gave, by (kind, destination), from its JSON output.
fn name_of(report: &Value, kind: &str, destination: &str) -> String {
    report["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["kind"] == kind && c["destination"] == destination)
        .and_then(|c| c["name"].as_str())
        .unwrap_or_else(|| panic!("no {kind} for {destination} in {report}"))
        .to_owned()
}

fn actions(report: &Value) -> Vec<(String, String, String)> {
    report["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["kind"].as_str().unwrap_or_default().to_owned(),
                c["destination"].as_str().unwrap_or_default().to_owned(),
                c["action"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn function_exists(clients: &Clients, name: &str) -> bool {
    match clients
        .lambda
        .get_function()
        .function_name(name)
        .send()
        .await
    {
        Ok(_) => true,
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(err) => panic!("get function {name}: {err:?}"),
    }
}

async fn lambda_subscriptions(clients: &Clients, topic_arn: &str) -> Vec<String> {
    let out = clients
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .send()
        .await
        .expect("list subscriptions");
    let mut endpoints: Vec<String> = out
        .subscriptions()
        .iter()
        .filter_map(|s| s.endpoint().map(str::to_owned))
        .collect();
    endpoints.sort();
    endpoints
}

fn topic_arn(source: &str) -> String {
    format!("arn:aws:sns:us-east-1:123456789012:{source}-fanout")
}

fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_to_three_destinations_then_new_objects_reach_all_of_them() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src");
    let (d1, d2, d3) = (unique("dst-one"), unique("dst.two"), unique("dst-three"));
    buckets(&clients, &[&source, &d1, &d2, &d3]).await;

    let run = aws
        .deploy(
            &access_key(),
            &source,
            &[&d1, &d2, &d3],
            &["--output", "json"],
        )
        .await;
    assert_ok(&run);
    let report = run.json();
    assert_eq!(report["ok"], true);
    assert!(
        actions(&report)
            .iter()
            .all(|(_, _, action)| action == "create"),
        "{report}"
    );

    clients
        .put(
            &source,
            "reports/2026 é.csv",
            b"a,b\n1,2\n".to_vec(),
            "text/csv",
            &[("owner", "finance")],
        )
        .await;
    aws.drain();
    let original = clients
        .get(&source, "reports/2026 é.csv")
        .await
        .expect("source object");
    for destination in [&d1, &d2, &d3] {
        let copy = clients.get(destination, "reports/2026 é.csv").await;
        assert_eq!(copy.as_ref(), Some(&original), "copy in {destination}");
    }

    // The dotted destination's function: a valid name, the bucket in its
    // environment, the release binary's architecture.
    let function = name_of(&report, "function", &d2);
    assert!(!function.contains('.'), "{function}");
    let config = clients
        .lambda
        .get_function_configuration()
        .function_name(&function)
        .send()
        .await
        .expect("function configuration");
    assert_eq!(
        config.runtime().map(|r| r.as_str()),
        Some("provided.al2023")
    );
    assert_eq!(config.handler(), Some("bootstrap"));
    assert_eq!(config.timeout(), Some(300));
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    };
    assert_eq!(
        config.architectures().first().map(|a| a.as_str()),
        Some(arch)
    );
    let env = config
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    assert_eq!(env.get("S3FAN_DEST_BUCKET"), Some(&d2));
    assert_eq!(env.get("S3FAN_SOURCE_BUCKET"), Some(&source));

    // The documents as stored, exactly (moto does not evaluate them).
    let attributes = clients
        .sns
        .get_topic_attributes()
        .topic_arn(topic_arn(&source))
        .send()
        .await
        .expect("topic attributes");
    let policy: Value = serde_json::from_str(&attributes.attributes().unwrap()["Policy"])
        .expect("topic policy JSON");
    assert_eq!(
        policy,
        json!({"Version": "2012-10-17", "Id": "s3fan-topic-policy", "Statement": [{
            "Sid": "S3PublishesSourceEvents", "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"}, "Action": "SNS:Publish",
            "Resource": topic_arn(&source),
            "Condition": {"ArnLike": {"aws:SourceArn": format!("arn:aws:s3:::{source}")},
                          "StringEquals": {"aws:SourceAccount": "123456789012"}}}]})
    );
    let role = name_of(&report, "role", &d2);
    let role_policy = clients
        .iam
        .get_role_policy()
        .role_name(&role)
        .policy_name("s3fan-replication")
        .send()
        .await
        .expect("role policy");
    let document = role_policy.policy_document();
    let decoded = percent_encoding::percent_decode_str(document)
        .decode_utf8()
        .expect("utf-8");
    let role_policy: Value = serde_json::from_str(document)
        .or_else(|_| serde_json::from_str(&decoded))
        .expect("role policy JSON");
    let log_group = format!("arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{function}");
    assert_eq!(
        role_policy,
        json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "ReadSourceObjects", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:GetObjectTagging"],
             "Resource": format!("arn:aws:s3:::{source}/*")},
            {"Sid": "TellDeletedSourceObjectsFromDenied", "Effect": "Allow",
             "Action": "s3:ListBucket", "Resource": format!("arn:aws:s3:::{source}")},
            {"Sid": "WriteDestinationObjects", "Effect": "Allow",
             "Action": ["s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload",
                        "s3:ListMultipartUploadParts"],
             "Resource": format!("arn:aws:s3:::{d2}/*")},
            {"Sid": "InvokeItselfToGoOn", "Effect": "Allow", "Action": "lambda:InvokeFunction",
             "Resource": format!("arn:aws:lambda:us-east-1:123456789012:function:{function}")},
            {"Sid": "SendFailedEventsToQueue", "Effect": "Allow", "Action": "sqs:SendMessage",
             "Resource": format!("arn:aws:sqs:us-east-1:123456789012:{source}-fanout-failures")},
            {"Sid": "WriteOwnLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": [log_group.clone(), format!("{log_group}:*")]}]})
    );
    // The failure queue admits exactly the three roles.
    let queue = format!("{source}-fanout-failures");
    let url = clients.failure_queue_url(&source).await;
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .expect("queue attributes");
    let queue_policy: Value = serde_json::from_str(
        attributes
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::Policy))
            .expect("queue policy"),
    )
    .expect("queue policy JSON");
    let mut roles: Vec<String> = [&d1, &d2, &d3]
        .iter()
        .map(|d| {
            format!(
                "arn:aws:iam::123456789012:role/{}",
                name_of(&report, "role", d)
            )
        })
        .collect();
    roles.sort();
    assert_eq!(
        queue_policy,
        json!({"Version": "2012-10-17", "Id": "s3fan-failure-queue-policy", "Statement": [{
            "Sid": "FunctionsSendFailedEvents", "Effect": "Allow",
            "Principal": {"AWS": roles}, "Action": "sqs:SendMessage",
            "Resource": format!("arn:aws:sqs:us-east-1:123456789012:{queue}")}]})
    );
    let permission = clients
        .lambda
        .get_policy()
        .function_name(&function)
        .send()
        .await
        .expect("function policy");
    let permission: Value =
        serde_json::from_str(permission.policy().unwrap_or_default()).expect("policy JSON");
    let statements = permission["Statement"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(statements.len(), 1, "{permission}");
    assert_eq!(statements[0]["Sid"], "s3fan-sns-invoke");
    assert_eq!(statements[0]["Principal"]["Service"], "sns.amazonaws.com");
    assert_eq!(
        statements[0]["Condition"]["ArnLike"]["AWS:SourceArn"],
        json!(topic_arn(&source))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeploy_without_change_makes_no_write() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-same");
    let (d1, d2) = (unique("dst-same"), unique("dst.same"));
    buckets(&clients, &[&source, &d1, &d2]).await;
    let args = [
        "deploy", "--source", &source, "--dest", &d1, "--dest", &d2, "--output", "json",
    ];
    assert_ok(&aws.s3fan(&access_key(), &args).await);

    let key = access_key();
    let again = aws.s3fan(&key, &args).await;
    assert_ok(&again);
    assert!(reads_by(&key) > 5, "the redeploy read the current state");
    assert_eq!(
        writes_by(&key),
        Vec::<String>::new(),
        "a no-change redeploy must not write"
    );
    assert!(
        actions(&again.json())
            .iter()
            .all(|(_, _, a)| a == "unchanged"),
        "{}",
        again.stdout
    );

    let report = again.json();
    let functions = [
        name_of(&report, "function", &d1),
        name_of(&report, "function", &d2),
    ];
    let mut expected: Vec<String> = functions.iter().map(|f| function_arn(f)).collect();
    expected.sort();
    assert_eq!(
        lambda_subscriptions(&clients, &topic_arn(&source)).await,
        expected,
        "one subscription each"
    );
    for function in &functions {
        let policy = clients
            .lambda
            .get_policy()
            .function_name(function)
            .send()
            .await
            .expect("policy");
        let policy: Value =
            serde_json::from_str(policy.policy().unwrap_or_default()).expect("JSON");
        assert_eq!(
            policy["Statement"].as_array().map(Vec::len),
            Some(1),
            "one permission: {policy}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_configuration_and_code_are_updated_and_nothing_else() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-upd");
    let destination = unique("dst-upd");
    buckets(&clients, &[&source, &destination]).await;
    let base = [
        "deploy",
        "--source",
        source.as_str(),
        "--dest",
        destination.as_str(),
    ];
    assert_ok(&aws.s3fan(&access_key(), &base).await);

    let key = access_key();
    let run = aws
        .s3fan(
            &key,
            &[&base[..], &["--memory", "256", "--output", "json"]].concat(),
        )
        .await;
    assert_ok(&run);
    let changed: Vec<_> = actions(&run.json())
        .into_iter()
        .filter(|(_, _, a)| a != "unchanged")
        .collect();
    assert_eq!(
        changed,
        vec![("function".into(), destination.clone(), "update".into())]
    );
    let writes = writes_by(&key);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(
        writes[0].starts_with("PUT /2015-03-31/functions/") && writes[0].contains("/configuration"),
        "{writes:?}"
    );
    let config = clients
        .lambda
        .get_function_configuration()
        .function_name(&destination)
        .send()
        .await
        .expect("config");
    assert_eq!(config.memory_size(), Some(256));
    let old_sha = config.code_sha256().unwrap_or_default().to_owned();

    // Another build of the code: same program, different bytes.
    let other_build =
        std::env::temp_dir().join(format!("s3fan-other-build-{}", std::process::id()));
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_s3fan")).expect("read binary");
    bytes.extend_from_slice(b"another build");
    std::fs::write(&other_build, bytes).expect("write other build");
    let other = other_build.to_string_lossy().into_owned();
    let key = access_key();
    let run = aws
        .deploy(
            &key,
            &source,
            &[&destination],
            &["--memory", "256", "--bootstrap", &other, "--output", "json"],
        )
        .await;
    assert_ok(&run);
    let function = run.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "function")
        .cloned()
        .unwrap();
    assert_eq!(
        (function["action"].as_str(), function["detail"].as_str()),
        (Some("update"), Some("code"))
    );
    let writes = writes_by(&key);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].contains("/code"), "{writes:?}");
    let config = clients
        .lambda
        .get_function_configuration()
        .function_name(&destination)
        .send()
        .await
        .expect("config");
    assert_ne!(config.code_sha256().unwrap_or_default(), old_sha);
    let _ = std::fs::remove_file(other_build);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_are_added_and_removed() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-move");
    let (a, b, c) = (unique("dst-a"), unique("dst-b"), unique("dst-c"));
    buckets(&clients, &[&source, &a, &b, &c]).await;
    assert_ok(&aws.deploy(&access_key(), &source, &[&a, &b], &[]).await);

    let run = aws
        .deploy(
            &access_key(),
            &source,
            &[&b, &c],
            &["--yes", "--output", "json"],
        )
        .await;
    assert_ok(&run);
    let report = run.json();
    let of = |destination: &str| {
        let mut found: Vec<(String, String)> = actions(&report)
            .into_iter()
            .filter(|(_, d, _)| d == destination)
            .map(|(kind, _, action)| (kind, action))
            .collect();
        found.sort();
        found
    };
    let all = |action: &str| {
        let mut kinds = vec!["function", "permission", "role", "subscription"];
        // A removed function's asynchronous settings go with it.
        if action != "delete" {
            kinds.push("invoke_config");
        }
        let mut v: Vec<(String, String)> = kinds
            .iter()
            .map(|k| (k.to_string(), action.to_string()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(of(&a), all("delete"));
    assert_eq!(of(&b), all("unchanged"));
    assert_eq!(of(&c), all("create"));
    let removed = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["destination"] == json!(a))
        .unwrap()
        .clone();
    assert_eq!(removed["detail"], "no longer listed");

    assert!(
        !function_exists(&clients, &a).await,
        "the removed destination's function is gone"
    );
    let role = clients
        .iam
        .get_role()
        .role_name(format!("s3fan-{a}"))
        .send()
        .await;
    assert!(role.is_err(), "the removed destination's role is gone");
    let mut expected = vec![function_arn(&b), function_arn(&c)];
    expected.sort();
    assert_eq!(
        lambda_subscriptions(&clients, &topic_arn(&source)).await,
        expected
    );

    clients
        .put(&source, "after.txt", b"new".to_vec(), "text/plain", &[])
        .await;
    aws.drain();
    assert!(clients.get(&b, "after.txt").await.is_some());
    assert!(clients.get(&c, "after.txt").await.is_some());
    assert!(
        clients.get(&a, "after.txt").await.is_none(),
        "removed destinations get nothing"
    );
}

/// The failure queue's policy, as a JSON document.
async fn queue_policy(clients: &Clients, source: &str) -> Value {
    let url = clients.failure_queue_url(source).await;
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .expect("queue attributes");
    attributes
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::Policy))
        .map(|p| serde_json::from_str(p).expect("a JSON policy"))
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_one_destination_leaves_the_queue_admitting_exactly_the_rest() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-one");
    let (a, b) = (unique("dst-one-a"), unique("dst-one-b"));
    buckets(&clients, &[&source, &a, &b]).await;
    // Buckets as the aws cli and IAM write them.
    let (as_url, as_arn) = (format!("s3://{source}"), format!("arn:aws:s3:::{a}"));
    assert_ok(
        &aws.deploy(&access_key(), &as_url, &[&as_arn, &b], &[])
            .await,
    );
    assert!(function_exists(&clients, &a).await && function_exists(&clients, &b).await);
    let role = |d: &str| format!("arn:aws:iam::123456789012:role/s3fan-{d}");
    let mut both = vec![role(&a), role(&b)];
    both.sort();
    assert_eq!(
        queue_policy(&clients, &source).await["Statement"][0]["Principal"]["AWS"],
        json!(both)
    );

    let destroyed = aws
        .s3fan(
            &access_key(),
            &["destroy", "--yes", "--source", &source, "--dest", &a],
        )
        .await;
    assert_ok(&destroyed);
    assert!(
        !destroyed.stdout.contains("created"),
        "destroy creates nothing: {}",
        destroyed.stdout
    );
    assert!(!function_exists(&clients, &a).await);
    assert_eq!(
        queue_policy(&clients, &source).await["Statement"][0]["Principal"]["AWS"],
        json!([role(&b)]),
        "the removed role may no longer send to the queue"
    );
    let status = aws
        .s3fan(
            &access_key(),
            &["status", "--source", &source, "--output", "json"],
        )
        .await;
    assert_ok(&status);
    assert_eq!(status.json()["drift"], json!([]), "{}", status.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_whose_function_is_gone_is_drift_and_the_next_deploy_removes_it() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-orphan");
    let (kept, orphan) = (unique("dst-orphan-a"), unique("dst-orphan-b"));
    buckets(&clients, &[&source, &kept, &orphan]).await;
    assert_ok(
        &aws.deploy(&access_key(), &source, &[&kept, &orphan], &[])
            .await,
    );
    // What an interrupted destroy leaves: the function gone, its role not.
    clients
        .sns
        .unsubscribe()
        .subscription_arn(
            clients
                .sns
                .list_subscriptions_by_topic()
                .topic_arn(topic_arn(&source))
                .send()
                .await
                .expect("subscriptions")
                .subscriptions()
                .iter()
                .find(|s| s.endpoint() == Some(function_arn(&orphan).as_str()))
                .and_then(|s| s.subscription_arn())
                .expect("the orphan's subscription"),
        )
        .send()
        .await
        .expect("unsubscribe");
    clients
        .lambda
        .delete_function()
        .function_name(&orphan)
        .send()
        .await
        .expect("delete the function by hand");
    let role = format!("s3fan-{orphan}");

    let status = aws
        .s3fan(
            &access_key(),
            &["status", "--source", &source, "--output", "json"],
        )
        .await
        .json();
    assert!(
        status["drift"].as_array().is_some_and(|d| d
            .iter()
            .any(|c| c["kind"] == "role" && c["name"] == role.as_str() && c["action"] == "delete")),
        "status shows the role left behind: {status}"
    );
    assert_eq!(status["orphaned_roles"], json!([role]), "{status}");
    let run = aws
        .deploy(
            &access_key(),
            &source,
            &[&kept],
            &["--yes", "--output", "json"],
        )
        .await;
    assert_ok(&run);
    assert_eq!(name_of(&run.json(), "role", &orphan), role);
    assert!(
        clients
            .iam
            .get_role()
            .role_name(&role)
            .send()
            .await
            .is_err(),
        "the role no function led to is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_a_source_with_nothing_deployed_says_so() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-nothing");
    buckets(&clients, &[&source]).await;
    let run = aws
        .s3fan(&access_key(), &["status", "--source", &source])
        .await;
    assert_ok(&run);
    assert!(
        run.stdout
            .contains(&format!("nothing is deployed for s3://{source}")),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("in sync"), "{}", run.stdout);
    // A read-only command that fails never says "Nothing was changed".
    let missing = unique("no-such-src");
    let run = aws
        .s3fan(&access_key(), &["status", "--source", &missing])
        .await;
    assert_refused(&run, &["does not exist"]);
    assert!(
        !run.stderr.contains("Nothing was changed"),
        "{}",
        run.stderr
    );
}

/// A bucket that already notifies others: a queue on deletes, a function on
/// new images.
async fn existing_notifications(clients: &Clients, bucket: &str) -> NotificationConfiguration {
    let configuration = NotificationConfiguration::builder()
        .queue_configurations(
            QueueConfiguration::builder()
                .id("audit-deletes")
                .queue_arn("arn:aws:sqs:us-east-1:123456789012:audit")
                .events(Event::S3ObjectRemoved)
                .build()
                .unwrap(),
        )
        .lambda_function_configurations(
            LambdaFunctionConfiguration::builder()
                .id("thumbnails")
                .lambda_function_arn("arn:aws:lambda:us-east-1:123456789012:function:thumbnailer")
                .events(Event::S3ObjectCreated)
                .filter(
                    NotificationConfigurationFilter::builder()
                        .key(
                            S3KeyFilter::builder()
                                .filter_rules(
                                    FilterRule::builder()
                                        .name(FilterRuleName::Prefix)
                                        .value("images/")
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .build();
    clients
        .s3
        .put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(configuration.clone())
        .send()
        .await
        .expect("put existing notifications");
    configuration
}

async fn notifications(clients: &Clients, bucket: &str) -> aws_sdk_s3::operation::get_bucket_notification_configuration::GetBucketNotificationConfigurationOutput{
    clients
        .s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
        .expect("get notifications")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_notifications_survive_deploy_and_destroy() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-keep");
    let destination = unique("dst-keep");
    buckets(&clients, &[&source, &destination]).await;
    existing_notifications(&clients, &source).await;
    let before = notifications(&clients, &source).await;

    assert_ok(
        &aws.deploy(
            &access_key(),
            &source,
            &[&destination],
            &["--prefix", "docs/"],
        )
        .await,
    );
    let during = notifications(&clients, &source).await;
    assert_eq!(during.queue_configurations(), before.queue_configurations());
    assert_eq!(
        during.lambda_function_configurations(),
        before.lambda_function_configurations()
    );
    let ours: Vec<&TopicConfiguration> = during.topic_configurations().iter().collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].id(), Some("s3fan-fanout"));
    assert_eq!(ours[0].topic_arn(), topic_arn(&source));
    let rules = ours[0]
        .filter()
        .and_then(|f| f.key())
        .map(|k| k.filter_rules().to_vec())
        .unwrap_or_default();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].value(), Some("docs/"));

    // Another prefix, planned: the plan names the attribute, its value in
    // AWS and the wanted one, in words and in JSON, and writes nothing.
    let key = access_key();
    let moved = ["--prefix", "out/", "--dry-run"];
    let text = aws.deploy(&key, &source, &[&destination], &moved).await;
    crate::common::assert_exit(&text, 3);
    assert!(
        text.stdout.contains("~ prefix \"docs/\" -> \"out/\"")
            && text
                .stdout
                .contains("~ environment S3FAN_KEY_PREFIX \"docs/\" -> \"out/\""),
        "{}",
        text.stdout
    );
    let json_flags = [&moved[..], &["--output", "json"]].concat();
    let planned = aws
        .deploy(&key, &source, &[&destination], &json_flags)
        .await
        .json();
    let notification = planned["changes"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["kind"] == "notification").cloned())
        .expect("the notification in the plan");
    assert_eq!(notification["action"], "update", "{planned}");
    assert_eq!(
        notification["diff"],
        json!([{"attribute": "prefix", "before": "docs/", "after": "out/"}])
    );
    assert_eq!(writes_by(&key), Vec::<String>::new());

    let key = access_key();
    let run = aws
        .s3fan(&key, &["destroy", "--yes", "--source", &source])
        .await;
    assert_ok(&run);
    let after = notifications(&clients, &source).await;
    assert_eq!(after.queue_configurations(), before.queue_configurations());
    assert_eq!(
        after.lambda_function_configurations(),
        before.lambda_function_configurations()
    );
    assert!(after.topic_configurations().is_empty(), "{after:?}");
    assert!(!function_exists(&clients, &destination).await);
    let topic = clients
        .sns
        .get_topic_attributes()
        .topic_arn(topic_arn(&source))
        .send()
        .await;
    assert!(topic.is_err(), "the topic is gone");

    // Idempotent: a second destroy finds nothing to do and writes nothing.
    let key = access_key();
    assert_ok(
        &aws.s3fan(&key, &["destroy", "--yes", "--source", &source])
            .await,
    );
    assert_eq!(writes_by(&key), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlapping_configuration_is_refused_before_any_change() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-overlap");
    let destination = unique("dst-overlap");
    buckets(&clients, &[&source, &destination]).await;
    let other_topic = clients
        .sns
        .create_topic()
        .name(unique("someone-elses"))
        .send()
        .await
        .unwrap();
    clients
        .s3
        .put_bucket_notification_configuration()
        .bucket(&source)
        .notification_configuration(
            NotificationConfiguration::builder()
                .topic_configurations(
                    TopicConfiguration::builder()
                        .id("someone-else")
                        .topic_arn(other_topic.topic_arn().unwrap())
                        .events(Event::S3ObjectCreatedPut)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .expect("put notification");

    let key = access_key();
    let run = aws.deploy(&key, &source, &[&destination], &[]).await;
    assert_refused(
        &run,
        &[
            "\"someone-else\"",
            "overlaps",
            "--prefix",
            "Nothing was changed",
        ],
    );
    assert_eq!(writes_by(&key), Vec::<String>::new());
    assert!(!function_exists(&clients, &destination).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_and_changes_nothing() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-dry");
    let destination = unique("dst-dry");
    buckets(&clients, &[&source, &destination]).await;
    let key = access_key();
    let run = aws
        .deploy(&key, &source, &[&destination], &["--dry-run"])
        .await;
    // A plan with changes: exit 3, as terraform's -detailed-exitcode 2.
    crate::common::assert_exit(&run, 3);
    assert!(run.stdout.contains("would create"), "{}", run.stdout);
    assert!(
        run.stdout.contains("nothing was changed (dry run)"),
        "{}",
        run.stdout
    );
    assert_eq!(writes_by(&key), Vec::<String>::new());
    assert!(!function_exists(&clients, &destination).await);

    let flags = ["--dry-run", "--output", "json"];
    let planned = aws
        .deploy(&access_key(), &source, &[&destination], &flags)
        .await;
    crate::common::assert_exit(&planned, 3);
    let report = planned.json();
    assert_eq!(report["dry_run"], true);
    assert_eq!(
        report["changes"].as_array().map(Vec::len),
        Some(9),
        "{report}"
    );
    assert!(
        report["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "planned")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_clear_message_and_no_change() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-bad");
    let destination = unique("dst-bad");
    buckets(&clients, &[&source, &destination]).await;
    let missing = unique("no-such-bucket");

    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            vec!["--dest".into(), source.clone()],
            vec![format!("{source:?} is the source bucket")],
        ),
        (
            vec![
                "--dest".into(),
                destination.clone(),
                "--dest".into(),
                destination.clone(),
            ],
            vec!["listed twice".into()],
        ),
        (
            vec!["--dest".into(), "Bad_Name".into()],
            vec!["destination bucket name \"Bad_Name\" is invalid".into()],
        ),
        (
            vec!["--dest".into(), missing.clone()],
            vec![format!("destination bucket {missing} does not exist")],
        ),
        (
            vec![
                "--dest".into(),
                destination.clone(),
                "--tag".into(),
                "oops".into(),
            ],
            vec!["KEY=VALUE".into()],
        ),
        (
            vec![
                "--dest".into(),
                destination.clone(),
                "--timeout".into(),
                "901".into(),
            ],
            vec!["1 to 900".into()],
        ),
    ];
    for (extra, expected) in cases {
        let key = access_key();
        let mut args = vec!["deploy", "--source", &source];
        args.extend(extra.iter().map(String::as_str));
        let run = aws.s3fan(&key, &args).await;
        assert_refused(
            &run,
            &expected.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(writes_by(&key), Vec::<String>::new(), "{extra:?}");
    }

    let run = aws
        .deploy(&access_key(), &missing, &[&destination], &[])
        .await;
    assert_refused(&run, &[&format!("source bucket {missing} does not exist")]);

    // JSON users get the error as JSON too.
    let run = aws
        .deploy(
            &access_key(),
            &missing,
            &[&destination],
            &["--output", "json"],
        )
        .await;
    assert!(!run.success);
    assert_eq!(run.json()["ok"], false);
    assert!(
        run.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("does not exist")
    );

    // A function of the destination's name that s3fan did not make.
    let taken = unique("dst-taken");
    clients.create_bucket(&taken).await;
    clients
        .create_function(&taken, "someone-elses-bucket")
        .await;
    let key = access_key();
    let run = aws.deploy(&key, &source, &[&taken], &[]).await;
    assert_refused(
        &run,
        &[&format!(
            "a Lambda function named {taken} already exists and was not made by s3fan"
        )],
    );
    assert_eq!(writes_by(&key), Vec::<String>::new());

    assert!(
        !function_exists(&clients, &destination).await,
        "no refusal created anything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_that_would_loop_is_refused() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let (a, b, c) = (unique("loop-a"), unique("loop-b"), unique("loop-c"));
    buckets(&clients, &[&a, &b, &c]).await;
    assert_ok(&aws.deploy(&access_key(), &a, &[&b], &[]).await);
    assert_ok(&aws.deploy(&access_key(), &b, &[&c], &[]).await);
    let key = access_key();
    let run = aws.deploy(&key, &c, &[&a], &[]).await;
    assert_refused(
        &run,
        &["replication loop", &format!("{c} -> {a} -> {b} -> {c}")],
    );
    assert_eq!(writes_by(&key), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_say_how_to_configure_them() {
    let aws = local_aws();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3fan"))
        .args(["deploy", "--source", "some-src", "--dest", "some-dst"])
        .env_clear()
        .env("HOME", std::env::temp_dir().join("s3fan-no-home"))
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .output()
        .await
        .expect("run s3fan");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("credentials") && stderr.contains("aws configure"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_deployment_and_its_drift() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-status");
    let destination = unique("dst-status");
    buckets(&clients, &[&source, &destination]).await;
    // Not the defaults: status compares with what this deploy made.
    assert_ok(
        &aws.deploy(
            &access_key(),
            &source,
            &[&destination],
            &["--retry-attempts", "0", "--memory", "256"],
        )
        .await,
    );

    let key = access_key();
    let run = aws
        .s3fan(&key, &["status", "--source", &source, "--output", "json"])
        .await;
    assert_ok(&run);
    assert_eq!(writes_by(&key), Vec::<String>::new(), "status only reads");
    let status = run.json();
    assert_eq!(status["topic"], json!(topic_arn(&source)));
    assert_eq!(status["notification"], true);
    assert_eq!(status["destinations"][0]["destination"], json!(destination));
    assert_eq!(status["destinations"][0]["runs_this_binary"], true);
    assert_eq!(status["drift"], json!([]));

    // Someone changes the function by hand: status names the drift.
    clients
        .lambda
        .update_function_configuration()
        .function_name(&destination)
        .memory_size(1024)
        .send()
        .await
        .expect("update by hand");
    let status = aws
        .s3fan(
            &access_key(),
            &["status", "--source", &source, "--output", "json"],
        )
        .await
        .json();
    assert_eq!(
        status["drift"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    assert_eq!(status["drift"][0]["kind"], "function");
    assert_eq!(
        status["drift"][0]["diff"],
        json!([{"attribute": "memory", "before": 1024, "after": 256}]),
        "the field, its value in AWS and the deployed one"
    );
    // deploy --dry-run compares with the flags given (here: none, so the
    // defaults), naming each field.
    let dry = aws
        .deploy(
            &access_key(),
            &source,
            &[&destination],
            &["--dry-run", "--output", "json"],
        )
        .await
        .json();
    let diff = |kind: &str| {
        dry["changes"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["kind"] == kind))
            .map(|c| c["diff"].clone())
    };
    assert_eq!(
        diff("function"),
        Some(json!([{"attribute": "memory", "before": 1024, "after": 128}])),
        "{dry}"
    );
    assert_eq!(
        diff("invoke_config"),
        Some(json!([{"attribute": "retry attempts", "before": 0, "after": 2}])),
        "{dry}"
    );
    let text = aws
        .s3fan(&access_key(), &["status", "--source", &source])
        .await;
    assert!(
        text.stdout.contains("drift")
            && text.stdout.contains("would update")
            && text.stdout.contains("~ memory 1024 -> 256"),
        "{}",
        text.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_filter_holds_in_the_notification_and_in_the_function() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-filter");
    let destination = unique("dst-filter");
    buckets(&clients, &[&source, &destination]).await;
    let run = aws
        .deploy(
            &access_key(),
            &source,
            &[&destination],
            &["--prefix", "docs/", "--suffix", ".pdf"],
        )
        .await;
    assert_ok(&run);
    for key in ["docs/a.pdf", "docs/a.txt", "img/b.pdf"] {
        clients
            .put(&source, key, b"x".to_vec(), "application/pdf", &[])
            .await;
    }
    aws.drain();
    assert!(clients.get(&destination, "docs/a.pdf").await.is_some());
    assert!(clients.get(&destination, "docs/a.txt").await.is_none());
    assert!(clients.get(&destination, "img/b.pdf").await.is_none());

    // Invoked directly with a key outside the filter, the function skips it.
    let event = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": source}, "object": {"key": "img/b.pdf", "size": 1}}}]});
    let response = clients
        .lambda
        .invoke()
        .function_name(&destination)
        .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
        .send()
        .await
        .expect("invoke");
    assert_eq!(response.function_error(), None);
    let result: Value =
        serde_json::from_slice(response.payload().map(|b| b.as_ref()).unwrap_or_default())
            .expect("JSON result");
    assert_eq!(
        result,
        json!({"copied": 0, "source_changed": 0, "skipped": 1})
    );
    assert!(clients.get(&destination, "img/b.pdf").await.is_none());
}

async fn role_allows_delete(clients: &Clients, role: &str) -> bool {
    let policy = clients
        .iam
        .get_role_policy()
        .role_name(role)
        .policy_name("s3fan-replication")
        .send()
        .await
        .expect("role policy");
    let document = policy.policy_document();
    let decoded = percent_encoding::percent_decode_str(document)
        .decode_utf8()
        .expect("utf-8");
    decoded.contains("s3:DeleteObject")
}

async fn notified_events(clients: &Clients, bucket: &str) -> Vec<String> {
    let configuration = notifications(clients, bucket).await;
    let ours = configuration
        .topic_configurations()
        .iter()
        .find(|c| c.id() == Some("s3fan-fanout"))
        .expect("s3fan's notification");
    ours.events()
        .iter()
        .map(|e| e.as_str().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_are_replicated_only_when_asked() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-del");
    let destination = unique("dst-del");
    buckets(&clients, &[&source, &destination]).await;
    let role = format!("s3fan-{destination}");
    let round_trip = |key: &'static str| {
        let (clients, source) = (&clients, &source);
        async move {
            clients
                .put(source, key, b"x".to_vec(), "text/plain", &[])
                .await;
            aws.drain();
            clients
                .s3
                .delete_object()
                .bucket(source)
                .key(key)
                .send()
                .await
                .expect("delete");
            aws.drain();
        }
    };

    // Off by default: a delete in the source leaves the copy alone, and the
    // role may not delete.
    assert_ok(
        &aws.deploy(&access_key(), &source, &[&destination], &[])
            .await,
    );
    round_trip("kept.txt").await;
    assert!(
        clients.get(&destination, "kept.txt").await.is_some(),
        "deletes are not replicated by default"
    );
    assert!(!role_allows_delete(&clients, &role).await);
    assert_eq!(
        notified_events(&clients, &source).await,
        ["s3:ObjectCreated:*"]
    );

    // Asked for: the copy goes with the original.
    let run = aws
        .deploy(
            &access_key(),
            &source,
            &[&destination],
            &["--replicate-deletes"],
        )
        .await;
    assert_ok(&run);
    round_trip("gone.txt").await;
    assert!(
        clients.get(&destination, "gone.txt").await.is_none(),
        "the delete was replicated"
    );
    assert!(
        clients.get(&destination, "kept.txt").await.is_some(),
        "older copies untouched"
    );
    assert!(role_allows_delete(&clients, &role).await);
    assert_eq!(
        notified_events(&clients, &source).await,
        ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    );

    // Turned off again, everything goes back.
    assert_ok(
        &aws.deploy(&access_key(), &source, &[&destination], &[])
            .await,
    );
    round_trip("kept-again.txt").await;
    assert!(clients.get(&destination, "kept-again.txt").await.is_some());
    assert!(!role_allows_delete(&clients, &role).await);
    assert_eq!(
        notified_events(&clients, &source).await,
        ["s3:ObjectCreated:*"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_key_prefix_places_copies_and_narrows_the_role() {
    let started = std::time::Instant::now();
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-kp");
    let plain = unique("dst-kp-plain");
    let prefixed = unique("dst-kp-backup");
    buckets(&clients, &[&source, &plain, &prefixed]).await;
    let backup = format!("{prefixed}:backup/");
    let deploy = [
        "deploy",
        "--source",
        &source,
        "--dest",
        &plain,
        "--dest",
        &backup,
        "--replicate-deletes",
        "--metrics",
    ];
    assert_ok(&aws.s3fan(&access_key(), &deploy).await);

    clients
        .put(&source, "a b/é.txt", b"x".to_vec(), "text/plain", &[])
        .await;
    aws.drain();
    assert!(clients.get(&plain, "a b/é.txt").await.is_some());
    assert!(clients.get(&prefixed, "backup/a b/é.txt").await.is_some());
    assert!(
        clients.get(&prefixed, "a b/é.txt").await.is_none(),
        "nothing outside the prefix"
    );
    // --metrics: each record is also a CloudWatch EMF document in the log.
    let metrics: Vec<Value> = aws
        .invocations()
        .into_iter()
        .filter(|i| i.function == prefixed)
        .flat_map(|i| i.log_lines())
        .filter(|line| line.get("_aws").is_some())
        .collect();
    assert!(
        metrics.iter().any(|m| m["Copied"] == 1
            && m["Destination"] == json!(prefixed)
            && m["BytesCopied"] == 1
            && m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "s3fan"
            && m["ReplicationLatency"]
                .as_u64()
                .is_some_and(|ms| u128::from(ms) <= started.elapsed().as_millis())),
        "a copy's metrics carry its ReplicationLatency: {metrics:?}"
    );
    clients
        .s3
        .delete_object()
        .bucket(&source)
        .key("a b/é.txt")
        .send()
        .await
        .expect("delete");
    aws.drain();
    assert!(
        clients.get(&prefixed, "backup/a b/é.txt").await.is_none(),
        "the delete follows the copy under its prefix"
    );

    // The role may write only under the prefix.
    let document = clients.role_policy(&prefixed).await;
    let writes: Vec<&Value> = document["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .filter(|s| s["Sid"] == "WriteDestinationObjects" || s["Sid"] == "DeleteDestinationObjects")
        .collect();
    assert_eq!(writes.len(), 2, "{document}");
    for statement in writes {
        assert_eq!(
            statement["Resource"],
            json!(format!("arn:aws:s3:::{prefixed}/backup/*"))
        );
    }

    // A re-run converges without a write; status names the prefix.
    let key = access_key();
    assert_ok(&aws.s3fan(&key, &deploy).await);
    assert_eq!(writes_by(&key), Vec::<String>::new());
    let status = aws
        .s3fan(
            &access_key(),
            &["status", "--source", &source, "--output", "json"],
        )
        .await
        .json();
    assert_eq!(status["drift"], json!([]), "{status}");
    let listed: Vec<(Value, Value)> = status["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .map(|d| (d["destination"].clone(), d["key_prefix"].clone()))
        .collect();
    assert!(
        listed.contains(&(json!(prefixed), json!("backup/")))
            && listed.contains(&(json!(plain), Value::Null)),
        "{status}"
    );

    // A bad prefix is refused before any change.
    let key = access_key();
    let bad = format!("{prefixed}:/abs");
    let run = aws.deploy(&key, &source, &[&bad], &[]).await;
    assert_refused(&run, &[&format!("--dest {bad:?}"), "starts with '/'"]);
    assert_eq!(writes_by(&key), Vec::<String>::new());
}

async fn storage_class(clients: &Clients, bucket: &str, key: &str) -> Option<String> {
    let head = clients
        .s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|err| panic!("head s3://{bucket}/{key}: {err:?}"));
    head.storage_class().map(|c| c.as_str().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_class_applies_to_its_destination_live_and_in_backfill() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-sc");
    let plain = unique("dst-sc-plain");
    let archive = unique("dst-sc-archive");
    buckets(&clients, &[&source, &plain, &archive]).await;
    clients
        .put(&source, "before.txt", b"old".to_vec(), "text/plain", &[])
        .await;
    let class = format!("{archive}=glacier_ir");
    let deploy = [
        "deploy",
        "--source",
        &source,
        "--dest",
        &plain,
        "--dest",
        &archive,
        "--storage-class",
        &class,
        "--request-payer",
    ];
    assert_ok(&aws.s3fan(&access_key(), &deploy).await);
    for (destination, expected) in [(&plain, None), (&archive, Some("GLACIER_IR"))] {
        let variables = clients.function_environment(destination).await;
        assert_eq!(
            variables.get("S3FAN_STORAGE_CLASS").map(String::as_str),
            expected
        );
        assert_eq!(
            variables.get("S3FAN_REQUEST_PAYER").map(String::as_str),
            Some("requester")
        );
    }

    // A new object: the function copies it in the destination's class.
    clients
        .put(&source, "after.txt", b"new".to_vec(), "text/plain", &[])
        .await;
    aws.drain();
    assert_eq!(
        storage_class(&clients, &archive, "after.txt")
            .await
            .as_deref(),
        Some("GLACIER_IR")
    );
    assert_ne!(
        storage_class(&clients, &plain, "after.txt")
            .await
            .as_deref(),
        Some("GLACIER_IR")
    );

    // An existing object: backfill copies it as the function would.
    assert_ok(
        &aws.s3fan(&access_key(), &["backfill", "--source", &source])
            .await,
    );
    assert_eq!(
        storage_class(&clients, &archive, "before.txt")
            .await
            .as_deref(),
        Some("GLACIER_IR")
    );
    assert_ne!(
        storage_class(&clients, &plain, "before.txt")
            .await
            .as_deref(),
        Some("GLACIER_IR")
    );

    // An unknown class is refused before anything changes.
    let key = access_key();
    let bad = format!("{archive}=COLD");
    let run = aws
        .deploy(&key, &source, &[&archive], &["--storage-class", &bad])
        .await;
    assert_refused(&run, &["\"COLD\" is not an S3 storage class", "GLACIER_IR"]);
    assert_eq!(writes_by(&key), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_in_another_region_is_written_in_its_region() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let europe = aws.clients_in("eu-west-1").await;
    let source = unique("src-rg");
    let near = unique("dst-rg-near");
    let far = unique("dst-rg-far");
    buckets(&clients, &[&source, &near]).await;
    europe
        .s3
        .create_bucket()
        .bucket(&far)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .expect("create the bucket in eu-west-1");
    // 6 MiB, before the deploy: backfill copies it, in parts below.
    clients
        .put(
            &source,
            "early.bin",
            vec![7u8; 6 << 20],
            "application/octet-stream",
            &[],
        )
        .await;

    assert_ok(
        &aws.deploy(&access_key(), &source, &[&near, &far], &[])
            .await,
    );
    for (destination, expected) in [(&near, None), (&far, Some("eu-west-1"))] {
        let variables = clients.function_environment(destination).await;
        assert_eq!(
            variables.get("S3FAN_DEST_REGION").map(String::as_str),
            expected,
            "{destination}"
        );
    }

    // A new object reaches both, the far one through eu-west-1.
    clients
        .put(&source, "new.txt", b"hello".to_vec(), "text/plain", &[])
        .await;
    aws.drain();
    assert!(clients.get(&near, "new.txt").await.is_some());
    assert!(europe.get(&far, "new.txt").await.is_some());
    let far_writes: Vec<_> = aws
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with(&format!("/{far}/")))
        .collect();
    assert!(!far_writes.is_empty());
    assert!(
        far_writes
            .iter()
            .all(|r| r.region.as_deref() == Some("eu-west-1")),
        "{far_writes:?}"
    );

    // backfill copies the existing object there too, in 5 MiB parts; then
    // verify finds both destinations in sync.
    let parts = [
        ("S3FAN_MULTIPART_THRESHOLD", "5242880"),
        ("S3FAN_PART_SIZE", "5242880"),
    ];
    let run = crate::common::s3fan_with_env(
        &aws.endpoint,
        &access_key(),
        &parts,
        &["backfill", "--source", &source],
    )
    .await;
    assert_ok(&run);
    let copy = europe.get(&far, "early.bin").await.expect("backfilled");
    assert_eq!(copy.bytes.len(), 6 << 20);
    assert!(
        aws.requests().iter().any(|r| r.method == "POST"
            && r.path == format!("/{far}/early.bin")
            && r.query.contains("uploads")
            && r.region.as_deref() == Some("eu-west-1")),
        "a multipart upload in eu-west-1"
    );
    assert_ok(
        &aws.s3fan(&access_key(), &["verify", "--source", &source])
            .await,
    );
}

async fn encrypt_by_default(clients: &Clients, bucket: &str, key: &str) {
    use aws_sdk_s3::types::{
        ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
        ServerSideEncryptionRule,
    };
    let default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::AwsKms)
        .kms_master_key_id(key)
        .build()
        .expect("encryption default");
    clients
        .s3
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(default)
                        .build(),
                )
                .build()
                .expect("encryption configuration"),
        )
        .send()
        .await
        .expect("put bucket encryption");
}

async fn kms_statements(clients: &Clients, destination: &str) -> Vec<Value> {
    let document = clients.role_policy(destination).await;
    document["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .filter(|s| s.to_string().contains("kms:"))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_encrypted_buckets_get_grants_on_their_keys_and_copies_use_the_chosen_key() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-kms");
    let defaulted = unique("dst-kms-default");
    let chosen = unique("dst-kms-chosen");
    let plain = unique("dst-kms-plain");
    buckets(&clients, &[&source, &defaulted, &chosen, &plain]).await;
    let source_key = "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-11aa-11aa-11aa-111111aaaaaa";
    encrypt_by_default(&clients, &source, source_key).await;
    // A key ID, as the console may store it: granted as the ARN in the
    // bucket's region and the caller's account.
    encrypt_by_default(&clients, &defaulted, "2222bbbb-22bb-22bb-22bb-222222bbbbbb").await;
    let chosen_key = format!("{chosen}=alias/backups");
    let deploy = [
        "deploy",
        "--source",
        &source,
        "--dest",
        &defaulted,
        "--dest",
        &chosen,
        "--dest",
        &plain,
        "--dest-kms-key",
        &chosen_key,
    ];
    assert_ok(&aws.s3fan(&access_key(), &deploy).await);

    let decrypt_source = json!({"Sid": "DecryptSourceObjects", "Effect": "Allow",
        "Action": ["kms:Decrypt"], "Resource": source_key});
    let encrypt = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"];
    assert_eq!(
        kms_statements(&clients, &defaulted).await,
        [
            decrypt_source.clone(),
            json!({"Sid": "EncryptDestinationObjects", "Effect": "Allow", "Action": encrypt,
                "Resource": "arn:aws:kms:us-east-1:123456789012:key/2222bbbb-22bb-22bb-22bb-222222bbbbbb"})
        ]
    );
    assert_eq!(
        kms_statements(&clients, &chosen).await,
        [
            decrypt_source.clone(),
            json!({"Sid": "EncryptDestinationObjects", "Effect": "Allow", "Action": encrypt,
                "Resource": "arn:aws:kms:us-east-1:123456789012:key/*",
                "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/backups"}}})
        ]
    );
    assert_eq!(kms_statements(&clients, &plain).await, [decrypt_source]);

    // The chosen key encrypts the copy; the others keep their bucket's way.
    clients
        .put(&source, "secret.txt", b"s".to_vec(), "text/plain", &[])
        .await;
    aws.drain();
    let head = clients
        .s3
        .head_object()
        .bucket(&chosen)
        .key("secret.txt")
        .send()
        .await
        .expect("the copy");
    assert_eq!(
        head.server_side_encryption().map(|e| e.as_str()),
        Some("aws:kms")
    );
    assert_eq!(head.ssekms_key_id(), Some("alias/backups"));
    assert!(clients.get(&plain, "secret.txt").await.is_some());

    // Converged: the same deploy again writes nothing.
    let key = access_key();
    assert_ok(&aws.s3fan(&key, &deploy).await);
    assert_eq!(writes_by(&key), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_of_another_account_gets_its_bucket_policy_statement() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-xacct");
    let theirs = unique("dst-xacct");
    clients.create_bucket(&source).await;
    clients
        .create_bucket_owned_by(&theirs, "210987654321")
        .await;
    let account = format!("{theirs}=210987654321");
    let deploy = [
        "deploy",
        "--source",
        &source,
        "--dest",
        &theirs,
        "--dest-account",
        &account,
    ];
    let role_arn = format!("arn:aws:iam::123456789012:role/s3fan-{theirs}");
    let expected = |sid: &Value| {
        json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"AWS": role_arn},
            "Action": ["s3:PutObject", "s3:PutObjectTagging", "s3:PutObjectAcl",
                       "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
            "Resource": format!("arn:aws:s3:::{theirs}/*")
        })
    };

    // Without --apply-dest-policy: the statement is printed for the owner.
    let mut json_deploy = deploy.to_vec();
    json_deploy.extend(["--output", "json"]);
    let run = aws.s3fan(&access_key(), &json_deploy).await;
    assert_ok(&run);
    let owners = run.json()["bucket_policy_statements"].clone();
    assert_eq!(owners[0]["destination"], json!(theirs));
    assert_eq!(owners[0]["account"], "210987654321");
    let statement = owners[0]["statement"].clone();
    assert_eq!(statement, expected(&statement["Sid"]));
    let text = aws.s3fan(&access_key(), &deploy).await;
    assert_ok(&text);
    assert!(
        text.stdout.contains(&format!(
            "destination {theirs} belongs to account 210987654321"
        )) && text.stdout.contains(&role_arn),
        "{}",
        text.stdout
    );
    let variables = clients.function_environment(&theirs).await;
    assert_eq!(
        variables.get("S3FAN_DEST_ACCOUNT").map(String::as_str),
        Some("210987654321")
    );

    // The copy lands in their bucket.
    clients
        .put(&source, "shared.txt", b"s".to_vec(), "text/plain", &[])
        .await;
    aws.drain();
    assert!(clients.get(&theirs, "shared.txt").await.is_some());

    // With --apply-dest-policy, deploy writes it into their bucket policy,
    // keeping what the owner had; once there, nothing more is written.
    let owners_own = json!({"Sid": "OwnersOwn", "Effect": "Deny", "Principal": {"AWS": "*"},
        "Action": "s3:DeleteBucket", "Resource": format!("arn:aws:s3:::{theirs}")});
    clients
        .s3
        .put_bucket_policy()
        .bucket(&theirs)
        .policy(json!({"Version": "2012-10-17", "Statement": [owners_own]}).to_string())
        .send()
        .await
        .expect("their policy");
    let mut apply = deploy.to_vec();
    apply.push("--apply-dest-policy");
    assert_ok(&aws.s3fan(&access_key(), &apply).await);
    let policy = clients
        .s3
        .get_bucket_policy()
        .bucket(&theirs)
        .send()
        .await
        .expect("bucket policy");
    let policy: Value = serde_json::from_str(policy.policy().unwrap_or_default()).expect("JSON");
    assert_eq!(
        policy["Statement"],
        json!([owners_own, expected(&statement["Sid"])])
    );
    let key = access_key();
    assert_ok(&aws.s3fan(&key, &apply).await);
    assert_eq!(writes_by(&key), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_concurrency_caps_each_function_and_goes_when_dropped() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-rc");
    let destination = unique("dst-rc");
    buckets(&clients, &[&source, &destination]).await;
    let reserved = || async {
        clients
            .lambda
            .get_function_concurrency()
            .function_name(&destination)
            .send()
            .await
            .expect("the function's concurrency")
            .reserved_concurrent_executions
    };
    let capped = ["--reserved-concurrency", "5"];
    assert_ok(
        &aws.deploy(&access_key(), &source, &[&destination], &capped)
            .await,
    );
    assert_eq!(reserved().await, Some(5));
    // The same flags again: nothing to do.
    let again = aws
        .deploy_json(&access_key(), &source, &[&destination], &capped)
        .await;
    assert!(
        actions(&again)
            .iter()
            .all(|(_, _, action)| action == "unchanged"),
        "{again}"
    );
    // Dropped from the flags: the cap goes, and the plan says so.
    let uncapped = aws
        .deploy_json(&access_key(), &source, &[&destination], &[])
        .await;
    let function = uncapped["changes"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["kind"] == "function").cloned())
        .expect("the function in the report");
    assert_eq!(
        function["diff"],
        json!([{"attribute": "reserved concurrency", "before": 5, "after": null}]),
        "{uncapped}"
    );
    assert_eq!(reserved().await, None);
    // Zero would stop every copy: refused before anything changes.
    let refused = aws
        .deploy(
            &access_key(),
            &source,
            &[&destination],
            &["--reserved-concurrency", "0"],
        )
        .await;
    assert_refused(&refused, &["--reserved-concurrency 0", "1 or more"]);
}
