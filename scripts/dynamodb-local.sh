#!/usr/bin/env bash
# AWS's DynamoDB Local (the stricter, higher-fidelity DynamoDB for the store's contract tests).
#
#   scripts/dynamodb-local.sh up      install if needed, start in memory, wait until it answers
#   scripts/dynamodb-local.sh down    stop it
#   scripts/dynamodb-local.sh status  running or not (exit 0 / 3)
#
# The jar comes from the npm package amplify-dynamodb-simulator (it ships DynamoDBLocal.jar and
# its native sqlite4java libraries); only its emulator/ folder is unpacked, into
# ${LOCALAWS_STATE_DIR:-.localaws}/ddb-local/. Port: ${DDB_LOCAL_PORT:-8000}.
# Needs java (17 verified) and npm; installs them from Debian's packages when missing (as root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${LOCALAWS_STATE_DIR:-$ROOT/.localaws}"
DDB_DIR="$STATE_DIR/ddb-local"
PACKAGE="amplify-dynamodb-simulator"
VERSION="2.9.30"
PORT="${DDB_LOCAL_PORT:-8000}"
JAVA_OPTS="${DDB_LOCAL_JAVA_OPTS:--Xmx1g}"
PID_FILE="$STATE_DIR/ddb-local.pid"
LOG_FILE="$STATE_DIR/ddb-local.log"
READY_TIMEOUT="${DDB_LOCAL_READY_TIMEOUT:-60}"

log() { echo "dynamodb-local: $*" >&2; }

# The base image has both; a leaner machine gets them from Debian's packages.
ensure_tools() {
    local missing=()
    command -v java > /dev/null || missing+=(openjdk-17-jre-headless)
    command -v npm > /dev/null || missing+=(npm)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    if [[ $(id -u) -ne 0 ]]; then
        log "needs ${missing[*]}: install them (apt-get install ${missing[*]})"
        return 1
    fi
    log "installing ${missing[*]} from Debian's packages"
    apt-get update -qq > /dev/null && apt-get install -y -qq "${missing[@]}" > /dev/null
}

install() (  # a subshell: its EXIT trap removes the temporary download
    local jar="$DDB_DIR/emulator/DynamoDBLocal.jar"
    if [[ -f "$jar" && "$(cat "$DDB_DIR/VERSION" 2>/dev/null)" == "$VERSION" ]]; then
        return 0
    fi
    log "installing $PACKAGE@$VERSION (about 56 MB) into $DDB_DIR"
    local tmp
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    # npm pack fetches (and integrity-checks) just the package tarball: the jar is all we
    # need, not the package's Node dependencies.
    (cd "$tmp" && npm pack "$PACKAGE@$VERSION" --silent > /dev/null)
    rm -rf "$DDB_DIR"
    mkdir -p "$DDB_DIR"
    tar -xzf "$tmp/$PACKAGE-$VERSION.tgz" -C "$DDB_DIR" --strip-components=1 package/emulator
    [[ -f "$jar" ]] || { log "no DynamoDBLocal.jar in the package"; return 1; }
    echo "$VERSION" > "$DDB_DIR/VERSION"  # last: an interrupted install is redone
)

running_pid() {
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "DynamoDBLocal.jar" || return 1
    echo "$pid"
}

answers() {
    # Any HTTP answer (DynamoDB Local replies 400 to a bare GET) means it is serving.
    local code
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/" || true)"
    [[ "$code" =~ ^[1-5][0-9][0-9]$ ]]
}

cmd_up() {
    mkdir -p "$STATE_DIR"
    local pid
    if pid="$(running_pid)"; then
        log "already running (pid $pid, http://127.0.0.1:$PORT)"
        return 0
    fi
    rm -f "$PID_FILE"
    if answers; then
        log "cannot start: port $PORT is already served by another process"
        return 1
    fi
    ensure_tools
    install
    (
        cd "$DDB_DIR/emulator"
        # shellcheck disable=SC2086  # JAVA_OPTS is a list of options
        exec setsid java $JAVA_OPTS -Djava.library.path=./DynamoDBLocal_lib \
            -jar DynamoDBLocal.jar -inMemory -port "$PORT"
    ) > "$LOG_FILE" 2>&1 < /dev/null &
    pid=$!
    echo "$pid" > "$PID_FILE"
    local waited=0
    until answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "DynamoDB Local exited during start; last lines of $LOG_FILE:"
            tail -n 20 "$LOG_FILE" >&2
            rm -f "$PID_FILE"
            return 1
        fi
        if (( waited >= READY_TIMEOUT * 5 )); then
            log "no answer on port $PORT after ${READY_TIMEOUT}s; last lines of $LOG_FILE:"
            tail -n 20 "$LOG_FILE" >&2
            cmd_down
            return 1
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    log "up (pid $pid): http://127.0.0.1:$PORT"
}

cmd_down() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    log "down"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        echo "running (pid $pid) at http://127.0.0.1:$PORT"
        return 0
    fi
    echo "stopped"
    return 3
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    install) install ;;
    *) echo "usage: $0 up|down|status|install" >&2; exit 2 ;;
esac
