"""HunyuanVideo diffusion transformer (hidden 2048, 16 heads, 20 double + 40 single blocks), one pass.

Video latents are patch-embedded (Conv3d, patch 1x2x2); the text tokens go through a
token refiner (two adaLN-gated self-attention blocks conditioned on timestep + pooled
text); the modulation vector is timestep embedding + an MLP of the second text input.
Double-stream blocks keep separate weights for image and text tokens (adaLN shift/scale/
gate, QKV with RMS qk-norm, rotary embedding on image q/k, GELU(tanh) MLP) around one
joint attention over the concatenated sequence; single-stream blocks run on the
concatenated sequence with a fused QKV+MLP input projection and a fused output
projection. A modulated final layer and un-patchify give the output in the input's shape.

Joint attention follows the reference's variable-length semantics: per sample, the image
tokens and the first sum(text_mask) text tokens attend to each other, the remaining text
tokens only among themselves (with the all-ones mask of the inputs: full attention). bf16
parameters and inputs (the reference sets the default dtype to bf16 while building the
model, so its inputs are made in bf16 too); rotary tables are fp32. The plain PyTorch
attention path (no flash-attn).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPE = torch.bfloat16
FK = {"dtype": DTYPE}


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, **FK))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def modulate(x, shift, scale):
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def gated(x, gate):
    return x * gate.unsqueeze(1)


def timestep_embedding(t, dim, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def rotate_pairs(x):
    """(x0, x1) -> (-x1, x0) for adjacent channel pairs, in fp32."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    return torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(3)


def apply_rope(q, k, cos, sin):
    """q, k: (B, S, H, D); cos, sin: (S, D) fp32."""
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    q_out = (q.float() * cos + rotate_pairs(q) * sin).type_as(q)
    k_out = (k.float() * cos + rotate_pairs(k) * sin).type_as(k)
    return q_out, k_out


