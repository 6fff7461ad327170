//! What a fan-out's work costs in AWS, and what Amazon S3 Replication
//! would cost for the same work: `deploy --dry-run` (per million new
//! objects, and for the objects the bucket holds now) and `backfill
//! --dry-run` (for the copies it would make). Pure: the counts come in,
//! dollars come out, at the list prices of [`prices`]. What it reads from
//! AWS (the bucket's size, the functions' measured duration) is in
//! [`measure`].
//!
//! Storage is left out on both sides: a copy is stored at the same price
//! whichever tool made it.

pub mod measure;
pub mod prices;
mod render;

use serde::Serialize;

use crate::handler::limits::CopySettings;
use crate::handler::multipart;
use prices::{GB, Price};

/// The requests one copy makes, priced in two classes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Requests {
    /// CopyObject; or CreateMultipartUpload, an UploadPartCopy per part
    /// and CompleteMultipartUpload.
    pub put: u64,
    /// A multipart copy's HeadObject and GetObjectTagging.
    pub get: u64,
}

impl Requests {
    /// What the handler's copy of an object of `size` bytes sends
    /// (`handler::copy::copy`): one CopyObject up to the multipart
    /// threshold, past it a HEAD, the tags, and the parts.
    pub fn of_copy(size: u64, settings: &CopySettings) -> Requests {
        if size <= settings.multipart_threshold {
            return Requests { put: 1, get: 0 };
        }
        let parts = multipart::part_count(size, settings.part_size);
        Requests {
            put: parts + 2,
            get: 2,
        }
    }
}

/// The copies to one destination.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Copies {
    pub destination: String,
    pub objects: u64,
    pub bytes: u64,
    pub requests: Requests,
    /// The destination's region when it is not the source's: its bytes
    /// cross regions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elsewhere: Option<String>,
}

impl Copies {
    pub fn new(destination: &str, elsewhere: Option<String>) -> Copies {
        Copies {
            destination: destination.to_owned(),
            elsewhere,
            ..Copies::default()
        }
    }

    /// `objects` copies of `average` bytes each.
    pub fn uniform(mut self, objects: u64, average: u64, settings: &CopySettings) -> Copies {
        let each = Requests::of_copy(average, settings);
        self.objects = objects;
        self.bytes = objects.saturating_mul(average);
        self.requests = Requests {
            put: each.put * objects,
            get: each.get * objects,
        };
        self
    }
}

/// How long an invocation of a destination's function takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Invocation {
    pub seconds: f64,
    /// The function's mean `Duration` in CloudWatch, rather than assumed.
    pub measured: bool,
}

/// Before a function has run there is nothing to measure: a server-side
/// copy within a region answers in about a tenth of a second, and S3 copies
/// about 250 MB a second of a large object. (An overestimate for many
/// small objects; the measured duration replaces it after a deploy.)
const ASSUMED_LATENCY: f64 = 0.1;
const ASSUMED_BYTES_PER_SECOND: f64 = 250e6;

impl Invocation {
    pub fn assumed(average_bytes: u64) -> Invocation {
        Invocation {
            seconds: ASSUMED_LATENCY + average_bytes as f64 / ASSUMED_BYTES_PER_SECOND,
            measured: false,
        }
    }
}

/// A destination's function, as deploy configures it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Function {
    pub memory_mb: i32,
    pub arm64: bool,
    pub invocation: Invocation,
}

impl Function {
    fn gb_seconds(&self, invocations: u64) -> f64 {
        // Lambda bills each invocation's duration rounded up to the ms.
        let billed = (self.invocation.seconds * 1000.0).ceil() / 1000.0;
        invocations as f64 * billed * f64::from(self.memory_mb) / 1024.0
    }

    fn price(&self) -> Price {
        if self.arm64 {
            prices::LAMBDA_ARM64
        } else {
            prices::LAMBDA_X86_64
        }
    }
}

/// One priced item of an estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub item: &'static str,
    pub quantity: f64,
    pub unit: &'static str,
    pub usd: f64,
    /// How the quantity was found, where it is not a count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
}

