"""Reference vectors for costream's sequence modules, from PyTorch and continual-inference.

Writes crates/continual/tests/data/sequence_reference.safetensors (a few tens of KB):

* cyclic.{d}x{num}: the fixed table of co.RecyclingPositionalEncoding(d, num, learned=False).
* {rnn_tanh,rnn_relu,gru,lstm}.*: a 2-layer co.RNN / co.GRU / co.LSTM (torch's key names
  under the prefix), its input [B, C, T] and the offline output [B, H, T]; the continual
  steps equal it (checked here before writing).
* enc_{name}.*: a torch.nn.TransformerEncoder (batch_first) with its weights under torch's
  names, an input [B, d, T] and, for every window of N tokens ending at t = N-1 .. T-1,
  the encoder's outputs: `last` [B, d, W] (the window's last token) and `window`
  [B, d, W, N] (every token). Metadata `config` describes each encoder as JSON.

Run with PyTorch and continual-inference 1.2.4 installed (never in CI):

    python tools/reference/sequence_vectors.py
"""

import json
import math
import pathlib

import continual as co
import torch
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/continual/tests/data/sequence_reference.safetensors"

torch.manual_seed(20261129)
tensors = {}
configs = {}


def put(key, value):
    tensors[key] = value.detach().to(torch.float32).contiguous()


# --- cyclic positional tables -------------------------------------------------------------
for d, num in [(2, 4), (3, 7), (16, 15), (10, 31), (64, 100)]:
    pe = co.RecyclingPositionalEncoding(d, num, learned=False)
    put(f"cyclic.{d}x{num}", pe.pe.pattern)

# --- recurrent layers ---------------------------------------------------------------------
B, C, H, T = 2, 5, 7, 9
for name, make in [
    ("rnn_tanh", lambda: co.RNN(C, H, num_layers=2, nonlinearity="tanh")),
    ("rnn_relu", lambda: co.RNN(C, H, num_layers=2, nonlinearity="relu")),
    ("gru", lambda: co.GRU(C, H, num_layers=2)),
    ("lstm", lambda: co.LSTM(C, H, num_layers=2)),
]:
    module = make().eval()
    x = torch.randn(B, C, T)
    with torch.no_grad():
        offline, _ = module.forward(x)
        steps = torch.stack([module.forward_step(x[:, :, t]) for t in range(T)], dim=2)
    assert torch.allclose(offline, steps, atol=1e-5), name
    for key, value in module.state_dict().items():
        put(f"{name}.{key}", value)
    put(f"{name}.input", x)
    put(f"{name}.output", offline)
    configs[name] = {"input_size": C, "hidden_size": H, "layers": 2}

# --- transformer encoders -----------------------------------------------------------------
ENCODERS = {
    # name: (d, heads, ff, layers, activation, norm_first, final_norm, N, T, q_scale)
    "deep3": (16, 4, 24, 3, "relu", False, False, 6, 11, 1.0),
    "deep4_gelu_prenorm": (12, 3, 20, 4, "gelu", True, True, 5, 9, 1.0),
    "single_scaled": (8, 2, 16, 1, "relu", False, False, 6, 14, 100.0),
    "two_scaled": (8, 2, 16, 2, "relu", False, False, 6, 14, 100.0),
}
for name, (d, heads, ff, layers, act, norm_first, final_norm, n, t_len, q_scale) in ENCODERS.items():
    layer = torch.nn.TransformerEncoderLayer(
        d, heads, ff, dropout=0.0, activation=act, batch_first=True, norm_first=norm_first
    )
    encoder = torch.nn.TransformerEncoder(
        layer, layers, norm=torch.nn.LayerNorm(d) if final_norm else None, enable_nested_tensor=False
    ).eval()
    with torch.no_grad():
        for p_name, p in encoder.named_parameters():
            if p_name.endswith("norm1.weight") or p_name.endswith("norm2.weight") or p_name == "norm.weight":
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif p.dim() == 1:
                p.copy_(0.2 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * 1.5 / math.sqrt(p.shape[1]))
        # Scale the query projections: logits grow by q_scale (the stability cases).
        for mod in encoder.layers:
            mod.self_attn.in_proj_weight[:d] *= q_scale
            mod.self_attn.in_proj_bias[:d] *= q_scale
        x = torch.randn(B, d, t_len)
        tokens = x.transpose(1, 2)
        windows = torch.stack([encoder(tokens[:, s : s + n]) for s in range(t_len - n + 1)], dim=1)
    assert torch.isfinite(windows).all(), name
    # windows: [B, W, N, d]
    put(f"enc_{name}.window", windows.permute(0, 3, 1, 2))
    put(f"enc_{name}.last", windows[:, :, -1].permute(0, 2, 1))
    put(f"enc_{name}.input", x)
    for key, value in encoder.state_dict().items():
        put(f"enc_{name}.{key}", value)
    configs[f"enc_{name}"] = {
        "d_model": d, "heads": heads, "dim_feedforward": ff, "layers": layers,
        "activation": act, "norm_first": norm_first, "final_norm": final_norm,
        "sequence_len": n, "q_scale": q_scale,
    }

OUT.parent.mkdir(parents=True, exist_ok=True)
save_file(tensors, str(OUT), metadata={
    "config": json.dumps(configs, sort_keys=True),
    "torch_version": torch.__version__,
    "continual_version": "1.2.4",
    "generator": "tools/reference/sequence_vectors.py",
})
print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(tensors)} tensors)")