def attention(q, k, v, mask=None):
    """q, k, v: (B, S, H, D) -> (B, S, H * D)."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return out.transpose(1, 2).flatten(2)


def split_qkv(qkv, heads):
    b, s, _ = qkv.shape
    return qkv.view(b, s, 3, heads, -1).unbind(2)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, act):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, **FK)
        self.act = act
        self.fc2 = nn.Linear(hidden, dim, **FK)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class ModulateDiT(nn.Module):
    def __init__(self, hidden: int, factor: int):
        super().__init__()
        self.act = nn.SiLU()
        self.linear = nn.Linear(hidden, factor * hidden, **FK)

    def forward(self, x):
        return self.linear(self.act(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, **FK)
        nn.init.xavier_uniform_(self.proj.weight.view(self.proj.weight.size(0), -1))

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TextProjection(nn.Module):
    def __init__(self, in_channels: int, hidden: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, hidden, **FK)
        self.act_1 = nn.SiLU()
        self.linear_2 = nn.Linear(hidden, hidden, **FK)

    def forward(self, x):
        return self.linear_2(self.act_1(self.linear_1(x)))


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden, **FK), nn.SiLU(), nn.Linear(hidden, hidden, **FK))
        nn.init.normal_(self.mlp[0].weight, std=0.02)
        nn.init.normal_(self.mlp[2].weight, std=0.02)

    def forward(self, t):
        return self.mlp(timestep_embedding(t, self.freq_dim).to(self.mlp[0].weight.dtype))


class MLPEmbedder(nn.Module):
    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden, **FK)
        self.silu = nn.SiLU()
        self.out_layer = nn.Linear(hidden, hidden, **FK)

    def forward(self, x):
        return self.out_layer(self.silu(self.in_layer(x.to(self.in_layer.weight.dtype))))


class IndividualTokenRefinerBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden, eps=1e-6, **FK)
        self.self_attn_qkv = nn.Linear(hidden, 3 * hidden, **FK)
        self.self_attn_proj = nn.Linear(hidden, hidden, **FK)
        self.norm2 = nn.LayerNorm(hidden, eps=1e-6, **FK)
        self.mlp = MLP(hidden, int(hidden * mlp_ratio), nn.SiLU())
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden, **FK))

    def forward(self, x, c):
        gate_attn, gate_mlp = self.adaLN_modulation(c).chunk(2, dim=1)
        q, k, v = split_qkv(self.self_attn_qkv(self.norm1(x)), self.heads)
        x = x + gated(self.self_attn_proj(attention(q, k, v)), gate_attn)
        return x + gated(self.mlp(self.norm2(x)), gate_mlp)


class SingleTokenRefiner(nn.Module):
    def __init__(self, in_channels: int, hidden: int, heads: int, depth: int = 2):
        super().__init__()
        self.input_embedder = nn.Linear(in_channels, hidden, **FK)
        self.t_embedder = TimestepEmbedder(hidden)
        self.c_embedder = TextProjection(in_channels, hidden)
        self.blocks = nn.ModuleList(IndividualTokenRefinerBlock(hidden, heads) for _ in range(depth))

    def forward(self, x, t):
        c = self.t_embedder(t) + self.c_embedder(x.mean(dim=1))
        x = self.input_embedder(x)
        for block in self.blocks:
            x = block(x, c)
        return x


class MMDoubleStreamBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.heads = heads
        head_dim = hidden // heads
        mlp_hidden = int(hidden * mlp_ratio)
        for side in ("img", "txt"):
            setattr(self, f"{side}_mod", ModulateDiT(hidden, 6))
            setattr(self, f"{side}_norm1", nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6))
            setattr(self, f"{side}_attn_qkv", nn.Linear(hidden, 3 * hidden, **FK))
            setattr(self, f"{side}_attn_q_norm", RMSNorm(head_dim))
            setattr(self, f"{side}_attn_k_norm", RMSNorm(head_dim))
            setattr(self, f"{side}_attn_proj", nn.Linear(hidden, hidden, **FK))
            setattr(self, f"{side}_norm2", nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6))
            setattr(self, f"{side}_mlp", MLP(hidden, mlp_hidden, nn.GELU(approximate="tanh")))

    def _qkv(self, side, x, shift, scale):
        x = modulate(getattr(self, f"{side}_norm1")(x), shift, scale)
        q, k, v = split_qkv(getattr(self, f"{side}_attn_qkv")(x), self.heads)
        q = getattr(self, f"{side}_attn_q_norm")(q).to(v)
        k = getattr(self, f"{side}_attn_k_norm")(k).to(v)
        return q, k, v

    def _post(self, side, x, attn, gate1, shift2, scale2, gate2):
        x = x + gated(getattr(self, f"{side}_attn_proj")(attn), gate1)
        h = getattr(self, f"{side}_mlp")(modulate(getattr(self, f"{side}_norm2")(x), shift2, scale2))
        return x + gated(h, gate2)

    def forward(self, img, txt, vec, mask, cos, sin):
        i_shift1, i_scale1, i_gate1, i_shift2, i_scale2, i_gate2 = self.img_mod(vec).chunk(6, dim=-1)
        t_shift1, t_scale1, t_gate1, t_shift2, t_scale2, t_gate2 = self.txt_mod(vec).chunk(6, dim=-1)
        img_q, img_k, img_v = self._qkv("img", img, i_shift1, i_scale1)
        img_q, img_k = apply_rope(img_q, img_k, cos, sin)
        txt_q, txt_k, txt_v = self._qkv("txt", txt, t_shift1, t_scale1)
        attn = attention(torch.cat([img_q, txt_q], 1), torch.cat([img_k, txt_k], 1),
                         torch.cat([img_v, txt_v], 1), mask)
        n_img = img.shape[1]
        img = self._post("img", img, attn[:, :n_img], i_gate1, i_shift2, i_scale2, i_gate2)
        txt = self._post("txt", txt, attn[:, n_img:], t_gate1, t_shift2, t_scale2, t_gate2)
        return img, txt


class MMSingleStreamBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.hidden = hidden
        self.heads = heads
        self.mlp_hidden = int(hidden * mlp_ratio)
        head_dim = hidden // heads
        self.linear1 = nn.Linear(hidden, 3 * hidden + self.mlp_hidden, **FK)
        self.linear2 = nn.Linear(hidden + self.mlp_hidden, hidden, **FK)
        self.q_norm = RMSNorm(head_dim)
        self.k_norm = RMSNorm(head_dim)
        self.pre_norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp_act = nn.GELU(approximate="tanh")
        self.modulation = ModulateDiT(hidden, 3)

    def forward(self, x, vec, n_txt, mask, cos, sin):
        shift, scale, gate = self.modulation(vec).chunk(3, dim=-1)
        qkv, mlp = self.linear1(modulate(self.pre_norm(x), shift, scale)).split(
            [3 * self.hidden, self.mlp_hidden], dim=-1)
        q, k, v = split_qkv(qkv, self.heads)
        q = self.q_norm(q).to(v)
        k = self.k_norm(k).to(v)
        img_q, img_k = apply_rope(q[:, :-n_txt], k[:, :-n_txt], cos, sin)
        q = torch.cat([img_q, q[:, -n_txt:]], dim=1)
        k = torch.cat([img_k, k[:, -n_txt:]], dim=1)
        out = self.linear2(torch.cat([attention(q, k, v, mask), self.mlp_act(mlp)], dim=2))
        return x + gated(out, gate)


class FinalLayer(nn.Module):
    def __init__(self, hidden: int, patch_size, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, math.prod(patch_size) * out_channels, **FK)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden, **FK))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class Model(nn.Module):
    def __init__(self, in_channels: int = 16, hidden_size: int = 2048, heads_num: int = 16,
                 mm_double_blocks_depth: int = 20, mm_single_blocks_depth: int = 40,
                 text_states_dim: int = 1024, patch_size=(1, 2, 2), mlp_width_ratio: float = 4.0):
        super().__init__()
        self.patch_size = tuple(patch_size)
        self.out_channels = in_channels
        self.img_in = PatchEmbed(self.patch_size, in_channels, hidden_size)
        self.txt_in = SingleTokenRefiner(text_states_dim, hidden_size, heads_num, depth=2)
        self.time_in = TimestepEmbedder(hidden_size)
        self.vector_in = MLPEmbedder(text_states_dim, hidden_size)
        self.double_blocks = nn.ModuleList(
            MMDoubleStreamBlock(hidden_size, heads_num, mlp_width_ratio) for _ in range(mm_double_blocks_depth))
        self.single_blocks = nn.ModuleList(
            MMSingleStreamBlock(hidden_size, heads_num, mlp_width_ratio) for _ in range(mm_single_blocks_depth))
        self.final_layer = FinalLayer(hidden_size, self.patch_size, self.out_channels)

    def unpatchify(self, x, t, h, w):
        c = self.out_channels
        pt, ph, pw = self.patch_size
        x = x.reshape(x.shape[0], t, h, w, c, pt, ph, pw)
        x = torch.einsum("nthwcopq->nctohpwq", x)
        return x.reshape(x.shape[0], c, t * pt, h * ph, w * pw)

    def forward(self, x, t, text_states, text_mask, text_states_2, freqs_cos, freqs_sin):
        dt = self.img_in.proj.weight.dtype
        _, _, ot, oh, ow = x.shape
        tt, th, tw = ot // self.patch_size[0], oh // self.patch_size[1], ow // self.patch_size[2]

        vec = self.time_in(t) + self.vector_in(text_states_2)
        img = self.img_in(x.to(dt))
        txt = self.txt_in(text_states.to(dt), t)
        n_img, n_txt = img.shape[1], txt.shape[1]

        # Variable-length joint attention: the first n_img + sum(text_mask) tokens of each
        # sample form one segment, the rest another; attention stays within a segment.
        n_valid = n_img + text_mask.sum(dim=1).long()
        valid = torch.arange(n_img + n_txt, device=x.device)[None, :] < n_valid[:, None]
        mask = (valid[:, :, None] == valid[:, None, :]).unsqueeze(1)          # (B, 1, S, S)

        for block in self.double_blocks:
            img, txt = block(img, txt, vec, mask, freqs_cos, freqs_sin)
        seq = torch.cat([img, txt], dim=1)
        for block in self.single_blocks:
            seq = block(seq, vec, n_txt, mask, freqs_cos, freqs_sin)
        img = self.final_layer(seq[:, :n_img], vec)
        return self.unpatchify(img, tt, th, tw)


batch_size = 1
C = 3
c_block = 16
T = 3
hw_over_8 = 32
text_states_dim = 1024
text_length = 10
hidden_size = 2048
heads_num = 16
mm_double_blocks_depth = 20
mm_single_blocks_depth = 40

# 60 bf16 transformer blocks (20 double, 40 single) on one residual stream each: bf16
# rounding compounds with depth. On an H200 the same weights run in fp32 differed from
# this reference by 0.0055 on average and 0.030 at most on outputs up to 2.6
# (max |d| / (1 + |ref|) = 0.026). Two faithful bf16 implementations each carry noise of
# that size, so their gap can reach ~1.5-2x it; 1e-1 leaves that room while a wrong
# modulation, rotary table or attention mask changes outputs by O(1).
ATOL = 1e-1
RTOL = 1e-1

# 5.7 billion parameters: torch draws random CPU tensors on one thread (about 5 s per
# billion), so building this model on the CPU for the reference and each contestant took
# minutes of every evaluation on the H200 machine; its weights are drawn on the device.
BUILD_ON_DEVICE = True

SMALL = {
    "c_block": 4, "T": 2, "hw_over_8": 8, "text_states_dim": 32, "text_length": 4,
    "hidden_size": 64, "heads_num": 2, "mm_double_blocks_depth": 2, "mm_single_blocks_depth": 2,
}


def get_inputs():
    x = torch.randn(batch_size, c_block, T, hw_over_8, hw_over_8, dtype=DTYPE) * 10
    t = torch.full((batch_size,), 3.0, dtype=DTYPE)
    text_states = torch.randn(batch_size, text_length, text_states_dim, dtype=DTYPE)
    text_mask = torch.ones(batch_size, text_length, dtype=DTYPE)
    text_states_2 = torch.randn(batch_size, text_states_dim, dtype=DTYPE)
    # Rotary tables for the image tokens (T * (hw/2)^2 of them): 1-D positions, halves duplicated.
    n_img = T * (hw_over_8 // 2) * (hw_over_8 // 2)
    head_dim = hidden_size // heads_num
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.arange(n_img, dtype=torch.float32)[:, None] * inv_freq[None]
    angles = torch.cat([angles, angles], dim=-1)
    return [x, t, text_states, text_mask, text_states_2, torch.cos(angles), torch.sin(angles)]


def get_init_inputs():
    return [c_block, hidden_size, heads_num, mm_double_blocks_depth, mm_single_blocks_depth, text_states_dim]


# ModelNew (pike offline rewrite): torch.compile(default) + CUDA-graph capture
# precision: unchanged (the reference's dtypes and kernels' own orders)
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
        model = Model(*args, **kwargs)
        model = _pike_torch.compile(model, mode='default')
        model = _PikeCUDAGraph(model)
        self.model = model

    def forward(self, *inputs):
        return self.model(*inputs)
