//! S3 Batch Operations' `LambdaInvoke`: the invocation a job sends for the
//! objects of its manifest, and the answer it expects, one result per task.
//! Pure: the tasks become the same notices an S3 event's records do, so
//! they are planned and copied by the same code; `crate::lambda` runs them.
//!
//! Both invocation schemas are read: 1.0 names the bucket by ARN
//! (`s3BucketArn`), 2.0 by name (`s3Bucket`) and carries the job's
//! `userArguments`. The key is passed as the manifest has it, URL-encoded
//! (inventory reports and CSV manifests both encode keys), so it is
//! decoded as an event's key is.

use serde_json::{Value, json};

use super::encoding::decode_event_key;
use super::event::{Notice, ObjectEvent};

/// What `eventName` the notices of tasks carry: they are planned as created
/// objects, since a manifest names objects that exist.
pub const TASK_EVENT_NAME: &str = "ObjectCreated:BatchOperations";

/// One invocation of a Batch Operations job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `1.0` or `2.0`, answered back as received.
    pub schema: String,
    pub invocation_id: String,
    pub job_id: String,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub task_id: String,
    pub bucket: String,
    /// The decoded key, or why it could not be decoded.
    pub key: Result<String, String>,
    pub version_id: Option<String>,
}

/// How a task ended, in Batch Operations' words. A `TemporaryFailure` is
/// tried again by the job; a `PermanentFailure` is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    Succeeded,
    TemporaryFailure,
    PermanentFailure,
}

impl ResultCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultCode::Succeeded => "Succeeded",
            ResultCode::TemporaryFailure => "TemporaryFailure",
            ResultCode::PermanentFailure => "PermanentFailure",
        }
    }
}

/// What the completion report keeps of a result string; longer ones are cut.
const MAX_RESULT_STRING: usize = 1000;

impl Invocation {
    /// `None` when `payload` is not a Batch Operations invocation at all
    /// (it has no `invocationSchemaVersion`); an error when it is one this
    /// handler cannot read.
    pub fn parse(payload: &Value) -> Option<Result<Invocation, String>> {
        let schema = payload.get("invocationSchemaVersion")?;
        Some(parse(schema, payload))
    }

    /// Each task as the notice of a created object, in task order.
    pub fn notices(&self) -> Vec<Notice> {
        self.tasks
            .iter()
            .enumerate()
            .map(|(index, task)| match &task.key {
                Ok(key) => Notice::Object(ObjectEvent {
                    location: format!("tasks[{index}]"),
                    event_name: TASK_EVENT_NAME.to_owned(),
                    bucket: task.bucket.clone(),
                    key: key.clone(),
                    size: None,
                    etag: None,
                    version_id: task.version_id.clone(),
                    sequencer: None,
                    event_time_ms: None,
                }),
                Err(reason) => Notice::Invalid {
                    location: format!("tasks[{index}] (task {})", task.task_id),
                    reason: reason.clone(),
                },
            })
            .collect()
    }

    /// The answer the job expects: one result per task, in task order.
    pub fn answer(&self, results: &[(ResultCode, String)]) -> Value {
        let results: Vec<Value> = self
            .tasks
            .iter()
            .zip(results)
            .map(|(task, (code, text))| {
                json!({
                    "taskId": task.task_id,
                    "resultCode": code.as_str(),
                    "resultString": cut(text),
                })
            })
            .collect();
        json!({
            "invocationSchemaVersion": self.schema,
            "treatMissingKeysAs": ResultCode::PermanentFailure.as_str(),
            "invocationId": self.invocation_id,
            "results": results,
        })
    }
}

fn parse(schema: &Value, payload: &Value) -> Result<Invocation, String> {
    let schema = match schema.as_str() {
        Some(version @ ("1.0" | "2.0")) => version.to_owned(),
        _ => {
            return Err(format!(
                "a Batch Operations invocation of schema {schema}: s3fan reads schemas 1.0 and \
                 2.0; create the job with InvocationSchemaVersion 2.0"
            ));
        }
    };
    let invocation_id = text(payload, "invocationId")
        .ok_or("a Batch Operations invocation without invocationId")?
        .to_owned();
    let job_id = text(&payload["job"], "id").unwrap_or_default().to_owned();
    let tasks = payload
        .get("tasks")
        .and_then(Value::as_array)
        .ok_or("a Batch Operations invocation without tasks")?;
    let tasks = tasks
        .iter()
        .enumerate()
        .map(|(index, task)| {
            let task_id = text(task, "taskId")
                .ok_or_else(|| format!("tasks[{index}] has no taskId"))?
                .to_owned();
            let bucket = text(task, "s3Bucket")
                .or_else(|| text(task, "s3BucketArn").and_then(|arn| arn.rsplit(":::").next()))
                .filter(|bucket| !bucket.is_empty())
                .ok_or_else(|| format!("task {task_id} names no bucket (s3Bucket, s3BucketArn)"))?
                .to_owned();
            let key = match text(task, "s3Key") {
                Some(raw) => decode_event_key(raw)
                    .map_err(|err| format!("task {task_id}: key {raw:?}: {err}")),
                None => Err(format!("task {task_id} names no key (s3Key)")),
            };
            Ok(Task {
                task_id,
                bucket,
                key,
                version_id: text(task, "s3VersionId").map(str::to_owned),
            })
        })
        .collect::<Result<Vec<Task>, String>>()?;
    Ok(Invocation {
        schema,
        invocation_id,
        job_id,
        tasks,
    })
}

