#!/usr/bin/env python3
"""docs/reliability.md from the soak's report (tests/it/soak.rs via scripts/soak.sh).

    python3 tools/soak/report.py --report target/soak/soak.json --injected N --duration S \
        --out docs/reliability.md

Standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--injected", type=int, default=0, help="faults injected (function logs)")
    parser.add_argument("--duration", type=int, default=0, help="seconds, build included")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not args.report.is_file():
        print(f"soak report: {args.report} is missing (the soak did not finish)", file=sys.stderr)
        return 1
    r = json.loads(args.report.read_text())
    violations = r.get("violations", [])
    verdict = ("**0 violated invariants and 0 5xx answers.**" if not violations
               and r["server_errors"] == 0 else
               f"**{len(violations)} violated invariants, {r['server_errors']} 5xx answers.**")
    push = r.get("push_latency", {})
    ms = lambda v: "–" if v is None else f"{v:.0f}"  # noqa: E731
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        "# Reliability: the soak",
        "",
        f"Written by `make soak` (`scripts/soak.sh`, `tests/it/soak.rs`) on "
        f"{dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"{os.cpu_count()} cores (load average at the end {load}), against its own local stack "
        f"(moto + the real function binaries). {verdict}"
        + ("" if r.get("faults", True) else " **Run with `SOAK_FAULTS=0`: no faults armed.**"),
        "",
        "What each war goes through: two clans and a territory registered; faults armed for "
        "its calls (`clanwar_aws::faults`): every AWS call of every function throttled with "
        "probability 0.02, EventBridge `PutEvents` failing with a 500 with probability 0.2, "
        "three `TransactWriteItems` whose answers are lost after they landed, one unreachable "
        "`StartExecution` in the phase-controller; the declaration; 48 kills in 6 batches, each "
        "batch delivered 1–3 times in shuffled order, over HTTP or the ingestion queue; ten "
        "hostile requests (an object for the batch, wrong types, an unknown event type, an "
        "unknown field, control characters, a 200-deep nesting, a 2 MB body, an unknown war, "
        "a member declaring, a capture claimed for an unknown war); the end on the timers; "
        "every batch replayed over HTTP after the end. "
        "Then its invariants: the phases moved forward once each; each side's score is the "
        "points of its unique events; the scoreboard's players and clans add up to the sides; "
        "the rewards were DISTRIBUTED and the economy paid every grant exactly its amount.",
        "",
        "| | |",
        "|---|---:|",
        f"| duration of the soak (s) | {r['seconds']} |",
        f"| wars played (rounds × wars side by side) | {r['wars']} ({r['rounds']} rounds) |",
        f"| requests served through the HTTP API | {r['requests']} |",
        f"| unique score events | {r['unique_events']} |",
        f"| batch deliveries during the war (each batch 1–3 times; replays not counted) | {r['batch_deliveries']} |",
        f"| hostile inputs tried | {r['hostile_inputs']} |",
        f"| faults injected (all kinds, from the functions' logs) | {args.injected} |",
        f"| of which the counted ones (lost answers, unreachable) | {r['faults_with_a_count_fired']} |",
        f"| events pushed to a subscribed client (each war's attacking leader) | {push.get('count', 0)} |",
        f"| push latency, `occurred_at` → client: median / p95 / max (ms) | {ms(push.get('p50_ms'))} / {ms(push.get('p95_ms'))} / {ms(push.get('max_ms'))} |",
        f"| 5xx answers | **{r['server_errors']}** |",
        f"| violated invariants | **{len(violations)}** |",
        "",
        f"`make soak` took {args.duration // 60} min {args.duration % 60} s in all (build "
        "included). Settings: `SOAK_SECONDS`, `SOAK_WARS`.",
    ]
    if violations:
        lines += ["", "## Violations", ""] + [f"- {v}" for v in violations]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"soak report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
