"""The evaluator: build, check and time candidate code in a worker process.

    from pike_bench import find_task
    from pike_bench.evaluate import Evaluator

    with Evaluator("cuda") as evaluator:
        result = evaluator.evaluate(find_task("level3/1_MLP"), open("mine.py").read())
        print(result.status, result.speedups)
"""

from __future__ import annotations

import atexit
import copy
import re
import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from pike_bench.baselines import baseline_source
from pike_bench.evaluate.messages import CANDIDATE, REFERENCE, Contestant, JobReply, JobRequest
from pike_bench.policy import check_policy
from pike_bench.evaluate.result import (
    CORRECT,
    CRASHED,
    REJECTED,
    SUSPICIOUS,
    ContestantResult,
    EvalResult,
    Speedup,
    Timing,
)
from pike_bench.evaluate.sandbox import Sandbox
from pike_bench.evaluate.stats import paired_speedup
from pike_bench.evaluate.timing import TimingOptions
from pike_bench.evaluate.turns import lock_path, prepare_lock
from pike_bench.evaluate.worker import OnPhase, WorkerDied, WorkerProcess
from pike_bench.screen import Screen, screen
from pike_bench.tasks import Task

__all__ = ["Evaluator", "EvalResult", "TimingOptions", "evaluate", "default_device", "resolve_device"]


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(option: str | None) -> str:
    """The device an option names (None: the default); ValueError says what to use instead."""
    import torch

    if option is None:
        return default_device()
    if option == "cpu":
        return option
    if re.fullmatch(r"cuda(:\d+)?", option):
        if not torch.cuda.is_available():
            raise ValueError(f"{option}: no CUDA device is visible here; use cpu")
        return option
    raise ValueError(f"{option}: not a device; use cpu, cuda or cuda:N")


