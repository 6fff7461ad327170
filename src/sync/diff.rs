//! Comparing a source with one destination as a merge of two sorted
//! listings: each side is read once, in order, and nothing is held but the
//! next entry of each. Pure but for the streams it is given.
//!
//! # How objects are compared
//!
//! By key, then size, then ETag. An ETag is the MD5 of the bytes only for an
//! object written in one part (and without SSE-KMS); a multipart object's
//! ETag (`…-N`) is the MD5 of its parts' MD5s, so the same bytes copied with
//! another part layout (CopyObject of a multipart source, or s3fan's own
//! multipart copy) get another ETag. So ETags are compared only when neither
//! is multipart; otherwise equal sizes count as in sync, and the object is
//! counted as `size_only` so a report says how many were compared by size
//! alone.

use std::cmp::Ordering;
use std::pin::Pin;

use futures::stream::{self, Peekable, Stream, StreamExt};

use super::listing::Entry;

/// How one key compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// In both, equal. `size_only` when an ETag could not be compared.
    Same { key: String, size_only: bool },
    /// In the source only.
    Missing(Entry),
    /// In both, not equal: `what` differs.
    Different {
        source: Entry,
        destination: Entry,
        what: &'static str,
    },
    /// In the destination only.
    Extra(Entry),
}

/// Compares one key present on both sides.
pub fn compare(source: Entry, destination: Entry) -> Verdict {
    let multipart = |etag: &str| etag.contains('-');
    if source.size != destination.size {
        return Verdict::Different {
            source,
            destination,
            what: "size",
        };
    }
    if multipart(&source.etag) || multipart(&destination.etag) {
        return Verdict::Same {
            key: source.key,
            size_only: true,
        };
    }
    if source.etag != destination.etag {
        return Verdict::Different {
            source,
            destination,
            what: "ETag",
        };
    }
    Verdict::Same {
        key: source.key,
        size_only: false,
    }
}

impl Verdict {
    /// The key compared: where a reconcile slice that settled it may stop.
    pub fn key(&self) -> &str {
        match self {
            Verdict::Same { key, .. } => key,
            Verdict::Missing(entry) | Verdict::Extra(entry) => &entry.key,
            Verdict::Different { source, .. } => &source.key,
        }
    }
}

/// Merges two listings sorted by key into one verdict per key.
pub fn merge<S, D, E>(source: S, destination: D) -> impl Stream<Item = Result<Verdict, E>>
where
    S: Stream<Item = Result<Entry, E>>,
    D: Stream<Item = Result<Entry, E>>,
{
    enum Take {
        Source,
        Destination,
        Both,
    }
    let sides = (
        Box::pin(source.peekable()),
        Box::pin(destination.peekable()),
    );
    stream::unfold(sides, |(mut source, mut destination)| async move {
        let take = {
            let next_source = source.as_mut().peek().await;
            let next_destination = destination.as_mut().peek().await;
            match (next_source, next_destination) {
                (None, None) => return None,
                // An error is passed on first, from whichever side has it.
                (Some(Err(_)), _) | (Some(_), None) => Take::Source,
                (_, Some(Err(_))) | (None, Some(_)) => Take::Destination,
                (Some(Ok(s)), Some(Ok(d))) => match s.key.cmp(&d.key) {
                    Ordering::Less => Take::Source,
                    Ordering::Greater => Take::Destination,
                    Ordering::Equal => Take::Both,
                },
            }
        };
        let verdict = match take {
            Take::Source => source.next().await?.map(Verdict::Missing),
            Take::Destination => destination.next().await?.map(Verdict::Extra),
            Take::Both => match (source.next().await?, destination.next().await?) {
                (Ok(s), Ok(d)) => Ok(compare(s, d)),
                (Err(err), _) | (_, Err(err)) => Err(err),
            },
        };
        Some((verdict, (source, destination)))
    })
}

/// What one destination's listing showed of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Listed(Entry),
    Absent,
    /// Its listing failed earlier in this range: nothing is known.
    Unknown,
}

/// One key, as the source and every destination list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub source: Option<Entry>,
    pub copies: Vec<Seen>,
}

