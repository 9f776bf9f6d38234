"""The agents a strategy uses, on one task: the optimizer, the error fixing agent (EFA)
and the initial brainstorming agent (IBA), sharing one budget.

Strategies see candidates as :class:`Scored` values and evaluate them through an
``Evaluate`` function, so they run the same against the real evaluator and against a
stub with known scores (the strategy tests do the latter).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from pike_bench.candidate import NoCodeError, extract_code
from pike_bench.llm import prompts
from pike_bench.llm.base import Proposer, ProposerError, Reply, Request
from pike_bench.search.budget import Budget


@dataclass(frozen=True)
class Outcome:
    """What the evaluator said of one source."""

    status: str
    runtime_ms: float | None = None
    speedup: float | None = None  # over eager
    reason: str = ""
    detail: str = ""


Evaluate = Callable[[str], Awaitable[Outcome]]


@dataclass
class Scored:
    """One candidate of a search and how it did."""

    number: int  # order of creation within the task
    source: str
    outcome: Outcome
    agent: str  # "optimizer" or "efa"
    slot: str
    parents: tuple[int, ...] = ()
    round: int | None = None
    island: int | None = None
    call_id: int | None = None  # the recorded LLM call it came from, when there is a record

    @property
    def correct(self) -> bool:
        return self.outcome.status == "correct"

    @property
    def runtime(self) -> float:
        return self.outcome.runtime_ms if self.correct and self.outcome.runtime_ms is not None else float("inf")

    @property
    def rank(self) -> tuple:
        """Sort key, best first: the speedup over eager where it was measured, else the
        runtime. Each candidate is timed beside its own eager run, so the paired ratio
        cancels the drift that raw times of different evaluations carry."""
        if self.correct and self.outcome.speedup is not None:
            return (0, -self.outcome.speedup, self.number)
        return (1, self.runtime, self.number)

    def example(self, note: str = "") -> prompts.Example:
        return prompts.Example(self.source, self.outcome.runtime_ms if self.correct else None,
                               self.outcome.speedup, note)


@dataclass
class Agents:
    proposer: Proposer
    budget: Budget
    evaluate: Evaluate
    task_id: str
    reference: str
    device: str = "cuda"
    models: dict[str, str] = field(default_factory=dict)  # role -> model; empty: the proposer's defaults
    worst_case: Callable[[Request], float] = lambda request: 0.0  # an upper bound of a request's dollars
    on_reply: Callable[[Request, Reply], None] | None = None  # hears every reply
    on_scored: Callable[[Scored], None] | None = None  # hears every evaluated candidate (the record)
    history: list[Scored] = field(default_factory=list)

    async def ask(self, role: str, prompt: str, slot: str, parent: str = "") -> Reply | None:
        """One query, if the budget has room for it; None when it has not."""
        request = Request(role=role, system=prompts.SYSTEMS[role], prompt=prompt, model=self.models.get(role, ""),
                          task_id=self.task_id, slot=slot, reference=self.reference, parent=parent, device=self.device)
        bound = self.worst_case(request)
        if not self.budget.try_reserve(bound, role):
            return None
        try:
            reply = await self.proposer.propose(request)
        except ProposerError as exc:
            self.budget.settle(bound, 0.0)
            reply = Reply(text="", model=request.model, meta={"error": str(exc)})
        else:
            self.budget.settle(bound, reply.dollars)
        if self.on_reply is not None:
            self.on_reply(request, reply)
        return reply

    async def score(self, reply: Reply, agent: str, slot: str, parents: tuple[int, ...] = (),
                    round: int | None = None, island: int | None = None) -> Scored:
        """Pull the code out of a reply and evaluate it; a reply without code is a build error."""
        try:
            source = extract_code(reply.text)
        except NoCodeError as exc:
            reason = reply.meta.get("error") or str(exc)
            outcome, source = Outcome("build_error", reason=reason), ""
        else:
            outcome = await self.evaluate(source)
        scored = Scored(len(self.history), source, outcome, agent, slot, parents, round, island,
                        reply.meta.get("llm_call_id"))
        self.history.append(scored)
        if self.on_scored is not None:
            self.on_scored(scored)
        return scored

    async def optimize(self, slot: str, parents: list[Scored], idea: str = "", inspirations: tuple = (),
                       round: int | None = None, island: int | None = None) -> Scored | None:
        """Ask the optimizer for a faster program (from the reference, one parent, or several)."""
        parent = parents[0].example() if parents else None
        extra = tuple(p.example("another parent") for p in parents[1:]) + tuple(inspirations)
        prompt = prompts.optimizer_prompt(self.reference, parent, idea, extra)
        reply = await self.ask("optimizer", prompt, slot, parent=parents[0].source if parents else "")
        if reply is None:
            return None
        return await self.score(reply, "optimizer", slot, tuple(p.number for p in parents), round, island)

    async def fix(self, failed: Scored, attempts: int) -> list[Scored]:
        """The EFA on a failed candidate, up to `attempts` queries; stops at the first correct fix."""
        tries = []
        current = failed
        for attempt in range(1, attempts + 1):
            if current.correct:
                break
            prompt = prompts.fix_prompt(self.reference, current.source, current.outcome.status,
                                        current.outcome.reason, current.outcome.detail)
            reply = await self.ask("efa", prompt, f"{failed.slot}/fix{attempt}", parent=current.source)
            if reply is None:
                break
            current = await self.score(reply, "efa", f"{failed.slot}/fix{attempt}", (current.number,),
                                       failed.round, failed.island)
            tries.append(current)
        return tries

    async def brainstorm(self, count: int) -> list[str]:
        reply = await self.ask("iba", prompts.brainstorm_prompt(self.reference, count), "iba")
        return prompts.parse_ideas(reply.text) if reply is not None else []

    def best(self, k: int = 1) -> list[Scored]:
        """The k fastest correct candidates so far (ties: the earlier first)."""
        return sorted((s for s in self.history if s.correct), key=lambda s: s.rank)[:k]


async def gather_in_order(coroutines) -> list:
    """asyncio.gather, named for what strategies rely on: results in the order asked."""
    return list(await asyncio.gather(*coroutines))
