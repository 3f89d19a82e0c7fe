#!/usr/bin/env bash
# Runs on the GPU host, inside the unpacked bundle: the conformance suites (golden, interop)
# and the continual suites on the CUDA backend, the benches, then the random property suites.
# Logs go to $OUT (or ./out).
set -uo pipefail
cd "$(dirname "$0")"
out="${OUT:-./out}"
mkdir -p "$out"
# cudarc loads libcuda (on the library path there) and libnvrtc (with the toolkit) at run time.
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
status=0
COSTREAM_GOLDEN_DIR="$PWD/golden" ./test_golden 2>&1 | tee "$out/golden.log" || status=1
COSTREAM_INTEROP_DIR="$PWD/interop" ./test_interop 2>&1 | tee "$out/interop.log" || status=1
for suite in state_errors per_frame; do
    ./"test_$suite" --test-threads 1 2>&1 | tee "$out/$suite.log" || status=1
done
COSTREAM_BENCH_CUDA=1 ./bench_x3d --bench --noplot cuda 2>&1 | tee "$out/bench_x3d.log" || status=1
COSTREAM_BENCH_CUDA=1 ./bench_core --bench --noplot cuda 2>&1 | tee "$out/bench_core.log" || status=1
for suite in properties x3d_properties; do
    PROPTEST_CASES="${PROPTEST_CASES:-12}" ./"test_$suite" --test-threads 1 2>&1 \
        | tee "$out/$suite.log" || status=1
done
echo "cuda-check exit $status"
exit $status
