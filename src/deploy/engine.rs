//! The step engine: a plan is stages of groups of steps, each step one
//! change of one resource; the same plan is printed by a dry run, rendered
//! as JSON, and applied.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use futures::future::join_all;

use super::plan::{self, Action, Change, Outcome, Status};
use super::{
    alarm, alarm_topic, batch_role, dest_policy, function, invoke_config, notification, permission,
    queue, role, schedule, subscription, topic, uploads,
};
use crate::fanout::Context;
use crate::fanout::DeployError;
use crate::progress::Progress;

/// One change of any resource: what it is, which every kind shows and
/// counts alike, and what its apply needs, which is each kind's own.
pub struct Step {
    pub change: Change<()>,
    op: StepOp,
}

/// What applying a step takes, by kind of resource.
enum StepOp {
    Topic(topic::Op),
    Queue(queue::Op),
    Notification(notification::Op),
    Role(role::Op),
    BatchRole(batch_role::Op),
    Function(function::Op),
    InvokeConfig(invoke_config::Op),
    Permission {
        function: String,
        op: permission::Op,
    },
    Subscription(subscription::Op),
    DestinationPolicy(dest_policy::Op),
    Schedule(schedule::Op),
    AlarmTopic(alarm_topic::Op),
    Alarm(alarm::Op),
    Upload(uploads::Op),
}

/// A resource's planned change becomes a step: `Step::from(role::plan(..))`.
macro_rules! step_from {
    ($($module:ident => $variant:ident),* $(,)?) => {$(
        impl From<Change<$module::Op>> for Step {
            fn from(change: Change<$module::Op>) -> Step {
                let (change, op) = change.split();
                Step { change, op: StepOp::$variant(op) }
            }
        }
    )*};
}

step_from!(
    topic => Topic,
    queue => Queue,
    notification => Notification,
    role => Role,
    batch_role => BatchRole,
    function => Function,
    invoke_config => InvokeConfig,
    subscription => Subscription,
    dest_policy => DestinationPolicy,
    schedule => Schedule,
    alarm_topic => AlarmTopic,
    alarm => Alarm,
    uploads => Upload,
);

impl Step {
    /// The permission of `function` (its change is named by the statement).
    pub fn permission(function: &str, change: Change<permission::Op>) -> Step {
        let (change, op) = change.split();
        Step {
            change,
            op: StepOp::Permission {
                function: function.to_owned(),
                op,
            },
        }
    }

    pub(super) fn outcome(&self, status: Status) -> Outcome {
        Outcome::of(&self.change, status)
    }

    pub(super) fn action(&self) -> Action {
        self.change.action
    }

    /// The one place each kind of step is told apart.
    pub(super) async fn apply(&self, ctx: &Context) -> Result<(), DeployError> {
        if !self.action().changes_something() {
            return Ok(());
        }
        let name = &self.change.name;
        let destination = self.change.destination.clone().unwrap_or_default();
        match &self.op {
            StepOp::Topic(op) => topic::apply(ctx, *op).await,
            StepOp::Queue(op) => queue::apply(ctx, op).await,
            StepOp::InvokeConfig(op) => invoke_config::apply(ctx, name, *op).await,
            StepOp::Notification(op) => notification::apply(ctx, op).await,
            StepOp::Role(op) => role::apply(ctx, &destination, op.clone()).await,
            StepOp::BatchRole(op) => batch_role::apply(ctx, *op).await,
            StepOp::Function(op) => function::apply(ctx, name, &destination, *op).await,
            StepOp::Permission { function, op } => permission::apply(ctx, function, *op).await,
            StepOp::Subscription(op) => subscription::apply(ctx, name, op).await,
            StepOp::DestinationPolicy(op) => dest_policy::apply(ctx, &destination, op).await,
            StepOp::Schedule(op) => schedule::apply(ctx, &destination, op).await,
            StepOp::AlarmTopic(op) => alarm_topic::apply(ctx, op).await,
            StepOp::Alarm(op) => alarm::apply(ctx, name, &destination, op).await,
            StepOp::Upload(op) => uploads::apply(ctx, &destination, op).await,
        }
    }
}

/// Stages run one after another; the groups of a stage run concurrently (one
/// per destination); the steps of a group run in order. A failure stops its
/// group and every later stage: a re-run picks up from what exists.
pub struct Plan {
    pub stages: Vec<Vec<Vec<Step>>>,
}

