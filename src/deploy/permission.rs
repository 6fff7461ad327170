//! The resource policy statement that lets SNS, for this topic and account
//! only, invoke a destination's function. One statement, one stable Sid.

use serde_json::Value;

use super::plan::{Action, Change, Diff, Kind};
use crate::fanout::names::{PERMISSION_STATEMENT_ID, function_name};
use crate::fanout::{Context, DeployError, aws_failure, gone_is_fine, is_code};

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

/// A function's resource policy, read once for every statement s3fan keeps
/// in it: SNS's (here) and the reconcile schedule's (`schedule`).
#[derive(Debug, Clone, Default)]
pub struct FunctionPolicy(Value);

impl FunctionPolicy {
    /// The policy of `function`; empty when it has none, or there is no
    /// function.
    pub async fn read(ctx: &Context, function: &str) -> Result<FunctionPolicy, DeployError> {
        let policy = match ctx.lambda.get_policy().function_name(function).send().await {
            Ok(out) => out.policy.unwrap_or_default(),
            Err(err) if is_code(&err, &["ResourceNotFoundException"]) => {
                return Ok(FunctionPolicy::default());
            }
            Err(err) => {
                return Err(aws_failure(
                    format!("cannot read the resource policy of Lambda function {function}"),
                    &err,
                ));
            }
        };
        Ok(FunctionPolicy(
            serde_json::from_str(&policy).unwrap_or(Value::Null),
        ))
    }

    /// The statement with this Sid, if there is one.
    pub fn statement(&self, sid: &str) -> Option<&Value> {
        self.0["Statement"]
            .as_array()
            .and_then(|statements| statements.iter().find(|s| s["Sid"] == sid))
    }
}

/// s3fan's SNS statement in the function's policy.
pub fn observe(policy: &FunctionPolicy) -> Observed {
    policy
        .statement(PERMISSION_STATEMENT_ID)
        .map_or(Observed::Absent, |s| Observed::Present(s.clone()))
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
    let (action, op, diff) = match observed {
        Observed::Absent => (Action::Create, Op::Add, Vec::new()),
        Observed::Present(statement) if !grants_exactly(ctx, statement) => {
            (Action::Update, Op::Replace, grant_diff(ctx, statement))
        }
        Observed::Present(_) => (Action::Unchanged, Op::Nothing, Vec::new()),
    };
    Change {
        kind: Kind::Permission,
        name: format!("{}/{PERMISSION_STATEMENT_ID}", function_name(destination)),
        destination: Some(destination.to_owned()),
        action,
        detail: String::new(),
        diff,
        op,
    }
}

