//! Every end-to-end test, in one test binary with a module per feature (as
//! ripgrep's tests/ are), so that the harness, the SDK clients and the
//! local AWS are built and started once per test run. Each test runs the
//! release binary as a user runs it, against the local AWS, whose Lambda
//! executes that same binary as every function's `bootstrap`.

mod common;

mod alarms;
mod arm64;
mod bad_input;
mod chains;
mod changes;
mod cli;
mod conventions;
mod cost;
mod deploy;
mod exit_codes;
mod faults;
mod handler;
mod progress;
mod reconcile;
mod secrets;
mod sync;
