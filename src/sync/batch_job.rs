//! `s3fan backfill --via-batch-operations`: past what one machine lists and
//! copies, AWS's own engine for existing objects does the work. One S3 Batch
//! Operations job per destination calls that destination's function
//! (`LambdaInvoke`, invocation schema 2.0) for every object of a manifest:
//! an S3 Inventory report as S3 wrote it (`--inventory`), or the CSV
//! manifest s3fan writes from `--files-from`. The function answers each task
//! (`crate::lambda`), a failed one also lands in the failure queue, and the
//! job writes a completion report of its failed tasks under `--report-to`.
//!
//! Run again with the same manifest, it creates no second job: each job's
//! ClientRequestToken is derived from the source, the destination and the
//! manifest's ETag, and S3 answers a repeated token with the first job.

use std::time::Duration;

use aws_sdk_s3control::types::{
    JobManifest, JobManifestFieldName, JobManifestFormat, JobManifestLocation, JobManifestSpec,
    JobOperation, JobReport, JobReportFormat, JobReportScope, LambdaInvokeOperation, S3Tag,
};
use futures::TryStreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use super::Fanout;
use super::named::{ObjectList, files_from};
use crate::deploy::batch_role;
use crate::fanout::error::is_code;
use crate::fanout::names::{self, TAG_DESTINATION, batch_role_name, function_name};
use crate::fanout::{DeployError, aws_failure};
use crate::handler::encoding::encode_event_key;

/// Every job s3fan makes says so first in its description: `status` finds
/// a source's jobs by it.
pub fn description(source: &str, destination: &str) -> String {
    format!("s3fan backfill s3://{source} -> s3://{destination}")
}

/// A job of `backfill --via-batch-operations`, as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub job_id: String,
    pub destination: String,
    /// As S3 says it: `New`, `Preparing`, `Active`, `Complete`, `Failed`...
    pub status: String,
    /// When it was made, as RFC 3339.
    pub created: Option<String>,
    pub tasks: i64,
    pub succeeded: i64,
    pub failed: i64,
}

impl JobStatus {
    /// `Complete: 4 of 4 tasks done, 1 failed (job ID, made T)`.
    pub fn render(&self) -> String {
        format!(
            "{} to s3://{}: {}, {} of {} tasks done, {} failed (made {})",
            self.job_id,
            self.destination,
            self.status,
            self.succeeded + self.failed,
            self.tasks,
            self.failed,
            self.created
                .as_deref()
                .unwrap_or("at a time S3 did not say"),
        )
    }
}

/// The jobs `backfill --via-batch-operations` made for `source` in the
/// last 90 days (as long as S3 lists a job), newest first.
pub async fn list(
    s3control: &aws_sdk_s3control::Client,
    account: &str,
    source: &str,
) -> Result<Vec<JobStatus>, DeployError> {
    let ours = description(source, "");
    let mut jobs = Vec::new();
    let mut pages = s3control
        .list_jobs()
        .account_id(account)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|err| aws_failure("cannot list the S3 Batch Operations jobs", &err))?;
        for job in page.jobs() {
            let Some(destination) = job.description().and_then(|d| d.strip_prefix(&ours)) else {
                continue;
            };
            let progress = job.progress_summary();
            jobs.push(JobStatus {
                job_id: job.job_id().unwrap_or_default().to_owned(),
                destination: destination.to_owned(),
                status: job
                    .status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                created: job
                    .creation_time()
                    .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
                tasks: progress
                    .and_then(|p| p.total_number_of_tasks())
                    .unwrap_or(0),
                succeeded: progress
                    .and_then(|p| p.number_of_tasks_succeeded())
                    .unwrap_or(0),
                failed: progress
                    .and_then(|p| p.number_of_tasks_failed())
                    .unwrap_or(0),
            });
        }
    }
    jobs.sort_by(|a, b| b.created.cmp(&a.created));
    Ok(jobs)
}

/// How long CreateJob is tried again while IAM makes a new role usable.
const ROLE_WAIT: Duration = Duration::from_secs(60);

/// Where completion reports (and a written manifest) go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportTo {
    pub bucket: String,
    pub prefix: String,
}

impl ReportTo {
    /// `s3://BUCKET/PREFIX`; the prefix may be empty.
    pub fn parse(url: &str) -> Result<ReportTo, String> {
        let rest = url.strip_prefix("s3://").unwrap_or_default();
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!(
                "--report-to {url:?} is not an S3 location: give s3://BUCKET/PREFIX"
            ));
        }
        let prefix = match prefix.trim_end_matches('/') {
            "" => String::new(),
            trimmed => format!("{trimmed}/"),
        };
        Ok(ReportTo {
            bucket: bucket.to_owned(),
            prefix,
        })
    }
}

