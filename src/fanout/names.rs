//! The names deploy gives to what it creates, and their ARNs in the scope
//! (partition, account, region) of the fan-out. Stable, so that a re-run
//! finds what an earlier run made, and valid for each service's own rules.
//!
//! The function rule (also in the README): a destination bucket whose name is
//! a valid Lambda function name (no dots; bucket names are at most 63
//! characters, under Lambda's 64) gives a function of exactly that name, so
//! the console's list of functions reads as the buckets they fill. A name with dots has each dot replaced by `-`, cut
//! to 55 characters, and `-` plus the first 8 hex digits of the SHA-256 of
//! the full bucket name appended, so that `a.b` and `a-b` never collide.

use sha2::{Digest, Sha256};

/// The SNS topic of one source bucket: `SRC-fanout`.
/// SNS (and SQS) names allow no dots: a dotted bucket name is made valid by
/// the same rule as function names.
pub fn topic_name(source: &str) -> String {
    format!("{}-fanout", function_name(source))
}

/// The SQS queue where each function's failed asynchronous invocations go:
/// `SRC-fanout-failures` (SQS names: 80 characters; this is at most 80).
pub fn failure_queue_name(source: &str) -> String {
    format!("{}-failures", topic_name(source))
}

/// The topic `--alarm-email` makes for the alarms: `SRC-fanout-alarms`.
pub fn alarm_topic_name(source: &str) -> String {
    format!("{}-alarms", topic_name(source))
}

/// Who deploys where: the account and region that own the fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub partition: String,
    pub account: String,
    pub region: String,
}

impl Scope {
    pub fn topic_arn(&self, topic: &str) -> String {
        format!(
            "arn:{}:sns:{}:{}:{topic}",
            self.partition, self.region, self.account
        )
    }

    pub fn role_arn(&self, role: &str) -> String {
        format!("arn:{}:iam::{}:role/{role}", self.partition, self.account)
    }

    pub fn queue_arn(&self, queue: &str) -> String {
        format!(
            "arn:{}:sqs:{}:{}:{queue}",
            self.partition, self.region, self.account
        )
    }

    pub fn function_arn(&self, function: &str) -> String {
        format!(
            "arn:{}:lambda:{}:{}:function:{function}",
            self.partition, self.region, self.account
        )
    }

    /// An EventBridge rule on the default event bus.
    pub fn rule_arn(&self, rule: &str) -> String {
        format!(
            "arn:{}:events:{}:{}:rule/{rule}",
            self.partition, self.region, self.account
        )
    }

    pub fn bucket_arn(&self, bucket: &str) -> String {
        format!("arn:{}:s3:::{bucket}", self.partition)
    }

    pub fn log_group_arn(&self, function: &str) -> String {
        format!(
            "arn:{}:logs:{}:{}:log-group:/aws/lambda/{function}",
            self.partition, self.region, self.account
        )
    }
}

/// The Id of s3fan's entry in the source bucket's notification configuration.
pub const NOTIFICATION_ID: &str = "s3fan-fanout";

/// The statement id of the permission that lets SNS invoke a function.
pub const PERMISSION_STATEMENT_ID: &str = "s3fan-sns-invoke";

/// The name of the inline policy on each function's role.
pub const ROLE_POLICY_NAME: &str = "s3fan-replication";

/// Tag keys on everything deploy makes.
pub const TAG_MANAGED_BY: &str = "managed-by";
pub const TAG_SOURCE: &str = "s3fan:source";
pub const TAG_DESTINATION: &str = "s3fan:destination";

/// The Lambda function for one destination bucket.
pub fn function_name(destination: &str) -> String {
    if is_valid_function_name(destination) {
        return destination.to_owned();
    }
    let dashed: String = destination
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(55)
        .collect();
    format!("{dashed}-{}", short_hash(destination))
}

/// The statement id of the permission that lets EventBridge invoke a
/// function with its reconcile schedule.
pub const SCHEDULE_STATEMENT_ID: &str = "s3fan-reconcile-schedule";

/// The EventBridge rule that schedules one destination's reconcile (rule
/// names: 64 characters).
pub fn schedule_name(destination: &str) -> String {
    let function = function_name(destination);
    let name = format!("{function}-reconcile");
    if name.len() <= 64 {
        return name;
    }
    let cut: String = function.chars().take(45).collect();
    format!("{cut}-{}-reconcile", short_hash(destination))
}

