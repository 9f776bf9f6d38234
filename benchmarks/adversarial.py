"""The adversarial suite and the cost of the defenses, on a GPU.

    python benchmarks/adversarial.py OUT.json

1. Every candidate in tests/adversarial/ (CUDA-only cheats included) evaluated on the
   GPU, with the verdict it names and the verdict it got.
2. Cost: seconds per evaluation of an honest candidate (`class ModelNew(Model)`) with
   the defenses on and off, for five level-3 tasks, on a warm worker.
3. False rejects: honest candidates for every PIKE-set task (the reference subclassed,
   and torch.compile of it); any verdict other than correct is a false reject.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from pike_bench.evaluate import Evaluator, TimingOptions
from pike_bench.tasks import discover_tasks, find_task, task_from_file

ROOT = Path(__file__).resolve().parent.parent
ADVERSARIAL = ROOT / "tests" / "adversarial"
COST_TASKS = ["level3/1_MLP", "level3/8_ResNetBasicBlock", "level3/35_LSTM", "level3/43_MinGPTCausalAttention",
              "level3/48_Mamba2ReturnY"]
HONEST = {
    "subclass": "\n\nclass ModelNew(Model):\n    pass\n",
    "compiled": "\n\nimport torch as _t\n\ndef ModelNew(*args):\n    return _t.compile(Model(*args))\n",
}


sys.path.insert(0, str(ADVERSARIAL))
from test_adversarial import header  # noqa: E402  (the verdict each candidate names)


def adversarial():
    with Evaluator("cuda", trials=3, timeout=30, timing=TimingOptions(max_seconds=1), baselines=("eager",)) as ev:
        for path in sorted(ADVERSARIAL.glob("*.py")):
            if path.name.startswith("test_"):
                continue
            fields = header(path)
            task = task_from_file(ROOT / "tests" / "data" / "level0" / f"{fields.get('task', '1_TinyMLP')}.py")
            result = ev.evaluate(task, path.read_text())
            yield {"file": path.name, "expect": fields["expect"], "status": result.status, "reason": result.reason}


def cost():
    # A fixed number of timing rounds, so that the difference is what the defenses add
    # (the screen, the output checks, the two input sets re-checked after timing).
    fixed = TimingOptions(min_rounds=20, max_rounds=20, max_seconds=600)
    for defenses in (True, False):
        with Evaluator("cuda", baselines=("eager",), timing=fixed, defenses=defenses) as ev:
            for task_id in COST_TASKS:
                task = find_task(task_id)
                source = task.path.read_text() + HONEST["subclass"]
                ev.evaluate(task, source)  # warm the worker on this task
                started = time.perf_counter()
                result = ev.evaluate(task, source + "\n# again\n")
                yield {"task": task_id, "defenses": defenses, "status": result.status,
                       "seconds": time.perf_counter() - started}


def false_rejects():
    tasks = [t for t in discover_tasks()[0] if "pike" in t.marks]
    with Evaluator("cuda", trials=3, baselines=()) as ev:
        ev.timing = None  # checks only
        # Every task's subclass first (quick), then the compiled twins (a compile each).
        for name, tail in HONEST.items():
            for task in tasks:
                result = ev.evaluate(task, task.path.read_text() + tail)
                yield {"task": task.id, "candidate": name, "status": result.status, "reason": result.reason}


if __name__ == "__main__":
    data = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    for part in (adversarial, cost, false_rejects):
        data[part.__name__] = rows = []
        for row in part():  # written after every row: a run stopped midway keeps what it measured
            rows.append(row)
            print(row, flush=True)
            with open(sys.argv[1], "w") as f:
                json.dump(data, f, indent=2)
