//! The command line (laptop and CI mode): clap definitions and dispatch.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::deploy::spec::{self, Flags, Spec};
use crate::deploy::{self, Code, DeployError};
use crate::handler::limits::CopySettings;
use crate::package::Bootstrap;
use crate::sync;

#[derive(Parser)]
#[command(
    name = "s3fan",
    version = crate::version::LONG,
    about = "Fan out new objects from one S3 bucket to many",
    long_about = "Fan out new objects from one S3 bucket to many.\n\n\
        s3fan is one binary: on your machine it packages and deploys itself; \
        inside AWS Lambda the same binary is the function that copies each new \
        object, server-side, to its destination bucket.",
    arg_required_else_help = true
)]
struct Cli {
    /// Show the raw detail of errors, and the AWS SDK's own log on stderr.
    #[arg(long, global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Provision (or converge) the fan-out from SRC to every DST.
    Deploy(DeployArgs),
    /// Show what is deployed for SRC and how it differs from what deploy would make.
    Status(TargetArgs),
    /// Remove what deploy made for SRC (or only the given destinations).
    Destroy(DestroyArgs),
    /// Copy every existing object that is missing or different in a destination.
    Backfill(BackfillArgs),
    /// Compare SRC with its destinations by key, size and ETag.
    Verify(FanoutArgs),
    /// List the events that failed every retry (kept in SRC-fanout-failures).
    Failures(TargetArgs),
    /// Copy the failed events again; each message is deleted once its copy succeeded.
    Retry(TargetArgs),
    /// Write the Lambda zip: this executable (or --bootstrap) as `bootstrap`.
    Package {
        /// Where to write the zip.
        #[arg(long, default_value = "s3fan.zip")]
        out: PathBuf,
        /// A Linux build of s3fan to package instead of the running one
        /// (needed when running s3fan on macOS or Windows).
        #[arg(long, value_name = "PATH")]
        bootstrap: Option<PathBuf>,
    },
}

#[derive(Args)]
struct AwsArgs {
    /// AWS region (default: the source bucket's; it must match it).
    #[arg(long)]
    region: Option<String>,
    /// Named profile from the AWS config files.
    #[arg(long)]
    profile: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Args)]
struct DeployArgs {
    /// The bucket whose new objects are copied.
    #[arg(long, value_name = "SRC")]
    source: Option<String>,
    /// A bucket that receives a copy of every new object (repeat for more).
    #[arg(long = "dest", value_name = "DST")]
    dest: Vec<String>,
    /// Function memory in MB [default: 128].
    #[arg(long)]
    memory: Option<i32>,
    /// Function timeout in seconds [default: 300].
    #[arg(long)]
    timeout: Option<i32>,
    /// Only keys starting with this are copied.
    #[arg(long)]
    prefix: Option<String>,
    /// Only keys ending with this are copied.
    #[arg(long)]
    suffix: Option<String>,
    /// Also delete from every destination what is deleted from the source.
    #[arg(long)]
    replicate_deletes: bool,
    /// Lambda's retries of a failed event before it goes to the failure
    /// queue, 0 to 2 [default: 2].
    #[arg(long)]
    retry_attempts: Option<i32>,
    /// Seconds Lambda keeps retrying an event, 60 to 21600 [default: 21600].
    #[arg(long)]
    max_event_age: Option<i32>,
    /// Also write each record's counts, bytes and duration as CloudWatch
    /// metrics (Embedded Metric Format in the function's log; no API calls).
    #[arg(long)]
    metrics: bool,
    /// Write the copies in this S3 storage class (STANDARD_IA, GLACIER_IR,
    /// ...): CLASS for every destination, DST=CLASS for one (repeat).
    #[arg(long = "storage-class", value_name = "[DST=]CLASS")]
    storage_class: Vec<String>,
    /// Encrypt the copies with this KMS key (ARN, ID, alias ARN or
    /// alias/NAME) instead of the destination's default encryption: KEY for
    /// every destination, DST=KEY for one (repeat).
    #[arg(long = "dest-kms-key", value_name = "[DST=]KEY")]
    dest_kms_key: Vec<String>,
    /// The destination is owned by another account: ACCOUNT for every
    /// destination, DST=ACCOUNT for one (repeat). Copies are handed to the
    /// bucket's owner, and deploy prints the bucket policy statement its
    /// owner must add.
    #[arg(long = "dest-account", value_name = "[DST=]ACCOUNT")]
    dest_account: Vec<String>,
    /// Write that statement into each such destination's bucket policy
    /// (when these credentials may), rather than print it.
    #[arg(long)]
    apply_dest_policy: bool,
    /// Say that the requester pays on every object request, as
    /// requester-pays buckets of another account demand.
    #[arg(long)]
    request_payer: bool,
    /// A tag for everything deploy creates (repeat for more).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    tags: Vec<String>,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// A Linux build of s3fan to deploy instead of the running one.
    #[arg(long, value_name = "PATH")]
    bootstrap: Option<PathBuf>,
    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(Args)]
