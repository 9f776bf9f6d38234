"""The offline proposer: real rewrites from a library of known-good moves, no LLM.

It is the embedded default when no API key is set. Each move is a small function
``(reference_source, parent_source | None, device) -> candidate source | None`` that
appends a ``ModelNew`` to the task's source, as :mod:`pike_bench.baselines` does;
``ModelNew`` builds the task's own ``Model`` (same seed, so the same weights) and
wraps it, or changes submodules of the built instance, never the source text.
``None`` means the move does not apply (no Conv2d for channels-last, a CUDA-only
move on the CPU).

- role ``optimizer``: the first applicable move of the task's plan (the best-known
  combination, the moves of :data:`MOVES`, the other combinations of :data:`COMBOS`)
  not yet given for the task; once all are given, the best-known combination again
  (a request is always answered);
- role ``iba``: a numbered list of the moves and combinations that apply to the task;
- role ``efa``: reads the evaluator's reason in the fix prompt and gives the first move
  not yet given that avoids its cause (a failed capture: a move that captures nothing;
  a failed compile: one that does not compile; outside the tolerance: no TF32/bf16),
  not a variant of the failed one; the parent unchanged when nothing is left.

:meth:`OfflineProposer.library_size` is the number of queries that reach every distinct
candidate; the optimizer caps an offline budget there.

The frontier moves (``moe-grouped``, ``decode-capture-if-faster``, ``sdpa-rewrite``,
``capture-pieces``, ``scan-chunked``, ``channels-last-3d``) paste runtime pieces from
:mod:`pike_bench.llm.offline_runtime` and method rewrites found by
:mod:`pike_bench.llm.offline_rewrites`; each says when it applies in its docstring.
Every candidate states its precision changes in a ``# precision:`` line.

The built-in moves rewrite the reference; the parent is passed so that a move may
build on it. Every reply is a short explanation and the candidate in one fenced ```python block,
so the strategy reads it through ``extract_code`` as it reads an LLM's; tokens and
dollars are 0.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import time
from dataclasses import dataclass, fields, replace
from typing import Callable, NamedTuple

from pike_bench.llm import offline_runtime
from pike_bench.llm.base import ROLES, ProposerError, Reply, Request
from pike_bench.llm.offline_rewrites import rewrite_attention, rewrite_classes, rewrite_scan

MoveFn = Callable[[str, "str | None", str], "str | None"]


# --- what a task's source contains (plain text tests: cheap, and a miss only costs a move) ---

_CONV2D = re.compile(r"\b(?:nn\.)?(?:Conv2d|ConvTranspose2d)\b|\bconv2d\(")
_CONV3D = re.compile(r"\b(?:nn\.)?(?:Conv3d|ConvTranspose3d)\b|\bconv3d\(")
_CONV_OR_RNN = re.compile(r"\b(?:nn\.)?(?:Conv[123]d|ConvTranspose[123]d|LSTM|GRU|RNN)\b|\bconv[123]d\(")
# A binary @ (an operand right before it: not a decorator), or a matrix product by name.
_MATMUL = re.compile(
    r"[\w)\]]\s*@\s*[\w(]|\b(?:matmul|mm|bmm|baddbmm|addmm|einsum|linear|conv[123]d)\(|"
    r"\bnn\.(?:Linear|Bilinear|Conv\w*|LSTM|GRU|RNN|MultiheadAttention|TransformerEncoderLayer)\b"
)
_SOFTMAX = re.compile(r"softmax\(|Softmax\(")  # a call, not the word in a docstring
# The scores q @ k^T: a product whose right operand is transposed on its last two dimensions, e.g.
# q @ k.transpose(-2, -1), torch.matmul(q, k.transpose(2, 3)), F.normalize(q) @ F.normalize(k).transpose(-2, -1)
_SCORES = re.compile(
    r"(?:@|\bmatmul\(|\bbmm\()[^\n]{0,80}\.(?:transpose\(\s*(?:-2\s*,\s*-1|-1\s*,\s*-2|2\s*,\s*3|3\s*,\s*2)\s*\)|mT\b)"
)
_ACTIVATION = re.compile(r"\bnn\.(?:ReLU|GELU)\(|^class\s+\w*gelu\w*\s*\(", re.IGNORECASE | re.MULTILINE)
_LAYER_NORM = re.compile(r"\bnn\.LayerNorm\(")
# What a CUDA graph cannot hold: a wait for the device, or a shape made of tensor values
# (one-argument torch.where is nonzero). Boolean-mask indexing has no textual mark: the
# runtime probe of the capture moves finds it.
_HOST_SYNC = re.compile(
    r"\.(?:item|tolist|cpu|numpy|nonzero)\(\s*\)|\b(?:nonzero|unique|masked_select|bincount|argwhere)\(|"
    r"\btorch\.where\(\s*[^,()]*(?:\([^()]*\))?[^,()]*\)"
)
_MOE = (re.compile(r"\bself\.experts\b"), re.compile(r"\bself\.gate\b"))
_KV_CACHE = re.compile(r"\bcache\w*\s*\[[^\]\n]*\]\s*=[^=]")  # a write into a slice of a cache


def _cuda(device: str) -> bool:
    return device.startswith("cuda")


def _has_triton() -> bool:
    return importlib.util.find_spec("triton") is not None


def _attention(source: str) -> bool:
    return bool(_SOFTMAX.search(source) and _SCORES.search(source))


def _channels_last_fits(source: str) -> bool:
    # nn.Module.to(memory_format=channels_last) refuses a model with 5-d (Conv3d) weights.
    return bool(_CONV2D.search(source)) and not _CONV3D.search(source)


def _activations(source: str) -> bool:
    return bool(_ACTIVATION.search(source)) and _has_triton()


def _layer_norms(source: str) -> bool:
    return bool(_LAYER_NORM.search(source)) and _has_triton()


def _host_syncs(source: str) -> bool:
    return bool(_HOST_SYNC.search(source))


def _experts(source: str) -> bool:
    return all(pattern.search(source) for pattern in _MOE)


def _kv_cache(source: str) -> bool:
    return bool(_KV_CACHE.search(source))


def _conv3d(source: str) -> bool:
    return bool(_CONV3D.search(source))


# Method rewrites found in the source: {class name: subclass source}, per kind.
_REWRITERS = {"sdpa": (rewrite_attention, "_PikeSDPA"), "scan": (rewrite_scan, "_PikeScan")}


def _rewrites(source: str, kind: str) -> dict[str, str]:
    rewrite, prefix = _REWRITERS[kind]
    return rewrite_classes(source, rewrite, prefix)


# --- a rewrite: which pieces ModelNew is made of, and its source ---


@dataclass(frozen=True)
class Recipe:
    tf32: bool = False  # TF32 matmuls and convolutions (set in ModelNew's constructor)
    cudnn_benchmark: bool = False  # cuDNN picks the fastest algorithm per shape
    sdpa: bool = False  # minGPT-style attention modules get a scaled_dot_product_attention forward
    triton: bool = False  # ReLU/GELU modules become one Triton kernel each
    triton_norm: bool = False  # LayerNorm modules become one Triton kernel each
    channels_last: bool = False  # NHWC weights and inputs
    channels_last_3d: bool = False  # NDHWC weights and inputs (Conv3d models)
    moe: bool = False  # MoE modules route tokens on the device and run experts as one grouped GEMM
    rewrites: tuple[str, ...] = ()  # method rewrites found in the source ("sdpa", "scan"), checked on the first call
    bf16: bool = False  # bf16 autocast, floating outputs cast back
    compile: str | None = None  # torch.compile mode
    graph: bool = False  # CUDA-graph capture of the whole forward (of its sync-free parts where it syncs)
    pieces: bool = False  # CUDA-graph capture of the largest sub-modules free of host syncs
    fastest: bool = False  # the whole forward captured, kept only if it times faster than without

    def describe(self) -> str:
        parts = {
            "tf32": "TF32", "cudnn_benchmark": "cudnn.benchmark", "sdpa": "SDPA attention",
            "triton": "Triton activations", "triton_norm": "Triton LayerNorm", "channels_last": "channels-last",
            "channels_last_3d": "channels-last-3d", "moe": "sync-free MoE routing (grouped GEMM)", "bf16": "bf16 autocast",
        }  # fmt: skip
        named = [parts[f.name] for f in fields(self) if f.name in parts and getattr(self, f.name)]
        named += [_REWRITE_NAMES[kind] for kind in self.rewrites]
        if self.compile:
            named.append(f"torch.compile({self.compile})")
        if self.graph:
            named.append("CUDA-graph capture")
        if self.pieces:
            named.append("CUDA-graph capture of the sync-free parts")
        if self.fastest:
            named.append("CUDA-graph capture if it times faster")
        return " + ".join(named) or "eager"

    def precision(self) -> str:
        """What the rewrite does to numerics, written into the candidate."""
        notes = []
        if self.tf32:
            notes.append("TF32 for fp32 matmuls and convolutions (10-bit mantissa inputs, fp32 accumulation)")
        if self.bf16:
            notes.append("bf16 autocast (matmuls and convolutions in bf16, outputs cast back)")
        if self.moe:
            notes.append("routed expert outputs summed per token in fp32, in another order; expert GEMMs in the experts' dtype")
        if "sdpa" in self.rewrites or self.sdpa:
            notes.append("fused attention kernel in the inputs' dtype (another summation order)")
        if "scan" in self.rewrites:
            notes.append("chunked scan: decay products from sums of logarithms in the scan's dtype")
        return "; ".join(notes) or "unchanged (the reference's dtypes and kernels' own orders)"


_REWRITE_NAMES = {"sdpa": "SDPA rewrite of the attention", "scan": "chunked linear scan"}


def _runtime(*sections: str) -> str:
    """Sections of offline_runtime's source (by their `# --- name ---` headings), in the order given."""
    text = inspect.getsource(offline_runtime)
    parts = {part.split(" ---", 1)[0]: part.split("\n", 1)[1] for part in text.split("\n# --- ")[1:]}
    return "".join("\n\n" + parts[name].strip("\n") + "\n" for name in sections)


