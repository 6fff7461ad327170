"""The users' question (issue 19): is s3fan faster than what I use today?

The same objects are copied, server-side, from one source bucket by s3fan
backfill, s5cmd cp, rclone copy and aws s3 sync, each into a fresh bucket of
its own; then each tool checks a bucket that is in sync (s3fan verify,
rclone check, s5cmd sync --dry-run, aws s3 sync --dryrun). One local S3
serves them all (by default the one `latency-proxy memory` holds in
memory, fast enough not to be the bottleneck; `--server seaweedfs` or
`s3s-fs` for a real one), behind bench/latency-proxy, which holds every
request for the chosen latency (this machine has no netem) and every
listing page for its own. The tools run one at a time, in a new random
order each round, so that the shared machine's noise falls on all alike.

Per run: wall time, and the tool's own CPU (user + system, from wait4: the
local S3 and the proxy are not its children). Run it with bench/peers.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (REGION, CALLER_IDENTITY, FastS3, Figure, machine, ratio,  # noqa: E402
                   serve_in_thread, table, wait_for_port)

SOURCE = "peers-src"


class Sts:
    """GetCallerIdentity, which s3fan asks before anything (s3s-fs has no
    STS). Not behind the proxy: it is asked once a run."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = CALLER_IDENTITY.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server, self.endpoint = serve_in_thread(Handler)

    def close(self):
        self.server.shutdown()


def path_style_client(port):
    """boto3's S3 client for a local S3 on `port`, with test credentials."""
    import boto3
    from botocore.config import Config
    return boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name=REGION,
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))


