//! The one error of every command that talks to AWS: what was being done
//! and what AWS said, with the way out when the cause is not the resource
//! (AWS not reached, credentials refused). Also the small questions every
//! resource asks of an SDK error.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// A failure with its context: what was being done, and what AWS said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeployError(pub String);

/// `cannot <what>: <Code>: <message>`, or the transport failure in full.
pub(crate) fn aws_failure<E, R>(what: impl std::fmt::Display, err: &SdkError<E, R>) -> DeployError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => crate::aws::sdk_error_sentence(err),
    };
    DeployError(format!("{what}: {detail}{}", what_to_do(err)))
}

/// Codes with which AWS refuses the credentials themselves, whatever the call.
const REFUSED_CREDENTIALS: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
];

/// The way out of failures that are not about the resource at all: AWS not
/// reached, or the credentials refused.
fn what_to_do<E, R>(err: &SdkError<E, R>) -> &'static str
where
    E: ProvideErrorMetadata,
{
    if matches!(
        err,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
    ) {
        "; AWS did not answer: check the network connection, --region, and \
         AWS_ENDPOINT_URL if it is set"
    } else if is_code(err, REFUSED_CREDENTIALS) {
        "; AWS refused these credentials (expired, revoked or mistyped): refresh \
         them (`aws sso login`, new temporary credentials) or choose others with \
         --profile or AWS_PROFILE"
    } else {
        ""
    }
}

pub(crate) fn is_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>, codes: &[&str]) -> bool {
    err.code().is_some_and(|code| codes.contains(&code))
}

/// A delete whose target is already gone (one of the `missing` codes) has
/// done its job: removals stay idempotent.
pub(crate) fn gone_is_fine<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    missing: &[&str],
    what: impl std::fmt::Display,
) -> Result<(), DeployError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(()),
        Err(err) if is_code(&err, missing) => Ok(()),
        Err(err) => Err(aws_failure(what, &err)),
    }
}

pub(crate) fn message_of<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> String {
    err.message().unwrap_or_default().to_owned()
}
