#!/usr/bin/env bash
# Runs on the GPU host, inside the unpacked bundle: every continual suite on the CUDA backend,
# then the core benches. Logs go to $OUT (or ./out).
set -uo pipefail
cd "$(dirname "$0")"
out="${OUT:-./out}"
mkdir -p "$out"
# cudarc loads libcuda (on the library path there) and libnvrtc (with the toolkit) at run time.
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
status=0
COSTREAM_GOLDEN_DIR="$PWD/golden" ./test_golden 2>&1 | tee "$out/golden.log" || status=1
for suite in state_errors per_frame; do
    ./"test_$suite" --test-threads 1 2>&1 | tee "$out/$suite.log" || status=1
done
COSTREAM_BENCH_CUDA=1 ./core_bench --bench --noplot cuda 2>&1 | tee "$out/bench.log" || status=1
PROPTEST_CASES="${PROPTEST_CASES:-12}" ./test_properties --test-threads 1 2>&1 | tee "$out/properties.log" || status=1
echo "cuda-check exit $status"
exit $status
