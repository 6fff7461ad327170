//! The exit statuses a pipeline branches on (the README's table): 0 done
//! and nothing differs, 1 an error, 2 a usage error, 3 ran fine and found a
//! difference; and the confirmation every removal needs.

use aws_sdk_s3::types::NotificationConfiguration;

use crate::common::{
    CliRun, LocalAws, access_key, assert_exit, function_name_for, local_aws, s3fan_on_terminal,
    unique,
};

const DONE: i32 = 0;
const FAILED: i32 = 1;
const USAGE: i32 = 2;
const DIFFERS: i32 = 3;

async fn run(aws: &LocalAws, args: &[&str]) -> CliRun {
    aws.s3fan(&access_key(), args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_tells_a_difference_from_an_error() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let (source, destination) = (unique("exit-src"), unique("exit-dst"));
    clients.create_bucket(&source).await;
    clients.create_bucket(&destination).await;
    let fanout = ["--source", source.as_str(), "--dest", destination.as_str()];
    let with = |command: &'static str, flags: &[&'static str]| -> Vec<String> {
        [&[command][..], &fanout[..], flags]
            .concat()
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    let call = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(aws, &args).await
    };

    // Usage: a flag clap rejects, and a fan-out that cannot be.
    assert_exit(&call(with("verify", &["--no-such-flag"])).await, USAGE);
    let onto_itself = run(aws, &["deploy", "--source", &source, "--dest", &source]).await;
    assert_exit(&onto_itself, USAGE);

    // A plan with changes differs; applied, it is done; planned again, the
    // same fan-out has nothing to change.
    assert_exit(&call(with("deploy", &["--dry-run"])).await, DIFFERS);
    assert_exit(&call(with("deploy", &[])).await, DONE);
    assert_exit(&call(with("deploy", &["--dry-run"])).await, DONE);
    assert_exit(&run(aws, &["status", "--source", &source]).await, DONE);

    // An object the events did not bring (written before the fan-out
    // listened, as the notification is removed): verify and a backfill
    // plan differ; once copied, they are in sync.
    clients
        .s3
        .put_bucket_notification_configuration()
        .bucket(&source)
        .notification_configuration(NotificationConfiguration::builder().build())
        .send()
        .await
        .expect("remove the notification");
    let drift = run(aws, &["status", "--source", &source]).await;
    assert_exit(&drift, DIFFERS);
    assert!(drift.stdout.contains("notification"), "{}", drift.stdout);
    clients
        .put(&source, "late.txt", b"late".to_vec(), "text/plain", &[])
        .await;
    assert_exit(&call(with("verify", &[])).await, DIFFERS);
    // A dry run's last line says nothing was copied and how to copy, never
    // "done"; once in sync, that nothing is left to copy.
    let planned = call(with("backfill", &["--dry-run"])).await;
    assert_exit(&planned, DIFFERS);
    assert!(
        planned
            .stdout
            .ends_with("without --dry-run copies what is listed above\n"),
        "{}",
        planned.stdout
    );
    assert_exit(&call(with("backfill", &[])).await, DONE);
    assert_exit(&call(with("verify", &[])).await, DONE);
    let in_sync = call(with("backfill", &["--dry-run"])).await;
    assert_exit(&in_sync, DONE);
    assert!(
        in_sync
            .stdout
            .ends_with("nothing to copy: every destination is in sync\n"),
        "{}",
        in_sync.stdout
    );
    assert_exit(&call(with("deploy", &[])).await, DONE);
    assert_exit(&run(aws, &["status", "--source", &source]).await, DONE);

    // An error is not a difference: a destination that is not there.
    let gone = unique("exit-gone");
    let missing = run(aws, &["verify", "--source", &source, "--dest", &gone]).await;
    assert_exit(&missing, FAILED);

    // Failed events waiting are the answer `failures` was asked for.
    assert_exit(&run(aws, &["failures", "--source", &source]).await, DONE);
    let url = clients.failure_queue_url(&source).await;
    clients
        .sqs
        .send_message()
        .queue_url(url)
        .message_body("{}")
        .send()
        .await
        .expect("send a failed event");
    assert_exit(&run(aws, &["failures", "--source", &source]).await, DIFFERS);

    // Nothing is removed unasked. Without a terminal (as here) and
    // without --yes, destroy refuses and names what it would remove.
    let refused = run(aws, &["destroy", "--source", &source]).await;
    assert_exit(&refused, FAILED);
    for text in ["destroy would remove", "--yes", "Nothing was changed"] {
        assert!(refused.stderr.contains(text), "{text}: {}", refused.stderr);
    }
    assert_exit(&run(aws, &["status", "--source", &source]).await, DONE);
    assert_exit(
        &run(aws, &["destroy", "--source", &source, "--dry-run"]).await,
        DIFFERS,
    );
    assert_exit(
        &run(aws, &["destroy", "--source", &source, "--yes"]).await,
        DONE,
    );
    assert_exit(
        &run(aws, &["destroy", "--source", &source, "--dry-run"]).await,
        DONE,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_that_drops_a_destination_asks_first() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("drop-src");
    let (kept, dropped) = (unique("drop-keep"), unique("drop-old"));
    for bucket in [&source, &kept, &dropped] {
        clients.create_bucket(bucket).await;
    }
    let both = aws
        .deploy(&access_key(), &source, &[&kept, &dropped], &[])
        .await;
    assert_exit(&both, DONE);

    let refused = aws.deploy(&access_key(), &source, &[&kept], &[]).await;
    assert_exit(&refused, FAILED);
    assert!(
        refused.stderr.contains("deploy would remove") && refused.stderr.contains(&dropped),
        "{}",
        refused.stderr
    );
    let function = function_name_for(&dropped);
    let still_there = clients
        .lambda
        .get_function()
        .function_name(&function)
        .send();
    assert!(still_there.await.is_ok(), "{function} is still there");

    let confirmed = aws
        .deploy(&access_key(), &source, &[&kept], &["--yes"])
        .await;
    assert_exit(&confirmed, DONE);
    assert!(confirmed.stdout.contains("deleted"), "{}", confirmed.stdout);
    assert_exit(
        &run(aws, &["destroy", "--source", &source, "--yes"]).await,
        DONE,
    );
}

/// On a terminal, destroy shows what it would remove and asks, as
/// `terraform apply` does: any answer but `yes` removes nothing; `yes`
/// removes it. Progress on that terminal is a live line where the terminal
/// can draw one, and plain lines where TERM is unset (nothing was shown
/// there before: the progress library hides itself without TERM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_destroy_asks_and_only_yes_removes() {
    let aws = local_aws();
    let clients = aws.clients().await;
    let (source, destination) = (unique("tty-src"), unique("tty-dst"));
    clients.create_bucket(&source).await;
    clients.create_bucket(&destination).await;
    let key = access_key();
    let function = function_name_for(&destination);
    let exists = || async {
        let found = clients
            .lambda
            .get_function()
            .function_name(&function)
            .send();
        found.await.is_ok()
    };
    let question = "Only 'yes' will be accepted";
    let escape = "\u{1b}[";

    // A deploy asks nothing; without TERM its steps show as plain lines.
    let deploy = [
        "deploy",
        "--source",
        source.as_str(),
        "--dest",
        destination.as_str(),
    ];
    let deployed = s3fan_on_terminal(&aws.endpoint, &key, &[], (question, "no"), &deploy).await;
    assert_eq!(deployed.code, DONE, "{}", deployed.terminal);
    assert!(!deployed.asked, "{}", deployed.terminal);
    let shown = &deployed.terminal;
    let created = format!("function {function} created");
    assert!(
        shown.contains(&created) && shown.contains("changes made"),
        "{shown:?}"
    );
    assert!(
        !shown.contains(escape),
        "plain lines without TERM: {shown:?}"
    );

    let xterm = [("TERM", "xterm-256color")];
    let destroy = ["destroy", "--source", source.as_str()];
    let on_terminal = |answer: &'static str| {
        s3fan_on_terminal(&aws.endpoint, &key, &xterm, (question, answer), &destroy)
    };
    let declined = on_terminal("y").await;
    assert!(declined.asked, "no question: {}", declined.terminal);
    assert_eq!(declined.code, FAILED, "{}", declined.terminal);
    let asked = &declined.terminal;
    assert!(
        asked.contains("destroy will remove") && asked.contains(&function),
        "{asked}"
    );
    assert!(asked.contains("destroy cancelled"), "{asked}");
    assert!(
        exists().await,
        "{function} is still there after the answer 'y'"
    );

    let confirmed = on_terminal("yes").await;
    assert!(confirmed.asked, "no question: {}", confirmed.terminal);
    assert_eq!(confirmed.code, DONE, "{}", confirmed.terminal);
    assert!(!exists().await, "{function} is removed after 'yes'");
    assert!(confirmed.stdout.contains("deleted"), "{}", confirmed.stdout);
    // After the answer, the progress is a live line, redrawn in place with
    // the terminal's escape sequences.
    let (_, after) = confirmed
        .terminal
        .split_once(question)
        .expect("the question");
    assert!(
        after.contains("changes made") && after.contains(escape),
        "{after:?}"
    );
}
