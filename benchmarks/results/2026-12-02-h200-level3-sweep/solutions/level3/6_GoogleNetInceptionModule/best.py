"""GoogLeNet Inception module: 1x1, 1x1->3x3, 1x1->5x5 and maxpool->1x1 branches concatenated on channels."""

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self, in_channels, out_1x1, reduce_3x3, out_3x3, reduce_5x5, out_5x5, pool_proj):
        super().__init__()
        self.branch1x1 = nn.Conv2d(in_channels, out_1x1, kernel_size=1)
        self.branch3x3 = nn.Sequential(
            nn.Conv2d(in_channels, reduce_3x3, kernel_size=1),
            nn.Conv2d(reduce_3x3, out_3x3, kernel_size=3, padding=1),
        )
        self.branch5x5 = nn.Sequential(
            nn.Conv2d(in_channels, reduce_5x5, kernel_size=1),
            nn.Conv2d(reduce_5x5, out_5x5, kernel_size=5, padding=2),
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            nn.Conv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x):
        branches = (self.branch1x1, self.branch3x3, self.branch5x5, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], dim=1)


in_channels = 480
out_1x1 = 192
reduce_3x3 = 96
out_3x3 = 208
reduce_5x5 = 16
out_5x5 = 48
pool_proj = 64
batch_size = 10
height = 224
width = 224

SMALL = {"batch_size": 2, "height": 32, "width": 32}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_1x1, reduce_3x3, out_3x3, reduce_5x5, out_5x5, pool_proj]


# ModelNew (pike offline rewrite): torch.compile(default) + CUDA-graph capture
import torch as _pike_torch


def _pike_map(fn, value):
    """fn applied to every tensor of a (nested) output."""
    return _pike_torch.utils._pytree.tree_map(lambda t: fn(t) if isinstance(t, _pike_torch.Tensor) else t, value)


class _PikeCUDAGraph(_pike_torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self._graphs = {}

    def forward(self, *inputs):
        if not any(isinstance(x, _pike_torch.Tensor) and x.is_cuda for x in inputs):
            return self.model(*inputs)
        key = tuple((tuple(x.shape), x.dtype, x.device) if isinstance(x, _pike_torch.Tensor) else repr(x) for x in inputs)
        if key not in self._graphs:
            self._graphs[key] = self._capture(inputs)
        graph, static, out = self._graphs[key]
        for buffer, x in zip(static, inputs):
            if isinstance(x, _pike_torch.Tensor):
                buffer.copy_(x)
        graph.replay()
        return _pike_map(lambda t: t.clone(), out)

    def _capture(self, inputs):
        static = [x.clone() if isinstance(x, _pike_torch.Tensor) else x for x in inputs]
        side = _pike_torch.cuda.Stream()
        side.wait_stream(_pike_torch.cuda.current_stream())
        with _pike_torch.cuda.stream(side):
            for _ in range(3):  # warm-up: compilation, autotuning and cuDNN's search happen here
                self.model(*static)
        _pike_torch.cuda.current_stream().wait_stream(side)
        graph = _pike_torch.cuda.CUDAGraph()
        with _pike_torch.cuda.graph(graph):
            out = self.model(*static)
        return graph, static, out


class ModelNew(_pike_torch.nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        model = Model(*args, **kwargs)
        model = _pike_torch.compile(model, mode='default')
        model = _PikeCUDAGraph(model)
        self.model = model

    def forward(self, *inputs):
        return self.model(*inputs)
