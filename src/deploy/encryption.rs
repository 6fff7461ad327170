//! The KMS keys the functions' role must be granted: the key a bucket's
//! default encryption names (GetBucketEncryption), or `--dest-kms-key`.
//! S3's own encryption (SSE-S3) and the AWS managed `aws/s3` key need no
//! grant: the latter's key policy admits every principal of the account
//! through S3.

use std::collections::BTreeMap;

use aws_sdk_s3::types::ServerSideEncryption;
use serde_json::{Value, json};

use crate::fanout::names::Scope;
use crate::fanout::{Context, DeployError, aws_failure, is_code};

/// The alias of the AWS managed key S3 uses when a bucket asks for SSE-KMS
/// without naming a key.
const AWS_MANAGED_S3_ALIAS: &str = "alias/aws/s3";

/// A customer managed key, as a grant can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsKey {
    /// The key's ARN.
    Key(String),
    /// A key named by alias. IAM cannot name a key by its alias in
    /// `Resource`, so the grant covers the keys of that account and region
    /// on condition that the key has this alias.
    Alias { keys: String, alias: String },
}

impl KmsKey {
    /// A key as a bucket's configuration or `--dest-kms-key` names it: key
    /// ARN, key ID, alias ARN or `alias/NAME`; IDs and names are in
    /// `region` of the caller's account, as S3 reads them. `None` for the
    /// AWS managed key `aws/s3`, by its alias or alias ARN: its key policy
    /// already admits every principal of the account using S3, so a grant
    /// would only widen the role. (By its bare key ID it cannot be told
    /// from a customer managed key without kms:DescribeKey; it then gets a
    /// grant on that one key, which is harmless.)
    pub fn parse(text: &str, scope: &Scope, region: &str) -> Option<KmsKey> {
        let key = Self::parse_any(text, scope, region);
        match &key {
            KmsKey::Alias { alias, .. } if alias == AWS_MANAGED_S3_ALIAS => None,
            _ => Some(key),
        }
    }

    fn parse_any(text: &str, scope: &Scope, region: &str) -> KmsKey {
        let keys = |partition: &str, region: &str, account: &str| {
            format!("arn:{partition}:kms:{region}:{account}:key/*")
        };
        let arn: Vec<&str> = text.splitn(6, ':').collect();
        match arn.as_slice() {
            ["arn", partition, "kms", region, account, resource] => {
                match resource.strip_prefix("alias/") {
                    Some(_) => KmsKey::Alias {
                        keys: keys(partition, region, account),
                        alias: (*resource).to_owned(),
                    },
                    None => KmsKey::Key(text.to_owned()),
                }
            }
            _ if text.starts_with("alias/") => KmsKey::Alias {
                keys: keys(&scope.partition, region, &scope.account),
                alias: text.to_owned(),
            },
            _ => KmsKey::Key(format!(
                "arn:{}:kms:{region}:{}:key/{text}",
                scope.partition, scope.account
            )),
        }
    }

    /// The role statement that allows `actions` on this key.
    pub fn statement(&self, sid: &str, actions: &[&str]) -> Value {
        match self {
            KmsKey::Key(arn) => json!({
                "Sid": sid,
                "Effect": "Allow",
                "Action": actions,
                "Resource": arn
            }),
            KmsKey::Alias { keys, alias } => json!({
                "Sid": sid,
                "Effect": "Allow",
                "Action": actions,
                "Resource": keys,
                "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": alias}}
            }),
        }
    }
}

