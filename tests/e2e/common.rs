//! The local AWS that end-to-end tests run against: one moto server
//! (tests/harness/local_aws.py), which executes uploaded Lambda zips with
//! their real `bootstrap`, and SDK clients pointed at it; and the helpers
//! every feature's tests use to run the release binary and read its output.
//!
//! Tests share the server and keep out of each other's way with unique
//! resource names; the few that change how every function runs have one of
//! their own ([`isolated_local_aws`]). A server exits when this process
//! does: it watches its standard input, which closes when the test binary
//! exits however it ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

pub struct LocalAws {
    pub endpoint: String,
    _server: Mutex<Child>,
}

/// The local AWS of this test binary, started on first use.
pub fn local_aws() -> &'static LocalAws {
    static LOCAL_AWS: OnceLock<LocalAws> = OnceLock::new();
    LOCAL_AWS.get_or_init(start_local_aws)
}

/// A local AWS of its own, for tests that change how every function runs
/// (`set_bootstrap_env`): shared by the tests that give the same `name`,
/// never with the others. Started on first use.
pub fn isolated_local_aws(name: &'static str) -> &'static LocalAws {
    static SERVERS: Mutex<Vec<(&'static str, &'static LocalAws)>> = Mutex::new(Vec::new());
    let mut servers = SERVERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, aws)) = servers.iter().find(|(n, _)| *n == name) {
        return aws;
    }
    let aws: &'static LocalAws = Box::leak(Box::new(start_local_aws()));
    servers.push((name, aws));
    aws
}

fn start_local_aws() -> LocalAws {
    let (child, port, _) = start_harness_server("local_aws.py", &[]);
    LocalAws {
        endpoint: format!("http://127.0.0.1:{port}"),
        _server: Mutex::new(child),
    }
}

/// Starts one of tests/harness's Python servers on a free port; returns it,
/// its port and its log. It exits when this test binary does (it watches
/// its standard input).
fn start_harness_server(script: &str, args: &[&str]) -> (Child, String, PathBuf) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = harness_python();
    let stem = script.trim_end_matches(".py");
    // One log per server: a test binary may start several of each.
    let log_path = std::env::temp_dir().join(format!("{}.log", unique(&format!("s3fan-{stem}"))));
    let log = std::fs::File::create(&log_path).expect("create the harness server's log");
    let mut child = Command::new(&python)
        .arg(root.join("tests/harness").join(script))
        .args(["--port", "0", "--exit-with-stdin"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|err| panic!("start tests/harness/{script}: {err}"));
    let stdout = child.stdout.take().expect("harness server stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the harness server's READY line");
    let port = line
        .strip_prefix("READY ")
        .map(str::trim)
        .unwrap_or_else(|| {
            panic!(
                "{script} did not start (said {line:?}); see {}",
                log_path.display()
            )
        })
        .to_owned();
    (child, port, log_path)
}

/// The Python of tests/harness (tests/run makes its venv, with moto).
fn harness_python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("S3FAN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    assert!(
        python.exists(),
        "no Python with moto at {}: run the tests with tests/run, which creates it",
        python.display()
    );
    python
}

/// Runs the release binary with `args` against the AWS endpoint `endpoint`
/// (the local AWS, or a proxy in front of it).
pub async fn s3fan_at(endpoint: &str, access_key: &str, args: &[&str]) -> CliRun {
    s3fan_with_env(endpoint, access_key, &[], args).await
}

