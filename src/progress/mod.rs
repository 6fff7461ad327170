//! Progress on stderr: a live line (indicatif) on a terminal that can draw
//! one, and plain lines every few seconds otherwise (CI logs, or a terminal
//! whose TERM is unset or `dumb`), so stdout stays the report.
//! A status may take several lines (one per destination); `line` prints
//! one that stays (a deploy step done), above the live one.

pub mod human;
pub mod rate;

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// `--quiet`: no progress at all.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_quiet(on: bool) {
    QUIET.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

pub struct Progress {
    shown: Shown,
    label: String,
}

/// How progress is shown, decided once when it starts.
enum Shown {
    /// `--quiet`.
    Not,
    /// A live line, on a terminal.
    Live(ProgressBar),
    /// A line at most every `PLAIN_EVERY`, since the last one.
    Plain(std::sync::Mutex<Instant>),
}

impl Shown {
    /// A live line where indicatif can draw one. It hides its bar (and
    /// drops what `println` gives it) where stderr is no terminal, and also
    /// where TERM is unset or `dumb`, as in Emacs' shell: there, plain lines.
    fn on_stderr() -> Shown {
        let bar = ProgressBar::new_spinner();
        if bar.is_hidden() {
            return Shown::Plain(std::sync::Mutex::new(Instant::now()));
        }
        if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed} {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Shown::Live(bar)
    }
}

impl Progress {
    pub fn new(label: String) -> Progress {
        let shown = if quiet() {
            Shown::Not
        } else {
            Shown::on_stderr()
        };
        Progress { shown, label }
    }

    /// Shows `status`; on a terminal at once, elsewhere at most every 5 s.
    pub fn update(&self, status: impl FnOnce() -> String) {
        match &self.shown {
            Shown::Not => {}
            Shown::Live(bar) => bar.set_message(self.labelled(&status())),
            Shown::Plain(last_line) => {
                let Ok(mut last) = last_line.lock() else {
                    return;
                };
                if last.elapsed() >= PLAIN_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", self.labelled(&status()));
                }
            }
        }
    }

    /// A line that stays, at once, whatever the mode (but `--quiet`).
    pub fn line(&self, text: &str) {
        match &self.shown {
            Shown::Not => {}
            Shown::Live(bar) => bar.println(self.labelled(text)),
            Shown::Plain(_) => eprintln!("{}", self.labelled(text)),
        }
    }

    pub fn finish(&self, status: String) {
        match &self.shown {
            Shown::Not => {}
            Shown::Live(bar) => bar.finish_with_message(self.labelled(&status)),
            Shown::Plain(_) => eprintln!("{}", self.labelled(&status)),
        }
    }

    /// The label before the status's first line; the lines after it (one
    /// per destination) indented under it.
    fn labelled(&self, status: &str) -> String {
        format!("{}: {}", self.label, status.replace('\n', "\n  "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_after_the_first_are_indented_under_the_label() {
        let progress = Progress {
            shown: Shown::Not,
            label: "backfill s3://src".into(),
        };
        assert_eq!(
            progress.labelled("10 keys\ns3://a: 5 copied\ns3://b: 4 copied"),
            "backfill s3://src: 10 keys\n  s3://a: 5 copied\n  s3://b: 4 copied"
        );
    }
}
