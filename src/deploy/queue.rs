//! The SQS queue `SRC-fanout-failures`: each function's on-failure
//! destination for asynchronous invocations, so an event that failed every
//! retry is kept (for `s3fan failures` and `s3fan retry`) instead of lost.
//!
//! Its policy names the function roles, and IAM refuses a policy naming a
//! role that does not exist yet: the queue is created in the first stage,
//! and its policy is set after the destinations' roles.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use super::plan::{Action, Change, Kind};
use super::policy::{decode_iam_document, queue_policy};
use crate::fanout::names::{failure_queue_name, role_name};
use crate::fanout::{Context, DeployError, Session, aws_failure, is_code};

#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    Absent,
    Present {
        url: String,
        policy: Option<Value>,
        /// Failed events waiting (visible or in flight).
        messages: u64,
        /// Of those, the ones received and not yet back (in flight).
        in_flight: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Nothing,
    Create,
    /// The policy document to set; empty removes the policy (no role is
    /// left to admit).
    SetPolicy(String),
    Delete,
}

/// What a count of failed events leaves out: those someone is retrying now.
pub fn in_flight_note(in_flight: u64) -> String {
    format!(
        "and {in_flight} in flight: received by a `s3fan retry` that is still running (or \
         ended without releasing them); they are listed again within 15 minutes"
    )
}

/// How long a failed event is kept: SQS's maximum, 14 days.
const RETENTION_SECONDS: &str = "1209600";

pub async fn observe(ctx: &Context) -> Result<Observed, DeployError> {
    let name = failure_queue_name(&ctx.spec.source);
    let url = match ctx.sqs.get_queue_url().queue_name(&name).send().await {
        Ok(out) => out.queue_url.unwrap_or_default(),
        Err(err)
            if is_code(
                &err,
                &[
                    "AWS.SimpleQueueService.NonExistentQueue",
                    "QueueDoesNotExist",
                ],
            ) =>
        {
            return Ok(Observed::Absent);
        }
        Err(err) => return Err(aws_failure(format!("cannot find SQS queue {name}"), &err)),
    };
    read(ctx, &name, url).await
}

/// The queue `name` at `url`: its policy and how many failed events wait.
pub(crate) async fn read(
    session: &Session,
    name: &str,
    url: String,
) -> Result<Observed, DeployError> {
    let attributes = session
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::Policy)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|err| aws_failure(format!("cannot read SQS queue {name}"), &err))?;
    let attributes = attributes.attributes();
    let get = |name: QueueAttributeName| attributes.and_then(|a| a.get(&name));
    let count = |name| get(name).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    Ok(Observed::Present {
        policy: get(QueueAttributeName::Policy).and_then(|p| decode_iam_document(p)),
        messages: count(QueueAttributeName::ApproximateNumberOfMessages)
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        url,
    })
}

/// The policy that admits exactly the roles of `destinations`; none when
/// there are none (a policy must name a principal).
pub fn desired_policy(ctx: &Context, destinations: &[String]) -> Option<Value> {
    let roles: Vec<String> = destinations
        .iter()
        .map(|destination| ctx.scope.role_arn(&role_name(destination)))
        .collect();
    (!roles.is_empty()).then(|| queue_policy(&ctx.failure_queue_arn(), &roles))
}

fn change(ctx: &Context, action: Action, detail: &str, op: Op) -> Change<Op> {
    Change {
        kind: Kind::Queue,
        name: failure_queue_name(&ctx.spec.source),
        destination: None,
        action,
        detail: detail.to_owned(),
        diff: Vec::new(),
        op,
    }
}

/// First stage: the queue exists before any function names it.
pub fn plan(ctx: &Context, observed: &Observed) -> Change<Op> {
    match observed {
        Observed::Absent => change(ctx, Action::Create, "", Op::Create),
        Observed::Present { .. } => change(ctx, Action::Unchanged, "", Op::Nothing),
    }
}

