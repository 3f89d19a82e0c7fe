"""Per-step time of the reference CoST-GCN*, CoAGCN* and CoS-TR* (continual-skeletons on
continual-inference 1.2.4), for BENCHMARKS.md: NTU RGB+D 60 shapes (25 joints, 2 persons,
3 channels, 60 classes), batch 1, one thread, random weights, a warm state.

The ten blocks are built with the repository's own `CoSpatioTemporalBlock` (padding 0,
stride 1: the `*` forms that predict every frame), then the head its `CoModelBase` adds
(data_bn between two reshapes, spatial mean, temporal average pool, linear classifier).
The classes are read from a checkout of the repository (its modules import training
frameworks this script does not need): set CONTINUAL_SKELETONS to its path. Run with PyTorch
and continual-inference installed (never in CI):

    CONTINUAL_SKELETONS=/path/to/continual-skeletons python tools/reference/skeleton_timing.py
"""

import ast
import math
import os
import pathlib
import time
from collections import OrderedDict

import continual as co
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = pathlib.Path(os.environ["CONTINUAL_SKELETONS"])
torch.set_num_threads(1)
torch.manual_seed(0)

namespace = {
    "co": co, "torch": torch, "nn": nn, "np": np, "F": F, "math": math, "OrderedDict": OrderedDict,
    "init_weights": lambda *a, **k: None, "unity": lambda x: x, "zero": lambda x: 0,
}


def load(path, names):
    # continual-inference 1.2.4 reports a module's padding per dim (a tuple); the repository
    # was written against a version that gave the temporal padding as an int.
    source = (REPO / path).read_text().replace("tcn.padding", "tcn.padding[0]")
    tree = ast.parse(source)
    wanted = [n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name in names]
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(path), "exec"), namespace)


load("models/base.py", {"GraphConvolution", "CoGraphConvolution", "CoTemporalConvolution", "CoSpatioTemporalBlock"})
load("models/a_gcn/a_gcn.py", {"AdaptiveGraphConvolution"})
load("models/s_tr/s_tr.py", {"SpatialAttention", "GcnUnitAttention", "conv_init"})

C, V, S, T, CLASSES = 3, 25, 2, 300, 60
A = (np.random.rand(3, V, V) / V).astype(np.float32)
Block = namespace["CoSpatioTemporalBlock"]


def adaptive(c_in, c_out, A, bn_momentum=0.1):
    return co.forward_stepping(namespace["AdaptiveGraphConvolution"](c_in, c_out, A))


def attention(c_in, c_out, A, bn_momentum=0.1):
    return co.forward_stepping(namespace["GcnUnitAttention"](c_in, c_out, A, num_point=V))


def network(units):
    shapes = [(C, 64, False), (64, 64, True), (64, 64, True), (64, 64, True), (64, 128, True),
              (128, 128, True), (128, 128, True), (128, 256, True), (256, 256, True), (256, 256, True)]
    layers = co.Sequential(OrderedDict([
        (f"layer{i + 1}", Block(c_in, c_out, A, padding=0, residual=res, CoGraphConv=unit))
        for i, ((c_in, c_out, res), unit) in enumerate(zip(shapes, units))
    ]))
    pad = layers.padding[0] if isinstance(layers.padding, tuple) else layers.padding
    stride = layers.stride[0] if isinstance(layers.stride, tuple) else layers.stride
    pool_size = math.ceil((T - layers.receptive_field + 2 * pad + 1) / stride)
    return co.Sequential(OrderedDict([
        ("reshape1", co.Lambda(lambda x: x.permute(0, 3, 2, 1).contiguous().view(-1, S * V * C))),
        ("data_bn", nn.BatchNorm1d(S * C * V)),
        ("reshape2", co.Lambda(lambda x: x.view(-1, S, V, C).permute(0, 1, 3, 2).contiguous().view(-1, C, V))),
        ("layers", layers),
        ("spatial_pool", co.Lambda(lambda x: x.view(-1, S, 256, V).mean(3).mean(1))),
        ("pool", co.AvgPool1d(pool_size, stride=1)),
        ("fc", co.Linear(256, CLASSES, channel_dim=1)),
    ])).eval()


conv = namespace["CoGraphConvolution"]
for name, units in [
    ("CoST-GCN*", [conv] * 10),
    ("CoAGCN*", [adaptive] * 10),
    ("CoS-TR*", [conv] * 3 + [attention] * 7),
]:
    net = network(units)
    frames = torch.randn(64, 1, C, S, V)
    with torch.no_grad():
        for t in range(net.delay + 2):
            net.forward_step(frames[t % 64])
        times = []
        for t in range(40):
            start = time.perf_counter()
            net.forward_step(frames[t % 64])
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    print(f"{name}: step median {times[len(times) // 2]:.1f} ms (min {times[0]:.1f}, max {times[-1]:.1f}), delay {net.delay}")
