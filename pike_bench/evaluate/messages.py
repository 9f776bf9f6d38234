"""The messages between the pytest process and its worker, free of torch: the parent
builds a job and reads its reply without importing torch (only the worker does).

Over the pipe the parent sends a :class:`JobRequest`; the worker answers ``(READY, pid)``
once when it starts, then for each job any number of ``(PHASE, (what, who))`` (what it is
doing now, for which contestant) and one ``(DONE, JobReply)`` or ``(ERROR, traceback)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pike_bench.evaluate.result import ContestantResult
from pike_bench.evaluate.timing import TimingOptions
from pike_bench.policy import STRICT, CheckPolicy
from pike_bench.tasks import Task

READY, PHASE, DONE, ERROR = "ready", "phase", "done", "error"

CANDIDATE = "candidate"  # the contestant under test
REFERENCE = "reference"  # who a PHASE names while the worker loads the task: a crash there is the task's


@dataclass
class Contestant:
    name: str
    source: str
    trusted: bool = False  # a baseline of ours: its built model may be kept between jobs
    # Its build runs kernels on the device for long (torch.compile's max-autotune benchmarks
    # them), so it takes a shared turn; other trusted builds leave the device to other workers.
    device_build: bool = False


@dataclass
class JobRequest:
    task: Task
    contestants: list[Contestant]
    device: str
    size: str = "full"
    mode: str = "eval"
    trials: int = 5
    hypothesis_seed: int = 0
    weight_seed: int = 0
    timing_seed: int = 2**31 - 1  # no Hypothesis draw is timed: timing uses its own set
    timing: TimingOptions | None = field(default_factory=TimingOptions)  # None: check only
    defenses: bool = True  # off only to measure what they cost (benchmarks/adversarial.py)
    check: CheckPolicy = STRICT  # the rules that judge the contestants
    device_lock: str = ""  # the device's lock file shared with other workers (evaluate.turns); "": none


@dataclass
class JobReply:
    results: dict[str, ContestantResult]
    device_name: str
    torch_version: str
    task_error: str = ""
    hypothesis_seed: int = 0
    recycle: bool = False  # the CUDA context may be broken: start a fresh worker
    cuda_broken_by: str = ""  # the contestant whose CUDA error ended the job's CUDA context
    turns: list[tuple[str, float, float]] = field(default_factory=list)  # (kind, start, end): when it held the device
