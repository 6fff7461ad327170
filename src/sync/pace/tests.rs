use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::test_endpoint::{Reply, serve_answering};

/// Ends one round of `control` at `rate` copies a second.
fn round(control: &mut Control, rate: f64) -> usize {
    control.after_round(rate);
    control.limit
}

#[test]
fn the_limit_doubles_while_each_step_pays_and_stops_at_the_cap() {
    let mut control = Control::new(500);
    assert_eq!(control.limit, START);
    // Throughput in proportion to the copies at once: latency-bound.
    let mut limits = vec![control.limit];
    for _ in 0..5 {
        let rate = control.limit as f64 * 50.0;
        limits.push(round(&mut control, rate));
    }
    assert_eq!(limits, [32, 64, 128, 256, 500, 500]);
    assert_eq!(control.most, 500);
}

#[test]
fn a_step_that_does_not_pay_is_taken_back_and_tried_again_later() {
    let mut control = Control::new(4000);
    // S3 (or this machine) gives at most 4,000 copies a second.
    let rate = |limit: usize| (limit as f64 * 50.0).min(4000.0);
    let mut limits = Vec::new();
    for _ in 0..14 {
        let r = rate(control.limit);
        limits.push(round(&mut control, r));
    }
    // 32 -> 64 -> 128 paid (1,600, 3,200, 4,000 copies/s); 128 -> 256
    // gave nothing: back to 128, held for eight rounds, then one more try.
    assert_eq!(
        limits,
        [
            64, 128, 256, 128, 128, 128, 128, 128, 128, 128, 128, 256, 128, 128
        ]
    );
}

#[test]
fn a_throttle_halves_the_limit_once_a_round_and_later_steps_are_small() {
    let mut control = Control::new(256);
    let t0 = Instant::now();
    control.limit = 64;
    control.count(t0, 0);
    // The first 503: half as many.
    control.count(t0 + Duration::from_millis(10), 1);
    assert_eq!(control.limit, 32);
    // More 503s, from copies sent before the decrease: no second halving
    // within a round's length.
    control.count(t0 + Duration::from_millis(20), 3);
    assert_eq!(control.limit, 32);
    // A throttle a round later halves again.
    control.count(t0 + Duration::from_millis(20) + ROUND, 4);
    assert_eq!(control.limit, 16);
    // Then eight quiet rounds held, and a step of a quarter.
    for _ in 0..8 {
        round(&mut control, 1000.0);
    }
    assert_eq!(control.limit, 20);
    // Never below one copy at a time.
    for n in 0..10 {
        control.count(t0 + Duration::from_secs(1 + n), 10 + n);
    }
    assert_eq!(control.limit, 1);
}

#[test]
fn a_round_ends_after_enough_copies_and_enough_time() {
    let mut control = Control::new(4 * START);
    let t0 = Instant::now();
    // As many copies as the limit, sooner than a round's length: too soon
    // to judge.
    for n in 0..START as u32 {
        control.count(t0 + ROUND * n / (START as u32 + 1), 0);
    }
    assert_eq!(control.limit, START);
    // Past the round's length, the round ends and the limit steps up.
    control.count(t0 + ROUND + Duration::from_millis(1), 0);
    assert_eq!(control.limit, 2 * START);
}

#[test]
fn a_cap_of_one_is_one() {
    let mut control = Control::new(1);
    assert_eq!(round(&mut control, 10.0), 1);
    assert_eq!(round(&mut control, 100.0), 1);
}

#[tokio::test]
async fn a_lowered_limit_takes_places_away_as_copies_finish() {
    let pace = Pace::new(64);
    let mut slots = Vec::new();
    for _ in 0..START {
        slots.push(pace.slot().await);
    }
    assert_eq!(pace.slots.available_permits(), 0);
    pace.throttles.store(1, Ordering::Relaxed);
    for slot in slots {
        pace.finish(slot);
    }
    assert_eq!(pace.summary().last, START / 2);
    assert_eq!(pace.slots.available_permits(), START / 2);
}

/// A fake S3 that answers CopyObject in `latency_ms`, and with 503
/// SlowDown past `per_100_ms` copies in any 100 ms, as S3 throttles by
/// request rate.
async fn throttling_s3(latency_ms: u64, per_100_ms: usize) -> (aws_sdk_s3::Client, Arc<AtomicU64>) {
    let recent = Arc::new(Mutex::new(VecDeque::<Instant>::new()));
    let copied = Arc::new(AtomicU64::new(0));
    let count = copied.clone();
    let answer = Arc::new(move |method: &str, _: &str, _: &str| -> Reply {
        assert_eq!(method, "PUT");
        let now = Instant::now();
        let mut recent = recent.lock().unwrap();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_millis(100))
        {
            recent.pop_front();
        }
        if recent.len() >= per_100_ms {
            let body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.\
                        </Message></Error>";
            return (503, vec![], body.into());
        }
        recent.push_back(now);
        count.fetch_add(1, Ordering::Relaxed);
        let body = "<CopyObjectResult><ETag>\"e\"</ETag></CopyObjectResult>";
        (
            200,
            vec![("x-test-delay-ms", latency_ms.to_string())],
            body.into(),
        )
    });
    let (client, _, _) = serve_answering(answer).await;
    // Retries as a real client has them, with short waits for a test.
    let retrying = client
        .config()
        .to_builder()
        .retry_config(
            aws_sdk_s3::config::retry::RetryConfig::standard()
                .with_max_attempts(20)
                .with_initial_backoff(Duration::from_millis(5)),
        )
        .build();
    (aws_sdk_s3::Client::from_conf(retrying), copied)
}

/// Copies `n` keys through `pace`, each in its own task, as a backfill does.
async fn copy_all(pace: &Pace, s3: &aws_sdk_s3::Client, n: usize) -> usize {
    let s3 = pace.watch(s3);
    let copies = (0..n).map(|i| {
        let s3 = &s3;
        async move {
            let slot = pace.slot().await;
            let sent = s3
                .copy_object()
                .bucket("dst")
                .key(format!("k{i}"))
                .copy_source(format!("src/k{i}"))
                .send()
                .await;
            pace.finish(slot);
            sent.is_ok()
        }
    });
    futures::future::join_all(copies)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_throttling_bucket_the_pace_comes_down_and_stays_down() {
    // 20 ms a copy, at most 80 copies in 100 ms: about 16 at once.
    let (s3, copied) = throttling_s3(20, 80).await;
    let pace = Pace::new(256);
    let ok = copy_all(&pace, &s3, 600).await;
    let summary = pace.summary();
    assert_eq!(ok, 600, "every copy succeeds, the throttled ones retried");
    assert_eq!(copied.load(Ordering::Relaxed), 600);
    assert!(summary.throttled > 0, "{summary:?}");
    // Down below the start: the server throttles above about 16 at once.
    // (Where it ends, and how high the first rounds went before the first
    // 503, depend on timing; being above the start at the end does not.)
    assert!(summary.last < START, "{summary:?}");
    // Throttled on a share of its requests, not on most.
    assert!(summary.throttled < 200, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_a_distant_bucket_the_pace_grows_past_its_start() {
    // 60 ms a copy and no throttling: more at once is faster.
    let (s3, _) = throttling_s3(60, usize::MAX).await;
    let pace = Pace::new(512);
    let ok = copy_all(&pace, &s3, 3000).await;
    let summary = pace.summary();
    assert_eq!(ok, 3000);
    assert_eq!(summary.throttled, 0);
    assert!(summary.most >= 2 * START, "{summary:?}");
}
