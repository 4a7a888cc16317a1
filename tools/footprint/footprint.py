#!/usr/bin/env python3
"""Cold start and footprint of every Lambda function, measured locally (issue 11, item 5).

Each function's release binary (host x86_64 build) is started against a minimal Lambda Runtime
API that this tool serves itself on 127.0.0.1. It measures the time from exec to the function's
first `GET /2018-06-01/runtime/invocation/next` (init), serves N invocations of a cheap event
the function handles without calling AWS, and reads VmRSS / VmHWM from /proc/<pid>/status.
Each function runs R times; init is reported as median and max. arm64 artefacts
(`target/lambda/<fn>/bootstrap`) can only be sized here, not run.

    python3 tools/footprint/footprint.py [--bin-dir DIR] [--arm64-dir DIR] [--runs 5]
                                         [--invocations 50] [--out-dir target/bench] [fn ...]

Writes `<out-dir>/footprint.md` (the table, also printed) and `<out-dir>/footprint.json`.
Exit status 1 when a function could not be run or answered an event unexpectedly; targets
(init <= 30 ms, RSS <= 64 MiB) are reported as met / not met, not enforced.

Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import json
import os
import platform
import queue
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/2018-06-01/runtime"
INIT_TARGET_MS = 30.0
RSS_TARGET_MB = 64.0
# Template's MemorySize (infra/template.yaml, Globals).
MEMORY_MB = 256
INVOCATION_TIMEOUT_S = 10.0
INIT_TIMEOUT_S = 20.0

# ----- the cheap events ----------------------------------------------------------------------
# One per function, chosen from its main.rs and shared/edge so that the function answers
# without any AWS call (an accidental call goes to AWS_ENDPOINT_URL=127.0.0.1:9 and fails on
# the first attempt, which the outcome check notices). outbox-relay has no such event: every
# run queries the outbox, so it gets a stub DynamoDB that answers each Query with no items.


def http_event(route: str) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for `route`."""
    method, path = route.split(" ", 1)
    return {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "footprint",
            "domainName": "footprint.local",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "footprint"},
            "requestId": "footprint",
            "routeKey": route,
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000,
        },
        "isBase64Encoded": False,
    }


def ws_event(route: str, body: str) -> dict[str, Any]:
    """An API Gateway WebSocket event."""
    return {
        "requestContext": {
            "routeKey": route,
            "eventType": "MESSAGE",
            "messageDirection": "IN",
            "messageId": "footprint-message",
            "connectionId": "footprint-connection",
            "connectedAt": 1767225600000,
            "requestTimeEpoch": 1767225600000,
            "requestId": "footprint",
            "apiId": "footprint",
            "stage": "dev",
            "domainName": "footprint.local",
        },
        "body": body,
        "isBase64Encoded": False,
    }


def expect_status(status: int) -> Callable[[str, Any], bool]:
    return lambda kind, body: kind == "response" and isinstance(body, dict) \
        and body.get("statusCode") == status


def expect_empty_batch(kind: str, body: Any) -> bool:
    return kind == "response" and isinstance(body, dict) and body.get("batchItemFailures") == []


def expect_error(kind: str, body: Any) -> bool:
    return kind == "error"


def expect_relayed_nothing(kind: str, body: Any) -> bool:
    return kind == "response" and body == {"published": 0, "failed": 0}


@dataclass
class Probe:
    what: str
    event: dict[str, Any]
    ok: Callable[[str, Any], bool]
    dynamodb_stub: bool = False