/// `s3fan_at`, with more variables (or others in place of its own).
pub async fn s3fan_with_env(
    endpoint: &str,
    access_key: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> CliRun {
    s3fan_in(std::path::Path::new("."), endpoint, access_key, env, args).await
}

/// `s3fan_with_env`, run in `dir` (where it reads an `s3fan.toml`).
pub async fn s3fan_in(
    dir: &std::path::Path,
    endpoint: &str,
    access_key: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> CliRun {
    let output = s3fan_command(endpoint, access_key, args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run s3fan");
    CliRun::of(output)
}

/// The release binary with `args`, for `endpoint`, as the runs above
/// start it; for a test that acts while it runs (sends it Ctrl-C).
pub fn s3fan_command(endpoint: &str, access_key: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3fan"));
    command.args(args);
    with_test_environment(&mut command, endpoint, access_key);
    command
}

/// What a person at a terminal saw of a command (its stdin and stderr on
/// a pseudo-terminal), and what it wrote to stdout.
#[derive(serde::Deserialize)]
pub struct TerminalRun {
    pub code: i32,
    /// The question appeared, and was answered.
    pub asked: bool,
    pub terminal: String,
    pub stdout: String,
}

/// Runs the release binary with `args` as `s3fan_with_env` does, but with
/// its stdin and stderr on a terminal (tests/harness/on_terminal.py),
/// typing `answer` and Enter when `question` shows.
pub async fn s3fan_on_terminal(
    endpoint: &str,
    access_key: &str,
    env: &[(&str, &str)],
    (question, answer): (&str, &str),
    args: &[&str],
) -> TerminalRun {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut command = tokio::process::Command::new(harness_python());
    command
        .arg(root.join("tests/harness/on_terminal.py"))
        .args([question, answer, env!("CARGO_BIN_EXE_s3fan")])
        .args(args);
    with_test_environment(&mut command, endpoint, access_key);
    let output = command
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run on_terminal.py");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "on_terminal.py: {err}: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The environment every run of the binary gets: only what it needs, and
/// the local AWS as its endpoint.
fn with_test_environment(command: &mut tokio::process::Command, endpoint: &str, access_key: &str) {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

impl CliRun {
    pub fn of(output: std::process::Output) -> CliRun {
        CliRun {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// One HTTP/1.0 request to a harness control endpoint; its JSON answer.
fn control_request(endpoint: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect to a harness server");
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let answer = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default();
    serde_json::from_str(answer).unwrap_or_else(|err| panic!("{path}: {err}: {response}"))
}

/// tests/harness/fault_proxy.py in front of `upstream`: spoils a share of
/// the requests that pass through it.
pub struct FaultProxy {
    pub endpoint: String,
    _server: Mutex<Child>,
}

impl FaultProxy {
    pub fn start(upstream: &str, args: &[&str]) -> FaultProxy {
        let mut all = vec!["--upstream", upstream];
        all.extend_from_slice(args);
        let (child, port, _) = start_harness_server("fault_proxy.py", &all);
        FaultProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            _server: Mutex::new(child),
        }
    }

    /// Requests seen and faults made: `{"requests", "faults", "by_operation"}`.
    pub fn stats(&self) -> Value {
        control_request(&self.endpoint, "GET", "/_faults/stats", None)
    }

    /// Changes the rate, kinds and operations faults are made for.
    pub fn configure(&self, settings: Value) {
        control_request(&self.endpoint, "POST", "/_faults/config", Some(&settings));
    }

    /// The `nth` write from now (any API) is refused with 403 AccessDenied;
    /// 0 refuses none. Either way the count of writes starts again.
    pub fn fail_write(&self, nth: usize) {
        let plan = serde_json::json!({ "nth": nth });
        control_request(&self.endpoint, "POST", "/_faults/fail-write", Some(&plan));
    }

    /// The writes seen since the last `fail_write`, as API actions.
    pub fn writes(&self) -> Vec<String> {
        serde_json::from_value(control_request(
            &self.endpoint,
            "GET",
            "/_faults/writes",
            None,
        ))
        .expect("writes list")
    }

    /// The next write of `action` (say "Subscribe") waits, before it is
    /// forwarded, until `release`.
    pub fn hold(&self, action: &str) {
        let plan = serde_json::json!({ "write": action });
        control_request(&self.endpoint, "POST", "/_faults/hold", Some(&plan));
    }

    /// Waits until a held write is waiting; returns its action.
    pub async fn held(&self) -> String {
        for _ in 0..1200 {
            let held = control_request(&self.endpoint, "GET", "/_faults/held", None);
            if let Some(action) = held["held"].as_str() {
                return action.to_owned();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no write was held within 60 s");
    }

    /// Lets the held write go on.
    pub fn release(&self) {
        control_request(&self.endpoint, "POST", "/_faults/release", None);
    }

    /// Every request (with `bucket`, every S3 request for it) is answered
    /// `status` with the error `code`, as AWS would; `refuse_none` ends it.
    pub fn refuse(&self, status: u16, code: &str, message: &str, bucket: Option<&str>) {
        let mut plan = serde_json::json!({"status": status, "code": code, "message": message});
        if let Some(bucket) = bucket {
            plan["bucket"] = bucket.into();
        }
        control_request(&self.endpoint, "POST", "/_faults/refuse", Some(&plan));
    }

    /// The next request for `operation` gets exactly the fault `kind`.
    pub fn next(&self, kind: &str, operation: &str) {
        let plan = serde_json::json!({"kind": kind, "operation": operation});
        control_request(&self.endpoint, "POST", "/_faults/next", Some(&plan));
    }
}

impl LocalAws {
    pub async fn sdk_config_in(&self, region: &str) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .load()
            .await
    }

    pub async fn clients(&self) -> Clients {
        self.clients_in("us-east-1").await
    }

    /// Clients signing for `region` (the harness redirects S3 requests for
    /// a bucket of another region, as S3 does).
    pub async fn clients_in(&self, region: &str) -> Clients {
        let config = self.sdk_config_in(region).await;
        Clients {
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&config)
                    .force_path_style(true)
                    .build(),
            ),
            sns: aws_sdk_sns::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
        }
    }

    /// Waits until every queued S3 notification and SNS delivery has run.
    pub fn drain(&self) {
        self.control("/_harness/drain");
    }

    /// Every Lambda invocation the local AWS has run, oldest first.
    pub fn invocations(&self) -> Vec<Invocation> {
        serde_json::from_value(self.control("/_harness/invocations")).expect("invocations list")
    }

    /// Every AWS request the local AWS has answered, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        serde_json::from_value(self.control("/_harness/requests")).expect("requests list")
    }

    /// Runs the release binary with `args`, signed with `access_key` so the
    /// test can pick its own calls out of `requests()`.
    pub async fn s3fan(&self, access_key: &str, args: &[&str]) -> CliRun {
        s3fan_at(&self.endpoint, access_key, args).await
    }

    /// `s3fan deploy --source SOURCE --dest DST ... FLAGS ...`, signed with
    /// `access_key`.
    pub async fn deploy(
        &self,
        access_key: &str,
        source: &str,
        destinations: &[&str],
        flags: &[&str],
    ) -> CliRun {
        let mut args = vec!["deploy", "--source", source];
        for destination in destinations {
            args.extend(["--dest", destination]);
        }
        args.extend(flags);
        self.s3fan(access_key, &args).await
    }

    /// `deploy` with `--output json`, asserted to succeed: its report.
    pub async fn deploy_json(
        &self,
        access_key: &str,
        source: &str,
        destinations: &[&str],
        flags: &[&str],
    ) -> Value {
        let flags = [flags, &["--output", "json"]].concat();
        let run = self.deploy(access_key, source, destinations, &flags).await;
        assert_ok(&run);
        run.json()
    }

    /// Runs `args` with `--output json`, asserts that it succeeded, and
    /// returns its report.
    pub async fn s3fan_json(&self, access_key: &str, args: &[&str]) -> Value {
        self.s3fan_json_exit(access_key, args, 0).await
    }

    /// `s3fan_json`, asserting the exit status `code` (3: a difference).
    pub async fn s3fan_json_exit(&self, access_key: &str, args: &[&str], code: i32) -> Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let run = self.s3fan(access_key, &args).await;
        assert_exit(&run, code);
        run.json()
    }

    fn control(&self, path: &str) -> Value {
        control_request(&self.endpoint, "GET", path, None)
    }

    /// From now on, that share of S3 notifications is never sent (seeded);
    /// answers the share and how many have been dropped so far.
    pub fn drop_notifications(&self, share: f64, seed: u64) -> Value {
        control_request(
            &self.endpoint,
            "POST",
            "/_harness/drop-notifications",
            Some(&serde_json::json!({"share": share, "seed": seed})),
        )
    }

    /// Holds every queued delivery (notifications, asynchronous
    /// invocations) while `paused`, so a test can act between two
    /// invocations of a chain. Resume before `drain`.
    pub fn pause_deliveries(&self, paused: bool) {
        control_request(
            &self.endpoint,
            "POST",
            "/_harness/deliveries",
            Some(&serde_json::json!({"paused": paused})),
        );
    }

    /// Variables every bootstrap started from now on gets, over its
    /// function's own: `AWS_ENDPOINT_URL_S3` sends its S3 calls elsewhere.
    pub fn set_bootstrap_env(&self, variables: Value) {
        control_request(
            &self.endpoint,
            "POST",
            "/_harness/bootstrap-env",
            Some(&variables),
        );
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Invocation {
    pub function: String,
    pub event: Value,
    pub result: Option<String>,
    pub is_error: bool,
    pub logs: String,
}

impl Invocation {
    /// The structured log lines the function wrote.
    pub fn log_lines(&self) -> Vec<Value> {
        self.logs
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

/// What one run of the CLI did.
#[derive(Debug)]
pub struct CliRun {
    pub success: bool,
    /// The exit status (`None` if a signal ended it).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:?}"))
    }
}

/// A fresh access key per run: its requests can be told from every other
/// test's in the shared local AWS.
pub fn access_key() -> String {
    unique("AKIATEST").replace('-', "X")
}

pub fn assert_ok(run: &CliRun) {
    assert!(
        run.success,
        "s3fan failed:\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
}

/// `run` ended with exit status `code` (the README's table).
pub fn assert_exit(run: &CliRun, code: i32) {
    assert_eq!(
        run.code,
        Some(code),
        "exit status:\nstdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
}

/// `run` went to the end: done (0) or found a difference (3).
pub fn assert_answered(run: &CliRun) {
    assert!(
        matches!(run.code, Some(0 | 3)),
        "s3fan failed ({:?}):\nstdout: {}\nstderr: {}",
        run.code,
        run.stdout,
        run.stderr
    );
}

pub fn assert_refused(run: &CliRun, expected: &[&str]) {
    assert!(
        !run.success,
        "expected a refusal, got success: {}",
        run.stdout
    );
    for text in expected {
        assert!(
            run.stderr.contains(text),
            "{text:?} not in stderr: {}",
            run.stderr
        );
    }
}

/// The writes (see `RecordedRequest::is_write`) signed with `key`.
pub fn writes_by(key: &str) -> Vec<String> {
    local_aws()
        .requests()
        .into_iter()
        .filter(|r| r.access_key.as_deref() == Some(key) && r.is_write())
        .map(|r| format!("{} {} {:?}", r.method, r.path, r.action))
        .collect()
}

/// One AWS request as the local AWS saw it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub action: Option<String>,
    pub access_key: Option<String>,
    /// The region the request was signed for.
    #[serde(default)]
    pub region: Option<String>,
}

impl RecordedRequest {
    /// Whether the request can change anything: query-protocol actions other
    /// than Get/List/Describe, and REST calls other than GET and HEAD.
    pub fn is_write(&self) -> bool {
        match &self.action {
            Some(action) => {
                let action = action.rsplit('.').next().unwrap_or(action);
                !["Get", "List", "Describe"]
                    .iter()
                    .any(|read| action.starts_with(read))
            }
            None => !matches!(self.method.as_str(), "GET" | "HEAD"),
        }
    }
}

pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub iam: aws_sdk_iam::Client,
    pub sqs: aws_sdk_sqs::Client,
}

/// A name no other test uses, valid as a bucket name when `prefix` is.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The Lambda zip of the release binary under test, made by its own
/// `s3fan package`.
pub fn bootstrap_zip() -> &'static [u8] {
    static ZIP: OnceLock<Vec<u8>> = OnceLock::new();
    ZIP.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("s3fan-test-{}.zip", std::process::id()));
        let status = Command::new(env!("CARGO_BIN_EXE_s3fan"))
            .args(["package", "--out"])
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("run s3fan package");
        assert!(status.success(), "s3fan package failed");
        let zip = std::fs::read(&out).expect("read the packaged zip");
        let _ = std::fs::remove_file(&out);
        zip
    })
}

/// A Lambda function name for a bucket: dots are not allowed in function names.
pub fn function_name_for(bucket: &str) -> String {
    bucket.replace('.', "-")
}

impl Clients {
    /// The URL of `source`'s failure queue, which deploy made.
    pub async fn failure_queue_url(&self, source: &str) -> String {
        self.sqs
            .get_queue_url()
            .queue_name(format!("{source}-fanout-failures"))
            .send()
            .await
            .unwrap_or_else(|err| panic!("the failure queue of {source}: {err:?}"))
            .queue_url
            .expect("queue url")
    }

    /// Creates `name` in this client's region: outside us-east-1 S3 wants
    /// the region named as the location constraint too.
    pub async fn create_bucket(&self, name: &str) {
        let region = self.s3.config().region().map(|r| r.as_ref().to_string());
        let constraint = region.filter(|r| r != "us-east-1").map(|r| {
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                    r.as_str(),
                ))
                .build()
        });
        self.s3
            .create_bucket()
            .bucket(name)
            .set_create_bucket_configuration(constraint)
            .send()
            .await
            .unwrap_or_else(|err| panic!("create bucket {name}: {err:?}"));
    }

    /// The environment of the function deploy made for `destination`.
    pub async fn function_environment(
        &self,
        destination: &str,
    ) -> std::collections::HashMap<String, String> {
        let configuration = self
            .lambda
            .get_function_configuration()
            .function_name(function_name_for(destination))
            .send()
            .await
            .unwrap_or_else(|err| panic!("the function of {destination}: {err:?}"));
        configuration
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default()
    }

    /// The inline policy of the role deploy made for `destination`.
    pub async fn role_policy(&self, destination: &str) -> Value {
        let policy = self
            .iam
            .get_role_policy()
            .role_name(format!("s3fan-{destination}"))
            .policy_name("s3fan-replication")
            .send()
            .await
            .unwrap_or_else(|err| panic!("the role policy of {destination}: {err:?}"));
        let document = percent_encoding::percent_decode_str(policy.policy_document())
            .decode_utf8()
            .expect("a UTF-8 policy")
            .into_owned();
        serde_json::from_str(&document).expect("a JSON policy")
    }

    /// A bucket of another account: moto acts in the account a request's
    /// `x-moto-account-id` header names.
    pub async fn create_bucket_owned_by(&self, name: &str, account: &str) {
        let account = account.to_owned();
        self.s3
            .create_bucket()
            .bucket(name)
            .customize()
            .mutate_request(move |request| {
                request
                    .headers_mut()
                    .insert("x-moto-account-id", account.clone());
            })
            .send()
            .await
            .unwrap_or_else(|err| panic!("create bucket {name}: {err:?}"));
    }

    /// A function running the release binary, copying to `destination`.
    pub async fn create_function(&self, name: &str, destination: &str) -> String {
        self.create_function_with_env(name, destination, &[]).await
    }

    /// The same, with more variables in the function's environment.
    pub async fn create_function_with_env(
        &self,
        name: &str,
        destination: &str,
        env: &[(&str, &str)],
    ) -> String {
        let role = self
            .iam
            .create_role()
            .role_name(unique("s3fan-test-role"))
            .assume_role_policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
            )
            .send()
            .await
            .expect("create role");
        let arn = role.role().map(|r| r.arn().to_owned()).expect("role arn");
        let function = self
            .lambda
            .create_function()
            .function_name(name)
            .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
            .handler("bootstrap")
            .role(arn)
            .timeout(60)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(aws_sdk_lambda::primitives::Blob::new(bootstrap_zip()))
                    .build(),
            )
            .environment(
                aws_sdk_lambda::types::Environment::builder()
                    .set_variables(Some(
                        env.iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .chain([("S3FAN_DEST_BUCKET".to_owned(), destination.to_owned())])
                            .collect(),
                    ))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|err| panic!("create function {name}: {err:?}"));
        function.function_arn().expect("function arn").to_owned()
    }

    /// The original architecture, wired by hand: bucket -> topic -> one
    /// function per destination. Subscriptions exist before the bucket
    /// notification is saved, so each function receives S3's TestEvent.
    pub async fn wire_fanout(&self, source: &str, destinations: &[String]) -> String {
        self.create_bucket(source).await;
        let topic_arn = self
            .sns
            .create_topic()
            .name(format!("{source}-fanout"))
            .send()
            .await
            .expect("create topic")
            .topic_arn()
            .expect("topic arn")
            .to_owned();
        for destination in destinations {
            self.create_bucket(destination).await;
            let function_arn = self
                .create_function(&function_name_for(destination), destination)
                .await;
            self.sns
                .subscribe()
                .topic_arn(&topic_arn)
                .protocol("lambda")
                .endpoint(function_arn)
                .send()
                .await
                .expect("subscribe");
        }
        use aws_sdk_s3::types::{Event, NotificationConfiguration, TopicConfiguration};
        self.s3
            .put_bucket_notification_configuration()
            .bucket(source)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .topic_configurations(
                        TopicConfiguration::builder()
                            .id("s3fan-fanout")
                            .topic_arn(&topic_arn)
                            .events(Event::S3ObjectCreated)
                            .build()
                            .expect("topic configuration"),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("put bucket notification");
        topic_arn
    }

    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        meta: &[(&str, &str)],
    ) -> String {
        let mut put = self
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .content_type(content_type);
        for (name, value) in meta {
            put = put.metadata(*name, *value);
        }
        let written = put
            .send()
            .await
            .unwrap_or_else(|err| panic!("put s3://{bucket}/{key}: {err:?}"));
        // Unquoted, as S3 events carry it.
        written
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned()
    }

    /// (bytes, content type, user metadata) of an object, or None if absent.
    /// Every key of `bucket`.
    pub async fn keys(&self, bucket: &str) -> std::collections::BTreeSet<String> {
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .into_paginator()
            .send();
        let mut keys = std::collections::BTreeSet::new();
        while let Some(page) = pages.next().await {
            for object in page.expect("list").contents() {
                keys.insert(object.key().unwrap_or_default().to_owned());
            }
        }
        keys
    }

    pub async fn get(&self, bucket: &str, key: &str) -> Option<StoredObject> {
        let object = match self.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(object) => object,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return None,
            Err(err) => panic!("get s3://{bucket}/{key}: {err:?}"),
        };
        let content_type = object.content_type().map(str::to_owned);
        let metadata = object.metadata().cloned().unwrap_or_default();
        let bytes = object
            .body
            .collect()
            .await
            .expect("read body")
            .into_bytes()
            .to_vec();
        Some(StoredObject {
            bytes,
            content_type,
            metadata,
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct StoredObject {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub metadata: std::collections::HashMap<String, String>,
}

/// A datapoint an hour old, as CloudWatch holds AWS's own metrics (S3's
/// daily storage metrics, Lambda's Duration). Moto answers GetMetricData
/// (what s3fan reads) only from what was put, not from its buckets and
/// functions: a test puts what AWS would have.
pub async fn put_metric(namespace: &str, name: &str, dimensions: &[(&str, &str)], value: f64) {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&local_aws().sdk_config_in("us-east-1").await);
    let mut datum = MetricDatum::builder()
        .metric_name(name)
        .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from(
            std::time::SystemTime::now() - std::time::Duration::from_secs(3600),
        ))
        .value(value);
    for (name, value) in dimensions {
        datum = datum.dimensions(Dimension::builder().name(*name).value(*value).build());
    }
    cloudwatch
        .put_metric_data()
        .namespace(namespace)
        .metric_data(datum.build())
        .send()
        .await
        .unwrap_or_else(|err| panic!("put the metric {namespace} {name}: {err:?}"));
}