/// After the roles: the policy names exactly the roles of `destinations`,
/// the fan-out's destinations once the plan is applied (deploy's list, or
/// what a `destroy --dest` leaves).
pub fn plan_policy(ctx: &Context, observed: &Observed, destinations: &[String]) -> Change<Op> {
    let wanted = desired_policy(ctx, destinations);
    let set = || Op::SetPolicy(wanted.as_ref().map(Value::to_string).unwrap_or_default());
    let current = match observed {
        Observed::Present { policy, .. } => policy.as_ref(),
        Observed::Absent => None,
    };
    let (action, op) = match (current, &wanted) {
        (current, wanted) if current == wanted.as_ref() => (Action::Unchanged, Op::Nothing),
        (Some(_), Some(_)) => (Action::Update, set()),
        (Some(_), None) => (Action::Delete, set()),
        (None, _) => (Action::Create, set()),
    };
    let diff = if action == Action::Update {
        super::diff::statements("policy", current, wanted.as_ref())
    } else {
        Vec::new()
    };
    Change {
        kind: Kind::QueuePolicy,
        name: failure_queue_name(&ctx.spec.source),
        destination: None,
        action,
        detail: String::new(),
        diff,
        op,
    }
}

/// `destroy` removes the queue only when no failed event is left in it:
/// deleting it would lose them.
pub fn plan_delete(ctx: &Context, observed: &Observed) -> Change<Op> {
    match observed {
        Observed::Present { messages, .. } if *messages > 0 => change(
            ctx,
            Action::Unchanged,
            &format!(
                "kept: {messages} failed events in it; `s3fan retry` them, or delete the queue \
                 yourself to drop them"
            ),
            Op::Nothing,
        ),
        Observed::Present { .. } => change(ctx, Action::Delete, "", Op::Delete),
        Observed::Absent => change(ctx, Action::Unchanged, "already gone", Op::Nothing),
    }
}

pub async fn apply(ctx: &Context, op: &Op) -> Result<(), DeployError> {
    let name = failure_queue_name(&ctx.spec.source);
    match op {
        Op::Nothing => Ok(()),
        Op::Create => {
            let mut create = ctx.sqs.create_queue().queue_name(&name).attributes(
                QueueAttributeName::MessageRetentionPeriod,
                RETENTION_SECONDS,
            );
            for (key, value) in ctx.tags(None) {
                create = create.tags(key, value);
            }
            create
                .send()
                .await
                .map(|_| ())
                .map_err(|err| aws_failure(format!("cannot create SQS queue {name}"), &err))
        }
        Op::SetPolicy(policy) => set_policy(ctx, &name, policy).await,
        Op::Delete => {
            let url = queue_url(ctx, &ctx.spec.source, &name).await?;
            ctx.sqs
                .delete_queue()
                .queue_url(url)
                .send()
                .await
                .map(|_| ())
                .map_err(|err| aws_failure(format!("cannot delete SQS queue {name}"), &err))
        }
    }
}

/// The URL of the failure queue `name`; `deploy` makes it, everything else
/// only finds it.
pub(crate) async fn queue_url(
    session: &Session,
    source: &str,
    name: &str,
) -> Result<String, DeployError> {
    let out = session
        .sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|err| {
            aws_failure(
                format!(
                    "cannot find the failure queue {name} (s3fan deploy makes it; was the \
                     fan-out of {source} deployed?)"
                ),
                &err,
            )
        })?;
    out.queue_url.ok_or_else(|| {
        DeployError(format!(
            "SQS answered GetQueueUrl for {name} without a QueueUrl; try again"
        ))
    })
}

/// A role made moments ago may not yet be accepted as a principal: retried
/// for up to a minute, as function creation is.
async fn set_policy(ctx: &Context, name: &str, policy: &str) -> Result<(), DeployError> {
    let url = queue_url(ctx, &ctx.spec.source, name).await?;
    let mut wait = Duration::from_secs(2);
    let started = std::time::Instant::now();
    loop {
        let result = ctx
            .sqs
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(QueueAttributeName::Policy, policy)
            .send()
            .await;
        match result {
            Ok(_) => return Ok(()),
            Err(err)
                if is_code(&err, &["InvalidAttributeValue"])
                    && started.elapsed() < Duration::from_secs(60) =>
            {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(err) => {
                return Err(aws_failure(
                    format!("cannot set the policy of SQS queue {name}"),
                    &err,
                ));
            }
        }
    }
}
