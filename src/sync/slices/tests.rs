//! The parallel listing against a fake S3 that lists in-memory buckets as
//! ListObjectsV2 does (prefix, start-after, continuation token, delimiter,
//! URL encoding), a few keys per page so that small key sets take many
//! pages and many splits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::*;
use crate::sync::diff::Seen;
use crate::test_endpoint::{Answer, Reply, serve_answering};

const PAGE: usize = 7;

fn query(target: &str) -> BTreeMap<String, String> {
    let (_, query) = target.split_once('?').unwrap_or((target, ""));
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            (name.to_owned(), value)
        })
        .collect()
}

/// A continuation token is opaque: here, the last key listed, in hex.
fn to_hex(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(token: &str) -> String {
    let bytes: Vec<u8> = (0..token.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes).unwrap()
}

fn encode(key: &str) -> String {
    utf8_percent_encode(key, NON_ALPHANUMERIC).to_string()
}

/// ListObjectsV2 over `buckets` (keys sorted as S3 sorts them: by bytes).
fn lister(buckets: BTreeMap<String, BTreeSet<String>>, delay_ms: u64) -> Answer {
    lister_going_back(buckets, delay_ms, 0)
}

/// `lister`, but a start-after begins `back` keys too early: a server
/// that does not keep to StartAfter exactly (SeaweedFS lists directory by
/// directory, and a start-after such as `a/b/` can bring back `a/b.x`).
fn lister_going_back(
    buckets: BTreeMap<String, BTreeSet<String>>,
    delay_ms: u64,
    back: usize,
) -> Answer {
    Arc::new(move |_method: &str, target: &str, _body: &str| -> Reply {
        let path = target.split('?').next().unwrap_or_default();
        let bucket = path.trim_start_matches('/').trim_end_matches('/');
        let Some(keys) = buckets.get(bucket) else {
            return (
                404,
                vec![],
                "<Error><Code>NoSuchBucket</Code></Error>".into(),
            );
        };
        let q = query(target);
        let prefix = q.get("prefix").cloned().unwrap_or_default();
        let (after, token) = match q.get("continuation-token") {
            Some(token) => (from_hex(token), true),
            None => (q.get("start-after").cloned().unwrap_or_default(), false),
        };
        let from = match (token, back) {
            (false, back) if back > 0 => keys
                .range::<String, _>(..=after.clone())
                .rev()
                .nth(back - 1)
                .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included),
            _ => std::ops::Bound::Excluded(&after),
        };
        let delimiter = q.get("delimiter").cloned();
        let mut contents = Vec::new();
        let mut commons: Vec<String> = Vec::new();
        let mut last = String::new();
        let mut truncated = false;
        for key in keys.range::<String, _>((from, std::ops::Bound::Unbounded)) {
            if !key.starts_with(&prefix) {
                continue;
            }
            let common = delimiter.as_deref().and_then(|d| {
                key[prefix.len()..]
                    .find(d)
                    .map(|at| key[..prefix.len() + at + d.len()].to_owned())
            });
            if let Some(common) = &common
                && commons.last() == Some(common)
            {
                continue;
            }
            if contents.len() + commons.len() == PAGE {
                truncated = true;
                break;
            }
            match common {
                Some(common) => commons.push(common),
                None => contents.push(key.clone()),
            }
            last = key.clone();
        }
        let mut body = String::from("<ListBucketResult><EncodingType>url</EncodingType>");
        body.push_str(&format!("<IsTruncated>{truncated}</IsTruncated>"));
        if truncated {
            body.push_str(&format!(
                "<NextContinuationToken>{}</NextContinuationToken>",
                to_hex(&last)
            ));
        }
        for key in contents {
            body.push_str(&format!(
                "<Contents><Key>{}</Key><Size>1</Size><ETag>\"e\"</ETag></Contents>",
                encode(&key)
            ));
        }
        for common in commons {
            body.push_str(&format!(
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                encode(&common)
            ));
        }
        body.push_str("</ListBucketResult>");
        let mut headers = vec![];
        if delay_ms > 0 {
            headers.push(("x-test-delay-ms", delay_ms.to_string()));
        }
        (200, headers, body)
    })
}

