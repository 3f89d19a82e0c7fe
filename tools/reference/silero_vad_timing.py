"""Chunks per second of silero-vad 6.2.3's own model, to compare with costream's Silero VAD
(`cargo bench -p costream-models --bench vad`): the `.jit` (PyTorch) and the ONNX export
(onnxruntime, CPU), one thread, at 1, 64 and 1,024 streams stepped together (the models take
a batch of chunks; the state is kept by the model between calls). Run on the same machine in
the same session as the Rust bench (never in CI):

    python tools/reference/silero_vad_timing.py
"""

import importlib.resources
import time

import numpy as np
import onnxruntime as ort
import torch

from silero_vad import load_silero_vad

torch.set_num_threads(1)
CHUNK = 512
RATE = 16000


def rate(step, streams, seconds=3.0):
    """Chunks per second of `step` over about `seconds` after a warm-up."""
    for _ in range(3):
        step()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        calls += 1
    elapsed = time.perf_counter() - start
    return streams * calls / elapsed, elapsed / calls


def main():
    jit = load_silero_vad()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    path = str(importlib.resources.files("silero_vad.data").joinpath("silero_vad.onnx"))
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for streams in (1, 64, 1024):
        audio = torch.from_numpy((rng.random((streams, CHUNK), dtype=np.float32) - 0.5))
        jit.reset_states()
        with torch.no_grad():
            per_s, per_call = rate(lambda: jit(audio, RATE), streams)
        print(f"jit  {streams:5d} streams: {per_s:10.0f} chunks/s ({per_call * 1e3:.3f} ms per call)")

        state = np.zeros((2, streams, 128), dtype=np.float32)
        context = np.zeros((streams, 64), dtype=np.float32)
        x = np.concatenate([context, audio.numpy()], axis=1)
        sr = np.array(RATE, dtype=np.int64)

        def onnx_step():
            nonlocal state
            _, state = session.run(None, {"input": x, "state": state, "sr": sr})

        per_s, per_call = rate(onnx_step, streams)
        print(f"onnx {streams:5d} streams: {per_s:10.0f} chunks/s ({per_call * 1e3:.3f} ms per call)")


if __name__ == "__main__":
    main()
