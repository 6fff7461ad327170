//! The CloudWatch alarms of a fan-out: one on its failure queue, and five
//! per destination's function, each notifying the alarm topic
//! (`--alarm-topic` or the `SRC-fanout-alarms` that `--alarm-email` makes).
//! Each alarm is written whole by `PutMetricAlarm` (which creates or
//! replaces), so converging is: read each by name, compare, write what
//! differs. The README's "Operating s3fan" says what each means and what to
//! do when it fires.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricAlarm, Statistic};

use super::plan::{Action, Change, Diff, Kind};
use crate::fanout::names::{alarm_topic_name, failure_queue_name, function_name};
use crate::fanout::spec::AlarmsTo;
use crate::fanout::{Context, DeployError, aws_failure};
use crate::handler::metrics;

/// Five minutes: CloudWatch's standard resolution for Lambda's metrics.
const PERIOD_SECONDS: i32 = 300;
/// Throttles persist when each of this many periods (15 minutes) has some.
const THROTTLED_PERIODS: i32 = 3;

/// What an alarm watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// The fan-out's failure queue holds a message: an event s3fan could not
    /// replicate after Lambda's retries (`s3fan failures`, `s3fan retry`).
    FailureQueue,
    /// Lambda dropped an event before the function saw it (its async queue
    /// was too full or the event too old).
    EventsDropped,
    /// Lambda could not put a failed event on the failure queue.
    DeliveryFailures,
    /// Invocations throttled in each of three five-minute periods.
    Throttled,
    /// The p99 of `ReplicationLatency` over five minutes is above `--lag-slo`.
    Lag,
    /// A reconcile copied or deleted something: events had been missed.
    Repaired,
}

impl Watch {
    pub const PER_DESTINATION: [Watch; 5] = [
        Watch::EventsDropped,
        Watch::DeliveryFailures,
        Watch::Throttled,
        Watch::Lag,
        Watch::Repaired,
    ];

    fn suffix(self) -> &'static str {
        match self {
            Watch::FailureQueue => "not-empty",
            Watch::EventsDropped => "events-dropped",
            Watch::DeliveryFailures => "delivery-failures",
            Watch::Throttled => "throttled",
            Watch::Lag => "lag",
            Watch::Repaired => "reconcile-repaired",
        }
    }
}

/// The name of `watch`'s alarm: `SRC-fanout-failures-not-empty` for the
/// queue, `FUNCTION-lag` and so on for a destination (alarm names: 255
/// characters; these are at most 83).
pub fn alarm_name(source: &str, watch: Watch, destination: Option<&str>) -> String {
    let owner = match destination {
        Some(destination) => function_name(destination),
        None => failure_queue_name(source),
    };
    format!("{owner}-{}", watch.suffix())
}

/// Every alarm name of a destination, or of the fan-out itself (`None`).
pub fn alarm_names(source: &str, destination: Option<&str>) -> Vec<String> {
    match destination {
        Some(_) => Watch::PER_DESTINATION
            .iter()
            .map(|w| alarm_name(source, *w, destination))
            .collect(),
        None => vec![alarm_name(source, Watch::FailureQueue, None)],
    }
}

/// How the metric is summarised per period.
#[derive(Debug, Clone, PartialEq)]
pub enum Stat {
    Plain(Statistic),
    /// A percentile, `p99`.
    Extended(String),
}

/// An alarm: what s3fan writes and what it compares with what it reads
/// back. Every alarm fires above its threshold, counts missing data as
/// fine (no traffic is not a fault) and notifies `actions` on ALARM.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub metric: String,
    pub dimension: (String, String),
    pub stat: Stat,
    pub period: i32,
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: i32,
    pub threshold: f64,
    pub comparison: ComparisonOperator,
    pub treat_missing_data: String,
    pub actions: Vec<String>,
}

