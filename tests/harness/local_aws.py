#!/usr/bin/env python3
"""Local AWS for s3fan: moto server, plus real execution of uploaded Lambda zips.

moto would run Lambda functions in Docker, which these machines cannot use.
This launcher starts moto's server in-process and replaces one method,
``LambdaFunction._invoke_lambda``, with a runner that unzips the function's
code, serves the Lambda Runtime API on 127.0.0.1 for one invocation, starts
the real ``bootstrap`` with the environment Lambda would give it (plus
``AWS_ENDPOINT_URL`` pointing back here) on the function's architecture
(an arm64 function under qemu-user on an x86_64 machine), and returns what
the function answered. PutObject -> S3 notification -> SNS -> N functions -> CopyObject
therefore runs our release binary for real.

Four more things make moto behave like AWS where s3fan depends on it:

* S3 notifications are delivered *after* the request that caused them has
  been answered, from a delivery thread. moto sends them from inside
  PutObject before it has attached Content-Type, metadata and tags, so a copy
  made inside the event would come out bare.
* SNS -> Lambda deliveries go through the same delivery thread, as the
  asynchronous invocations they are in AWS.
* SNS -> Lambda invocations are asynchronous as in AWS: a failed one is
  retried ``MaximumRetryAttempts`` times (at once), then its invocation
  record goes to the function's ``OnFailure`` SQS destination. A second
  PutFunctionEventInvokeConfig replaces the first, as in AWS.
* Invoke with InvocationType Event is queued and answered 202 at once, as
  in AWS, then run as every asynchronous invocation here (retries, then
  the OnFailure destination); moto runs it before answering.
* ``x-amz-copy-source-if-match`` on CopyObject and UploadPartCopy is
  honoured (412 PreconditionFailed when the source's ETag differs); moto
  ignores it, and s3fan's ordering rule rests on it.
* Each Embedded Metric Format line a function writes to its log becomes
  CloudWatch metrics (CloudWatch Logs does that in AWS; moto does not).
* GetMetricData answers percentile statistics (``p99``), by nearest rank
  over the data points, as CloudWatch does for raw values; moto fails.
* A delete in a versioned bucket that makes a delete marker sends
  ``s3:ObjectRemoved:DeleteMarkerCreated``, as S3 does; moto sends nothing.
* ListParts answers with a ``ListPartsResult`` document, as S3 does; moto
  names its root ``ListPartsResponse``, which the SDK refuses.
* UpdateFunctionCode with ``Architectures`` changes the function's
  architecture, as in AWS; moto ignores it.
* Each function signs with credentials of its own role's session, and
  ListMultipartUploads names who started each upload as S3 does for a role
  session (``Initiator`` ID ``arn:aws:sts::ACCOUNT:assumed-role/ROLE/FUNCTION``);
  moto names one fixed user for every upload.
* An S3 request signed for a region other than its bucket's gets 301
  PermanentRedirect with ``x-amz-bucket-region``, as from S3 (GetBucketLocation
  excepted); moto serves any bucket in any region.

S3 Batch Operations jobs (CreateJob, DescribeJob, ListJobs), which moto
lacks, run here as AWS runs them: see batch_operations.py.

Control endpoints for tests, beside moto's own API:
  GET /_harness/drain        wait until every queued delivery has run
  GET /_harness/invocations  every invocation so far, as a JSON list
  GET /_harness/requests     every AWS request so far: method, path, query,
                             API action (query protocol Action or
                             X-Amz-Target), the access key that signed it and
                             the region it was signed for,
                             so a test can tell which calls its own run made
  POST /_harness/drop-notifications  {"share": 0.1, "seed": 7}: that share
                             of S3 notifications is never sent (a lost
                             event); answers the share and how many were
                             dropped so far ({} to only ask)
  POST /_harness/deliveries  {"paused": true}: no queued delivery (S3
                             notification, SNS delivery, asynchronous
                             invocation) starts until {"paused": false}, so
                             a test can act between two invocations of a
                             chain; drain only when not paused
  POST /_harness/bootstrap-env  JSON object of variables given to every
                             bootstrap started from now on, over the
                             function's own (e.g. AWS_ENDPOINT_URL_S3 of a
                             fault proxy)

Usage: local_aws.py [--host 127.0.0.1] [--port 0] [--exit-with-stdin]
Prints ``READY <port>`` on stdout once it accepts connections. With
--exit-with-stdin it exits when its standard input closes, so a test process
that dies cannot leave it behind. It writes its pid to --pidfile if given.
"""

