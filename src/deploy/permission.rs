//! The resource policy statement that lets SNS, for this topic and account
//! only, invoke a destination's function. One statement, one stable Sid.

use serde_json::Value;

use super::names::{PERMISSION_STATEMENT_ID, function_name};
use super::plan::{Action, Change, Kind};
use super::{Context, DeployError, aws_failure, gone_is_fine, is_code};

#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// No statement with s3fan's Sid (or no function, or no policy).
    Absent,
    /// s3fan's statement as Lambda returns it.
    Present(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Nothing,
    Add,
    Replace,
    Remove,
}

pub async fn observe(ctx: &Context, function: &str) -> Result<Observed, DeployError> {
    let policy = match ctx.lambda.get_policy().function_name(function).send().await {
        Ok(out) => out.policy.unwrap_or_default(),
        Err(err) if is_code(&err, &["ResourceNotFoundException"]) => return Ok(Observed::Absent),
        Err(err) => {
            return Err(aws_failure(
                format!("cannot read the resource policy of Lambda function {function}"),
                &err,
            ));
        }
    };
    let document: Value = serde_json::from_str(&policy).unwrap_or(Value::Null);
    let statement = document["Statement"].as_array().and_then(|statements| {
        statements
            .iter()
            .find(|s| s["Sid"] == PERMISSION_STATEMENT_ID)
    });
    Ok(statement.map_or(Observed::Absent, |s| Observed::Present(s.clone())))
}

/// Whether Lambda's rendering of the statement grants what s3fan means:
/// SNS, InvokeFunction, this topic, this account.
fn grants_exactly(ctx: &Context, statement: &Value) -> bool {
    let condition = &statement["Condition"];
    statement["Effect"] == "Allow"
        && statement["Principal"]["Service"] == "sns.amazonaws.com"
        && statement["Action"] == "lambda:InvokeFunction"
        && condition["ArnLike"]["AWS:SourceArn"] == ctx.topic_arn().as_str()
        && condition["StringEquals"]["AWS:SourceAccount"] == ctx.scope.account.as_str()
}

pub fn plan(ctx: &Context, destination: &str, observed: &Observed) -> Change<Op> {
    let (action, op, detail) = match observed {
        Observed::Absent => (Action::Create, Op::Add, ""),
        Observed::Present(statement) if !grants_exactly(ctx, statement) => {
            (Action::Update, Op::Replace, "topic or account")
        }
        Observed::Present(_) => (Action::Unchanged, Op::Nothing, ""),
    };
    Change {
        kind: Kind::Permission,
        name: format!("{}/{PERMISSION_STATEMENT_ID}", function_name(destination)),
        destination: Some(destination.to_owned()),
        action,
        detail: detail.to_owned(),
        op,
    }
}

pub fn plan_delete(function: &str, destination: &str, observed: &Observed) -> Change<Op> {
    Change::removal(
        Kind::Permission,
        format!("{function}/{PERMISSION_STATEMENT_ID}"),
        Some(destination.to_owned()),
        matches!(observed, Observed::Present(_)),
        Op::Remove,
        Op::Nothing,
    )
}

pub async fn apply(ctx: &Context, function: &str, op: Op) -> Result<(), DeployError> {
    if matches!(op, Op::Replace | Op::Remove) {
        let result = ctx
            .lambda
            .remove_permission()
            .function_name(function)
            .statement_id(PERMISSION_STATEMENT_ID)
            .send()
            .await;
        gone_is_fine(
            result,
            &["ResourceNotFoundException"],
            format!("cannot remove the SNS permission of Lambda function {function}"),
        )?;
    }
    if matches!(op, Op::Add | Op::Replace) {
        ctx.lambda
            .add_permission()
            .function_name(function)
            .statement_id(PERMISSION_STATEMENT_ID)
            .action("lambda:InvokeFunction")
            .principal("sns.amazonaws.com")
            .source_arn(ctx.topic_arn())
            .source_account(&ctx.scope.account)
            .send()
            .await
            .map_err(|err| {
                aws_failure(
                    format!("cannot let SNS invoke Lambda function {function}"),
                    &err,
                )
            })?;
    }
    Ok(())
}
