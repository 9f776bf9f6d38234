"""Swin Transformer V2 (tiny config: patch 4, embed 96, depths 2/2/6/2, heads 3/6/12/24,
window 7). V2 specifics: scaled cosine attention with a learned, clamped logit scale;
continuous relative position bias from a small MLP over log-spaced coordinates
(16 * sigmoid); post-norm residual blocks; patch merging as Linear(4C, 2C) then
LayerNorm(2C). Shifted windows use torch.roll and a -100 attention mask.
Stochastic depth is the identity; dropout rates are 0."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def to_windows(x, ws):
    """(B, H, W, C) -> (B * H/ws * W/ws, ws, ws, C)"""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.contiguous().view(-1, ws, ws, c)


def from_windows(win, ws, h, w):
    """(B * H/ws * W/ws, ws, ws, C) -> (B, H, W, C)"""
    b = win.shape[0] // ((h // ws) * (w // ws))
    x = win.view(b, h // ws, w // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5)
    return x.contiguous().view(b, h, w, -1)


class Mlp(nn.Module):
    def __init__(self, dim, hidden, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class WindowAttention(nn.Module):
    def __init__(self, dim, window_size, num_heads, qkv_bias=True, attn_drop=0.0, proj_drop=0.0,
                 pretrained_window_size=0):
        super().__init__()
        self.window_size, self.num_heads = window_size, num_heads
        ws = window_size
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True),
                                     nn.Linear(512, num_heads, bias=False))
        # table of relative offsets in (-(ws-1) .. ws-1)^2, normalised and log-spaced
        r = torch.arange(-(ws - 1), ws, dtype=torch.float32)
        table = torch.stack(torch.meshgrid(r, r, indexing="ij"), dim=-1).unsqueeze(0)
        table = table / ((pretrained_window_size if pretrained_window_size > 0 else ws) - 1) * 8
        table = torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)
        self.register_buffer("relative_coords_table", table)
        # index of each (query, key) pair's offset in the flattened table
        c = torch.arange(ws)
        coords = torch.stack(torch.meshgrid(c, c, indexing="ij")).flatten(1)  # 2, ws*ws
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * ws - 1) + rel[..., 1])

        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x, mask=None):
        B_, N, C = x.shape
        nh = self.num_heads
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(B_, N, 3, nh, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        attn = attn * torch.clamp(self.logit_scale, max=math.log(1.0 / 0.01)).exp()
        bias_table = self.cpb_mlp(self.relative_coords_table).view(-1, nh)
        rpb = bias_table[self.relative_position_index.view(-1)].view(N, N, nh).permute(2, 0, 1)
        attn = attn + 16 * torch.sigmoid(rpb).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(B_ // nw, nw, nh, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, nh, N, N)
        attn = self.attn_drop(self.softmax(attn))
        x = (attn @ v).transpose(1, 2).reshape(B_, N, C)
        return self.proj_drop(self.proj(x))


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim, resolution, num_heads, window_size=7, shift_size=0, mlp_ratio=4.0,
                 qkv_bias=True, drop=0.0, attn_drop=0.0, pretrained_window_size=0):
        super().__init__()
        self.resolution = resolution
        if min(resolution) <= window_size:
            window_size, shift_size = min(resolution), 0
        assert 0 <= shift_size < window_size
        self.ws, self.shift = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias, attn_drop, drop,
                                    pretrained_window_size)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        mask = None
        if shift_size > 0:
            H, W = resolution
            region = torch.zeros(1, H, W, 1)
            cuts = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
            label = 0
            for hs in cuts:
                for wsl in cuts:
                    region[:, hs, wsl, :] = label
                    label += 1
            mw = to_windows(region, window_size).view(-1, window_size * window_size)
            diff = mw.unsqueeze(1) - mw.unsqueeze(2)
            mask = diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)
        self.register_buffer("attn_mask", mask)

    def forward(self, x):
        H, W = self.resolution
        B, L, C = x.shape
        ws, s = self.ws, self.shift
        shortcut = x
        x = x.view(B, H, W, C)
        if s > 0:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        win = self.attn(to_windows(x, ws).view(-1, ws * ws, C), mask=self.attn_mask)
        x = from_windows(win.view(-1, ws, ws, C), ws, H, W)
        if s > 0:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        x = shortcut + self.norm1(x.reshape(B, H * W, C))
        return x + self.norm2(self.mlp(x))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat -> Linear(4C, 2C) -> LayerNorm(2C)."""

    def __init__(self, resolution, dim):
        super().__init__()
        self.resolution = resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim)

    def forward(self, x):
        H, W = self.resolution
        B, L, C = x.shape
        x = x.view(B, H, W, C)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.norm(self.reduction(x.view(B, -1, 4 * C)))


