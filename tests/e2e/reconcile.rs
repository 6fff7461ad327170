//! End to end: the scheduled reconcile repairs what events missed. The
//! local AWS drops a share of S3's notifications, as S3 and Lambda may; the
//! reconcile, invoked exactly as its EventBridge rule invokes it, leaves
//! every destination complete and says how many objects it repaired; forced
//! into slices, it settles every key exactly once.
//!
//! One test function: the dropped notifications and the slice budget are
//! set for every function of this module's own local AWS.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde_json::{Value, json};

use crate::common::{Clients, Invocation, LocalAws, access_key, assert_ok, unique};

/// This module's own local AWS: it drops notifications and sets how long
/// a slice may run, which no other test may see.
fn local_aws() -> &'static LocalAws {
    crate::common::isolated_local_aws("reconcile")
}

const OBJECTS: usize = 500;

/// Invokes each destination's function as its schedule does: the rule's
/// own target, with the rule's own input, asynchronously. Returns the
/// inputs sent.
async fn invoke_as_scheduled(aws: &LocalAws, functions: &[String]) -> Vec<Value> {
    let config = aws.sdk_config_in("us-east-1").await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let lambda = aws_sdk_lambda::Client::new(&config);
    let mut inputs = Vec::new();
    for function in functions {
        let rule = format!("{function}-reconcile");
        let described = events
            .describe_rule()
            .name(&rule)
            .send()
            .await
            .expect("the rule");
        assert_eq!(described.schedule_expression(), Some("rate(1 day)"));
        let targets = events
            .list_targets_by_rule()
            .rule(&rule)
            .send()
            .await
            .expect("the rule's targets");
        let [target] = targets.targets() else {
            panic!("one target on {rule}: {targets:?}");
        };
        let input = target.input().expect("the target's input").to_owned();
        lambda
            .invoke()
            .function_name(target.arn())
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(input.clone()))
            .send()
            .await
            .expect("invoke as the schedule does");
        inputs.push(serde_json::from_str(&input).expect("JSON input"));
    }
    aws.drain();
    inputs
}

/// Every reconcile invocation of `function`, oldest first.
fn reconciles_of(aws: &LocalAws, function: &str) -> Vec<Invocation> {
    aws.invocations()
        .into_iter()
        .filter(|i| i.function == function && i.event["s3fan"] == "reconcile")
        .collect()
}

fn lines_with(invocations: &[Invocation], outcome: &str) -> Vec<Value> {
    invocations
        .iter()
        .flat_map(Invocation::log_lines)
        .filter(|line| line["outcome"] == outcome)
        .collect()
}

