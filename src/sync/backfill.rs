//! `s3fan backfill`: copies every existing object that is missing or
//! different in a destination, server-side, with the handler's copy code
//! (multipart past the threshold, tags and metadata, the ETag condition).
//! A re-run copies nothing that is already there.

mod priced;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

use super::diff::{Merged, Verdict};
use super::listing::Entry;
use super::named::{self, ObjectList};
use super::pace::{self, Pace};
use super::watch::Watch;
use super::{Destination, Fanout, estimate, sample};
use crate::cost;
use crate::fanout::DeployError;
use crate::handler::copy;
use crate::handler::limits::CopySettings;
use crate::handler::plan::{CopyRequest, Route};
use crate::handler::s3::{CopyOutcome, S3Clients};
use crate::progress::human;

/// The most copies at once per destination, by default: the pace starts
/// at 32 and goes up to this while throughput grows (see `pace`).
pub const DEFAULT_CONCURRENCY: u16 = 256;

/// How one destination's backfill went.
#[derive(Debug, Default, Serialize)]
pub struct DestinationReport {
    pub destination: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key_prefix: String,
    /// Already there and equal.
    pub in_sync: u64,
    /// Copied (with --dry-run: would be copied).
    pub copied: u64,
    /// The bytes of those objects (with --dry-run: that would be copied).
    pub bytes: u64,
    /// Changed or deleted in the source while the backfill ran; its own
    /// event (or the next backfill) takes care of it.
    pub source_changed: u64,
    /// In the destination only; left alone (backfill never deletes).
    pub extra: u64,
    pub failed: u64,
    /// How many copies ran at once, and how often S3 asked for fewer.
    pub pace: pace::Summary,
    /// With --dry-run, up to 100 keys that would be copied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_copy: Vec<String>,
    /// Up to 100 failures, each naming the object and S3's error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    pub truncated: bool,
    /// Set when the listing failed: the backfill of this destination stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The requests those copies make (or would make), for the estimate.
    #[serde(skip)]
    pub requests: cost::Requests,
}

#[derive(Debug, Serialize)]
pub struct BackfillReport {
    pub ok: bool,
    pub source: String,
    pub dry_run: bool,
    /// Ctrl-C stopped it: the counts cover the keys examined before.
    pub interrupted: bool,
    /// With a list of objects: those the source did not have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_in_source: Option<u64>,
    pub destinations: Vec<DestinationReport>,
    /// With --dry-run: what the copies would cost, here and by S3 Batch
    /// Replication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<cost::CostReport>,
}

pub struct Options {
    /// `--files-from` or `--inventory`: these objects, and no listing of
    /// the source.
    pub objects: Option<ObjectList>,
    /// The most copies at once per destination (`--concurrency`).
    pub concurrency: usize,
    pub dry_run: bool,
    pub settings: CopySettings,
}

