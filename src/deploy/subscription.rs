//! The topic's subscriptions: one `lambda` subscription per destination
//! function. Read once for the whole topic; the alarm topic's email
//! subscriptions are read the same way.

use super::plan::{Action, Change, Kind};
use crate::fanout::names::function_name;
use crate::fanout::{Context, DeployError, aws_failure, gone_is_fine, is_code};

/// A lambda subscription of the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub arn: String,
    pub endpoint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Nothing,
    Subscribe,
    Unsubscribe(Vec<String>),
}

/// Every lambda subscription of the topic (none if the topic is absent).
pub async fn observe_all(ctx: &Context) -> Result<Vec<Subscription>, DeployError> {
    Ok(of_topic(ctx, &ctx.topic_arn(), "lambda")
        .await?
        .unwrap_or_default())
}

/// The subscriptions of topic `arn` by `protocol` (`lambda`, `email`);
/// `None` when the topic does not exist.
pub async fn of_topic(
    ctx: &Context,
    arn: &str,
    protocol: &str,
) -> Result<Option<Vec<Subscription>>, DeployError> {
    let mut subscriptions = Vec::new();
    let mut pages = ctx
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(arn)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(err) if is_code(&err, &["NotFound", "NotFoundException"]) => return Ok(None),
            Err(err) => {
                return Err(aws_failure(
                    format!("cannot list the subscriptions of SNS topic {arn}"),
                    &err,
                ));
            }
        };
        for subscription in page.subscriptions() {
            if subscription.protocol() == Some(protocol) {
                subscriptions.push(Subscription {
                    arn: subscription
                        .subscription_arn()
                        .unwrap_or_default()
                        .to_owned(),
                    endpoint: subscription.endpoint().unwrap_or_default().to_owned(),
                });
            }
        }
    }
    Ok(Some(subscriptions))
}

fn of_function<'a>(
    ctx: &Context,
    function: &str,
    all: &'a [Subscription],
) -> Vec<&'a Subscription> {
    let arn = ctx.function_arn(function);
    all.iter().filter(|s| s.endpoint == arn).collect()
}

pub fn plan(ctx: &Context, destination: &str, all: &[Subscription]) -> Change<Op> {
    let function = function_name(destination);
    let existing = of_function(ctx, &function, all);
    let (action, op) = if existing.is_empty() {
        (Action::Create, Op::Subscribe)
    } else {
        (Action::Unchanged, Op::Nothing)
    };
    Change {
        kind: Kind::Subscription,
        name: function,
        destination: Some(destination.to_owned()),
        action,
        detail: String::new(),
        diff: Vec::new(),
        op,
    }
}

pub fn plan_delete(
    ctx: &Context,
    function: &str,
    destination: &str,
    all: &[Subscription],
) -> Change<Op> {
    let arns: Vec<String> = of_function(ctx, function, all)
        .iter()
        .map(|s| s.arn.clone())
        .collect();
    Change::removal(
        Kind::Subscription,
        function.to_owned(),
        Some(destination.to_owned()),
        !arns.is_empty(),
        Op::Unsubscribe(arns),
        Op::Nothing,
    )
}

pub async fn apply(ctx: &Context, function: &str, op: &Op) -> Result<(), DeployError> {
    match op {
        Op::Nothing => Ok(()),
        Op::Subscribe => ctx
            .sns
            .subscribe()
            .topic_arn(ctx.topic_arn())
            .protocol("lambda")
            .endpoint(ctx.function_arn(function))
            .send()
            .await
            .map(|_| ())
            .map_err(|err| {
                aws_failure(
                    format!("cannot subscribe Lambda function {function} to the topic"),
                    &err,
                )
            }),
        Op::Unsubscribe(arns) => {
            for arn in arns {
                let result = ctx.sns.unsubscribe().subscription_arn(arn).send().await;
                gone_is_fine(
                    result,
                    &["NotFound", "NotFoundException"],
                    format!("cannot remove subscription {arn}"),
                )?;
            }
            Ok(())
        }
    }
}
