//! The tasks of an S3 Batch Operations job (`backfill --via-batch-operations`),
//! inside the function: each is copied as a new object's event would be,
//! and answered `Succeeded` or `PermanentFailure`.
//!
//! A failed task also goes where every other failure goes: the fan-out's
//! failure queue, as the record Lambda writes for a failed asynchronous
//! invocation, carrying an S3 event for that object, so that `s3fan
//! failures` lists it and `s3fan retry` copies it like any other. Batch
//! Operations invokes synchronously, so Lambda's on-failure destination
//! never sees these. Only when the queue cannot take the record is the task
//! answered `TemporaryFailure`, so that the job tries it again and nothing
//! is lost.

use serde_json::{Value, json};

use super::Function;
use crate::fanout::names::failure_queue_name;
use crate::handler::batch::{Invocation, ResultCode, Task};
use crate::handler::continuation::Handoff;
use crate::handler::event::created_record;
use crate::handler::plan::plan;

/// What `condition` a failed task's record names (Lambda's own records say
/// `RetriesExhausted` or `EventAgeExceeded`).
pub const CONDITION: &str = "BatchOperationsTaskFailed";

impl Function {
    pub async fn batch(
        &self,
        invocation: &Invocation,
        context: &lambda_runtime::Context,
        deadline: tokio::time::Instant,
        handoff: &Handoff,
    ) -> Value {
        let steps = plan(invocation.notices(), &self.replicator.target);
        let ran = self
            .replicator
            .run(steps, deadline, &context.request_id, Some(handoff))
            .await;
        let mut results = Vec::with_capacity(ran.outcomes.len());
        for (task, outcome) in invocation.tasks.iter().zip(ran.outcomes) {
            results.push(match outcome {
                Ok(done) => (ResultCode::Succeeded, done),
                Err(failure) => match self.keep_failure(task, &failure, context).await {
                    Ok(queue) => (
                        ResultCode::PermanentFailure,
                        format!("{failure} (kept in {queue}: s3fan retry copies it again)"),
                    ),
                    Err(why) => (ResultCode::TemporaryFailure, format!("{failure}; {why}")),
                },
            });
        }
        tracing::info!(
            request_id = %context.request_id,
            job = %invocation.job_id,
            tasks = invocation.tasks.len(),
            failed = results.iter().filter(|(code, _)| *code != ResultCode::Succeeded).count(),
            "batch operations tasks done"
        );
        invocation.answer(&results)
    }

    /// Sends the failure of `task` to the failure queue; answers its name.
    async fn keep_failure(
        &self,
        task: &Task,
        failure: &str,
        context: &lambda_runtime::Context,
    ) -> Result<String, String> {
        let Some(source) = &self.source else {
            return Err(
                "the function does not know its source bucket, so not its failure \
                        queue: deploy it again with this s3fan"
                    .into(),
            );
        };
        let queue = failure_queue_name(source);
        let url = queue_url(&context.invoked_function_arn, &queue).ok_or_else(|| {
            format!(
                "cannot tell the failure queue's URL from the function ARN {:?}",
                context.invoked_function_arn
            )
        })?;
        let body = failure_record(task, failure, context, &self.region);
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(body.to_string())
            .send()
            .await
            .map_err(|err| {
                format!(
                    "cannot keep the failure in {queue}: {}",
                    crate::aws::error_chain(&err)
                )
            })?;
        Ok(queue)
    }
}

/// The queue's URL in the function's own account and region, which the
/// function's ARN names: `https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE`.
fn queue_url(function_arn: &str, queue: &str) -> Option<String> {
    let mut parts = function_arn.split(':');
    let (partition, region, account) = (parts.nth(1)?, parts.nth(1)?, parts.next()?);
    let domain = if partition == "aws-cn" {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    (!region.is_empty() && !account.is_empty())
        .then(|| format!("https://sqs.{region}.{domain}/{account}/{queue}"))
}

/// The record Lambda writes for a failed asynchronous invocation, as
/// `s3fan failures` and `s3fan retry` read it, with an S3 event for the
/// task's object as the request.
fn failure_record(
    task: &Task,
    failure: &str,
    context: &lambda_runtime::Context,
    region: &str,
) -> Value {
    let event_time =
        aws_smithy_types::DateTime::from_millis(crate::handler::runner::now_ms() as i64)
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap_or_default();
    let payload = match &task.key {
        Ok(key) => {
            json!({"Records": [created_record(&task.bucket, region, key, None, None, &event_time)]})
        }
        // Nothing a retry could copy: the record says what was asked.
        Err(_) => json!({"taskId": task.task_id, "s3Bucket": task.bucket}),
    };
    json!({
        "version": "1.0",
        "timestamp": event_time,
        "requestContext": {
            "requestId": context.request_id,
            "functionArn": context.invoked_function_arn,
            "condition": CONDITION,
            "approximateInvokeCount": 1,
        },
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "S3fan.ReplicationFailed", "errorMessage": failure},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failures::parse_record;
    use crate::handler::event::{Notice, parse_invocation};

    #[test]
    fn the_queue_is_in_the_functions_account_and_region() {
        assert_eq!(
            queue_url(
                "arn:aws:lambda:eu-west-1:123456789012:function:dst",
                "src-fanout-failures"
            )
            .as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/123456789012/src-fanout-failures")
        );
        assert_eq!(queue_url("not-an-arn", "q"), None);
    }

    #[test]
    fn a_failed_task_reads_as_a_failed_event_for_its_object() {
        let task = Task {
            task_id: "t1".into(),
            bucket: "photos".into(),
            key: Ok("a b+c/é.txt".into()),
            version_id: None,
        };
        let mut context = lambda_runtime::Context::default();
        context.invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:dst".into();
        context.request_id = "r1".into();
        let body = failure_record(
            &task,
            "copy of s3://photos/a failed: AccessDenied",
            &context,
            "eu-west-1",
        );
        let record = parse_record(&body.to_string()).unwrap();
        assert_eq!(record.function, "dst");
        assert_eq!(record.condition, CONDITION);
        assert!(record.error.contains("AccessDenied"), "{}", record.error);
        let notices = parse_invocation(&record.payload).unwrap();
        assert!(
            matches!(&notices[..], [Notice::Object(e)] if e.bucket == "photos" && e.key == "a b+c/é.txt" && e.is_object_created()),
            "{notices:?}"
        );
    }
}
