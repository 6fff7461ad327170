//! `s3fan verify`: is every object of the source in every destination, the
//! same? Exit status 0 only when all are in sync.

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::diff::{Merged, Verdict};
use super::watch::Watch;
use super::{Fanout, estimate, sample};
use crate::progress::human;

/// One destination compared with the source.
#[derive(Debug, Default, Serialize)]
pub struct DestinationReport {
    pub destination: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key_prefix: String,
    /// Keys present and equal on both sides.
    pub in_sync: u64,
    /// Of those, compared by size alone (a multipart ETag; see `diff`).
    pub size_only: u64,
    pub missing: u64,
    pub different: u64,
    /// In the destination (under its key prefix, within the filter) but not
    /// in the source: left by a delete when deletes are not replicated, or
    /// written there by something else.
    pub extra: u64,
    /// Up to 100 keys of each kind.
    pub missing_keys: Vec<String>,
    pub different_keys: Vec<String>,
    pub extra_keys: Vec<String>,
    /// Some kind had more keys than are named.
    pub truncated: bool,
    /// Set when the comparison could not finish (a listing failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DestinationReport {
    pub fn in_sync(&self) -> bool {
        self.error.is_none() && self.missing + self.different + self.extra == 0
    }
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub source: String,
    /// Ctrl-C stopped it: the counts cover the keys compared before.
    pub interrupted: bool,
    pub destinations: Vec<DestinationReport>,
}

/// Every destination compared with the source in one pass over all the
/// listings (see `slices`).
pub async fn verify(fanout: &Fanout) -> VerifyReport {
    let mut watch = Watch::new(
        format!("verify s3://{}", fanout.source),
        "compared",
        fanout.destinations.len(),
        estimate::source_objects(fanout).await,
    );
    let mut compared = 0u64;
    let mut reports: Vec<DestinationReport> = fanout
        .destinations
        .iter()
        .map(|destination| DestinationReport {
            destination: destination.bucket.clone(),
            key_prefix: destination.key_prefix.clone(),
            ..DestinationReport::default()
        })
        .collect();
    // After Ctrl-C no key is read; the report covers those compared.
    let listed = fanout
        .rows()
        .take_while(|_| std::future::ready(!crate::stop::asked()))
        .try_fold(&mut reports, |reports, merged| {
            match merged {
                Merged::Row(row) => {
                    compared += 1;
                    for (report, verdict) in reports.iter_mut().zip(row.verdicts()) {
                        if let Some(verdict) = verdict {
                            tally(report, verdict);
                        }
                    }
                }
                Merged::CopyFailed { copy, error } => {
                    reports[copy].error.get_or_insert_with(|| error.to_string());
                }
            }
            watch.update(compared, reports.iter().map(|_| (0, 0)), || lines(reports));
            std::future::ready(Ok(reports))
        })
        .await;
    if let Err(err) = listed {
        for report in &mut reports {
            report.error.get_or_insert_with(|| err.to_string());
        }
    }
    watch.finish(compared, lines(&reports));
    let interrupted = crate::stop::asked();
    // Slices finish in any order: the keys named are sorted, as a serial
    // listing would have found them.
    for report in &mut reports {
        report.missing_keys.sort();
        report.different_keys.sort();
        report.extra_keys.sort();
    }
    VerifyReport {
        ok: !interrupted && reports.iter().all(DestinationReport::in_sync),
        source: fanout.source.clone(),
        interrupted,
        destinations: reports,
    }
}

/// A progress line per destination.
fn lines(reports: &[DestinationReport]) -> impl Iterator<Item = String> + '_ {
    reports
        .iter()
        .map(|r| format!("s3://{}/{}: {}", r.destination, r.key_prefix, counts(r)))
}

fn tally(report: &mut DestinationReport, verdict: Verdict) {
    match verdict {
        Verdict::Same { size_only, .. } => {
            report.in_sync += 1;
            report.size_only += u64::from(size_only);
        }
        Verdict::Missing(entry) => {
            report.missing += 1;
            sample(&mut report.missing_keys, &mut report.truncated, entry.key);
        }
        Verdict::Different {
            source,
            destination,
            what,
        } => {
            report.different += 1;
            let detail = match what {
                "size" => format!(
                    "{} (size {} here, {} in the source)",
                    source.key, destination.size, source.size
                ),
                _ => format!(
                    "{} ({what} {} here, {} in the source)",
                    source.key, destination.etag, source.etag
                ),
            };
            sample(&mut report.different_keys, &mut report.truncated, detail);
        }
        Verdict::Extra(entry) => {
            report.extra += 1;
            sample(&mut report.extra_keys, &mut report.truncated, entry.key);
        }
    }
}

fn counts(report: &DestinationReport) -> String {
    format!(
        "{} in sync, {} missing, {} different, {} extra",
        human::count(report.in_sync),
        human::count(report.missing),
        human::count(report.different),
        human::count(report.extra)
    )
}

impl crate::report::Report for VerifyReport {
    fn render_text(&self) -> String {
        let mut out = format!("s3fan verify: s3://{}\n", self.source);
        for d in &self.destinations {
            out.push_str(&format!(
                "  s3://{}/{}  {}{}  {}\n",
                d.destination,
                d.key_prefix,
                counts(d),
                if d.size_only > 0 {
                    format!(" ({} compared by size only: multipart ETags)", d.size_only)
                } else {
                    String::new()
                },
                if d.in_sync() {
                    "in sync"
                } else {
                    "OUT OF SYNC"
                }
            ));
            if let Some(error) = &d.error {
                out.push_str(&format!("    could not finish: {error}\n"));
            }
            for (kind, keys) in [
                ("missing", &d.missing_keys),
                ("different", &d.different_keys),
                ("extra", &d.extra_keys),
            ] {
                for key in keys.iter().take(10) {
                    out.push_str(&format!("    {kind:<9} {key}\n"));
                }
                if keys.len() > 10 {
                    out.push_str(&format!(
                        "    ... (--output json names up to 100 {kind} keys)\n"
                    ));
                }
            }
        }
        out.push_str(if self.interrupted {
            "interrupted (Ctrl-C): only the keys before it were compared; run verify again\n"
        } else if self.ok {
            "every destination is in sync\n"
        } else {
            "not in sync: `s3fan backfill` copies what is missing or different\n"
        });
        out
    }

    fn verdict(&self) -> crate::report::Verdict {
        let failed = self.destinations.iter().any(|d| d.error.is_some());
        crate::report::Verdict::of(failed, !self.ok)
    }
}
