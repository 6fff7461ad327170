//! End to end: the Graviton build. `tests/run` cross-builds the arm64
//! bootstrap with Debian's toolchain (`.cargo/config.toml`,
//! `tests/harness/setup-arm64`); deploy is given it with `--bootstrap`, and
//! the local AWS runs each function on its own architecture: an arm64 one
//! under qemu-user, behind the same Runtime API as the x86_64 ones. Where
//! the kernel does not hand arm64 binaries to qemu itself (binfmt_misc),
//! an arm64 binary cannot start as an x86_64 function here, so a copy made
//! proves the build and the function's Architectures together; the
//! Architectures are also read back.

use crate::common::{
    access_key, assert_exit, assert_ok, function_name_for, local_aws, unique, writes_by,
};
use aws_sdk_lambda::types::Architecture;
use serde_json::Value;

/// The arm64 build: `S3FAN_TEST_ARM64_BOOTSTRAP` (tests/run sets it), else
/// where `cargo build --release --target aarch64-unknown-linux-gnu` puts it.
fn arm64_bootstrap() -> String {
    let path = std::env::var("S3FAN_TEST_ARM64_BOOTSTRAP").unwrap_or_else(|_| {
        format!(
            "{}/target/aarch64-unknown-linux-gnu/release/s3fan",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    assert!(
        std::path::Path::new(&path).is_file(),
        "no arm64 build at {path}: run tests/run, which builds it, or \
         tests/harness/setup-arm64 && cargo build --release --target aarch64-unknown-linux-gnu"
    );
    path
}

/// ELF's e_machine of the file at `path`.
fn elf_machine(path: &str) -> u16 {
    let bytes = std::fs::read(path).expect("read the build");
    u16::from_le_bytes([bytes[18], bytes[19]])
}

async fn architectures(clients: &crate::common::Clients, function: &str) -> Vec<Architecture> {
    clients
        .lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .expect("function configuration")
        .architectures()
        .to_vec()
}

/// (GB-seconds, dollars) of s3fan's Lambda duration per million new
/// objects, from deploy --dry-run's JSON.
fn lambda_duration(report: &Value) -> (f64, f64) {
    let case = &report["cost"]["cases"][0];
    let item = case["estimates"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["by"] == "s3fan"))
        .and_then(|e| e["items"].as_array())
        .and_then(|items| items.iter().find(|i| i["item"] == "Lambda duration"))
        .unwrap_or_else(|| panic!("no Lambda duration in {report}"));
    let number = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    (number(&item["quantity"]), number(&item["usd"]))
}

/// The function change of `destination` in a deploy's JSON report.
fn function_change(report: &Value, destination: &str) -> Value {
    report["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["kind"] == "function" && c["destination"] == destination)
        .cloned()
        .unwrap_or_else(|| panic!("no function change for {destination} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graviton_build_deploys_as_arm64_functions_that_copy() {
    let arm64 = arm64_bootstrap();
    const EM_X86_64: u16 = 62;
    const EM_AARCH64: u16 = 183;
    assert_eq!(
        elf_machine(&arm64),
        EM_AARCH64,
        "{arm64} is not an arm64 build"
    );
    assert_eq!(elf_machine(env!("CARGO_BIN_EXE_s3fan")), EM_X86_64);

    let aws = local_aws();
    let clients = aws.clients().await;
    let source = unique("src-arm");
    let (moved, fresh) = (unique("dst-arm-moved"), unique("dst-arm-new"));
    for bucket in [&source, &moved, &fresh] {
        clients.create_bucket(bucket).await;
    }

    // A fan-out deployed from this (x86_64) binary, as most start...
    assert_ok(&aws.deploy(&access_key(), &source, &[&moved], &[]).await);
    assert_eq!(
        architectures(&clients, &function_name_for(&moved)).await,
        vec![Architecture::X8664]
    );

    // The plan prices Graviton's GB-seconds below x86_64's, as Lambda's
    // list prices do ($0.0000133334 against $0.0000166667 a GB-second).
    let x86 = lambda_duration(
        &aws.deploy_json(&access_key(), &source, &[&moved], &["--dry-run"])
            .await,
    );
    let plan = aws
        .deploy(
            &access_key(),
            &source,
            &[&moved],
            &["--dry-run", "--bootstrap", &arm64, "--output", "json"],
        )
        .await;
    assert_exit(&plan, 3); // a plan with changes
    let graviton = lambda_duration(&plan.json());
    let text = aws
        .deploy(
            &access_key(),
            &source,
            &[&moved],
            &["--dry-run", "--bootstrap", &arm64],
        )
        .await;
    assert!(
        text.stdout.contains(r#"architecture "x86_64" -> "arm64""#),
        "{}",
        text.stdout
    );
    assert_eq!(x86.0, graviton.0, "the same GB-seconds");
    assert!(
        (graviton.1 / graviton.0 - 0.0000133334).abs() < 1e-12
            && (x86.1 / x86.0 - 0.0000166667).abs() < 1e-12,
        "x86_64 {x86:?}, arm64 {graviton:?}"
    );

    // ... moved to Graviton: the existing function changes architecture
    // with its code, a new destination's is made arm64.
    let run = aws
        .deploy(
            &access_key(),
            &source,
            &[&moved, &fresh],
            &["--bootstrap", &arm64, "--output", "json"],
        )
        .await;
    assert_ok(&run);
    let report = run.json();
    let change = function_change(&report, &moved);
    assert_eq!(change["action"], "update", "{change}");
    assert!(
        change.to_string().contains("arm64"),
        "the plan names the new architecture: {change}"
    );
    assert_eq!(function_change(&report, &fresh)["action"], "create");
    for destination in [&moved, &fresh] {
        assert_eq!(
            architectures(&clients, &function_name_for(destination)).await,
            vec![Architecture::Arm64],
            "{destination}"
        );
    }

    // The arm64 bootstrap serves the events: each copy is made by it.
    let body = b"made on graviton".to_vec();
    clients
        .put(
            &source,
            "g/1.txt",
            body.clone(),
            "text/plain",
            &[("by", "arm64")],
        )
        .await;
    aws.drain();
    for destination in [&moved, &fresh] {
        let copy = clients.get(destination, "g/1.txt").await;
        assert_eq!(copy.map(|c| c.bytes), Some(body.clone()), "{destination}");
        let ran: Vec<_> = aws
            .invocations()
            .into_iter()
            .filter(|i| i.function == function_name_for(destination))
            .collect();
        assert!(!ran.is_empty(), "{destination}'s function ran");
        assert!(ran.iter().all(|i| !i.is_error), "{ran:?}");
    }

    // Run again with the same build, it converges: no write at all.
    let key = access_key();
    let again = aws
        .deploy(&key, &source, &[&moved, &fresh], &["--bootstrap", &arm64])
        .await;
    assert_ok(&again);
    assert_eq!(writes_by(&key), Vec::<String>::new());
}
