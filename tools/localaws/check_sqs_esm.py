"""Checks the SQS -> Lambda shim's ReportBatchItemFailures decision (`sqs_esm.failed_items`)
against Lambda's documented behaviour, without a stack: only the named messages of a batch go
back to the queue; a failed invocation or a malformed answer returns the whole batch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from localaws.sqs_esm import failed_items  # noqa: E402

IDS = ["a", "b", "c"]


def answer(*ids: object) -> str:
    return json.dumps({"batchItemFailures": [{"itemIdentifier": i} for i in ids]})


CASES = [
    ("all succeeded (empty list)", answer(), False, True, set()),
    ("all succeeded (no answer)", "null", False, True, set()),
    ("one failed: only it returns", answer("b"), False, True, {"b"}),
    ("two failed", answer("a", "c"), False, True, {"a", "c"}),
    ("invocation error: whole batch", answer("b"), True, True, set(IDS)),
    ("unknown id: whole batch", answer("zzz"), False, True, set(IDS)),
    ("empty id: whole batch", answer(""), False, True, set(IDS)),
    ("null id: whole batch", answer(None), False, True, set(IDS)),
    ("not a list: whole batch", json.dumps({"batchItemFailures": 5}), False, True, set(IDS)),
    ("mapping without ReportBatchItemFailures", answer("b"), False, False, set()),
]


def main() -> int:
    bad = 0
    for name, payload, errored, reports, want in CASES:
        got = failed_items(payload, IDS, errored, reports)
        if got != want:
            bad += 1
            print(f"FAIL {name}: returned {sorted(got)}, want {sorted(want)}")
    print(f"sqs_esm.failed_items: {len(CASES) - bad}/{len(CASES)} cases as Lambda decides")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
