//! `s3fan deploy`: observe, plan, apply, so that a re-run converges on what
//! the flags ask and a no-change re-run writes nothing.

use futures::future::join_all;

use super::engine::{Approve, Plan, Step};
use super::permission::FunctionPolicy;
use super::plan::Outcome;
use super::report::Report;
use super::{
    alarm, alarm_topic, dest_policy, encryption, function, invoke_config, notification, permission,
    queue, role, schedule, subscription, topic,
};
use crate::fanout::Context;
use crate::fanout::DeployError;
use crate::fanout::spec::Spec;
use crate::fanout::{inventory, names};
use crate::package::Code;

/// `s3fan deploy`.
pub async fn deploy(
    spec: Spec,
    code: Code,
    dry_run: bool,
    approve: Approve<'_>,
) -> Result<Report, DeployError> {
    let ctx = Context::connect(spec, Some(code)).await?;
    let keys = encryption::observe_keys(&ctx).await?;
    let edges = inventory::list(&ctx).await?;
    if let Some(cycle) = inventory::find_loop(&edges, &ctx.spec.source, &ctx.spec.buckets()) {
        return Err(DeployError(format!(
            "this would make a replication loop: {}; every copy would trigger another forever. \
             Remove the destination that leads back to {}",
            cycle.join(" -> "),
            ctx.spec.source
        )));
    }
    let found = found_destinations(&ctx, &edges).await?;
    let plan = plan_deploy(&ctx, &keys, &found).await?;
    // A destination no longer listed is asked about; what a flag no
    // longer given removes (an alarm, a schedule) is what the flags say.
    let dropped = |outcome: &Outcome| {
        (outcome.destination.as_deref()).is_some_and(|destination| !ctx.spec.names(destination))
    };
    let changes = plan.run("deploy", &ctx, dry_run, approve, dropped).await?;
    let mut report = Report::new("deploy", &ctx, dry_run, changes).with_owner_statements(&ctx);
    if dry_run {
        report.cost = Some(super::cost::estimate(&ctx).await);
    }
    Ok(report)
}