import argparse
import errno
import hashlib
import io
import json
import os
import platform
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote

from werkzeug.serving import make_server

import batch_operations

import moto.awslambda.models as lambda_models
import moto.s3.notifications as s3_notifications
import moto.s3.responses as s3_responses
from moto.s3.models import S3Backend, s3_backends
from moto.sqs.models import sqs_backends
from moto.cloudwatch.models import Statistics, cloudwatch_backends
from moto.core.responses import ActionResult
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

RUNTIME_API_PREFIX = "/2018-06-01/runtime"
# Every bootstrap process still running, so that none outlives the launcher.
CHILDREN = set()
CHILDREN_LOCK = threading.Lock()
INVOCATIONS = []
INVOCATIONS_LOCK = threading.Lock()
REQUESTS = []
REQUESTS_LOCK = threading.Lock()
# Access key -> the role session ARN of the function that signs with it, and
# upload id -> the session that started it (None: another signer).
SESSIONS = {}
INITIATORS = {}
SESSIONS_LOCK = threading.Lock()
ENDPOINT = {"url": None}
# Set by tests through /_harness/bootstrap-env.
BOOTSTRAP_ENV = {}
CODE_ROOT = tempfile.mkdtemp(prefix="s3fan-lambda-code-")


def log(message):
    print(f"[local_aws] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Deliveries: one thread, in order, after the causing request was answered.
# ---------------------------------------------------------------------------

DELIVERIES = queue.Queue()
REQUEST_STATE = threading.local()


# Cleared by tests through /_harness/deliveries to hold every delivery.
DELIVERING = threading.Event()
DELIVERING.set()


def delivery_worker():
    while True:
        description, action = DELIVERIES.get()
        DELIVERING.wait()
        try:
            action()
        except Exception:  # one failed delivery must not stop the others
            log(f"delivery {description} failed:\n{traceback.format_exc()}")
        finally:
            DELIVERIES.task_done()


def defer(description, action):
    """Queue now if no request is in progress, else when it has been answered."""
    pending = getattr(REQUEST_STATE, "pending", None)
    if pending is None:
        DELIVERIES.put((description, action))
    else:
        pending.append((description, action))


# Set by tests through /_harness/drop-notifications: the share of S3
# notifications that are never sent, as S3 may coalesce two quick writes of
# one key into one event, and Lambda may drop events from an overloaded
# asynchronous queue. Seeded, so a run repeats.
DROP = {"share": 0.0, "random": random.Random(0), "dropped": 0}
DROP_LOCK = threading.Lock()


def dropped():
    with DROP_LOCK:
        if DROP["share"] and DROP["random"].random() < DROP["share"]:
            DROP["dropped"] += 1
            return True
    return False


def deferring(name):
    original = getattr(s3_notifications, name)

    def deferred(*args, **kwargs):
        if dropped():
            log(f"notification dropped ({name})")
            return
        defer(name, lambda: original(*args, **kwargs))

    return deferred


for _name in ("_send_sns_message", "_send_sqs_message", "_invoke_awslambda"):
    setattr(s3_notifications, _name, deferring(_name))

def _set_delete_marker_and_notify(self, bucket_name, key_name):
    marker = SET_DELETE_MARKER(self, bucket_name, key_name)
    bucket = self.get_bucket(bucket_name)
    # A delete marker has no size and no ETag; moto's record wants both.
    deleted = types.SimpleNamespace(name=key_name, etag="", size=0)
    s3_notifications.send_event(
        self.account_id,
        s3_notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT,
        bucket,
        deleted,
    )
    return marker


SET_DELETE_MARKER = S3Backend._set_delete_marker
S3Backend._set_delete_marker = _set_delete_marker_and_notify


def _deferred_send_sns_message(self, function_name, message, subject=None, qualifier=None):
    defer(
        "sns->lambda",
        lambda: invoke_async(self, function_name, sns_event(message, subject), qualifier),
    )


lambda_models.LambdaBackend.send_sns_message = _deferred_send_sns_message


def sns_event(message, subject):
    """The event SNS gives a subscribed function (moto's shape, real times)."""
    return {
        "Records": [
            {
                "EventVersion": "1.0",
                "EventSubscriptionArn": "arn:aws:sns:EXAMPLE",
                "EventSource": "aws:sns",
                "Sns": {
                    "SignatureVersion": "1",
                    "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "EXAMPLE",
                    "MessageId": str(uuid.uuid4()),
                    "Message": message,
                    "MessageAttributes": {},
                    "Type": "Notification",
                    "UnsubscribeUrl": "EXAMPLE",
                    "TopicArn": "arn:aws:sns:EXAMPLE",
                    "Subject": subject or "TestInvoke",
                },
            }
        ]
    }


def invoke_async(backend, function_name, event, qualifier=None):
    """An asynchronous invocation as Lambda makes it: on an error, retried
    MaximumRetryAttempts times (default 2; at once here, not after minutes),
    then, with an OnFailure destination, an invocation record sent there."""
    function = backend._lambdas.get_function_by_name_or_arn_with_qualifier(
        function_name, qualifier
    )
    config = function.event_invoke_config[-1].config if function.event_invoke_config else {}
    attempts = 1 + int(config.get("MaximumRetryAttempts", 2))
    body = json.dumps(event)
    for _ in range(attempts):
        result, is_error, _logs = run_bootstrap(function, body)
        if not is_error:
            return
    destination = (config.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
    if destination:
        send_failure_record(function, destination, event, result, attempts)


def send_failure_record(function, destination, event, result, attempts):
    """Lambda's invocation record, to an SQS on-failure destination."""
    try:
        response = json.loads(result)
    except (TypeError, ValueError):
        response = {"errorMessage": str(result)}
    record = {
        "version": "1.0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"{function.function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": response,
    }
    _, _, _, region, account, queue_name = destination.split(":", 5)
    sqs_backends[account][region].send_message(queue_name, json.dumps(record))
    log(f"failed event of {function.function_name} sent to {queue_name}")


def _put_function_event_invoke_config(self, function_name, config):
    """Lambda replaces a function's settings; moto 5.2 appends a second set
    and keeps answering with the first."""
    function = self.get_function(function_name)
    function.event_invoke_config = [
        lambda_models.EventInvokeConfig(function.function_arn, function.last_modified, config)
    ]
    return function.event_invoke_config[0].response()


lambda_models.LambdaBackend.put_function_event_invoke_config = _put_function_event_invoke_config

_moto_update_function_code = lambda_models.LambdaFunction.update_function_code


def _update_function_code(self, updated_spec):
    """UpdateFunctionCode's Architectures moves the function to the new
    code's architecture, as in AWS; moto keeps the old one."""
    if updated_spec.get("Architectures"):
        self.architectures = updated_spec["Architectures"]
    return _moto_update_function_code(self, updated_spec)


lambda_models.LambdaFunction.update_function_code = _update_function_code

_moto_invoke = lambda_models.LambdaBackend.invoke


def _invoke(self, function_name, qualifier, body, headers, response_headers):
    """Invoke with InvocationType Event is queued, as in AWS, and answered
    202 at once; moto runs it before answering. (A function that invokes
    itself, as a reconcile's next slice does, would otherwise wait on its
    own next slice.) Queued, it is retried and sent to the failure queue as
    every asynchronous invocation here."""
    if headers.get("X-Amz-Invocation-Type") != "Event":
        return _moto_invoke(self, function_name, qualifier, body, headers, response_headers)
    self.get_function(function_name, qualifier)  # 404 for a function that is not there
    event = json.loads(body) if body else {}
    DELIVERIES.put(
        ("invoke-event", lambda: invoke_async(self, function_name, event, qualifier))
    )
    return b""


lambda_models.LambdaBackend.invoke = _invoke


class HarnessApp:
    """WSGI middleware: control endpoints, and the deferral of notifications
    to after each request."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/_harness/drain":
            DELIVERIES.join()
            return self.json(start_response, {"drained": True})
        if path == "/_harness/invocations":
            with INVOCATIONS_LOCK:
                return self.json(start_response, list(INVOCATIONS))
        if path == "/_harness/requests":
            with REQUESTS_LOCK:
                return self.json(start_response, list(REQUESTS))
        if path == "/_harness/drop-notifications":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            asked = json.loads(environ["wsgi.input"].read(length) or b"{}")
            with DROP_LOCK:
                if "share" in asked:
                    DROP["share"] = float(asked["share"])
                    DROP["random"] = random.Random(asked.get("seed", 0))
                return self.json(start_response, {"share": DROP["share"], "dropped": DROP["dropped"]})
        if path == "/_harness/deliveries":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            asked = json.loads(environ["wsgi.input"].read(length) or b"{}")
            if asked.get("paused"):
                DELIVERING.clear()
            else:
                DELIVERING.set()
            return self.json(start_response, {"paused": not DELIVERING.is_set()})
        if path == "/_harness/bootstrap-env":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            BOOTSTRAP_ENV.update(json.loads(environ["wsgi.input"].read(length) or b"{}"))
            return self.json(start_response, dict(BOOTSTRAP_ENV))
        record_request(environ)
        if batch_operations.handles(environ):
            return batch_operations.serve(environ, start_response, DELIVERIES, run_bootstrap, log)
        elsewhere = bucket_region_if_elsewhere(environ)
        if elsewhere:
            return permanent_redirect(start_response, environ, elsewhere)
        if copy_source_if_match_fails(environ):
            return precondition_failed(start_response)
        REQUEST_STATE.pending = []
        try:
            # moto has applied the whole request to its model once its app
            # returns: the response body is already built.
            if is_list_parts(environ):
                return list_parts_result(self.app, environ, start_response)
            if is_create_multipart_upload(environ):
                return record_initiator(self.app, environ, start_response)
            if is_list_multipart_uploads(environ):
                return initiators_named(self.app, environ, start_response)
            return self.app(environ, start_response)
        finally:
            pending, REQUEST_STATE.pending = REQUEST_STATE.pending, None
            for item in pending:
                DELIVERIES.put(item)

    @staticmethod
    def json(start_response, value):
        body = json.dumps(value).encode()
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]


def is_list_multipart_uploads(environ):
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return environ.get("REQUEST_METHOD") == "GET" and "uploads" in query


def is_create_multipart_upload(environ):
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return environ.get("REQUEST_METHOD") == "POST" and "uploads" in query


def rewritten(app, environ, start_response, rewrite):
    """moto's answer to the request, its body passed through `rewrite`."""
    answered = {}

    def capture(status, headers, exc_info=None):
        answered["status"], answered["headers"] = status, headers

    body = rewrite(b"".join(app(environ, capture)))
    headers = [(k, v) for k, v in answered["headers"] if k.lower() != "content-length"]
    headers.append(("Content-Length", str(len(body))))
    start_response(answered["status"], headers)
    return [body]


def session_credentials(function):
    """The access key a function signs with, one per function, recorded as
    the role session Lambda would give it."""
    key = "ASIA" + hashlib.sha1(function.function_arn.encode()).hexdigest()[:16].upper()
    role = str(function.role or "").rsplit("/", 1)[-1]
    with SESSIONS_LOCK:
        SESSIONS[key] = f"arn:aws:sts::{function.account_id}:assumed-role/{role}/{function.function_name}"
    return key


def record_initiator(app, environ, start_response):
    """Remembers who started a multipart upload: the role session of the
    function that signed, or None for any other signer."""
    signer = request_access_key(environ)

    def remember(body):
        found = re.search(rb"<UploadId>([^<]+)</UploadId>", body)
        if found:
            with SESSIONS_LOCK:
                INITIATORS[found.group(1).decode()] = SESSIONS.get(signer)
        return body

    return rewritten(app, environ, start_response, remember)


def initiators_named(app, environ, start_response):
    """ListMultipartUploads names each upload's initiator as S3 does for a
    role session; uploads another signer started keep moto's user."""

    def name(upload):
        block = upload.group(0)
        found = re.search(rb"<UploadId>([^<]+)</UploadId>", block)
        with SESSIONS_LOCK:
            arn = INITIATORS.get(found.group(1).decode()) if found else None
        if not arn:
            return block
        display = arn.split(":assumed-role/", 1)[-1]
        return re.sub(
            rb"<Initiator>.*?</Initiator>",
            f"<Initiator><ID>{arn}</ID><DisplayName>{display}</DisplayName></Initiator>".encode(),
            block,
            flags=re.S,
        )

    return rewritten(
        app, environ, start_response, lambda body: re.sub(rb"<Upload>.*?</Upload>", name, body, flags=re.S)
    )


def is_list_parts(environ):
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return environ.get("REQUEST_METHOD") == "GET" and "uploadId" in query and "partNumber" not in query


def list_parts_result(app, environ, start_response):
    """S3 answers ListParts with a ListPartsResult document; moto names its
    root ListPartsResponse, which the SDK refuses."""
    return rewritten(
        app,
        environ,
        start_response,
        lambda body: body.replace(b"<ListPartsResponse", b"<ListPartsResult").replace(
            b"</ListPartsResponse>", b"</ListPartsResult>"
        ),
    )


def request_access_key(environ):
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" not in authorization:
        return None
    return authorization.split("Credential=", 1)[1].split("/", 1)[0]


def record_request(environ):
    action = environ.get("HTTP_X_AMZ_TARGET")
    if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        # Query-protocol services (SNS, IAM, STS, SQS) name the action in
        # the form body: read it, and hand moto an identical stream.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", [action])[0]
    access_key = request_access_key(environ)
    region, _ = signing(environ)
    with REQUESTS_LOCK:
        REQUESTS.append(
            {
                "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO", ""),
                "query": environ.get("QUERY_STRING", ""),
                "action": action,
                "access_key": access_key,
                "region": region,
            }
        )


# ---------------------------------------------------------------------------
# Wire-format fixes where moto's answer differs from S3's.
# ---------------------------------------------------------------------------


def copy_source_if_match_fails(environ):
    """moto ignores x-amz-copy-source-if-match on CopyObject and UploadPartCopy;
    S3 answers 412 when the source's current ETag is another. s3fan's ordering
    rule rests on that answer, so the harness gives it as S3 does."""
    wanted = environ.get("HTTP_X_AMZ_COPY_SOURCE_IF_MATCH")
    source = environ.get("HTTP_X_AMZ_COPY_SOURCE")
    if environ.get("REQUEST_METHOD") != "PUT" or not wanted or not source:
        return False
    # The value is percent-encoded, so a '?' in a key arrives as %3F.
    path, _, query = source.partition("?")
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    version = parse_qs(query).get("versionId", [None])[0]
    located = s3_backends.bucket_accounts.get(bucket)
    if not located:
        return False  # moto answers NoSuchBucket itself
    partition, account = located
    try:
        current = s3_backends[account][partition].get_object(bucket, key, version_id=version)
    except Exception:
        return False  # moto answers NoSuchKey (or whatever applies) itself
    etag = getattr(current, "etag", None)
    return etag is not None and wanted.strip('"') != etag.strip('"')


def signing(environ):
    """(region, service) of a SigV4-signed request, else (None, None)."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" not in authorization:
        return None, None
    scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].split("/")
    return (scope[2], scope[3]) if len(scope) >= 4 else (None, None)


def bucket_region_if_elsewhere(environ):
    """The bucket's region when an S3 request for it was signed for another.
    moto serves every bucket in any region; S3 answers such a request with
    301 PermanentRedirect (GetBucketLocation excepted), so code that writes
    to a bucket of another region must be shown to send it there."""
    region, service = signing(environ)
    if service != "s3" or region is None:
        return None
    if "location" in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True):
        return None
    bucket = environ.get("PATH_INFO", "").lstrip("/").split("/", 1)[0]
    located = s3_backends.bucket_accounts.get(bucket) if bucket else None
    if not located:
        return None
    partition, account = located
    found = s3_backends[account][partition].buckets.get(bucket)
    home = getattr(found, "region_name", None)
    return home if home and home != region else None


def permanent_redirect(start_response, environ, region):
    bucket = environ.get("PATH_INFO", "").lstrip("/").split("/", 1)[0]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PermanentRedirect</Code>'
        "<Message>The bucket you are attempting to access must be addressed using the specified "
        "endpoint. Please send all future requests to this endpoint.</Message>"
        f"<Endpoint>s3.{region}.amazonaws.com</Endpoint><Bucket>{bucket}</Bucket></Error>"
    ).encode()
    if environ.get("REQUEST_METHOD") == "HEAD":
        body = b""
    start_response(
        "301 Moved Permanently",
        [
            ("Content-Type", "application/xml"),
            ("x-amz-bucket-region", region),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def precondition_failed(start_response):
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>'
        b"<Message>At least one of the pre-conditions you specified did not hold</Message>"
        b"<Condition>x-amz-copy-source-If-Match</Condition></Error>"
    )
    start_response(
        "412 Precondition Failed",
        [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
    )
    return [body]


_original_get_bucket_notification = s3_responses.S3Response.get_bucket_notification


def _get_bucket_notification(self):
    """A bucket without notifications: S3 answers an empty
    <NotificationConfiguration/>; moto 5.2 answers <GetBucketNotificationResponse/>,
    which the AWS SDKs for Rust and Go reject."""
    if not self.backend.get_bucket_notification_configuration(self.bucket_name):
        self.data["Action"] = "GetBucketNotificationConfiguration"
        return self.serialized(ActionResult({}))
    return _original_get_bucket_notification(self)


s3_responses.S3Response.get_bucket_notification = _get_bucket_notification


# ---------------------------------------------------------------------------
# The Lambda runner.
# ---------------------------------------------------------------------------


def code_dir(function):
    """The function's zip, unpacked once per code version, modes preserved."""
    # CodeSha256 is base64: it may hold "/".
    version = function.code_sha_256.replace("/", "_")
    target = os.path.join(CODE_ROOT, f"{function.function_name}-{version}")
    if os.path.isdir(target):
        return target
    staging = tempfile.mkdtemp(dir=CODE_ROOT)
    with zipfile.ZipFile(io.BytesIO(function.code_bytes)) as archive:
        for info in archive.infolist():
            path = archive.extract(info, staging)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(path, mode)
    try:
        os.rename(staging, target)
    except OSError:  # another invocation unpacked it first
        pass
    return target


class Invocation:
    """One event handed to one bootstrap process through the Runtime API."""

    def __init__(self, event_body, deadline_ms, function_arn):
        self.request_id = str(uuid.uuid4())
        # What the Runtime API names as the invoked function: the function's
        # own ARN, which a function that invokes itself invokes.
        self.function_arn = function_arn
        self.event_body = event_body.encode()
        self.deadline_ms = deadline_ms
        self.handed_out = False
        self.done = threading.Event()
        self.result = None
        self.is_error = False
        self.lock = threading.Lock()

    def finish(self, body, is_error):
        with self.lock:
            if self.done.is_set():
                return
            self.result, self.is_error = body, is_error
            self.done.set()


def runtime_api_handler(invocation):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body=b"", headers=()):
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != f"{RUNTIME_API_PREFIX}/invocation/next":
                return self.reply(404, b'{"errorMessage":"unknown path"}')
            with invocation.lock:
                first = not invocation.handed_out
                invocation.handed_out = True
            if not first:
                # One invocation per process: park the runtime's next poll
                # until the process is stopped, as Lambda freezes it.
                invocation.done.wait()
                time.sleep(3600)
                return
            self.reply(
                200,
                invocation.event_body,
                [
                    ("Content-Type", "application/json"),
                    ("Lambda-Runtime-Aws-Request-Id", invocation.request_id),
                    ("Lambda-Runtime-Deadline-Ms", str(invocation.deadline_ms)),
                    ("Lambda-Runtime-Invoked-Function-Arn", invocation.function_arn),
                ],
            )

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            base = f"{RUNTIME_API_PREFIX}/invocation/{invocation.request_id}"
            if self.path == f"{base}/response":
                invocation.finish(body, False)
            elif self.path == f"{base}/error":
                invocation.finish(body, True)
            elif self.path == f"{RUNTIME_API_PREFIX}/init/error":
                invocation.finish(body, True)
            else:
                return self.reply(404, b'{"errorMessage":"unknown path"}')
            self.reply(202, b'{"status":"OK"}')

    return Handler


def machine_of(function):
    """The command that runs a bootstrap on `function`'s architecture, as
    Lambda runs it on an x86_64 or a Graviton host. arm64 on another machine
    runs under qemu-user (Debian's qemu-user-static, with the arm64 loader
    and glibc of libc6-arm64-cross): a binary of the other architecture
    fails to start there, as it does on Lambda."""
    architecture = (getattr(function, "architectures", None) or ["x86_64"])[0]
    host = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    if architecture == host:
        return []
    if architecture == "arm64":
        qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
        if qemu is None:
            raise OSError(errno.ENOEXEC, "an arm64 function needs qemu-aarch64-static here (tests/harness/setup-arm64)")
        return [qemu, "-L", "/usr/aarch64-linux-gnu"]
    raise OSError(errno.ENOEXEC, f"no way to run a {architecture} function on {platform.machine()}")


def start_bootstrap(bootstrap, directory, env, machine=()):
    """Starts the bootstrap process, under `machine` (machine_of) if any.
    A bootstrap just unpacked may be "busy" (ETXTBSY) for a moment: a
    process forked by another thread at that time holds the unpacking's
    write descriptor until it executes its own program. That is a race of
    this harness, not of Lambda: retried."""
    for attempt in range(50):
        try:
            return subprocess.Popen(
                [*machine, bootstrap],
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as err:
            if err.errno != errno.ETXTBSY or attempt == 49:
                raise
            time.sleep(0.02)


def run_bootstrap(function, event_body):
    """Runs one invocation of `function` with the real bootstrap; returns
    (result_text, is_error, logs) as moto's own _invoke_lambda does."""
    started = time.time()
    timeout = float(function.timeout or 3)
    invocation = Invocation(event_body, int((started + timeout) * 1000), function.function_arn)
    server = ThreadingHTTPServer(("127.0.0.1", 0), runtime_api_handler(invocation))
    server.daemon_threads = True
    # shutdown() waits for serve_forever's next poll: at the default 0.5 s,
    # that wait was most of each invocation's time.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    directory = code_dir(function)
    bootstrap = os.path.join(directory, "bootstrap")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": str(function.version),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{invocation.request_id}",
        "AWS_REGION": function.region,
        "AWS_DEFAULT_REGION": function.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.run_time}",
        "_HANDLER": str(function.handler),
        "LAMBDA_TASK_ROOT": directory,
        "AWS_ACCESS_KEY_ID": session_credentials(function),
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_SESSION_TOKEN": "test",
        "AWS_ENDPOINT_URL": ENDPOINT["url"],
    }
    env.update({k: str(v) for k, v in (function.environment_vars or {}).items()})
    env.update(BOOTSTRAP_ENV)
    logs = ""
    try:
        process = start_bootstrap(bootstrap, directory, env, machine_of(function))
    except OSError as err:
        server.shutdown()
        result = json.dumps(
            {"errorType": "Runtime.InvalidEntrypoint", "errorMessage": f"cannot start bootstrap: {err}"}
        )
        return record(function, event_body, result, True, str(err), started)
    with CHILDREN_LOCK:
        CHILDREN.add(process)
    output = []
    reader = threading.Thread(target=lambda: output.append(process.stdout.read()), daemon=True)
    reader.start()
    try:
        # Done when the function answers, or when the process exits first
        # (a crash or an init failure).
        while not invocation.done.wait(0.01):
            if process.poll() is not None:
                invocation.done.wait(0.2)
                invocation.finish(
                    json.dumps(
                        {
                            "errorType": "Runtime.ExitError",
                            "errorMessage": f"bootstrap exited with status {process.returncode} before answering",
                        }
                    ),
                    True,
                )
            elif time.time() - started > timeout:
                invocation.finish(
                    json.dumps(
                        {"errorType": "Sandbox.Timedout", "errorMessage": f"Task timed out after {timeout:.2f} seconds"}
                    ),
                    True,
                )
    finally:
        stop(process)
        reader.join(5)
        server.shutdown()
        server.server_close()
    logs = b"".join(output).decode("utf-8", "replace")
    return record(function, event_body, invocation.result, invocation.is_error, logs, started)


