#!/usr/bin/env bash
# Local AWS stack (moto + real Rust Lambda binaries + infra/template.yaml) in the background.
# EMULATOR=localstack: LocalStack instead of moto (see scripts/localstack.sh).
#
#   scripts/localaws.sh up      start it (bootstraps .venv if needed), wait until READY
#   scripts/localaws.sh down    stop it and every process it started
#   scripts/localaws.sh status  running or not (exit 0 / 3)
#
# Reads AWS_ENDPOINT_URL (default http://127.0.0.1:4566), CLANWAR_API_PORT (8080),
# CLANWAR_WS_PORT (8081), CLANWAR_WS_MGMT_PORT (8082); see tools/localaws/launcher.py for
# the other variables. State in ${LOCALAWS_STATE_DIR:-.localaws}/: launcher.pid, launcher.log,
# ready, resources.json, logs/<function>.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${LOCALAWS_STATE_DIR:-$ROOT/.localaws}"
PID_FILE="$STATE_DIR/launcher.pid"
LOG_FILE="$STATE_DIR/launcher.log"
READY_FILE="$STATE_DIR/ready"
ENDPOINT="${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}"
EMULATOR="${EMULATOR:-moto}"  # moto | localstack (scripts/localstack.sh)
if [[ "$EMULATOR" == "localstack" ]]; then
    READY_TIMEOUT="${LOCALAWS_READY_TIMEOUT:-180}"  # LocalStack start + waiting for each function
else
    READY_TIMEOUT="${LOCALAWS_READY_TIMEOUT:-60}"
fi
export EMULATOR
PYTHON="$ROOT/.venv/bin/python"

log() { echo "localaws: $*" >&2; }

# Prints the launcher's pid if the pid file names a live launcher process (not a reused pid).
running_pid() {
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "localaws/launcher.py" || return 1
    echo "$pid"
}

port_in_use() {
    local hostport host port
    hostport="${ENDPOINT#*://}"; hostport="${hostport%%/*}"
    host="${hostport%:*}"; port="${hostport##*:}"
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

cmd_up() {
    mkdir -p "$STATE_DIR"
    local pid
    if pid="$(running_pid)"; then
        if [[ -f "$READY_FILE" ]]; then
            log "already running (pid $pid, $ENDPOINT)"
            return 0
        fi
        log "a launcher (pid $pid) is starting or stuck; run '$0 down' first"
        return 1
    fi
    if [[ -f "$PID_FILE" ]]; then
        log "removing stale pid file ($(cat "$PID_FILE" 2>/dev/null))"
        rm -f "$PID_FILE"
    fi
    rm -f "$READY_FILE"
    if port_in_use; then
        log "cannot start: $ENDPOINT is already served by another process:"
        ss -ltnp 2>/dev/null | grep -E ":${ENDPOINT##*:}\b" >&2 || true
        return 1
    fi
    "$ROOT/scripts/bootstrap.sh" >&2
    if [[ "$EMULATOR" == "localstack" ]]; then
        "$ROOT/scripts/localstack.sh" install
    elif [[ "$EMULATOR" != "moto" ]]; then
        log "EMULATOR=$EMULATOR: moto or localstack"
        return 2
    fi

    # setsid: the launcher leads its own process group, so 'down' can clean up the group.
    # LOCALAWS_PARAMS="Name=value ..." overrides template parameters (e.g. short phase bounds).
    local params=() p
    for p in ${LOCALAWS_PARAMS:-}; do params+=(--param "$p"); done
    setsid "$PYTHON" "$ROOT/tools/localaws/launcher.py" "${params[@]}" > "$LOG_FILE" 2>&1 < /dev/null &
    pid=$!
    echo "$pid" > "$PID_FILE"

    local waited=0
    while (( waited < READY_TIMEOUT * 10 )); do
        if [[ -f "$READY_FILE" ]] && grep -q "^READY " "$LOG_FILE"; then
            log "up (pid $pid, $EMULATOR): $ENDPOINT, resources in $STATE_DIR/resources.json"
            # The template's APIs, if any (HTTP_API, WEBSOCKET, WEBSOCKET_MANAGEMENT <url>).
            grep -E "^(HTTP_API|WEBSOCKET|WEBSOCKET_MANAGEMENT) " "$LOG_FILE" | sed 's/^/localaws:   /' >&2 || true
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "launcher exited during start; last lines of $LOG_FILE:"
            tail -n 30 "$LOG_FILE" >&2
            rm -f "$PID_FILE"
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    log "not ready after ${READY_TIMEOUT}s; last lines of $LOG_FILE:"
    tail -n 30 "$LOG_FILE" >&2
    cmd_down
    return 1
}

cmd_down() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE" "$READY_FILE"
        log "not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    # The launcher stops its Lambda processes itself (<= ~3 s; LocalStack: up to ~20 s).
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "launcher did not stop in 30 s, killing its process group"
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    # Anything left in the group (should be nothing: children die with the launcher).
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$PID_FILE" "$READY_FILE"
    log "down"
}

cmd_status() {
    local pid
    if pid="$(running_pid)" && [[ -f "$READY_FILE" ]]; then
        echo "running (pid $pid) at $ENDPOINT; resources: $STATE_DIR/resources.json"
        return 0
    fi
    if pid="$(running_pid)"; then
        echo "starting (pid $pid), not ready yet; log: $LOG_FILE"
        return 3
    fi
    echo "stopped"
    return 3
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
