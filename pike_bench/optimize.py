"""The optimizer: a strategy's agents make one task faster, within a budget, on the
evaluator, with every query and evaluation in the record so that a rerun resumes.

    from pike_bench.optimize import Optimizer, OptimizeOptions
    with Evaluator("cuda") as evaluator:
        outcome = Optimizer(evaluator, OptimizeOptions(budget_queries=20)).optimize(task)

Works the same from Python, the `pike optimize` command and `pytest --pike-optimize`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Callable

from pike_bench.evaluate import Evaluator
from pike_bench.evaluate.pool import EvaluatorPool
from pike_bench.evaluate.prebuild import Prebuilder
from pike_bench.evaluate.result import CORRECT, SUSPICIOUS, EvalResult
from pike_bench.llm.base import LLMS, Proposer, Reply, Request
from pike_bench.ranking import standings
from pike_bench.search.agents import Agents, Outcome, Scored, ranked
from pike_bench.search.budget import Budget
from pike_bench.search.pike_b import PikeBConfig, pike_b
from pike_bench.search.pike_o import pike_o
from pike_bench.search.presets import preset
from pike_bench import solutions
from pike_bench.progress import Evaluated, Event, TaskFinished, TaskStarted, Waiting, waiting_for
from pike_bench.store import Store, source_hash
from pike_bench.tasks import Task



@dataclass
class OptimizeOptions:
    strategy: str = "pike-b"
    budget_queries: int | None = 20
    budget_dollars: float | None = None
    llm: str = "auto"  # auto: anthropic when ANTHROPIC_API_KEY is set, else offline
    replay_file: str | None = None
    model: str | None = None
    efa_model: str | None = None
    concurrency: int = 16
    store_path: Path = Path(".pike/runs.sqlite")
    solutions_dir: Path = solutions.DEFAULT_DIR
    prebuild: bool = True  # compile C++/CUDA extensions on the CPU before a worker imports them


@dataclass
class TaskOutcome:
    task_id: str
    best: Scored | None
    speedup_eager: float | None
    speedup_compile: float | None
    queries: int
    dollars: float
    candidates: int
    solution: Path | None = None  # where the best candidate was written, if it beat the stored one
    note: str = ""  # why no solution was written, when there was a candidate
    failed_queries: int = 0  # queries that gave no program (each is in the record with its reason)
    speedup_graph: float | None = None  # None where the graph baseline was not timed (the CPU)
    review: Scored | None = None  # the fastest candidate flagged suspicious, if faster than the best correct one
    review_file: Path | None = None  # its source, for `pike accept` after a person has looked
    store_path: Path | None = None  # the record, where `pike accept --store` notes the review


def choose_llm(options: OptimizeOptions) -> str:
    if options.llm != "auto":
        return options.llm
    return "anthropic" if os.environ.get("ANTHROPIC_API_KEY") else "offline"


def make_proposer(options: OptimizeOptions) -> Proposer:
    llm = choose_llm(options)
    if llm == "anthropic":
        from pike_bench.llm.anthropic_backend import AnthropicProposer

        models = {role: m for role, m in (("optimizer", options.model), ("iba", options.model),
                                          ("efa", options.efa_model)) if m}
        return AnthropicProposer(models=models or None, concurrency=options.concurrency)
    if llm == "offline":
        from pike_bench.llm.offline import OfflineProposer

        return OfflineProposer()
    if llm == "replay":
        from pike_bench.llm.replay import ReplayProposer

        if not options.replay_file:
            raise ValueError("--pike-llm replay needs a file of recorded replies (--pike-replay FILE)")
        return ReplayProposer(options.replay_file)
    raise ValueError(f"unknown LLM backend {llm!r}; one of {', '.join(LLMS)}")


class StoreLedger:
    """The agents' ledger in the store: a query is written down before it is sent and
    settled when it returns; a request this run already answered is answered from the
    record, so a rerun neither pays for it again nor counts it twice."""

    def __init__(self, store: Store, run_id: int, proposer: Proposer):
        self.store, self.run_id, self.proposer = store, run_id, proposer

    def recorded(self, request: Request) -> Reply | None:
        reply = self.store.recorded_reply(self.run_id, request.task_id, request.slot, request)
        observe = getattr(self.proposer, "observe", None)  # stateful proposers catch up
        if reply is not None and observe is not None:
            observe(request, reply)
        return reply

    def open(self, request: Request, reserved: float) -> int:
        return self.store.open_llm_call(self.run_id, request, reserved)

    def close(self, call_id: int, reply: Reply) -> None:
        self.store.close_llm_call(call_id, reply)
        reply.meta = {**reply.meta, "llm_call_id": call_id}  # candidates point at the query they came from


def resumed_budget(queries: int | None, dollars: float | None, store: Store, run_id: int, task_id: str) -> Budget:
    """The task's budget, less what the record says this run already spent on it."""
    spent_queries, spent_dollars = store.spent(run_id, task_id)
    return Budget(queries, dollars, spent_queries=spent_queries, spent_dollars=spent_dollars,
                  by_role=store.queries_by_role(run_id, task_id))


