//! The reconcile schedule of one destination's function: an EventBridge
//! rule (`rate(6 hours)`) whose one target is the function, with the event
//! `{"s3fan": "reconcile"}`, and the statement of the function's resource
//! policy that lets EventBridge, for that rule only, invoke it.
//!
//! An EventBridge rule rather than EventBridge Scheduler: a rule invokes a
//! function through the function's own resource policy, as SNS does here,
//! while Scheduler needs one more IAM role for itself to assume; and a
//! rule is removed with its function's other pieces. Scheduler's extras
//! (time zones, flexible windows, one-off runs) do not matter for a
//! reconcile every few hours.

use serde_json::{Value, json};

use super::permission::FunctionPolicy;
use super::plan::{Action, Change, Diff, Kind};
use crate::fanout::names::{SCHEDULE_STATEMENT_ID, function_name, schedule_name};
use crate::fanout::{Context, DeployError, aws_failure, gone_is_fine, is_code};
use crate::sync::reconcile::ReconcileEvent;

/// The one target's Id on each rule.
const TARGET_ID: &str = "s3fan-function";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Absent,
    Present {
        expression: Option<String>,
        enabled: bool,
        /// The target's function and input, if the rule has s3fan's.
        target: Option<(String, String)>,
        /// The function lets this rule invoke it.
        permitted: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Nothing,
    /// Write the rule with this expression, its target and the permission.
    Put(String),
    Remove,
}

/// The rule, its target, and whether `policy` (the function's resource
/// policy, read once for every statement in it) lets the rule invoke it.
pub async fn observe(
    ctx: &Context,
    destination: &str,
    policy: &FunctionPolicy,
) -> Result<Observed, DeployError> {
    let name = schedule_name(destination);
    let rule = match ctx.events.describe_rule().name(&name).send().await {
        Ok(rule) => rule,
        Err(err) if is_code(&err, &["ResourceNotFoundException"]) => return Ok(Observed::Absent),
        Err(err) => {
            return Err(aws_failure(
                format!("cannot read EventBridge rule {name} (events:DescribeRule)"),
                &err,
            ));
        }
    };
    let targets = ctx
        .events
        .list_targets_by_rule()
        .rule(&name)
        .send()
        .await
        .map_err(|err| {
            aws_failure(
                format!("cannot read the targets of EventBridge rule {name}"),
                &err,
            )
        })?;
    let target = targets
        .targets()
        .iter()
        .find(|t| t.id() == TARGET_ID)
        .map(|t| (t.arn().to_owned(), t.input().unwrap_or_default().to_owned()));
    Ok(Observed::Present {
        expression: rule.schedule_expression,
        enabled: rule.state.is_some_and(|s| s.as_str() == "ENABLED"),
        target,
        permitted: permitted(ctx, destination, policy),
    })
}

/// Whether the function's resource policy lets this rule invoke it.
fn permitted(ctx: &Context, destination: &str, policy: &FunctionPolicy) -> bool {
    let rule = ctx.scope.rule_arn(&schedule_name(destination));
    policy.statement(SCHEDULE_STATEMENT_ID).is_some_and(|s| {
        s["Principal"]["Service"] == "events.amazonaws.com"
            && s["Condition"]["ArnLike"]["AWS:SourceArn"] == rule.as_str()
    })
}

/// The event the rule sends: a new run.
fn input() -> String {
    json!(ReconcileEvent::new_run()).to_string()
}

/// The schedule `ctx` asks for `destination`, or its removal; `None` where
/// there is none and none is wanted.
pub fn plan(ctx: &Context, destination: &str, observed: &Observed) -> Option<Change<Op>> {
    let name = schedule_name(destination);
    let change = |action, detail: String, diff, op| Change {
        kind: Kind::Schedule,
        name: name.clone(),
        destination: Some(destination.to_owned()),
        action,
        detail,
        diff,
        op,
    };
    let Some(every) = ctx.spec.reconcile_every else {
        return match observed {
            Observed::Absent => None,
            Observed::Present { .. } => Some(change(
                Action::Delete,
                "--reconcile-every is no longer given".into(),
                Vec::new(),
                Op::Remove,
            )),
        };
    };
    let wanted = every.rate_expression();
    let put = || Op::Put(wanted.clone());
    Some(match observed {
        Observed::Absent => change(
            Action::Create,
            format!("reconcile {every}: {wanted}"),
            Vec::new(),
            put(),
        ),
        Observed::Present {
            expression,
            enabled,
            target: target_found,
            permitted,
        } => {
            let function = ctx.function_arn(&function_name(destination));
            let target = |t: &Option<(String, String)>| {
                t.as_ref().map_or(
                    Value::Null,
                    |(arn, input)| json!({"arn": arn, "input": input}),
                )
            };
            let differs: Vec<Diff> = [
                Diff::of("schedule", expression.clone(), wanted.as_str()),
                Diff::of("enabled", *enabled, true),
                Diff::of(
                    "target",
                    target(target_found),
                    target(&Some((function, input()))),
                ),
                Diff::of("invoke permission", *permitted, true),
            ]
            .into_iter()
            .flatten()
            .collect();
            if differs.is_empty() {
                change(Action::Unchanged, String::new(), differs, Op::Nothing)
            } else {
                change(Action::Update, String::new(), differs, put())
            }
        }
    })
}

/// The removal of `destination`'s schedule, by destroy.
pub fn plan_delete(destination: &str, observed: &Observed) -> Option<Change<Op>> {
    match observed {
        Observed::Absent => None,
        Observed::Present { .. } => Some(Change::removal(
            Kind::Schedule,
            schedule_name(destination),
            Some(destination.to_owned()),
            true,
            Op::Remove,
            Op::Nothing,
        )),
    }
}

