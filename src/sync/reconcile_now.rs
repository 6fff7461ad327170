//! `s3fan reconcile`: starts a reconcile run now, in AWS, in every deployed
//! destination's function, as its schedule would: one asynchronous
//! invocation each with `{"s3fan": "reconcile"}`. The runs report in the
//! functions' logs and metrics, and a run that fails lands in the failure
//! queue.

use serde::Serialize;

use super::reconcile::ReconcileEvent;
use crate::aws::invoke_async;
use crate::fanout::spec::Spec;
use crate::fanout::{DeployError, Session, aws_failure, inventory};

#[derive(Debug, Serialize)]
pub struct StartedReport {
    pub ok: bool,
    pub source: String,
    pub destinations: Vec<Started>,
}

#[derive(Debug, Serialize)]
pub struct Started {
    pub destination: String,
    pub function: String,
    /// Invoked: the run has begun.
    pub started: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Invokes every deployed function of `spec.source` (or those of the
/// destinations it names) with a new run.
pub async fn reconcile_now(spec: Spec) -> Result<StartedReport, DeployError> {
    let session = Session::connect(&spec).await?;
    let edges = inventory::list(&session).await?;
    let ours: Vec<_> = inventory::of_source(&edges, &spec.source)
        .into_iter()
        .filter(|e| spec.destinations.is_empty() || spec.names(&e.destination))
        .collect();
    if ours.is_empty() {
        return Err(DeployError(format!(
            "no destinations are deployed for source bucket {}: run s3fan deploy first",
            spec.source
        )));
    }
    let payload = serde_json::to_vec(&ReconcileEvent::new_run())
        .map_err(|err| DeployError(format!("cannot write the reconcile event: {err}")))?;
    let mut destinations = Vec::new();
    for edge in ours {
        let error = if edge.settings.reconcile_every.is_none() {
            Some(format!(
                "function {} was deployed without --reconcile-every, so its role may not \
                 list {} or go on with a run: deploy again with --reconcile-every DURATION",
                edge.function, edge.destination
            ))
        } else {
            invoke_async(&session.lambda, &edge.function, payload.clone())
                .await
                .err()
                .map(|err| {
                    aws_failure(
                        format!("cannot invoke Lambda function {}", edge.function),
                        &err,
                    )
                    .0
                })
        };
        destinations.push(Started {
            destination: edge.destination.clone(),
            function: edge.function.clone(),
            started: error.is_none(),
            error,
        });
    }
    Ok(StartedReport {
        ok: destinations.iter().all(|d| d.started),
        source: spec.source,
        destinations,
    })
}

impl crate::report::Report for StartedReport {
    fn render_text(&self) -> String {
        let mut out = format!("s3fan reconcile: s3://{}\n", self.source);
        for d in &self.destinations {
            match &d.error {
                None => out.push_str(&format!(
                    "  s3://{}/  started in {} (its log and metrics report the run)\n",
                    d.destination, d.function
                )),
                Some(error) => out.push_str(&format!(
                    "  s3://{}/  not started: {error}\n",
                    d.destination
                )),
            }
        }
        out
    }

    fn verdict(&self) -> crate::report::Verdict {
        crate::report::Verdict::of(!self.ok, false)
    }
}
