//! What the user asked for, once flags and `s3fan.toml` are resolved
//! (`crate::cli::args`): one fan-out, validated before any AWS call so that
//! bad input never leaves half a deployment behind. Also the rules every
//! bucket name, key prefix and per-destination value is checked against.

use std::collections::BTreeMap;

/// The file `s3fan.toml` in the working directory: the same keys as the flags.
pub const CONFIG_FILE: &str = "s3fan.toml";

pub const DEFAULT_MEMORY_MB: i32 = 128;
/// Five minutes unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT_SECONDS: i32 = 300;
/// Lambda's own defaults for asynchronous invocations.
pub const DEFAULT_RETRY_ATTEMPTS: i32 = 2;
pub const DEFAULT_MAX_EVENT_AGE_SECONDS: i32 = 21_600;

/// The storage classes a copy may be written in (general purpose buckets).
pub const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
];

/// A complete, valid request for one fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub source: String,
    /// Each destination with its own settings, in the order given.
    pub destinations: Vec<DestinationSpec>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub memory: i32,
    pub timeout: i32,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    /// Opt-in: deletes in the source are deleted in every destination too.
    pub replicate_deletes: bool,
    /// Opt-in: tag changes in the source are made in every destination too.
    pub replicate_tags: bool,
    /// Opt-in: the handler also writes CloudWatch metrics (EMF).
    pub metrics: bool,
    /// Lambda's retries of a failed asynchronous invocation (0 to 2) before
    /// the event goes to the failure queue.
    pub retry_attempts: i32,
    /// How long Lambda keeps trying an event, in seconds (60 to 21,600).
    pub max_event_age: i32,
    pub tags: BTreeMap<String, String>,
    /// `--apply-dest-policy`: write the statement each such destination's
    /// bucket policy needs, rather than print it for its owner.
    pub apply_dest_policy: bool,
    /// `--request-payer`: every object request says the requester pays, as
    /// requester-pays buckets of other accounts demand.
    pub request_payer: bool,
    /// `--reconcile-every`: each destination's function compares it with
    /// the source on this schedule and copies what events missed.
    pub reconcile_every: Option<Every>,
    /// `--reserved-concurrency`: each function runs at most this many at
    /// once, so a burst cannot take the account's whole concurrency.
    pub reserved_concurrency: Option<i32>,
    /// `--alarm-topic` or `--alarm-email`: where the alarms notify; no
    /// alarms without it.
    pub alarms: Option<AlarmsTo>,
    /// `--lag-slo`: the lag alarm fires when the p99 of
    /// `ReplicationLatency` over five minutes is above this.
    pub lag_slo: Lag,
}

/// Where the alarms notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmsTo {
    /// `--alarm-topic ARN`: a topic the user has, with its subscribers.
    Topic(String),
    /// `--alarm-email ADDRESS`: s3fan makes `SRC-fanout-alarms` and
    /// subscribes the address (which must confirm by the mail SNS sends).
    Email(String),
}

impl AlarmsTo {
    /// `--alarm-topic`'s value, checked: an SNS topic's ARN.
    pub fn topic(arn: &str) -> Result<AlarmsTo, SpecError> {
        let bad = |rule: &'static str| SpecError::AlarmTopic {
            given: arn.to_owned(),
            rule,
        };
        match arn.split(':').collect::<Vec<_>>().as_slice() {
            ["arn", partition, "sns", region, account, name]
                if !partition.is_empty() && !region.is_empty() =>
            {
                if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("its account is not 12 digits"));
                }
                let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
                if name.is_empty() || name.len() > 256 || !name.chars().all(allowed) {
                    return Err(bad(
                        "its topic name is not 1 to 256 letters, digits, hyphens and underscores",
                    ));
                }
                Ok(AlarmsTo::Topic(arn.to_owned()))
            }
            _ => Err(bad(
                "it is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME);                  for s3fan to make a topic, give --alarm-email instead",
            )),
        }
    }

    /// `--alarm-email`'s value, checked as far as an address can be
    /// without sending to it.
    pub fn email(address: &str) -> Result<AlarmsTo, SpecError> {
        let address = address.trim();
        let well_formed = match address.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            }
            None => false,
        };
        if !well_formed || address.chars().any(char::is_whitespace) {
            return Err(SpecError::AlarmEmail(address.to_owned()));
        }
        Ok(AlarmsTo::Email(address.to_owned()))
    }

    /// As a function records it: `topic ARN` or `email ADDRESS`.
    pub fn to_record(&self) -> String {
        match self {
            AlarmsTo::Topic(arn) => format!("topic {arn}"),
            AlarmsTo::Email(address) => format!("email {address}"),
        }
    }

    /// What `to_record` wrote; `None` for anything else.
    pub fn from_record(record: &str) -> Option<AlarmsTo> {
        match record.split_once(' ')? {
            ("topic", arn) => AlarmsTo::topic(arn).ok(),
            ("email", address) => AlarmsTo::email(address).ok(),
            _ => None,
        }
    }

    /// The region of a given topic, which must be the alarms' own.
    pub fn topic_region(&self) -> Option<&str> {
        match self {
            AlarmsTo::Topic(arn) => arn.split(':').nth(3),
            AlarmsTo::Email(_) => None,
        }
    }
}

