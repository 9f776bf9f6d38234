"""Per-task and per-level baseline tables from pytest-benchmark JSON files of the suite.

    python benchmarks/summarize.py benchmarks/results/*/pike_set.json [--per-task]

Reads what `pytest --benchmark-json=FILE` wrote for the task suites (pike_bench/task_tests.py)
(eager, compile and graph of each task, with the speedup over eager in extra_info)
and prints geomean speedups over eager per level (and per task with --per-task).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict

from tabulate import tabulate


def load(paths: list[str]) -> dict[str, dict[str, dict]]:
    """task id -> baseline -> {median_ms, speedup, device}; later files win."""
    tasks: dict[str, dict[str, dict]] = defaultdict(dict)
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for bench in data["benchmarks"]:
            info = bench["extra_info"]
            tasks[info["task"]][info["baseline"]] = {
                "median_ms": bench["stats"]["median"] * 1e3,
                "speedup": info.get("speedup_over_eager"),
                "device": f'{info["device_name"]}, torch {info["torch"]}',
            }
    return tasks


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def level_table(tasks: dict[str, dict[str, dict]]) -> str:
    by_level: dict[str, list[dict[str, dict]]] = defaultdict(list)
    for task_id, baselines in tasks.items():
        by_level[task_id.split("/")[0]].append(baselines)
    rows = []
    for level, entries in sorted(by_level.items()):
        row = [level, len(entries)]
        for name in ("compile", "graph"):
            ratios = [e[name]["speedup"] for e in entries if e.get(name, {}).get("speedup")]
            row.append(f"{geomean(ratios):.2f}x ({len(ratios)})" if ratios else "-")
        rows.append(row)
    return tabulate(rows, headers=["level", "tasks", "compile/eager geomean", "graph/eager geomean"], tablefmt="github")


def _number_key(task_id: str) -> tuple:
    level, name = task_id.split("/", 1)
    number = name.split("_", 1)[0]
    return (level, int(number) if number.isdigit() else 0, name)


def task_table(tasks: dict[str, dict[str, dict]]) -> str:
    rows = []
    for task_id, b in sorted(tasks.items(), key=lambda item: _number_key(item[0])):
        cell = lambda name, key, fmt: fmt.format(b[name][key]) if b.get(name, {}).get(key) else "-"  # noqa: E731
        rows.append([
            task_id,
            cell("eager", "median_ms", "{:.4g}"),
            cell("compile", "median_ms", "{:.4g}"),
            cell("graph", "median_ms", "{:.4g}"),
            cell("compile", "speedup", "{:.2f}x"),
            cell("graph", "speedup", "{:.2f}x"),
        ])
    headers = ["task", "eager ms", "compile ms", "graph ms", "compile/eager", "graph/eager"]
    return tabulate(rows, headers=headers, tablefmt="github")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--per-task", action="store_true")
    args = parser.parse_args()
    tasks = load(args.files)
    devices = sorted({b["device"] for baselines in tasks.values() for b in baselines.values()})
    print(level_table(tasks))
    if args.per_task:
        print()
        print(task_table(tasks))
    print(f"\n{'; '.join(devices)}")


if __name__ == "__main__":
    main()
