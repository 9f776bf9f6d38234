"""The offline move library: the moves, their combinations, and a task's plan.

Each move is a function ``(reference_source, parent_source | None, device) -> candidate
source | None`` that renders a :class:`~pike_bench.llm.moves.render.Recipe`; ``None``
means the move does not apply (no Conv2d for channels-last, a CUDA-only move on the
CPU). The frontier moves (``moe-grouped``, ``decode-capture-if-faster``,
``sdpa-rewrite``, ``capture-pieces``, ``scan-chunked``, ``channels-last-3d``) say when
they apply in their docstrings.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, NamedTuple

from pike_bench.llm.moves.detect import (
    channels_last_fits,
    has_activations,
    has_attention,
    has_conv3d,
    has_conv_or_rnn,
    has_experts,
    has_host_syncs,
    has_kv_cache,
    has_layer_norms,
    has_matmul,
    has_scan,
    on_cuda,
    rewrites_in,
)
from pike_bench.llm.moves.render import Recipe, render

MoveFn = Callable[[str, "str | None", str], "str | None"]


# --- the moves: each returns the candidate source, or None where it does not apply ---


def compile_default(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(compile="default"))


def compile_max_autotune(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(compile="max-autotune"))


def compile_max_autotune_no_cudagraphs(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(compile="max-autotune-no-cudagraphs")) if on_cuda(device) else None


def compile_reduce_overhead(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(compile="reduce-overhead")) if on_cuda(device) else None


def cuda_graph(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(graph=True)) if on_cuda(device) else None


def compile_cuda_graph(reference: str, parent: str | None, device: str) -> str | None:
    # Default mode: it builds in seconds, max-autotune-no-cudagraphs in minutes on a
    # convnet, and the move is early in the table, where a small budget still reaches it.
    return render(reference, Recipe(compile="default", graph=True)) if on_cuda(device) else None


def tf32(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(tf32=True)) if on_cuda(device) and has_matmul(reference) else None


def bf16_autocast(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(bf16=True)) if has_matmul(reference) else None


def channels_last(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(channels_last=True)) if channels_last_fits(reference) else None


def cudnn_benchmark(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(cudnn_benchmark=True)) if on_cuda(device) and has_conv_or_rnn(reference) else None


def sdpa(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(sdpa=True)) if has_attention(reference) else None


def triton_activation(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(triton=True)) if has_activations(reference) else None


def triton_layer_norm(reference: str, parent: str | None, device: str) -> str | None:
    return render(reference, Recipe(triton_norm=True)) if has_layer_norms(reference) else None


# --- moves for frontier models ---


def capture_pieces(reference: str, parent: str | None, device: str) -> str | None:
    """Capture safety. Applies where the source syncs with the host (`.item()`,
    `.tolist()`, `nonzero`, one-argument `torch.where`, `.cpu()`, ...), which makes a
    capture of the whole forward fail. The first call runs the model under a probe (a
    TorchFunctionMode that also sees boolean-mask indexing) and captures each of the
    largest sub-modules that make no host sync, one graph per input signature; the
    rest runs eagerly. CUDA only."""
    return render(reference, Recipe(pieces=True)) if on_cuda(device) and has_host_syncs(reference) else None


def moe_grouped(reference: str, parent: str | None, device: str) -> str | None:
    """Mixture of experts. Applies to modules with a `gate` (returning routing weights and
    expert indices per token) and an `experts` ModuleList of alike experts made of linear
    layers. Their forward becomes: sort the token-expert pairs by expert on the device,
    gather the tokens, run all experts at once (torch._grouped_mm over stacked weights
    in bf16, else a padded batched matmul), sum the weighted outputs per token in fp32.
    No host sync, so the layer can be captured; kept only where it matches the module's
    own forward on a probe."""
    return render(reference, Recipe(moe=True)) if has_experts(reference) else None


def sdpa_rewrite(reference: str, parent: str | None, device: str) -> str | None:
    """Attention written out (scores = q @ k^T / c, masks, softmax, @ v) in any of the
    task's classes becomes one scaled_dot_product_attention call: a fused kernel that
    never materializes the scores (for one query token, a decode path that reads the KV
    cache once, strided, instead of a copy for the matmul). Checked on the first call
    against the original forward."""
    return render(reference, Recipe(rewrites=("sdpa",))) if rewrites_in(reference, "sdpa") else None


def decode_capture_if_faster(reference: str, parent: str | None, device: str) -> str | None:
    """Decode with a KV cache. Applies where the source writes into a slice of a cache.
    The eager forward (with the SDPA rewrite where the attention has the pattern) and its
    CUDA-graph capture are both timed on the first call and the faster is kept: the
    cache is a buffer, so its writes are static and the step can be captured, but a
    step dominated by reading the cache may gain nothing, and then eager stays. No
    torch.compile: it copies a mutated buffer whole. CUDA only."""
    if not (on_cuda(device) and has_kv_cache(reference)):
        return None
    return render(reference, Recipe(rewrites=("sdpa",) if rewrites_in(reference, "sdpa") else (), fastest=True))


def scan_chunked(reference: str, parent: str | None, device: str) -> str | None:
    """State-space and recurrent scans. Applies to a loop `for t in range(n): h = a[:, t] *
    h + x[:, t]; hs.append(h)` stacked after (Mamba's selective scan written out; any
    elementwise linear recurrence in that form): it becomes a chunked scan, each chunk of
    16 steps one batched matmul with the decay matrix, a loop over chunks only for the
    carried state. Recurrences in other forms (RWKV's normalized state, S4's convolution
    kernel) are not matched."""
    return render(reference, Recipe(rewrites=("scan",))) if rewrites_in(reference, "scan") else None


def channels_last_3d(reference: str, parent: str | None, device: str) -> str | None:
    """Convolutional VAEs (Conv3d): NDHWC weights and 5-d inputs, cuDNN's fast layout for
    3-d convolutions; a model whose first call fails in that layout goes back."""
    return render(reference, Recipe(channels_last_3d=True)) if has_conv3d(reference) else None


class Move(NamedTuple):
    name: str
    fn: MoveFn
    cuda_only: bool
    why: str  # why it is known-good, and when it applies


# The move table, likely best first, except that the max-autotune moves come after the
# cheap ones: they autotune for minutes on a convnet, which a small budget cannot afford
# (on a GPU, plan() leaves them out). The order of a task's moves is
# this order with the moves that do not apply left out.
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
        "sdpa": has_attention(reference),
        "channels_last": channels_last_fits(reference),
        "channels_last_3d": has_conv3d(reference),
        "cudnn_benchmark": on_cuda(device) and has_conv_or_rnn(reference),
        "moe": has_experts(reference),
    }


def _combo(recipe: Recipe, cuda_only: bool, needs: Callable[[str], bool] | None = None) -> MoveFn:
    def move(reference: str, parent: str | None, device: str) -> str | None:
        if (cuda_only and not on_cuda(device)) or (needs is not None and not needs(reference)):
            return None
        # The SDPA rewrite joins every combination where the task's attention has its pattern.
        rewrites = tuple(kind for kind in dict.fromkeys(recipe.rewrites + ("sdpa",)) if rewrites_in(reference, kind))
        return render(reference, replace(recipe, **_task_specific(reference, device), rewrites=rewrites))

    return move


# Default-mode compile: it builds in seconds where max-autotune takes minutes on a
# convnet, which matters most for the first candidate of a small budget.
_GRAPHED = Recipe(compile="default", graph=True)

# Best first; the first that applies is the best-known combination: it is also the
# first candidate of every task (exploit first), and given again once everything is
# spent. A combination that comes out the same as an earlier move (nothing
# task-specific to add) is skipped.
COMBOS: tuple[Move, ...] = (
    Move("moe-grouped+cuda-graph", _combo(Recipe(moe=True, graph=True), True, has_experts), True,
         "sync-free MoE routing with grouped expert GEMMs, the eager forward captured whole in a CUDA graph "
         "(the routing no longer syncs with the host), plus the task's own moves."),
    Move("tf32+decode-capture-if-faster", _combo(Recipe(tf32=True, fastest=True), True, has_kv_cache), True,
         "decode with a KV cache: TF32, SDPA rewrite of the attention, capture of the step kept if faster."),
    Move("tf32+compile-cuda-graph", _combo(replace(_GRAPHED, tf32=True), True), True,
         "TF32 + compile (default mode) + CUDA-graph capture, with SDPA / channels-last / "
         "cudnn.benchmark where the task has attention / convolutions."),
    Move("tf32+compile-reduce-overhead", _combo(Recipe(tf32=True, compile="reduce-overhead"), True), True,
         "TF32 + compile with inductor's CUDA graphs, plus the task's own moves."),
    Move("tf32+compile-max-autotune", _combo(Recipe(tf32=True, compile="max-autotune"), True), True,
         "TF32 + compile(max-autotune), plus the task's own moves."),
    Move("tf32+triton-activation+cuda-graph", _combo(Recipe(tf32=True, triton=True, graph=True), True, has_activations), True,
         "TF32 + Triton activations in the eager model, captured in a CUDA graph, plus the task's own moves."),
    Move("compile-max-autotune+task-moves", _combo(Recipe(compile="max-autotune"), False), False,
         "compile(max-autotune) on top of SDPA / channels-last where the task has attention / convolutions."),
    Move("bf16+compile-cuda-graph", _combo(replace(_GRAPHED, bf16=True), True, has_matmul), True,
         "bf16 autocast + compile + CUDA-graph capture, plus the task's own moves (the tolerance decides)."),
    Move("moe-grouped+compile-cuda-graph", _combo(replace(_GRAPHED, moe=True), True, has_experts), True,
         "sync-free MoE routing + compile (default mode) + CUDA-graph capture, plus the task's own moves."),
    Move("tf32+scan-chunked+compile-cuda-graph", _combo(replace(_GRAPHED, tf32=True, rewrites=("scan",)), True, has_scan), True,
         "chunked linear scan + TF32 + compile (default mode) + CUDA-graph capture, plus the task's own moves."),
    Move("tf32+scan-chunked+cuda-graph", _combo(Recipe(tf32=True, rewrites=("scan",), graph=True), True, has_scan), True,
         "chunked linear scan + TF32, the eager forward captured in a CUDA graph, plus the task's own moves."),
    Move("tf32+capture-pieces", _combo(Recipe(tf32=True, pieces=True), True, has_host_syncs), True,
         "TF32 + CUDA-graph capture of the sync-free sub-modules, plus the task's own moves."),
    Move("bf16+compile-max-autotune", _combo(Recipe(bf16=True, compile="max-autotune"), False, has_matmul), False,
         "bf16 autocast + compile(max-autotune), plus the task's own moves (the tolerance decides)."),
)  # fmt: skip


class Proposal(NamedTuple):
    """A step of a task's plan: a move's candidate for the task, and why it is known-good."""

    name: str
    why: str
    source: str


# On a GPU, max-autotune benchmarks GEMM/conv kernels for minutes on a deep model
# while it holds the device (past a 150 s step limit on ResNet18 and ResNet101, 186 s
# on level5/1_deepseekv3_MLA, on the H200; another task in flight waits meanwhile) and
# won none of 21 tasks there (0.72x-1.00x over eager where it ran): a GPU plan leaves
# the autotuning moves out. On the CPU, where nothing holds a device, they stay.
AUTOTUNE_MARK = "max-autotune"  # in the source of every move that autotunes


# Inductor's own CUDA graphs (reduce-overhead) do what compile-cuda-graph does, through
# cudagraph trees, which also survive graph breaks. Where the forward can be captured
# whole (no host syncs), compile-cuda-graph is the better form of the same move: on the
# H200 none of its 50 candidates (levels 3 and 5) was a task's best, and one took 234 s (SD3)
# (inductor's CUDA-graph compile; about 1,100 s of the two sweeps' device time). It stays
# where a host sync breaks the forward, since there its trees still capture the pieces.
REDUCE_OVERHEAD_MARK = "mode='reduce-overhead'"  # in the source of every move that uses it


def _autotuning(step: Proposal) -> bool:
    return AUTOTUNE_MARK in step.source


def _left_out_on_a_gpu(step: Proposal, reference: str) -> bool:
    return _autotuning(step) or (REDUCE_OVERHEAD_MARK in step.source and not has_host_syncs(reference))


def plan(reference: str, parent: str | None, device: str) -> tuple[list[Proposal], Proposal]:
    """A task's steps (the best-known combination, then the moves, then the other
    combinations; on a GPU none that autotunes, and reduce-overhead only where a host
    sync breaks the forward) and the best-known combination."""
    steps: list[Proposal] = []
    best: Proposal | None = None
    for move, combination in [(m, False) for m in MOVES] + [(m, True) for m in COMBOS]:
        source = move.fn(reference, parent, device)
        if source is None:
            continue
        step = Proposal(move.name, move.why, source)
        if combination and best is None:
            best = step
        if all(source != earlier.source for earlier in steps):
            steps.append(step)
    if best is None:
        best = steps[0]
    rest = [step for step in steps if step.source != best.source]
    if on_cuda(device):
        rest = [step for step in rest if not _left_out_on_a_gpu(step, reference)]
    return [best] + rest, best
