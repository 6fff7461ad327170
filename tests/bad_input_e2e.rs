//! Bad input to every command that talks to AWS: each gets a message that
//! names what is wrong and what to do, a non-zero exit, and changes nothing.
//! The real release binary against the local AWS, with the fault proxy
//! playing the parts moto cannot: expired credentials, and a bucket that
//! belongs to another account (moto does not evaluate access).

mod common;

use common::{
    CliRun, Clients, FaultProxy, access_key, assert_refused, local_aws, s3fan_with_env, unique,
    writes_by,
};

/// Every command that reaches AWS, as a user would type it for `source`
/// (and `destination` where the command takes one).
fn every_command(source: &str, destination: &str) -> Vec<Vec<String>> {
    let with_dest = |command: &str| {
        vec![
            command.to_owned(),
            "--source".into(),
            source.into(),
            "--dest".into(),
            destination.into(),
        ]
    };
    let source_only = |command: &str| vec![command.to_owned(), "--source".into(), source.into()];
    vec![
        with_dest("deploy"),
        source_only("status"),
        source_only("destroy"),
        with_dest("backfill"),
        with_dest("verify"),
        source_only("failures"),
        source_only("retry"),
    ]
}

async fn run(endpoint: &str, key: &str, env: &[(&str, &str)], args: &[String]) -> CliRun {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    s3fan_with_env(endpoint, key, env, &args).await
}

async fn buckets(clients: &Clients) -> (String, String) {
    let (source, destination) = (unique("bad-src"), unique("bad-dst"));
    clients.create_bucket(&source).await;
    clients.create_bucket(&destination).await;
    (source, destination)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_source_is_named_by_every_command() {
    let aws = local_aws();
    for mut args in every_command("unused", "unused") {
        // Drop `--source unused`.
        args.drain(1..3);
        let key = access_key();
        let run = run(&aws.endpoint, &key, &[], &args).await;
        assert_refused(&run, &["no source bucket", "--source BUCKET"]);
        assert_eq!(writes_by(&key), Vec::<String>::new(), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_does_not_exist_is_named_by_every_command() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let (_, destination) = buckets(&clients).await;
    let missing = unique("no-such");
    for args in every_command(&missing, &destination) {
        let key = access_key();
        let run = run(&aws.endpoint, &key, &[], &args).await;
        assert_refused(
            &run,
            &[
                &format!("source bucket {missing} does not exist"),
                "--source",
            ],
        );
        assert_eq!(writes_by(&key), Vec::<String>::new(), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_reported_with_what_to_check() {
    // Port 1 on loopback: nothing listens, the connection is refused.
    for args in every_command("some-src", "some-dst") {
        let run = run("http://127.0.0.1:1", &access_key(), &[], &args).await;
        assert_refused(
            &run,
            &[
                "cannot identify the caller's account",
                "AWS did not answer",
                "AWS_ENDPOINT_URL",
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_credentials_say_to_refresh_them() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let (source, destination) = buckets(&clients).await;
    let proxy = FaultProxy::start(&aws.endpoint, &["--rate", "0"]);
    // What STS answers for an expired session token.
    proxy.refuse(
        403,
        "ExpiredToken",
        "The security token included in the request is expired",
        None,
    );
    let token = [("AWS_SESSION_TOKEN", "an-expired-session-token")];
    for args in every_command(&source, &destination) {
        proxy.fail_write(0);
        let run = run(&proxy.endpoint, &access_key(), &token, &args).await;
        assert_refused(
            &run,
            &[
                "ExpiredToken",
                "AWS refused these credentials",
                "aws sso login",
            ],
        );
        assert_eq!(proxy.writes(), Vec::<String>::new(), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_other_than_the_buckets_is_refused_with_the_right_one() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let (source, destination) = buckets(&clients).await;
    for mut args in every_command(&source, &destination) {
        args.extend(["--region".into(), "eu-west-1".into()]);
        let key = access_key();
        let run = run(&aws.endpoint, &key, &[], &args).await;
        assert_refused(
            &run,
            &[
                &format!("source bucket {source} is in us-east-1, not in --region eu-west-1"),
                "--region us-east-1",
            ],
        );
        assert_eq!(writes_by(&key), Vec::<String>::new(), "{args:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_of_another_account_is_named_with_the_way_out() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let (source, destination) = buckets(&clients).await;
    let proxy = FaultProxy::start(&aws.endpoint, &["--rate", "0"]);

    // The source: S3 answers 403 to every request of a stranger.
    proxy.refuse(403, "AccessDenied", "Access Denied", Some(&source));
    for args in every_command(&source, &destination) {
        proxy.fail_write(0);
        let run = run(&proxy.endpoint, &access_key(), &[], &args).await;
        assert_refused(
            &run,
            &[
                &format!("source bucket {source} exists"),
                "belongs to another account",
                "--profile",
            ],
        );
        assert_eq!(proxy.writes(), Vec::<String>::new(), "{args:?}");
    }

    // A destination: deploy refuses before it changes anything.
    proxy.refuse(403, "AccessDenied", "Access Denied", Some(&destination));
    proxy.fail_write(0);
    let args = every_command(&source, &destination).remove(0);
    let run = run(&proxy.endpoint, &access_key(), &[], &args).await;
    assert_refused(
        &run,
        &[
            &format!("destination bucket {destination} exists"),
            "belongs to another account",
            "bucket's policy",
        ],
    );
    assert_eq!(proxy.writes(), Vec::<String>::new());
}
