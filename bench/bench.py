"""s3fan's benchmark suite (issue 7). Run it with bench/run, which builds what
it needs; see bench/RESULTS.md for what it measured and how to read it.

Every comparison is made within one run, on one machine, with the
implementations interleaved, in a new random order each round, so that
noise from the shared machine falls on all of them alike. Each figure is a median over
repeats, with its spread (min to max) beside it.

Sections:
  cold     process spawn -> first GET /invocation/next (init), -> first
           event's response, and RSS after it: s3fan, the minimal Rust
           handler (bench/minimal) and the original Python function
           (bench/baseline) behind the same local Runtime API and S3.
  warm     events per second one instance handles, and the time from handing
           out an event to its response (the handler's own time plus one
           CopyObject on a local S3 that answers in well under a millisecond).
  deploy   s3fan deploy against moto (tests/harness/local_aws.py): API calls
           and wall time for 1, 10 and 50 destinations, first deploy and a
           redeploy with no change (which must write nothing).
  multipart  s3fan's multipart copy of a large object on the local S3,
           against part size and concurrency, beside one CopyObject.
  listing  s3fan verify against a fake S3 that lists generated keys
           (FakeListing) with a chosen latency per LIST page: a serial
           listing (--list-concurrency 1) against the default, and peak RSS
           of a verify of 100,000 against 1,000,000 keys.
"""

import argparse
import json
import os
import queue
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from urllib.parse import urlparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The fault proxy's forwarding, for the tagging shim below.
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
import fault_proxy  # noqa: E402
RUNTIME_PREFIX = "/2018-06-01/runtime"
REGION = "us-east-1"


# ---------------------------------------------------------------------------
# Figures.
# ---------------------------------------------------------------------------


class Figure:
    """Repeated measurements of one quantity: median and spread."""

    def __init__(self, values):
        self.values = sorted(values)

    @property
    def median(self):
        return statistics.median(self.values)

    def show(self, unit, scale=1.0, digits=1):
        if not self.values:
            return "n/a"
        lo, mid, hi = (v * scale for v in (self.values[0], self.median, self.values[-1]))
        return f"{mid:.{digits}f} {unit} ({lo:.{digits}f}-{hi:.{digits}f})"


def ratio(a, b):
    return a / b if b else float("inf")


def table(headers, rows):
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