class Weed:
    """SeaweedFS (`weed mini`, Go, production-grade): lists a page in a
    few milliseconds where s3s-fs walks its whole tree per page, so a tool
    that lists in parallel is not held back by the server. Its S3 is on
    8333; GetBucketLocation is answered by the proxy (see latency-proxy)."""

    def __init__(self, binary):
        self.root = tempfile.mkdtemp(prefix="s3fan-peers-weed-")
        self.port = 8333
        self.process = subprocess.Popen(
            [binary, "mini", f"-dir={self.root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, timeout=60)
        time.sleep(2)
        self.client = path_style_client(self.port)

    def close(self):
        self.process.terminate()
        self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


class Memory:
    """The S3 held in memory by `latency-proxy memory` (latency-proxy's
    memory.rs): answers a copy in microseconds, so that on two shared cores
    the server is not what caps every tool's copies."""

    def __init__(self, binary):
        self.process = subprocess.Popen([binary, "memory", "0", "0"], stdout=subprocess.PIPE,
                                        text=True)
        self.port = int(self.process.stdout.readline())
        self.client = path_style_client(self.port)

    def close(self):
        self.process.terminate()
        self.process.wait()


class Proxy:
    def __init__(self, binary, upstream_port, delay_ms, list_delay_ms):
        self.process = subprocess.Popen(
            [binary, f"127.0.0.1:{upstream_port}", str(delay_ms), str(list_delay_ms)],
            stdout=subprocess.PIPE, text=True)
        port = int(self.process.stdout.readline())
        self.endpoint = f"http://127.0.0.1:{port}"

    def close(self):
        self.process.terminate()
        self.process.wait()


class Tools:
    """The command line of each tool, for copying and for checking."""

    def __init__(self, args, work):
        self.args = args
        base = {"PATH": os.environ["PATH"], "HOME": work, "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}
        self.base = base

    def env(self, endpoint, sts):
        env = dict(self.base)
        env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_STS": sts,
                    "RCLONE_CONFIG_LOC_TYPE": "s3", "RCLONE_CONFIG_LOC_PROVIDER": "Other",
                    "RCLONE_CONFIG_LOC_ENDPOINT": endpoint,
                    "RCLONE_CONFIG_LOC_FORCE_PATH_STYLE": "true",
                    "RCLONE_CONFIG_LOC_ACCESS_KEY_ID": "test",
                    "RCLONE_CONFIG_LOC_SECRET_ACCESS_KEY": "test",
                    "RCLONE_CONFIG_LOC_REGION": REGION})
        return env

    def copies(self, endpoint):
        a = self.args
        return {
            "s3fan backfill": lambda dst: [a.s3fan, "backfill", "--source", SOURCE, "--dest", dst,
                                           "--output", "json"],
            "s3fan backfill --concurrency 16": lambda dst: [
                a.s3fan, "backfill", "--source", SOURCE, "--dest", dst, "--concurrency", "16",
                "--output", "json"],
            "s5cmd cp": lambda dst: [a.s5cmd, "--endpoint-url", endpoint, "cp",
                                     f"s3://{SOURCE}/*", f"s3://{dst}/"],
            "rclone copy --transfers 64 --checkers 64": lambda dst: [
                a.rclone, "copy", f"loc:{SOURCE}", f"loc:{dst}", "--transfers", "64",
                "--checkers", "64", "--s3-no-check-bucket"],
            "aws s3 sync": lambda dst: [a.aws, "s3", "sync", f"s3://{SOURCE}", f"s3://{dst}",
                                        "--endpoint-url", endpoint, "--only-show-errors"],
        }

    def checks(self, endpoint):
        a = self.args
        return {
            "s3fan verify": lambda dst: [a.s3fan, "verify", "--source", SOURCE, "--dest", dst,
                                         "--output", "json"],
            "rclone check --checkers 64": lambda dst: [
                a.rclone, "check", f"loc:{SOURCE}", f"loc:{dst}", "--checkers", "64"],
            # --dry-run is one of s5cmd's global flags.
            "s5cmd sync --dry-run": lambda dst: [a.s5cmd, "--endpoint-url", endpoint, "--dry-run",
                                                 "sync", f"s3://{SOURCE}/*", f"s3://{dst}/"],
            "aws s3 sync --dryrun": lambda dst: [a.aws, "s3", "sync", "--dryrun", f"s3://{SOURCE}",
                                                 f"s3://{dst}", "--endpoint-url", endpoint],
        }


def run(argv, env):
    """Runs one tool: (seconds, stdout, stderr, exit status)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    # communicate() has reaped it: its rusage is in RUSAGE_CHILDREN.
    return seconds, out, err, process.returncode


def cpu_of_children():
    import resource
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Peers:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="s3fan-peers-")
        self.tools = Tools(args, self.work)
        self.random = random.Random(args.seed)
        servers = {"memory": lambda: Memory(args.latency_proxy), "seaweedfs": lambda: Weed(args.weed),
                   "s3s-fs": lambda: FastS3(args.s3s_fs)}
        self.s3 = servers[args.server]()
        self.sts = Sts()
        self.buckets = 0
        self.results = {"machine": machine(), "objects": args.objects, "runs": []}

    def close(self):
        self.s3.close()
        self.sts.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def fill_source(self):
        """`objects` objects of `size` bytes under a few prefixes, written
        straight to the local S3 (not through the proxy)."""
        client = self.s3.client
        client.create_bucket(Bucket=SOURCE)
        body = os.urandom(self.args.size)
        from concurrent.futures import ThreadPoolExecutor

        def put(i):
            client.put_object(Bucket=SOURCE, Key=f"data/{i % 8}/{i:07d}.bin", Body=body)

        with ThreadPoolExecutor(32) as pool:
            list(pool.map(put, range(self.args.objects)))

    def fresh_bucket(self):
        self.buckets += 1
        name = f"peers-dst-{self.buckets:04d}"
        self.s3.client.create_bucket(Bucket=name)
        return name

    def count(self, bucket):
        pages = self.s3.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sum(page.get("KeyCount", 0) for page in pages)

    def measure(self, label, argv, env):
        before = cpu_of_children()
        seconds, out, err, status = run(argv, env)
        cpu = cpu_of_children() - before
        if status != 0:
            raise RuntimeError(f"{label} exited with {status}: {err.decode()[-2000:]}")
        return seconds, cpu, out

    def copying(self, delay_ms, list_delay_ms, rounds):
        proxy = Proxy(self.args.latency_proxy, self.s3.port, delay_ms, list_delay_ms)
        env = self.tools.env(proxy.endpoint, self.sts.endpoint)
        copies = self.tools.copies(proxy.endpoint)
        samples = {label: [] for label in copies}
        full = None
        try:
            for _ in range(rounds):
                order = list(copies)
                self.random.shuffle(order)
                for label in order:
                    dst = self.fresh_bucket()
                    seconds, cpu, _ = self.measure(label, copies[label](dst), env)
                    copied = self.count(dst)
                    if copied != self.args.objects:
                        raise RuntimeError(f"{label} copied {copied} of {self.args.objects}")
                    samples[label].append((seconds, cpu))
                    full = dst
        finally:
            proxy.close()
        return samples, full

    def checking(self, dst, delay_ms, list_delay_ms, rounds):
        proxy = Proxy(self.args.latency_proxy, self.s3.port, delay_ms, list_delay_ms)
        env = self.tools.env(proxy.endpoint, self.sts.endpoint)
        checks = self.tools.checks(proxy.endpoint)
        samples = {label: [] for label in checks}
        try:
            for _ in range(rounds):
                order = list(checks)
                self.random.shuffle(order)
                for label in order:
                    seconds, cpu, out = self.measure(label, checks[label](dst), env)
                    if label == "s3fan verify":
                        in_sync = json.loads(out)["destinations"][0]["in_sync"]
                        if in_sync != self.args.objects:
                            raise RuntimeError(f"s3fan verify found {in_sync} in sync")
                    samples[label].append((seconds, cpu))
        finally:
            proxy.close()
        return samples

    def show_copies(self, title, samples):
        n = self.args.objects
        rates = {label: Figure([n / s for s, _ in runs]) for label, runs in samples.items()}
        cpus = {label: Figure([c * 1000 / n for _, c in runs]) for label, runs in samples.items()}
        peers = [label for label in samples if not label.startswith("s3fan")]
        fastest = max(peers, key=lambda label: rates[label].median)
        rows = []
        for label in samples:
            rows.append([label, rates[label].show("obj/s", 1, 0), cpus[label].show("ms", 1, 3),
                         f"{ratio(rates[label].median, rates[fastest].median):.2f}x",
                         f"{ratio(cpus[label].median, cpus[fastest].median):.2f}x"])
        print(f"\n## {title}\n")
        print(table(["tool", "objects per second", "client CPU per object",
                     f"speed / {fastest}", "CPU / same"], rows))

    def show_checks(self, title, samples):
        walls = {label: Figure([s for s, _ in runs]) for label, runs in samples.items()}
        cpus = {label: Figure([c for _, c in runs]) for label, runs in samples.items()}
        base = "rclone check --checkers 64"
        rows = [[label, walls[label].show("s", 1, 2), cpus[label].show("s", 1, 2),
                 f"{ratio(walls[base].median, walls[label].median):.2f}x"] for label in samples]
        print(f"\n## {title}\n")
        print(table(["tool", "wall", "client CPU", "faster than rclone check"], rows))

    def main(self):
        a = self.args
        self.fill_source()
        server = {"memory": "the in-memory S3", "seaweedfs": "SeaweedFS"}.get(a.server, a.server)
        print(f"# peers, {self.results['machine']['date']}: {a.objects:,} objects of {a.size} "
              f"bytes on {server}, {a.rounds} interleaved rounds, median (min-max)")
        for delay in a.latency_ms:
            samples, full = self.copying(delay, delay, a.rounds)
            self.results["runs"].append({"copy": delay, "samples": samples})
            self.show_copies(f"Copy, {delay} ms per request", samples)
            checks = self.checking(full, delay, delay, a.rounds)
            self.results["runs"].append({"check": delay, "samples": checks})
            self.show_checks(f"Check a bucket in sync, {delay} ms per request", checks)
        if a.list_delay_ms:
            samples, full = self.copying(a.latency_ms[-1], a.list_delay_ms, a.rounds)
            title = f"{a.latency_ms[-1]} ms per request, {a.list_delay_ms} ms per LIST page"
            self.show_copies(f"Copy, {title}", samples)
            checks = self.checking(full, a.latency_ms[-1], a.list_delay_ms, a.rounds)
            self.show_checks(f"Check a bucket in sync, {title}", checks)
            self.results["runs"].append({"listing": title, "copy": samples, "check": checks})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for tool in ("s3fan", "s5cmd", "rclone", "aws", "latency-proxy", "s3s-fs"):
        parser.add_argument(f"--{tool}", required=True, dest=tool.replace("-", "_"))
    parser.add_argument("--weed", help="SeaweedFS's weed binary, for --server seaweedfs")
    parser.add_argument("--server", choices=["memory", "seaweedfs", "s3s-fs"], default="memory",
                        help="the local S3 behind the proxy (default: held in memory)")
    parser.add_argument("--objects", type=int, default=4000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[0, 20])
    parser.add_argument("--list-delay-ms", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args()
    peers = Peers(args)
    try:
        peers.main()
    finally:
        peers.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(peers.results, f, indent=1)


if __name__ == "__main__":
    main()
