"""S3 Batch Operations for the local AWS: moto has none.

What a job does, for the LambdaInvoke operation s3fan uses:

* CreateJob (POST /v20180820/jobs): checks what AWS checks before a job
  may run (the role exists and trusts batchoperations.s3.amazonaws.com,
  the function exists, the manifest exists with the ETag given) and fails
  the job with AWS's reason otherwise; a ClientRequestToken seen before
  answers the first job's id, as AWS does.
* The job runs on the harness's delivery thread (so /_harness/drain waits
  for it): one synchronous invocation per manifest row, one task each, in
  AWS's invocation schema 2.0 shape (the key as the manifest has it,
  URL-encoded); a TemporaryFailure answer is tried again (twice here).
* The completion report (FailedTasksOnly or AllTasks) is written under the
  job's report prefix: job-ID/manifest.json and job-ID/results/*.csv.
* DescribeJob and ListJobs answer the job's status and progress.

Manifests: S3BatchOperations_CSV_20180820 (Bucket,Key[,VersionId]) and
S3InventoryReport_CSV_20161130 (manifest.json, its gzip CSV files).
"""

import csv
import datetime
import gzip
import io
import json
import threading
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from moto.iam.models import iam_backends
from moto.s3.models import s3_backends
from moto.awslambda.models import lambda_backends

PREFIX = "/v20180820/jobs"
JOBS = {}
TOKENS = {}
LOCK = threading.Lock()


def handles(environ):
    return environ.get("PATH_INFO", "").startswith(PREFIX)


def serve(environ, start_response, deliveries, run_bootstrap, log):
    method = environ["REQUEST_METHOD"]
    path = environ["PATH_INFO"]
    account = environ.get("HTTP_X_AMZ_ACCOUNT_ID", "123456789012")
    if method == "POST" and path == PREFIX:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = parse_xml(environ["wsgi.input"].read(length))
        job, created = create(account, request)
        if created:
            deliveries.put(("batch-job", lambda: run(job, run_bootstrap, log)))
        return xml(start_response, f"<CreateJobResult><JobId>{job['id']}</JobId></CreateJobResult>")
    if method == "GET" and path == PREFIX:
        with LOCK:
            members = "".join(f"<member>{describe(j)}</member>" for j in JOBS.values())
        return xml(start_response, f"<ListJobsResult><Jobs>{members}</Jobs></ListJobsResult>")
    if method == "GET" and path.startswith(PREFIX + "/"):
        job = JOBS.get(path[len(PREFIX) + 1:])
        if job is None:
            return error(start_response, "404 Not Found", "NoSuchJob", "The specified job does not exist.")
        return xml(start_response, f"<DescribeJobResult><Job>{describe(job)}</Job></DescribeJobResult>")
    return error(start_response, "400 Bad Request", "InvalidRequest", f"{method} {path} is not emulated")


def parse_xml(body):
    root = ET.fromstring(body)
    for element in root.iter():
        element.tag = element.tag.split("}", 1)[-1]
    return root


def text(root, path):
    found = root.find(path)
    return found.text if found is not None and found.text is not None else None


def create(account, request):
    token = text(request, "ClientRequestToken")
    with LOCK:
        if token and token in TOKENS:
            return JOBS[TOKENS[token]], False
        job = {
            "id": str(uuid.uuid4()),
            "account": account,
            "description": text(request, "Description") or "",
            "status": "New",
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "role": text(request, "RoleArn"),
            "function": text(request, "Operation/LambdaInvoke/FunctionArn"),
            "schema": text(request, "Operation/LambdaInvoke/InvocationSchemaVersion") or "1.0",
            "format": text(request, "Manifest/Spec/Format"),
            "fields": [f.text for f in request.findall("Manifest/Spec/Fields/member")],
            "manifest": text(request, "Manifest/Location/ObjectArn"),
            "etag": text(request, "Manifest/Location/ETag"),
            "report_bucket": text(request, "Report/Bucket"),
            "report_prefix": text(request, "Report/Prefix") or "",
            "report_scope": text(request, "Report/ReportScope") or "AllTasks",
            "total": 0,
            "succeeded": 0,
            "failed": 0,
            "failure_reasons": [],
        }
        JOBS[job["id"]] = job
        if token:
            TOKENS[token] = job["id"]
        return job, True


def describe(job):
    reasons = "".join(
        f"<member><FailureCode>{escape(code)}</FailureCode><FailureReason>{escape(reason)}</FailureReason></member>"
        for code, reason in job["failure_reasons"]
    )
    return (
        f"<JobId>{job['id']}</JobId><Description>{escape(job['description'])}</Description>"
        f"<Operation>LambdaInvoke</Operation><Priority>10</Priority><Status>{job['status']}</Status>"
        f"<CreationTime>{job['created']}</CreationTime>"
        f"<ProgressSummary><TotalNumberOfTasks>{job['total']}</TotalNumberOfTasks>"
        f"<NumberOfTasksSucceeded>{job['succeeded']}</NumberOfTasksSucceeded>"
        f"<NumberOfTasksFailed>{job['failed']}</NumberOfTasksFailed></ProgressSummary>"
        f"<FailureReasons>{reasons}</FailureReasons>"
    )


def s3_object(arn):
    bucket, _, key = arn.split(":::", 1)[1].partition("/")
    partition, account = s3_backends.bucket_accounts[bucket]
    return s3_backends[account][partition].get_object(bucket, key)


