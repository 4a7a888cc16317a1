#!/usr/bin/env bash
# The whole test suite, emulator included — what `make test` and CI run.
#
#  1. installs the pinned tools (.venv: moto, boto3, cfn-lint) if missing
#  2. lints the infrastructure definition (cfn-lint)
#  3. builds every Lambda binary (the emulator runs the real ones)
#  4. starts the local AWS stack from infra/template.yaml and runs every Rust test against it
#  5. runs the store contract again on AWS's own DynamoDB Local
#  6. starts the same stack on LocalStack (scripts/localstack.sh; TEST_LOCALSTACK=0 skips it)
#     and runs the integration tests against it
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
# The fault tests' plans (clanwar_aws::faults): the stack's functions and the tests share it.
export CLANWAR_FAULTS="${CLANWAR_FAULTS:-$LOCALAWS_STATE_DIR/faults}"
rm -rf "$CLANWAR_FAULTS" && mkdir -p "$CLANWAR_FAULTS"
DDB_LOCAL_PORT="${DDB_LOCAL_PORT:-8000}"
# The LocalStack step's own ports and state (apart from the moto step's and from `make run`).
TEST_LOCALSTACK="${TEST_LOCALSTACK:-1}"
LOCALSTACK_TEST_PORT="${LOCALSTACK_TEST_PORT:-4766}"
LOCALSTACK_TEST_API_PORT="${LOCALSTACK_TEST_API_PORT:-4780}"
LOCALSTACK_TEST_WS_PORT="${LOCALSTACK_TEST_WS_PORT:-4781}"
LOCALSTACK_TEST_WS_MGMT_PORT="${LOCALSTACK_TEST_WS_MGMT_PORT:-4782}"
LOCALSTACK_TEST_STATE_DIR="${LOCALSTACK_TEST_STATE_DIR:-$ROOT/.localaws/test-localstack}"
CARGO="${CARGO:-cargo}"

step() { printf '\n== %s\n' "$*"; }

# LocalStack redelivers a failed message after the queue's visibility timeout, as SQS does (5 x
# 180 s before a poison message reaches its DLQ): the test stack shortens it.
LOCALSTACK_TEST_SQS_VISIBILITY="${LOCALSTACK_TEST_SQS_VISIBILITY:-5}"

localstack_env() {
    env AWS_ENDPOINT_URL="http://127.0.0.1:$LOCALSTACK_TEST_PORT" EMULATOR=localstack \
        LOCALAWS_SQS_VISIBILITY_TIMEOUT="$LOCALSTACK_TEST_SQS_VISIBILITY" \
        LOCALAWS_STATE_DIR="$LOCALSTACK_TEST_STATE_DIR" CLANWAR_API_PORT="$LOCALSTACK_TEST_API_PORT" \
        CLANWAR_WS_PORT="$LOCALSTACK_TEST_WS_PORT" CLANWAR_WS_MGMT_PORT="$LOCALSTACK_TEST_WS_MGMT_PORT" "$@"
}