/// What one way of doing the work costs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub by: &'static str,
    pub usd: f64,
    pub items: Vec<Item>,
    /// What the figure leaves out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

impl Estimate {
    fn new(by: &'static str, note: Option<&'static str>) -> Estimate {
        Estimate {
            by,
            usd: 0.0,
            items: Vec::new(),
            note,
        }
    }

    /// Adds `quantity` at `price`.
    fn add(&mut self, item: &'static str, quantity: f64, price: Price) {
        self.push(Item {
            item,
            quantity,
            unit: price.unit,
            usd: price.of(quantity),
            basis: None,
        });
    }

    fn push(&mut self, item: Item) {
        self.usd += item.usd;
        self.items.push(item);
    }

    /// Drops the items of no quantity, so a reader sees what is paid.
    fn finish(mut self) -> Estimate {
        self.items.retain(|item| item.quantity > 0.0);
        self
    }
}

fn requests(copies: &[Copies]) -> Requests {
    copies.iter().fold(Requests::default(), |sum, c| Requests {
        put: sum.put + c.requests.put,
        get: sum.get + c.requests.get,
    })
}

fn cross_region_gb(copies: &[Copies]) -> f64 {
    copies
        .iter()
        .filter(|c| c.elsewhere.is_some())
        .map(|c| c.bytes as f64 / GB)
        .sum()
}

/// s3fan deployed: each new object is one SNS publish, and per destination
/// an invocation of its function that copies it. `destinations` pairs each
/// destination's copies with its function.
pub fn s3fan_events(new_objects: u64, destinations: &[(Copies, Function)]) -> Estimate {
    let copies: Vec<Copies> = destinations.iter().map(|(c, _)| c.clone()).collect();
    let mut estimate = copy_requests(Estimate::new("s3fan", None), &copies);
    estimate.add("SNS publishes", new_objects as f64, prices::SNS_PUBLISH);
    let invocations: u64 = destinations.iter().map(|(c, _)| c.objects).sum();
    estimate.add(
        "Lambda invocations",
        invocations as f64,
        prices::LAMBDA_REQUEST,
    );
    let (gb_seconds, usd) = destinations.iter().fold((0.0, 0.0), |(s, u), (c, f)| {
        let gb_seconds = f.gb_seconds(c.objects);
        (s + gb_seconds, u + f.price().of(gb_seconds))
    });
    // Each function at its own architecture's price.
    estimate.push(Item {
        item: "Lambda duration",
        quantity: gb_seconds,
        unit: prices::LAMBDA_X86_64.unit,
        usd,
        basis: Some(duration_basis(destinations)),
    });
    transfer(&mut estimate, &copies);
    estimate.finish()
}

/// "128 MB, 0.25 s each (assumed)": what the GB-seconds rest on.
fn duration_basis(destinations: &[(Copies, Function)]) -> String {
    let Some((_, first)) = destinations.first() else {
        return String::new();
    };
    let measured = destinations.iter().all(|(_, f)| f.invocation.measured);
    let assumed = destinations.iter().all(|(_, f)| !f.invocation.measured);
    let seconds: f64 = destinations
        .iter()
        .map(|(_, f)| f.invocation.seconds)
        .sum::<f64>()
        / destinations.len() as f64;
    format!(
        "{} MB{}, {:.3} s each{}",
        first.memory_mb,
        if first.arm64 { " arm64" } else { "" },
        seconds,
        if measured {
            " (the functions' mean Duration in CloudWatch)"
        } else if assumed {
            " (assumed: no function has run yet to measure)"
        } else {
            " (measured where a function has run, else assumed)"
        }
    )
}

