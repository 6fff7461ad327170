//! What each command is told. One struct per command is its clap flags;
//! [`Settings`], deploy's and init's, is also the keys of `s3fan.toml` (the
//! other commands read the fan-out's settings from that file too), so a new
//! setting is one field.
//! Flags win over the file ([`Settings::over`]), and the two resolve into
//! a checked [`Spec`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Deserializer};

use crate::fanout::spec::{
    self, AlarmsTo, CONFIG_FILE, DEST_ACCOUNT, DEST_KMS_KEY, DestinationSpec, Lag, PerDestination,
    STORAGE_CLASS, Spec, SpecError,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// What a fan-out is: deploy's flags (and `init`'s), and the keys of
/// `s3fan.toml`, which say the same as the flags of the same name. Unknown
/// keys are an error, so a typo is not silently ignored.
#[derive(Args, Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The bucket whose new objects are copied.
    #[arg(long, value_name = "SRC", env = "S3FAN_SOURCE")]
    pub source: Option<String>,
    /// A bucket that receives a copy of every new object (repeat for more)
    /// [env: S3FAN_DEST=DST,DST...].
    #[arg(long = "dest", value_name = "DST")]
    #[serde(deserialize_with = "one_or_many")]
    pub dest: Vec<String>,
    /// AWS region (default: the source bucket's; it must match it).
    #[arg(long)]
    pub region: Option<String>,
    /// Named profile from the AWS config files.
    #[arg(long)]
    pub profile: Option<String>,
    /// Function memory in MB [default: 128].
    #[arg(long, value_name = "MB", value_parser = whole_number)]
    pub memory: Option<i32>,
    /// Function timeout in seconds [default: 300].
    #[arg(long, value_name = "SECONDS", value_parser = whole_number)]
    pub timeout: Option<i32>,
    /// Only keys starting with this are copied.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Only keys ending with this are copied.
    #[arg(long)]
    pub suffix: Option<String>,
    /// Also delete from every destination what is deleted from the source.
    #[arg(long)]
    pub replicate_deletes: bool,
    /// Also make every destination copy's tags the source's when they
    /// change (s3:ObjectTagging:* events).
    #[arg(long)]
    pub replicate_tags: bool,
    /// Lambda's retries of a failed event before it goes to the failure
    /// queue, 0 to 2 [default: 2].
    #[arg(long, value_name = "N", value_parser = whole_number)]
    pub retry_attempts: Option<i32>,
    /// Seconds Lambda keeps retrying an event, 60 to 21600 [default: 21600].
    #[arg(long, value_name = "SECONDS", value_parser = whole_number)]
    pub max_event_age: Option<i32>,
    /// Also write each record's counts, bytes and duration as CloudWatch
    /// metrics (Embedded Metric Format in the function's log; no API calls).
    #[arg(long)]
    pub metrics: bool,
    /// Write the copies in this S3 storage class (STANDARD_IA, GLACIER_IR,
    /// ...): CLASS for every destination, DST=CLASS for one (repeat).
    #[arg(long = "storage-class", value_name = "[DST=]CLASS", value_parser = PerDestinationValue::flag)]
    #[serde(deserialize_with = "PerDestinationValue::from_file")]
    pub storage_class: Vec<PerDestinationValue>,
    /// Encrypt the copies with this KMS key (ARN, ID, alias ARN or
    /// alias/NAME) instead of the destination's default encryption: KEY for
    /// every destination, DST=KEY for one (repeat).
    #[arg(long = "dest-kms-key", value_name = "[DST=]KEY", value_parser = PerDestinationValue::flag)]
    #[serde(deserialize_with = "PerDestinationValue::from_file")]
    pub dest_kms_key: Vec<PerDestinationValue>,
    /// The destination is owned by another account: ACCOUNT for every
    /// destination, DST=ACCOUNT for one (repeat). Copies are handed to the
    /// bucket's owner, and deploy prints the bucket policy statement its
    /// owner must add.
    #[arg(long = "dest-account", value_name = "[DST=]ACCOUNT", value_parser = PerDestinationValue::flag)]
    #[serde(deserialize_with = "PerDestinationValue::from_file")]
    pub dest_account: Vec<PerDestinationValue>,
    /// Write that statement into each such destination's bucket policy
    /// (when these credentials may), rather than print it.
    #[arg(long)]
    pub apply_dest_policy: bool,
    /// Say that the requester pays on every object request, as
    /// requester-pays buckets of another account demand.
    #[arg(long)]
    pub request_payer: bool,
    /// Run each function at most N at once (Lambda's reserved
    /// concurrency), so a burst of uploads cannot take the concurrency
    /// the account's other functions need; throttled events are retried by
    /// Lambda. Default: no cap.
    #[arg(long, value_name = "N", value_parser = whole_number)]
    pub reserved_concurrency: Option<i32>,
    /// Reconcile on this schedule, in AWS: each destination's function
    /// compares it with the source and copies what events missed (6h, 1d,
    /// 7d; from 1h to 30d; off unless given).
    #[arg(long, value_name = "DURATION")]
    pub reconcile_every: Option<String>,
    /// Send alarms to this SNS topic (its ARN): CloudWatch alarms on failed
    /// and dropped events, persistent throttles, lag and reconcile repairs
    /// (see the README's "Operating s3fan"). Turns --metrics on.
    #[arg(long, value_name = "ARN")]
    pub alarm_topic: Option<String>,
    /// Send alarms to this address: s3fan makes the topic SRC-fanout-alarms
    /// and subscribes it (confirm the mail SNS sends). Turns --metrics on.
    #[arg(long, value_name = "ADDRESS")]
    pub alarm_email: Option<String>,
    /// The lag alarm fires when the p99 of ReplicationLatency over five
    /// minutes is above this (90s, 15m, 1h) [default: 15m].
    #[arg(long, value_name = "DURATION")]
    pub lag_slo: Option<String>,
    /// A tag for everything deploy creates (repeat for more).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = Tag::flag)]
    #[serde(deserialize_with = "Tag::from_file")]
    pub tags: Vec<Tag>,
}