cleanup() {
    [[ -n "${localstack_install_pid:-}" ]] && kill "$localstack_install_pid" 2>/dev/null || true
    scripts/localaws.sh down >/dev/null 2>&1 || true
    localstack_env scripts/localaws.sh down >/dev/null 2>&1 || true
    DDB_LOCAL_PORT="$DDB_LOCAL_PORT" scripts/dynamodb-local.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "tools (.venv, pinned)"
scripts/bootstrap.sh
# LocalStack's environment installs beside the build and the moto suite (it mostly waits on the
# network and the disk); its log is shown if it fails.
LOCALSTACK_INSTALL_LOG="$(mktemp)"
localstack_install_pid=""
if [[ "$TEST_LOCALSTACK" != "0" ]]; then
    scripts/localstack.sh install > "$LOCALSTACK_INSTALL_LOG" 2>&1 &
    localstack_install_pid=$!
fi
localstack_installed() {
    [[ -z "$localstack_install_pid" ]] && return 0
    local rc=0
    wait "$localstack_install_pid" || rc=$?
    localstack_install_pid=""
    cat "$LOCALSTACK_INSTALL_LOG"
    if [[ $rc -ne 0 ]]; then
        echo "LocalStack install failed (rc $rc)" >&2
        return "$rc"
    fi
}

step "infrastructure definition (cfn-lint)"
.venv/bin/cfn-lint infra/template.yaml

step "infrastructure definition vs the code (tools/infra_check.py)"
.venv/bin/python tools/infra_check.py

step "production builds carry no test doubles (scripts/check-no-test-doubles.sh)"
scripts/check-no-test-doubles.sh

step "emulator patches (exact, cheap transaction rollback)"
.venv/bin/python tools/localaws/check_ddb_transactions.py
.venv/bin/python tools/localaws/check_sqs_esm.py

step "build the Lambda binaries (and the tests, with the same features)"
# With the tests in the same build, the binaries and the tests share one feature set (the
# adapter tests' aws-smithy-mocks turns on SDK test features): nothing is compiled twice.
$CARGO build --workspace --bins --tests --locked

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

step "LocalStack: install (.venv-localstack from tools/localstack/requirements.lock), started with the tools"
# Before DynamoDB Local starts: the install seeds LocalStack's copy from the same jar.
localstack_installed

step "store contract on DynamoDB Local (port $DDB_LOCAL_PORT)"
DDB_LOCAL_PORT="$DDB_LOCAL_PORT" scripts/dynamodb-local.sh up
DDB_ENDPOINT="http://127.0.0.1:$DDB_LOCAL_PORT"
.venv/bin/python tools/localaws/create_table.py --endpoint "$DDB_ENDPOINT" --name clanwar-contract
# `--workspace --test integration`, not `-p`: the build's feature set, so nothing recompiles.
AWS_ENDPOINT_URL="$DDB_ENDPOINT" CLANWAR_WARTABLE=clanwar-contract CLANWAR_CONTRACTTABLE=clanwar-contract \
    $CARGO test --workspace --test integration --locked -- \
    store::dynamodb_store_passes_the_store_contract \
    store::concurrent_duplicated_score_events_are_applied_exactly_once \
    scores::one_batch_posted_by_eight_callers_at_once_after_a_crash_half_way_counts_once \
    scores::batches_racing_the_seal_are_in_the_sealed_totals_or_refused_whole
DDB_LOCAL_PORT="$DDB_LOCAL_PORT" scripts/dynamodb-local.sh down >/dev/null
scripts/localaws.sh down  # frees its memory before LocalStack starts

if [[ "$TEST_LOCALSTACK" == "0" ]]; then
    step "LocalStack: skipped (TEST_LOCALSTACK=0)"
    exit 0
fi
step "LocalStack: the stack from infra/template.yaml (port $LOCALSTACK_TEST_PORT)"
started=$SECONDS
localstack_env scripts/localaws.sh up
echo "stack up in $((SECONDS - started)) s"

step "LocalStack: the Lambda runtime executor (results, errors, timeouts, crashes, concurrency)"
localstack_env .venv/bin/python tools/localstack/check_executor.py

step "integration tests on LocalStack"
started=$SECONDS
localstack_env .venv/bin/python tools/localaws/create_table.py \
    --endpoint "http://127.0.0.1:$LOCALSTACK_TEST_PORT" --name clanwar-contract >/dev/null
# Same conditions, longer deadlines (tests/wait.rs): LocalStack serves everything from one
# Python process and is slower than moto on a loaded 2-core machine.
localstack_env CLANWAR_CONTRACTTABLE=clanwar-contract \
    CLANWAR_TEST_PATIENCE_SCALE="${LOCALSTACK_TEST_PATIENCE_SCALE:-3}" \
    $CARGO test --workspace --test integration --locked
echo "integration tests on LocalStack: $((SECONDS - started)) s"
