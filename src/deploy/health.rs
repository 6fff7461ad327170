//! Health, for `status`: what CloudWatch measured of each destination over
//! the last hour and the last day (copies, failures, lag, throttles,
//! dropped events), its last reconcile, and the age of the failure queue's
//! oldest message. A figure CloudWatch has no data for is `None` ("no data
//! yet"), never 0: no data and nothing wrong are not the same.
//!
//! Each window is one period of its own length ending with the current
//! minute: for data under 15 days old CloudWatch rounds a start time only
//! to the minute, so each query answers with one value, and a percentile
//! is the window's own rather than a mix of shorter ones.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_smithy_types::DateTime;
use serde::Serialize;

use crate::fanout::names::{failure_queue_name, function_name};
use crate::fanout::{Context, DeployError, aws_failure};
use crate::handler::metrics::{NAMESPACE, REPLICATION_LATENCY};

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// One window's figures; `None` where CloudWatch has no data.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Window {
    pub copied: Option<f64>,
    pub failed: Option<f64>,
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    pub lag_max_ms: Option<f64>,
    pub throttles: Option<f64>,
    pub events_dropped: Option<f64>,
}

impl Window {
    fn has_data(&self) -> bool {
        *self != Window::default()
    }

    /// `12 copied, 0 failed, lag p50 1.2 s / p99 3.4 s / max 4 s, ...`,
    /// or `no data yet`.
    pub fn render(&self) -> String {
        if !self.has_data() {
            return "no data yet".to_owned();
        }
        let count = |value: Option<f64>, what: &str| match value {
            Some(n) => format!("{n} {what}"),
            None => format!("{what} no data yet"),
        };
        let lag = match (self.lag_p50_ms, self.lag_p99_ms, self.lag_max_ms) {
            (None, None, None) => "lag no data yet".to_owned(),
            (p50, p99, max) => format!(
                "lag p50 {} / p99 {} / max {}",
                seconds(p50),
                seconds(p99),
                seconds(max)
            ),
        };
        [
            count(self.copied, "copied"),
            count(self.failed, "failed"),
            lag,
            count(self.throttles, "throttles"),
            count(self.events_dropped, "dropped"),
        ]
        .join(", ")
    }
}

fn seconds(ms: Option<f64>) -> String {
    match ms {
        Some(ms) => format!("{:.1} s", ms / 1000.0),
        None => "-".to_owned(),
    }
}

/// The last reconcile CloudWatch saw: the latest hour with reconcile
/// metrics, and what it found and repaired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastReconcile {
    /// The start of that hour, RFC 3339.
    pub hour: String,
    pub examined: f64,
    pub out_of_sync: f64,
    pub repaired: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Health {
    pub last_hour: Window,
    pub last_day: Window,
    pub last_reconcile: Option<LastReconcile>,
}

/// One figure of one destination: which, from which metric and statistic.
struct Figure {
    set: fn(&mut Window, Option<f64>),
    namespace: &'static str,
    metric: &'static str,
    stat: &'static str,
    /// s3fan's metrics are by destination bucket, Lambda's by function.
    by_function: bool,
}

const FIGURES: [Figure; 7] = [
    Figure {
        set: |w, v| w.copied = v,
        namespace: NAMESPACE,
        metric: "Copied",
        stat: "Sum",
        by_function: false,
    },
    Figure {
        set: |w, v| w.failed = v,
        namespace: NAMESPACE,
        metric: "Failed",
        stat: "Sum",
        by_function: false,
    },
    Figure {
        set: |w, v| w.lag_p50_ms = v,
        namespace: NAMESPACE,
        metric: REPLICATION_LATENCY,
        stat: "p50",
        by_function: false,
    },
    Figure {
        set: |w, v| w.lag_p99_ms = v,
        namespace: NAMESPACE,
        metric: REPLICATION_LATENCY,
        stat: "p99",
        by_function: false,
    },
    Figure {
        set: |w, v| w.lag_max_ms = v,
        namespace: NAMESPACE,
        metric: REPLICATION_LATENCY,
        stat: "Maximum",
        by_function: false,
    },
    Figure {
        set: |w, v| w.throttles = v,
        namespace: "AWS/Lambda",
        metric: "Throttles",
        stat: "Sum",
        by_function: true,
    },
    Figure {
        set: |w, v| w.events_dropped = v,
        namespace: "AWS/Lambda",
        metric: "AsyncEventsDropped",
        stat: "Sum",
        by_function: true,
    },
];