/// Rule first, then its target and the permission, so the function is
/// never invoked by a rule it does not admit for long; removal in reverse.
pub async fn apply(ctx: &Context, destination: &str, op: &Op) -> Result<(), DeployError> {
    let name = schedule_name(destination);
    let function = function_name(destination);
    match op {
        Op::Nothing => Ok(()),
        Op::Put(expression) => {
            put_rule(ctx, &name, destination, expression).await?;
            ctx.events
                .put_targets()
                .rule(&name)
                .targets(
                    aws_sdk_eventbridge::types::Target::builder()
                        .id(TARGET_ID)
                        .arn(ctx.function_arn(&function))
                        .input(input())
                        .build()
                        .map_err(|err| DeployError(format!("cannot describe the target: {err}")))?,
                )
                .send()
                .await
                .map_err(|err| {
                    aws_failure(
                        format!("cannot make function {function} the target of rule {name}"),
                        &err,
                    )
                })?;
            remove_permission(ctx, &function).await?;
            ctx.lambda
                .add_permission()
                .function_name(&function)
                .statement_id(SCHEDULE_STATEMENT_ID)
                .action("lambda:InvokeFunction")
                .principal("events.amazonaws.com")
                .source_arn(ctx.scope.rule_arn(&name))
                .send()
                .await
                .map(|_| ())
                .map_err(|err| {
                    aws_failure(
                        format!("cannot let rule {name} invoke Lambda function {function}"),
                        &err,
                    )
                })
        }
        Op::Remove => {
            let removed = ctx
                .events
                .remove_targets()
                .rule(&name)
                .ids(TARGET_ID)
                .send()
                .await;
            gone_is_fine(
                removed,
                &["ResourceNotFoundException"],
                format!("cannot remove the target of EventBridge rule {name}"),
            )?;
            let deleted = ctx.events.delete_rule().name(&name).send().await;
            gone_is_fine(
                deleted,
                &["ResourceNotFoundException"],
                format!("cannot delete EventBridge rule {name}"),
            )?;
            remove_permission(ctx, &function).await
        }
    }
}

async fn put_rule(
    ctx: &Context,
    name: &str,
    destination: &str,
    expression: &str,
) -> Result<(), DeployError> {
    let tags = ctx
        .tags(Some(destination))
        .into_iter()
        .map(|(key, value)| {
            aws_sdk_eventbridge::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|err| DeployError(format!("cannot describe a tag: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    ctx.events
        .put_rule()
        .name(name)
        .schedule_expression(expression)
        .state(aws_sdk_eventbridge::types::RuleState::Enabled)
        .description(format!(
            "s3fan: reconcile {destination} with {} ({expression})",
            ctx.spec.source
        ))
        .set_tags(Some(tags))
        .send()
        .await
        .map(|_| ())
        .map_err(|err| {
            aws_failure(
                format!("cannot write EventBridge rule {name} (events:PutRule)"),
                &err,
            )
        })
}

async fn remove_permission(ctx: &Context, function: &str) -> Result<(), DeployError> {
    let result = ctx
        .lambda
        .remove_permission()
        .function_name(function)
        .statement_id(SCHEDULE_STATEMENT_ID)
        .send()
        .await;
    gone_is_fine(
        result,
        &["ResourceNotFoundException"],
        format!("cannot remove the schedule's permission of Lambda function {function}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::spec::{Every, Spec};

    fn ctx(every: Option<&str>) -> Context {
        let mut spec = Spec::for_test("src", &["dst"]);
        spec.reconcile_every = every.map(|e| Every::parse(e).unwrap());
        Context::offline(spec, "http://127.0.0.1:9")
    }

    fn present(ctx: &Context, expression: &str) -> Observed {
        Observed::Present {
            expression: Some(expression.into()),
            enabled: true,
            target: Some((ctx.function_arn("dst"), input())),
            permitted: true,
        }
    }

    #[test]
    fn a_schedule_is_made_kept_changed_or_removed_as_the_flag_says() {
        let daily = ctx(Some("1d"));
        let made = plan(&daily, "dst", &Observed::Absent).unwrap();
        assert_eq!(
            (made.action, &made.op),
            (Action::Create, &Op::Put("rate(1 day)".into()))
        );
        assert_eq!(made.name, "dst-reconcile");
        let kept = plan(&daily, "dst", &present(&daily, "rate(1 day)")).unwrap();
        assert_eq!((kept.action, &kept.op), (Action::Unchanged, &Op::Nothing));
        let changed = plan(&daily, "dst", &present(&daily, "rate(6 hours)")).unwrap();
        assert_eq!(changed.action, Action::Update);
        assert_eq!(
            changed.diff,
            [Diff::of("schedule", "rate(6 hours)", "rate(1 day)").unwrap()]
        );
        let mut unpermitted = present(&daily, "rate(1 day)");
        if let Observed::Present { permitted, .. } = &mut unpermitted {
            *permitted = false;
        }
        assert_eq!(
            plan(&daily, "dst", &unpermitted).unwrap().diff,
            [Diff::of("invoke permission", false, true).unwrap()]
        );
        // Without the flag: nothing where there is nothing, else removed.
        let none = ctx(None);
        assert!(plan(&none, "dst", &Observed::Absent).is_none());
        let removed = plan(&none, "dst", &present(&daily, "rate(1 day)")).unwrap();
        assert_eq!((removed.action, &removed.op), (Action::Delete, &Op::Remove));
    }

    #[test]
    fn the_rule_sends_the_event_of_a_new_run_and_nothing_else() {
        assert_eq!(input(), r#"{"s3fan":"reconcile"}"#);
    }
}