/// A lag: `--lag-slo 15m`. Seconds, minutes or hours, from one minute
/// (below that, one slow request is an alarm) to a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    pub seconds: u32,
}

/// Like S3 Replication Time Control: 15 minutes.
pub const DEFAULT_LAG_SLO: Lag = Lag { seconds: 15 * 60 };

impl Lag {
    pub fn parse(text: &str) -> Result<Lag, String> {
        let text = text.trim();
        let (number, unit) = text.split_at(
            text.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len()),
        );
        let seconds = match (number.parse::<u32>(), unit) {
            (Ok(n), "s") => n,
            (Ok(n), "m") => n.saturating_mul(60),
            (Ok(n), "h") => n.saturating_mul(3600),
            _ => {
                return Err(format!(
                    "{text:?} is not a duration: write seconds, minutes or hours, such as 15m"
                ));
            }
        };
        if !(60..=86_400).contains(&seconds) {
            return Err(format!(
                "{text:?} is outside 1m to 24h: the alarm looks at five-minute windows"
            ));
        }
        Ok(Lag { seconds })
    }

    pub fn millis(&self) -> u64 {
        u64::from(self.seconds) * 1000
    }
}

/// As written back: `15m`, `90s`, `2h`; what `parse` reads.
impl std::fmt::Display for Lag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seconds {
            s if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

/// How often something runs: `--reconcile-every 6h`. Hours or days, from
/// one hour (a run lists the whole bucket) to 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every {
    pub hours: u32,
}

impl Every {
    pub fn parse(text: &str) -> Result<Every, String> {
        let text = text.trim();
        let (number, unit) = text.split_at(
            text.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len()),
        );
        let hours = match (number.parse::<u32>(), unit) {
            (Ok(n), "h") => n,
            (Ok(n), "d") => n.saturating_mul(24),
            _ => {
                return Err(format!(
                    "{text:?} is not a duration: write hours or days, such as 6h or 1d"
                ));
            }
        };
        if !(1..=30 * 24).contains(&hours) {
            return Err(format!(
                "{text:?} is outside 1h to 30d: a run lists the whole bucket, so give at least 1h"
            ));
        }
        Ok(Every { hours })
    }

    /// EventBridge's schedule expression: `rate(6 hours)`, `rate(1 day)`.
    pub fn rate_expression(&self) -> String {
        match self.hours {
            1 => "rate(1 hour)".to_owned(),
            24 => "rate(1 day)".to_owned(),
            h if h % 24 == 0 => format!("rate({} days)", h / 24),
            h => format!("rate({h} hours)"),
        }
    }
}

/// As written back: `6h`, `1d`; what `parse` reads.
impl std::fmt::Display for Every {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.hours % 24 == 0 {
            write!(f, "{}d", self.hours / 24)
        } else {
            write!(f, "{}h", self.hours)
        }
    }
}

/// One destination and what is asked of its copies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationSpec {
    pub bucket: String,
    /// `--dest DST:PREFIX`: the copies go under this key prefix.
    pub key_prefix: Option<String>,
    /// `--storage-class`: the copies' class, other than the bucket's default.
    pub storage_class: Option<String>,
    /// `--dest-kms-key`: the KMS key of the copies, other than the bucket's
    /// default encryption.
    pub kms_key: Option<String>,
    /// `--dest-account`: the account that owns the bucket, when said.
    pub account: Option<String>,
}

