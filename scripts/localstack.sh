#!/usr/bin/env bash
# LocalStack (community, host mode: no Docker, no auth token) as the second emulator target.
#
#   scripts/localstack.sh install   .venv-localstack/ from tools/localstack/requirements.lock
#                                   (+ the project's Lambda runtime executor plugin), DynamoDB
#                                   Local and a no-op loader agent seeded into .localstack/lib/
#   scripts/localstack.sh up|down|status
#                                   = EMULATOR=localstack scripts/localaws.sh up|down|status:
#                                   LocalStack with the stack of infra/template.yaml, the
#                                   functions run as their real binaries, the project's own
#                                   HTTP/WebSocket gateways in front
#   scripts/localstack.sh lock      regenerate the lock file (maintainers; needs pip >= 26)
#
# Idempotent: `install` does nothing when the lock file's and the plugin's hashes match
# .venv-localstack/.req-hash and the seeded files exist. Nothing is downloaded at run time.
# Needs Python 3.13 ($LOCALSTACK_PYTHON, else python3.13 on PATH, else pyenv's 3.13.0), java and
# javac (17 verified), and npm for the DynamoDB Local jar (see scripts/dynamodb-local.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-localstack"
LOCK="$ROOT/tools/localstack/requirements.lock"
PLUGIN="$ROOT/tools/localstack/executor"
LIB="$ROOT/.localstack/lib"            # becomes <FILESYSTEM_ROOT>/var/lib/localstack/lib
PIN="localstack-core[runtime]==2026.3.0"
PIN_DATE="2026-03-25T00:00:00Z"       # dependencies as of the release (newer ones break it)

log() { echo "localstack: $*" >&2; }

find_python() {
    local candidate
    for candidate in "${LOCALSTACK_PYTHON:-}" "$(command -v python3.13 || true)" \
        "$( (pyenv root 2>/dev/null || echo "$HOME/.pyenv") )/versions/3.13.0/bin/python3.13"; do
        if [[ -n "$candidate" && -x "$candidate" ]] \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    log "Python 3.13 is needed for LocalStack ($PIN, verified on 3.13.0) and was not found:"
    log "  set LOCALSTACK_PYTHON=/path/to/python3.13, or install it (e.g. pyenv install 3.13.0)"
    return 1
}

want_hash() {
    cat "$LOCK" "$PLUGIN/pyproject.toml" "$PLUGIN"/localaws_executor/*.py \
        "$ROOT/tools/localstack/ddb-agent/NoopAgent.java" | sha256sum | cut -d' ' -f1
}

install_venv() {
    local python
    python="$(find_python)"
    rm -rf "$VENV"
    log "creating .venv-localstack with $("$python" --version 2>&1) from $(basename "$LOCK")"
    "$python" -m venv "$VENV"
    # --no-deps: the lock is complete; nothing outside it may come in.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$LOCK"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        --no-build-isolation "$PLUGIN"
    "$VENV/bin/python" -m pip check >&2
}

# DynamoDB Local where LocalStack's dynamodb package looks for it (dynamodb-local/2/ with
# DynamoDBLocal.jar: "installed", so it downloads nothing), Java where it looks for its
# JDK 21 (java/21: the machine's JDK; 17 works), and the loader agent it passes to the JVM.
seed_lib() {
    local ddb="$LIB/dynamodb-local/2" src tmp java_home
    LOCALAWS_STATE_DIR="$ROOT/.localstack" \
        "$ROOT/scripts/dynamodb-local.sh" install
    src="$ROOT/.localstack/ddb-local/emulator"
    rm -rf "$ddb"
    mkdir -p "$ddb" "$LIB/java"
    cp -r "$src/DynamoDBLocal.jar" "$src/DynamoDBLocal_lib" "$ddb/"
    tmp="$(mktemp -d)"
    javac -d "$tmp" "$ROOT/tools/localstack/ddb-agent/NoopAgent.java"
    printf 'Premain-Class: NoopAgent\n' > "$tmp/manifest.txt"
    jar cfm "$ddb/ddb-local-loader-0.1.jar" "$tmp/manifest.txt" -C "$tmp" NoopAgent.class
    rm -rf "$tmp"
    java_home="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
    ln -sfn "$java_home" "$LIB/java/21"
}

cmd_install() {
    local want
    want="$(want_hash)"
    if [[ -x "$VENV/bin/python" && "$(cat "$VENV/.req-hash" 2>/dev/null)" == "$want" \
        && -f "$LIB/dynamodb-local/2/ddb-local-loader-0.1.jar" && -e "$LIB/java/21/bin/java" ]]; then
        log ".venv-localstack and .localstack/lib are up to date"
        return 0
    fi
    command -v javac > /dev/null || { log "javac is needed (apt-get install openjdk-17-jdk-headless)"; return 1; }
    local started=$SECONDS
    install_venv
    seed_lib
    echo "$want" > "$VENV/.req-hash"  # last: an interrupted install is redone
    log "installed in $((SECONDS - started)) s"
}

cmd_lock() {
    local python tmp
    python="$(find_python)"
    tmp="$(mktemp -d)"
    "$python" -m venv "$tmp/venv"
    "$tmp/venv/bin/python" -m pip install --quiet "pip>=26"
    "$tmp/venv/bin/python" -m pip install --quiet --uploaded-prior-to "$PIN_DATE" "$PIN"
    {
        echo "# LocalStack community runtime and its dependencies as of its release, frozen."
        echo "# Generated by 'scripts/localstack.sh lock': pip install --uploaded-prior-to $PIN_DATE \"$PIN\""
        echo "# argparse: a dependency of kclpy-ext that \`pip freeze\` leaves out (it names a stdlib module)."
        { "$tmp/venv/bin/python" -m pip freeze --all | grep -v '^pip=='; echo "argparse==1.4.0"; } | sort -f
    } > "$LOCK"
    rm -rf "$tmp"
    log "wrote $LOCK"
}

case "${1:-}" in
    install) cmd_install ;;
    lock) cmd_lock ;;
    seed) seed_lib ;;  # only the seeded files (part of install)
    up | down | status) EMULATOR=localstack exec "$ROOT/scripts/localaws.sh" "$1" ;;
    *) echo "usage: $0 install|up|down|status|lock" >&2; exit 2 ;;
esac
