//! Lambda mode: the runtime loop. Lambda starts s3fan as the `bootstrap`
//! of a custom runtime. An invocation is an S3 event, which the handler
//! copies to the function's destination, or a reconcile (its schedule,
//! `s3fan reconcile`, or the function itself going on with a run), which
//! `sync::reconcile` does a slice of. The clients are built once, at init,
//! and shared by every invocation of this execution environment.

use std::process::ExitCode;
use std::time::Duration;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use crate::handler::batch::Invocation as BatchInvocation;
use crate::handler::continuation::Handoff;
use crate::handler::limits::CopySettings;
use crate::handler::plan::Target;
use crate::handler::runner::{Summary, now_ms};
use crate::handler::s3::S3Clients;
use crate::handler::{Replicator, Unreplicated};
use crate::settings::{FunctionSettings, destination_bucket};
use crate::sync::reconcile::ReconcileEvent;

mod batch_tasks;
mod reconciling;

/// Lambda starts a custom runtime's `bootstrap` with this variable set;
/// nothing else does.
pub fn runs_inside_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Runs the Lambda runtime loop until Lambda stops the process.
pub fn main() -> ExitCode {
    init_json_logs();
    // One core is what a small function gets; a current-thread runtime starts
    // faster and uses less memory, and copies are I/O-bound anyway.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "Lambda runtime loop ended");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    let told = FunctionSettings::from_process_env();
    let destination = destination_bucket(
        told.destination.clone(),
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok(),
    );
    let config = crate::aws::sdk_config(None, None).await;
    let settings = CopySettings::from_process_env();
    let replicator = match destination
        .map_err(|err| err.to_string())
        .and_then(|d| Ok((d, settings?)))
    {
        Ok((destination, settings)) => {
            tracing::info!(destination = %destination, version = crate::version::LONG, "s3fan handler ready");
            Ok(Function {
                replicator: Replicator {
                    target: Target::new(destination, &told),
                    settings,
                    metrics: told.metrics,
                    s3: S3Clients::for_regions(&config, told.destination_region.clone()),
                    source: told.source.clone(),
                },
                source: told.source.clone(),
                lambda: aws_sdk_lambda::Client::new(&config),
                sqs: aws_sdk_sqs::Client::new(&config),
                region: config.region().map(|r| r.to_string()).unwrap_or_default(),
            })
        }
        // A misconfigured function still serves invocations, each failing
        // with the reason, so the error shows where users look (the Invoke
        // response, the failure destination) and not only in an init log.
        Err(err) => {
            tracing::error!(error = %err, "s3fan handler misconfigured");
            Err(err)
        }
    };
    let function = &replicator;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let function = function
            .as_ref()
            .map_err(|reason| InvocationError::Misconfigured(reason.clone()))?;
        let started = tokio::time::Instant::now();
        let deadline = started + copy_budget(event.context.deadline, now_ms());
        if let Some(asked) = ReconcileEvent::parse(&event.payload) {
            let asked = asked.map_err(InvocationError::Reconcile)?;
            let done = function
                .reconcile(&asked, &event.context, started, deadline)
                .await
                .map_err(InvocationError::Reconcile)?;
            return Ok::<Answer, InvocationError>(Answer::Reconciled(done));
        }
        let handoff = Handoff {
            lambda: function.lambda.clone(),
            function: event.context.invoked_function_arn.clone(),
        };
        if let Some(asked) = BatchInvocation::parse(&event.payload) {
            let asked = asked.map_err(InvocationError::Batch)?;
            let answer = function
                .batch(&asked, &event.context, deadline, &handoff)
                .await;
            return Ok(Answer::Batch(answer));
        }
        let summary = function
            .replicator
            .handle(
                &event.payload,
                deadline,
                &event.context.request_id,
                Some(&handoff),
            )
            .await?;
        Ok(Answer::Replicated(summary))
    }))
    .await
}

/// A successful invocation's result.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Answer {
    Replicated(Summary),
    Reconciled(reconciling::Reconciled),
    /// To S3 Batch Operations: one result per task.
    Batch(Value),
}

/// What one function is, once its environment is read.
struct Function {
    replicator: Replicator,
    /// The source bucket, which a reconcile lists.
    source: Option<String>,
    /// To invoke itself with the next slice of a reconcile.
    lambda: aws_sdk_lambda::Client,
    /// To keep a failed Batch Operations task in the failure queue.
    sqs: aws_sdk_sqs::Client,
    /// The function's region, which the events it writes name.
    region: String,
}

/// Why an invocation failed. Lambda retries failed asynchronous invocations,
/// so a failure must mean "trying again may help or a human must look".
#[derive(Debug, thiserror::Error)]
enum InvocationError {
    #[error("{0}")]
    Unreplicated(#[from] Unreplicated),
    #[error("s3fan is misconfigured: {0}")]
    Misconfigured(String),
    #[error("reconcile failed: {0}")]
    Reconcile(String),
    #[error("{0}")]
    Batch(String),
}

impl From<InvocationError> for Diagnostic {
    fn from(err: InvocationError) -> Diagnostic {
        let error_type = match &err {
            InvocationError::Unreplicated(Unreplicated::UnknownShape(_)) => {
                "S3fan.UnrecognisedEvent"
            }
            InvocationError::Unreplicated(Unreplicated::RecordsFailed { .. }) => {
                "S3fan.ReplicationFailed"
            }
            InvocationError::Misconfigured(_) => "S3fan.Misconfigured",
            InvocationError::Reconcile(_) => "S3fan.ReconcileFailed",
            InvocationError::Batch(_) => "S3fan.UnrecognisedEvent",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: err.to_string(),
        }
    }
}

/// Time kept back from the invocation's deadline to abort a multipart upload
/// and report the failure before Lambda stops the process.
const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// How long copies may take: until the deadline (epoch milliseconds, as the
/// Runtime API gives it), less the margin.
fn copy_budget(deadline_ms: u64, now_ms: u64) -> Duration {
    Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(DEADLINE_MARGIN)
}

/// JSON lines on stdout, which Lambda sends to CloudWatch Logs, at the
/// level RUST_LOG asks (default info).
///
/// Whatever RUST_LOG says, the SDK's TRACE lines are dropped: they print each
/// signed request, its `x-amz-security-token` header (the function's session
/// token) included, into logs that many more people can read than can
/// assume the role. s3fan's own TRACE lines stay.
fn init_json_logs() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let no_credentials = tracing_subscriber::filter::filter_fn(crate::aws::keeps_credentials_out);
    let lines = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_writer(std::io::stdout)
        .with_filter(filter)
        .with_filter(no_credentials);
    tracing_subscriber::registry().with(lines).init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_get_the_time_left_less_the_margin() {
        assert_eq!(
            copy_budget(1_000_300_000, 1_000_000_000),
            Duration::from_secs(297)
        );
        assert_eq!(
            copy_budget(1_000_002_000, 1_000_000_000),
            Duration::ZERO,
            "less than the margin left"
        );
        assert_eq!(copy_budget(5, 10), Duration::ZERO, "already past");
    }
}
