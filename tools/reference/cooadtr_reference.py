"""Reference vectors for costream's CoOadTR (crates/models/src/oadtr) from the code that trains it.

Two layouts, each run in its own environment (the two need different `continual` versions):

* `--layout cooadtr`: CoOadTR's own network, `CoVisionTransformer` of
  github.com/LukasHedegaard/CoOadTR (`transformer_models/ViT.py`), rebuilt here from the
  `continual_transformers` modules it uses (github.com/LukasHedegaard/continual-transformers,
  commit 0b6092d, on PYTHONPATH) with continual-inference 0.17.1 (`pip install
  "continual-inference<1.0"`, which that package requires):

      PYTHONPATH=/path/to/continual-transformers python tools/reference/cooadtr_reference.py --layout cooadtr

  Writes crates/models/tests/data/cooadtr_cooadtr.safetensors (tiny b1 and b2 networks, fixed
  and learned positional tables) and cooadtr_b1_tiny.pth: the b1 network saved as CoOadTR's
  main.py saves checkpoints (`{"model", "optimizer", "lr_scheduler", "epoch", "args"}`,
  `args` a pickled argparse.Namespace). With `--full` it also writes
  crates/models/tests/data/cooadtr_thumos_full.json: b1 and b2 at the THUMOS'14 preset
  (D_in 3072, d 1024, 8 heads, window 64, 127 cyclic positions, 22 classes) with weights and
  inputs from a counter-based formula that the Rust test recomputes (see `formula`), so only
  the logits are committed.

* `--layout continual-inference`: the same network from continual-inference 1.2.4's own
  modules (`co.Sequential(co.Linear, co.RecyclingPositionalEncoding,
  co.TransformerEncoder(co.TransformerEncoderLayerFactory(..., activation=nn.GELU()),
  num_layers, norm=nn.LayerNorm), co.Linear)`; the factory has attention biases). Writes
  crates/models/tests/data/cooadtr_continual_inference.safetensors.

Each file holds, per case `{name}.`, the weights under the layout's own keys, `input`
[T, D_in], `steps` [T - n + 1, classes] (the logits of `forward_step` from the step that
fills the window on) and metadata `config` (JSON, per case: sizes and layer count). Before
writing, the steps are checked against the offline `forward` on each window (position index
set to the window's first token), which is what costream reproduces.

Both libraries' retroactive layer wraps its residual ring index modulo `n - 1` instead of `n`
(`RetroactiveUnity._forward_step`), so from step `2n - 2` on their b2 steps are wrong (see
../shared/golden/README.md). The steps stored here are from the fixed ring (modulus `n`);
the offline windows agree with them.

Never run in CI.
"""

import argparse
import json
import math
import pathlib
import sys

import torch
from safetensors.torch import save_file
from torch import nn

DATA = pathlib.Path(__file__).resolve().parents[2] / "crates/models/tests/data"


def close(name, actual, expected):
    diff = (actual - expected).abs().max().item()
    tol = 1e-9 * (1.0 + expected.abs().max().item())
    assert diff <= tol, f"{name}: steps differ from the offline windows by {diff} > {tol}"
    print(f"{name}: steps vs offline windows {diff:.2e} (tolerance {tol:.2e})")


# --- the network in each layout ------------------------------------------------------------


def build_cooadtr(c):
    """CoVisionTransformer of CoOadTR's ViT.py with CoTransformerModel's encoder."""
    import continual as co
    from continual_transformers import (
        CoReSiTransformerEncoder,
        CoSiTransformerEncoder,
        RecyclingPositionalEncoding,
    )

    encoder = {1: CoSiTransformerEncoder, 2: CoReSiTransformerEncoder}[c["layers"]](
        sequence_len=c["window"],
        embed_dim=c["d_model"],
        num_heads=c["heads"],
        dropout=0.1,
        in_proj_bias=False,
        query_index=-1,
        ff_hidden_dim=c["feedforward"],
        ff_activation=nn.GELU(),
    )
    return co.Sequential(
        co.Linear(c["input_features"], c["d_model"], channel_dim=1),
        RecyclingPositionalEncoding(
            c["d_model"], c["positions"], learned=c["learned"], forward_update_index_steps=1
        ),
        nn.Dropout(p=0.1),
        encoder,
        co.Lambda(nn.LayerNorm(c["d_model"]), takes_time=False),
        co.Linear(c["d_model"], c["classes"], channel_dim=1),
    )


