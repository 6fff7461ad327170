//! Streaming bucket listings: ListObjectsV2 page by page, so that memory
//! holds one page (1,000 keys), however many millions the bucket has.

use aws_sdk_s3::Client;
use futures::stream::{self, Stream, StreamExt, TryStreamExt};

use crate::deploy::{DeployError, aws_failure};

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, less the listing's key prefix (for a destination's copies).
    pub key: String,
    pub size: u64,
    /// Unquoted.
    pub etag: String,
}

/// Every object of `bucket` under `prefix`, in S3's order (UTF-8 binary
/// order of keys), with `strip` removed from the front of each key.
pub fn list<'a>(
    s3: &'a Client,
    bucket: &'a str,
    prefix: String,
    strip: &'a str,
    request_payer: bool,
) -> impl Stream<Item = Result<Entry, DeployError>> + 'a {
    let pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_request_payer(request_payer.then_some(aws_sdk_s3::types::RequestPayer::Requester))
        .into_paginator()
        .send();
    stream::unfold(pages, |mut pages| async move {
        let page = pages.next().await?;
        Some((page, pages))
    })
    .map(move |page| {
        let page = page.map_err(|err| aws_failure(format!("cannot list bucket {bucket}"), &err))?;
        let entries = page
            .contents()
            .iter()
            .map(|object| entry(bucket, strip, object))
            .collect::<Vec<_>>();
        Ok::<_, DeployError>(stream::iter(entries))
    })
    .try_flatten()
}

fn entry(
    bucket: &str,
    strip: &str,
    object: &aws_sdk_s3::types::Object,
) -> Result<Entry, DeployError> {
    let malformed = |what: &str| {
        DeployError(format!(
            "S3 listed an object of bucket {bucket} without {what}; the listing cannot be trusted"
        ))
    };
    let key = object.key().ok_or_else(|| malformed("a key"))?;
    Ok(Entry {
        key: key.strip_prefix(strip).unwrap_or(key).to_owned(),
        size: object
            .size()
            .and_then(|size| u64::try_from(size).ok())
            .ok_or_else(|| malformed("a size"))?,
        etag: object
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned(),
    })
}
