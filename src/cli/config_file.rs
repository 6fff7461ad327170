//! `s3fan.toml`: where it is, what each key may hold, and writing one
//! (`s3fan init`). Its keys are [`Settings`], deploy's flags with `_` for
//! `-`. Each value's kind is checked before serde reads the file, so a
//! wrong one is named in the words of the file (`memory` must be a whole
//! number, as `memory = 256`) rather than serde's (`expected i32`).

use std::path::{Path, PathBuf};

use toml::Value;

use super::args::{PerDestinationValue, Settings, Tag};
use crate::fanout::spec::{self, CONFIG_FILE, SpecError};

/// Where the settings are read from (and `init` writes them).
#[derive(Clone, Debug)]
pub enum ConfigFile {
    /// `s3fan.toml` in the working directory, if there is one.
    WorkingDirectory,
    /// `--config PATH` (or `S3FAN_CONFIG`): it must exist.
    Given(PathBuf),
}

impl ConfigFile {
    pub fn new(given: Option<PathBuf>) -> ConfigFile {
        given.map_or(ConfigFile::WorkingDirectory, ConfigFile::Given)
    }

    pub fn path(&self) -> PathBuf {
        match self {
            ConfigFile::WorkingDirectory => PathBuf::from(CONFIG_FILE),
            ConfigFile::Given(path) => path.clone(),
        }
    }

    /// The settings the file holds (none when the working directory has
    /// no file).
    pub fn load(&self) -> Result<Settings, SpecError> {
        let path = self.path();
        match std::fs::read_to_string(&path) {
            Ok(text) => parse(&path, &text),
            Err(err)
                if err.kind() == std::io::ErrorKind::NotFound
                    && matches!(self, ConfigFile::WorkingDirectory) =>
            {
                Ok(Settings::default())
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(SpecError::Config {
                path: path.display().to_string(),
                reason: "no such file (given by --config or S3FAN_CONFIG); \
                         `s3fan init` writes one"
                    .into(),
            }),
            Err(err) => Err(SpecError::File {
                path: path.display().to_string(),
                reason: err.to_string(),
            }),
        }
    }
}

/// What a key may hold.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Text,
    /// A string, or a list of them.
    Texts,
    Whole,
    Switch,
    /// A string for every destination, or a table of destination = string.
    PerDestination,
    /// A table of name = string.
    Table,
}

