"""Check policies: which rules decide that a candidate is correct.

A policy is a named list of rules and the few parameters that go with them (the mode
the models run in, how many input sets, the tolerance). ``strict`` is ours and the
default; ``pike`` and ``kernelbench`` reproduce the peers' evaluators, so that a
verdict of ours can be set beside theirs and the rule that made the difference named.

Every failed check names one rule of :data:`RULES`; an ``EvalResult`` records it in
``rule`` (empty when the candidate is correct, or failed without breaking a rule: a
build error, a crash, a timeout) and the policy in ``check``.

The rules that protect the harness and its timer (the static screen, the clock, the
threads, the task file) apply under every policy: a speedup is always measured by our
timer, whichever correctness rules judged the candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

# Rule name -> what it requires (the names are what EvalResult.rule holds).
RULES: dict[str, str] = {
    "static-screen": "the source passes the static screen (no processes, sockets, gc, hidden code)",
    "custom-kernel": "at least one Triton, CUDA or C++ kernel (with --require-custom-kernel only)",
    "clock": "the harness's timing functions are left as they were",
    "threads": "no thread started while it runs, none left running its code",
    "task-file": "the task file is left unchanged",
    "shape": "as many outputs as the reference, each of its kind and shape",
    "dtype": "each output has the reference's dtype",
    "nan-inf": "no NaN or Inf where the reference has a finite number",
    "allclose": "every element within atol + rtol * |expected|",
    "whole-output": "the whole output within rtol of the reference (relative L2 error)",
    "stale-output": "each call follows its own input, not an earlier call's",
    "scaled-inputs": "right on inputs scaled by 0.5 or 2 and sign-flipped, not only on the task's own",
    "reference-memory": "the output is not the reference's output memory",
    "input-alias": "the output does not share memory with an input",
    "shared-storage": "each call returns new memory, not the memory an earlier call returned",
    "modified-inputs": "the inputs are left unchanged",
    "after-timing": "still correct on new input sets after it was timed",
}

# Under every policy: they protect the harness and the timer, not a notion of correctness.
INTEGRITY = ("static-screen", "custom-kernel", "clock", "threads", "task-file")
# What allclose itself decides (torch.allclose fails on NaN, and on a dtype it cannot compare).
ALLCLOSE = ("shape", "dtype", "nan-inf", "allclose")


@dataclass(frozen=True)
class CheckPolicy:
    name: str
    summary: str
    rules: tuple[str, ...]
    mode: str | None = None  # the mode it fixes ("eval" or "train"); None: the run's
    input_sets: int | None = None  # None: the run's --trials
    tolerance: tuple[float, float] | None = None  # (atol, rtol) for every output; None: per dtype and task

    def applies(self, rule: str) -> bool:
        return rule in self.rules

    @property
    def varied_inputs(self) -> bool:
        """Hypothesis draws with scales and signs (else the task's get_inputs() under plain seeds)."""
        return self.applies("scaled-inputs")


STRICT = CheckPolicy(
    "strict",
    "ours: Hypothesis input sets (scaled and sign-flipped too), whole-output error, fresh memory, "
    "unmodified inputs, checked again after timing",
    INTEGRITY + ALLCLOSE + ("whole-output", "stale-output", "scaled-inputs", "reference-memory", "input-alias",
                            "shared-storage", "modified-inputs", "after-timing"),
)
PIKE = CheckPolicy(
    "pike",
    "PIKE's evaluator: .eval(), one input set from get_inputs(), one call, allclose atol=rtol=1e-2",
    INTEGRITY + ALLCLOSE,
    mode="eval", input_sets=1, tolerance=(1e-2, 1e-2),
)
KERNELBENCH = CheckPolicy(
    "kernelbench",
    "KernelBench's evaluator: training mode, five input sets from get_inputs(), allclose atol=rtol=1e-2",
    # Five sets catch a stale output by its values; the rule names it.
    INTEGRITY + ALLCLOSE + ("stale-output",),
    mode="train", input_sets=5, tolerance=(1e-2, 1e-2),
)
POLICIES: dict[str, CheckPolicy] = {p.name: p for p in (STRICT, PIKE, KERNELBENCH)}
CHECKS = tuple(POLICIES)


def check_policy(name: str) -> CheckPolicy:
    """The policy of that name; ValueError names the ones there are."""
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a check policy; use {', '.join(CHECKS)}") from None


def parse_policies(text: str) -> list[CheckPolicy]:
    """'strict,pike' -> those policies, in order, each once."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"names no policy; use some of {', '.join(CHECKS)}")
    return [check_policy(n) for n in dict.fromkeys(names)]
