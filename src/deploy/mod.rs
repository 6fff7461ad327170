//! Laptop and CI mode: provision, inspect and remove one fan-out.
//!
//! Every command reads what exists, plans (a list of changes, pure once the
//! state is read), then applies idempotent steps. Each AWS resource lives in
//! one module with the same shape: `observe`, `plan`, `apply`.

mod dest_policy;
mod encryption;
mod function;
pub mod inventory;
mod invoke_config;
pub mod names;
mod notification;
mod permission;
pub mod plan;
mod policy;
pub(crate) mod queue;
mod role;
pub mod spec;
mod subscription;
mod topic;

use std::collections::BTreeMap;

use aws_config::{Region, SdkConfig};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::config::ProvideCredentials;
use futures::future::join_all;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::package::{Architecture, Bootstrap};
use crate::settings::FunctionSettings;
use names::Scope;
use plan::{Action, Change, Outcome, Status, Summary};
use spec::Spec;

/// A failure with its context: what was being done, and what AWS said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeployError(pub String);

/// `cannot <what>: <Code>: <message>`, or the transport failure in full.
pub(crate) fn aws_failure<E, R>(what: impl std::fmt::Display, err: &SdkError<E, R>) -> DeployError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => crate::aws::sdk_error_sentence(err),
    };
    DeployError(format!("{what}: {detail}{}", what_to_do(err)))
}

/// Codes with which AWS refuses the credentials themselves, whatever the call.
const REFUSED_CREDENTIALS: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
];

/// The way out of failures that are not about the resource at all: AWS not
/// reached, or the credentials refused.
fn what_to_do<E, R>(err: &SdkError<E, R>) -> &'static str
where
    E: ProvideErrorMetadata,
{
    if matches!(
        err,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
    ) {
        "; AWS did not answer: check the network connection, --region, and \
         AWS_ENDPOINT_URL if it is set"
    } else if is_code(err, REFUSED_CREDENTIALS) {
        "; AWS refused these credentials (expired, revoked or mistyped): refresh \
         them (`aws sso login`, new temporary credentials) or choose others with \
         --profile or AWS_PROFILE"
    } else {
        ""
    }
}

pub(crate) fn is_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>, codes: &[&str]) -> bool {
    err.code().is_some_and(|code| codes.contains(&code))
}

/// A delete whose target is already gone (one of the `missing` codes) has
/// done its job: removals stay idempotent.
pub(crate) fn gone_is_fine<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    missing: &[&str],
    what: impl std::fmt::Display,
) -> Result<(), DeployError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(()),
        Err(err) if is_code(&err, missing) => Ok(()),
        Err(err) => Err(aws_failure(what, &err)),
    }
}

pub(crate) fn message_of<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> String {
    err.message().unwrap_or_default().to_owned()
}

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

/// One change of any resource, with what its apply needs.
pub enum Step {
    Topic(Change<topic::Op>),
    Queue(Change<queue::Op>),
    Notification(Change<notification::Op>),
    Role(Change<role::Op>),
    Function(Change<function::Op>),
    InvokeConfig(Change<invoke_config::Op>),
    Permission {
        function: String,
        change: Change<permission::Op>,
    },
    Subscription(Change<subscription::Op>),
    DestinationPolicy(Change<dest_policy::Op>),
}

impl Step {
    fn outcome(&self, status: Status) -> Outcome {
        match self {
            Step::Topic(c) => Outcome::of(c, status),
            Step::Queue(c) => Outcome::of(c, status),
            Step::Notification(c) => Outcome::of(c, status),
            Step::Role(c) => Outcome::of(c, status),
            Step::Function(c) => Outcome::of(c, status),
            Step::InvokeConfig(c) => Outcome::of(c, status),
            Step::Permission { change, .. } => Outcome::of(change, status),
            Step::Subscription(c) => Outcome::of(c, status),
            Step::DestinationPolicy(c) => Outcome::of(c, status),
        }
    }

