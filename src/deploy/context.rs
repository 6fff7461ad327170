//! Where a command runs and with what: the credentials, the account and
//! region of the fan-out, the clients, the code to upload, and what
//! observation found of the buckets (their regions and keys).

use std::collections::BTreeMap;

use aws_config::{Region, SdkConfig};
use aws_sdk_sts::config::ProvideCredentials;
use futures::future::join_all;
use sha2::{Digest, Sha256};

use super::encryption;
use super::error::{DeployError, aws_failure, is_code};
use super::names::{self, Scope};
use super::spec::Spec;
use crate::package::{Architecture, Bootstrap};

/// The function's code: the zip, its CodeSha256 as Lambda reports it, and
/// the architecture read from the executable.
pub struct Code {
    pub zip: Vec<u8>,
    pub sha256: String,
    pub architecture: Architecture,
}

impl Code {
    pub fn load(bootstrap: Option<&std::path::Path>) -> Result<Code, DeployError> {
        let bootstrap = Bootstrap::load(bootstrap).map_err(|err| DeployError(err.to_string()))?;
        let zip = bootstrap
            .zip()
            .map_err(|err| DeployError(err.to_string()))?;
        Ok(Code {
            sha256: aws_smithy_types::base64::encode(Sha256::digest(&zip)),
            zip,
            architecture: bootstrap.architecture,
        })
    }
}

/// Everything a step needs: the request, where it goes, and the clients.
pub struct Context {
    pub spec: Spec,
    pub scope: Scope,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub iam: aws_sdk_iam::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The code to deploy. Only `deploy` needs it: `status` and `destroy`
    /// run anywhere, also where s3fan is not a Linux build (a Mac).
    pub code: Option<Code>,
    /// The SDK configuration in the source's region, for clients elsewhere.
    pub sdk: SdkConfig,
    /// Each destination's region, once `destination_regions` found it.
    pub destination_regions: BTreeMap<String, String>,
    /// The customer managed KMS key of the source's default encryption.
    pub source_key: Option<encryption::KmsKey>,
    /// The KMS key each destination's copies are encrypted with, where the
    /// role needs a grant for it (`encryption::observe_keys`).
    pub destination_keys: BTreeMap<String, encryption::KmsKey>,
}

impl Context {
    /// Checks credentials, finds the account and the source bucket's region,
    /// and builds clients for that region.
    pub async fn connect(spec: Spec, code: Option<Code>) -> Result<Context, DeployError> {
        let config = crate::aws::sdk_config(spec.region.clone(), spec.profile.clone()).await;
        check_credentials(&config).await?;
        // Where the bucket is decides where the topic and functions go; any
        // region can ask S3 that.
        let bootstrap_config = match config.region() {
            Some(_) => config.clone(),
            None => config.to_builder().region(Region::new("us-east-1")).build(),
        };
        let (account, partition) = caller_account(&bootstrap_config).await?;
        let region = bucket_region(&crate::aws::s3_client(&bootstrap_config), &spec.source).await?;
        if let Some(asked) = &spec.region {
            if *asked != region {
                return Err(DeployError(format!(
                    "source bucket {} is in {region}, not in --region {asked}: SNS and Lambda must be \
                     in the bucket's region; drop --region or pass --region {region}",
                    spec.source
                )));
            }
        }
        let regional = config
            .to_builder()
            .region(Region::new(region.clone()))
            .build();
        Ok(Context {
            scope: Scope {
                partition,
                account,
                region,
            },
            s3: crate::aws::s3_client(&regional),
            sns: aws_sdk_sns::Client::new(&regional),
            lambda: aws_sdk_lambda::Client::new(&regional),
            iam: aws_sdk_iam::Client::new(&regional),
            sqs: aws_sdk_sqs::Client::new(&regional),
            sdk: regional,
            destination_regions: BTreeMap::new(),
            source_key: None,
            destination_keys: BTreeMap::new(),
            spec,
            code,
        })
    }

    /// The code to upload, for the steps that upload it.
    pub fn code(&self) -> Result<&Code, DeployError> {
        self.code.as_ref().ok_or_else(|| {
            DeployError("no Linux build of s3fan to upload: pass one with --bootstrap PATH".into())
        })
    }

    /// The account that owns `destination`, when it is not the caller's.
    pub fn other_account(&self, destination: &str) -> Option<&str> {
        self.spec
            .dest_account(destination)
            .filter(|account| *account != self.scope.account)
    }

    /// An S3 client for `bucket`'s region: the source's client unless the
    /// bucket is known to be elsewhere.
    pub fn s3_for(&self, bucket: &str) -> aws_sdk_s3::Client {
        self.s3_in(self.destination_regions.get(bucket).map(String::as_str))
    }

    /// An S3 client for `region`: the source's client when it is the same
    /// or not known.
    pub fn s3_in(&self, region: Option<&str>) -> aws_sdk_s3::Client {
        match region {
            Some(region) if region != self.scope.region => {
                crate::aws::s3_client_in(&self.sdk, region)
            }
            _ => self.s3.clone(),
        }
    }

    pub fn topic_arn(&self) -> String {
        self.scope.topic_arn(&names::topic_name(&self.spec.source))
    }

    pub fn failure_queue_arn(&self) -> String {
        self.scope
            .queue_arn(&names::failure_queue_name(&self.spec.source))
    }

    pub fn function_arn(&self, function: &str) -> String {
        format!(
            "arn:{}:lambda:{}:{}:function:{function}",
            self.scope.partition, self.scope.region, self.scope.account
        )
    }

