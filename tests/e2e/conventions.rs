//! What users of the aws cli take for granted: `--endpoint-url`,
//! environment fallbacks for the main flags, `-q`, RUST_LOG.

use crate::common::{access_key, assert_ok, local_aws, s3fan_with_env, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_and_the_global_flags_do_what_the_aws_cli_does() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let (source, destination) = (unique("conv-src"), unique("conv-dst"));
    clients.create_bucket(&source).await;
    clients.create_bucket(&destination).await;
    clients
        .put(&source, "a.txt", b"a".to_vec(), "text/plain", &[])
        .await;

    // S3FAN_SOURCE and S3FAN_OUTPUT stand for --source and --output.
    let env = [("S3FAN_SOURCE", source.as_str()), ("S3FAN_OUTPUT", "json")];
    let verify = ["verify", "--dest", destination.as_str()];
    let run = s3fan_with_env(&aws.endpoint, &access_key(), &env, &verify).await;
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert_eq!(run.json()["source"], source.as_str(), "{}", run.stdout);
    // A flag wins over its variable.
    let other = unique("conv-none");
    let flagged = [&verify[..], &["--source", other.as_str()]].concat();
    let run = s3fan_with_env(&aws.endpoint, &access_key(), &env, &flagged).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains(&other), "{}", run.stderr);

    // --endpoint-url wins over AWS_ENDPOINT_URL (here a closed port).
    let dead = "http://127.0.0.1:9";
    let backfill = [
        "backfill",
        "--source",
        source.as_str(),
        "--dest",
        destination.as_str(),
    ];
    let run = s3fan_with_env(dead, &access_key(), &[], &backfill).await;
    assert_eq!(run.code, Some(1), "the closed port is used: {}", run.stderr);
    let with_endpoint = [&["--endpoint-url", aws.endpoint.as_str()][..], &backfill].concat();
    let run = s3fan_with_env(dead, &access_key(), &[], &with_endpoint).await;
    assert_ok(&run);
    // Progress goes to stderr; -q leaves only the report.
    assert!(run.stderr.contains("backfill s3://"), "{}", run.stderr);
    let quiet = [&["-q"][..], &backfill].concat();
    let run = aws.s3fan(&access_key(), &quiet).await;
    assert_ok(&run);
    assert_eq!(run.stderr, "", "-q prints no progress");
    assert!(run.stdout.contains("in sync"), "{}", run.stdout);

    // RUST_LOG alone turns the log on (without --debug).
    let env = [("RUST_LOG", "debug")];
    let status = ["status", "--source", source.as_str()];
    let run = s3fan_with_env(&aws.endpoint, &access_key(), &env, &status).await;
    assert!(run.stderr.contains("DEBUG"), "{}", run.stderr);
}