/// The IAM role of one destination's function (role names: 64 characters).
pub fn role_name(destination: &str) -> String {
    let function = function_name(destination);
    let name = format!("s3fan-{function}");
    if name.len() <= 64 {
        return name;
    }
    let cut: String = function.chars().take(48).collect();
    format!("s3fan-{cut}-{}", short_hash(destination))
}

/// The IAM role S3 Batch Operations assumes for a source's backfill jobs
/// (`backfill --via-batch-operations`). The `_` keeps it apart from every
/// function's role: bucket names, and so function names, have none.
pub fn batch_role_name(source: &str) -> String {
    let function = function_name(source);
    let name = format!("s3fan-{function}_batch");
    if name.len() <= 64 {
        return name;
    }
    let cut: String = function.chars().take(42).collect();
    format!("s3fan-{cut}-{}_batch", short_hash(source))
}

fn is_valid_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The Sid of a role's statement in another account's bucket policy:
/// alphanumeric, as policy Sids must be, and one per role.
pub fn bucket_statement_id(role_arn: &str) -> String {
    format!("s3fan{}", short_hash(role_arn))
}

fn short_hash(text: &str) -> String {
    digest(text, 4)
}

/// The first `bytes` bytes of the SHA-256 of `text`, in hex: names and
/// tokens that are the same for the same input and short enough to fit.
pub fn digest(text: &str, bytes: usize) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
impl Scope {
    /// Account 123456789012 of partition aws, in `region`: the unit tests'.
    pub fn for_test(region: &str) -> Scope {
        Scope {
            partition: "aws".into(),
            account: "123456789012".into(),
            region: region.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_bucket_names_are_the_function_name() {
        assert_eq!(function_name("photos-backup"), "photos-backup");
        let longest = "a".repeat(63);
        assert_eq!(function_name(&longest), longest);
    }

    #[test]
    fn dotted_names_map_to_valid_unique_stable_names() {
        let dotted = function_name("photos.eu");
        assert_eq!(dotted, function_name("photos.eu"), "stable");
        assert!(dotted.starts_with("photos-eu-"), "{dotted}");
        assert_ne!(dotted, function_name("photos-eu"), "a.b and a-b differ");
        assert_ne!(dotted, function_name("photos.e.u"));
        let long = format!("{}.{}", "b".repeat(40), "c".repeat(22));
        for name in [dotted, function_name(&long)] {
            assert!(is_valid_function_name(&name), "{name}");
        }
    }

    #[test]
    fn topic_and_queue_names_are_valid_for_sns_and_sqs() {
        assert_eq!(topic_name("photos"), "photos-fanout");
        assert_eq!(failure_queue_name("photos"), "photos-fanout-failures");
        assert_eq!(topic_name("photos.eu"), "photos-eu-318a1688-fanout");
        let longest_dotted = format!("{}.{}", "b".repeat(40), "c".repeat(22));
        for source in ["a".repeat(63), longest_dotted] {
            let queue = failure_queue_name(&source);
            assert!(queue.len() <= 80, "{queue}");
            assert!(
                queue
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{queue}"
            );
        }
    }

    #[test]
    fn role_names_fit_iams_limit() {
        assert_eq!(role_name("dst"), "s3fan-dst");
        let long = "d".repeat(63);
        let role = role_name(&long);
        assert!(role.len() <= 64, "{role}");
        assert_ne!(role, role_name(&"d".repeat(62)));
    }

    #[test]
    fn schedule_names_fit_eventbridges_limit_and_stay_apart() {
        assert_eq!(schedule_name("dst"), "dst-reconcile");
        let long = schedule_name(&"d".repeat(63));
        assert!(long.len() <= 64, "{long}");
        assert!(long.ends_with("-reconcile"));
        assert_ne!(long, schedule_name(&"d".repeat(62)));
        let valid = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        assert!(schedule_name("photos.eu").chars().all(valid));
    }

    #[test]
    fn the_documented_rule_does_not_drift() {
        // The first 8 hex digits of sha256("photos.eu"), computed with
        // Python's hashlib: a deployed function's name must never change.
        assert_eq!(function_name("photos.eu"), "photos-eu-318a1688");
    }
}
