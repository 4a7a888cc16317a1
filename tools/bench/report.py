"""Writes docs/benchmarks.md and its plot from what `make bench` measured.

    .venv-bench/bin/python tools/bench/report.py --bench-dir target/bench --docs docs

Inputs (in --bench-dir): loadgen.json (tools/loadgen), criterion.txt (the domain benchmarks),
capacity.txt (`make capacity`), and, when the other tools wrote them, footprint.md
(tools/footprint/footprint.py) and build.json (scripts/build-lambdas.sh); meta.json (written
by scripts/bench.sh: date, machine, binaries, stack settings).

Outputs: docs/benchmarks.md, docs/benchmarks/latency.png, and the "Benchmarks" figures in
README.md between the `bench:begin` / `bench:end` markers.

The latency model for AWS (section 4) is computed here: the calls and sequential round trips of
each operation come from the run's own Server-Timing counts, our code's time from the run's
`app − aws` measurements; the AWS service latencies are stated assumptions (table in the
report), combined by Monte Carlo over log-normal distributions fitted to each p50/p99.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: render straight to PNG
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

OPS_ORDER = ["war", "scoreboard", "player", "events", "declare"]
LABELS = {
    "war": "GET /wars/{id}",
    "scoreboard": "GET /wars/{id}/scoreboard",
    "player": "GET /wars/{id}/players/{p}",
    "events": "POST /wars/{id}/events",
    "declare": "POST /wars",
}
# SPEC §12: war ops P99 < 50 ms at 1,000 RPS; score queries < 30 ms at 2,000 RPS.
# Why a raw replica can cost less than the function's own calls on the emulator.
REPLICA_GAPS = {
    "declare": "the replica starts a one-state Pass workflow, the function the real declare-war "
               "saga, whose tasks (three Lambda invocations, the lifecycle workflow's start, "
               "the outbox relay to EventBridge, the fan-out to the event handler) then run in "
               "the same single Python emulator process, holding its DynamoDB lock and its "
               "interpreter while the next declarations' calls wait",
}
TARGETS = {
    "war": ("war op", 50.0, 1_000),
    "declare": ("war op", 50.0, 1_000),
    "events": ("score update (no SPEC latency; war-op bound used)", 50.0, 1_000),
    "scoreboard": ("score query", 30.0, 2_000),
    "player": ("score query", 30.0, 2_000),
}

# ---- The AWS side of the model: stated assumptions, per call (ms, p50 and p99). ------------
# DynamoDB's published figure is "single-digit millisecond" latency at any scale (developer
# guide, product page); the split below is an assumption to be replaced by a deployment's own
# CloudWatch `SuccessfulRequestLatency` per operation. Transactions write every item twice
# (prepare and commit: the developer guide's "two underlying reads or writes" per item).
AWS = {
    "apigw": ("API Gateway HTTP API, own overhead (Latency − IntegrationLatency)", 4.0, 12.0),
    "invoke": ("Lambda invoke of a warm environment (service side)", 1.0, 4.0),
    "read": ("DynamoDB GetItem / BatchGetItem (≤ 100 keys) / Query (limit ≤ 10), same region", 3.0, 9.0),
    "transact": ("DynamoDB TransactWriteItems (≤ 25 items)", 9.0, 25.0),
    "sfn": ("Step Functions StartExecution (Standard)", 25.0, 70.0),
    "sdk_cpu": ("SDK work per call on one full vCPU (serialize, sign, parse): p50 / p99", 0.10, 0.30),
}
# Lambda allots CPU in proportion to memory: one full vCPU at 1,769 MB (Lambda developer guide).
FULL_VCPU_MB = 1_769
TEMPLATE_MB = 256  # infra/template.yaml Globals.Function.MemorySize
SAMPLES = 200_000


def lognormal(rng: np.random.Generator, p50: float, p99: float, size) -> np.ndarray:
    """Samples of a log-normal with the given median and 99th percentile."""
    p50 = max(p50, 1e-3)
    p99 = max(p99, p50 * 1.0001)
    sigma = math.log(p99 / p50) / 2.3263
    return rng.lognormal(math.log(p50), sigma, size)


def waves(op: str, calls: int, round_trips: int) -> list[list[str]]:
    """The call classes of each sequential round trip, from the measured counts.

    Reads: single reads first, the widest fan-out last (GET war: [read] [read]; scoreboard:
    [read] [17 reads]; player: [2 reads]). Event batches: reads, then the transactions side by
    side. Declarations: reads, the transaction, then the start of the workflow.
    """
    calls, round_trips = max(calls, 1), max(round_trips, 1)
    if op == "declare_async":
        reads = max(calls - 1, 0)
        read_waves = max(round_trips - 1, 1)
        out = [["read"] for _ in range(read_waves)]
        out[0] += ["read"] * max(reads - read_waves, 0)
        return out + [["transact"]]
    if op == "declare":
        reads = max(calls - 2, 0)
        read_waves = max(round_trips - 2, 0)
        out = [["read"] for _ in range(read_waves)]
        if out:
            out[0] += ["read"] * max(reads - read_waves, 0)
        return out + [["transact"], ["sfn"]]
    if op == "events":
        out = [["read"] for _ in range(round_trips - 1)]
        return out + [["transact"] * max(calls - (round_trips - 1), 1)]
    out = [["read"] for _ in range(round_trips - 1)]
    return out + [["read"] * max(calls - (round_trips - 1), 1)]


def model(op: str, calls: int, round_trips: int, own_p50: float, own_p99: float,
          memory_mb: int, seed: int = 7) -> dict:
    """P50/P99 on AWS of one operation (ms)."""
    rng = np.random.default_rng(seed)
    scale = max(FULL_VCPU_MB / memory_mb, 1.0)
    total = lognormal(rng, *AWS["apigw"][1:], SAMPLES) + lognormal(rng, *AWS["invoke"][1:], SAMPLES)
    aws_part = np.zeros(SAMPLES)
    for wave in waves(op, calls, round_trips):
        latest = np.zeros(SAMPLES)
        for cls in wave:
            latest = np.maximum(latest, lognormal(rng, *AWS[cls][1:], SAMPLES))
        aws_part += latest
    # CPU work runs on the function's share of a vCPU: our code (measured here on one core of
    # this machine) and the SDK's per-call work.
    cpu = lognormal(rng, own_p50, own_p99, SAMPLES) + calls * lognormal(rng, *AWS["sdk_cpu"][1:], SAMPLES)
    total += aws_part + scale * cpu
    return {
        "p50": float(np.percentile(total, 50)),
        "p99": float(np.percentile(total, 99)),
        "aws_p50": float(np.percentile(aws_part, 50)),
        "cpu_p99": float(np.percentile(scale * cpu, 99)),
    }


def verdict(m256: dict, m1769: dict, target: float) -> str:
    if m256["p99"] < target:
        return "met"
    if m1769["p99"] < target:
        return "met only with a full vCPU (1,769 MB)"
    return "NOT met"


# ---- inputs -------------------------------------------------------------------------------

def load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def criterion_rows(text: str) -> list[tuple[str, str]]:
    """`name  time: [low mid high]` lines (the name may stand on the line before)."""
    rows, name = [], None
    for line in text.splitlines():
        m = re.match(r"^(\S.*?)\s+time:\s+\[(.+?)\]", line)
        if m:
            rows.append((m.group(1).strip(), m.group(2)))
            name = None
            continue
        m = re.match(r"^\s+time:\s+\[(.+?)\]", line)
        if m and name:
            rows.append((name, m.group(1)))
            name = None
            continue
        if line and not line.startswith((" ", "Benchmarking", "Found", "Gnuplot", "Warning")):
            name = line.strip()
    return rows


def criterion_extra(text: str) -> str:
    """The benchmarks' own printed tables (the nearby query's interleaved medians)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("nearby query"):
            block = [line]
            for follow in lines[i + 1:]:
                if not follow.strip():
                    break
                block.append(follow)
            return "\n".join(block)
    return ""


