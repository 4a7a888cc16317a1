#!/usr/bin/env bash
# Creates (or reuses) the project virtualenv at .venv/ with the pinned local-AWS tooling
# from tools/localaws/requirements.txt. Idempotent: the venv is reused as long as the hash of
# the requirements file matches .venv/.req-hash; otherwise it is rebuilt from scratch so no
# stale package survives a pin change.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQS="$ROOT/tools/localaws/requirements.txt"
HASH_FILE="$VENV/.req-hash"
PYTHON="${PYTHON:-python3}"

want_hash="$(sha256sum "$REQS" | cut -d' ' -f1)"
have_hash="$(cat "$HASH_FILE" 2>/dev/null || true)"

if [[ -x "$VENV/bin/python" && "$want_hash" == "$have_hash" ]]; then
    echo "bootstrap: .venv is up to date"
    exit 0
fi

if [[ -d "$VENV" ]]; then
    echo "bootstrap: requirements changed (or venv incomplete), rebuilding .venv"
    rm -rf "$VENV"
fi

echo "bootstrap: creating .venv with $("$PYTHON" --version 2>&1)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
# Written last: an interrupted install leaves no hash, so the next run starts over.
echo "$want_hash" > "$HASH_FILE"
echo "bootstrap: .venv ready ($("$VENV/bin/python" -m pip --version | cut -d' ' -f1-2))"
