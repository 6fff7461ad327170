//! Running the planned steps of one event: the Lambda loop and `s3fan
//! retry` both come here, so that a record is copied, deleted, skipped or
//! refused, logged and counted the same way wherever it runs.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::continuation::Handoff;
use super::copy;
use super::limits::CopySettings;
use super::metrics::{self, Counted};
use super::plan::{CopyRequest, DeleteRequest, Step, TagsRequest};
use super::s3::{Copied, CopyOutcome, DeleteOutcome, Failure, S3Clients, TagsOutcome};

/// How the steps of one event are run.
pub struct Runner<'a> {
    pub s3: &'a S3Clients,
    pub settings: &'a CopySettings,
    /// The destination bucket, named in the log and the metrics.
    pub destination: &'a str,
    /// Also write each record as CloudWatch metrics (EMF): `deploy --metrics`.
    pub metrics: bool,
    /// How a multipart copy hands on to a fresh invocation: in the function
    /// only; elsewhere a copy runs until it is done.
    pub handoff: Option<&'a Handoff>,
}

/// What the steps of one event came to; a successful invocation's result.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub copied: usize,
    /// Late events: the source was written, deleted or written again since,
    /// and that change's own event brings the destination up to date.
    pub source_changed: usize,
    pub skipped: usize,
    /// Only functions deployed with --replicate-deletes delete.
    #[serde(skip_serializing_if = "is_zero")]
    pub deleted: usize,
    /// Multipart copies handed on to a fresh invocation, which goes on.
    #[serde(skip_serializing_if = "is_zero")]
    pub continued: usize,
    /// Only functions deployed with --replicate-tags set tags.
    #[serde(skip_serializing_if = "is_zero")]
    pub tags_replicated: usize,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// Every step attempted: the counts, and each failure as a sentence that
/// names the objects and S3's error.
pub struct Ran {
    pub summary: Summary,
    pub failures: Vec<String>,
    pub total: usize,
    /// Each step's end, in step order: what it came to (`copied`,
    /// `skipped: ...`), or the failure's sentence. A Batch Operations
    /// invocation answers each of its tasks with one.
    pub outcomes: Vec<Result<String, String>>,
}

/// How long a step took, and, for a copy an event asked for, how long
/// after the source's write it completed.
struct Timing {
    elapsed: Duration,
    /// `ReplicationLatency`: from the event's `eventTime` to now, in
    /// milliseconds; Lambda's retries and a later `retry` are part of it,
    /// since they are part of the wait for the copy.
    latency_ms: Option<u64>,
}

impl Timing {
    fn of(done: &Done, elapsed: Duration) -> Timing {
        let latency_ms = match done {
            Done::Copy(request, Ok(copied)) if copied.outcome == CopyOutcome::Copied => request
                .event_time_ms
                .map(|written| now_ms().saturating_sub(written)),
            _ => None,
        };
        Timing {
            elapsed,
            latency_ms,
        }
    }
}

