//! Lambda mode: the function that copies each new object to its destination.
//!
//! Parsing ([`event`]) and deciding ([`plan`]) are pure; [`runner`] runs the
//! steps through [`copy`], the thin layer of S3 calls around them. The S3 client is built once, at init, and
//! shared by every invocation of this execution environment.

pub(crate) mod copy;
pub mod encoding;
pub mod event;
#[cfg(test)]
mod hostile_input;
pub(crate) mod limits;
mod metrics;
mod multipart;
pub(crate) mod plan;
pub(crate) mod runner;
pub(crate) mod s3;

use std::process::ExitCode;
use std::time::Duration;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use limits::CopySettings;
use plan::{Target, plan};
use runner::{Runner, Summary, now_ms};
use s3::S3Clients;

use crate::settings::{FunctionSettings, destination_bucket};

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
            Ok(Replicator {
                target: Target::new(destination, &told),
                settings,
                metrics: told.metrics,
                s3: S3Clients::for_regions(&config, told.destination_region.clone()),
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
    let replicator = &replicator;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        match replicator {
            Ok(replicator) => replicator.handle(event).await,
            Err(reason) => Err(InvocationError::Misconfigured(reason.clone())),
        }
    }))
    .await
}

/// Why an invocation failed. Lambda retries failed asynchronous invocations,
/// so a failure must mean "trying again may help or a human must look".
#[derive(Debug, thiserror::Error)]
enum InvocationError {
    #[error("{0}")]
    UnknownShape(#[from] event::UnknownShape),
    #[error("{} of {total} records failed: {}", failures.len(), failures.join("; "))]
    RecordsFailed { failures: Vec<String>, total: usize },
    #[error("s3fan is misconfigured: {0}")]
    Misconfigured(String),
}

impl From<InvocationError> for Diagnostic {
    fn from(err: InvocationError) -> Diagnostic {
        let error_type = match &err {
            InvocationError::UnknownShape(_) => "S3fan.UnrecognisedEvent",
            InvocationError::RecordsFailed { .. } => "S3fan.ReplicationFailed",
            InvocationError::Misconfigured(_) => "S3fan.Misconfigured",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: err.to_string(),
        }
    }
}

struct Replicator {
    target: Target,
    settings: CopySettings,
    /// Also write each record as CloudWatch metrics (EMF).
    metrics: bool,
    s3: S3Clients,
}

impl Replicator {
    /// Handles every record of one invocation; a failed record fails the
    /// invocation only after all the others have been attempted.
    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Summary, InvocationError> {
        let request_id = event.context.request_id;
        let deadline = tokio::time::Instant::now() + copy_budget(event.context.deadline, now_ms());
        let notices = event::parse_invocation(&event.payload).inspect_err(|err| {
            tracing::error!(request_id = %request_id, outcome = "unrecognised", error = %err);
        })?;
        let runner = Runner {
            s3: &self.s3,
            settings: &self.settings,
            destination: &self.target.bucket,
            metrics: self.metrics,
        };
        let ran = runner
            .run(plan(notices, &self.target), deadline, &request_id)
            .await;
        if ran.failures.is_empty() {
            Ok(ran.summary)
        } else {
            Err(InvocationError::RecordsFailed {
                failures: ran.failures,
                total: ran.total,
            })
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
