"""A ResNet basic block with a projection shortcut: conv3x3-BN-ReLU, conv3x3-BN, plus a
1x1-conv-BN projection of the input, then ReLU. The first conv and the projection carry
the stride."""

import torch
import torch.nn as nn


class Model(nn.Module):
    expansion = 1

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        # The projection is always present (in_channels != out_channels at these sizes).
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels * self.expansion, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels * self.expansion),
        )
        self.stride = stride

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.downsample(x)
        return self.relu(out)


in_channels = 3
out_channels = 64
stride = 1
batch_size = 10
num_classes = 1000  # unused by the block; kept from the reference's constants
height = 224
width = 224

SMALL = {"batch_size": 2, "height": 64, "width": 64}
MARKS = ["pike"]


def get_inputs():
    # (batch_size, in_channels, 224, 224) at full size.
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels, stride]


# ModelNew (pike offline rewrite): TF32 + cudnn.benchmark + channels-last + torch.compile(default) + CUDA-graph capture
import torch as _pike_torch


def _pike_map(fn, value):
    """fn applied to every tensor of a (nested) output."""
    return _pike_torch.utils._pytree.tree_map(lambda t: fn(t) if isinstance(t, _pike_torch.Tensor) else t, value)


class _PikeChannelsLast(_pike_torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model.to(memory_format=_pike_torch.channels_last)
        self.fits = None  # decided by the first call

    def forward(self, *inputs):
        if self.fits is not False:
            try:
                out = self._channels_last(inputs)
                self.fits = True
                return out
            except RuntimeError:
                if self.fits:
                    raise
                self.fits = False
                self.model.to(memory_format=_pike_torch.contiguous_format)
        return self.model(*inputs)

    def _channels_last(self, inputs):
        inputs = [
            x.contiguous(memory_format=_pike_torch.channels_last) if isinstance(x, _pike_torch.Tensor) and x.dim() == 4 else x
            for x in inputs
        ]
        return _pike_map(lambda t: t.contiguous(), self.model(*inputs))


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
        _pike_torch.backends.cuda.matmul.allow_tf32 = True
        _pike_torch.backends.cudnn.allow_tf32 = True
        _pike_torch.backends.cudnn.benchmark = True
        model = Model(*args, **kwargs)
        model = _pike_torch.compile(model, mode='default')
        model = _PikeChannelsLast(model)
        model = _PikeCUDAGraph(model)
        self.model = model

    def forward(self, *inputs):
        return self.model(*inputs)
