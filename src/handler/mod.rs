//! The handler: what the function does with each S3 event, on its way to
//! one destination.
//!
//! Parsing ([`event`]) and deciding ([`plan`]) are pure; [`runner`] runs the
//! steps through [`copy`], the thin layer of S3 calls around them. The
//! Lambda runtime loop that feeds it is `crate::lambda`.

pub(crate) mod batch;
pub(crate) mod continuation;
pub(crate) mod copy;
pub mod encoding;
pub mod event;
#[cfg(test)]
mod hostile_input;
pub(crate) mod limits;
pub(crate) mod metrics;
pub(crate) mod multipart;
pub(crate) mod plan;
pub(crate) mod runner;
pub(crate) mod s3;

use serde_json::Value;

use continuation::{Continuation, Handoff};
use limits::CopySettings;
use plan::{Step, Target, plan};
use runner::{Runner, Summary};
use s3::S3Clients;

/// Why the records of an event were not all replicated. Lambda retries a
/// failed asynchronous invocation, so each means "trying again may help,
/// or a human must look".
#[derive(Debug, thiserror::Error)]
pub enum Unreplicated {
    #[error("{0}")]
    UnknownShape(#[from] event::UnknownShape),
    #[error("{} of {total} records failed: {}", failures.len(), failures.join("; "))]
    RecordsFailed { failures: Vec<String>, total: usize },
}

/// Copies the objects of S3 events to one destination.
pub struct Replicator {
    pub target: Target,
    pub settings: CopySettings,
    /// Also write each record as CloudWatch metrics (EMF).
    pub metrics: bool,
    pub s3: S3Clients,
    /// The fan-out's source, as the function was told: a continuation
    /// from any other bucket is refused.
    pub source: Option<String>,
}

impl Replicator {
    /// Handles every record of one invocation; a failed record fails the
    /// invocation only after all the others have been attempted.
    pub async fn handle(
        &self,
        payload: &Value,
        deadline: tokio::time::Instant,
        request_id: &str,
        handoff: Option<&Handoff>,
    ) -> Result<Summary, Unreplicated> {
        let steps = match Continuation::parse(payload) {
            // A multipart copy an earlier invocation handed on.
            Some(continuation) => {
                let step = continuation
                    .and_then(|c| c.request(&self.target, self.source.as_deref()))
                    .map_or_else(
                        |reason| Step::Refuse {
                            notice: "a copy continuation".to_owned(),
                            reason,
                        },
                        Step::Copy,
                    );
                vec![step]
            }
            None => {
                let notices = event::parse_invocation(payload).inspect_err(|err| {
                    tracing::error!(request_id = %request_id, outcome = "unrecognised", error = %err);
                })?;
                plan(notices, &self.target)
            }
        };
        let ran = self.run(steps, deadline, request_id, handoff).await;
        if ran.failures.is_empty() {
            Ok(ran.summary)
        } else {
            Err(Unreplicated::RecordsFailed {
                failures: ran.failures,
                total: ran.total,
            })
        }
    }

    /// Runs planned steps to this replicator's destination.
    pub async fn run(
        &self,
        steps: Vec<Step>,
        deadline: tokio::time::Instant,
        request_id: &str,
        handoff: Option<&Handoff>,
    ) -> runner::Ran {
        let runner = Runner {
            s3: &self.s3,
            settings: &self.settings,
            destination: &self.target.bucket,
            metrics: self.metrics,
            handoff,
        };
        runner.run(steps, deadline, request_id).await
    }
}
