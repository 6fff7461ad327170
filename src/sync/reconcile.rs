//! Reconcile, run by the function itself: it compares the source (within
//! the fan-out's key filter) with its destination (under its key prefix)
//! with the streaming diff of `verify`, and copies what is missing or
//! different with the copy code of every other copy. It deletes only when
//! the fan-out replicates deletes, and then only keys the source no longer
//! has, as the handler checks them. So whatever events S3 or Lambda lost,
//! nothing stays missing past the next run.
//!
//! A bucket too large for one invocation is done in slices. A slice settles
//! the keys in chunks, in key order, and stops between two chunks when its
//! time is nearly up. It then says where it stopped, and the Lambda loop
//! invokes the function again, asynchronously, to go on from there. Keys up
//! to the stop are settled and the next slice lists after it, so every key
//! is settled once per run.

use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::backfill::copy_request;
use super::diff::Verdict;
use super::{Destination, Source, compare};
use crate::fanout::DeployError;
use crate::handler::continuation::Handoff;
use crate::handler::copy;
use crate::handler::limits::CopySettings;
use crate::handler::plan::{DeleteRequest, Route};
use crate::handler::s3::{CopyOutcome, DeleteOutcome, S3Clients};

/// The value of `s3fan` in a payload that asks for a reconcile.
pub const RECONCILE: &str = "reconcile";

/// The event that asks a function to reconcile: `{"s3fan": "reconcile"}`
/// from its schedule or from `s3fan reconcile`; the rest is filled in by
/// the function when it goes on with a run in another slice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileEvent {
    /// Always `reconcile`.
    pub s3fan: String,
    /// The run this slice is part of: the request ID of its first slice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The number of slices before this one.
    #[serde(default, skip_serializing_if = "is_first")]
    pub slice: u32,
    /// Where the last slice stopped: its last key settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
    /// What the slices before this one found and did.
    #[serde(default, skip_serializing_if = "is_nothing")]
    pub so_far: Totals,
}

fn is_first(slice: &u32) -> bool {
    *slice == 0
}

fn is_nothing(totals: &Totals) -> bool {
    *totals == Totals::default()
}

impl ReconcileEvent {
    /// The reconcile a payload asks for, if it is one.
    pub fn parse(payload: &Value) -> Option<Result<ReconcileEvent, String>> {
        if payload.get("s3fan").and_then(Value::as_str) != Some(RECONCILE) {
            return None;
        }
        Some(
            serde_json::from_value(payload.clone())
                .map_err(|err| format!("a reconcile event s3fan cannot read: {err}")),
        )
    }

    /// The event of a new run, as the schedule sends it.
    pub fn new_run() -> ReconcileEvent {
        ReconcileEvent {
            s3fan: RECONCILE.to_owned(),
            ..ReconcileEvent::default()
        }
    }

    /// The event of the next slice, after `slice` stopped at `stop`.
    pub fn next(&self, run: &str, slice: &Slice, stop: &str) -> ReconcileEvent {
        ReconcileEvent {
            s3fan: RECONCILE.to_owned(),
            run: Some(run.to_owned()),
            slice: self.slice + 1,
            start_after: Some(stop.to_owned()),
            so_far: self.so_far.plus(&slice.totals),
        }
    }
}

/// What a reconcile found and did; also each slice's part of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    /// Keys compared: in the source, the destination or both.
    pub examined: u64,
    pub in_sync: u64,
    /// In the source only: an event that never arrived, or a copy that never
    /// happened.
    pub missing: u64,
    /// In both, not equal.
    pub different: u64,
    /// In the destination only; deleted when the fan-out replicates deletes.
    pub extra: u64,
    /// Missing or different, and copied now.
    pub copied: u64,
    pub bytes: u64,
    /// Extra, and deleted now (with --replicate-deletes).
    pub deleted: u64,
    /// Changed in the source while the slice ran: its own event follows.
    pub source_changed: u64,
    pub failed: u64,
}

impl Totals {
    /// Objects the run found out of sync: what the events missed.
    pub fn out_of_sync(&self) -> u64 {
        self.missing + self.different
    }

    /// What was put right: copies made and extra copies deleted.
    pub fn repaired(&self) -> u64 {
        self.copied + self.deleted
    }

    pub fn plus(&self, other: &Totals) -> Totals {
        Totals {
            examined: self.examined + other.examined,
            in_sync: self.in_sync + other.in_sync,
            missing: self.missing + other.missing,
            different: self.different + other.different,
            extra: self.extra + other.extra,
            copied: self.copied + other.copied,
            bytes: self.bytes + other.bytes,
            deleted: self.deleted + other.deleted,
            source_changed: self.source_changed + other.source_changed,
            failed: self.failed + other.failed,
        }
    }
}

/// What one slice came to.
#[derive(Debug, Default)]
pub struct Slice {
    pub totals: Totals,
    /// The last key settled, when the slice stopped before the end.
    pub stopped_at: Option<String>,
    /// The first failures (FAILURES_KEPT), each naming the object and S3's
    /// error.
    pub failures: Vec<String>,
}

/// How many keys a slice settles between two looks at the clock.
pub const CHUNK: usize = 100;

