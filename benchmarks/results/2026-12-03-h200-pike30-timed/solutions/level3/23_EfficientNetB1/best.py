"""EfficientNet-B1 (simplified): 3x3 stem, seven single MBConv stages (always expanded, 3x3 depthwise, ReLU6, no residual),
1x1 conv to 1280, global pool, linear."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def _mbconv(in_channels, out_channels, stride, expand_ratio):
    # 1x1 expand -> 3x3 depthwise (strided) -> 1x1 project; BN after each, ReLU6 after the first two.
    hidden = round(in_channels * expand_ratio)
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, kernel_size=1, stride=1, padding=0, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU6(inplace=True),
        nn.Conv2d(hidden, hidden, kernel_size=3, stride=stride, padding=1, groups=hidden, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU6(inplace=True),
        nn.Conv2d(hidden, out_channels, kernel_size=1, stride=1, padding=0, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class Model(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.mbconv1 = _mbconv(32, 16, 1, 1)
        self.mbconv2 = _mbconv(16, 24, 2, 6)
        self.mbconv3 = _mbconv(24, 40, 2, 6)
        self.mbconv4 = _mbconv(40, 80, 2, 6)
        self.mbconv5 = _mbconv(80, 112, 1, 6)
        self.mbconv6 = _mbconv(112, 192, 2, 6)
        self.mbconv7 = _mbconv(192, 320, 1, 6)
        self.conv2 = nn.Conv2d(320, 1280, kernel_size=1, stride=1, padding=0, bias=False)
        self.bn2 = nn.BatchNorm2d(1280)
        self.fc = nn.Linear(1280, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for stage in (self.mbconv1, self.mbconv2, self.mbconv3, self.mbconv4,
                      self.mbconv5, self.mbconv6, self.mbconv7):
            x = stage(x)
        x = F.relu(self.bn2(self.conv2(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)
        return self.fc(x)


batch_size = 10
input_shape = (3, 240, 240)
num_classes = 1000

SMALL = {"batch_size": 2, "input_shape": (3, 64, 64)}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, *input_shape)]


def get_init_inputs():
    return [num_classes]


# ModelNew (pike offline rewrite): cudnn.benchmark + channels-last + bf16 autocast + torch.compile(default) + CUDA-graph capture
# precision: bf16 autocast (matmuls and convolutions in bf16, outputs cast back)
import torch as _pike_torch


def _pike_map(fn, value):
    """fn applied to every tensor of a (nested) output."""
    return _pike_torch.utils._pytree.tree_map(lambda t: fn(t) if isinstance(t, _pike_torch.Tensor) else t, value)


_PIKE_SYNC_CALLS = frozenset({
    "item", "tolist", "cpu", "numpy", "nonzero", "argwhere", "masked_select", "unique",
    "unique_consecutive", "bincount", "__bool__", "__int__", "__float__", "__index__",
})  # fmt: skip


def _pike_is_sync(func, args, kwargs):
    """Whether a torch call waits for the device or makes a shape out of tensor values."""
    name = getattr(func, "__name__", "")
    if name in _PIKE_SYNC_CALLS:
        return True
    if name == "where":  # torch.where(condition) is nonzero
        return len(args) + len(kwargs) == 1
    if name == "repeat_interleave":
        repeats = args[1] if len(args) > 1 else kwargs.get("repeats")
        return isinstance(repeats, _pike_torch.Tensor) and "output_size" not in kwargs
    if name in ("__getitem__", "__setitem__", "index_put", "index_put_"):
        index = args[1] if len(args) > 1 else None
        items = index if isinstance(index, (tuple, list)) else (index,)
        return any(isinstance(i, _pike_torch.Tensor) and i.dtype == _pike_torch.bool for i in items)
    if name == "to":
        return any(str(a) == "cpu" for a in list(args[1:]) + [kwargs.get("device")])
    return False


class _PikeSyncProbe(_pike_torch.overrides.TorchFunctionMode):
    """One forward of a model, recording for each module how many torch calls it makes
    and whether one of them syncs with the host (then no CUDA graph can hold it)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.stack, self.calls, self.syncing = [], {}, set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _pike_is_sync(func, args, kwargs):
            self.syncing.update(self.stack)
        for module in self.stack:
            self.calls[module] += 1
        return func(*args, **kwargs)

    def run(self, *inputs, **kwargs):
        handles = []
        for module in self.model.modules():
            handles.append(module.register_forward_pre_hook(self._enter))
            handles.append(module.register_forward_hook(self._leave, always_call=True))
        try:
            with self:
                return self.model(*inputs, **kwargs)
        finally:
            for handle in handles:
                handle.remove()

    def _enter(self, module, args):
        self.stack.append(id(module))
        self.calls.setdefault(id(module), 0)

    def _leave(self, module, args, output):
        self.stack.pop()