def _needed_runtime(recipe: Recipe) -> list[str]:
    sections = []
    if recipe.pieces or recipe.fastest or recipe.graph:
        sections += ["host syncs", "CUDA-graph capture"]
    if recipe.rewrites or recipe.moe:
        sections.append("rewritten classes, checked on the first call")
    if recipe.moe:
        sections.append("mixture of experts")
    if "scan" in recipe.rewrites:
        sections.append("linear recurrences")
    return sections


def render(reference: str, recipe: Recipe) -> str:
    """The reference source with a ModelNew made of the recipe's pieces appended.

    Capture safety: a graph recipe for a source with host syncs (``_HOST_SYNC``) is
    rendered as the piecewise capture, which captures the whole forward only where a
    probe on the first call finds it free of them (an MoE rewrite may remove them)."""
    if recipe.graph and _host_syncs(reference):
        recipe = replace(recipe, graph=False, pieces=True)
    helpers = [_MAP] if recipe.channels_last or recipe.channels_last_3d or recipe.bf16 or recipe.compile == "reduce-overhead" or recipe.graph else []
    helpers += [_runtime(*_needed_runtime(recipe))] if _needed_runtime(recipe) else []
    init = []
    if recipe.tf32:
        init += [
            "_pike_torch.backends.cuda.matmul.allow_tf32 = True",
            "_pike_torch.backends.cudnn.allow_tf32 = True",
        ]
    if recipe.cudnn_benchmark:
        init.append("_pike_torch.backends.cudnn.benchmark = True")
    init.append("model = Model(*args, **kwargs)")
    if recipe.moe:
        init.append("_pike_route_experts(model)")
    compile_mode = recipe.compile
    pieces_compile = None
    if recipe.pieces:  # the probe runs the eager model; compile only where the whole forward is captured
        pieces_compile, compile_mode = compile_mode, None
    if recipe.rewrites:
        classes = {name: source for kind in recipe.rewrites for name, source in _rewrites(reference, kind).items()}
        helpers += ["\n\n" + source + "\n" for source in classes.values()]
        swaps = ", ".join(f"{name}: {source.split('(', 1)[0].split()[-1]}" for name, source in classes.items())
        init.append(f"model = _PikeChecked(model, {{{swaps}}}, compile_mode={compile_mode!r})")
        compile_mode = None  # applied by _PikeChecked after its check
    if recipe.sdpa:
        helpers.append(_SDPA)
        # Attention the rewrite does not recognize is left to inductor's pattern matcher.
        init.append("_pike_use_sdpa(model)" if recipe.compile else
                    "if not _pike_use_sdpa(model):\n    model = _pike_torch.compile(model)")  # fmt: skip
    if recipe.triton or recipe.triton_norm:
        helpers.append(_TRITON_IMPORT)
    if recipe.triton:
        helpers.append(_TRITON)
        init.append("_pike_triton_activations(model)")
    if recipe.triton_norm:
        helpers.append(_TRITON_NORM)
        init.append("_pike_triton_layer_norms(model)")
    if recipe.bf16:
        helpers.append(_BF16)
        init.append("model = _PikeBF16(model)")
    if compile_mode:
        init.append(f"model = _pike_torch.compile(model, mode={compile_mode!r})")
    if recipe.channels_last or recipe.channels_last_3d:
        helpers.append(_CHANNELS_LAST)
        layout = "_pike_torch.channels_last_3d, 5" if recipe.channels_last_3d else "_pike_torch.channels_last, 4"
        init.append(f"model = _PikeChannelsLast(model, {layout})")
    if recipe.compile == "reduce-overhead":
        assert not (recipe.graph or recipe.pieces or recipe.fastest), "inductor's CUDA graphs and a capture of our own do not nest"
        helpers.append(_FRESH)
        init.append("model = _PikeFresh(model)")
    if recipe.graph:
        helpers.append(_GRAPH)
        init.append("model = _PikeCUDAGraph(model)")
    if recipe.pieces:
        init.append(f"model = _PikePiecewiseGraph(model, compile_mode={pieces_compile!r})")
    if recipe.fastest:
        init.append("model = _PikeFastest(model, _PikeCapture(model))")
    init.append("self.model = model")
    body = "\n".join("        " + line for line in "\n".join(init).splitlines())
    return (
        reference.rstrip()
        + f"\n\n\n# ModelNew (pike offline rewrite): {recipe.describe()}\n"
        + f"# precision: {recipe.precision()}\n"
        + "import torch as _pike_torch\n"
        + "".join(helpers)
        + _MODEL_NEW.format(body=body)
    )


