//! `s3fan status`: what is deployed, its health as far as the failure
//! queue shows it, and what was changed outside s3fan since the last deploy.

use serde::Serialize;

use super::converge::{found_destinations, plan_deploy};
use super::health::{self, Health};
use super::plan::{self, Outcome, Status};
use super::uploads::{self, OpenUpload};
use super::{alarm, encryption, notification, queue, topic};
use crate::fanout::DeployError;
use crate::fanout::spec::Spec;
use crate::fanout::{Context, Session};
use crate::fanout::{inventory, names};
use crate::package::Code;
use crate::sync::batch_job::{self, JobStatus};

/// What `s3fan status` reports for one destination's function.
#[derive(Debug, Serialize)]
pub struct DestinationStatus {
    pub destination: String,
    /// Where copies go in the destination (`--dest DST:PREFIX`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    pub function: String,
    pub code_sha256: String,
    pub last_modified: String,
    /// Whether the deployed code is exactly this binary's package (unknown
    /// where this binary is not a Linux build).
    pub runs_this_binary: Option<bool>,
    /// How often it reconciles (`--reconcile-every`), when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconcile_every: Option<String>,
    /// The destination's alarms and their states; none without alarms.
    pub alarms: Vec<AlarmState>,
    /// What CloudWatch measured: the last hour, the last day, the last
    /// reconcile.
    pub health: Health,
    /// Multipart uploads open under the destination's key prefix; `None`
    /// where these credentials may not list them (another account's bucket).
    pub open_uploads: Option<Vec<OpenUpload>>,
}

/// An alarm and its state: `OK`, `ALARM` or `INSUFFICIENT_DATA`.
#[derive(Debug, Serialize)]
pub struct AlarmState {
    pub name: String,
    pub state: String,
}

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub source: String,
    pub region: String,
    pub account: String,
    pub topic: Option<String>,
    /// Failed events waiting in the failure queue; `None` without a queue.
    pub failed_events: Option<u64>,
    /// Of those, the ones a running `retry` holds (not listed by `failures`).
    pub failed_in_flight: u64,
    /// The age of the oldest failed event, as CloudWatch last saw it.
    pub oldest_failure_age_seconds: Option<f64>,
    /// The alarm on the failure queue, when there are alarms.
    pub failure_queue_alarm: Option<AlarmState>,
    pub notification: bool,
    /// Roles of this fan-out whose function is gone (an interrupted deploy
    /// or destroy); `destroy` removes them, as does the next `deploy`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub orphaned_roles: Vec<String>,
    pub destinations: Vec<DestinationStatus>,
    /// The jobs of `backfill --via-batch-operations`, newest first.
    pub batch_jobs: Vec<JobStatus>,
    /// Why they could not be listed (say, no s3:ListJobs): status goes on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_jobs_unlisted: Option<String>,
    /// Changes `deploy` with the deployed destinations would make.
    pub drift: Vec<Outcome>,
}

impl StatusReport {
    /// Whether anything of the fan-out exists at all.
    pub fn deployed(&self) -> bool {
        self.topic.is_some()
            || self.failed_events.is_some()
            || self.notification
            || !self.orphaned_roles.is_empty()
            || !self.destinations.is_empty()
    }
}

