"""Per-step times of the reference CoOadTR networks, for BENCHMARKS.md (issue 24).

Times `forward_step` of b1 and b2 at the THUMOS'14 preset (D_in 3072, d 1024, 8 heads,
feed-forward 1024, window 64, 127 cyclic positions, 22 classes; random weights, float32)
for a batch of 1 and of 64 streams stepped in lockstep, with a full window, and the offline
`forward` over one window (64 frames), with one thread, as `crates/models/benches/cooadtr.rs`
does. The networks are those of `cooadtr_reference.py`, so run it the same two ways:

    PYTHONPATH=/path/to/continual-transformers python tools/reference/cooadtr_timing.py --layout cooadtr
    python tools/reference/cooadtr_timing.py --layout continual-inference

Never run in CI.
"""

import argparse
import pathlib
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import cooadtr_reference as reference  # noqa: E402

torch.set_num_threads(1)


def median_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", choices=["cooadtr", "continual-inference"], required=True)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    build = {
        "cooadtr": reference.build_cooadtr,
        "continual-inference": reference.build_continual_inference,
    }[args.layout]
    if args.layout == "cooadtr":
        import continual_transformers  # noqa: F401
    print(f"torch {torch.__version__}, layout {args.layout}, 1 thread")
    print("| network | streams | step ms | window ms |")
    print("| --- | ---: | ---: | ---: |")
    for layers in (1, 2):
        c = reference.thumos_anet(layers)
        torch.manual_seed(7)
        net = build(c).eval()
        for streams in (1, 64):
            frames = torch.randn(c["window"] + 8, streams, c["input_features"])
            with torch.no_grad():
                net.clean_state()
                for t in range(c["window"]):
                    net.forward_step(frames[t])
                counter = [c["window"]]

                def step():
                    net.forward_step(frames[counter[0] % frames.shape[0]])
                    counter[0] += 1

                step_ms = median_ms(step, args.repeats)
                window = frames[: c["window"]].permute(1, 2, 0).contiguous()
                window_ms = median_ms(lambda: net.forward(window), max(3, args.repeats // 4))
            print(f"| b{layers} | {streams} | {step_ms:.2f} | {window_ms:.2f} |")


if __name__ == "__main__":
    main()