const RECONCILE_METRICS: [&str; 3] = [
    "ReconcileExamined",
    "ReconcileOutOfSync",
    "ReconcileRepaired",
];

fn query(
    id: String,
    namespace: &str,
    metric: &str,
    dimension: (&str, &str),
    stat: &str,
    period: u64,
) -> MetricDataQuery {
    let metric = Metric::builder()
        .namespace(namespace)
        .metric_name(metric)
        .dimensions(
            Dimension::builder()
                .name(dimension.0)
                .value(dimension.1)
                .build(),
        )
        .build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(i32::try_from(period).unwrap_or(i32::MAX))
                .stat(stat)
                .build(),
        )
        .return_data(true)
        .build()
}

fn dimension_of<'a>(
    figure: &Figure,
    bucket: &'a str,
    function: &'a str,
) -> (&'static str, &'a str) {
    if figure.by_function {
        ("FunctionName", function)
    } else {
        ("Destination", bucket)
    }
}

/// Every value of each query, by id: (timestamp in seconds, value).
async fn fetch(
    ctx: &Context,
    queries: Vec<MetricDataQuery>,
    window: u64,
) -> Result<BTreeMap<String, Vec<(i64, f64)>>, DeployError> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    // Up to the end of the current minute, so the newest data counts.
    let end = now - now % 60 + 60;
    let start = end - window;
    let mut found: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    // GetMetricData takes at most 500 queries.
    for chunk in queries.chunks(500) {
        let mut pages = ctx
            .cloudwatch
            .get_metric_data()
            .set_metric_data_queries(Some(chunk.to_vec()))
            .start_time(DateTime::from(
                SystemTime::UNIX_EPOCH + Duration::from_secs(start),
            ))
            .end_time(DateTime::from(
                SystemTime::UNIX_EPOCH + Duration::from_secs(end),
            ))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| {
                aws_failure(
                    "cannot read the fan-out's metrics (cloudwatch:GetMetricData)",
                    &err,
                )
            })?;
            for result in page.metric_data_results() {
                let values = result
                    .timestamps()
                    .iter()
                    .map(DateTime::secs)
                    .zip(result.values().iter().copied());
                found
                    .entry(result.id().unwrap_or_default().to_owned())
                    .or_default()
                    .extend(values);
            }
        }
    }
    Ok(found)
}

/// One window's figures for each destination.
async fn windows(
    ctx: &Context,
    destinations: &[String],
    window: u64,
) -> Result<Vec<Window>, DeployError> {
    let mut queries = Vec::new();
    for (d, bucket) in destinations.iter().enumerate() {
        let function = function_name(bucket);
        for (f, figure) in FIGURES.iter().enumerate() {
            queries.push(query(
                format!("d{d}f{f}"),
                figure.namespace,
                figure.metric,
                dimension_of(figure, bucket, &function),
                figure.stat,
                window,
            ));
        }
    }
    let found = fetch(ctx, queries, window).await?;
    Ok((0..destinations.len())
        .map(|d| {
            let mut figures = Window::default();
            for (f, figure) in FIGURES.iter().enumerate() {
                // The window's one period (a second, later one is empty).
                let value = found
                    .get(&format!("d{d}f{f}"))
                    .and_then(|values| values.first())
                    .map(|(_, value)| *value);
                (figure.set)(&mut figures, value);
            }
            figures
        })
        .collect())
}

