"""Reference vectors for costream's CoAGCN and CoS-TR spatial units, from the
continual-skeletons source (https://github.com/LukasHedegaard/continual-skeletons).

Writes crates/continual/tests/data/skeleton_units.safetensors (tens of KB): for each case,
the unit's weights under `{case}.` with the repository's key names, an input `{case}.input`
[N, C, T, V] and `{case}.output`, the unit applied to each frame alone (T = 1 per call), as
CoAGCN and CoS-TR step it (`co.forward_stepping`).

* agcn_widen / agcn_same: `AdaptiveGraphConvolution` 6 → 8 channels (conv shortcut) and
  8 → 8 (identity shortcut);
* str_widen / str_same: `GcnUnitAttention` (S-TR's defaults: 8 heads, only attention,
  d_k = C_out / 4) 16 → 32 and 32 → 32 (skip connection).

The classes are read from a checkout of the repository (its modules import training
frameworks this script does not need): set CONTINUAL_SKELETONS to its path. Run with PyTorch
installed (never in CI):

    CONTINUAL_SKELETONS=/path/to/continual-skeletons python tools/reference/skeleton_units.py
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
OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/continual/tests/data/skeleton_units.safetensors"


def load_classes(path, names):
    """The named top-level classes of a source file, defined in a namespace of their imports."""
    tree = ast.parse((REPO / path).read_text())
    wanted = [node for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in names]
    namespace = {"torch": torch, "nn": nn, "np": np, "F": F, "math": math, "init_weights": lambda *a, **k: None}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


agcn = load_classes("models/a_gcn/a_gcn.py", {"AdaptiveGraphConvolution"})["AdaptiveGraphConvolution"]
str_ns = load_classes("models/s_tr/s_tr.py", {"SpatialAttention", "GcnUnitAttention", "conv_init"})
attention = str_ns["GcnUnitAttention"]

torch.manual_seed(29112026)
V, T, N = 7, 3, 2
adjacency = torch.rand(3, V, V).numpy() / V

tensors = {}


def randomise(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("A"):
                continue
            p.copy_(torch.randn_like(p) * (0.2 if p.dim() == 1 else 1.0 / math.sqrt(max(1, p[0].numel()))))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn_like(b))
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)


def case(name, module, c_in):
    module = module.eval()
    randomise(module)
    x = torch.randn(N, c_in, T, V)
    with torch.no_grad():
        out = torch.cat([module(x[:, :, t : t + 1]) for t in range(T)], dim=2)
    for key, value in module.state_dict().items():
        if value.dtype.is_floating_point:
            tensors[f"{name}.{key}"] = value.contiguous()
    tensors[f"{name}.input"] = x
    tensors[f"{name}.output"] = out


case("agcn_widen", agcn(6, 8, adjacency), 6)
case("agcn_same", agcn(8, 8, adjacency), 8)
case("str_widen", attention(16, 32, adjacency, num_point=V), 16)
case("str_same", attention(32, 32, adjacency, num_point=V), 32)

OUT.parent.mkdir(parents=True, exist_ok=True)
save_file(tensors, str(OUT), metadata={"generator": "tools/reference/skeleton_units.py", "torch_version": torch.__version__})
print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(tensors)} tensors)")
