//! `s3fan destroy`: what deploy made for one source, and nothing else.

use std::collections::BTreeMap;

use futures::future::join_all;

use super::converge::{found_destinations, plan_removal};
use super::engine::{Plan, Step};
use super::plan::Status;
use super::report::Report;
use super::{alarm, alarm_topic, notification, queue, subscription, topic};
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
) -> Result<Report, DeployError> {
    let session = Session::connect(&spec).await?;
    // The destinations named only choose what goes: nothing is copied, and
    // a bucket already deleted needs no region.
    let named = std::mem::take(&mut spec.destinations);
    let ctx = Context::new(session, spec, BTreeMap::new(), code)?;
    let edges = inventory::list(&ctx).await?;
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
    stages.push(removals);
    if everything {
        let topic_state = topic::observe(&ctx).await?;
        let queue_state = queue::observe(&ctx).await?;
        let queue_alarms = alarm::alarm_names(&ctx.spec.source, None);
        let queue_alarm_state = alarm::observe(&ctx, &queue_alarms).await?;
        let alarm_topic_state = alarm_topic::observe(&ctx).await?;
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
        stages.push(last);
    }
    let plan = Plan { stages };
    let changes = if dry_run {
        plan.outcomes(Status::Planned)
    } else {
        plan.apply(&ctx).await
    };
    Ok(Report::new("destroy", &ctx, dry_run, changes))
}