/// `s3fan deploy`: the fan-out's settings, and how to apply them.
#[derive(Args, Debug)]
pub struct DeployArgs {
    #[command(flatten)]
    pub settings: Settings,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove destinations no longer listed without asking (needed where
    /// there is no terminal to ask on, as in CI).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// A Linux build of s3fan to deploy instead of the running one.
    #[arg(long, value_name = "PATH")]
    pub bootstrap: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text, env = "S3FAN_OUTPUT")]
    pub output: Output,
}

/// `s3fan init`: the settings to write into `s3fan.toml`.
#[derive(Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    pub settings: Settings,
    /// Replace the file if there is one.
    #[arg(long)]
    pub force: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text, env = "S3FAN_OUTPUT")]
    pub output: Output,
}

/// A number flag's value (`--memory 256`). clap's own parse error reads
/// "invalid digit found in string"; this one says what to write.
fn whole_number(text: &str) -> Result<i32, String> {
    text.parse()
        .map_err(|err: std::num::ParseIntError| match err.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "far too large: the flag's help gives its range".to_owned()
            }
            _ => "not a whole number: write it in digits, with no unit (as 256)".to_owned(),
        })
}

/// `dest = "backup"` as well as `dest = ["backup", "archive"]`.
fn one_or_many<'de, D: Deserializer<'de>>(file: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Written::deserialize(file)? {
        Written::One(one) => vec![one],
        Written::Many(many) => many,
    })
}

/// A tag as the user wrote it: `--tag KEY=VALUE` (checked when resolved),
/// or an entry of the file's `[tags]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tag {
    Flag(String),
    File(String, String),
}

impl Tag {
    fn flag(text: &str) -> Result<Tag, Infallible> {
        Ok(Tag::Flag(text.to_owned()))
    }

    fn from_file<'de, D: Deserializer<'de>>(file: D) -> Result<Vec<Tag>, D::Error> {
        let table = BTreeMap::<String, String>::deserialize(file)?;
        Ok(table.into_iter().map(|(k, v)| Tag::File(k, v)).collect())
    }
}

/// A per-destination setting as the user wrote it: a flag's `VALUE` (for
/// every destination) or `DST=VALUE`; the file's `key = "VALUE"`, or its
/// `[key]` table of destination = value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PerDestinationValue {
    Flag(String),
    FileForAll(String),
    FileFor(String, String),
}

impl PerDestinationValue {
    fn flag(text: &str) -> Result<PerDestinationValue, Infallible> {
        Ok(PerDestinationValue::Flag(text.to_owned()))
    }

