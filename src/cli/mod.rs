//! The command line (laptop and CI mode): the commands, and one way each
//! runs, prints its report and exits.

pub mod args;
mod config_file;
mod confirm;
mod dest_variable;
mod generate;
mod init;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use self::args::{
    BackfillArgs, DeployArgs, DestinationsArgs, DestroyArgs, FanoutArgs, InitArgs, Output,
    TargetArgs, target_spec,
};
use self::config_file::ConfigFile;
use crate::deploy;
use crate::fanout::DeployError;
use crate::fanout::spec::Spec;
use crate::handler::limits::CopySettings;
use crate::package::{Bootstrap, Code};
use crate::report::{Report, Verdict, exit};
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
    /// Log what s3fan does on stderr (RUST_LOG, when set, chooses instead).
    #[arg(long, short = 'v', global = true)]
    verbose: bool,
    /// Print no progress on stderr: only the report, and errors.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Send every AWS call to this endpoint (a local S3, LocalStack),
    /// as AWS_ENDPOINT_URL does.
    #[arg(long, global = true, value_name = "URL")]
    endpoint_url: Option<String>,
    /// Read the fan-out's settings from this file rather than ./s3fan.toml
    /// (`init` writes it there).
    #[arg(long, global = true, value_name = "PATH", env = "S3FAN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Provision (or converge) the fan-out from SRC to every DST.
    Deploy(Box<DeployArgs>),
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
    /// Start a reconcile run now, in AWS, in each destination's function
    /// (deployed with --reconcile-every).
    Reconcile(DestinationsArgs),
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
    /// Write s3fan.toml from the flags given: deploy's flags, which every
    /// command then reads from the file.
    Init(Box<InitArgs>),
    /// Print the completion script for a shell (bash: `source <(s3fan
    /// completions bash)`; see the README for each shell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (s3fan.1), or write one per command into DIR.
    Man {
        /// Write s3fan.1 and s3fan-COMMAND.1 for each command here.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(url) = &cli.endpoint_url {
        // SAFETY: no other thread runs yet (the async runtime starts
        // below); every SDK client reads it, as the aws cli's flag does.
        unsafe { std::env::set_var("AWS_ENDPOINT_URL", url) };
    }
    crate::aws::set_debug(cli.debug);
    crate::progress::set_quiet(cli.quiet);
    let level = match (cli.debug, cli.verbose) {
        (true, _) => Some("debug"),
        (false, true) => Some("info"),
        (false, false) => None,
    };
    if level.is_some() || std::env::var_os("RUST_LOG").is_some() {
        init_log(level.unwrap_or("info"));
    }
    let file = ConfigFile::new(cli.config);
    match cli.command {
        Command::Deploy(args) => run_in_steps(args.output, deploy_command(*args, file)),
        Command::Status(args) => run(args.aws.output, status_command(args, file)),
        Command::Destroy(args) => run_in_steps(args.aws.output, destroy_command(args, file)),
        Command::Backfill(args) => {
            run_in_steps(args.fanout.aws.output, backfill_command(args, file))
        }
        Command::Verify(args) => run_in_steps(args.aws.output, verify_command(args, file)),
        Command::Failures(args) => run(args.aws.output, failures_command(args, file)),
        Command::Retry(args) => run(args.aws.output, retry_command(args, file)),
        Command::Reconcile(args) => run(args.aws.output, reconcile_command(args, file)),
        Command::Package { out, bootstrap } => {
            emit(Output::Text, package(&out, bootstrap.as_deref()))
        }
        Command::Init(args) => emit(args.output, init::init(*args, &file)),
        Command::Completions { shell } => generate::completions(shell),
        Command::Man { dir } => generate::man(dir.as_deref()),
    }
}

/// The SDK's log (and s3fan's) as text on stderr, at the level RUST_LOG
/// asks, else `level` (`--debug`: debug, `--verbose`: info). As in the
/// handler, the SDK's TRACE lines are dropped whatever RUST_LOG says: they
/// print signed requests, session tokens included.
fn init_log(level: &str) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let no_credentials = tracing_subscriber::filter::filter_fn(crate::aws::keeps_credentials_out);
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter)
        .with_filter(no_credentials);
    tracing_subscriber::registry().with(lines).init();
}

