#!/bin/sh
# One organisation's validator in Docker (compose.yml beside this script), from the env file
# $ENV_FILE (default docker/validator/validator.env; see validator.env.example):
#   gentx     sign this organisation's gentx into PUBLIC_DIR (makes the home and its keys)
#   collect   (one founder) every PUBLIC_DIR/gentx-*.json into PUBLIC_DIR/genesis.json
#   validate  check this organisation's entry in PUBLIC_DIR/genesis.json and install it
#   up        start the validator and wait until it answers
#   status    the validator's status
#   logs      follow its log
#   down      stop and remove the container (the home stays)
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
ENV_FILE="${ENV_FILE:-$here/validator.env}"
[ -f "$ENV_FILE" ] || { echo "error: no env file $ENV_FILE (copy validator.env.example)" >&2; exit 2; }
case "$ENV_FILE" in /*) ;; *) ENV_FILE="$(pwd)/$ENV_FILE" ;; esac
set -a
. "$ENV_FILE"
set +a
for name in CHAIN_ID MONIKER EXTERNAL_ADDRESS DATA_FILE HOME_DIR PUBLIC_DIR; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || { echo "error: $ENV_FILE: set $name (see validator.env.example)" >&2; exit 2; }
done
[ -f "$DATA_FILE" ] || [ -d "$DATA_FILE" ] || { echo "error: $ENV_FILE: DATA_FILE $DATA_FILE is not a file or a folder" >&2; exit 2; }
if docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"; else COMPOSE="docker-compose"; fi
DC="$COMPOSE -p ${PROJECT:-learnchain-$MONIKER} -f $here/compose.yml --env-file $ENV_FILE"
HOME_IN=/home/learnchain/node
cd "$here"
mkdir -p "$HOME_DIR" "$PUBLIC_DIR"

case "${1:-}" in
gentx)
    tls=""
    [ "${TLS:-false}" = true ] && tls="--tls"
    $DC --profile ceremony run --rm -T ceremony gentx --home "$HOME_IN" \
        --chain-id "$CHAIN_ID" --moniker "$MONIKER" --stake "${STAKE:-1000}" \
        --endpoint "$EXTERNAL_ADDRESS" --listen 0.0.0.0:26656 --metrics 0.0.0.0:26660 \
        --data-file "${DATA_MOUNT:-/data/private.csv}" --label-column "${LABEL_COLUMN:-label}" \
        $tls -o "/public/gentx-$MONIKER.json"
    ;;
collect)
    gentxs="$(cd "$PUBLIC_DIR" && ls gentx-*.json | sed 's|^|/public/|')"
    # shellcheck disable=SC2086
    $DC --profile ceremony run --rm -T ceremony collect $gentxs \
        --chain-id "$CHAIN_ID" -o /public/genesis.json ${COLLECT_ARGS:-}
    ;;
validate)
    $DC --profile ceremony run --rm -T ceremony validate /public/genesis.json --home "$HOME_IN"
    ;;
up)
    $DC up -d validator
    tries=0
    until $DC exec -T validator learnchain query health --home "$HOME_IN" >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -gt 300 ] && { echo "error: the validator does not answer after 300 s" >&2; $DC logs --tail 40 validator >&2; exit 1; }
        sleep 1
    done
    echo "$MONIKER is up: gRPC ${PUBLISH_ADDRESS:-0.0.0.0}:${P2P_PORT:-26656} (peers dial $EXTERNAL_ADDRESS)"
    ;;
status)
    $DC exec -T validator learnchain query status --home "$HOME_IN"
    ;;
logs)
    exec $DC logs -f --tail 100 validator
    ;;
down)
    $DC down --remove-orphans
    ;;
*)
    echo "usage: $0 gentx|collect|validate|up|status|logs|down" >&2
    exit 2
    ;;
esac
