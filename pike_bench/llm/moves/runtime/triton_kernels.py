"""Triton kernels for activations and LayerNorm, pasted into a candidate by the
``triton-activation`` and ``triton-layernorm`` moves (see
:mod:`pike_bench.llm.moves.runtime.wrappers` for how). They run in Triton's interpreter
on the CPU (TRITON_INTERPRET=1, set by the evaluator's worker).
"""

import torch as _pike_torch

# --- triton ---

import triton
import triton.language as tl


# --- activations ---
# ReLU and GELU modules (nn.ReLU, nn.GELU, and a tanh- or erf-GELU module of the
# task's own, recognized on a probe) replaced in the built model by one Triton kernel
# each (a single pass where a hand-written GELU launches several).

_PIKE_RELU, _PIKE_GELU, _PIKE_GELU_TANH = 0, 1, 2


@triton.jit
def _pike_activation_kernel(x_ptr, out_ptr, n, ACT: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask).to(tl.float32)
    if ACT == 0:
        y = tl.where(x < 0.0, 0.0, x)  # NaN stays NaN, as in torch.relu
    elif ACT == 1:
        y = 0.5 * x * (1.0 + tl.erf(x * 0.7071067811865476))
    else:  # 0.5 * (1 + tanh(z)) == sigmoid(2z)
        y = x * tl.sigmoid(1.5957691216057308 * (x + 0.044715 * x * x * x))
    tl.store(out_ptr + offsets, y.to(out_ptr.dtype.element_ty), mask=mask)


class _PikeTritonActivation(_pike_torch.nn.Module):
    def __init__(self, act, original):
        super().__init__()
        self.act, self.inplace, self.original = act, bool(getattr(original, "inplace", False)), original

    def forward(self, x):
        floats = (_pike_torch.float32, _pike_torch.float16, _pike_torch.bfloat16)
        if x.dtype not in floats or not 0 < x.numel() < 2**31:
            return self.original(x)
        dense = x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=_pike_torch.channels_last))
        src = x if dense else x.contiguous()
        out = src if self.inplace and dense else _pike_torch.empty_like(src)
        n = src.numel()
        _pike_activation_kernel[(triton.cdiv(n, 1024),)](src, out, n, ACT=self.act, BLOCK=1024)
        if self.inplace and out is not x:
            return x.copy_(out)
        return out


def _pike_activation_of(module):
    nn = _pike_torch.nn
    if type(module) is nn.ReLU:
        return _PIKE_RELU
    if type(module) is nn.GELU:
        return _PIKE_GELU_TANH if module.approximate == "tanh" else _PIKE_GELU
    own = "gelu" in type(module).__name__.lower() and not list(module.children())
    if not own or list(module.parameters()) or list(module.buffers()):
        return None
    probe = _pike_torch.linspace(-8.0, 8.0, 513)
    try:
        with _pike_torch.no_grad():
            got = module(probe)
    except Exception:
        return None
    gelu = _pike_torch.nn.functional.gelu
    for act, want in ((_PIKE_GELU_TANH, gelu(probe, approximate="tanh")), (_PIKE_GELU, gelu(probe))):
        if isinstance(got, _pike_torch.Tensor) and got.shape == want.shape and _pike_torch.allclose(got, want, atol=1e-5):
            return act
    return None


def _pike_triton_activations(model):
    """Replace the activation submodules of the built model; returns how many."""
    swaps = []
    for parent in model.modules():
        for name, child in parent.named_children():
            act = _pike_activation_of(child)
            if act is not None:
                swaps.append((parent, name, _PikeTritonActivation(act, child)))
    for parent, name, new in swaps:
        setattr(parent, name, new)
    return len(swaps)


# --- LayerNorm ---
# LayerNorm modules over the last dimension replaced in the built model by one Triton
# kernel each: a program per row reads it once, computes mean and variance in fp32 and
# writes the normalized, scaled row. Eager LayerNorm is one kernel too, a general one;
# whether this one is faster is the evaluator's to say (not yet timed on a GPU).
# Anything the kernel does not cover (several normalized dims, a strided input, rows
# longer than one block) goes to the original module.

@triton.jit
def _pike_layer_norm_kernel(x_ptr, w_ptr, b_ptr, out_ptr, n, eps,
                            HAS_W: tl.constexpr, HAS_B: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n
    x = tl.load(x_ptr + row * n + cols, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / n
    centered = tl.where(mask, x - mean, 0.0)
    variance = tl.sum(centered * centered, axis=0) / n
    y = centered / tl.sqrt(variance + eps)
    if HAS_W:
        y = y * tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_B:
        y = y + tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * n + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


class _PikeTritonLayerNorm(_pike_torch.nn.Module):
    def __init__(self, original):
        super().__init__()
        self.original = original

    def forward(self, x):
        norm = self.original
        n = norm.normalized_shape[-1]
        floats = (_pike_torch.float32, _pike_torch.float16, _pike_torch.bfloat16)
        covered = (len(norm.normalized_shape) == 1 and x.dim() >= 1 and x.shape[-1] == n and n <= 65536
                   and x.dtype in floats and x.is_contiguous() and 0 < x.numel() < 2**31)
        if not covered:
            return norm(x)
        out = _pike_torch.empty_like(x)
        weight, bias = norm.weight, norm.bias
        _pike_layer_norm_kernel[(x.numel() // n,)](
            x, x if weight is None else weight, x if bias is None else bias, out, n, norm.eps,
            HAS_W=weight is not None, HAS_B=bias is not None, BLOCK=triton.next_power_of_2(n))
        return out


def _pike_triton_layer_norms(model):
    """Replace the LayerNorm submodules of the built model; returns how many."""
    swaps = [(parent, name, _PikeTritonLayerNorm(child))
             for parent in model.modules() for name, child in parent.named_children()
             if type(child) is _pike_torch.nn.LayerNorm]
    for parent, name, new in swaps:
        setattr(parent, name, new)
    return len(swaps)
