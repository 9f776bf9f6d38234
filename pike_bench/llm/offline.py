"""The offline proposer: real rewrites from a library of known-good moves, no LLM.

It is the embedded default when no API key is set. The moves live in
:mod:`pike_bench.llm.moves`: each appends a ``ModelNew`` to the task's source, as
:mod:`pike_bench.baselines` does, or does not apply to the task.

- role ``optimizer``: the first applicable move of the task's plan (the best-known
  combination, the moves of :data:`~pike_bench.llm.moves.library.MOVES`, the other
  combinations of :data:`~pike_bench.llm.moves.library.COMBOS`)
  not yet given for the task; once all are given, the best-known combination again
  (a request is always answered);
- role ``iba``: a numbered list of the moves and combinations that apply to the task;
- role ``efa``: reads the evaluator's reason in the fix prompt and gives the first move
  not yet given that avoids its cause (a failed capture: a move that captures nothing;
  a failed compile: one that does not compile; outside the tolerance: no TF32/bf16),
  not a variant of the failed one; the parent unchanged when nothing is left. A move
  that ran out of time also rules its variants (autotuning) out of the optimizer's
  later picks for the task.

:meth:`OfflineProposer.library_size` is the number of queries that reach every distinct
candidate; the optimizer caps an offline budget there.

The built-in moves rewrite the reference; the parent is passed so that a move may
build on it. Every reply is a short explanation and the candidate in one fenced ```python block,
so the strategy reads it through ``extract_code`` as it reads an LLM's; tokens and
dollars are 0.
"""

from __future__ import annotations

import re
import time

from pike_bench.llm.base import ROLES, ProposerError, Reply, Request
from pike_bench.llm.moves.library import AUTOTUNE_MARK, Proposal, compile_default, plan


# --- the proposer ---


# The EFA reads why a candidate failed and leaves out the moves that share its cause:
# (a pattern of the evaluator's reason, the marks of the sources that would fail alike).
_CAPTURE_MARKS = ("_PikeCUDAGraph(model)", "reduce-overhead", "_PikePiecewiseGraph(", "_PikeCapture(")
# A move that ran out of the step's time limit (max-autotune on a deep convnet: over 300 s
# on ResNet101, holding the device turn meanwhile) would cost as much again in any variant:
# its cause rules them out of the optimizer's later picks for the task too, not only of the fix.
_OUT_OF_TIME = (re.compile(r"time limit|timed out|timeout", re.IGNORECASE),
                "out of time: the next move does not autotune", (AUTOTUNE_MARK,))
_FAILURES: tuple[tuple[re.Pattern, str, tuple[str, ...]], ...] = (
    (re.compile(r"CUDA ?graph|captur|cudaStreamCapture|cudaErrorStreamCapture", re.IGNORECASE),
     "a CUDA-graph capture failed: the next move captures nothing", _CAPTURE_MARKS),
    (re.compile(r"out of memory", re.IGNORECASE), "out of memory: the next move keeps no graph pools", _CAPTURE_MARKS),
    (re.compile(r"dynamo|inductor|BackendCompilerFailed|torch\.compile", re.IGNORECASE),
     "torch.compile failed: the next move does not compile", ("_pike_torch.compile(", "compile_mode='")),
    (re.compile(r"triton", re.IGNORECASE), "a Triton kernel failed: the next move has none", ("import triton",)),
    (re.compile(r"differs at index|is off as a whole|tolerance|incorrect", re.IGNORECASE),
     "outside the tolerance: the next move keeps the reference's precision", ("allow_tf32", "_PikeBF16")),
    _OUT_OF_TIME,
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
        self._ruled_out: dict[str, set[str]] = {}  # task id -> marks of moves not to propose again

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
            self._learn(request)
            text, meta = self._fix(request, steps, given)
        else:  # optimizer
            ruled_out = self._ruled_out.get(request.task_id, set())
            allowed = [step for step in steps if not any(mark in step.source for mark in ruled_out)]
            fresh = [n for n, step in enumerate(steps) if step in allowed and step.source.strip() not in given]
            again = best if best in allowed or not allowed else allowed[0]  # what a spent library repeats
            step = steps[fresh[0]] if fresh else again
            repeated = "the best-known combination" if again is best else again.name
            where = f"move {fresh[0] + 1} of {len(steps)}" if fresh else f"every move spent; {repeated} again"
            text = _reply_text(f"Offline {where} for {request.task_id or 'this task'}: {step.name}.", step.why, step.source)
            meta = {"move": step.name, "index": k}
        code = _code(text)
        if code:
            given.add(code.strip())
        return Reply(text=text, model=self.name, seconds=time.perf_counter() - started, meta=meta)

    @staticmethod
    def _ideas(request: Request, steps: list[Proposal]) -> str:
        lines = [f"Ideas for {request.task_id or 'this task'} on {request.device} (offline move library, likely best first):"]
        lines += [f"{i}. {step.name}: {step.why}" for i, step in enumerate(steps, start=1)]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _fix(request: Request, steps: list[Proposal], given: set[str]) -> tuple[str, dict]:
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
            plain = [Proposal("compile", "It keeps the reference's semantics and weights.", compiled)]
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

    def _learn(self, request: Request) -> None:
        """A fix request whose failure ran out of time: its variants are ruled out for the task."""
        pattern, _, marks = _OUT_OF_TIME
        if pattern.search(_failure(request.prompt)):
            self._ruled_out.setdefault(request.task_id, set()).update(marks)

    def observe(self, request: Request, reply: Reply) -> None:
        """A request answered from the record (a resumed run): count it as asked and its
        candidate as given, and learn from a fix request as when it was asked, so the next
        new request gets the next move."""
        key = (request.task_id, request.role)
        self._counts[key] = self._counts.get(key, 0) + 1
        if request.role == "efa":
            self._learn(request)
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

