//! Parsing what Lambda hands the function: an SNS notification wrapping an S3
//! event (the fan-out path), a bare S3 event (S3 invoking the function
//! directly), or S3's `s3:TestEvent`. Pure: no I/O, so every shape is tested
//! without a server.
//!
//! Parsing is lenient on purpose. Real S3 events carry `userIdentity`,
//! `requestParameters`, `responseElements`, `sequencer` and `versionId`; moto's
//! omit them; neither is wrong. Only what a copy needs is required: the bucket
//! name and the key. A bad record does not hide the good ones: each record
//! parses to its own `Notice`, and only a payload of an unknown shape fails as
//! a whole.

use serde::Deserialize;
use serde_json::Value;

use super::encoding::decode_event_key;

/// One thing an invocation asks of the handler.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// S3's `s3:TestEvent`, sent each time a notification configuration is
    /// saved. Nothing to copy.
    TestEvent { bucket: Option<String> },
    /// One S3 event record.
    Object(ObjectEvent),
    /// A record that could not be understood; `location` says which one.
    Invalid { location: String, reason: String },
}

/// One S3 event record, with its key decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    /// Where in the payload this record was, e.g. `Records[0].Sns.Message.Records[1]`.
    pub location: String,
    /// e.g. `ObjectCreated:Put`, `ObjectRemoved:Delete`.
    pub event_name: String,
    pub bucket: String,
    /// The object's real key, decoded from the event's form encoding.
    pub key: String,
    pub size: Option<u64>,
    /// Unquoted, as S3 puts it in events.
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub sequencer: Option<String>,
    /// When S3 says the change happened (`eventTime`), in milliseconds since
    /// the Unix epoch: where the replication latency starts.
    pub event_time_ms: Option<u64>,
}

impl ObjectEvent {
    pub fn is_object_created(&self) -> bool {
        self.event_name.starts_with("ObjectCreated:")
    }
}

/// The payload as a whole is not something this handler knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unrecognised event: expected an SNS notification or an S3 event (an object with \"Records\"), \
     or an s3:TestEvent; received {received}"
)]
pub struct UnknownShape {
    pub received: String,
}

/// One S3 `ObjectCreated:Put` event record for an object, shaped and
/// key-encoded as S3 writes it: what `backfill --via-lambda` publishes and
/// what a failed Batch Operations task leaves in the failure queue. Size
/// and ETag are left out when not known; the copy then asks S3.
pub fn created_record(
    bucket: &str,
    region: &str,
    key: &str,
    size: Option<u64>,
    etag: Option<&str>,
    event_time: &str,
) -> Value {
    let mut object = serde_json::json!({ "key": super::encoding::encode_event_key(key) });
    if let Some(size) = size {
        object["size"] = size.into();
    }
    if let Some(etag) = etag {
        object["eTag"] = etag.into();
    }
    serde_json::json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": event_time,
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "s3fan"},
        "requestParameters": {"sourceIPAddress": "s3fan"},
        "responseElements": {},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "s3fan-backfill",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": object,
        }
    })
}

/// Parses one invocation payload into the notices it carries, in order.
pub fn parse_invocation(payload: &Value) -> Result<Vec<Notice>, UnknownShape> {
    if is_test_event(payload) {
        return Ok(vec![test_event(payload)]);
    }
    let Some(records) = payload.get("Records").and_then(Value::as_array) else {
        return Err(UnknownShape {
            received: describe(payload),
        });
    };
    let mut notices = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        let location = format!("Records[{index}]");
        if let Some(sns) = record.get("Sns") {
            parse_sns_message(sns, &location, &mut notices);
        } else {
            notices.push(parse_s3_record(record, location));
        }
    }
    Ok(notices)
}

fn is_test_event(value: &Value) -> bool {
    value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent")
}

