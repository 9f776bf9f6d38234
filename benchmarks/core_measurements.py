"""Measurements of the core harness on a GPU (see benchmarks/results/README.md).

    python benchmarks/core_measurements.py stability OUT.json   # ratio spread over 3 runs
    python benchmarks/core_measurements.py cost OUT.json        # seconds from source to EvalResult

`stability`: for GRU/LSTM-like and convnet tasks, the compile baseline against eager
is measured in 3 separate runs (a fresh worker process each); the spread of the
ratio is compared with the spread of the eager medians.

`cost`: an honest PyTorch-only candidate (the reference rewritten as ModelNew),
evaluated on a cold worker, then a second candidate on the warm worker; with and
without the timing rounds, so the build-and-check cost stands on its own.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from pike_bench.evaluate import Evaluator, TimingOptions
from pike_bench.suite import measure_baselines
from pike_bench.tasks import find_task

STABILITY_TASKS = ["level3/39_GRU", "level3/35_LSTM", "level3/20_MobileNetV2", "level3/10_ResNet101"]
COST_TASKS = ["level3/1_MLP", "level3/35_LSTM", "level3/8_ResNetBasicBlock"]


def stability(max_seconds: float = 10.0) -> dict:
    rows = {}
    for task_id in STABILITY_TASKS:
        task = find_task(task_id)
        runs = []
        for repeat in range(3):
            with Evaluator("cuda", baselines=("eager", "compile"), timing=TimingOptions(max_seconds=max_seconds)) as ev:
                run = measure_baselines(ev, task)
            compiled = run.speedups.get("compile")
            runs.append({
                "status": run.status,
                "eager_median_ms": run.median_ms("eager"),
                "compile_median_ms": run.median_ms("compile"),
                "rounds": run.results["eager"].timing.rounds if run.results["eager"].timing else 0,
                "compile_speedup": None if compiled is None else [compiled.value, compiled.low, compiled.high],
            })
            print(task_id, repeat, runs[-1], flush=True)
        rows[task_id] = runs
    return rows


def cost() -> dict:
    rows = {}
    for task_id in COST_TASKS:
        task = find_task(task_id)
        honest = task.path.read_text() + "\n\nclass ModelNew(Model):\n    pass\n"
        second = honest + "\n# a second candidate, same computation\n"
        entry = {}
        with Evaluator("cuda", baselines=("eager", "compile")) as ev:
            for label, source, timing in [
                ("cold_worker_full", honest, True),
                ("warm_worker_full", second, True),
                ("warm_worker_check_only", second + "#3\n", False),
            ]:
                ev.timing = TimingOptions() if timing else None
                started = time.perf_counter()
                result = ev.evaluate(task, source)
                entry[label] = {
                    "seconds": time.perf_counter() - started,
                    "status": result.status,
                    "rounds": result.timing.rounds if result.timing else 0,
                    "timed_seconds_estimate": _timed_seconds(result),
                }
                print(task_id, label, entry[label], flush=True)
        rows[task_id] = entry
    return rows


def _timed_seconds(result) -> float:
    # Time spent inside timed calls (all contestants), a lower bound of the timing phase.
    total = sum(result.timing.times_ms) if result.timing else 0.0
    total += sum(sum(b.timing.times_ms) for b in result.baselines.values() if b.timing)
    return total / 1e3


if __name__ == "__main__":
    what, out = sys.argv[1], sys.argv[2]
    data = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        what: stability() if what == "stability" else cost(),
    }
    with open(out, "w") as f:
        json.dump(data, f, indent=2)
