//! What backfill and verify show as they go: the keys read so far, how
//! fast, and how long the rest will take when the source's size is known;
//! then a line per destination, with its own rate of copies.

use std::time::Instant;

use crate::progress::Progress;
use crate::progress::human;
use crate::progress::rate::{Throughput, eta};

pub struct Watch {
    progress: Progress,
    /// What is done to a key: "examined", "compared".
    verb: &'static str,
    /// How many keys the source holds, as far as is known (`estimate`).
    total: Option<u64>,
    keys: Throughput,
    destinations: Vec<Throughput>,
}

impl Watch {
    pub fn new(
        label: String,
        verb: &'static str,
        destinations: usize,
        total: Option<u64>,
    ) -> Watch {
        Watch {
            progress: Progress::new(label),
            verb,
            total,
            keys: Throughput::default(),
            destinations: (0..destinations).map(|_| Throughput::default()).collect(),
        }
    }

    /// The totals now: keys read, and per destination the objects and
    /// bytes moved; `lines` (one per destination) are made only when shown.
    pub fn update<L: Iterator<Item = String>>(
        &mut self,
        keys: u64,
        moved: impl Iterator<Item = (u64, u64)>,
        lines: impl FnOnce() -> L,
    ) {
        let now = Instant::now();
        self.keys.record(now, keys, 0);
        for (throughput, (objects, bytes)) in self.destinations.iter_mut().zip(moved) {
            throughput.record(now, objects, bytes);
        }
        let this = &*self;
        self.progress.update(|| this.render(keys, lines()));
    }

    pub fn finish<L: Iterator<Item = String>>(&self, keys: u64, lines: L) {
        self.progress.finish(self.render(keys, lines));
    }

    fn render(&self, keys: u64, lines: impl Iterator<Item = String>) -> String {
        let mut out = format!("{} keys {}", human::count(keys), self.verb);
        if let Some(total) = self.total {
            out.push_str(&format!(" of about {}", human::count(total.max(keys))));
        }
        if let Some(rate) = self.keys.rate() {
            out.push_str(&format!(
                ", {} keys/s",
                human::count(rate.objects.round() as u64)
            ));
            let remaining = self.total.map(|total| total.saturating_sub(keys));
            if let Some(left) = remaining.and_then(|left| eta(left, rate.objects)) {
                out.push_str(&format!(", ETA {}", human::duration(left)));
            }
        }
        for (line, throughput) in lines.zip(&self.destinations) {
            out.push('\n');
            out.push_str(&line);
            if let Some(rate) = throughput.rate().filter(|rate| rate.objects > 0.0) {
                out.push_str(&format!(", {}", rate.render()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_known_total_gives_an_eta_and_each_destination_its_rate() {
        let mut watch = Watch::new("backfill s3://src".into(), "examined", 2, Some(10_000));
        let start = Instant::now();
        // Two seconds at 1,000 keys/s; one destination copying 100 a second.
        for tenth in 0..=20u64 {
            let at = start + Duration::from_millis(tenth * 100);
            let copied = tenth * 10;
            watch.keys.record(at, tenth * 100, 0);
            watch.destinations[0].record(at, copied, copied * 1024 * 1024);
            watch.destinations[1].record(at, 0, 0);
        }
        let shown = watch.render(
            2_000,
            [
                "s3://a: 200 copied".to_owned(),
                "s3://b: 0 copied".to_owned(),
            ]
            .into_iter(),
        );
        assert_eq!(
            shown,
            "2,000 keys examined of about 10,000, 1,000 keys/s, ETA 8s\n\
             s3://a: 200 copied, 100 objects/s, 100.0 MiB/s\n\
             s3://b: 0 copied"
        );
        let unknown = Watch::new("verify s3://src".into(), "compared", 1, None);
        assert_eq!(
            unknown.render(5, std::iter::once("s3://a: 5 in sync".to_owned())),
            "5 keys compared\ns3://a: 5 in sync",
            "no rate before a second, no total, no ETA"
        );
    }
}