impl crate::report::Report for StatusReport {
    fn render_text(&self) -> String {
        let mut out = format!(
            "s3fan status: s3://{} (account {}, {})\n",
            self.source, self.account, self.region
        );
        out.push_str(&format!(
            "  topic         {}\n",
            self.topic.as_deref().unwrap_or("absent")
        ));
        out.push_str(&format!(
            "  failures      {}\n",
            match self.failed_events {
                None => "no failure queue".to_owned(),
                Some(0) => "none waiting".to_owned(),
                Some(n) if self.failed_in_flight > 0 => format!(
                    "{n} failed events waiting: `s3fan failures` lists them, {}",
                    queue::in_flight_note(self.failed_in_flight)
                ),
                Some(n) => format!("{n} failed events waiting: `s3fan failures` lists them"),
            }
        ));
        if let Some(age) = self.oldest_failure_age_seconds {
            out.push_str(&format!(
                "                the oldest is {} old\n",
                crate::report::duration_text(age)
            ));
        }
        if let Some(alarm) = &self.failure_queue_alarm {
            out.push_str(&format!("  alarm         {} {}\n", alarm.state, alarm.name));
        }
        out.push_str(&format!(
            "  notification  {}\n",
            if self.notification {
                "s3:ObjectCreated:* -> topic"
            } else {
                "absent"
            }
        ));
        if !self.deployed() {
            // Not "in sync": there is nothing to be in sync.
            out.push_str(&format!(
                "nothing is deployed for s3://{0}: `s3fan deploy --source {0} --dest DST` makes \
                 the fan-out\n",
                self.source
            ));
            return out;
        }
        for role in &self.orphaned_roles {
            out.push_str(&format!(
                "  left behind   IAM role {role}, whose function is gone (an interrupted deploy or \
                 destroy): `s3fan destroy` or the next `s3fan deploy` removes it\n"
            ));
        }
        if self.destinations.is_empty() {
            out.push_str(
                "  no destinations deployed: what is left is half a fan-out; `s3fan deploy` \
                 finishes it, `s3fan destroy` removes it\n",
            );
        }
        for d in &self.destinations {
            out.push_str(&format!(
                "  destination   s3://{}/{} via function {} (code {}, {}; last modified {})\n",
                d.destination,
                d.key_prefix.as_deref().unwrap_or(""),
                d.function,
                d.code_sha256,
                match d.runs_this_binary {
                    Some(true) => "this binary",
                    Some(false) => "another build",
                    None => "build unknown",
                },
                d.last_modified
            ));
            if let Some(every) = &d.reconcile_every {
                out.push_str(&format!(
                    "                reconciled with the source every {every} \
                     (EventBridge rule {})\n",
                    crate::fanout::names::schedule_name(&d.destination)
                ));
            }
            out.push_str(&format!(
                "                last hour: {}\n                last day:  {}\n",
                d.health.last_hour.render(),
                d.health.last_day.render()
            ));
            match &d.health.last_reconcile {
                Some(r) => out.push_str(&format!(
                    "                last reconcile: the hour from {}: {} examined, {} out of \
                     sync, {} repaired\n",
                    r.hour, r.examined, r.out_of_sync, r.repaired
                )),
                None if d.reconcile_every.is_some() => {
                    out.push_str("                last reconcile: no data yet\n")
                }
                None => {}
            }
            if let Some(line) = d.open_uploads.as_deref().and_then(uploads::render) {
                out.push_str(&format!("                {line}\n"));
            }
            if !d.alarms.is_empty() {
                out.push_str(&format!(
                    "                alarms: {}\n",
                    alarm_summary(&d.alarms)
                ));
            }
        }
        for (i, job) in self.batch_jobs.iter().enumerate() {
            let label = if i == 0 { "batch job" } else { "" };
            out.push_str(&format!("  {label:<13} {}\n", job.render()));
        }
        if let Some(why) = &self.batch_jobs_unlisted {
            out.push_str(&format!("  batch jobs    not listed: {why}\n"));
        }
        if self.destinations.is_empty() {
            // Without destinations there is no deploy to compare with.
        } else if self.drift.is_empty() {
            out.push_str("in sync: deploy would change nothing\n");
        } else {
            out.push_str("drift (what deploy would change):\n");
            for change in &self.drift {
                out.push_str(&plan::render(change));
                out.push('\n');
            }
        }
        out
    }

    fn verdict(&self) -> crate::report::Verdict {
        crate::report::Verdict::of(false, !self.drift.is_empty())
    }
}

/// `all 5 OK`, or each alarm that is not OK by name and state.
fn alarm_summary(alarms: &[AlarmState]) -> String {
    let not_ok: Vec<String> = alarms
        .iter()
        .filter(|a| a.state != "OK")
        .map(|a| format!("{} {}", a.state, a.name))
        .collect();
    if not_ok.is_empty() {
        format!("all {} OK", alarms.len())
    } else {
        format!(
            "{} (the others OK); the README's \"Operating s3fan\" says what each means",
            not_ok.join(", ")
        )
    }
}