def build_continual_inference(c):
    import continual as co

    factory = co.TransformerEncoderLayerFactory(
        d_model=c["d_model"],
        nhead=c["heads"],
        dim_feedforward=c["feedforward"],
        dropout=0.0,
        # A module, not "gelu": continual-inference 1.2.4 maps the string to ReLU.
        activation=nn.GELU(),
        sequence_len=c["window"],
    )
    return co.Sequential(
        co.Linear(c["input_features"], c["d_model"], channel_dim=1),
        co.RecyclingPositionalEncoding(
            c["d_model"], c["positions"], learned=c["learned"], forward_update_index_steps=0
        ),
        co.TransformerEncoder(factory, num_layers=c["layers"], norm=nn.LayerNorm(c["d_model"])),
        co.Linear(c["d_model"], c["classes"], channel_dim=1),
    )


def fix_retroactive_ring():
    """Wrap the retroactive residual ring modulo `delay + 1` (its length), as it should: the
    libraries' step writes and reads with the index it is given, then advances it modulo
    `delay`; only that advance is replaced."""
    if "continual_transformers" in sys.modules:
        from continual_transformers.co_re_trans_enc import RetroactiveUnity
    else:
        from continual.transformer import RetroactiveUnity

    library_step = RetroactiveUnity._forward_step

    def forward_step(self, input, prev_state):
        index = -self.delay if prev_state is None else int(prev_state[1])
        output, (buffer, library_index) = library_step(self, input, prev_state)
        new_index = index + 1
        if new_index > 0:
            new_index = new_index % (self.delay + 1)
        if isinstance(library_index, torch.Tensor):
            new_index = torch.tensor(new_index)
        return output, (buffer, new_index)

    RetroactiveUnity._forward_step = forward_step


def set_position(net, index):
    """Sets the positional encoding's next index (`index` in continual_transformers,
    `state_index` in continual-inference 1.2.4)."""
    pe = net[1]
    if isinstance(getattr(pe, "state_index", None), torch.Tensor):
        pe.state_index = torch.tensor(index)
        return
    if hasattr(pe, "index"):
        pe.index = index
        return
    raise AttributeError("the positional encoding has no index")


def run(net, c, features):
    """Steps `features` [T, D_in] through `net` and checks them against offline windows, in
    float64: both libraries' retroactive attention sums `exp` of the scores without
    subtracting their maximum and slides them by subtraction, which loses float32 precision
    (up to 1e-2 on these networks); in float64 steps and windows agree to 1e-15.

    Returns the step logits [T - n + 1, classes], float32.
    """
    net.double().eval()
    features = features.double()
    n = c["window"]
    with torch.no_grad():
        net.clean_state()
        steps = []
        for t in range(features.shape[0]):
            out = net.forward_step(features[t].unsqueeze(0))
            if isinstance(out, torch.Tensor) and t >= n - 1:
                steps.append(out.reshape(-1))
        steps = torch.stack(steps)
        windows = []
        for start in range(features.shape[0] - n + 1):
            set_position(net, start % c["positions"])
            window = features[start : start + n].T.unsqueeze(0)
            windows.append(net.forward(window)[0, :, -1])
        close(c["name"], steps, torch.stack(windows))
    return steps.float()


# --- weights and inputs from a formula (the full-size case) --------------------------------


def thumos_anet(layers):
    """CoOadTR-b{layers} as its paper trained it on THUMOS'14 with ActivityNet features
    (`run_all.sh`): costream's `b{layers}-thumos-anet`."""
    return dict(
        name=f"b{layers}-thumos-anet",
        input_features=3072,
        d_model=1024,
        heads=8,
        feedforward=1024,
        layers=layers,
        window=64,
        positions=127,
        learned=False,
        classes=22,
    )


