//! CloudWatch metrics without an API call: with deploy `--metrics`, each record's outcome is also written to the log as one
//! line in the Embedded Metric Format, which CloudWatch Logs turns into
//! metrics in the `s3fan` namespace, by destination.
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use serde_json::{Value, json};

pub const NAMESPACE: &str = "s3fan";
/// From the source's write (the event's `eventTime`) to the copy's
/// completion, in milliseconds: S3 Replication's metric of the same name.
pub const REPLICATION_LATENCY: &str = "ReplicationLatency";

/// What one record came to, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Copied,
    Deleted,
    SourceChanged,
    TagsReplicated,
    Failed,
}

/// What one record is measured by.
pub struct Measured<'a> {
    pub destination: &'a str,
    pub counted: Counted,
    pub bytes: u64,
    pub duration_ms: f64,
    /// `ReplicationLatency`, for a copy an event asked for.
    pub latency_ms: Option<u64>,
    pub timestamp_ms: u64,
}

/// The EMF document for one record: one count per outcome (so each metric
/// sums to the number of such records), the bytes copied, the duration, and
/// the replication latency where there is one (a metric EMF names must be
/// in the document, so it is named only then).
pub fn record(measured: &Measured) -> Value {
    let counted = measured.counted;
    let count = |which: Counted| json!(u64::from(counted == which));
    let bytes = if counted == Counted::Copied {
        measured.bytes
    } else {
        0
    };
    let mut metrics = vec![
        ("Copied", "Count", count(Counted::Copied)),
        ("Deleted", "Count", count(Counted::Deleted)),
        ("SourceChanged", "Count", count(Counted::SourceChanged)),
        ("TagsReplicated", "Count", count(Counted::TagsReplicated)),
        ("Failed", "Count", count(Counted::Failed)),
        ("BytesCopied", "Bytes", json!(bytes)),
        ("Duration", "Milliseconds", json!(measured.duration_ms)),
    ];
    if let Some(latency) = measured.latency_ms {
        metrics.push((REPLICATION_LATENCY, "Milliseconds", json!(latency)));
    }
    document(measured.destination, measured.timestamp_ms, metrics)
}

/// One EMF document: each metric named in the directive, with its unit,
/// and its value at the top level, by destination. Named and given from
/// one list, so no metric is named without its value.
fn document(destination: &str, timestamp_ms: u64, metrics: Vec<(&str, &str, Value)>) -> Value {
    let mut document = json!({"Destination": destination});
    let mut named = Vec::new();
    for (name, unit, value) in metrics {
        named.push(json!({"Name": name, "Unit": unit}));
        document[name] = value;
    }
    document["_aws"] = json!({
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{
            "Namespace": NAMESPACE,
            "Dimensions": [["Destination"]],
            "Metrics": named
        }]
    });
    document
}

/// What a reconcile slice found and did, for the metrics.
pub struct Reconciled<'a> {
    pub destination: &'a str,
    pub examined: u64,
    /// Missing or different: what events missed.
    pub out_of_sync: u64,
    /// Copied or deleted now.
    pub repaired: u64,
    pub failed: u64,
    pub timestamp_ms: u64,
}

/// The EMF document of one reconcile slice; each metric sums over a run's
/// slices to the run's count. `ReconcileRepaired` above 0 means events were
/// missed and the reconcile put it right.
pub fn reconcile(slice: &Reconciled) -> Value {
    document(
        slice.destination,
        slice.timestamp_ms,
        vec![
            ("ReconcileExamined", "Count", json!(slice.examined)),
            ("ReconcileOutOfSync", "Count", json!(slice.out_of_sync)),
            ("ReconcileRepaired", "Count", json!(slice.repaired)),
            ("ReconcileFailed", "Count", json!(slice.failed)),
        ],
    )
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
        let measured = |counted, latency_ms| Measured {
            destination: "dst.eu",
            counted,
            bytes: 1234,
            duration_ms: 5.5,
            latency_ms,
            timestamp_ms: 1_700_000_000_000,
        };
        let document = record(&measured(Counted::Copied, Some(2500)));
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
        assert_eq!(document["ReplicationLatency"], 2500);
        let failed = record(&measured(Counted::Failed, None));
        assert_eq!(
            (&failed["Copied"], &failed["Failed"], &failed["BytesCopied"]),
            (&json!(0), &json!(1), &json!(0)),
            "a failed copy moved no bytes"
        );
        // Without a latency the metric is neither named nor present.
        assert!(failed.get("ReplicationLatency").is_none());
        let names: Vec<&Value> = failed["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["Name"])
            .collect();
        assert!(!names.contains(&&json!("ReplicationLatency")), "{names:?}");
    }

    #[test]
    fn a_reconcile_slice_is_an_emf_document_of_its_four_counts() {
        let document = reconcile(&Reconciled {
            destination: "dst",
            examined: 500,
            out_of_sync: 57,
            repaired: 56,
            failed: 1,
            timestamp_ms: 7,
        });
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        let named: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        assert_eq!(
            named,
            [
                "ReconcileExamined",
                "ReconcileOutOfSync",
                "ReconcileRepaired",
                "ReconcileFailed"
            ]
        );
        let values: Vec<&Value> = named.iter().map(|name| &document[*name]).collect();
        assert_eq!(values, [&json!(500), &json!(57), &json!(56), &json!(1)]);
        assert_eq!(
            (&document["Destination"], &document["_aws"]["Timestamp"]),
            (&json!("dst"), &json!(7))
        );
    }
}