impl Row {
    /// How the key compares in each destination; `None` where nothing is
    /// known or the key is in neither.
    pub fn verdicts(self) -> Vec<Option<Verdict>> {
        let source = self.source;
        self.copies
            .into_iter()
            .map(|seen| match (&source, seen) {
                (_, Seen::Unknown) => None,
                (Some(s), Seen::Listed(d)) => Some(compare(s.clone(), d)),
                (Some(s), Seen::Absent) => Some(Verdict::Missing(s.clone())),
                (None, Seen::Listed(d)) => Some(Verdict::Extra(d)),
                (None, Seen::Absent) => None,
            })
            .collect()
    }
}

/// What a merge of one source with many destinations yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged<E> {
    Row(Row),
    /// Destination `copy`'s listing failed; its column is `Unknown` from
    /// here on, and the others go on.
    CopyFailed {
        copy: usize,
        error: E,
    },
}

/// The source and every destination merged in one pass, one row per key
/// in any of them: each listing is read once, in order, holding only its
/// next entry, and the next entries of all of them are asked for at once.
/// A source listing's error ends the merge (it is passed on as `Err`).
pub fn merge_rows<S, D, E>(source: S, copies: Vec<D>) -> impl Stream<Item = Result<Merged<E>, E>>
where
    S: Stream<Item = Result<Entry, E>>,
    D: Stream<Item = Result<Entry, E>>,
{
    let state = (
        Some(Box::pin(source.peekable())),
        copies
            .into_iter()
            .map(|d| Some(Box::pin(d.peekable())))
            .collect::<Vec<_>>(),
    );
    stream::unfold(state, |(mut source, mut copies)| async move {
        // The next key of each side (None: exhausted; Err: failed), asked
        // for concurrently.
        let (next_source, next_copies) = futures::join!(
            next_key(&mut source),
            futures::future::join_all(copies.iter_mut().map(next_key))
        );
        if let Some(Err(_)) = next_source {
            let err = match source.as_mut()?.next().await? {
                Err(err) => err,
                Ok(_) => return None,
            };
            source = None;
            copies.clear();
            return Some((Err(err), (source, copies)));
        }
        if let Some(failed) = next_copies.iter().position(|k| matches!(k, Some(Err(_)))) {
            let error = match copies[failed].as_mut()?.next().await? {
                Err(err) => err,
                Ok(_) => return None,
            };
            copies[failed] = None;
            return Some((
                Ok(Merged::CopyFailed {
                    copy: failed,
                    error,
                }),
                (source, copies),
            ));
        }
        let key = std::iter::once(&next_source)
            .chain(next_copies.iter())
            .filter_map(|k| k.as_ref().and_then(|k| k.as_ref().ok()))
            .min()?
            .clone();
        let source_entry = match (&next_source, source.as_mut()) {
            (Some(Ok(k)), Some(s)) if *k == key => s.as_mut().next().await.and_then(Result::ok),
            _ => None,
        };
        let mut seen = Vec::with_capacity(copies.len());
        for (next, copy) in next_copies.iter().zip(copies.iter_mut()) {
            seen.push(match (next, copy.as_mut()) {
                (_, None) => Seen::Unknown,
                (Some(Ok(k)), Some(c)) if *k == key => match c.as_mut().next().await {
                    Some(Ok(entry)) => Seen::Listed(entry),
                    _ => Seen::Unknown,
                },
                _ => Seen::Absent,
            });
        }
        let row = Row {
            source: source_entry,
            copies: seen,
        };
        Some((Ok(Merged::Row(row)), (source, copies)))
    })
}

/// The key a side of [`merge_rows`] holds next: `None` when it is
/// exhausted or gone, `Err` when its listing failed.
async fn next_key<S, E>(side: &mut Option<Pin<Box<Peekable<S>>>>) -> Option<Result<String, ()>>
where
    S: Stream<Item = Result<Entry, E>>,
{
    let next = side.as_mut()?.as_mut().peek().await?;
    Some(next.as_ref().map(|e| e.key.clone()).map_err(|_| ()))
}

