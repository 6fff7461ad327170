//! Listing in parallel: the key space under the listing's prefix is cut
//! into slices, each listed and merged (source with every destination) on
//! its own, many at once. A serial listing reads one page per round trip;
//! here as many pages are in flight as slices run.
//!
//! The first cut is where the keys have structure: the top level's common
//! prefixes (one `/`-delimited listing; a level further down while a level
//! holds one folder only). After that, a slice that has shown
//! a page and still has keys ahead is cut whenever there is room: past the
//! furthest key any of its listings has fetched, at the points where keys
//! like its own would go on (`keyspace::points_ahead`: ranges of a few
//! pages, ten, a hundred, nearest first), else at the midpoint of what is left.
//! Each slice lists under the prefix its ends share
//! (`keyspace::range_prefix`), so a guess where no key is costs one empty
//! page and ends at once, not a page of the next folder's keys; a good one
//! adds a page in flight. Each key belongs to exactly one slice: a slice is a
//! range `(after, upto]`, and a split moves `upto` down under the same lock
//! that admits each fetched page, so no key is listed twice or missed.
//!
//! Rows come out sorted within each slice, not across them: every consumer
//! (verify's counts, backfill's copies) needs each key once, not in order.
//! Memory holds a page per listing per running slice and a bounded queue of
//! rows, whatever the bucket's size.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{EncodingType, RequestPayer};
use futures::channel::mpsc;
use futures::stream::{self, FuturesUnordered, Stream, StreamExt, TryStreamExt};
use futures::{FutureExt, SinkExt};

use super::Filter;
use super::diff::{self, Merged};
use super::keyspace;
use super::listing::{self, Entry};
use crate::fanout::{DeployError, aws_failure};

/// Rows queued between the listings and their consumer.
const ROWS_QUEUED: usize = 4096;
/// The first cut makes at most this many slices per slice run at once.
const FIRST_CUT_PER_SLICE: usize = 4;

/// One bucket a comparison lists.
#[derive(Clone)]
pub struct Side {
    pub s3: Client,
    pub bucket: String,
    /// Before every key of this side (a destination's key prefix).
    pub key_prefix: String,
}

/// What to list: the source and each destination, under the filter.
pub struct Plan {
    pub source: Side,
    pub copies: Vec<Side>,
    pub filter: Filter,
    pub request_payer: bool,
    /// Slices listed at once.
    pub slices: usize,
}

pub type Item = Result<Merged<DeployError>, DeployError>;

/// Every key under the plan's filter, once, as a row of what each side
/// holds; a source listing's failure ends the stream with that error.
pub fn rows(plan: Plan) -> impl Stream<Item = Item> + Send + 'static {
    let (rows, received) = mpsc::channel(ROWS_QUEUED);
    tokio::spawn(coordinate(Arc::new(plan), rows));
    received
}

/// The end of a slice, and the furthest key its listings fetched, behind
/// one lock: the split and the admission of pages exclude each other.
#[derive(Default)]
struct Bound {
    state: Mutex<BoundState>,
}

#[derive(Default)]
struct BoundState {
    /// The last key of the slice; `None`: to the end of the prefix.
    upto: Option<String>,
    frontier: Option<String>,
    /// How its keys are spelt, from its first full page.
    shape: Option<keyspace::Shape>,
    /// The frontier it was last split at: split again only past it.
    split_at: Option<String>,
    /// Listings of the slice not yet at its end.
    open: usize,
}

