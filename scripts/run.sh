#!/usr/bin/env bash
# `make run`: the whole product on this machine — the local AWS stack built from
# infra/template.yaml (emulator, every function as its real binary, state machines, the HTTP and
# WebSocket APIs), then a demo war played through the public API (DEMO=0 skips it), then it keeps
# serving until Ctrl-C. Stopping leaves no process behind; running it again needs no cleanup.
# EMULATOR=localstack: the same on LocalStack (scripts/localstack.sh installs it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}"
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export LOCALAWS_STATE_DIR="${LOCALAWS_STATE_DIR:-$ROOT/.localaws/run}"
# Short phases for the demo; the local economy service stand-in answers the reward saga.
export LOCALAWS_PARAMS="${LOCALAWS_PARAMS:-PhaseMinSeconds=1 DeployEconomySimulator=true}"
DEMO="${DEMO:-1}"
export EMULATOR="${EMULATOR:-moto}"  # or localstack (scripts/localstack.sh)
CARGO="${CARGO:-cargo}"

stop() {
    # Stop first, then say so: the terminal (or a pipe reader) may already be gone, and a
    # failed write must not keep the stack running.
    trap - EXIT INT TERM HUP PIPE
    scripts/localaws.sh down >/dev/null 2>&1 || true
    echo "local stack stopped" >&2 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM
# A closed terminal or pipe must end in the same clean stop, not a killed script.
trap 'exit 129' HUP
trap 'exit 141' PIPE

scripts/bootstrap.sh
echo "building the functions (debug profile, shared target directory)..."
$CARGO build --workspace --bins --locked
scripts/localaws.sh up

urls="$(.venv/bin/python - "$LOCALAWS_STATE_DIR/resources.json" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["resources"]
print(res["HttpApi"]["Url"])
print(res["WebSocketApi"]["Url"])
PY
)"
API_URL="$(sed -n 1p <<< "$urls")"
WS_URL="$(sed -n 2p <<< "$urls")"
cat <<MSG

  HTTP API   $API_URL
  WebSocket  $WS_URL   (send {"action":"subscribe","war_id":"..."})
  AWS        $AWS_ENDPOINT_URL   ($EMULATOR: DynamoDB, SQS, EventBridge, Step Functions, Lambda; dummy credentials)
  logs       $LOCALAWS_STATE_DIR/launcher.log, $LOCALAWS_STATE_DIR/logs/<function>.log

MSG

if [[ "$DEMO" != "0" ]]; then
    CLANWAR_API_URL="$API_URL" CLANWAR_WS_URL="$WS_URL" $CARGO run --quiet --locked -p clanwar-demo
fi

echo "serving until Ctrl-C..."
while scripts/localaws.sh status >/dev/null 2>&1; do sleep 2; done
echo "the local stack stopped on its own; see $LOCALAWS_STATE_DIR/launcher.log"
exit 1
