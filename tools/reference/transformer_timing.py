"""Per-step times of continual-inference's transformer layers, for BENCHMARKS.md.

Times one `forward_step` of co.SingleOutputTransformerEncoderLayer and
co.RetroactiveTransformerEncoderLayer (and the golden shapes' two-layer encoder) on a full
window, next to the offline layer on the window, with one thread, as the Rust bench
`crates/continual/benches/transformer.rs` does. Run with PyTorch and continual-inference
1.2.4 installed (never in CI):

    python tools/reference/transformer_timing.py
"""

import time

import continual as co
import torch

torch.set_num_threads(1)
torch.manual_seed(0)


def median_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[len(times) // 2]


def time_steps(module, d, n, repeats):
    tokens = torch.randn(64, 1, d)
    with torch.no_grad():
        for t in range(n + 2):
            module.forward_step(tokens[t % 64])
        counter = [0]

        def step():
            counter[0] += 1
            module.forward_step(tokens[counter[0] % 64])

        return median_ms(step, repeats)


def time_window(module, d, n, repeats):
    window = torch.randn(1, d, n)
    with torch.no_grad():
        return median_ms(lambda: module.forward(window), repeats)


def layer(kind, d, heads, ff, n):
    make = {
        "single": co.SingleOutputTransformerEncoderLayer,
        "retro": co.RetroactiveTransformerEncoderLayer,
    }[kind]
    return make(d_model=d, nhead=heads, dim_feedforward=ff, dropout=0.0, sequence_len=n).eval()


print("shape                         single_output_step  retroactive_step  offline_window")
for n in [16, 64, 256]:
    repeats = 60 if n < 256 else 20
    single = time_steps(layer("single", 512, 8, 2048, n), 512, n, repeats)
    retro = time_steps(layer("retro", 512, 8, 2048, n), 512, n, repeats)
    window = time_window(layer("single", 512, 8, 2048, n), 512, n, repeats)
    print(f"d=512 h=8 ff=2048 N={n:<4}         {single:8.3f} ms       {retro:8.3f} ms    {window:8.3f} ms")

single = time_steps(layer("single", 16, 2, 32, 8), 16, 8, 500)
retro = time_steps(layer("retro", 16, 2, 32, 8), 16, 8, 500)
factory = co.TransformerEncoderLayerFactory(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0, sequence_len=8)
two = time_steps(co.TransformerEncoder(factory, num_layers=2).eval(), 16, 8, 500)
print(f"golden d=16 h=2 ff=32 N=8: single {single:.3f} ms, retroactive {retro:.3f} ms, two-layer {two:.3f} ms")