/// Why a command stopped before it had a report.
enum Stop {
    /// The flags, `s3fan.toml` or the environment ask for something that
    /// cannot be: exit 2, like clap's own usage errors.
    Usage(String),
    /// Anything else: AWS refused or could not be reached (exit 1).
    Failed(String),
}

impl From<String> for Stop {
    fn from(message: String) -> Stop {
        Stop::Failed(message)
    }
}

/// A usage error, for `map_err`.
fn usage(err: impl std::fmt::Display) -> Stop {
    Stop::Usage(err.to_string())
}

/// How a command takes Ctrl-C (see `stop`).
#[derive(Clone, Copy, PartialEq)]
enum OnCtrlC {
    /// It reads, or its work is one request: it stops at once.
    StopAtOnce,
    /// It checks `stop::asked` between its steps, finishes what is under
    /// way and reports what it did (within `GRACE`).
    FinishWhatIsUnderWay,
}

/// How long, after a first Ctrl-C, the work under way may take to finish.
const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs one command on an async runtime, then prints what it returned.
fn run<R: Report>(output: Output, command: impl Future<Output = Result<R, Stop>>) -> ExitCode {
    run_taking(OnCtrlC::StopAtOnce, output, command)
}

/// `run`, for a command that stops between its steps.
fn run_in_steps<R: Report>(
    output: Output,
    command: impl Future<Output = Result<R, Stop>>,
) -> ExitCode {
    run_taking(OnCtrlC::FinishWhatIsUnderWay, output, command)
}

fn run_taking<R: Report>(
    on_ctrl_c: OnCtrlC,
    output: Output,
    command: impl Future<Output = Result<R, Stop>>,
) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(async {
            let mut command = std::pin::pin!(command);
            tokio::select! {
                result = &mut command => return emit(output, result),
                () = interrupted() => {}
            }
            if on_ctrl_c == OnCtrlC::FinishWhatIsUnderWay {
                crate::stop::ask();
                eprintln!(
                    "interrupted: starting nothing more, finishing what is under way \
                     (up to {} s; Ctrl-C again stops at once)",
                    GRACE.as_secs()
                );
                tokio::select! {
                    result = &mut command => {
                        // The report says what was done and what was not.
                        emit(output, result);
                        eprintln!(
                            "interrupted: what was done stays done; running the same \
                             command again goes on from there"
                        );
                        return ExitCode::from(exit::INTERRUPTED);
                    }
                    () = interrupted() => {}
                    () = tokio::time::sleep(GRACE) => {}
                }
            }
            // Dropping the command stops its requests: every command
            // converges, so running it again goes on from here.
            eprintln!(
                "interrupted: nothing more was started; what was done stays done, \
                 and running the same command again goes on from there"
            );
            ExitCode::from(exit::INTERRUPTED)
        }),
        Err(err) => emit::<Packaged>(
            output,
            Err(Stop::Failed(format!(
                "cannot start the async runtime: {err}"
            ))),
        ),
    }
}

