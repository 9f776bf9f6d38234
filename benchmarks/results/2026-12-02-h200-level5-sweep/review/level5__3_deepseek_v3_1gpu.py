"""DeepSeek-V3-style language model (10 layers), one prefill pass, logits of the last token.

Embedding, then blocks of [RMSNorm -> MLA attention] and [RMSNorm -> FFN] with residuals:
the first block's FFN is a dense SwiGLU MLP, the others are mixture-of-experts layers
(softmax gate, top-6 of 64 routed SwiGLU experts plus shared experts). MLA runs in the
weight-absorbed form: queries are mapped into the compressed key/value latent, which is
cached with the rotary keys, so attention reads the latent cache directly. Causal mask.
The bf16 GEMM path of the reference (no fp8 kernels); bf16 as the config says.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPE = torch.bfloat16


@dataclass
class ModelArgs:
    max_batch_size: int = 8
    max_seq_len: int = 4096 * 4
    dtype: str = "bf16"
    vocab_size: int = 32768
    dim: int = 2048
    inter_dim: int = 10944
    moe_inter_dim: int = 1408
    n_layers: int = 10
    n_dense_layers: int = 1
    n_heads: int = 16
    n_routed_experts: int = 64
    n_shared_experts: int = 2
    n_activated_experts: int = 6
    n_expert_groups: int = 1
    n_limited_groups: int = 1
    score_func: str = "softmax"
    route_scale: float = 1.0
    q_lora_rank: int = 0
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


class Linear(nn.Module):
    """Bias-free projection, weights N(0, 1/in_features), bf16."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features, dtype=DTYPE) * in_features ** -0.5)

    def forward(self, x):
        return F.linear(x, self.weight)


class RMSNorm(nn.RMSNorm):
    def __init__(self, dim: int):
        super().__init__(dim, eps=1e-6, dtype=DTYPE)


