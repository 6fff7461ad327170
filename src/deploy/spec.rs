//! What the user asked for: flags over `s3fan.toml`, validated before any AWS
//! call, so that bad input never leaves half a deployment behind.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The file `s3fan.toml` in the working directory: the same keys as the flags.
pub const CONFIG_FILE: &str = "s3fan.toml";

pub const DEFAULT_MEMORY_MB: i32 = 128;
/// As in the original post.
pub const DEFAULT_TIMEOUT_SECONDS: i32 = 300;
/// Lambda's own defaults for asynchronous invocations.
pub const DEFAULT_RETRY_ATTEMPTS: i32 = 2;
pub const DEFAULT_MAX_EVENT_AGE_SECONDS: i32 = 21_600;

/// `s3fan.toml`. Unknown keys are an error, so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub source: Option<String>,
    pub dest: Option<Vec<String>>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub memory: Option<i32>,
    pub timeout: Option<i32>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub replicate_deletes: Option<bool>,
    pub metrics: Option<bool>,
    pub retry_attempts: Option<i32>,
    pub max_event_age: Option<i32>,
    pub tags: Option<BTreeMap<String, String>>,
    pub storage_class: Option<PerDestinationConfig>,
    pub dest_kms_key: Option<PerDestinationConfig>,
    pub dest_account: Option<PerDestinationConfig>,
    pub apply_dest_policy: Option<bool>,
    pub request_payer: Option<bool>,
}

/// A per-destination setting in the file: `key = "VALUE"` for every
/// destination, or a `[key]` table of destination = value.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PerDestinationConfig {
    All(String),
    PerDestination(BTreeMap<String, String>),
}

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

/// What the flags said; `None` and empty mean "not given".
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub source: Option<String>,
    pub dest: Vec<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub memory: Option<i32>,
    pub timeout: Option<i32>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub replicate_deletes: bool,
    pub metrics: bool,
    pub retry_attempts: Option<i32>,
    pub max_event_age: Option<i32>,
    pub tags: Vec<String>,
    /// `CLASS` for every destination, or `DST=CLASS` for one.
    pub storage_class: Vec<String>,
    /// `KEY` for every destination, or `DST=KEY` for one.
    pub dest_kms_key: Vec<String>,
    /// `ACCOUNT` for every destination, or `DST=ACCOUNT` for one.
    pub dest_account: Vec<String>,
    pub apply_dest_policy: bool,
    pub request_payer: bool,
}

/// A complete, valid request for one fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub source: String,
    pub destinations: Vec<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub memory: i32,
    pub timeout: i32,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    /// Opt-in: deletes in the source are deleted in every destination too.
    pub replicate_deletes: bool,
    /// Opt-in: the handler also writes CloudWatch metrics (EMF).
    pub metrics: bool,
    /// Lambda's retries of a failed asynchronous invocation (0 to 2) before
    /// the event goes to the failure queue.
    pub retry_attempts: i32,
    /// How long Lambda keeps trying an event, in seconds (60 to 21,600).
    pub max_event_age: i32,
    pub tags: BTreeMap<String, String>,
    /// `--dest DST:PREFIX`: the destinations whose copies go under a key prefix.
    pub key_prefixes: BTreeMap<String, String>,
    /// `--storage-class`: the destinations whose copies are written in a
    /// storage class other than the bucket's default (STANDARD).
    pub storage_classes: BTreeMap<String, String>,
    /// `--dest-kms-key`: the destinations whose copies are encrypted with a
    /// KMS key of the user's choosing, rather than the bucket's default.
    pub dest_kms_keys: BTreeMap<String, String>,
    /// `--dest-account`: the destinations owned by another account.
    pub dest_accounts: BTreeMap<String, String>,
    /// `--apply-dest-policy`: write the statement each such destination's
    /// bucket policy needs, rather than print it for its owner.
    pub apply_dest_policy: bool,
    /// `--request-payer`: every object request says the requester pays, as
    /// requester-pays buckets of other accounts demand.
    pub request_payer: bool,
}

impl Spec {
    /// The key prefix copies to `destination` go under, if any.
    pub fn key_prefix(&self, destination: &str) -> Option<&str> {
        self.key_prefixes.get(destination).map(String::as_str)
    }

