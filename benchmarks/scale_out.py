"""The optimizer on one GPU and on several, on the same work (the scale-out issue).

    python benchmarks/scale_out.py OUT.json [--sets "0;0,1"] [--tasks level3/1_MLP,...] [--budget 4]

For each device set (";" between sets, as `--pike-devices` takes them), the offline
proposer runs PIKE-B without IBA on the same tasks with the same budget, with a fresh
record and fresh compile caches, so no set reuses another's builds. Written to OUT.json
after every set:

- evaluations per minute of each set, and its efficiency against the first set
  (rate / (first rate x devices / first devices): 1.0 is linear);
- agreement: every candidate source evaluated in two sets, with its speedup over eager
  each time (and each one's 95% interval): pairs on two GPUs, and pairs on the same GPU,
  whose differences are the noise of one GPU that the others are compared with.

On the CPU (`--sets "cpu;cpu,cpu" --size small`) it checks the script, not a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import torch

from pike_bench.evaluate import TimingOptions
from pike_bench.evaluate.pool import EvaluatorPool, parse_devices
from pike_bench.optimize import Optimizer, OptimizeOptions
from pike_bench.progress import for_terminal
from pike_bench.tasks import find_task

TASKS = "level3/1_MLP,level3/4_LeNet5,level3/8_ResNetBasicBlock,level3/19_MobileNetV1"


def run_set(devices: list[str], tasks: list[str], budget: int, size: str | None, folder: Path) -> dict:
    # Fresh caches for each set: the workers inherit these when the pool starts them.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "inductor")
    os.environ["TRITON_CACHE_DIR"] = str(folder / "triton")
    options = OptimizeOptions(strategy="pike-b-no-iba", budget_queries=budget, llm="offline",
                              store_path=folder / "runs.sqlite", solutions_dir=folder / "solutions")
    timing = TimingOptions(max_seconds=1)
    started = time.perf_counter()
    with EvaluatorPool.on_devices(devices, size=size, trials=2, timing=timing, baselines=("eager", "compile")) as pool:
        optimizer = Optimizer(pool, options, progress=for_terminal())
        for task_id in tasks:
            optimizer.optimize(find_task(task_id))
    minutes = (time.perf_counter() - started) / 60
    evaluations = evaluations_of(folder / "runs.sqlite")
    return {"devices": devices, "minutes": minutes, "evaluations": len(evaluations),
            "per_minute": len(evaluations) / minutes, "candidates": evaluations}


def evaluations_of(store: Path) -> list[dict]:
    with sqlite3.connect(store) as db:
        rows = db.execute(
            "SELECT c.task_id, c.source_hash, e.status, e.speedup_eager, e.speedup_eager_low, e.speedup_eager_high,"
            " e.result FROM evaluations e JOIN candidates c ON c.id = e.candidate_id ORDER BY e.id").fetchall()
    return [{"task": task, "source": source, "status": status, "device": json.loads(result)["device"],
             "speedup": speedup, "interval": [low, high]}
            for task, source, status, speedup, low, high, result in rows]


def agreement(sets: list[dict]) -> list[dict]:
    """Every source measured in two sets: its speedup both times. A pair on two GPUs
    (``same_gpu`` false) is the agreement asked for; a pair on one GPU is that GPU's own
    run-to-run noise, which the cross-GPU differences are judged against."""
    seen: dict[tuple[str, str], dict] = {}
    pairs = []
    for measured in sets:
        for c in measured["candidates"]:
            if c["status"] != "correct" or c["speedup"] is None:
                continue
            key = (c["task"], c["source"])
            first = seen.setdefault(key, c)
            if first is not c:
                pairs.append({"task": c["task"], "source": c["source"][:12],
                              "same_gpu": first["device"] == c["device"],
                              "a": {k: first[k] for k in ("device", "speedup", "interval")},
                              "b": {k: c[k] for k in ("device", "speedup", "interval")},
                              "relative_difference": c["speedup"] / first["speedup"] - 1})
    return pairs


def spread(pairs: list[dict], same_gpu: bool) -> str:
    differences = [abs(p["relative_difference"]) for p in pairs if p["same_gpu"] == same_gpu]
    if not differences:
        return "none"
    return f"{len(differences)} pairs, largest {max(differences):.1%}, median {sorted(differences)[len(differences) // 2]:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--sets", default="0;0,1", help='device sets, ";" between them (default "0;0,1")')
    parser.add_argument("--tasks", default=TASKS)
    parser.add_argument("--budget", type=int, default=4)
    parser.add_argument("--size", default=None)
    args = parser.parse_args()
    data = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "command": sys.argv, "sets": []}
    for index, option in enumerate(args.sets.split(";")):
        folder = Path(tempfile.mkdtemp(prefix=f"pike_scale_{index}_"))
        measured = run_set(parse_devices(option), args.tasks.split(","), args.budget, args.size, folder)
        first = (data["sets"] or [measured])[0]
        measured["efficiency"] = measured["per_minute"] / (
            first["per_minute"] * len(measured["devices"]) / len(first["devices"]))
        data["sets"].append(measured)
        data["agreement"] = agreement(data["sets"])
        args.out.write_text(json.dumps(data, indent=2))
        print(f"{option}: {measured['evaluations']} evaluations in {measured['minutes']:.2f} min, "
              f"{measured['per_minute']:.1f}/min, efficiency {measured['efficiency']:.2f}", flush=True)
    print(f"same source on two devices: {spread(data['agreement'], False)}; "
          f"on one device twice: {spread(data['agreement'], True)}")


if __name__ == "__main__":
    main()
