#!/bin/sh
# The docker-compose testnet: what `make testnet-up|testnet-join|testnet-logs|testnet-down` run.
#   up     build the image, write the four validator homes once, start them, wait until healthy
#   join   start the joiner (a full node), fund it from the faucet account, and stake
#   logs   follow every container's log
#   down   remove the containers, volumes, network and image that `up` and `join` created
set -eu
cd "$(dirname "$0")/.."
if docker compose version >/dev/null 2>&1; then
    COMPOSE="docker compose"
else
    COMPOSE="docker-compose"
fi
DC="$COMPOSE -p ${COMPOSE_PROJECT:-learnchain} -f docker/docker-compose.yml"
HOME_DIR=/home/learnchain/node

wait_healthy() {
    for service in "$@"; do
        tries=0
        while :; do
            container="$($DC --profile joiner ps -q "$service")"
            status="$(docker inspect -f '{{.State.Health.Status}}' "$container" 2>/dev/null || true)"
            [ "$status" = healthy ] && break
            tries=$((tries + 1))
            if [ "$tries" -gt 300 ]; then
                echo "error: $service is not healthy after 300 s" >&2
                $DC --profile joiner logs --tail 40 "$service" >&2
                exit 1
            fi
            sleep 1
        done
        echo "$service is healthy"
    done
}

case "${1:-}" in
up)
    $DC build node0 # one image serves every service
    $DC up -d
    wait_healthy node0 node1 node2 node3
    $DC exec -T node0 learnchain query validators --home "$HOME_DIR"
    for i in 0 1 2 3; do
        echo "node$i: gRPC 127.0.0.1:$((26656 + i)), metrics http://127.0.0.1:$((26660 + i))/metrics"
    done
    echo "Prometheus and Grafana: docker compose ... --profile monitoring up -d (docs/operate.md)"
    ;;
join)
    $DC --profile joiner up -d joiner
    wait_healthy joiner
    address="$($DC exec -T joiner learnchain keys show --home "$HOME_DIR" --output json |
        sed -n 's/.*"address": *"\([0-9a-f]*\)".*/\1/p')"
    echo "joiner address $address: funding it from the faucet account"
    $DC exec -T node0 learnchain tx transfer "$address" "${JOIN_FUNDS:-5000}" \
        --from "$HOME_DIR/faucet_key.json" --node node0:26656
    # The joiner admits the stake only once it has seen the funds (it checks against its state).
    tries=0
    until $DC exec -T joiner learnchain query account "$address" --home "$HOME_DIR" --output json |
        grep -q '"balance": *[1-9]'; do
        tries=$((tries + 1))
        [ "$tries" -gt 120 ] && { echo "error: the joiner did not see its funds" >&2; exit 1; }
        sleep 1
    done
    echo "staking ${JOIN_STAKE:-2000}: the joiner becomes a validator two blocks after the stake"
    $DC exec -T joiner learnchain tx stake "${JOIN_STAKE:-2000}" --from validator --home "$HOME_DIR"
    ;;
logs)
    exec $DC --profile joiner logs -f --tail 100
    ;;
down)
    $DC --profile joiner down --volumes --remove-orphans --rmi all
    ;;
*)
    echo "usage: $0 up|join|logs|down" >&2
    exit 2
    ;;
esac