/// The source entries that at least one destination lacks or has
/// otherwise, from one pass over every listing: each destination's listing
/// is advanced alongside the source's, so only one entry of each is held.
pub fn needed_anywhere<S, D, E>(
    source: S,
    destinations: Vec<D>,
) -> impl Stream<Item = Result<Entry, E>>
where
    S: Stream<Item = Result<Entry, E>>,
    D: Stream<Item = Result<Entry, E>>,
{
    let state = (
        Box::pin(source),
        destinations
            .into_iter()
            .map(|d| Box::pin(d.peekable()))
            .collect::<Vec<_>>(),
    );
    stream::unfold(state, |(mut source, mut destinations)| async move {
        loop {
            let entry = match source.next().await? {
                Ok(entry) => entry,
                Err(err) => return Some((Err(err), (source, destinations))),
            };
            let mut needed = false;
            for destination in &mut destinations {
                // Past the keys only the destination has.
                loop {
                    match destination.as_mut().peek().await {
                        Some(Ok(d)) if d.key < entry.key => {
                            destination.next().await;
                        }
                        Some(Err(_)) => {
                            if let Some(Err(err)) = destination.next().await {
                                return Some((Err(err), (source, destinations)));
                            }
                        }
                        _ => break,
                    }
                }
                let same = match destination.as_mut().peek().await {
                    Some(Ok(d)) if d.key == entry.key => match destination.next().await {
                        Some(Ok(d)) => matches!(compare(entry.clone(), d), Verdict::Same { .. }),
                        _ => false,
                    },
                    _ => false,
                };
                needed |= !same;
            }
            if needed {
                return Some((Ok(entry), (source, destinations)));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn entry(key: &str, size: u64, etag: &str) -> Entry {
        Entry {
            key: key.into(),
            size,
            etag: etag.into(),
        }
    }

    fn listing(entries: Vec<Entry>) -> impl Stream<Item = Result<Entry, String>> {
        stream::iter(entries.into_iter().map(Ok))
    }

    #[tokio::test]
    async fn a_merge_finds_missing_different_and_extra_keys_in_one_pass() {
        let source = vec![
            entry("a", 1, "e1"),
            entry("b", 2, "e2"),
            entry("c", 3, "e3"),
            entry("d", 4, "e4"),
            entry("f", 6, "e6"),
        ];
        let destination = vec![
            entry("a", 1, "e1"),
            entry("c", 3, "changed"),
            entry("d", 5, "e4"),
            entry("e", 5, "e5"),
            entry("f", 6, "e6"),
            entry("g", 7, "e7"),
        ];
        let verdicts: Vec<Verdict> = merge(listing(source), listing(destination))
            .try_collect()
            .await
            .unwrap();
        let summary: Vec<String> = verdicts
            .iter()
            .map(|v| match v {
                Verdict::Same { .. } => "same".into(),
                Verdict::Missing(e) => format!("missing {}", e.key),
                Verdict::Different { source, what, .. } => format!("{what} {}", source.key),
                Verdict::Extra(e) => format!("extra {}", e.key),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "same",
                "missing b",
                "ETag c",
                "size d",
                "extra e",
                "same",
                "extra g"
            ]
        );
    }

    #[tokio::test]
    async fn either_side_may_be_empty() {
        let one = || vec![entry("k", 1, "e")];
        let missing: Vec<Verdict> = merge(listing(one()), listing(vec![]))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(missing, [Verdict::Missing(entry("k", 1, "e"))]);
        let extra: Vec<Verdict> = merge(listing(vec![]), listing(one()))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(extra, [Verdict::Extra(entry("k", 1, "e"))]);
    }

    #[tokio::test]
    async fn a_listing_error_ends_the_merge_with_that_error() {
        let source = stream::iter(vec![
            Ok(entry("a", 1, "e")),
            Err("page 2 failed".to_owned()),
        ]);
        let result: Result<Vec<Verdict>, String> = merge(
            source,
            listing(vec![entry("a", 1, "e"), entry("b", 1, "e")]),
        )
        .try_collect()
        .await;
        assert_eq!(result, Err("page 2 failed".to_owned()));
    }

    #[tokio::test]
    async fn an_object_is_needed_when_any_destination_lacks_it_or_differs() {
        let source = vec![
            entry("a", 1, "e"),
            entry("b", 1, "e"),
            entry("c", 1, "e"),
            entry("d", 1, "e"),
        ];
        let first = vec![
            entry("0-extra", 1, "e"),
            entry("a", 1, "e"),
            entry("b", 1, "e"),
            entry("c", 1, "e"),
            entry("d", 2, "e"),
        ];
        let second = vec![
            entry("a", 1, "e"),
            entry("c", 1, "x"),
            entry("d", 1, "e"),
            entry("z", 1, "e"),
        ];
        let needed: Vec<String> =
            needed_anywhere(listing(source), vec![listing(first), listing(second)])
                .map_ok(|e| e.key)
                .try_collect()
                .await
                .unwrap();
        // a: everywhere; b: missing in the second; c: ETag differs in the
        // second; d: size differs in the first.
        assert_eq!(needed, ["b", "c", "d"]);
    }

    #[test]
    fn multipart_etags_are_compared_by_size_only() {
        assert_eq!(
            compare(entry("k", 9, "abc-3"), entry("k", 9, "def")),
            Verdict::Same {
                key: "k".into(),
                size_only: true
            }
        );
        assert!(matches!(
            compare(entry("k", 9, "abc-3"), entry("k", 8, "abc-3")),
            Verdict::Different { what: "size", .. }
        ));
        assert_eq!(
            compare(entry("k", 9, "abc"), entry("k", 9, "abc")),
            Verdict::Same {
                key: "k".into(),
                size_only: false
            }
        );
    }

    #[tokio::test]
    async fn keys_merge_in_s3s_byte_order() {
        // S3 lists in UTF-8 binary order: "Z" < "a" < "é"; so does String.
        let keys = |ks: &[&str]| ks.iter().map(|k| entry(k, 1, "e")).collect::<Vec<_>>();
        let verdicts: Vec<Verdict> = merge(
            listing(keys(&["Z", "a", "é"])),
            listing(keys(&["Z", "a", "é"])),
        )
        .try_collect()
        .await
        .unwrap();
        assert!(verdicts.iter().all(|v| matches!(v, Verdict::Same { .. })));
    }
    #[tokio::test]
    async fn one_merge_of_many_destinations_gives_one_row_per_key() {
        let source = listing(vec![
            entry("a", 1, "e"),
            entry("b", 2, "e"),
            entry("d", 4, "e"),
        ]);
        let first = listing(vec![entry("a", 1, "e"), entry("c", 3, "e")]);
        let second = listing(vec![entry("b", 2, "other"), entry("d", 4, "e")]);
        let rows: Vec<Merged<String>> = merge_rows(source, vec![first, second])
            .try_collect()
            .await
            .unwrap();
        let verdicts: Vec<Vec<Option<Verdict>>> = rows
            .into_iter()
            .map(|merged| match merged {
                Merged::Row(row) => row.verdicts(),
                Merged::CopyFailed { .. } => panic!("no listing failed"),
            })
            .collect();
        let same = |key: &str| {
            Some(Verdict::Same {
                key: key.into(),
                size_only: false,
            })
        };
        assert_eq!(
            verdicts,
            vec![
                vec![same("a"), Some(Verdict::Missing(entry("a", 1, "e")))],
                vec![
                    Some(Verdict::Missing(entry("b", 2, "e"))),
                    Some(Verdict::Different {
                        source: entry("b", 2, "e"),
                        destination: entry("b", 2, "other"),
                        what: "ETag"
                    })
                ],
                vec![Some(Verdict::Extra(entry("c", 3, "e"))), None],
                vec![Some(Verdict::Missing(entry("d", 4, "e"))), same("d")],
            ]
        );
    }

    #[tokio::test]
    async fn a_destination_whose_listing_fails_is_unknown_from_there_on() {
        let source = listing(vec![entry("a", 1, "e"), entry("b", 1, "e")]);
        let broken: Box<dyn Stream<Item = Result<Entry, String>> + Unpin> =
            Box::new(stream::iter(vec![
                Ok(entry("a", 1, "e")),
                Err("denied".to_owned()),
            ]));
        let fine: Box<dyn Stream<Item = Result<Entry, String>> + Unpin> =
            Box::new(listing(vec![entry("b", 1, "e")]));
        let merged: Vec<Merged<String>> = merge_rows(source, vec![broken, fine])
            .try_collect()
            .await
            .unwrap();
        assert_eq!(merged.len(), 3, "{merged:?}");
        let Merged::Row(first) = &merged[0] else {
            panic!("{merged:?}")
        };
        assert_eq!(first.copies[0], Seen::Listed(entry("a", 1, "e")));
        assert_eq!(
            merged[1],
            Merged::CopyFailed {
                copy: 0,
                error: "denied".to_owned()
            }
        );
        let Merged::Row(second) = &merged[2] else {
            panic!("{merged:?}")
        };
        assert_eq!(
            second.copies,
            vec![Seen::Unknown, Seen::Listed(entry("b", 1, "e"))]
        );
    }
}
