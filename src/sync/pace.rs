//! How many copies a backfill runs at once, found rather than fixed: more
//! while throughput grows, half as many when S3 answers `503 SlowDown`
//! (which it does past about 3,500 PUT/COPY a second per prefix), never
//! more than `--concurrency`. The same additive-increase,
//! multiplicative-decrease idea as TCP's congestion control: a fixed number
//! is too few at real S3 latency and too many for a bucket that throttles.
//!
//! The throttling signal is every 503 the clients receive, counted by an
//! interceptor before the SDK's retry hides it: a copy that succeeded on
//! its second attempt was still told to slow down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use tokio::sync::{Semaphore, SemaphorePermit};

/// Copies at once to begin with: at S3's 20-60 ms a copy, 32 make
/// 500-1,600 copies a second, well under the 3,500 a prefix takes before
/// it throttles. Starting higher would throttle a cold prefix at once, and
/// a burst of 503s empties the SDK's retry quota (copies then fail rather
/// than wait); starting lower, a backfill of a few thousand objects is over
/// before the pace is found (bench/RESULTS.md, "Peers").
pub const START: usize = 32;
/// A round lasts at least this long, so that its rate is not noise.
const ROUND: Duration = Duration::from_millis(100);
/// A step up pays when throughput grows by at least this factor.
const GAIN: f64 = 1.1;
/// Rounds held at a plateau before one more step up is tried: the objects
/// (and S3's partitions) change over a long backfill.
const PROBE_AFTER: u32 = 8;

/// The limit of one destination's copies, and the slots that keep to it.
pub struct Pace {
    slots: Semaphore,
    control: Mutex<Control>,
    /// 503 answers seen by the clients `watch` returned.
    throttles: Arc<AtomicU64>,
}

/// A place among the copies running; give it back with `Pace::finish`.
pub struct Slot<'a>(SemaphorePermit<'a>);

impl Pace {
    /// At most `cap` copies at once (`--concurrency`).
    pub fn new(cap: usize) -> Pace {
        let control = Control::new(cap.max(1));
        Pace {
            slots: Semaphore::new(control.limit),
            control: Mutex::new(control),
            throttles: Arc::default(),
        }
    }

    /// `s3`, with each of its 503 answers counted as a signal to slow down.
    pub fn watch(&self, s3: &aws_sdk_s3::Client) -> aws_sdk_s3::Client {
        let config = s3
            .config()
            .to_builder()
            .interceptor(CountThrottles(self.throttles.clone()))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Waits for a free place under the current limit.
    pub async fn slot(&self) -> Slot<'_> {
        // The semaphore is never closed.
        match self.slots.acquire().await {
            Ok(permit) => Slot(permit),
            Err(_) => unreachable!("the pace's semaphore is never closed"),
        }
    }

    /// A copy is over: counts it, and moves the limit when a round ends or
    /// S3 asked to slow down.
    pub fn finish(&self, slot: Slot<'_>) {
        let throttles = self.throttles.load(Ordering::Relaxed);
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let before = control.limit;
        control.count(Instant::now(), throttles);
        let after = control.limit;
        if after > before {
            let mut grow = after - before;
            let repaid = grow.min(control.debt);
            control.debt -= repaid;
            grow -= repaid;
            self.slots.add_permits(grow);
        } else if after < before {
            control.debt += before - after;
            let forgotten = self.slots.forget_permits(control.debt);
            control.debt -= forgotten;
        }
        if control.debt > 0 {
            // A place over the lowered limit goes away with its copy.
            control.debt -= 1;
            slot.0.forget();
        }
    }