    fn from_file<'de, D: Deserializer<'de>>(file: D) -> Result<Vec<PerDestinationValue>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            All(String),
            PerDestination(BTreeMap<String, String>),
        }
        Ok(match Written::deserialize(file)? {
            Written::All(value) => vec![PerDestinationValue::FileForAll(value)],
            Written::PerDestination(table) => table
                .into_iter()
                .map(|(d, v)| PerDestinationValue::FileFor(d, v))
                .collect(),
        })
    }

    /// The destination it names (`None`: every one), what the user wrote
    /// (for errors), and the value.
    fn parts(&self, setting: &PerDestination) -> (Option<&str>, String, &str) {
        match self {
            PerDestinationValue::Flag(text) => match text.split_once('=') {
                Some((destination, value)) => (Some(destination), text.clone(), value),
                None => (None, text.clone(), text),
            },
            PerDestinationValue::FileForAll(value) => (
                None,
                format!("{} = {value:?} in {CONFIG_FILE}", setting.file_key),
                value,
            ),
            PerDestinationValue::FileFor(destination, value) => (
                Some(destination),
                format!("{destination} = {value:?} in {CONFIG_FILE}"),
                value,
            ),
        }
    }
}

/// Which fan-out, for the commands that act on a deployed one.
#[derive(Args, Debug)]
pub struct AwsArgs {
    /// AWS region (default: the source bucket's; it must match it).
    #[arg(long)]
    pub region: Option<String>,
    /// Named profile from the AWS config files.
    #[arg(long)]
    pub profile: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text, env = "S3FAN_OUTPUT")]
    pub output: Output,
}

/// `status`, `failures` and `retry`.
#[derive(Args, Debug)]
pub struct TargetArgs {
    /// The fan-out's source bucket.
    #[arg(long, value_name = "SRC", env = "S3FAN_SOURCE")]
    pub source: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `destroy`.
#[derive(Args, Debug)]
pub struct DestroyArgs {
    /// The fan-out's source bucket.
    #[arg(long, value_name = "SRC", env = "S3FAN_SOURCE")]
    pub source: Option<String>,
    /// Remove only this destination (repeat for more); default: everything.
    #[arg(long = "dest", value_name = "DST")]
    pub dest: Vec<String>,
    /// Print what would be removed and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove without asking (needed where there is no terminal to ask on,
    /// as in CI).
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `reconcile`: which fan-out, and which of its destinations.
#[derive(Args, Debug)]
pub struct DestinationsArgs {
    /// The fan-out's source bucket.
    #[arg(long, value_name = "SRC", env = "S3FAN_SOURCE")]
    pub source: Option<String>,
    /// Only this destination (repeat for more); default: every deployed one.
    #[arg(long = "dest", value_name = "DST")]
    pub dest: Vec<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Which fan-out, which destinations and which keys: what backfill and
/// verify share.
#[derive(Args, Debug)]
pub struct FanoutArgs {
    /// The source bucket.
    #[arg(long, value_name = "SRC", env = "S3FAN_SOURCE")]
    pub source: Option<String>,
    /// A destination, as DST or DST:PREFIX (repeat for more); default: the
    /// deployed destinations of SRC.
    #[arg(long = "dest", value_name = "DST")]
    pub dest: Vec<String>,
    /// Only keys starting with this (within the fan-out's own filter).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Slices of the key space listed at once (1: a serial listing).
    #[arg(long, value_name = "N", default_value_t = crate::sync::DEFAULT_LIST_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub list_concurrency: u16,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `backfill`.
#[derive(Args, Debug)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// The most copies at once, per destination: s3fan starts at 32, goes
    /// up while throughput grows and halves when S3 answers 503 SlowDown.
    #[arg(long, value_name = "N", default_value_t = crate::sync::backfill::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..=512))]
    pub concurrency: u16,
    /// List what would be copied and copy nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Copy the objects this file names, one key per line ("-": standard
    /// input), and list no source.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["inventory", "via_lambda"])]
    pub files_from: Option<std::path::PathBuf>,
    /// Copy the objects an S3 Inventory report (CSV) names, and list no
    /// source: s3://BUCKET/PATH/manifest.json.
    #[arg(long, value_name = "MANIFEST", conflicts_with = "via_lambda")]
    pub inventory: Option<String>,
    /// Copy on Lambda: publish the objects to copy to the fan-out's topic,
    /// as S3 events, and let the deployed functions copy them.
    #[arg(long, conflicts_with = "via_batch_operations")]
    pub via_lambda: bool,
    /// Copy with S3 Batch Operations: one job per destination calls its
    /// function for every object of --inventory or --files-from (billed by
    /// AWS: $0.25 a job and $1.00 a million objects, plus Lambda).
    #[arg(long)]
    pub via_batch_operations: bool,
    /// Where Batch Operations jobs write their completion reports (and the
    /// manifest s3fan writes from --files-from): s3://BUCKET/PREFIX.
    /// Default with --inventory: the inventory's bucket, under s3fan-batch/.
    #[arg(long, value_name = "S3_URL", requires = "via_batch_operations")]
    pub report_to: Option<String>,
}

impl Settings {
    /// The fan-out deploy makes: these flags over the file, every value
    /// checked.
    pub fn spec(self, file: Settings) -> Result<Spec, SpecError> {
        let spec = self.over(file).resolve()?;
        spec.validate()?;
        Ok(spec)
    }

