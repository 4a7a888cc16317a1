#!/usr/bin/env bash
# Builds the deployable Lambda artefacts: every package in functions/ cross-compiled with
# cargo-lambda for arm64 (Graviton, provided.al2023), release profile.
#
#   scripts/build-lambdas.sh                    the workspace -> target/lambda/<fn>/bootstrap
#   scripts/build-lambdas.sh outbox-relay ...   only these packages
#
# cargo-lambda is installed from PyPI, pinned, into the project venv (.venv/, created by
# scripts/bootstrap.sh); it brings Zig (the `ziglang` wheel) as the cross linker, so no Docker
# and no system cross toolchain is needed. The Rust target aarch64-unknown-linux-gnu is added
# with rustup if missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CARGO_LAMBDA_VERSION="1.9.2"
VENV="$ROOT/.venv"
CARGO="${CARGO:-cargo}"
TARGET_TRIPLE="aarch64-unknown-linux-gnu"

log() { echo "build-lambdas: $*" >&2; }

scripts/bootstrap.sh >&2
installed="$("$VENV/bin/python" -m pip show cargo-lambda 2>/dev/null | sed -n 's/^Version: //p')"
if [[ "$installed" != "$CARGO_LAMBDA_VERSION" ]]; then
    log "installing cargo-lambda==$CARGO_LAMBDA_VERSION into .venv (PyPI)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "cargo-lambda==$CARGO_LAMBDA_VERSION"
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
    # The whole workspace, as `sam build` does (it runs `cargo lambda build --bin <fn>` at the
    # workspace root, which resolves features over every member): the same feature set, so
    # `make deploy`'s sam build reuses these compiled crates instead of starting over.
    args=(--workspace)
    for manifest in functions/*/Cargo.toml; do
        packages+=("$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n1)")
    done
else
    for package in "${packages[@]}"; do args+=(-p "$package"); done
fi

log "cargo lambda build --release --arm64 ${args[*]}"
"$CARGO" lambda build --release --arm64 --locked "${args[@]}"

target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
for package in "${packages[@]}"; do
    artefact="$target_dir/lambda/$package/bootstrap"
    [[ -f "$artefact" ]] || { log "missing $artefact"; exit 1; }
    printf '%s\t%s bytes\n' "${artefact#"$ROOT/"}" "$(stat -c %s "$artefact")"
done
