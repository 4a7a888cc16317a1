#!/usr/bin/env bash
# Builds the deployable Lambda artefacts: every package in functions/ cross-compiled with
# cargo-lambda for arm64 (Graviton, provided.al2023), release profile.
#
#   scripts/build-lambdas.sh                    every function -> target/lambda/<fn>/bootstrap
#   scripts/build-lambdas.sh outbox-relay ...   only these packages
#
# cargo-lambda and Zig (the `ziglang` wheel, its cross linker) are installed with pip, both
# pinned, into the project venv (.venv/, created by scripts/bootstrap.sh), so no Docker and no
# system cross toolchain is needed. The Rust target aarch64-unknown-linux-gnu is added with
# rustup if missing.
#
# The build's wall time, the machine's load and each artefact's size are printed and written
# to target/bench/build.json (BENCH_DIR overrides the directory) for the benchmark report.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO_LAMBDA_VERSION="1.9.2"
ZIGLANG_VERSION="0.17.1"
VENV="$ROOT/.venv"
CARGO="${CARGO:-cargo}"
TARGET_TRIPLE="aarch64-unknown-linux-gnu"
BENCH_DIR="${BENCH_DIR:-$ROOT/target/bench}"

log() { echo "build-lambdas: $*" >&2; }

scripts/bootstrap.sh >&2
version_of() { "$VENV/bin/python" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }
if [[ "$(version_of cargo-lambda)" != "$CARGO_LAMBDA_VERSION" ||
      "$(version_of ziglang)" != "$ZIGLANG_VERSION" ]]; then
    log "installing cargo-lambda==$CARGO_LAMBDA_VERSION ziglang==$ZIGLANG_VERSION into .venv (pip)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION"
fi
# `cargo lambda` finds .venv/bin/cargo-lambda, and cargo-lambda finds Zig through the venv's
# python (`python -m ziglang`).
export PATH="$VENV/bin:$PATH"

if command -v rustup >/dev/null 2>&1 && \
        ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET_TRIPLE"; then
    log "adding the Rust target $TARGET_TRIPLE (rustup)"
    rustup target add "$TARGET_TRIPLE"
fi

packages=("$@")
args=()
if [[ ${#packages[@]} -eq 0 ]]; then
    # Features resolved over the whole workspace, as `sam build` does (it runs `cargo lambda
    # build --bin <fn>` at the workspace root), so `make deploy`'s sam build reuses these
    # compiled crates instead of starting over; `--bin` keeps the build to the functions (not
    # the demo player, not the test crate).
    args=(--workspace)
    for manifest in functions/*/Cargo.toml; do
        package="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n1)"
        packages+=("$package")
        args+=(--bin "$package")
    done
else
    for package in "${packages[@]}"; do args+=(-p "$package"); done
fi

target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
# A build into an empty target directory compiles every dependency; say which one this was.
if [[ -d "$target_dir/$TARGET_TRIPLE/release/deps" ]]; then start_state="incremental"; else start_state="clean"; fi
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
log "cargo lambda build --release --arm64 ${args[*]} ($start_state, load average $load_before)"
started_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
start_ns="$(date +%s%N)"
"$CARGO" lambda build --release --arm64 --locked "${args[@]}"
end_ns="$(date +%s%N)"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

for package in "${packages[@]}"; do
    artefact="$target_dir/lambda/$package/bootstrap"
    [[ -f "$artefact" ]] || { log "missing $artefact"; exit 1; }
done

mkdir -p "$BENCH_DIR"
BUILD_COMMAND="cargo lambda build --release --arm64 --locked ${args[*]}" \
BUILD_START="$start_state" BUILD_DATE="$started_at" BUILD_NS="$((end_ns - start_ns))" \
LOAD_BEFORE="$load_before" LOAD_AFTER="$load_after" TARGET_DIR="$target_dir" \
CARGO_LAMBDA_VERSION="$CARGO_LAMBDA_VERSION" ZIGLANG_VERSION="$ZIGLANG_VERSION" \
    "$VENV/bin/python" - "$BENCH_DIR/build.json" "${packages[@]}" <<'EOF'
import json, os, sys
out, packages = sys.argv[1], sys.argv[2:]
env = os.environ
wall = int(env["BUILD_NS"]) / 1e9
artefacts = {}
for name in sorted(packages):
    path = os.path.join(env["TARGET_DIR"], "lambda", name, "bootstrap")
    shown = os.path.relpath(path) if os.path.abspath(path).startswith(os.getcwd() + os.sep) else path
    artefacts[name] = {"path": shown, "bytes": os.path.getsize(path)}
report = {
    "date": env["BUILD_DATE"],
    "command": env["BUILD_COMMAND"],
    "start": env["BUILD_START"],
    "wall_s": round(wall, 1),
    "cores": os.cpu_count(),
    "loadavg_before": env["LOAD_BEFORE"],
    "loadavg_after": env["LOAD_AFTER"],
    "cargo_lambda": env["CARGO_LAMBDA_VERSION"],
    "ziglang": env["ZIGLANG_VERSION"],
    "artefacts": artefacts,
}
with open(out, "w") as f:
    json.dump(report, f, indent=2)
    f.write("\n")
for name, a in artefacts.items():
    print(f"{a['path']}\t{a['bytes'] / 2**20:.1f} MiB ({a['bytes']} bytes)")
print(f"build-lambdas: {report['start']} build of {len(artefacts)} function(s) in "
      f"{int(wall // 60)} min {wall % 60:04.1f} s on {report['cores']} cores (load average "
      f"{report['loadavg_before']} before, {report['loadavg_after']} after); "
      f"wrote {os.path.relpath(out)}", file=sys.stderr)
EOF