/// Asked before a plan that removes something is applied, with what it
/// would remove: `Ok` goes ahead, `Err` says why not, and nothing changes.
/// The command line asks on a terminal, or takes `--yes`.
pub type Approve<'a> = &'a (dyn Fn(&[Outcome]) -> Result<(), String> + Sync);

impl Plan {
    /// Applies the plan, or with `dry_run` says what it would do; a plan
    /// with removals that `asks` picks is applied only once `approve`
    /// allows them.
    pub(super) async fn run(
        &self,
        command: &str,
        ctx: &Context,
        dry_run: bool,
        approve: Approve<'_>,
        asks: impl Fn(&Outcome) -> bool,
    ) -> Result<Vec<Outcome>, DeployError> {
        if dry_run {
            return Ok(self.outcomes(Status::Planned));
        }
        let removals: Vec<Outcome> = self
            .outcomes(Status::Planned)
            .into_iter()
            .filter(|outcome| outcome.action == Action::Delete && asks(outcome))
            .collect();
        if !removals.is_empty() {
            approve(&removals).map_err(DeployError)?;
        }
        let changing = self
            .steps()
            .filter(|s| s.action().changes_something())
            .count();
        if changing == 0 {
            return Ok(self.outcomes(Status::Done));
        }
        let progress = Applying {
            shown: Progress::new(format!("{command} s3://{}", ctx.spec.source)),
            changing,
            done: AtomicUsize::new(0),
        };
        let outcomes = self.apply(ctx, &progress).await;
        progress.shown.finish(format!(
            "{} of {changing} changes made",
            progress.done.load(Ordering::Relaxed)
        ));
        Ok(outcomes)
    }

    pub(super) fn outcomes(&self, status: Status) -> Vec<Outcome> {
        self.steps()
            .map(|step| step.outcome(status.clone()))
            .collect()
    }

    pub(super) fn steps(&self) -> impl Iterator<Item = &Step> {
        self.stages.iter().flatten().flatten()
    }

    /// Stops before a stage or a step once Ctrl-C asked (`stop`): the
    /// steps not started are reported as not attempted.
    async fn apply(&self, ctx: &Context, progress: &Applying) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let mut failed = false;
        for stage in &self.stages {
            if failed || crate::stop::asked() {
                outcomes.extend(
                    stage
                        .iter()
                        .flatten()
                        .map(|s| s.outcome(Status::NotAttempted)),
                );
                continue;
            }
            let groups = stage.iter().map(|group| async move {
                let mut results = Vec::new();
                let mut stopped = false;
                for step in group {
                    if stopped || crate::stop::asked() {
                        results.push(step.outcome(Status::NotAttempted));
                        continue;
                    }
                    let outcome = progress.applied(step, step.apply(ctx)).await;
                    stopped = matches!(outcome.status, Status::Failed(_));
                    results.push(outcome);
                }
                results
            });
            for results in join_all(groups).await {
                failed |= results
                    .iter()
                    .any(|o| matches!(o.status, Status::Failed(_)));
                outcomes.extend(results);
            }
        }
        outcomes
    }
}

/// The progress of an apply: the step under way on the live line, and a
/// line kept for each change made.
struct Applying {
    shown: Progress,
    /// How many steps change something; only they are shown.
    changing: usize,
    done: AtomicUsize,
}

impl Applying {
    async fn applied(
        &self,
        step: &Step,
        apply: impl Future<Output = Result<(), DeployError>>,
    ) -> Outcome {
        let changes = step.action().changes_something();
        if changes {
            self.shown.update(|| {
                format!(
                    "{} of {} changes made; {}",
                    self.done.load(Ordering::Relaxed),
                    self.changing,
                    plan::under_way(&step.change)
                )
            });
        }
        let started = Instant::now();
        let outcome = match apply.await {
            Ok(()) => step.outcome(Status::Done),
            Err(err) => step.outcome(Status::Failed(err.0)),
        };
        if changes {
            if outcome.status == Status::Done {
                self.done.fetch_add(1, Ordering::Relaxed);
            }
            self.shown
                .line(&plan::progress_line(&outcome, started.elapsed()));
        }
        outcome
    }
}