_MODEL_NEW = '''

class ModelNew(_pike_torch.nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
{body}

    def forward(self, *inputs):
        return self.model(*inputs)
'''

_MAP = '''

def _pike_map(fn, value):
    """fn applied to every tensor of a (nested) output."""
    return _pike_torch.utils._pytree.tree_map(lambda t: fn(t) if isinstance(t, _pike_torch.Tensor) else t, value)
'''

# inductor's CUDA graphs overwrite their outputs on the next call: each call returns a copy.
_FRESH = '''

class _PikeFresh(_pike_torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *inputs):
        _pike_torch.compiler.cudagraph_mark_step_begin()
        return _pike_map(lambda t: t.clone(), self.model(*inputs))
'''

# One capture per input signature; inputs are copied into the static buffers before
# each replay and outputs cloned, so each call returns fresh memory.
_GRAPH = '''

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
'''

# The model is converted once (its later move to the device keeps the layout); 4-d
# inputs (5-d for channels-last-3d) are converted on each call, and outputs made contiguous as the reference's are.
# A model whose first call fails in NHWC (a .view() that NHWC strides do not allow, as
# in x.view(-1, 400) after a convolution) goes back to NCHW for good. The wrapper sits
# outside torch.compile, so that this fallback is plain Python.
_CHANNELS_LAST = '''

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
'''

