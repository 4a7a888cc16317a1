# Sourced by the scripts that run a local stack of their own beside `make test` and `make run`
# (`make bench`, `make soak`): `own_stack NAME AWS_PORT API_PORT WS_PORT WS_MGMT_PORT` sets its
# ports, state directory (.localaws/NAME), short phases, the economy stand-in and dummy
# credentials. AWS_ENDPOINT_URL from the Makefile names the test stack's emulator, so it is
# replaced here.
own_stack() {
    local name=$1
    export AWS_ENDPOINT_URL="http://127.0.0.1:$2"
    export CLANWAR_API_PORT="$3" CLANWAR_WS_PORT="$4" CLANWAR_WS_MGMT_PORT="$5"
    export LOCALAWS_STATE_DIR="$ROOT/.localaws/$name"
    export LOCALAWS_PARAMS="PhaseMinSeconds=1 DeployEconomySimulator=true"
    export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
    export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
    export PYTHONDONTWRITEBYTECODE=1
}
