//! What CloudWatch knows that an estimate needs, read with GetMetricData
//! (the permission `status` already needs): a bucket's daily storage
//! metrics (free, and at most a day old) and the functions' measured
//! duration. Anything amiss (no permission, no datapoint yet, a slow
//! CloudWatch) means no figure, never an error: the caller says what it
//! assumed instead.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};

/// A slow CloudWatch must not hold up the work it would estimate.
const AT_MOST: Duration = Duration::from_secs(3);

/// S3 publishes the storage metrics once a day; three days back finds the
/// newest even when a day was skipped.
const STORAGE_LOOK_BACK: Duration = Duration::from_secs(3 * 86_400);

/// A week of invocations gives a function's mean duration.
const DURATION_LOOK_BACK: Duration = Duration::from_secs(7 * 86_400);

/// What a bucket holds, by S3's daily storage metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Storage {
    pub objects: u64,
    /// In S3 Standard (`BucketSizeBytes`, `StandardStorage`), when known.
    pub bytes: Option<u64>,
}

impl Storage {
    /// The mean object size, when both are known.
    pub fn average(&self) -> Option<u64> {
        let bytes = self.bytes?;
        (self.objects > 0).then(|| bytes / self.objects)
    }
}

/// `bucket`'s object count and size, or `None` when CloudWatch has no count.
pub async fn bucket_storage(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    bucket: &str,
) -> Option<Storage> {
    let metric = |name: &str, storage_type: &str| {
        Metric::builder()
            .namespace("AWS/S3")
            .metric_name(name)
            .dimensions(dimension("BucketName", bucket))
            .dimensions(dimension("StorageType", storage_type))
            .build()
    };
    let queries = vec![
        query(
            "objects",
            metric("NumberOfObjects", "AllStorageTypes"),
            86_400,
        ),
        query(
            "bytes",
            metric("BucketSizeBytes", "StandardStorage"),
            86_400,
        ),
    ];
    let values = newest(cloudwatch, queries, STORAGE_LOOK_BACK).await;
    let objects = values.first().copied().flatten()?;
    Some(Storage {
        objects: objects.max(0.0).round() as u64,
        bytes: values
            .get(1)
            .copied()
            .flatten()
            .map(|b| b.max(0.0).round() as u64),
    })
}

/// Each function's mean invocation over the last week, in seconds, in the
/// order of `functions`; `None` for one that has not run.
pub async fn function_durations(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    functions: &[String],
) -> Vec<Option<f64>> {
    let period = DURATION_LOOK_BACK.as_secs() as i32;
    let queries = functions
        .iter()
        .enumerate()
        .map(|(i, function)| {
            let metric = Metric::builder()
                .namespace("AWS/Lambda")
                .metric_name("Duration")
                .dimensions(dimension("FunctionName", function))
                .build();
            query(&format!("f{i}"), metric, period)
        })
        .collect();
    let mut values = newest(cloudwatch, queries, DURATION_LOOK_BACK).await;
    values.resize(functions.len(), None);
    // CloudWatch gives milliseconds.
    values
        .into_iter()
        .map(|ms| ms.filter(|ms| *ms > 0.0).map(|ms| ms / 1000.0))
        .collect()
}

fn dimension(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

fn query(id: &str, metric: Metric, period: i32) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(period)
                .stat("Average")
                .build(),
        )
        .build()
}

/// The newest value of each query, in the order asked; all `None` when
/// CloudWatch cannot be asked.
async fn newest(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    queries: Vec<MetricDataQuery>,
    look_back: Duration,
) -> Vec<Option<f64>> {
    let ids: Vec<String> = queries
        .iter()
        .map(|q| q.id().unwrap_or_default().to_owned())
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let now = SystemTime::now();
    let asked = cloudwatch
        .get_metric_data()
        .set_metric_data_queries(Some(queries))
        .start_time(DateTime::from(now - look_back))
        .end_time(DateTime::from(now))
        .send();
    let answer = match tokio::time::timeout(AT_MOST, asked).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(err)) => {
            tracing::debug!(error = %crate::aws::sdk_error_sentence(&err), "no figures from CloudWatch");
            return vec![None; ids.len()];
        }
        Err(_) => return vec![None; ids.len()],
    };
    ids.iter()
        .map(|id| {
            let result = answer
                .metric_data_results()
                .iter()
                .find(|r| r.id() == Some(id.as_str()))?;
            result
                .timestamps()
                .iter()
                .map(DateTime::secs)
                .zip(result.values().iter().copied())
                .max_by_key(|(when, _)| *when)
                .map(|(_, value)| value)
        })
        .collect()
}