/// `found`: this fan-out's destinations as AWS has them
/// ([`found_destinations`]); those not listed any more are removed.
pub(super) async fn plan_deploy(
    ctx: &Context,
    keys: &encryption::Keys,
    found: &[inventory::Edge],
) -> Result<Plan, DeployError> {
    let topic_state = topic::observe(ctx).await?;
    let queue_state = queue::observe(ctx).await?;
    let notification_state = notification::observe(ctx).await?;
    let subscriptions = subscription::observe_all(ctx).await?;
    // Fails before any change if another configuration overlaps ours.
    let notification_change = notification::plan(ctx, &notification_state)?;
    alarm::check(ctx)?;
    let alarm_topic_state = alarm_topic::observe(ctx).await?;
    let queue_alarm_state =
        alarm::observe(ctx, &alarm::alarm_names(&ctx.spec.source, None)).await?;

    let wanted = join_all(
        ctx.spec
            .destinations
            .iter()
            .map(|d| &d.bucket)
            .map(|destination| {
                let subscriptions = &subscriptions;
                async move {
                    let function = names::function_name(destination);
                    let role = role::observe(ctx, destination).await?;
                    let deployed = function::observe(ctx, destination).await?;
                    let policy = FunctionPolicy::read(ctx, &function).await?;
                    let permission = permission::observe(&policy);
                    let invoke_config = invoke_config::observe(ctx, &function).await?;
                    let schedule = schedule::observe(ctx, destination, &policy).await?;
                    let names = alarm::alarm_names(&ctx.spec.source, Some(destination));
                    let alarms = alarm::observe(ctx, &names).await?;
                    let mut steps = vec![Step::from(role::plan(ctx, keys, destination, &role))];
                    // After the role: S3 refuses a policy naming a missing principal.
                    if ctx.spec.apply_dest_policy && ctx.other_account(destination).is_some() {
                        let policy = dest_policy::observe(ctx, destination).await?;
                        steps.push(Step::from(dest_policy::plan(ctx, destination, &policy)));
                    }
                    steps.extend([
                        Step::from(function::plan(ctx, destination, &deployed)?),
                        Step::from(invoke_config::plan(ctx, destination, &invoke_config)),
                        Step::permission(
                            &function,
                            permission::plan(ctx, destination, &permission),
                        ),
                        Step::from(subscription::plan(ctx, destination, subscriptions)),
                    ]);
                    // Last: it invokes the function, which must be ready.
                    steps.extend(schedule::plan(ctx, destination, &schedule).map(Step::from));
                    steps.extend(
                        alarm::plan(ctx, Some(destination), &alarms)
                            .into_iter()
                            .map(Step::from),
                    );
                    Ok::<_, DeployError>(steps)
                }
            }),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;

    let stale = found.iter().filter(|e| !ctx.spec.names(&e.destination));
    let mut removals =
        join_all(stale.map(|edge| plan_removal(ctx, edge, &subscriptions, "no longer listed")))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
    // The queue's policy names the roles, which exist from stage two on.
    removals.push(vec![Step::from(queue::plan_policy(
        ctx,
        &queue_state,
        &ctx.spec.buckets(),
    ))]);
    removals.push(
        alarm::plan(ctx, None, &queue_alarm_state)
            .into_iter()
            .map(Step::from)
            .collect(),
    );

    let mut first = vec![
        vec![Step::from(topic::plan(ctx, &topic_state))],
        vec![Step::from(queue::plan(ctx, &queue_state))],
    ];
    // Last: events flow only once every destination can take them.
    let mut last = vec![vec![Step::from(notification_change)]];
    // The alarm topic is there before any alarm names it, and goes only
    // once no alarm does.
    if let Some(change) = alarm_topic::plan(ctx, &alarm_topic_state) {
        let step = Step::from(change);
        if step.change.action == super::plan::Action::Delete {
            last.push(vec![step]);
        } else {
            first.push(vec![step]);
        }
    }
    Ok(Plan {
        stages: vec![first, wanted, removals, last],
    })
}

/// This fan-out's destinations as AWS has them: each function's, and each
/// role's whose function is gone or was never made (found by the role's
/// tags), so that nothing deploy made is out of reach of a removal.
pub(super) async fn found_destinations(
    ctx: &Context,
    edges: &[inventory::Edge],
) -> Result<Vec<inventory::Edge>, DeployError> {
    let mut found: Vec<inventory::Edge> = inventory::of_source(edges, &ctx.spec.source)
        .into_iter()
        .cloned()
        .collect();
    for destination in role::tagged_destinations(ctx).await? {
        if !found.iter().any(|e| e.destination == destination) {
            found.push(inventory::Edge::role_only(&ctx.spec.source, &destination));
        }
    }
    Ok(found)
}

/// Subscription, permission, function, role: in that order, so the topic
/// never delivers to a function that is gone.
pub(super) async fn plan_removal(
    ctx: &Context,
    edge: &inventory::Edge,
    subscriptions: &[subscription::Subscription],
    why: &str,
) -> Result<Vec<Step>, DeployError> {
    let function = &edge.function;
    let destination = &edge.destination;
    let deployed = function::observe_named(ctx, function).await?;
    let policy = FunctionPolicy::read(ctx, function).await?;
    let permission = permission::observe(&policy);
    let role = role::observe(ctx, destination).await?;
    let schedule = schedule::observe(ctx, destination, &policy).await?;
    let alarm_names = alarm::alarm_names(&ctx.spec.source, Some(destination));
    let alarms = alarm::observe(ctx, &alarm_names).await?;
    let mut steps = vec![
        Step::from(subscription::plan_delete(
            ctx,
            function,
            destination,
            subscriptions,
        )),
        Step::permission(
            function,
            permission::plan_delete(function, destination, &permission),
        ),
    ];
    steps.extend(schedule::plan_delete(destination, &schedule).map(Step::from));
    steps.extend(
        alarm::plan_delete(&alarm_names, Some(destination), &alarms)
            .into_iter()
            .map(Step::from),
    );
    steps.extend([
        Step::from(function::plan_delete(function, destination, &deployed)),
        Step::from(role::plan_delete(destination, &role)),
    ]);
    for step in &mut steps {
        set_detail(step, why);
    }
    Ok(steps)
}

fn set_detail(step: &mut Step, why: &str) {
    if step.change.detail.is_empty() {
        step.change.detail = why.to_owned();
    }
}