def formula(key, shape):
    """Values of tensor `key`: element i is `u(fnv1a(key) + i)` scaled, where `u` is the
    splitmix32-style hash below mapped to [-1, 1) with 24 bits. The input features (`input`)
    are `u`, LayerNorm weights `1 + 0.1 u`, other 1-D tensors `0.1 u`, matrices
    `u / sqrt(fan_in)`, all computed in float64 and rounded to float32. costream's test
    computes the same from the costream key (crates/models/tests/models/cooadtr_reference.rs)."""
    import numpy as np

    seed = np.uint32(2166136261)
    for byte in key.encode():
        seed = np.uint32((int(seed) ^ byte) * 16777619 % 2**32)
    count = int(np.prod(shape))
    x = (np.arange(count, dtype=np.uint64) + np.uint64(seed)) % np.uint64(2**32)
    x = (x ^ (x >> np.uint64(16))) * np.uint64(0x7FEB352D) % np.uint64(2**32)
    x = (x ^ (x >> np.uint64(15))) * np.uint64(0x846CA68B) % np.uint64(2**32)
    x = x ^ (x >> np.uint64(16))
    u = (x >> np.uint64(8)).astype(np.float64) / 2**23 - 1.0
    if key == "input":
        v = u
    elif key.endswith("norm1.weight") or key.endswith("norm2.weight") or key == "encoder.norm.weight":
        v = 1.0 + 0.1 * u
    elif len(shape) == 1:
        v = 0.1 * u
    else:
        v = u / math.sqrt(shape[-1])
    return torch.from_numpy(v.astype(np.float32)).reshape(shape)


# costream's key -> CoOadTR's key, b1 and b2 (the inverse of crates/models/src/oadtr/load.rs).
def cooadtr_key(costream, layers):
    top = {
        "input.": "0.",
        "positional.pe.": "1.pe.",
        "encoder.norm.": "4.fn.",
        "classifier.": "5.",
    }
    for a, b in top.items():
        if costream.startswith(a):
            return b + costream[len(a) :]
    layer, rest = costream[len("encoder.layers.") :].split(".", 1)
    single = {
        "self_attn.": "0.1.",
        "norm1.": "1.fn.",
        "linear1.": "2.1.0.",
        "linear2.": "2.1.3.",
        "norm2.": "3.fn.",
    }
    retro = {
        "self_attn.": "0.0.1.",
        "norm1.": "0.1.fn.0.",
        "linear1.": "0.1.fn.1.fn.0.",
        "linear2.": "0.1.fn.1.fn.3.",
        "norm2.": "0.1.fn.2.",
    }
    table, prefix = single, "3."
    if layers == 2:
        table, prefix = (retro, "3.") if layer == "0" else (single, "3.1.fn.")
    for a, b in table.items():
        if rest.startswith(a):
            return prefix + b + rest[len(a) :]
    raise KeyError(costream)


def costream_keys(c):
    """costream's keys and shapes of a network of configuration `c` (torch layout)."""
    d, f = c["d_model"], c["feedforward"]
    keys = {
        "input.weight": (d, c["input_features"]),
        "input.bias": (d,),
        "encoder.norm.weight": (d,),
        "encoder.norm.bias": (d,),
        "classifier.weight": (c["classes"], d),
        "classifier.bias": (c["classes"],),
    }
    for i in range(c["layers"]):
        p = f"encoder.layers.{i}."
        keys.update(
            {
                p + "self_attn.in_proj_weight": (3 * d, d),
                p + "self_attn.out_proj.weight": (d, d),
                p + "linear1.weight": (f, d),
                p + "linear1.bias": (f,),
                p + "linear2.weight": (d, f),
                p + "linear2.bias": (d,),
                p + "norm1.weight": (d,),
                p + "norm1.bias": (d,),
                p + "norm2.weight": (d,),
                p + "norm2.bias": (d,),
            }
        )
    return keys