impl DestinationSpec {
    pub fn new(bucket: impl Into<String>) -> DestinationSpec {
        DestinationSpec {
            bucket: bucket.into(),
            ..DestinationSpec::default()
        }
    }
}

impl Spec {
    /// The spec of a fan-out from `source` to nothing yet, with every default.
    pub fn new(source: impl Into<String>) -> Spec {
        Spec {
            source: source.into(),
            destinations: Vec::new(),
            region: None,
            profile: None,
            memory: DEFAULT_MEMORY_MB,
            timeout: DEFAULT_TIMEOUT_SECONDS,
            prefix: None,
            suffix: None,
            replicate_deletes: false,
            replicate_tags: false,
            metrics: false,
            retry_attempts: DEFAULT_RETRY_ATTEMPTS,
            max_event_age: DEFAULT_MAX_EVENT_AGE_SECONDS,
            tags: BTreeMap::new(),
            apply_dest_policy: false,
            request_payer: false,
            reconcile_every: None,
            reserved_concurrency: None,
            alarms: None,
            lag_slo: DEFAULT_LAG_SLO,
        }
    }

    /// The destination buckets, in the order given.
    pub fn buckets(&self) -> Vec<String> {
        self.destinations.iter().map(|d| d.bucket.clone()).collect()
    }

    /// Whether `bucket` is one of the destinations.
    pub fn names(&self, bucket: &str) -> bool {
        self.destination(bucket).is_some()
    }

    /// What is asked of the copies to `bucket`, when it is a destination.
    pub fn destination(&self, bucket: &str) -> Option<&DestinationSpec> {
        self.destinations.iter().find(|d| d.bucket == bucket)
    }

    /// The key prefix copies to `destination` go under, if any.
    pub fn key_prefix(&self, destination: &str) -> Option<&str> {
        self.destination(destination)?.key_prefix.as_deref()
    }

    /// The account that owns `destination`, when it was said to be another.
    pub fn dest_account(&self, destination: &str) -> Option<&str> {
        self.destination(destination)?.account.as_deref()
    }

    /// The KMS key copies to `destination` are encrypted with, if set.
    pub fn dest_kms_key(&self, destination: &str) -> Option<&str> {
        self.destination(destination)?.kms_key.as_deref()
    }

    /// The storage class copies to `destination` are written in, if set.
    pub fn storage_class(&self, destination: &str) -> Option<&str> {
        self.destination(destination)?.storage_class.as_deref()
    }
}

#[cfg(test)]
impl Spec {
    /// The spec of `deploy --source SOURCE --dest ...` with every default.
    pub fn for_test(source: &str, destinations: &[&str]) -> Spec {
        Spec {
            destinations: destinations
                .iter()
                .map(|d| DestinationSpec::new(*d))
                .collect(),
            ..Spec::new(source)
        }
    }
}

/// Splits `DST` or `DST:PREFIX` (bucket names never contain a colon), also
/// written `s3://DST/PREFIX`; a bucket ARN names the bucket alone.
pub fn parse_destination(text: &str) -> Result<(String, Option<String>), SpecError> {
    let (bucket, prefix) = match bucket_reference("destination", text)? {
        Some(written) => written,
        None => match text.split_once(':') {
            Some((bucket, prefix)) => (bucket, Some(prefix)),
            None => (text, None),
        },
    };
    let Some(prefix) = prefix else {
        return Ok((bucket.to_owned(), None));
    };
    let bad = |rule: &'static str| SpecError::KeyPrefix {
        destination: text.to_owned(),
        rule,
    };
    if prefix.is_empty() {
        return Err(bad(
            "nothing follows the colon: give a prefix (DST:backup/) or drop the colon",
        ));
    }
    if prefix.starts_with('/') {
        return Err(bad(
            "it starts with '/', which S3 would keep as an empty first path segment: write DST:backup/",
        ));
    }
    if prefix.contains(['*', '?', '$']) {
        return Err(bad(
            "'*', '?' and '$' would be wildcards or variables in the role's IAM policy: choose a prefix without them",
        ));
    }
    if prefix.chars().any(char::is_control) {
        return Err(bad("it contains a control character"));
    }
    if prefix.len() > 512 {
        return Err(bad(
            "it is longer than 512 bytes, leaving too little of S3's 1,024 for keys",
        ));
    }
    Ok((bucket.to_owned(), Some(prefix.to_owned())))
}

