//! Bad input to every command that talks to AWS: each gets a message that
//! names what is wrong and what to do, a non-zero exit, and changes nothing.
//! The real release binary against the local AWS, with the fault proxy
//! playing the parts moto cannot: expired credentials, and a bucket that
//! belongs to another account (moto does not evaluate access).

use crate::common::{
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

/// A profile whose `credential_process` leaves a mark and answers with its
/// own access key, in a config file of its own.
fn profile_with_credential_process(dir: &std::path::Path, profile_key: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("credentials.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntouch '{}'\necho '{{\"Version\": 1, \"AccessKeyId\": \"{profile_key}\", \
             \"SecretAccessKey\": \"test\"}}'\n",
            dir.join("ran").display()
        ),
    )
    .expect("write the credential process");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "[profile other]\ncredential_process = {}\nregion = us-east-1\n",
            script.display()
        ),
    )
    .expect("write the config file");
    config.display().to_string()
}

fn signed_by(key: &str) -> usize {
    local_aws()
        .requests()
        .iter()
        .filter(|r| r.access_key.as_deref() == Some(key))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_profile_wins_over_credentials_in_the_environment() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let (source, _) = buckets(&clients).await;
    for how in ["--profile", "profile in s3fan.toml"] {
        let dir = std::env::temp_dir().join(unique("s3fan-profile"));
        std::fs::create_dir_all(&dir).expect("a directory");
        let profile_key = access_key();
        let config = profile_with_credential_process(&dir, &profile_key);
        let mut args = vec!["status", "--source", source.as_str()];
        if how == "--profile" {
            args.extend(["--profile", "other"]);
        } else {
            std::fs::write(dir.join("s3fan.toml"), "profile = \"other\"\n").expect("s3fan.toml");
        }
        // The environment holds other keys, as a shell often does.
        let environment_key = access_key();
        let env = [
            ("AWS_CONFIG_FILE", config.as_str()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ];
        let run = crate::common::s3fan_in(&dir, &aws.endpoint, &environment_key, &env, &args).await;
        crate::common::assert_ok(&run);
        assert!(
            dir.join("ran").exists(),
            "{how}: the profile's credential_process ran"
        );
        assert!(
            signed_by(&profile_key) > 0,
            "{how}: requests signed by the profile"
        );
        assert_eq!(
            signed_by(&environment_key),
            0,
            "{how}: nothing signed with the environment's keys"
        );
    }
}

/// Answers every request with 200 and a body that is no AWS answer.
fn garbage_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().flatten().take(64) {
            let mut buffer = [0u8; 8192];
            let _ = stream.read(&mut buffer);
            let body = "this is not what AWS answers <";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_sentences_and_the_raw_detail_waits_for_debug() {
    let no_credentials = [
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("AWS_CONFIG_FILE", "/nonexistent"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
    ];
    let garbage = garbage_server();
    /// What is wrong, where s3fan is sent, its extra variables, what it says.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 3] = [
        (
            "unreachable",
            "http://127.0.0.1:1",
            &[],
            "the request could not be sent",
        ),
        (
            "no credentials",
            "http://127.0.0.1:1",
            &no_credentials,
            "no usable AWS credentials",
        ),
        (
            "unreadable answer",
            &garbage,
            &[],
            "AWS's answer could not be read",
        ),
    ];
    let args = ["status", "--source", "some-src"];
    for (case, endpoint, env, says) in cases {
        let run = s3fan_with_env(endpoint, &access_key(), env, &args).await;
        assert_refused(&run, &[says]);
        for dump in [
            "DispatchFailure(",
            "CredentialsNotLoaded(",
            "ResponseError(",
            "Response {",
            "source:",
            "{ ",
        ] {
            assert!(
                !run.stderr.contains(dump),
                "{case}: {dump} in {}",
                run.stderr
            );
        }
        let debug = s3fan_with_env(
            endpoint,
            &access_key(),
            env,
            &[&args[..], &["--debug"]].concat(),
        )
        .await;
        assert_refused(&debug, &[says]);
        assert!(
            debug.stderr.contains("[debug: ") && debug.stderr.len() > run.stderr.len(),
            "{case}: --debug shows the raw detail: {}",
            debug.stderr
        );
    }
}
