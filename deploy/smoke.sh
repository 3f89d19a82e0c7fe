#!/usr/bin/env bash
# Smoke test of an image: builds the Debian base images (when missing) and the image, runs it,
# waits for its health check, checks the device its model runs on, streams a generated 16-frame
# clip over the WebSocket with the Python example client, and checks the stream's stored
# predictions over HTTP. Needs root (for debootstrap), Docker, python3 (websockets is installed
# if missing). The CPU image by default; deploy/smoke-gpu.sh sets the variables below.
#   DOCKERFILE     the Dockerfile (deploy/Dockerfile)
#   BUILD_ARGS     extra `docker build` arguments, split on spaces
#   EXPECT_DEVICE  the device /v1/models must report (cpu)
#   READY_WAIT_S   how long the container may take to become healthy (120)
set -euo pipefail
cd "$(dirname "$0")/.."
image="${IMAGE:-costream:smoke}"
dockerfile="${DOCKERFILE:-deploy/Dockerfile}"
read -r -a build_args <<<"${BUILD_ARGS:-}"
expect_device="${EXPECT_DEVICE:-cpu}"
ready_wait_s="${READY_WAIT_S:-120}"
frames=16

step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "base images"
if ! docker image inspect costream-rust:bookworm costream-base:bookworm >/dev/null 2>&1; then
    deploy/base-images.sh
fi

step "image"
docker build -q -f "$dockerfile" \
    --build-arg RUST_IMAGE=costream-rust:bookworm --build-arg BASE_IMAGE=costream-base:bookworm \
    "${build_args[@]}" -t "$image" .
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$image"

step "run"
name="costream-smoke-$$"
work="$(mktemp -d)"
trap 'docker rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
docker run -d --name "$name" -p 127.0.0.1::8080 "$image" >/dev/null
port="$(docker port "$name" 8080/tcp | head -n 1 | sed 's/.*://')"
for _ in $(seq 1 "$ready_wait_s"); do
    status="$(docker inspect --format '{{.State.Health.Status}}' "$name")"
    [ "$status" = healthy ] && break
    [ "$(docker inspect --format '{{.State.Running}}' "$name")" = true ] || {
        docker logs "$name"; echo "the container exited"; exit 1; }
    sleep 1
done
echo "health: $status, port $port, user $(docker exec "$name" id -u)"
[ "$status" = healthy ]
[ "$(docker exec "$name" id -u)" != 0 ]
device="$(python3 -c 'import json, sys, urllib.request
print(json.load(urllib.request.urlopen(sys.argv[1]))["models"][0]["device"])' \
    "http://127.0.0.1:$port/v1/models")"
echo "model device: $device"
[ "$device" = "$expect_device" ]

step "stream a clip"
python3 -c 'import websockets' 2>/dev/null || python3 -m pip install --quiet websockets
python3 deploy/frames.py "$work/frames" "$frames"
python3 docs/examples/stream_folder.py "$work/frames" --url "ws://127.0.0.1:$port/v1/stream" \
    --top-k 2 | tee "$work/stream.out"
stream_id="$(sed -n 's/^stream \([^:]*\):.*/\1/p' "$work/stream.out")"
predicted="$(grep -E '^frame[0-9]+\.png: ' "$work/stream.out" | grep -vc '(filling)')"

step "query its predictions"
python3 - "http://127.0.0.1:$port" "$stream_id" "$predicted" <<'PY'
import json, sys, urllib.request
base, stream, predicted = sys.argv[1], sys.argv[2], int(sys.argv[3])
with urllib.request.urlopen(f"{base}/v1/streams/{stream}/predictions") as r:
    stored = json.load(r)["predictions"]
with urllib.request.urlopen(f"{base}/v1/streams/{stream}") as r:
    record = json.load(r)
assert predicted > 0, "the clip produced no prediction"
assert len(stored) == predicted, f"{len(stored)} stored, {predicted} received"
assert record["state"] == "stored" and record["end_reason"] == "client", record
print(f"stream {stream}: {len(stored)} predictions stored, record {record['counts']}")
PY
echo "smoke test passed"