_BF16 = '''

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
'''

# minGPT's CausalSelfAttention (c_attn, c_proj, n_head, n_embd, a lower-triangular
# "bias" buffer) with SDPA in place of the explicit softmax(q @ k^T) @ v. A module is
# rewritten only if it has those parts and its new forward matches the old one on a
# probe input (drawn from a generator of its own: the weights' seed is left alone).
_SDPA = '''

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
'''

# ReLU and GELU modules (nn.ReLU, nn.GELU, and a tanh- or erf-GELU module of the
# task's own, recognized on a probe) replaced in the built model by one Triton kernel
# each (a single pass where a hand-written GELU launches several). It runs in Triton's
# interpreter on the CPU (TRITON_INTERPRET=1, set by the evaluator's worker).
_TRITON_IMPORT = '''

import triton
import triton.language as tl
'''

_TRITON = '''

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
'''


# LayerNorm modules over the last dimension replaced in the built model by one Triton
# kernel each: a program per row reads it once, computes mean and variance in fp32 and
# writes the normalized, scaled row. Eager LayerNorm is one kernel too, a general one;
# whether this one is faster is the evaluator's to say (not yet timed on a GPU).
# Anything the kernel does not cover (several normalized dims, a strided input, rows
# longer than one block) goes to the original module.
_TRITON_NORM = '''

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
'''


# --- the moves ---
# Each returns the candidate source, or None where it does not apply.


def compile_default(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(compile="default"))


def compile_max_autotune(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(compile="max-autotune"))


def compile_max_autotune_no_cudagraphs(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(compile="max-autotune-no-cudagraphs")) if _cuda(device) else None


def compile_reduce_overhead(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(compile="reduce-overhead")) if _cuda(device) else None


def cuda_graph(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(graph=True)) if _cuda(device) else None


def compile_cuda_graph(reference: str, parent: str | None, device: str) -> str | None:
    # Default mode: it builds in seconds, max-autotune-no-cudagraphs in minutes on a
    # convnet, and the move is early in the table, where a small budget still reaches it.
    return render(reference, Recipe(compile="default", graph=True)) if _cuda(device) else None


def tf32(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(tf32=True)) if _cuda(device) and _MATMUL.search(reference) else None


def bf16_autocast(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(bf16=True)) if _MATMUL.search(reference) else None


def channels_last(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(channels_last=True)) if _channels_last_fits(reference) else None


def cudnn_benchmark(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(cudnn_benchmark=True)) if _cuda(device) and _CONV_OR_RNN.search(reference) else None


def sdpa(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(sdpa=True)) if _attention(reference) else None


def triton_activation(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(triton=True)) if _activations(reference) else None


def triton_layer_norm(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(triton_norm=True)) if _layer_norms(reference) else None


# --- moves for frontier models ---


def capture_pieces(reference: str, parent: str | None, device: str) -> str | None:
    """Capture safety. Applies where the source syncs with the host (`.item()`,
    `.tolist()`, `nonzero`, one-argument `torch.where`, `.cpu()`, ...), which makes a
    capture of the whole forward fail. The first call runs the model under a probe (a
    TorchFunctionMode that also sees boolean-mask indexing) and captures each of the
    largest sub-modules that make no host sync, one graph per input signature; the
    rest runs eagerly. CUDA only."""
    return render(reference, Recipe(pieces=True)) if _cuda(device) and _host_syncs(reference) else None


def moe_grouped(reference: str, parent: str | None, device: str) -> str | None:
    """Mixture of experts. Applies to modules with a `gate` (returning routing weights and
    expert indices per token) and an `experts` ModuleList of alike experts made of linear
    layers. Their forward becomes: sort the token-expert pairs by expert on the device,
    gather the tokens, run all experts at once (torch._grouped_mm over stacked weights
    in bf16, else a padded batched matmul), sum the weighted outputs per token in fp32.
    No host sync, so the layer can be captured; kept only where it matches the module's
    own forward on a probe."""
    return render(reference, Recipe(moe=True)) if _experts(reference) else None


