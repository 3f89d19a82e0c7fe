#!/usr/bin/env bash
# Builds the CUDA test, example and bench binaries here (release, one cargo invocation so that
# features unify and nothing is built twice) and packs them, with the golden vectors and the
# X3D-S PyTorchVideo interop fixtures, into .device/bundle.tgz for a GPU host that has no Rust
# toolchain. Uploads there are limited to 64 MiB in all, and each binary links burn and the
# CUDA runtime (~6 MB compressed): the bundle holds what fits, most valuable first (the
# property suites, the core benches and the PySlowFast / ST-GCN interop files stay behind;
# the interop cases that need those files fail there for that reason).
# Usage: tools/device/bundle.sh   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.device
rm -rf "$out/stage" && mkdir -p "$out/stage/golden" "$out/stage/interop"

# Copies the executables that cargo's JSON messages on stdin name, as `<kind>_<target name>`.
collect() {
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["kind"][0], m["target"]["name"], m["executable"])
' | while read -r kind name exe; do cp "$exe" "$out/stage/${kind}_$name"; done
}

cargo build --release -p costream-conformance -p costream-engine -p costream-models \
    --features costream-conformance/cuda,costream-engine/cuda,costream-models/cuda \
    --test conformance --test batching --example loadgen --bench x3d \
    --message-format=json | collect
cp ../shared/golden/*.safetensors "$out/stage/golden/"
cp ../shared/interop/{x3d_s_pytorchvideo.pyth,x3d_s_pytorchvideo.io.safetensors,cox3d_s.io.safetensors} \
    "$out/stage/interop/"
cp tools/device/cuda-check.sh "$out/stage/"
# Symbols are not needed there and would take much of the upload.
strip "$out"/stage/test_* "$out"/stage/bench_* "$out"/stage/example_*
tar czf "$out/bundle.tgz" -C "$out/stage" .
size=$(stat -c %s "$out/bundle.tgz")
echo "bundle: $size bytes (the upload limit is 67108864, the working tree included)"
[ "$size" -lt 66000000 ]
