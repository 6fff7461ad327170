//! One Lambda function per destination: the s3fan binary as the `bootstrap`
//! of a provided.al2023 function, its destination in `S3FAN_DEST_BUCKET`.
//! Code is updated only when CodeSha256 differs, configuration only when it
//! differs, and each update waits for the previous one to finish.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture as LambdaArchitecture, Environment, FunctionCode, LastUpdateStatus, Runtime,
};

use super::plan::{Action, Change, Diff, Kind};
use crate::fanout::names::{function_name, role_name};
use crate::fanout::{Context, DeployError, aws_failure, gone_is_fine, is_code};
use crate::settings::{Deployed as Recorded, FunctionSettings};

const RUNTIME: Runtime = Runtime::Providedal2023;
const HANDLER: &str = "bootstrap";

#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    Absent,
    Present(Box<Deployed>),
}

/// What matters of a deployed function.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployed {
    pub role: String,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub memory: Option<i32>,
    pub timeout: Option<i32>,
    pub environment: HashMap<String, String>,
    pub architecture: Option<String>,
    pub code_sha256: String,
    pub last_modified: Option<String>,
    /// Lambda's reserved concurrency, if the function has one.
    pub reserved_concurrency: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub create: bool,
    pub code: bool,
    pub config: bool,
    /// Set (or remove) the reserved concurrency.
    pub concurrency: bool,
    pub delete: bool,
}

impl Op {
    const NOTHING: Op = Op {
        create: false,
        code: false,
        config: false,
        concurrency: false,
        delete: false,
    };
}

pub async fn observe(ctx: &Context, destination: &str) -> Result<Observed, DeployError> {
    observe_named(ctx, &function_name(destination)).await
}

pub async fn observe_named(ctx: &Context, name: &str) -> Result<Observed, DeployError> {
    let out = match ctx.lambda.get_function().function_name(name).send().await {
        Ok(out) => out,
        Err(err) if is_code(&err, &["ResourceNotFoundException"]) => return Ok(Observed::Absent),
        Err(err) => {
            return Err(aws_failure(
                format!("cannot read Lambda function {name}"),
                &err,
            ));
        }
    };
    let Some(config) = out.configuration else {
        return Err(DeployError(format!(
            "Lambda returned function {name} without its configuration; run the command again"
        )));
    };
    Ok(Observed::Present(Box::new(Deployed {
        role: config.role.unwrap_or_default(),
        runtime: config.runtime.map(|r| r.as_str().to_owned()),
        handler: config.handler,
        memory: config.memory_size,
        timeout: config.timeout,
        environment: config
            .environment
            .and_then(|e| e.variables)
            .unwrap_or_default(),
        architecture: config
            .architectures
            .and_then(|a| a.first().map(|a| a.as_str().to_owned())),
        code_sha256: config.code_sha256.unwrap_or_default(),
        last_modified: config.last_modified,
        reserved_concurrency: out
            .concurrency
            .and_then(|c| c.reserved_concurrent_executions),
    })))
}

/// What deploy tells the function of `destination`.
fn desired_settings(ctx: &Context, destination: &str) -> FunctionSettings {
    ctx.function_settings(destination)
}

fn desired_environment(ctx: &Context, destination: &str) -> HashMap<String, String> {
    desired_settings(ctx, destination).to_env()
}