def sdpa_rewrite(reference: str, parent: str | None, device: str) -> str | None:
    """Attention written out (scores = q @ k^T / c, masks, softmax, @ v) in any of the
    task's classes becomes one scaled_dot_product_attention call: a fused kernel that
    never materializes the scores (for one query token, a decode path that reads the KV
    cache once, strided, instead of a copy for the matmul). Checked on the first call
    against the original forward."""
    return render(reference, Recipe(rewrites=("sdpa",))) if _rewrites(reference, "sdpa") else None


def decode_capture_if_faster(reference: str, parent: str | None, device: str) -> str | None:
    """Decode with a KV cache. Applies where the source writes into a slice of a cache.
    The eager forward (with the SDPA rewrite where the attention has the pattern) and its
    CUDA-graph capture are both timed on the first call and the faster is kept: the
    cache is a buffer, so its writes are static and the step can be captured, but a
    step dominated by reading the cache may gain nothing, and then eager stays. No
    torch.compile: it copies a mutated buffer whole. CUDA only."""
    if not (_cuda(device) and _kv_cache(reference)):
        return None
    return render(reference, Recipe(rewrites=("sdpa",) if _rewrites(reference, "sdpa") else (), fastest=True))


def scan_chunked(reference: str, parent: str | None, device: str) -> str | None:
    """State-space and recurrent scans. Applies to a loop `for t in range(n): h = a[:, t] *
    h + x[:, t]; hs.append(h)` stacked after (Mamba's selective scan written out; any
    elementwise linear recurrence in that form): it becomes a chunked scan, each chunk of
    16 steps one batched matmul with the decay matrix, a loop over chunks only for the
    carried state. Recurrences in other forms (RWKV's normalized state, S4's convolution
    kernel) are not matched."""
    return render(reference, Recipe(rewrites=("scan",))) if _rewrites(reference, "scan") else None


def channels_last_3d(reference: str, parent: str | None, device: str) -> str | None:
    """Convolutional VAEs (Conv3d): NDHWC weights and 5-d inputs, cuDNN's fast layout for
    3-d convolutions; a model whose first call fails in that layout goes back."""
    return render(reference, Recipe(channels_last_3d=True)) if _conv3d(reference) else None


class Move(NamedTuple):
    name: str
    fn: MoveFn
    cuda_only: bool
    why: str  # why it is known-good, and when it applies


