#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for s3fan's tests: it sits between the code
under test and the local AWS and spoils a chosen share of requests, the way
S3 does on a bad day.

Faults, chosen at random (seeded, so a run can be repeated) among --kinds:

  slowdown   503 SlowDown, without forwarding (S3's throttling answer)
  internal   500 InternalError, without forwarding
  reset      the connection is reset (RST) before any answer, after the
             request has reached the server: the client cannot tell whether
             it was applied
  delay      the request is forwarded and answered, --delay seconds late
  ok-error   200 OK with an S3 <Error> document as the body, which S3 sends
             for CopyObject, UploadPartCopy and CompleteMultipartUpload when
             the operation fails after the answer has begun; only those
             requests get it, and they are not forwarded

Every other request is passed through unchanged: the signature stays valid,
since the Host header is kept.

Control endpoints (not forwarded):
  GET  /_faults/stats   {"requests": N, "faults": {"slowdown": N, ...},
                         "by_operation": {"CopyObject": {"ok-error": N}, ...}}
  POST /_faults/config  JSON {"rate": 0.2, "kinds": [...], "only": [...]}:
                        change the rate and kinds; "only" limits faults to
                        the named operations (CopyObject, UploadPartCopy,
                        CompleteMultipartUpload, HeadObject, ...)
  POST /_faults/next    JSON {"kind": "ok-error", "operation": "CopyObject"}:
                        the next matching request gets exactly this fault
  POST /_faults/fail-write  JSON {"nth": 3}: the 3rd request from now that
                        can change something (any API: an action other than
                        Get/List/Describe, or a REST call other than GET and
                        HEAD) is refused with 403 AccessDenied, and not
                        forwarded; the answer says which it was. {"nth": 0}
                        turns it off. GET /_faults/writes lists the writes
                        counted since.
  POST /_faults/hold    JSON {"write": "Subscribe"}: the next write of that
                        action waits, before it is forwarded, until
                        POST /_faults/release; GET /_faults/held answers
                        {"held": "Subscribe"} while one waits, else
                        {"held": null}. Lets a test act between two calls.
  POST /_faults/refuse  JSON {"code": "ExpiredToken", "status": 403,
                        "message": "...", "bucket": "name"}: every request
                        (with "bucket", every S3 request for that bucket) is
                        answered with that error, in its protocol, and not
                        forwarded; {} turns it off.

Usage: fault_proxy.py --upstream http://127.0.0.1:PORT [--rate 0.2]
       [--kinds slowdown,internal,reset,delay] [--seed 1] [--delay 1.0]
       [--exit-with-stdin]
Prints ``READY <port>`` once it accepts connections.
"""

import argparse
import http.client
import json
import os
import random
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

KINDS = ("slowdown", "internal", "reset", "delay", "ok-error")
# The operations S3 may answer 200 with an error body.
OK_ERROR_OPERATIONS = ("CopyObject", "UploadPartCopy", "CompleteMultipartUpload")


class State:
    def __init__(self, rate, kinds, seed, delay):
        self.lock = threading.Lock()
        self.random = random.Random(seed)
        self.rate = rate
        self.kinds = list(kinds)
        self.only = None
        self.delay = delay
        self.planned = []
        # fail-write: the countdown to the write to refuse, and the writes seen.
        self.fail_write = 0
        self.writes = []
        # hold: the write action to hold, the event set while one waits,
        # and the event that lets it go.
        self.hold = None
        self.held = None
        self.release = threading.Event()
        # refuse: {"code", "status", "message", "bucket"} or None.
        self.refuse = None
        self.requests = 0
        self.faults = {kind: 0 for kind in KINDS}
        self.by_operation = {}

    def choose(self, operation):
        """The fault for this request, or None; counted."""
        with self.lock:
            self.requests += 1
            kind = None
            for i, (planned_kind, planned_operation) in enumerate(self.planned):
                if planned_operation in (None, operation):
                    kind = planned_kind
                    del self.planned[i]
                    break
            if kind is None and (self.only is None or operation in self.only):
                if self.random.random() < self.rate:
                    candidates = [
                        k for k in self.kinds if k != "ok-error" or operation in OK_ERROR_OPERATIONS
                    ]
                    kind = self.random.choice(candidates) if candidates else None
            if kind is not None:
                self.faults[kind] += 1
                counts = self.by_operation.setdefault(operation, {})
                counts[kind] = counts.get(kind, 0) + 1
            return kind


def operation_of(method, path, query, headers):
    """The S3 operation of a REST request, as far as the tests need it."""
    q = parse_qs(query, keep_blank_values=True)
    if method == "PUT" and headers.get("x-amz-copy-source"):
        return "UploadPartCopy" if "partNumber" in q else "CopyObject"
    if method == "POST" and "uploadId" in q:
        return "CompleteMultipartUpload"
    if method == "POST" and "uploads" in q:
        return "CreateMultipartUpload"
    if method == "DELETE" and "uploadId" in q:
        return "AbortMultipartUpload"
    if method == "HEAD":
        return "HeadObject"
    if method == "GET" and "tagging" in q:
        return "GetObjectTagging"
    if method == "GET":
        return "GetObject" if path.count("/") >= 2 and not path.endswith("/") else "ListObjects"
    if method == "PUT":
        return "PutObject"
    if method == "DELETE":
        return "DeleteObject"
    return f"{method} {path}"


def api_action(method, path, headers, body):
    """The API action of a request, as tests/e2e/common.rs's RecordedRequest reads it:
    the query protocol's Action, or the JSON protocols' X-Amz-Target."""
    target = headers.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    if "x-www-form-urlencoded" in headers.get("content-type", ""):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    return None


def is_write(method, action):
    if action:
        return not action.startswith(("Get", "List", "Describe"))
    return method not in ("GET", "HEAD")


def protocol_of(path, headers):
    """The request's protocol: "json" (Lambda, SQS), "query" (IAM, SNS, STS)
    or "s3"."""
    if "x-amz-target" in headers or path.startswith("/20"):
        return "json"
    if "x-www-form-urlencoded" in headers.get("content-type", ""):
        return "query"
    return "s3"


def refusal(protocol, code, message):
    """An error answer's body, content type and extra headers in `protocol`,
    so the SDK reads its code and message."""
    if protocol == "json":
        body = json.dumps({"__type": code, "message": message}).encode()
        return body, "application/x-amz-json-1.0", [("x-amzn-ErrorType", code)]
    if protocol == "query":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
            "</Error><RequestId>FAULT</RequestId></ErrorResponse>"
        ).encode()
        return body, "text/xml", []
    return error_document(code, message), "application/xml", []


def error_document(code, message):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>FAULT{random.randrange(10**8):08d}</RequestId></Error>"
    ).encode()


def forward(target, handler, body):
    """Sends the request `handler` received (with `body`, already read) to
    `target` (a parsed URL) as it came; returns (status, headers, payload).
    The Host header is kept, so a signature stays valid."""
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=600)
    headers = {k: v for k, v in handler.headers.items() if k.lower() != "transfer-encoding"}
    if body or handler.command in ("PUT", "POST"):
        headers["Content-Length"] = str(len(body))
    try:
        connection.request(handler.command, handler.path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def relay(handler, status, headers, payload):
    """Answers through `handler` with an upstream answer, unchanged but for
    the hop-by-hop and framing headers."""
    handler.send_response(status)
    for name, value in headers:
        if name.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
            handler.send_header(name, value)
    # A HEAD answer has no body but the object's Content-Length.
    length = dict((k.lower(), v) for k, v in headers).get("content-length", "0")
    handler.send_header("Content-Length", length if handler.command == "HEAD" else str(len(payload)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(payload)


def make_handler(upstream, state):
    target = urlparse(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def reply(self, status, body, content_type="application/xml", headers=()):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("x-amz-request-id", "FAULT")
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def read_body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def control(self):
            if self.path == "/_faults/writes":
                with state.lock:
                    return self.reply(200, json.dumps(state.writes).encode(), "application/json")
            if self.path == "/_faults/held":
                with state.lock:
                    held = state.held
                return self.reply(200, json.dumps({"held": held}).encode(), "application/json")
            if self.path == "/_faults/stats":
                with state.lock:
                    body = json.dumps(
                        {"requests": state.requests, "faults": state.faults, "by_operation": state.by_operation}
                    ).encode()
                return self.reply(200, body, "application/json")
            settings = json.loads(self.read_body() or b"{}")
            with state.lock:
                if self.path == "/_faults/config":
                    state.rate = float(settings.get("rate", state.rate))
                    state.kinds = list(settings.get("kinds", state.kinds))
                    state.only = settings.get("only")
                elif self.path == "/_faults/next":
                    state.planned.append((settings["kind"], settings.get("operation")))
                elif self.path == "/_faults/fail-write":
                    state.fail_write = int(settings["nth"])
                    state.writes = []
                elif self.path == "/_faults/hold":
                    state.hold = settings["write"]
                    state.release.clear()
                elif self.path == "/_faults/release":
                    state.hold = None
                    state.release.set()
                elif self.path == "/_faults/refuse":
                    state.refuse = settings if settings.get("code") else None
                else:
                    return self.reply(404, b"{}", "application/json")
            return self.reply(200, b"{}", "application/json")

        def reset(self):
            # SO_LINGER with a zero timeout: close() sends RST, not FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def handle_request(self):
            if self.path.startswith("/_faults/"):
                return self.control()
            body = self.read_body()
            url = urlparse(self.path)
            lowered = {k.lower(): v for k, v in self.headers.items()}
            action = api_action(self.command, url.path, lowered, body)
            protocol = protocol_of(url.path, lowered)
            with state.lock:
                refuse = state.refuse
            if refuse and (
                "bucket" not in refuse or (protocol == "s3" and url.path.split("/")[1] == refuse["bucket"])
            ):
                payload, content_type, headers = refusal(
                    protocol, refuse["code"], refuse.get("message", "injected by fault_proxy.py")
                )
                return self.reply(int(refuse.get("status", 403)), payload, content_type, headers)
            if is_write(self.command, action):
                with state.lock:
                    described = action or f"{self.command} {url.path}?{url.query}"
                    state.writes.append(described)
                    refuse = state.fail_write == len(state.writes)
                    hold = state.hold is not None and state.hold == described
                    if hold:
                        state.hold = None
                        state.held = described
                if hold:
                    state.release.wait(120)
                    with state.lock:
                        state.held = None
                if refuse:
                    payload, content_type, headers = refusal(
                        protocol, "AccessDenied" if protocol != "json" else "AccessDeniedException",
                        "injected by fault_proxy.py: fail-write",
                    )
                    return self.reply(403, payload, content_type, headers)
            kind = state.choose(operation_of(self.command, url.path, url.query, lowered))
            if kind == "slowdown":
                return self.reply(503, error_document("SlowDown", "Please reduce your request rate."))
            if kind == "internal":
                return self.reply(500, error_document("InternalError", "We encountered an internal error."))
            if kind == "ok-error":
                return self.reply(200, error_document("InternalError", "We encountered an internal error."))
            answer = forward(target, self, body)
            if kind == "reset":
                return self.reset()
            if kind == "delay":
                time.sleep(state.delay)
            relay(self, *answer)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_request

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--kinds", default="slowdown,internal,reset,delay")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--exit-with-stdin", action="store_true")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(KINDS)}")

    state = State(args.rate, kinds, args.seed, args.delay)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.upstream, state))
    server.daemon_threads = True
    # A reset is a fault we make on purpose; it is not news.
    server.handle_error = lambda request, address: None
    if args.exit_with_stdin:

        def watch_stdin():
            while sys.stdin.buffer.read(4096):
                pass
            os._exit(0)

        threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