def _pike_capture_plan(model, probe, min_calls=4):
    """[(None, None, model)] when the whole forward is free of host syncs; else
    (parent, name, module) for the largest sub-modules free of them that make at least
    min_calls torch calls (smaller ones cost more to copy in and out than they save)."""
    if id(model) not in probe.syncing:
        return [(None, None, model)]
    return _pike_pieces(model, probe, min_calls)


def _pike_pieces(module, probe, min_calls):
    plan = []
    for name, child in module.named_children():
        calls = probe.calls.get(id(child))
        if calls is None or id(child) in probe.syncing:  # a container (ModuleList), or a module that syncs
            plan += _pike_pieces(child, probe, min_calls)
        elif calls >= min_calls:
            plan.append((module, name, child))
    return plan


class _PikeCapture(_pike_torch.nn.Module):
    """A module's forward replayed from a CUDA graph, one per input signature. A module
    that meets more than max_graphs signatures (an MoE expert, whose token count follows
    the routing) runs eagerly from then on: its shapes follow the data, and checking each
    call against its graphs would cost more than they save. Inputs are copied into static buffers,
    except tensors in the memory of the model's own parameters and buffers (a KV cache
    passed down to a layer), which the graph reads and writes in place; outputs are
    cloned. A module whose warm-up syncs with the host, or whose capture fails for any
    reason, runs eagerly from then on."""

    _pool = None  # one memory pool for every capture: outputs are cloned right away

    def __init__(self, module, fixed=(), max_graphs=4):
        super().__init__()
        self.module, self.fixed, self.max_graphs = module, frozenset(fixed), max_graphs
        self.graphs, self.eager = {}, False

    def __getattr__(self, name):  # the parent's forward may read the module's attributes (gate.weight)
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("module"), name)

    def forward(self, *args, **kwargs):
        if self.eager:
            return self.module(*args, **kwargs)
        flat, spec = _pike_torch.utils._pytree.tree_flatten((args, kwargs))
        if not any(isinstance(t, _pike_torch.Tensor) and t.is_cuda for t in flat):
            return self.module(*args, **kwargs)
        key = tuple(self._signature(t) for t in flat)
        if key not in self.graphs:
            if len(self.graphs) >= self.max_graphs:
                self.eager, self.graphs = True, {}  # shapes that follow the data: the graphs go too
                return self.module(*args, **kwargs)
            self.graphs[key] = self._capture(flat, spec)
        if self.graphs[key] is None:
            return self.module(*args, **kwargs)
        graph, static, out = self.graphs[key]
        for buffer, t in zip(static, flat):
            if isinstance(t, _pike_torch.Tensor) and buffer is not t:
                buffer.copy_(t)
        graph.replay()
        return _pike_torch.utils._pytree.tree_map(lambda t: t.clone() if isinstance(t, _pike_torch.Tensor) else t, out)

    def _is_fixed(self, t):
        return isinstance(t, _pike_torch.Tensor) and t.untyped_storage().data_ptr() in self.fixed

    def _signature(self, t):
        if not isinstance(t, _pike_torch.Tensor):
            return repr(t)
        where = t.data_ptr() if self._is_fixed(t) else None
        return tuple(t.shape), t.stride(), t.dtype, t.device, where

    def _capture(self, flat, spec):
        cuda = _pike_torch.cuda
        static = [t.clone() if isinstance(t, _pike_torch.Tensor) and not self._is_fixed(t) else t for t in flat]
        args, kwargs = _pike_torch.utils._pytree.tree_unflatten(static, spec)
        side = cuda.Stream()
        side.wait_stream(cuda.current_stream())
        mode = cuda.get_sync_debug_mode()
        try:
            with cuda.stream(side):
                cuda.set_sync_debug_mode("error")  # a host sync fails here, before any capture
                for _ in range(2):  # warm-up: compilation, autotuning and cuDNN's search happen here
                    self.module(*args, **kwargs)
                cuda.set_sync_debug_mode(mode)
            cuda.current_stream().wait_stream(side)
            if _PikeCapture._pool is None:
                _PikeCapture._pool = cuda.graph_pool_handle()
            graph = cuda.CUDAGraph()
            with cuda.graph(graph, pool=_PikeCapture._pool):
                out = self.module(*args, **kwargs)
        except Exception:
            cuda.set_sync_debug_mode(mode)
            cuda.current_stream().wait_stream(side)
            self.eager = True
            return None
        return graph, static, out


