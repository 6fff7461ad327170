//! End to end: what long commands show as they go (on stderr, a line per
//! deploy step, a line per destination for backfill and verify), and how
//! Ctrl-C stops them: the work under way finishes, the report says what
//! was done, the exit status is 130, and a re-run goes on from there.

use std::time::Duration;

use crate::common::{
    FaultProxy, access_key, assert_ok, local_aws, put_metric, s3fan_at, s3fan_command, unique,
};

async fn fill(clients: &crate::common::Clients, bucket: &str, count: usize) {
    for i in 0..count {
        clients
            .put(
                bucket,
                &format!("k{i:03}"),
                vec![b'x'; 2048],
                "text/plain",
                &[],
            )
            .await;
    }
}

async fn count_objects(clients: &crate::common::Clients, bucket: &str) -> usize {
    let listed = clients
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list");
    listed.contents().len()
}

/// S3's daily storage metric, as CloudWatch holds it a day after the
/// bucket got `objects` objects.
async fn storage_metric(bucket: &str, objects: f64) {
    put_metric(
        "AWS/S3",
        "NumberOfObjects",
        &[("BucketName", bucket), ("StorageType", "AllStorageTypes")],
        objects,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_shows_each_change_as_it_is_made_and_quiet_shows_none() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-progress");
    let destination = unique("dst-progress");
    for bucket in [&source, &destination] {
        clients.create_bucket(bucket).await;
    }
    let run = aws
        .deploy(&access_key(), &source, &[&destination], &[])
        .await;
    assert_ok(&run);
    // Not a terminal: plain lines, one per change as it is made, then the
    // count; the report itself stays on stdout.
    let label = format!("deploy s3://{source}: ");
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with(&label))
        .collect();
    let function = format!("{label}function {destination} created (");
    let topic = format!("{label}topic {source}-fanout created (");
    let position = |wanted: &str| lines.iter().position(|l| l.starts_with(wanted));
    assert!(
        position(&topic).is_some() && position(&topic) < position(&function),
        "the topic is made before the function: {}",
        run.stderr
    );
    assert_eq!(
        lines.last().copied(),
        Some(format!("{label}9 of 9 changes made").as_str()),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains(&label), "progress is not the report");

    // Nothing to change: no progress at all.
    let again = aws
        .deploy(&access_key(), &source, &[&destination], &[])
        .await;
    assert_ok(&again);
    assert!(!again.stderr.contains(&label), "{}", again.stderr);
    // --quiet: none either, even with changes to make.
    let quiet = aws
        .deploy(
            &access_key(),
            &source,
            &[&destination],
            &["--memory", "256", "-q"],
        )
        .await;
    assert_ok(&quiet);
    assert_eq!(quiet.stderr, "", "--quiet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_shows_each_destination_and_an_eta_when_the_source_size_is_known() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-eta");
    let (a, b) = (unique("dst-eta-a"), unique("dst-eta-b"));
    for bucket in [&source, &a, &b] {
        clients.create_bucket(bucket).await;
    }
    fill(&clients, &source, 12).await;
    storage_metric(&source, 12.0).await;
    let run = aws
        .s3fan(
            &access_key(),
            &["backfill", "--source", &source, "--dest", &a, "--dest", &b],
        )
        .await;
    assert_ok(&run);
    // The last line counts everything, against the size CloudWatch knows,
    // and says per destination what was copied, in human units.
    let label = format!("backfill s3://{source}: ");
    let last = run
        .stderr
        .rfind(&label)
        .map(|at| &run.stderr[at..])
        .unwrap_or_else(|| panic!("no progress: {}", run.stderr));
    assert!(
        last.starts_with(&format!("{label}12 keys examined of about 12")),
        "{last}"
    );
    for bucket in [&a, &b] {
        assert!(
            last.contains(&format!(
                "\n  s3://{bucket}/: 12 copied (24.0 KiB), 0 in sync, 0 failed"
            )),
            "{last}"
        );
    }
    // A filtered listing holds an unknown share of the bucket: no total.
    let narrowed = aws
        .s3fan(
            &access_key(),
            &[
                "verify", "--source", &source, "--dest", &a, "--prefix", "k00",
            ],
        )
        .await;
    assert_ok(&narrowed);
    assert!(
        narrowed
            .stderr
            .contains(&format!("verify s3://{source}: 10 keys compared\n")),
        "{}",
        narrowed.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_lets_a_backfill_finish_its_copy_report_it_and_a_rerun_goes_on() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-int");
    let destination = unique("dst-int");
    for bucket in [&source, &destination] {
        clients.create_bucket(bucket).await;
    }
    fill(&clients, &source, 20).await;
    let proxy = FaultProxy::start(&aws.endpoint, &["--rate", "0"]);
    // One copy at a time, in key order: k000 to k004 are copied, the copy
    // of k005 is held until Ctrl-C has come.
    proxy.hold(&format!("PUT /{destination}/k005?x-id=CopyObject"));
    let args = [
        "backfill",
        "--source",
        &source,
        "--dest",
        &destination,
        "--concurrency",
        "1",
        "--list-concurrency",
        "1",
        "--output",
        "json",
    ];
    let child = s3fan_command(&proxy.endpoint, &access_key(), &args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run s3fan");
    let held = proxy.held().await;
    assert!(held.contains("/k005?"), "{held}");
    let pid = child.id().expect("s3fan runs").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success());
    // Released once s3fan has taken the signal: the copy under way ends
    // well, and nothing more starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.release();
    let out = crate::common::CliRun::of(child.wait_with_output().await.expect("wait for s3fan"));
    assert_eq!(out.code, Some(130), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("finishing what is under way"),
        "{}",
        out.stderr
    );
    let report = out.json();
    assert_eq!(report["interrupted"], true, "{report}");
    assert_eq!(report["ok"], false);
    assert_eq!(report["destinations"][0]["copied"], 6, "{report}");
    assert_eq!(
        count_objects(&clients, &destination).await,
        6,
        "the report says what was done"
    );

    // The same command again copies the rest, and only the rest.
    let rerun = s3fan_at(&aws.endpoint, &access_key(), &args).await;
    assert_ok(&rerun);
    let report = rerun.json();
    assert_eq!(report["interrupted"], false);
    assert_eq!(report["destinations"][0]["copied"], 14, "{report}");
    assert_eq!(report["destinations"][0]["in_sync"], 6, "{report}");
    assert_eq!(count_objects(&clients, &destination).await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_lets_a_deploy_finish_its_step_and_a_rerun_makes_the_rest() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-intd");
    let destination = unique("dst-intd");
    for bucket in [&source, &destination] {
        clients.create_bucket(bucket).await;
    }
    let proxy = FaultProxy::start(&aws.endpoint, &["--rate", "0"]);
    // The subscription is the destination's last step; the bucket's
    // notification comes in the stage after it.
    proxy.hold("Subscribe");
    let args = [
        "deploy",
        "--source",
        &source,
        "--dest",
        &destination,
        "--output",
        "json",
    ];
    let child = s3fan_command(&proxy.endpoint, &access_key(), &args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run s3fan");
    assert_eq!(proxy.held().await, "Subscribe");
    let pid = child.id().expect("s3fan runs").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.release();
    let out = crate::common::CliRun::of(child.wait_with_output().await.expect("wait for s3fan"));
    assert_eq!(out.code, Some(130), "{}\n{}", out.stdout, out.stderr);
    let report = out.json();
    let status_of = |report: &serde_json::Value, kind: &str| {
        report["changes"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["kind"] == kind))
            .map(|c| c["status"].clone())
    };
    assert_eq!(
        status_of(&report, "subscription"),
        Some("done".into()),
        "{report}"
    );
    assert_eq!(
        status_of(&report, "notification"),
        Some("not_attempted".into()),
        "{report}"
    );
    let notification = clients
        .s3
        .get_bucket_notification_configuration()
        .bucket(&source)
        .send()
        .await
        .expect("notification");
    assert!(notification.topic_configurations().is_empty(), "not made");

    // Run again: what was made stays, the rest is made.
    let rerun = s3fan_at(&aws.endpoint, &access_key(), &args).await;
    assert_ok(&rerun);
    let report = rerun.json();
    assert_eq!(status_of(&report, "notification"), Some("done".into()));
    let actions: Vec<_> = report["changes"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter(|c| c["action"] == "create")
                .map(|c| c["kind"].clone())
                .collect()
        })
        .unwrap_or_default();
    assert!(actions.contains(&"notification".into()), "{report}");
    assert!(!actions.contains(&"function".into()), "{report}");
}
