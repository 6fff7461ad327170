//! Streaming bucket listings: ListObjectsV2 page by page, so that memory
//! holds one page (1,000 keys), however many millions the bucket has.

use aws_sdk_s3::Client;
use futures::stream::{self, Stream, StreamExt, TryStreamExt};

use crate::fanout::{DeployError, aws_failure};
use crate::handler::encoding::decode_event_key;

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, less the listing's key prefix (for a destination's copies).
    pub key: String,
    pub size: u64,
    /// Unquoted.
    pub etag: String,
}

/// Which objects a listing reads.
#[derive(Debug, Clone, Default)]
pub struct Listing<'a> {
    pub bucket: &'a str,
    /// Only keys under this.
    pub prefix: String,
    /// Removed from the front of each key (a destination's key prefix).
    pub strip: &'a str,
    /// Only keys after this one, as S3 compares them (a reconcile slice
    /// goes on where the last stopped).
    pub start_after: Option<String>,
    pub request_payer: bool,
}

/// Every object of the listing, in S3's order (UTF-8 binary order of keys),
/// with `strip` removed from the front of each key.
pub fn list<'a>(
    s3: &'a Client,
    listing: Listing<'a>,
) -> impl Stream<Item = Result<Entry, DeployError>> + 'a {
    let Listing {
        bucket,
        prefix,
        strip,
        start_after,
        request_payer,
    } = listing;
    let pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_start_after(start_after)
        // Keys may hold characters XML 1.0 cannot carry (U+0001 to U+001F
        // but tab, LF and CR; U+FFFE): written raw, the whole page fails to
        // parse, or a server substitutes them and the merge goes wrong.
        // Encoded, every key arrives; `entry` decodes it.
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
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
    .scan(None::<String>, move |previous, entry| {
        std::future::ready(Some(entry.and_then(|entry| {
            in_order(bucket, previous.as_deref(), &entry.key)?;
            *previous = Some(entry.key.clone());
            Ok(entry)
        })))
    })
}

/// Every merge of listings rests on S3's order (keys ascending by their
/// UTF-8 bytes, each once): a listing that breaks it is an error, never a
/// silently wrong diff.
pub(super) fn in_order(bucket: &str, previous: Option<&str>, key: &str) -> Result<(), DeployError> {
    match previous {
        Some(previous) if key.as_bytes() <= previous.as_bytes() => Err(DeployError(format!(
            "the listing of bucket {bucket} is out of order ({key:?} came after {previous:?}); \
             s3fan compares listings in S3's key order and stops rather than report a wrong \
             difference. Is the endpoint an S3 implementation that lists keys in another order?"
        ))),
        _ => Ok(()),
    }
}

pub(super) fn entry(
    bucket: &str,
    strip: &str,
    object: &aws_sdk_s3::types::Object,
) -> Result<Entry, DeployError> {
    let malformed = |what: &str| {
        DeployError(format!(
            "S3 listed an object of bucket {bucket} without {what}; the listing cannot be trusted"
        ))
    };
    let encoded = object.key().ok_or_else(|| malformed("a key"))?;
    // Asked for with encoding-type=url: form-encoded, as in S3's events.
    let key = decode_event_key(encoded).map_err(|err| {
        DeployError(format!(
            "S3 listed an object of bucket {bucket} whose key cannot be decoded: {err}"
        ))
    })?;
    let key = key.as_str();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_endpoint::{Reply, serve};

    fn every_object_of(bucket: &str) -> Listing<'_> {
        Listing {
            bucket,
            ..Listing::default()
        }
    }

    /// One page holding keys with characters XML 1.0 cannot carry, encoded
    /// as S3 encodes them with encoding-type=url (`+` for a space).
    fn encoded(_: &str, target: &str) -> Reply {
        assert!(target.contains("encoding-type=url"), "{target}");
        let contents: String = ["a%01b", "a+b", "a%2Bb", "ctl%1F%EF%BF%BE"]
            .iter()
            .map(|key| {
                format!("<Contents><Key>{key}</Key><Size>1</Size><ETag>\"e\"</ETag></Contents>")
            })
            .collect();
        let body = format!(
            "<ListBucketResult><Name>b</Name><EncodingType>url</EncodingType>\
             <IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"
        );
        (200, vec![], body)
    }

    fn unordered(_: &str, _: &str) -> Reply {
        let body = "<ListBucketResult><Name>b</Name><IsTruncated>false</IsTruncated>\
            <Contents><Key>b</Key><Size>1</Size></Contents>\
            <Contents><Key>a</Key><Size>1</Size></Contents></ListBucketResult>";
        (200, vec![], body.into())
    }

    #[tokio::test]
    async fn keys_xml_cannot_carry_are_asked_for_encoded_and_decoded() {
        let (s3, seen) = serve(encoded).await;
        let keys: Vec<String> = list(&s3, every_object_of("b"))
            .map_ok(|entry| entry.key)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(keys, ["a\u{1}b", "a b", "a+b", "ctl\u{1f}\u{fffe}"]);
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_listing_out_of_order_is_an_error_not_a_wrong_diff() {
        let (s3, _) = serve(unordered).await;
        let listed: Vec<Result<Entry, DeployError>> =
            list(&s3, every_object_of("b")).collect().await;
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].as_ref().map(|e| e.key.as_str()), Ok("b"));
        let err = listed[1].as_ref().unwrap_err().to_string();
        assert!(
            err.contains("out of order") && err.contains("bucket b"),
            "{err}"
        );
    }
}
