//! Laptop and CI mode: provision, inspect and remove one fan-out.
//!
//! Every command reads what exists, plans (a list of changes, pure once the
//! state is read), then applies idempotent steps. Each AWS resource lives in
//! one module with the same shape: `observe`, `plan`, `apply`.

mod context;
mod converge;
mod dest_policy;
mod destroy;
mod encryption;
mod engine;
mod error;
mod function;
pub mod inventory;
mod invoke_config;
pub mod names;
mod notification;
mod permission;
pub mod plan;
mod policy;
pub(crate) mod queue;
mod report;
mod role;
pub mod spec;
mod status;
mod subscription;
mod topic;

pub use context::{Code, Context, destination_regions};
pub use converge::deploy;
pub use destroy::destroy;
pub(crate) use error::{DeployError, aws_failure, gone_is_fine, is_code, message_of};
pub use status::{adopt_deployed, status};
