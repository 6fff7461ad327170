//! The step engine: a plan is stages of groups of steps, each step one
//! change of one resource; the same plan is printed by a dry run, rendered
//! as JSON, and applied.

use futures::future::join_all;

use super::context::Context;
use super::error::DeployError;
use super::plan::{Action, Change, Outcome, Status};
use super::{
    dest_policy, function, invoke_config, notification, permission, queue, role, subscription,
    topic,
};

/// One change of any resource, with what its apply needs.
pub enum Step {
    Topic(Change<topic::Op>),
    Queue(Change<queue::Op>),
    Notification(Change<notification::Op>),
    Role(Change<role::Op>),
    Function(Change<function::Op>),
    InvokeConfig(Change<invoke_config::Op>),
    Permission {
        function: String,
        change: Change<permission::Op>,
    },
    Subscription(Change<subscription::Op>),
    DestinationPolicy(Change<dest_policy::Op>),
}

impl Step {
    pub(super) fn outcome(&self, status: Status) -> Outcome {
        match self {
            Step::Topic(c) => Outcome::of(c, status),
            Step::Queue(c) => Outcome::of(c, status),
            Step::Notification(c) => Outcome::of(c, status),
            Step::Role(c) => Outcome::of(c, status),
            Step::Function(c) => Outcome::of(c, status),
            Step::InvokeConfig(c) => Outcome::of(c, status),
            Step::Permission { change, .. } => Outcome::of(change, status),
            Step::Subscription(c) => Outcome::of(c, status),
            Step::DestinationPolicy(c) => Outcome::of(c, status),
        }
    }

    pub(super) fn action(&self) -> Action {
        self.outcome(Status::Planned).action
    }

    pub(super) async fn apply(&self, ctx: &Context) -> Result<(), DeployError> {
        if !self.action().changes_something() {
            return Ok(());
        }
        let destination = |c: &Option<String>| c.clone().unwrap_or_default();
        match self {
            Step::Topic(c) => topic::apply(ctx, c.op).await,
            Step::Queue(c) => queue::apply(ctx, &c.op).await,
            Step::InvokeConfig(c) => invoke_config::apply(ctx, &c.name, c.op).await,
            Step::Notification(c) => notification::apply(ctx, &c.op).await,
            Step::Role(c) => role::apply(ctx, &destination(&c.destination), c.op).await,
            Step::Function(c) => {
                function::apply(ctx, &c.name, &destination(&c.destination), c.op).await
            }
            Step::Permission { function, change } => {
                permission::apply(ctx, function, change.op).await
            }
            Step::Subscription(c) => subscription::apply(ctx, &c.name, &c.op).await,
            Step::DestinationPolicy(c) => {
                dest_policy::apply(ctx, &destination(&c.destination), &c.op).await
            }
        }
    }
}

/// Stages run one after another; the groups of a stage run concurrently (one
/// per destination); the steps of a group run in order. A failure stops its
/// group and every later stage: a re-run picks up from what exists.
pub struct Plan {
    pub stages: Vec<Vec<Vec<Step>>>,
}

impl Plan {
    pub(super) fn outcomes(&self, status: Status) -> Vec<Outcome> {
        self.steps()
            .map(|step| step.outcome(status.clone()))
            .collect()
    }

    pub(super) fn steps(&self) -> impl Iterator<Item = &Step> {
        self.stages.iter().flatten().flatten()
    }

    pub(super) async fn apply(&self, ctx: &Context) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let mut failed = false;
        for stage in &self.stages {
            if failed {
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
                    if stopped {
                        results.push(step.outcome(Status::NotAttempted));
                        continue;
                    }
                    match step.apply(ctx).await {
                        Ok(()) => results.push(step.outcome(Status::Done)),
                        Err(err) => {
                            stopped = true;
                            results.push(step.outcome(Status::Failed(err.0)));
                        }
                    }
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