class _PikePiecewiseGraph(_pike_torch.nn.Module):
    """The whole forward in one CUDA graph where it is free of host syncs (compiled first
    if a compile mode is given); otherwise each of the largest sub-modules that are,
    captured on its own, eager, the rest eager too. The first call runs the model under
    the probe and decides (on any device: the plan is the same; only CUDA inputs are
    captured)."""

    def __init__(self, model, compile_mode=None):
        super().__init__()
        self.model, self.compile_mode, self.whole, self.pieces = model, compile_mode, None, None

    def forward(self, *inputs, **kwargs):
        if self.pieces is None:
            probe = _PikeSyncProbe(self.model)
            out = probe.run(*inputs, **kwargs)
            self._install(_pike_capture_plan(self.model, probe))
            return out
        return (self.whole or self.model)(*inputs, **kwargs)

    def _install(self, plan):
        fixed = {t.untyped_storage().data_ptr() for t in list(self.model.parameters()) + list(self.model.buffers())}
        self.pieces = []
        for parent, name, module in plan:
            if parent is None:
                compiled = _pike_torch.compile(module, mode=self.compile_mode) if self.compile_mode else module
                self.whole = _PikeCapture(compiled, fixed)
                self.pieces.append("")
            else:
                setattr(parent, name, _PikeCapture(module, fixed))
                self.pieces.append(next(n for n, m in self.model.named_modules() if m is getattr(parent, name)))


class _PikeFastest(_pike_torch.nn.Module):
    """Options that compute the same thing (the eager model, its capture); on the first
    CUDA call each is warmed up and timed with CUDA events, and the fastest is kept. So a
    capture that does not pay (a forward dominated by memory traffic) is dropped."""

    def __init__(self, *options, rounds=5):
        super().__init__()
        self.options, self.rounds, self.choice = _pike_torch.nn.ModuleList(options), rounds, None

    def forward(self, *inputs):
        if self.choice is None and any(isinstance(x, _pike_torch.Tensor) and x.is_cuda for x in inputs):
            self.choice = min(range(len(self.options)), key=lambda i: self._time(self.options[i], inputs))
        return self.options[self.choice or 0](*inputs)

    def _time(self, option, inputs):
        cuda = _pike_torch.cuda
        for _ in range(3):
            option(*inputs)
        start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
        start.record()
        for _ in range(self.rounds):
            option(*inputs)
        end.record()
        end.synchronize()
        return start.elapsed_time(end)


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
        return _pike_map(lambda t: t.to(dtype) if t.dtype == _pike_torch.bfloat16 else t, out)


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


class ModelNew(_pike_torch.nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        _pike_torch.backends.cudnn.benchmark = True
        model = Model(*args, **kwargs)
        model = _PikeBF16(model)
        model = _pike_torch.compile(model, mode='default')
        model = _PikeChannelsLast(model, _pike_torch.channels_last, 4)
        model = _PikeCUDAGraph(model)
        self.model = model

    def forward(self, *inputs):
        return self.model(*inputs)