    /// Flags win over the file: a value given replaces the file's, a list
    /// of destinations replaces the file's list, a switch given is on; tags
    /// and per-destination values add to the file's, a flag winning per key.
    fn over(self, file: Settings) -> Settings {
        Settings {
            source: self.source.or(file.source),
            dest: if self.dest.is_empty() {
                file.dest
            } else {
                self.dest
            },
            region: self.region.or(file.region),
            profile: self.profile.or(file.profile),
            memory: self.memory.or(file.memory),
            timeout: self.timeout.or(file.timeout),
            prefix: self.prefix.or(file.prefix),
            suffix: self.suffix.or(file.suffix),
            replicate_deletes: self.replicate_deletes || file.replicate_deletes,
            replicate_tags: self.replicate_tags || file.replicate_tags,
            retry_attempts: self.retry_attempts.or(file.retry_attempts),
            max_event_age: self.max_event_age.or(file.max_event_age),
            metrics: self.metrics || file.metrics,
            storage_class: [file.storage_class, self.storage_class].concat(),
            dest_kms_key: [file.dest_kms_key, self.dest_kms_key].concat(),
            dest_account: [file.dest_account, self.dest_account].concat(),
            apply_dest_policy: self.apply_dest_policy || file.apply_dest_policy,
            request_payer: self.request_payer || file.request_payer,
            reconcile_every: self.reconcile_every.or(file.reconcile_every),
            reserved_concurrency: self.reserved_concurrency.or(file.reserved_concurrency),
            alarm_topic: self.alarm_topic.or(file.alarm_topic),
            alarm_email: self.alarm_email.or(file.alarm_email),
            lag_slo: self.lag_slo.or(file.lag_slo),
            tags: [file.tags, self.tags].concat(),
        }
    }

