"""DeepSeek-V3 multi-head latent attention (MLA), one prefill pass over a sequence.

Queries go through a low-rank bottleneck (q_lora_rank) with RMSNorm, keys and values
through a shared compressed latent (kv_lora_rank) plus a decoupled rotary part that is
shared by all heads. Rotary frequencies carry the YaRN correction and the softmax scale
the matching mscale term. Causal attention over the whole sequence, bf16 as the config's
dtype says.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelArgs:
    max_batch_size: int = 8
    max_seq_len: int = 4096 * 4
    dtype: str = "bf16"
    vocab_size: int = 102400
    dim: int = 2048
    inter_dim: int = 10944
    moe_inter_dim: int = 1408
    n_layers: int = 27
    n_dense_layers: int = 1
    n_heads: int = 16
    n_routed_experts: int = 64
    n_shared_experts: int = 2
    n_activated_experts: int = 6
    n_expert_groups: int = 1
    n_limited_groups: int = 1
    score_func: str = "softmax"
    route_scale: float = 1.0
    q_lora_rank: int = 1536
    kv_lora_rank: int = 512
    qk_nope_head_dim: int = 128
    qk_rope_head_dim: int = 64
    v_head_dim: int = 128
    original_seq_len: int = 4096
    rope_theta: float = 10000.0
    rope_factor: float = 40
    beta_fast: int = 32
    beta_slow: int = 1
    mscale: float = 1.0


def yarn_rope_table(args: ModelArgs) -> torch.Tensor:
    """Unit complex rotations, shape (max_seq_len, qk_rope_head_dim // 2), complex64."""
    dim = args.qk_rope_head_dim
    inv_freq = 1.0 / (args.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    if args.max_seq_len > args.original_seq_len:
        def boundary(rotations):
            return dim * math.log(args.original_seq_len / (rotations * 2 * math.pi)) / (2 * math.log(args.rope_theta))

        low = max(math.floor(boundary(args.beta_fast)), 0)
        high = min(math.ceil(boundary(args.beta_slow)), dim - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
        inv_freq = inv_freq / args.rope_factor * ramp + inv_freq * (1 - ramp)
    angles = torch.outer(torch.arange(args.max_seq_len, dtype=torch.float32), inv_freq)
    return torch.polar(torch.ones_like(angles), angles)


def rotate(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs of x (B, S, H, D) by freqs (S, D // 2), in fp32."""
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    out = torch.view_as_real(pairs * freqs.view(1, pairs.shape[1], 1, pairs.shape[-1]))
    return out.flatten(3).to(x.dtype)


class Model(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        dt = torch.bfloat16
        self.n_heads = args.n_heads
        self.nope_dim = args.qk_nope_head_dim
        self.rope_dim = args.qk_rope_head_dim
        self.v_dim = args.v_head_dim
        self.kv_rank = args.kv_lora_rank
        qk_dim = self.nope_dim + self.rope_dim
        self.wq_a = nn.Linear(args.dim, args.q_lora_rank, dtype=dt)
        self.q_norm = nn.RMSNorm(args.q_lora_rank, eps=1e-6, dtype=dt)
        self.wq_b = nn.Linear(args.q_lora_rank, args.n_heads * qk_dim, dtype=dt)
        self.wkv_a = nn.Linear(args.dim, args.kv_lora_rank + self.rope_dim, dtype=dt)
        self.kv_norm = nn.RMSNorm(args.kv_lora_rank, eps=1e-6, dtype=dt)
        self.wkv_b = nn.Linear(args.kv_lora_rank, args.n_heads * (self.nope_dim + self.v_dim), dtype=dt)
        self.wo = nn.Linear(args.n_heads * self.v_dim, args.dim, dtype=dt)
        scale = qk_dim ** -0.5
        if args.max_seq_len > args.original_seq_len:
            m = 0.1 * args.mscale * math.log(args.rope_factor) + 1.0
            scale = scale * m * m
        self.softmax_scale = scale

    def forward(self, x: torch.Tensor, start_pos: int, freqs_cis: torch.Tensor) -> torch.Tensor:
        # start_pos is part of the published signature; without a cache it only
        # selects freqs_cis, which the caller has already sliced.
        x = x.to(self.wq_a.weight.dtype)
        b, s, _ = x.shape
        q = self.wq_b(self.q_norm(self.wq_a(x))).view(b, s, self.n_heads, -1)
        q_nope, q_rope = q.split([self.nope_dim, self.rope_dim], dim=-1)
        q = torch.cat([q_nope, rotate(q_rope, freqs_cis)], dim=-1)

        latent, k_rope = self.wkv_a(x).split([self.kv_rank, self.rope_dim], dim=-1)
        k_rope = rotate(k_rope.unsqueeze(2), freqs_cis)
        kv = self.wkv_b(self.kv_norm(latent)).view(b, s, self.n_heads, -1)
        k_nope, v = kv.split([self.nope_dim, self.v_dim], dim=-1)
        k = torch.cat([k_nope, k_rope.expand(-1, -1, self.n_heads, -1)], dim=-1)

        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
            is_causal=True, scale=self.softmax_scale,
        )
        return self.wo(out.transpose(1, 2).reshape(b, s, -1))


batch_size = 8
seq_len = 1024
model_args = ModelArgs()

# bf16 MLA: two low-rank projections with RMSNorm, a 1024-key causal softmax, five
# bf16 GEMMs. On an H200 the same weights run in fp32 differed from this reference by
# at most 0.0053 on outputs up to 1.5 (max |d| / (1 + |ref|) = 0.0035). 2e-2 (the bf16
# default, twice the fp32 one) leaves ~6x room for a faithful reordering (flash
# attention, fused or fp32-accumulated projections).
ATOL = 2e-2
RTOL = 2e-2

SMALL = {
    "batch_size": 2,
    "seq_len": 16,
    "model_args": ModelArgs(
        max_seq_len=64, original_seq_len=32, dim=64, n_heads=4, q_lora_rank=48,
        kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
    ),
}


def get_inputs():
    freqs_cis = yarn_rope_table(model_args)
    x = torch.randn(batch_size, seq_len, model_args.dim, dtype=torch.bfloat16)
    return [x, 0, freqs_cis[:seq_len]]


def get_init_inputs():
    return [model_args]


# ModelNew (pike offline rewrite): bf16 autocast + torch.compile(default) + CUDA-graph capture
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
        model = Model(*args, **kwargs)
        model = _PikeBF16(model)
        model = _pike_torch.compile(model, mode='default')
        model = _PikeCUDAGraph(model)
        self.model = model

    def forward(self, *inputs):
        return self.model(*inputs)