def fail(job, code, reason, log):
    job["status"] = "Failed"
    job["failure_reasons"].append((code, reason))
    log(f"batch job {job['id']} failed: {reason}")


def rows(job):
    """(bucket, encoded key, version) of each manifest row."""
    manifest = s3_object(job["manifest"])
    if job["format"] == "S3BatchOperations_CSV_20180820":
        fields = job["fields"] or ["Bucket", "Key"]
        for line in csv.reader(io.StringIO(manifest.value.decode())):
            row = dict(zip(fields, line))
            yield row["Bucket"], row["Key"], row.get("VersionId") or None
        return
    document = json.loads(manifest.value)
    columns = [c.strip() for c in document["fileSchema"].split(",")]
    bucket = document["destinationBucket"].split(":::", 1)[1]
    for entry in document["files"]:
        data = s3_object(f"arn:aws:s3:::{bucket}/{entry['key']}").value
        for line in csv.reader(io.StringIO(gzip.decompress(data).decode())):
            row = dict(zip(columns, line))
            yield row["Bucket"], row["Key"], row.get("VersionId") or None


def checked(job, log):
    """AWS's checks before a job runs: the reason it may not, or None."""
    role_name = (job["role"] or "").rsplit("/", 1)[-1]
    try:
        role = iam_backends[job["account"]]["aws"].get_role(role_name)
    except Exception:
        return "InvalidRole", f"Unable to assume role {job['role']}: it does not exist"
    trust = role.assume_role_policy_document
    trust = json.loads(trust) if isinstance(trust, str) else trust
    principals = json.dumps([s.get("Principal") for s in trust.get("Statement", [])])
    if "batchoperations.s3.amazonaws.com" not in principals:
        return "InvalidRole", f"Unable to assume role {job['role']}: it does not trust batchoperations.s3.amazonaws.com"
    region = job["function"].split(":")[3]
    try:
        function = lambda_backends[job["account"]][region].get_function(job["function"])
    except Exception:
        return "InvalidFunction", f"Lambda function {job['function']} does not exist"
    try:
        manifest = s3_object(job["manifest"])
    except Exception:
        return "InvalidManifest", f"Reading the manifest {job['manifest']} failed: it does not exist"
    if manifest.etag.strip('"') != (job["etag"] or "").strip('"'):
        return "InvalidManifest", f"Reading the manifest failed: its ETag is not {job['etag']}"
    job["function_model"] = function
    return None


def run(job, run_bootstrap, log):
    job["status"] = "Preparing"
    reason = checked(job, log)
    if reason:
        return fail(job, *reason, log)
    job["status"] = "Active"
    results = []
    for bucket, key, version in list(rows(job)):
        job["total"] += 1
        task_id = uuid.uuid4().hex
        code, message = "TemporaryFailure", ""
        for _ in range(3):
            event = {
                "invocationSchemaVersion": job["schema"],
                "invocationId": uuid.uuid4().hex,
                "job": {"id": job["id"], "userArguments": {}},
                "tasks": [{"taskId": task_id, "s3Bucket": bucket, "s3Key": key, "s3VersionId": version}],
            }
            answer, is_error, _logs = run_bootstrap(job["function_model"], json.dumps(event))
            try:
                result = json.loads(answer)["results"][0]
                code, message = result["resultCode"], result.get("resultString", "")
            except (TypeError, ValueError, KeyError, IndexError):
                code, message = "PermanentFailure", f"Lambda returned function error: {answer}"
            if code != "TemporaryFailure":
                break
        if code == "Succeeded":
            job["succeeded"] += 1
        else:
            job["failed"] += 1
        results.append((bucket, key, version, code, message))
    write_report(job, results)
    job["status"] = "Complete"
    log(f"batch job {job['id']}: {job['succeeded']} succeeded, {job['failed']} failed")


def write_report(job, results):
    if not job["report_bucket"]:
        return
    bucket = job["report_bucket"].split(":::", 1)[1]
    partition, account = s3_backends.bucket_accounts[bucket]
    backend = s3_backends[account][partition]
    kept = [r for r in results if job["report_scope"] == "AllTasks" or r[3] != "Succeeded"]
    out = io.StringIO()
    writer = csv.writer(out)
    for bucket_name, key, version, code, message in kept:
        status = "succeeded" if code == "Succeeded" else "failed"
        writer.writerow([bucket_name, key, version or "", status, code, "200", message])
    base = f"{job['report_prefix'].rstrip('/')}/job-{job['id']}".lstrip("/")
    name = f"{base}/results/{uuid.uuid4().hex}.csv"
    backend.put_object(bucket, name, out.getvalue().encode())
    summary = {"Format": "Report_CSV_20180820", "ReportCreationDate": "", "Results": [
        {"TaskExecutionStatus": "failed" if job["failed"] else "succeeded", "Bucket": bucket, "Key": name}
    ], "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"}
    backend.put_object(bucket, f"{base}/manifest.json", json.dumps(summary).encode())


def xml(start_response, body):
    data = ('<?xml version="1.0" encoding="UTF-8"?>' + body).encode()
    start_response("200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(data)))])
    return [data]


def error(start_response, status, code, message):
    data = (f'<?xml version="1.0" encoding="UTF-8"?><ErrorResponse><Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error></ErrorResponse>").encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(data)))])
    return [data]
