//! AWS SDK configuration and clients, in one place for both modes, and how
//! an SDK error reads as a sentence.
//!
//! The standard aws-config chain (environment, profiles, SSO, container and
//! instance credentials) with `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>` variables honoured, so the same code runs
//! against AWS and against a local endpoint such as moto.

use std::sync::atomic::{AtomicBool, Ordering};

use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::operation::invoke::InvokeError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

/// Loads the shared SDK configuration; `region` and `profile` override the
/// chain when given.
///
/// A profile named explicitly (`--profile`, or `profile` in s3fan.toml)
/// decides the credentials, whatever the environment holds, as it does for
/// the aws cli. The default chain would take `AWS_ACCESS_KEY_ID` first and
/// never run the profile's `credential_process` or SSO: a deploy or destroy
/// in another account than the one asked for.
pub async fn sdk_config(region: Option<String>, profile: Option<String>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    if let Some(profile) = profile {
        loader = loader
            .credentials_provider(
                ProfileFileCredentialsProvider::builder()
                    .profile_name(&profile)
                    .build(),
            )
            .profile_name(profile);
    }
    loader.load().await
}

/// Hands `payload` (a JSON event) to `function` as an asynchronous
/// invocation, which Lambda queues and answers at once: how a reconcile run
/// starts (`s3fan reconcile`), goes on with its next slice or resumes after
/// a failure (`s3fan retry`), and how a copy too large for one invocation
/// hands itself on.
pub async fn invoke_async(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    payload: Vec<u8>,
) -> Result<(), aws_sdk_lambda::error::SdkError<InvokeError, HttpResponse>> {
    lambda
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(payload))
        .send()
        .await
        .map(|_| ())
}

/// An S3 client for a bucket in `region`, otherwise as `config` says: S3
/// answers a request sent to another region than the bucket's with 301.
pub fn s3_client_in(config: &SdkConfig, region: &str) -> aws_sdk_s3::Client {
    s3_client(
        &config
            .to_builder()
            .region(Region::new(region.to_owned()))
            .build(),
    )
}

/// An S3 client. Against a custom endpoint, path-style addressing: the SDK
/// would otherwise put a dotted bucket name (`dst.two`) into the host name.
/// Real AWS needs no override.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint =
        config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom_endpoint)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// An S3 Control client (Batch Operations jobs). On a custom endpoint (a
/// local AWS) the endpoint is used as given: S3 Control's endpoint rules put
/// the account in front of the host (`123456789012.127.0.0.1:5000`), which
/// no local server can be reached at. The account still travels in the
/// `x-amz-account-id` header, as on AWS. Real AWS needs no override.
pub fn s3control_client(config: &SdkConfig) -> aws_sdk_s3control::Client {
    let custom = std::env::var("AWS_ENDPOINT_URL_S3_CONTROL")
        .ok()
        .or_else(|| config.endpoint_url().map(str::to_owned));
    let mut builder = aws_sdk_s3control::config::Builder::from(config);
    if let Some(url) = custom {
        builder = builder.endpoint_resolver(AsGiven(url));
    }
    aws_sdk_s3control::Client::from_conf(builder.build())
}

#[derive(Debug)]
struct AsGiven(String);

impl aws_sdk_s3control::config::endpoint::ResolveEndpoint for AsGiven {
    fn resolve_endpoint<'a>(
        &'a self,
        _params: &'a aws_sdk_s3control::config::endpoint::Params,
    ) -> aws_sdk_s3control::config::endpoint::EndpointFuture<'a> {
        aws_sdk_s3control::config::endpoint::EndpointFuture::ready(Ok(
            aws_sdk_s3control::config::endpoint::Endpoint::builder()
                .url(self.0.trim_end_matches('/').to_owned())
                .build(),
        ))
    }
}

/// Whether a log line may be written: the SDK's TRACE lines print each
/// signed request, its `x-amz-security-token` header (a session token)
/// included, so they are dropped whatever RUST_LOG says; s3fan's own TRACE
/// lines stay. Both modes' logs use it.
pub fn keeps_credentials_out(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() <= tracing::Level::DEBUG || meta.target().starts_with("s3fan")
}

/// `--debug`: errors also carry their raw form.
static DEBUG: AtomicBool = AtomicBool::new(false);

pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// An error as a sentence: its message, then the message of each cause
/// that adds something, outermost first, joined by ": ".
///
/// The SDK's `DisplayErrorContext` ends with the whole error in Rust's
/// debug form (`DispatchFailure(DispatchFailure { source: ... })`, or a
/// whole `Response { status ... body ... }`), which tells a user nothing
/// and can run to pages; that form is added only with `--debug`.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(cause) = next {
        let text = cause.to_string();
        let text = text.trim();
        // A message often repeats its cause's; say each thing once.
        if !text.is_empty() && !parts.iter().any(|part| part.contains(text)) {
            parts.push(text.to_owned());
        }
        next = cause.source();
    }
    let mut sentence = parts.join(": ");
    if DEBUG.load(Ordering::Relaxed) {
        sentence.push_str(&format!(" [debug: {err:?}]"));
    }
    sentence
}

/// A failure of an SDK call that AWS did not answer with an error code of
/// its own: what went wrong in words, then its causes.
pub fn sdk_error_sentence<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
    let what = match err {
        SdkError::ConstructionFailure(_) => "the request could not be built",
        SdkError::TimeoutError(_) => "AWS did not answer in time",
        SdkError::DispatchFailure(_) => "the request could not be sent",
        SdkError::ServiceError(_) if err.code().is_some() => "AWS refused the request",
        // An error status without an error code, or a body that is no
        // answer at all: the SDK could not read it.
        SdkError::ResponseError(_) | SdkError::ServiceError(_) => "AWS's answer could not be read",
        _ => "the request failed",
    };
    match std::error::Error::source(err) {
        Some(source) => format!("{what}: {}", error_chain(source)),
        None => what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer failure")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("tcp connect error: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn an_error_chain_reads_outermost_first_each_cause_once_and_no_debug_form() {
        let err = Outer(Middle(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused",
        )));
        let sentence = error_chain(&err);
        assert_eq!(
            sentence,
            "outer failure: tcp connect error: Connection refused"
        );
        assert!(!sentence.contains("Middle("), "{sentence}");
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_and_an_unreadable_answer_read_as_sentences() {
        // Nothing listens on port 9 of loopback (discard is never served).
        let client = crate::test_endpoint::client("http://127.0.0.1:9");
        let err = client
            .head_bucket()
            .bucket("b")
            .send()
            .await
            .expect_err("nothing listens there");
        let sentence = sdk_error_sentence(&err);
        assert!(
            sentence.starts_with("the request could not be sent: "),
            "{sentence}"
        );
        for dump in ["DispatchFailure(", "ConnectorError {", "source:", "{ "] {
            assert!(!sentence.contains(dump), "{dump} in {sentence}");
        }

        fn garbage(_: &str, _: &str) -> crate::test_endpoint::Reply {
            (200, vec![], "this is not XML <".into())
        }
        let (client, _) = crate::test_endpoint::serve(garbage).await;
        let err = client
            .get_bucket_location()
            .bucket("b")
            .send()
            .await
            .expect_err("not an answer");
        let sentence = sdk_error_sentence(&err);
        assert!(
            sentence.starts_with("AWS's answer could not be read"),
            "{sentence}"
        );
        for dump in ["Response {", "status:", "body:", "SdkBody"] {
            assert!(!sentence.contains(dump), "{dump} in {sentence}");
        }
    }
}
