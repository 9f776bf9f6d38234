"""A candidate's source from a recipe: the task's source, the runtime pieces the recipe
needs, and a ``ModelNew`` that builds the task's own ``Model`` (same seed, so the same
weights) and wraps it, or changes submodules of the built instance, never the source
text. Every candidate states its precision changes in a ``# precision:`` line.

A candidate is one self-contained file (it cannot import pike_bench), so the pieces are
pasted in: sections of the modules of :mod:`pike_bench.llm.moves.runtime`, read as text
(the proposer imports neither torch nor triton), and the method rewrites that
:mod:`pike_bench.llm.moves.rewrites` finds in the task's source.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace
from pathlib import Path

from pike_bench.llm.moves.detect import has_host_syncs, rewrites_in

RUNTIME = Path(__file__).with_name("runtime")


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


@functools.cache
def runtime_sections(module: str) -> dict[str, str]:
    """A runtime module's sections, by their `# --- name ---` headings (what comes before
    the first, its docstring and imports, is the candidate's own business)."""
    text = (RUNTIME / f"{module}.py").read_text()
    return {part.split(" ---", 1)[0]: part.split("\n", 1)[1].strip("\n") for part in text.split("\n# --- ")[1:]}


def paste(module: str, *sections: str) -> str:
    """Sections of a runtime module's source, in the order given."""
    return "".join("\n\n" + runtime_sections(module)[name] + "\n" for name in sections)


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

    Capture safety: a graph recipe for a source with host syncs (:func:`~pike_bench.llm.moves.detect.has_host_syncs`) is
    rendered as the piecewise capture, which captures the whole forward only where a
    probe on the first call finds it free of them (an MoE rewrite may remove them)."""
    if recipe.graph and has_host_syncs(reference):
        recipe = replace(recipe, graph=False, pieces=True)
    helpers = [paste("wrappers", "map")] if recipe.channels_last or recipe.channels_last_3d or recipe.bf16 or recipe.compile == "reduce-overhead" or recipe.graph else []
    helpers += [paste("frontier", *_needed_runtime(recipe))] if _needed_runtime(recipe) else []
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
        classes = {name: source for kind in recipe.rewrites for name, source in rewrites_in(reference, kind).items()}
        helpers += ["\n\n" + source + "\n" for source in classes.values()]
        swaps = ", ".join(f"{name}: {source.split('(', 1)[0].split()[-1]}" for name, source in classes.items())
        init.append(f"model = _PikeChecked(model, {{{swaps}}}, compile_mode={compile_mode!r})")
        compile_mode = None  # applied by _PikeChecked after its check
    if recipe.sdpa:
        helpers.append(paste("sdpa", "minGPT attention"))
        # Attention the rewrite does not recognize is left to inductor's pattern matcher.
        init.append("_pike_use_sdpa(model)" if recipe.compile else
                    "if not _pike_use_sdpa(model):\n    model = _pike_torch.compile(model)")  # fmt: skip
    if recipe.triton or recipe.triton_norm:
        helpers.append(paste("triton_kernels", "triton"))
    if recipe.triton:
        helpers.append(paste("triton_kernels", "activations"))
        init.append("_pike_triton_activations(model)")
    if recipe.triton_norm:
        helpers.append(paste("triton_kernels", "LayerNorm"))
        init.append("_pike_triton_layer_norms(model)")
    if recipe.bf16:
        helpers.append(paste("wrappers", "bf16 autocast"))
        init.append("model = _PikeBF16(model)")
    if compile_mode:
        init.append(f"model = _pike_torch.compile(model, mode={compile_mode!r})")
    if recipe.channels_last or recipe.channels_last_3d:
        helpers.append(paste("wrappers", "channels-last"))
        layout = "_pike_torch.channels_last_3d, 5" if recipe.channels_last_3d else "_pike_torch.channels_last, 4"
        init.append(f"model = _PikeChannelsLast(model, {layout})")
    if recipe.compile == "reduce-overhead":
        assert not (recipe.graph or recipe.pieces or recipe.fastest), "inductor's CUDA graphs and a capture of our own do not nest"
        helpers.append(paste("wrappers", "fresh outputs"))
        init.append("model = _PikeFresh(model)")
    if recipe.graph:
        helpers.append(paste("wrappers", "whole-forward capture"))
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
