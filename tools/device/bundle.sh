#!/usr/bin/env bash
# Builds the CUDA test and bench binaries here (release; the bench binary also covers the
# ndarray and flex CPU backends) and packs them, with the golden
# vectors, into .device/bundle.tgz for a GPU host that has no Rust toolchain.
# Usage: tools/device/bundle.sh   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.device
rm -rf "$out/stage" && mkdir -p "$out/stage/golden"
cargo test --release -p costream-continual --features cuda,flex --no-run --message-format=json \
    --test golden --test properties --test state_errors --test per_frame \
    | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
' | while read -r name exe; do cp "$exe" "$out/stage/test_$name"; done
cargo bench -p costream-continual --features cuda,flex --no-run --message-format=json --bench core \
    | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["bench"]:
        print(m["executable"])
' | while read -r exe; do cp "$exe" "$out/stage/core_bench"; done
cp ../shared/golden/*.safetensors "$out/stage/golden/"
cp tools/device/cuda-check.sh "$out/stage/"
tar czf "$out/bundle.tgz" -C "$out/stage" .
ls -la "$out/bundle.tgz"