/// Plans the function; refuses to take over a function of the same name
/// that is not this fan-out's.
pub fn plan(
    ctx: &Context,
    destination: &str,
    observed: &Observed,
) -> Result<Change<Op>, DeployError> {
    let name = function_name(destination);
    let mut diff = Vec::new();
    let (action, op, detail) = match observed {
        Observed::Absent => (
            Action::Create,
            Op {
                create: true,
                concurrency: ctx.spec.reserved_concurrency.is_some(),
                ..Op::NOTHING
            },
            ctx.code.as_ref().map_or_else(String::new, |code| {
                format!(
                    "{}, {} bytes zipped",
                    code.architecture.lambda_name(),
                    code.zip.len()
                )
            }),
        ),
        Observed::Present(deployed) => {
            let owner = FunctionSettings::from_env(&deployed.environment).source;
            if owner.as_ref() != Some(&ctx.spec.source) {
                return Err(DeployError(match owner {
                    Some(other) => format!(
                        "Lambda function {name} (for destination {destination}) already belongs to \
                         s3fan's fan-out from bucket {other}; a destination bucket can be served \
                         by one source only. Remove it there first (s3fan destroy --source {other} \
                         --dest {destination})"
                    ),
                    None => format!(
                        "a Lambda function named {name} already exists and was not made by s3fan; \
                         s3fan will not take it over. Delete or rename it, then run deploy again"
                    ),
                }));
            }
            // Without a build to compare (status on a Mac), code is not drift.
            let code = ctx.code.as_ref().is_some_and(|code| {
                deployed.code_sha256 != code.sha256
                    || deployed.architecture.as_deref() != Some(code.architecture.lambda_name())
            });
            let changed = configuration_changes(ctx, destination, deployed);
            let config = changed != Configuration::default();
            let concurrency = deployed.reserved_concurrency != ctx.spec.reserved_concurrency;
            if let Some(built) = ctx.code.as_ref().filter(|_| code) {
                diff.extend(Diff::of(
                    "code sha256",
                    deployed.code_sha256.as_str(),
                    built.sha256.as_str(),
                ));
                diff.extend(Diff::of(
                    "architecture",
                    deployed.architecture.clone(),
                    built.architecture.lambda_name(),
                ));
            }
            diff.extend(changed.changes);
            diff.extend(Diff::of(
                "reserved concurrency",
                deployed.reserved_concurrency,
                ctx.spec.reserved_concurrency,
            ));
            if diff.is_empty() {
                diff = changed.record;
            }
            let detail = if code { "code" } else { "" }.to_owned();
            let action = if code || config || concurrency {
                Action::Update
            } else {
                Action::Unchanged
            };
            (
                action,
                Op {
                    code,
                    config,
                    concurrency,
                    ..Op::NOTHING
                },
                detail,
            )
        }
    };
    Ok(Change {
        kind: Kind::Function,
        name,
        destination: Some(destination.to_owned()),
        action,
        detail,
        diff,
        op,
    })
}

/// Each field of the function's configuration that differs from what
/// deploy would set, with its value now and the one deploy would set.
fn configuration_changes(ctx: &Context, destination: &str, deployed: &Deployed) -> Configuration {
    let mut changes: Vec<Diff> = [
        Diff::of(
            "role",
            deployed.role.as_str(),
            ctx.scope.role_arn(&role_name(destination)),
        ),
        Diff::of("runtime", deployed.runtime.clone(), RUNTIME.as_str()),
        Diff::of("handler", deployed.handler.clone(), HANDLER),
        Diff::of("memory", deployed.memory, ctx.spec.memory),
        Diff::of("timeout", deployed.timeout, ctx.spec.timeout),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Variable by variable, less the record of the deployed settings.
    let settings = desired_settings(ctx, destination);
    let wanted = settings.to_env();
    let without_record = FunctionSettings {
        deployed: Recorded::default(),
        ..settings
    }
    .to_env();
    let mut names: Vec<&String> = wanted
        .keys()
        .chain(deployed.environment.keys())
        .filter(|name| !wanted.contains_key(*name) || without_record.contains_key(*name))
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        changes.extend(Diff::of(
            format!("environment {name}"),
            deployed.environment.get(name).cloned(),
            wanted.get(name).cloned(),
        ));
    }
    let mut records: Vec<&String> = wanted
        .keys()
        .filter(|name| !without_record.contains_key(*name))
        .collect();
    records.sort();
    let record = records
        .into_iter()
        .filter_map(|name| {
            Diff::of(
                format!("environment {name}"),
                deployed.environment.get(name).cloned(),
                wanted.get(name).cloned(),
            )
        })
        .collect();
    Configuration { changes, record }
}

/// How a function's configuration differs from the wanted one.
#[derive(Debug, Default, PartialEq)]
struct Configuration {
    /// Field by field, and variable by variable.
    changes: Vec<Diff>,
    /// The record of the deployed settings, which follows the fields: it
    /// is named only when nothing else differs (a function deployed before
    /// the record existed), so a plan never says a change twice.
    record: Vec<Diff>,
}

pub fn plan_delete(name: &str, destination: &str, observed: &Observed) -> Change<Op> {
    Change::removal(
        Kind::Function,
        name.to_owned(),
        Some(destination.to_owned()),
        matches!(observed, Observed::Present(_)),
        Op {
            delete: true,
            ..Op::NOTHING
        },
        Op::NOTHING,
    )
}