def stop(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    with CHILDREN_LOCK:
        CHILDREN.discard(process)


def record(function, event_body, result, is_error, logs, started):
    emf_metrics(function.account_id, function.region, logs)
    try:
        event = json.loads(event_body)
    except ValueError:
        event = event_body
    with INVOCATIONS_LOCK:
        INVOCATIONS.append(
            {
                "function": function.function_name,
                "event": event,
                "result": result,
                "is_error": is_error,
                "logs": logs,
                "duration_ms": round((time.time() - started) * 1000, 1),
            }
        )
    return result, is_error, logs


def emf_metrics(account, region, logs):
    """Puts the metrics of each EMF document among `logs` (one JSON object
    per line) into moto's CloudWatch, as CloudWatch Logs does in AWS."""
    from datetime import datetime, timezone

    for line in logs.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        try:
            document = json.loads(line)
            directive = document["_aws"]
            # moto keeps naive UTC datetimes.
            at = datetime.fromtimestamp(directive["Timestamp"] / 1000, tz=timezone.utc).replace(tzinfo=None)
            for group in directive["CloudWatchMetrics"]:
                for dimension_set in group.get("Dimensions") or [[]]:
                    dimensions = [{"Name": d, "Value": str(document[d])} for d in dimension_set]
                    data = []
                    for metric in group["Metrics"]:
                        values = document[metric["Name"]]
                        for value in values if isinstance(values, list) else [values]:
                            data.append(
                                {
                                    "MetricName": metric["Name"],
                                    "Value": float(value),
                                    "Unit": metric.get("Unit"),
                                    "Dimensions": dimensions,
                                    "Timestamp": at,
                                }
                            )
                    cloudwatch_backends[account][region].put_metric_data(group["Namespace"], data)
        except (ValueError, KeyError, TypeError) as err:
            # CloudWatch drops a malformed document; so does the harness.
            log(f"not an EMF document ({err}): {line[:200]}")


def percentile_or_plain(self, stat):
    if isinstance(stat, str) and stat.startswith("p") and stat[1:].replace(".", "", 1).isdigit():
        values = sorted(self.metric_single_values_list)
        if not values:
            return None
        rank = max(1, -(-len(values) * float(stat[1:]) // 100))
        return values[int(rank) - 1]
    return PLAIN_STATISTIC(self, stat)


PLAIN_STATISTIC = Statistics.get_statistics_for_type
Statistics.get_statistics_for_type = percentile_or_plain


def _invoke_lambda(self, event=None):
    if event is None:
        event = {}
    body = event if isinstance(event, str) else json.dumps(event)
    return run_bootstrap(self, body)


lambda_models.LambdaFunction._invoke_lambda = _invoke_lambda


# ---------------------------------------------------------------------------
# Start, stop.
# ---------------------------------------------------------------------------


def shutdown(*_):
    with CHILDREN_LOCK:
        children = list(CHILDREN)
    for process in children:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pidfile")
    parser.add_argument("--exit-with-stdin", action="store_true")
    args = parser.parse_args()

    app = HarnessApp(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.socket.getsockname()[1]
    os.environ["MOTO_PORT"] = str(port)
    ENDPOINT["url"] = f"http://{args.host}:{port}"
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    threading.Thread(target=delivery_worker, daemon=True).start()
    if args.exit_with_stdin:

        def watch_stdin():
            while sys.stdin.buffer.read(4096):
                pass
            shutdown()

        threading.Thread(target=watch_stdin, daemon=True).start()

    print(f"READY {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
