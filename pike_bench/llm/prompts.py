"""Every prompt the agents send, in one place.

Prompts are built from the task's source, the evaluator's feedback, facts about the
device and, in later rounds, the best earlier candidates with their timings.
"""

from __future__ import annotations

from dataclasses import dataclass

HOPPER_FACTS = """\
Target GPU: NVIDIA Hopper (H100/H200, compute capability 9.0): 132 SMs; 50 MB (H100) or
60 MB (H200) of L2; HBM3 at 3.35 TB/s (H100 SXM) or HBM3e at 4.8 TB/s (H200); dense bf16
tensor-core rate about 990 TFLOP/s, TF32 about half that, plain fp32 about 67 TFLOP/s.
Many small kernels are bound by launch overhead (a few microseconds each): fusing them,
or capturing the forward in a CUDA graph, removes it. Large matrix products are bound by
arithmetic; elementwise chains by memory traffic."""

RULES = """\
Rules: define `class ModelNew(nn.Module)` with the same constructor arguments and forward
inputs as `Model`, computing the same function (outputs compared with the task's
tolerance on random inputs you have not seen). Create parameters in the same order as
`Model` (same seed, same weights). You may use PyTorch, Triton (`import triton`) and
inline CUDA/C++ (`torch.utils.cpp_extension.load_inline`). Do not spawn processes, open
sockets, write files, read the garbage collector or call stack, start threads in
forward, or cache outputs between calls. Reply with the whole program in one
```python block."""

SYSTEMS = {
    "optimizer": "You are an expert GPU performance engineer. You make PyTorch programs faster "
    "on NVIDIA GPUs with fused kernels, better algorithms and less launch overhead, "
    "without changing what they compute.",
    "efa": "You fix errors in GPU kernel code. Keep the author's optimization; change only "
    "what is needed to make the program build and compute the right result.",
    "iba": "You are an expert GPU performance engineer who plans optimizations before writing code.",
}


@dataclass(frozen=True)
class Example:
    """An earlier candidate shown to the optimizer: its source and how it did."""

    source: str
    runtime_ms: float | None
    speedup: float | None
    note: str = ""

    def render(self, title: str) -> str:
        timing = "not correct" if self.runtime_ms is None else f"{self.runtime_ms:.4g} ms, {self.speedup:.2f}x over eager"
        extra = f" ({self.note})" if self.note else ""
        return f"### {title}: {timing}{extra}\n```python\n{self.source.strip()}\n```"


def optimizer_prompt(
    reference: str,
    parent: Example | None = None,
    idea: str = "",
    inspirations: tuple[Example, ...] = (),
    baseline_ms: float | None = None,
) -> str:
    parts = [HOPPER_FACTS, RULES, "## The reference program (Model)", f"```python\n{reference.strip()}\n```"]
    if baseline_ms is not None:
        parts.append(f"The reference runs in {baseline_ms:.4g} ms (eager).")
    if parent is not None:
        parts += ["## Improve this program", parent.render("Current program")]
    for index, example in enumerate(inspirations, start=1):
        parts.append(example.render(f"Inspiration {index}"))
    if idea:
        parts.append(f"## Optimization to apply\n{idea}")
    parts.append("Write a faster ModelNew.")
    return "\n\n".join(parts)


def fix_prompt(reference: str, failed: str, status: str, reason: str, detail: str) -> str:
    return "\n\n".join([
        RULES,
        "## The reference program (Model)",
        f"```python\n{reference.strip()}\n```",
        "## The program that failed",
        f"```python\n{failed.strip()}\n```",
        f"## What the evaluator said\n{status}: {reason}\n{detail}".rstrip(),
        "Fix it, keeping its optimization.",
    ])


def brainstorm_prompt(reference: str, count: int) -> str:
    return "\n\n".join([
        HOPPER_FACTS,
        "## The reference program (Model)",
        f"```python\n{reference.strip()}\n```",
        f"List {count} distinct ways to make this program faster on the GPU, most promising "
        "first, one per line, numbered `1.`, `2.`, ...; one or two sentences each, no code.",
    ])


def parse_ideas(text: str) -> list[str]:
    """The numbered lines of a brainstorming reply."""
    ideas = []
    for line in text.splitlines():
        head, _, rest = line.strip().partition(".")
        if head.isdigit() and rest.strip():
            ideas.append(rest.strip())
    return ideas
