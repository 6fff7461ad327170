//! How fast work goes, over the last few seconds: objects and bytes per
//! second, and when the total is known, how long the rest will take.
//!
//! A window rather than the mean since the start: a backfill's first
//! seconds are listings and in-sync keys, and S3's throttling changes the
//! pace as it goes; the last seconds say best what the next ones will be.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::human;

/// The span the rate is measured over.
const WINDOW: Duration = Duration::from_secs(10);
/// Samples closer together than this are one (a sample per object would
/// be a deque of millions).
const SPACING: Duration = Duration::from_millis(250);

/// Running totals, sampled: `record` them as they grow, read the rate.
#[derive(Debug, Default)]
pub struct Throughput {
    /// (when, objects so far, bytes so far), oldest first; the first one
    /// is at most one sample older than the window.
    samples: VecDeque<(Instant, u64, u64)>,
}

/// Per second, over the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub objects: f64,
    pub bytes: f64,
}

impl Throughput {
    /// The totals as they are at `now`.
    pub fn record(&mut self, now: Instant, objects: u64, bytes: u64) {
        // Within the spacing of the one before it, the newest sample moves
        // up to now; past it, it stays and a new one starts.
        let len = self.samples.len();
        if len >= 2 && now.duration_since(self.samples[len - 2].0) < SPACING {
            self.samples[len - 1] = (now, objects, bytes);
        } else {
            self.samples.push_back((now, objects, bytes));
        }
        while self.samples.len() > 2 && now.duration_since(self.samples[1].0) >= WINDOW {
            self.samples.pop_front();
        }
    }

    /// Objects and bytes per second between the oldest sample and the
    /// newest; none until a second has been seen.
    pub fn rate(&self) -> Option<Rate> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let seconds = last.0.duration_since(first.0).as_secs_f64();
        (seconds >= 1.0).then(|| Rate {
            objects: last.1.saturating_sub(first.1) as f64 / seconds,
            bytes: last.2.saturating_sub(first.2) as f64 / seconds,
        })
    }
}

impl Rate {
    /// `310 objects/s, 12.3 MiB/s`.
    pub fn render(&self) -> String {
        format!(
            "{} objects/s, {}/s",
            human::count(self.objects.round() as u64),
            human::bytes_f64(self.bytes)
        )
    }
}

/// How long `remaining` more will take at `per_second`; none when nothing
/// moves (an ETA of infinity helps no one).
pub fn eta(remaining: u64, per_second: f64) -> Option<Duration> {
    (per_second > 0.0).then(|| Duration::from_secs_f64(remaining as f64 / per_second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_over_the_last_seconds_not_since_the_start() {
        let start = Instant::now();
        let at = |s: f64| start + Duration::from_secs_f64(s);
        let mut throughput = Throughput::default();
        throughput.record(at(0.0), 0, 0);
        assert_eq!(throughput.rate(), None, "one sample is no rate");
        throughput.record(at(0.5), 1, 10);
        assert_eq!(throughput.rate(), None, "half a second is too little");
        // Ten seconds slow (1 object/s), then ten fast (100 objects/s).
        for s in 1..=10 {
            throughput.record(at(s as f64), s, s * 10);
        }
        let slow = throughput.rate().expect("a rate after ten seconds");
        assert!((slow.objects - 1.0).abs() < 0.01, "{slow:?}");
        assert!((slow.bytes - 10.0).abs() < 0.1, "{slow:?}");
        for s in 11..=30u64 {
            let objects = 10 + (s - 10) * 100;
            throughput.record(at(s as f64), objects, objects * 10);
        }
        let fast = throughput.rate().expect("a rate");
        assert!(
            (fast.objects - 100.0).abs() < 11.0,
            "the slow start has left the window: {fast:?}"
        );
    }

    #[test]
    fn samples_closer_than_the_spacing_are_merged() {
        let start = Instant::now();
        let mut throughput = Throughput::default();
        for ms in 0..100_000u64 {
            throughput.record(start + Duration::from_millis(ms), ms, ms);
        }
        assert!(
            throughput.samples.len() <= 2 + 10_000 / 250,
            "{}",
            throughput.samples.len()
        );
        let rate = throughput.rate().expect("a rate");
        assert!((rate.objects - 1000.0).abs() < 1.0, "{rate:?}");
    }

    #[test]
    fn an_eta_needs_something_moving() {
        assert_eq!(eta(100, 0.0), None);
        assert_eq!(eta(100, 10.0), Some(Duration::from_secs(10)));
        assert_eq!(
            Rate {
                objects: 1234.4,
                bytes: 3.0 * 1024.0 * 1024.0
            }
            .render(),
            "1,234 objects/s, 3.0 MiB/s"
        );
    }
}
