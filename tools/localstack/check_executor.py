"""Checks the project's LocalStack Lambda runtime executor on a running LocalStack stack:
a result, a function error (errorType kept), a timeout (process killed, `Sandbox.Timedout`, a
fresh process for the next invocation), a crash (`Runtime.ExitError`, then a fresh process)
and five concurrent invocations on five processes. Prints PASS/FAIL per check; exit 1 on any
failure.

    EMULATOR=localstack scripts/localaws.sh up
    .venv/bin/python tools/localstack/check_executor.py     (AWS_ENDPOINT_URL, LOCALAWS_STATE_DIR)

The function under test is a small POSIX-shell Lambda runtime (curl against the Runtime API),
registered for the check only (an absolute path in <state>/binaries.json) and deleted after.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3

FUNCTION = "localaws-check-executor"
RUNTIME = r"""#!/bin/sh
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  H=$(mktemp); B=$(mktemp)
  curl -s -D "$H" -o "$B" "$API/invocation/next" || exit 1
  ID=$(grep -i '^lambda-runtime-aws-request-id' "$H" | tr -d '\r' | awk '{print $2}')
  case "$(cat "$B")" in
    *sleep*) sleep 5 ;;
    *crash*) exit 3 ;;
    *fail*) curl -s -X POST -d '{"errorType":"BoomError","errorMessage":"boom"}' \
              "$API/invocation/$ID/error" > /dev/null; rm -f "$H" "$B"; continue ;;
  esac
  curl -s -X POST -d "{\"pid\":$$}" "$API/invocation/$ID/response" > /dev/null
  rm -f "$H" "$B"
done
"""


def main() -> int:
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    state = Path(os.environ.get("LOCALAWS_STATE_DIR") or Path(__file__).resolve().parents[2] / ".localaws")
    binaries_file = state / "binaries.json"
    if not binaries_file.is_file():
        print(f"FAIL no {binaries_file}: is the LocalStack stack running (EMULATOR=localstack)?")
        return 1
    lam = boto3.client("lambda", endpoint_url=endpoint,
                       region_name=os.environ.get("AWS_REGION", "us-east-1"),
                       aws_access_key_id="test", aws_secret_access_key="test")
    failures = 0

    def check(ok: bool, what: str, detail: object) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'} {what}: {detail}")

    def invoke(event: dict) -> tuple[str | None, dict]:
        response = lam.invoke(FunctionName=FUNCTION, Payload=json.dumps(event).encode())
        return response.get("FunctionError"), json.loads(response["Payload"].read() or b"{}")

    with tempfile.TemporaryDirectory() as tmp:
        runtime = Path(tmp) / "bootstrap"
        runtime.write_text(RUNTIME, encoding="utf-8")
        runtime.chmod(0o755)
        original = binaries_file.read_text(encoding="utf-8")
        binaries = json.loads(original)
        binaries[FUNCTION] = str(runtime)  # absolute: wins over CLANWAR_BIN_DIR
        binaries_file.write_text(json.dumps(binaries), encoding="utf-8")
        package = io.BytesIO()
        with zipfile.ZipFile(package, "w") as zf:
            zf.writestr("bootstrap", "run by the localaws-process executor")
        try:
            lam.create_function(FunctionName=FUNCTION, Runtime="provided.al2023",
                                Handler="bootstrap", Timeout=2, Code={"ZipFile": package.getvalue()},
                                Role="arn:aws:iam::000000000000:role/localaws-execution-role")
            lam.get_waiter("function_active_v2").wait(FunctionName=FUNCTION)
            err, first = invoke({"n": 1})
            check(err is None and "pid" in first, "a result", first)
            err, body = invoke({"fail": 1})
            check(err == "Unhandled" and body.get("errorType") == "BoomError",
                  "a function error keeps its errorType", body)
            started = time.monotonic()
            err, body = invoke({"sleep": 1})
            took = time.monotonic() - started
            check(err == "Unhandled" and body.get("errorType") == "Sandbox.Timedout" and took < 4.5,
                  "a timeout answers Sandbox.Timedout after the 2 s timeout", f"{took:.1f} s {body}")
            err, after = invoke({"n": 2})
            check(err is None and after.get("pid") not in (None, first["pid"]),
                  "after a timeout a fresh process serves", after)
            err, body = invoke({"crash": 1})
            check(err == "Unhandled" and body.get("errorType") == "Runtime.ExitError",
                  "a crash answers Runtime.ExitError", body)
            err, again = invoke({"n": 3})
            check(err is None and again.get("pid") not in (None, after["pid"]),
                  "after a crash a fresh process serves", again)
            with ThreadPoolExecutor(5) as pool:
                results = list(pool.map(lambda i: invoke({"parallel": i}), range(5)))
            pids = {body.get("pid") for _, body in results}
            check(all(err is None for err, _ in results) and len(pids) >= 2,
                  "concurrent invocations run on processes of their own", sorted(pids))
        finally:
            try:
                lam.delete_function(FunctionName=FUNCTION)
            except Exception:  # noqa: BLE001 - best effort
                pass
            binaries_file.write_text(original, encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