/// The source bucket as given: `NAME`, `s3://NAME` or its ARN. A key prefix
/// is refused with the flag that says it: the source is a whole bucket.
pub fn parse_source(text: &str) -> Result<String, SpecError> {
    match bucket_reference("source", text)? {
        Some((bucket, Some(prefix))) => Err(SpecError::SourceWithPrefix {
            given: text.to_owned(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        }),
        Some((bucket, None)) => Ok(bucket.to_owned()),
        None => Ok(text.to_owned()),
    }
}

/// `s3://NAME`, `s3://NAME/PREFIX` and bucket ARNs (`arn:aws:s3:::NAME`), as
/// the aws cli and IAM write buckets; `None` for anything else (a plain
/// name, or `NAME:PREFIX`). Without this, `s3://photos` would be read as
/// the bucket `s3` with the key prefix `//photos`.
fn bucket_reference<'a>(
    role: &'static str,
    text: &'a str,
) -> Result<Option<(&'a str, Option<&'a str>)>, SpecError> {
    if let Some(rest) = text.strip_prefix("s3://") {
        return Ok(Some(match rest.split_once('/') {
            Some((bucket, prefix)) if !prefix.is_empty() => (bucket, Some(prefix)),
            Some((bucket, _)) => (bucket, None),
            None => (rest, None),
        }));
    }
    if !text.starts_with("arn:") {
        return Ok(None);
    }
    let not_a_bucket = |rule: &'static str| SpecError::NotABucket {
        role,
        given: text.to_owned(),
        rule,
    };
    match text.splitn(6, ':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "s3", "", "", resource] if !resource.contains('/') => Ok(Some((resource, None))),
        ["arn", _, "s3", "", "", _] => Err(not_a_bucket(
            "it is an object's ARN: name the bucket alone, as arn:aws:s3:::NAME or NAME",
        )),
        ["arn", _, "s3", ..] => Err(not_a_bucket(
            "access points and other S3 resources are not supported: name the bucket, as NAME",
        )),
        _ => Err(not_a_bucket(
            "a bucket's ARN is arn:aws:s3:::NAME; or name the bucket alone",
        )),
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
    /// A value of the file is wrong: `s3fan.toml: memory must be ...`.
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },
    #[error("no source bucket: pass --source BUCKET (or set source in {CONFIG_FILE})")]
    NoSource,
    #[error(
        "no destination bucket: pass --dest BUCKET at least once (or set dest in {CONFIG_FILE}, \
         or S3FAN_DEST)"
    )]
    NoDestination,
    /// `S3FAN_DEST` cannot be read as a list of destinations.
    #[error("S3FAN_DEST {given:?}: {reason}")]
    DestVariable { given: String, reason: String },
    #[error("{role} bucket name {name:?} is invalid: {rule}")]
    BucketName {
        role: &'static str,
        name: String,
        rule: &'static str,
    },
    #[error(
        "destination {0:?} is the source bucket: copying into it would trigger the fan-out \
         forever; remove that --dest"
    )]
    DestinationIsSource(String),
    #[error("destination {0:?} is listed twice; list each destination once")]
    DuplicateDestination(String),
    #[error("--memory {0} is outside Lambda's range: give 128 to 10240 (MB)")]
    Memory(i32),
    #[error("--timeout {0} is outside Lambda's range: give 1 to 900 (seconds)")]
    Timeout(i32),
    #[error("--retry-attempts {0} is outside Lambda's range: give 0 to 2")]
    RetryAttempts(i32),
    #[error("--max-event-age {0} is outside Lambda's range: give 60 to 21600 (seconds)")]
    MaxEventAge(i32),
    #[error("--tag {0:?} is not KEY=VALUE: write it as --tag team=media")]
    Tag(String),
    #[error("{flag} {given:?}: {rule}")]
    PerDestination {
        flag: &'static str,
        given: String,
        rule: String,
    },
    #[error(
        "{flag} {given:?} names {destination:?}, which is not a destination: \
         name one given with --dest, or give the value alone for every destination"
    )]
    NotADestination {
        flag: &'static str,
        given: String,
        destination: String,
    },
    #[error(
        "--source {given:?} has a key prefix: the source is a whole bucket; to copy only keys \
         under it, pass --source {bucket} --prefix {prefix}"
    )]
    SourceWithPrefix {
        given: String,
        bucket: String,
        prefix: String,
    },
    #[error("{role} {given:?} is not a bucket: {rule}")]
    NotABucket {
        role: &'static str,
        given: String,
        rule: &'static str,
    },
    #[error(
        "--reserved-concurrency {0} would let no copy run (0 stops the function): give 1 or \
         more, or leave it out for no cap"
    )]
    ReservedConcurrency(i32),
    #[error("--reconcile-every {0}")]
    ReconcileEvery(String),
    #[error("--alarm-topic {given:?}: {rule}")]
    AlarmTopic { given: String, rule: &'static str },
    #[error("--alarm-email {0:?} is not an email address: write it as name@example.com")]
    AlarmEmail(String),
    #[error(
        "--alarm-topic and --alarm-email both say where alarms go: give one (subscribe more \
         addresses to your own topic)"
    )]
    AlarmTopicAndEmail,
    #[error("--lag-slo {0}")]
    LagSlo(String),
    #[error(
        "--lag-slo sets the lag alarm, and there are no alarms without somewhere to send them: \
         add --alarm-topic ARN or --alarm-email ADDRESS, or drop --lag-slo"
    )]
    LagSloWithoutAlarms,
    #[error("--dest {destination:?} has an unusable key prefix: {rule}")]
    KeyPrefix {
        destination: String,
        rule: &'static str,
    },
}