/// What a reconcile compares and copies with.
pub struct Reconciler<'a> {
    pub source: Source<'a>,
    pub destination: &'a Destination,
    pub settings: &'a CopySettings,
    /// Deletes are replicated: an extra copy is deleted.
    pub replicate_deletes: bool,
    /// Copies at once.
    pub concurrency: usize,
    /// In the function: how a multipart copy too large for the slice hands
    /// on to a fresh invocation, which completes it.
    pub handoff: Option<&'a Handoff>,
}

/// When a slice must stop: it does not start another chunk after `stop`,
/// and a copy gives up at `deadline`.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub stop: Instant,
    pub deadline: Instant,
}

impl Budget {
    /// The time of an invocation: copies may run until `deadline`; a new
    /// chunk starts only while at least a fifth of the time (and at least
    /// `reserve`) is left, so the last chunk has room to finish. `slice`,
    /// when set, ends a slice sooner (S3FAN_RECONCILE_SLICE_SECONDS).
    pub fn of(started: Instant, deadline: Instant, slice: Option<Duration>) -> Budget {
        let total = deadline.saturating_duration_since(started);
        let keep = (total / 5).max(Duration::from_secs(2));
        let mut stop = deadline.checked_sub(keep).unwrap_or(started);
        if let Some(slice) = slice {
            stop = stop.min(started + slice);
        }
        Budget { stop, deadline }
    }
}

impl Reconciler<'_> {
    /// Settles the keys after `start_after`, a chunk at a time, until the
    /// keys end or the budget says stop. At least one chunk is settled, so
    /// every slice moves the run on.
    pub async fn slice(
        &self,
        start_after: Option<&str>,
        budget: Budget,
    ) -> Result<Slice, DeployError> {
        let mut slice = Slice::default();
        let clients = self.source.clients(self.destination);
        let verdicts = compare(self.source, self.destination, start_after);
        let mut chunks = std::pin::pin!(verdicts.chunks(CHUNK));
        loop {
            let Some(chunk) = chunks.next().await else {
                slice.stopped_at = None;
                return Ok(slice);
            };
            let chunk = chunk.into_iter().collect::<Result<Vec<_>, _>>()?;
            let last_chunk = chunk.len() < CHUNK;
            slice.stopped_at = chunk.last().map(|v| v.key().to_owned());
            let settled: Vec<Settled> = futures::stream::iter(chunk)
                .map(|verdict| {
                    slice.totals.found(&verdict);
                    self.settle(&clients, verdict, budget.deadline)
                })
                .buffer_unordered(self.concurrency.max(1))
                .collect()
                .await;
            for done in settled {
                slice.count(done);
            }
            // A short chunk is the last: the keys have ended.
            if last_chunk {
                slice.stopped_at = None;
                return Ok(slice);
            }
            // Stopped for time: there may be more keys, or none; the next
            // slice finds out.
            if Instant::now() >= budget.stop {
                return Ok(slice);
            }
        }
    }

    /// Copies what is missing or different; deletes an extra copy when
    /// deletes are replicated (only if the source lacks the key, as the
    /// handler checks); leaves the rest.
    async fn settle(&self, clients: &S3Clients, verdict: Verdict, deadline: Instant) -> Settled {
        match verdict {
            Verdict::Same { .. } => Settled::Nothing,
            Verdict::Missing(entry) | Verdict::Different { source: entry, .. } => {
                let request = copy_request(self.source.bucket, self.destination, entry);
                match copy::copy(clients, self.settings, &request, deadline, self.handoff).await {
                    // Handed on: a continuation completes the copy.
                    Ok(copied)
                        if matches!(
                            copied.outcome,
                            CopyOutcome::Copied | CopyOutcome::Continued
                        ) =>
                    {
                        Settled::Copied(copied.bytes.unwrap_or(0))
                    }
                    Ok(_) => Settled::SourceChanged,
                    Err(failure) => Settled::Failed(failure.to_string()),
                }
            }
            Verdict::Extra(entry) if self.replicate_deletes => {
                let request = DeleteRequest {
                    route: Route {
                        source_bucket: self.source.bucket.to_owned(),
                        destination_key: format!("{}{}", self.destination.key_prefix, entry.key),
                        key: entry.key,
                        destination_bucket: self.destination.bucket.clone(),
                    },
                    options: self.destination.options.clone(),
                };
                match copy::delete_object(clients, &request).await {
                    Ok(DeleteOutcome::Deleted) => Settled::Deleted,
                    Ok(DeleteOutcome::SourceRecreated) => Settled::SourceChanged,
                    Err(failure) => Settled::Failed(failure.to_string()),
                }
            }
            Verdict::Extra(_) => Settled::Nothing,
        }
    }
}

/// What was done for one key.
enum Settled {
    Nothing,
    Copied(u64),
    Deleted,
    SourceChanged,
    Failed(String),
}

impl Totals {
    /// Counts what the comparison found of one key.
    fn found(&mut self, verdict: &Verdict) {
        self.examined += 1;
        match verdict {
            Verdict::Same { .. } => self.in_sync += 1,
            Verdict::Missing(_) => self.missing += 1,
            Verdict::Different { .. } => self.different += 1,
            Verdict::Extra(_) => self.extra += 1,
        }
    }
}