fn plan(s3: Client, copies: &[(&str, &str)], slices: usize) -> Plan {
    Plan {
        source: Side {
            s3: s3.clone(),
            bucket: "src".into(),
            key_prefix: String::new(),
        },
        copies: copies
            .iter()
            .map(|(bucket, key_prefix)| Side {
                s3: s3.clone(),
                bucket: (*bucket).into(),
                key_prefix: (*key_prefix).into(),
            })
            .collect(),
        filter: Filter::default(),
        request_payer: false,
        slices,
    }
}

async fn all_rows(plan: Plan) -> Vec<diff::Row> {
    rows(plan)
        .map(|item| match item {
            Ok(Merged::Row(row)) => row,
            Ok(Merged::CopyFailed { copy, error }) => panic!("copy {copy} failed: {error}"),
            Err(err) => panic!("listing failed: {err}"),
        })
        .collect()
        .await
}

fn key_sets() -> Vec<(&'static str, BTreeSet<String>)> {
    let mut sets = Vec::new();
    sets.push((
        "one prefix",
        (0..300).map(|i| format!("only/{i:05}")).collect(),
    ));
    let mut deep = BTreeSet::new();
    for a in ["a", "b", "logs", "z"] {
        for b in 0..4 {
            for c in 0..6 {
                deep.insert(format!("{a}/{b}/{c}/leaf"));
                deep.insert(format!("{a}/{b}/{c}/"));
                deep.insert(format!("{a}/{b}/{c}-x"));
            }
        }
        deep.insert(a.to_string());
    }
    sets.push(("deep trees", deep));
    let unicode = [
        "é",
        "日本/1",
        "日本/2",
        "日本語",
        "🦀/crab",
        "🦀🦀",
        "a\u{7f}",
        "a\u{80}",
        "\u{d7ff}",
        "\u{e000}",
        "\u{10ffff}",
        "z",
        "Z",
        " space",
        "+plus",
        "%percent",
        "a/\u{1}ctl",
    ];
    sets.push(("unicode", unicode.iter().map(|k| k.to_string()).collect()));
    let stem = "k".repeat(60);
    sets.push((
        "keys that differ only in their last byte",
        ('!'..='~')
            .chain(['\u{1}', '\u{7f}'])
            .map(|c| format!("{stem}{c}"))
            .collect(),
    ));
    sets.push(("flat numbers", (0..2000).map(|i| format!("{i}")).collect()));
    sets
}

#[tokio::test]
async fn every_key_is_listed_once_whatever_the_keys_look_like() {
    for (name, keys) in key_sets() {
        for slices in [1, 3, 16] {
            let buckets = BTreeMap::from([("src".to_owned(), keys.clone())]);
            let (s3, seen, _) = serve_answering(lister(buckets, 0)).await;
            let listed: Vec<String> = all_rows(plan(s3, &[], slices))
                .await
                .into_iter()
                .map(|row| row.source.expect("a source entry").key)
                .collect();
            let unique: BTreeSet<String> = listed.iter().cloned().collect();
            assert_eq!(
                unique.len(),
                listed.len(),
                "{name}, {slices} slices: a key twice"
            );
            assert_eq!(
                unique, keys,
                "{name}, {slices} slices: not the serial listing"
            );
            if slices > 1 && keys.len() > 100 {
                let cuts = seen
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|r| r.contains("start-after="))
                    .count();
                assert!(cuts > 1, "{name}: the key space was never cut");
            }
        }
    }
}