    /// The spec these settings say, before deploy's own checks.
    fn resolve(self) -> Result<Spec, SpecError> {
        let source = spec::parse_source(&self.source.ok_or(SpecError::NoSource)?)?;
        let mut destinations = Vec::new();
        for text in &self.dest {
            let (bucket, key_prefix) = spec::parse_destination(text)?;
            destinations.push(DestinationSpec {
                key_prefix,
                ..DestinationSpec::new(bucket)
            });
        }
        let mut tags = BTreeMap::new();
        for tag in self.tags {
            let (key, value) = match tag {
                Tag::File(key, value) => (key, value),
                Tag::Flag(text) => match text.split_once('=') {
                    Some((key, value)) if !key.is_empty() => (key.to_owned(), value.to_owned()),
                    _ => return Err(SpecError::Tag(text)),
                },
            };
            tags.insert(key, value);
        }
        let buckets: Vec<String> = destinations.iter().map(|d| d.bucket.clone()).collect();
        let mut classes = per_destination(&STORAGE_CLASS, &buckets, self.storage_class)?;
        let mut keys = per_destination(&DEST_KMS_KEY, &buckets, self.dest_kms_key)?;
        let mut accounts = per_destination(&DEST_ACCOUNT, &buckets, self.dest_account)?;
        for destination in &mut destinations {
            destination.storage_class = classes.remove(&destination.bucket);
            destination.kms_key = keys.remove(&destination.bucket);
            destination.account = accounts.remove(&destination.bucket);
        }
        let alarms = match (&self.alarm_topic, &self.alarm_email) {
            (Some(_), Some(_)) => return Err(SpecError::AlarmTopicAndEmail),
            (Some(arn), None) => Some(AlarmsTo::topic(arn)?),
            (None, Some(address)) => Some(AlarmsTo::email(address)?),
            (None, None) => None,
        };
        if self.lag_slo.is_some() && alarms.is_none() {
            return Err(SpecError::LagSloWithoutAlarms);
        }
        let defaults = Spec::new(source);
        Ok(Spec {
            destinations,
            region: self.region,
            profile: self.profile,
            memory: self.memory.unwrap_or(defaults.memory),
            timeout: self.timeout.unwrap_or(defaults.timeout),
            prefix: self.prefix.filter(|p| !p.is_empty()),
            suffix: self.suffix.filter(|s| !s.is_empty()),
            replicate_deletes: self.replicate_deletes,
            replicate_tags: self.replicate_tags,
            // The lag and repair alarms watch s3fan's own metrics.
            metrics: self.metrics || alarms.is_some(),
            retry_attempts: self.retry_attempts.unwrap_or(defaults.retry_attempts),
            max_event_age: self.max_event_age.unwrap_or(defaults.max_event_age),
            tags,
            apply_dest_policy: self.apply_dest_policy,
            request_payer: self.request_payer,
            reconcile_every: self
                .reconcile_every
                .as_deref()
                .map(spec::Every::parse)
                .transpose()
                .map_err(SpecError::ReconcileEvery)?,
            reserved_concurrency: self.reserved_concurrency,
            lag_slo: match &self.lag_slo {
                Some(text) => Lag::parse(text).map_err(SpecError::LagSlo)?,
                None => defaults.lag_slo,
            },
            alarms,
            ..defaults
        })
    }
}

/// The fan-out a command other than deploy acts on: `--source` (or the
/// file's), narrowed to the destinations named. Destinations only narrow:
/// the file's list is deploy's, and its per-destination values count for
/// the destinations named here; commands that name none take each deployed
/// function's own. The file's other settings stand where nothing is
/// deployed to say otherwise.
pub fn target_spec(
    source: Option<String>,
    dest: Vec<String>,
    aws: &AwsArgs,
    mut file: Settings,
) -> Result<Spec, SpecError> {
    let named: Vec<String> = dest
        .iter()
        .filter_map(|text| spec::parse_destination(text).ok().map(|(bucket, _)| bucket))
        .collect();
    file.dest = Vec::new();
    file.apply_dest_policy = false;
    for values in [
        &mut file.storage_class,
        &mut file.dest_kms_key,
        &mut file.dest_account,
    ] {
        values.retain(|value| match value {
            PerDestinationValue::FileFor(destination, _) => named.contains(destination),
            _ => true,
        });
    }
    let flags = Settings {
        source,
        dest,
        region: aws.region.clone(),
        profile: aws.profile.clone(),
        ..Settings::default()
    };
    let spec = flags.over(file).resolve()?;
    spec::check_bucket_name("source", &spec.source)?;
    for destination in &spec.destinations {
        spec::check_bucket_name("destination", &destination.bucket)?;
    }
    Ok(spec)
}

/// Each destination's value of `setting`, from what was written in order
/// (the file's first, then the flags'): the last value named for it, else
/// the last value for every destination.
fn per_destination(
    setting: &PerDestination,
    destinations: &[String],
    written: Vec<PerDestinationValue>,
) -> Result<BTreeMap<String, String>, SpecError> {
    // (what the user wrote, for errors; the value)
    let mut every: Option<(String, String)> = None;
    let mut named: BTreeMap<String, (String, String)> = BTreeMap::new();
    for value in &written {
        match value.parts(setting) {
            (Some(destination), given, value) => {
                named.insert(destination.to_owned(), (given, value.to_owned()));
            }
            (None, given, value) => every = Some((given, value.to_owned())),
        }
    }
    if let Some((destination, (given, _))) = named.iter().find(|(d, _)| !destinations.contains(d)) {
        return Err(SpecError::NotADestination {
            flag: setting.flag,
            given: given.clone(),
            destination: destination.clone(),
        });
    }
    let mut values = BTreeMap::new();
    for destination in destinations {
        let Some((given, value)) = named.get(destination).or(every.as_ref()) else {
            continue;
        };
        let value = (setting.check)(value).map_err(|rule| SpecError::PerDestination {
            flag: setting.flag,
            given: given.clone(),
            rule,
        })?;
        values.insert(destination.clone(), value);
    }
    Ok(values)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::fanout::spec::{parse_destination, parse_source};

    /// The settings of `--source SOURCE --dest DEST...`.
    pub(in crate::cli) fn flags(source: &str, dest: &[&str]) -> Settings {
        Settings {
            source: Some(source.into()),
            dest: dest.iter().map(|d| d.to_string()).collect(),
            ..Settings::default()
        }
    }

    fn resolve(flags: Settings, file: Settings) -> Result<Spec, SpecError> {
        flags.spec(file)
    }

    /// Per-destination values as flags write them.
    fn written(flags: &[&str]) -> Vec<PerDestinationValue> {
        flags
            .iter()
            .map(|f| PerDestinationValue::Flag(f.to_string()))
            .collect()
    }

    #[test]
    fn alarms_turn_metrics_on_and_say_where_they_go_once() {
        let mut given = flags("src", &["aaa"]);
        given.alarm_email = Some("ops@example.com".into());
        given.lag_slo = Some("5m".into());
        let spec = resolve(given, Settings::default()).unwrap();
        assert_eq!(spec.alarms, Some(AlarmsTo::Email("ops@example.com".into())));
        assert_eq!(spec.lag_slo.seconds, 300);
        assert!(
            spec.metrics,
            "the lag and repair alarms need s3fan's metrics"
        );
        // From the file, with the default SLO.
        let file: Settings =
            toml::from_str(r#"alarm_topic = "arn:aws:sns:us-east-1:123456789012:pager""#).unwrap();
        let spec = resolve(flags("src", &["aaa"]), file).unwrap();
        assert!(matches!(spec.alarms, Some(AlarmsTo::Topic(_))));
        assert_eq!(spec.lag_slo.seconds, 900);
        assert!(
            !resolve(flags("src", &["aaa"]), Settings::default())
                .unwrap()
                .metrics
        );

        let mut both = flags("src", &["aaa"]);
        both.alarm_email = Some("ops@example.com".into());
        both.alarm_topic = Some("arn:aws:sns:us-east-1:123456789012:pager".into());
        assert_eq!(
            resolve(both, Settings::default()),
            Err(SpecError::AlarmTopicAndEmail)
        );
        let mut slo_alone = flags("src", &["aaa"]);
        slo_alone.lag_slo = Some("5m".into());
        let err = resolve(slo_alone, Settings::default()).unwrap_err();
        assert_eq!(err, SpecError::LagSloWithoutAlarms);
        assert!(
            err.to_string()
                .contains("add --alarm-topic ARN or --alarm-email")
        );
    }

    #[test]
    fn storage_classes_per_destination_or_for_all() {
        let mut given = flags("src", &["aaa", "bbb", "ccc"]);
        given.storage_class = written(&["standard_ia", "bbb=GLACIER_IR"]);
        let spec = resolve(given, Settings::default()).unwrap();
        assert_eq!(spec.storage_class("aaa"), Some("STANDARD_IA"));
        assert_eq!(spec.storage_class("bbb"), Some("GLACIER_IR"));
        assert_eq!(spec.storage_class("ccc"), Some("STANDARD_IA"));

        let file: Settings = toml::from_str(
            r#"
            request_payer = true
            [storage_class]
            bbb = "DEEP_ARCHIVE"
            "#,
        )
        .unwrap();
        let spec = resolve(flags("src", &["aaa", "bbb"]), file).unwrap();
        assert_eq!(spec.storage_class("aaa"), None);
        assert_eq!(spec.storage_class("bbb"), Some("DEEP_ARCHIVE"));
        assert!(spec.request_payer);

        // A flag for one destination wins over the file's class for all.
        let file: Settings = toml::from_str(r#"storage_class = "ONEZONE_IA""#).unwrap();
        let mut given = flags("src", &["aaa", "bbb"]);
        given.storage_class = written(&["aaa=STANDARD"]);
        let spec = resolve(given, file).unwrap();
        assert_eq!(spec.storage_class("aaa"), Some("STANDARD"));
        assert_eq!(spec.storage_class("bbb"), Some("ONEZONE_IA"));
        assert!(!spec.request_payer);
    }

    #[test]
    fn a_bad_storage_class_is_named_with_the_valid_ones() {
        let mut given = flags("src", &["aaa"]);
        given.storage_class = written(&["aaa=COLD"]);
        let err = resolve(given, Settings::default()).unwrap_err().to_string();
        assert!(
            err.contains("\"aaa=COLD\"") && err.contains("GLACIER_IR"),
            "{err}"
        );
        let mut given = flags("src", &["aaa"]);
        given.storage_class = written(&["zzz=GLACIER"]);
        let err = resolve(given, Settings::default()).unwrap_err().to_string();
        assert!(err.contains("\"zzz\", which is not a destination"), "{err}");
    }

    #[test]
    fn a_kms_key_per_destination_is_kept_as_given_and_checked() {
        let mut given = flags("src", &["aaa", "bbb"]);
        given.dest_kms_key = written(&[
            "aaa=arn:aws:kms:us-east-1:123456789012:key/1111aaaa-11aa-11aa-11aa-111111aaaaaa",
        ]);
        let spec = resolve(given, Settings::default()).unwrap();
        assert_eq!(
            spec.dest_kms_key("aaa"),
            Some("arn:aws:kms:us-east-1:123456789012:key/1111aaaa-11aa-11aa-11aa-111111aaaaaa")
        );
        assert_eq!(spec.dest_kms_key("bbb"), None);
        let mut given = flags("src", &["aaa"]);
        given.dest_kms_key = written(&["my key"]);
        let err = resolve(given, Settings::default()).unwrap_err().to_string();
        assert!(
            err.starts_with("--dest-kms-key \"my key\": ") && err.contains("alias/NAME"),
            "{err}"
        );
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let spec = resolve(flags("src", &["dst", "b.c"]), Settings::default()).unwrap();
        assert_eq!(spec.buckets(), ["dst", "b.c"].map(String::from));
        assert_eq!(spec.timeout, 300);
        assert_eq!(spec.memory, 128);
        assert_eq!(spec.prefix, None);
    }

    #[test]
    fn flags_win_over_the_file_and_tags_merge() {
        let file: Settings = toml::from_str(
            r#"
            source = "from-file"
            dest = ["file-dest"]
            memory = 512
            timeout = 60
            prefix = "in/"
            [tags]
            team = "media"
            env = "prod"
            "#,
        )
        .unwrap();
        let mut flags = flags("from-flag", &[]);
        flags.timeout = Some(120);
        flags.tags = vec![
            Tag::Flag("env=staging".into()),
            Tag::Flag("cost=x=y".into()),
        ];
        let spec = resolve(flags, file).unwrap();
        assert_eq!(spec.source, "from-flag");
        assert_eq!(spec.buckets(), ["file-dest"]);
        assert_eq!((spec.memory, spec.timeout), (512, 120));
        assert_eq!(spec.prefix.as_deref(), Some("in/"));
        let tags: Vec<(&str, &str)> = spec
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            tags,
            [("cost", "x=y"), ("env", "staging"), ("team", "media")]
        );
    }

    #[test]
    fn a_number_flag_that_is_not_a_number_says_what_to_write() {
        #[derive(clap::Parser)]
        struct Deploy {
            #[command(flatten)]
            settings: Settings,
        }
        let refusal = |flag: &str, value: &str| {
            let parsed = <Deploy as clap::Parser>::try_parse_from(["deploy", flag, value]);
            parsed.err().map(|err| err.to_string()).unwrap_or_default()
        };
        let unit = refusal("--memory", "256MB");
        assert!(unit.contains("'256MB' for '--memory <MB>'"), "{unit}");
        assert!(unit.contains("with no unit (as 256)"), "{unit}");
        let words = refusal("--timeout", "five");
        assert!(words.contains("not a whole number"), "{words}");
        let huge = refusal("--reserved-concurrency", "99999999999");
        assert!(huge.contains("far too large"), "{huge}");
        let parsed = <Deploy as clap::Parser>::try_parse_from(["deploy", "--max-event-age", "60"]);
        assert_eq!(parsed.ok().and_then(|d| d.settings.max_event_age), Some(60));
    }

    #[test]
    fn refusals_name_the_bad_input() {
        let refuse = |f: Settings| resolve(f, Settings::default()).unwrap_err().to_string();
        assert!(refuse(Settings::default()).contains("--source"));
        assert!(refuse(flags("src", &[])).contains("--dest"));
        assert!(refuse(flags("src", &["src"])).contains("\"src\" is the source bucket"));
        assert!(refuse(flags("src", &["dst1", "dst1"])).contains("\"dst1\" is listed twice"));
        assert!(refuse(flags("Src", &["dst1"])).contains("source bucket name \"Src\""));
        assert!(refuse(flags("src", &["ok1", "a_b"])).contains("destination bucket name \"a_b\""));
        let mut bad_tag = flags("src", &["dst1"]);
        bad_tag.tags = vec![Tag::Flag("novalue".into())];
        assert!(refuse(bad_tag).contains("KEY=VALUE"));
        let mut bad_memory = flags("src", &["dst1"]);
        bad_memory.memory = Some(64);
        assert!(refuse(bad_memory).contains("128 to 10240"));
        let mut bad_retries = flags("src", &["dst1"]);
        bad_retries.retry_attempts = Some(3);
        assert!(refuse(bad_retries).contains("--retry-attempts 3"));
        let mut bad_age = flags("src", &["dst1"]);
        bad_age.max_event_age = Some(59);
        assert!(refuse(bad_age).contains("60 to 21600"));
    }

    #[test]
    fn a_destination_may_carry_a_key_prefix() {
        let spec = resolve(
            flags("src", &["plain", "backup.eu:backup/2026/"]),
            Settings::default(),
        )
        .unwrap();
        assert_eq!(spec.buckets(), ["plain", "backup.eu"].map(String::from));
        assert_eq!(spec.key_prefix("plain"), None);
        assert_eq!(spec.key_prefix("backup.eu"), Some("backup/2026/"));
        // The file takes the same form.
        let file: Settings = toml::from_str(
            r#"source = "src"
            dest = ["dst:copies/"]"#,
        )
        .unwrap();
        let spec = resolve(Settings::default(), file).unwrap();
        assert_eq!(spec.key_prefix("dst"), Some("copies/"));
        // One function per destination bucket: two prefixes in one bucket are refused.
        let refused = resolve(flags("src", &["dst:a/", "dst:b/"]), Settings::default());
        assert_eq!(refused, Err(SpecError::DuplicateDestination("dst".into())));
        for (bad, says) in [
            ("dst:", "nothing follows the colon"),
            ("dst:/abs", "starts with '/'"),
            ("dst:a*", "wildcards"),
            ("dst:${aws:username}/", "wildcards or variables"),
            ("dst:a\nb", "control character"),
        ] {
            let err = resolve(flags("src", &[bad]), Settings::default())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains(says),
                "{err}"
            );
        }
        let long = format!("dst:{}", "p".repeat(513));
        assert!(matches!(
            resolve(flags("src", &[&long]), Settings::default()),
            Err(SpecError::KeyPrefix { .. })
        ));
    }

    #[test]
    fn buckets_may_be_written_as_s3_urls_and_arns() {
        let spec = resolve(
            flags(
                "s3://photos",
                &[
                    "s3://plain",
                    "s3://kpx/in/",
                    "arn:aws:s3:::backup",
                    "s3://slash/",
                ],
            ),
            Settings::default(),
        )
        .unwrap();
        assert_eq!(spec.source, "photos");
        assert_eq!(
            spec.buckets(),
            ["plain", "kpx", "backup", "slash"].map(String::from)
        );
        assert_eq!(spec.key_prefix("kpx"), Some("in/"));
        assert_eq!(spec.key_prefix("backup"), None);
        assert_eq!(spec.key_prefix("slash"), None);
        assert_eq!(parse_source("arn:aws-cn:s3:::photos"), Ok("photos".into()));
        // Never a bucket "arn" or "s3" with a key prefix.
        let err = parse_source("s3://photos/in/").unwrap_err().to_string();
        assert!(err.contains("--source photos --prefix in/"), "{err}");
        for (bad, says) in [
            ("arn:aws:s3:::backup/key", "object's ARN"),
            (
                "arn:aws:s3:us-east-1:123456789012:accesspoint/ap",
                "access points",
            ),
            (
                "arn:aws:sns:us-east-1:123456789012:topic",
                "arn:aws:s3:::NAME",
            ),
        ] {
            let err = parse_destination(bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains(says),
                "{err}"
            );
        }
        let err = resolve(flags("s3://", &["dst"]), Settings::default()).unwrap_err();
        assert!(matches!(err, SpecError::BucketName { .. }), "{err}");
    }
}
