#!/usr/bin/env bash
# Runs on the GPU host, inside the unpacked bundle (tools/device/bundle.sh): the conformance
# suites (golden, interop) and the engine's batching suite on the CUDA backend, the engine
# load test, the X3D benches, and any other suite the bundle holds (most valuable first: the
# call has a time limit). Logs go to $OUT (or ./out), in at most 5 files (the tool returns 8
# at most).
set -uo pipefail
cd "$(dirname "$0")"
out="${OUT:-./out}"
mkdir -p "$out"
# cudarc loads libcuda (on the library path there) and libnvrtc (with the toolkit) at run time.
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
status=0
# Appends a command's output to log $1; a failure marks the whole check failed.
log() {
    local file="$out/$1"
    shift
    echo "### $*" >>"$file"
    if [ ! -x "$1" ] && [ "${1#./}" != "$1" ]; then
        echo "not in this bundle: $1" | tee -a "$file"
        return
    fi
    "$@" 2>&1 | tee -a "$file" || status=1
}
log gpu.txt nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
COSTREAM_GOLDEN_DIR="$PWD/golden" log tests.log ./test_conformance golden
COSTREAM_INTEROP_DIR="$PWD/interop" log tests.log ./test_conformance interop
# The continual crate's integration tests are one binary (`suite`), filtered by module.
log tests.log ./test_suite --test-threads 1 state_errors:: per_frame::
log tests.log ./test_batching --test-threads 1
# The engine: CoX3D-S streams stepped in batches on the GPU (DESIGN §5 figures).
for wait_ms in 2 20; do
    log loadgen.log ./example_loadgen --variant s --device cuda:0 --streams 1,8,32,128,256 \
        --frames 8 --max-wait-ms "$wait_ms"
done
log loadgen.log ./example_loadgen --variant tiny --device cuda:0 --streams 1,8,64,256 --frames 20
# A device that does not exist is a start-up error naming it (exit 1 expected).
./example_loadgen --device cuda:9 --streams 1 --frames 1 2>&1 | tail -1 | tee -a "$out/loadgen.log"
criterion=(--bench --noplot --warm-up-time 1 --measurement-time 3)
COSTREAM_BENCH_CUDA=1 log bench_x3d.log ./bench_x3d "${criterion[@]}" cuda
PROPTEST_CASES="${PROPTEST_CASES:-12}" log tests.log ./test_suite --test-threads 1 properties::
PROPTEST_CASES="${PROPTEST_CASES:-12}" log tests.log ./test_models --test-threads 1 x3d_properties::
COSTREAM_BENCH_CUDA=1 log bench_core.log ./bench_core "${criterion[@]}" cuda
echo "cuda-check exit $status"
exit $status