struct TargetArgs {
    /// The fan-out's source bucket.
    #[arg(long, value_name = "SRC")]
    source: Option<String>,
    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(Args)]
struct DestroyArgs {
    /// The fan-out's source bucket.
    #[arg(long, value_name = "SRC")]
    source: Option<String>,
    /// Remove only this destination (repeat for more); default: everything.
    #[arg(long = "dest", value_name = "DST")]
    dest: Vec<String>,
    /// Print what would be removed and change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    aws: AwsArgs,
}

/// Which fan-out, which destinations and which keys: what backfill and
/// verify share.
#[derive(Args)]
struct FanoutArgs {
    /// The source bucket.
    #[arg(long, value_name = "SRC")]
    source: Option<String>,
    /// A destination, as DST or DST:PREFIX (repeat for more); default: the
    /// deployed destinations of SRC.
    #[arg(long = "dest", value_name = "DST")]
    dest: Vec<String>,
    /// Only keys starting with this (within the fan-out's own filter).
    #[arg(long)]
    prefix: Option<String>,
    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(Args)]
struct BackfillArgs {
    #[command(flatten)]
    fanout: FanoutArgs,
    /// Copies at once, per destination.
    #[arg(long, default_value_t = crate::sync::backfill::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..=512))]
    concurrency: u16,
    /// List what would be copied and copy nothing.
    #[arg(long)]
    dry_run: bool,
    /// Copy on Lambda: publish the objects to copy to the fan-out's topic,
    /// as S3 events, and let the deployed functions copy them.
    #[arg(long)]
    via_lambda: bool,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.debug {
        crate::aws::set_debug(true);
        init_debug_log();
    }
    if let Command::Package { out, bootstrap } = &cli.command {
        return finish(package(out, bootstrap.as_deref()), Output::Text);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            return finish(
                Err(format!("cannot start the async runtime: {err}")),
                Output::Text,
            );
        }
    };
    let (result, output) = match cli.command {
        Command::Deploy(args) => {
            let output = args.aws.output;
            (runtime.block_on(deploy_command(args)), output)
        }
        Command::Status(args) => {
            let output = args.aws.output;
            (runtime.block_on(status_command(args)), output)
        }
        Command::Destroy(args) => {
            let output = args.aws.output;
            (runtime.block_on(destroy_command(args)), output)
        }
        Command::Backfill(args) => {
            let output = args.fanout.aws.output;
            (runtime.block_on(backfill_command(args)), output)
        }
        Command::Verify(args) => {
            let output = args.aws.output;
            (runtime.block_on(verify_command(args)), output)
        }
        Command::Failures(args) => {
            let output = args.aws.output;
            (runtime.block_on(failures_command(args)), output)
        }
        Command::Retry(args) => {
            let output = args.aws.output;
            (runtime.block_on(retry_command(args)), output)
        }
        Command::Package { .. } => unreachable!("handled above"),
    };
    finish(result, output)
}

/// `--debug`: the SDK's log (and s3fan's) as text on stderr, at the level
/// RUST_LOG asks (default debug). As in the handler, the SDK's TRACE lines
/// are dropped whatever RUST_LOG says: they print signed requests, session
/// tokens included.
fn init_debug_log() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("debug"));
    let no_credentials = tracing_subscriber::filter::filter_fn(crate::aws::keeps_credentials_out);
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter)
        .with_filter(no_credentials);
    tracing_subscriber::registry().with(lines).init();
}

/// What a command printed, and whether it succeeded.
type Printed = Result<bool, String>;

