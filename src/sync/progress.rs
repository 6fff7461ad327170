//! Progress on stderr: a live line (indicatif) on a terminal, and plain
//! lines every few seconds otherwise (CI logs), so stdout stays the report.

use std::io::IsTerminal;
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

impl Progress {
    pub fn new(label: String) -> Progress {
        let shown = if quiet() {
            Shown::Not
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed} {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            Shown::Live(bar)
        } else {
            Shown::Plain(std::sync::Mutex::new(Instant::now()))
        };
        Progress { shown, label }
    }

    /// Shows `status`; on a terminal at once, elsewhere at most every 5 s.
    pub fn update(&self, status: impl FnOnce() -> String) {
        match &self.shown {
            Shown::Not => {}
            Shown::Live(bar) => bar.set_message(format!("{}: {}", self.label, status())),
            Shown::Plain(last_line) => {
                let Ok(mut last) = last_line.lock() else {
                    return;
                };
                if last.elapsed() >= PLAIN_EVERY {
                    *last = Instant::now();
                    eprintln!("{}: {}", self.label, status());
                }
            }
        }
    }

    pub fn finish(&self, status: String) {
        match &self.shown {
            Shown::Not => {}
            Shown::Live(bar) => bar.finish_with_message(format!("{}: {status}", self.label)),
            Shown::Plain(_) => eprintln!("{}: {status}", self.label),
        }
    }
}
