#!/usr/bin/env bash
# Deploys infra/template.yaml to the AWS account of the current credentials with AWS SAM.
#
#   scripts/deploy.sh            sam build (cargo-lambda, arm64) + sam deploy of stack clanwar-$STAGE
#   scripts/deploy.sh validate   sam validate --lint (offline)
#   scripts/deploy.sh delete     sam delete of stack clanwar-$STAGE (the table is retained)
#
# Settings (environment; `make deploy STAGE=prod ...` passes them):
#   STAGE=dev              template parameter Stage; the stack is clanwar-$STAGE
#   PHASE_MIN_SECONDS=60   shortest phase a declaration may ask for
#   PHASE_MAX_SECONDS=604800
#   SCORE_SHARDS=8         hot score counter shards per war
#   LOG_LEVEL=info         RUST_LOG of the functions
#   LOG_RETENTION_DAYS=30  CloudWatch Logs retention
#   ALARM_EMAIL=           e-mail subscribed to the alarm topic (empty: none)
#   DEPLOY_ECONOMY_SIMULATOR=false  true deploys the economy service stand-in (dev only)
#   GUIDED=1               interactive `sam deploy --guided` instead
#   AWS_REGION / AWS_PROFILE        where to deploy (the usual AWS CLI resolution)
#
# The AWS SAM CLI is installed pinned from PyPI into .venv-deploy/ on first use (not by
# `make test`); cargo-lambda (pinned) comes with scripts/build-lambdas.sh into .venv/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SAM_CLI_VERSION="1.170.0"
DEPLOY_VENV="$ROOT/.venv-deploy"
PYTHON="${PYTHON:-python3}"
MODE="${1:-deploy}"

STAGE="${STAGE:-dev}"
STACK="clanwar-$STAGE"

log() { echo "deploy: $*" >&2; }

# The Makefile exports the local emulator's endpoint and dummy credentials for the local
# targets; they must not reach AWS.
if [[ "${AWS_ACCESS_KEY_ID:-}" == "test" && "${AWS_SECRET_ACCESS_KEY:-}" == "test" ]]; then
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
fi
if [[ "${AWS_ENDPOINT_URL:-}" =~ ^https?://(127\.0\.0\.1|localhost)(:|/|$) ]]; then
    unset AWS_ENDPOINT_URL
fi
# SAM's cargo-lambda builder copies <CodeUri>/target/lambda/<binary>/bootstrap.
unset CARGO_TARGET_DIR

installed="$("$DEPLOY_VENV/bin/python" -m pip show aws-sam-cli 2>/dev/null \
    | sed -n 's/^Version: //p' || true)"
if [[ "$installed" != "$SAM_CLI_VERSION" ]]; then
    log "installing aws-sam-cli==$SAM_CLI_VERSION into .venv-deploy (PyPI)"
    rm -rf "$DEPLOY_VENV"
    "$PYTHON" -m venv "$DEPLOY_VENV"
    "$DEPLOY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$DEPLOY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "aws-sam-cli==$SAM_CLI_VERSION"
fi
SAM="$DEPLOY_VENV/bin/sam"
export SAM_CLI_TELEMETRY=0

case "$MODE" in
    validate)
        exec "$SAM" validate --lint --template-file infra/template.yaml
        ;;
    delete)
        exec "$SAM" delete --stack-name "$STACK" --no-prompts
        ;;
    deploy) ;;
    *)
        echo "usage: scripts/deploy.sh [deploy|validate|delete]" >&2
        exit 2
        ;;
esac

# cargo-lambda (pinned, in .venv) and the arm64 target; this also builds every function once.
scripts/build-lambdas.sh
export PATH="$ROOT/.venv/bin:$PATH"

log "sam build (rust-cargolambda, arm64) -> .aws-sam/"
# rust-cargolambda is a SAM beta build method: opt in explicitly.
SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 "$SAM" build --beta-features \
    --template-file infra/template.yaml --build-dir .aws-sam/build

overrides=(
    "Stage=$STAGE"
    "PhaseMinSeconds=${PHASE_MIN_SECONDS:-60}"
    "PhaseMaxSeconds=${PHASE_MAX_SECONDS:-604800}"
    "ScoreShards=${SCORE_SHARDS:-8}"
    "LogLevel=${LOG_LEVEL:-info}"
    "LogRetentionDays=${LOG_RETENTION_DAYS:-30}"
    "DeployEconomySimulator=${DEPLOY_ECONOMY_SIMULATOR:-false}"
)
[[ -n "${ALARM_EMAIL:-}" ]] && overrides+=("AlarmEmail=$ALARM_EMAIL")

deploy_args=(
    --template-file .aws-sam/build/template.yaml
    --stack-name "$STACK"
    --capabilities CAPABILITY_IAM
    --resolve-s3
    --parameter-overrides "${overrides[@]}"
    --tags "project=clanwar" "stage=$STAGE"
    --no-fail-on-empty-changeset
)
[[ -n "${AWS_REGION:-}" ]] && deploy_args+=(--region "$AWS_REGION")
if [[ "${GUIDED:-0}" == "1" ]]; then
    "$SAM" deploy --guided "${deploy_args[@]}"
else
    "$SAM" deploy --no-confirm-changeset "${deploy_args[@]}"
fi

log "stack $STACK outputs:"
"$SAM" list stack-outputs --stack-name "$STACK" --output table \
    ${AWS_REGION:+--region "$AWS_REGION"}
