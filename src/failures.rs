//! `s3fan failures` and `s3fan retry`: the events that failed every one of
//! Lambda's retries. Deploy makes the queue `SRC-fanout-failures` each
//! function's on-failure destination, so such an event is kept there (14
//! days) with the error, rather than dropped.
//! `retry` replays each through the handler's own planning and copy code and
//! deletes a message only once everything it asked for is done.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::Message;
use serde::Serialize;
use serde_json::Value;

use crate::deploy::queue;
use crate::fanout::inventory::{self, Edge};
use crate::fanout::names::failure_queue_name;
use crate::fanout::spec::Spec;
use crate::fanout::{DeployError, Session, aws_failure};
use crate::handler::continuation::Continuation;
use crate::handler::event::{Notice, parse_invocation};
use crate::handler::limits::CopySettings;
use crate::handler::plan::{Step, Target, plan};
use crate::handler::runner::Runner;
use crate::handler::s3::S3Clients;
use crate::sync::reconcile::ReconcileEvent;

/// What Lambda sends to an on-failure destination, as far as s3fan needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The function whose invocation failed.
    pub function: String,
    /// `RetriesExhausted` or `EventAgeExceeded`.
    pub condition: String,
    /// The function's last error message.
    pub error: String,
    /// The event the function was invoked with.
    pub payload: Value,
}

/// Parses one message body: Lambda's invocation record.
pub fn parse_record(body: &str) -> Result<Record, String> {
    let record: Value =
        serde_json::from_str(body).map_err(|err| format!("the message is not JSON: {err}"))?;
    let context = &record["requestContext"];
    let function = context["functionArn"]
        .as_str()
        .and_then(|arn| arn.split(':').nth(6))
        .filter(|name| !name.is_empty())
        .ok_or("the message names no function (requestContext.functionArn)")?;
    let payload = record
        .get("requestPayload")
        .cloned()
        .filter(|p| !p.is_null())
        .ok_or("the message carries no event (requestPayload)")?;
    let condition = context["condition"].as_str().unwrap_or("").to_owned();
    let response = &record["responsePayload"];
    let error = match (
        response["errorType"].as_str(),
        response["errorMessage"].as_str(),
    ) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        (None, Some(message)) => message.to_owned(),
        _ => condition.clone(),
    };
    Ok(Record {
        function: function.to_owned(),
        condition,
        error,
        payload,
    })
}

