#!/usr/bin/env bash
# The whole test suite, emulator included — what `make test` and CI run.
#
#  1. installs the pinned tools (.venv: moto, boto3, cfn-lint) if missing
#  2. lints the infrastructure definition (cfn-lint)
#  3. builds every Lambda binary (the emulator runs the real ones)
#  4. starts the local AWS stack from infra/template.yaml and runs every Rust test against it
#  5. runs the store contract again on AWS's own DynamoDB Local
# Everything started here is stopped on exit, pass or fail.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}"
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
# The test stack keeps its state and API ports apart from a `make run` stack.
export LOCALAWS_STATE_DIR="${LOCALAWS_STATE_DIR:-$ROOT/.localaws/test}"
export CLANWAR_API_PORT="${CLANWAR_API_PORT:-4580}" CLANWAR_WS_PORT="${CLANWAR_WS_PORT:-4581}"
export CLANWAR_WS_MGMT_PORT="${CLANWAR_WS_MGMT_PORT:-4582}"
# Short phases for the workflow tests; the local economy service stand-in answers the reward saga.
export LOCALAWS_PARAMS="${LOCALAWS_PARAMS:-PhaseMinSeconds=1 DeployEconomySimulator=true}"
DDB_LOCAL_PORT="${DDB_LOCAL_PORT:-8000}"
CARGO="${CARGO:-cargo}"

step() { printf '\n== %s\n' "$*"; }

cleanup() {
    scripts/localaws.sh down >/dev/null 2>&1 || true
    DDB_LOCAL_PORT="$DDB_LOCAL_PORT" scripts/dynamodb-local.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "tools (.venv, pinned)"
scripts/bootstrap.sh

step "infrastructure definition (cfn-lint)"
.venv/bin/cfn-lint infra/template.yaml

step "infrastructure definition vs the code (tools/infra_check.py)"
.venv/bin/python tools/infra_check.py

step "emulator patches (exact, cheap transaction rollback)"
.venv/bin/python tools/localaws/check_ddb_transactions.py
.venv/bin/python tools/localaws/check_sqs_esm.py

step "build the Lambda binaries"
$CARGO build --workspace --bins --locked

step "local AWS stack ($AWS_ENDPOINT_URL)"
scripts/localaws.sh up

step "all Rust tests (unit, adapter, integration against the stack)"
# The store contract gets a table of its own (the stack's table has the outbox relay on its
# stream); same definition, from the template.
.venv/bin/python tools/localaws/create_table.py --endpoint "$AWS_ENDPOINT_URL" \
    --name clanwar-contract >/dev/null
CLANWAR_CONTRACTTABLE=clanwar-contract $CARGO test --workspace --locked

step "hostile-input campaign: schemathesis on docs/openapi.json vs the local API (≤ ~2 min)"
scripts/hostile.sh

step "store contract on DynamoDB Local (port $DDB_LOCAL_PORT)"
DDB_LOCAL_PORT="$DDB_LOCAL_PORT" scripts/dynamodb-local.sh up
DDB_ENDPOINT="http://127.0.0.1:$DDB_LOCAL_PORT"
.venv/bin/python tools/localaws/create_table.py --endpoint "$DDB_ENDPOINT" --name clanwar-contract
AWS_ENDPOINT_URL="$DDB_ENDPOINT" CLANWAR_WARTABLE=clanwar-contract CLANWAR_CONTRACTTABLE=clanwar-contract \
    $CARGO test -p clanwar-integration-tests --test integration --locked -- \
    store::dynamodb_store_passes_the_store_contract \
    store::concurrent_duplicated_score_events_are_applied_exactly_once \
    scores::one_batch_posted_by_eight_callers_at_once_after_a_crash_half_way_counts_once \
    scores::batches_racing_the_seal_are_in_the_sealed_totals_or_refused_whole