    fn action(&self) -> Action {
        self.outcome(Status::Planned).action
    }

    async fn apply(&self, ctx: &Context) -> Result<(), DeployError> {
        if !self.action().changes_something() {
            return Ok(());
        }
        let destination = |c: &Option<String>| c.clone().unwrap_or_default();
        match self {
            Step::Topic(c) => topic::apply(ctx, c.op).await,
            Step::Queue(c) => queue::apply(ctx, &c.op).await,
            Step::InvokeConfig(c) => invoke_config::apply(ctx, &c.name, c.op).await,
            Step::Notification(c) => notification::apply(ctx, &c.op).await,
            Step::Role(c) => role::apply(ctx, &destination(&c.destination), c.op).await,
            Step::Function(c) => {
                function::apply(ctx, &c.name, &destination(&c.destination), c.op).await
            }
            Step::Permission { function, change } => {
                permission::apply(ctx, function, change.op).await
            }
            Step::Subscription(c) => subscription::apply(ctx, &c.name, &c.op).await,
            Step::DestinationPolicy(c) => {
                dest_policy::apply(ctx, &destination(&c.destination), &c.op).await
            }
        }
    }
}

/// Stages run one after another; the groups of a stage run concurrently (one
/// per destination); the steps of a group run in order. A failure stops its
/// group and every later stage: a re-run picks up from what exists.
pub struct Plan {
    pub stages: Vec<Vec<Vec<Step>>>,
}

impl Plan {
    fn outcomes(&self, status: Status) -> Vec<Outcome> {
        self.steps()
            .map(|step| step.outcome(status.clone()))
            .collect()
    }

    fn steps(&self) -> impl Iterator<Item = &Step> {
        self.stages.iter().flatten().flatten()
    }

    async fn apply(&self, ctx: &Context) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let mut failed = false;
        for stage in &self.stages {
            if failed {
                outcomes.extend(
                    stage
                        .iter()
                        .flatten()
                        .map(|s| s.outcome(Status::NotAttempted)),
                );
                continue;
            }
            let groups = stage.iter().map(|group| async move {
                let mut results = Vec::new();
                let mut stopped = false;
                for step in group {
                    if stopped {
                        results.push(step.outcome(Status::NotAttempted));
                        continue;
                    }
                    match step.apply(ctx).await {
                        Ok(()) => results.push(step.outcome(Status::Done)),
                        Err(err) => {
                            stopped = true;
                            results.push(step.outcome(Status::Failed(err.0)));
                        }
                    }
                }
                results
            });
            for results in join_all(groups).await {
                failed |= results
                    .iter()
                    .any(|o| matches!(o.status, Status::Failed(_)));
                outcomes.extend(results);
            }
        }
        outcomes
    }
}

/// What a command did (or would do), for the text and JSON output.
#[derive(Debug, Serialize)]
pub struct Report {
    pub command: &'static str,
    pub source: String,
    pub region: String,
    pub account: String,
    pub dry_run: bool,
    pub ok: bool,
    pub changes: Vec<Outcome>,
    pub summary: Summary,
    /// What owners of destinations in other accounts must add to their
    /// bucket policies (deploy without `--apply-dest-policy`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bucket_policy_statements: Vec<OwnerStatement>,
}

/// One statement for the owner of a destination in another account.
#[derive(Debug, Serialize)]
pub struct OwnerStatement {
    pub destination: String,
    pub account: String,
    pub statement: serde_json::Value,
}

impl Report {
    fn new(command: &'static str, ctx: &Context, dry_run: bool, changes: Vec<Outcome>) -> Report {
        Report {
            command,
            source: ctx.spec.source.clone(),
            region: ctx.scope.region.clone(),
            account: ctx.scope.account.clone(),
            dry_run,
            ok: !changes
                .iter()
                .any(|c| matches!(c.status, Status::Failed(_))),
            summary: Summary::of(&changes),
            changes,
            bucket_policy_statements: Vec::new(),
        }
    }

