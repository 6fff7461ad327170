//! What a function is told: one type, written into the function's
//! environment by deploy and read back from it by everyone else (the
//! inventory for status, destroy, backfill and retry; the handler itself).
//!
//! Lambda keeps a function's environment with the function, so it is also
//! the record of what the last deploy asked for. Every `S3FAN_*` name of
//! that environment is spelled here and nowhere else, with its encoding
//! (`true`, `requester`, `memory=128 ...`): a new setting is one field here
//! and one line in each of `to_env` and `from_env`.

use std::collections::HashMap;

const SOURCE_BUCKET: &str = "S3FAN_SOURCE_BUCKET";
/// The destination bucket. Deploy always sets it, because bucket names may
/// contain dots and function names may not; a function made by hand may
/// leave it out and be named after its bucket.
const DEST_BUCKET: &str = "S3FAN_DEST_BUCKET";
const KEY_PREFIX: &str = "S3FAN_KEY_PREFIX";
const KEY_SUFFIX: &str = "S3FAN_KEY_SUFFIX";
const REPLICATE_DELETES: &str = "S3FAN_REPLICATE_DELETES";
const REPLICATE_TAGS: &str = "S3FAN_REPLICATE_TAGS";
const METRICS: &str = "S3FAN_METRICS";
const DEST_PREFIX: &str = "S3FAN_DEST_PREFIX";
const STORAGE_CLASS: &str = "S3FAN_STORAGE_CLASS";
const REQUEST_PAYER: &str = "S3FAN_REQUEST_PAYER";
const DEST_ACCOUNT: &str = "S3FAN_DEST_ACCOUNT";
const DEST_KMS_KEY: &str = "S3FAN_DEST_KMS_KEY";
const DEST_REGION: &str = "S3FAN_DEST_REGION";
/// `--reconcile-every`, as given (`6h`): the function's role may then list
/// its destination and invoke itself for a run's next slice.
const RECONCILE_EVERY: &str = "S3FAN_RECONCILE_EVERY";
/// Where the fan-out's alarms notify (`topic ARN` or `email ADDRESS`), so
/// that `status` compares the alarms with what deploy made. The handler
/// ignores it.
const ALARMS: &str = "S3FAN_ALARMS";
/// What AWS keeps elsewhere (memory, timeout, the asynchronous retries),
/// recorded so that `status` compares AWS with what s3fan made rather than
/// with the defaults or today's `s3fan.toml`. The handler ignores it.
const DEPLOYED: &str = "S3FAN_DEPLOYED";

/// Everything a function knows of its fan-out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionSettings {
    /// The source bucket; s3fan finds its functions by it.
    pub source: Option<String>,
    /// The destination bucket, as set (the handler refuses an empty one).
    pub destination: Option<String>,
    /// The fan-out's key filter, checked again by the handler.
    pub filter_prefix: Option<String>,
    pub filter_suffix: Option<String>,
    /// `--replicate-deletes`.
    pub replicate_deletes: bool,
    /// `--replicate-tags`.
    pub replicate_tags: bool,
    /// `--metrics`: each record also as a CloudWatch EMF line.
    pub metrics: bool,
    /// `--dest DST:PREFIX`'s prefix.
    pub key_prefix: Option<String>,
    /// `--storage-class` for this destination.
    pub storage_class: Option<String>,
    /// `--dest-kms-key` for this destination.
    pub kms_key: Option<String>,
    /// `--dest-account`, when the destination is another account's.
    pub owner: Option<String>,
    /// `--request-payer`.
    pub request_payer: bool,
    /// The destination's region, when it is not the function's own.
    pub destination_region: Option<String>,
    /// How often a reconcile runs (`--reconcile-every`), when it does.
    pub reconcile_every: Option<String>,
    /// Where alarms notify (`--alarm-topic`, `--alarm-email`), when they do.
    pub alarms: Option<String>,
    /// What the deploy asked for that the environment does not otherwise
    /// carry.
    pub deployed: Deployed,
}

/// Memory, timeout, asynchronous retries and reserved concurrency as the
/// last deploy asked for them; `None` where a function of an older s3fan
/// has no record (and, for the reserved concurrency, where none was asked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deployed {
    pub memory: Option<i32>,
    pub timeout: Option<i32>,
    pub retry_attempts: Option<i32>,
    pub max_event_age: Option<i32>,
    pub reserved_concurrency: Option<i32>,
    /// `--lag-slo` in seconds, where there are alarms.
    pub lag_slo: Option<i32>,
}