/// Amazon S3 Replication doing the same copies: a replication PUT per
/// object and destination, the same transfer, and with Replication Time
/// Control $0.015 a GB besides.
pub fn s3_replication(copies: &[Copies], time_control: bool) -> Estimate {
    let (by, note) = if time_control {
        ("S3 Replication with RTC", None)
    } else {
        (
            "S3 Replication",
            Some(
                "versioning must be on in the source and every destination, and the \
                 noncurrent versions it keeps are stored and billed: not counted here",
            ),
        )
    };
    let mut estimate = Estimate::new(by, note);
    let objects: u64 = copies.iter().map(|c| c.objects).sum();
    estimate.add("replication PUT requests", objects as f64, prices::S3_PUT);
    transfer(&mut estimate, copies);
    if time_control {
        let gb: f64 = copies.iter().map(|c| c.bytes as f64 / GB).sum();
        estimate.add(
            "Replication Time Control",
            gb,
            prices::REPLICATION_TIME_CONTROL,
        );
    }
    estimate.finish()
}

/// `s3fan backfill` from this machine: its lookups (`lookups.put` LIST
/// pages of the source and every destination, or with a list of objects
/// `lookups.get` HeadObjects), and the copies. No Lambda, no SNS; no byte
/// passes through the machine.
pub fn s3fan_backfill(lookups: Requests, copies: &[Copies]) -> Estimate {
    let mut estimate = Estimate::new("s3fan backfill", None);
    estimate.add("LIST requests", lookups.put as f64, prices::S3_PUT);
    let requests = requests(copies);
    estimate.add("COPY and PUT requests", requests.put as f64, prices::S3_PUT);
    estimate.add(
        "HEAD and GET requests",
        (requests.get + lookups.get) as f64,
        prices::S3_GET,
    );
    transfer(&mut estimate, copies);
    estimate.finish()
}

/// S3 Batch Replication copying the same objects: one Batch Operations
/// job over a manifest of every object some destination lacks, then the
/// replication's requests and transfer.
pub fn batch_replication(copies: &[Copies]) -> Estimate {
    let mut estimate = Estimate::new(
        "S3 Batch Replication",
        Some(
            "it needs S3 Replication configured first (versioning on every bucket); the \
             manifest it generates and its completion report are billed besides",
        ),
    );
    estimate.add("Batch Operations job", 1.0, prices::BATCH_JOB);
    // One manifest for every destination: an object counts once, however
    // many destinations lack it (at least as many as the one that lacks most).
    let objects = copies.iter().map(|c| c.objects).max().unwrap_or(0);
    estimate.add("objects processed", objects as f64, prices::BATCH_OBJECT);
    let replicated: u64 = copies.iter().map(|c| c.objects).sum();
    estimate.add(
        "replication PUT requests",
        replicated as f64,
        prices::S3_PUT,
    );
    transfer(&mut estimate, copies);
    estimate.finish()
}

fn copy_requests(mut estimate: Estimate, copies: &[Copies]) -> Estimate {
    let requests = requests(copies);
    estimate.add("COPY and PUT requests", requests.put as f64, prices::S3_PUT);
    estimate.add("HEAD and GET requests", requests.get as f64, prices::S3_GET);
    estimate
}

fn transfer(estimate: &mut Estimate, copies: &[Copies]) {
    estimate.add(
        "transfer to other regions",
        cross_region_gb(copies),
        prices::INTER_REGION,
    );
}

/// One piece of work, priced each way.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    /// "per million new objects", "the 10,000 objects there now"
    pub label: String,
    pub objects: u64,
    pub bytes: u64,
    /// Where the sizes came from.
    pub basis: String,
    pub estimates: Vec<Estimate>,
}

/// The estimate a dry run prints, and carries in its JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostReport {
    pub prices_as_of: &'static str,
    pub prices_region: &'static str,
    pub prices_from: Vec<&'static str>,
    pub cases: Vec<Case>,
}

impl CostReport {
    pub fn new(cases: Vec<Case>) -> CostReport {
        CostReport {
            prices_as_of: prices::AS_OF,
            prices_region: prices::REGION,
            prices_from: vec![
                prices::S3_PUT.source,
                prices::SNS_PUBLISH.source,
                prices::LAMBDA_REQUEST.source,
            ],
            cases,
        }
    }
}

#[cfg(test)]
mod tests;