pub async fn apply(
    ctx: &Context,
    name: &str,
    destination: &str,
    op: Op,
) -> Result<(), DeployError> {
    if op.delete {
        let result = ctx
            .lambda
            .delete_function()
            .function_name(name)
            .send()
            .await;
        return gone_is_fine(
            result,
            &["ResourceNotFoundException"],
            format!("cannot delete Lambda function {name}"),
        );
    }
    if op.create {
        create(ctx, name, destination).await?;
    }
    if op.code {
        ctx.lambda
            .update_function_code()
            .function_name(name)
            .zip_file(Blob::new(ctx.code()?.zip.clone()))
            .architectures(architecture(ctx)?)
            .send()
            .await
            .map_err(|err| {
                aws_failure(
                    format!("cannot update the code of Lambda function {name}"),
                    &err,
                )
            })?;
        wait_until_updated(ctx, name).await?;
    }
    if op.config {
        ctx.lambda
            .update_function_configuration()
            .function_name(name)
            .role(ctx.scope.role_arn(&role_name(destination)))
            .runtime(RUNTIME)
            .handler(HANDLER)
            .memory_size(ctx.spec.memory)
            .timeout(ctx.spec.timeout)
            .environment(environment(ctx, destination))
            .send()
            .await
            .map_err(|err| {
                aws_failure(
                    format!("cannot update the configuration of Lambda function {name}"),
                    &err,
                )
            })?;
        wait_until_updated(ctx, name).await?;
    }
    if op.concurrency {
        set_reserved_concurrency(ctx, name).await?;
    }
    Ok(())
}

/// `--reserved-concurrency`, or none when it is not given.
async fn set_reserved_concurrency(ctx: &Context, name: &str) -> Result<(), DeployError> {
    match ctx.spec.reserved_concurrency {
        Some(n) => ctx
            .lambda
            .put_function_concurrency()
            .function_name(name)
            .reserved_concurrent_executions(n)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| {
                aws_failure(
                    format!(
                        "cannot reserve a concurrency of {n} for Lambda function {name} (the \
                         account must keep 100 unreserved: lower --reserved-concurrency, or ask \
                         AWS for a higher concurrency quota)"
                    ),
                    &err,
                )
            }),
        None => {
            let result = ctx
                .lambda
                .delete_function_concurrency()
                .function_name(name)
                .send()
                .await;
            gone_is_fine(
                result,
                &["ResourceNotFoundException"],
                format!("cannot remove the reserved concurrency of Lambda function {name}"),
            )
        }
    }
}

fn architecture(ctx: &Context) -> Result<LambdaArchitecture, DeployError> {
    Ok(LambdaArchitecture::from(
        ctx.code()?.architecture.lambda_name(),
    ))
}

fn environment(ctx: &Context, destination: &str) -> Environment {
    Environment::builder()
        .set_variables(Some(desired_environment(ctx, destination)))
        .build()
}

/// A new role takes seconds to become assumable by Lambda; until then
/// CreateFunction fails with InvalidParameterValueException. Retry with
/// backoff for about a minute, then fail with the reason.
async fn create(ctx: &Context, name: &str, destination: &str) -> Result<(), DeployError> {
    let mut delay = Duration::from_millis(500);
    let mut waited = Duration::ZERO;
    loop {
        let mut create = ctx
            .lambda
            .create_function()
            .function_name(name)
            .description(format!(
                "s3fan: copies new objects from s3://{} to s3://{destination}",
                ctx.spec.source
            ))
            .role(ctx.scope.role_arn(&role_name(destination)))
            .runtime(RUNTIME)
            .handler(HANDLER)
            .architectures(architecture(ctx)?)
            .memory_size(ctx.spec.memory)
            .timeout(ctx.spec.timeout)
            .environment(environment(ctx, destination))
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(ctx.code()?.zip.clone()))
                    .build(),
            );
        for (key, value) in ctx.tags(Some(destination)) {
            create = create.tags(key, value);
        }
        match create.send().await {
            Ok(_) => return Ok(()),
            Err(err)
                if is_code(&err, &["InvalidParameterValueException"])
                    && crate::fanout::message_of(&err).contains("role")
                    && waited < Duration::from_secs(60) =>
            {
                tokio::time::sleep(delay).await;
                waited += delay;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
            Err(err) => {
                return Err(aws_failure(
                    format!(
                        "cannot create Lambda function {name} (after waiting {}s for its new role)",
                        waited.as_secs()
                    ),
                    &err,
                ));
            }
        }
    }
}

