#!/usr/bin/env bash
# Production builds carry no test doubles: clanwar-domain's `testing` feature (the in-memory
# adapters, `Deps::in_memory`, the store contract suite) must be off in every Lambda's build,
# both as `scripts/build-lambdas.sh` builds them (features resolved over the whole workspace,
# normal dependencies only) and one function at a time. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO="${CARGO:-cargo}"

# The features clanwar-domain is built with in a normal (non-test) build of the given packages.
domain_features() {
    "$CARGO" tree "$@" --locked -e normal --prefix none -f '{p} [{f}]' |
        sed -n 's/^clanwar-domain v[^[]*\[\(.*\)\]$/\1/p' | tr ',' '\n' | sort -u
}

# The check must be able to see the feature, or it proves nothing.
if ! domain_features -p clanwar-domain --features testing | grep -qx testing; then
    echo "check-no-test-doubles: cannot see the 'testing' feature in cargo tree's output" >&2
    exit 2
fi

failed=0
check() {
    local what="$1"; shift
    if domain_features "$@" | grep -qx testing; then
        echo "FAIL: $what builds clanwar-domain with the 'testing' feature (test doubles)" >&2
        failed=1
    fi
}
check "the workspace build of the Lambdas" --workspace
count=0
for manifest in functions/*/Cargo.toml; do
    package="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n1)"
    check "$package" -p "$package"
    count=$((count + 1))
done
if [[ $failed -ne 0 ]]; then exit 1; fi
echo "no test doubles in the workspace build or in any of the $count Lambda builds"
