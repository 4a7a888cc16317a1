#!/usr/bin/env bash
# `make bench`: every benchmark of the project in one bounded run, and docs/benchmarks.md.
#
#  1. builds the Lambda binaries and the load generator (tools/loadgen)
#  2. starts its OWN local stack (own ports and state directory: it runs beside `make test`
#     and `make run`), runs the open-loop load — reads, event batches, declarations at
#     increasing rates, each followed by its raw emulator calls at the same rate — and stops it
#  3. the domain benchmarks (criterion) and the score path's capacity model (`make capacity`)
#  4. the cold-start/footprint tool (tools/footprint/footprint.py) on the release binaries of the
#     functions (built here if missing: the first time, a long step on 2 cores)
#  5. writes docs/benchmarks.md, docs/benchmarks/latency.png and the README's figures
#     (tools/bench/report.py, in its own .venv-bench/ with pinned matplotlib)
#
# Settings: BENCH_PROFILE=dev|opt|release (opt: the project's own crates optimized, dependencies
# as in dev — a few minutes; release: everything optimized without LTO, compiled once into
# target/release — long on 2 cores), BENCH_RATES, BENCH_DECLARE_RATES, BENCH_WINDOW (s per step),
# BENCH_BUDGET (s for the whole load), BENCH_POOL_SIZE (warm processes per function),
# BENCH_AWS_PORT / BENCH_API_PORT / BENCH_WS_PORT / BENCH_WS_MGMT_PORT.
# Everything it starts is stopped on exit, pass or fail.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO="${CARGO:-cargo}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$ROOT/target/bench"
PROFILE="${BENCH_PROFILE:-dev}"
mkdir -p "$OUT"

# The bench stack's own ports and state.
source scripts/own-stack.sh
own_stack bench "${BENCH_AWS_PORT:-4666}" "${BENCH_API_PORT:-4680}" "${BENCH_WS_PORT:-4681}" \
    "${BENCH_WS_MGMT_PORT:-4682}"
export LOCALAWS_POOL_SIZE="${BENCH_POOL_SIZE:-4}"

began=$SECONDS
declare -A took=()
step() { printf '\n== %s\n' "$*"; }
timed() { local name=$1; shift; local t=$SECONDS; "$@"; took[$name]=$((SECONDS - t)); }

cleanup() { scripts/localaws.sh down >/dev/null 2>&1 || true; }
trap cleanup EXIT

step "tools (.venv for the stack, .venv-bench for the report; pinned)"
scripts/bootstrap.sh
bench_venv() {
    local venv="$ROOT/.venv-bench" reqs="$ROOT/tools/bench/requirements.txt" want
    want="$(sha256sum "$reqs" | cut -d' ' -f1)"
    if [[ -x "$venv/bin/python" && "$(cat "$venv/.req-hash" 2>/dev/null)" == "$want" ]]; then
        echo "bench: .venv-bench is up to date"
        return
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs"
    echo "$want" > "$venv/.req-hash"
}
timed venv bench_venv

step "build the functions ($PROFILE) and the load generator"
workspace_packages() {
    $CARGO metadata --no-deps --format-version 1 --locked | python3 -c \
        'import json, sys; print(" ".join(p["name"] for p in json.load(sys.stdin)["packages"]))'
}
build() {
    if [[ "$PROFILE" == release ]]; then
        # Optimized like the deployed artefacts, without the minutes of LTO.
        CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
            $CARGO build --release --workspace --bins --locked \
            --exclude clanwar-loadgen --exclude clanwar-demo
        export CLANWAR_BIN_DIR="$TARGET/release"
    elif [[ "$PROFILE" == opt ]]; then
        # The project's own crates at opt-level 3 (with the generic serde/SDK code they
        # instantiate), dependencies as in dev: minutes instead of a full optimized build.
        local overrides=() pkg
        for pkg in $(workspace_packages); do
            overrides+=(--config "profile.dev.package.$pkg.opt-level=3")
        done
        $CARGO build --workspace --bins --locked "${overrides[@]}" \
            --exclude clanwar-loadgen --exclude clanwar-demo
        export CLANWAR_BIN_DIR="$TARGET/debug"
    else
        $CARGO build --workspace --bins --locked
        export CLANWAR_BIN_DIR="$TARGET/debug"
    fi
    $CARGO build -p clanwar-loadgen --locked
}
timed build build