def full_size():
    import numpy as np

    cases = {}
    frames = 2 * 64 + 8
    for layers in (1, 2):
        c = thumos_anet(layers)
        net = build_cooadtr(c)
        state = net.state_dict()
        for key, shape in costream_keys(c).items():
            theirs = cooadtr_key(key, layers)
            assert tuple(state[theirs].shape) == tuple(shape), (key, theirs)
            state[theirs] = formula(key, shape)
        missing = set(net.state_dict()) - {cooadtr_key(k, layers) for k in costream_keys(c)}
        assert missing == {"1.pe.pattern"}, missing
        net.load_state_dict(state)
        features = formula("input", (frames, 3072))
        steps = run(net, c, features)
        cases[c["name"]] = {
            "config": c,
            "frames": frames,
            "steps": steps.numpy().astype(np.float64).round(7).tolist(),
        }
    path = DATA / "cooadtr_thumos_full.json"
    path.write_text(json.dumps(cases) + "\n")
    print(f"wrote {path}")


# --- tiny cases ----------------------------------------------------------------------------


def tiny(layout):
    torch.manual_seed(20261206)
    build = {"cooadtr": build_cooadtr, "continual-inference": build_continual_inference}[layout]
    tensors, configs = {}, {}
    cases = [("b1", 1, False), ("b2", 2, False)]
    if layout == "cooadtr":
        cases.append(("b1_learned", 1, True))
    for name, layers, learned in cases:
        c = dict(
            name=name,
            input_features=12,
            d_model=16,
            heads=2,
            feedforward=24,
            layers=layers,
            window=6,
            positions=11,
            learned=learned,
            classes=5,
        )
        net = build(c)
        with torch.no_grad():
            for key, value in net.state_dict().items():
                if key.endswith("pe.pattern"):
                    continue
                # Away from torch's defaults (zero biases, unit norms) so every key matters, at
                # a scale where the references' unstabilised softmax sums stay exact.
                scale = 1.0 / math.sqrt(value.shape[-1]) if value.dim() > 1 else 0.2
                value.copy_(torch.randn_like(value) * scale)
        frames = 3 * c["window"] + 4
        features = torch.randn(frames, c["input_features"])
        steps = run(net, c, features)
        for key, value in net.float().state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().contiguous()
        tensors[f"{name}.input"] = features.contiguous()
        tensors[f"{name}.steps"] = steps.contiguous()
        configs[name] = c
        if layout == "cooadtr" and name == "b1":
            save_like_main_py(net, c)
    file = {"cooadtr": "cooadtr_cooadtr", "continual-inference": "cooadtr_continual_inference"}
    path = DATA / f"{file[layout]}.safetensors"
    save_file(tensors, str(path), metadata={"config": json.dumps(configs)})
    print(f"wrote {path}")


def save_like_main_py(net, c):
    """A checkpoint as CoOadTR's main.py writes it, with the case's weights (the optimizer has
    taken one step, so its state holds tensors too; the weights are put back after it)."""
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    net.train()
    loss = net.forward(torch.randn(1, c["input_features"], c["window"])).sum()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    net.load_state_dict(weights)
    net.eval()
    args = argparse.Namespace(
        num_layers=c["layers"],
        enc_layers=c["window"],
        dim_feature=c["input_features"],
        numclass=c["classes"],
        positional_encoding_type="recycling_fixed",
    )
    path = DATA / "cooadtr_b1_tiny.pth"
    torch.save(
        {
            "model": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "lr_scheduler": {"step_size": 1},
            "epoch": 4,
            "args": args,
        },
        path,
    )
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", choices=["cooadtr", "continual-inference"], required=True)
    parser.add_argument("--full", action="store_true", help="also the THUMOS-size case")
    args = parser.parse_args()
    if args.layout == "cooadtr":
        import continual_transformers  # noqa: F401  (fails early with a clear message)
    fix_retroactive_ring()
    tiny(args.layout)
    if args.full:
        assert args.layout == "cooadtr", "the full-size case uses CoOadTR's layout"
        full_size()


if __name__ == "__main__":
    main()