#[tokio::test]
async fn keys_a_server_returns_before_a_slices_start_are_left_to_the_slice_before() {
    for (name, keys) in key_sets() {
        let buckets = BTreeMap::from([("src".to_owned(), keys.clone())]);
        let (s3, _, _) = serve_answering(lister_going_back(buckets, 0, 2)).await;
        let listed: Vec<String> = all_rows(plan(s3, &[], 16))
            .await
            .into_iter()
            .map(|row| row.source.expect("a source entry").key)
            .collect();
        let unique: BTreeSet<String> = listed.iter().cloned().collect();
        assert_eq!(unique.len(), listed.len(), "{name}: a key twice");
        assert_eq!(unique, keys, "{name}: not the serial listing");
    }
}

#[tokio::test]
async fn one_pass_merges_the_source_with_every_destination() {
    let source: BTreeSet<String> = (0..400).map(|i| format!("k{i:04}")).collect();
    let first: BTreeSet<String> = source
        .iter()
        .filter(|k| !k.ends_with('7'))
        .map(|k| format!("copy/{k}"))
        .chain(["copy/only-here".to_owned()])
        .collect();
    let second: BTreeSet<String> = source.iter().step_by(2).cloned().collect();
    let buckets = BTreeMap::from([
        ("src".to_owned(), source.clone()),
        ("one".to_owned(), first),
        ("two".to_owned(), second),
    ]);
    let (s3, _, _) = serve_answering(lister(buckets, 0)).await;
    let rows = all_rows(plan(s3, &[("one", "copy/"), ("two", "")], 8)).await;
    let mut by_key = BTreeMap::new();
    for row in rows {
        let key = row
            .source
            .as_ref()
            .map(|e| e.key.clone())
            .or_else(|| {
                row.copies.iter().find_map(|seen| match seen {
                    Seen::Listed(e) => Some(e.key.clone()),
                    _ => None,
                })
            })
            .expect("a row names a key");
        assert!(by_key.insert(key, row).is_none(), "a key in two rows");
    }
    assert_eq!(by_key.len(), 401);
    for (i, key) in source.iter().enumerate() {
        let row = &by_key[key];
        assert_eq!(
            row.source.as_ref().map(|e| e.key.as_str()),
            Some(key.as_str())
        );
        assert_eq!(
            matches!(row.copies[0], Seen::Listed(_)),
            !key.ends_with('7'),
            "{key}"
        );
        assert_eq!(
            matches!(row.copies[1], Seen::Listed(_)),
            i % 2 == 0,
            "{key}"
        );
    }
    let extra = &by_key["only-here"];
    assert!(extra.source.is_none());
    assert!(matches!(extra.copies[1], Seen::Absent));
}

/// `answer`, counting the keys it lists.
fn counting(answer: Answer) -> (Answer, Arc<std::sync::atomic::AtomicUsize>) {
    let listed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = listed.clone();
    let counted: Answer = Arc::new(move |method: &str, target: &str, body: &str| -> Reply {
        let reply = answer(method, target, body);
        count.fetch_add(reply.2.matches("<Contents>").count(), Ordering::SeqCst);
        reply
    });
    (counted, listed)
}

#[tokio::test]
async fn a_slice_lists_no_page_of_the_folders_after_it() {
    // Folders whose keys are spelt so that many guessed cuts fall past a
    // folder's last key (`data/0/3` where `data/0/` ends at `data/0/0299`).
    let keys: BTreeSet<String> = (0..2400)
        .map(|i| format!("data/{}/{i:04}.bin", i % 8))
        .collect();
    let buckets = BTreeMap::from([("src".to_owned(), keys.clone())]);
    let (answer, listed) = counting(lister(buckets, 0));
    let (s3, _, _) = serve_answering(answer).await;
    assert_eq!(all_rows(plan(s3, &[], 32)).await.len(), keys.len());
    let listed = listed.load(Ordering::SeqCst);
    // Each slice fetches about a page past its end (PAGE keys): more than
    // that would be pages of other slices' keys.
    assert!(
        listed < keys.len() * 2,
        "{listed} keys listed for {} in the bucket",
        keys.len()
    );
}

