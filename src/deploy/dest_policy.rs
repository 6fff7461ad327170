//! The bucket policy of a destination in another account. Across accounts
//! the role's own policy is not enough: the bucket's owner must admit the
//! role too. deploy prints the statement for the owner to add; with
//! `--apply-dest-policy` it writes the statement itself (when these
//! credentials may), merged into the policy the bucket has: every other
//! statement is kept as it was.

use serde_json::{Value, json};

use super::plan::{Action, Change, Kind};
use super::policy::{destination_bucket_statement, destination_list_statement};
use crate::fanout::names::role_name;
use crate::fanout::{Context, DeployError, aws_failure, is_code};

#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// The bucket has no policy.
    Absent,
    Present(Value),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Nothing,
    /// Write this whole policy.
    Put(Value),
}

/// The statements `destination`'s bucket policy needs for its role: to
/// write, and, when it reconciles, to list.
pub fn desired_statements(ctx: &Context, destination: &str) -> Vec<Value> {
    let role = role_name(destination);
    let key_prefix = ctx.spec.key_prefix(destination);
    let mut statements = vec![destination_bucket_statement(
        &ctx.scope,
        &role,
        destination,
        key_prefix,
        ctx.spec.replicate_deletes,
        ctx.spec.replicate_tags,
    )];
    if ctx.spec.reconcile_every.is_some() {
        statements.push(destination_list_statement(
            &ctx.scope,
            &role,
            destination,
            key_prefix,
        ));
    }
    statements
}

fn way_out(destination: &str) -> String {
    format!(
        "drop --apply-dest-policy and give the statement deploy prints to the owner of \
         bucket {destination}"
    )
}

pub async fn observe(ctx: &Context, destination: &str) -> Result<Observed, DeployError> {
    let answer = ctx
        .s3_for(destination)?
        .get_bucket_policy()
        .bucket(destination)
        .send()
        .await;
    match answer {
        Ok(out) => {
            let text = out.policy.unwrap_or_default();
            serde_json::from_str(&text)
                .map(Observed::Present)
                .map_err(|err| {
                    DeployError(format!(
                        "the bucket policy of {destination} is not JSON ({err}); fix it, or {}",
                        way_out(destination)
                    ))
                })
        }
        Err(err) if is_code(&err, &["NoSuchBucketPolicy"]) => Ok(Observed::Absent),
        Err(err) => Err(aws_failure(
            format!(
                "cannot read the bucket policy of {destination} (s3:GetBucketPolicy); {}",
                way_out(destination)
            ),
            &err,
        )),
    }
}

/// Adds s3fan's statements, or replaces those with their Sids (also the
/// list statement of a destination that no longer reconciles).
pub fn plan(ctx: &Context, destination: &str, observed: &Observed) -> Change<Op> {
    let wanted = desired_statements(ctx, destination);
    let sid = wanted[0]["Sid"].clone();
    let list_sid = json!(format!("{}List", sid.as_str().unwrap_or_default()));
    let ours = |s: &Value| s["Sid"] == sid || s["Sid"] == list_sid;
    let mut policy = match observed {
        Observed::Present(policy) => policy.clone(),
        Observed::Absent => json!({"Version": "2012-10-17", "Statement": []}),
    };
    // A policy with a single statement may hold it as an object.
    if policy["Statement"].is_object() {
        policy["Statement"] = Value::Array(vec![policy["Statement"].take()]);
    }
    let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
    let current: Vec<&Value> = statements.iter().filter(|s| ours(s)).collect();
    let action = if current.is_empty() {
        Action::Create
    } else if current != wanted.iter().collect::<Vec<_>>() {
        Action::Update
    } else {
        Action::Unchanged
    };
    // Only s3fan's statements: the rest of the policy is not touched.
    let diff = if action == Action::Update {
        super::diff::statements(
            "bucket policy",
            Some(&json!({ "Statement": current })),
            Some(&json!({ "Statement": wanted })),
        )
    } else {
        Vec::new()
    };
    let op = if action.changes_something() {
        let mut merged: Vec<Value> = statements.into_iter().filter(|s| !ours(s)).collect();
        merged.extend(wanted);
        policy["Statement"] = Value::Array(merged);
        Op::Put(policy)
    } else {
        Op::Nothing
    };
    Change {
        kind: Kind::DestinationPolicy,
        name: format!("{destination} ({})", sid.as_str().unwrap_or_default()),
        destination: Some(destination.to_owned()),
        action,
        detail: String::new(),
        diff,
        op,
    }
}

