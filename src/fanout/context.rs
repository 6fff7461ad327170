//! Where a command runs and on what: the session (credentials checked, the
//! account and the source bucket's region, a client per service), and the
//! fan-out it acts on with the region of every bucket in it. Each is
//! complete when made: a bucket whose region is not known has no client.

use std::collections::BTreeMap;
use std::ops::Deref;

use aws_config::{Region, SdkConfig};
use aws_sdk_sts::config::ProvideCredentials;
use futures::future::join_all;

use super::error::{DeployError, aws_failure, is_code};
use super::names::{self, Scope};
use super::spec::Spec;
use crate::package::Code;
use crate::settings::{Deployed, FunctionSettings};

/// Credentials that work, where the fan-out lives, and the clients there.
pub struct Session {
    pub scope: Scope,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub iam: aws_sdk_iam::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// The SDK configuration in the source's region, for clients elsewhere.
    pub sdk: SdkConfig,
}

impl Session {
    /// Checks credentials, finds the account and the source bucket's region
    /// (which `spec.region`, when given, must be), and builds clients there.
    pub async fn connect(spec: &Spec) -> Result<Session, DeployError> {
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
        Ok(Session::new(
            Scope {
                partition,
                account,
                region,
            },
            regional,
        ))
    }

    fn new(scope: Scope, sdk: SdkConfig) -> Session {
        Session {
            scope,
            s3: crate::aws::s3_client(&sdk),
            sns: aws_sdk_sns::Client::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            iam: aws_sdk_iam::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            events: aws_sdk_eventbridge::Client::new(&sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            sdk,
        }
    }

    /// An S3 client for `region`: the session's own when it is the same,
    /// or when `None` (a function records a destination's region only
    /// when it is not the function's own).
    pub fn s3_in(&self, region: Option<&str>) -> aws_sdk_s3::Client {
        match region {
            Some(region) if region != self.scope.region => {
                crate::aws::s3_client_in(&self.sdk, region)
            }
            _ => self.s3.clone(),
        }
    }

    pub fn topic_arn(&self, source: &str) -> String {
        self.scope.topic_arn(&names::topic_name(source))
    }
}

/// Everything a step needs: the session, the fan-out asked for, the region
/// of each of its destinations, and the code to upload.
pub struct Context {
    pub session: Session,
    pub spec: Spec,
    /// Each destination's region: every destination of `spec` has one.
    regions: BTreeMap<String, String>,
    /// The code to deploy. Only `deploy` needs it: `status` and `destroy`
    /// run anywhere, also where s3fan is not a Linux build (a Mac).
    pub code: Option<Code>,
}

/// A context reads as its session: `ctx.s3`, `ctx.scope`.
impl Deref for Context {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

impl Context {
    /// The fan-out `spec` in `session`; `regions` must name the region of
    /// every destination of `spec` (from [`find_regions`] or from what the
    /// functions record).
    pub fn new(
        session: Session,
        spec: Spec,
        regions: BTreeMap<String, String>,
        code: Option<Code>,
    ) -> Result<Context, DeployError> {
        if let Some(unknown) = spec
            .destinations
            .iter()
            .find(|d| !regions.contains_key(&d.bucket))
        {
            return Err(DeployError(format!(
                "the region of destination bucket {} is not known: name it with --dest so that \
                 s3fan asks S3 where it is",
                unknown.bucket
            )));
        }
        Ok(Context {
            session,
            spec,
            regions,
            code,
        })
    }

    /// The session, with every destination of `spec` checked to exist and
    /// its region found ([`find_regions`]).
    pub async fn connect(spec: Spec, code: Option<Code>) -> Result<Context, DeployError> {
        let session = Session::connect(&spec).await?;
        let regions = find_regions(&session, &spec).await?;
        Context::new(session, spec, regions, code)
    }

    /// The code to upload, for the steps that upload it.
    pub fn code(&self) -> Result<&Code, DeployError> {
        self.code.as_ref().ok_or_else(|| {
            DeployError("no Linux build of s3fan to upload: pass one with --bootstrap PATH".into())
        })
    }

    /// The region of a destination of this fan-out, or of its source.
    pub fn region_of(&self, bucket: &str) -> Option<&str> {
        if bucket == self.spec.source {
            return Some(&self.scope.region);
        }
        self.regions.get(bucket).map(String::as_str)
    }

    /// An S3 client in `bucket`'s region, for the source and destinations
    /// of this fan-out.
    pub fn s3_for(&self, bucket: &str) -> Result<aws_sdk_s3::Client, DeployError> {
        match self.region_of(bucket) {
            Some(region) => Ok(self.s3_in(Some(region))),
            None => Err(DeployError(format!(
                "bucket {bucket} is not part of the fan-out from {}, so its region is not known",
                self.spec.source
            ))),
        }
    }

