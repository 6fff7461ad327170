//! The source bucket's notification configuration: s3fan's one
//! TopicConfiguration (Id `s3fan-fanout`, `s3:ObjectCreated:*`, the filters),
//! merged into whatever else the bucket already notifies. Every other Topic,
//! Queue, Lambda and EventBridge configuration is written back exactly as it
//! was read. S3 replaces the whole configuration on each write, so the write
//! only happens when s3fan's own entry must change.
//!
//! S3 has no conditional write for this configuration, so the merge is made
//! against a fresh read taken just before the write, not against the plan's
//! read: deploy spends seconds creating roles and functions in between, and
//! anything another tool (or another s3fan) wrote in that time would
//! otherwise be overwritten. What remains is one round trip between that
//! read and the write.

use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
    S3KeyFilter, TopicConfiguration,
};

use super::plan::{Action, Change, Diff, Kind};
use crate::fanout::names::NOTIFICATION_ID;
use crate::fanout::{Context, DeployError, aws_failure};

/// The bucket's configuration as read, minus nothing.
pub type Observed = NotificationConfiguration;

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Nothing,
    /// Merge this entry into the configuration as it is when applied.
    Merge(TopicConfiguration),
    /// Remove s3fan's entry from the configuration as it is when applied.
    Remove,
}

pub async fn observe(ctx: &Context) -> Result<Observed, DeployError> {
    let out = ctx
        .s3
        .get_bucket_notification_configuration()
        .bucket(&ctx.spec.source)
        .send()
        .await
        .map_err(|err| {
            aws_failure(
                format!(
                    "cannot read the notification configuration of bucket {}",
                    ctx.spec.source
                ),
                &err,
            )
        })?;
    Ok(NotificationConfiguration::builder()
        .set_topic_configurations(out.topic_configurations)
        .set_queue_configurations(out.queue_configurations)
        .set_lambda_function_configurations(out.lambda_function_configurations)
        .set_event_bridge_configuration(out.event_bridge_configuration)
        .build())
}

/// ObjectCreated, ObjectRemoved with --replicate-deletes (a delete marker's
/// `DeleteMarkerCreated` among them), ObjectTagging with --replicate-tags.
fn desired_events(ctx: &Context) -> Vec<Event> {
    let mut events = vec![Event::S3ObjectCreated];
    if ctx.spec.replicate_deletes {
        events.push(Event::S3ObjectRemoved);
    }
    if ctx.spec.replicate_tags {
        events.push(Event::S3ObjectTagging);
    }
    events
}

/// s3fan's entry as it should be.
pub fn desired_entry(ctx: &Context) -> Result<TopicConfiguration, DeployError> {
    let mut rules = Vec::new();
    if let Some(prefix) = &ctx.spec.prefix {
        rules.push(
            FilterRule::builder()
                .name(FilterRuleName::Prefix)
                .value(prefix)
                .build(),
        );
    }
    if let Some(suffix) = &ctx.spec.suffix {
        rules.push(
            FilterRule::builder()
                .name(FilterRuleName::Suffix)
                .value(suffix)
                .build(),
        );
    }
    let mut entry = TopicConfiguration::builder()
        .id(NOTIFICATION_ID)
        .topic_arn(ctx.topic_arn())
        .set_events(Some(desired_events(ctx)));
    if !rules.is_empty() {
        entry = entry.filter(
            NotificationConfigurationFilter::builder()
                .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
                .build(),
        );
    }
    entry
        .build()
        .map_err(|err| DeployError(format!("notification entry: {err}")))
}

/// Plans the merge; refuses, naming it, any other entry that overlaps ours
/// (S3 would reject the configuration, or events would go to both).
pub fn plan(ctx: &Context, observed: &Observed) -> Result<Change<Op>, DeployError> {
    let desired = desired_entry(ctx)?;
    refuse_overlaps(ctx, observed, &desired)?;
    let current = ours(observed);
    let diff = current.map_or_else(Vec::new, |current| entry_diff(current, &desired));
    let action = match current {
        None => Action::Create,
        Some(_) if !diff.is_empty() => Action::Update,
        Some(_) => Action::Unchanged,
    };
    let op = if action.changes_something() {
        Op::Merge(desired)
    } else {
        Op::Nothing
    };
    Ok(Change {
        kind: Kind::Notification,
        name: format!("{} ({NOTIFICATION_ID})", ctx.spec.source),
        destination: None,
        action,
        detail: String::new(),
        diff,
        op,
    })
}