/// `s3fan status`: what is deployed, and how it differs from what the last
/// deploy made (the same planning code as deploy): every setting is read
/// back from the functions, where deploy recorded it, so only changes made
/// outside s3fan are drift.
pub async fn status(spec: Spec, code: Option<Code>) -> Result<StatusReport, DeployError> {
    let session = Session::connect(&spec).await?;
    let edges = inventory::list(&session).await?;
    let ours = inventory::of_source(&edges, &spec.source);
    // What the last deploy made is what the functions record: the settings
    // it gave each, and where each writes.
    let regions = inventory::deployed_regions(&ours, &session.scope.region);
    let ctx = Context::new(
        session,
        inventory::deployed_spec(spec, &ours),
        regions,
        code,
    )?;
    let topic = match topic::observe(&ctx).await? {
        topic::Observed::Absent => None,
        topic::Observed::Present { .. } => Some(ctx.topic_arn()),
    };
    let (failed_events, failed_in_flight) = match queue::observe(&ctx).await? {
        queue::Observed::Absent => (None, 0),
        queue::Observed::Present {
            messages,
            in_flight,
            ..
        } => (Some(messages), in_flight),
    };
    let notification_state = notification::observe(&ctx).await?;
    let notification = notification_state
        .topic_configurations()
        .iter()
        .any(|e| e.id() == Some(names::NOTIFICATION_ID));
    let found = found_destinations(&ctx, &edges).await?;
    let buckets: Vec<String> = ours.iter().map(|e| e.destination.clone()).collect();
    let longest_schedule = ctx
        .spec
        .reconcile_every
        .map_or(0, |e| u64::from(e.hours) * 3600);
    let healths = health::observe(
        &ctx,
        &buckets,
        std::time::Duration::from_secs(longest_schedule),
    )
    .await?;
    let oldest_failure_age_seconds = match failed_events {
        Some(n) if n > 0 => health::oldest_failure_age(&ctx).await?,
        _ => None,
    };
    let mut names = alarm::alarm_names(&ctx.spec.source, None);
    for bucket in &buckets {
        names.extend(alarm::alarm_names(&ctx.spec.source, Some(bucket)));
    }
    let alarms = alarm::observe(&ctx, &names).await?;
    let mut open_uploads = Vec::new();
    for edge in &ours {
        // Not knowing is no reason to fail status: it says so instead.
        let open = uploads::observe(&ctx, &edge.destination, edge.settings.key_prefix.as_deref())
            .await
            .ok();
        open_uploads.push(open);
    }
    let state_of = |name: &String| {
        alarms.get(name).map(|found| AlarmState {
            name: name.clone(),
            state: found.state.clone(),
        })
    };
    // Roles no function leads to: left by an interrupted deploy or destroy.
    let orphaned_roles: Vec<String> = found
        .iter()
        .filter(|e| !ours.iter().any(|o| o.destination == e.destination))
        .map(|e| names::role_name(&e.destination))
        .collect();
    let drift = if ctx.spec.destinations.is_empty() {
        Vec::new()
    } else {
        let keys = encryption::observe_keys(&ctx).await?;
        plan_deploy(&ctx, &keys, &found)
            .await?
            .outcomes(Status::Planned)
            .into_iter()
            .filter(|o| o.action.changes_something())
            .collect()
    };
    let (batch_jobs, batch_jobs_unlisted) = match batch_job::list(
        &crate::aws::s3control_client(&ctx.sdk),
        &ctx.scope.account,
        &ctx.spec.source,
    )
    .await
    {
        Ok(jobs) => (jobs, None),
        Err(err) => (Vec::new(), Some(err.0)),
    };
    Ok(StatusReport {
        batch_jobs,
        batch_jobs_unlisted,
        source: ctx.spec.source.clone(),
        region: ctx.scope.region.clone(),
        account: ctx.scope.account.clone(),
        topic,
        failed_events,
        failed_in_flight,
        oldest_failure_age_seconds,
        failure_queue_alarm: alarm::alarm_names(&ctx.spec.source, None)
            .first()
            .and_then(state_of),
        notification,
        orphaned_roles,
        destinations: ours
            .iter()
            .zip(healths)
            .zip(open_uploads)
            .map(|((e, health), open_uploads)| DestinationStatus {
                destination: e.destination.clone(),
                key_prefix: e.settings.key_prefix.clone(),
                function: e.function.clone(),
                code_sha256: e.code_sha256.clone(),
                last_modified: e.last_modified.clone(),
                runs_this_binary: ctx.code.as_ref().map(|code| e.code_sha256 == code.sha256),
                reconcile_every: e.settings.reconcile_every.clone(),
                alarms: alarm::alarm_names(&ctx.spec.source, Some(&e.destination))
                    .iter()
                    .filter_map(state_of)
                    .collect(),
                health,
                open_uploads,
            })
            .collect(),
        drift,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_read_as_all_ok_or_name_the_ones_that_are_not() {
        let state = |name: &str, state: &str| AlarmState {
            name: name.into(),
            state: state.into(),
        };
        assert_eq!(
            alarm_summary(&[state("d-lag", "OK"), state("d-throttled", "OK")]),
            "all 2 OK"
        );
        let firing = alarm_summary(&[state("d-lag", "ALARM"), state("d-throttled", "OK")]);
        assert!(
            firing.starts_with("ALARM d-lag (the others OK)"),
            "{firing}"
        );
    }
}