/// Lambda refuses a second update while one is in progress.
async fn wait_until_updated(ctx: &Context, name: &str) -> Result<(), DeployError> {
    for _ in 0..300 {
        let config = ctx
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(|err| aws_failure(format!("cannot read Lambda function {name}"), &err))?;
        match config.last_update_status() {
            Some(LastUpdateStatus::InProgress) => tokio::time::sleep(Duration::from_secs(1)).await,
            Some(LastUpdateStatus::Failed) => {
                return Err(DeployError(format!(
                    "the update of Lambda function {name} failed: {}",
                    config
                        .last_update_status_reason()
                        .unwrap_or("no reason given")
                )));
            }
            _ => return Ok(()),
        }
    }
    Err(DeployError(format!(
        "Lambda function {name} was still updating after 5 minutes; run deploy again to finish"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::spec::{DestinationSpec, Spec};

    /// The function's environment is readable by anyone with
    /// lambda:GetFunctionConfiguration: it must hold names and switches only,
    /// never a credential (the function gets its own from its role).
    #[test]
    fn the_environment_holds_names_and_switches_and_nothing_else() {
        let mut spec = Spec::for_test("src", &["dst"]);
        spec.prefix = Some("in/".into());
        spec.suffix = Some(".jpg".into());
        spec.replicate_deletes = true;
        spec.metrics = true;
        spec.destinations[0] = DestinationSpec {
            key_prefix: Some("copies/".into()),
            storage_class: Some("GLACIER_IR".into()),
            kms_key: Some("alias/backups".into()),
            account: Some("210987654321".into()),
            ..DestinationSpec::new("dst")
        };
        spec.tags.insert("team".into(), "data".into());
        spec.request_payer = true;
        let regions = [("dst".to_owned(), "eu-west-1".to_owned())].into();
        let ctx = Context::offline_in(spec, "http://127.0.0.1:9", regions);
        let expected = [
            ("S3FAN_DEST_BUCKET", "dst"),
            ("S3FAN_SOURCE_BUCKET", "src"),
            ("S3FAN_KEY_PREFIX", "in/"),
            ("S3FAN_KEY_SUFFIX", ".jpg"),
            ("S3FAN_REPLICATE_DELETES", "true"),
            ("S3FAN_METRICS", "true"),
            ("S3FAN_DEST_PREFIX", "copies/"),
            ("S3FAN_STORAGE_CLASS", "GLACIER_IR"),
            ("S3FAN_REQUEST_PAYER", "requester"),
            ("S3FAN_DEST_REGION", "eu-west-1"),
            ("S3FAN_DEST_KMS_KEY", "alias/backups"),
            ("S3FAN_DEST_ACCOUNT", "210987654321"),
            (
                "S3FAN_DEPLOYED",
                "memory=128 timeout=300 retry_attempts=2 max_event_age=21600",
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(desired_environment(&ctx, "dst"), HashMap::from(expected));
    }

    #[test]
    fn the_record_of_the_deployed_settings_reads_back_what_was_written() {
        let mut spec = Spec::for_test("src", &["dst"]);
        spec.memory = 256;
        spec.timeout = 60;
        spec.retry_attempts = 0;
        spec.max_event_age = 3600;
        spec.reserved_concurrency = Some(20);
        let ctx = Context::offline(spec, "http://127.0.0.1:9");
        let environment = desired_environment(&ctx, "dst");
        assert_eq!(
            FunctionSettings::from_env(&environment).deployed,
            Recorded {
                memory: Some(256),
                timeout: Some(60),
                retry_attempts: Some(0),
                max_event_age: Some(3600),
                reserved_concurrency: Some(20),
                lag_slo: None,
            }
        );
        assert_eq!(
            FunctionSettings::from_env(&HashMap::new()).deployed,
            Recorded::default(),
            "a function of an older s3fan has no record"
        );
    }

    #[test]
    fn a_changed_field_is_named_with_its_value_now_and_the_wanted_one() {
        let ctx = Context::offline(Spec::for_test("src", &["dst"]), "http://127.0.0.1:9");
        let mut deployed = Deployed {
            role: ctx.scope.role_arn(&role_name("dst")),
            runtime: Some(RUNTIME.as_str().to_owned()),
            handler: Some(HANDLER.to_owned()),
            memory: Some(128),
            timeout: Some(300),
            environment: desired_environment(&ctx, "dst"),
            architecture: None,
            code_sha256: String::new(),
            last_modified: None,
            reserved_concurrency: None,
        };
        assert_eq!(
            configuration_changes(&ctx, "dst", &deployed),
            Configuration::default()
        );
        deployed.memory = Some(1024);
        deployed
            .environment
            .insert("S3FAN_KEY_PREFIX".into(), "in/".into());
        let rendered: Vec<String> = configuration_changes(&ctx, "dst", &deployed)
            .changes
            .iter()
            .map(Diff::render)
            .collect();
        assert_eq!(
            rendered,
            [
                "      ~ memory 1024 -> 128",
                "      ~ environment S3FAN_KEY_PREFIX \"in/\" -> (none)"
            ]
        );
        // A function of an older s3fan, without the record: only the
        // record differs, and it alone is what an update would change.
        deployed.environment = desired_environment(&ctx, "dst");
        deployed.environment.remove("S3FAN_DEPLOYED");
        deployed.memory = Some(128);
        let older = configuration_changes(&ctx, "dst", &deployed);
        assert_eq!(older.changes, []);
        assert_eq!(
            older
                .record
                .iter()
                .map(|d| &d.attribute)
                .collect::<Vec<_>>(),
            ["environment S3FAN_DEPLOYED"]
        );
    }
}
