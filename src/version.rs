//! What `s3fan --version` says: the crate version, the git revision and the
//! target triple it was built from (recorded by build.rs). The target matters:
//! the binary packages itself as the Lambda function's bootstrap.

pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (rev ",
    env!("S3FAN_GIT_REV"),
    ", ",
    env!("S3FAN_TARGET"),
    ")"
);