impl Slice {
    /// Counts what was done for one key.
    fn count(&mut self, settled: Settled) {
        let totals = &mut self.totals;
        match settled {
            Settled::Nothing => {}
            Settled::Copied(bytes) => {
                totals.copied += 1;
                totals.bytes += bytes;
            }
            Settled::Deleted => totals.deleted += 1,
            Settled::SourceChanged => totals.source_changed += 1,
            Settled::Failed(failure) => {
                totals.failed += 1;
                if self.failures.len() < FAILURES_KEPT {
                    self.failures.push(failure);
                }
            }
        }
    }
}

/// How many failures a slice names; the count has them all.
const FAILURES_KEPT: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::plan::S3Options;
    use crate::sync::Filter;
    use crate::test_endpoint::{Reply, serve};

    /// `src` holds k000 to k249; `dst` holds nothing. Listings honour
    /// start-after; every copy succeeds.
    fn buckets(method: &str, target: &str) -> Reply {
        let param = |name: &str| {
            target.split(['?', '&']).find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                (key == name).then(|| value.to_owned())
            })
        };
        if method == "PUT" {
            let ok = "<CopyObjectResult><ETag>\"e\"</ETag></CopyObjectResult>";
            return (200, vec![], ok.into());
        }
        let keys: Vec<String> = if target.starts_with("/src/?") {
            let after = param("start-after").unwrap_or_default();
            (0..250)
                .map(|i| format!("k{i:03}"))
                .filter(|key| *key > after)
                .collect()
        } else {
            Vec::new()
        };
        let contents: String = keys
            .iter()
            .map(|key| {
                format!("<Contents><Key>{key}</Key><Size>1</Size><ETag>\"e\"</ETag></Contents>")
            })
            .collect();
        let body = format!(
            "<ListBucketResult><IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"
        );
        (200, vec![], body)
    }

    #[tokio::test]
    async fn slices_settle_a_chunk_at_least_and_cover_every_key_once() {
        let (client, seen) = serve(buckets).await;
        let filter = Filter::default();
        let destination = Destination {
            bucket: "dst".into(),
            key_prefix: String::new(),
            options: S3Options::default(),
            s3: client.clone(),
            elsewhere: None,
        };
        let settings = CopySettings::default();
        let reconciler = Reconciler {
            source: Source {
                s3: &client,
                bucket: "src",
                filter: &filter,
                request_payer: false,
            },
            destination: &destination,
            settings: &settings,
            replicate_deletes: false,
            concurrency: 4,
            handoff: None,
        };
        // No time at all: each slice settles one chunk, then hands on.
        let now = Instant::now();
        let spent = Budget {
            stop: now,
            deadline: now + Duration::from_secs(60),
        };
        let mut event = ReconcileEvent::new_run();
        let mut slices = 0;
        loop {
            let slice = reconciler
                .slice(event.start_after.as_deref(), spent)
                .await
                .unwrap();
            slices += 1;
            match &slice.stopped_at {
                Some(stop) => event = event.next("run-1", &slice, stop),
                None => {
                    event.so_far = event.so_far.plus(&slice.totals);
                    break;
                }
            }
        }
        assert_eq!(slices, 3, "250 keys in chunks of {CHUNK}");
        let totals = event.so_far;
        assert_eq!((totals.examined, totals.missing), (250, 250));
        assert_eq!((totals.copied, totals.failed), (250, 0));
        assert_eq!(totals.repaired(), 250);
        // Every key copied exactly once, across the slices.
        let mut copied: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.starts_with("PUT /dst/"))
            .map(|r| r.lines().next().unwrap_or_default().to_owned())
            .collect();
        copied.sort();
        let before = copied.len();
        copied.dedup();
        assert_eq!((before, copied.len()), (250, 250));
        assert_eq!(event.slice, 2);
    }

    #[test]
    fn only_a_payload_that_says_reconcile_is_one() {
        assert!(ReconcileEvent::parse(&serde_json::json!({"Records": []})).is_none());
        let asked = ReconcileEvent::parse(&serde_json::json!({"s3fan": "reconcile"}))
            .unwrap()
            .unwrap();
        assert_eq!(asked, ReconcileEvent::new_run());
        let bad = ReconcileEvent::parse(&serde_json::json!({"s3fan": "reconcile", "slice": "x"}))
            .unwrap()
            .unwrap_err();
        assert!(bad.contains("reconcile event"), "{bad}");
    }

    #[test]
    fn a_slice_stops_before_the_last_fifth_of_its_time_or_sooner_when_told() {
        let start = Instant::now();
        let budget = Budget::of(start, start + Duration::from_secs(100), None);
        assert_eq!(budget.stop, start + Duration::from_secs(80));
        let told = Budget::of(
            start,
            start + Duration::from_secs(100),
            Some(Duration::from_millis(10)),
        );
        assert_eq!(told.stop, start + Duration::from_millis(10));
        assert_eq!(told.deadline, start + Duration::from_secs(100));
    }
}