step "local stack for the load ($AWS_ENDPOINT_URL, API :$CLANWAR_API_PORT, $LOCALAWS_POOL_SIZE processes per function)"
timed stack scripts/localaws.sh up

step "load (open loop; bounded by ${BENCH_BUDGET:-420} s)"
load() {
    "$TARGET/debug/clanwar-loadgen" \
        --rates "${BENCH_RATES:-5,10,25,50,100,200}" \
        --declare-rates "${BENCH_DECLARE_RATES:-1,2,5,10}" \
        --window "${BENCH_WINDOW:-5}" --budget "${BENCH_BUDGET:-420}" \
        --out "$OUT/loadgen.json" | tee "$OUT/loadgen.txt"
}
timed load load
scripts/localaws.sh down

step "domain benchmarks (criterion)"
timed criterion bash -c "set -o pipefail; $CARGO bench -p clanwar-domain --bench domain --locked -- \
    --warm-up-time 1 --measurement-time 2 2>&1 | tee '$OUT/criterion.txt'"

step "capacity model of the score path"
timed capacity bash -c "set -o pipefail; $CARGO test -p clanwar-aws --lib --locked capacity -- \
    --nocapture 2>&1 | tee '$OUT/capacity.txt'"

step "cold start and footprint"
footprint_status="absent"
if [[ -f tools/footprint/footprint.py ]]; then
    t=$SECONDS
    # The release binaries it measures (as `make footprint`; nothing to do when they are built).
    functions=$(ls functions)
    $CARGO build --release --locked --workspace $(printf -- '--bin %s ' $functions)
    took[footprint_build]=$((SECONDS - t))
    t=$SECONDS
    if timeout "${BENCH_FOOTPRINT_TIMEOUT:-300}" python3 tools/footprint/footprint.py; then
        footprint_status="ran"
    else
        footprint_status="failed (exit $?)"
        echo "bench: tools/footprint/footprint.py failed; the report says so" >&2
    fi
    took[footprint]=$((SECONDS - t))
else
    echo "bench: tools/footprint/footprint.py is not in this checkout; skipped"
fi
# The other tools write under the repository's target/ (or CARGO_TARGET_DIR's).
for f in footprint.md footprint.json build.json; do
    if [[ ! -f "$OUT/$f" && -f "$TARGET/bench/$f" ]]; then cp "$TARGET/bench/$f" "$OUT/$f"; fi
done

step "report"
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)"
total=$((SECONDS - began))
phases=""
for k in "${!took[@]}"; do phases+="$k ${took[$k]} s, "; done
.venv-bench/bin/python - "$OUT/meta.json" <<EOF
import json, sys
json.dump({
    "profile": {"release": "release (opt-level 3, no LTO)", "opt": "opt (our crates at opt-level 3, dependencies unoptimized)"}.get("$PROFILE", "dev (debug)"),
    "pool": int("$LOCALAWS_POOL_SIZE"),
    "cpu": "$cpu, $(nproc) cores",
    "duration": "$((total / 60)) min $((total % 60)) s before the report: ${phases%, }",
    "footprint": "$footprint_status",
    "commands": "make bench  # BENCH_PROFILE=$PROFILE BENCH_RATES=${BENCH_RATES:-5,10,25,50,100,200} BENCH_DECLARE_RATES=${BENCH_DECLARE_RATES:-1,2,5,10} BENCH_WINDOW=${BENCH_WINDOW:-5} BENCH_BUDGET=${BENCH_BUDGET:-420} BENCH_POOL_SIZE=$LOCALAWS_POOL_SIZE",
}, open(sys.argv[1], "w"), indent=1)
EOF
.venv-bench/bin/python tools/bench/report.py --bench-dir "$OUT" --docs docs --readme README.md
echo "bench: done in $(((SECONDS - began) / 60)) min $(((SECONDS - began) % 60)) s"
