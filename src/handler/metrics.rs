//! CloudWatch metrics without an API call: with deploy `--metrics`, each record's outcome is also written to the log as one
//! line in the Embedded Metric Format, which CloudWatch Logs turns into
//! metrics in the `s3fan` namespace, by destination.
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use serde_json::{Value, json};

pub const NAMESPACE: &str = "s3fan";

/// What one record came to, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Copied,
    Deleted,
    SourceChanged,
    Failed,
}

/// The EMF document for one record: one count per outcome (so each metric
/// sums to the number of such records), the bytes copied, and the duration.
pub fn record(
    destination: &str,
    counted: Counted,
    bytes: u64,
    duration_ms: f64,
    timestamp_ms: u64,
) -> Value {
    let count = |which: Counted| u64::from(counted == which);
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Destination"]],
                "Metrics": [
                    {"Name": "Copied", "Unit": "Count"},
                    {"Name": "Deleted", "Unit": "Count"},
                    {"Name": "SourceChanged", "Unit": "Count"},
                    {"Name": "Failed", "Unit": "Count"},
                    {"Name": "BytesCopied", "Unit": "Bytes"},
                    {"Name": "Duration", "Unit": "Milliseconds"}
                ]
            }]
        },
        "Destination": destination,
        "Copied": count(Counted::Copied),
        "Deleted": count(Counted::Deleted),
        "SourceChanged": count(Counted::SourceChanged),
        "Failed": count(Counted::Failed),
        "BytesCopied": if counted == Counted::Copied { bytes } else { 0 },
        "Duration": duration_ms
    })
}

/// Writes the document as one line on stdout (Lambda sends it to CloudWatch Logs).
pub fn emit(document: &Value) {
    println!("{document}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_an_emf_document_with_one_count_set() {
        let document = record("dst.eu", Counted::Copied, 1234, 5.5, 1_700_000_000_000);
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "s3fan");
        assert_eq!(directive["Dimensions"], json!([["Destination"]]));
        // Every metric the directive names is a number at the top level,
        // as EMF requires.
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(document[name].is_number(), "{name} in {document}");
        }
        assert_eq!(document["Destination"], "dst.eu");
        assert_eq!(document["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(
            (
                &document["Copied"],
                &document["Failed"],
                &document["BytesCopied"]
            ),
            (&json!(1), &json!(0), &json!(1234))
        );
        let failed = record("dst.eu", Counted::Failed, 1234, 1.0, 0);
        assert_eq!(
            (&failed["Copied"], &failed["Failed"], &failed["BytesCopied"]),
            (&json!(0), &json!(1), &json!(0)),
            "a failed copy moved no bytes"
        );
    }
}