def capacity_block(text: str) -> str:
    keep = []
    for line in text.splitlines():
        if line.startswith(("running ", "test result", "test ", "     Running", "   Compiling",
                            "    Finished", "successes:", "---- ", "failures:")):
            continue
        if line.strip().startswith(("Running", "Finished", "Compiling")):
            continue
        keep.append(line)
    return "\n".join(keep).strip()


def flatten(value, prefix="") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = []
        for i, v in enumerate(value):
            name = v.get("name") or v.get("function") or v.get("package") or str(i)
            rest = {k: x for k, x in v.items() if x is not name}
            out += flatten(rest, f"{prefix}[{name}]")
        return out
    return [(prefix, json.dumps(value) if not isinstance(value, str) else value)]


# ---- rendering ------------------------------------------------------------------------------

def f(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "–"
    return f"{x:.{digits}f}"


def steps_of(op: dict) -> list[dict]:
    return [s for s in op["steps"] if s["api"]["sent"]]


def sustained(op: dict) -> dict | None:
    """The highest step that kept up (no saturation at or below it)."""
    best = None
    for s in steps_of(op):
        if op.get("saturated_at") is not None and s["rate"] >= op["saturated_at"]:
            break
        best = s
    return best


def plot(load: dict, out: Path) -> None:
    ops = {o["op"]: o for o in load["ops"]}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13.0, 6.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(o for o in OPS_ORDER if o in ops):
        steps = steps_of(ops[name])
        if not steps:
            continue
        c = colors[i % len(colors)]
        rates = [s["rate"] for s in steps]
        left.plot(rates, [s["api"]["latency_ms"]["p99"] for s in steps], "o-", color=c,
                  label=f"{LABELS[name]} p99")
        left.plot(rates, [s["api"]["latency_ms"]["p50"] for s in steps], "o:", color=c,
                  alpha=0.7, label=f"{LABELS[name]} p50")
        left.plot(rates, [s["raw"]["latency_ms"]["p99"] for s in steps], "x--", color=c,
                  alpha=0.5, label=f"raw calls of {name} p99")
        right.plot(rates, [s["api"]["achieved_rps"] for s in steps], "o-", color=c,
                   label=LABELS[name])
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("offered rate (requests/s, open loop)")
        ax.grid(True, which="both", alpha=0.3)
    left.set_yscale("log")
    left.set_ylabel("latency from scheduled send (ms)")
    left.set_title("Latency against offered rate (local stack)")
    left.legend(fontsize=6.5, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    lim = max([s["rate"] for o in ops.values() for s in steps_of(o)] or [1])
    right.plot([0.5, lim], [0.5, lim], color="grey", alpha=0.5, linewidth=1, label="offered = answered")
    right.set_yscale("log")
    right.set_ylabel("answered (requests/s)")
    right.set_title("Throughput: answered against offered")
    right.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    machine = load["machine"]
    fig.suptitle(f"make bench {load['started_at'][:16]}Z: {machine['cores']} cores (shared), "
                 f"load {machine['load_before']} → {machine['load_after']}", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench-dir", default="target/bench")
    ap.add_argument("--docs", default="docs")
    ap.add_argument("--readme", default="README.md")
    args = ap.parse_args()
    bench, docs = Path(args.bench_dir), Path(args.docs)

    load = load_json(bench / "loadgen.json")
    meta = load_json(bench / "meta.json") or {}
    if not load:
        raise SystemExit(f"no {bench / 'loadgen.json'}: run the load first (scripts/bench.sh)")
    ops = {o["op"]: o for o in load["ops"]}
    png = docs / "benchmarks" / "latency.png"
    plot(load, png)

    date = load["started_at"][:10]
    machine = load["machine"]
    binaries = meta.get("profile", "dev (debug)")
    md: list[str] = []
    w = md.append
    w("# Benchmarks")
    w("")
    w(f"Generated by `make bench` ({meta.get('duration', 'n/a')}) on **{load['started_at'][:16]}Z**, "
      f"on a **{machine['cores']}-core machine shared with other builds and test runs** "
      f"(load average {machine['load_before']} before the load, {machine['load_after']} after: "
      f"{meta.get('cpu', 'unknown CPU')}). The local stack is moto + the real Lambda binaries "
      f"(**{binaries}** build) + the project's HTTP gateway, "
      f"{meta.get('pool', '?')} warm processes per function. Re-run with `make bench`; "
      f"figures from a loaded 2-core machine are noisy, read them as orders of magnitude.")
    w("")

    # ---- headline
    w("## Headline")
    w("")
    w("| operation | sustained here | p50 / p99 there (ms) | our code p50 / p99 (ms) | our code ÷ AWS-call time | calls / round trips | AWS model P99, 256 / 1,769 MB (ms) | SPEC §12 |")
    w("|---|---|---|---|---|---|---|---|")
    model_rows = {}
    for name in OPS_ORDER:
        if name not in ops:
            continue
        op = ops[name]
        steps = steps_of(op)
        if not steps:
            continue
        low = steps[0]["api"]
        calls, rts = low.get("calls") or 0, low.get("round_trips") or 0
        own_p50, own_p99 = low["own_ms"]["p50"], low["own_ms"]["p99"]
        m256 = model(name, calls, rts, own_p50, own_p99, TEMPLATE_MB)
        m1769 = model(name, calls, rts, own_p50, own_p99, FULL_VCPU_MB)
        model_rows[name] = (calls, rts, own_p50, own_p99, m256, m1769)
        kind, target, rps = TARGETS[name]
        best = sustained(op)
        held = f"{best['rate']:g}/s" if best else f"< {steps[0]['rate']:g}/s"
        at = best["api"] if best else low
        share = low["own_ms"]["mean"] / low["aws_ms"]["mean"] if low["aws_ms"]["mean"] else None
        w(f"| `{LABELS[name]}` | {held} | {f(at['latency_ms']['p50'])} / {f(at['latency_ms']['p99'])} "
          f"| {f(own_p50, 2)} / {f(own_p99, 2)} | {f(share * 100 if share is not None else None, 0)} % "
          f"| {calls} / {rts} | {f(m256['p99'])} / {f(m1769['p99'])} | P99 < {target:g} ms at {rps:,} RPS: "
          f"{verdict(m256, m1769, target)} (model) |")
    w("")
    w("*Sustained here*: the highest offered rate the local stack answered without falling "
      "behind (≥ 90 % answered, < 1 % failed, p99 < 2 s). *Our code* = the handler's wall time "
      "less the time AWS calls were in flight (`Server-Timing: app` − `aws`), at the lowest rate. "
      "The model column is section 4.")
    w("")
    sat = [f"`{LABELS[n]}` at {ops[n]['saturated_at']:g}/s ({ops[n]['saturation']})"
           for n in OPS_ORDER if n in ops and ops[n].get("saturated_at") is not None]
    if sat:
        w("**Where the local stack saturates**: " + "; ".join(sat) + ". "
          "It is the emulator and the machine, not the design: moto serves DynamoDB one request "
          "at a time (a global lock, `tools/localaws/ddb_lock.py`) and answers an index query by "
          "scanning the whole table (the scoreboard makes 16 of them), every Lambda runs as a "
          f"local process ({binaries} build) behind a Python Runtime API bridge, and all of it shares 2 cores "
          "with the load generator and with other work on this machine. The raw-call columns "
          "below show that the emulator alone saturates at about the same rates.")
        w("")

    # ---- per step
    w("## 1. Load against the local stack")
    w("")
    w(f"Open loop (`tools/loadgen`): each step offers a fixed rate for {load['window_s']:g} s; "
      "every request is sent at its scheduled time whatever the answers before it do, and its "
      "latency counts from that time (no coordinated omission); percentiles from HdrHistogram. "
      f"Per-request timeout {load['timeout_s']:g} s; a step that falls behind ends that "
      "operation's ramp. Right after each API step, the *raw* step sends the DynamoDB (and Step "
      "Functions) calls the operation makes — same operations, same kinds of items, same round "
      "trips, straight to the emulator with the AWS SDK — at the same rate. "
      f"Event batches are {load['batch']} kills each (new killer → victim pairs, so none is "
      f"refused: {load['rejected_events']} refused). Loopback only.")
    w("")
    w(f"![latency against offered rate](benchmarks/{png.name})")
    w("")
    for name in OPS_ORDER:
        if name not in ops:
            continue
        op = ops[name]
        w(f"### `{op['route']}`")
        w("")
        w(f"Raw calls: {op['raw_calls']}.")
        w("")
        w("| offered /s | answered /s | ok / sent | p50 | p95 | p99 | handler p50 | AWS calls p50 | our code p50 / p99 | gateway+bridge p50 | calls / RT | raw p50 | raw p99 | raw answered /s | p50 ÷ raw p50 | table items |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for s in steps_of(op):
            a, r = s["api"], s["raw"]
            ratio = a["latency_ms"]["p50"] / r["latency_ms"]["p50"] if r["latency_ms"]["p50"] else None
            w(f"| {s['rate']:g} | {f(a['achieved_rps'])} | {a['ok']} / {a['sent']} | {f(a['latency_ms']['p50'])} "
              f"| {f(a['latency_ms']['p95'])} | {f(a['latency_ms']['p99'])} | {f(a['app_ms']['p50'])} "
              f"| {f(a['aws_ms']['p50'])} | {f(a['own_ms']['p50'], 2)} / {f(a['own_ms']['p99'], 2)} "
              f"| {f(a['overhead_ms']['p50'])} | {a.get('calls')} / {a.get('round_trips')} "
              f"| {f(r['latency_ms']['p50'])} | {f(r['latency_ms']['p99'])} | {f(r['achieved_rps'])} "
              f"| {f(ratio)} | {s.get('table_items') if s.get('table_items') is not None else '–'} |")
        notes = []
        first = steps_of(op)[0] if steps_of(op) else None
        if first and first["raw"]["latency_ms"]["p50"]:
            inside = first["api"]["aws_ms"]["p50"]
            raw_p50 = first["raw"]["latency_ms"]["p50"]
            if inside > 3 * raw_p50:
                why = REPLICA_GAPS.get(name, "the replica misses part of what the calls do")
                notes.append(f"at {first['rate']:g}/s the function's own AWS-call time "
                             f"(p50 {inside:.0f} ms) is {inside / raw_p50:.0f}× the raw "
                             f"replica's latency (p50 {raw_p50:.0f} ms): {why}")
        if op.get("saturated_at") is not None:
            notes.append(f"falls behind at {op['saturated_at']:g}/s: {op['saturation']}")
        if op.get("skipped"):
            notes.append(f"not run at {', '.join(f'{x:g}' for x in op['skipped'])}/s")
        if notes:
            w("")
            text = "; ".join(notes)
            w(text[0].upper() + text[1:] + ".")
        w("")
    w("Latencies in ms. *Handler*: the function's own wall time (`Server-Timing: app`); *AWS "
      "calls*: time with at least one AWS call in flight (`aws`), which on the emulator includes "
      "the SDK's own work and the wait for moto's lock; *gateway+bridge*: the client's service "
      "time less the handler time (the local HTTP gateway, the Lambda Runtime API bridge, the "
      "wait for a free function process). On AWS the last two are API Gateway and Lambda's "
      "invoke path (section 4).")
    w("")

    # ---- our code share
    w("## 2. Our code against the AWS-call time")
    w("")
    w("Target (issue 11): our own code ≤ 10 % of the AWS-call time and ≤ 1 ms p99 per request.")
    w("")
    w("| operation | rate /s | our code p50 | our code p99 | AWS-call time p50 | our code ÷ AWS (means) | ≤ 10 % | ≤ 1 ms p99 |")
    w("|---|---|---|---|---|---|---|---|")
    for name in OPS_ORDER:
        if name not in ops:
            continue
        for s in steps_of(ops[name]):
            a = s["api"]
            if not a["own_ms"]["count"]:
                continue
            share = a["own_ms"]["mean"] / a["aws_ms"]["mean"] if a["aws_ms"]["mean"] else None
            w(f"| `{LABELS[name]}` | {s['rate']:g} | {f(a['own_ms']['p50'], 2)} | {f(a['own_ms']['p99'], 2)} "
              f"| {f(a['aws_ms']['p50'])} | {f(share * 100 if share is not None else None, 1)} % "
              f"| {'yes' if share is not None and share <= 0.10 else 'no'} | {'yes' if a['own_ms']['p99'] <= 1.0 else 'no'} |")
    w("")
    w(f"Measured on the **{binaries}** build, on a shared, loaded 2-core machine: our code's "
      "time includes waiting for a CPU whenever the emulator, the gateway, the load generator "
      "or other work on the machine holds both cores, so its p99 here is an upper bound. The "
      "share is against the *emulator's* call time; against DynamoDB's few milliseconds it is "
      "larger (section 4 carries our code's measured time over to AWS).")
    w("")

    # ---- call budget
    w("## 3. Call budget per operation")
    w("")
    w("Counted by the functions themselves (an SDK interceptor, `shared/aws/src/calls.rs`) and "
      "reported in each answer's `Server-Timing`; every shape seen in the run:")
    w("")
    w("| operation | usual calls / sequential round trips | every shape seen (answers) |")
    w("|---|---|---|")
    for name in OPS_ORDER:
        if name not in ops:
            continue
        shapes: dict[str, int] = {}
        for s in steps_of(ops[name]):
            for k, v in s["api"]["call_shapes"].items():
                shapes[k] = shapes.get(k, 0) + v
        first = steps_of(ops[name])[0]["api"] if steps_of(ops[name]) else {}
        w(f"| `{LABELS[name]}` | {first.get('calls')} / {first.get('round_trips')} | "
          + ", ".join(f"{k}: {v}" for k, v in sorted(shapes.items(), key=lambda kv: -kv[1])) + " |")
    w("")

    # ---- latency model
    w("## 4. Latency model for AWS")
    w("")
    w("What the operations should take on AWS at the SPEC §12 rates, from the round trips the "
      "code makes (measured above, this run) and per-call latencies of the AWS services "
      "(assumptions below). Per request: API Gateway + Lambda invoke + for each sequential round "
      "trip the slowest of its side-by-side calls + CPU work (our code as measured here, plus "
      f"the SDK's per-call work) scaled by the function's CPU share (Lambda gives one full vCPU "
      f"at {FULL_VCPU_MB:,} MB, so the template's {TEMPLATE_MB} MB is {TEMPLATE_MB / FULL_VCPU_MB:.0%} "
      f"of one: ×{FULL_VCPU_MB / TEMPLATE_MB:.1f}). Each latency is a log-normal fitted to its "
      f"p50 and p99; {SAMPLES:,} Monte Carlo samples.")
    w("")
    w("| assumption | p50 ms | p99 ms |")
    w("|---|---|---|")
    for key in ["apigw", "invoke", "read", "transact", "sfn", "sdk_cpu"]:
        label, p50, p99 = AWS[key]
        w(f"| {label} | {p50:g} | {p99:g} |")
    w("")
    w("| operation | calls / RT (measured) | round trips as modelled | our code here p50 / p99 | AWS calls alone P50 | CPU (ours + SDK) P99 at 256 MB | model P50 | model P99, 256 MB | model P99, 1,769 MB | SPEC §12 target | |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, (calls, rts, o50, o99, m256, m1769) in model_rows.items():
        kind, target, rps = TARGETS[name]
        shape = " → ".join(
            (f"{len(wv)}×{wv[0]}" if len(wv) > 1 else wv[0]) for wv in waves(name, calls, rts))
        ok = verdict(m256, m1769, target)
        w(f"| `{LABELS[name]}` | {calls} / {rts} | {shape} | {f(o50, 2)} / {f(o99, 2)} | {f(m256['aws_p50'])} "
          f"| {f(m256['cpu_p99'])} | {f(m256['p50'])} "
          f"| {f(m256['p99'])} | {f(m1769['p99'])} | {kind}: P99 < {target:g} ms at {rps:,} RPS | {ok} |")
    w("")
    if "declare" in model_rows:
        calls, rts, o50, o99, _, _ = model_rows["declare"]
        w("What-if for the declaration (same model, our code as measured): the call budget being "
          "worked on (≤ 3 round trips) and the synchronous start of the declare-war workflow, "
          f"whose assumed P99 alone ({AWS['sfn'][2]:g} ms) is above the 50 ms budget:")
        w("")
        w("| declaration shape | model P50 | model P99, 256 MB | model P99, 1,769 MB | P99 < 50 ms |")
        w("|---|---|---|---|---|")
        for label, c, r, no_sfn in [
            (f"today: {calls} calls / {rts} round trips", calls, rts, False),
            ("reads side by side → transaction → workflow start (5 calls / 3 round trips)", 5, 3, False),
            ("reads side by side → transaction; the workflow started after the answer "
             "(e.g. from the outbox or a table stream): 4 calls / 2 round trips", 4, 2, True),
        ]:
            a = model("declare_async" if no_sfn else "declare", c, r, o50, o99, TEMPLATE_MB)
            b = model("declare_async" if no_sfn else "declare", c, r, o50, o99, FULL_VCPU_MB)
            w(f"| {label} | {f(a['p50'])} | {f(a['p99'])} | {f(b['p99'])} | {verdict(a, b, 50.0)} |")
        w("")
    w("Assumptions and limits of the model:")
    w("")
    w("- **Rate.** DynamoDB's latency does not grow with the request rate as long as no partition "
      "exceeds its limits (3,000 RCU / 1,000 WCU per second) and Lambda has free concurrency: at "
      "1,000 RPS × ~20–40 ms a function needs ~20–40 concurrent environments (default account "
      "limit 1,000). So the model's P99 holds at 1,000 and 2,000 RPS *if the load is spread over "
      "wars*. One exception follows from the measured calls: every operation above reads the war "
      "item strongly consistent (1 RCU for ≤ 4 KB), so 1,000 war ops/s + 2,000 score queries/s "
      "**on one war** would read that one item ~3,000 times a second — the per-partition read "
      "limit, which adaptive capacity cannot split. Spread over the SPEC's 100+ wars it is "
      "~30 reads/s each; a single hot war at that rate would need the score reads to use an "
      "eventually consistent (or cached) war read.")
    w("- **Write capacity** of the score path is the capacity model below (section 5): no partition "
      "key above 25 % at 10,000 kills/s in one war.")
    w("- **Cold starts** are not in the P99: at a steady 1,000 RPS new environments start only when "
      "concurrency grows; section 6 has the measured init time (provisioned concurrency removes "
      "it where it matters).")
    w("- **Our code** is the `app − aws` time measured here at the lowest rate (so it includes "
      "waiting for this shared machine's CPU), taken at face value for one full vCPU and scaled by "
      "the CPU share. The SDK's own per-call work (serialization, SigV4, parsing; counted in the "
      "AWS-call time locally) is the `sdk_cpu` assumption, also scaled. The 256 MB column is "
      "therefore pessimistic for short CPU bursts, the 1,769 MB column optimistic.")
    w("- **DynamoDB, API Gateway, Lambda and Step Functions figures** are assumptions in line with "
      "AWS's published \"single-digit millisecond\" DynamoDB latency and commonly observed "
      "in-region values; replace them with a deployment's CloudWatch metrics "
      "(`SuccessfulRequestLatency` by operation, API Gateway `Latency` − `IntegrationLatency`, "
      "Lambda `Duration`) and re-run `tools/bench/report.py`.")
    w("- Parallel calls are independent draws; the slowest of *n* side by side sets the round trip "
      "(the scoreboard's 17 parallel reads cost more than one read).")
    w("")

    # ---- capacity
    w("## 5. Write capacity of the score path (`make capacity`)")
    w("")
    cap = read_text(bench / "capacity.txt")
    if cap:
        w("```")
        w(capacity_block(cap))
        w("```")
    else:
        w("Not run (no capacity.txt).")
    w("")

    # ---- footprint
    w("## 6. Cold start and footprint")
    w("")
    fp = read_text(bench / "footprint.md")
    if fp:
        # Demote its headings below this section's.
        w(re.sub(r"^(#+)", lambda m: "#" * min(len(m.group(1)) + 2, 6), fp.strip(), flags=re.M))
    else:
        w("Not measured in this run: `tools/footprint/footprint.py` was not there (it writes "
          "`target/bench/footprint.md`, which `make bench` includes here).")
    w("")

    # ---- build
    w("## 7. Build time")
    w("")
    build = load_json(bench / "build.json")
    if build:
        w("From `target/bench/build.json` (written by `scripts/build-lambdas.sh`, `make build`):")
        w("")
        w("| field | value |")
        w("|---|---|")
        for k, v in flatten(build):
            w(f"| {k} | {v} |")
    else:
        w("Not in this run: `make build` (the arm64 cross build of every function, about 20 "
          "minutes on 2 cores) writes `target/bench/build.json`, which `make bench` then includes "
          "here. The last measured before/after figures are in the README, *Build cost and "
          "footprint*.")
    w("")

    # ---- criterion
    w("## 8. Domain benchmarks (criterion)")
    w("")
    crit = read_text(bench / "criterion.txt")
    if crit:
        rows = criterion_rows(crit)
        if rows:
            w("| benchmark | time [low, estimate, high] |")
            w("|---|---|")
            for name, t in rows:
                w(f"| `{name}` | {t} |")
            w("")
        extra = criterion_extra(crit)
        if extra:
            w("```")
            w(extra)
            w("```")
    else:
        w("Not run (no criterion.txt).")
    w("")
    w("## How this was run")
    w("")
    w("`make bench` = `scripts/bench.sh`: builds the functions and `tools/loadgen`, starts its own "
      "local stack (own ports and state directory, so it runs beside `make test` and `make run`), "
      "runs the load (bounded: every step by count and time, the whole load by `BENCH_BUDGET` "
      "seconds), stops the stack, runs the criterion benchmarks and the capacity model, the "
      "footprint tool if present, and writes this page. Settings: `BENCH_RATES`, "
      "`BENCH_DECLARE_RATES`, `BENCH_WINDOW`, `BENCH_BUDGET`, `BENCH_POOL_SIZE`, "
      "`BENCH_PROFILE=dev|opt|release` (`opt`: the project's own crates at opt-level 3, "
      "dependencies as in dev, a few minutes of compiling; `release`: all optimized without "
      "LTO, a long first compile on 2 cores; our code's time is only meaningful optimized). "
      "`cargo run -p clanwar-loadgen -- --help` runs the load alone against a running stack.")
    if meta.get("commands"):
        w("")
        w("```")
        w(meta["commands"])
        w("```")
    w("")
    (docs / "benchmarks.md").write_text("\n".join(md))

    # ---- README figures
    readme = Path(args.readme)
    text = read_text(readme)
    if text and "<!-- bench:begin -->" in text and "<!-- bench:end -->" in text:
        lines = [f"Last `make bench`: **{date}**, {machine['cores']} cores shared with other work "
                 f"(load {machine['load_before']} → {machine['load_after']}), local stack "
                 f"({binaries} functions on moto); full tables in "
                 "[`docs/benchmarks.md`](docs/benchmarks.md).", "",
                 "| operation | sustained locally | p50 / p99 there | our code p50 / p99 | calls / RT | AWS model P50 / P99 (256 MB) | SPEC §12 (model) |",
                 "|---|---|---|---|---|---|---|"]
        for name, (calls, rts, o50, o99, m256, m1769) in model_rows.items():
            kind, target, rps = TARGETS[name]
            best = sustained(ops[name])
            at = best["api"] if best else steps_of(ops[name])[0]["api"]
            held = f"{best['rate']:g}/s" if best else f"< {steps_of(ops[name])[0]['rate']:g}/s"
            lines.append(
                f"| `{LABELS[name]}` | {held} | {f(at['latency_ms']['p50'])} / {f(at['latency_ms']['p99'])} ms "
                f"| {f(o50, 2)} / {f(o99, 2)} ms | {calls} / {rts} | {f(m256['p50'])} / {f(m256['p99'])} ms "
                f"| P99 < {target:g} ms: {verdict(m256, m1769, target)} |")
        block = "\n".join(lines)
        text = re.sub(r"<!-- bench:begin -->.*?<!-- bench:end -->",
                      lambda _: f"<!-- bench:begin -->\n{block}\n<!-- bench:end -->", text, flags=re.S)
        readme.write_text(text)

    # ---- terminal summary
    print(f"\nbench: {docs / 'benchmarks.md'} and {png} written")
    for name, (calls, rts, o50, o99, m256, m1769) in model_rows.items():
        best = sustained(ops[name])
        at = best["api"] if best else steps_of(ops[name])[0]["api"]
        print(f"  {LABELS[name]:<30} sustained {best['rate'] if best else '<' + str(steps_of(ops[name])[0]['rate'])}/s "
              f"p50 {f(at['latency_ms']['p50'])} p99 {f(at['latency_ms']['p99'])} ms | our code "
              f"p50 {f(o50, 2)} p99 {f(o99, 2)} ms | {calls} calls/{rts} RT | AWS model "
              f"P50 {f(m256['p50'])} P99 {f(m256['p99'])} ms")


if __name__ == "__main__":
    main()
