"""RWKV-6 ("Finch") language model, one layer of d_model 1024, on 2 x 128 tokens, to logits.

Each block: LayerNorm -> time mix -> residual, LayerNorm -> channel mix -> residual (the
first block also normalises its input). Time mix interpolates each token with its
predecessor using data-dependent low-rank mixing, projects receptance/key/value/gate,
computes a data-dependent per-channel decay w, and runs the WKV-6 linear-attention
recurrence per head (state S <- diag(w_t) S + k_t^T v_t, output r_t (S + diag(u) k_t^T v_t)),
then GroupNorm per head, a SiLU gate and an output projection. Channel mix is a
token-shifted squared-ReLU MLP with a sigmoid receptance gate.

The WKV recurrence is the pure-PyTorch chunked form (the reference's fallback path, not
its CUDA or Triton kernels): within a chunk of up to 128 steps the decays are
re-centred at the chunk's middle and the intra-chunk products are taken in float64,
across chunks a state is carried. Everything else is fp32.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def shift_tokens(x: torch.Tensor) -> torch.Tensor:
    """x[:, t] -> x[:, t - 1], zeros at t = 0."""
    return F.pad(x, (0, 0, 1, -1))


def wkv6_chunked(r, k, v, w, u, chunk_len=128, wide=torch.float64):
    """WKV-6 over (B, H, L, K) inputs; w holds log-decays (w < 0). Returns (B, H, L, V)."""
    b, h, n, kd = k.shape
    vd = v.shape[-1]
    t = chunk_len
    if n % t != 0:
        if n % 2 != 0:
            t = 1
        else:
            while n % t != 0:
                t -= 2
    n_chunks = n // t
    dt = r.dtype

    def chunks(x):
        return x.reshape(b, h, n_chunks, t, x.shape[-1])

    r, k, v = chunks(r), chunks(k), chunks(v)
    log_w = chunks(w.exp().clamp(min=0.005).float().log())           # per-step log decay
    cum = log_w.cumsum(dim=-2)                                          # inclusive prefix sums
    cum_excl = F.pad(cum, (0, 0, 1, -1))                                # exclusive prefix sums
    total = log_w.sum(dim=-2, keepdim=True)

    chunk_decay = total.transpose(-1, -2).exp().to(dt)                 # (b, h, nc, K, 1)
    to_chunk_end = (total - cum).exp().to(dt)
    from_chunk_start = cum_excl.exp().to(dt)

    # Intra-chunk attention: decays relative to the chunk's middle step, in `wide` precision.
    mid = cum_excl[..., t // 2:t // 2 + 1, :]
    r_scaled = r * (cum_excl - mid).to(wide).exp()
    k_scaled = k * (mid - cum).to(wide).exp()
    att = (r_scaled @ k_scaled.transpose(-1, -2)).to(dt).tril(-1)
    bonus = (r * (u.to(dt)[None, :, None, None, :] * k)).sum(-1)       # current-token term
    att = att + torch.diag_embed(bonus)
    out = att @ v

    # Inter-chunk state carried from chunk to chunk.
    chunk_kv = (k * to_chunk_end).transpose(-1, -2) @ v                 # (b, h, nc, K, V)
    state = torch.zeros(b, h, kd, vd, device=r.device, dtype=dt)
    states = []
    for c in range(n_chunks):
        states.append(state)
        state = state * chunk_decay[:, :, c] + chunk_kv[:, :, c]
    states = torch.stack(states, dim=2)
    out = out + (r * from_chunk_start) @ states
    return out.reshape(b, h, n, vd)


class TimeMix(nn.Module):
    MIX_RANK = 32
    DECAY_RANK = 64
    HEAD_SIZE_DIVISOR = 8

    def __init__(self, d_model: int, d_head: int = 64):
        super().__init__()
        self.n_head = d_model // d_head
        d = d_model
        s = 0.1
        self.time_maa_x = nn.Parameter(torch.randn(1, 1, d) * s)
        self.time_maa_r = nn.Parameter(torch.randn(1, 1, d) * s)
        self.time_maa_w = nn.Parameter(torch.randn(1, 1, d) * s)
        self.time_maa_k = nn.Parameter(torch.randn(1, 1, d) * s)
        self.time_maa_v = nn.Parameter(torch.randn(1, 1, d) * s)
        self.time_maa_g = nn.Parameter(torch.randn(1, 1, d) * s)
        self.time_maa_w1 = nn.Parameter(torch.randn(d, self.MIX_RANK * 5) * s)
        self.time_maa_w2 = nn.Parameter(torch.randn(5, self.MIX_RANK, d) * s)
        self.time_decay_w1 = nn.Parameter(torch.randn(d, self.DECAY_RANK) * s)
        self.time_decay_w2 = nn.Parameter(torch.randn(self.DECAY_RANK, d) * s)
        self.time_decay = nn.Parameter(torch.randn(1, 1, d) * s)
        self.time_faaaa = nn.Parameter(torch.randn(self.n_head, d_head) * s)
        self.receptance = nn.Linear(d, d, bias=False)
        self.key = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d, bias=False)
        self.output = nn.Linear(d, d, bias=False)
        self.gate = nn.Linear(d, d, bias=False)
        self.ln_x = nn.GroupNorm(self.n_head, d, eps=1e-5 * self.HEAD_SIZE_DIVISOR ** 2)

    def forward(self, x):
        b, n, d = x.shape
        dx = shift_tokens(x) - x
        xxx = torch.tanh((x + dx * self.time_maa_x) @ self.time_maa_w1)          # (B, L, 5 * R)
        xxx = xxx.view(b * n, 5, self.MIX_RANK).transpose(0, 1)                   # (5, B*L, R)
        mw, mk, mv, mr, mg = torch.bmm(xxx, self.time_maa_w2).view(5, b, n, d).unbind(0)
        xw = x + dx * (self.time_maa_w + mw)
        xk = x + dx * (self.time_maa_k + mk)
        xv = x + dx * (self.time_maa_v + mv)
        xr = x + dx * (self.time_maa_r + mr)
        xg = x + dx * (self.time_maa_g + mg)

        r, k, v, g = self.receptance(xr), self.key(xk), self.value(xv), self.gate(xg)
        w = self.time_decay + torch.tanh(xw @ self.time_decay_w1) @ self.time_decay_w2
        w = -w.float().exp()                                                       # log-decay < 0

        def heads(t):
            return t.view(b, n, self.n_head, -1).transpose(1, 2)

        y = wkv6_chunked(heads(r), heads(k), heads(v), heads(w), self.time_faaaa)
        y = self.ln_x(y.transpose(1, 2).reshape(b * n, d)).view(b, n, d)
        return self.output(y * F.silu(g))


class ChannelMix(nn.Module):
    def __init__(self, d_model: int, expand: float = 3.5):
        super().__init__()
        d_ffn = int(d_model * expand)
        self.time_maa_k = nn.Parameter(torch.randn(1, 1, d_model) * 0.1)
        self.time_maa_r = nn.Parameter(torch.randn(1, 1, d_model) * 0.1)
        self.key = nn.Linear(d_model, d_ffn, bias=False)
        self.receptance = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_ffn, d_model, bias=False)

    def forward(self, x):
        dx = shift_tokens(x) - x
        xk = x + dx * self.time_maa_k
        xr = x + dx * self.time_maa_r
        return torch.sigmoid(self.receptance(xr)) * self.value(F.relu(self.key(xk)) ** 2)


class Block(nn.Module):
    def __init__(self, d_model: int, d_head: int, expand: float, layer_idx: int):
        super().__init__()
        self.ln0 = nn.LayerNorm(d_model) if layer_idx == 0 else None
        self.ln1 = nn.LayerNorm(d_model)
        self.att = TimeMix(d_model, d_head)
        self.ln2 = nn.LayerNorm(d_model)
        self.ffn = ChannelMix(d_model, expand)

    def forward(self, x):
        if self.ln0 is not None:
            x = self.ln0(x)
        x = x + self.att(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class Model(nn.Module):
    def __init__(self, d_model: int = 1024, n_layer: int = 1, vocab_size: int = 16384,
                 d_head: int = 64, expand: float = 3.5):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, d_model)
        with torch.no_grad():
            self.emb.weight.mul_(0.01)
        self.blocks = nn.ModuleList(Block(d_model, d_head, expand, i) for i in range(n_layer))
        self.ln_out = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.emb(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_out(x))


# The published file declares batch_size = 8 and seq_len = 1024 but feeds (2, 128)
# tokens; these constants hold the shape actually fed.
batch_size = 2
seq_len = 128
d_model = 1024
n_layer = 1
vocab_size = 16384

SMALL = {"batch_size": 2, "seq_len": 32, "d_model": 128, "n_layer": 2, "vocab_size": 256}


def get_inputs():
    return [torch.randint(0, vocab_size, (batch_size, seq_len))]


def get_init_inputs():
    return [d_model, n_layer, vocab_size]


# ModelNew (pike offline rewrite): TF32 + torch.compile(default) + CUDA-graph capture
# precision: TF32 for fp32 matmuls and convolutions (10-bit mantissa inputs, fp32 accumulation)
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
    """A module's forward replayed from a CUDA graph, one per input signature (at most
    max_graphs; other signatures run eagerly). Inputs are copied into static buffers,
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
        flat, spec = _pike_torch.utils._pytree.tree_flatten((args, kwargs))
        if self.eager or not any(isinstance(t, _pike_torch.Tensor) and t.is_cuda for t in flat):
            return self.module(*args, **kwargs)
        key = tuple(self._signature(t) for t in flat)
        if key not in self.graphs:
            if len(self.graphs) >= self.max_graphs:
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
        model = Model(*args, **kwargs)
        model = _pike_torch.compile(model, mode='default')
        model = _PikeCUDAGraph(model)
        self.model = model

    def forward(self, *inputs):
        return self.model(*inputs)