    /// What deploy tells the function of `destination`; also what backfill
    /// and verify copy with, so that a copy is the same whoever makes it.
    pub fn function_settings(&self, destination: &str) -> FunctionSettings {
        FunctionSettings {
            source: Some(self.spec.source.clone()),
            destination: Some(destination.to_owned()),
            // The notification's filter, checked again by the handler.
            filter_prefix: self.spec.prefix.clone(),
            filter_suffix: self.spec.suffix.clone(),
            replicate_deletes: self.spec.replicate_deletes,
            replicate_tags: self.spec.replicate_tags,
            metrics: self.spec.metrics,
            key_prefix: self.spec.key_prefix(destination).map(str::to_owned),
            storage_class: self.spec.storage_class(destination).map(str::to_owned),
            kms_key: self.spec.dest_kms_key(destination).map(str::to_owned),
            owner: self.other_account(destination).map(str::to_owned),
            request_payer: self.spec.request_payer,
            // Copies are written in the destination's region; only named when
            // it is not the function's own.
            destination_region: self
                .region_of(destination)
                .filter(|region| *region != self.scope.region)
                .map(str::to_owned),
            reconcile_every: self.spec.reconcile_every.map(|every| every.to_string()),
            alarms: self.spec.alarms.as_ref().map(|to| to.to_record()),
            deployed: Deployed {
                lag_slo: self
                    .spec
                    .alarms
                    .as_ref()
                    .and_then(|_| i32::try_from(self.spec.lag_slo.seconds).ok()),
                memory: Some(self.spec.memory),
                timeout: Some(self.spec.timeout),
                retry_attempts: Some(self.spec.retry_attempts),
                max_event_age: Some(self.spec.max_event_age),
                reserved_concurrency: self.spec.reserved_concurrency,
            },
        }
    }

    /// The account that owns `destination`, when it is not the caller's.
    pub fn other_account(&self, destination: &str) -> Option<&str> {
        other_account(&self.spec, &self.scope, destination)
    }

    pub fn topic_arn(&self) -> String {
        self.session.topic_arn(&self.spec.source)
    }

    pub fn failure_queue_arn(&self) -> String {
        self.scope
            .queue_arn(&names::failure_queue_name(&self.spec.source))
    }

    pub fn function_arn(&self, function: &str) -> String {
        self.scope.function_arn(function)
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

fn other_account<'a>(spec: &'a Spec, scope: &Scope, destination: &str) -> Option<&'a str> {
    spec.dest_account(destination)
        .filter(|account| *account != scope.account)
}

#[cfg(test)]
impl Context {
    /// A context for unit tests: account 123456789012 in us-east-1, every
    /// client talking to `endpoint` (an in-process fake from
    /// `crate::test_endpoint`), with retries off; every destination in
    /// us-east-1 unless `regions` says otherwise.
    pub(crate) fn offline(spec: Spec, endpoint: &str) -> Context {
        Context::offline_in(spec, endpoint, BTreeMap::new())
    }

    pub(crate) fn offline_in(
        spec: Spec,
        endpoint: &str,
        mut regions: BTreeMap<String, String>,
    ) -> Context {
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
        let scope = Scope::for_test("us-east-1");
        let mut session = Session::new(scope, config);
        session.s3 = crate::test_endpoint::client(endpoint);
        for destination in &spec.destinations {
            regions
                .entry(destination.bucket.clone())
                .or_insert_with(|| "us-east-1".into());
        }
        Context {
            session,
            spec,
            regions,
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
pub async fn find_regions(
    session: &Session,
    spec: &Spec,
) -> Result<BTreeMap<String, String>, DeployError> {
    let checks = spec.destinations.iter().map(|d| &d.bucket).map(|bucket| async move {
        let other_account = other_account(spec, &session.scope, bucket);
        let found = |region: Option<&str>| {
            Ok((
                bucket.clone(),
                region
                    .filter(|r| !r.is_empty())
                    .unwrap_or(&session.scope.region)
                    .to_owned(),
            ))
        };
        match session.s3.head_bucket().bucket(bucket).send().await {
            Ok(out) => found(out.bucket_region()),
            Err(err) => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                Err(match status {
                    Some(404) => format!("destination bucket {bucket} does not exist: create it, or fix --dest"),
                    // Another account's bucket, as declared: the deployer
                    // may well not reach it; S3 still says where it is.
                    Some(403) if other_account.is_some() => {
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
    Ok(regions)
}