/// A setting given per destination: its flag, its key in the file, and how
/// a value is checked (the value to keep, or the rule it breaks).
pub struct PerDestination {
    pub flag: &'static str,
    pub file_key: &'static str,
    pub check: fn(&str) -> Result<String, String>,
}

pub const STORAGE_CLASS: PerDestination = PerDestination {
    flag: "--storage-class",
    file_key: "storage_class",
    check: |class| {
        let upper = class.trim().to_ascii_uppercase();
        if STORAGE_CLASSES.contains(&upper.as_str()) {
            Ok(upper)
        } else {
            Err(format!(
                "{class:?} is not an S3 storage class; use one of {}",
                STORAGE_CLASSES.join(", ")
            ))
        }
    },
};

pub const DEST_KMS_KEY: PerDestination = PerDestination {
    flag: "--dest-kms-key",
    file_key: "dest_kms_key",
    check: |key| {
        let key = key.trim();
        let allowed = |c: char| c.is_ascii_alphanumeric() || ":/_-".contains(c);
        if !key.is_empty() && key.chars().all(allowed) {
            Ok(key.to_owned())
        } else {
            Err(format!(
                "{key:?} is not a KMS key: give its ARN, its ID, an alias ARN or alias/NAME"
            ))
        }
    },
};

pub const DEST_ACCOUNT: PerDestination = PerDestination {
    flag: "--dest-account",
    file_key: "dest_account",
    check: |account| {
        let account = account.trim();
        if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
            Ok(account.to_owned())
        } else {
            Err(format!(
                "{account:?} is not an AWS account ID: give the 12 digits of the account that owns the bucket"
            ))
        }
    },
};

impl Spec {
    /// What deploy demands: a valid source, at least one destination, each
    /// once and none the source, and settings within Lambda's ranges.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_bucket_name("source", &self.source)?;
        if self.destinations.is_empty() {
            return Err(SpecError::NoDestination);
        }
        let mut seen = std::collections::HashSet::new();
        for destination in self.destinations.iter().map(|d| &d.bucket) {
            check_bucket_name("destination", destination)?;
            if *destination == self.source {
                return Err(SpecError::DestinationIsSource(destination.clone()));
            }
            if !seen.insert(destination) {
                return Err(SpecError::DuplicateDestination(destination.clone()));
            }
        }
        if !(128..=10240).contains(&self.memory) {
            return Err(SpecError::Memory(self.memory));
        }
        if !(1..=900).contains(&self.timeout) {
            return Err(SpecError::Timeout(self.timeout));
        }
        if !(0..=2).contains(&self.retry_attempts) {
            return Err(SpecError::RetryAttempts(self.retry_attempts));
        }
        if !(60..=21_600).contains(&self.max_event_age) {
            return Err(SpecError::MaxEventAge(self.max_event_age));
        }
        if let Some(n) = self.reserved_concurrency.filter(|n| *n < 1) {
            return Err(SpecError::ReservedConcurrency(n));
        }
        Ok(())
    }
}