/// Refuses, naming it, any entry other than s3fan's whose events and key
/// filter overlap `desired`'s.
fn refuse_overlaps(
    ctx: &Context,
    observed: &Observed,
    desired: &TopicConfiguration,
) -> Result<(), DeployError> {
    let ours_events = desired_events(ctx);
    for Entry {
        kind,
        id,
        events,
        filter,
    } in other_entries(observed)
    {
        if id == Some(NOTIFICATION_ID) && kind == "TopicConfiguration" {
            continue;
        }
        let overlaps_events = events
            .iter()
            .any(|e| ours_events.iter().any(|o| events_overlap(e, o.as_str())));
        if overlaps_events && filters_overlap(&filter, &rules_of(desired.filter())) {
            return Err(DeployError(format!(
                "bucket {} already has a {kind} {} for {} that overlaps s3fan's \
                 ({} with prefix {:?}, suffix {:?}); S3 cannot send one event \
                 to both. Narrow one of them with --prefix/--suffix, or remove that configuration",
                ctx.spec.source,
                id.map(|id| format!("{id:?}"))
                    .unwrap_or_else(|| "without an Id".into()),
                events.join(", "),
                ours_events
                    .iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                ctx.spec.prefix.as_deref().unwrap_or(""),
                ctx.spec.suffix.as_deref().unwrap_or(""),
            )));
        }
    }
    Ok(())
}

/// Plans removing s3fan's entry and nothing else.
pub fn plan_delete(ctx: &Context, observed: &Observed) -> Change<Op> {
    Change::removal(
        Kind::Notification,
        format!("{} ({NOTIFICATION_ID})", ctx.spec.source),
        None,
        ours(observed).is_some(),
        Op::Remove,
        Op::Nothing,
    )
}

pub async fn apply(ctx: &Context, op: &Op) -> Result<(), DeployError> {
    if *op == Op::Nothing {
        return Ok(());
    }
    let fresh = observe(ctx).await?;
    let Some(configuration) = rewrite(ctx, &fresh, op)? else {
        return Ok(());
    };
    ctx.s3
        .put_bucket_notification_configuration()
        .bucket(&ctx.spec.source)
        .notification_configuration(configuration.clone())
        .send()
        .await
        .map(|_| ())
        .map_err(|err| {
            aws_failure(
                format!(
                    "cannot write the notification configuration of bucket {}",
                    ctx.spec.source
                ),
                &err,
            )
        })
}

/// The configuration to write, given what the bucket holds now; None when
/// it already is as `op` wants (another s3fan got there first).
fn rewrite(
    ctx: &Context,
    fresh: &Observed,
    op: &Op,
) -> Result<Option<NotificationConfiguration>, DeployError> {
    match op {
        Op::Nothing => Ok(None),
        Op::Merge(desired) => {
            // Whatever arrived since the plan is checked like the rest.
            refuse_overlaps(ctx, fresh, desired)?;
            Ok(match ours(fresh) {
                Some(current) if entry_diff(current, desired).is_empty() => None,
                _ => Some(merged(fresh, Some(desired.clone()))),
            })
        }
        Op::Remove => Ok(ours(fresh).map(|_| merged(fresh, None))),
    }
}

/// s3fan's entry in the configuration, if there is one.
fn ours(observed: &Observed) -> Option<&TopicConfiguration> {
    observed
        .topic_configurations()
        .iter()
        .find(|entry| entry.id() == Some(NOTIFICATION_ID))
}

/// Everything else exactly as read, plus (or minus) s3fan's entry.
fn merged(observed: &Observed, ours: Option<TopicConfiguration>) -> NotificationConfiguration {
    let mut topics: Vec<TopicConfiguration> = observed
        .topic_configurations()
        .iter()
        .filter(|entry| entry.id() != Some(NOTIFICATION_ID))
        .cloned()
        .collect();
    topics.extend(ours);
    NotificationConfiguration::builder()
        .set_topic_configurations(Some(topics))
        .set_queue_configurations(observed.queue_configurations.clone())
        .set_lambda_function_configurations(observed.lambda_function_configurations.clone())
        .set_event_bridge_configuration(observed.event_bridge_configuration.clone())
        .build()
}

