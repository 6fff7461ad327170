//! The command line (laptop and CI mode): clap definitions and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::package::Bootstrap;

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Package { out, bootstrap } => package(&out, bootstrap.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn package(out: &std::path::Path, bootstrap: Option<&std::path::Path>) -> Result<(), String> {
    let bootstrap = Bootstrap::load(bootstrap).map_err(|err| err.to_string())?;
    let zip = bootstrap.zip().map_err(|err| err.to_string())?;
    std::fs::write(out, &zip).map_err(|err| format!("cannot write {}: {err}", out.display()))?;
    println!(
        "wrote {} ({} bytes): {} as bootstrap, {}",
        out.display(),
        zip.len(),
        bootstrap.path.display(),
        bootstrap.architecture.lambda_name()
    );
    Ok(())
}