# The move table, likely best first, except that the max-autotune moves come after the
# cheap ones: they autotune for minutes on a convnet, which a small budget cannot afford.
# The order of a task's moves is this order with the moves that do not apply left out.
MOVES: tuple[Move, ...] = (
    Move("sdpa", sdpa, False,
         "Fused attention (flash / memory-efficient) never materializes the T x T scores: the largest single "
         "win where a source writes softmax(q @ k^T) @ v out. minGPT-style modules are rewritten in place "
         "(checked against their own forward on a probe); other attention is left to torch.compile, whose "
         "pattern matcher turns it into SDPA. Applies when the source has that pattern."),
    Move("moe-grouped", moe_grouped, False,
         "MoE modules route tokens on the device (sorted by expert, no host sync) and run every expert as one "
         "grouped GEMM (torch._grouped_mm in bf16, else a padded batched matmul); checked on a probe."),
    Move("decode-capture-if-faster", decode_capture_if_faster, True,
         "decode with a KV cache: SDPA rewrite of the attention, and a CUDA-graph capture of the step kept only "
         "if it times faster than eager on the first call (no compile: it copies the mutated cache). CUDA only."),
    Move("sdpa-rewrite", sdpa_rewrite, False,
         "attention written out (q @ k^T, mask, softmax, @ v) in the task's classes becomes one "
         "scaled_dot_product_attention call; checked against the original forward on the first call."),
    Move("capture-pieces", capture_pieces, True,
         "capture safety for a forward with host syncs: a probe on the first call finds the largest sub-modules "
         "without them, each is captured in a CUDA graph, the rest stays eager. CUDA only."),
    Move("scan-chunked", scan_chunked, False,
         "a written-out linear recurrence (h = a_t * h + x_t over a loop) becomes a chunked scan: batched "
         "matmuls with the decay matrix per chunk of 16 steps, a short loop over chunks."),
    Move("channels-last-3d", channels_last_3d, False,
         "NDHWC weights and 5-d inputs for Conv3d models (convolutional VAEs): cuDNN's fast 3-d layout."),
    Move("compile-cuda-graph", compile_cuda_graph, True,
         "inductor's fused kernels (default mode) replayed from one CUDA graph capture of the whole forward: "
         "the two largest generic wins together (fusion, no launch overhead); the best combination without "
         "TF32, for tasks whose tolerance TF32 breaks. CUDA only."),
    Move("compile-reduce-overhead", compile_reduce_overhead, True,
         "torch.compile with inductor's own CUDA graphs; outputs are cloned, since the next replay overwrites "
         "them. CUDA only (on the CPU it is the default mode)."),
    Move("cuda-graph", cuda_graph, True,
         "the eager forward captured once in a CUDA graph and replayed: launch overhead gone, kernels "
         "unchanged, no compiler in the way (the README's graph column: 1.97x geomean). CUDA only."),
    Move("tf32", tf32, True,
         "TF32 tensor cores for fp32 matmuls and convolutions (several times the fp32 rate), set in ModelNew's "
         "constructor; its ~1e-3 relative error is inside the 1e-2 tolerance. CUDA only, models with matmuls."),
    Move("channels-last", channels_last, False,
         "NHWC weights and inputs: cuDNN's and oneDNN's fastest convolutions are channels-last; the output is "
         "made contiguous again, and a model whose first call fails in NHWC (a .view() after a convolution) "
         "goes back to NCHW. Models with Conv2d (and no Conv3d)."),
    Move("cudnn-benchmark", cudnn_benchmark, True,
         "torch.backends.cudnn.benchmark: cuDNN times its algorithms once per shape and keeps the fastest "
         "(the shapes of a task never change). CUDA only, models with convolutions or RNNs."),
    Move("triton-activation", triton_activation, False,
         "ReLU/GELU modules of the built model (nn.ReLU, nn.GELU, a tanh-GELU module of the task's own, "
         "recognized on a probe) as one Triton kernel each: one pass where a hand-written GELU takes several. "
         "Models with such modules; it runs in Triton's interpreter on the CPU."),
    Move("triton-layernorm", triton_layer_norm, False,
         "LayerNorm modules of the built model as one Triton kernel each (a program per row, statistics in "
         "fp32); what it does not cover goes to the original module. Models with nn.LayerNorm; it runs in "
         "Triton's interpreter on the CPU."),
    Move("compile-max-autotune", compile_max_autotune, False,
         "torch.compile, max-autotune: inductor's fusion plus a benchmarked choice of GEMM/conv kernels."),
    Move("compile-max-autotune-no-cudagraphs", compile_max_autotune_no_cudagraphs, True,
         "max-autotune without inductor's CUDA graphs, for models whose graphs break or that graphs slow "
         "down. CUDA only (on the CPU it is max-autotune)."),
    Move("compile", compile_default, False,
         "torch.compile, default mode: inductor fuses elementwise chains and reductions; the safest compile."),
    Move("bf16-autocast", bf16_autocast, False,
         "bf16 autocast around the forward (bf16 tensor cores), floating outputs cast back to the model's "
         "dtype. Only a candidate: the evaluator's tolerance decides. Models with matmuls or convolutions."),
)  # fmt: skip


# --- the combinations, after the moves: the task's own moves (SDPA, channels-last,
# cudnn.benchmark) join the generic ones wherever they apply ---


def _task_specific(reference: str, device: str) -> dict:
    return {
        "sdpa": _attention(reference),
        "channels_last": _channels_last_fits(reference),
        "channels_last_3d": _conv3d(reference),
        "cudnn_benchmark": _cuda(device) and bool(_CONV_OR_RNN.search(reference)),
        "moe": _experts(reference),
    }


def _combo(recipe: Recipe, cuda_only: bool, needs: Callable[[str], bool] | None = None) -> MoveFn:
    def move(reference: str, parent: str | None, device: str) -> str | None:
        if (cuda_only and not _cuda(device)) or (needs is not None and not needs(reference)):
            return None
        # The SDPA rewrite joins every combination where the task's attention has its pattern.
        rewrites = tuple(kind for kind in dict.fromkeys(recipe.rewrites + ("sdpa",)) if _rewrites(reference, kind))
        return render(reference, replace(recipe, **_task_specific(reference, device), rewrites=rewrites))

    return move


def _matmul(source: str) -> bool:
    return bool(_MATMUL.search(source))


def _scan(source: str) -> bool:
    return bool(_rewrites(source, "scan"))


# Default-mode compile: it builds in seconds where max-autotune takes minutes on a
# convnet, which matters most for the first candidate of a small budget.
_GRAPHED = Recipe(compile="default", graph=True)