UNKNOWN_ROUTE = "GET /footprint/unknown-route"
HTTP_404 = Probe(f"HTTP `{UNKNOWN_ROUTE}` → 404", http_event(UNKNOWN_ROUTE), expect_status(404))
EMPTY_SQS = Probe("SQS batch of 0 records", {"Records": []}, expect_empty_batch)
PROBES: dict[str, Probe] = {
    "alliance-manager": HTTP_404,
    "battle-manager": HTTP_404,
    "clan-registry": HTTP_404,
    "territory-manager": HTTP_404,
    "war-manager": HTTP_404,
    "reward-distributor": HTTP_404,
    "score-calculator": HTTP_404,
    "event-handler": EMPTY_SQS,
    "economy-simulator": EMPTY_SQS,
    "phase-controller": Probe("malformed task → error response",
                              {"action": "footprint"}, expect_error),
    "ws-connections": Probe("WebSocket `subscribe`, malformed body → 400",
                            ws_event("subscribe", "not json"), expect_status(400)),
    "outbox-relay": Probe("scheduled run, stub DynamoDB with an empty outbox",
                          {"source": "aws.events", "detail-type": "Scheduled Event",
                           "detail": {}}, expect_relayed_nothing, dynamodb_stub=True),
}


# ----- the Runtime API -----------------------------------------------------------------------


@dataclass
class Session:
    """One function process: its invocations and what the Runtime API saw of it."""
    first_next_ns: int | None = None
    first_next: threading.Event = field(default_factory=threading.Event)
    init_error: str | None = None
    pending: "queue.Queue[tuple[str, bytes]]" = field(default_factory=queue.Queue)
    results: "queue.Queue[tuple[str, str, bytes, int]]" = field(default_factory=queue.Queue)
    rss_at_init_kb: int | None = None
    cpu_at_init_ns: int | None = None
    pid: int | None = None


