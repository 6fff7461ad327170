//! What every command shares, whatever it does to a fan-out: what the user
//! asked for (`spec`), the names s3fan gives what it makes (`names`), where
//! it runs and with which clients (`context`), the one error of every AWS
//! call (`error`), and what is deployed (`inventory`).

pub mod context;
pub mod error;
pub mod inventory;
pub mod names;
pub mod spec;

pub use context::{Context, Session, find_regions};
pub(crate) use error::{DeployError, aws_failure, gone_is_fine, is_code, message_of};
