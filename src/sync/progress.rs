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
    bar: Option<ProgressBar>,
    label: String,
    last_line: std::sync::Mutex<Instant>,
}

impl Progress {
    pub fn new(label: String) -> Progress {
        let bar = (std::io::stderr().is_terminal() && !quiet()).then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed} {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            label,
            last_line: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// Shows `status`; on a terminal at once, elsewhere at most every 5 s.
    pub fn update(&self, status: impl FnOnce() -> String) {
        if quiet() {
            return;
        }
        match &self.bar {
            Some(bar) => bar.set_message(format!("{}: {}", self.label, status())),
            None => {
                let Ok(mut last) = self.last_line.lock() else {
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
        if quiet() {
            return;
        }
        match &self.bar {
            Some(bar) => bar.finish_with_message(format!("{}: {status}", self.label)),
            None => eprintln!("{}: {status}", self.label),
        }
    }
}