/// One pass over the source for every destination: the listings of all of
/// them are merged key by key, in slices listed at once (`slices`), and
/// each destination's copies run as many at once as its pace allows (up to
/// `concurrency`), fed as the merge reads.
pub async fn backfill(fanout: &Fanout, options: &Options) -> BackfillReport {
    let total = match options.objects {
        None => estimate::source_objects(fanout).await,
        Some(_) => None,
    };
    let mut watch = Watch::new(
        format!("backfill s3://{}", fanout.source),
        "examined",
        fanout.destinations.len(),
        total,
    );
    let mut reports: Vec<DestinationReport> = fanout
        .destinations
        .iter()
        .map(|destination| DestinationReport {
            destination: destination.bucket.clone(),
            key_prefix: destination.key_prefix.clone(),
            ..DestinationReport::default()
        })
        .collect();
    let examined = AtomicU64::new(0);
    let paces: Vec<Paced> = fanout
        .destinations
        .iter()
        .map(|destination| Paced::new(fanout, destination, options.concurrency))
        .collect();
    let paces = &paces;
    // Enough waiting copies that no destination's pace runs dry.
    let copies_at_once = options.concurrency.max(1) * fanout.destinations.len().max(1);
    let absent = Arc::new(AtomicU64::new(0));
    let rows = match &options.objects {
        Some(list) => named::rows(fanout, list.clone(), absent.clone()).boxed(),
        None => fanout.rows().boxed(),
    };
    // After Ctrl-C no key is read: the copies under way finish, and the
    // report says what was done (a re-run goes on from there).
    let result = rows
        .take_while(|_| std::future::ready(!crate::stop::asked()))
        .map_ok(|merged| {
            examined.fetch_add(1, Ordering::Relaxed);
            let work: Vec<Work> = match merged {
                Merged::Row(row) => row
                    .verdicts()
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, verdict)| Some(Work::Settle(i, verdict?)))
                    .collect(),
                Merged::CopyFailed { copy, error } => vec![Work::ListingFailed(copy, error)],
            };
            stream::iter(work.into_iter().map(Ok::<Work, DeployError>))
        })
        .try_flatten()
        .map_ok(|work| async move {
            Ok(match work {
                Work::Settle(i, verdict) => {
                    let done = settle(fanout, &fanout.destinations[i], &paces[i], options, verdict);
                    (i, done.await)
                }
                Work::ListingFailed(i, error) => (i, Done::ListingFailed(error.to_string())),
            })
        })
        .try_buffer_unordered(copies_at_once)
        .try_fold(&mut reports, |reports, (i, done)| {
            count(&mut reports[i], done, &options.settings);
            watch.update(
                examined.load(Ordering::Relaxed),
                reports.iter().map(|r| (r.copied, r.bytes)),
                || lines(reports, options.dry_run),
            );
            std::future::ready(Ok(reports))
        })
        .await;
    if let Err(err) = result {
        // The source's listing failed: every destination stopped with it.
        for report in &mut reports {
            report.error.get_or_insert_with(|| err.to_string());
        }
    }
    watch.finish(
        examined.load(Ordering::Relaxed),
        lines(&reports, options.dry_run),
    );
    let interrupted = crate::stop::asked();
    for (report, paced) in reports.iter_mut().zip(paces) {
        report.would_copy.sort();
        report.failures.sort();
        report.pace = paced.pace.summary();
    }
    let cost = options.dry_run.then(|| {
        let examined = examined.load(Ordering::Relaxed);
        priced::estimate(fanout, &reports, examined, options.objects.is_some())
    });
    BackfillReport {
        cost,
        ok: !interrupted && reports.iter().all(|d| d.failed == 0 && d.error.is_none()),
        source: fanout.source.clone(),
        dry_run: options.dry_run,
        interrupted,
        not_in_source: options
            .objects
            .is_some()
            .then(|| absent.load(Ordering::Relaxed)),
        destinations: reports,
    }
}

/// What the merge asks of one destination.
enum Work {
    Settle(usize, Verdict),
    ListingFailed(usize, DeployError),
}

/// A copy's result, counted by the fold.
enum Done {
    InSync,
    Extra,
    Copied(u64),
    /// With --dry-run: the key and the bytes a copy would move.
    WouldCopy(String, u64),
    SourceChanged,
    Failed(String),
    /// The destination's listing failed: its backfill stopped there.
    ListingFailed(String),
}

fn count(report: &mut DestinationReport, done: Done, settings: &CopySettings) {
    let copied = |report: &mut DestinationReport, bytes: u64| {
        report.copied += 1;
        report.bytes += bytes;
        let requests = cost::Requests::of_copy(bytes, settings);
        report.requests.put += requests.put;
        report.requests.get += requests.get;
    };
    match done {
        Done::InSync => report.in_sync += 1,
        Done::Extra => report.extra += 1,
        Done::Copied(bytes) => copied(report, bytes),
        Done::WouldCopy(key, bytes) => {
            copied(report, bytes);
            sample(&mut report.would_copy, &mut report.truncated, key);
        }
        Done::SourceChanged => report.source_changed += 1,
        Done::Failed(failure) => {
            report.failed += 1;
            sample(&mut report.failures, &mut report.truncated, failure);
        }
        Done::ListingFailed(error) => {
            report.error.get_or_insert(error);
        }
    }
}

/// One destination's pace, and the clients whose 503s it counts.
struct Paced {
    pace: Pace,
    clients: S3Clients,
}

impl Paced {
    fn new(fanout: &Fanout, destination: &Destination, cap: usize) -> Paced {
        let pace = Pace::new(cap);
        let clients = fanout.clients(destination);
        let clients = S3Clients {
            source: pace.watch(&clients.source),
            destination: pace.watch(&clients.destination),
        };
        Paced { pace, clients }
    }
}

