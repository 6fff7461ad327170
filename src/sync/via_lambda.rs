//! `s3fan backfill --via-lambda`: the copying runs on Lambda, at Lambda's
//! scale, and this process only lists and publishes. Every object that some
//! destination lacks (or holds otherwise) becomes a record of a synthetic
//! S3 event, shaped and key-encoded exactly as S3's own, published to the
//! fan-out's topic, many records per message; each deployed function then
//! copies it as it would a new object. Objects every destination already
//! holds are not published; one that only some lack is copied to all of
//! them again (the same bytes: SNS gives every function every message).

use std::time::{SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use super::Fanout;
use super::diff::needed_anywhere;
use super::listing::Entry;
use crate::fanout::{DeployError, aws_failure};
use crate::handler::event::created_record;
use crate::progress::Progress;

/// Records per SNS message, and the message size kept under SNS's 256 KiB.
const RECORDS_PER_MESSAGE: usize = 100;
const MAX_MESSAGE_BYTES: usize = 200 * 1024;

#[derive(Debug, Default, Serialize)]
pub struct ViaLambdaReport {
    pub ok: bool,
    pub source: String,
    pub topic: String,
    pub dry_run: bool,
    /// Objects some destination lacks or holds otherwise.
    pub objects: u64,
    pub bytes: u64,
    /// SNS messages published (with --dry-run: that would be).
    pub messages: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl crate::report::Report for ViaLambdaReport {
    fn render_text(&self) -> String {
        let mut out = format!(
            "s3fan backfill --via-lambda{}: s3://{}\n  {} objects ({} bytes) {} {} messages to {}\n",
            if self.dry_run { " --dry-run" } else { "" },
            self.source,
            self.objects,
            self.bytes,
            if self.dry_run {
                "would go in"
            } else {
                "published in"
            },
            self.messages,
            self.topic
        );
        if let Some(error) = &self.error {
            out.push_str(&format!(
                "  stopped: {error}\n  run the same command again: what is already copied is skipped\n"
            ));
        } else if !self.dry_run {
            out.push_str(
                "  the functions copy them now; `s3fan verify` shows when they are done, \
                 `s3fan failures` what failed\n",
            );
        }
        out
    }

    fn verdict(&self) -> crate::report::Verdict {
        crate::report::Verdict::of(!self.ok, self.dry_run && self.objects > 0)
    }
}

/// One S3 event record for `entry`, as S3 writes it.
pub fn record(bucket: &str, region: &str, entry: &Entry, event_time: &str) -> Value {
    created_record(
        bucket,
        region,
        &entry.key,
        Some(entry.size),
        Some(&entry.etag),
        event_time,
    )
}

/// Groups records into messages of at most 100 records and 200 KiB.
#[derive(Default)]
struct Batch {
    records: Vec<Value>,
    bytes: usize,
}

impl Batch {
    /// Adds `record`; returns the full message to publish first, if this
    /// record does not fit in the current one.
    fn push(&mut self, record: Value) -> Option<String> {
        let size = record.to_string().len() + 1;
        let full = !self.records.is_empty()
            && (self.records.len() >= RECORDS_PER_MESSAGE || self.bytes + size > MAX_MESSAGE_BYTES);
        let flushed = full.then(|| self.take()).flatten();
        self.bytes += size;
        self.records.push(record);
        flushed
    }

    fn take(&mut self) -> Option<String> {
        if self.records.is_empty() {
            return None;
        }
        self.bytes = 0;
        Some(json!({ "Records": std::mem::take(&mut self.records) }).to_string())
    }
}

pub async fn backfill(fanout: &Fanout, dry_run: bool) -> ViaLambdaReport {
    let progress = Progress::new(format!("backfill --via-lambda s3://{}", fanout.source));
    let mut report = ViaLambdaReport {
        source: fanout.source.clone(),
        topic: fanout.topic_arn.clone(),
        dry_run,
        ..ViaLambdaReport::default()
    };
    let event_time = event_time();
    let copies = fanout
        .destinations
        .iter()
        .map(|destination| fanout.copies_listing(destination))
        .collect();
    let mut needed = std::pin::pin!(needed_anywhere(fanout.source_listing(), copies));
    let mut batch = Batch::default();
    let result: Result<(), DeployError> = async {
        while let Some(entry) = needed.try_next().await? {
            report.objects += 1;
            report.bytes += entry.size;
            let record = record(&fanout.source, &fanout.region, &entry, &event_time);
            if let Some(message) = batch.push(record) {
                publish(fanout, &message, dry_run).await?;
                report.messages += 1;
            }
            progress
                .update(|| format!("{} objects in {} messages", report.objects, report.messages));
        }
        if let Some(message) = batch.take() {
            publish(fanout, &message, dry_run).await?;
            report.messages += 1;
        }
        Ok(())
    }
    .await;
    report.error = result.err().map(|err| err.to_string());
    report.ok = report.error.is_none();
    progress.finish(format!(
        "{} objects in {} messages",
        report.objects, report.messages
    ));
    report
}

async fn publish(fanout: &Fanout, message: &str, dry_run: bool) -> Result<(), DeployError> {
    if dry_run {
        return Ok(());
    }
    fanout
        .sns
        .publish()
        .topic_arn(&fanout.topic_arn)
        .subject("Amazon S3 Notification")
        .message(message)
        .send()
        .await
        .map(|_| ())
        .map_err(|err| {
            aws_failure(
                format!(
                    "cannot publish to {} (was the fan-out deployed? s3fan deploy makes it)",
                    fanout.topic_arn
                ),
                &err,
            )
        })
}

/// Now, as S3 writes `eventTime`: `2026-11-26T13:42:25.000Z`.
fn event_time() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    aws_smithy_types::DateTime::from_secs(seconds as i64)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::event::{Notice, parse_invocation};

    fn entry(key: &str) -> Entry {
        Entry {
            key: key.into(),
            size: 42,
            etag: "abc123".into(),
        }
    }

    #[test]
    fn a_synthetic_event_parses_as_s3s_own_with_the_same_key() {
        let keys = ["a b+c/é 日本.txt", "100%.bin", "sp  ace*"];
        let records: Vec<Value> = keys
            .iter()
            .map(|k| record("photos", "eu-west-1", &entry(k), "2026-11-26T13:42:25Z"))
            .collect();
        let message = json!({ "Records": records }).to_string();
        // As SNS delivers it: the S3 event is the message text.
        let delivered =
            json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": message}}]});
        let notices = parse_invocation(&delivered).unwrap();
        let parsed: Vec<(String, Option<u64>, Option<String>)> = notices
            .into_iter()
            .map(|n| match n {
                Notice::Object(e) => {
                    assert_eq!(e.event_name, "ObjectCreated:Put");
                    assert_eq!(e.bucket, "photos");
                    (e.key, e.size, e.etag)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        for (key, (parsed_key, size, etag)) in keys.iter().zip(parsed) {
            assert_eq!(parsed_key, *key);
            assert_eq!((size, etag.as_deref()), (Some(42), Some("abc123")));
        }
        // The key is encoded as S3 encodes it: space as '+', '+' as %2B.
        assert_eq!(
            records[0]["s3"]["object"]["key"],
            "a+b%2Bc/%C3%A9+%E6%97%A5%E6%9C%AC.txt"
        );
    }

    #[test]
    fn messages_hold_at_most_100_records_and_stay_under_the_sns_limit() {
        let mut batch = Batch::default();
        let mut messages = Vec::new();
        for i in 0..250 {
            messages.extend(batch.push(record("b", "r", &entry(&format!("k{i}")), "t")));
        }
        messages.extend(batch.take());
        let counts: Vec<usize> = messages
            .iter()
            .map(|m| {
                serde_json::from_str::<Value>(m).unwrap()["Records"]
                    .as_array()
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(counts, [100, 100, 50]);
        // Long keys: the byte limit splits first.
        let mut batch = Batch::default();
        // 1,000 characters that encode to 6 bytes each.
        let long = "é".repeat(1000);
        let mut messages = Vec::new();
        for _ in 0..100 {
            messages.extend(batch.push(record("b", "r", &entry(&long), "t")));
        }
        messages.extend(batch.take());
        assert!(messages.len() > 1);
        assert!(
            messages.iter().all(|m| m.len() <= MAX_MESSAGE_BYTES + 100),
            "{}",
            messages[0].len()
        );
        assert_eq!(batch.take(), None);
    }
}
