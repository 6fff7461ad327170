//! Laptop and CI mode: provision, inspect and remove one fan-out.
//!
//! Every command reads what exists, plans (a list of changes, pure once the
//! state is read), then applies idempotent steps. Each AWS resource lives in
//! one module with the same shape: `observe`, `plan`, `apply`.

mod alarm;
mod alarm_topic;
pub(crate) mod batch_role;
mod converge;
mod cost;
mod dest_policy;
mod destroy;
mod diff;
mod encryption;
mod engine;
mod function;
mod health;
mod invoke_config;
mod notification;
mod permission;
pub mod plan;
mod policy;
pub(crate) mod queue;
mod report;
mod role;
mod schedule;
mod status;
mod subscription;
mod topic;
mod uploads;

pub use converge::deploy;
pub use destroy::destroy;
pub use report::Report;
pub use status::{StatusReport, status};
