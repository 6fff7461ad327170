//! End to end: the alarms deploy makes, keeps, moves, removes and shows,
//! and the health `status` reads from CloudWatch: the harness turns the
//! functions' EMF log lines into CloudWatch metrics, as CloudWatch Logs
//! does in AWS.
//!
//! moto stores alarms but never evaluates them (every alarm stays OK), so
//! that an alarm fires is not shown here: the tests prove instead the exact
//! alarm CloudWatch is given (metric, dimension, statistic, periods,
//! threshold, topic), which is what decides when it fires.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::MetricAlarm;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};

use crate::common::{access_key, assert_ok, function_name_for, local_aws, unique};

async fn cloudwatch() -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(&local_aws().sdk_config_in("us-east-1").await)
}

/// Every alarm whose name starts with one of `prefixes`, by name.
async fn alarms_of(prefixes: &[String]) -> BTreeMap<String, MetricAlarm> {
    let client = cloudwatch().await;
    let mut found = BTreeMap::new();
    for prefix in prefixes {
        let page = client
            .describe_alarms()
            .alarm_name_prefix(prefix)
            .send()
            .await
            .expect("describe alarms");
        for alarm in page.metric_alarms() {
            found.insert(
                alarm.alarm_name().unwrap_or_default().to_owned(),
                alarm.clone(),
            );
        }
    }
    found
}

fn changes_of<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["kind"] == kind)
        .collect()
}

