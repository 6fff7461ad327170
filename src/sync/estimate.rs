//! How many objects the source holds, for an ETA: S3's daily storage
//! metric `NumberOfObjects` in CloudWatch (free, and at most a day old),
//! read with GetMetricData, the permission `status` already needs.
//! Only for a listing of the whole bucket; a filtered one holds an unknown
//! share of it. Anything amiss (no permission, no datapoint yet for a
//! bucket a day old) means no estimate and no ETA, never an error.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};

use super::Fanout;

/// S3 publishes the storage metrics once a day; three days back finds the
/// newest even when a day was skipped.
const LOOK_BACK: Duration = Duration::from_secs(3 * 86_400);

/// A slow CloudWatch must not hold up the work it would estimate.
const AT_MOST: Duration = Duration::from_secs(3);

pub async fn source_objects(fanout: &Fanout) -> Option<u64> {
    let filter = &fanout.filter;
    if filter.prefix.is_some() || filter.suffix.is_some() || filter.narrow.is_some() {
        return None;
    }
    let now = SystemTime::now();
    let dimension = |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
    let metric = Metric::builder()
        .namespace("AWS/S3")
        .metric_name("NumberOfObjects")
        .dimensions(dimension("BucketName", &fanout.source))
        .dimensions(dimension("StorageType", "AllStorageTypes"))
        .build();
    // GetMetricData, as `status` reads the health: one permission for both.
    let asked = fanout
        .cloudwatch
        .get_metric_data()
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("objects")
                .metric_stat(
                    MetricStat::builder()
                        .metric(metric)
                        .period(86_400)
                        .stat("Average")
                        .build(),
                )
                .build(),
        )
        .start_time(DateTime::from(now - LOOK_BACK))
        .end_time(DateTime::from(now))
        .send();
    let answer = match tokio::time::timeout(AT_MOST, asked).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(err)) => {
            tracing::debug!(error = %crate::aws::sdk_error_sentence(&err), "no estimate of the source's objects");
            return None;
        }
        Err(_) => return None,
    };
    let result = answer.metric_data_results().first()?;
    result
        .timestamps()
        .iter()
        .map(DateTime::secs)
        .zip(result.values().iter().copied())
        .max_by_key(|(when, _)| *when)
        .map(|(_, objects)| objects.max(0.0).round() as u64)
}
