//! Records the target triple and git revision for `s3fan --version`.

use std::path::Path;
use std::process::Command;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown-target".into());
    println!("cargo:rustc-env=S3FAN_TARGET={target}");

    // A build from a source archive has no .git: S3FAN_GIT_REV may name the
    // revision, else it is "unknown".
    println!("cargo:rerun-if-env-changed=S3FAN_GIT_REV");
    let revision = std::env::var("S3FAN_GIT_REV")
        .ok()
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=S3FAN_GIT_REV={revision}");

    // HEAD moves between branches; the refs move with every commit (cargo
    // scans a watched directory's files), or are packed.
    for watched in [".git/HEAD", ".git/refs", ".git/packed-refs"] {
        if Path::new(watched).exists() {
            println!("cargo:rerun-if-changed={watched}");
        }
    }
}

fn git_revision() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let revision = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (!revision.is_empty()).then_some(revision)
}