    /// Lists, for deploy, the statements other accounts' owners must add.
    fn with_owner_statements(mut self, ctx: &Context) -> Report {
        if ctx.spec.apply_dest_policy {
            return self;
        }
        self.bucket_policy_statements = ctx
            .spec
            .destinations
            .iter()
            .filter_map(|destination| {
                Some(OwnerStatement {
                    destination: destination.clone(),
                    account: ctx.other_account(destination)?.to_owned(),
                    statement: dest_policy::desired_statement(ctx, destination),
                })
            })
            .collect();
        self
    }

    pub fn render_text(&self) -> String {
        let mut out = format!(
            "s3fan {}{}: s3://{} (account {}, {})\n",
            self.command,
            if self.dry_run { " --dry-run" } else { "" },
            self.source,
            self.account,
            self.region
        );
        for change in &self.changes {
            out.push_str(&plan::render_line(change));
            out.push('\n');
        }
        let s = &self.summary;
        if self.dry_run {
            let pending = self
                .changes
                .iter()
                .filter(|c| c.action.changes_something())
                .count();
            out.push_str(&format!(
                "{pending} to change, {} unchanged; nothing was changed (dry run)\n",
                s.unchanged
            ));
        } else if self.command == "destroy" {
            // destroy creates and updates nothing (but the failure queue's
            // policy, when one destination goes): no "0 created".
            let updated = if s.updated > 0 {
                format!("{} updated, ", s.updated)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "{} deleted, {updated}{} unchanged, {} failed\n",
                s.deleted, s.unchanged, s.failed
            ));
        } else {
            out.push_str(&format!(
                "{} created, {} updated, {} deleted, {} unchanged, {} failed\n",
                s.created, s.updated, s.deleted, s.unchanged, s.failed
            ));
        }
        for owner in &self.bucket_policy_statements {
            out.push_str(&format!(
                "destination {} belongs to account {}: its owner must add this statement to the \
                 bucket policy of {} before copies can land there (or run deploy with \
                 --apply-dest-policy where these credentials may write that policy):\n{}\n",
                owner.destination,
                owner.account,
                owner.destination,
                serde_json::to_string_pretty(&owner.statement).unwrap_or_default()
            ));
        }
        if !self.ok {
            out.push_str(&format!(
                "{} stopped after a failure: what is marked done is in place, nothing else was touched. \
                 Fix the cause above and run the same command again to finish.\n",
                self.command
            ));
        }
        out
    }
}

/// `s3fan deploy`.
pub async fn deploy(spec: Spec, code: Code, dry_run: bool) -> Result<Report, DeployError> {
    let mut ctx = Context::connect(spec, Some(code)).await?;
    destination_regions(&mut ctx).await?;
    encryption::observe_keys(&mut ctx).await?;
    let edges = inventory::list(&ctx).await?;
    if let Some(cycle) = inventory::find_loop(&edges, &ctx.spec.source, &ctx.spec.destinations) {
        return Err(DeployError(format!(
            "this would make a replication loop: {}; every copy would trigger another forever. \
             Remove the destination that leads back to {}",
            cycle.join(" -> "),
            ctx.spec.source
        )));
    }
    let found = found_destinations(&ctx, &edges).await?;
    let plan = plan_deploy(&ctx, &found).await?;
    let changes = if dry_run {
        plan.outcomes(Status::Planned)
    } else {
        plan.apply(&ctx).await
    };
    Ok(Report::new("deploy", &ctx, dry_run, changes).with_owner_statements(&ctx))
}

