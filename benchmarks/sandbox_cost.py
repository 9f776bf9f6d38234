"""What the sandbox costs: honest candidates evaluated with the sandbox on and off, in turn.

    python benchmarks/sandbox_cost.py OUT.json [--device cpu] [--rounds 5]

Each round evaluates every case twice per mode, on a fresh Evaluator: `cold` (the worker
starts, imports torch, builds the candidate, checks and times it with eager and compile)
and then `warm` (a second candidate on the same worker). The modes alternate their order
from round to round, so a drift of the machine falls on both. A first round warms the
caches (extension, inductor) and is not counted. `start` is the fixed cost alone: a
process that does nothing, started through the sandbox and without it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from tabulate import tabulate

from pike_bench.evaluate import Evaluator, TimingOptions
from pike_bench.evaluate.sandbox import Sandbox
from pike_bench.tasks import find_task, task_from_file

ROOT = Path(__file__).resolve().parent.parent
MODES = ("on", "off")


def cases() -> dict[str, tuple]:
    """name: (task, first candidate, second candidate); the second differs only by a comment."""
    mlp = find_task("level3/1_MLP")
    pytorch = mlp.path.read_text() + "\n\nclass ModelNew(Model):\n    pass\n"
    tiny = task_from_file(ROOT / "tests" / "data" / "level0" / "1_TinyMLP.py")
    cpp = (ROOT / "tests" / "data" / "cpp" / "relu_cpp.py").read_text()
    return {
        "level3/1_MLP, PyTorch": (mlp, pytorch, pytorch + "# the second candidate\n"),
        "level0/1_TinyMLP, C++ (load_inline)": (tiny, cpp, cpp + "# the second candidate\n"),
    }


def evaluate_twice(device: str, mode: str, task, first: str, second: str, max_seconds: float) -> dict:
    timing = TimingOptions(max_seconds=max_seconds)
    with Evaluator(device, sandbox=mode, baselines=("eager", "compile"), timing=timing) as evaluator:
        cold = evaluator.evaluate(task, first)
        warm = evaluator.evaluate(task, second)
    return {
        "status": [cold.status, warm.status],
        "cold_s": cold.seconds,
        "warm_s": warm.seconds,
        "candidate_ms": warm.timing.median_ms if warm.timing else None,
        "over_eager": warm.speedups["eager"].value if "eager" in warm.speedups else None,
    }


def start_cost(repeats: int = 20) -> dict[str, list[float]]:
    """Seconds to start and end `true`, through the sandbox and without it."""
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(repeats):
        for mode in MODES:
            confined = Sandbox.choose(mode).prepare(["true"])
            started = time.perf_counter()
            subprocess.run(confined.argv, env=confined.env, check=True)
            seconds[mode].append(time.perf_counter() - started)
            confined.remove_scratch()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-time", type=float, default=1.0, help="timing rounds per evaluation (seconds)")
    args = parser.parse_args()
    Sandbox.choose("on")  # no sandbox here: SandboxUnavailable says why
    rows = []
    for round_ in range(args.rounds + 1):
        for name, (task, first, second) in cases().items():
            for mode in MODES if round_ % 2 == 0 else reversed(MODES):
                row = {"round": round_, "case": name, "sandbox": mode, "counted": round_ > 0,
                       **evaluate_twice(args.device, mode, task, first, second, args.max_time)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "torch": torch.__version__, "device": args.device},
        "command": " ".join(["python", *sys.argv]),
        "rows": rows,
        "start_s": start_cost(),
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(summary(result))
    return 0


def summary(result: dict) -> str:
    table = []
    counted = [row for row in result["rows"] if row["counted"]]
    for name in dict.fromkeys(row["case"] for row in counted):
        for mode in MODES:
            mine = [row for row in counted if row["case"] == name and row["sandbox"] == mode]
            median = lambda key: statistics.median(row[key] for row in mine)  # noqa: E731
            table.append([name, mode, len(mine), f"{median('cold_s'):.2f}", f"{median('warm_s'):.2f}",
                          f"{median('candidate_ms'):.4f}", f"{median('over_eager'):.2f}"])
    for mode, seconds in result["start_s"].items():
        table.append([f"start `true` ({len(seconds)} times)", mode, len(seconds), f"{statistics.median(seconds):.4f}",
                      "", "", ""])
    return tabulate(table, headers=["case", "sandbox", "rounds", "cold s (median)", "warm s (median)",
                                    "candidate ms (median)", "x over eager (median)"], tablefmt="github")


if __name__ == "__main__":
    sys.exit(main())
