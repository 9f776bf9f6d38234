"""One evaluation job, as the worker process runs it: build, check, time.

Everything here runs in the worker, never in the pytest process: candidate code is
imported, called and timed only on this side of the process boundary.
"""

from __future__ import annotations

import copy
import hashlib
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from pike_bench.candidate import import_source, source_traceback
from pike_bench.evaluate.check import Mismatch, compare
from pike_bench.evaluate.result import (
    BUILD_ERROR,
    CORRECT,
    INCORRECT,
    RUNTIME_ERROR,
    ContestantResult,
)
from pike_bench.evaluate.stats import summarize
from pike_bench.evaluate.timing import TimingOptions, time_interleaved
from pike_bench.inputs import InputDraw, for_each_draw, make_inputs
from pike_bench.tasks import Task, apply_sizes, sized_module

try:
    BaseExceptionGroup
except NameError:  # Python 3.10: Hypothesis depends on the backport
    from exceptiongroup import BaseExceptionGroup

MODES = ("eval", "train")
Progress = Callable[[str, str], None]  # (what is happening, which contestant or "")


@dataclass
class Contestant:
    name: str
    source: str
    trusted: bool = False  # a baseline of ours: its built model may be kept between jobs


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


@dataclass
class JobReply:
    results: dict[str, ContestantResult]
    device_name: str
    torch_version: str
    task_error: str = ""
    hypothesis_seed: int = 0
    recycle: bool = False  # the CUDA context may be broken: start a fresh worker


class Worker:
    """State the worker keeps between jobs: the reference of the last task and trusted models."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="pike_candidates_"))
        self._key: tuple | None = None
        self._reference: tuple[Any, Any, list[Any]] | None = None
        self._trusted: dict[str, Any] = {}
        self.cuda_broken = False

    def reference(self, request: JobRequest) -> tuple[Any, Any, list[Any]]:
        task = request.task
        key = (str(task.path), task.sha256(), request.size, request.mode, request.device, request.weight_seed)
        if key != self._key:
            # One task at a time: drop the last task's models before building this one's.
            self._key, self._reference, self._trusted = None, None, {}
            if request.device.startswith("cuda"):
                torch.cuda.empty_cache()
            module = sized_module(task, request.size)
            init_inputs = list(module.get_init_inputs())
            torch.manual_seed(request.weight_seed)
            model = _prepare(module.Model(*copy.deepcopy(init_inputs)), request)
            self._key, self._reference = key, (module, model, init_inputs)
        return self._reference

    def run(self, request: JobRequest, progress: Progress) -> JobReply:
        reply = JobReply({}, device_name(request.device), torch.__version__)
        self.cuda_broken = False
        if request.mode not in MODES:
            reply.task_error = f"mode {request.mode!r} is not one of {', '.join(MODES)}"
            return reply
        progress(f"loading the reference of {request.task.id}", "reference")
        try:
            module, reference, init_inputs = self.reference(request)
        except Exception as exc:  # the reference itself is broken: say so, run nothing
            reply.task_error = f"the reference of {request.task.id} fails: {type(exc).__name__}: {exc}"
            reply.recycle = _is_cuda_error(exc)
            return reply
        expected = ExpectedOutputs(module, reference, request.device)
        models: dict[str, Any] = {}
        with torch.no_grad():
            for contestant in request.contestants:
                result, model = self._build_and_check(contestant, request, module, init_inputs, expected, progress)
                reply.results[contestant.name] = result
                if self.cuda_broken:
                    break  # nothing more can run in this CUDA context
                if model is not None:
                    models[contestant.name] = model
            if request.timing is not None and models and not self.cuda_broken:
                progress(f"timing {', '.join(models)}", "")
                self._time(models, module, request, reply)
        reply.recycle = self.cuda_broken
        return reply

    def _build_and_check(self, contestant, request, module, init_inputs, expected, progress):
        progress(f"building {contestant.name}", contestant.name)
        digest = hashlib.sha256(contestant.source.encode()).hexdigest()
        try:
            model = self._trusted.get(digest) if contestant.trusted else None
            if model is None:
                model = _build(contestant, request, init_inputs, self.workdir, getattr(module, "SMALL", None))
        except Exception as exc:
            self.cuda_broken |= _is_cuda_error(exc)
            reason = f"{type(exc).__name__}: {_first_line(exc)}"
            return ContestantResult(contestant.name, BUILD_ERROR, reason, source_traceback(exc, contestant.name)), None
        result = self._check(contestant.name, model, request, expected, progress)
        if result.status != CORRECT:
            return result, None
        if contestant.trusted:
            self._trusted[digest] = model
        return result, model

    def _check(self, name: str, model: Any, request: JobRequest, expected, progress: Progress) -> ContestantResult:
        """Run the model on Hypothesis input sets; the first failing set decides the verdict."""
        order: dict[InputDraw, int] = {}  # Hypothesis replays a failing draw: count each once
        state: dict[str, Any] = {}

        def check(draw: InputDraw) -> None:
            state["set"], state["draw"] = order.setdefault(draw, len(order) + 1), draw
            progress(f"checking {name} on input set {state['set']} ({draw.describe()})", name)
            inputs, want = expected.get(draw)
            mine = [_to(x, request.device) for x in inputs]
            before = [x.clone() if isinstance(x, torch.Tensor) else x for x in mine]
            got = model(*mine)
            _synchronize(request.device)
            compare(want, got, request.task.atol, request.task.rtol)
            for i, (x, y) in enumerate(zip(before, mine)):
                if isinstance(x, torch.Tensor) and not torch.equal(x, y):
                    raise Mismatch(f"the candidate modified its input {i} in place")

        try:
            for_each_draw(request.trials, request.hypothesis_seed, check)
        except BaseException as exc:  # Hypothesis may wrap the failure in an exception group
            exc = _first_failure(exc)
            where = (
                f"input set {state['set']} of {request.trials} ({state['draw'].describe()}); "
                f"Hypothesis seed {request.hypothesis_seed} reproduces it"
                if state
                else "before the first input set"
            )
            if isinstance(exc, Mismatch):
                return ContestantResult(name, INCORRECT, str(exc), where)
            if not isinstance(exc, Exception):
                raise exc
            self.cuda_broken |= _is_cuda_error(exc)
            reason = f"{type(exc).__name__}: {_first_line(exc)}"
            return ContestantResult(name, RUNTIME_ERROR, reason, where + "\n" + source_traceback(exc, name))
        return ContestantResult(name, CORRECT)

    def _time(self, models: dict[str, Any], module, request: JobRequest, reply: JobReply) -> None:
        inputs = make_inputs(module, InputDraw(request.timing_seed))
        failed: list[str] = []

        def timed(name: str, model: Any) -> Callable[[], Any]:
            own = [_to(x, request.device) for x in inputs]

            def call() -> Any:
                try:
                    return model(*own)
                except Exception:
                    failed.append(name)
                    raise

            return call

        calls = {name: timed(name, model) for name, model in models.items()}
        reference = "eager" if "eager" in calls else None
        try:
            times = time_interleaved(calls, request.device, request.timing, reference)
        except Exception as exc:
            name = failed[-1] if failed else next(iter(calls))
            reply.results[name] = ContestantResult(
                name, RUNTIME_ERROR, f"failed while timed: {type(exc).__name__}: {_first_line(exc)}"
            )
            self.cuda_broken |= _is_cuda_error(exc)
            return
        for name, rounds in times.items():
            reply.results[name].timing = summarize(rounds)


class ExpectedOutputs:
    """Reference outputs per input set, computed once per job on the reference's own copy."""

    def __init__(self, module, reference, device: str):
        self.module, self.reference, self.device = module, reference, device
        self._cache: dict[InputDraw, tuple[list[Any], Any]] = {}

    def get(self, draw: InputDraw) -> tuple[list[Any], Any]:
        if draw not in self._cache:
            inputs = make_inputs(self.module, draw)
            output = self.reference(*[_to(x, self.device) for x in inputs])
            self._cache[draw] = (inputs, output)
        return self._cache[draw]


