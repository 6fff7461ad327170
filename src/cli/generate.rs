//! Shell completions and man pages, made from the clap definitions that
//! `--help` is made of, so neither can fall behind a flag.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::report::exit;

/// `s3fan completions SHELL`: the script, on stdout.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut super::definition(), "s3fan", &mut script);
    print(&script)
}

/// `s3fan man`: s3fan.1 on stdout, or with `--dir` a page per command
/// (s3fan.1, s3fan-deploy.1, ...) written there.
pub fn man(dir: Option<&Path>) -> ExitCode {
    let Some(dir) = dir else {
        let mut page = Vec::new();
        return match clap_mangen::Man::new(super::definition()).render(&mut page) {
            Ok(()) => print(&page),
            Err(err) => failed(&format!("cannot render the man page: {err}")),
        };
    };
    let mut definition = super::definition().disable_help_subcommand(true);
    // Gives each command its display name, s3fan-deploy, for its page.
    definition.build();
    let mut written = Vec::new();
    let pages =
        std::fs::create_dir_all(dir).and_then(|()| write_pages(&definition, dir, &mut written));
    match pages {
        Ok(()) => {
            let names: Vec<String> = written
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            println!(
                "wrote {} man pages to {}: {}",
                names.len(),
                dir.display(),
                names.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(err) => failed(&format!(
            "cannot write the man pages into {}: {err}",
            dir.display()
        )),
    }
}

fn write_pages(
    command: &clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    written.push(clap_mangen::Man::new(command.clone()).generate_to(dir)?);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

fn print(text: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // `s3fan man | head`: the reader had what it wanted.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => failed(&format!("cannot write to stdout: {err}")),
    }
}

fn failed(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(exit::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_completes_every_command_and_flag() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
            clap_complete::Shell::PowerShell,
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut super::super::definition(), "s3fan", &mut script);
            let script = String::from_utf8(script).unwrap();
            for word in [
                "deploy",
                "backfill",
                "init",
                "--dest",
                "--reconcile-every",
                "--config",
            ] {
                // fish names a long flag `-l dest`.
                let word = match (shell, word.strip_prefix("--")) {
                    (clap_complete::Shell::Fish, Some(long)) => format!("-l {long}"),
                    _ => word.to_owned(),
                };
                assert!(script.contains(&word), "{shell}: no {word}");
            }
        }
    }

    #[test]
    fn the_man_pages_name_every_command_and_its_flags() {
        let dir = std::env::temp_dir().join(format!("s3fan-man-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut definition = super::super::definition().disable_help_subcommand(true);
        definition.build();
        let mut written = Vec::new();
        write_pages(&definition, &dir, &mut written).unwrap();
        let deploy = std::fs::read_to_string(dir.join("s3fan-deploy.1")).unwrap();
        assert!(
            deploy.starts_with(".ie") || deploy.contains(".TH s3fan-deploy 1"),
            "{deploy}"
        );
        assert!(deploy.contains("reserved\\-concurrency"), "{deploy}");
        let main = std::fs::read_to_string(dir.join("s3fan.1")).unwrap();
        for command in definition.get_subcommands() {
            assert!(
                main.contains(command.get_name()),
                "s3fan.1 lacks {}",
                command.get_name()
            );
            assert!(written.contains(&dir.join(format!("s3fan-{}.1", command.get_name()))));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
