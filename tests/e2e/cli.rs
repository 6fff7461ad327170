//! The command line itself, without AWS: what `s3fan --version`, `package`
//! and argument errors tell a user.

use std::io::Read;
use std::process::Command;

fn s3fan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_s3fan"))
        .args(args)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("run s3fan")
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("s3fan-cli-{}-{name}", std::process::id()))
}

#[test]
fn version_names_the_revision_and_target() {
    let out = s3fan(&["--version"]);
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    assert!(version.contains("-linux-"), "the target triple: {version}");
    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Some(git) = git.ok().filter(|g| g.status.success()) {
        let revision = String::from_utf8_lossy(&git.stdout).trim().to_owned();
        assert!(version.contains(&revision), "{revision} not in {version}");
    }
}

#[test]
fn no_command_prints_usage_and_fails() {
    let out = s3fan(&[]);
    assert_eq!(out.status.code(), Some(2));
    let usage = String::from_utf8_lossy(&out.stderr);
    for command in ["deploy", "status", "destroy", "package"] {
        assert!(usage.contains(command), "{usage}");
    }
}

#[test]
fn package_is_deterministic_and_holds_this_binary() {
    let (first, second) = (temp("first.zip"), temp("second.zip"));
    let out = s3fan(&["package", "--out", first.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(
        s3fan(&["package", "--out", second.to_str().unwrap()])
            .status
            .success()
    );
    let zip = std::fs::read(&first).unwrap();
    assert_eq!(
        zip,
        std::fs::read(&second).unwrap(),
        "same binary, same zip bytes"
    );

    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut entry = archive.by_name("bootstrap").unwrap();
    assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
    let mut bootstrap = Vec::new();
    entry.read_to_end(&mut bootstrap).unwrap();
    assert!(bootstrap == std::fs::read(env!("CARGO_BIN_EXE_s3fan")).unwrap());

    // What package says about glibc agrees with objdump, where it exists.
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    if let Ok(objdump) = Command::new("objdump")
        .args(["-p", env!("CARGO_BIN_EXE_s3fan")])
        .output()
    {
        let text = String::from_utf8_lossy(&objdump.stdout);
        let newest = text
            .split(|c: char| c.is_whitespace())
            .filter_map(|w| w.strip_prefix("GLIBC_"))
            .filter_map(|v| {
                let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
                Some((parts.next()??, parts.next().flatten().unwrap_or(0)))
            })
            .max()
            .expect("objdump lists glibc versions");
        assert!(
            said.contains(&format!("needs glibc {}.{}", newest.0, newest.1)),
            "{said} vs {newest:?}"
        );
    }
    let _ = std::fs::remove_file(first);
    let _ = std::fs::remove_file(second);
}

#[test]
fn a_macos_executable_is_refused_with_the_way_out() {
    let macho = temp("macho");
    let mut bytes = vec![0xcf, 0xfa, 0xed, 0xfe, 0x07, 0x00, 0x00, 0x01];
    bytes.resize(4096, 0);
    std::fs::write(&macho, bytes).unwrap();
    let path = macho.to_str().unwrap();
    for args in [
        vec!["package", "--bootstrap", path, "--out", "/dev/null"],
        vec![
            "deploy",
            "--source",
            "src-bucket",
            "--dest",
            "dst-bucket",
            "--bootstrap",
            path,
        ],
    ] {
        let out = s3fan(&args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("macOS (Mach-O)") && stderr.contains("--bootstrap PATH"),
            "{args:?}: {stderr}"
        );
    }
    let _ = std::fs::remove_file(macho);
}

#[test]
fn ctrl_c_stops_a_command_cleanly_with_status_130() {
    // An endpoint that takes the connection and never answers: s3fan is
    // mid-request when Ctrl-C (SIGINT) comes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let child = Command::new(env!("CARGO_BIN_EXE_s3fan"))
        .args(["verify", "--source", "held-src", "--dest", "held-dst"])
        .env_clear()
        .env("HOME", std::env::temp_dir())
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "AKIATEST")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run s3fan");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let _held = loop {
        match listener.accept() {
            Ok((connection, _)) => break connection,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(err) => panic!("s3fan never connected: {err}"),
        }
    };
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let out = child.wait_with_output().expect("wait for s3fan");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
}