class RuntimeApi(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RuntimeHandler)
        self.session = Session()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a handler still writing to a function that was stopped

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class RuntimeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: with Nagle on, each answer would wait for the
    # client's delayed ACK (tens of ms), which would be measured as the function's time.
    disable_nagle_algorithm = True
    server: RuntimeApi

    def log_message(self, *_: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        session = self.server.session
        if self.path != f"{PREFIX}/invocation/next":
            self._reply(404, b'{"errorMessage":"unknown path"}')
            return
        if session.first_next_ns is None:
            session.first_next_ns = time.perf_counter_ns()
            if session.pid is not None:
                session.rss_at_init_kb = proc_status(session.pid).get("VmRSS")
                session.cpu_at_init_ns = cpu_ns(session.pid)
            session.first_next.set()
        request_id, event = session.pending.get()
        deadline_ms = int(time.time() * 1000 + 30_000)
        self._reply(200, event, {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn":
                "arn:aws:lambda:us-east-1:000000000000:function:footprint",
            "Lambda-Runtime-Trace-Id":
                f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
        })

    def do_POST(self) -> None:
        session = self.server.session
        body = self._body()
        now = time.perf_counter_ns()
        match = re.fullmatch(rf"{PREFIX}/invocation/([^/]+)/(response|error)", self.path)
        if match:
            self._reply(202, b'{"status":"OK"}')
            session.results.put((match.group(1), match.group(2), body, now))
            return
        if self.path == f"{PREFIX}/init/error":
            self._reply(202, b'{"status":"OK"}')
            session.init_error = body.decode(errors="replace")
            session.first_next.set()
            return
        self._reply(404, b'{"errorMessage":"unknown path"}')


class DynamoDbStub(http.server.ThreadingHTTPServer):
    """Answers every DynamoDB `Query` with no items; anything else is a validation error."""
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), DynamoDbStubHandler)
        self.calls = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class DynamoDbStubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: DynamoDbStub

    def log_message(self, *_: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.calls += 1
        if self.headers.get("X-Amz-Target", "").endswith(".Query"):
            status, body = 200, b'{"Count":0,"Items":[],"ScannedCount":0}'
        else:
            status, body = 400, (b'{"__type":"com.amazon.coral.validate#ValidationException",'
                                 b'"message":"footprint stub answers Query only"}')
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# ----- measuring -----------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, ... of `pid` in kB."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.startswith("Vm") and value.strip().endswith("kB"):
                out[name] = int(value.split()[0])
    except OSError:
        pass
    return out


def cpu_ns(pid: int) -> int | None:
    """Time `pid`'s threads have run on a CPU (ns): unlike wall time, not stretched by a busy
    machine's run queue."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


def function_env(name: str, runtime_api: str, aws_endpoint: str, home: str) -> dict[str, str]:
    """What the IaC and Lambda set (shared/edge/src/config.rs), with dummy AWS settings."""
    arn = "arn:aws:states:us-east-1:000000000000:stateMachine:clanwar-footprint"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,  # an empty home: no ~/.aws profile is read
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_MB),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "30",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "footprint",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "footprint",
        "AWS_SECRET_ACCESS_KEY": "footprint",
        "AWS_ENDPOINT_URL": aws_endpoint,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "TABLE_NAME": "clanwar-footprint",
        "EVENT_BUS_NAME": "clanwar-footprint",
        "CLANWAR_RULE_PHASE_MIN_S": "60",
        "CLANWAR_RULE_PHASE_MAX_S": "604800",
        "CLANWAR_RULE_SCORE_SHARDS": "16",
        "LIFECYCLE_STATE_MACHINE_ARN": f"{arn}-war-lifecycle",
        "REWARDS_STATE_MACHINE_ARN": f"{arn}-reward-distribution",
        "DECLARE_WAR_STATE_MACHINE_ARN": f"{arn}-declare-war",
        "WS_MANAGEMENT_ENDPOINT": f"{aws_endpoint}/dev",
        "RUST_LOG": "info",
    }


@dataclass
class Run:
    init_ms: float | None = None
    init_cpu_ms: float | None = None
    invocation_us: list[float] = field(default_factory=list)
    rss_at_init_kb: int | None = None
    rss_kb: int | None = None
    hwm_kb: int | None = None
    unexpected: list[str] = field(default_factory=list)
    error: str | None = None
    aws_calls: int = 0


def run_once(name: str, binary: Path, probe: Probe, invocations: int, log: Path) -> Run:
    run = Run()
    api = RuntimeApi()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    stub = DynamoDbStub() if probe.dynamodb_stub else None
    if stub:
        threading.Thread(target=stub.serve_forever, daemon=True).start()
    endpoint = stub.url if stub else "http://127.0.0.1:9"
    home = tempfile.mkdtemp(prefix="footprint-home-")
    event = json.dumps(probe.event).encode()
    proc = None
    try:
        with log.open("ab") as out:
            start = time.perf_counter_ns()
            proc = subprocess.Popen([str(binary)], env=function_env(name, api.address, endpoint, home),
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            api.session.pid = proc.pid
            if not api.session.first_next.wait(INIT_TIMEOUT_S):
                run.error = f"no /invocation/next within {INIT_TIMEOUT_S:.0f} s"
                return run
            if api.session.init_error is not None:
                run.error = f"init error: {api.session.init_error[:300]}"
                return run
            assert api.session.first_next_ns is not None
            run.init_ms = (api.session.first_next_ns - start) / 1e6
            run.rss_at_init_kb = api.session.rss_at_init_kb
            if api.session.cpu_at_init_ns is not None:
                run.init_cpu_ms = api.session.cpu_at_init_ns / 1e6
            for i in range(invocations):
                request_id = f"footprint-{i:04d}-{uuid.uuid4().hex[:8]}"
                sent = time.perf_counter_ns()
                api.session.pending.put((request_id, event))
                try:
                    got_id, kind, body, at = api.session.results.get(timeout=INVOCATION_TIMEOUT_S)
                except queue.Empty:
                    run.error = f"invocation {i}: no answer within {INVOCATION_TIMEOUT_S:.0f} s"
                    return run
                run.invocation_us.append((at - sent) / 1e3)
                try:
                    parsed: Any = json.loads(body) if body else None
                except ValueError:
                    parsed = body.decode(errors="replace")
                if got_id != request_id or not probe.ok(kind, parsed):
                    run.unexpected.append(f"{kind}: {str(parsed)[:200]}")
            status = proc_status(proc.pid)
            run.rss_kb, run.hwm_kb = status.get("VmRSS"), status.get("VmHWM")
            if proc.poll() is not None:
                run.error = f"exited with status {proc.returncode}"
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # Unblock a handler still waiting in /next, then stop the servers.
        api.session.pending.put(("shutdown", b"{}"))
        api.shutdown()
        api.server_close()
        if stub:
            run.aws_calls = stub.calls
            stub.shutdown()
            stub.server_close()
        shutil.rmtree(home, ignore_errors=True)
    return run


# ----- binaries ------------------------------------------------------------------------------

ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}


def elf_info(path: Path) -> dict[str, Any]:
    """Architecture and whether the symbol table was stripped (ELF64 little-endian only)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return {"arch": "unknown", "stripped": None}
    machine = struct.unpack_from("<H", data, 18)[0]
    shoff = struct.unpack_from("<Q", data, 40)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 58)
    names_off = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 24)[0]
    sections = set()
    for i in range(shnum):
        name_at = struct.unpack_from("<I", data, shoff + i * shentsize)[0]
        end = data.index(b"\0", names_off + name_at)
        sections.add(data[names_off + name_at:end].decode(errors="replace"))
    return {"arch": ELF_MACHINES.get(machine, hex(machine)), "stripped": ".symtab" not in sections}