/// The customer managed key of `bucket`'s default encryption, if any.
pub async fn default_key(
    ctx: &Context,
    bucket: &str,
    region: &str,
) -> Result<Option<KmsKey>, DeployError> {
    let answer = ctx
        .s3_in(Some(region))
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await;
    let configuration = match answer {
        Ok(out) => out.server_side_encryption_configuration,
        // No default encryption; or no bucket, which deploy has refused
        // already and status reports as drift.
        Err(err)
            if is_code(
                &err,
                &[
                    "ServerSideEncryptionConfigurationNotFoundError",
                    "NoSuchBucket",
                ],
            ) =>
        {
            return Ok(None);
        }
        // Another account's bucket: its owner may not let the deployer read
        // this; copies then take its default (or --dest-kms-key).
        Err(err) if ctx.other_account(bucket).is_some() && is_code(&err, &["AccessDenied"]) => {
            return Ok(None);
        }
        Err(err) => {
            return Err(aws_failure(
                format!(
                    "cannot read the default encryption of bucket {bucket} \
                     (s3:GetEncryptionConfiguration), which decides the KMS grants of the role"
                ),
                &err,
            ));
        }
    };
    let default = configuration
        .as_ref()
        .and_then(|c| c.rules().first())
        .and_then(|rule| rule.apply_server_side_encryption_by_default());
    Ok(default.and_then(|default| {
        let kms = matches!(
            default.sse_algorithm(),
            ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse
        );
        let key = default.kms_master_key_id().filter(|k| !k.is_empty())?;
        kms.then(|| KmsKey::parse(key, &ctx.scope, region))
            .flatten()
    }))
}

/// The KMS keys the roles need grants for.
#[derive(Debug, Default)]
pub struct Keys {
    /// The customer managed key of the source's default encryption.
    pub source: Option<KmsKey>,
    /// Per destination, the key its copies are encrypted with:
    /// `--dest-kms-key`, or else its default key.
    pub destinations: BTreeMap<String, KmsKey>,
}

/// Reads the keys of the source and of every destination.
pub async fn observe_keys(ctx: &Context) -> Result<Keys, DeployError> {
    let source = default_key(ctx, &ctx.spec.source, &ctx.scope.region).await?;
    let mut destinations = BTreeMap::new();
    for destination in &ctx.spec.destinations {
        let bucket = &destination.bucket;
        let region = ctx.region_of(bucket).unwrap_or(&ctx.scope.region);
        let key = match &destination.kms_key {
            Some(given) => KmsKey::parse(given, &ctx.scope, region),
            None => default_key(ctx, bucket, region).await?,
        };
        if let Some(key) = key {
            destinations.insert(bucket.clone(), key);
        }
    }
    Ok(Keys {
        source,
        destinations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::for_test("us-east-1")
    }

    #[test]
    fn every_way_of_naming_a_key_becomes_a_grant_on_that_key_only() {
        let arn = "arn:aws:kms:eu-west-1:210987654321:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(
            KmsKey::parse(arn, &scope(), "us-east-1"),
            Some(KmsKey::Key(arn.into()))
        );
        assert_eq!(
            KmsKey::parse(
                "1234abcd-12ab-34cd-56ef-1234567890ab",
                &scope(),
                "eu-west-1"
            ),
            Some(KmsKey::Key(
                "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                    .into()
            ))
        );
        let by_alias = KmsKey::parse("alias/backups", &scope(), "eu-west-1").unwrap();
        assert_eq!(
            by_alias.statement("EncryptDestinationObjects", &["kms:GenerateDataKey"]),
            json!({
                "Sid": "EncryptDestinationObjects",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey"],
                "Resource": "arn:aws:kms:eu-west-1:123456789012:key/*",
                "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/backups"}}
            })
        );
        assert_eq!(
            KmsKey::parse(
                "arn:aws:kms:us-west-2:210987654321:alias/x",
                &scope(),
                "us-east-1"
            ),
            Some(KmsKey::Alias {
                keys: "arn:aws:kms:us-west-2:210987654321:key/*".into(),
                alias: "alias/x".into()
            })
        );
    }

    #[test]
    fn the_aws_managed_s3_key_needs_no_grant_however_it_is_named() {
        for name in [
            "alias/aws/s3",
            "arn:aws:kms:us-east-1:123456789012:alias/aws/s3",
            "arn:aws:kms:eu-west-1:210987654321:alias/aws/s3",
        ] {
            assert_eq!(KmsKey::parse(name, &scope(), "us-east-1"), None, "{name}");
        }
        // Only that alias: one that merely starts the same is a customer's.
        assert!(KmsKey::parse("alias/aws/s3-backups", &scope(), "us-east-1").is_some());
        assert!(KmsKey::parse("alias/aws-s3", &scope(), "us-east-1").is_some());
    }
}