async fn missing(clients: &Clients, keys: &BTreeSet<String>, bucket: &str, prefix: &str) -> usize {
    let copies: BTreeSet<String> = clients
        .keys(bucket)
        .await
        .into_iter()
        .filter_map(|key| key.strip_prefix(prefix).map(str::to_owned))
        .collect();
    keys.difference(&copies).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_reconcile_repairs_what_lost_events_missed_a_slice_at_a_time() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-rec");
    let (plain, prefixed) = (unique("dst-rec-a"), unique("dst-rec-b"));
    for bucket in [&source, &plain, &prefixed] {
        clients.create_bucket(bucket).await;
    }
    let with_prefix = format!("{prefixed}:copies/");
    assert_ok(
        &aws.deploy(
            &access_key(),
            &source,
            &[&plain, &with_prefix],
            &["--reconcile-every", "1d", "--metrics"],
        )
        .await,
    );
    // The role may list its destination (under its prefix) and invoke
    // itself, and nothing more than before for anything else.
    let policy = clients.role_policy(&prefixed).await.to_string();
    assert!(
        policy.contains("ListDestinationToReconcile")
            && policy.contains("copies/*")
            && policy.contains("InvokeItselfToGoOn"),
        "{policy}"
    );

    // One notification in ten never arrives.
    aws.drop_notifications(0.1, 7);
    let keys: BTreeSet<String> = (0..OBJECTS).map(|i| format!("obj/{i:04}.txt")).collect();
    for key in &keys {
        clients
            .put(&source, key, key.as_bytes().to_vec(), "text/plain", &[])
            .await;
    }
    aws.drain();
    let dropped = aws.drop_notifications(0.0, 0)["dropped"]
        .as_u64()
        .unwrap_or(0);
    assert!(dropped > 0, "some notifications were dropped");
    let lost = missing(&clients, &keys, &plain, "").await;
    assert!(lost > 0, "the lost events left objects missing");
    assert_eq!(lost, missing(&clients, &keys, &prefixed, "copies/").await);

    // The reconcile, as the schedule invokes it.
    let functions = [plain.clone(), prefixed.clone()];
    let inputs = invoke_as_scheduled(aws, &functions).await;
    assert!(
        inputs.iter().all(|i| *i == json!({"s3fan": "reconcile"})),
        "{inputs:?}"
    );
    assert_eq!(missing(&clients, &keys, &plain, "").await, 0);
    assert_eq!(missing(&clients, &keys, &prefixed, "copies/").await, 0);
    for function in &functions {
        let runs = reconciles_of(aws, function);
        assert!(runs.iter().all(|i| !i.is_error), "{runs:?}");
        let reconciled = lines_with(&runs, "reconciled");
        let [run] = reconciled.as_slice() else {
            panic!("one run of {function}: {reconciled:?}");
        };
        assert_eq!(run["repaired"], json!(lost), "{run}");
        assert_eq!(run["out_of_sync"], json!(lost), "{run}");
        assert_eq!(run["examined"], json!(OBJECTS), "{run}");
        // The run's repairs are also a metric, for the alarm on them.
        let repaired: u64 = runs
            .iter()
            .flat_map(Invocation::log_lines)
            .filter_map(|line| line["ReconcileRepaired"].as_u64())
            .sum();
        assert_eq!(repaired, lost as u64);
    }

    // Forced into slices of one chunk each: every key is settled exactly
    // once, across at least three slices that hand on to each other.
    aws.set_bootstrap_env(json!({"S3FAN_RECONCILE_SLICE_MS": "1"}));
    let gone: Vec<String> = clients.keys(&plain).await.into_iter().collect();
    for key in &gone {
        clients
            .s3
            .delete_object()
            .bucket(&plain)
            .key(key)
            .send()
            .await
            .expect("delete a copy");
    }
    let before = aws.requests().len();
    invoke_as_scheduled(aws, std::slice::from_ref(&plain)).await;
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for request in &aws.requests()[before..] {
        if let Some(key) = request.path.strip_prefix(&format!("/{plain}/")) {
            if request.method == "PUT" {
                *copies.entry(key.to_owned()).or_default() += 1;
            }
        }
    }
    assert_eq!(
        copies.len(),
        OBJECTS,
        "every key copied: {:?}",
        reconciles_of(aws, &plain)
            .iter()
            .map(|i| (&i.event, &i.result, i.is_error))
            .collect::<Vec<_>>()
    );
    assert!(copies.values().all(|n| *n == 1), "each once: {copies:?}");
    let runs: Vec<Invocation> = reconciles_of(aws, &plain)
        .into_iter()
        .filter(|i| i.event["run"].is_string() || i.event == json!({"s3fan": "reconcile"}))
        .collect();
    let slices = lines_with(&runs, "reconcile_slice");
    let last_run = lines_with(&runs, "reconciled")
        .last()
        .cloned()
        .expect("the sliced run finished");
    let sliced: Vec<&Value> = slices
        .iter()
        .filter(|s| s["run"] == last_run["run"])
        .collect();
    assert!(sliced.len() >= 3, "{} slices: {sliced:?}", sliced.len());
    assert_eq!(last_run["repaired"], json!(OBJECTS), "{last_run}");
    assert_eq!(last_run["slices"], json!(sliced.len()), "{last_run}");
    assert_eq!(missing(&clients, &keys, &plain, "").await, 0);

    // status names each destination's schedule, and sees no drift.
    let status = aws
        .s3fan_json(&access_key(), &["status", "--source", &source])
        .await;
    let every: Vec<&Value> = status["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .map(|d| &d["reconcile_every"])
        .collect();
    assert_eq!(every, [&json!("1d"), &json!("1d")], "{status}");
    assert_eq!(status["drift"], json!([]), "{status}");
    let text = aws
        .s3fan(&access_key(), &["status", "--source", &source])
        .await;
    assert!(
        text.stdout
            .contains(&format!("every 1d (EventBridge rule {plain}-reconcile)")),
        "{}",
        text.stdout
    );

    // Redeployed with the same flags, the schedules stay as they are; the
    // command starts a run now; destroy removes the rules.
    let again = aws
        .deploy_json(
            &access_key(),
            &source,
            &[&plain, &with_prefix],
            &["--reconcile-every", "1d", "--metrics"],
        )
        .await;
    let schedules: Vec<&Value> = again["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["kind"] == "schedule")
        .collect();
    assert_eq!(schedules.len(), 2, "{again}");
    assert!(
        schedules.iter().all(|c| c["action"] == "unchanged"),
        "{again}"
    );
    let started = aws
        .s3fan_json(&access_key(), &["reconcile", "--source", &source])
        .await;
    assert_eq!(started["ok"], true, "{started}");
    assert_eq!(started["destinations"].as_array().map(Vec::len), Some(2));
    aws.drain();
    assert_ok(
        &aws.s3fan(&access_key(), &["destroy", "--yes", "--source", &source])
            .await,
    );
    let config = aws.sdk_config_in("us-east-1").await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    for function in &functions {
        let rule = format!("{function}-reconcile");
        assert!(
            events.describe_rule().name(&rule).send().await.is_err(),
            "{rule} removed by destroy"
        );
    }
}