# Best first; the first that applies is the best-known combination: it is also the
# first candidate of every task (exploit first), and given again once everything is
# spent. A combination that comes out the same as an earlier move (nothing
# task-specific to add) is skipped.
COMBOS: tuple[Move, ...] = (
    Move("moe-grouped+cuda-graph", _combo(Recipe(moe=True, graph=True), True, _experts), True,
         "sync-free MoE routing with grouped expert GEMMs, the eager forward captured whole in a CUDA graph "
         "(the routing no longer syncs with the host), plus the task's own moves."),
    Move("tf32+decode-capture-if-faster", _combo(Recipe(tf32=True, fastest=True), True, _kv_cache), True,
         "decode with a KV cache: TF32, SDPA rewrite of the attention, capture of the step kept if faster."),
    Move("tf32+compile-cuda-graph", _combo(replace(_GRAPHED, tf32=True), True), True,
         "TF32 + compile (default mode) + CUDA-graph capture, with SDPA / channels-last / "
         "cudnn.benchmark where the task has attention / convolutions."),
    Move("tf32+compile-reduce-overhead", _combo(Recipe(tf32=True, compile="reduce-overhead"), True), True,
         "TF32 + compile with inductor's CUDA graphs, plus the task's own moves."),
    Move("tf32+compile-max-autotune", _combo(Recipe(tf32=True, compile="max-autotune"), True), True,
         "TF32 + compile(max-autotune), plus the task's own moves."),
    Move("tf32+triton-activation+cuda-graph", _combo(Recipe(tf32=True, triton=True, graph=True), True, _activations), True,
         "TF32 + Triton activations in the eager model, captured in a CUDA graph, plus the task's own moves."),
    Move("compile-max-autotune+task-moves", _combo(Recipe(compile="max-autotune"), False), False,
         "compile(max-autotune) on top of SDPA / channels-last where the task has attention / convolutions."),
    Move("bf16+compile-cuda-graph", _combo(replace(_GRAPHED, bf16=True), True, _matmul), True,
         "bf16 autocast + compile + CUDA-graph capture, plus the task's own moves (the tolerance decides)."),
    Move("moe-grouped+compile-cuda-graph", _combo(replace(_GRAPHED, moe=True), True, _experts), True,
         "sync-free MoE routing + compile (default mode) + CUDA-graph capture, plus the task's own moves."),
    Move("tf32+scan-chunked+compile-cuda-graph", _combo(replace(_GRAPHED, tf32=True, rewrites=("scan",)), True, _scan), True,
         "chunked linear scan + TF32 + compile (default mode) + CUDA-graph capture, plus the task's own moves."),
    Move("tf32+scan-chunked+cuda-graph", _combo(Recipe(tf32=True, rewrites=("scan",), graph=True), True, _scan), True,
         "chunked linear scan + TF32, the eager forward captured in a CUDA graph, plus the task's own moves."),
    Move("tf32+capture-pieces", _combo(Recipe(tf32=True, pieces=True), True, _host_syncs), True,
         "TF32 + CUDA-graph capture of the sync-free sub-modules, plus the task's own moves."),
    Move("bf16+compile-max-autotune", _combo(Recipe(bf16=True, compile="max-autotune"), False, _matmul), False,
         "bf16 autocast + compile(max-autotune), plus the task's own moves (the tolerance decides)."),
)  # fmt: skip


class Step(NamedTuple):
    name: str
    why: str
    source: str


def plan(reference: str, parent: str | None, device: str) -> tuple[list[Step], Step]:
    """A task's steps (the best-known combination, then the moves, then the other
    combinations) and the best-known combination."""
    steps: list[Step] = []
    best: Step | None = None
    for move, combination in [(m, False) for m in MOVES] + [(m, True) for m in COMBOS]:
        source = move.fn(reference, parent, device)
        if source is None:
            continue
        step = Step(move.name, move.why, source)
        if combination and best is None:
            best = step
        if all(source != earlier.source for earlier in steps):
            steps.append(step)
    if best is None:
        return steps, steps[0]
    return [best] + [step for step in steps if step.source != best.source], best


# --- the proposer ---


# The EFA reads why a candidate failed and leaves out the moves that share its cause:
# (a pattern of the evaluator's reason, the marks of the sources that would fail alike).
_CAPTURE_MARKS = ("_PikeCUDAGraph(model)", "reduce-overhead", "_PikePiecewiseGraph(", "_PikeCapture(")
_FAILURES: tuple[tuple[re.Pattern, str, tuple[str, ...]], ...] = (
    (re.compile(r"CUDA ?graph|captur|cudaStreamCapture|cudaErrorStreamCapture", re.IGNORECASE),
     "a CUDA-graph capture failed: the next move captures nothing", _CAPTURE_MARKS),
    (re.compile(r"out of memory", re.IGNORECASE), "out of memory: the next move keeps no graph pools", _CAPTURE_MARKS),
    (re.compile(r"dynamo|inductor|BackendCompilerFailed|torch\.compile", re.IGNORECASE),
     "torch.compile failed: the next move does not compile", ("_pike_torch.compile(", "compile_mode='")),
    (re.compile(r"triton", re.IGNORECASE), "a Triton kernel failed: the next move has none", ("import triton",)),
    (re.compile(r"differs at index|is off as a whole|tolerance|incorrect", re.IGNORECASE),
     "outside the tolerance: the next move keeps the reference's precision", ("allow_tf32", "_PikeBF16")),
    (re.compile(r"time limit|timed out|timeout", re.IGNORECASE),
     "out of time: the next move does not autotune", ("max-autotune",)),
    (re.compile(r"memory_format|channels_last", re.IGNORECASE),
     "the channels-last layout failed: the next move keeps the layout", ("_PikeChannelsLast(",)),
)  # fmt: skip


def _failure(prompt: str) -> str:
    """The evaluator's status and reason, as the fix prompt carries them."""
    _, _, said = prompt.partition("## What the evaluator said\n")
    return said.split("\n\nFix it", 1)[0]