impl Bound {
    fn new(upto: Option<String>, sides: usize) -> Bound {
        Bound {
            state: Mutex::new(BoundState {
                upto,
                open: sides,
                ..BoundState::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BoundState> {
        // Nothing panics while holding it; a poisoned state is still whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entries of a fetched page that are this slice's, and whether its
    /// listing is done.
    fn admit(&self, entries: Vec<Entry>, truncated: bool) -> (Vec<Entry>, bool) {
        let mut state = self.lock();
        if let Some(last) = entries.last()
            && state.frontier.as_deref() < Some(last.key.as_str())
        {
            state.frontier = Some(last.key.clone());
        }
        if state.shape.is_none()
            && truncated
            && let (Some(first), Some(last)) = (entries.first(), entries.last())
        {
            let keys = entries.iter().map(|e| e.key.clone());
            state.shape = Some(keyspace::Shape::of(&first.key, &last.key, keys));
        }
        let fetched = entries.len();
        let upto = state.upto.clone();
        let kept: Vec<Entry> = entries
            .into_iter()
            .take_while(|e| upto.as_deref().is_none_or(|u| e.key.as_str() <= u))
            .collect();
        let done = !truncated || kept.len() < fetched;
        if done {
            state.open = state.open.saturating_sub(1);
        }
        (kept, done)
    }

    /// One listing of the slice ended early (it failed).
    fn close(&self) {
        let mut state = self.lock();
        state.open = state.open.saturating_sub(1);
    }

    /// Cuts up to `wanted` slices off the end of this one, past everything
    /// fetched: where keys like its own would go on, else at the midpoint
    /// of what is left. Returns the ranges it gave up, in key order.
    fn split(&self, prefix: &str, wanted: usize) -> Vec<(Option<String>, Option<String>)> {
        let mut state = self.lock();
        let Some(frontier) = state.frontier.clone() else {
            return Vec::new();
        };
        if state.open == 0 || wanted == 0 || state.split_at.as_ref() == Some(&frontier) {
            return Vec::new();
        }
        let upto = state.upto.as_deref();
        let shape = state.shape.clone().unwrap_or_default();
        let mut points = keyspace::points_ahead(prefix, &frontier, upto, &shape, wanted);
        if points.is_empty() {
            points.extend(keyspace::midpoint(prefix, &frontier, upto));
        }
        let Some(first) = points.first().cloned() else {
            return Vec::new();
        };
        state.split_at = Some(frontier);
        let rest = state.upto.replace(first);
        let ends: Vec<Option<String>> = points
            .iter()
            .skip(1)
            .cloned()
            .map(Some)
            .chain([rest])
            .collect();
        points.into_iter().map(Some).zip(ends).collect()
    }
}

async fn coordinate(plan: Arc<Plan>, mut rows: mpsc::Sender<Item>) {
    let prefix = plan.filter.listing_prefix().unwrap_or_default();
    let mut waiting = match first_cut(&plan, &prefix).await {
        Ok(cut) => cut,
        Err(err) => {
            let _ = rows.send(Err(err)).await;
            return;
        }
    };
    let (pages, mut fetched) = mpsc::unbounded::<()>();
    // Whatever ends the coordinator ends every slice it started.
    let mut listing = Running(Vec::new());
    let mut running = FuturesUnordered::new();
    let mut bounds: Vec<(u64, Arc<Bound>)> = Vec::new();
    let mut next_id = 0u64;
    let most = plan.slices.max(1);
    loop {
        let free = most.saturating_sub(running.len());
        if waiting.is_empty() {
            for (_, bound) in &bounds {
                if waiting.len() >= free {
                    break;
                }
                waiting.extend(bound.split(&prefix, free - waiting.len()));
            }
        }
        while running.len() < most {
            let Some((after, upto)) = waiting.pop_front() else {
                break;
            };
            let bound = Arc::new(Bound::new(upto, 1 + plan.copies.len()));
            let id = next_id;
            next_id += 1;
            bounds.push((id, bound.clone()));
            // A task each: parsing a page of 1,000 keys takes milliseconds of
            // CPU, which one task would do for every slice on one thread.
            let slice = tokio::spawn(list_slice(
                plan.clone(),
                after,
                bound,
                pages.clone(),
                rows.clone(),
            ));
            listing.0.push((id, slice.abort_handle()));
            running.push(slice.map(move |ended| (id, ended.unwrap_or(false))));
        }
        if running.is_empty() {
            return;
        }
        // A slice ended (room for another) or a page arrived (a slice may
        // now be split).
        match futures::future::select(running.next(), fetched.next()).await {
            futures::future::Either::Left((Some((id, go_on)), _)) => {
                bounds.retain(|(i, _)| *i != id);
                listing.0.retain(|(i, _)| *i != id);
                if !go_on {
                    return;
                }
            }
            futures::future::Either::Left((None, _)) => return,
            futures::future::Either::Right(_) => {}
        }
    }
}

/// The tasks of the slices running, aborted when the coordinator ends.
struct Running(Vec<(u64, tokio::task::AbortHandle)>);

impl Drop for Running {
    fn drop(&mut self) {
        for (_, task) in &self.0 {
            task.abort();
        }
    }
}

/// The first slices: one per group of the top level's common prefixes, so
/// each subtree starts listing at once; one slice for all where the keys
/// have no `/`. Where a level holds nothing but one common prefix (every
/// key under `data/`), the next level down is listed instead, up to
/// `FIRST_CUT_DEPTH` levels: one request more, and the folders under it
/// start listing together instead of one slice waiting for its pages.
async fn first_cut(
    plan: &Plan,
    prefix: &str,
) -> Result<VecDeque<(Option<String>, Option<String>)>, DeployError> {
    let mut level = prefix.to_owned();
    let mut points = Vec::new();
    for _ in 0..FIRST_CUT_DEPTH {
        let (commons, only_commons) = common_prefixes(plan, &level).await?;
        points = commons;
        match (only_commons, points.as_slice()) {
            (true, [single]) => level = single.clone(),
            _ => break,
        }
    }
    let wanted = plan.slices.max(1) * FIRST_CUT_PER_SLICE;
    let every = points.len().div_ceil(wanted).max(1);
    let bounds: Vec<String> = points.into_iter().step_by(every).skip(1).collect();
    Ok(cut_at(bounds))
}

/// How many levels `first_cut` goes down at most.
const FIRST_CUT_DEPTH: usize = 4;

/// The common prefixes of one `/`-delimited page under `prefix`, decoded,
/// and whether that level holds nothing else (no keys, no further page).
async fn common_prefixes(plan: &Plan, prefix: &str) -> Result<(Vec<String>, bool), DeployError> {
    let bucket = &plan.source.bucket;
    let page = plan
        .source
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .delimiter("/")
        .encoding_type(EncodingType::Url)
        .set_request_payer(plan.request_payer.then_some(RequestPayer::Requester))
        .send()
        .await
        .map_err(|err| aws_failure(format!("cannot list bucket {bucket}"), &err))?;
    let mut points = Vec::new();
    for common in page.common_prefixes() {
        let encoded = common.prefix().unwrap_or_default();
        let point = crate::handler::encoding::decode_event_key(encoded).map_err(|err| {
            DeployError(format!(
                "S3 listed a common prefix of bucket {bucket} that cannot be decoded: {err}"
            ))
        })?;
        points.push(point);
    }
    let only_commons = page.contents().is_empty() && !page.is_truncated().unwrap_or(false);
    Ok((points, only_commons))
}

/// Slices `(None, b1], (b1, b2], ..., (bn, None]` for sorted points `b`.
fn cut_at(points: Vec<String>) -> VecDeque<(Option<String>, Option<String>)> {
    let mut slices = VecDeque::new();
    let mut after = None;
    for point in points {
        slices.push_back((after.take(), Some(point.clone())));
        after = Some(point);
    }
    slices.push_back((after, None));
    slices
}

/// Lists and merges one slice, sending its rows; false when everything
/// must stop (the source's listing failed, or no one reads the rows).
async fn list_slice(
    plan: Arc<Plan>,
    after: Option<String>,
    bound: Arc<Bound>,
    pages: mpsc::UnboundedSender<()>,
    mut rows: mpsc::Sender<Item>,
) -> bool {
    // The slice's end only moves down, so every key it will hold shares
    // the prefix its ends share now.
    let upto = bound.lock().upto.clone();
    let prefix = keyspace::range_prefix(
        &plan.filter.listing_prefix().unwrap_or_default(),
        after.as_deref(),
        upto.as_deref(),
    );
    let listing = |side: &Side| {
        let filter = plan.filter.clone();
        side_listing(
            side.clone(),
            prefix.clone(),
            after.clone(),
            plan.request_payer,
            bound.clone(),
            pages.clone(),
        )
        .try_filter(move |entry| std::future::ready(filter.admits(&entry.key)))
    };
    let source = listing(&plan.source);
    let copies: Vec<_> = plan.copies.iter().map(|side| listing(side)).collect();
    let merged = diff::merge_rows(source, copies);
    let mut merged = std::pin::pin!(merged);
    while let Some(item) = merged.next().await {
        let fatal = item.is_err();
        if rows.send(item).await.is_err() || fatal {
            return false;
        }
    }
    true
}

struct Paging {
    token: Option<String>,
    first: bool,
    done: bool,
    previous: Option<String>,
}

/// One side's keys in the slice after `after`, page by page, each page
/// admitted by the slice's bound; keys less the side's key prefix.
fn side_listing(
    side: Side,
    prefix: String,
    after: Option<String>,
    request_payer: bool,
    bound: Arc<Bound>,
    pages: mpsc::UnboundedSender<()>,
) -> impl Stream<Item = Result<Entry, DeployError>> + Send + 'static {
    let start = Paging {
        token: None,
        first: true,
        done: false,
        previous: None,
    };
    stream::unfold(start, move |paging| {
        let side = side.clone();
        let list_prefix = format!("{}{prefix}", side.key_prefix);
        let start_after = after
            .as_ref()
            .map(|key| format!("{}{key}", side.key_prefix));
        let slice_start = after.clone();
        let bound = bound.clone();
        let pages = pages.clone();
        async move {
            if paging.done {
                return None;
            }
            let bucket = side.bucket.as_str();
            let answer = side
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(list_prefix)
                .set_start_after(if paging.first { start_after } else { None })
                .set_continuation_token(paging.token.clone())
                .encoding_type(EncodingType::Url)
                .set_request_payer(request_payer.then_some(RequestPayer::Requester))
                .send()
                .await;
            let stop = |err: DeployError| {
                bound.close();
                let done = Paging {
                    token: None,
                    first: false,
                    done: true,
                    previous: None,
                };
                Some((Err(err), done))
            };
            let page = match answer {
                Ok(page) => page,
                Err(err) => return stop(aws_failure(format!("cannot list bucket {bucket}"), &err)),
            };
            let mut entries = Vec::with_capacity(page.contents().len());
            let mut previous = paging.previous;
            for object in page.contents() {
                let entry = match listing::entry(bucket, &side.key_prefix, object) {
                    Ok(entry) => entry,
                    Err(err) => return stop(err),
                };
                // A key at or before the slice's start is the slice
                // before's. S3 never returns one; servers that list
                // directory by directory (SeaweedFS) do, for a start such
                // as `a/b/` (which brings back `a/b.x`).
                if slice_start
                    .as_deref()
                    .is_some_and(|start| entry.key.as_str() <= start)
                {
                    continue;
                }
                if let Err(err) = listing::in_order(bucket, previous.as_deref(), &entry.key) {
                    return stop(err);
                }
                previous = Some(entry.key.clone());
                entries.push(entry);
            }
            let token = page.next_continuation_token().map(str::to_owned);
            let truncated = page.is_truncated().unwrap_or(false) && token.is_some();
            let (kept, done) = bound.admit(entries, truncated);
            let _ = pages.unbounded_send(());
            let next = Paging {
                token,
                first: false,
                done,
                previous,
            };
            Some((Ok(kept), next))
        }
    })
    .map_ok(|entries| stream::iter(entries.into_iter().map(Ok)))
    .try_flatten()
}

#[cfg(test)]
mod tests;
