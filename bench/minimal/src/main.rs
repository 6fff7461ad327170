//! The blog's function in Rust, and nothing more: for each S3 record in the
//! SNS message, CopyObject to the bucket named like the function. No key
//! filter, no ordering guard, no multipart, no metrics, no failure detail.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::Value;

const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let config = aws_config::load_from_env().await;
    let custom_endpoint = config.endpoint_url().is_some();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(custom_endpoint)
            .build(),
    );
    let destination = std::env::var("AWS_LAMBDA_FUNCTION_NAME")?;
    let (s3, destination) = (&s3, destination.as_str());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let mut copied = 0;
        for wrapper in event.payload["Records"].as_array().into_iter().flatten() {
            let message: Value = serde_json::from_str(
                wrapper["Sns"]["Message"].as_str().ok_or("no SNS message")?,
            )?;
            for record in message["Records"].as_array().into_iter().flatten() {
                let bucket = record["s3"]["bucket"]["name"].as_str().ok_or("no bucket")?;
                let encoded = record["s3"]["object"]["key"].as_str().ok_or("no key")?;
                let key = percent_decode_str(&encoded.replace('+', " "))
                    .decode_utf8()?
                    .into_owned();
                s3.copy_object()
                    .bucket(destination)
                    .key(&key)
                    .copy_source(format!(
                        "{bucket}/{}",
                        utf8_percent_encode(&key, COPY_SOURCE)
                    ))
                    .send()
                    .await?;
                copied += 1;
            }
        }
        Ok::<Value, Error>(serde_json::json!({ "copied": copied }))
    }))
    .await
}
