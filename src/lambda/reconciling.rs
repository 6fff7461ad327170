//! One slice of a reconcile, inside the function: what it lists and copies
//! with (the function's own settings), what it logs and counts, and the
//! invocation of the next slice when it stopped before the end.

use lambda_runtime::Context as Invocation;
use serde::Serialize;
use tokio::time::Instant;

use super::Function;
use crate::aws::invoke_async;
use crate::handler::continuation::Handoff;
use crate::handler::metrics;
use crate::handler::runner::now_ms;
use crate::sync::reconcile::{Budget, ReconcileEvent, Reconciler, Slice, Totals};
use crate::sync::{Destination, Filter, Source};

/// Copies at once in a reconcile: as backfill's default.
const CONCURRENCY: usize = 16;

/// What a reconcile invocation answers: this slice, and the run so far.
#[derive(Debug, Serialize)]
pub struct Reconciled {
    pub run: String,
    pub slice: u32,
    pub this_slice: Totals,
    pub run_so_far: Totals,
    /// Where the next slice goes on, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

impl Function {
    /// Does one slice of the reconcile `asked` for, and hands the rest of
    /// the run to the next slice. A run whose copies failed fails in its
    /// last slice, so that Lambda retries it and then keeps it in the
    /// failure queue; a slice that could not list fails (and is retried)
    /// without handing on, so no slice runs twice.
    pub async fn reconcile(
        &self,
        asked: &ReconcileEvent,
        invocation: &Invocation,
        started: Instant,
        deadline: Instant,
    ) -> Result<Reconciled, String> {
        let source = self.source.as_deref().ok_or(
            "the function's environment names no source bucket (S3FAN_SOURCE_BUCKET): \
             redeploy it with s3fan deploy",
        )?;
        let target = &self.replicator.target;
        let filter = Filter {
            prefix: target.prefix.clone(),
            suffix: target.suffix.clone(),
            narrow: None,
        };
        let destination = Destination::of(target, self.replicator.s3.destination.clone());
        let handoff = Handoff {
            lambda: self.lambda.clone(),
            function: invocation.invoked_function_arn.clone(),
        };
        let reconciler = Reconciler {
            source: Source {
                s3: &self.replicator.s3.source,
                bucket: source,
                filter: &filter,
                request_payer: target.options.request_payer,
            },
            destination: &destination,
            settings: &self.replicator.settings,
            replicate_deletes: target.replicate_deletes,
            concurrency: CONCURRENCY,
            handoff: Some(&handoff),
        };
        let run = asked
            .run
            .clone()
            .unwrap_or_else(|| invocation.request_id.clone());
        let budget = Budget::of(started, deadline, self.replicator.settings.reconcile_slice);
        let slice = reconciler
            .slice(asked.start_after.as_deref(), budget)
            .await
            .map_err(|err| {
                format!(
                    "slice {} of run {run} stopped after {}: {err}",
                    asked.slice,
                    asked.start_after.as_deref().unwrap_or("the start")
                )
            })?;
        let so_far = asked.so_far.plus(&slice.totals);
        self.report(&run, asked, &slice, &so_far, started);
        if let Some(stop) = &slice.stopped_at {
            let next = asked.next(&run, &slice, stop);
            self.invoke_next(invocation, &next).await?;
        } else if so_far.failed > 0 {
            return Err(format!(
                "run {run} copied {} of {} objects out of sync, and {} failed: {}",
                so_far.copied,
                so_far.out_of_sync(),
                so_far.failed,
                slice.failures.join("; ")
            ));
        }
        Ok(Reconciled {
            run,
            slice: asked.slice,
            this_slice: slice.totals,
            run_so_far: so_far,
            next_after: slice.stopped_at,
        })
    }

    /// The next slice, as an asynchronous invocation of this same function.
    async fn invoke_next(
        &self,
        invocation: &Invocation,
        next: &ReconcileEvent,
    ) -> Result<(), String> {
        let payload = serde_json::to_vec(next)
            .map_err(|err| format!("cannot write the next slice's event: {err}"))?;
        invoke_async(&self.lambda, &invocation.invoked_function_arn, payload)
            .await
            .map_err(|err| {
                format!(
                    "cannot hand the rest of the run on to the next slice (lambda:InvokeFunction \
                     on {}): {}; the slice is retried",
                    invocation.invoked_function_arn,
                    crate::aws::error_chain(&err)
                )
            })
    }

    /// One log line per slice, and one more for the run when it is done;
    /// with metrics, the slice's counts as CloudWatch metrics.
    fn report(
        &self,
        run: &str,
        asked: &ReconcileEvent,
        slice: &Slice,
        so_far: &Totals,
        started: Instant,
    ) {
        let destination = &self.replicator.target.bucket;
        let t = &slice.totals;
        tracing::info!(
            run,
            slice = asked.slice,
            destination = %destination,
            outcome = "reconcile_slice",
            examined = t.examined,
            out_of_sync = t.out_of_sync(),
            missing = t.missing,
            different = t.different,
            extra = t.extra,
            copied = t.copied,
            deleted = t.deleted,
            failed = t.failed,
            stopped_at = slice.stopped_at.as_deref(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        );
        if slice.stopped_at.is_none() {
            tracing::info!(
                run,
                slices = asked.slice + 1,
                destination = %destination,
                outcome = "reconciled",
                examined = so_far.examined,
                out_of_sync = so_far.out_of_sync(),
                repaired = so_far.repaired(),
                failed = so_far.failed,
            );
        }
        if self.replicator.metrics {
            metrics::emit(&metrics::reconcile(&metrics::Reconciled {
                destination,
                examined: t.examined,
                out_of_sync: t.out_of_sync(),
                repaired: t.repaired(),
                failed: t.failed,
                timestamp_ms: now_ms(),
            }));
        }
    }
}
