//! Every percent-encoding s3fan does: object keys as S3 events (and
//! listings with `encoding-type=url`) carry them, as CopySource wants them,
//! and tags as the `x-amz-tagging` header of a multipart copy wants them.
//!
//! S3 writes keys into event notifications URL *form*-encoded: a space becomes
//! `+`, a literal `+` becomes `%2B`, and every other byte outside the
//! unreserved set becomes `%XX` of its UTF-8 encoding. CopySource, on the other
//! hand, is a header that must be percent-encoded (where `+` is a literal plus).
//! Both halves live here, pure, tested against every kind of key.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// RFC 3986 unreserved characters stay; everything else is `%XX`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Also `/` stays: it separates the bucket from the key, and may be left
/// as it is inside the key.
const COPY_SOURCE: &AsciiSet = &UNRESERVED.remove(b'/');

/// Why an event's key could not be turned back into the object's real key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("object key is empty")]
    Empty,
    #[error("object key {raw:?} does not decode to UTF-8 text")]
    NotUtf8 { raw: String },
}

/// Decodes a key exactly as S3 encoded it in an event notification.
pub fn decode_event_key(raw: &str) -> Result<String, KeyError> {
    if raw.is_empty() {
        return Err(KeyError::Empty);
    }
    // `+` must become a space *before* percent-decoding: a real `+` arrives
    // as `%2B` and must survive as `+`.
    let spaced = raw.replace('+', " ");
    let decoded = percent_decode_str(&spaced)
        .decode_utf8()
        .map_err(|_| KeyError::NotUtf8 {
            raw: raw.to_owned(),
        })?;
    Ok(decoded.into_owned())
}

/// Encodes a key the way S3 does in event notifications (the inverse of
/// [`decode_event_key`]): form encoding (a space is `+`), except that S3
/// leaves `/` as it is (see minio/minio#11665, which compares the two).
/// `backfill --via-lambda` makes its events with it.
pub fn encode_event_key(key: &str) -> String {
    form_encode(key)
}

fn form_encode(key: &str) -> String {
    const FORM: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'*')
        .remove(b'/')
        .remove(b' ');
    utf8_percent_encode(key, FORM).to_string().replace(' ', "+")
}

/// The `x-amz-copy-source` value for one object's current version:
/// `bucket/key`, percent-encoded. (Never a named version: see the ordering
/// rule in `plan`.)
pub fn copy_source(bucket: &str, key: &str) -> String {
    format!(
        "{}/{}",
        utf8_percent_encode(bucket, COPY_SOURCE),
        utf8_percent_encode(key, COPY_SOURCE)
    )
}

/// The `x-amz-tagging` header value: `k1=v1&k2=v2`, form-encoded.
pub fn tagging_header<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, UNRESERVED),
                utf8_percent_encode(v, UNRESERVED)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (as S3 writes it in the event, the real key)
    const DECODING: &[(&str, &str)] = &[
        ("plain.txt", "plain.txt"),
        ("with+space.txt", "with space.txt"),
        ("a%2Bb.txt", "a+b.txt"),
        ("100%25.txt", "100%.txt"),
        ("a%2Fb%2Fc.txt", "a/b/c.txt"),
        ("a/b/c.txt", "a/b/c.txt"),
        ("caf%C3%A9.txt", "café.txt"),
        ("%E6%97%A5%E6%9C%AC.txt", "日本.txt"),
        ("%28x%29+%26+%3Dy%3F", "(x) & =y?"),
        ("tab%09here", "tab\there"),
        ("..%2F..%2Fescape", "../../escape"),
    ];

    #[test]
    fn decodes_form_encoded_keys() {
        for (raw, key) in DECODING {
            assert_eq!(decode_event_key(raw).as_deref(), Ok(*key), "decoding {raw}");
        }
    }

    #[test]
    fn encoding_is_the_inverse_of_decoding() {
        for (_, key) in DECODING {
            let encoded = encode_event_key(key);
            assert_eq!(decode_event_key(&encoded).as_deref(), Ok(*key));
        }
        assert_eq!(encode_event_key("a b+c/é"), "a+b%2Bc/%C3%A9");
    }

    #[test]
    fn rejects_empty_and_non_utf8_keys() {
        assert_eq!(decode_event_key(""), Err(KeyError::Empty));
        assert_eq!(
            decode_event_key("bad%FF"),
            Err(KeyError::NotUtf8 {
                raw: "bad%FF".into()
            })
        );
    }

    #[test]
    fn copy_source_percent_encodes_everything_but_slashes() {
        assert_eq!(copy_source("src", "a/b c+d.txt"), "src/a/b%20c%2Bd.txt");
        assert_eq!(copy_source("src", "日本"), "src/%E6%97%A5%E6%9C%AC");
        assert_eq!(copy_source("my.bucket", "100%"), "my.bucket/100%25");
    }
}