    /// The user's tags plus s3fan's own, for everything deploy creates.
    pub fn tags(&self, destination: Option<&str>) -> BTreeMap<String, String> {
        let mut tags = self.spec.tags.clone();
        tags.insert(names::TAG_MANAGED_BY.into(), "s3fan".into());
        tags.insert(names::TAG_SOURCE.into(), self.spec.source.clone());
        if let Some(destination) = destination {
            tags.insert(names::TAG_DESTINATION.into(), destination.to_owned());
        }
        tags
    }
}

#[cfg(test)]
impl Context {
    /// A context for unit tests: account 123456789012 in us-east-1, every
    /// client talking to `endpoint` (an in-process fake from
    /// `crate::test_endpoint`), with retries off.
    pub(crate) fn offline(spec: Spec, endpoint: &str) -> Context {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials};
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
                Credentials::new("test", "test", None, None, "test"),
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        Context {
            spec,
            scope: Scope {
                partition: "aws".into(),
                account: "123456789012".into(),
                region: "us-east-1".into(),
            },
            s3: crate::test_endpoint::client(endpoint),
            sns: aws_sdk_sns::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            sdk: config,
            destination_regions: BTreeMap::new(),
            source_key: None,
            destination_keys: BTreeMap::new(),
            code: None,
        }
    }
}

async fn check_credentials(config: &SdkConfig) -> Result<(), DeployError> {
    const HOW: &str = "configure credentials with `aws configure`, `aws sso login`, \
        AWS_PROFILE or --profile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
    let Some(provider) = config.credentials_provider() else {
        return Err(DeployError(format!("no AWS credentials provider: {HOW}")));
    };
    provider
        .provide_credentials()
        .await
        .map(|_| ())
        .map_err(|err| {
            DeployError(format!(
                "no usable AWS credentials ({}): {HOW}",
                crate::aws::error_chain(&err)
            ))
        })
}

async fn caller_account(config: &SdkConfig) -> Result<(String, String), DeployError> {
    let identity = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|err| {
            aws_failure(
                "cannot identify the caller's account (sts:GetCallerIdentity)",
                &err,
            )
        })?;
    let account = identity
        .account()
        .ok_or_else(|| DeployError("sts:GetCallerIdentity returned no account".into()))?
        .to_owned();
    let partition = identity
        .arn()
        .and_then(|arn| arn.split(':').nth(1))
        .filter(|p| !p.is_empty())
        .unwrap_or("aws")
        .to_owned();
    Ok((account, partition))
}

async fn bucket_region(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<String, DeployError> {
    match s3.get_bucket_location().bucket(bucket).send().await {
        Ok(out) => Ok(match out.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_owned(),
            Some("EU") => "eu-west-1".to_owned(),
            Some(region) => region.to_owned(),
        }),
        Err(err) if is_code(&err, &["NoSuchBucket"]) => Err(DeployError(format!(
            "source bucket {bucket} does not exist: check --source, or create the bucket first"
        ))),
        Err(err) if is_code(&err, &["AccessDenied", "AllAccessDisabled"]) => {
            Err(DeployError(format!(
                "source bucket {bucket} exists but these credentials cannot read its location \
                 (AccessDenied): it belongs to another account, or the caller lacks \
                 s3:GetBucketLocation. Run s3fan with credentials of the bucket's own account \
                 (--profile), which alone can set its notifications, or grant \
                 s3:GetBucketLocation on it"
            )))
        }
        Err(err) => Err(aws_failure(
            format!("cannot find the region of source bucket {bucket}"),
            &err,
        )),
    }
}

/// Every destination must exist and be reachable before anything changes;
/// finds the region of each, since copies are written there (S3 answers a
/// request sent to another region with 301 PermanentRedirect).
pub async fn destination_regions(ctx: &mut Context) -> Result<(), DeployError> {
    let shared: &Context = ctx;
    let checks = shared.spec.destinations.iter().map(|bucket| async move {
        let ctx = shared;
        let found = |region: Option<&str>| {
            Ok((
                bucket.clone(),
                region
                    .filter(|r| !r.is_empty())
                    .unwrap_or(&ctx.scope.region)
                    .to_owned(),
            ))
        };
        match ctx.s3.head_bucket().bucket(bucket).send().await {
            Ok(out) => found(out.bucket_region()),
            Err(err) => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                Err(match status {
                    Some(404) => format!("destination bucket {bucket} does not exist: create it, or fix --dest"),
                    // Another account's bucket, as declared: the deployer
                    // may well not reach it; S3 still says where it is.
                    Some(403) if ctx.other_account(bucket).is_some() => {
                        return found(
                            err.raw_response()
                                .and_then(|r| r.headers().get("x-amz-bucket-region")),
                        );
                    }
                    Some(403) => format!(
                        "destination bucket {bucket} exists but these credentials cannot reach it (403): \
                         it belongs to another account, or the caller lacks s3:ListBucket on it. \
                         If it is another account's, say so with --dest-account {bucket}=ACCOUNT \
                         (deploy then gives the statement its owner adds to the bucket's policy); \
                         else fix --dest"
                    ),
                    // In another region: it exists, and S3 says where.
                    Some(301) => {
                        return found(err.raw_response().and_then(|r| r.headers().get("x-amz-bucket-region")));
                    }
                    _ => aws_failure(format!("cannot check destination bucket {bucket}"), &err).0,
                })
            }
        }
    });
    let mut problems = Vec::new();
    let mut regions = BTreeMap::new();
    for check in join_all(checks).await {
        match check {
            Ok((bucket, region)) => {
                regions.insert(bucket, region);
            }
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        return Err(DeployError(problems.join("; ")));
    }
    ctx.destination_regions = regions;
    Ok(())
}
