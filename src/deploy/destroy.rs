//! `s3fan destroy`: what deploy made for one source, and nothing else.

use futures::future::join_all;

use super::context::{Code, Context};
use super::converge::{found_destinations, plan_removal};
use super::engine::{Plan, Step};
use super::error::DeployError;
use super::plan::Status;
use super::report::Report;
use super::spec::Spec;
use super::{inventory, notification, queue, subscription, topic};

/// `s3fan destroy`: everything deploy made for the source (or only the named
/// destinations), and nothing else. Destinations are found through their
/// functions and through their roles' tags, so a role whose function is
/// already gone (an interrupted destroy or deploy) is removed too.
pub async fn destroy(spec: Spec, code: Option<Code>, dry_run: bool) -> Result<Report, DeployError> {
    let ctx = Context::connect(spec, code).await?;
    let edges = inventory::list(&ctx).await?;
    let deployed = found_destinations(&ctx, &edges).await?;
    let subscriptions = subscription::observe_all(&ctx).await?;
    let everything = ctx.spec.destinations.is_empty();
    let (targets, remaining): (Vec<&inventory::Edge>, Vec<&inventory::Edge>) = deployed
        .iter()
        .partition(|e| everything || ctx.spec.destinations.contains(&e.destination));
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
    stages.push(removals);
    if everything {
        let topic_state = topic::observe(&ctx).await?;
        let queue_state = queue::observe(&ctx).await?;
        stages.push(vec![
            vec![Step::from(topic::plan_delete(&ctx, &topic_state))],
            vec![Step::from(queue::plan_delete(&ctx, &queue_state))],
        ]);
    }
    let plan = Plan { stages };
    let changes = if dry_run {
        plan.outcomes(Status::Planned)
    } else {
        plan.apply(&ctx).await
    };
    Ok(Report::new("destroy", &ctx, dry_run, changes))
}