    /// What the pace did, for the report.
    pub fn summary(&self) -> Summary {
        let control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        Summary {
            last: control.limit,
            most: control.most,
            throttled: self.throttles.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Copies at once when the backfill ended.
    pub last: usize,
    /// The most copies at once it allowed.
    pub most: usize,
    /// `503 SlowDown` answers S3 gave (each retried by the SDK).
    pub throttled: u64,
}

/// The limit's arithmetic, apart from the semaphore and the clock, so that
/// it can be shown step by step.
#[derive(Debug)]
struct Control {
    limit: usize,
    cap: usize,
    most: usize,
    /// Places to take away as copies finish, after a decrease.
    debt: usize,
    /// Set by the first throttle: from then on, steps up are small.
    throttled_once: bool,
    last_decrease: Option<Instant>,
    phase: Phase,
    round: Round,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// No round has ended yet.
    Start,
    /// Just stepped up from `before`, where the rate was `rate`.
    Probing { before: usize, rate: f64 },
    /// At a plateau (or after a throttle) for this many rounds.
    Holding { rounds: u32 },
}

#[derive(Debug)]
struct Round {
    started: Option<Instant>,
    done: u64,
    throttles: u64,
}

impl Control {
    fn new(cap: usize) -> Control {
        let limit = START.min(cap);
        Control {
            limit,
            cap,
            most: limit,
            debt: 0,
            throttled_once: false,
            last_decrease: None,
            phase: Phase::Start,
            round: Round {
                started: None,
                done: 0,
                throttles: 0,
            },
        }
    }

    /// One copy finished at `now`, with `throttles` 503s seen so far.
    fn count(&mut self, now: Instant, throttles: u64) {
        let started = *self.round.started.get_or_insert(now);
        self.round.done += 1;
        if throttles > self.round.throttles {
            // At most one decrease a round: the copies already sent at
            // the higher limit are throttled too, and say nothing new.
            if self
                .last_decrease
                .is_none_or(|at| now.duration_since(at) >= ROUND)
            {
                self.slow_down();
                self.last_decrease = Some(now);
            }
            self.new_round(now, throttles);
            return;
        }
        let elapsed = now.duration_since(started);
        if elapsed >= ROUND && self.round.done >= self.limit as u64 {
            let rate = self.round.done as f64 / elapsed.as_secs_f64();
            self.after_round(rate);
            self.new_round(now, throttles);
        }
    }

    fn new_round(&mut self, now: Instant, throttles: u64) {
        self.round = Round {
            started: Some(now),
            done: 0,
            throttles,
        };
    }

    /// S3 asked for fewer requests: half as many copies.
    fn slow_down(&mut self) {
        self.limit = (self.limit / 2).max(1);
        self.throttled_once = true;
        self.phase = Phase::Holding { rounds: 0 };
    }

    /// A round without throttling ended at `rate` copies a second.
    fn after_round(&mut self, rate: f64) {
        self.phase = match self.phase {
            // The last step up did not pay: S3 or this machine is the
            // bottleneck, and more copies at once would only wait.
            Phase::Probing {
                before,
                rate: earlier,
            } if rate < earlier * GAIN => {
                self.limit = before;
                Phase::Holding { rounds: 0 }
            }
            Phase::Holding { rounds } if rounds + 1 < PROBE_AFTER => {
                Phase::Holding { rounds: rounds + 1 }
            }
            _ => self.step_up(rate),
        };
    }

    fn step_up(&mut self, rate: f64) -> Phase {
        if self.limit >= self.cap {
            return Phase::Holding { rounds: 0 };
        }
        let before = self.limit;
        let step = if self.throttled_once {
            (self.limit / 4).max(1)
        } else {
            self.limit
        };
        self.limit = (self.limit + step).min(self.cap);
        self.most = self.most.max(self.limit);
        Phase::Probing { before, rate }
    }
}

/// Counts 503 answers: S3's `SlowDown` (and `ServiceUnavailable`, which
/// asks the same).
#[derive(Debug)]
struct CountThrottles(Arc<AtomicU64>);

impl Intercept for CountThrottles {
    fn name(&self) -> &'static str {
        "CountThrottles"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if context.response().status().as_u16() == 503 {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
