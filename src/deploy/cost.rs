//! What the fan-out a deploy plans will cost, for `deploy --dry-run`: per
//! million new objects, and for the objects the bucket holds now (what a
//! backfill would copy at most), each beside S3 Replication's price for the
//! same work. The sizes are the bucket's storage metrics in CloudWatch and
//! the functions' measured duration where they have run; what is assumed
//! instead is said.

use crate::cost::{self, Case, Copies, CostReport, Function, Invocation, measure};
use crate::fanout::{Context, names};
use crate::handler::limits::{CopySettings, MIB};
use crate::package::Architecture;
use crate::progress::human;

/// The object size assumed when CloudWatch has none for the bucket.
const ASSUMED_AVERAGE: u64 = MIB;

pub async fn estimate(ctx: &Context) -> CostReport {
    let storage = measure::bucket_storage(&ctx.cloudwatch, &ctx.spec.source).await;
    let buckets = ctx.spec.buckets();
    let function_names: Vec<String> = buckets.iter().map(|b| names::function_name(b)).collect();
    let durations = measure::function_durations(&ctx.cloudwatch, &function_names).await;
    let (average, size_basis) = match storage.and_then(|s| s.average()) {
        Some(average) => (
            average,
            format!(
                "{} each, the bucket's mean in its storage metrics",
                human::bytes(average)
            ),
        ),
        None => (
            ASSUMED_AVERAGE,
            format!(
                "{} each, assumed: CloudWatch has no storage metrics for the bucket yet",
                human::bytes(ASSUMED_AVERAGE)
            ),
        ),
    };
    let arm64 = ctx
        .code
        .as_ref()
        .is_some_and(|code| code.architecture == Architecture::Arm64);
    let settings = CopySettings::default();
    let copies = |objects: u64| -> Vec<Copies> {
        buckets
            .iter()
            .map(|bucket| {
                let elsewhere = ctx
                    .region_of(bucket)
                    .filter(|region| *region != ctx.scope.region)
                    .map(str::to_owned);
                Copies::new(bucket, elsewhere).uniform(objects, average, &settings)
            })
            .collect()
    };
    let functions: Vec<Function> = durations
        .iter()
        .map(|measured| Function {
            memory_mb: ctx.spec.memory,
            arm64,
            invocation: match measured {
                Some(seconds) => Invocation {
                    seconds: *seconds,
                    measured: true,
                },
                None => Invocation::assumed(average),
            },
        })
        .collect();
    let million = copies(1_000_000);
    let events: Vec<(Copies, Function)> = million.iter().cloned().zip(functions).collect();
    let mut cases = vec![Case {
        label: "per million new objects".into(),
        objects: 1_000_000,
        bytes: 1_000_000 * average,
        basis: format!("{size_basis}; {}", filter_basis(ctx)),
        estimates: vec![
            cost::s3fan_events(1_000_000, &events),
            cost::s3_replication(&million, false),
            cost::s3_replication(&million, true),
        ],
    }];
    if let Some(storage) = storage.filter(|s| s.objects > 0) {
        let now = copies(storage.objects);
        let pages = storage.objects.div_ceil(1000);
        // A first backfill lists the source and each (empty) destination.
        let lookups = cost::Requests {
            put: pages + buckets.len() as u64,
            get: 0,
        };
        cases.push(Case {
            label: format!(
                "to copy the {} objects there now (backfill)",
                human::count(storage.objects)
            ),
            objects: storage.objects,
            bytes: storage.objects * average,
            basis: "the bucket's storage metrics; `backfill --dry-run` counts what is missing"
                .into(),
            estimates: vec![
                cost::s3fan_backfill(lookups, &now),
                cost::batch_replication(&now),
            ],
        });
    }
    CostReport::new(cases)
}

/// A key filter lets through some share of the bucket's objects, which no
/// metric says.
fn filter_basis(ctx: &Context) -> &'static str {
    if ctx.spec.prefix.is_some() || ctx.spec.suffix.is_some() {
        "the same for every object --prefix and --suffix let through"
    } else {
        "a publish per object and an invocation per object and destination"
    }
}
