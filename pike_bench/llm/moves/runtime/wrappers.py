"""Wrappers around the built model that the offline moves paste into a candidate.

A candidate is one self-contained file (it cannot import pike_bench), so
:mod:`pike_bench.llm.moves.render` copies the sections it needs from this file, by
their ``# --- name ---`` headings, after the task's own source. Everything here uses
torch only, under the alias ``_pike_torch``, which the candidate imports once.
"""

import torch as _pike_torch

# --- map ---

def _pike_map(fn, value):
    """fn applied to every tensor of a (nested) output."""
    return _pike_torch.utils._pytree.tree_map(lambda t: fn(t) if isinstance(t, _pike_torch.Tensor) else t, value)


# --- fresh outputs ---
# inductor's CUDA graphs overwrite their outputs on the next call: each call returns a copy.

class _PikeFresh(_pike_torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *inputs):
        _pike_torch.compiler.cudagraph_mark_step_begin()
        return _pike_map(lambda t: t.clone(), self.model(*inputs))


# --- whole-forward capture ---
# One capture per input signature; inputs are copied into the static buffers before
# each replay and outputs cloned, so each call returns fresh memory.

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


# --- channels-last ---
# The model is converted once (its later move to the device keeps the layout); 4-d
# inputs (5-d for channels-last-3d) are converted on each call, and outputs made contiguous as the reference's are.
# A model whose first call fails in NHWC (a .view() that NHWC strides do not allow, as
# in x.view(-1, 400) after a convolution) goes back to NCHW for good. The wrapper sits
# outside torch.compile, so that this fallback is plain Python.

class _PikeChannelsLast(_pike_torch.nn.Module):
    def __init__(self, model, layout=_pike_torch.channels_last, dims=4):
        super().__init__()
        self.layout, self.dims = layout, dims
        self.model = model
        self._convert(layout)
        self.fits = None  # decided by the first call

    def _convert(self, layout):
        # Tensor by tensor: nn.Module.to(memory_format=) refuses a model whose weights are
        # not all of one rank (Conv2d and Conv3d together).
        for t in list(self.model.parameters()) + list(self.model.buffers()):
            if t.dim() == self.dims:
                t.data = t.data.contiguous(memory_format=layout)

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
                self._convert(_pike_torch.contiguous_format)
        return self.model(*inputs)

    def _channels_last(self, inputs):
        inputs = [
            x.contiguous(memory_format=self.layout) if isinstance(x, _pike_torch.Tensor) and x.dim() == self.dims else x
            for x in inputs
        ]
        return _pike_map(lambda t: t.contiguous(), self.model(*inputs))


# --- bf16 autocast ---
# Outputs autocast made in low precision go back to the model's dtype: most come out in
# bf16, some in float16 (cuDNN's LSTM on the GPU).

_PIKE_AUTOCAST_DTYPES = (_pike_torch.bfloat16, _pike_torch.float16)


class _PikeBF16(_pike_torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self._dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)

    def forward(self, *inputs):
        tensors = [x for x in inputs if isinstance(x, _pike_torch.Tensor)]
        floats = [x.dtype for x in tensors if x.is_floating_point()]
        dtype = self._dtype or (floats[0] if floats else _pike_torch.get_default_dtype())
        device = tensors[0].device.type if tensors else "cpu"
        with _pike_torch.autocast(device, dtype=_pike_torch.bfloat16):
            out = self.model(*inputs)
        return _pike_map(lambda t: t.to(dtype) if t.dtype in _PIKE_AUTOCAST_DTYPES and t.dtype != dtype else t, out)

