"""Baseline measurements of a task, as the pytest suite uses them (no pytest imports).

One worker job per task checks eager, compile and graph on Hypothesis inputs and
times them in interleaved rounds; each baseline's test then reads its share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pike_bench.evaluate import Evaluator
from pike_bench.evaluate.result import CORRECT, ContestantResult, Speedup
from pike_bench.evaluate.stats import paired_speedup
from pike_bench.tasks import Task

EAGER = "eager"  # the baseline the others are over


@dataclass
class BaselineRun:
    task: Task
    device: str
    device_name: str
    torch_version: str
    hypothesis_seed: int
    results: dict[str, ContestantResult]
    task_error: str = ""
    speedups: dict[str, Speedup] = field(default_factory=dict)  # each baseline over eager

    @property
    def status(self) -> str:
        if self.task_error:
            return "task_error"
        bad = [f"{n}: {r.status}" for n, r in self.results.items() if r.status != CORRECT]
        return "; ".join(bad) if bad else CORRECT

    def median_ms(self, name: str) -> float | None:
        result = self.results.get(name)
        return result.timing.median_ms if result and result.timing else None


def measure_baselines(evaluator: Evaluator, task: Task, hypothesis_seed: int | None = None) -> BaselineRun:
    reply = evaluator.run(task, evaluator.contestants(task), hypothesis_seed)
    run = BaselineRun(
        task=task,
        device=evaluator.device,
        device_name=reply.device_name,
        torch_version=reply.torch_version,
        hypothesis_seed=reply.hypothesis_seed,
        results=reply.results,
        task_error=reply.task_error,
    )
    eager = reply.results.get(EAGER)
    if eager is not None and eager.timing is not None:
        for name, result in reply.results.items():
            if name != EAGER and result.timing is not None:
                run.speedups[name] = paired_speedup(eager.timing.times_ms, result.timing.times_ms)
    return run
