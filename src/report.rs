//! What every command returns: a value that prints as text or as JSON and
//! says how the command ended, which is its exit status.

use std::process::ExitCode;

pub trait Report: serde::Serialize {
    /// The text the command prints (with `--output text`).
    fn render_text(&self) -> String;

    /// How the command ended: its exit status.
    fn verdict(&self) -> Verdict;
}

/// How a command ended, as a pipeline can branch on it. One scheme for
/// every command, in the spirit of diff(1) and terraform's
/// `-detailed-exitcode`: a question asked and answered is not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Did what it was asked; nothing differs (exit 0).
    Done,
    /// Something failed: an AWS call, a copy, a step (exit 1).
    Failed,
    /// Ran to the end and found a difference: verify out of sync, status
    /// drift, a dry run that would change something, failed events
    /// waiting (exit 3).
    Differs,
}

/// The exit statuses, documented in the README's table.
pub mod exit {
    pub const SUCCESS: u8 = 0;
    pub const FAILURE: u8 = 1;
    /// A flag, a value or `s3fan.toml` is wrong (clap uses 2 for its own).
    pub const USAGE: u8 = 2;
    pub const DIFFERS: u8 = 3;
    /// Stopped by Ctrl-C (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: u8 = 130;
}

impl Verdict {
    /// `Differs` when `differs`, else `Done`; `Failed` wins over both.
    pub fn of(failed: bool, differs: bool) -> Verdict {
        match (failed, differs) {
            (true, _) => Verdict::Failed,
            (false, true) => Verdict::Differs,
            (false, false) => Verdict::Done,
        }
    }

    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Verdict::Done => exit::SUCCESS,
            Verdict::Failed => exit::FAILURE,
            Verdict::Differs => exit::DIFFERS,
        })
    }
}

/// A duration for people: `45 s`, `12 min`, `3.5 h`, `2.0 days`.
pub fn duration_text(seconds: f64) -> String {
    match seconds {
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        s => format!("{:.1} days", s / 86_400.0),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_in_the_unit_that_suits_them() {
        let text: Vec<String> = [45.0, 720.0, 12_600.0, 259_200.0]
            .into_iter()
            .map(super::duration_text)
            .collect();
        assert_eq!(text, ["45 s", "12 min", "3.5 h", "3.0 days"]);
    }
}
