//! Laptop mode for objects that already exist: `verify` compares a source
//! with its destinations, `backfill` copies what is missing or different
//! with the handler's own copy code. Both stream: each listing is read page
//! by page in key order and merged (see `diff`), so memory does not grow
//! with the bucket.

pub mod backfill;
pub mod batch_job;
mod diff;
mod estimate;
mod keyspace;
mod listing;
pub mod named;
mod pace;
pub mod reconcile;
pub mod reconcile_now;
mod slices;
pub mod verify;
pub mod via_lambda;
mod watch;

use futures::{Stream, TryStreamExt};

use crate::fanout::spec::Spec;
use crate::fanout::{Context, DeployError, Session, find_regions, inventory};
use crate::handler::plan::{S3Options, Target};
use crate::handler::s3::S3Clients;

/// What to compare: the source, its key filter, and each destination with
/// its key prefix.
pub struct Fanout {
    pub source: String,
    pub filter: Filter,
    pub destinations: Vec<Destination>,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    /// For the source's size (`estimate`), which gives progress an ETA.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// The fan-out's topic, which `backfill --via-lambda` publishes to.
    pub topic_arn: String,
    pub region: String,
    /// `--request-payer`: listings say the requester pays too.
    pub request_payer: bool,
    /// Slices of the key space listed at once (`--list-concurrency`).
    pub list_concurrency: usize,
    /// The account and region of the fan-out, and clients there for what
    /// only `backfill --via-batch-operations` does (its role, its jobs).
    pub scope: crate::fanout::names::Scope,
    pub iam: aws_sdk_iam::Client,
    pub s3control: aws_sdk_s3control::Client,
    /// The tags of what s3fan makes for this source (`--tag` and its own).
    pub tags: std::collections::BTreeMap<String, String>,
}

/// Slices listed at once by default: at 100 ms per page, 32 pages in
/// flight read about 300,000 keys a second where a serial listing reads
/// 10,000 (bench/RESULTS.md, "Listing").
pub const DEFAULT_LIST_CONCURRENCY: u16 = 32;

#[derive(Debug, Clone)]
pub struct Destination {
    pub bucket: String,
    /// `--dest DST:PREFIX`: copies of `k` are at `PREFIX` + `k`.
    pub key_prefix: String,
    /// Storage class and requester pays, as the functions copy.
    pub options: S3Options,
    /// A client in the destination's own region (S3 redirects requests
    /// sent to another).
    pub s3: aws_sdk_s3::Client,
    /// That region, when it is not the source's: copies there cross
    /// regions (and cost transfer).
    pub elsewhere: Option<String>,
}

impl Destination {
    /// Where `target` copies (its bucket, key prefix and options), through
    /// `s3`: the function's own destination, for backfill, verify and the
    /// function's reconcile alike.
    pub fn of(target: &Target, s3: aws_sdk_s3::Client) -> Destination {
        Destination {
            bucket: target.bucket.clone(),
            key_prefix: target.key_prefix.clone().unwrap_or_default(),
            options: target.options.clone(),
            s3,
            elsewhere: None,
        }
    }
}

/// The fan-out's key filter (deploy's `--prefix`/`--suffix`), narrowed by a
/// command's own `--prefix`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub narrow: Option<String>,
}

impl Filter {
    pub fn admits(&self, key: &str) -> bool {
        [&self.prefix, &self.narrow]
            .into_iter()
            .flatten()
            .all(|prefix| key.starts_with(prefix.as_str()))
            && self
                .suffix
                .as_deref()
                .is_none_or(|suffix| key.ends_with(suffix))
    }

    /// The longest prefix every admitted key has, to list no more than needed;
    /// an error when the narrowing prefix is outside the fan-out's filter.
    pub fn listing_prefix(&self) -> Result<String, String> {
        match (self.prefix.as_deref(), self.narrow.as_deref()) {
            (Some(fan_out), Some(narrow)) if narrow.starts_with(fan_out) => Ok(narrow.to_owned()),
            (Some(fan_out), Some(narrow)) if fan_out.starts_with(narrow) => Ok(fan_out.to_owned()),
            (Some(fan_out), Some(narrow)) => Err(format!(
                "--prefix {narrow:?} is outside the fan-out's key filter {fan_out:?}: no key \
                 could match both; pass a prefix that starts with {fan_out:?}"
            )),
            (one, other) => Ok(one.or(other).unwrap_or("").to_owned()),
        }
    }
}