    /// The account that owns `destination`, when it was said to be another.
    pub fn dest_account(&self, destination: &str) -> Option<&str> {
        self.dest_accounts.get(destination).map(String::as_str)
    }

    /// The KMS key copies to `destination` are encrypted with, if set.
    pub fn dest_kms_key(&self, destination: &str) -> Option<&str> {
        self.dest_kms_keys.get(destination).map(String::as_str)
    }

    /// The storage class copies to `destination` are written in, if set.
    pub fn storage_class(&self, destination: &str) -> Option<&str> {
        self.storage_classes.get(destination).map(String::as_str)
    }
}

#[cfg(test)]
impl Spec {
    /// The spec of `deploy --source SOURCE --dest ...` with every default.
    pub fn for_test(source: &str, destinations: &[&str]) -> Spec {
        let flags = Flags {
            source: Some(source.into()),
            dest: destinations.iter().map(|d| d.to_string()).collect(),
            ..Flags::default()
        };
        match resolve(flags, FileConfig::default()) {
            Ok(spec) => spec,
            Err(err) => panic!("test spec: {err}"),
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
    #[error("no source bucket: pass --source BUCKET (or set source in {CONFIG_FILE})")]
    NoSource,
    #[error(
        "no destination bucket: pass --dest BUCKET at least once (or set dest in {CONFIG_FILE})"
    )]
    NoDestination,
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
    #[error("--dest {destination:?} has an unusable key prefix: {rule}")]
    KeyPrefix {
        destination: String,
        rule: &'static str,
    },
}

/// Reads `s3fan.toml` from `dir` if there is one.
pub fn load_file(dir: &Path) -> Result<FileConfig, SpecError> {
    let path = dir.join(CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
        Err(err) => {
            return Err(SpecError::File {
                path: path.display().to_string(),
                reason: err.to_string(),
            });
        }
    };
    toml::from_str(&text).map_err(|err| SpecError::File {
        path: path.display().to_string(),
        reason: err.to_string().trim().to_owned(),
    })
}

/// Flags win over the file; tags merge, flags winning per key.
pub fn resolve(flags: Flags, file: FileConfig) -> Result<Spec, SpecError> {
    let source = parse_source(&flags.source.or(file.source).ok_or(SpecError::NoSource)?)?;
    let listed = if flags.dest.is_empty() {
        file.dest.unwrap_or_default()
    } else {
        flags.dest
    };
    let mut destinations = Vec::new();
    let mut key_prefixes = BTreeMap::new();
    for text in &listed {
        let (bucket, prefix) = parse_destination(text)?;
        if let Some(prefix) = prefix {
            key_prefixes.insert(bucket.clone(), prefix);
        }
        destinations.push(bucket);
    }
    let mut tags = file.tags.unwrap_or_default();
    for tag in flags.tags {
        let (key, value) = tag
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| SpecError::Tag(tag.clone()))?;
        tags.insert(key.to_owned(), value.to_owned());
    }
    let storage_classes = per_destination(
        STORAGE_CLASS,
        &destinations,
        file.storage_class,
        flags.storage_class,
    )?;
    let dest_accounts = per_destination(
        DEST_ACCOUNT,
        &destinations,
        file.dest_account,
        flags.dest_account,
    )?;
    let dest_kms_keys = per_destination(
        DEST_KMS_KEY,
        &destinations,
        file.dest_kms_key,
        flags.dest_kms_key,
    )?;
    let spec = Spec {
        source,
        destinations,
        region: flags.region.or(file.region),
        profile: flags.profile.or(file.profile),
        memory: flags.memory.or(file.memory).unwrap_or(DEFAULT_MEMORY_MB),
        timeout: flags
            .timeout
            .or(file.timeout)
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS),
        prefix: flags.prefix.or(file.prefix).filter(|p| !p.is_empty()),
        suffix: flags.suffix.or(file.suffix).filter(|s| !s.is_empty()),
        replicate_deletes: flags.replicate_deletes || file.replicate_deletes.unwrap_or(false),
        metrics: flags.metrics || file.metrics.unwrap_or(false),
        retry_attempts: flags
            .retry_attempts
            .or(file.retry_attempts)
            .unwrap_or(DEFAULT_RETRY_ATTEMPTS),
        max_event_age: flags
            .max_event_age
            .or(file.max_event_age)
            .unwrap_or(DEFAULT_MAX_EVENT_AGE_SECONDS),
        tags,
        key_prefixes,
        storage_classes,
        dest_kms_keys,
        dest_accounts,
        apply_dest_policy: flags.apply_dest_policy || file.apply_dest_policy.unwrap_or(false),
        request_payer: flags.request_payer || file.request_payer.unwrap_or(false),
    };
    spec.validate()?;
    Ok(spec)
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

