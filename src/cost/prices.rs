//! The list prices every estimate uses: one dated table, each price with
//! the page it was read from. us-east-1, on-demand, no free tier (the free
//! tier is per account, not per workload, so an estimate leaves it out).
//! Other regions cost about the same or a little more; the date says how
//! old the table is, and a reader can check each price at its source.

/// When the prices below were read from their pages.
pub const AS_OF: &str = "2026-12-01";

/// The region of the list prices.
pub const REGION: &str = "us-east-1";

/// One price: US dollars per `per` units of `unit`, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Price {
    pub usd: f64,
    pub per: u64,
    pub unit: &'static str,
    pub source: &'static str,
}

impl Price {
    /// The cost of `quantity` units.
    pub fn of(&self, quantity: f64) -> f64 {
        self.usd * quantity / self.per as f64
    }
}

const S3: &str = "https://aws.amazon.com/s3/pricing/";
const SNS: &str = "https://aws.amazon.com/sns/pricing/";
const LAMBDA: &str = "https://aws.amazon.com/lambda/pricing/";

/// S3 Standard's PUT, COPY, POST and LIST requests (CopyObject,
/// UploadPartCopy, CreateMultipartUpload, CompleteMultipartUpload,
/// ListObjectsV2), and S3 Replication's replication PUT requests into
/// S3 Standard.
pub const S3_PUT: Price = Price {
    usd: 0.005,
    per: 1_000,
    unit: "requests",
    source: S3,
};

/// S3 Standard's GET, SELECT and all other requests (HeadObject,
/// GetObjectTagging).
pub const S3_GET: Price = Price {
    usd: 0.0004,
    per: 1_000,
    unit: "requests",
    source: S3,
};

/// Data transfer from S3 in us-east-1 to another AWS region: what a copy
/// to a destination elsewhere pays, S3 Replication's included.
pub const INTER_REGION: Price = Price {
    usd: 0.02,
    per: 1,
    unit: "GB",
    source: S3,
};

/// S3 Replication Time Control, per GB replicated.
pub const REPLICATION_TIME_CONTROL: Price = Price {
    usd: 0.015,
    per: 1,
    unit: "GB",
    source: S3,
};

/// S3 Batch Operations, which Batch Replication runs on: per job...
pub const BATCH_JOB: Price = Price {
    usd: 0.25,
    per: 1,
    unit: "jobs",
    source: S3,
};

/// ... and per object it processes.
pub const BATCH_OBJECT: Price = Price {
    usd: 1.00,
    per: 1_000_000,
    unit: "objects",
    source: S3,
};

/// SNS standard topics: a publish, each 64 KB of payload counting as one
/// (an S3 event is about 1.5 KB). Delivery to Lambda is free.
pub const SNS_PUBLISH: Price = Price {
    usd: 0.50,
    per: 1_000_000,
    unit: "requests",
    source: SNS,
};

/// Lambda: an invocation...
pub const LAMBDA_REQUEST: Price = Price {
    usd: 0.20,
    per: 1_000_000,
    unit: "requests",
    source: LAMBDA,
};

/// ... and a GB-second of duration, on x86_64...
pub const LAMBDA_X86_64: Price = Price {
    usd: 0.000_016_666_7,
    per: 1,
    unit: "GB-seconds",
    source: LAMBDA,
};

/// ... and on arm64 (Graviton), about 20% less.
pub const LAMBDA_ARM64: Price = Price {
    usd: 0.000_013_333_4,
    per: 1,
    unit: "GB-seconds",
    source: LAMBDA,
};

/// Bytes in the GB that S3 and Lambda bill by (a GiB: AWS bills storage
/// and transfer in binary gigabytes).
pub const GB: f64 = (1u64 << 30) as f64;