impl Deployed {
    fn fields(&self) -> [(&'static str, Option<i32>); 6] {
        [
            ("memory", self.memory),
            ("timeout", self.timeout),
            ("retry_attempts", self.retry_attempts),
            ("max_event_age", self.max_event_age),
            ("reserved_concurrency", self.reserved_concurrency),
            ("lag_slo", self.lag_slo),
        ]
    }

    /// `memory=128 timeout=300 retry_attempts=2 max_event_age=21600`.
    fn to_value(self) -> Option<String> {
        let pairs: Vec<String> = self
            .fields()
            .iter()
            .filter_map(|(name, value)| Some(format!("{name}={}", (*value)?)))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join(" "))
    }

    fn from_value(value: &str) -> Deployed {
        let mut deployed = Deployed::default();
        for (name, number) in value.split(' ').filter_map(|pair| pair.split_once('=')) {
            let number = number.parse().ok();
            match name {
                "memory" => deployed.memory = number,
                "timeout" => deployed.timeout = number,
                "retry_attempts" => deployed.retry_attempts = number,
                "max_event_age" => deployed.max_event_age = number,
                "reserved_concurrency" => deployed.reserved_concurrency = number,
                "lag_slo" => deployed.lag_slo = number,
                _ => {}
            }
        }
        deployed
    }
}

impl FunctionSettings {
    /// The function's environment: only what is set, so a function without
    /// an option has no variable for it.
    pub fn to_env(&self) -> HashMap<String, String> {
        let text = [
            (SOURCE_BUCKET, self.source.clone()),
            (DEST_BUCKET, self.destination.clone()),
            (KEY_PREFIX, self.filter_prefix.clone()),
            (KEY_SUFFIX, self.filter_suffix.clone()),
            (DEST_PREFIX, self.key_prefix.clone()),
            (STORAGE_CLASS, self.storage_class.clone()),
            (DEST_KMS_KEY, self.kms_key.clone()),
            (DEST_ACCOUNT, self.owner.clone()),
            (DEST_REGION, self.destination_region.clone()),
            (RECONCILE_EVERY, self.reconcile_every.clone()),
            (ALARMS, self.alarms.clone()),
            (DEPLOYED, self.deployed.to_value()),
            (REPLICATE_DELETES, switch(self.replicate_deletes, "true")),
            (REPLICATE_TAGS, switch(self.replicate_tags, "true")),
            (METRICS, switch(self.metrics, "true")),
            (REQUEST_PAYER, switch(self.request_payer, "requester")),
        ];
        text.into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?)))
            .collect()
    }

    /// Reads what `to_env` wrote; a variable set but empty counts as unset
    /// (the destination excepted, which the handler must see to refuse).
    pub fn from_env(env: &HashMap<String, String>) -> FunctionSettings {
        let get = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
        let is = |name: &str, value: &str| env.get(name).is_some_and(|v| v == value);
        FunctionSettings {
            source: get(SOURCE_BUCKET),
            destination: env.get(DEST_BUCKET).cloned(),
            filter_prefix: get(KEY_PREFIX),
            filter_suffix: get(KEY_SUFFIX),
            replicate_deletes: is(REPLICATE_DELETES, "true"),
            replicate_tags: is(REPLICATE_TAGS, "true"),
            metrics: is(METRICS, "true"),
            key_prefix: get(DEST_PREFIX),
            storage_class: get(STORAGE_CLASS),
            kms_key: get(DEST_KMS_KEY),
            owner: get(DEST_ACCOUNT),
            request_payer: is(REQUEST_PAYER, "requester"),
            destination_region: get(DEST_REGION),
            reconcile_every: get(RECONCILE_EVERY),
            alarms: get(ALARMS),
            deployed: get(DEPLOYED).map_or_else(Deployed::default, |v| Deployed::from_value(&v)),
        }
    }

    /// The settings of this process: the handler inside Lambda.
    pub fn from_process_env() -> FunctionSettings {
        FunctionSettings::from_env(&std::env::vars().collect())
    }
}

/// Which bucket the function copies to: `S3FAN_DEST_BUCKET` when set,
/// otherwise the function's own name: a function made by hand may be named
/// after its destination bucket and carry no variable.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("{DEST_BUCKET} is set but empty: set it to the destination bucket's name")]
    EmptyVariable,
    #[error(
        "no destination bucket: set {DEST_BUCKET} in the function's environment \
         (or name the function after the bucket)"
    )]
    Missing,
}