fn finish(result: Result<bool, String>, output: Output) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            if output == Output::Json {
                println!("{}", serde_json::json!({"ok": false, "error": message}));
            }
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print<T: serde::Serialize>(value: &T, text: String, ok: bool, output: Output) -> Printed {
    match output {
        Output::Text => print!("{text}"),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value)
                .map_err(|err| format!("cannot write JSON: {err}"))?
        ),
    }
    Ok(ok)
}

fn file_config() -> Result<spec::FileConfig, String> {
    let dir = std::env::current_dir()
        .map_err(|err| format!("cannot read the working directory: {err}"))?;
    spec::load_file(&dir).map_err(|err| err.to_string())
}

async fn deploy_command(args: DeployArgs) -> Printed {
    let flags = Flags {
        source: args.source,
        dest: args.dest,
        region: args.aws.region,
        profile: args.aws.profile,
        memory: args.memory,
        timeout: args.timeout,
        prefix: args.prefix,
        suffix: args.suffix,
        replicate_deletes: args.replicate_deletes,
        metrics: args.metrics,
        retry_attempts: args.retry_attempts,
        max_event_age: args.max_event_age,
        tags: args.tags,
        storage_class: args.storage_class,
        dest_kms_key: args.dest_kms_key,
        dest_account: args.dest_account,
        apply_dest_policy: args.apply_dest_policy,
        request_payer: args.request_payer,
    };
    let spec = spec::resolve(flags, file_config()?).map_err(|err| err.to_string())?;
    let code = Code::load(args.bootstrap.as_deref()).map_err(|err| err.0)?;
    let report = deploy::deploy(spec, code, args.dry_run)
        .await
        .map_err(explain)?;
    print(&report, report.render_text(), report.ok, args.aws.output)
}

/// status and destroy name a source, and destinations only to narrow.
fn target_spec(source: Option<String>, dest: Vec<String>, aws: &AwsArgs) -> Result<Spec, String> {
    let file = file_config()?;
    let source = source
        .or(file.source)
        .ok_or_else(|| spec::SpecError::NoSource.to_string())?;
    let source = spec::parse_source(&source).map_err(|err| err.to_string())?;
    spec::check_bucket_name("source", &source).map_err(|err| err.to_string())?;
    let mut destinations = Vec::new();
    let mut key_prefixes = std::collections::BTreeMap::new();
    for text in &dest {
        let (destination, prefix) = spec::parse_destination(text).map_err(|err| err.to_string())?;
        spec::check_bucket_name("destination", &destination).map_err(|err| err.to_string())?;
        if let Some(prefix) = prefix {
            key_prefixes.insert(destination.clone(), prefix);
        }
        destinations.push(destination);
    }
    Ok(Spec {
        source,
        region: aws.region.clone().or(file.region),
        profile: aws.profile.clone().or(file.profile),
        memory: file.memory.unwrap_or(spec::DEFAULT_MEMORY_MB),
        timeout: file.timeout.unwrap_or(spec::DEFAULT_TIMEOUT_SECONDS),
        prefix: file.prefix,
        suffix: file.suffix,
        replicate_deletes: file.replicate_deletes.unwrap_or(false),
        metrics: file.metrics.unwrap_or(false),
        retry_attempts: file.retry_attempts.unwrap_or(spec::DEFAULT_RETRY_ATTEMPTS),
        max_event_age: file
            .max_event_age
            .unwrap_or(spec::DEFAULT_MAX_EVENT_AGE_SECONDS),
        tags: file.tags.unwrap_or_default(),
        // The file's values for the destinations named here; commands that
        // name none take each deployed function's own.
        storage_classes: from_file(spec::STORAGE_CLASS, &destinations, file.storage_class)?,
        dest_kms_keys: from_file(spec::DEST_KMS_KEY, &destinations, file.dest_kms_key)?,
        dest_accounts: from_file(spec::DEST_ACCOUNT, &destinations, file.dest_account)?,
        apply_dest_policy: false,
        request_payer: file.request_payer.unwrap_or(false),
        key_prefixes,
        destinations,
    })
}

