//! `s3fan destroy`: what deploy made for one source, and nothing else.

use futures::future::join_all;

use super::converge::{found_destinations, plan_removal};
use super::engine::{Approve, Plan, Step};
use super::report::Report;
use super::{alarm, alarm_topic, batch_role, notification, queue, subscription, topic, uploads};
use crate::fanout::DeployError;
use crate::fanout::inventory;
use crate::fanout::spec::Spec;
use crate::fanout::{Context, Session};
use crate::package::Code;

/// `s3fan destroy`: everything deploy made for the source (or only the named
/// destinations), and nothing else. Destinations are found through their
/// functions and through their roles' tags, so a role whose function is
/// already gone (an interrupted destroy or deploy) is removed too.
pub async fn destroy(
    mut spec: Spec,
    code: Option<Code>,
    dry_run: bool,
    approve: Approve<'_>,
) -> Result<Report, DeployError> {
    let session = Session::connect(&spec).await?;
    // The destinations named only choose what goes: nothing is copied, and
    // a bucket already deleted needs no region.
    let named = std::mem::take(&mut spec.destinations);
    let edges = inventory::list(&session).await?;
    // Where each function writes, for the aborts of uploads it left open.
    let regions = inventory::deployed_regions(
        &inventory::of_source(&edges, &spec.source),
        &session.scope.region,
    );
    let ctx = Context::new(session, spec, regions, code)?;
    let deployed = found_destinations(&ctx, &edges).await?;
    let subscriptions = subscription::observe_all(&ctx).await?;
    let everything = named.is_empty();
    let (targets, remaining): (Vec<&inventory::Edge>, Vec<&inventory::Edge>) = deployed
        .iter()
        .partition(|e| everything || named.iter().any(|d| d.bucket == e.destination));
    let mut removals = join_all(
        targets
            .iter()
            .map(|edge| plan_removal(&ctx, edge, &subscriptions, "")),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    let mut stages = Vec::new();
    if everything {
        let notification_state = notification::observe(&ctx).await?;
        stages.push(vec![vec![Step::from(notification::plan_delete(
            &ctx,
            &notification_state,
        ))]]);
    }
    if !everything {
        // The queue stays: it admits exactly the roles that stay, and a
        // removed role may no longer send to it.
        if let queue_state @ queue::Observed::Present { .. } = queue::observe(&ctx).await? {
            let staying: Vec<String> = remaining.iter().map(|e| e.destination.clone()).collect();
            removals.push(vec![Step::from(queue::plan_policy(
                &ctx,
                &queue_state,
                &staying,
            ))]);
        }
    }
    // Uploads s3fan started can only be finished by their function: once
    // it is gone, they are aborted, not left to be billed.
    let aborts = join_all(targets.iter().map(|edge| abort_open_uploads(&ctx, edge))).await;
    stages.push(removals);
    stages.push(aborts);
    if everything {
        let topic_state = topic::observe(&ctx).await?;
        let queue_state = queue::observe(&ctx).await?;
        let queue_alarms = alarm::alarm_names(&ctx.spec.source, None);
        let queue_alarm_state = alarm::observe(&ctx, &queue_alarms).await?;
        let alarm_topic_state = alarm_topic::observe(&ctx).await?;
        let batch_role_state = batch_role::observe(&ctx).await?;
        let mut last = vec![
            vec![Step::from(topic::plan_delete(&ctx, &topic_state))],
            vec![Step::from(queue::plan_delete(&ctx, &queue_state))],
        ];
        last.extend(
            alarm::plan_delete(&queue_alarms, None, &queue_alarm_state)
                .into_iter()
                .map(|change| vec![Step::from(change)]),
        );
        last.extend(
            alarm_topic::plan_delete(&ctx, &alarm_topic_state).map(|c| vec![Step::from(c)]),
        );
        // Only a fan-out that was backfilled by Batch Operations has one.
        if batch_role_state {
            last.push(vec![Step::from(batch_role::plan_delete(&ctx, true))]);
        }
        stages.push(last);
    }
    let plan = Plan { stages };
    let changes = plan
        .run("destroy", &ctx, dry_run, approve, |_| true)
        .await?;
    Ok(Report::new("destroy", &ctx, dry_run, changes))
}

/// The aborts of the uploads `edge`'s function started and left open. A
/// destination that cannot be listed (already deleted, or denied) is said
/// so, and destroy goes on: status lists them while the function exists.
async fn abort_open_uploads(ctx: &Context, edge: &inventory::Edge) -> Vec<Step> {
    match uploads::observe(ctx, &edge.destination, edge.settings.key_prefix.as_deref()).await {
        Ok(open) => uploads::plan_abort(&edge.destination, &open)
            .into_iter()
            .map(Step::from)
            .collect(),
        Err(err) => vec![Step::from(uploads::not_listed(&edge.destination, &err.0))],
    }
}
