//! What a backfill's dry run found to copy, priced: the copies as they
//! would be made, and the LIST or HeadObject requests spent finding them.

use super::DestinationReport;
use crate::cost;
use crate::handler::limits::CopySettings;
use crate::progress::human;
use crate::sync::Fanout;

/// What a dry run found to copy, priced: those copies, and a million
/// objects of their mean size, by this backfill and by S3 Batch
/// Replication. `named`: the objects came from a list, each looked up
/// with a HeadObject per destination, rather than from listings.
pub(super) fn estimate(
    fanout: &Fanout,
    reports: &[DestinationReport],
    examined: u64,
    named: bool,
) -> cost::CostReport {
    let copies: Vec<cost::Copies> = reports
        .iter()
        .zip(&fanout.destinations)
        .map(|(report, destination)| cost::Copies {
            objects: report.copied,
            bytes: report.bytes,
            requests: report.requests,
            ..cost::Copies::new(&report.destination, destination.elsewhere.clone())
        })
        .collect();
    let lookups = |examined: u64, per_destination: &dyn Fn(&DestinationReport) -> u64| {
        if named {
            cost::Requests {
                put: 0,
                get: examined * reports.len() as u64,
            }
        } else {
            // A page of up to 1,000 keys per LIST, at least one, in the
            // source and in each destination (about: slices end in part pages).
            let pages = |keys: u64| keys.div_ceil(1000).max(1);
            cost::Requests {
                put: pages(examined)
                    + reports
                        .iter()
                        .map(|r| pages(per_destination(r)))
                        .sum::<u64>(),
                get: 0,
            }
        }
    };
    let at_hand = lookups(examined, &|r| r.in_sync + r.extra);
    let copied: u64 = copies.iter().map(|c| c.objects).sum();
    let bytes: u64 = copies.iter().map(|c| c.bytes).sum();
    let average = bytes
        .checked_div(copied)
        .unwrap_or(crate::handler::limits::MIB);
    let million: Vec<cost::Copies> = copies
        .iter()
        .map(|c| {
            cost::Copies::new(&c.destination, c.elsewhere.clone()).uniform(
                1_000_000,
                average,
                &CopySettings::default(),
            )
        })
        .collect();
    // A million objects that every destination lacks.
    let per_million = lookups(1_000_000, &|_| 0);
    let max_copies = copies.iter().map(|c| c.objects).max().unwrap_or(0);
    cost::CostReport::new(vec![
        cost::Case {
            label: format!(
                "the {} copies this backfill would make",
                human::count(copied)
            ),
            objects: max_copies,
            bytes,
            basis: format!(
                "{} keys examined, {} to copy",
                human::count(examined),
                human::bytes(bytes)
            ),
            estimates: vec![
                cost::s3fan_backfill(at_hand, &copies),
                cost::batch_replication(&copies),
            ],
        },
        cost::Case {
            label: "per million objects missing from every destination".into(),
            objects: 1_000_000,
            bytes: 1_000_000 * average,
            basis: if copied > 0 {
                format!("{} each, the mean of those to copy", human::bytes(average))
            } else {
                format!("{} each, assumed: nothing to copy", human::bytes(average))
            },
            estimates: vec![
                cost::s3fan_backfill(per_million, &million),
                cost::batch_replication(&million),
            ],
        },
    ])
}