def serve_in_thread(handler):
    """A threaded HTTP server for `handler` on a free loopback port:
    (server, endpoint)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# The answer to STS GetCallerIdentity, which s3fan asks before anything.
CALLER_IDENTITY = (
    '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    "<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/bench</Arn>"
    "<UserId>AIDABENCH</UserId><Account>123456789012</Account></GetCallerIdentityResult>"
    "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# ---------------------------------------------------------------------------
# A local S3 that answers at once: s3s-fs (Rust, files on disk).
# ---------------------------------------------------------------------------


class FastS3:
    def __init__(self, binary):
        self.root = tempfile.mkdtemp(prefix="s3fan-bench-s3-")
        self.port = free_port()
        self.process = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(self.port),
             "--access-key", "test", "--secret-key", "test", self.root],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.client = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id="test", aws_secret_access_key="test",
            config=Config(s3={"addressing_style": "path"}),
        )

    def close(self):
        self.process.terminate()
        self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


class FakeListing:
    """Just enough of S3 and STS for `s3fan verify`: every bucket holds the
    same `count` generated keys (`obj/000000042`), listed 1,000 to a page
    after `delay` seconds per ListObjectsV2 request, as a WAN or a busy S3
    would answer. Keys are generated on demand: the server holds none, so
    it is the client's listing and merge that are measured."""

    def __init__(self, count, delay):
        self.count, self.delay = count, delay
        self.lists = 0
        lock = threading.Lock()
        fake = self

        def key(i):
            return f"obj/{i:09d}"

        # Each key's <Contents> rendered once: a page is then one join, so
        # the server answers in well under a millisecond, far faster than
        # the client it measures.
        rendered = [f'<Contents><Key>{key(i)}</Key><Size>1024</Size><ETag>"e{i}"</ETag></Contents>'
                    for i in range(count)]

        class Keys:
            def __len__(self):
                return fake.count

            def __getitem__(self, i):
                return key(i)

        import bisect
        from urllib.parse import parse_qs

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def reply(self, body, status=200, headers=()):
                data = body.encode()
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.reply(CALLER_IDENTITY, headers=[("Content-Type", "text/xml")])

            def do_HEAD(self):
                self.send_response(200)
                self.send_header("x-amz-bucket-region", REGION)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                path, _, query = self.path.partition("?")
                q = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
                if "location" in q:
                    return self.reply('<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>')
                with lock:
                    fake.lists += 1
                time.sleep(fake.delay)
                prefix = q.get("prefix", "")
                after = q.get("continuation-token") or q.get("start-after") or ""
                keys = Keys()
                start = bisect.bisect_right(keys, after)
                if q.get("delimiter"):
                    # Every key is under obj/: one common prefix.
                    body = ("<ListBucketResult><IsTruncated>false</IsTruncated>"
                            "<CommonPrefixes><Prefix>obj/</Prefix></CommonPrefixes></ListBucketResult>")
                    return self.reply(body if "obj/".startswith(prefix) or prefix.startswith("obj/") else
                                      "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>")
                end = min(start + 1000, fake.count)
                parts = [f"<ListBucketResult><EncodingType>url</EncodingType>"
                         f"<IsTruncated>{'true' if end < fake.count else 'false'}</IsTruncated>"]
                if end < fake.count:
                    parts.append(f"<NextContinuationToken>{key(end - 1)}</NextContinuationToken>")
                if "obj/".startswith(prefix) or prefix.startswith("obj/"):
                    parts.extend(rendered[start:end])
                parts.append("</ListBucketResult>")
                self.reply("".join(parts))

        self.server, self.endpoint = serve_in_thread(Handler)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class TaggingShim:
    """s3s-fs has no GetObjectTagging, which s3fan's multipart copy calls to
    carry the tags over. This proxy answers it with an empty TagSet and
    passes every other request through unchanged. Only the multipart section
    uses it: it adds a little latency per request, not per byte (the bytes
    of a server-side copy never pass through it)."""

    def __init__(self, upstream_port):
        upstream = urlparse(f"http://127.0.0.1:{upstream_port}")

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def forward(self):
                if self.command == "GET" and ("?tagging" in self.path or "&tagging" in self.path):
                    body = (b'<?xml version="1.0" encoding="UTF-8"?>'
                            b'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet/></Tagging>')
                    return fault_proxy.relay(self, 200, [("Content-Type", "application/xml")], body)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault_proxy.relay(self, *fault_proxy.forward(upstream, self, body))

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------
# The Lambda Runtime API, with timestamps.
# ---------------------------------------------------------------------------