/// What of the statement differs from the grant deploy makes.
fn grant_diff(ctx: &Context, statement: &Value) -> Vec<Diff> {
    let condition = &statement["Condition"];
    [
        Diff::of("effect", statement["Effect"].clone(), "Allow"),
        Diff::of(
            "principal",
            statement["Principal"]["Service"].clone(),
            "sns.amazonaws.com",
        ),
        Diff::of(
            "action",
            statement["Action"].clone(),
            "lambda:InvokeFunction",
        ),
        Diff::of(
            "source arn",
            condition["ArnLike"]["AWS:SourceArn"].clone(),
            ctx.topic_arn(),
        ),
        Diff::of(
            "source account",
            condition["StringEquals"]["AWS:SourceAccount"].clone(),
            ctx.scope.account.as_str(),
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fanout::spec::Spec;
    use crate::test_endpoint::{Reply, body, listen};

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:src-fanout";

    /// Lambda's rendering of the statement s3fan adds, as GetPolicy returns it.
    fn rendered() -> Value {
        json!({
            "Sid": "s3fan-sns-invoke",
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "lambda:InvokeFunction",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:dst",
            "Condition": {
                "StringEquals": {"AWS:SourceAccount": "123456789012"},
                "ArnLike": {"AWS:SourceArn": TOPIC}
            }
        })
    }

    fn lambda(method: &str, target: &str) -> Reply {
        match (method, target) {
            ("GET", "/2015-03-31/functions/dst/policy") => {
                let someone_elses = json!({"Sid": "theirs", "Effect": "Allow",
                    "Principal": {"Service": "s3.amazonaws.com"}, "Action": "lambda:InvokeFunction"});
                let policy = json!({"Version": "2012-10-17", "Id": "default",
                    "Statement": [someone_elses, rendered()]});
                let answer = json!({"Policy": policy.to_string(), "RevisionId": "1"});
                (200, vec![], answer.to_string())
            }
            ("POST", "/2015-03-31/functions/dst/policy") => (
                201,
                vec![],
                json!({"Statement": rendered().to_string()}).to_string(),
            ),
            ("DELETE", "/2015-03-31/functions/dst/policy/s3fan-sns-invoke") => {
                (204, vec![], String::new())
            }
            _ => (404, vec![], "{}".into()),
        }
    }

    #[tokio::test]
    async fn the_statement_added_is_sns_for_this_topic_and_account_only() {
        let (endpoint, seen) = listen(lambda).await;
        let ctx = Context::offline(Spec::for_test("src", &["dst"]), &endpoint);
        apply(&ctx, "dst", Op::Replace).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:#?}");
        assert!(
            seen[0].starts_with("DELETE /2015-03-31/functions/dst/policy/s3fan-sns-invoke"),
            "the old statement goes first: {}",
            seen[0]
        );
        assert!(seen[1].starts_with("POST /2015-03-31/functions/dst/policy"));
        let sent: Value = serde_json::from_str(body(&seen[1])).unwrap();
        assert_eq!(
            sent,
            json!({
                "StatementId": "s3fan-sns-invoke",
                "Action": "lambda:InvokeFunction",
                "Principal": "sns.amazonaws.com",
                "SourceArn": TOPIC,
                "SourceAccount": "123456789012"
            })
        );
    }

    #[tokio::test]
    async fn lambdas_rendering_of_it_is_recognised_and_left_alone() {
        let (endpoint, _) = listen(lambda).await;
        let ctx = Context::offline(Spec::for_test("src", &["dst"]), &endpoint);
        let observed = observe(&FunctionPolicy::read(&ctx, "dst").await.unwrap());
        assert_eq!(observed, Observed::Present(rendered()));
        let change = plan(&ctx, "dst", &observed);
        assert_eq!((change.action, change.op), (Action::Unchanged, Op::Nothing));
    }

    #[test]
    fn any_wider_or_other_grant_is_replaced() {
        let ctx = Context::offline(Spec::for_test("src", &["dst"]), "http://127.0.0.1:9");
        type Widen = fn(&mut Value);
        let widened: [(&str, Widen); 7] = [
            ("any principal", |s| s["Principal"] = json!("*")),
            ("any AWS principal", |s| {
                s["Principal"] = json!({"AWS": "*"})
            }),
            ("every action", |s| s["Action"] = json!("lambda:*")),
            ("another topic", |s| {
                s["Condition"]["ArnLike"]["AWS:SourceArn"] =
                    json!("arn:aws:sns:us-east-1:123456789012:other-fanout")
            }),
            ("any topic", |s| {
                s["Condition"]["ArnLike"]["AWS:SourceArn"] = json!("arn:aws:sns:*")
            }),
            ("no account condition", |s| {
                s["Condition"]
                    .as_object_mut()
                    .unwrap()
                    .remove("StringEquals");
            }),
            ("Deny instead of Allow", |s| s["Effect"] = json!("Deny")),
        ];
        for (what, widen) in widened {
            let mut statement = rendered();
            widen(&mut statement);
            let change = plan(&ctx, "dst", &Observed::Present(statement));
            assert_eq!(
                (change.action, change.op),
                (Action::Update, Op::Replace),
                "{what}"
            );
        }
    }
}