pub fn destination_bucket(
    dest_var: Option<String>,
    function_name: Option<String>,
) -> Result<String, DestinationError> {
    match dest_var {
        Some(bucket) if bucket.trim().is_empty() => Err(DestinationError::EmptyVariable),
        Some(bucket) => Ok(bucket.trim().to_owned()),
        None => function_name
            .filter(|name| !name.is_empty())
            .ok_or(DestinationError::Missing),
    }
}

fn switch(on: bool, value: &str) -> Option<String> {
    on.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_field_set() -> FunctionSettings {
        FunctionSettings {
            source: Some("src".into()),
            destination: Some("dst".into()),
            filter_prefix: Some("in/".into()),
            filter_suffix: Some(".jpg".into()),
            replicate_deletes: true,
            replicate_tags: true,
            metrics: true,
            key_prefix: Some("copies/".into()),
            storage_class: Some("GLACIER_IR".into()),
            kms_key: Some("alias/backups".into()),
            owner: Some("210987654321".into()),
            request_payer: true,
            destination_region: Some("eu-west-1".into()),
            reconcile_every: Some("6h".into()),
            alarms: Some("email ops@example.com".into()),
            deployed: Deployed {
                memory: Some(256),
                timeout: Some(60),
                retry_attempts: Some(0),
                max_event_age: Some(3600),
                reserved_concurrency: Some(50),
                lag_slo: Some(900),
            },
        }
    }

    #[test]
    fn every_setting_survives_the_round_trip_through_the_environment() {
        for settings in [every_field_set(), FunctionSettings::default()] {
            assert_eq!(FunctionSettings::from_env(&settings.to_env()), settings);
        }
    }

    #[test]
    fn the_environment_spells_each_setting_as_deployed_functions_have_it() {
        // Functions deployed by earlier versions hold exactly these names
        // and values: they must keep meaning the same.
        let expected = [
            ("S3FAN_SOURCE_BUCKET", "src"),
            ("S3FAN_DEST_BUCKET", "dst"),
            ("S3FAN_KEY_PREFIX", "in/"),
            ("S3FAN_KEY_SUFFIX", ".jpg"),
            ("S3FAN_REPLICATE_DELETES", "true"),
            ("S3FAN_REPLICATE_TAGS", "true"),
            ("S3FAN_METRICS", "true"),
            ("S3FAN_DEST_PREFIX", "copies/"),
            ("S3FAN_STORAGE_CLASS", "GLACIER_IR"),
            ("S3FAN_REQUEST_PAYER", "requester"),
            ("S3FAN_DEST_REGION", "eu-west-1"),
            ("S3FAN_DEST_KMS_KEY", "alias/backups"),
            ("S3FAN_DEST_ACCOUNT", "210987654321"),
            ("S3FAN_RECONCILE_EVERY", "6h"),
            ("S3FAN_ALARMS", "email ops@example.com"),
            (
                "S3FAN_DEPLOYED",
                "memory=256 timeout=60 retry_attempts=0 max_event_age=3600 reserved_concurrency=50 \
                 lag_slo=900",
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(every_field_set().to_env(), HashMap::from(expected));
        assert_eq!(FunctionSettings::default().to_env(), HashMap::new());
    }

    #[test]
    fn empty_and_unknown_values_read_as_unset_but_an_empty_destination_is_kept() {
        let env: HashMap<String, String> = [
            ("S3FAN_KEY_PREFIX", ""),
            ("S3FAN_REPLICATE_DELETES", "yes"),
            ("S3FAN_DEST_BUCKET", ""),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let settings = FunctionSettings::from_env(&env);
        assert_eq!(settings.filter_prefix, None);
        assert!(!settings.replicate_deletes, "only `true` switches it on");
        assert_eq!(settings.destination.as_deref(), Some(""));
    }

    #[test]
    fn the_variable_wins_over_the_function_name() {
        assert_eq!(
            destination_bucket(Some("dst.two".into()), Some("dst-two".into())),
            Ok("dst.two".into())
        );
    }

    #[test]
    fn falls_back_to_the_function_name() {
        assert_eq!(
            destination_bucket(None, Some("dst1".into())),
            Ok("dst1".into())
        );
    }

    #[test]
    fn empty_or_missing_is_an_error() {
        assert_eq!(
            destination_bucket(Some(" ".into()), Some("f".into())),
            Err(DestinationError::EmptyVariable)
        );
        assert_eq!(
            destination_bucket(None, None),
            Err(DestinationError::Missing)
        );
        assert_eq!(
            destination_bucket(None, Some(String::new())),
            Err(DestinationError::Missing)
        );
    }
}