/// `found`: this fan-out's destinations as AWS has them
/// ([`found_destinations`]); those not listed any more are removed.
async fn plan_deploy(ctx: &Context, found: &[inventory::Edge]) -> Result<Plan, DeployError> {
    let topic_state = topic::observe(ctx).await?;
    let queue_state = queue::observe(ctx).await?;
    let notification_state = notification::observe(ctx).await?;
    let subscriptions = subscription::observe_all(ctx).await?;
    // Fails before any change if another configuration overlaps ours.
    let notification_change = notification::plan(ctx, &notification_state)?;

    let wanted = join_all(ctx.spec.destinations.iter().map(|destination| {
        let subscriptions = &subscriptions;
        async move {
            let function = names::function_name(destination);
            let role = role::observe(ctx, destination).await?;
            let deployed = function::observe(ctx, destination).await?;
            let permission = permission::observe(ctx, &function).await?;
            let invoke_config = invoke_config::observe(ctx, &function).await?;
            let mut steps = vec![Step::Role(role::plan(ctx, destination, &role))];
            // After the role: S3 refuses a policy naming a missing principal.
            if ctx.spec.apply_dest_policy && ctx.other_account(destination).is_some() {
                let policy = dest_policy::observe(ctx, destination).await?;
                steps.push(Step::DestinationPolicy(dest_policy::plan(
                    ctx,
                    destination,
                    &policy,
                )));
            }
            steps.extend([
                Step::Function(function::plan(ctx, destination, &deployed)?),
                Step::InvokeConfig(invoke_config::plan(ctx, destination, &invoke_config)),
                Step::Permission {
                    function: function.clone(),
                    change: permission::plan(ctx, destination, &permission),
                },
                Step::Subscription(subscription::plan(ctx, destination, subscriptions)),
            ]);
            Ok::<_, DeployError>(steps)
        }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;

    let stale = found
        .iter()
        .filter(|e| !ctx.spec.destinations.contains(&e.destination));
    let mut removals =
        join_all(stale.map(|edge| plan_removal(ctx, edge, &subscriptions, "no longer listed")))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
    // The queue's policy names the roles, which exist from stage two on.
    removals.push(vec![Step::Queue(queue::plan_policy(
        ctx,
        &queue_state,
        &ctx.spec.destinations,
    ))]);

    Ok(Plan {
        stages: vec![
            vec![
                vec![Step::Topic(topic::plan(ctx, &topic_state))],
                vec![Step::Queue(queue::plan(ctx, &queue_state))],
            ],
            wanted,
            removals,
            // Last: events flow only once every destination can take them.
            vec![vec![Step::Notification(notification_change)]],
        ],
    })
}

/// This fan-out's destinations as AWS has them: each function's, and each
/// role's whose function is gone or was never made (found by the role's
/// tags), so that nothing deploy made is out of reach of a removal.
async fn found_destinations(
    ctx: &Context,
    edges: &[inventory::Edge],
) -> Result<Vec<inventory::Edge>, DeployError> {
    let mut found: Vec<inventory::Edge> = inventory::of_source(edges, &ctx.spec.source)
        .into_iter()
        .cloned()
        .collect();
    for destination in role::tagged_destinations(ctx).await? {
        if !found.iter().any(|e| e.destination == destination) {
            found.push(inventory::Edge::role_only(&ctx.spec.source, &destination));
        }
    }
    Ok(found)
}

/// Subscription, permission, function, role: in that order, so the topic
/// never delivers to a function that is gone.
async fn plan_removal(
    ctx: &Context,
    edge: &inventory::Edge,
    subscriptions: &[subscription::Subscription],
    why: &str,
) -> Result<Vec<Step>, DeployError> {
    let function = &edge.function;
    let destination = &edge.destination;
    let deployed = function::observe_named(ctx, function).await?;
    let permission = permission::observe(ctx, function).await?;
    let role = role::observe(ctx, destination).await?;
    let mut steps = vec![
        Step::Subscription(subscription::plan_delete(
            ctx,
            function,
            destination,
            subscriptions,
        )),
        Step::Permission {
            function: function.clone(),
            change: permission::plan_delete(function, destination, &permission),
        },
        Step::Function(function::plan_delete(function, destination, &deployed)),
        Step::Role(role::plan_delete(destination, &role)),
    ];
    for step in &mut steps {
        set_detail(step, why);
    }
    Ok(steps)
}

fn set_detail(step: &mut Step, why: &str) {
    let detail = match step {
        Step::Topic(c) => &mut c.detail,
        Step::Queue(c) => &mut c.detail,
        Step::Notification(c) => &mut c.detail,
        Step::Role(c) => &mut c.detail,
        Step::Function(c) => &mut c.detail,
        Step::InvokeConfig(c) => &mut c.detail,
        Step::Permission { change, .. } => &mut change.detail,
        Step::Subscription(c) => &mut c.detail,
        Step::DestinationPolicy(c) => &mut c.detail,
    };
    if detail.is_empty() {
        *detail = why.to_owned();
    }
}

/// `s3fan destroy`: everything deploy made for the source (or only the named
/// destinations), and nothing else. Destinations are found through their
/// functions and through their roles' tags, so a role whose function is
/// already gone (an interrupted destroy or deploy) is removed too.
pub async fn destroy(spec: Spec, code: Option<Code>, dry_run: bool) -> Result<Report, DeployError> {
    let ctx = Context::connect(spec, code).await?;
    let edges = inventory::list(&ctx).await?;
    let deployed = found_destinations(&ctx, &edges).await?;
    let subscriptions = subscription::observe_all(&ctx).await?;
    let everything = ctx.spec.destinations.is_empty();
    let (targets, remaining): (Vec<&inventory::Edge>, Vec<&inventory::Edge>) = deployed
        .iter()
        .partition(|e| everything || ctx.spec.destinations.contains(&e.destination));
    let mut removals = join_all(
        targets
            .iter()
            .map(|edge| plan_removal(&ctx, edge, &subscriptions, "")),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    let mut stages = Vec::new();
    if everything {
        let notification_state = notification::observe(&ctx).await?;
        stages.push(vec![vec![Step::Notification(notification::plan_delete(
            &ctx,
            &notification_state,
        ))]]);
    }
    if !everything {
        // The queue stays: it admits exactly the roles that stay, and a
        // removed role may no longer send to it.
        if let queue_state @ queue::Observed::Present { .. } = queue::observe(&ctx).await? {
            let staying: Vec<String> = remaining.iter().map(|e| e.destination.clone()).collect();
            removals.push(vec![Step::Queue(queue::plan_policy(
                &ctx,
                &queue_state,
                &staying,
            ))]);
        }
    }
    stages.push(removals);
    if everything {
        let topic_state = topic::observe(&ctx).await?;
        let queue_state = queue::observe(&ctx).await?;
        stages.push(vec![
            vec![Step::Topic(topic::plan_delete(&ctx, &topic_state))],
            vec![Step::Queue(queue::plan_delete(&ctx, &queue_state))],
        ]);
    }
    let plan = Plan { stages };
    let changes = if dry_run {
        plan.outcomes(Status::Planned)
    } else {
        plan.apply(&ctx).await
    };
    Ok(Report::new("destroy", &ctx, dry_run, changes))
}

/// What `s3fan status` reports for one destination's function.
#[derive(Debug, Serialize)]
pub struct DestinationStatus {
    pub destination: String,
    /// Where copies go in the destination (`--dest DST:PREFIX`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    pub function: String,
    pub code_sha256: String,
    pub last_modified: String,
    /// Whether the deployed code is exactly this binary's package (unknown
    /// where this binary is not a Linux build).
    pub runs_this_binary: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub source: String,
    pub region: String,
    pub account: String,
    pub topic: Option<String>,
    /// Failed events waiting in the failure queue; `None` without a queue.
    pub failed_events: Option<u64>,
    /// Of those, the ones a running `retry` holds (not listed by `failures`).
    pub failed_in_flight: u64,
    pub notification: bool,
    /// Roles of this fan-out whose function is gone (an interrupted deploy
    /// or destroy); `destroy` removes them, as does the next `deploy`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub orphaned_roles: Vec<String>,
    pub destinations: Vec<DestinationStatus>,
    /// Changes `deploy` with the deployed destinations would make.
    pub drift: Vec<Outcome>,
}

impl StatusReport {
    /// Whether anything of the fan-out exists at all.
    pub fn deployed(&self) -> bool {
        self.topic.is_some()
            || self.failed_events.is_some()
            || self.notification
            || !self.orphaned_roles.is_empty()
            || !self.destinations.is_empty()
    }

    pub fn render_text(&self) -> String {
        let mut out = format!(
            "s3fan status: s3://{} (account {}, {})\n",
            self.source, self.account, self.region
        );
        out.push_str(&format!(
            "  topic         {}\n",
            self.topic.as_deref().unwrap_or("absent")
        ));
        out.push_str(&format!(
            "  failures      {}\n",
            match self.failed_events {
                None => "no failure queue".to_owned(),
                Some(0) => "none waiting".to_owned(),
                Some(n) if self.failed_in_flight > 0 => format!(
                    "{n} failed events waiting: `s3fan failures` lists them, {}",
                    queue::in_flight_note(self.failed_in_flight)
                ),
                Some(n) => format!("{n} failed events waiting: `s3fan failures` lists them"),
            }
        ));
        out.push_str(&format!(
            "  notification  {}\n",
            if self.notification {
                "s3:ObjectCreated:* -> topic"
            } else {
                "absent"
            }
        ));
        if !self.deployed() {
            // Not "in sync": there is nothing to be in sync.
            out.push_str(&format!(
                "nothing is deployed for s3://{0}: `s3fan deploy --source {0} --dest DST` makes \
                 the fan-out\n",
                self.source
            ));
            return out;
        }
        for role in &self.orphaned_roles {
            out.push_str(&format!(
                "  left behind   IAM role {role}, whose function is gone (an interrupted deploy or \
                 destroy): `s3fan destroy` or the next `s3fan deploy` removes it\n"
            ));
        }
        if self.destinations.is_empty() {
            out.push_str(
                "  no destinations deployed: what is left is half a fan-out; `s3fan deploy` \
                 finishes it, `s3fan destroy` removes it\n",
            );
        }
        for d in &self.destinations {
            out.push_str(&format!(
                "  destination   s3://{}/{} via function {} (code {}, {}; last modified {})\n",
                d.destination,
                d.key_prefix.as_deref().unwrap_or(""),
                d.function,
                d.code_sha256,
                match d.runs_this_binary {
                    Some(true) => "this binary",
                    Some(false) => "another build",
                    None => "build unknown",
                },
                d.last_modified
            ));
        }
        if self.destinations.is_empty() {
            // Without destinations there is no deploy to compare with.
        } else if self.drift.is_empty() {
            out.push_str("in sync: deploy would change nothing\n");
        } else {
            out.push_str("drift (what deploy would change):\n");
            for change in &self.drift {
                out.push_str(&plan::render_line(change));
                out.push('\n');
            }
        }
        out
    }
}

/// Takes the deployed destinations of `ctx.spec.source`, with their key
/// prefixes and the fan-out's key filter, into `ctx.spec`: what the handler
/// was given is the record of the last deploy's flags. Returns every s3fan
/// function found in the region.
pub async fn adopt_deployed(ctx: &mut Context) -> Result<Vec<inventory::Edge>, DeployError> {
    let edges = inventory::list(ctx).await?;
    let ours = inventory::of_source(&edges, &ctx.spec.source);
    ctx.spec.destinations = ours.iter().map(|e| e.destination.clone()).collect();
    // Each destination's setting, where its function has one.
    let per_destination = |setting: fn(&FunctionSettings) -> &Option<String>| {
        ours.iter()
            .filter_map(|e| Some((e.destination.clone(), setting(&e.settings).clone()?)))
            .collect::<BTreeMap<_, _>>()
    };
    ctx.spec.key_prefixes = per_destination(|s| &s.key_prefix);
    ctx.spec.storage_classes = per_destination(|s| &s.storage_class);
    ctx.spec.dest_kms_keys = per_destination(|s| &s.kms_key);
    ctx.spec.dest_accounts = per_destination(|s| &s.owner);
    // Where the functions write, as deployed; `destination_regions` asks S3.
    ctx.destination_regions = per_destination(|s| &s.destination_region);
    if let Some(first) = ours.first().map(|e| &e.settings) {
        ctx.spec.prefix = first.filter_prefix.clone();
        ctx.spec.suffix = first.filter_suffix.clone();
        ctx.spec.replicate_deletes = first.replicate_deletes;
        ctx.spec.metrics = first.metrics;
        ctx.spec.request_payer = first.request_payer;
        // What that deploy asked for, where it kept a record; else the
        // file's values or the defaults stand.
        let recorded = first.deployed;
        ctx.spec.memory = recorded.memory.unwrap_or(ctx.spec.memory);
        ctx.spec.timeout = recorded.timeout.unwrap_or(ctx.spec.timeout);
        ctx.spec.retry_attempts = recorded.retry_attempts.unwrap_or(ctx.spec.retry_attempts);
        ctx.spec.max_event_age = recorded.max_event_age.unwrap_or(ctx.spec.max_event_age);
    }
    Ok(edges)
}

/// `s3fan status`: what is deployed, and how it differs from what the last
/// deploy made (the same planning code as deploy): every setting is read
/// back from the functions, where deploy recorded it, so only changes made
/// outside s3fan are drift.
pub async fn status(spec: Spec, code: Option<Code>) -> Result<StatusReport, DeployError> {
    let mut ctx = Context::connect(spec, code).await?;
    let edges = adopt_deployed(&mut ctx).await?;
    let ours = inventory::of_source(&edges, &ctx.spec.source);
    let topic = match topic::observe(&ctx).await? {
        topic::Observed::Absent => None,
        topic::Observed::Present { .. } => Some(ctx.topic_arn()),
    };
    let (failed_events, failed_in_flight) = match queue::observe(&ctx).await? {
        queue::Observed::Absent => (None, 0),
        queue::Observed::Present {
            messages,
            in_flight,
            ..
        } => (Some(messages), in_flight),
    };
    let notification_state = notification::observe(&ctx).await?;
    let notification = notification_state
        .topic_configurations()
        .iter()
        .any(|e| e.id() == Some(names::NOTIFICATION_ID));
    let found = found_destinations(&ctx, &edges).await?;
    // Roles no function leads to: left by an interrupted deploy or destroy.
    let orphaned_roles: Vec<String> = found
        .iter()
        .filter(|e| !ours.iter().any(|o| o.destination == e.destination))
        .map(|e| names::role_name(&e.destination))
        .collect();
    let drift = if ctx.spec.destinations.is_empty() {
        Vec::new()
    } else {
        encryption::observe_keys(&mut ctx).await?;
        plan_deploy(&ctx, &found)
            .await?
            .outcomes(Status::Planned)
            .into_iter()
            .filter(|o| o.action.changes_something())
            .collect()
    };
    Ok(StatusReport {
        source: ctx.spec.source.clone(),
        region: ctx.scope.region.clone(),
        account: ctx.scope.account.clone(),
        topic,
        failed_events,
        failed_in_flight,
        notification,
        orphaned_roles,
        destinations: ours
            .iter()
            .map(|e| DestinationStatus {
                destination: e.destination.clone(),
                key_prefix: e.settings.key_prefix.clone(),
                function: e.function.clone(),
                code_sha256: e.code_sha256.clone(),
                last_modified: e.last_modified.clone(),
                runs_this_binary: ctx.code.as_ref().map(|code| e.code_sha256 == code.sha256),
            })
            .collect(),
        drift,
    })
}