pub async fn apply(ctx: &Context, destination: &str, op: &Op) -> Result<(), DeployError> {
    let Op::Put(policy) = op else {
        return Ok(());
    };
    ctx.s3_for(destination)?
        .put_bucket_policy()
        .bucket(destination)
        .policy(policy.to_string())
        .send()
        .await
        .map(|_| ())
        .map_err(|err| {
            aws_failure(
                format!(
                    "cannot write the bucket policy of {destination} (s3:PutBucketPolicy); {}",
                    way_out(destination)
                ),
                &err,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::spec::Spec;

    fn ctx() -> Context {
        let mut spec = Spec::for_test("src", &["backup"]);
        spec.destinations[0].account = Some("210987654321".into());
        Context::offline(spec, "http://127.0.0.1:9")
    }

    #[test]
    fn the_statement_joins_the_owners_policy_and_keeps_the_rest() {
        let ctx = ctx();
        let theirs = json!({"Sid": "Theirs", "Effect": "Deny", "Principal": "*",
            "Action": "s3:*", "Resource": "arn:aws:s3:::backup/*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}});
        let observed = Observed::Present(json!({"Version": "2012-10-17", "Statement": theirs}));
        let change = plan(&ctx, "backup", &observed);
        assert_eq!(change.action, Action::Create);
        let Op::Put(policy) = &change.op else {
            panic!("a write: {change:?}")
        };
        assert_eq!(
            policy["Statement"],
            json!([theirs, desired_statements(&ctx, "backup")[0]])
        );

        // Written: nothing more to do. Changed by hand: put back, alone.
        let written = Observed::Present(policy.clone());
        assert_eq!(plan(&ctx, "backup", &written).op, Op::Nothing);
        let mut edited = policy.clone();
        edited["Statement"][1]["Action"] = json!("s3:*");
        let change = plan(&ctx, "backup", &Observed::Present(edited));
        assert_eq!(change.action, Action::Update);
        assert_eq!(change.op, Op::Put(policy.clone()));
    }

    #[test]
    fn a_bucket_without_a_policy_gets_one_with_the_statement_only() {
        let ctx = ctx();
        let change = plan(&ctx, "backup", &Observed::Absent);
        assert_eq!(
            change.op,
            Op::Put(json!({"Version": "2012-10-17",
                           "Statement": desired_statements(&ctx, "backup")}))
        );
    }

    #[test]
    fn a_reconciling_destination_also_lets_its_role_list_and_loses_that_when_it_stops() {
        let mut reconciling = ctx();
        reconciling.spec.reconcile_every = Some(crate::fanout::spec::Every::parse("1d").unwrap());
        let wanted = desired_statements(&reconciling, "backup");
        assert_eq!(wanted.len(), 2);
        assert_eq!(wanted[1]["Action"], "s3:ListBucket");
        let with_list = Observed::Present(json!({"Version": "2012-10-17", "Statement": wanted}));
        assert_eq!(plan(&reconciling, "backup", &with_list).op, Op::Nothing);
        // Without the schedule, the list statement goes and the write stays.
        let change = plan(&ctx(), "backup", &with_list);
        assert_eq!(change.action, Action::Update);
        assert_eq!(
            change.op,
            Op::Put(json!({"Version": "2012-10-17",
                           "Statement": desired_statements(&ctx(), "backup")}))
        );
    }
}