/// S3's naming rules for general purpose buckets.
pub fn check_bucket_name(role: &'static str, name: &str) -> Result<(), SpecError> {
    let error = |rule| SpecError::BucketName {
        role,
        name: name.to_owned(),
        rule,
    };
    if !(3..=63).contains(&name.len()) {
        return Err(error("bucket names are 3 to 63 characters long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err(error(
            "only lowercase letters, digits, dots and hyphens are allowed",
        ));
    }
    let first_and_last = [name.as_bytes()[0], name.as_bytes()[name.len() - 1]];
    if !first_and_last.iter().all(|b| b.is_ascii_alphanumeric()) {
        return Err(error("it must begin and end with a letter or digit"));
    }
    if name.contains("..") {
        return Err(error("two dots may not be adjacent"));
    }
    if name.split('.').count() == 4 && name.split('.').all(|part| part.parse::<u8>().is_ok()) {
        return Err(error("it may not look like an IP address"));
    }
    if name.starts_with("xn--") || name.starts_with("sthree-") {
        return Err(error("the prefixes xn-- and sthree- are reserved"));
    }
    if name.ends_with("-s3alias") || name.ends_with("--ol-s3") {
        return Err(error("the suffixes -s3alias and --ol-s3 are reserved"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lag_slo_reads_seconds_minutes_or_hours_within_a_minute_to_a_day() {
        for (text, seconds, back) in [("15m", 900, "15m"), ("90s", 90, "90s"), ("2h", 7200, "2h")] {
            let lag = Lag::parse(text).unwrap();
            assert_eq!((lag.seconds, lag.to_string()), (seconds, back.to_owned()));
        }
        assert_eq!(DEFAULT_LAG_SLO.millis(), 900_000);
        assert!(Lag::parse("30s").unwrap_err().contains("outside 1m to 24h"));
        assert!(Lag::parse("2d").unwrap_err().contains("not a duration"));
        assert!(Lag::parse("fast").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn alarm_destinations_are_checked_and_survive_the_function_record() {
        let topic = "arn:aws:sns:eu-west-1:123456789012:pager";
        let to = AlarmsTo::topic(topic).unwrap();
        assert_eq!(to.topic_region(), Some("eu-west-1"));
        assert_eq!(AlarmsTo::from_record(&to.to_record()), Some(to));
        let email = AlarmsTo::email(" ops@example.com ").unwrap();
        assert_eq!(email, AlarmsTo::Email("ops@example.com".into()));
        assert_eq!(AlarmsTo::from_record(&email.to_record()), Some(email));
        for bad in [
            "pager",
            "arn:aws:sqs:eu-west-1:123456789012:q",
            "arn:aws:sns:eu-west-1:12:q",
        ] {
            let err = AlarmsTo::topic(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("--alarm-topic {bad:?}: ")),
                "{err}"
            );
        }
        for bad in ["ops", "ops@localhost", "@example.com", "a b@example.com"] {
            assert_eq!(
                AlarmsTo::email(bad),
                Err(SpecError::AlarmEmail(bad.trim().to_owned()))
            );
        }
    }

    #[test]
    fn bucket_name_rules() {
        for good in ["abc", "my.bucket-1", "a".repeat(63).as_str(), "1.2.3.x"] {
            assert_eq!(check_bucket_name("source", good), Ok(()), "{good}");
        }
        for bad in [
            "ab",
            "a".repeat(64).as_str(),
            "-abc",
            "abc.",
            "a..b",
            "192.168.5.4",
            "xn--abc",
            "abc-s3alias",
            "ABC",
            "a b",
        ] {
            assert!(check_bucket_name("source", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schedules_are_hours_or_days_and_read_back_as_written() {
        for (text, hours, rate) in [
            ("1h", 1, "rate(1 hour)"),
            ("6h", 6, "rate(6 hours)"),
            ("1d", 24, "rate(1 day)"),
            ("48h", 48, "rate(2 days)"),
            ("7d", 168, "rate(7 days)"),
        ] {
            let every = Every::parse(text).unwrap();
            assert_eq!(
                (every.hours, every.rate_expression().as_str()),
                (hours, rate)
            );
            assert_eq!(Every::parse(&every.to_string()), Ok(every));
        }
        for bad in ["", "6", "30m", "0h", "31d", "1w", "h"] {
            assert!(Every::parse(bad).is_err(), "{bad:?}");
        }
    }
}
