"""Tasks in flight: several tasks optimized at once, so that the GPU keeps checking and
timing while the CPU builds.

Alone, a task leaves its GPU idle whenever its worker builds: the worker starting, a
compile baseline compiling, a candidate's extension compiling on the CPU. With N lanes, N tasks run at once, each lane with workers of its own (a twin
of the evaluator: one more worker per GPU), so a task keeps its reference and compiled
baselines in its worker. The workers of a GPU take turns on it (evaluate.turns): a
timed section runs alone, checks of several workers may overlap, builds overlap
everything.

Each task keeps its own run in the record, its own budget and its own ledger, exactly
as when it runs alone: the run's key does not depend on the lane (a twin names its
devices as the original does), so a resumed sweep finds its runs whatever the number
in flight.

    lanes = InFlight(Optimizer(evaluator, options), 2)
    try:
        outcomes = lanes.optimize_all(tasks)
    finally:
        lanes.close()

Under pytest, items run one after another: the lanes start on the first item with all
the selected tasks, and each item waits for its own task's outcome
(:meth:`InFlight.result`), while the event loop it drives also runs the other lanes.
"""

from __future__ import annotations

import asyncio
from typing import Iterable

from pike_bench.evaluate import Evaluator
from pike_bench.evaluate.pool import EvaluatorPool
from pike_bench.optimize import Optimizer, TaskOutcome
from pike_bench.tasks import Task


def twin(evaluator):
    """The same evaluator with workers of its own (one more per device)."""
    if isinstance(evaluator, Evaluator):
        return evaluator.twin()
    if isinstance(evaluator, EvaluatorPool) and all(isinstance(e, Evaluator) for e in evaluator.evaluators):
        return EvaluatorPool([e.twin() for e in evaluator.evaluators], evaluator.max_crashes, evaluator.say)
    raise ValueError("tasks in flight need local workers (one evaluator, or --devices); a Ray pool spreads "
                     "one task's candidates over the cluster instead")


class InFlight:
    """`lanes` tasks at a time, in the order given; one persistent event loop."""

    def __init__(self, optimizer: Optimizer, lanes: int):
        if lanes < 1:
            raise ValueError(f"{lanes} tasks in flight: give at least 1")
        self.optimizers = [optimizer]
        for _ in range(lanes - 1):
            lane = Optimizer(twin(optimizer.evaluator), optimizer.options, optimizer.progress)
            lane.prebuilder = optimizer.prebuilder  # one cap on CPU builds, whatever the lanes
            self.optimizers.append(lane)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outcomes: dict[str, asyncio.Future] = {}
        self._queue: list[Task] = []  # tasks no lane has begun yet
        self._lanes: dict[int, asyncio.Task] = {}  # by optimizer

    def start(self, tasks: Iterable[Task]) -> None:
        """Queue the tasks; lanes begin on them as soon as the loop runs (in `result`)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        for task in tasks:
            if task.id not in self._outcomes:
                self._outcomes[task.id] = self._loop.create_future()
                self._queue.append(task)
        for index, optimizer in enumerate(self.optimizers):
            lane = self._lanes.get(index)
            if self._queue and (lane is None or lane.done()):
                self._lanes[index] = self._loop.create_task(self._lane(optimizer))

    def result(self, task: Task) -> TaskOutcome:
        """The task's outcome; runs the loop (every lane) until it is there."""
        if task.id not in self._outcomes:
            self.start([task])
        return self._loop.run_until_complete(self._outcomes[task.id])

    def optimize_all(self, tasks: list[Task]) -> list[TaskOutcome]:
        self.start(tasks)
        return [self.result(task) for task in tasks]

    async def _lane(self, optimizer: Optimizer) -> None:
        while self._queue:
            task = self._queue.pop(0)
            outcome = self._outcomes[task.id]
            try:
                outcome.set_result(await optimizer.optimize_async(task))
            except asyncio.CancelledError:
                outcome.cancel()
                raise
            except Exception as exc:  # the task's item (or caller) hears it; the lane goes on
                outcome.set_exception(exc)

    def close(self) -> None:
        """Stop what is still in flight (Ctrl-C, an item that exited the session): its
        evaluations are interrupted and not recorded, so a rerun makes them again. The
        twins' workers stop here; the first lane's evaluator is the caller's to close."""
        loop, self._loop = self._loop, None
        if loop is not None:
            pending = [lane for lane in self._lanes.values() if not lane.done()]
            for lane in pending:
                lane.cancel()  # each interrupts its evaluator (Optimizer._evaluate_async)
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
        for lane in self.optimizers[1:]:
            lane.evaluator.close()


__all__ = ["InFlight", "twin"]