/// One Topic, Queue or Lambda entry of a configuration, as far as overlap goes.
struct Entry<'a> {
    kind: &'static str,
    id: Option<&'a str>,
    events: Vec<String>,
    /// (prefix, suffix), empty when absent.
    filter: (String, String),
}

fn other_entries(observed: &Observed) -> Vec<Entry<'_>> {
    let events = |events: &[Event]| events.iter().map(|e| e.as_str().to_owned()).collect();
    let mut entries = Vec::new();
    for e in observed.topic_configurations() {
        entries.push(Entry {
            kind: "TopicConfiguration",
            id: e.id(),
            events: events(e.events()),
            filter: rules_of(e.filter()),
        });
    }
    for e in observed.queue_configurations() {
        entries.push(Entry {
            kind: "QueueConfiguration",
            id: e.id(),
            events: events(e.events()),
            filter: rules_of(e.filter()),
        });
    }
    for e in observed.lambda_function_configurations() {
        entries.push(Entry {
            kind: "LambdaFunctionConfiguration",
            id: e.id(),
            events: events(e.events()),
            filter: rules_of(e.filter()),
        });
    }
    entries
}

fn rules_of(filter: Option<&NotificationConfigurationFilter>) -> (String, String) {
    let mut prefix = String::new();
    let mut suffix = String::new();
    for rule in filter
        .and_then(|f| f.key())
        .map(|k| k.filter_rules())
        .unwrap_or_default()
    {
        let value = rule.value().unwrap_or_default().to_owned();
        match rule.name() {
            Some(FilterRuleName::Prefix) => prefix = value,
            Some(FilterRuleName::Suffix) => suffix = value,
            _ => {}
        }
    }
    (prefix, suffix)
}