/// Connects, and takes the destinations from `spec`, or from what is
/// deployed for its source when it names none (with the settings their
/// functions were given).
pub async fn connect(spec: Spec, narrow: Option<String>) -> Result<Fanout, DeployError> {
    let session = Session::connect(&spec).await?;
    let spec = if spec.destinations.is_empty() {
        let edges = inventory::list(&session).await?;
        let ours = inventory::of_source(&edges, &spec.source);
        let spec = inventory::deployed_spec(spec, &ours);
        if spec.destinations.is_empty() {
            return Err(DeployError(format!(
                "no destinations are deployed for source bucket {}: name them with --dest DST \
                 (or run s3fan deploy first)",
                spec.source
            )));
        }
        spec
    } else {
        spec
    };
    // Also checks that each exists, before a long listing.
    let regions = find_regions(&session, &spec).await?;
    let ctx = Context::new(session, spec, regions, None)?;
    let filter = Filter {
        prefix: ctx.spec.prefix.clone(),
        suffix: ctx.spec.suffix.clone(),
        narrow: narrow.filter(|p| !p.is_empty()),
    };
    filter.listing_prefix().map_err(DeployError)?;
    let mut destinations = Vec::new();
    for bucket in ctx.spec.buckets() {
        // The handler's own settings: a copy made here is the one the
        // function would make.
        let target = Target::new(bucket.clone(), &ctx.function_settings(&bucket));
        let mut destination = Destination::of(&target, ctx.s3_for(&bucket)?);
        destination.elsewhere = ctx
            .region_of(&bucket)
            .filter(|region| *region != ctx.scope.region)
            .map(str::to_owned);
        destinations.push(destination);
    }
    Ok(Fanout {
        destinations,
        source: ctx.spec.source.clone(),
        filter,
        topic_arn: ctx.topic_arn(),
        region: ctx.scope.region.clone(),
        request_payer: ctx.spec.request_payer,
        list_concurrency: usize::from(DEFAULT_LIST_CONCURRENCY),
        s3: ctx.s3.clone(),
        sns: ctx.sns.clone(),
        cloudwatch: ctx.cloudwatch.clone(),
        scope: ctx.scope.clone(),
        iam: ctx.iam.clone(),
        s3control: crate::aws::s3control_client(&ctx.sdk),
        tags: ctx.tags(None),
    })
}

impl Fanout {
    /// The clients a copy to `destination` uses.
    pub fn clients(&self, destination: &Destination) -> S3Clients {
        self.source().clients(destination)
    }

    /// The source side of every comparison.
    fn source(&self) -> Source<'_> {
        Source {
            s3: &self.s3,
            bucket: &self.source,
            filter: &self.filter,
            request_payer: self.request_payer,
        }
    }

    fn source_listing(&self) -> impl Stream<Item = Result<listing::Entry, DeployError>> + '_ {
        source_listing(self.source(), None)
    }

    fn copies_listing<'a>(
        &'a self,
        destination: &'a Destination,
    ) -> impl Stream<Item = Result<listing::Entry, DeployError>> + 'a {
        copies_listing(self.source(), destination, None)
    }

    /// Every key of the source and of every destination, within the
    /// filter, once, as a row of what each holds: one pass for all of them,
    /// listed in slices at once (see `slices`).
    fn rows(&self) -> impl futures::Stream<Item = slices::Item> + Send + 'static {
        let side = |s3: &aws_sdk_s3::Client, bucket: &str, key_prefix: &str| slices::Side {
            s3: s3.clone(),
            bucket: bucket.to_owned(),
            key_prefix: key_prefix.to_owned(),
        };
        slices::rows(slices::Plan {
            source: side(&self.s3, &self.source, ""),
            copies: self
                .destinations
                .iter()
                .map(|d| side(&d.s3, &d.bucket, &d.key_prefix))
                .collect(),
            filter: self.filter.clone(),
            request_payer: self.request_payer,
            slices: self.list_concurrency,
        })
    }
}

