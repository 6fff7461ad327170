//! The SNS topic `SRC-fanout`, and its policy: only S3, for the source bucket
//! and the caller's account, may publish.

use serde_json::Value;

use super::diff::statements;
use super::plan::{Action, Change, Kind};
use crate::deploy::policy::{decode_iam_document, topic_policy};
use crate::fanout::names::topic_name;
use crate::fanout::{Context, DeployError, aws_failure, is_code};

#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    Absent,
    Present { policy: Option<Value> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Nothing,
    Create,
    SetPolicy,
    Delete,
}

pub async fn observe(ctx: &Context) -> Result<Observed, DeployError> {
    let arn = ctx.topic_arn();
    match ctx.sns.get_topic_attributes().topic_arn(&arn).send().await {
        Ok(out) => Ok(Observed::Present {
            policy: out
                .attributes()
                .and_then(|a| a.get("Policy"))
                .and_then(|p| decode_iam_document(p)),
        }),
        Err(err) if is_code(&err, &["NotFound", "NotFoundException"]) => Ok(Observed::Absent),
        Err(err) => Err(aws_failure(format!("cannot read SNS topic {arn}"), &err)),
    }
}

pub fn desired_policy(ctx: &Context) -> Value {
    topic_policy(&ctx.scope, &ctx.topic_arn(), &ctx.spec.source)
}

pub fn plan(ctx: &Context, observed: &Observed) -> Change<Op> {
    let desired = desired_policy(ctx);
    let (action, diff, op) = match observed {
        Observed::Absent => (Action::Create, Vec::new(), Op::Create),
        Observed::Present { policy } if policy.as_ref() != Some(&desired) => (
            Action::Update,
            statements("policy", policy.as_ref(), Some(&desired)),
            Op::SetPolicy,
        ),
        Observed::Present { .. } => (Action::Unchanged, Vec::new(), Op::Nothing),
    };
    Change {
        kind: Kind::Topic,
        name: topic_name(&ctx.spec.source),
        destination: None,
        action,
        detail: String::new(),
        diff,
        op,
    }
}

pub fn plan_delete(ctx: &Context, observed: &Observed) -> Change<Op> {
    Change::removal(
        Kind::Topic,
        topic_name(&ctx.spec.source),
        None,
        matches!(observed, Observed::Present { .. }),
        Op::Delete,
        Op::Nothing,
    )
}

pub async fn apply(ctx: &Context, op: Op) -> Result<(), DeployError> {
    let name = topic_name(&ctx.spec.source);
    let policy = desired_policy(ctx).to_string();
    match op {
        Op::Nothing => Ok(()),
        Op::Create => {
            let mut create = ctx
                .sns
                .create_topic()
                .name(&name)
                .attributes("Policy", policy);
            for (key, value) in ctx.tags(None) {
                create = create.tags(
                    aws_sdk_sns::types::Tag::builder()
                        .key(key)
                        .value(value)
                        .build()
                        .map_err(|err| DeployError(format!("topic tag: {err}")))?,
                );
            }
            create
                .send()
                .await
                .map_err(|err| aws_failure(format!("cannot create SNS topic {name}"), &err))?;
            Ok(())
        }
        Op::SetPolicy => ctx
            .sns
            .set_topic_attributes()
            .topic_arn(ctx.topic_arn())
            .attribute_name("Policy")
            .attribute_value(policy)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| aws_failure(format!("cannot set the policy of SNS topic {name}"), &err)),
        Op::Delete => ctx
            .sns
            .delete_topic()
            .topic_arn(ctx.topic_arn())
            .send()
            .await
            .map(|_| ())
            .map_err(|err| aws_failure(format!("cannot delete SNS topic {name}"), &err)),
    }
}