/// The topic alarms notify, when alarms are asked for.
pub fn alarm_topic_arn(ctx: &Context) -> Option<String> {
    match ctx.spec.alarms.as_ref()? {
        AlarmsTo::Topic(arn) => Some(arn.clone()),
        AlarmsTo::Email(_) => Some(ctx.scope.topic_arn(&alarm_topic_name(&ctx.spec.source))),
    }
}

/// Refuses, before any change, a topic CloudWatch could not notify: alarm
/// actions name a topic in the alarm's own region.
pub fn check(ctx: &Context) -> Result<(), DeployError> {
    let Some(to @ AlarmsTo::Topic(arn)) = &ctx.spec.alarms else {
        return Ok(());
    };
    match to.topic_region() {
        Some(region) if region != ctx.scope.region => Err(DeployError(format!(
            "--alarm-topic {arn} is in {region}, but the alarms go where the fan-out is, in {}, \
             and CloudWatch notifies only a topic in the alarm's region: give a topic in {} \
             (or --alarm-email, and s3fan makes one there)",
            ctx.scope.region, ctx.scope.region
        ))),
        _ => Ok(()),
    }
}

/// The alarm `watch` of `destination` (or of the fan-out), notifying `topic`.
pub fn desired(ctx: &Context, watch: Watch, destination: Option<&str>, topic: &str) -> Alarm {
    let source = &ctx.spec.source;
    let function = destination.map(function_name).unwrap_or_default();
    let bucket = destination.unwrap_or_default().to_owned();
    let lambda = |metric: &str| {
        (
            "AWS/Lambda".to_owned(),
            metric.to_owned(),
            ("FunctionName".to_owned(), function.clone()),
        )
    };
    let own = |metric: &str| {
        (
            metrics::NAMESPACE.to_owned(),
            metric.to_owned(),
            ("Destination".to_owned(), bucket.clone()),
        )
    };
    let sum = Stat::Plain(Statistic::Sum);
    let ((namespace, metric, dimension), stat, periods, threshold, description) = match watch {
        Watch::FailureQueue => (
            (
                "AWS/SQS".to_owned(),
                "ApproximateNumberOfMessagesVisible".to_owned(),
                ("QueueName".to_owned(), failure_queue_name(source)),
            ),
            Stat::Plain(Statistic::Maximum),
            1,
            0.0,
            format!(
                "s3fan {source}: events that could not be replicated wait in the failure queue. \
                 See them with `s3fan failures --source {source}`, fix the cause, then \
                 `s3fan retry --source {source}`."
            ),
        ),
        Watch::EventsDropped => (
            lambda("AsyncEventsDropped"),
            sum,
            1,
            0.0,
            format!(
                "s3fan {source} -> {bucket}: Lambda dropped events before {function} saw them. \
                 Objects may be missing: run `s3fan reconcile --source {source}`."
            ),
        ),
        Watch::DeliveryFailures => (
            lambda("DestinationDeliveryFailures"),
            sum,
            1,
            0.0,
            format!(
                "s3fan {source} -> {bucket}: failed events could not be kept in the failure \
                 queue. Check the queue exists and the role may send to it (`s3fan status`, \
                 `s3fan deploy`), then run `s3fan reconcile --source {source}`."
            ),
        ),
        Watch::Throttled => (
            lambda("Throttles"),
            sum,
            THROTTLED_PERIODS,
            0.0,
            format!(
                "s3fan {source} -> {bucket}: {function} has been throttled for 15 minutes; \
                 Lambda retries, and lag grows. Raise --reserved-concurrency or the account's \
                 concurrency quota."
            ),
        ),
        Watch::Lag => (
            own(metrics::REPLICATION_LATENCY),
            Stat::Extended("p99".to_owned()),
            1,
            ctx.spec.lag_slo.millis() as f64,
            format!(
                "s3fan {source} -> {bucket}: the p99 of ReplicationLatency is above {} \
                 (--lag-slo). Look for throttles and retries in `s3fan status`.",
                ctx.spec.lag_slo
            ),
        ),
        Watch::Repaired => (
            own("ReconcileRepaired"),
            sum,
            1,
            0.0,
            format!(
                "s3fan {source} -> {bucket}: a reconcile copied objects that events had missed. \
                 The copies are made; if this repeats, look for dropped events in `s3fan status`."
            ),
        ),
    };
    Alarm {
        name: alarm_name(source, watch, destination),
        description,
        namespace,
        metric,
        dimension,
        stat,
        period: PERIOD_SECONDS,
        evaluation_periods: periods,
        datapoints_to_alarm: periods,
        threshold,
        comparison: ComparisonOperator::GreaterThanThreshold,
        treat_missing_data: "notBreaching".to_owned(),
        actions: vec![topic.to_owned()],
    }
}