fn text<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

fn cut(text: &str) -> String {
    if text.len() <= MAX_RESULT_STRING {
        return text.to_owned();
    }
    let mut end = MAX_RESULT_STRING;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_2(tasks: Value) -> Value {
        json!({
            "invocationSchemaVersion": "2.0",
            "invocationId": "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
            "job": {"id": "f3cc4f60-61f6-4a2b-8a21-d07600c373ce", "userArguments": {"k": "v"}},
            "tasks": tasks,
        })
    }

    #[test]
    fn tasks_of_both_schemas_read_as_created_objects_with_decoded_keys() {
        let two = schema_2(json!([
            {"taskId": "t1", "s3Bucket": "photos", "s3Key": "a+b%2Bc/%C3%A9.txt", "s3VersionId": null},
            {"taskId": "t2", "s3Bucket": "photos", "s3Key": "plain", "s3VersionId": "v7"}
        ]));
        let invocation = Invocation::parse(&two).unwrap().unwrap();
        assert_eq!(invocation.schema, "2.0");
        assert_eq!(invocation.job_id, "f3cc4f60-61f6-4a2b-8a21-d07600c373ce");
        let notices = invocation.notices();
        let Notice::Object(first) = &notices[0] else {
            panic!("{notices:?}")
        };
        assert_eq!(
            (first.bucket.as_str(), first.key.as_str()),
            ("photos", "a b+c/é.txt")
        );
        assert!(first.is_object_created());
        assert!(matches!(&notices[1], Notice::Object(e) if e.version_id.as_deref() == Some("v7")));

        let one = json!({
            "invocationSchemaVersion": "1.0", "invocationId": "i", "job": {"id": "j"},
            "tasks": [{"taskId": "t", "s3Key": "k", "s3VersionId": "1",
                       "s3BucketArn": "arn:aws:s3:::amzn-s3-demo-bucket"}]
        });
        let invocation = Invocation::parse(&one).unwrap().unwrap();
        assert_eq!(invocation.tasks[0].bucket, "amzn-s3-demo-bucket");
        assert_eq!(invocation.tasks[0].key.as_deref(), Ok("k"));
    }

    #[test]
    fn other_payloads_are_not_batch_invocations_and_bad_ones_say_why() {
        assert_eq!(Invocation::parse(&json!({"Records": []})), None);
        let three = json!({"invocationSchemaVersion": "3.0", "invocationId": "i", "tasks": []});
        assert!(
            Invocation::parse(&three)
                .unwrap()
                .unwrap_err()
                .contains("schemas 1.0 and 2.0")
        );
        let no_bucket = schema_2(json!([{"taskId": "t", "s3Key": "k"}]));
        assert!(
            Invocation::parse(&no_bucket)
                .unwrap()
                .unwrap_err()
                .contains("task t names no bucket")
        );
        // A key that is not valid form encoding fails its task only.
        let bad_key = schema_2(json!([
            {"taskId": "bad", "s3Bucket": "b", "s3Key": "%FF%FE"},
            {"taskId": "good", "s3Bucket": "b", "s3Key": "ok"}
        ]));
        let notices = Invocation::parse(&bad_key).unwrap().unwrap().notices();
        assert!(
            matches!(&notices[0], Notice::Invalid { location, .. } if location.contains("task bad"))
        );
        assert!(matches!(&notices[1], Notice::Object(e) if e.key == "ok"));
    }

    #[test]
    fn the_answer_has_one_result_per_task_in_the_jobs_shape() {
        let invocation = Invocation::parse(&schema_2(json!([
            {"taskId": "t1", "s3Bucket": "b", "s3Key": "k1"},
            {"taskId": "t2", "s3Bucket": "b", "s3Key": "k2"}
        ])))
        .unwrap()
        .unwrap();
        let long = "é".repeat(800);
        let answer = invocation.answer(&[
            (ResultCode::Succeeded, "copied".into()),
            (ResultCode::PermanentFailure, long),
        ]);
        assert_eq!(answer["invocationSchemaVersion"], "2.0");
        assert_eq!(answer["treatMissingKeysAs"], "PermanentFailure");
        assert_eq!(answer["invocationId"], invocation.invocation_id);
        assert_eq!(answer["results"][0]["taskId"], "t1");
        assert_eq!(answer["results"][0]["resultCode"], "Succeeded");
        assert_eq!(answer["results"][0]["resultString"], "copied");
        assert_eq!(answer["results"][1]["resultCode"], "PermanentFailure");
        let cut = answer["results"][1]["resultString"].as_str().unwrap();
        assert!(
            cut.len() <= MAX_RESULT_STRING + 3 && cut.ends_with("..."),
            "{}",
            cut.len()
        );
    }
}