/// The objects an event names, as `s3://bucket/key`.
fn objects(payload: &Value) -> Vec<String> {
    parse_invocation(payload)
        .map(|notices| {
            notices
                .into_iter()
                .filter_map(|notice| match notice {
                    Notice::Object(event) => Some(format!("s3://{}/{}", event.bucket, event.key)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Debug, Serialize)]
pub struct FailedEvent {
    pub message_id: String,
    pub function: String,
    /// `s3://bucket/` (and key prefix) of the function's destination, when
    /// the function is still deployed.
    pub destination: Option<String>,
    pub objects: Vec<String>,
    pub condition: String,
    pub error: String,
}

#[derive(Debug, Serialize)]
pub struct FailuresReport {
    pub source: String,
    pub queue: String,
    pub events: Vec<FailedEvent>,
    /// Messages received by someone else and not yet back (a `retry` that
    /// is running): not listed, but waiting all the same.
    pub in_flight: u64,
}

impl crate::report::Report for FailuresReport {
    fn render_text(&self) -> String {
        let mut out = format!(
            "s3fan failures: s3://{} ({} failed events in {})\n",
            self.source,
            self.events.len(),
            self.queue
        );
        if self.in_flight > 0 {
            out.push_str(&format!("  {}\n", queue::in_flight_note(self.in_flight)));
        }
        for event in &self.events {
            out.push_str(&format!(
                "  {} -> {}: {}\n",
                if event.objects.is_empty() {
                    "(no objects)".to_owned()
                } else {
                    event.objects.join(", ")
                },
                event
                    .destination
                    .as_deref()
                    .unwrap_or(&format!("function {} (no longer deployed)", event.function)),
                event.error
            ));
        }
        if !self.events.is_empty() {
            out.push_str("`s3fan retry` copies them again, once the cause is fixed\n");
        }
        out
    }

    fn verdict(&self) -> crate::report::Verdict {
        // Events waiting are the answer to "did anything fail?".
        crate::report::Verdict::of(false, !self.events.is_empty() || self.in_flight > 0)
    }
}

/// Where the failure queue is, and which function copies where.
struct Queue {
    session: Session,
    source: String,
    url: String,
    name: String,
    functions: HashMap<String, Edge>,
}

async fn open(spec: Spec) -> Result<Queue, DeployError> {
    let session = Session::connect(&spec).await?;
    let name = failure_queue_name(&spec.source);
    let url = queue::queue_url(&session, &spec.source, &name).await?;
    let functions = inventory::list(&session)
        .await?
        .into_iter()
        .filter(|edge| edge.source == spec.source)
        .map(|edge| (edge.function.clone(), edge))
        .collect();
    Ok(Queue {
        session,
        source: spec.source,
        url,
        name,
        functions,
    })
}

impl Queue {
    async fn receive(&self, visibility: Duration) -> Result<Vec<Message>, DeployError> {
        self.session
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility.as_secs() as i32)
            .wait_time_seconds(0)
            .send()
            .await
            .map(|out| out.messages.unwrap_or_default())
            .map_err(|err| aws_failure(format!("cannot read SQS queue {}", self.name), &err))
    }

    /// Messages received and not yet back: SQS's own count.
    async fn in_flight(&self) -> Result<u64, DeployError> {
        match queue::read(&self.session, &self.name, self.url.clone()).await? {
            queue::Observed::Present { in_flight, .. } => Ok(in_flight),
            queue::Observed::Absent => Ok(0),
        }
    }

    /// Makes `message` visible again at once, for the next `failures` or
    /// `retry`: otherwise a message `retry` kept stays hidden for the whole
    /// visibility timeout it was received with.
    async fn release(&self, message: &Message) -> Result<(), String> {
        self.session
            .sqs
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(message.receipt_handle().unwrap_or_default())
            .visibility_timeout(0)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| {
                aws_failure(
                    "kept in the queue, but cannot make it visible again (it shows again in \
                     15 minutes)",
                    &err,
                )
                .0
            })
    }

    fn destination(&self, function: &str) -> Option<String> {
        self.functions.get(function).map(|edge| {
            format!(
                "s3://{}/{}",
                edge.destination,
                edge.settings.key_prefix.as_deref().unwrap_or("")
            )
        })
    }
}

/// `s3fan failures`: lists without consuming (messages are received with no
/// visibility timeout, so they stay where they are).
pub async fn failures(spec: Spec) -> Result<FailuresReport, DeployError> {
    let queue = open(spec).await?;
    let mut events: Vec<FailedEvent> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // SQS answers from a sample of its servers: read until a few rounds in a
    // row bring nothing new.
    let mut quiet_rounds = 0;
    while quiet_rounds < 3 {
        let messages = queue.receive(Duration::ZERO).await?;
        let before = events.len();
        for message in messages {
            let id = message.message_id().unwrap_or_default().to_owned();
            if !seen.insert(id.clone()) {
                continue;
            }
            events.push(match parse_record(message.body().unwrap_or_default()) {
                Ok(record) => FailedEvent {
                    message_id: id,
                    destination: queue.destination(&record.function),
                    objects: objects(&record.payload),
                    function: record.function,
                    condition: record.condition,
                    error: record.error,
                },
                Err(reason) => FailedEvent {
                    message_id: id,
                    function: String::new(),
                    destination: None,
                    objects: Vec::new(),
                    condition: "Unreadable".into(),
                    error: format!("not a Lambda failure record: {reason}"),
                },
            });
        }
        quiet_rounds = if events.len() == before {
            quiet_rounds + 1
        } else {
            0
        };
    }
    Ok(FailuresReport {
        in_flight: queue.in_flight().await?,
        source: queue.source.clone(),
        queue: queue.name.clone(),
        events,
    })
}

#[derive(Debug, Serialize)]
pub struct RetriedEvent {
    pub message_id: String,
    pub objects: Vec<String>,
    /// `delivered` (message deleted) or `kept`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RetryReport {
    pub ok: bool,
    pub source: String,
    pub delivered: usize,
    pub kept: usize,
    /// Messages someone else had received, which this run could not see.
    pub in_flight: u64,
    pub events: Vec<RetriedEvent>,
}

impl crate::report::Report for RetryReport {
    fn render_text(&self) -> String {
        let mut out = format!(
            "s3fan retry: s3://{}: {} delivered, {} kept in the queue\n",
            self.source, self.delivered, self.kept
        );
        if self.in_flight > 0 {
            out.push_str(&format!("  {}\n", queue::in_flight_note(self.in_flight)));
        }
        for event in self.events.iter().filter(|e| e.outcome == "kept") {
            out.push_str(&format!(
                "  kept {}: {}\n",
                event.objects.join(", "),
                event.error.as_deref().unwrap_or("")
            ));
        }
        out
    }

    fn verdict(&self) -> crate::report::Verdict {
        crate::report::Verdict::of(!self.ok, false)
    }
}

/// How long a message being retried stays hidden: a copy's worst case.
const RETRY_VISIBILITY: Duration = Duration::from_secs(900);

/// `s3fan retry`: every message once; deleted only when its copies are done.
pub async fn retry(spec: Spec, settings: CopySettings) -> Result<RetryReport, DeployError> {
    let queue = open(spec).await?;
    let mut events = Vec::new();
    // Hidden while this run goes on, so that it sees each message once;
    // released before it returns.
    let mut kept = Vec::new();
    loop {
        let messages = queue.receive(RETRY_VISIBILITY).await?;
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let message_id = message.message_id().unwrap_or_default().to_owned();
            let (objects, result) = match parse_record(message.body().unwrap_or_default()) {
                Ok(record) => (
                    objects(&record.payload),
                    replay(&queue, &record, &settings).await,
                ),
                Err(reason) => (
                    Vec::new(),
                    Err(format!("not a Lambda failure record: {reason}")),
                ),
            };
            let error = match result {
                Ok(()) => queue
                    .session
                    .sqs
                    .delete_message()
                    .queue_url(&queue.url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .err()
                    .map(|err| {
                        aws_failure(
                            "copied, but cannot delete the message (it will be retried again)",
                            &err,
                        )
                        .0
                    }),
                Err(error) => Some(error),
            };
            if error.is_some() {
                kept.push(message);
            }
            events.push(RetriedEvent {
                message_id,
                objects,
                outcome: if error.is_none() { "delivered" } else { "kept" },
                error,
            });
        }
    }
    for message in &kept {
        if let Err(error) = queue.release(message).await {
            let id = message.message_id().unwrap_or_default();
            if let Some(event) = events.iter_mut().find(|e| e.message_id == id) {
                let said = event.error.take().unwrap_or_default();
                event.error = Some(format!("{said}; {error}"));
            }
        }
    }
    let delivered = events.iter().filter(|e| e.outcome == "delivered").count();
    Ok(RetryReport {
        in_flight: queue.in_flight().await?,
        ok: delivered == events.len(),
        source: queue.source.clone(),
        delivered,
        kept: events.len() - delivered,
        events,
    })
}

/// Invokes `function` again, asynchronously, with the reconcile event that
/// failed.
async fn resume_in_function(queue: &Queue, function: &str, payload: &Value) -> Result<(), String> {
    let payload = serde_json::to_vec(payload)
        .map_err(|err| format!("cannot write the reconcile event again: {err}"))?;
    crate::aws::invoke_async(&queue.session.lambda, function, payload)
        .await
        .map_err(|err| aws_failure(format!("cannot invoke Lambda function {function}"), &err).0)
}

/// The handler's own work for one failed event, run here.
async fn replay(queue: &Queue, record: &Record, settings: &CopySettings) -> Result<(), String> {
    let edge = queue.functions.get(&record.function).ok_or_else(|| {
        format!(
            "function {} is no longer deployed for this source: its destination is unknown; \
             the message is kept",
            record.function
        )
    })?;
    // A reconcile that failed: its function goes on with it where it
    // failed, in AWS, as the run would have (its copies there, not here).
    if let Some(reconcile) = ReconcileEvent::parse(&record.payload) {
        reconcile?;
        return resume_in_function(queue, &edge.function, &record.payload).await;
    }
    let target = Target::new(edge.destination.clone(), &edge.settings);
    let clients = S3Clients {
        source: queue.session.s3.clone(),
        destination: queue
            .session
            .s3_in(edge.settings.destination_region.as_deref()),
    };
    // A multipart copy that failed for good after handing on (its upload
    // aborted): copied afresh, here, where no deadline cuts it short.
    let steps = match Continuation::parse(&record.payload) {
        Some(continuation) => vec![Step::Copy(continuation?.restart(&target)?)],
        None => {
            let notices = parse_invocation(&record.payload).map_err(|err| err.to_string())?;
            plan(notices, &target)
        }
    };
    let deadline = tokio::time::Instant::now() + RETRY_VISIBILITY;
    // The handler's own runner: the same copies, deletes and refusals.
    let runner = Runner {
        s3: &clients,
        settings,
        destination: &edge.destination,
        metrics: false,
        handoff: None,
    };
    let failures = runner.run(steps, deadline, "retry").await.failures;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As Lambda documents it (AWS Lambda Developer Guide, "Invocation record").
    const RECORD: &str = r#"{
        "version": "1.0",
        "timestamp": "2019-11-14T18:16:05.568Z",
        "requestContext": {
            "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
            "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:photos-backup:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "requestPayload": {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "photos"}, "object": {"key": "a+b/%C3%A9.jpg", "size": 3}}}]},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "S3fan.ReplicationFailed",
            "errorMessage": "1 of 1 records failed: NoSuchBucket"}
    }"#;

    #[test]
    fn a_lambda_failure_record_names_function_objects_and_error() {
        let record = parse_record(RECORD).unwrap();
        assert_eq!(record.function, "photos-backup");
        assert_eq!(record.condition, "RetriesExhausted");
        assert_eq!(
            record.error,
            "S3fan.ReplicationFailed: 1 of 1 records failed: NoSuchBucket"
        );
        assert_eq!(objects(&record.payload), ["s3://photos/a b/é.jpg"]);
    }

    #[test]
    fn an_unusable_message_says_what_it_lacks() {
        assert!(parse_record("not json").unwrap_err().contains("not JSON"));
        assert!(
            parse_record(r#"{"requestContext": {}, "requestPayload": {}}"#)
                .unwrap_err()
                .contains("functionArn")
        );
        let no_payload = r#"{"requestContext": {"functionArn": "arn:aws:lambda:r:1:function:f"}}"#;
        assert!(
            parse_record(no_payload)
                .unwrap_err()
                .contains("requestPayload")
        );
        let age = r#"{"requestContext": {"functionArn": "arn:aws:lambda:r:1:function:f",
            "condition": "EventAgeExceeded"}, "requestPayload": {"Records": []}}"#;
        assert_eq!(parse_record(age).unwrap().error, "EventAgeExceeded");
    }
}
