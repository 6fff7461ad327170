//! Each function's asynchronous invocation settings: how often Lambda
//! retries a failed event, for how long, and the failure queue as its
//! on-failure destination, so that no event is lost after the retries.

use serde_json::Value;

use super::plan::{Action, Change, Diff, Kind};
use crate::fanout::names::function_name;
use crate::fanout::{Context, DeployError, aws_failure, is_code};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Absent,
    Present {
        retry_attempts: Option<i32>,
        max_event_age: Option<i32>,
        on_failure: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Nothing,
    Put,
}

pub async fn observe(ctx: &Context, function: &str) -> Result<Observed, DeployError> {
    match ctx
        .lambda
        .get_function_event_invoke_config()
        .function_name(function)
        .send()
        .await
    {
        Ok(out) => Ok(Observed::Present {
            retry_attempts: out.maximum_retry_attempts,
            max_event_age: out.maximum_event_age_in_seconds,
            on_failure: out
                .destination_config
                .and_then(|d| d.on_failure)
                .and_then(|f| f.destination),
        }),
        Err(err) if is_code(&err, &["ResourceNotFoundException"]) => Ok(Observed::Absent),
        Err(err) => Err(aws_failure(
            format!(
                "cannot read the asynchronous invocation settings of Lambda function {function}"
            ),
            &err,
        )),
    }
}

fn desired(ctx: &Context) -> Observed {
    Observed::Present {
        retry_attempts: Some(ctx.spec.retry_attempts),
        max_event_age: Some(ctx.spec.max_event_age),
        on_failure: Some(ctx.failure_queue_arn()),
    }
}

/// Each setting that differs, its value now and the one deploy sets.
fn changes(now: &Observed, wanted: &Observed) -> Vec<Diff> {
    let fields = |o: &Observed| -> [Value; 3] {
        match o {
            Observed::Absent => [Value::Null, Value::Null, Value::Null],
            Observed::Present {
                retry_attempts,
                max_event_age,
                on_failure,
            } => [
                (*retry_attempts).into(),
                (*max_event_age).into(),
                on_failure.clone().into(),
            ],
        }
    };
    ["retry attempts", "max event age", "on-failure destination"]
        .into_iter()
        .zip(fields(now).into_iter().zip(fields(wanted)))
        .filter_map(|(field, (now, wanted))| Diff::of(field, now, wanted))
        .collect()
}

pub fn plan(ctx: &Context, destination: &str, observed: &Observed) -> Change<Op> {
    let (action, op) = match observed {
        Observed::Absent => (Action::Create, Op::Put),
        present if *present != desired(ctx) => (Action::Update, Op::Put),
        _ => (Action::Unchanged, Op::Nothing),
    };
    Change {
        kind: Kind::InvokeConfig,
        name: function_name(destination),
        destination: Some(destination.to_owned()),
        action,
        detail: match observed {
            Observed::Absent => format!(
                "{} retries, {} s, then the failure queue",
                ctx.spec.retry_attempts, ctx.spec.max_event_age
            ),
            _ => String::new(),
        },
        diff: match observed {
            Observed::Absent => Vec::new(),
            present => changes(present, &desired(ctx)),
        },
        op,
    }
}

pub async fn apply(ctx: &Context, function: &str, op: Op) -> Result<(), DeployError> {
    if op == Op::Nothing {
        return Ok(());
    }
    use aws_sdk_lambda::types::{DestinationConfig, OnFailure};
    ctx.lambda
        .put_function_event_invoke_config()
        .function_name(function)
        .maximum_retry_attempts(ctx.spec.retry_attempts)
        .maximum_event_age_in_seconds(ctx.spec.max_event_age)
        .destination_config(
            DestinationConfig::builder()
                .on_failure(
                    OnFailure::builder()
                        .destination(ctx.failure_queue_arn())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|err| {
            aws_failure(
                format!("cannot set the failure queue of Lambda function {function}"),
                &err,
            )
        })
}