#[tokio::test]
async fn alarms_are_made_kept_moved_shown_and_removed_with_the_fanout() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("alarm-src");
    let (plain, dotted) = (unique("alarm-dst"), unique("alarm.dst"));
    for bucket in [&source, &plain, &dotted] {
        clients.create_bucket(bucket).await;
    }
    let email = ["--alarm-email", "ops@example.com", "--lag-slo", "10m"];

    let made = aws
        .deploy_json(&access_key(), &source, &[&plain, &dotted], &email)
        .await;
    // A dotted bucket's function has a hashed name: read it from the plan.
    let functions: Vec<String> = [&plain, &dotted]
        .iter()
        .map(|bucket| {
            changes_of(&made, "function")
                .iter()
                .find(|c| c["destination"] == json!(bucket))
                .and_then(|c| c["name"].as_str())
                .expect("the function's name")
                .to_owned()
        })
        .collect();
    assert_eq!(functions[0], function_name_for(&plain));
    let prefixes: Vec<String> = functions
        .iter()
        .map(|f| format!("{f}-"))
        .chain([format!("{source}-fanout-")])
        .collect();
    let alarm_changes = changes_of(&made, "alarm");
    assert_eq!(
        alarm_changes.len(),
        11,
        "five per destination, one for the queue: {made}"
    );
    assert!(
        alarm_changes.iter().all(|c| c["action"] == "create"),
        "{made}"
    );
    let topic_arn = format!("arn:aws:sns:us-east-1:123456789012:{source}-fanout-alarms");
    let alarms = alarms_of(&prefixes).await;
    assert_eq!(alarms.len(), 11, "{:?}", alarms.keys());
    for alarm in alarms.values() {
        assert_eq!(
            alarm.alarm_actions(),
            std::slice::from_ref(&topic_arn),
            "{alarm:?}"
        );
        assert_eq!(alarm.treat_missing_data(), Some("notBreaching"));
    }
    let lag = &alarms[&format!("{}-lag", functions[1])];
    assert_eq!(
        (
            lag.namespace(),
            lag.metric_name(),
            lag.extended_statistic(),
            lag.threshold()
        ),
        (
            Some("s3fan"),
            Some("ReplicationLatency"),
            Some("p99"),
            Some(600_000.0)
        ),
        "--lag-slo 10m in milliseconds"
    );
    let dimension = &lag.dimensions()[0];
    assert_eq!(
        (dimension.name(), dimension.value()),
        (Some("Destination"), Some(dotted.as_str())),
        "the dimension the handler's EMF lines carry"
    );
    let throttled = &alarms[&format!("{}-throttled", functions[0])];
    assert_eq!(
        (
            throttled.metric_name(),
            throttled.evaluation_periods(),
            throttled.datapoints_to_alarm(),
            throttled.period()
        ),
        (Some("Throttles"), Some(3), Some(3), Some(300)),
        "throttles alarm after 15 minutes"
    );
    let queue = &alarms[&format!("{source}-fanout-failures-not-empty")];
    assert_eq!(
        queue.dimensions()[0].value(),
        Some(format!("{source}-fanout-failures").as_str())
    );
    // The topic s3fan made, with the address subscribed (to be confirmed).
    let subscriptions = clients
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic_arn)
        .send()
        .await
        .expect("the alarm topic exists");
    let emails: Vec<(Option<&str>, Option<&str>)> = subscriptions
        .subscriptions()
        .iter()
        .map(|s| (s.protocol(), s.endpoint()))
        .collect();
    assert_eq!(emails, [(Some("email"), Some("ops@example.com"))]);
    // The lag alarm needs s3fan's metrics: they are on.
    let env = clients.function_environment(&plain).await;
    assert_eq!(env.get("S3FAN_METRICS").map(String::as_str), Some("true"));

    // Again with the same flags: nothing changes, and status sees no drift
    // and shows each alarm's state.
    let again = aws
        .deploy_json(&access_key(), &source, &[&plain, &dotted], &email)
        .await;
    for kind in ["alarm", "alarm_topic"] {
        let changes = changes_of(&again, kind);
        assert!(!changes.is_empty(), "{kind}: {again}");
        assert!(
            changes.iter().all(|c| c["action"] == "unchanged"),
            "{again}"
        );
    }
    let status = aws
        .s3fan_json(&access_key(), &["status", "--source", &source])
        .await;
    assert_eq!(status["drift"], json!([]), "{status}");
    let states: Vec<&Value> = status["destinations"][0]["alarms"]
        .as_array()
        .expect("alarms in status")
        .iter()
        .map(|a| &a["state"])
        .collect();
    assert_eq!(states.len(), 5, "{status}");
    assert!(states.iter().all(|s| *s == "OK"), "{status}");
    let text = aws
        .s3fan(&access_key(), &["status", "--source", &source])
        .await;
    assert_eq!(
        text.stdout.matches("alarms: all 5 OK").count(),
        2,
        "{}",
        text.stdout
    );
    assert_eq!(
        status["failure_queue_alarm"]["name"],
        json!(format!("{source}-fanout-failures-not-empty")),
        "{status}"
    );

    // To the user's own topic: every alarm is rewritten to notify it, and
    // the topic s3fan made goes.
    let pager = clients
        .sns
        .create_topic()
        .name(unique("pager"))
        .send()
        .await
        .expect("a topic of the user's");
    let pager = pager.topic_arn().expect("topic arn").to_owned();
    let moved = aws
        .deploy_json(
            &access_key(),
            &source,
            &[&plain, &dotted],
            &["--alarm-topic", &pager],
        )
        .await;
    assert!(
        changes_of(&moved, "alarm")
            .iter()
            .all(|c| c["action"] == "update"
                && c["diff"][0]["attribute"] == "alarm topic"
                && c["diff"][0]["after"]
                    .as_array()
                    .is_some_and(|topics| topics.iter().any(|t| t == pager.as_str()))),
        "{moved}"
    );
    assert_eq!(
        changes_of(&moved, "alarm_topic")[0]["action"],
        "delete",
        "{moved}"
    );
    let alarms = alarms_of(&prefixes).await;
    assert!(
        alarms
            .values()
            .all(|a| a.alarm_actions() == std::slice::from_ref(&pager))
    );
    assert!(
        clients
            .sns
            .get_topic_attributes()
            .topic_arn(&topic_arn)
            .send()
            .await
            .is_err(),
        "{topic_arn} deleted"
    );

    // Without an alarm flag, the alarms go; with one again, destroy
    // removes them and the topic.
    let quiet = aws
        .deploy_json(&access_key(), &source, &[&plain, &dotted], &[])
        .await;
    assert_eq!(changes_of(&quiet, "alarm").len(), 11, "{quiet}");
    assert!(alarms_of(&prefixes).await.is_empty());
    aws.deploy_json(&access_key(), &source, &[&plain, &dotted], &email)
        .await;
    assert_eq!(alarms_of(&prefixes).await.len(), 11);
    assert_ok(
        &aws.s3fan(&access_key(), &["destroy", "--yes", "--source", &source])
            .await,
    );
    assert!(
        alarms_of(&prefixes).await.is_empty(),
        "destroy removed every alarm"
    );
    assert!(
        clients
            .sns
            .get_topic_attributes()
            .topic_arn(&topic_arn)
            .send()
            .await
            .is_err(),
        "destroy removed {topic_arn}"
    );
}

