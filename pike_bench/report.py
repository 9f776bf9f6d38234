"""Tables for the terminal (tabulate)."""

from __future__ import annotations

from tabulate import tabulate

from pike_bench.evaluate.result import EvalResult, Speedup
from pike_bench.suite import BaselineRun


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _speedup(value: Speedup | None) -> str:
    return "-" if value is None else f"{value.value:.2f}x [{value.low:.2f}, {value.high:.2f}]"


def baseline_table(runs: list[BaselineRun]) -> str:
    """Per task: eager, compile and graph times (medians) and their speedups over eager."""
    rows = [
        [
            run.task.id,
            _ms(run.median_ms("eager")),
            _ms(run.median_ms("compile")),
            _ms(run.median_ms("graph")),
            _speedup(run.speedups.get("compile")),
            _speedup(run.speedups.get("graph")),
            run.status,
        ]
        for run in runs
    ]
    headers = ["task", "eager ms", "compile ms", "graph ms", "compile speedup", "graph speedup", "status"]
    devices = sorted({f"{run.device} ({run.device_name}), torch {run.torch_version}" for run in runs})
    note = "speedup = eager time / baseline time: median of per-round ratios, 95% bootstrap interval"
    return tabulate(rows, headers=headers, tablefmt="github") + f"\n{'; '.join(devices)}\n{note}"


def eval_table(result: EvalResult) -> str:
    """One candidate against its baselines."""
    rows = []
    if result.timing is not None:
        rows.append(["candidate", _ms(result.timing.median_ms), result.timing.rounds, "", result.status])
    for name, baseline in result.baselines.items():
        timing = baseline.timing
        rows.append([
            name,
            _ms(timing.median_ms if timing else None),
            timing.rounds if timing else "-",
            _speedup(result.speedups.get(name)),
            baseline.status,
        ])
    if not rows:
        return ""
    return tabulate(rows, headers=["", "median ms", "rounds", "candidate speedup", "status"], tablefmt="github")


def optimize_table(outcomes: list) -> str:
    """Per task: the best candidate's speedups, and what the search spent. A speedup not
    measured (graph on the CPU, or no correct candidate) is shown as "-"."""
    rows = [
        [
            o.task_id,
            "-" if o.speedup_eager is None else f"{o.speedup_eager:.2f}x",
            "-" if o.speedup_compile is None else f"{o.speedup_compile:.2f}x",
            "-" if o.speedup_graph is None else f"{o.speedup_graph:.2f}x",
            o.queries,
            o.failed_queries,
            f"${o.dollars:.2f}",
            o.candidates,
            str(o.solution) if o.solution else (o.note or "-"),
        ]
        for o in outcomes
    ]
    headers = ["task", "best over eager", "best over compile", "best over graph", "queries", "failed queries",
               "dollars", "candidates", "solution written"]
    return "\n".join([tabulate(rows, headers=headers, tablefmt="github")] + [review_line(o) for o in outcomes if o.review])


def review_line(outcome) -> str:
    """A task whose fastest candidate was flagged suspicious: its speedup, and how to keep it."""
    flagged = outcome.review.outcome
    return (f"{outcome.task_id}: best candidate needs review: {flagged.speedup:.2f}x over eager ({flagged.reason}); "
            f"after review: pike accept {outcome.review_file} --task {outcome.task_id} --store {outcome.store_path}")
