"""The tests every task file gets from the plugin's collector (pike_bench.plugin.TaskFile):
its baselines checked on Hypothesis inputs and timed, the optimizer's search (with
--pike-optimize), and every kept solution gated (correct on fresh inputs, not slower
than recorded).

Eager, compile and graph of one task are timed side by side in one worker job; each
baseline's test hands its share of the rounds to pytest-benchmark. Imported only when
a task file is collected (it imports torch).
"""

import pytest

from pike_bench.baselines import BASELINES
from pike_bench.evaluate.result import CORRECT
from pike_bench.evaluate.timing import record_in_benchmark
from pike_bench.report import review_line


@pytest.mark.parametrize("baseline", BASELINES)
def test_baseline(pike_task, pike_baselines, baseline, benchmark, pike_settings):
    if baseline not in pike_settings.baseline_names():
        pytest.skip(f"{baseline} is not in {pike_settings.flag('baselines')}")
    run = pike_baselines
    if run.task_error:
        pytest.fail(run.task_error, pytrace=False)
    result = run.results.get(baseline)
    if result is None:
        if baseline == "graph" and not run.device.startswith("cuda"):
            pytest.skip("the graph baseline (CUDA graph replay) needs a CUDA device")
        pytest.fail(f"{baseline} was not evaluated", pytrace=False)
    if result.status != CORRECT:
        pytest.fail(f"{baseline} is {result.status}: {result.reason}\n{result.detail}".strip(), pytrace=False)
    speedup = run.speedups.get(baseline)
    benchmark.group = pike_task.id
    record_in_benchmark(
        benchmark,
        result.timing.times_ms,
        {
            "task": pike_task.id,
            "baseline": baseline,
            "device": run.device,
            "device_name": run.device_name,
            "torch": run.torch_version,
            "timer": "cuda events" if run.device.startswith("cuda") else "perf_counter",
            "speedup_over_eager": None if speedup is None else speedup.value,
            "speedup_interval": None if speedup is None else [speedup.low, speedup.high],
            "hypothesis_seed": run.hypothesis_seed,
        },
    )


@pytest.mark.pike_optimize
def test_optimize(pike_task, pike_optimize):
    """With --pike-optimize: the agents search within the budget; the best candidate is kept."""
    outcome = pike_optimize
    if outcome.best is None and outcome.review is not None:
        pytest.fail(review_line(outcome), pytrace=False)
    if outcome.best is None:
        pytest.fail(f"no correct candidate in {outcome.queries} queries ({outcome.candidates} evaluated)", pytrace=False)


def test_solution(pike_solution, pike_gate, benchmark):
    """A kept solution: re-verified on fresh inputs and re-timed against eager in the same run."""
    task, solution = pike_solution
    verdict = pike_gate
    if verdict.result.timing is not None:
        eager = verdict.result.speedups.get("eager")
        benchmark.group = f"{task.id} solutions"
        record_in_benchmark(benchmark, verdict.result.timing.times_ms, {
            "task": task.id, "solution": solution.name, "device": verdict.result.device,
            "device_name": verdict.result.device_name, "torch": verdict.result.torch_version,
            "speedup_over_eager": None if eager is None else eager.value,
            "speedup_interval": None if eager is None else [eager.low, eager.high],
        })
    if not verdict.passed:
        pytest.fail(verdict.message, pytrace=False)
