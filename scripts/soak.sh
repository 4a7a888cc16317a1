#!/usr/bin/env bash
# `make soak`: the reliability soak (tests/it/soak.rs) for a bounded time on its OWN local stack
# (own ports and state: it runs beside `make test` and `make run`), then docs/reliability.md.
#
# Wars side by side, each under injected faults (clanwar_aws::faults: throttling, EventBridge
# 5xx, answers lost after writes, an unreachable Step Functions), every score batch delivered
# 1-3 times in shuffled order over HTTP and the queue and replayed after the end, hostile
# requests in between; then every war's invariants. The report counts what was tried and the
# violated invariants and 5xx answers, which must be zero (the run fails otherwise).
#
# Settings: SOAK_SECONDS (default 300; new wars start until then, the last ones finish),
# SOAK_WARS (wars side by side, default 3), SOAK_FAULTS=0 (the same load without injected faults), SOAK_AWS_PORT / SOAK_API_PORT / SOAK_WS_PORT /
# SOAK_WS_MGMT_PORT.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO="${CARGO:-cargo}"
OUT="$ROOT/target/soak"
mkdir -p "$OUT"

source scripts/own-stack.sh
own_stack soak "${SOAK_AWS_PORT:-5466}" "${SOAK_API_PORT:-5480}" "${SOAK_WS_PORT:-5481}" \
    "${SOAK_WS_MGMT_PORT:-5482}"
export CLANWAR_FAULTS="$LOCALAWS_STATE_DIR/faults"
export SOAK_SECONDS="${SOAK_SECONDS:-300}" SOAK_WARS="${SOAK_WARS:-3}" SOAK_REPORT="$OUT/soak.json"

cleanup() { scripts/localaws.sh down >/dev/null 2>&1 || true; }
trap cleanup EXIT

began=$SECONDS
scripts/bootstrap.sh
$CARGO build --workspace --bins --locked
rm -rf "$CLANWAR_FAULTS" && mkdir -p "$CLANWAR_FAULTS"
scripts/localaws.sh up
rm -f "$SOAK_REPORT"
status=0
$CARGO test -p clanwar-integration-tests --test integration --locked -- --ignored --nocapture \
    soak::soak || status=$?
injected=$(cat "$LOCALAWS_STATE_DIR"/logs/*.log 2>/dev/null | grep -c 'injecting a fault' || true)
python3 tools/soak/report.py --report "$SOAK_REPORT" --injected "$injected" \
    --duration "$((SECONDS - began))" --out docs/reliability.md
echo "soak: done in $(((SECONDS - began) / 60)) min $(((SECONDS - began) % 60)) s (test exit $status)"
exit "$status"