pub struct Request {
    pub objects: ObjectList,
    /// Required with `--files-from`; with `--inventory`, the inventory's
    /// own bucket under `s3fan-batch/` when not given.
    pub report_to: Option<ReportTo>,
    pub dry_run: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct BatchReport {
    pub ok: bool,
    pub source: String,
    pub dry_run: bool,
    pub role: String,
    /// `s3://` of the manifest every job reads.
    pub manifest: String,
    /// `s3://` of where the jobs write their completion reports.
    pub reports: String,
    pub jobs: Vec<Job>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Job {
    pub destination: String,
    pub function: String,
    /// None with --dry-run.
    pub job_id: Option<String>,
}

impl crate::report::Report for BatchReport {
    fn render_text(&self) -> String {
        let mut out = format!(
            "s3fan backfill --via-batch-operations{}: s3://{}\n  manifest {}\n  reports  {}\n  role     {}\n",
            if self.dry_run { " --dry-run" } else { "" },
            self.source,
            self.manifest,
            self.reports,
            self.role,
        );
        for job in &self.jobs {
            match &job.job_id {
                Some(id) => out.push_str(&format!(
                    "  job {id}: every object to s3://{} by function {}\n",
                    job.destination, job.function
                )),
                None => out.push_str(&format!(
                    "  would create a job: every object to s3://{} by function {}\n",
                    job.destination, job.function
                )),
            }
        }
        match &self.error {
            Some(error) => out.push_str(&format!(
                "  stopped: {error}\n  run the same command again: a job already made is not made twice\n"
            )),
            None if !self.dry_run => out.push_str(
                "  the jobs run on AWS now: `s3fan status` shows their progress, \
                 `s3fan failures` what failed\n",
            ),
            None => {}
        }
        out
    }

    fn verdict(&self) -> crate::report::Verdict {
        crate::report::Verdict::of(!self.ok, self.dry_run && !self.jobs.is_empty())
    }
}

/// A manifest as a job reads it, and what the role must read of it.
struct Manifest {
    bucket: String,
    key: String,
    etag: String,
    format: JobManifestFormat,
    /// Object ARNs (wildcards allowed) the role may read.
    reads: Vec<String>,
}

pub async fn backfill(fanout: &Fanout, request: &Request) -> BatchReport {
    let mut report = BatchReport {
        source: fanout.source.clone(),
        dry_run: request.dry_run,
        role: batch_role_name(&fanout.source),
        ..BatchReport::default()
    };
    let result = run(fanout, request, &mut report).await;
    report.error = result.err().map(|err| err.to_string());
    report.ok = report.error.is_none();
    report
}

async fn run(
    fanout: &Fanout,
    request: &Request,
    report: &mut BatchReport,
) -> Result<(), DeployError> {
    let report_to = report_location(fanout, request)?;
    report.reports = format!("s3://{}/{}", report_to.bucket, report_to.prefix);
    let manifest = manifest(fanout, request, &report_to).await?;
    report.manifest = format!("s3://{}/{}", manifest.bucket, manifest.key);
    let functions: Vec<(String, String)> = fanout
        .destinations
        .iter()
        .map(|d| (d.bucket.clone(), function_name(&d.bucket)))
        .collect();
    if request.dry_run {
        report.jobs = functions
            .into_iter()
            .map(|(destination, function)| Job {
                destination,
                function,
                job_id: None,
            })
            .collect();
        return Ok(());
    }
    let function_arns: Vec<String> = functions
        .iter()
        .map(|(_, function)| fanout.scope.function_arn(function))
        .collect();
    let created = batch_role::write(
        &fanout.iam,
        &fanout.source,
        &fanout.tags,
        &role_policy(fanout, &manifest, &report_to, &function_arns),
    )
    .await?;
    for ((destination, function), arn) in functions.into_iter().zip(&function_arns) {
        let job_id = create_job(
            fanout,
            &report.role,
            &manifest,
            &report_to,
            &destination,
            arn,
            created,
        )
        .await?;
        report.jobs.push(Job {
            destination,
            function,
            job_id: Some(job_id),
        });
    }
    Ok(())
}

fn report_location(fanout: &Fanout, request: &Request) -> Result<ReportTo, DeployError> {
    let report_to = match (&request.report_to, &request.objects) {
        (Some(report_to), _) => report_to.clone(),
        (None, ObjectList::Inventory { bucket, .. }) => ReportTo {
            bucket: bucket.clone(),
            prefix: format!("s3fan-batch/{}/", fanout.source),
        },
        (None, ObjectList::FilesFrom(_)) => {
            return Err(DeployError(
                "--via-batch-operations --files-from writes a manifest for the jobs and needs a \
                 place for it and their reports: add --report-to s3://BUCKET/PREFIX"
                    .into(),
            ));
        }
    };
    if report_to.bucket == fanout.source {
        return Err(DeployError(format!(
            "--report-to s3://{}/...: the source bucket itself; its new objects would be fanned \
             out to every destination. Name another bucket",
            fanout.source
        )));
    }
    Ok(report_to)
}

async fn manifest(
    fanout: &Fanout,
    request: &Request,
    report_to: &ReportTo,
) -> Result<Manifest, DeployError> {
    match &request.objects {
        ObjectList::Inventory { bucket, key } => {
            let head = fanout
                .s3
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|err| {
                    aws_failure(
                        format!("cannot read the inventory manifest s3://{bucket}/{key}"),
                        &err,
                    )
                })?;
            // The report's folder (`.../CONFIG/`), whose `data/` files the
            // job reads: the manifest is at `.../CONFIG/DATE/manifest.json`.
            let folder = key
                .rsplitn(3, '/')
                .nth(2)
                .map(|f| format!("{f}/"))
                .unwrap_or_default();
            Ok(Manifest {
                bucket: bucket.clone(),
                key: key.clone(),
                etag: head
                    .e_tag()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_owned(),
                format: JobManifestFormat::S3InventoryReportCsv20161130,
                reads: vec![
                    fanout.scope.bucket_arn(&format!("{bucket}/{key}")),
                    fanout.scope.bucket_arn(&format!("{bucket}/{folder}*")),
                ],
            })
        }
        ObjectList::FilesFrom(path) => {
            let csv = manifest_csv(
                &fanout.source,
                files_from(path.clone()).map_ok(|named| named.key),
            )
            .await?;
            let key = format!(
                "{}manifests/{}.csv",
                report_to.prefix,
                names::digest(&csv, 16)
            );
            if request.dry_run {
                return Ok(Manifest {
                    bucket: report_to.bucket.clone(),
                    key,
                    etag: String::new(),
                    format: JobManifestFormat::S3BatchOperationsCsv20180820,
                    reads: vec![],
                });
            }
            let put = fanout
                .s3
                .put_object()
                .bucket(&report_to.bucket)
                .key(&key)
                .content_type("text/csv")
                .body(csv.into_bytes().into())
                .send()
                .await
                .map_err(|err| {
                    aws_failure(
                        format!(
                            "cannot write the job manifest s3://{}/{key}",
                            report_to.bucket
                        ),
                        &err,
                    )
                })?;
            Ok(Manifest {
                reads: vec![
                    fanout
                        .scope
                        .bucket_arn(&format!("{}/{key}", report_to.bucket)),
                ],
                bucket: report_to.bucket.clone(),
                key,
                etag: put.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
                format: JobManifestFormat::S3BatchOperationsCsv20180820,
            })
        }
    }
}

/// A Batch Operations CSV manifest: `bucket,key` per object, keys
/// URL-encoded as the format requires (and as the function decodes them).
async fn manifest_csv(
    source: &str,
    keys: impl futures::Stream<Item = Result<String, DeployError>>,
) -> Result<String, DeployError> {
    let mut csv = String::new();
    let mut keys = std::pin::pin!(keys);
    while let Some(key) = keys.try_next().await? {
        csv.push_str(&format!("{source},{}\n", encode_event_key(&key)));
    }
    if csv.is_empty() {
        return Err(DeployError(
            "--files-from names no object: there is nothing for a job to do".into(),
        ));
    }
    Ok(csv)
}

/// What the jobs may do: invoke the fan-out's functions, read the manifest
/// (and an inventory's data files), write their reports. Nothing more:
/// the functions copy, with their own roles.
fn role_policy(
    fanout: &Fanout,
    manifest: &Manifest,
    report_to: &ReportTo,
    functions: &[String],
) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "InvokeTheFunctions", "Effect": "Allow", "Action": "lambda:InvokeFunction",
             "Resource": functions},
            {"Sid": "ReadTheManifest", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:GetObjectVersion"], "Resource": manifest.reads},
            {"Sid": "WriteTheReports", "Effect": "Allow", "Action": "s3:PutObject",
             "Resource": fanout.scope.bucket_arn(&format!("{}/{}*", report_to.bucket, report_to.prefix))}
        ]
    })
}