class BasicLayer(nn.Module):
    def __init__(self, dim, resolution, depth, num_heads, window_size, mlp_ratio, qkv_bias, drop,
                 attn_drop, downsample, pretrained_window_size=0):
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, resolution, num_heads, window_size,
                                 0 if i % 2 == 0 else window_size // 2, mlp_ratio, qkv_bias,
                                 drop, attn_drop, pretrained_window_size)
            for i in range(depth)])
        self.downsample = PatchMerging(resolution, dim) if downsample else None

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, img_size=224, patch_size=4, in_chans=3, embed_dim=96):
        super().__init__()
        self.resolution = (img_size // patch_size, img_size // patch_size)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class Model(nn.Module):
    def __init__(self, img_size=224, patch_size=4, in_chans=3, num_classes=1000, embed_dim=96,
                 depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7, mlp_ratio=4.0,
                 qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0, pretrained_window_sizes=(0, 0, 0, 0)):
        super().__init__()
        n = len(depths)
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.pos_drop = nn.Dropout(drop_rate)
        r = self.patch_embed.resolution
        self.layers = nn.ModuleList([
            BasicLayer(embed_dim * 2 ** i, (r[0] // 2 ** i, r[1] // 2 ** i), depths[i], num_heads[i],
                       window_size, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate,
                       downsample=i < n - 1, pretrained_window_size=pretrained_window_sizes[i])
            for i in range(n)])
        num_features = embed_dim * 2 ** (n - 1)
        self.norm = nn.LayerNorm(num_features)
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(num_features, num_classes)

    def forward(self, x):
        x = self.pos_drop(self.patch_embed(x))
        for layer in self.layers:
            x = layer(x)
        x = self.avgpool(self.norm(x).transpose(1, 2)).flatten(1)
        return self.head(x)


batch_size = 10
image_size = 224  # the model is built for 224x224 (window 7 needs it), so SMALL keeps it

SMALL = {"batch_size": 1}
MARKS = ["pike"]


def get_inputs():
    return [torch.randn(batch_size, 3, image_size, image_size)]


def get_init_inputs():
    return []


# ModelNew (pike offline rewrite): TF32 + cudnn.benchmark + SDPA attention + channels-last + torch.compile(default) + CUDA-graph capture
# precision: TF32 for fp32 matmuls and convolutions (10-bit mantissa inputs, fp32 accumulation); fused attention kernel in the inputs' dtype (another summation order)
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


# minGPT's CausalSelfAttention (c_attn, c_proj, n_head, n_embd, a lower-triangular
# "bias" buffer) with SDPA in place of the explicit softmax(q @ k^T) @ v. A module is
# rewritten only if it has those parts and its new forward matches the old one on a
# probe input (drawn from a generator of its own: the weights' seed is left alone).

def _pike_sdpa_forward(self, x):
    B, T, C = x.size()
    q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
    q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
    y = _pike_torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    y = self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
    dropout = getattr(self, "resid_dropout", None)
    return dropout(y) if dropout is not None else y


def _pike_sdpa_fits(module):
    linear = _pike_torch.nn.Linear
    mask = getattr(module, "bias", None)
    return (
        isinstance(getattr(module, "c_attn", None), linear)
        and isinstance(getattr(module, "c_proj", None), linear)
        and isinstance(getattr(module, "n_head", None), int)
        and getattr(module, "n_embd", None) == module.c_attn.in_features
        and module.c_attn.out_features == 3 * module.n_embd
        and getattr(getattr(module, "attn_dropout", None), "p", 0.0) == 0.0
        and isinstance(mask, _pike_torch.Tensor) and mask.dim() == 4
        and bool((mask[0, 0] == _pike_torch.tril(_pike_torch.ones_like(mask[0, 0]))).all())
    )


_PIKE_SDPA_CLASSES = {}


def _pike_use_sdpa(model):
    """Rewrite the attention modules that fit; returns how many were rewritten."""
    rewritten = 0
    for module in list(model.modules()):
        if not _pike_sdpa_fits(module):
            continue
        old_class, training = type(module), module.training
        if old_class not in _PIKE_SDPA_CLASSES:
            _PIKE_SDPA_CLASSES[old_class] = type(old_class.__name__ + "SDPA", (old_class,), {"forward": _pike_sdpa_forward})
        new_class = _PIKE_SDPA_CLASSES[old_class]
        generator = _pike_torch.Generator().manual_seed(0)
        T = min(16, module.bias.size(-1))
        probe = _pike_torch.randn(2, T, module.n_embd, generator=generator).to(module.c_attn.weight)
        module.eval()
        with _pike_torch.no_grad():
            want = module(probe)
            module.__class__ = new_class
            same = _pike_torch.allclose(module(probe), want, atol=1e-4, rtol=1e-4)
        module.train(training)
        if same:
            rewritten += 1
        else:
            module.__class__ = old_class
    return rewritten


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
        _pike_torch.backends.cuda.matmul.allow_tf32 = True
        _pike_torch.backends.cudnn.allow_tf32 = True
        _pike_torch.backends.cudnn.benchmark = True
        model = Model(*args, **kwargs)
        _pike_use_sdpa(model)
        model = _pike_torch.compile(model, mode='default')
        model = _PikeChannelsLast(model, _pike_torch.channels_last, 4)
        model = _PikeCUDAGraph(model)
        self.model = model

    def forward(self, *inputs):
        return self.model(*inputs)