def _description(source: str) -> list[str]:
    """The parts of an offline rewrite, from the line render() writes."""
    found = re.search(r"^# ModelNew \(pike offline rewrite\): (.*)$", source, re.MULTILINE)
    return found.group(1).split(" + ") if found else []


class OfflineProposer:
    """Answers every role from the move library; no network, no tokens, no dollars.

    Sources already given for a task (to any role) are not given again while the
    library has others: the optimizer takes the next move not yet given, the EFA the
    first move that avoids the failure's cause. :meth:`library_size` says how many
    queries reach every distinct candidate, so that a search can stop there."""

    name = "offline"

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._given: dict[str, set[str]] = {}  # task id -> sources given (stripped)

    @staticmethod
    def library_size(reference: str, device: str) -> int:
        """Queries that propose each distinct candidate of the library once: the ideas
        list and one per move or combination that applies."""
        return len(plan(reference, None, device)[0]) + 1

    async def propose(self, request: Request) -> Reply:
        started = time.perf_counter()
        if not request.reference:
            raise ProposerError("the offline proposer rewrites the task's source: the request carries no reference")
        if request.role not in ROLES:
            raise ProposerError(f"role {request.role!r} is not one of {', '.join(ROLES)}")
        steps, best = plan(request.reference, request.parent or None, request.device)
        key = (request.task_id, request.role)
        k = self._counts.get(key, 0)
        self._counts[key] = k + 1
        given = self._given.setdefault(request.task_id, set())
        if request.role == "iba":
            text, meta = self._ideas(request, steps), {"ideas": [s.name for s in steps]}
        elif request.role == "efa":
            text, meta = self._fix(request, steps, given)
        else:  # optimizer
            fresh = [n for n, step in enumerate(steps) if step.source.strip() not in given]
            step = steps[fresh[0]] if fresh else best
            where = f"move {fresh[0] + 1} of {len(steps)}" if fresh else "every move spent; the best-known combination again"
            text = _reply_text(f"Offline {where} for {request.task_id or 'this task'}: {step.name}.", step.why, step.source)
            meta = {"move": step.name, "index": k}
        code = _code(text)
        if code:
            given.add(code.strip())
        return Reply(text=text, model=self.name, seconds=time.perf_counter() - started, meta=meta)

    @staticmethod
    def _ideas(request: Request, steps: list[Step]) -> str:
        lines = [f"Ideas for {request.task_id or 'this task'} on {request.device} (offline move library, likely best first):"]
        lines += [f"{i}. {step.name}: {step.why}" for i, step in enumerate(steps, start=1)]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _fix(request: Request, steps: list[Step], given: set[str]) -> tuple[str, dict]:
        """The first move not yet given that avoids the failure's cause: its marks (a
        capture, a compile, TF32/bf16, ...) when the reason names one, else every part of
        the failed rewrite; the plain compile where the cause is unknown and the failed
        candidate is not an offline rewrite; the parent unchanged when nothing is left."""
        parent = request.parent.strip()
        reason = _failure(request.prompt)
        causes = [(why, marks) for pattern, why, marks in _FAILURES if pattern.search(reason)]
        if causes:
            note = "; ".join(why for why, _ in causes)
            fits = [s for s in steps if not any(mark in s.source for _, marks in causes for mark in marks)]
        else:
            parts = set(_description(parent))
            note = f"the failed rewrite's parts ({', '.join(sorted(parts))}) are left out" if parts else ""
            compiled = compile_default(request.reference, None, request.device)
            plain = [Step("compile", "It keeps the reference's semantics and weights.", compiled)]
            fits = (plain if not parts else []) + [s for s in steps if not parts & set(_description(s.source))]
        fresh = [s for s in fits if s.source.strip() not in given and s.source.strip() != parent]
        if not fresh:
            fresh = [s for s in fits if s.source.strip() != parent]
        if not fresh:
            headline = "No better idea offline: no move of the library avoids this failure."
            return _reply_text(headline, "The failing candidate is returned unchanged.", request.parent), {"move": "parent"}
        step = fresh[0]
        headline = f"Offline fix ({note or 'cause unknown'}): {step.name}."
        return _reply_text(headline, step.why, step.source), {"move": step.name, "cause": note}

    def observe(self, request: Request, reply: Reply) -> None:
        """A request answered from the record (a resumed run): count it as asked and its
        candidate as given, so the next new request gets the next move."""
        key = (request.task_id, request.role)
        self._counts[key] = self._counts.get(key, 0) + 1
        code = _code(reply.text)
        if code:
            self._given.setdefault(request.task_id, set()).add(code.strip())

    def worst_case(self, request: Request) -> float:
        return 0.0  # no LLM, no cost

    async def aclose(self) -> None:
        return None


def _code(text: str) -> str:
    found = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    return found.group(1) if found else ""


def _reply_text(headline: str, why: str, source: str) -> str:
    return f"{headline}\n{why}\n\n```python\n{source.rstrip()}\n```\n"