/// Each part of s3fan's entry that differs: topic, events, prefix, suffix.
fn entry_diff(current: &TopicConfiguration, desired: &TopicConfiguration) -> Vec<Diff> {
    let events = |entry: &TopicConfiguration| -> Vec<String> {
        entry
            .events()
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect()
    };
    let (now, wanted) = (rules_of(current.filter()), rules_of(desired.filter()));
    [
        Diff::of("topic", current.topic_arn(), desired.topic_arn()),
        Diff::of("events", events(current), events(desired)),
        Diff::of("prefix", now.0, wanted.0),
        Diff::of("suffix", now.1, wanted.1),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `s3:ObjectCreated:*` overlaps every `s3:ObjectCreated:...`.
fn events_overlap(a: &str, b: &str) -> bool {
    let stem = |e: &str| e.strip_suffix('*').map(str::to_owned);
    match (stem(a), stem(b)) {
        (Some(a), Some(b)) => a.starts_with(&b) || b.starts_with(&a),
        (Some(stem), None) => b.starts_with(&stem),
        (None, Some(stem)) => a.starts_with(&stem),
        (None, None) => a == b,
    }
}

/// Two filters overlap when some key could match both: prefixes where one
/// begins the other (or either is empty), suffixes likewise.
fn filters_overlap(a: &(String, String), b: &(String, String)) -> bool {
    let prefixes = a.0.starts_with(&b.0) || b.0.starts_with(&a.0);
    let suffixes = a.1.ends_with(&b.1) || b.1.ends_with(&a.1);
    prefixes && suffixes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::spec::Spec;
    use aws_sdk_s3::types::QueueConfiguration;

    fn offline(prefix: Option<&str>) -> Context {
        let mut spec = Spec::for_test("src", &["dst"]);
        spec.prefix = prefix.map(str::to_owned);
        // No request is made: rewrite() is pure.
        Context::offline(spec, "http://127.0.0.1:9")
    }

    fn queue_entry(id: &str, prefix: &str) -> QueueConfiguration {
        QueueConfiguration::builder()
            .id(id)
            .queue_arn(format!("arn:aws:sqs:us-east-1:123456789012:{id}"))
            .events(Event::S3ObjectCreated)
            .filter(
                NotificationConfigurationFilter::builder()
                    .key(
                        S3KeyFilter::builder()
                            .filter_rules(
                                FilterRule::builder()
                                    .name(FilterRuleName::Prefix)
                                    .value(prefix)
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build()
            .unwrap()
    }

    fn with_queues(queues: Vec<QueueConfiguration>, ours: Option<TopicConfiguration>) -> Observed {
        NotificationConfiguration::builder()
            .set_queue_configurations(Some(queues))
            .set_topic_configurations(ours.map(|t| vec![t]))
            .build()
    }

    fn queue_ids(configuration: &NotificationConfiguration) -> Vec<&str> {
        configuration
            .queue_configurations()
            .iter()
            .filter_map(|q| q.id())
            .collect()
    }

    #[test]
    fn an_entry_written_after_the_plan_survives_the_merge() {
        let ctx = offline(Some("in/"));
        let planned = plan(&ctx, &with_queues(vec![], None)).unwrap();
        assert_eq!(planned.action, Action::Create);
        // Another tool adds its queue while deploy creates the functions.
        let fresh = with_queues(vec![queue_entry("theirs", "logs/")], None);
        let written = rewrite(&ctx, &fresh, &planned.op).unwrap().unwrap();
        assert_eq!(queue_ids(&written), ["theirs"]);
        assert_eq!(ours(&written), Some(&desired_entry(&ctx).unwrap()));
    }

    #[test]
    fn an_overlapping_entry_written_after_the_plan_is_refused() {
        let ctx = offline(Some("in/"));
        let planned = plan(&ctx, &with_queues(vec![], None)).unwrap();
        let fresh = with_queues(vec![queue_entry("theirs", "in/today/")], None);
        let err = rewrite(&ctx, &fresh, &planned.op).unwrap_err();
        assert!(err.0.contains("QueueConfiguration \"theirs\""), "{err}");
    }

    #[test]
    fn nothing_is_written_when_another_run_already_wrote_the_same() {
        let ctx = offline(None);
        let planned = plan(&ctx, &with_queues(vec![], None)).unwrap();
        let fresh = with_queues(vec![], Some(desired_entry(&ctx).unwrap()));
        assert_eq!(rewrite(&ctx, &fresh, &planned.op).unwrap(), None);
    }

    #[test]
    fn removal_keeps_what_was_written_after_the_plan() {
        let ctx = offline(None);
        let planned = plan_delete(
            &ctx,
            &with_queues(vec![], Some(desired_entry(&ctx).unwrap())),
        );
        assert_eq!(planned.op, Op::Remove);
        let fresh = with_queues(
            vec![queue_entry("theirs", "logs/")],
            Some(desired_entry(&ctx).unwrap()),
        );
        let written = rewrite(&ctx, &fresh, &planned.op).unwrap().unwrap();
        assert_eq!(queue_ids(&written), ["theirs"]);
        assert_eq!(ours(&written), None);
        // Already gone (another destroy): nothing to write.
        let gone = with_queues(vec![queue_entry("theirs", "logs/")], None);
        assert_eq!(rewrite(&ctx, &gone, &planned.op).unwrap(), None);
    }

    fn rules(prefix: &str, suffix: &str) -> (String, String) {
        (prefix.into(), suffix.into())
    }

    #[test]
    fn event_overlap() {
        assert!(events_overlap("s3:ObjectCreated:*", "s3:ObjectCreated:*"));
        assert!(events_overlap("s3:ObjectCreated:Put", "s3:ObjectCreated:*"));
        assert!(!events_overlap("s3:ObjectRemoved:*", "s3:ObjectCreated:*"));
        assert!(!events_overlap(
            "s3:ObjectCreated:Put",
            "s3:ObjectCreated:Copy"
        ));
    }

    #[test]
    fn filter_overlap() {
        assert!(filters_overlap(&rules("", ""), &rules("logs/", ".gz")));
        assert!(filters_overlap(
            &rules("logs/", ""),
            &rules("logs/2026/", "")
        ));
        assert!(!filters_overlap(&rules("logs/", ""), &rules("images/", "")));
        assert!(!filters_overlap(&rules("", ".jpg"), &rules("", ".png")));
        assert!(filters_overlap(&rules("", ".jpg"), &rules("a/", "x.jpg")));
    }
}