/// A per-destination setting of the file, for the destinations named.
fn from_file(
    setting: spec::PerDestination,
    destinations: &[String],
    file: Option<spec::PerDestinationConfig>,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let file = file.map(|values| match values {
        spec::PerDestinationConfig::PerDestination(mut table) => {
            table.retain(|destination, _| destinations.contains(destination));
            spec::PerDestinationConfig::PerDestination(table)
        }
        all => all,
    });
    spec::per_destination(setting, destinations, file, Vec::new()).map_err(|err| err.to_string())
}

async fn status_command(args: TargetArgs) -> Printed {
    let spec = target_spec(args.source, Vec::new(), &args.aws)?;
    // Compares deployed code with this binary where it is a Linux build.
    let code = Code::load(None).ok();
    // Read-only: there is nothing to say about changes.
    let report = deploy::status(spec, code)
        .await
        .map_err(|err| err.to_string())?;
    print(&report, report.render_text(), true, args.aws.output)
}

async fn destroy_command(args: DestroyArgs) -> Printed {
    let spec = target_spec(args.source, args.dest, &args.aws)?;
    let code = Code::load(None).ok();
    let report = deploy::destroy(spec, code, args.dry_run)
        .await
        .map_err(explain)?;
    print(&report, report.render_text(), report.ok, args.aws.output)
}

async fn backfill_command(args: BackfillArgs) -> Printed {
    let FanoutArgs {
        source,
        dest,
        prefix,
        aws,
    } = args.fanout;
    let spec = target_spec(source, dest, &aws)?;
    // The same variables tune the copies here as in the function.
    let settings = CopySettings::from_process_env()?;
    if args.via_lambda && !spec.destinations.is_empty() {
        return Err(
            "--via-lambda copies with the deployed functions, to every deployed destination: \
             drop --dest"
                .into(),
        );
    }
    let fanout = sync::connect(spec, prefix).await.map_err(|err| {
        if args.dry_run {
            err.to_string()
        } else {
            explain(err)
        }
    })?;
    if args.via_lambda {
        let report = sync::via_lambda::backfill(&fanout, args.dry_run).await;
        return print(&report, report.render_text(), report.ok, aws.output);
    }
    let options = sync::backfill::Options {
        concurrency: usize::from(args.concurrency),
        dry_run: args.dry_run,
        settings,
    };
    let report = sync::backfill::backfill(&fanout, &options).await;
    print(&report, report.render_text(), report.ok, aws.output)
}

async fn verify_command(args: FanoutArgs) -> Printed {
    let spec = target_spec(args.source, args.dest, &args.aws)?;
    let fanout = sync::connect(spec, args.prefix)
        .await
        .map_err(|err| err.to_string())?;
    let report = sync::verify::verify(&fanout).await;
    print(&report, report.render_text(), report.ok, args.aws.output)
}

async fn failures_command(args: TargetArgs) -> Printed {
    let spec = target_spec(args.source, Vec::new(), &args.aws)?;
    let report = crate::failures::failures(spec)
        .await
        .map_err(|err| err.to_string())?;
    print(&report, report.render_text(), true, args.aws.output)
}

async fn retry_command(args: TargetArgs) -> Printed {
    let spec = target_spec(args.source, Vec::new(), &args.aws)?;
    let settings = CopySettings::from_process_env()?;
    let report = crate::failures::retry(spec, settings)
        .await
        .map_err(|err| err.to_string())?;
    print(&report, report.render_text(), report.ok, args.aws.output)
}

/// Errors before any change say so: nothing needs cleaning up.
fn explain(err: DeployError) -> String {
    format!("{err}\nNothing was changed.")
}

fn package(out: &Path, bootstrap: Option<&Path>) -> Printed {
    let bootstrap = Bootstrap::load(bootstrap).map_err(|err| err.to_string())?;
    let zip = bootstrap.zip().map_err(|err| err.to_string())?;
    std::fs::write(out, &zip).map_err(|err| format!("cannot write {}: {err}", out.display()))?;
    let glibc = bootstrap.glibc.map_or("no glibc (static)".to_owned(), |v| {
        format!("needs glibc {v}")
    });
    println!(
        "wrote {} ({} bytes): {} as bootstrap, {}, {glibc}",
        out.display(),
        zip.len(),
        bootstrap.path.display(),
        bootstrap.architecture.lambda_name()
    );
    Ok(true)
}