#[tokio::test]
async fn slices_are_listed_at_once() {
    let keys: BTreeSet<String> = (0..1500).map(|i| format!("{i:06}")).collect();
    let buckets = BTreeMap::from([("src".to_owned(), keys.clone())]);
    let (s3, _, most) = serve_answering(lister(buckets.clone(), 5)).await;
    assert_eq!(all_rows(plan(s3, &[], 1)).await.len(), keys.len());
    assert_eq!(most.load(Ordering::SeqCst), 1, "one slice lists serially");
    let (s3, _, most) = serve_answering(lister(buckets, 5)).await;
    assert_eq!(all_rows(plan(s3, &[], 16)).await.len(), keys.len());
    assert!(
        most.load(Ordering::SeqCst) >= 8,
        "16 slices had only {} pages in flight",
        most.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn a_failed_source_listing_ends_the_rows_with_its_error() {
    let (s3, _, _) = serve_answering(lister(BTreeMap::new(), 0)).await;
    let items: Vec<Item> = rows(plan(s3, &[], 4)).collect().await;
    assert_eq!(items.len(), 1);
    let err = items[0].as_ref().unwrap_err().to_string();
    assert!(err.contains("cannot list bucket src"), "{err}");
}

#[tokio::test]
async fn a_failed_destination_listing_is_named_and_the_others_go_on() {
    let source: BTreeSet<String> = (0..50).map(|i| format!("k{i:03}")).collect();
    let buckets = BTreeMap::from([
        ("src".to_owned(), source.clone()),
        ("one".to_owned(), source.clone()),
    ]);
    let (s3, _, _) = serve_answering(lister(buckets, 0)).await;
    let items: Vec<Item> = rows(plan(s3, &[("one", ""), ("gone", "")], 4))
        .collect()
        .await;
    let failed = items
        .iter()
        .filter(|i| matches!(i, Ok(Merged::CopyFailed { copy: 1, .. })))
        .count();
    assert!(failed >= 1);
    let listed: Vec<&diff::Row> = items
        .iter()
        .filter_map(|i| match i {
            Ok(Merged::Row(row)) => Some(row),
            _ => None,
        })
        .collect();
    assert_eq!(listed.len(), source.len());
    assert!(
        listed
            .iter()
            .all(|row| matches!(row.copies[0], Seen::Listed(_)))
    );
    assert!(
        listed
            .iter()
            .all(|row| matches!(row.copies[1], Seen::Unknown))
    );
}

#[tokio::test]
async fn the_first_cut_goes_down_a_level_that_holds_one_folder_only() {
    let folders: BTreeSet<String> = (0..2400)
        .map(|i| format!("data/{}/{i:04}.bin", i % 8))
        .collect();
    let mut with_a_key = folders.clone();
    with_a_key.insert("top.txt".to_owned());
    let buckets = BTreeMap::from([("src".to_owned(), folders.clone())]);
    let (s3, _, _) = serve_answering(lister(buckets, 0)).await;
    let cut = first_cut(&plan(s3, &[], 32), "").await.expect("first cut");
    // `data/` alone at the top: cut at the folders under it (one page of
    // the fake's PAGE common prefixes), not one slice for all.
    assert_eq!(cut.len(), PAGE, "{cut:?}");
    assert_eq!(cut[1].0.as_deref(), Some("data/1/"), "{cut:?}");

    // A level that holds a key besides its one folder is cut there.
    let buckets = BTreeMap::from([("src".to_owned(), with_a_key.clone())]);
    let (s3, _, _) = serve_answering(lister(buckets, 0)).await;
    let cut = first_cut(&plan(s3.clone(), &[], 32), "")
        .await
        .expect("cut");
    assert_eq!(cut.len(), 1, "{cut:?}");
    assert_eq!(all_rows(plan(s3, &[], 32)).await.len(), with_a_key.len());
}
