//! AWS SDK configuration and clients, in one place for both modes.
//!
//! The standard aws-config chain (environment, profiles, SSO, container and
//! instance credentials) with `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>` variables honoured, so the same code runs
//! against AWS and against a local endpoint such as moto.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Loads the shared SDK configuration; `region` and `profile` override the
/// chain when given.
pub async fn sdk_config(region: Option<String>, profile: Option<String>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    loader.load().await
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