class RuntimeApi:
    """Serves queued events to one runtime process and records when it first
    polled, when each event was handed out and when its result came back."""

    def __init__(self):
        self.events = queue.Queue()
        self.first_poll = None
        self.handed_out = {}
        self.finished = {}
        self.results = {}
        self.done = threading.Condition()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Small replies on a kept-alive connection: no Nagle delay.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != f"{RUNTIME_PREFIX}/invocation/next":
                    self.send_error(404)
                    return
                if api.first_poll is None:
                    api.first_poll = time.perf_counter()
                request_id, body = api.events.get()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int((time.time() + 900) * 1000)))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:bench")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                api.handed_out[request_id] = time.perf_counter()
                self.wfile.write(body)

            def do_POST(self):
                now = time.perf_counter()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                parts = self.path[len(RUNTIME_PREFIX):].strip("/").split("/")
                if parts[:1] == ["init"]:
                    key, ok = "init", False
                else:
                    key, ok = parts[1], parts[2] == "response"
                with api.done:
                    api.finished[key] = now
                    api.results[key] = (ok, body)
                    api.done.notify_all()
                self.send_response(202)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A runtime killed mid-poll resets its connection: expected, not news.
        self.server.handle_error = lambda request, address: None
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def queue(self, body):
        request_id = str(uuid.uuid4())
        self.events.put((request_id, body.encode()))
        return request_id

    def wait(self, request_ids, timeout=600):
        deadline = time.time() + timeout
        with self.done:
            while not all(r in self.finished for r in request_ids):
                if "init" in self.finished:
                    raise RuntimeError(f"init failed: {self.results['init'][1]}")
                remaining = deadline - time.time()
                if remaining <= 0:
                    raise RuntimeError(f"no answer to {len(request_ids)} events in {timeout} s")
                self.done.wait(remaining)
        for r in request_ids:
            ok, body = self.results[r]
            if not ok:
                raise RuntimeError(f"invocation failed: {body}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------
# The functions under test.
# ---------------------------------------------------------------------------


class Function:
    def __init__(self, name, argv, extra_env=None):
        self.name, self.argv, self.extra_env = name, argv, extra_env or {}

    def spawn(self, runtime_api, s3_endpoint, destination, config_file, env=None):
        environment = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "AWS_LAMBDA_RUNTIME_API": runtime_api.address,
            "AWS_LAMBDA_FUNCTION_NAME": destination,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{destination}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_SESSION_TOKEN": "test",
            "AWS_ENDPOINT_URL": s3_endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            # boto3: path-style addressing against a local endpoint, as s3fan
            # and the minimal handler do by themselves.
            "AWS_CONFIG_FILE": config_file,
            "_HANDLER": "lambda_function.lambda_handler",
            # Trusted roots laid out as on provided.al2023: one bundle. On
            # Debian, /etc/ssl/certs also holds each root as its own file,
            # and rustls-native-certs (which the AWS SDK's client loads at
            # construction) reads the bundle and every file: twice the work.
            "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
            "SSL_CERT_DIR": os.path.join(os.path.dirname(config_file), "empty-cert-dir"),
        }
        environment.update(self.extra_env)
        environment.update(env or {})
        environment = {k: v for k, v in environment.items() if v is not None}
        return Spawned(self.argv, environment)


class Spawned:
    """A process started with posix_spawn (vfork and exec): a fork of this
    Python process, which has boto3 loaded, takes 5 to 15 ms on its own and
    would be counted as the function's start-up."""

    def __init__(self, argv, environment):
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            self.pid = os.posix_spawnp(
                argv[0], argv, environment,
                file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                              (os.POSIX_SPAWN_DUP2, devnull, 2)],
                setsid=True,
            )
        finally:
            os.close(devnull)


