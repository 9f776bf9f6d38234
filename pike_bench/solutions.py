"""Kept solutions: accepted candidates, one folder per task, one name per solution,
re-verified and re-timed on every run (regression gating).

    solutions/level3/35_LSTM/best.py     the candidate source
    solutions/level3/35_LSTM/best.json   where it came from and how fast it was

The JSON records the speedups at acceptance on the device where they were measured,
and per device the speedup that gating compares against; a device seen for the first
time is baselined, not failed.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pike_bench.evaluate import Evaluator
from pike_bench.evaluate.result import CORRECT, SUSPICIOUS, EvalResult

# A suspicious speedup is never kept automatically (the optimizer keeps only correct
# candidates); kept by hand (`pike accept`), a person has looked, so gating holds it to
# its own numbers like any other.
KEEPABLE = (CORRECT, SUSPICIOUS)
from pike_bench.tasks import Task

DEFAULT_DIR = Path("solutions")
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class Solution:
    task_id: str
    name: str
    source: str
    origin: dict[str, Any] = field(default_factory=dict)  # run, strategy, model, llm, or "by hand"
    accepted: dict[str, Any] = field(default_factory=dict)  # device, torch, precision, languages, speedups
    baselines: dict[str, float] = field(default_factory=dict)  # device name -> speedup over eager to hold

    def path(self, root: Path) -> Path:
        return Path(root) / self.task_id / f"{self.name}.py"


def save(root: Path, solution: Solution) -> Path:
    if not NAME.match(solution.name):
        raise ValueError(f"solution name {solution.name!r}: use letters, digits, '.', '_' and '-'")
    path = solution.path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(solution.source)
    meta = {k: v for k, v in asdict(solution).items() if k != "source"}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def load(path: Path) -> Solution:
    meta = json.loads(Path(path).with_suffix(".json").read_text())
    return Solution(source=Path(path).read_text(), **meta)


def for_task(root: Path, task_id: str) -> list[Solution]:
    folder = Path(root) / task_id
    return [load(p) for p in sorted(folder.glob("*.py")) if p.with_suffix(".json").exists()]


def remove(root: Path, task_id: str, name: str) -> None:
    path = Path(root) / task_id / f"{name}.py"
    if not path.exists():
        raise FileNotFoundError(f"no solution {name!r} for {task_id} under {root}")
    path.unlink()
    path.with_suffix(".json").unlink(missing_ok=True)


def from_result(task: Task, name: str, source: str, result: EvalResult, origin: dict[str, Any]) -> Solution:
    """A solution from a correct evaluation, with what it was measured at."""
    speedups = {k: asdict(v) for k, v in result.speedups.items()}
    eager = result.speedups.get("eager")
    return Solution(
        task_id=task.id,
        name=name,
        source=source,
        origin=origin,
        accepted={"device": result.device, "device_name": result.device_name, "torch": result.torch_version,
                  "precision": result.precision, "languages": result.languages, "mode": result.mode, "check": result.check,
                  "size": result.size, "speedups": speedups},
        baselines={result.device_name: eager.value} if eager else {},
    )


def accept(evaluator: Evaluator, task: Task, source: str, name: str, origin: dict[str, Any], root: Path) -> Solution:
    """Evaluate a candidate and keep it if it is correct (`pike accept`)."""
    result = evaluator.evaluate(task, source)
    if result.status not in KEEPABLE:
        raise ValueError(f"not accepted: {result.status}: {result.reason}")
    solution = from_result(task, name, source, result, origin)
    if result.status == SUSPICIOUS:
        solution.accepted["flagged"] = result.reason
    save(root, solution)
    return solution


@dataclass
class Verdict:
    passed: bool
    message: str
    result: EvalResult
    rebaselined: bool = False


def gate(evaluator: Evaluator, task: Task, solution: Solution, tolerance: float = 0.10) -> Verdict:
    """Correct on fresh inputs, and not slower than recorded (beyond the tolerance) or than eager."""
    result = evaluator.evaluate(task, solution.source)
    where = f"{task.id}/{solution.name}"
    if result.status not in KEEPABLE:
        return Verdict(False, f"{where} is {result.status}: {result.reason}", result)
    eager = result.speedups.get("eager")
    if eager is None:
        return Verdict(False, f"{where}: no eager timing to compare with", result)
    recorded = solution.baselines.get(result.device_name)
    if recorded is None:
        return Verdict(True, f"{where}: first run on {result.device_name}: baselined at {eager.value:.2f}x over eager "
                             f"(accepted on {solution.accepted.get('device_name', '?')})", result, rebaselined=True)
    floor = max(1.0, recorded * (1.0 - tolerance))
    if eager.high < floor:  # the whole interval is below: a regression, not noise
        return Verdict(False, f"{where} regressed: {eager} over eager, recorded {recorded:.2f}x on "
                              f"{result.device_name}, floor {floor:.2f}x (tolerance {tolerance:.0%}, never below 1.0x)",
                       result)
    return Verdict(True, f"{where}: {eager} over eager (recorded {recorded:.2f}x)", result)


def rebaseline(root: Path, solution: Solution, verdict: Verdict) -> None:
    """Keep the speedup measured on a new device as that device's baseline."""
    eager = verdict.result.speedups["eager"]
    solution.baselines[verdict.result.device_name] = eager.value
    save(root, solution)
