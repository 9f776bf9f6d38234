"""The agents a strategy uses, on one task: the optimizer, the error fixing agent (EFA)
and the initial brainstorming agent (IBA), sharing one budget.

Strategies see candidates as :class:`Scored` values and evaluate them through an
``Evaluate`` function, so they run the same against the real evaluator and against a
stub with known scores (the strategy tests do the latter).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Protocol

from pike_bench.candidate import NoCodeError, extract_code
from pike_bench.llm import prompts
from pike_bench.llm.base import MAX_TOKENS, Proposer, Reply, Request, RunStopped
from pike_bench.ranking import standings
from pike_bench.search.budget import Budget


@dataclass(frozen=True)
class Outcome:
    """What the evaluator said of one source (or, with no source, what became of the query)."""

    status: str
    runtime_ms: float | None = None
    speedup: float | None = None  # over eager
    reason: str = ""
    detail: str = ""
    result: Any = None  # the evaluator's full result (an EvalResult), when there is one
    reused: bool = False  # the verdict of an earlier evaluation of the same source (no new evaluation)

    @property
    def speedups(self) -> dict[str, float]:
        """Over each baseline timed beside it (just over eager when there is no full result)."""
        if self.result is not None:
            return {name: speedup.value for name, speedup in self.result.speedups.items()}
        return {"eager": self.speedup} if self.speedup is not None else {}


class Ledger(Protocol):
    """Where queries are written down before they are sent (the optimizer's record), so
    that a killed run's queries in flight still count, and a rerun pays for none twice."""

    def recorded(self, request: Request) -> Reply | None:
        """The reply this run already has for this very request, if any (free to reuse)."""

    def open(self, request: Request, reserved: float) -> int:
        """A query about to be sent; it counts at `reserved` dollars until it is closed."""

    def close(self, call_id: int, reply: Reply) -> None:
        """The query's outcome: its reply (or failure) and the dollars it really cost."""


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
    def evaluated(self) -> bool:
        """False for a query that gave no program (its status says why)."""
        return bool(self.source)

    @property
    def correct(self) -> bool:
        return self.outcome.status == "correct"

    @property
    def runtime(self) -> float:
        return self.outcome.runtime_ms if self.correct and self.outcome.runtime_ms is not None else float("inf")

    def example(self, note: str = "") -> prompts.Example:
        return prompts.Example(self.source, self.outcome.runtime_ms if self.correct else None,
                               self.outcome.speedup, note)


def ranked(candidates: Iterable[Scored]) -> list[Scored]:
    """Best first: the timed ones by their standing (the speedup over the fastest
    baseline, pike_bench.ranking), then the rest by runtime (a correct candidate timed
    without baselines) and creation. Each candidate is timed beside its own baselines, so
    the paired ratio cancels the drift that raw times of different evaluations carry."""
    candidates = list(candidates)
    values = standings([s.outcome.speedups for s in candidates])

    def key(pair: tuple[Scored, float | None]) -> tuple:
        scored, standing = pair
        return (0, -standing, scored.number) if standing is not None else (1, scored.runtime, scored.number)

    return [scored for scored, _ in sorted(zip(candidates, values), key=key)]


@dataclass
class Agents:
    proposer: Proposer
    budget: Budget
    evaluate: Evaluate
    task_id: str
    reference: str
    device: str = "cuda"
    models: dict[str, str] = field(default_factory=dict)  # role -> model; empty: the proposer's defaults
    ledger: Ledger | None = None  # the record; None: nothing is written down (tests, one-off searches)
    on_reply: Callable[[Request, Reply], None] | None = None  # hears every reply
    on_scored: Callable[[Scored], None] | None = None  # hears every evaluated candidate (the record)
    history: list[Scored] = field(default_factory=list)  # the evaluated candidates, in order
    failed_queries: list[Reply] = field(default_factory=list)  # queries that gave nothing to evaluate
    stopped: str = ""  # why no further query is sent (a RunStopped's message)
    unaffordable: float | None = None  # the worst case of the last query the dollar budget refused

    async def ask(self, role: str, prompt: str, slot: str, parent: str = "") -> Reply | None:
        """One query, if the budget has room for its worst case; None when it has not.

        The worst case is reserved before the query is sent and written down in the
        ledger, so queries in flight together, or lost to a killed run, cannot take the
        run past its budget; the reservation shrinks to the real cost when the reply
        comes. A reply the record already has is reused at no cost."""
        request = Request(role=role, system=prompts.SYSTEMS[role], prompt=prompt, model=self.models.get(role, ""),
                          max_tokens=MAX_TOKENS[role], task_id=self.task_id, slot=slot, reference=self.reference,
                          parent=parent, device=self.device)
        reply = self.ledger.recorded(request) if self.ledger is not None else None
        if reply is not None:
            judge(reply, request)  # a record written before statuses were kept says "ok" of every reply
        else:
            reply = await self._send(request)
        if reply is not None and self.on_reply is not None:
            self.on_reply(request, reply)
        return reply

    async def _send(self, request: Request) -> Reply | None:
        if self.stopped:
            return None
        bound = self.proposer.worst_case(request)
        if not self.budget.try_reserve(bound, request.role):
            self.unaffordable = bound if self.budget.dollars is not None else None
            return None
        call = self.ledger.open(request, bound) if self.ledger is not None else None
        try:
            reply = await self.proposer.propose(request)
        except RunStopped as stop:
            self.stopped = str(stop)
            self.budget.settle(bound, 0.0)  # refused before any work: the API bills nothing
            if call is not None:
                self.ledger.close(call, Reply(text="", model=request.model, status="rejected", reason=str(stop)))
            raise
        # Anything else (Ctrl-C, a killed process) leaves the call open in the ledger,
        # where it counts at its worst case: it may have been billed.
        judge(reply, request)
        self.budget.settle(bound, reply.dollars)
        if call is not None:
            self.ledger.close(call, reply)
        return reply

    async def score(self, reply: Reply, agent: str, slot: str, parents: tuple[int, ...] = (),
                    round: int | None = None, island: int | None = None) -> Scored:
        """Evaluate the program of a reply; a failed query gives an unevaluated Scored."""
        call_id = reply.meta.get("llm_call_id")
        if not reply.ok:
            self.failed_queries.append(reply)
            return Scored(-1, "", Outcome(reply.status, reason=reply.reason), agent, slot, parents, round, island,
                          call_id)
        source = extract_code(reply.text)
        outcome = await self.evaluate(source)
        scored = Scored(len(self.history), source, outcome, agent, slot, parents, round, island, call_id)
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
        parent_source = parents[0].source if parents else ""
        reply = await self.ask("optimizer", prompt, slot, parent=parent_source)
        if reply is not None and reply.status == "prompt_too_long" and extra:
            # Once more with less context: the parent alone, no other candidates shown.
            slot = f"{slot}/short"
            shorter = prompts.optimizer_prompt(self.reference, parent, idea)
            reply = await self.ask("optimizer", shorter, slot, parent=parent_source) or reply
        if reply is None:
            return None
        return await self.score(reply, "optimizer", slot, tuple(p.number for p in parents), round, island)

    async def fix(self, failed: Scored, attempts: int) -> list[Scored]:
        """The EFA on a failed candidate, up to `attempts` queries; stops at the first correct fix."""
        tries = []
        current = failed
        for attempt in range(1, attempts + 1):
            # Nothing to fix in a query that gave no program, nor in a correct one (flagged
            # suspicious or not: a flagged one waits for a person, not for the EFA).
            if current.correct or current.outcome.status == "suspicious" or not current.evaluated:
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
        return ranked(s for s in self.history if s.correct)[:k]


def judge(reply: Reply, request: Request) -> None:
    """Set the status of a reply that came back: did it bring what its role asks for?"""
    if not reply.ok:
        return
    stop = reply.meta.get("stop_reason")
    if stop == "refusal":
        reply.status, reply.reason = "refused", "the model declined to answer (stop_reason refusal)"
    elif request.role != "iba":  # the optimizer and the EFA must return a whole program
        try:
            extract_code(reply.text)
        except NoCodeError as error:
            if stop == "max_tokens":
                reply.status = "truncated"
                reply.reason = f"the reply was cut at max_tokens ({request.max_tokens}) before its program ended"
            else:
                reply.status, reply.reason = "no_code", str(error)


async def gather_in_order(coroutines) -> list:
    """asyncio.gather, named for what strategies rely on: results in the order asked."""
    return list(await asyncio.gather(*coroutines))