def _build(contestant: Contestant, request: JobRequest, init_inputs: list[Any], workdir: Path, small) -> Any:
    module = import_source(contestant.source, workdir, contestant.name)
    if request.size == "small" and small:
        # The run's size applies to the candidate's constants as to the reference's:
        # a Model that reads batch_size at construction sees the same value in both.
        apply_sizes(module, small)
    if not hasattr(module, "ModelNew"):
        raise AttributeError("the candidate defines no ModelNew; it must define class ModelNew(nn.Module)")
    # The same seed as the reference: same init inputs, same weights.
    torch.manual_seed(request.weight_seed)
    return _prepare(module.ModelNew(*copy.deepcopy(init_inputs)), request)


def _prepare(model: Any, request: JobRequest) -> Any:
    model = model.to(request.device)
    # PIKE's semantics by default (inference: BatchNorm uses running statistics);
    # KernelBench's original evaluator leaves modules in training mode.
    return model.eval() if request.mode == "eval" else model.train()


def _to(x: Any, device: str) -> Any:
    # Always a copy (on the CPU `.to("cpu")` would return the same tensor): each
    # side gets inputs of its own, so a candidate that writes to them harms no one.
    return x.to(device, copy=True) if isinstance(x, torch.Tensor) else copy.deepcopy(x)


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _first_failure(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _is_cuda_error(exc: BaseException) -> bool:
    accelerator_error = getattr(torch, "AcceleratorError", ())
    return isinstance(exc, accelerator_error) or "CUDA error" in str(exc)


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine() or "cpu"