/// Each destination's last reconcile within `window`, by the hour.
async fn reconciles(
    ctx: &Context,
    destinations: &[String],
    window: u64,
) -> Result<Vec<Option<LastReconcile>>, DeployError> {
    let mut queries = Vec::new();
    for (d, bucket) in destinations.iter().enumerate() {
        for (m, metric) in RECONCILE_METRICS.iter().enumerate() {
            queries.push(query(
                format!("d{d}r{m}"),
                NAMESPACE,
                metric,
                ("Destination", bucket),
                "Sum",
                HOUR,
            ));
        }
    }
    let found = fetch(ctx, queries, window).await?;
    Ok((0..destinations.len())
        .map(|d| {
            let series = |m: usize| found.get(&format!("d{d}r{m}")).cloned().unwrap_or_default();
            let examined = series(0);
            let (hour, value) = examined.iter().max_by_key(|(at, _)| *at).copied()?;
            let at = |m: usize| {
                series(m)
                    .iter()
                    .find(|(t, _)| *t == hour)
                    .map_or(0.0, |(_, v)| *v)
            };
            Some(LastReconcile {
                hour: DateTime::from_secs(hour)
                    .fmt(aws_smithy_types::date_time::Format::DateTime)
                    .unwrap_or_default(),
                examined: value,
                out_of_sync: at(1),
                repaired: at(2),
            })
        })
        .collect())
}

/// The health of each of `destinations`, in their order. `reconcile_window`:
/// how far back a reconcile is looked for (at least a day; a schedule's
/// interval when longer).
pub async fn observe(
    ctx: &Context,
    destinations: &[String],
    reconcile_window: Duration,
) -> Result<Vec<Health>, DeployError> {
    if destinations.is_empty() {
        return Ok(Vec::new());
    }
    let hour = windows(ctx, destinations, HOUR).await?;
    let day = windows(ctx, destinations, DAY).await?;
    let window = reconcile_window.as_secs().max(DAY);
    let reconciled = reconciles(ctx, destinations, window).await?;
    Ok(hour
        .into_iter()
        .zip(day)
        .zip(reconciled)
        .map(|((last_hour, last_day), last_reconcile)| Health {
            last_hour,
            last_day,
            last_reconcile,
        })
        .collect())
}

/// The age in seconds of the failure queue's oldest message over the last
/// five minutes (CloudWatch's latest), when CloudWatch has one.
pub async fn oldest_failure_age(ctx: &Context) -> Result<Option<f64>, DeployError> {
    let queue = failure_queue_name(&ctx.spec.source);
    let found = fetch(
        ctx,
        vec![query(
            "q".into(),
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            ("QueueName", &queue),
            "Maximum",
            300,
        )],
        HOUR,
    )
    .await?;
    Ok(found
        .get("q")
        .and_then(|values| values.iter().max_by_key(|(at, _)| *at))
        .map(|(_, age)| *age))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_without_data_says_so_rather_than_zero() {
        assert_eq!(Window::default().render(), "no data yet");
        let some = Window {
            copied: Some(12.0),
            failed: Some(0.0),
            lag_p50_ms: Some(1200.0),
            lag_p99_ms: Some(3400.0),
            lag_max_ms: Some(4000.0),
            ..Window::default()
        };
        assert_eq!(
            some.render(),
            "12 copied, 0 failed, lag p50 1.2 s / p99 3.4 s / max 4.0 s, \
             throttles no data yet, dropped no data yet"
        );
    }

    #[test]
    fn each_figure_reads_the_metric_the_alarms_and_the_handler_name() {
        let named: Vec<(&str, &str, bool)> = FIGURES
            .iter()
            .map(|f| (f.metric, f.stat, f.by_function))
            .collect();
        assert_eq!(
            named,
            [
                ("Copied", "Sum", false),
                ("Failed", "Sum", false),
                ("ReplicationLatency", "p50", false),
                ("ReplicationLatency", "p99", false),
                ("ReplicationLatency", "Maximum", false),
                ("Throttles", "Sum", true),
                ("AsyncEventsDropped", "Sum", true),
            ]
        );
        let mut window = Window::default();
        for (i, figure) in FIGURES.iter().enumerate() {
            (figure.set)(&mut window, Some(i as f64));
        }
        assert_eq!(
            window,
            Window {
                copied: Some(0.0),
                failed: Some(1.0),
                lag_p50_ms: Some(2.0),
                lag_p99_ms: Some(3.0),
                lag_max_ms: Some(4.0),
                throttles: Some(5.0),
                events_dropped: Some(6.0),
            },
            "each figure sets its own field"
        );
    }
}
