//! The IAM role of `backfill --via-batch-operations`: one per source,
//! trusted by S3 Batch Operations only. The backfill writes it (its policy
//! names what those jobs read and write, `crate::sync::batch_job`); destroy
//! removes it with the rest of the fan-out.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::plan::{Change, Kind};
use super::role;
use crate::fanout::names::batch_role_name;
use crate::fanout::{Context, DeployError, aws_failure, is_code};

/// The name of the role's one inline policy.
const POLICY_NAME: &str = "s3fan-batch-operations";

/// Batch Operations may assume the role, and only it.
pub fn trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "batchoperations.s3.amazonaws.com"},
            "Action": "sts:AssumeRole"
        }]
    })
}

/// Makes the role of `source`'s jobs if it is not there, and gives it its
/// trust and `policy`; answers whether it was made now (IAM then needs a
/// moment before S3 may assume it).
pub async fn write(
    iam: &aws_sdk_iam::Client,
    source: &str,
    tags: &BTreeMap<String, String>,
    policy: &Value,
) -> Result<bool, DeployError> {
    let name = batch_role_name(source);
    let description = format!("s3fan: S3 Batch Operations backfill jobs of s3://{source}");
    let created = role::create(iam, &name, &trust_policy(), &description, tags).await?;
    if !created {
        role::update_trust(iam, &name, &trust_policy()).await?;
    }
    role::put_policy(iam, &name, POLICY_NAME, &policy.to_string()).await?;
    Ok(created)
}

/// Whether the role exists.
pub async fn observe(ctx: &Context) -> Result<bool, DeployError> {
    let name = batch_role_name(&ctx.spec.source);
    match ctx.iam.get_role().role_name(&name).send().await {
        Ok(_) => Ok(true),
        Err(err) if is_code(&err, &["NoSuchEntity"]) => Ok(false),
        Err(err) => Err(aws_failure(format!("cannot read IAM role {name}"), &err)),
    }
}

/// Deleting is the one thing planned for it: the backfill writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    delete: bool,
}

pub fn plan_delete(ctx: &Context, present: bool) -> Change<Op> {
    Change::removal(
        Kind::Role,
        batch_role_name(&ctx.spec.source),
        None,
        present,
        Op { delete: true },
        Op { delete: false },
    )
}

pub async fn apply(ctx: &Context, op: Op) -> Result<(), DeployError> {
    if !op.delete {
        return Ok(());
    }
    role::delete(&ctx.iam, &batch_role_name(&ctx.spec.source), POLICY_NAME).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_batch_operations_may_assume_the_role() {
        let trust = trust_policy();
        assert_eq!(trust["Statement"].as_array().unwrap().len(), 1);
        assert_eq!(
            trust["Statement"][0]["Principal"],
            json!({"Service": "batchoperations.s3.amazonaws.com"})
        );
    }
}