/// The side a comparison reads from: the source bucket, within the filter.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub bucket: &'a str,
    pub filter: &'a Filter,
    /// Listings say the requester pays too.
    pub request_payer: bool,
}

impl Source<'_> {
    /// The clients a copy from this source to `destination` uses.
    pub fn clients(&self, destination: &Destination) -> S3Clients {
        S3Clients {
            source: self.s3.clone(),
            destination: destination.s3.clone(),
        }
    }
}

/// The source's objects within the filter, after `start_after` if given.
pub fn source_listing<'a>(
    source: Source<'a>,
    start_after: Option<&str>,
) -> impl Stream<Item = Result<listing::Entry, DeployError>> + 'a {
    let listing = listing::Listing {
        bucket: source.bucket,
        prefix: source.filter.listing_prefix().unwrap_or_default(),
        strip: "",
        start_after: start_after.map(str::to_owned),
        request_payer: source.request_payer,
    };
    listing::list(source.s3, listing)
        .try_filter(move |entry| std::future::ready(source.filter.admits(&entry.key)))
}

/// A destination's copies within the filter, keys less its key prefix,
/// after `start_after` (a key of the source) if given.
pub fn copies_listing<'a>(
    source: Source<'a>,
    destination: &'a Destination,
    start_after: Option<&str>,
) -> impl Stream<Item = Result<listing::Entry, DeployError>> + 'a {
    let prefix = source.filter.listing_prefix().unwrap_or_default();
    let listing = listing::Listing {
        bucket: &destination.bucket,
        prefix: format!("{}{prefix}", destination.key_prefix),
        strip: &destination.key_prefix,
        start_after: start_after.map(|key| format!("{}{key}", destination.key_prefix)),
        request_payer: source.request_payer,
    };
    listing::list(&destination.s3, listing)
        .try_filter(move |entry| std::future::ready(source.filter.admits(&entry.key)))
}

/// The source and one destination merged key by key within the filter,
/// after `start_after` if given: the one streaming diff of verify, backfill
/// and reconcile.
pub fn compare<'a>(
    source: Source<'a>,
    destination: &'a Destination,
    start_after: Option<&str>,
) -> impl Stream<Item = Result<diff::Verdict, DeployError>> + 'a {
    diff::merge(
        source_listing(source, start_after),
        copies_listing(source, destination, start_after),
    )
}

/// How many keys of each kind a report names, at most: enough to act on,
/// bounded whatever the bucket's size.
const SAMPLE: usize = 100;

fn sample(list: &mut Vec<String>, truncated: &mut bool, item: String) {
    if list.len() < SAMPLE {
        list.push(item);
    } else {
        *truncated = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(prefix: Option<&str>, suffix: Option<&str>, narrow: Option<&str>) -> Filter {
        Filter {
            prefix: prefix.map(str::to_owned),
            suffix: suffix.map(str::to_owned),
            narrow: narrow.map(str::to_owned),
        }
    }

    #[test]
    fn the_filter_admits_only_keys_within_every_prefix_and_the_suffix() {
        let f = filter(Some("docs/"), Some(".pdf"), Some("docs/2026/"));
        assert!(f.admits("docs/2026/a.pdf"));
        assert!(!f.admits("docs/2025/a.pdf"));
        assert!(!f.admits("docs/2026/a.txt"));
        assert!(filter(None, None, None).admits("anything"));
    }

    #[test]
    fn the_listing_prefix_is_the_narrower_one_or_an_error() {
        assert_eq!(filter(None, None, None).listing_prefix(), Ok(String::new()));
        assert_eq!(
            filter(Some("docs/"), None, Some("docs/2026/")).listing_prefix(),
            Ok("docs/2026/".into())
        );
        assert_eq!(
            filter(Some("docs/2026/"), None, Some("docs/")).listing_prefix(),
            Ok("docs/2026/".into())
        );
        assert_eq!(
            filter(None, None, Some("img/")).listing_prefix(),
            Ok("img/".into())
        );
        let err = filter(Some("docs/"), None, Some("img/"))
            .listing_prefix()
            .unwrap_err();
        assert!(
            err.contains("\"img/\"") && err.contains("\"docs/\""),
            "{err}"
        );
    }
}
