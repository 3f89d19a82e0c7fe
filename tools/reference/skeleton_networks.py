"""Reference vectors for costream's CoAGCN and CoS-TR networks, from the continual-skeletons
source (https://github.com/LukasHedegaard/continual-skeletons).

Writes crates/models/tests/data/skeleton_networks.safetensors: for `agcn` and `str`, a small
offline network built from the repository's own modules (`SpatioTemporalBlock`,
`GraphConvolution`, `TemporalConvolution`, `AdaptiveGraphConvolution`, `GcnUnitAttention`)
the way its `AGcn` / `STr` models assemble them, with its state_dict keys under `{net}.`, an
input `{net}.input` [N, C, T, V, M] and the logits `{net}.logits` [N, classes] of the models'
`forward` (data_bn, blocks, mean over frames, joints and persons, fc).

Blocks: 3→8, 8→8, 8→32 (stride 2), 32→32; NTU RGB+D's 25 joints, 2 persons, 5 classes,
64 frames. S-TR's attention (8 heads) is in the fourth block, as in the full network from
the fourth on. AGCN's adaptive graph is evaluated per frame, as CoAGCN steps it (the offline
AGCN's joint attention spans the whole clip, which no stream can wait for).

The classes are read from a checkout of the repository: set CONTINUAL_SKELETONS to its
path. Run with PyTorch installed (never in CI):

    CONTINUAL_SKELETONS=/path/to/continual-skeletons python tools/reference/skeleton_networks.py
"""

import ast
import math
import os
import pathlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

REPO = pathlib.Path(os.environ["CONTINUAL_SKELETONS"])
OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/models/tests/data/skeleton_networks.safetensors"

namespace = {
    "torch": torch, "nn": nn, "np": np, "F": F, "math": math,
    "init_weights": lambda *a, **k: None,
    "unity": lambda x: x, "zero": lambda x: 0,
}


def load(path, names):
    tree = ast.parse((REPO / path).read_text())
    wanted = [n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name in names]
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(path), "exec"), namespace)


load("models/base.py", {"GraphConvolution", "TemporalConvolution", "SpatioTemporalBlock"})
load("models/a_gcn/a_gcn.py", {"AdaptiveGraphConvolution"})
load("models/s_tr/s_tr.py", {"SpatialAttention", "GcnUnitAttention", "conv_init"})


class PerFrame(nn.Module):
    """The adaptive unit applied to each frame alone (CoAGCN's `co.forward_stepping`)."""

    def __init__(self, unit):
        super().__init__()
        self.unit = unit

    def forward(self, x):
        return torch.cat([self.unit(x[:, :, t : t + 1]) for t in range(x.shape[2])], dim=2)


def adaptive(c_in, c_out, A):
    return PerFrame(namespace["AdaptiveGraphConvolution"](c_in, c_out, A))


def attention(c_in, c_out, A):
    return namespace["GcnUnitAttention"](c_in, c_out, A, num_point=A.shape[-1])


class Network(nn.Module):
    """The models' AGcn / STr layout: data_bn, `layers.layerN` blocks, fc."""

    def __init__(self, units, A, C=3, V=25, M=2, classes=5):
        super().__init__()
        Block = namespace["SpatioTemporalBlock"]
        self.data_bn = nn.BatchNorm1d(M * C * V)
        shapes = [(C, 8, 1, False), (8, 8, 1, True), (8, 32, 2, True), (32, 32, 1, True)]
        self.layers = nn.ModuleDict({
            f"layer{i + 1}": Block(c_in, c_out, A, stride=stride, residual=residual, GraphConv=unit)
            for i, ((c_in, c_out, stride, residual), unit) in enumerate(zip(shapes, units))
        })
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        N, C, T, V, M = x.size()
        x = x.permute(0, 4, 3, 1, 2).contiguous().view(N, M * V * C, T)
        x = self.data_bn(x)
        x = x.view(N, M, V, C, T).permute(0, 1, 3, 4, 2).contiguous().view(N * M, C, T, V)
        for i in range(len(self.layers)):
            x = self.layers[f"layer{i + 1}"](x)
        x = x.view(N, M, x.size(1), -1).mean(3).mean(1)
        return self.fc(x)


def state_dict_without_wrappers(net):
    # PerFrame adds a `.unit` level the repository's CoAGCN does not have.
    return {k.replace(".gcn.unit.", ".gcn."): v for k, v in net.state_dict().items() if v.dtype.is_floating_point}


torch.manual_seed(20261129)
A = (torch.rand(3, 25, 25) / 25).numpy()
conv = namespace["GraphConvolution"]
tensors = {}
for name, units in [
    ("agcn", [adaptive] * 4),
    ("str", [conv, conv, conv, attention]),
]:
    net = Network(units, A).eval()
    with torch.no_grad():
        for key, p in net.named_parameters():
            if key.endswith(".A"):
                continue
            p.copy_(torch.randn_like(p) * (0.2 if p.dim() == 1 else 1.0 / math.sqrt(max(1, p[0].numel()))))
        for key, b in net.named_buffers():
            if key.endswith("running_mean"):
                b.copy_(0.2 * torch.randn_like(b))
            elif key.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)
        x = torch.randn(2, 3, 64, 25, 2)
        logits = net(x)
    for key, value in state_dict_without_wrappers(net).items():
        tensors[f"{name}.{key}"] = value.contiguous()
    tensors[f"{name}.input"] = x
    tensors[f"{name}.logits"] = logits

OUT.parent.mkdir(parents=True, exist_ok=True)
save_file(tensors, str(OUT), metadata={"generator": "tools/reference/skeleton_networks.py", "torch_version": torch.__version__})
print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(tensors)} tensors)")