/// Each destination's value of `setting`: a flag's `DST=VALUE`, else a
/// flag's `VALUE`, else the file's entry for it, else the file's value for all.
pub fn per_destination(
    setting: PerDestination,
    destinations: &[String],
    file: Option<PerDestinationConfig>,
    flags: Vec<String>,
) -> Result<BTreeMap<String, String>, SpecError> {
    // (what the user wrote, for errors; the value)
    let mut every: Option<(String, String)> = None;
    let mut named: BTreeMap<String, (String, String)> = BTreeMap::new();
    match file {
        Some(PerDestinationConfig::All(value)) => {
            let given = format!("{} = {value:?} in {CONFIG_FILE}", setting.file_key);
            every = Some((given, value));
        }
        Some(PerDestinationConfig::PerDestination(table)) => {
            for (destination, value) in table {
                let given = format!("{destination} = {value:?} in {CONFIG_FILE}");
                named.insert(destination, (given, value));
            }
        }
        None => {}
    }
    for given in flags {
        match given.split_once('=') {
            Some((destination, value)) => {
                named.insert(destination.to_owned(), (given.clone(), value.to_owned()));
            }
            None => every = Some((given.clone(), given)),
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

impl Spec {
    fn validate(&self) -> Result<(), SpecError> {
        check_bucket_name("source", &self.source)?;
        if self.destinations.is_empty() {
            return Err(SpecError::NoDestination);
        }
        let mut seen = std::collections::HashSet::new();
        for destination in &self.destinations {
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

    fn flags(source: &str, dest: &[&str]) -> Flags {
        Flags {
            source: Some(source.into()),
            dest: dest.iter().map(|d| d.to_string()).collect(),
            ..Flags::default()
        }
    }

    #[test]
    fn storage_classes_per_destination_or_for_all() {
        let mut given = flags("src", &["aaa", "bbb", "ccc"]);
        given.storage_class = vec!["standard_ia".into(), "bbb=GLACIER_IR".into()];
        let spec = resolve(given, FileConfig::default()).unwrap();
        assert_eq!(spec.storage_class("aaa"), Some("STANDARD_IA"));
        assert_eq!(spec.storage_class("bbb"), Some("GLACIER_IR"));
        assert_eq!(spec.storage_class("ccc"), Some("STANDARD_IA"));

        let file: FileConfig = toml::from_str(
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
        let file: FileConfig = toml::from_str(r#"storage_class = "ONEZONE_IA""#).unwrap();
        let mut given = flags("src", &["aaa", "bbb"]);
        given.storage_class = vec!["aaa=STANDARD".into()];
        let spec = resolve(given, file).unwrap();
        assert_eq!(spec.storage_class("aaa"), Some("STANDARD"));
        assert_eq!(spec.storage_class("bbb"), Some("ONEZONE_IA"));
        assert!(!spec.request_payer);
    }

    #[test]
    fn a_bad_storage_class_is_named_with_the_valid_ones() {
        let mut given = flags("src", &["aaa"]);
        given.storage_class = vec!["aaa=COLD".into()];
        let err = resolve(given, FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"aaa=COLD\"") && err.contains("GLACIER_IR"),
            "{err}"
        );
        let mut given = flags("src", &["aaa"]);
        given.storage_class = vec!["zzz=GLACIER".into()];
        let err = resolve(given, FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"zzz\", which is not a destination"), "{err}");
    }

    #[test]
    fn a_kms_key_per_destination_is_kept_as_given_and_checked() {
        let mut given = flags("src", &["aaa", "bbb"]);
        given.dest_kms_key = vec![
            "aaa=arn:aws:kms:us-east-1:123456789012:key/1111aaaa-11aa-11aa-11aa-111111aaaaaa"
                .into(),
        ];
        let spec = resolve(given, FileConfig::default()).unwrap();
        assert_eq!(
            spec.dest_kms_key("aaa"),
            Some("arn:aws:kms:us-east-1:123456789012:key/1111aaaa-11aa-11aa-11aa-111111aaaaaa")
        );
        assert_eq!(spec.dest_kms_key("bbb"), None);
        let mut given = flags("src", &["aaa"]);
        given.dest_kms_key = vec!["my key".into()];
        let err = resolve(given, FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--dest-kms-key \"my key\": ") && err.contains("alias/NAME"),
            "{err}"
        );
    }

    #[test]
    fn defaults_follow_the_original() {
        let spec = resolve(flags("src", &["dst", "b.c"]), FileConfig::default()).unwrap();
        assert_eq!(spec.destinations, ["dst", "b.c"].map(String::from));
        assert_eq!(spec.timeout, 300);
        assert_eq!(spec.memory, 128);
        assert_eq!(spec.prefix, None);
    }

    #[test]
    fn flags_win_over_the_file_and_tags_merge() {
        let file: FileConfig = toml::from_str(
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
        flags.tags = vec!["env=staging".into(), "cost=x=y".into()];
        let spec = resolve(flags, file).unwrap();
        assert_eq!(spec.source, "from-flag");
        assert_eq!(spec.destinations, ["file-dest"]);
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
    fn refusals_name_the_bad_input() {
        let refuse = |f: Flags| resolve(f, FileConfig::default()).unwrap_err().to_string();
        assert!(refuse(Flags::default()).contains("--source"));
        assert!(refuse(flags("src", &[])).contains("--dest"));
        assert!(refuse(flags("src", &["src"])).contains("\"src\" is the source bucket"));
        assert!(refuse(flags("src", &["dst1", "dst1"])).contains("\"dst1\" is listed twice"));
        assert!(refuse(flags("Src", &["dst1"])).contains("source bucket name \"Src\""));
        assert!(refuse(flags("src", &["ok1", "a_b"])).contains("destination bucket name \"a_b\""));
        let mut bad_tag = flags("src", &["dst1"]);
        bad_tag.tags = vec!["novalue".into()];
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
            FileConfig::default(),
        )
        .unwrap();
        assert_eq!(spec.destinations, ["plain", "backup.eu"].map(String::from));
        assert_eq!(spec.key_prefix("plain"), None);
        assert_eq!(spec.key_prefix("backup.eu"), Some("backup/2026/"));
        // The file takes the same form.
        let file: FileConfig = toml::from_str(
            r#"source = "src"
            dest = ["dst:copies/"]"#,
        )
        .unwrap();
        let spec = resolve(Flags::default(), file).unwrap();
        assert_eq!(spec.key_prefix("dst"), Some("copies/"));
        // One function per destination bucket: two prefixes in one bucket are refused.
        let refused = resolve(flags("src", &["dst:a/", "dst:b/"]), FileConfig::default());
        assert_eq!(refused, Err(SpecError::DuplicateDestination("dst".into())));
        for (bad, says) in [
            ("dst:", "nothing follows the colon"),
            ("dst:/abs", "starts with '/'"),
            ("dst:a*", "wildcards"),
            ("dst:${aws:username}/", "wildcards or variables"),
            ("dst:a\nb", "control character"),
        ] {
            let err = resolve(flags("src", &[bad]), FileConfig::default())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains(says),
                "{err}"
            );
        }
        let long = format!("dst:{}", "p".repeat(513));
        assert!(matches!(
            resolve(flags("src", &[&long]), FileConfig::default()),
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
            FileConfig::default(),
        )
        .unwrap();
        assert_eq!(spec.source, "photos");
        assert_eq!(
            spec.destinations,
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
        let err = resolve(flags("s3://", &["dst"]), FileConfig::default()).unwrap_err();
        assert!(matches!(err, SpecError::BucketName { .. }), "{err}");
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
    fn the_file_rejects_unknown_keys_with_its_name() {
        let dir = std::env::temp_dir().join(format!("s3fan-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(CONFIG_FILE),
            "source = \"s\"\ndestination = [\"d\"]\n",
        )
        .unwrap();
        let err = load_file(&dir).unwrap_err().to_string();
        assert!(
            err.contains("s3fan.toml") && err.contains("destination"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(load_file(&dir).is_ok(), "no file is no configuration");
    }
}
