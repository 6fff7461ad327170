//! What users of the aws cli take for granted: `--endpoint-url`,
//! environment fallbacks for the main flags, `-q`, RUST_LOG; and what
//! users of cargo take for granted: `init`, `--config`, completions.

use crate::common::{
    access_key, assert_exit, assert_ok, function_name_for, local_aws, s3fan_in, s3fan_with_env,
    unique,
};

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

/// S3FAN_DEST stands for deploy's and init's --dest, as S3FAN_SOURCE for
/// --source: a CI job can hold the whole fan-out in its environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3fan_dest_lists_the_destinations_of_deploy_and_init() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("envd-src");
    let (first, second) = (unique("envd-one"), unique("envd-two"));
    for bucket in [&source, &first, &second] {
        clients.create_bucket(bucket).await;
    }
    let listed = format!("{first}, {second}:in/");
    let env = [
        ("S3FAN_SOURCE", source.as_str()),
        ("S3FAN_DEST", listed.as_str()),
    ];
    let plan = ["deploy", "--dry-run", "--output", "json"];
    let run = s3fan_with_env(&aws.endpoint, &access_key(), &env, &plan).await;
    assert_exit(&run, 3);
    let report = run.json();
    let functions: Vec<&str> = report["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|change| change["kind"] == "function")
        .filter_map(|change| change["destination"].as_str())
        .collect();
    assert_eq!(functions, [first.as_str(), second.as_str()], "{report}");
    // --dest wins over the variable.
    let flagged = [&plan[..], &["--dest", first.as_str()]].concat();
    let run = s3fan_with_env(&aws.endpoint, &access_key(), &env, &flagged).await;
    assert_exit(&run, 3);
    let report = run.json();
    assert!(!report.to_string().contains(&second), "{report}");

    // A comma inside a key prefix is refused before any AWS call, with
    // the form that holds it.
    let split = format!("{first}:photos,2024/");
    let bad = [
        ("S3FAN_SOURCE", source.as_str()),
        ("S3FAN_DEST", split.as_str()),
    ];
    let run = s3fan_with_env(&aws.endpoint, &access_key(), &bad, &["deploy"]).await;
    assert_exit(&run, 2);
    assert!(
        run.stderr.contains("S3FAN_DEST") && run.stderr.contains("JSON list"),
        "{}",
        run.stderr
    );
    let topics = clients.sns.list_topics().send().await.expect("list topics");
    let made = topics.topics().iter().filter_map(|t| t.topic_arn());
    assert!(
        made.into_iter().all(|arn| !arn.contains(&source)),
        "no topic made"
    );

    // init keeps them in s3fan.toml, the JSON form with its comma intact.
    let dir = std::env::temp_dir().join(unique("envd-dir"));
    std::fs::create_dir_all(&dir).unwrap();
    let json = format!(r#"["{first}:a,b/", "{second}"]"#);
    let env = [
        ("S3FAN_SOURCE", source.as_str()),
        ("S3FAN_DEST", json.as_str()),
    ];
    let run = s3fan_in(&dir, &aws.endpoint, &access_key(), &env, &["init"]).await;
    assert_ok(&run);
    let written = std::fs::read_to_string(dir.join("s3fan.toml")).unwrap();
    assert!(
        written.contains(&format!(r#"dest = ["{first}:a,b/", "{second}"]"#)),
        "{written}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_the_file_that_deploy_and_the_other_commands_read() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let (source, destination) = (unique("init-src"), unique("init-dst"));
    clients.create_bucket(&source).await;
    clients.create_bucket(&destination).await;
    let dir = std::env::temp_dir().join(unique("init-dir"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = access_key();
    let in_dir = |args: Vec<&str>| {
        let dir = dir.clone();
        let (endpoint, key) = (aws.endpoint.clone(), key.clone());
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            s3fan_in(&dir, &endpoint, &key, &[], &args).await
        }
    };

    let init = vec![
        "init",
        "--source",
        &source,
        "--dest",
        &destination,
        "--memory",
        "256",
    ];
    let run = in_dir(init.clone()).await;
    assert_ok(&run);
    let file = dir.join("s3fan.toml");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("memory = 256\n"), "{written}");
    // A second init leaves the file as it is, and says how to replace it.
    let run = in_dir(vec!["init", "--source", "other-src", "--dest", "other-dst"]).await;
    assert_exit(&run, 2);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written);

    // deploy, without a flag, makes what the file says.
    let run = in_dir(vec!["deploy"]).await;
    assert_ok(&run);
    let memory = |function: String| {
        let lambda = clients.lambda.clone();
        async move {
            let config = lambda
                .get_function_configuration()
                .function_name(function)
                .send();
            config.await.expect("the function").memory_size()
        }
    };
    assert_eq!(memory(function_name_for(&destination)).await, Some(256));

    // From another directory, --config (or S3FAN_CONFIG) names the file.
    let path = file.display().to_string();
    let status = ["--config", path.as_str(), "status", "--output", "json"];
    let run = s3fan_with_env(&aws.endpoint, &key, &[], &status).await;
    assert_ok(&run);
    assert_eq!(run.json()["source"], source.as_str(), "{}", run.stdout);
    let env = [("S3FAN_CONFIG", path.as_str())];
    let run = s3fan_with_env(&aws.endpoint, &key, &env, &["status", "--output", "json"]).await;
    assert_ok(&run);
    assert_eq!(run.json()["source"], source.as_str(), "{}", run.stdout);

    // A value of the wrong kind is named in the file's words, and nothing
    // deployed changes. One destination may be a string.
    let bad = dir.join("bad.toml");
    let text = format!("source = \"{source}\"\ndest = \"{destination}\"\nmemory = \"512\"\n");
    std::fs::write(&bad, text).unwrap();
    let bad = bad.display().to_string();
    let run = s3fan_with_env(&aws.endpoint, &key, &[], &["--config", &bad, "deploy"]).await;
    assert_exit(&run, 2);
    assert!(
        run.stderr.contains(&format!(
            "{bad}: memory is the string \"512\": a number is written without quotes, as memory = 512"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(memory(function_name_for(&destination)).await, Some(256));
    // A --config file that is not there is an error, not no settings.
    let missing = dir.join("missing.toml").display().to_string();
    let run = s3fan_with_env(&aws.endpoint, &key, &[], &["--config", &missing, "status"]).await;
    assert_exit(&run, 2);
    assert!(
        run.stderr.contains("missing.toml: no such file"),
        "{}",
        run.stderr
    );

    let run = in_dir(vec!["destroy", "--yes"]).await;
    assert_ok(&run);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The bash script, loaded in a real bash, completes commands and flags
/// (as bash calls a completion function: COMP_WORDS and COMP_CWORD set).
#[test]
fn the_bash_completion_completes_commands_and_flags() {
    let complete = |line: &str| {
        let script = format!(
            "source <({} completions bash)\n\
             COMP_WORDS=({line}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n\
             _s3fan s3fan \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            env!("CARGO_BIN_EXE_s3fan")
        );
        let output = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .expect("run bash");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(complete("s3fan dep").trim(), "deploy");
    assert_eq!(
        complete("s3fan deploy --reconcile").trim(),
        "--reconcile-every"
    );
    let shells = complete("s3fan completions ''");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        assert!(shells.lines().any(|l| l == shell), "{shells}");
    }
}
