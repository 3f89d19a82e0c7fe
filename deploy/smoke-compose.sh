#!/usr/bin/env bash
# Runs the compose stack (deploy/compose.yaml) on images built from Debian's packages, streams
# a clip through it, and checks that the predictions are in PostgreSQL (through the API) and
# that Prometheus scrapes costream. Needs what deploy/smoke.sh needs plus docker-compose.
set -euo pipefail
cd "$(dirname "$0")"
export COSTREAM_IMAGE="${COSTREAM_IMAGE:-costream:smoke}"
export POSTGRES_IMAGE=costream-postgres:bookworm PROMETHEUS_IMAGE=costream-prometheus:bookworm
export COSTREAM_PORT="${COSTREAM_PORT:-18080}" PROMETHEUS_PORT="${PROMETHEUS_PORT:-19090}"
project="costream-smoke-$$"
compose() { docker-compose -f compose.yaml -p "$project" "$@"; }
step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "images"
if ! docker image inspect "$COSTREAM_IMAGE" >/dev/null 2>&1; then
    (cd .. && docker build -q -f deploy/Dockerfile --build-arg RUST_IMAGE=costream-rust:bookworm \
        --build-arg BASE_IMAGE=costream-base:bookworm -t "$COSTREAM_IMAGE" .)
fi
docker build -q -f compose/postgres.Dockerfile -t "$POSTGRES_IMAGE" . >/dev/null
docker build -q -f compose/prometheus.Dockerfile -t "$PROMETHEUS_IMAGE" . >/dev/null

step "up"
trap 'compose down -v >/dev/null 2>&1 || true' EXIT
compose up -d
base="http://127.0.0.1:$COSTREAM_PORT"
for _ in $(seq 1 120); do
    curl -fsS "$base/health/ready" >/dev/null 2>&1 && break
    sleep 1
done
store="$(curl -fsS "$base/info" | python3 -c 'import json, sys; print(json.load(sys.stdin)["store"])')"
echo "costream ready, store: $store"
case "$store" in postgres*) ;; *) echo "the store is not PostgreSQL"; exit 1 ;; esac

step "stream a clip"
work="$(mktemp -d)"
python3 -c 'import websockets' 2>/dev/null || python3 -m pip install --quiet websockets
python3 frames.py "$work" 12
python3 ../docs/examples/stream_folder.py "$work" --url "ws://127.0.0.1:$COSTREAM_PORT/v1/stream" \
    | tee "$work/out" | tail -n 3
stream_id="$(sed -n 's/^stream \([^:]*\):.*/\1/p' "$work/out")"
stored="$(curl -fsS "$base/v1/streams/$stream_id/predictions" \
    | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["predictions"]))')"
received="$(grep -E '^frame[0-9]+\.png: ' "$work/out" | grep -vc '(filling)')"
echo "predictions received $received, stored in PostgreSQL $stored"
[ "$stored" -gt 0 ] && [ "$stored" = "$received" ]

step "Prometheus scrapes costream"
prom="http://127.0.0.1:$PROMETHEUS_PORT"
query='sum(costream_frames_total)'
for _ in $(seq 1 30); do
    frames="$(curl -fsS "$prom/api/v1/query" --data-urlencode "query=$query" \
        | python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)')"
    [ "$frames" -ge 12 ] && break
    sleep 1
done
echo "Prometheus: $query = $frames"
[ "$frames" -ge 12 ]
rm -rf "$work"
echo "compose smoke test passed"