fn test_event(value: &Value) -> Notice {
    Notice::TestEvent {
        bucket: value
            .get("Bucket")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// An SNS record's `Message` is a JSON string holding one S3 notification,
/// which itself may hold several records.
fn parse_sns_message(sns: &Value, location: &str, notices: &mut Vec<Notice>) {
    let location = format!("{location}.Sns.Message");
    let Some(message) = sns.get("Message").and_then(Value::as_str) else {
        notices.push(Notice::Invalid {
            location,
            reason: "SNS record has no Message string".into(),
        });
        return;
    };
    let inner: Value = match serde_json::from_str(message) {
        Ok(inner) => inner,
        Err(err) => {
            notices.push(Notice::Invalid {
                location,
                reason: format!(
                    "SNS message is not JSON ({err}); it starts {:?}",
                    truncate(message, 120)
                ),
            });
            return;
        }
    };
    if is_test_event(&inner) {
        notices.push(test_event(&inner));
        return;
    }
    match inner.get("Records").and_then(Value::as_array) {
        Some(records) => {
            for (index, record) in records.iter().enumerate() {
                notices.push(parse_s3_record(
                    record,
                    format!("{location}.Records[{index}]"),
                ));
            }
        }
        None => notices.push(Notice::Invalid {
            location,
            reason: format!(
                "SNS message is not an S3 event notification; received {}",
                describe(&inner)
            ),
        }),
    }
}

/// The parts of an S3 record s3fan reads; everything else is ignored.
#[derive(Deserialize)]
struct RawRecord {
    #[serde(rename = "eventSource")]
    event_source: Option<String>,
    #[serde(rename = "eventName")]
    event_name: Option<String>,
    #[serde(rename = "eventTime")]
    event_time: Option<String>,
    s3: Option<RawEntity>,
}

#[derive(Deserialize)]
struct RawEntity {
    bucket: Option<RawBucket>,
    object: Option<RawObject>,
}

#[derive(Deserialize)]
struct RawBucket {
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawObject {
    key: Option<String>,
    size: Option<u64>,
    #[serde(rename = "eTag")]
    etag: Option<String>,
    #[serde(rename = "versionId")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

fn parse_s3_record(record: &Value, location: String) -> Notice {
    let invalid = |reason: String| Notice::Invalid {
        location: location.clone(),
        reason,
    };
    let raw: RawRecord = match serde_json::from_value(record.clone()) {
        Ok(raw) => raw,
        Err(err) => return invalid(format!("not an S3 event record: {err}")),
    };
    if let Some(source) = raw.event_source.as_deref() {
        if source != "aws:s3" {
            return invalid(format!("eventSource is {source:?}, not \"aws:s3\""));
        }
    }
    let Some(entity) = raw.s3 else {
        return invalid(format!(
            "record has no \"s3\" member; received {}",
            describe(record)
        ));
    };
    let Some(bucket) = entity.bucket.and_then(|b| b.name).filter(|n| !n.is_empty()) else {
        return invalid("record has no s3.bucket.name".into());
    };
    let Some(object) = entity.object else {
        return invalid(format!("record for bucket {bucket:?} has no s3.object"));
    };
    let Some(raw_key) = object.key else {
        return invalid(format!("record for bucket {bucket:?} has no s3.object.key"));
    };
    let key = match decode_event_key(&raw_key) {
        Ok(key) => key,
        Err(err) => return invalid(format!("record for bucket {bucket:?}: {err}")),
    };
    Notice::Object(ObjectEvent {
        location,
        event_name: raw.event_name.unwrap_or_default(),
        bucket,
        key,
        size: object.size,
        etag: object.etag.filter(|e| !e.is_empty()),
        version_id: object.version_id.filter(|v| !v.is_empty() && v != "null"),
        sequencer: object.sequencer,
        event_time_ms: raw.event_time.as_deref().and_then(epoch_ms),
    })
}

/// An ISO 8601 time as S3 writes `eventTime` (`2026-11-26T13:42:25.123Z`),
/// in milliseconds since the epoch; `None` for anything else, since an
/// unknown time only leaves the latency unknown.
pub fn epoch_ms(time: &str) -> Option<u64> {
    use aws_smithy_types::date_time::{DateTime, Format};
    let millis = DateTime::from_str(time, Format::DateTime)
        .ok()?
        .to_millis()
        .ok()?;
    u64::try_from(millis).ok()
}

/// A short description of an unexpected value, for error messages: its type,
/// its keys when it is an object, and never more than a few hundred bytes.
fn describe(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().take(12).map(String::as_str).collect();
            let more = if map.len() > keys.len() { ", ..." } else { "" };
            format!("a JSON object with keys [{}{more}]", keys.join(", "))
        }
        other => {
            let kind = match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => unreachable!("handled above"),
            };
            format!("{kind}: {}", truncate(&other.to_string(), 200))
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let text = match name {
            "aws-s3-put" => include_str!("../../tests/fixtures/aws-s3-put.json"),
            "aws-sns-s3" => include_str!("../../tests/fixtures/aws-sns-s3.json"),
            "aws-s3-test-event" => include_str!("../../tests/fixtures/aws-s3-test-event.json"),
            "moto-sns-s3" => include_str!("../../tests/fixtures/moto-sns-s3.json"),
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str(text).unwrap()
    }

    fn objects(notices: &[Notice]) -> Vec<&ObjectEvent> {
        notices
            .iter()
            .filter_map(|n| match n {
                Notice::Object(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn parses_the_documented_s3_put_event() {
        let notices = parse_invocation(&fixture("aws-s3-put")).unwrap();
        assert_eq!(
            notices,
            vec![Notice::Object(ObjectEvent {
                location: "Records[0]".into(),
                event_name: "ObjectCreated:Put".into(),
                bucket: "mybucket".into(),
                key: "HappyFace.jpg".into(),
                size: Some(1024),
                etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
                version_id: Some("096fKKXTRTtl3on89fVO.nfljtsv6qko".into()),
                sequencer: Some("0055AED6DCD90281E5".into()),
                event_time_ms: Some(0),
            })]
        );
    }

    #[test]
    fn parses_every_record_of_an_sns_wrapped_event() {
        let notices = parse_invocation(&fixture("aws-sns-s3")).unwrap();
        let objects = objects(&notices);
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].key, "photos/Happy Face 日本.jpg");
        assert_eq!(objects[0].location, "Records[0].Sns.Message.Records[0]");
        assert!(objects[0].is_object_created());
        assert_eq!(objects[1].key, "old.txt");
        assert_eq!(objects[1].event_name, "ObjectRemoved:Delete");
        assert!(!objects[1].is_object_created());
        assert_eq!(objects[1].size, None);
    }

    #[test]
    fn parses_motos_sparse_shape() {
        let notices = parse_invocation(&fixture("moto-sns-s3")).unwrap();
        let objects = objects(&notices);
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].bucket, "src-bucket");
        assert_eq!(objects[0].key, "dir/a b+c.txt");
        assert_eq!(objects[0].size, Some(11));
        assert_eq!(objects[0].version_id, None);
        assert_eq!(objects[0].sequencer, None);
    }

    #[test]
    fn recognises_test_events_bare_and_wrapped() {
        let bare = fixture("aws-s3-test-event");
        assert_eq!(
            parse_invocation(&bare).unwrap(),
            vec![Notice::TestEvent {
                bucket: Some("bucketname".into())
            }]
        );
        let wrapped = json!({"Records": [{"EventSource": "aws:sns",
            "Sns": {"Message": bare.to_string()}}]});
        assert_eq!(
            parse_invocation(&wrapped).unwrap(),
            vec![Notice::TestEvent {
                bucket: Some("bucketname".into())
            }]
        );
    }

    #[test]
    fn a_record_without_bucket_or_key_is_invalid_but_does_not_hide_others() {
        let payload = json!({"Records": [
            {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": {}, "object": {"key": "k"}}},
            {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {}}},
            {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "ok"}}},
        ]});
        let notices = parse_invocation(&payload).unwrap();
        assert!(matches!(&notices[0], Notice::Invalid { location, reason }
            if location == "Records[0]" && reason.contains("s3.bucket.name")));
        assert!(matches!(&notices[1], Notice::Invalid { reason, .. }
            if reason.contains("s3.object.key") && reason.contains("\"b\"")));
        assert_eq!(objects(&notices)[0].key, "ok");
    }

    #[test]
    fn wrong_types_and_foreign_records_are_invalid() {
        let payload = json!({"Records": [
            {"eventSource": "aws:s3", "s3": {"bucket": {"name": 7}, "object": {"key": "k"}}},
            {"eventSource": "aws:sqs", "body": "{}"},
            {"EventSource": "aws:sns", "Sns": {"Message": "{'Records': []}"}},
            {"EventSource": "aws:sns", "Sns": {"Message": "{\"hello\": 1}"}},
            {"EventSource": "aws:sns", "Sns": {}},
            {"eventSource": "aws:s3", "s3": {"bucket": {"name": "b"}, "object": {"key": "bad%FF"}}},
        ]});
        let notices = parse_invocation(&payload).unwrap();
        let reasons: Vec<String> = notices
            .iter()
            .map(|n| match n {
                Notice::Invalid { reason, .. } => reason.clone(),
                other => panic!("expected invalid, got {other:?}"),
            })
            .collect();
        assert!(reasons[0].contains("invalid type"), "{}", reasons[0]);
        assert!(reasons[1].contains("aws:sqs"), "{}", reasons[1]);
        assert!(reasons[2].contains("not JSON"), "{}", reasons[2]);
        assert!(reasons[3].contains("keys [hello]"), "{}", reasons[3]);
        assert!(reasons[4].contains("no Message"), "{}", reasons[4]);
        assert!(reasons[5].contains("UTF-8"), "{}", reasons[5]);
    }

    #[test]
    fn unknown_shapes_say_what_was_received() {
        let err = parse_invocation(&json!({"hello": "world", "n": 1})).unwrap_err();
        assert!(err.to_string().contains("keys [hello, n]"), "{err}");
        let err = parse_invocation(&json!("just a string")).unwrap_err();
        assert!(
            err.to_string().contains("a string: \"just a string\""),
            "{err}"
        );
        let err = parse_invocation(&json!({"Records": "nope"})).unwrap_err();
        assert!(err.to_string().contains("keys [Records]"), "{err}");
        let long = "x".repeat(10_000);
        let err = parse_invocation(&json!(long)).unwrap_err();
        assert!(err.to_string().len() < 500);
    }

    #[test]
    fn a_null_version_id_means_no_version() {
        let payload = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b"}, "object": {"key": "k", "versionId": "null", "eTag": ""}}}]});
        let notices = parse_invocation(&payload).unwrap();
        let object = objects(&notices)[0];
        assert_eq!(object.version_id, None);
        assert_eq!(object.etag, None);
    }

    #[test]
    fn event_times_read_as_s3_writes_them_and_anything_else_is_unknown() {
        assert_eq!(epoch_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            epoch_ms("2026-11-26T13:42:25.123Z"),
            Some(1_795_700_545_123)
        );
        assert_eq!(epoch_ms("2026-11-26T13:42:25Z"), Some(1_795_700_545_000));
        for bad in ["", "yesterday", "1969-12-31T23:59:59.000Z"] {
            assert_eq!(epoch_ms(bad), None, "{bad:?}");
        }
    }
}