/// Every key, in the order `init` writes them, with an example of it.
const KEYS: &[(&str, Kind, &str)] = &[
    ("source", Kind::Text, r#"source = "photos""#),
    (
        "dest",
        Kind::Texts,
        r#"dest = ["photos-backup", "photos.eu"]"#,
    ),
    ("region", Kind::Text, r#"region = "eu-west-1""#),
    ("profile", Kind::Text, r#"profile = "prod""#),
    ("memory", Kind::Whole, "memory = 256"),
    ("timeout", Kind::Whole, "timeout = 300"),
    ("prefix", Kind::Text, r#"prefix = "in/""#),
    ("suffix", Kind::Text, r#"suffix = ".jpg""#),
    (
        "replicate_deletes",
        Kind::Switch,
        "replicate_deletes = true",
    ),
    ("replicate_tags", Kind::Switch, "replicate_tags = true"),
    ("retry_attempts", Kind::Whole, "retry_attempts = 2"),
    ("max_event_age", Kind::Whole, "max_event_age = 3600"),
    ("metrics", Kind::Switch, "metrics = true"),
    (
        "storage_class",
        Kind::PerDestination,
        r#"storage_class = "STANDARD_IA""#,
    ),
    (
        "dest_kms_key",
        Kind::PerDestination,
        r#"dest_kms_key = "alias/backup""#,
    ),
    (
        "dest_account",
        Kind::PerDestination,
        r#"dest_account = "123456789012""#,
    ),
    (
        "apply_dest_policy",
        Kind::Switch,
        "apply_dest_policy = true",
    ),
    ("request_payer", Kind::Switch, "request_payer = true"),
    (
        "reserved_concurrency",
        Kind::Whole,
        "reserved_concurrency = 10",
    ),
    ("reconcile_every", Kind::Text, r#"reconcile_every = "1d""#),
    (
        "alarm_topic",
        Kind::Text,
        r#"alarm_topic = "arn:aws:sns:us-east-1:123456789012:pager""#,
    ),
    (
        "alarm_email",
        Kind::Text,
        r#"alarm_email = "ops@example.com""#,
    ),
    ("lag_slo", Kind::Text, r#"lag_slo = "15m""#),
    ("tags", Kind::Table, r#"tags = { team = "data" }"#),
];

/// Flags of a single run, which the file does not keep.
const RUN_FLAGS: &[&str] = &["dry_run", "yes", "bootstrap", "output", "force", "config"];

fn parse(path: &Path, text: &str) -> Result<Settings, SpecError> {
    let config = |reason: String| SpecError::Config {
        path: path.display().to_string(),
        reason,
    };
    // A file that is not TOML at all: toml's own message, which points at
    // the line.
    let syntax = |err: toml::de::Error| config(err.to_string().trim().to_owned());
    let table: toml::Table = text.parse().map_err(syntax)?;
    for (key, value) in &table {
        check(key, value).map_err(config)?;
    }
    toml::from_str(text).map_err(syntax)
}

/// Whether `value` is what `key` may hold; if not, what is wrong in words.
fn check(key: &str, value: &Value) -> Result<(), String> {
    let Some(&(_, kind, example)) = KEYS.iter().find(|(name, ..)| *name == key) else {
        return Err(unknown(key));
    };
    let not = |wanted: &str| {
        format!(
            "{key} must be {wanted}, as {example}, not {}",
            describe(value)
        )
    };
    match (kind, value) {
        (Kind::Text, Value::String(_)) | (Kind::Switch, Value::Boolean(_)) => Ok(()),
        (Kind::Whole, Value::Integer(n)) if i32::try_from(*n).is_ok() => Ok(()),
        (Kind::Whole, Value::Integer(n)) => Err(format!("{key} = {n} is too large a number")),
        (Kind::Whole, Value::String(text)) if text.trim().parse::<i32>().is_ok() => Err(format!(
            "{key} is the string {text:?}: a number is written without quotes, as {key} = {}",
            text.trim()
        )),
        (Kind::Switch, Value::String(text)) if matches!(text.as_str(), "true" | "false") => Err(
            format!("{key} is the string {text:?}: write {key} = {text}, without quotes"),
        ),
        (Kind::Texts, Value::String(_)) => Ok(()),
        (Kind::Texts, Value::Array(items)) => match items.iter().find(|v| !v.is_str()) {
            Some(item) => Err(format!(
                "{key} holds {}: each entry is a bucket in quotes, as {example}",
                describe(item)
            )),
            None => Ok(()),
        },
        (Kind::PerDestination, Value::String(_)) => Ok(()),
        (Kind::PerDestination | Kind::Table, Value::Table(table)) => {
            match table.iter().find(|(_, v)| !v.is_str()) {
                Some((name, item)) => Err(format!(
                    "{key}.{name} must be a string in quotes, not {}",
                    describe(item)
                )),
                None => Ok(()),
            }
        }
        (Kind::Text, _) => Err(not("a string in quotes")),
        (Kind::Texts, _) => Err(not("a bucket or a list of buckets")),
        (Kind::Whole, _) => Err(not("a whole number")),
        (Kind::Switch, _) => Err(not("true or false")),
        (Kind::PerDestination, _) => Err(not(
            "one value for every destination, or a table of destination = value",
        )),
        (Kind::Table, _) => Err(not("a table of name = value")),
    }
}

/// A key that is not one: the one meant, where it is near one.
fn unknown(key: &str) -> String {
    let flag = key.replace('_', "-");
    if RUN_FLAGS.contains(&key.replace('-', "_").as_str()) {
        return format!("{key} is not kept in {CONFIG_FILE}: it is a flag of one run (--{flag})");
    }
    let near = KEYS
        .iter()
        .map(|(name, ..)| (edit_distance(&key.replace('-', "_"), name), *name))
        .min()
        .filter(|(distance, _)| *distance <= 2)
        .map(|(_, name)| format!(" (did you mean {name}?)"))
        .unwrap_or_default();
    let keys: Vec<&str> = KEYS.iter().map(|(name, ..)| *name).collect();
    format!(
        "unknown key {key:?}{near}; the keys are deploy's flags with _ for -: {}",
        keys.join(", ")
    )
}

/// A value as the file's reader would name it.
fn describe(value: &Value) -> String {
    match value {
        Value::String(text) => format!("the string {text:?}"),
        Value::Integer(n) => format!("the number {n}"),
        Value::Float(x) => format!("the number {x}"),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(when) => format!("the date {when}"),
        Value::Array(_) => "a list".into(),
        Value::Table(_) => "a table".into(),
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The file `init` writes for these settings: the keys given, in the
/// order of [`KEYS`], after a header that says how the file is read.
/// The settings must have been checked (`Settings::spec`).
pub fn render(settings: &Settings) -> Result<String, SpecError> {
    let mut text = format!(
        "# {CONFIG_FILE}: the fan-out `s3fan deploy` makes, written by `s3fan init`.\n\
         # Each key is a flag of deploy with _ for - (memory = 256 is --memory 256);\n\
         # a flag given to deploy wins over its key. Every key: s3fan deploy --help.\n"
    );
    for (key, value) in entries(settings)? {
        text.push_str(&format!("{key} = {value}\n"));
    }
    Ok(text)
}

/// The keys `settings` gives a value, with that value.
fn entries(settings: &Settings) -> Result<Vec<(&'static str, Value)>, SpecError> {
    let text = |v: &Option<String>| v.clone().map(Value::String);
    let whole = |v: Option<i32>| v.map(|n| Value::Integer(n.into()));
    let switch = |on: bool| on.then_some(Value::Boolean(true));
    let buckets = settings
        .dest
        .iter()
        .map(|d| spec::parse_destination(d).map(|(bucket, _)| bucket))
        .collect::<Result<Vec<_>, _>>()?;
    let per_destination = |values: &[PerDestinationValue]| per_destination(values, &buckets);
    let all = [
        ("source", text(&settings.source)),
        (
            "dest",
            (!settings.dest.is_empty())
                .then(|| Value::Array(settings.dest.iter().cloned().map(Value::String).collect())),
        ),
        ("region", text(&settings.region)),
        ("profile", text(&settings.profile)),
        ("memory", whole(settings.memory)),
        ("timeout", whole(settings.timeout)),
        ("prefix", text(&settings.prefix)),
        ("suffix", text(&settings.suffix)),
        ("replicate_deletes", switch(settings.replicate_deletes)),
        ("replicate_tags", switch(settings.replicate_tags)),
        ("retry_attempts", whole(settings.retry_attempts)),
        ("max_event_age", whole(settings.max_event_age)),
        ("metrics", switch(settings.metrics)),
        ("storage_class", per_destination(&settings.storage_class)),
        ("dest_kms_key", per_destination(&settings.dest_kms_key)),
        ("dest_account", per_destination(&settings.dest_account)),
        ("apply_dest_policy", switch(settings.apply_dest_policy)),
        ("request_payer", switch(settings.request_payer)),
        ("reserved_concurrency", whole(settings.reserved_concurrency)),
        ("reconcile_every", text(&settings.reconcile_every)),
        ("alarm_topic", text(&settings.alarm_topic)),
        ("alarm_email", text(&settings.alarm_email)),
        ("lag_slo", text(&settings.lag_slo)),
        ("tags", tags(&settings.tags)),
    ];
    Ok(all
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| (key, v)))
        .collect())
}

/// One string when every value is for every destination; else a table
/// with each destination's own (the last named for it, else the last for
/// every one), as `Settings::spec` reads them.
fn per_destination(values: &[PerDestinationValue], buckets: &[String]) -> Option<Value> {
    let mut every = None;
    let mut named = toml::Table::new();
    for value in values {
        let (destination, value) = match value {
            PerDestinationValue::Flag(text) => match text.split_once('=') {
                Some((destination, value)) => (Some(destination), value),
                None => (None, text.as_str()),
            },
            PerDestinationValue::FileForAll(value) => (None, value.as_str()),
            PerDestinationValue::FileFor(destination, value) => {
                (Some(destination.as_str()), value.as_str())
            }
        };
        match destination {
            Some(destination) => {
                named.insert(destination.to_owned(), Value::String(value.to_owned()));
            }
            None => every = Some(value.to_owned()),
        }
    }
    if named.is_empty() {
        return every.map(Value::String);
    }
    if let Some(every) = every {
        for bucket in buckets {
            named
                .entry(bucket.clone())
                .or_insert_with(|| Value::String(every.clone()));
        }
    }
    Some(Value::Table(named))
}

fn tags(tags: &[Tag]) -> Option<Value> {
    let table: toml::Table = tags
        .iter()
        .filter_map(|tag| match tag {
            Tag::File(key, value) => Some((key.clone(), value.clone())),
            Tag::Flag(text) => text
                .split_once('=')
                .map(|(key, value)| (key.to_owned(), value.to_owned())),
        })
        .map(|(key, value)| (key, Value::String(value)))
        .collect();
    (!table.is_empty()).then_some(Value::Table(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse(Path::new(CONFIG_FILE), text).unwrap_err().to_string()
    }

    #[test]
    fn every_setting_is_a_key_and_every_key_a_setting() {
        use clap::Args;
        let command = Settings::augment_args(clap::Command::new("s3fan"));
        let settings: Vec<String> = command
            .get_arguments()
            .map(|arg| arg.get_id().to_string())
            .collect();
        let keys: Vec<String> = KEYS.iter().map(|(k, ..)| k.to_string()).collect();
        assert_eq!(settings, keys);
        // Each example is what its key may hold.
        for (key, _, example) in KEYS {
            let table: toml::Table = example.parse().unwrap();
            check(key, &table[*key]).unwrap();
        }
    }

    #[test]
    fn a_wrong_kind_is_named_in_the_words_of_the_file() {
        for (text, says) in [
            (
                r#"memory = "256""#,
                r#"s3fan.toml: memory is the string "256": a number is written without quotes, as memory = 256"#,
            ),
            (
                r#"memory = "lots""#,
                r#"s3fan.toml: memory must be a whole number, as memory = 256, not the string "lots""#,
            ),
            ("timeout = 2.5", "timeout must be a whole number"),
            ("memory = 9999999999", "memory = 9999999999 is too large"),
            (
                r#"metrics = "true""#,
                r#"metrics is the string "true": write metrics = true, without quotes"#,
            ),
            (
                "metrics = 1",
                "metrics must be true or false, as metrics = true, not the number 1",
            ),
            (
                "prefix = 5",
                r#"prefix must be a string in quotes, as prefix = "in/", not the number 5"#,
            ),
            (
                "dest = [\"a\", 5]",
                "dest holds the number 5: each entry is a bucket in quotes",
            ),
            ("dest = 5", "dest must be a bucket or a list of buckets"),
            (
                "[storage_class]\nbackup = 1",
                "storage_class.backup must be a string in quotes, not the number 1",
            ),
            (
                "storage_class = [\"A\"]",
                "one value for every destination, or a table",
            ),
            (
                "[tags]\nteam = true",
                "tags.team must be a string in quotes, not true",
            ),
        ] {
            let err = error(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn an_unknown_key_is_named_with_the_key_it_is_near() {
        let err = error("memroy = 256");
        assert!(
            err.contains(r#"unknown key "memroy" (did you mean memory?)"#),
            "{err}"
        );
        let err = error("dest-kms-key = \"k\"");
        assert!(err.contains("did you mean dest_kms_key?"), "{err}");
        let err = error("destination = [\"d\"]");
        assert!(
            !err.contains("did you mean") && err.contains("source, dest, region"),
            "{err}"
        );
        let err = error("dry_run = true");
        assert!(
            err.contains("dry_run is not kept in s3fan.toml: it is a flag of one run (--dry-run)"),
            "{err}"
        );
        let err = error("source = ");
        assert!(
            err.starts_with("s3fan.toml: ") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn one_destination_may_be_a_string() {
        let settings = parse(Path::new(CONFIG_FILE), "source = \"s\"\ndest = \"backup\"").unwrap();
        assert_eq!(settings.dest, ["backup"]);
    }

    #[test]
    fn a_missing_file_is_no_settings_unless_it_was_named() {
        let dir = std::env::temp_dir().join(format!("s3fan-config-{}", std::process::id()));
        let named = ConfigFile::Given(dir.join("absent.toml"));
        let err = named.load().unwrap_err().to_string();
        assert!(
            err.contains("absent.toml: no such file") && err.contains("s3fan init"),
            "{err}"
        );
        // The working directory's file is optional (the tests' working
        // directory, the checkout, has none).
        assert!(ConfigFile::WorkingDirectory.load().is_ok());
    }

    #[test]
    fn what_init_writes_reads_back_as_the_same_fanout() {
        let flags = Settings {
            source: Some("photos".into()),
            dest: vec![
                "backup".into(),
                "archive:in/".into(),
                "s3://europe/x/".into(),
            ],
            region: Some("eu-west-1".into()),
            profile: Some("prod".into()),
            memory: Some(256),
            timeout: Some(60),
            prefix: Some("raw/".into()),
            suffix: Some(".jpg".into()),
            replicate_deletes: true,
            replicate_tags: true,
            retry_attempts: Some(1),
            max_event_age: Some(3600),
            metrics: true,
            storage_class: vec![
                PerDestinationValue::Flag("STANDARD_IA".into()),
                PerDestinationValue::Flag("archive=GLACIER_IR".into()),
            ],
            dest_kms_key: vec![PerDestinationValue::Flag("alias/copies".into())],
            dest_account: vec![PerDestinationValue::Flag("europe=123456789012".into())],
            apply_dest_policy: true,
            request_payer: true,
            reserved_concurrency: Some(5),
            reconcile_every: Some("1d".into()),
            alarm_topic: None,
            alarm_email: Some("ops@example.com".into()),
            lag_slo: Some("5m".into()),
            tags: vec![Tag::Flag("team=data".into()), Tag::Flag("cost=a=b".into())],
        };
        let written = render(&flags).unwrap();
        assert!(written.contains("memory = 256\n"), "{written}");
        assert!(
            written.contains(r#"dest = ["backup", "archive:in/", "s3://europe/x/"]"#),
            "{written}"
        );
        let read = parse(Path::new(CONFIG_FILE), &written).unwrap();
        let from_flags = flags.spec(Settings::default()).unwrap();
        let from_file = Settings::default().spec(read).unwrap();
        assert_eq!(from_file, from_flags);
        assert_eq!(from_file.storage_class("backup"), Some("STANDARD_IA"));
        assert_eq!(from_file.storage_class("archive"), Some("GLACIER_IR"));
        assert_eq!(from_file.tags["cost"], "a=b");
        // Nothing given, nothing written but the header.
        let empty = render(&Settings::default()).unwrap();
        assert!(empty.lines().all(|line| line.starts_with('#')), "{empty}");
    }
}