/// `status` reads health from CloudWatch: the metrics the functions wrote
/// as EMF lines (turned into metrics by the harness, as by CloudWatch Logs).
#[tokio::test]
async fn status_shows_each_destinations_copies_lag_and_last_reconcile_from_cloudwatch() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("health-src");
    let (watched, fresh) = (unique("health-dst"), unique("health-new"));
    for bucket in [&source, &watched, &fresh] {
        clients.create_bucket(bucket).await;
    }
    let flags = ["--metrics", "--reconcile-every", "1d"];
    aws.deploy_json(&access_key(), &source, &[&watched], &flags)
        .await;
    let started = std::time::Instant::now();
    for n in 0..6 {
        clients
            .s3
            .put_object()
            .bucket(&source)
            .key(format!("k/{n}"))
            .body(ByteStream::from(vec![b'x'; 100 + n]))
            .send()
            .await
            .expect("put");
    }
    aws.drain();
    // The reconcile, as its schedule invokes it: all six are there already.
    let lambda = aws_sdk_lambda::Client::new(&aws.sdk_config_in("us-east-1").await);
    lambda
        .invoke()
        .function_name(function_name_for(&watched))
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(aws_sdk_lambda::primitives::Blob::new(
            r#"{"s3fan":"reconcile"}"#,
        ))
        .send()
        .await
        .expect("invoke as the schedule does");
    aws.drain();
    let wall_ms = started.elapsed().as_millis() as f64;
    // A destination added now has no data yet.
    aws.deploy_json(&access_key(), &source, &[&watched, &fresh], &flags)
        .await;

    let status = aws
        .s3fan_json(&access_key(), &["status", "--source", &source])
        .await;
    let of = |bucket: &str| {
        status["destinations"]
            .as_array()
            .expect("destinations")
            .iter()
            .find(|d| d["destination"] == json!(bucket))
            .cloned()
            .unwrap_or_else(|| panic!("{bucket} in {status}"))
    };
    let health = of(&watched)["health"].clone();
    for window in ["last_hour", "last_day"] {
        let figures = &health[window];
        assert_eq!(figures["copied"], json!(6.0), "{window}: {health}");
        assert_eq!(figures["failed"], json!(0.0), "{window}: {health}");
        let lag: Vec<f64> = ["lag_p50_ms", "lag_p99_ms", "lag_max_ms"]
            .iter()
            .map(|f| {
                figures[f]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{f}: {health}"))
            })
            .collect();
        assert!(
            lag.iter().all(|ms| (0.0..=wall_ms).contains(ms)),
            "lag between 0 and the test's {wall_ms} ms: {lag:?}"
        );
        assert!(
            lag[0] <= lag[1] && lag[1] <= lag[2],
            "p50 <= p99 <= max: {lag:?}"
        );
        // Lambda's own metrics: the local AWS has none, and status says so.
        assert_eq!(figures["throttles"], Value::Null, "{health}");
    }
    let reconcile = &health["last_reconcile"];
    assert_eq!(
        (&reconcile["examined"], &reconcile["repaired"]),
        (&json!(6.0), &json!(0.0)),
        "{health}"
    );
    let fresh_health = &of(&fresh)["health"];
    assert_eq!(fresh_health["last_hour"]["copied"], Value::Null, "{status}");
    assert_eq!(fresh_health["last_reconcile"], Value::Null, "{status}");

    let text = aws
        .s3fan(&access_key(), &["status", "--source", &source])
        .await;
    assert_ok(&text);
    assert!(
        text.stdout
            .contains("last hour: 6 copied, 0 failed, lag p50 "),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("last hour: no data yet"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("6 examined, 0 out of sync, 0 repaired"),
        "{}",
        text.stdout
    );
    assert_ok(
        &aws.s3fan(&access_key(), &["destroy", "--yes", "--source", &source])
            .await,
    );
}