class Evaluator:
    """One long-lived worker process for one device, reused across candidates."""

    def __init__(
        self,
        device: str | None = None,
        *,
        size: str | None = None,
        mode: str = "eval",
        trials: int = 5,
        timeout: float = 300.0,
        timing: TimingOptions | None = None,
        baselines: Iterable[str] = ("eager", "compile", "graph"),
        compile_mode: str = "default",
        suspicious_over: float = 10.0,
        require_custom_kernel: bool = False,
        defenses: bool = True,
        sandbox: str | Sandbox = "auto",
        check: str = "strict",
        compile_cache: str | Path | None = None,
        device_lock: str | Path | None = "auto",
    ):
        self.device = device or default_device()
        self.size = size or ("full" if self.device.startswith("cuda") else "small")
        # The check policy (pike_bench.policy): pike and kernelbench fix their mode and input sets.
        self.check = check_policy(check)
        self.mode = self.check.mode or mode
        self.trials = self.check.input_sets or trials
        self.timeout = timeout
        self.timing = timing or TimingOptions()
        self.baselines = [b for b in baselines if b != "graph" or self.device.startswith("cuda")]
        self.compile_mode = compile_mode
        self.suspicious_over = suspicious_over
        self.policy = "custom-kernel" if require_custom_kernel else "any"
        self.defenses = defenses  # off only to measure their cost
        # auto: bubblewrap or unshare where one works (self.sandbox.why_not says why not); on: one or
        # SandboxUnavailable; or a Sandbox already chosen.
        self.sandbox = sandbox if isinstance(sandbox, Sandbox) else Sandbox.choose(sandbox)
        # Where inductor caches the compile baseline's code: beside the record, so that a
        # resumed or repeated run loads it instead of compiling again.
        self.compile_cache = str(compile_cache or "")
        # Workers of one GPU take turns (evaluate.turns): "auto" is the lock of this GPU as
        # this machine names it; the CPU has none (its timing shares the cores with
        # everything anyway), unless a path is given; None: no lock.
        if device_lock == "auto":
            device_lock = lock_path(self.device) if self.device.startswith("cuda") else None
        self.device_lock = prepare_lock(device_lock) if device_lock else ""
        self.worker = WorkerProcess(self.device, self.sandbox, self.compile_cache)
        self.interrupted = False

    def twin(self) -> "Evaluator":
        """An evaluator like this one with a worker of its own, on the same device and
        taking turns on it with this one: another task in flight."""
        other = copy.copy(self)
        other.worker = WorkerProcess(self.device, self.sandbox, self.compile_cache)
        other.interrupted = False
        return other

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.worker.stop()

    def interrupt(self) -> None:
        """Stop the evaluation in flight and refuse the ones queued behind it (called from
        another thread, on Ctrl-C): the worker is killed, and every evaluation returns at
        once instead of starting a new worker. An interrupted evaluator stays so.

        Why: the thread that waits for the worker cannot be cancelled, and asyncio.run
        waits for it before returning, for as long as a compile or a hang lasts. Nothing
        is lost: an interrupted evaluation is not recorded, and a rerun makes it again."""
        self.interrupted = True
        self.worker.stop()

    def contestants(self, task: Task, candidate_source: str | None = None) -> list[Contestant]:
        # The candidate goes first: a broken one fails fast, before baselines compile.
        own = [Contestant(CANDIDATE, candidate_source)] if candidate_source is not None else []
        return own + [
            Contestant(name, baseline_source(task.path, name, self.compile_mode), trusted=True,
                       device_build=name == "compile" and "autotune" in self.compile_mode)
            for name in self.baselines
        ]

    def run(self, task: Task, contestants: list[Contestant], hypothesis_seed: int | None = None,
            on_phase: OnPhase | None = None) -> JobReply:
        """Check and time contestants side by side; a crash or hang is pinned on the one that caused it.
        `on_phase` hears what the worker is doing, step by step (for progress displays)."""
        request = JobRequest(
            task=task,
            contestants=contestants,
            device=self.device,
            size=self.size,
            mode=self.mode,
            trials=self.trials,
            hypothesis_seed=secrets.randbelow(2**31) if hypothesis_seed is None else hypothesis_seed,
            timing=self.timing,
            defenses=self.defenses,
            check=self.check,
            device_lock=self.device_lock,
        )
        blamed: dict[str, ContestantResult] = {}
        while True:
            if self.interrupted:
                reply = self._reply_without_worker(task_error="interrupted")
                break
            try:
                reply = self.worker.run(request, self.timeout, on_phase)
            except WorkerDied as died:
                if self.interrupted:
                    reply = self._reply_without_worker(task_error="interrupted")
                    break
                names = [c.name for c in request.contestants]
                # Outside any contestant's step (timing), the untrusted candidate is blamed.
                culprit = died.culprit or (CANDIDATE if CANDIDATE in names else REFERENCE)
                if culprit == REFERENCE:
                    reply = self._reply_without_worker(task_error=f"the reference: {died.reason}")
                    break
                blamed[culprit] = ContestantResult(culprit, died.status, died.reason, died.detail)
                if culprit == CANDIDATE or len(request.contestants) == 1:
                    reply = self._reply_without_worker()
                    break
                request = _without(request, culprit)  # the others, without the one that failed
                continue
            if reply.recycle:
                self.worker.stop()
            breaker = reply.cuda_broken_by
            if breaker not in ("", CANDIDATE, REFERENCE) and len(request.contestants) > 1:
                # A baseline's CUDA error (a graph capture beside a candidate's own graphs)
                # ended the CUDA context before the others were timed: they run again in
                # a fresh worker, without it, rather than go untimed.
                blamed[breaker] = reply.results[breaker]
                request = _without(request, breaker)
                continue
            break
        reply.results.update(blamed)
        reply.hypothesis_seed = request.hypothesis_seed
        return reply

    def _reply_without_worker(self, task_error: str = "") -> JobReply:
        import torch

        from pike_bench.evaluate.job import device_name

        return JobReply({}, device_name(self.device), torch.__version__, task_error)

    def evaluate(self, task: Task, candidate_source: str, hypothesis_seed: int | None = None,
                 on_phase: OnPhase | None = None) -> EvalResult:
        started = time.perf_counter()
        screened = screen(candidate_source)
        refusal = self._refusal(screened) if self.defenses else None
        if refusal:
            reply = self._reply_without_worker()
            reply.results[CANDIDATE] = refusal
            reply.hypothesis_seed = hypothesis_seed or 0
        else:
            reply = self.run(task, self.contestants(task, candidate_source), hypothesis_seed, on_phase)
        mine = reply.results.get(CANDIDATE) or ContestantResult(CANDIDATE, CRASHED, reply.task_error or "not evaluated")
        baselines = {name: result for name, result in reply.results.items() if name != CANDIDATE}
        result = EvalResult(
            task_id=task.id,
            status=mine.status,
            reason=mine.reason,
            detail=mine.detail,
            device=self.device,
            device_name=reply.device_name,
            torch_version=reply.torch_version,
            mode=self.mode,
            size=self.size,
            trials=self.trials,
            hypothesis_seed=reply.hypothesis_seed,
            timing=mine.timing,
            languages=screened.languages,
            precision=mine.precision,
            policy=self.policy,
            check=self.check.name,
            rule=mine.rule,
            baselines=baselines,
            speedups=speedups_over(mine.timing, baselines),
            seconds=time.perf_counter() - started,
            task_sha256=task.sha256(),
            compile_mode=self.compile_mode if "compile" in self.baselines else "",
            turns=[list(turn) for turn in reply.turns],
        )
        self._flag_if_suspicious(result)
        return result

    def _refusal(self, screened: Screen) -> ContestantResult | None:
        """The static screen's verdict, before anything runs."""
        if not screened.passed:
            reason = f"static screen: {screened.problems[0]}"
            return ContestantResult(CANDIDATE, REJECTED, reason, "\n".join(screened.problems), rule="static-screen")
        if self.policy == "custom-kernel" and not screened.custom_kernel:
            return ContestantResult(
                CANDIDATE, REJECTED, "policy: at least one custom kernel (Triton, CUDA or C++) is required; it is PyTorch only",
                rule="custom-kernel",
            )
        return None

    def _flag_if_suspicious(self, result: EvalResult) -> None:
        """Too good to be true is more often a hole in the checks than a kernel: a person
        looks first. The rule: a correct candidate is flagged when its speedup over the
        fastest baseline timed beside it (eager, torch.compile or CUDA-graph replay,
        whichever ran fastest) is above `suspicious_over`. Over eager alone, 10x is
        routine for a launch-bound model once it is captured or compiled; over the best
        of them it still means the candidate skipped work that a compiler could not."""
        if result.status != CORRECT or not result.speedups:
            return
        name, speedup = min(result.speedups.items(), key=lambda item: item[1].value)
        if speedup.value > self.suspicious_over:
            result.status = SUSPICIOUS
            result.reason = (
                f"{speedup.value:.1f}x over {name}, the fastest baseline, is above the {self.suspicious_over:g}x "
                "threshold: it passed every check, but a person should look before it is trusted"
            )


def _without(request: JobRequest, name: str) -> JobRequest:
    """The same job without one contestant (one that crashed its worker or broke CUDA)."""
    return replace(request, contestants=[c for c in request.contestants if c.name != name])


def speedups_over(timing: Timing | None, baselines: dict[str, ContestantResult]) -> dict[str, Speedup]:
    """The candidate's speedup over each baseline timed in the same rounds."""
    if timing is None:
        return {}
    return {
        name: paired_speedup(result.timing.times_ms, timing.times_ms)
        for name, result in baselines.items()
        if result.status == CORRECT and result.timing is not None
    }


_shared: dict[str, Evaluator] = {}


def evaluate(task: Task, candidate_source: str, device: str | None = None) -> EvalResult:
    """Evaluate one candidate with the default settings, on a worker kept for the device."""
    device = device or default_device()
    if device not in _shared:
        _shared[device] = Evaluator(device)
    return _shared[device].evaluate(task, candidate_source)


@atexit.register
def _close_shared() -> None:
    for evaluator in _shared.values():
        evaluator.close()

