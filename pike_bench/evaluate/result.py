"""The values an evaluation returns.

One name per layer, each built from the one below:

- :class:`ContestantResult`: one contestant (a baseline or the candidate) in one worker
  job; a job's :class:`~pike_bench.evaluate.messages.JobReply` holds one per contestant;
- :class:`EvalResult`: a candidate's evaluation (its contestant result, with the
  baselines timed beside it and its :class:`Speedup` over each), what the record keeps;
- above the evaluator: :class:`pike_bench.suite.BaselineRun` (a task's baselines),
  :class:`pike_bench.search.agents.Outcome` (what a search reads of an evaluation),
  :class:`pike_bench.optimize.TaskOutcome` (a task's search), and
  :class:`pike_bench.solutions.Verdict` (the gate's judgement of a kept solution).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

# Statuses of a candidate (or a baseline: they go through the same path).
CORRECT = "correct"
INCORRECT = "incorrect"
BUILD_ERROR = "build_error"
RUNTIME_ERROR = "runtime_error"
TIMEOUT = "timeout"
CRASHED = "crashed"
REJECTED = "rejected"  # broke a rule of the evaluator (a cheat, or the static screen)
SUSPICIOUS = "suspicious"  # correct, but faster than is plausible: a person must look
SKIPPED = "skipped"  # a baseline that does not apply here (graph on the CPU)


@dataclass
class Timing:
    """Per-round times of one contestant, in milliseconds, from one interleaved run."""

    times_ms: list[float]
    median_ms: float
    mean_ms: float
    stdev_ms: float
    min_ms: float
    rounds: int


@dataclass
class Speedup:
    """baseline time / candidate time: the median of per-round ratios, with a bootstrap interval."""

    value: float
    low: float
    high: float
    confidence: float = 0.95

    def __str__(self) -> str:
        return f"{self.value:.3f}x [{self.low:.3f}, {self.high:.3f}]"


@dataclass
class BuildCost:
    """What building a baseline cost: construction and its first call, where torch.compile
    compiles and a CUDA graph is captured. Inductor's FX graph cache hits and misses say
    whether the compiled code came from the cache (a warm build) or was generated."""

    seconds: float
    cache_hits: int = 0
    cache_misses: int = 0


@dataclass
class ContestantResult:
    """What the worker found for one contestant (a baseline or the candidate)."""

    name: str
    status: str
    reason: str = ""
    detail: str = ""
    timing: Timing | None = None
    precision: str = ""  # numeric settings it changed, e.g. "matmul_tf32=True"
    rule: str = ""  # the rule it broke (pike_bench.policy.RULES); "" if none
    build: BuildCost | None = None  # a baseline built in this job (None: kept from an earlier job)


@dataclass
class EvalResult:
    task_id: str
    status: str
    reason: str
    detail: str
    device: str
    device_name: str
    torch_version: str
    mode: str
    size: str
    trials: int
    hypothesis_seed: int
    timing: Timing | None = None
    languages: list[str] = field(default_factory=list)  # kernel languages: pytorch, triton, cuda, c++
    precision: str = ""  # numeric settings the candidate changed, e.g. "matmul_tf32=True"
    policy: str = "any"  # "any", or "custom-kernel": at least one Triton/CUDA/C++ kernel required
    # The check policy that judged it (pike_bench.policy), and the rule it broke ("" if none).
    # Records written before policies existed were judged by what is now "strict".
    check: str = "strict"
    rule: str = ""
    baselines: dict[str, ContestantResult] = field(default_factory=dict)
    speedups: dict[str, Speedup] = field(default_factory=dict)
    seconds: float = 0.0
    task_sha256: str = ""  # the task file evaluated against
    compile_mode: str = ""  # torch.compile's mode in the compile baseline
    # When the worker held its device: [kind ("check" or "time"), start, end], unix seconds
    # (evaluate.turns); what a report of the device's busy time adds up.
    turns: list[list] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return self.status == CORRECT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvalResult":
        """The inverse of to_dict (a result read back from the record)."""
        values = dict(data)
        values["timing"] = _timing(values.get("timing"))
        values["baselines"] = {
            name: ContestantResult(**{**b, "timing": _timing(b.get("timing")), "build": _build(b.get("build"))})
            for name, b in values.get("baselines", {}).items()
        }
        values["speedups"] = {name: Speedup(**s) for name, s in values.get("speedups", {}).items()}
        return cls(**values)


def _timing(data: dict[str, Any] | None) -> Timing | None:
    return Timing(**data) if data else None


def _build(data: dict[str, Any] | None) -> BuildCost | None:
    return BuildCost(**data) if data else None
