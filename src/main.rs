//! s3fan: one binary that fans new objects out from one S3 bucket to many.
//!
//! It has two modes. Inside AWS Lambda it is the replication handler: Lambda
//! starts it as the `bootstrap` of a custom runtime, and it copies each new
//! object to its destination bucket. Anywhere else it is the command line
//! tool that packages itself into that function.

mod aws;
mod cli;
mod cost;
mod deploy;
mod failures;
mod fanout;
mod handler;
mod lambda;
mod package;
mod progress;
mod report;
mod settings;
mod stop;
mod sync;
#[cfg(test)]
mod test_endpoint;
mod version;

use std::process::ExitCode;

fn main() -> ExitCode {
    if lambda::runs_inside_lambda() {
        lambda::main()
    } else {
        cli::main()
    }
}