def memory_kib(pid):
    """VmRSS and VmHWM (peak RSS) of a process, in KiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def executable_rss_kib(pid):
    """The part of RSS that is the executable's own pages (code, read-only
    data and the relocated data), from /proc/PID/smaps."""
    executable = os.path.realpath(f"/proc/{pid}/exe")
    total, inside = 0, False
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if fields and "-" in fields[0] and len(fields) >= 5:
                inside = len(fields) >= 6 and fields[5] == executable
            elif inside and fields[:1] == ["Rss:"]:
                total += int(fields[1])
    return total


def cpu_ns(pid):
    """CPU time of every thread of a process so far, in nanoseconds, from the
    scheduler's own accounting: precise, and what noise from other processes
    changes least (they delay a process, they do not add to its CPU time)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def stop(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(process.pid, 0)


def s3_event(bucket, key, size, etag, sequence):
    """An S3 ObjectCreated event, wrapped by SNS, as AWS sends it. No booleans
    or nulls: the original function parses it with ast.literal_eval."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": "2026-11-26T00:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:BENCH"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "BENCH", "x-amz-id-2": "BENCH"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "s3fan",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "BENCH"},
                       "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": key, "size": size, "eTag": etag, "sequencer": f"{sequence:016X}"},
        },
    }
    message = json.dumps({"Records": [record]})
    return json.dumps({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": f"arn:aws:sns:{REGION}:123456789012:{bucket}-fanout:bench",
        "Sns": {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": f"arn:aws:sns:{REGION}:123456789012:{bucket}-fanout",
            "Subject": "Amazon S3 Notification",
            "Message": message,
            "Timestamp": "2026-11-26T00:00:00.000Z",
            "SignatureVersion": "1",
            "Signature": "BENCH",
            "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/bench.pem",
            "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {},
        },
    }]})


# ---------------------------------------------------------------------------
# Sections.
# ---------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="s3fan-bench-")
        self.config_file = os.path.join(self.work, "aws-config")
        os.mkdir(os.path.join(self.work, "empty-cert-dir"))
        with open(self.config_file, "w") as f:
            f.write("[default]\ns3 =\n    addressing_style = path\n")
        python = sys.executable
        self.functions = [
            Function("s3fan", [args.s3fan]),
            Function("minimal-rust", [args.minimal]),
            Function("python-baseline", [python, os.path.join(ROOT, "bench/baseline/runtime.py")]),
        ]
        for path in args.variant or []:
            name = os.path.basename(path)
            self.functions.append(Function(name, [path]))
        if os.path.isdir("/etc/ssl/certs"):
            self.functions.append(Function("s3fan, Debian's cert dir", [args.s3fan],
                                           {"SSL_CERT_FILE": None, "SSL_CERT_DIR": None}))
        self.results = {"machine": machine(), "sections": {}}
        self.random = random.Random(args.seed)

    def rounds(self):
        """The functions in a new random order for each round: whichever
        runs first after a pause may pay for it, so no function always does."""
        order = list(self.functions)
        self.random.shuffle(order)
        return order

    def small_objects(self, s3, count=16):
        s3.client.create_bucket(Bucket="bench-src")
        s3.client.create_bucket(Bucket="bench-dst")
        objects = []
        for i in range(count):
            key = f"small/object {i}.txt"
            etag = s3.client.put_object(Bucket="bench-src", Key=key, Body=os.urandom(1024))["ETag"].strip('"')
            objects.append((key.replace(" ", "+"), 1024, etag))
        return objects

    def cold(self, s3, objects):
        key, size, etag = objects[0]
        event = s3_event("bench-src", key, size, etag, 1)
        samples = {f.name: {"init": [], "first": [], "cpu": [], "rss": [], "exe": [], "hwm": []}
                   for f in self.functions}
        for _ in range(self.args.repeat):
            for function in self.rounds():
                api = RuntimeApi()
                request_id = api.queue(event)
                started = time.perf_counter()
                process = function.spawn(api, s3.endpoint, "bench-dst", self.config_file)
                try:
                    api.wait([request_id])
                    rss, hwm = memory_kib(process.pid)
                    exe = executable_rss_kib(process.pid)
                    cpu = cpu_ns(process.pid) / 1e9
                finally:
                    stop(process)
                    api.close()
                sample = samples[function.name]
                sample["init"].append(api.first_poll - started)
                sample["first"].append(api.finished[request_id] - started)
                sample["cpu"].append(cpu)
                sample["rss"].append(rss)
                sample["exe"].append(exe)
                sample["hwm"].append(hwm)
        figures = {name: {k: Figure(v) for k, v in s.items()} for name, s in samples.items()}
        base, floor = figures["python-baseline"], figures["minimal-rust"]
        rows = []
        for name, f in figures.items():
            rows.append([
                name,
                f["init"].show("ms", 1000),
                f["first"].show("ms", 1000),
                f["cpu"].show("ms", 1000),
                f["rss"].show("MiB", 1 / 1024),
                f"{f['exe'].median / 1024:.1f} MiB",
                f"{ratio(base['init'].median, f['init'].median):.1f}x",
                f"{ratio(f['rss'].median, base['rss'].median):.2f}",
                f"{ratio(f['init'].median, floor['init'].median):.2f}",
                f"{ratio(f['first'].median, floor['first'].median):.2f}",
                f"{ratio(f['rss'].median, floor['rss'].median):.2f}",
            ])
        print(f"\n## Cold start ({self.args.repeat} runs each, interleaved; median (min-max))\n")
        print(table(["function", "init", "first response", "CPU until then", "RSS after it", "of it, the executable",
                     "init: x faster than baseline", "RSS / baseline",
                     "init / minimal", "first / minimal", "RSS / minimal"], rows))
        self.results["sections"]["cold"] = {
            name: {k: fig.values for k, fig in f.items()} for name, f in figures.items()}

    def warm(self, s3, objects):
        count = self.args.events
        per_event = {f.name: [] for f in self.functions}
        throughput = {f.name: [] for f in self.functions}
        cpu = {f.name: [] for f in self.functions}
        for _ in range(max(1, self.args.repeat // 3)):
            for function in self.rounds():
                api = RuntimeApi()
                process = function.spawn(api, s3.endpoint, "bench-dst", self.config_file)
                try:
                    # Warm the instance with one event, then time `count`.
                    key, size, etag = objects[0]
                    api.wait([api.queue(s3_event("bench-src", key, size, etag, 0))])
                    cpu_before = cpu_ns(process.pid)
                    ids = []
                    for i in range(count):
                        key, size, etag = objects[i % len(objects)]
                        ids.append(api.queue(s3_event("bench-src", key, size, etag, i + 1)))
                    api.wait(ids)
                    cpu[function.name].append((cpu_ns(process.pid) - cpu_before) / 1e9 / count)
                finally:
                    stop(process)
                    api.close()
                first = min(api.handed_out[r] for r in ids)
                last = max(api.finished[r] for r in ids)
                throughput[function.name].append(count / (last - first))
                per_event[function.name].append(
                    statistics.median(api.finished[r] - api.handed_out[r] for r in ids))
        base_throughput = Figure(throughput["python-baseline"]).median
        floor_time = Figure(per_event["minimal-rust"]).median
        rows = []
        for name in per_event:
            t, e, c = Figure(throughput[name]), Figure(per_event[name]), Figure(cpu[name])
            rows.append([
                name, t.show("events/s", 1, 0), e.show("ms", 1000, 2), c.show("ms", 1000, 2),
                f"{ratio(t.median, base_throughput):.1f}x",
                f"{ratio(e.median, floor_time):.2f}",
                f"{(e.median - floor_time) * 1000:+.2f} ms",
            ])
        print(f"\n## Warm: {count} events of 1 KiB objects per instance, one CopyObject each "
              f"({max(1, self.args.repeat // 3)} instances each)\n")
        print(table(["function", "throughput", "event -> response (median)", "CPU per event",
                     "throughput / baseline", "time / minimal", "time - minimal"], rows))
        self.results["sections"]["warm"] = {"throughput": throughput, "per_event": per_event, "cpu": cpu}

    def multipart(self, s3):
        size = int(self.args.large_gib * 1024**3)
        shim = TaggingShim(s3.port)
        client = s3.client
        client.create_bucket(Bucket="bench-large-src")
        client.create_bucket(Bucket="bench-large-dst")
        path = os.path.join(self.work, "large")
        with open(path, "wb") as f:
            chunk = os.urandom(8 * 1024**2)
            for _ in range(size // len(chunk)):
                f.write(chunk)
            f.write(chunk[: size % len(chunk)])
        client.upload_file(path, "bench-large-src", "large.bin")
        os.remove(path)
        etag = client.head_object(Bucket="bench-large-src", Key="large.bin")["ETag"].strip('"')
        event = s3_event("bench-large-src", "large.bin", size, etag, 1)
        s3fan = self.functions[0]
        runs = [("CopyObject", None, None)]
        runs += [(f"{p} MiB x {c}", p, c) for p in self.args.part_mib for c in self.args.concurrency]
        samples = {label: [] for label, _, _ in runs}
        # Peak RSS of the function over the copy: a part copy moves no bytes
        # through it, so parts in flight should cost it next to nothing.
        peaks = {label: [] for label, _, _ in runs}
        for _ in range(max(1, self.args.repeat // 5)):
            for label, part, concurrency in runs:
                env = {"S3FAN_MULTIPART_THRESHOLD": str(5 * 1024**3)}
                if part is not None:
                    env = {"S3FAN_MULTIPART_THRESHOLD": str(5 * 1024**2),
                           "S3FAN_PART_SIZE": str(part * 1024**2),
                           "S3FAN_COPY_CONCURRENCY": str(concurrency)}
                api = RuntimeApi()
                request_id = api.queue(event)
                process = s3fan.spawn(api, shim.endpoint, "bench-large-dst", self.config_file, env)
                try:
                    api.wait([request_id])
                    peaks[label].append(memory_kib(process.pid)[1])
                finally:
                    stop(process)
                    api.close()
                result = json.loads(api.results[request_id][1])
                if result.get("copied") != 1:
                    raise RuntimeError(f"{label}: the copy did not happen: {result}")
                copied = client.head_object(Bucket="bench-large-dst", Key="large.bin")["ContentLength"]
                if copied != size:
                    raise RuntimeError(f"{label}: copied {copied} bytes of {size}")
                client.delete_object(Bucket="bench-large-dst", Key="large.bin")
                samples[label].append(size / (api.finished[request_id] - api.handed_out[request_id]))
        shim.close()
        reference = Figure(samples["CopyObject"]).median
        rows = [[label, Figure(v).show("MiB/s", 1 / 1024**2, 0), f"{ratio(Figure(v).median, reference):.2f}",
                 f"{Figure(v).median * 897 / 1024**4:.2f} TiB", Figure(peaks[label]).show("MiB", 1 / 1024, 1)]
                for label, v in samples.items()]
        print(f"\n## Multipart copy of a {self.args.large_gib:g} GiB object on the local S3 "
              f"(s3fan, one invocation; part size x concurrency)\n")
        print(table(["copy", "throughput", "/ CopyObject", "in 897 s (900 s timeout less s3fan's 3 s margin)",
                     "peak RSS"], rows))
        self.results["sections"]["multipart"] = {"size": size, "bytes_per_second": samples, "peak_rss_kib": peaks}

    def verify_run(self, fake, concurrency):
        """One `s3fan verify` against `fake`: (seconds, peak RSS KiB, LIST
        requests, keys compared)."""
        env = {"PATH": os.environ["PATH"], "HOME": self.work, "AWS_ENDPOINT_URL": fake.endpoint,
               "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}
        argv = [self.args.s3fan, "verify", "--source", "bench-src", "--dest", "bench-dst",
                "--list-concurrency", str(concurrency), "--output", "json"]
        before = fake.lists
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        # The high-water mark of s3fan itself, read until it exits: a
        # child's ru_maxrss would count the forked Python before exec too.
        peak, exited = [0], threading.Event()

        def watch():
            while not exited.is_set():
                try:
                    peak[0] = max(peak[0], memory_kib(process.pid)[1])
                except (OSError, ValueError, KeyError):
                    pass
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        exited.set()
        watcher.join()
        process.returncode = status
        report = json.loads(out)
        if status != 0 or not report.get("ok"):
            raise RuntimeError(f"verify at {concurrency} failed: {out[-2000:]!r}")
        compared = report["destinations"][0]["in_sync"]
        if compared != fake.count:
            raise RuntimeError(f"verify at {concurrency} compared {compared} keys of {fake.count}")
        cpu = usage.ru_utime + usage.ru_stime
        return seconds, peak[0], fake.lists - before, compared, cpu

    def listing(self):
        rounds = max(1, self.args.repeat // 5)
        print(f"\n## Listing: s3fan verify of one destination, serial against sliced "
              f"({rounds} interleaved rounds; median (min-max))\n")
        rows, results = [], {}
        for count, delay in [(self.args.listing_keys, self.args.listing_delay_ms / 1000), (self.args.listing_keys, 0)]:
            fake = FakeListing(count, delay)
            runs = {1: [], 32: []}
            try:
                for _ in range(rounds):
                    order = list(runs)
                    self.random.shuffle(order)
                    for concurrency in order:
                        runs[concurrency].append(self.verify_run(fake, concurrency))
            finally:
                fake.close()
            serial = Figure([r[0] for r in runs[1]]).median
            for concurrency, samples in runs.items():
                seconds = Figure([r[0] for r in samples])
                keys_per_second = Figure([2 * count / r[0] for r in samples])
                rows.append([f"{count:,} keys, {delay * 1000:.0f} ms per page",
                             "serial (1)" if concurrency == 1 else f"{concurrency} slices (default)",
                             seconds.show("s", 1, 2), keys_per_second.show("keys/s", 1, 0),
                             f"{samples[0][2]:,}", f"{ratio(serial, seconds.median):.1f}x",
                             Figure([r[4] * 1e6 / (2 * count) for r in samples]).show("us", 1, 2),
                             Figure([r[1] for r in samples]).show("MiB", 1 / 1024, 1)])
            results[f"{count}@{delay}"] = {c: [list(r) for r in s] for c, s in runs.items()}
        print(table(["listing", "verify with", "wall", "keys listed per second (both sides)",
                     "LIST requests", "x serial", "s3fan CPU per key", "peak RSS"], rows))
        print(f"\n## Peak RSS of a verify against the number of keys (32 slices, no latency)\n")
        peaks, rss_rows = {}, []
        for count in (self.args.listing_keys, self.args.listing_keys * 10):
            fake = FakeListing(count, 0)
            try:
                samples = [self.verify_run(fake, 32) for _ in range(rounds)]
            finally:
                fake.close()
            peaks[count] = Figure([r[1] for r in samples])
            rss_rows.append([f"{count:,}", peaks[count].show("MiB", 1 / 1024, 1),
                             Figure([r[0] for r in samples]).show("s", 1, 2),
                             f"{ratio(peaks[count].median, peaks[self.args.listing_keys].median):.2f}"])
        print(table(["keys", "peak RSS", "wall", f"RSS / {self.args.listing_keys:,} keys"], rss_rows))
        results["peak_rss_kib"] = {c: f.values for c, f in peaks.items()}
        self.results["sections"]["listing"] = results

    def deploy(self):
        python = sys.executable
        harness = subprocess.Popen(
            [python, os.path.join(ROOT, "tests/harness/local_aws.py"), "--port", "0", "--exit-with-stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        line = harness.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"local AWS did not start: {line!r}")
        endpoint = f"http://127.0.0.1:{line.split()[1]}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                          aws_access_key_id="test", aws_secret_access_key="test")
        rows, results = [], {}
        try:
            for n in self.args.destinations:
                source = f"bench-src-{n}"
                s3.create_bucket(Bucket=source)
                dests = [f"bench-dst-{n}-{i}" for i in range(n)]
                for d in dests:
                    s3.create_bucket(Bucket=d)
                argv = [self.args.s3fan, "deploy", "--source", source]
                for d in dests:
                    argv += ["--dest", d]
                runs = {}
                for phase in ("first", "again"):
                    key = f"AKIABENCH{n}X{phase.upper()}"
                    env = {"PATH": os.environ["PATH"], "HOME": self.work, "AWS_ENDPOINT_URL": endpoint,
                           "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": "test",
                           "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}
                    started = time.perf_counter()
                    run = subprocess.run(argv, env=env, capture_output=True, text=True)
                    seconds = time.perf_counter() - started
                    if run.returncode != 0:
                        raise RuntimeError(f"deploy of {n} destinations failed: {run.stderr[-2000:]}")
                    urllib.request.urlopen(endpoint + "/_harness/drain").read()
                    requests = json.loads(urllib.request.urlopen(endpoint + "/_harness/requests").read())
                    mine = [r for r in requests if r["access_key"] == key]
                    runs[phase] = {"seconds": seconds, "calls": len(mine),
                                   "writes": sorted(describe(r) for r in mine if is_write(r))}
                results[n] = runs
            base = results[self.args.destinations[0]]
            for n, runs in results.items():
                first, again = runs["first"], runs["again"]
                per_dest = ""
                if n != self.args.destinations[0]:
                    per_dest = f"{(first['calls'] - base['first']['calls']) / (n - self.args.destinations[0]):.1f}"
                rows.append([n, first["calls"], len(first["writes"]), per_dest, f"{first['seconds']:.1f} s",
                             again["calls"], len(again["writes"]), f"{again['seconds']:.1f} s"])
        finally:
            harness.stdin.close()
            harness.wait(10)
        print("\n## Deploy against moto (API calls made by s3fan; one run each)\n")
        print(table(["destinations", "first: calls", "writes", "calls per added destination", "wall",
                     "no-change redeploy: calls", "writes", "wall"], rows))
        for n, runs in results.items():
            if runs["again"]["writes"]:
                print(f"!! the no-change redeploy of {n} destinations wrote: {runs['again']['writes']}")
        self.results["sections"]["deploy"] = results


def is_write(request):
    """As tests/e2e/common.rs's RecordedRequest::is_write: a query-protocol action
    other than Get/List/Describe, or a REST call other than GET and HEAD."""
    action = request.get("action")
    if action:
        action = action.rsplit(".", 1)[-1]
        return not action.startswith(("Get", "List", "Describe"))
    return request["method"] not in ("GET", "HEAD")


def describe(request):
    return request.get("action") or f"{request['method']} {request['path']}?{request['query']}"


def machine():
    def read(command):
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return ""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": read(["uname", "-r"]),
            "rustc": read(["rustc", "--version"]), "python": sys.version.split()[0],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main():
    parser = argparse.ArgumentParser(description="s3fan's benchmark suite")
    parser.add_argument("--s3fan", required=True)
    parser.add_argument("--minimal", required=True)
    parser.add_argument("--s3s-fs", required=True, dest="s3s_fs")
    parser.add_argument("--variant", action="append", help="another s3fan build to measure in cold/warm")
    parser.add_argument("--sections", default="cold,warm,deploy,multipart,listing")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--destinations", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--large-gib", type=float, default=2)
    parser.add_argument("--part-mib", type=int, nargs="+", default=[8, 64, 256, 1024])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--listing-keys", type=int, default=100_000)
    parser.add_argument("--listing-delay-ms", type=float, default=100)
    parser.add_argument("--json", help="write every sample here")
    parser.add_argument("--seed", type=int, default=1, help="of the order of functions in each round")
    args = parser.parse_args()

    bench = Bench(args)
    m = bench.results["machine"]
    print(f"# s3fan benchmarks, {m['date']}: {m['cpu']}, {m['cores']} cores, {m['rustc']}, Python {m['python']}")
    sections = args.sections.split(",")
    try:
        if {"cold", "warm", "multipart"} & set(sections):
            s3 = FastS3(args.s3s_fs)
            try:
                objects = bench.small_objects(s3)
                if "cold" in sections:
                    bench.cold(s3, objects)
                if "warm" in sections:
                    bench.warm(s3, objects)
                if "multipart" in sections:
                    bench.multipart(s3)
            finally:
                s3.close()
        if "deploy" in sections:
            bench.deploy()
        if "listing" in sections:
            bench.listing()
    finally:
        shutil.rmtree(bench.work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(bench.results, f, indent=1)


if __name__ == "__main__":
    main()