/// Copies what a verdict says is missing or different.
async fn settle(
    fanout: &Fanout,
    destination: &Destination,
    paced: &Paced,
    options: &Options,
    verdict: Verdict,
) -> Done {
    let entry = match verdict {
        Verdict::Missing(entry) | Verdict::Different { source: entry, .. } => entry,
        Verdict::Same { .. } => return Done::InSync,
        Verdict::Extra(_) => return Done::Extra,
    };
    if options.dry_run {
        return Done::WouldCopy(entry.key, entry.size);
    }
    // A backfill may run for hours; each copy has the time a copy needs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(24 * 3600);
    let request = copy_request(&fanout.source, destination, entry);
    let slot = paced.pace.slot().await;
    let copied = copy::copy(&paced.clients, &options.settings, &request, deadline, None).await;
    paced.pace.finish(slot);
    match copied {
        Ok(copied) if copied.outcome == CopyOutcome::Copied => {
            Done::Copied(copied.bytes.unwrap_or(0))
        }
        Ok(_) => Done::SourceChanged,
        Err(failure) => Done::Failed(failure.to_string()),
    }
}

/// The same request the handler makes for an event: the current object, on
/// condition of the ETag just listed. Reconcile copies with it too.
pub(super) fn copy_request(source: &str, destination: &Destination, entry: Entry) -> CopyRequest {
    CopyRequest {
        route: Route {
            source_bucket: source.to_owned(),
            destination_key: format!("{}{}", destination.key_prefix, entry.key),
            key: entry.key,
            destination_bucket: destination.bucket.clone(),
        },
        options: destination.options.clone(),
        version_id: None,
        if_match: (!entry.etag.is_empty()).then_some(entry.etag),
        size: Some(entry.size),
        // Not asked for by an event: there is no latency to measure.
        event_time_ms: None,
        resume: None,
    }
}

/// A progress line per destination.
fn lines(reports: &[DestinationReport], dry_run: bool) -> impl Iterator<Item = String> + '_ {
    reports.iter().map(move |r| {
        format!(
            "s3://{}/{}: {} {} ({}), {} in sync, {} failed",
            r.destination,
            r.key_prefix,
            human::count(r.copied),
            if dry_run { "to copy" } else { "copied" },
            human::bytes(r.bytes),
            human::count(r.in_sync),
            human::count(r.failed)
        )
    })
}

impl BackfillReport {
    /// Some destination lacks an object: copied, or with --dry-run, to copy.
    fn found_copies(&self) -> bool {
        self.destinations.iter().any(|d| d.copied > 0)
    }
}

impl crate::report::Report for BackfillReport {
    fn render_text(&self) -> String {
        let mut out = format!(
            "s3fan backfill{}: s3://{}\n",
            if self.dry_run {
                " --dry-run (nothing copied)"
            } else {
                ""
            },
            self.source
        );
        if let Some(n) = self.not_in_source.filter(|n| *n > 0) {
            out.push_str(&format!(
                "  {n} of the objects the list names are not in the source (deleted since?): \
                 nothing to copy for them\n"
            ));
        }
        for d in &self.destinations {
            out.push_str(&format!(
                "  s3://{}/{}  {} in sync, {} {} ({} bytes), {} changed in the source meanwhile, {} failed\n",
                d.destination,
                d.key_prefix,
                d.in_sync,
                d.copied,
                if self.dry_run { "to copy" } else { "copied" },
                d.bytes,
                d.source_changed,
                d.failed
            ));
            if d.copied + d.failed > 0 && !self.dry_run {
                out.push_str(&format!(
                    "    copies at once: up to {}, {} at the end{}\n",
                    d.pace.most,
                    d.pace.last,
                    match d.pace.throttled {
                        0 => String::new(),
                        n => format!("; S3 asked to slow down {n} times (503 SlowDown)"),
                    }
                ));
            }
            for key in d.would_copy.iter().take(10) {
                out.push_str(&format!("    would copy {key}\n"));
            }
            for failure in d.failures.iter().take(10) {
                out.push_str(&format!("    {failure}\n"));
            }
            if let Some(error) = &d.error {
                out.push_str(&format!("    stopped: {error}\n"));
            }
        }
        if let Some(cost) = &self.cost {
            out.push_str(&cost.to_string());
        }
        let would_copy = self.found_copies();
        out.push_str(if self.interrupted {
            "interrupted (Ctrl-C): the counts cover the keys examined before it; run the same \
             command again to go on\n"
        } else if self.ok && self.dry_run && would_copy {
            "nothing was copied (dry run): the same command without --dry-run copies what is \
             listed above\n"
        } else if self.ok && self.dry_run {
            "nothing to copy: every destination is in sync\n"
        } else if self.ok {
            "done: run it again any time; it copies only what is missing or different\n"
        } else {
            "not everything was copied: fix the cause above and run the same command again\n"
        });
        out
    }

    fn verdict(&self) -> crate::report::Verdict {
        crate::report::Verdict::of(!self.ok, self.dry_run && self.found_copies())
    }
}