@dataclass
class Heard:
    """What the progress lines need from the replies of one task: the offline proposer's
    move behind each LLM call, and whether the brainstorming agent (no candidate) answered."""

    moves: dict[int | None, str] = field(default_factory=dict)
    ideas: int = 0

    def __call__(self, request: Request, reply: Reply) -> None:
        if request.role == "iba":
            self.ideas += 1
        if "move" in reply.meta:
            self.moves[reply.meta.get("llm_call_id")] = reply.meta["move"]


class Optimizer:
    """`progress` hears the events of :mod:`pike_bench.progress`; each prints as its line."""

    def __init__(self, evaluator: Evaluator | EvaluatorPool, options: OptimizeOptions,
                 progress: Callable[[Event], None] = print):
        self.evaluator, self.options, self.progress = evaluator, options, progress
        self.config = preset(options.strategy)
        self._turn: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None  # see _one_at_a_time
        self.prebuilder = _prebuilder(evaluator) if options.prebuild else None

    def run_key(self, task: Task) -> str:
        """Same command, same key: a rerun finds its run in the store and resumes it."""
        return _hashed(self._key_parts(task))

    def _other_budgets(self, task: Task, store: Store) -> list[int]:
        """The runs of the same command with another query budget (1 to 200): the same
        candidates, judged by the same evaluator, so their verdicts hold for this run."""
        parts = self._key_parts(task)
        keys = [_hashed({**parts, "queries": queries}) for queries in range(1, 201) if queries != parts["queries"]]
        return store.run_ids(keys)

    def _key_parts(self, task: Task) -> dict:
        config = asdict(self.config) if is_dataclass(self.config) else self.config
        parts = {
            "task": task.id, "sha": task.sha256(), "strategy": self.options.strategy, "config": config,
            "llm": choose_llm(self.options), "model": self.options.model, "efa_model": self.options.efa_model,
            "queries": self.options.budget_queries, "dollars": self.options.budget_dollars,
            "device": self.evaluator.device, "size": self.evaluator.size, "mode": self.evaluator.mode,
        }
        if self.evaluator.check.name != "strict":  # so the keys of strict runs stay what they were
            parts["check"] = self.evaluator.check.name
        return parts

    def optimize(self, task: Task) -> TaskOutcome:
        return asyncio.run(self.optimize_async(task))

    async def optimize_async(self, task: Task) -> TaskOutcome:
        started, outcome = time.perf_counter(), None
        self.progress(TaskStarted(task.id, self.options.strategy, choose_llm(self.options),
                                  self.options.budget_queries, self.options.budget_dollars))
        try:
            outcome = await self._search(task)
            return outcome
        finally:
            self.progress(TaskFinished(task.id, outcome, time.perf_counter() - started))

    async def _search(self, task: Task) -> TaskOutcome:
        self.options.store_path.parent.mkdir(parents=True, exist_ok=True)
        with Store(self.options.store_path) as store:
            run_id = store.start_run(self.run_key(task), {"task": task.id, "strategy": self.options.strategy,
                                                          "llm": choose_llm(self.options),
                                                          "check": self.evaluator.check.name})
            proposer = make_proposer(self.options)
            queries = self.options.budget_queries
            library_size = getattr(proposer, "library_size", None)
            if library_size is not None and queries is not None:  # a finite library (offline): no query re-proposes it
                queries = min(queries, library_size(task.path.read_text(), self.evaluator.device))
            agents = Agents(
                proposer,
                resumed_budget(queries, self.options.budget_dollars, store, run_id, task.id),
                self._evaluator_for(task, store, run_id),
                task.id,
                task.path.read_text(),
                device=self.evaluator.device,
                ledger=StoreLedger(store, run_id, proposer),
            )
            heard = agents.on_reply = Heard()
            agents.on_scored = lambda scored: self._record(store, run_id, task, scored, agents, heard)
            try:
                if isinstance(self.config, PikeBConfig):
                    await pike_b(agents, self.config)
                else:
                    await pike_o(agents, self.config)
            finally:
                await proposer.aclose()
            store.finish_run(run_id)
            return self._outcome(task, agents)

    def _evaluator_for(self, task: Task, store: Store, run_id: int):
        """Evaluate each distinct source once: a candidate whose source was (or is being)
        evaluated in this run, or in a run of the same command with another budget, takes
        that verdict, at no GPU time."""
        evaluations: dict[str, asyncio.Future] = {}
        other_runs = self._other_budgets(task, store)

        async def evaluate(source: str) -> Outcome:
            key = source_hash(source)
            if key in evaluations:
                return _outcome_of(await asyncio.shield(evaluations[key]), reused=True)
            evaluations[key] = asyncio.get_running_loop().create_future()
            try:
                recorded = store.recorded_evaluation(run_id, task.id, source)  # a resumed run
                elsewhere = None if recorded or not other_runs else store.verdict_of_other_runs(other_runs, task.id, source)
                known = recorded or elsewhere
                result = EvalResult.from_dict(known) if known else await self._evaluate_async(task, source)
            except BaseException:
                evaluations.pop(key).cancel()  # whoever waits on it is being cancelled too
                raise
            evaluations[key].set_result(result)
            return _outcome_of(result, reused=elsewhere is not None)

        return evaluate

    async def _evaluate_async(self, task: Task, source: str) -> EvalResult:
        on_phase = self._phases_of(task)
        if self.prebuilder is not None and self.prebuilder.needed(source):
            # Compiled on the CPU first, while the GPU evaluates other candidates.
            self.progress(Waiting(task.id, "building the candidate's extensions on the CPU"))
            await self.prebuilder.build(source)
        # A pool spreads candidates over its devices; a single evaluator takes them in turn.
        if isinstance(self.evaluator, EvaluatorPool):
            return await self.evaluator.evaluate(task, source, on_phase=on_phase)
        try:
            async with self._one_at_a_time():
                return await asyncio.to_thread(self.evaluator.evaluate, task, source, on_phase=on_phase)
        except asyncio.CancelledError:  # Ctrl-C: see Evaluator.interrupt
            self.evaluator.interrupt()
            raise

    def _one_at_a_time(self) -> asyncio.Lock:
        """One worker process: evaluations go in turn. A lock of the event loop, not of the
        threads: the next evaluation starts only once the loop has heard this one's verdict,
        so the progress lines come in order. One per loop (each task's runs its own)."""
        loop = asyncio.get_running_loop()
        if self._turn is None or self._turn[0] is not loop:
            self._turn = (loop, asyncio.Lock())
        return self._turn[1]

    def _phases_of(self, task: Task):
        """The worker's steps as Waiting events, handed from the evaluating thread to this
        loop's, where every other progress event is sent from."""
        loop = asyncio.get_running_loop()

        def on_phase(phase: str, who: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed (Ctrl-C): nobody is watching
                loop.call_soon_threadsafe(self.progress, waiting_for(task.id, phase, who))

        return on_phase

    def _record(self, store: Store, run_id: int, task: Task, scored: Scored, agents: Agents, heard: Heard) -> None:
        first = store.first_evaluated(run_id, task.id, scored.source)
        candidate = store.record_candidate(
            run_id, task.id, scored.source, parent_ids=list(scored.parents), island=scored.island,
            round=scored.round, agent=scored.agent, slot=scored.slot, llm_call_id=scored.call_id, same_as=first,
        )
        recorded = store.has_evaluation(candidate)  # by an earlier start of this run
        if not recorded:
            store.record_evaluation(candidate, scored.outcome.result)
        result = scored.outcome.result
        best = agents.best(1)
        self.progress(Evaluated(
            task.id, scored.number + 1, scored.agent, move=heard.moves.get(scored.call_id),
            status=scored.outcome.status, reason=scored.outcome.reason, speedups=_speedups(result),
            seconds=result.seconds if result else None, reused=recorded or scored.outcome.reused,
            queries_done=len(agents.history) + heard.ideas, best=best[0].outcome.speedup if best else None,
        ))

    def _outcome(self, task: Task, agents: Agents) -> TaskOutcome:
        best = agents.best(1)
        top = best[0] if best else None
        result = top.outcome.result if top else None
        over = _speedups(result)
        outcome = TaskOutcome(
            task.id, top, top.outcome.speedup if top else None, over.get("compile"),
            agents.budget.spent_queries, agents.budget.spent_dollars, len(agents.history),
            failed_queries=len(agents.failed_queries),
            speedup_graph=over.get("graph"),
        )
        if result is not None and result.status == CORRECT:
            outcome.solution, outcome.note = self._write_solution(task, top, result)
        elif agents.unaffordable == float("inf") and not agents.history:
            outcome.note = "no query sent: its model has no price, so no dollar cap can hold; add it to $PIKE_PRICES"
        elif agents.unaffordable is not None and not agents.history:
            outcome.note = (f"no query fits the dollar budget: one query may cost up to ${agents.unaffordable:.4f}, "
                            f"and ${agents.budget.spent_dollars:.4f} of ${agents.budget.dollars:.4f} is spent")
        flagged = ranked(s for s in agents.history if s.outcome.status == SUSPICIOUS and s.outcome.speedups)
        # Not a dead end: a flagged candidate faster than the best correct one (ranked
        # together, as candidates are) is shown with how to accept it after a person has looked.
        if flagged and (top is None or ranked([flagged[0], top])[0] is flagged[0]):
            outcome.review = flagged[0]
            outcome.review_file = self.options.store_path.parent / "review" / f"{task.id.replace('/', '__')}.py"
            outcome.review_file.parent.mkdir(parents=True, exist_ok=True)
            outcome.review_file.write_text(flagged[0].source)
            outcome.store_path = self.options.store_path
        return outcome

    def _write_solution(self, task: Task, best: Scored, result: EvalResult) -> tuple[Path | None, str]:
        """Keep the best candidate as the task's solution "best" when the gate would pass
        it (its interval over eager lies above 1.0x) and it beats the stored one on this
        device; else say why not."""
        root = self.options.solutions_dir
        stored = {s.name: s for s in solutions.for_task(root, task.id)}.get("best")
        eager = result.speedups.get("eager")
        if eager is None or eager.low <= 1.0:  # the reference itself may be as fast: nothing to keep or gate
            shown = eager if eager is not None else "no timing"
            return None, f"not kept: {shown} over eager is not clearly above 1.0x"
        slower = _slower_than_kept(result, stored) if stored is not None else None
        if slower:
            return None, f"not kept: the kept solution is faster ({slower})"
        origin = {"by": "pike optimize", "strategy": self.options.strategy, "llm": choose_llm(self.options),
                  "model": self.options.model, "efa_model": self.options.efa_model, "slot": best.slot}
        return solutions.save(root, solutions.from_result(task, "best", best.source, result, origin)), ""


def _slower_than_kept(result: EvalResult, kept: solutions.Solution) -> str | None:
    """How the kept solution beats the new best on this device, ranked as candidates are
    (pike_bench.ranking) on the speedups it was accepted with here; over eager alone where
    it was accepted on another device and the gate measured it here. None: the new one wins."""
    new = {name: speedup.value for name, speedup in result.speedups.items()}
    if kept.accepted.get("device_name") == result.device_name:
        old = {name: speedup["value"] for name, speedup in kept.accepted.get("speedups", {}).items()}
    elif result.device_name in kept.baselines:
        old, new = {"eager": kept.baselines[result.device_name]}, {"eager": new.get("eager")}
    else:
        return None
    mine, theirs = standings([new, old])
    if theirs is None or (mine is not None and mine > theirs):
        return None
    over = "the fastest baseline" if len(old) > 1 else "eager"
    return f"{theirs:.2f}x over {over}, against {mine or 0.0:.2f}x"


def _hashed(key_parts: dict) -> str:
    return hashlib.sha256(json.dumps(key_parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _outcome_of(result: EvalResult, reused: bool = False) -> Outcome:
    eager = result.speedups.get("eager")
    runtime = result.timing.median_ms if result.timing else None
    return Outcome(result.status, runtime, eager.value if eager else None, result.reason, result.detail,
                   result=result, reused=reused)


def _speedups(result: EvalResult | None) -> dict[str, float]:
    """Over each baseline timed beside the candidate (none for a reply without code)."""
    return {name: speedup.value for name, speedup in result.speedups.items()} if result else {}


def _prebuilder(evaluator: Evaluator | EvaluatorPool) -> Prebuilder | None:
    """Builds beside the local workers; a Ray actor builds where it runs."""
    if isinstance(evaluator, EvaluatorPool):
        local = [e for e in evaluator.evaluators if isinstance(e, Evaluator)]
        return Prebuilder(local[0].device, sandbox=local[0].sandbox) if local else None
    return Prebuilder(evaluator.device, sandbox=evaluator.sandbox)


__all__ = ["Optimizer", "OptimizeOptions", "TaskOutcome", "LLMS"]