/// What became of one step.
enum Done<'a> {
    Copy(&'a CopyRequest, Result<Copied, Failure>),
    Delete(&'a DeleteRequest, Result<DeleteOutcome, Failure>),
    Tags(&'a TagsRequest, Result<TagsOutcome, Failure>),
    Skipped { notice: String, reason: String },
    Refused { notice: String, reason: String },
}

impl Runner<'_> {
    /// Runs every step, each after the one before; a failed step does not
    /// stop the others. Copies give up at `deadline`.
    pub async fn run(&self, steps: Vec<Step>, deadline: tokio::time::Instant, id: &str) -> Ran {
        let mut ran = Ran {
            summary: Summary::default(),
            failures: Vec::new(),
            total: steps.len(),
            outcomes: Vec::with_capacity(steps.len()),
        };
        for step in steps {
            let started = Instant::now();
            let done = match &step {
                Step::Copy(request) => Done::Copy(
                    request,
                    copy::copy(self.s3, self.settings, request, deadline, self.handoff).await,
                ),
                Step::Delete(request) => {
                    Done::Delete(request, copy::delete_object(self.s3, request).await)
                }
                Step::Tags(request) => {
                    Done::Tags(request, copy::replicate_tags(self.s3, request).await)
                }
                Step::Skip { notice, reason } => Done::Skipped {
                    notice: notice.clone(),
                    reason: reason.clone(),
                },
                Step::Refuse { notice, reason } => Done::Refused {
                    notice: notice.clone(),
                    reason: reason.clone(),
                },
            };
            let timing = Timing::of(&done, started.elapsed());
            log(&done, self.destination, &timing, id);
            self.count(&done, &timing);
            ran.add(done);
        }
        ran
    }

    /// The record as CloudWatch metrics, when the function was deployed with them.
    fn count(&self, done: &Done, timing: &Timing) {
        let (counted, bytes) = match done {
            Done::Copy(_, Ok(copied)) if copied.outcome == CopyOutcome::Copied => {
                (Counted::Copied, copied.bytes.unwrap_or(0))
            }
            // Counted once, by the invocation that completes it.
            Done::Copy(_, Ok(copied)) if copied.outcome == CopyOutcome::Continued => return,
            Done::Copy(_, Ok(_)) => (Counted::SourceChanged, 0),
            Done::Delete(_, Ok(DeleteOutcome::Deleted)) => (Counted::Deleted, 0),
            Done::Delete(_, Ok(DeleteOutcome::SourceRecreated)) => (Counted::SourceChanged, 0),
            Done::Tags(_, Ok(TagsOutcome::Replicated)) => (Counted::TagsReplicated, 0),
            Done::Tags(_, Ok(TagsOutcome::SourceChanged)) => (Counted::SourceChanged, 0),
            Done::Tags(_, Ok(TagsOutcome::NoCopyYet)) => return,
            Done::Copy(_, Err(_))
            | Done::Delete(_, Err(_))
            | Done::Tags(_, Err(_))
            | Done::Refused { .. } => (Counted::Failed, 0),
            Done::Skipped { .. } => return,
        };
        // A refusal takes no time of S3's.
        let elapsed = match done {
            Done::Refused { .. } => Duration::ZERO,
            _ => timing.elapsed,
        };
        if self.metrics {
            metrics::emit(&metrics::record(&metrics::Measured {
                destination: self.destination,
                counted,
                bytes,
                duration_ms: elapsed.as_secs_f64() * 1000.0,
                latency_ms: timing.latency_ms,
                timestamp_ms: now_ms(),
            }));
        }
    }
}

impl Ran {
    fn add(&mut self, done: Done) {
        let summary = &mut self.summary;
        let outcome = match done {
            Done::Copy(_, Ok(copied)) => {
                match copied.outcome {
                    CopyOutcome::Copied => summary.copied += 1,
                    CopyOutcome::SourceChanged => summary.source_changed += 1,
                    CopyOutcome::Continued => summary.continued += 1,
                }
                Ok(copied.outcome.as_str().to_owned())
            }
            Done::Delete(_, Ok(outcome)) => {
                match outcome {
                    DeleteOutcome::Deleted => summary.deleted += 1,
                    DeleteOutcome::SourceRecreated => summary.source_changed += 1,
                }
                Ok(match outcome {
                    DeleteOutcome::Deleted => "deleted",
                    DeleteOutcome::SourceRecreated => "source_recreated",
                }
                .to_owned())
            }
            Done::Tags(_, Ok(outcome)) => {
                match outcome {
                    TagsOutcome::Replicated => summary.tags_replicated += 1,
                    TagsOutcome::SourceChanged => summary.source_changed += 1,
                    TagsOutcome::NoCopyYet => summary.skipped += 1,
                }
                Ok(outcome.as_str().to_owned())
            }
            Done::Copy(_, Err(failure))
            | Done::Delete(_, Err(failure))
            | Done::Tags(_, Err(failure)) => Err(failure.to_string()),
            Done::Skipped { reason, .. } => {
                summary.skipped += 1;
                Ok(format!("skipped: {reason}"))
            }
            Done::Refused { notice, reason } => Err(format!("{notice}: {reason}")),
        };
        if let Err(failure) = &outcome {
            self.failures.push(failure.clone());
        }
        self.outcomes.push(outcome);
    }
}

/// The one structured line per record.
fn log(done: &Done, destination: &str, timing: &Timing, request_id: &str) {
    let duration_ms = timing.elapsed.as_secs_f64() * 1000.0;
    match done {
        Done::Copy(request, Ok(copied)) => tracing::info!(
            request_id,
            bucket = %request.route.source_bucket,
            key = %request.route.key,
            version_id = request.version_id.as_deref(),
            destination = %request.route.destination_bucket,
            destination_key = %request.route.destination_key,
            bytes = copied.bytes,
            method = if copied.parts == 0 { "copy_object" } else { "multipart" },
            parts = copied.parts,
            outcome = copied.outcome.as_str(),
            duration_ms,
            replication_latency_ms = timing.latency_ms,
        ),
        Done::Copy(request, Err(failure)) => tracing::error!(
            request_id,
            bucket = %request.route.source_bucket,
            key = %request.route.key,
            version_id = request.version_id.as_deref(),
            destination = %request.route.destination_bucket,
            destination_key = %request.route.destination_key,
            bytes = request.size,
            outcome = "failed",
            duration_ms,
            error_code = %failure.code,
            error = %failure.message,
        ),
        Done::Delete(request, Ok(outcome)) => tracing::info!(
            request_id,
            bucket = %request.route.source_bucket,
            key = %request.route.key,
            destination = %request.route.destination_bucket,
            destination_key = %request.route.destination_key,
            outcome = match outcome {
                DeleteOutcome::Deleted => "deleted",
                DeleteOutcome::SourceRecreated => "source_recreated",
            },
            duration_ms,
        ),
        Done::Delete(request, Err(failure)) => tracing::error!(
            request_id,
            bucket = %request.route.source_bucket,
            key = %request.route.key,
            destination = %request.route.destination_bucket,
            destination_key = %request.route.destination_key,
            outcome = "failed",
            duration_ms,
            error_code = %failure.code,
            error = %failure.message,
        ),
        Done::Tags(request, Ok(outcome)) => tracing::info!(
            request_id,
            bucket = %request.route.source_bucket,
            key = %request.route.key,
            destination = %request.route.destination_bucket,
            destination_key = %request.route.destination_key,
            outcome = outcome.as_str(),
            duration_ms,
        ),
        Done::Tags(request, Err(failure)) => tracing::error!(
            request_id,
            bucket = %request.route.source_bucket,
            key = %request.route.key,
            destination = %request.route.destination_bucket,
            destination_key = %request.route.destination_key,
            outcome = "failed",
            duration_ms,
            error_code = %failure.code,
            error = %failure.message,
        ),
        Done::Skipped { notice, reason } => tracing::info!(
            request_id,
            notice = %notice,
            destination,
            outcome = "skipped",
            reason = %reason,
        ),
        Done::Refused { notice, reason } => tracing::error!(
            request_id,
            notice = %notice,
            destination,
            outcome = "refused",
            error = %reason,
        ),
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::plan::Route;
    use crate::test_endpoint::{Reply, serve};

    fn copied(_: &str, _: &str) -> Reply {
        let ok = "<CopyObjectResult><ETag>\"0123abcd\"</ETag></CopyObjectResult>";
        (200, vec![], ok.into())
    }

    fn copy(key: &str) -> Step {
        Step::Copy(CopyRequest {
            route: Route {
                source_bucket: "src".into(),
                key: key.into(),
                destination_bucket: "dst".into(),
                destination_key: key.into(),
            },
            options: Default::default(),
            version_id: None,
            if_match: Some("0123abcd".into()),
            size: Some(3),
            event_time_ms: None,
            resume: None,
        })
    }

    #[tokio::test]
    async fn every_step_is_run_counted_and_a_refusal_fails_without_stopping_the_rest() {
        let (client, seen) = serve(copied).await;
        let s3 = S3Clients::one(&client);
        let settings = CopySettings::default();
        let runner = Runner {
            s3: &s3,
            settings: &settings,
            destination: "dst",
            metrics: false,
            handoff: None,
        };
        let steps = vec![
            Step::Refuse {
                notice: "s3://src/bad".into(),
                reason: "the destination is the source".into(),
            },
            copy("a"),
            Step::Skip {
                notice: "s3://src/b".into(),
                reason: "outside the filter".into(),
            },
            copy("c"),
        ];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let ran = runner.run(steps, deadline, "test").await;
        assert_eq!(ran.total, 4);
        assert_eq!((ran.summary.copied, ran.summary.skipped), (2, 1));
        assert_eq!(
            ran.failures,
            ["s3://src/bad: the destination is the source"]
        );
        assert_eq!(seen.lock().unwrap().len(), 2, "both copies were made");
    }
}