async fn create_job(
    fanout: &Fanout,
    role: &str,
    manifest: &Manifest,
    report_to: &ReportTo,
    destination: &str,
    function_arn: &str,
    role_is_new: bool,
) -> Result<String, DeployError> {
    let fields = match manifest.format {
        JobManifestFormat::S3BatchOperationsCsv20180820 => {
            vec![JobManifestFieldName::Bucket, JobManifestFieldName::Key]
        }
        _ => vec![],
    };
    let built = |what: &str, err: aws_smithy_types::error::operation::BuildError| {
        DeployError(format!("cannot describe the job's {what}: {err}"))
    };
    let spec = JobManifestSpec::builder()
        .format(manifest.format.clone())
        .set_fields((!fields.is_empty()).then_some(fields))
        .build()
        .map_err(|err| built("manifest", err))?;
    let location = JobManifestLocation::builder()
        .object_arn(
            fanout
                .scope
                .bucket_arn(&format!("{}/{}", manifest.bucket, manifest.key)),
        )
        .e_tag(&manifest.etag)
        .build()
        .map_err(|err| built("manifest", err))?;
    let mut tags = fanout.tags.clone();
    tags.insert(TAG_DESTINATION.into(), destination.to_owned());
    let tags = tags
        .into_iter()
        .map(|(key, value)| {
            S3Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|err| built("tags", err))
        })
        .collect::<Result<Vec<S3Tag>, DeployError>>()?;
    let token = names::digest(
        &format!(
            "{}\n{destination}\n{}\n{}",
            fanout.source, manifest.key, manifest.etag
        ),
        16,
    );
    let started = tokio::time::Instant::now();
    loop {
        let sent = fanout
            .s3control
            .create_job()
            .account_id(&fanout.scope.account)
            .confirmation_required(false)
            .priority(10)
            .role_arn(fanout.scope.role_arn(role))
            .client_request_token(&token)
            .description(description(&fanout.source, destination))
            .operation(
                JobOperation::builder()
                    .lambda_invoke(
                        LambdaInvokeOperation::builder()
                            .function_arn(function_arn)
                            .invocation_schema_version("2.0")
                            .build(),
                    )
                    .build(),
            )
            .manifest(
                JobManifest::builder()
                    .spec(spec.clone())
                    .location(location.clone())
                    .build(),
            )
            .report(
                JobReport::builder()
                    .bucket(fanout.scope.bucket_arn(&report_to.bucket))
                    .prefix(report_to.prefix.trim_end_matches('/'))
                    .format(JobReportFormat::ReportCsv20180820)
                    .enabled(true)
                    .report_scope(JobReportScope::FailedTasksOnly)
                    .build(),
            )
            .set_tags(Some(tags.clone()))
            .send()
            .await;
        match sent {
            Ok(out) => return Ok(out.job_id().unwrap_or_default().to_owned()),
            // A role IAM has only just made is not yet one S3 may assume.
            Err(err)
                if role_is_new
                    && started.elapsed() < ROLE_WAIT
                    && is_code(&err, &["InvalidRequest", "AccessDenied"]) =>
            {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            Err(err) => {
                return Err(aws_failure(
                    format!("cannot create the Batch Operations job for s3://{destination}"),
                    &err,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_location_is_a_bucket_and_a_folder() {
        assert_eq!(
            ReportTo::parse("s3://reports/batch").unwrap(),
            ReportTo {
                bucket: "reports".into(),
                prefix: "batch/".into()
            }
        );
        assert_eq!(ReportTo::parse("s3://reports").unwrap().prefix, "");
        assert_eq!(ReportTo::parse("s3://reports/a/b/").unwrap().prefix, "a/b/");
        assert!(
            ReportTo::parse("reports/batch")
                .unwrap_err()
                .contains("s3://BUCKET/PREFIX")
        );
    }

    #[tokio::test]
    async fn the_written_manifest_names_the_source_and_encodes_each_key() {
        let keys = ["a b+c/é.txt", "100%,x"].map(|k| Ok::<String, DeployError>(k.to_owned()));
        let csv = manifest_csv("photos", futures::stream::iter(keys))
            .await
            .unwrap();
        // The encoding keeps commas out of the key field.
        assert_eq!(csv, "photos,a+b%2Bc/%C3%A9.txt\nphotos,100%25%2Cx\n");
        let none = manifest_csv(
            "photos",
            futures::stream::iter(Vec::<Result<String, DeployError>>::new()),
        )
        .await;
        assert!(none.unwrap_err().0.contains("names no object"));
    }

    #[test]
    fn a_job_reads_as_how_far_it_got() {
        let job = JobStatus {
            job_id: "j-1".into(),
            destination: "dst".into(),
            status: "Active".into(),
            created: None,
            tasks: 10,
            succeeded: 6,
            failed: 1,
        };
        assert_eq!(
            job.render(),
            "j-1 to s3://dst: Active, 7 of 10 tasks done, 1 failed (made at a time S3 did not say)"
        );
    }
}