class MLA(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads = args.n_heads
        self.nope_dim = args.qk_nope_head_dim
        self.rope_dim = args.qk_rope_head_dim
        self.v_dim = args.v_head_dim
        self.kv_rank = args.kv_lora_rank
        self.q_rank = args.q_lora_rank
        qk_dim = self.nope_dim + self.rope_dim
        if self.q_rank == 0:
            self.wq = Linear(args.dim, args.n_heads * qk_dim)
        else:
            self.wq_a = Linear(args.dim, self.q_rank)
            self.q_norm = RMSNorm(self.q_rank)
            self.wq_b = Linear(self.q_rank, args.n_heads * qk_dim)
        self.wkv_a = Linear(args.dim, self.kv_rank + self.rope_dim)
        self.kv_norm = RMSNorm(self.kv_rank)
        self.wkv_b = Linear(self.kv_rank, args.n_heads * (self.nope_dim + self.v_dim))
        self.wo = Linear(args.n_heads * self.v_dim, args.dim)
        scale = qk_dim ** -0.5
        if args.max_seq_len > args.original_seq_len:
            m = 0.1 * args.mscale * math.log(args.rope_factor) + 1.0
            scale = scale * m * m
        self.softmax_scale = scale
        self.register_buffer("kv_cache", torch.zeros(args.max_batch_size, args.max_seq_len, self.kv_rank,
                                                     dtype=DTYPE), persistent=False)
        self.register_buffer("pe_cache", torch.zeros(args.max_batch_size, args.max_seq_len, self.rope_dim,
                                                     dtype=DTYPE), persistent=False)

    def forward(self, x, start_pos, freqs, mask):
        b, s, _ = x.shape
        end = start_pos + s
        q = self.wq(x) if self.q_rank == 0 else self.wq_b(self.q_norm(self.wq_a(x)))
        q_nope, q_rope = q.view(b, s, self.n_heads, -1).split([self.nope_dim, self.rope_dim], dim=-1)
        q_rope = rotate(q_rope, freqs)
        latent, k_rope = self.wkv_a(x).split([self.kv_rank, self.rope_dim], dim=-1)
        k_rope = rotate(k_rope.unsqueeze(2), freqs).squeeze(2)

        # Absorb the key half of wkv_b into the query, the value half into the output.
        wkv_b = self.wkv_b.weight.view(self.n_heads, -1, self.kv_rank)
        q_latent = torch.einsum("bshd,hdc->bshc", q_nope, wkv_b[:, :self.nope_dim])
        # Inference cache: store values, not autograd history.
        self.kv_cache[:b, start_pos:end] = self.kv_norm(latent).detach()
        self.pe_cache[:b, start_pos:end] = k_rope.detach()
        kv = self.kv_cache[:b, :end]
        pe = self.pe_cache[:b, :end]
        scores = (torch.einsum("bshc,btc->bsht", q_latent, kv)
                  + torch.einsum("bshr,btr->bsht", q_rope, pe)) * self.softmax_scale
        if mask is not None:
            scores = scores + mask.unsqueeze(1)
        probs = scores.softmax(dim=-1, dtype=torch.float32).type_as(x)
        out = torch.einsum("bsht,btc->bshc", probs, kv)
        out = torch.einsum("bshc,hdc->bshd", out, wkv_b[:, -self.v_dim:])
        return self.wo(out.flatten(2))


class MLP(nn.Module):
    """SwiGLU feed-forward: w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, inter_dim: int):
        super().__init__()
        self.w1 = Linear(dim, inter_dim)
        self.w2 = Linear(inter_dim, dim)
        self.w3 = Linear(dim, inter_dim)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Expert(MLP):
    pass


class Gate(nn.Module):
    """Router: scores all routed experts, keeps the top-k, weights them by their scores.

    Gate rows are N(0, 1/dim) like every other projection here (the published task draws
    them N(0, 1), which makes router logits of std ~45: a near one-hot softmax whose
    top-1/top-2 split then flips with any rounding of its input). Logits are computed in
    fp32 from the bf16 weights, as Hugging Face's DeepSeek-V3 router does, so the routing
    does not depend on a GEMM kernel's bf16 rounding.
    """

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.topk = args.n_activated_experts
        self.n_groups = args.n_expert_groups
        self.topk_groups = args.n_limited_groups
        self.score_func = args.score_func
        self.route_scale = args.route_scale
        self.weight = nn.Parameter(torch.randn(args.n_routed_experts, args.dim, dtype=DTYPE) * args.dim ** -0.5)

    def forward(self, x):
        scores = F.linear(x.float(), self.weight.float())
        if self.score_func == "softmax":
            scores = scores.softmax(dim=-1, dtype=torch.float32)
        else:
            scores = scores.sigmoid()
        original = scores
        if self.n_groups > 1:
            grouped = scores.view(x.size(0), self.n_groups, -1)
            best_groups = grouped.amax(dim=-1).topk(self.topk_groups, dim=-1)[1]
            keep = torch.zeros_like(grouped[..., 0]).scatter_(1, best_groups, 1.0)
            scores = (grouped * keep.unsqueeze(-1)).flatten(1)
        chosen = scores.topk(self.topk, dim=-1)[1]
        weights = original.gather(1, chosen)
        if self.score_func == "sigmoid":
            weights = weights / weights.sum(dim=-1, keepdim=True)
        weights = weights * self.route_scale
        return weights.type_as(x), chosen


class MoE(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.dim = args.dim
        self.n_routed_experts = args.n_routed_experts
        self.gate = Gate(args)
        self.experts = nn.ModuleList(Expert(args.dim, args.moe_inter_dim) for _ in range(args.n_routed_experts))
        self.shared_experts = MLP(args.dim, args.n_shared_experts * args.moe_inter_dim)

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, self.dim)
        weights, chosen = self.gate(x)
        y = torch.zeros_like(x)
        counts = torch.bincount(chosen.flatten(), minlength=self.n_routed_experts).tolist()
        for e, n in enumerate(counts):
            if n == 0:
                continue
            rows, slot = torch.where(chosen == e)
            y[rows] += self.experts[e](x[rows]) * weights[rows, slot, None]
        return (y + self.shared_experts(x)).view(shape)


class Block(nn.Module):
    def __init__(self, layer_id: int, args: ModelArgs):
        super().__init__()
        self.attn = MLA(args)
        self.ffn = MLP(args.dim, args.inter_dim) if layer_id < args.n_dense_layers else MoE(args)
        self.attn_norm = RMSNorm(args.dim)
        self.ffn_norm = RMSNorm(args.dim)

    def forward(self, x, start_pos, freqs, mask):
        x = x + self.attn(self.attn_norm(x), start_pos, freqs, mask)
        return x + self.ffn(self.ffn_norm(x))


class Model(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.embed = nn.Embedding(args.vocab_size, args.dim, dtype=DTYPE)
        self.layers = nn.ModuleList(Block(i, args) for i in range(args.n_layers))
        self.norm = RMSNorm(args.dim)
        self.head = Linear(args.dim, args.vocab_size)
        self.register_buffer("freqs_cis", yarn_rope_table(args), persistent=False)

    def forward(self, tokens: torch.Tensor, start_pos: int = 0) -> torch.Tensor:
        s = tokens.size(1)
        h = self.embed(tokens)
        freqs = self.freqs_cis[start_pos:start_pos + s]
        mask = None
        if s > 1:
            mask = torch.full((s, s), float("-inf"), device=tokens.device, dtype=h.dtype).triu_(1)
        for layer in self.layers:
            h = layer(h, start_pos, freqs, mask)
        return self.head(self.norm(h)[:, -1])


# The published file declares batch_size = 4 and seq_len = 512 but feeds (2, 128)
# tokens; these constants hold the shape actually fed.
batch_size = 2
seq_len = 128
model_args = ModelArgs()

# 10 bf16 layers: the residual stream is rounded to bf16 after each of 20 residual
# updates, and the logits inherit that noise. On an H200 the same weights run in fp32
# differed from this reference by 0.023 on average and 0.14 at most over the 2 x 32768
# logits (|logit| <= 4.7; max |d| / (1 + |ref|) = 0.10). Another faithful bf16 kernel
# choice carries its own noise of the same size, so the gap between two
# implementations can reach ~1.5x that; 2e-1 covers it, while a wrong mask, rotation
# or route moves the logits by O(1).
ATOL = 2e-1
RTOL = 2e-1

# 5.5 billion parameters: torch draws random CPU tensors on one thread (about 5 s per
# billion), so building this model on the CPU for the reference and each contestant took
# minutes of every evaluation on the H200 machine; its weights are drawn on the device.
BUILD_ON_DEVICE = True

SMALL = {
    "batch_size": 2,
    "seq_len": 8,
    "model_args": ModelArgs(
        max_batch_size=2, max_seq_len=32, original_seq_len=16, vocab_size=64, dim=32, inter_dim=64,
        moe_inter_dim=16, n_layers=2, n_heads=2, n_routed_experts=8, n_activated_experts=2,
        kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8,
    ),
}


def get_inputs():
    return [torch.randint(0, model_args.vocab_size, (batch_size, seq_len))]


def get_init_inputs():
    return [model_args]


# ModelNew (pike offline rewrite): sync-free MoE routing (grouped GEMM) + CUDA-graph capture of the sync-free parts
# precision: routed expert outputs summed per token in fp32, in another order; expert GEMMs in the experts' dtype
import torch as _pike_torch


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


class _PikeChecked(_pike_torch.nn.Module):
    """Instances of the task's classes switched to rewritten subclasses (a new method).
    The first call runs the model with the original classes, then with the rewritten
    ones, and keeps the rewrite only if the outputs agree (tolerance by dtype); an error
    in the rewrite also restores the originals. A torch.compile mode, if given, is
    applied after that check (the class switch is not something to trace)."""

    def __init__(self, model, rewrites, compile_mode=None):
        super().__init__()
        self.model, self.compile_mode = model, compile_mode
        self.swaps = [(m, type(m), rewrites[type(m)]) for m in model.modules() if type(m) in rewrites]
        self.checked = False

    def forward(self, *inputs):
        if not self.checked:
            self.checked = True
            return self._check(inputs)
        return self.model(*inputs)

    def _check(self, inputs):
        want = self.model(*inputs)
        self._switch(new=True)
        try:
            got = self.model(*inputs)
            with _pike_torch._C.DisableTorchFunction():  # the comparison is no part of the forward: probes skip it
                same = _pike_close_unsynced(got, want)
        except Exception:
            same = False
        if not same:
            self._switch(new=False)
        if self.compile_mode:
            self.model = _pike_torch.compile(self.model, mode=self.compile_mode)
        return want

    def _switch(self, new):
        for module, old_class, new_class in self.swaps:
            module.__class__ = new_class if new else old_class

    @property
    def kept(self):
        return bool(self.swaps) and all(type(m) is new for m, _, new in self.swaps)


def _pike_close_unsynced(got, want):
    """_pike_close, allowed to sync even inside a capture's warm-up (which forbids syncs)."""
    cuda = _pike_torch.cuda
    mode = cuda.get_sync_debug_mode() if cuda.is_available() else 0
    if mode:
        cuda.set_sync_debug_mode(0)
    try:
        return _pike_close(got, want)
    finally:
        if mode:
            cuda.set_sync_debug_mode(mode)


def _pike_close(got, want):
    flat_got = _pike_torch.utils._pytree.tree_leaves(got)
    flat_want = _pike_torch.utils._pytree.tree_leaves(want)
    if len(flat_got) != len(flat_want):
        return False
    for a, b in zip(flat_got, flat_want):
        if isinstance(b, _pike_torch.Tensor):
            if not isinstance(a, _pike_torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype:
                return False
            tol = 1e-3 if b.dtype == _pike_torch.float32 else 3e-2
            if b.is_floating_point() and not _pike_torch.allclose(a.float(), b.float(), rtol=tol, atol=tol):
                return False
            if not b.is_floating_point() and not _pike_torch.equal(a, b):
                return False
    return True


def _pike_and(keep, more):
    return more if keep is None else keep & more


def _pike_add(bias, more):
    return more if bias is None else bias + more


def _pike_attn_mask(keep, bias):
    """SDPA's attn_mask from a boolean keep-mask and an additive bias, either may be None."""
    if keep is None or bias is None:
        return keep if bias is None else bias
    return bias.masked_fill(~keep, float("-inf"))


class _PikeGroupedLinear(_pike_torch.nn.Module):
    """One linear layer of every expert at once, weights stacked (E, out, in). Tokens come
    sorted by expert, 2-D with the end offset of each expert's rows (torch._grouped_mm),
    or padded 3-D (E, capacity, in) for a batched matmul."""

    def __init__(self, weights, biases, route):
        super().__init__()
        self.weight = _pike_torch.nn.Parameter(_pike_torch.stack(weights).contiguous(), requires_grad=False)
        self.bias = None if biases[0] is None else _pike_torch.nn.Parameter(_pike_torch.stack(biases), requires_grad=False)
        self.route = route  # a dict the MoE forward fills in on each call

    def forward(self, x):
        offsets = self.route.get("offsets")
        if offsets is not None:
            y = _pike_torch._grouped_mm(x, self.weight.transpose(-2, -1), offs=offsets)
            return y if self.bias is None else y + self.bias[self.route["row_expert"]]
        y = _pike_torch.bmm(x, self.weight.transpose(-2, -1))
        return y if self.bias is None else y + self.bias[:, None, :]


def _pike_probe(*shape):
    """A fixed random probe, drawn on the CPU whatever the default device: a task that builds
    its model under `torch.device("cuda")` would otherwise refuse the CPU generator."""
    return _pike_torch.randn(*shape, generator=_pike_torch.Generator().manual_seed(0), device="cpu")


def _pike_linear_like(module):
    """(weight, bias) when the module computes F.linear(x, weight, bias) and has no other
    parameters (nn.Linear, or a task's own bias-free Linear); else None."""
    params = dict(module.named_parameters(recurse=True))
    weight, bias = params.get("weight"), params.get("bias")
    if weight is None or weight.dim() != 2 or set(params) - {"weight", "bias"}:
        return None
    probe = _pike_probe(3, weight.shape[1]).to(weight)
    try:
        with _pike_torch.no_grad():
            same = _pike_torch.allclose(module(probe), _pike_torch.nn.functional.linear(probe, weight, bias))
    except Exception:
        return None
    return (weight, bias) if same else None


def _pike_grouped_expert(experts, route):
    """A copy of experts[0] whose linear layers run every expert's weights (grouped), or
    None when the experts differ in structure or hold parameters outside linear layers."""
    import copy

    base = experts[0]
    if any(type(e) is not type(base) for e in experts):
        return None
    linears = {name: m for name, m in base.named_modules() if name and _pike_linear_like(m) is not None}
    covered = {f"{name}.{p}" for name, m in linears.items() for p, _ in m.named_parameters()}
    if not linears or covered != {name for name, _ in base.named_parameters()}:
        return None
    grouped = copy.deepcopy(base)
    for name in linears:
        pairs = [_pike_linear_like(e.get_submodule(name)) for e in experts]
        if any(p is None or p[0].shape != pairs[0][0].shape for p in pairs):
            return None
        parent_name, _, attr = name.rpartition(".")
        parent = grouped.get_submodule(parent_name) if parent_name else grouped
        setattr(parent, attr, _PikeGroupedLinear([p[0].detach() for p in pairs],
                                                 [None if p[1] is None else p[1].detach() for p in pairs], route))
    return grouped


def _pike_moe_forward(self, x):
    """Routed experts without host syncs: the gate's top-k choices are sorted by expert on
    the device, the tokens gathered in that order and every expert run at once, through
    torch._grouped_mm (bf16, where the installed torch has it) or a padded batched matmul;
    the weighted outputs are summed back per token in fp32, plus the shared experts."""
    grouped = self._pike_grouped
    route = grouped.route
    shape = x.shape
    x = x.reshape(-1, shape[-1]).to(grouped.dtype)
    weights, chosen = self.gate(x)
    tokens, k = chosen.shape
    n_experts = len(self.experts)
    flat = chosen.reshape(-1)
    order = flat.argsort(stable=True)
    expert = flat[order]
    rows = order // k
    counts = _pike_torch.zeros(n_experts, dtype=_pike_torch.long, device=x.device).scatter_add_(0, flat, _pike_torch.ones_like(flat))
    ends = counts.cumsum(0)
    out = None
    if route.get("grouped", hasattr(_pike_torch, "_grouped_mm")) and x.dtype == _pike_torch.bfloat16:
        route.update(offsets=ends.to(_pike_torch.int32), row_expert=expert)
        try:
            out = grouped.expert(x[rows])
        except RuntimeError:  # this torch's grouped GEMM does not take these shapes or this device
            route["grouped"] = False
    if out is None:  # padded: each expert's rows at its own slots 0..count-1, capacity `tokens`
        route.update(offsets=None)
        slot = _pike_torch.arange(flat.numel(), device=x.device) - (ends - counts)[expert]
        padded = x.new_zeros(n_experts, tokens, x.shape[-1])
        padded[expert, slot] = x[rows]
        out = grouped.expert(padded)[expert, slot]
    routed = out.float() * weights.reshape(-1)[order, None].float()
    y = _pike_torch.zeros(tokens, out.shape[-1], dtype=_pike_torch.float32, device=x.device).index_add_(0, rows, routed)
    shared = getattr(self, "shared_experts", None)
    if shared is not None:
        y = y + shared(x).float()
    return y.to(x.dtype).view(*shape[:-1], y.shape[-1])


class _PikeGroupedExperts(_pike_torch.nn.Module):
    def __init__(self, expert, dtype):
        super().__init__()
        self.expert, self.dtype = expert, dtype
        self.route = next(m.route for m in expert.modules() if isinstance(m, _PikeGroupedLinear))


_PIKE_MOE_CLASSES = {}


def _pike_route_experts(model):
    """Give each MoE module (a `gate` returning (weights, expert indices) per token and an
    `experts` ModuleList of alike experts made of linear layers) the sync-free forward,
    kept only where it matches the module's own forward on a probe; returns how many."""
    rewritten = 0
    for module in list(model.modules()):
        experts = getattr(module, "experts", None)
        if not isinstance(experts, _pike_torch.nn.ModuleList) or len(experts) < 2 or not callable(getattr(module, "gate", None)):
            continue
        route = {}
        expert = _pike_grouped_expert(experts, route)
        if expert is None:
            continue
        dtype = next(expert.parameters()).dtype
        old_class = type(module)
        if old_class not in _PIKE_MOE_CLASSES:
            _PIKE_MOE_CLASSES[old_class] = type(old_class.__name__ + "Grouped", (old_class,), {"forward": _pike_moe_forward})
        width = next(m for m in expert.modules() if isinstance(m, _PikeGroupedLinear)).weight.shape[-1]
        probe = _pike_probe(2, 4, width).to(device=next(expert.parameters()).device, dtype=dtype)
        with _pike_torch.no_grad():
            try:
                want = module(probe)
                module._pike_grouped = _PikeGroupedExperts(expert, dtype)
                module.__class__ = _PIKE_MOE_CLASSES[old_class]
                same = _pike_close(module(probe), want)
            except Exception:
                same = False
        if same:
            rewritten += 1
        else:
            module.__class__ = old_class
            module._pike_grouped = None
    return rewritten


class ModelNew(_pike_torch.nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        model = Model(*args, **kwargs)
        _pike_route_experts(model)
        model = _PikePiecewiseGraph(model, compile_mode=None)
        self.model = model

    def forward(self, *inputs):
        return self.model(*inputs)
