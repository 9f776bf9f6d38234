"""Throughput of the optimizer on one GPU, with one task in flight and with several.

    python benchmarks/throughput.py RESULTS_DIR [--in-flight 2,1] [--budget 5] [--cap 235]
                                    [--tasks level3/6_GoogleNetInceptionModule,...] [--device cuda]

For each number in flight (in the order given), the offline proposer runs PIKE-B on the
same tasks with the same budget and the sweep's settings (2 input sets, 1 s of timing
rounds, eager, compile and graph baselines), from a fresh record and fresh compile and
Triton caches, stopped (as Ctrl-C stops a sweep) if it runs past `--cap` seconds. The
first setting run pays for whatever cold caches the machine has beyond those: the
default order runs "after" (2 in flight) first, so any such advantage goes to "before".

Measured per setting, from the progress events and the record:

- evaluations per minute of wall time (evaluations completed; a reused verdict is not one);
- the share of wall time in which the device was checking or timing (the union of the
  turns every evaluation held on it, evaluate.turns), timing alone, and held at all
  (with the candidates' first calls, where they compile while holding the device);
- per task: evaluations, mean seconds per evaluation, seconds in build, check and time turns.

Writes RESULTS_DIR/throughput.json (after every setting) and RESULTS_DIR/throughput.log
(every progress line, stamped). On the CPU (`--device cpu --budget 2`) it checks the
script; the workers then share a lock file in RESULTS_DIR, as a GPU's would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

import torch

from pike_bench.evaluate import Evaluator, TimingOptions, resolve_device
from pike_bench.evaluate.turns import BUILD, CHECK, COMPILE, TIME, busy_seconds
from pike_bench.inflight import InFlight
from pike_bench.optimize import Optimizer, OptimizeOptions
from pike_bench.progress import Evaluated, TaskFinished
from pike_bench.tasks import find_task

# Small and large, alternating, so that two in flight pair a small task with a large one.
TASKS = "level3/6_GoogleNetInceptionModule,level3/1_MLP,level3/9_ResNet18,level3/4_LeNet5,level3/35_LSTM"


class Log:
    """Every progress event as a stamped line in the log (and on stdout), and what the
    measurement needs from them."""

    def __init__(self, path: Path):
        self.file = path.open("a")
        self.started = time.time()
        self.evaluated: list[Evaluated] = []
        self.finished: dict[str, float] = {}

    def say(self, text: str) -> None:
        line = f"[{time.time() - self.started:7.1f} s] {text}"
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()

    def __call__(self, event) -> None:
        if isinstance(event, Evaluated) and event.seconds is not None and not event.reused:
            self.evaluated.append(event)
        if isinstance(event, TaskFinished):
            self.finished[event.task_id] = event.seconds
        self.say(str(event))


def run_setting(lanes: int, tasks: list[str], args: argparse.Namespace, log: Log) -> dict:
    folder = args.results / f"in-flight-{lanes}"
    folder.mkdir(parents=True, exist_ok=True)
    # Fresh caches for each setting: the workers inherit them.
    os.environ["TRITON_CACHE_DIR"] = str(folder / "triton")
    options = OptimizeOptions(llm="offline", budget_queries=args.budget, store_path=folder / "runs.sqlite",
                              solutions_dir=folder / "solutions")
    lock = "auto" if args.device.startswith("cuda") else folder / "cpu.lock"
    evaluator = Evaluator(args.device, trials=2, timing=TimingOptions(max_seconds=1.0), compile_cache=folder / "inductor",
                          baselines=("eager", "compile", "graph"), device_lock=lock)
    log.say(f"== {lanes} in flight: {', '.join(tasks)}, budget {args.budget}, cap {args.cap:g} s")
    log.evaluated, log.finished = [], {}
    capped = threading.Event()

    def stop() -> None:  # as the sweep is stopped: SIGINT, then the record keeps what was done
        capped.set()
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(args.cap, stop)
    started = time.time()
    with evaluator:
        in_flight = InFlight(Optimizer(evaluator, options, progress=log), lanes)
        timer.start()
        try:
            in_flight.optimize_all([find_task(t) for t in tasks])
        except KeyboardInterrupt:
            if not capped.is_set():
                raise
        finally:
            timer.cancel()
            in_flight.close()
    wall = time.time() - started
    log.say(f"== {lanes} in flight: {len(log.evaluated)} evaluations in {wall:.0f} s"
            + (" (stopped at the cap)" if capped.is_set() else ""))
    return summarize(lanes, wall, capped.is_set(), started, folder / "runs.sqlite", log)


def summarize(lanes: int, wall: float, capped: bool, started: float, store: Path, log: Log) -> dict:
    with sqlite3.connect(store) as db:
        rows = db.execute("select c.task_id, e.result from evaluations e join candidates c on c.id = e.candidate_id "
                          "where e.created_at >= ?", (started,)).fetchall()
    turns, per_task, by_evaluation = [], {}, []
    for task_id, text in rows:
        result = json.loads(text)
        mine = [tuple(t) for t in result.get("turns", [])]
        turns += mine
        by_evaluation.append(mine)
        entry = per_task.setdefault(task_id, {"evaluations": 0, "seconds": 0.0, "build_s": 0.0, "check_s": 0.0,
                                              "time_s": 0.0})
        entry["evaluations"] += 1
        entry["seconds"] += result.get("seconds", 0.0)
        entry["build_s"] += busy_seconds(mine, (BUILD,))
        entry["check_s"] += busy_seconds(mine, (CHECK,))
        entry["time_s"] += busy_seconds(mine, (TIME,))
    for entry in per_task.values():
        entry["mean_eval_s"] = entry["seconds"] / entry["evaluations"]
    return {
        "in_flight": lanes, "wall_s": wall, "stopped_at_cap": capped,
        "evaluations": len(log.evaluated),
        "evaluations_per_minute": len(log.evaluated) / (wall / 60),
        "device_busy_share": busy_seconds(turns) / wall,  # checking or timing
        "device_timing_share": busy_seconds(turns, (TIME,)) / wall,
        "device_held_share": busy_seconds(turns, (BUILD, CHECK, TIME)) / wall,
        "timed_while_another_held_s": shared_timing(by_evaluation, (BUILD, CHECK, TIME)),  # 0 where the turns work
        "timed_while_another_compiled_s": shared_timing(by_evaluation, (COMPILE,)),  # stepped away from its turn
        "tasks_finished": log.finished,
        "per_task": per_task,
    }


def shared_timing(by_evaluation: list[list[tuple]], kinds: tuple[str, ...]) -> float:
    """Seconds in which a timed section overlapped another evaluation's spans of these kinds."""
    total = 0.0
    for index, mine in enumerate(by_evaluation):
        others = [t for j, theirs in enumerate(by_evaluation) if j != index for t in theirs if t[0] in kinds]
        for kind, start, end in mine:
            if kind == TIME:
                total += sum(max(0.0, min(end, e) - max(start, s)) for _, s, e in others)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="folder for throughput.json, throughput.log and the records")
    parser.add_argument("--in-flight", default="2,1", help="numbers of tasks in flight, run in this order")
    parser.add_argument("--budget", type=int, default=5, help="queries per task (default 5)")
    parser.add_argument("--cap", type=float, default=235.0, help="seconds at most per setting (default 235)")
    parser.add_argument("--tasks", default=TASKS)
    parser.add_argument("--device", default=None, help="default: cuda if available")
    args = parser.parse_args()
    args.device = resolve_device(args.device)
    args.results.mkdir(parents=True, exist_ok=True)
    log = Log(args.results / "throughput.log")
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    report = {"device": args.device, "device_name": name, "torch": torch.__version__, "budget": args.budget,
              "cap_s": args.cap, "tasks": args.tasks.split(","), "settings": []}
    for lanes in (int(n) for n in args.in_flight.split(",")):
        report["settings"].append(run_setting(lanes, report["tasks"], args, log))
        (args.results / "throughput.json").write_text(json.dumps(report, indent=2))
    for setting in report["settings"]:
        log.say(f"{setting['in_flight']} in flight: {setting['evaluations_per_minute']:.1f} evaluations/min, "
                f"device busy {setting['device_busy_share']:.0%} (timing {setting['device_timing_share']:.0%}; "
                f"held {setting['device_held_share']:.0%}), "
                f"{setting['wall_s']:.0f} s" + (" (capped)" if setting["stopped_at_cap"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
