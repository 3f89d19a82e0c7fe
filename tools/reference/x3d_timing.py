"""Per-step and per-clip time of the reference CoX3D-S (continual-inference 1.2.4, the golden
set's `CoX3D` builder, whose defaults are X3D-S at 160x160, 400 classes, window 13), for
BENCHMARKS.md: batch 1, random weights, eval mode, a warm state, as the `x3d` criterion bench
measures costream. Threads: `--threads N` (default 1). Run with PyTorch and
continual-inference installed (never in CI):

    python tools/reference/x3d_timing.py --threads 1
"""

import argparse
import pathlib
import statistics
import sys
import time

import torch

GOLDEN = pathlib.Path(__file__).resolve().parents[3] / "shared" / "golden"
sys.path.insert(0, str(GOLDEN))
from builders import CoX3D  # noqa: E402


def timed(function, repeats):
    """Median and spread (min, max) in milliseconds of `repeats` calls after 3 warm-up calls."""
    for _ in range(3):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), min(samples), max(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--clips", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    network = CoX3D().eval()
    frame = torch.randn(1, 3, 160, 160)
    clip = torch.randn(1, 3, 13, 160, 160)
    with torch.no_grad():
        for _ in range(network.delay + 1):
            network.forward_step(frame)
        step = timed(lambda: network.forward_step(frame), args.steps)
        offline = timed(lambda: network.forward(clip), args.clips)
    print(f"torch {torch.__version__}, {args.threads} thread(s), delay {network.delay}")
    print(f"CoX3D-S step:          {step[0]:8.2f} ms (min {step[1]:.2f}, max {step[2]:.2f})")
    print(f"X3D-S offline clip 13: {offline[0]:8.2f} ms (min {offline[1]:.2f}, max {offline[2]:.2f})")
    print(f"clip / step:           {offline[0] / step[0]:8.2f}")


if __name__ == "__main__":
    main()