/// Ctrl-C (SIGINT). Where it cannot be watched, never.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Prints the report as text or JSON, or the error (on stderr, and as
/// `{"ok": false, "error": ...}` for JSON readers), and exits with its
/// status (`report::exit`).
fn emit<R: Report>(output: Output, result: Result<R, Stop>) -> ExitCode {
    let printed = result.and_then(|report| {
        match output {
            Output::Text => print!("{}", report.render_text()),
            Output::Json => println!(
                "{}",
                serde_json::to_string_pretty(&report)
                    .map_err(|err| Stop::Failed(format!("cannot write JSON: {err}")))?
            ),
        }
        Ok(report.verdict())
    });
    let (message, code) = match printed {
        Ok(verdict) => return verdict.exit_code(),
        Err(Stop::Usage(message)) => (message, exit::USAGE),
        Err(Stop::Failed(message)) => (message, exit::FAILURE),
    };
    if output == Output::Json {
        println!("{}", serde_json::json!({"ok": false, "error": message}));
    }
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// A command other than deploy: the fan-out it names, over the file.
fn target(
    source: Option<String>,
    dest: Vec<String>,
    aws: &args::AwsArgs,
    file: &ConfigFile,
) -> Result<Spec, Stop> {
    target_spec(source, dest, aws, file.load().map_err(usage)?).map_err(usage)
}

/// The clap definition of every command, for completions and man pages.
fn definition() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

async fn deploy_command(args: DeployArgs, file: ConfigFile) -> Result<deploy::Report, Stop> {
    let (dry_run, bootstrap) = (args.dry_run, args.bootstrap.clone());
    let confirm = confirm::Confirm::from_flag(args.yes);
    let spec = args
        .settings
        .with_dest_from_environment()
        .and_then(|settings| settings.spec(file.load()?))
        .map_err(usage)?;
    let code = Code::load(bootstrap.as_deref()).map_err(usage)?;
    let approve = |removals: &[_]| confirm.approve("deploy", removals);
    Ok(deploy::deploy(spec, code, dry_run, &approve)
        .await
        .map_err(explain)?)
}

async fn status_command(args: TargetArgs, file: ConfigFile) -> Result<deploy::StatusReport, Stop> {
    let spec = target(args.source, Vec::new(), &args.aws, &file)?;
    // Compares deployed code with this binary where it is a Linux build.
    let code = Code::load(None).ok();
    deploy::status(spec, code)
        .await
        .map_err(|err| Stop::Failed(err.to_string()))
}

async fn destroy_command(args: DestroyArgs, file: ConfigFile) -> Result<deploy::Report, Stop> {
    let spec = target(args.source, args.dest, &args.aws, &file)?;
    let code = Code::load(None).ok();
    let confirm = confirm::Confirm::from_flag(args.yes);
    let approve = |removals: &[_]| confirm.approve("destroy", removals);
    Ok(deploy::destroy(spec, code, args.dry_run, &approve)
        .await
        .map_err(explain)?)
}

/// A backfill's report: copied here, or handed to the deployed functions.
#[derive(Serialize)]
#[serde(untagged)]
enum Backfilled {
    Here(sync::backfill::BackfillReport),
    ViaLambda(sync::via_lambda::ViaLambdaReport),
    ViaBatchOperations(sync::batch_job::BatchReport),
}

impl Report for Backfilled {
    fn render_text(&self) -> String {
        match self {
            Backfilled::Here(report) => report.render_text(),
            Backfilled::ViaLambda(report) => report.render_text(),
            Backfilled::ViaBatchOperations(report) => report.render_text(),
        }
    }

    fn verdict(&self) -> Verdict {
        match self {
            Backfilled::Here(report) => report.verdict(),
            Backfilled::ViaLambda(report) => report.verdict(),
            Backfilled::ViaBatchOperations(report) => report.verdict(),
        }
    }
}

async fn backfill_command(args: BackfillArgs, file: ConfigFile) -> Result<Backfilled, Stop> {
    let FanoutArgs {
        source,
        dest,
        prefix,
        list_concurrency,
        aws,
    } = args.fanout;
    let spec = target(source, dest, &aws, &file)?;
    let objects = match (args.files_from, args.inventory) {
        (Some(path), _) => Some(sync::named::ObjectList::FilesFrom(path)),
        (None, Some(url)) => Some(sync::named::ObjectList::inventory(&url).map_err(Stop::Usage)?),
        (None, None) => None,
    };
    // The same variables tune the copies here as in the function.
    let settings = CopySettings::from_process_env().map_err(Stop::Usage)?;
    let remote = match (args.via_lambda, args.via_batch_operations) {
        (true, _) => Some("--via-lambda"),
        (_, true) => Some("--via-batch-operations"),
        _ => None,
    };
    if let Some(flag) = remote.filter(|_| !spec.destinations.is_empty()) {
        return Err(Stop::Usage(format!(
            "{flag} copies with the deployed functions, to every deployed destination: drop --dest"
        )));
    }
    let report_to = args
        .report_to
        .as_deref()
        .map(sync::batch_job::ReportTo::parse)
        .transpose()
        .map_err(Stop::Usage)?;
    let batch_objects = match (&objects, args.via_batch_operations) {
        (Some(objects), true) => Some(objects.clone()),
        (None, true) => {
            return Err(Stop::Usage(
                "--via-batch-operations copies the objects a manifest names: add \
                        --inventory s3://BUCKET/PATH/manifest.json (an S3 Inventory report) or \
                        --files-from FILE (keys, one per line)"
                    .into(),
            ));
        }
        (_, false) => None,
    };
    let mut fanout = sync::connect(spec, prefix).await.map_err(|err| {
        Stop::Failed(if args.dry_run {
            err.to_string()
        } else {
            explain(err)
        })
    })?;
    fanout.list_concurrency = usize::from(list_concurrency);
    if args.via_lambda {
        let report = sync::via_lambda::backfill(&fanout, args.dry_run).await;
        return Ok(Backfilled::ViaLambda(report));
    }
    if let Some(objects) = batch_objects {
        let request = sync::batch_job::Request {
            objects,
            report_to,
            dry_run: args.dry_run,
        };
        let report = sync::batch_job::backfill(&fanout, &request).await;
        return Ok(Backfilled::ViaBatchOperations(report));
    }
    let options = sync::backfill::Options {
        objects,
        concurrency: usize::from(args.concurrency),
        dry_run: args.dry_run,
        settings,
    };
    Ok(Backfilled::Here(
        sync::backfill::backfill(&fanout, &options).await,
    ))
}

async fn verify_command(
    args: FanoutArgs,
    file: ConfigFile,
) -> Result<sync::verify::VerifyReport, Stop> {
    let spec = target(args.source, args.dest, &args.aws, &file)?;
    let mut fanout = sync::connect(spec, args.prefix)
        .await
        .map_err(|err| Stop::Failed(err.to_string()))?;
    fanout.list_concurrency = usize::from(args.list_concurrency);
    Ok(sync::verify::verify(&fanout).await)
}

async fn failures_command(
    args: TargetArgs,
    file: ConfigFile,
) -> Result<crate::failures::FailuresReport, Stop> {
    let spec = target(args.source, Vec::new(), &args.aws, &file)?;
    crate::failures::failures(spec)
        .await
        .map_err(|err| Stop::Failed(err.to_string()))
}

async fn reconcile_command(
    args: DestinationsArgs,
    file: ConfigFile,
) -> Result<sync::reconcile_now::StartedReport, Stop> {
    let spec = target(args.source, args.dest, &args.aws, &file)?;
    sync::reconcile_now::reconcile_now(spec)
        .await
        .map_err(|err| Stop::Failed(err.to_string()))
}

async fn retry_command(
    args: TargetArgs,
    file: ConfigFile,
) -> Result<crate::failures::RetryReport, Stop> {
    let spec = target(args.source, Vec::new(), &args.aws, &file)?;
    let settings = CopySettings::from_process_env().map_err(Stop::Usage)?;
    crate::failures::retry(spec, settings)
        .await
        .map_err(|err| Stop::Failed(err.to_string()))
}

/// Errors before any change say so: nothing needs cleaning up.
fn explain(err: DeployError) -> String {
    format!("{err}\nNothing was changed.")
}

/// What `package` wrote.
#[derive(Serialize)]
struct Packaged {
    out: PathBuf,
    bytes: usize,
    bootstrap: PathBuf,
    architecture: &'static str,
    glibc: Option<String>,
}

impl Report for Packaged {
    fn render_text(&self) -> String {
        let glibc = self
            .glibc
            .as_ref()
            .map_or("no glibc (static)".to_owned(), |v| {
                format!("needs glibc {v}")
            });
        format!(
            "wrote {} ({} bytes): {} as bootstrap, {}, {glibc}\n",
            self.out.display(),
            self.bytes,
            self.bootstrap.display(),
            self.architecture
        )
    }

    fn verdict(&self) -> Verdict {
        Verdict::Done
    }
}

fn package(out: &Path, bootstrap: Option<&Path>) -> Result<Packaged, Stop> {
    let bootstrap = Bootstrap::load(bootstrap).map_err(usage)?;
    let zip = bootstrap.zip().map_err(|err| err.to_string())?;
    std::fs::write(out, &zip).map_err(|err| format!("cannot write {}: {err}", out.display()))?;
    Ok(Packaged {
        out: out.to_path_buf(),
        bytes: zip.len(),
        bootstrap: bootstrap.path,
        architecture: bootstrap.architecture.lambda_name(),
        glibc: bootstrap.glibc.map(|v| v.to_string()),
    })
}
