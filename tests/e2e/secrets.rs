//! Credentials stay secret: the deployer's never reach any command's output
//! or a function's environment (readable by anyone with
//! lambda:GetFunctionConfiguration), and the function's own never reach its
//! logs, even at the most verbose level. Its own test binary, so its harness (and the
//! debug level it sets for every function) is not shared with other tests.

use std::time::Duration;

use crate::common::{Invocation, LocalAws, access_key, function_name_for, s3fan_with_env, unique};
use aws_sdk_lambda::primitives::Blob;
use serde_json::json;

/// This module's own local AWS: its tests change how every function runs
/// (`set_bootstrap_env`), which no other test may see.
fn local_aws() -> &'static LocalAws {
    crate::common::isolated_local_aws("secrets")
}

const DEPLOYER_SECRET: &str = "DeployerSecretKey0NeverShown0abcdefghijklmn";
const DEPLOYER_TOKEN: &str = "IQoJDeployerSessionToken0NeverShown0xyz";
const FUNCTION_SECRET: &str = "FunctionSecretKey0NeverLogged0abcdefghijkl";
const FUNCTION_TOKEN: &str = "IQoJFunctionSessionToken0NeverLogged0xyz";

fn leaks(text: &str) -> Vec<&'static str> {
    [
        DEPLOYER_SECRET,
        DEPLOYER_TOKEN,
        FUNCTION_SECRET,
        FUNCTION_TOKEN,
    ]
    .into_iter()
    .filter(|secret| text.contains(secret))
    .collect()
}

async fn invocations_of(function: &str, at_least: usize) -> Vec<Invocation> {
    for _ in 0..300 {
        let seen: Vec<Invocation> = local_aws()
            .invocations()
            .into_iter()
            .filter(|i| i.function == function)
            .collect();
        if seen.len() >= at_least {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{function} was not invoked {at_least} times within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_reach_no_output_no_function_environment_and_no_log() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let (source, destination) = (unique("secret-src"), unique("secret-dst"));
    clients.create_bucket(&source).await;
    clients.create_bucket(&destination).await;
    let function = function_name_for(&destination);

    // The deployer's credentials, through every command, as text and JSON,
    // on success and on failure.
    let deployer = [
        ("AWS_SECRET_ACCESS_KEY", DEPLOYER_SECRET),
        ("AWS_SESSION_TOKEN", DEPLOYER_TOKEN),
    ];
    let key = access_key();
    let missing = unique("no-such");
    let runs: Vec<Vec<&str>> = vec![
        vec!["deploy", "--source", &source, "--dest", &destination],
        vec![
            "deploy",
            "--source",
            &source,
            "--dest",
            &destination,
            "--output",
            "json",
        ],
        vec!["deploy", "--source", &source, "--dest", &missing],
        vec!["status", "--source", &source],
        vec!["status", "--source", &source, "--output", "json"],
        vec!["verify", "--source", &source],
        vec!["backfill", "--source", &source, "--dry-run"],
        vec!["failures", "--source", &source],
        vec!["retry", "--source", &source],
        vec!["destroy", "--source", &source, "--dry-run"],
        // --debug shows the SDK's log and raw errors, at every level
        // RUST_LOG asks: never a credential.
        vec!["status", "--source", &source, "--debug"],
        vec!["deploy", "--source", &source, "--dest", &missing, "--debug"],
    ];
    let deployer_tracing = [deployer[0], deployer[1], ("RUST_LOG", "trace")];
    for args in &runs {
        let env = if args.contains(&"--debug") {
            &deployer_tracing[..]
        } else {
            &deployer[..]
        };
        let run = s3fan_with_env(&aws.endpoint, &key, env, args).await;
        assert!(
            !run.stdout.is_empty() || !run.stderr.is_empty(),
            "{args:?} says something"
        );
        assert_eq!(
            leaks(&format!("{}{}", run.stdout, run.stderr)),
            Vec::<&str>::new(),
            "{args:?}"
        );
    }
    let configuration = clients
        .lambda
        .get_function_configuration()
        .function_name(&function)
        .send()
        .await
        .expect("the function exists");
    let variables = configuration
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    assert!(!variables.is_empty());
    for (name, value) in &variables {
        assert!(name.starts_with("S3FAN_"), "{name} in the environment");
        assert_eq!(leaks(value), Vec::<&str>::new(), "{name}");
    }

    // The function's own credentials, which Lambda puts in its environment,
    // with every log line on (the SDK's TRACE lines print signed requests): a copy that succeeds and one that fails.
    aws.set_bootstrap_env(json!({
        "AWS_SECRET_ACCESS_KEY": FUNCTION_SECRET,
        "AWS_SESSION_TOKEN": FUNCTION_TOKEN,
        "RUST_LOG": "trace",
    }));
    clients
        .put(&source, "kept.txt", b"kept".to_vec(), "text/plain", &[])
        .await;
    let absent = json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": source, "arn": format!("arn:aws:s3:::{source}")},
               "object": {"key": "never-written.txt", "size": 1}}
    }]});
    // S3 answers 404 for the first; the second is no event at all.
    let malformed = json!({"Records": [{"eventSource": "aws:s3", "s3": 7}]});
    for event in [absent, malformed] {
        clients
            .lambda
            .invoke()
            .function_name(&function)
            .payload(Blob::new(event.to_string()))
            .send()
            .await
            .expect("invoke");
    }
    let invocations = invocations_of(&function, 3).await;
    assert!(
        invocations.iter().any(|i| i.is_error) && invocations.iter().any(|i| !i.is_error),
        "copies succeeded and one failed: {invocations:#?}"
    );
    let logs: String = invocations.iter().map(|i| i.logs.as_str()).collect();
    assert!(
        logs.contains("\"DEBUG\""),
        "debug lines were written: {logs}"
    );
    assert_eq!(leaks(&logs), Vec::<&str>::new(), "{logs}");
}
