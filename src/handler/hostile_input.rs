//! Hostile input (issue 8 §4): property tests over the pure half of the
//! handler, event → notices → steps, with arbitrary JSON, arbitrary keys and
//! the shapes an attacker or a broken producer would send. None may panic;
//! every record must get a step; a key must come out exactly as it went in
//! (no normalisation of `..`, no trimming of control characters).
//!
//! `PROPTEST_CASES=100000 cargo test --release --bin s3fan hostile_input`
//! is the long run; CI runs proptest's default of 256 cases per property.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::encoding::{decode_event_key, encode_event_key};
use super::event::{Notice, parse_invocation};
use super::plan::{Step, Target, plan};

fn target(key_prefix: Option<&str>) -> Target {
    Target {
        options: Default::default(),
        bucket: "dst".into(),
        prefix: None,
        suffix: None,
        replicate_deletes: true,
        replicate_tags: true,
        key_prefix: key_prefix.map(str::to_owned),
    }
}

/// An SNS-wrapped S3 event for `keys`, encoded as S3 encodes them.
fn sns_event(keys: &[String]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            json!({
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "src"},
                       "object": {"key": encode_event_key(key), "size": i, "eTag": "e",
                                  "sequencer": format!("{i:X}")}}
            })
        })
        .collect();
    json!({"Records": [{"Sns": {"Message": json!({"Records": records}).to_string()}}]})
}

/// Any JSON value, nested a few levels, with the field names the parser
/// looks for appearing often.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::from),
        Just(Value::from("s3:TestEvent")),
        Just(Value::from("ObjectCreated:Put")),
        Just(Value::from("ObjectRemoved:Delete")),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        let names = prop_oneof![
            Just("Records".to_owned()),
            Just("Sns".to_owned()),
            Just("Message".to_owned()),
            Just("s3".to_owned()),
            Just("bucket".to_owned()),
            Just("object".to_owned()),
            Just("name".to_owned()),
            Just("key".to_owned()),
            Just("size".to_owned()),
            Just("eventName".to_owned()),
            Just("Event".to_owned()),
            "[a-zA-Z]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(names, inner.clone(), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            // JSON inside a string, as SNS carries the S3 event.
            inner.prop_map(|v| Value::from(v.to_string())),
        ]
    })
}

/// Keys of up to 1,024 bytes of any Unicode, control characters and `..`
/// segments included.
fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{1,200}",
        "[\\x00-\\x1f\\x7f ./+%]{1,64}",
        "(\\.\\./|\\./|/|[a-z]{1,3}|%2F|\\+){1,40}",
        prop::collection::vec(any::<char>(), 1..300).prop_map(|c| c.into_iter().collect()),
    ]
    .prop_map(|key: String| {
        // S3's limit is 1,024 bytes: cut at a character boundary.
        let mut end = key.len().min(1024);
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        key[..end].to_owned()
    })
    .prop_filter("S3 keys are not empty", |key| !key.is_empty())
}

proptest! {
    #[test]
    fn no_payload_makes_the_parser_or_the_planner_panic(payload in any_json()) {
        if let Ok(notices) = parse_invocation(&payload) {
            let count = notices.len();
            let steps = plan(notices, &target(Some("k/")));
            prop_assert_eq!(steps.len(), count);
        }
    }

    #[test]
    fn no_message_text_makes_the_parser_panic(message in "\\PC{0,300}") {
        let payload = json!({"Records": [{"Sns": {"Message": message}}]});
        let notices = parse_invocation(&payload).expect("an SNS record is a known shape");
        if serde_json::from_str::<Value>(&message).is_err() {
            prop_assert!(
                matches!(&notices[..], [Notice::Invalid { .. }]),
                "{:?}", notices
            );
        }
    }

    #[test]
    fn every_key_is_copied_to_exactly_itself(keys in prop::collection::vec(any_key(), 1..8)) {
        let notices = parse_invocation(&sns_event(&keys)).expect("parse");
        let steps = plan(notices, &target(None));
        prop_assert_eq!(steps.len(), keys.len());
        for (step, key) in steps.iter().zip(&keys) {
            match step {
                Step::Copy(copy) => {
                    prop_assert_eq!(&copy.route.key, key);
                    prop_assert_eq!(&copy.route.destination_key, key);
                }
                // The same key twice in one invocation: the later one acts.
                Step::Skip { reason, .. } => prop_assert!(reason.contains("superseded"), "{reason}"),
                other => prop_assert!(false, "{key:?} planned as {other:?}"),
            }
        }
    }

    #[test]
    fn decoding_never_panics_and_inverts_encoding(raw in "\\PC{0,100}", key in any_key()) {
        let _ = decode_event_key(&raw);
        prop_assert_eq!(decode_event_key(&encode_event_key(&key)), Ok(key));
    }
}

#[test]
fn deep_nesting_is_an_invalid_record_not_a_stack_overflow() {
    let depth = 100_000;
    let message = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let notices = parse_invocation(&json!({"Records": [{"Sns": {"Message": message}}]}))
        .expect("an SNS record is a known shape");
    assert!(
        matches!(&notices[..], [Notice::Invalid { reason, .. }] if reason.contains("not JSON")),
        "{notices:?}"
    );
}

#[test]
fn a_huge_event_is_parsed_record_by_record() {
    let keys: Vec<String> = (0..20_000).map(|i| format!("k/{i}")).collect();
    let steps = plan(
        parse_invocation(&sns_event(&keys)).expect("parse"),
        &target(None),
    );
    assert_eq!(steps.len(), 20_000);
    assert!(steps.iter().all(|s| matches!(s, Step::Copy(_))));
}

#[test]
fn a_prefix_that_pushes_a_key_past_1024_bytes_is_refused_not_truncated() {
    let key = "é".repeat(512); // 1,024 bytes
    let steps = plan(
        parse_invocation(&sns_event(std::slice::from_ref(&key))).expect("parse"),
        &target(Some("backup/")),
    );
    assert!(
        matches!(&steps[..], [Step::Refuse { reason, .. }] if reason.contains("1024") || reason.contains("1,024")),
        "{steps:?}"
    );
}