/// An alarm as CloudWatch has it, and its state (`OK`, `ALARM`,
/// `INSUFFICIENT_DATA`).
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub alarm: Alarm,
    pub state: String,
}

/// The alarms of these names that exist, by name.
pub async fn observe(
    ctx: &Context,
    names: &[String],
) -> Result<BTreeMap<String, Observed>, DeployError> {
    let mut found = BTreeMap::new();
    // DescribeAlarms takes at most 100 names.
    for chunk in names.chunks(100) {
        let mut pages = ctx
            .cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| {
                aws_failure(
                    format!(
                        "cannot read CloudWatch alarms {} (cloudwatch:DescribeAlarms)",
                        chunk.join(", ")
                    ),
                    &err,
                )
            })?;
            for alarm in page.metric_alarms() {
                let observed = read(alarm);
                found.insert(observed.alarm.name.clone(), observed);
            }
        }
    }
    Ok(found)
}

fn read(alarm: &MetricAlarm) -> Observed {
    let text = |s: Option<&str>| s.unwrap_or_default().to_owned();
    let dimension = alarm
        .dimensions()
        .first()
        .map(|d| (text(d.name()), text(d.value())))
        .unwrap_or_default();
    let stat = match (alarm.statistic(), alarm.extended_statistic()) {
        (Some(stat), _) => Stat::Plain(stat.clone()),
        (None, extended) => Stat::Extended(text(extended)),
    };
    Observed {
        alarm: Alarm {
            name: text(alarm.alarm_name()),
            description: text(alarm.alarm_description()),
            namespace: text(alarm.namespace()),
            metric: text(alarm.metric_name()),
            // More than one dimension is not s3fan's: it then differs.
            dimension: if alarm.dimensions().len() == 1 {
                dimension
            } else {
                Default::default()
            },
            stat,
            period: alarm.period().unwrap_or_default(),
            evaluation_periods: alarm.evaluation_periods().unwrap_or_default(),
            datapoints_to_alarm: alarm
                .datapoints_to_alarm()
                .or(alarm.evaluation_periods())
                .unwrap_or_default(),
            threshold: alarm.threshold().unwrap_or_default(),
            comparison: alarm
                .comparison_operator()
                .cloned()
                .unwrap_or(ComparisonOperator::GreaterThanThreshold),
            treat_missing_data: text(alarm.treat_missing_data()),
            actions: alarm.alarm_actions().to_vec(),
        },
        state: alarm
            .state_value()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Nothing,
    Put(Box<Alarm>),
    Delete,
}

/// The alarms of `destination` (or of the fan-out, `None`): each made,
/// kept or rewritten as asked, or removed when no alarms are asked for.
pub fn plan(
    ctx: &Context,
    destination: Option<&str>,
    observed: &BTreeMap<String, Observed>,
) -> Vec<Change<Op>> {
    let watches: Vec<Watch> = match destination {
        Some(_) => Watch::PER_DESTINATION.to_vec(),
        None => vec![Watch::FailureQueue],
    };
    let topic = alarm_topic_arn(ctx);
    let change = |name: String, action, detail: String, diff, op| Change {
        kind: Kind::Alarm,
        name,
        destination: destination.map(str::to_owned),
        action,
        detail,
        diff,
        op,
    };
    let mut changes = Vec::new();
    for watch in watches {
        let name = alarm_name(&ctx.spec.source, watch, destination);
        let found = observed.get(&name);
        let Some(topic) = &topic else {
            if found.is_some() {
                let why = "no --alarm-topic or --alarm-email is given".to_owned();
                changes.push(change(name, Action::Delete, why, Vec::new(), Op::Delete));
            }
            continue;
        };
        let wanted = desired(ctx, watch, destination, topic);
        changes.push(match found {
            None => change(
                name,
                Action::Create,
                describe(&wanted),
                Vec::new(),
                put(wanted),
            ),
            Some(found) => match differences(&found.alarm, &wanted) {
                differs if differs.is_empty() => {
                    change(name, Action::Unchanged, String::new(), differs, Op::Nothing)
                }
                differs => change(name, Action::Update, String::new(), differs, put(wanted)),
            },
        });
    }
    changes
}

fn put(alarm: Alarm) -> Op {
    Op::Put(Box::new(alarm))
}

/// What the alarm watches, for the plan: `Sum of Throttles > 0 for 3 x 5 min`.
fn describe(alarm: &Alarm) -> String {
    let stat = match &alarm.stat {
        Stat::Plain(stat) => stat.as_str().to_owned(),
        Stat::Extended(p) => p.clone(),
    };
    let over = if alarm.evaluation_periods == 1 {
        format!("{} min", alarm.period / 60)
    } else {
        format!("{} x {} min", alarm.evaluation_periods, alarm.period / 60)
    };
    let unit = if alarm.metric == metrics::REPLICATION_LATENCY {
        " ms"
    } else {
        ""
    };
    format!(
        "{stat} of {} > {}{unit} over {over}",
        alarm.metric, alarm.threshold
    )
}

/// What of `found` is not as `wanted`, named for the plan.
fn differences(found: &Alarm, wanted: &Alarm) -> Vec<Diff> {
    let metric = |a: &Alarm| {
        format!(
            "{}/{} {}={}",
            a.namespace, a.metric, a.dimension.0, a.dimension.1
        )
    };
    let evaluation = |a: &Alarm| {
        let stat = match &a.stat {
            Stat::Plain(stat) => stat.as_str().to_owned(),
            Stat::Extended(p) => p.clone(),
        };
        format!(
            "{stat} {} {} of {} x {} s, missing data {}",
            a.comparison.as_str(),
            a.datapoints_to_alarm,
            a.evaluation_periods,
            a.period,
            a.treat_missing_data
        )
    };
    [
        Diff::of("metric", metric(found), metric(wanted)),
        Diff::of("evaluation", evaluation(found), evaluation(wanted)),
        Diff::of("alarm topic", found.actions.clone(), wanted.actions.clone()),
        Diff::of(
            "description",
            found.description.as_str(),
            wanted.description.as_str(),
        ),
        Diff::of("threshold", found.threshold, wanted.threshold),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The removal of these alarms, by destroy or with their destination.
pub fn plan_delete(
    names: &[String],
    destination: Option<&str>,
    observed: &BTreeMap<String, Observed>,
) -> Vec<Change<Op>> {
    names
        .iter()
        .filter(|name| observed.contains_key(*name))
        .map(|name| {
            Change::removal(
                Kind::Alarm,
                name.clone(),
                destination.map(str::to_owned),
                true,
                Op::Delete,
                Op::Nothing,
            )
        })
        .collect()
}

/// `destination`: the bucket the alarm serves, empty for the fan-out's.
pub async fn apply(
    ctx: &Context,
    name: &str,
    destination: &str,
    op: &Op,
) -> Result<(), DeployError> {
    match op {
        Op::Nothing => Ok(()),
        Op::Put(alarm) => put_alarm(ctx, alarm, Some(destination).filter(|d| !d.is_empty())).await,
        // DeleteAlarms of a name that does not exist succeeds.
        Op::Delete => ctx
            .cloudwatch
            .delete_alarms()
            .alarm_names(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| aws_failure(format!("cannot delete CloudWatch alarm {name}"), &err)),
    }
}

async fn put_alarm(
    ctx: &Context,
    alarm: &Alarm,
    destination: Option<&str>,
) -> Result<(), DeployError> {
    let tags = ctx
        .tags(destination)
        .into_iter()
        .map(|(key, value)| {
            aws_sdk_cloudwatch::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
        })
        .collect();
    let (statistic, extended) = match &alarm.stat {
        Stat::Plain(stat) => (Some(stat.clone()), None),
        Stat::Extended(p) => (None, Some(p.clone())),
    };
    ctx.cloudwatch
        .put_metric_alarm()
        .alarm_name(&alarm.name)
        .alarm_description(&alarm.description)
        .namespace(&alarm.namespace)
        .metric_name(&alarm.metric)
        .dimensions(
            Dimension::builder()
                .name(&alarm.dimension.0)
                .value(&alarm.dimension.1)
                .build(),
        )
        .set_statistic(statistic)
        .set_extended_statistic(extended)
        .period(alarm.period)
        .evaluation_periods(alarm.evaluation_periods)
        .datapoints_to_alarm(alarm.datapoints_to_alarm)
        .threshold(alarm.threshold)
        .comparison_operator(alarm.comparison.clone())
        .treat_missing_data(&alarm.treat_missing_data)
        .set_alarm_actions(Some(alarm.actions.clone()))
        // Tags count only when the alarm is made; CloudWatch ignores them
        // on a rewrite, which changes nothing else about them.
        .set_tags(Some(tags))
        .send()
        .await
        .map(|_| ())
        .map_err(|err| {
            aws_failure(
                format!(
                    "cannot write CloudWatch alarm {} (cloudwatch:PutMetricAlarm)",
                    alarm.name
                ),
                &err,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::spec::{Lag, Spec};

    const PAGER: &str = "arn:aws:sns:us-east-1:123456789012:pager";

    fn ctx(alarms: Option<AlarmsTo>) -> Context {
        let mut spec = Spec::for_test("src", &["dst.eu"]);
        spec.alarms = alarms;
        Context::offline(spec, "http://127.0.0.1:9")
    }

    fn existing(ctx: &Context, destination: Option<&str>) -> BTreeMap<String, Observed> {
        let topic = alarm_topic_arn(ctx).unwrap();
        plan(ctx, destination, &BTreeMap::new())
            .into_iter()
            .map(|change| {
                let Op::Put(alarm) = change.op else {
                    panic!("{change:?}")
                };
                assert_eq!(alarm.actions, vec![topic.clone()]);
                let observed = Observed {
                    alarm: *alarm,
                    state: "OK".into(),
                };
                (change.name, observed)
            })
            .collect()
    }

    #[test]
    fn each_destination_has_five_alarms_named_after_its_function() {
        let function = function_name("dst.eu");
        let expected = [
            "events-dropped",
            "delivery-failures",
            "throttled",
            "lag",
            "reconcile-repaired",
        ]
        .map(|what| format!("{function}-{what}"));
        assert_eq!(alarm_names("src", Some("dst.eu")), expected);
        assert_eq!(alarm_names("src", None), ["src-fanout-failures-not-empty"]);
    }

    #[test]
    fn the_alarms_watch_the_metrics_their_readme_entries_name() {
        let ctx = ctx(Some(AlarmsTo::Topic(PAGER.into())));
        let function = function_name("dst.eu");
        let alarm = |watch| desired(&ctx, watch, Some("dst.eu"), PAGER);
        let dropped = alarm(Watch::EventsDropped);
        assert_eq!(
            (
                dropped.namespace.as_str(),
                dropped.metric.as_str(),
                &dropped.dimension
            ),
            (
                "AWS/Lambda",
                "AsyncEventsDropped",
                &("FunctionName".to_owned(), function.clone())
            )
        );
        let throttled = alarm(Watch::Throttled);
        assert_eq!(
            (throttled.evaluation_periods, throttled.datapoints_to_alarm),
            (3, 3),
            "throttles alarm only when they persist for 15 minutes"
        );
        let lag = alarm(Watch::Lag);
        assert_eq!(lag.stat, Stat::Extended("p99".into()));
        assert_eq!(lag.threshold, 900_000.0, "15 minutes by default, in ms");
        assert_eq!(
            lag.dimension,
            ("Destination".to_owned(), "dst.eu".to_owned()),
            "the dimension the handler's EMF lines carry"
        );
        let repaired = alarm(Watch::Repaired);
        assert_eq!(
            (repaired.namespace.as_str(), repaired.metric.as_str()),
            ("s3fan", "ReconcileRepaired")
        );
        let queue = desired(&ctx, Watch::FailureQueue, None, PAGER);
        assert_eq!(
            (queue.metric.as_str(), &queue.dimension, &queue.stat),
            (
                "ApproximateNumberOfMessagesVisible",
                &("QueueName".to_owned(), "src-fanout-failures".to_owned()),
                &Stat::Plain(Statistic::Maximum)
            )
        );
        for alarm in [dropped, throttled, lag, repaired, queue] {
            assert_eq!(alarm.comparison, ComparisonOperator::GreaterThanThreshold);
            assert_eq!(alarm.treat_missing_data, "notBreaching", "{}", alarm.name);
        }
    }

    #[test]
    fn alarms_are_made_kept_rewritten_or_removed_as_the_flags_say() {
        let email = ctx(Some(AlarmsTo::Email("ops@example.com".into())));
        let made = plan(&email, Some("dst.eu"), &BTreeMap::new());
        assert_eq!(made.len(), 5);
        assert!(made.iter().all(|c| c.action == Action::Create));
        assert_eq!(
            alarm_topic_arn(&email).unwrap(),
            "arn:aws:sns:us-east-1:123456789012:src-fanout-alarms"
        );
        let found = existing(&email, Some("dst.eu"));
        assert!(
            plan(&email, Some("dst.eu"), &found)
                .iter()
                .all(|c| (c.action, &c.op) == (Action::Unchanged, &Op::Nothing))
        );
        // Another topic: every alarm is rewritten to notify it.
        let pager = ctx(Some(AlarmsTo::Topic(PAGER.into())));
        let moved = plan(&pager, Some("dst.eu"), &found);
        assert!(
            moved
                .iter()
                .all(|c| c.diff.len() == 1 && c.diff[0].attribute == "alarm topic"),
            "{moved:?}"
        );
        // Another SLO: only the lag alarm changes.
        let mut slower = ctx(Some(AlarmsTo::Email("ops@example.com".into())));
        slower.spec.lag_slo = Lag::parse("1h").unwrap();
        let changed: Vec<_> = plan(&slower, Some("dst.eu"), &found)
            .into_iter()
            .filter(|c| c.action == Action::Update)
            .collect();
        assert_eq!(changed.len(), 1);
        assert!(changed[0].name.ends_with("-lag"));
        let attributes: Vec<&str> = changed[0]
            .diff
            .iter()
            .map(|d| d.attribute.as_str())
            .collect();
        assert_eq!(
            attributes,
            ["description", "threshold"],
            "the SLO is in both"
        );
        assert_eq!(
            changed[0].diff[1],
            Diff::of("threshold", 900000.0, 3600000.0).unwrap()
        );
        // No alarm flag: what exists goes, nothing is made.
        let none = ctx(None);
        let removed = plan(&none, Some("dst.eu"), &found);
        assert_eq!(removed.len(), 5);
        assert!(removed.iter().all(|c| c.op == Op::Delete));
        assert!(plan(&none, Some("dst.eu"), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_topic_in_another_region_is_refused_before_any_change() {
        let far = ctx(Some(AlarmsTo::Topic(
            "arn:aws:sns:eu-west-1:123456789012:pager".into(),
        )));
        let err = check(&far).unwrap_err().0;
        assert!(err.contains("is in eu-west-1"), "{err}");
        assert!(err.contains("give a topic in us-east-1"), "{err}");
        assert!(check(&ctx(Some(AlarmsTo::Topic(PAGER.into())))).is_ok());
    }
}