def function_names() -> list[str]:
    names = []
    for manifest in sorted((ROOT / "functions").glob("*/Cargo.toml")):
        match = re.search(r'^name\s*=\s*"([^"]+)"', manifest.read_text(), re.M)
        if match:
            names.append(match.group(1))
    return names


def default_target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")


def mb(kb_or_bytes: float | None, unit: int) -> float | None:
    return None if kb_or_bytes is None else kb_or_bytes / unit


def fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model or platform.processor()}, {platform.system()} {platform.release()}"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("functions", nargs="*", help="function names (default: all in functions/)")
    parser.add_argument("--bin-dir", type=Path,
                        default=Path(os.environ.get("FOOTPRINT_BIN_DIR") or default_target_dir() / "release"),
                        help="host release binaries (default $FOOTPRINT_BIN_DIR or $CARGO_TARGET_DIR/release)")
    parser.add_argument("--arm64-dir", type=Path,
                        default=Path(os.environ.get("FOOTPRINT_ARM64_DIR") or default_target_dir() / "lambda"),
                        help="cargo-lambda artefacts <dir>/<fn>/bootstrap (default $CARGO_TARGET_DIR/lambda)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--invocations", type=int, default=50)
    parser.add_argument("--out-dir", type=Path,
                        default=Path(os.environ.get("BENCH_DIR") or ROOT / "target" / "bench"))
    args = parser.parse_args()

    names = args.functions or function_names()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    logs = args.out_dir / "footprint-logs"
    logs.mkdir(exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc)
    load_before = loadavg()
    results: list[dict[str, Any]] = []
    failed = False
    for name in names:
        binary = args.bin_dir / name
        arm64 = args.arm64_dir / name / "bootstrap"
        probe = PROBES.get(name, HTTP_404)
        row: dict[str, Any] = {"function": name, "event": probe.what, "binary": str(binary)}
        if arm64.is_file():
            row["arm64_bytes"] = arm64.stat().st_size
            row["arm64_elf"] = elf_info(arm64)
        if not binary.is_file():
            row["error"] = f"missing {binary} (build: cargo build --release)"
            results.append(row)
            failed = True
            print(f"footprint: {name}: {row['error']}", file=sys.stderr)
            continue
        row["x86_64_bytes"] = binary.stat().st_size
        row["x86_64_elf"] = elf_info(binary)
        log = logs / f"{name}.log"
        log.write_bytes(b"")
        runs = [run_once(name, binary, probe, args.invocations, log) for _ in range(args.runs)]
        row["runs"] = [run.__dict__ for run in runs]
        errors = [r.error for r in runs if r.error] + [u for r in runs for u in r.unexpected[:1]]
        inits = [r.init_ms for r in runs if r.init_ms is not None]
        init_cpus = [r.init_cpu_ms for r in runs if r.init_cpu_ms is not None]
        latencies = [us for r in runs for us in r.invocation_us]
        rss = [r.rss_kb for r in runs if r.rss_kb is not None]
        hwm = [r.hwm_kb for r in runs if r.hwm_kb is not None]
        row.update({
            "init_ms_median": statistics.median(inits) if inits else None,
            "init_ms_max": max(inits) if inits else None,
            "init_cpu_ms_median": statistics.median(init_cpus) if init_cpus else None,
            "rss_mb_max": max(rss) / 1024 if rss else None,
            "hwm_mb_max": max(hwm) / 1024 if hwm else None,
            "invocation_us_median": statistics.median(latencies) if latencies else None,
            "invocation_us_p95": (statistics.quantiles(latencies, n=20)[18]
                                  if len(latencies) >= 20 else None),
            "aws_calls_per_invocation": (runs[0].aws_calls / max(1, len(runs[0].invocation_us))
                                         if probe.dynamodb_stub else 0),
        })
        if errors:
            row["error"] = "; ".join(errors[:3])
            failed = True
        row["init_met"] = (row["init_ms_median"] is not None
                           and row["init_ms_median"] <= INIT_TARGET_MS)
        row["init_max_met"] = row["init_ms_max"] is not None and row["init_ms_max"] <= INIT_TARGET_MS
        row["rss_met"] = row["rss_mb_max"] is not None and row["rss_mb_max"] <= RSS_TARGET_MB
        results.append(row)
        print(f"footprint: {name}: init {fmt(row['init_ms_median'])}/{fmt(row['init_ms_max'])} ms "
              f"(CPU {fmt(row['init_cpu_ms_median'])} ms), "
              f"RSS {fmt(row['rss_mb_max'])} MiB, {fmt(row['invocation_us_median'], 0)} µs/inv"
              + (f"  ERROR {row['error']}" if row.get("error") else ""), file=sys.stderr)

    report = {
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "runs": args.runs,
        "invocations": args.invocations,
        "bin_dir": str(args.bin_dir),
        "arm64_dir": str(args.arm64_dir),
        "targets": {"init_ms": INIT_TARGET_MS, "rss_mb": RSS_TARGET_MB},
        "functions": results,
    }
    (args.out_dir / "footprint.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.out_dir / "footprint.md").write_text(table)
    print(table)
    return 1 if failed else 0


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Footprint, {report['date']} on {report['machine']} (load average "
        f"{report['loadavg_before']} before, {report['loadavg_after']} after). Binaries from "
        f"`{report['bin_dir']}`, {report['runs']} runs × {report['invocations']} invocations each; init = exec → "
        f"first `/invocation/next` (median / max of the runs); RSS = VmRSS after the invocations "
        f"(max of the runs); per invocation = event handed out → answer received, through this "
        f"tool's Python Runtime API (median). Targets: init ≤ {INIT_TARGET_MS:.0f} ms (judged on "
        f"the median; a busy machine stretches single runs), RSS ≤ {RSS_TARGET_MB:.0f} MiB. "
        f"\"On-CPU\" is the process's own CPU time up to that point (median): what init costs "
        f"when the machine is not shared.",
        "",
        "| function | x86_64 MiB | arm64 MiB | init median / max ms | init on-CPU ms | RSS MiB | per invocation µs "
        "| event | targets |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in report["functions"]:
        if row.get("init_ms_median") is None:
            verdict = "not run: " + str(row.get("error", ""))
        else:
            init = "met" if row["init_met"] else "**not met**"
            if row["init_met"] and not row["init_max_met"]:
                init += " (median; max over)"
            verdict = (f"init {init}, RSS " + ("met" if row["rss_met"] else "**not met**")
                       + (f"; unexpected: {row['error']}" if row.get("error") else ""))
        lines.append(
            f"| `{row['function']}` | {fmt(mb(row.get('x86_64_bytes'), 1 << 20))} "
            f"| {fmt(mb(row.get('arm64_bytes'), 1 << 20))} "
            f"| {fmt(row.get('init_ms_median'))} / {fmt(row.get('init_ms_max'))} "
            f"| {fmt(row.get('init_cpu_ms_median'))} "
            f"| {fmt(row.get('rss_mb_max'))} | {fmt(row.get('invocation_us_median'), 0)} "
            f"| {row['event']} | {verdict} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
