#!/usr/bin/env bash
# Builds the CUDA test and bench binaries here (release) and packs them, with the golden
# vectors and the X3D interop fixtures, into .device/bundle.tgz for a GPU host that has no
# Rust toolchain (uploads there are limited to 64 MiB in all: check the size printed last).
# Usage: tools/device/bundle.sh   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.device
rm -rf "$out/stage" && mkdir -p "$out/stage/golden" "$out/stage/interop"

# Copies the executables of the artifacts of `kind` that cargo's JSON messages on stdin name,
# as `<prefix><target name>`.
collect() {
    local kind="$1" prefix="$2"
    python3 -c '
import json, sys
kind = sys.argv[1]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == [kind]:
        print(m["target"]["name"], m["executable"])
' "$kind" | while read -r name exe; do cp "$exe" "$out/stage/$prefix$name"; done
}

features=costream-conformance/cuda,costream-models/cuda,costream-continual/cuda
cargo test --release -p costream-conformance -p costream-continual -p costream-models \
    --features "$features" --no-run --message-format=json \
    --test golden --test interop --test properties --test state_errors --test per_frame \
    --test x3d_properties | collect test test_
cargo bench -p costream-models -p costream-continual --features "$features" --no-run \
    --message-format=json --bench x3d --bench core | collect bench bench_
cp ../shared/golden/*.safetensors "$out/stage/golden/"
cp ../shared/interop/{x3d_s_pytorchvideo.pyth,x3d_s_slowfast.pyth,x3d_s_pytorchvideo.io.safetensors,cox3d_s.io.safetensors,stgcn_ntu60.pt} "$out/stage/interop/"
cp tools/device/cuda-check.sh "$out/stage/"
tar czf "$out/bundle.tgz" -C "$out/stage" .
ls -la "$out/bundle.tgz"
