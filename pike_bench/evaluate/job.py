"""One evaluation job, as the worker process runs it: build, check, time.

Everything here runs in the worker, never in the pytest process: candidate code is
imported, called and timed only on this side of the process boundary.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import hashlib
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from pike_bench.baselines import baseline_cache
from pike_bench.candidate import compile_errors, import_source, source_traceback
from pike_bench.evaluate.check import Mismatch, compare
from pike_bench.evaluate.defenses import (
    CANDIDATE_FILES,
    Cheat,
    ThreadWatch,
    check_clocks,
    check_fresh,
    check_no_candidate_threads,
    describe_precision,
    heavy_op_dtypes,
    precision_settings,
    restore_clocks,
    restore_precision,
    storages,
)
from pike_bench.evaluate.limits import broken_limit
from pike_bench.evaluate.messages import REFERENCE, Contestant, JobReply, JobRequest
from pike_bench.policy import CheckPolicy
from pike_bench.evaluate.result import (
    BUILD_ERROR,
    CORRECT,
    INCORRECT,
    REJECTED,
    RUNTIME_ERROR,
    BuildCost,
    ContestantResult,
)
from pike_bench.evaluate.stats import summarize
from pike_bench.evaluate.timing import time_interleaved
from pike_bench.evaluate.turns import BUILD, CHECK, Turns
from pike_bench.inputs import InputDraw, for_each_draw, make_inputs, plain_draws
from pike_bench.tasks import apply_sizes, sized_module

try:
    BaseExceptionGroup
except NameError:  # Python 3.10: Hypothesis depends on the backport
    from exceptiongroup import BaseExceptionGroup

MODES = ("eval", "train")
Progress = Callable[[str, str], None]  # (what is happening, which contestant or "")


@dataclass
class Built:
    """A contestant that passed its checks, ready to be timed."""

    model: Any
    trusted: bool
    settings: dict[str, Any]  # the numeric settings it runs under (TF32, ...)
    right_on: dict[InputDraw, str] = field(default_factory=dict)  # input sets it passed, named for reasons


def make_current(device: str) -> None:
    """The job's GPU as the current device: code that names plain "cuda" (a candidate's
    streams and CUDA graphs, ``torch.empty(device="cuda")``) must land on it, not on GPU 0,
    when this worker serves another GPU of the machine. "cuda" without an index already
    is the current device (and ``set_device`` refuses it)."""
    where = torch.device(device)
    if where.type == "cuda" and where.index is not None:
        torch.cuda.set_device(where)


TRUSTED_FAILURES_KEPT = 2  # a baseline failing in this many jobs of a task is not built again


class Worker:
    """State the worker keeps between jobs: the reference of the last task and trusted models."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=CANDIDATE_FILES))
        self._key: tuple | None = None
        self._reference: tuple[Any, Any, list[Any]] | None = None
        self._trusted: dict[str, Any] = {}
        # A baseline's failures: one that failed for a reason of its own (a forward that
        # cannot be captured in a CUDA graph) fails the same way in every job of the task,
        # so after two its verdict is kept, not rebuilt per candidate (a large model's copy
        # each time). Two, not one: a candidate runs first and might have caused the first.
        self._trusted_failed: dict[str, tuple[int, ContestantResult]] = {}
        self._fixed: dict[Any, Any] = {}  # the task's fixed input sets (timing, precision probe) and reference dtypes
        self.defaults = precision_settings()
        self.turns = Turns()
        self.threads = ThreadWatch()
        self.threads.install()
        self.cuda_broken = False
        self.tampered = False  # a candidate patched something: this process is not clean any more
        self.compiles_step_away = False  # the contestant being checked may compile off its turn
        self._listening = False

    def reference(self, request: JobRequest) -> tuple[Any, Any, list[Any]]:
        task = request.task
        key = (str(task.path), task.sha256(), request.size, request.mode, request.device, request.weight_seed)
        if key != self._key:
            # One task at a time: drop the last task's models before building this one's.
            self._key, self._reference, self._trusted, self._trusted_failed, self._fixed = None, None, {}, {}, {}
            self._free_cached_memory(request.device)
            module = sized_module(task, request.size)
            init_inputs = list(module.get_init_inputs())
            model = construct(module.Model, init_inputs, request)
            self._key, self._reference = key, (module, model, init_inputs)
        return self._reference

    def run(self, request: JobRequest, progress: Progress) -> JobReply:
        progress = self._take_turns(request, progress)
        reply = self._run(request, progress)
        if _ran_out_of_device_memory(reply) and not reply.cuda_broken_by:
            reply = self._run_alone(request, progress)
        self._free_cached_memory(request.device)
        reply.turns = self.turns.held()
        return reply

    def _run_alone(self, request: JobRequest, progress: Progress) -> JobReply:
        """The job again, with the device to itself, after its memory ran out: other
        workers of the GPU (tasks in flight) hold memory too, and a check or timed section
        of theirs may have held the part that was missing. The candidate's verdict is then
        its own; one that runs out again says so in its reason."""
        progress("out of device memory: running the job again alone on the device", "")
        gc.collect()  # the first run's models, where a reference cycle holds them
        self._free_cached_memory(request.device)
        with self.turns.alone():
            reply = self._run(request, progress)
        for result in reply.results.values():
            if _out_of_device_memory(result):
                result.reason += " (again when the job ran alone on the device)"
        return reply

    @staticmethod
    def _free_cached_memory(device: str) -> None:
        """Give the memory cached for models no longer held (the candidate's, after its
        job) back to the device, where the other workers of the GPU can allocate it."""
        if device.startswith("cuda"):
            torch.cuda.empty_cache()

    def _take_turns(self, request: JobRequest, progress: Progress) -> Progress:
        """The device's turns for this job; a worker waiting for one says so (and that it
        is alive) through `progress`, then says again what it does once it has its turn."""
        if self.turns.path != request.device_lock:
            self.turns = Turns(request.device_lock)
        doing = ["", ""]

        def told(phase: str, who: str) -> None:
            doing[:] = phase, who
            progress(phase, who)

        def waiting(still: bool) -> None:
            phase, who = doing
            progress(f"waiting for the device (another worker holds it) before {phase}" if still else phase, who)

        self.turns.waiting = waiting
        return told

    def _run(self, request: JobRequest, progress: Progress) -> JobReply:
        reply = JobReply({}, device_name(request.device), torch.__version__)
        self.cuda_broken = self.tampered = False
        if request.mode not in MODES:
            reply.task_error = f"mode {request.mode!r} is not one of {', '.join(MODES)}"
            return reply
        progress(f"loading the reference of {request.task.id}", REFERENCE)
        task_file = request.task.path.read_bytes()
        try:
            make_current(request.device)  # a device that cannot be selected fails like a broken reference
            module, reference, init_inputs = self.reference(request)
        except Exception as exc:  # the reference itself is broken: say so, run nothing
            reply.task_error = f"the reference of {request.task.id} fails: {type(exc).__name__}: {exc}"
            reply.recycle = _is_cuda_error(exc)
            return reply
        fixed = (InputDraw(request.timing_seed), InputDraw(request.timing_seed ^ 1))
        expected = ExpectedOutputs(module, reference, request.device, self.defaults, self._fixed, fixed)
        built: dict[str, Built] = {}
        with torch.no_grad():
            for contestant in request.contestants:
                result, entry = self._contest(contestant, request, module, init_inputs, expected, progress)
                reply.results[contestant.name] = self._after(contestant.name, result, task_file, request)
                if self.cuda_broken:
                    reply.cuda_broken_by = contestant.name
                    break  # nothing more can run in this CUDA context
                if entry is not None and reply.results[contestant.name].status == CORRECT:
                    built[contestant.name] = entry
            if request.timing is not None and built and not self.cuda_broken:
                progress(f"timing {', '.join(built)}", "")
                self._time(built, expected, request, reply)
                if request.defenses and request.check.applies("after-timing"):
                    self._recheck(built, request, expected, reply, task_file, progress)
        restore_precision(self.defaults)
        # A rule broken (a thread left running, a patched function) leaves this process
        # unclean for the next candidate: start a fresh worker.
        rejected = any(result.status == REJECTED for result in reply.results.values())
        reply.recycle = self.cuda_broken or self.tampered or rejected
        return reply

    def _contest(self, contestant, request, module, init_inputs, expected, progress):
        """Build one contestant and check it on Hypothesis input sets."""
        digest = hashlib.sha256(contestant.source.encode()).hexdigest()
        failures, failed = self._trusted_failed.get(digest, (0, None))
        if contestant.trusted and failures >= TRUSTED_FAILURES_KEPT:
            progress(f"{contestant.name} failed in {failures} earlier jobs of this task: not built again", contestant.name)
            return replace(failed), None
        build = None
        model = self._trusted.get(digest) if contestant.trusted else None
        # Said apart, so that a progress display can tell a baseline built (the compile
        # baseline: tens of seconds on its first call) from one kept since the last job.
        progress(f"{'building' if model is None else 'reusing'} {contestant.name}", contestant.name)
        try:
            if model is None and contestant.trusted:
                model, build = self._build_baseline(contestant, request, module, init_inputs, expected)
            elif model is None:
                own = _import(contestant, request, self.workdir, getattr(module, "SMALL", None))
                with self.turns.check(BUILD):  # its constructor is its own code: it may run kernels
                    model = construct(own.ModelNew, init_inputs, request)
            if not contestant.trusted:
                check_no_candidate_threads()
        except Cheat as exc:
            return ContestantResult(contestant.name, REJECTED, str(exc), rule=exc.rule), None
        except Exception as exc:
            self.cuda_broken |= _is_cuda_error(exc)
            return self._remember_failure(contestant, digest, self._build_error(contestant, exc)), None
        entry = Built(model, contestant.trusted, precision_settings())
        self.compiles_step_away = not (contestant.device_build or "autotune" in contestant.source.lower())
        try:
            result = self._check(contestant.name, entry, request, expected, progress, request.hypothesis_seed)
        finally:
            self.compiles_step_away = False
        result.precision = describe_precision(self.defaults, entry.settings)
        result.build = build
        if result.status != CORRECT:
            return self._remember_failure(contestant, digest, result), None
        if not contestant.trusted:
            result.precision = self._precision(entry, expected, request, result.precision)
        if contestant.trusted:
            self._trusted[digest] = model
        return result, entry

    def _remember_failure(self, contestant: Contestant, digest: str, result: ContestantResult) -> ContestantResult:
        """Keep a trusted baseline's failure for the next jobs, unless the machine caused
        it (a broken CUDA context, memory taken by another worker): that may pass later."""
        machine = self.cuda_broken or _out_of_device_memory(result)
        if contestant.trusted and not machine:
            failures = self._trusted_failed.get(digest, (0, None))[0] + 1
            self._trusted_failed[digest] = failures, replace(result, build=None)
        return result

    def _build_baseline(self, contestant, request, module, init_inputs, expected) -> tuple[Any, BuildCost]:
        """A baseline built and called once: torch.compile compiles, and a CUDA graph is
        captured, on the first call, so that call belongs to what the build costs."""
        before = _fx_graph_cache_counts()
        started = time.perf_counter()
        model = _build(contestant, request, init_inputs, self.workdir, getattr(module, "SMALL", None))
        draw = InputDraw(request.timing_seed)
        # Trusted code, mostly on the CPU (compiling, capturing; one forward on the device):
        # other workers keep the device, unless this build benchmarks kernels on it.
        with self.turns.check(BUILD) if contestant.device_build else contextlib.nullcontext():
            with baseline_cache(request.task.id):
                model(*expected.fresh(draw))
            if request.device.startswith("cuda"):
                torch.cuda.synchronize(request.device)
        seconds = time.perf_counter() - started
        hits, misses = (now - then for now, then in zip(_fx_graph_cache_counts(), before))
        return model, BuildCost(seconds, hits, misses)

    def _listen_to_compiles(self) -> None:
        """Once torch.compile is in use in this process: while dynamo and inductor compile
        (fake tensors, code generation, the C++ and Triton compilers: the CPU's work, tens
        of seconds for a large model), this worker steps away from its shared turn, so that
        another worker can time meanwhile, and comes back before the compiled code runs.
        Not while autotuning: it benchmarks kernels on the device (a contestant whose
        source names autotuning, or inductor's autotune settings on at the start)."""
        if self._listening or "torch._dynamo" not in sys.modules:
            return
        from torch._dynamo.callback import callback_handler

        callback_handler.register_start_callback(self._compile_started)
        callback_handler.register_end_callback(self._compile_ended)
        self._listening = True

    def _compile_started(self, *args: Any) -> None:
        trigger = getattr(args[0], "callback_trigger", None) if args else None
        if self.compiles_step_away and getattr(trigger, "name", "DYNAMO") == "DYNAMO" and not _autotuning():
            self.turns.step_away()

    def _compile_ended(self, *args: Any) -> None:
        self.turns.come_back()

    def _precision(self, entry: Built, expected: "ExpectedOutputs", request: JobRequest, settings: str) -> str:
        """What precision the candidate computes in, next to the reference's: global
        settings it changed, and the dtypes its matrix products and convolutions see."""
        draw = InputDraw(request.timing_seed ^ 1)
        with self.turns.check():
            restore_precision(entry.settings)
            mine = heavy_op_dtypes(entry.model, expected.fresh(draw))
            restore_precision(self.defaults)
            theirs = expected.reference_dtypes(draw)
        notes = [settings] if settings else []
        if mine is None:
            notes.append("matmul/conv dtypes not observable")
        elif theirs is not None and mine != theirs:
            notes.append(f"matmul/conv dtypes {', '.join(sorted(mine)) or 'none'} (reference: {', '.join(sorted(theirs))})")
        return "; ".join(notes)

    def _build_error(self, contestant: Contestant, exc: Exception) -> ContestantResult:
        trace = source_traceback(exc, self._own_files(contestant.name))
        errors = compile_errors(str(exc), contestant.source)
        if errors:  # a C++/CUDA build: the compiler's words, on the candidate's lines
            return ContestantResult(contestant.name, BUILD_ERROR, f"compile error: {errors[0].splitlines()[0]}",
                                    "\n".join(errors))
        return ContestantResult(contestant.name, BUILD_ERROR, _reason(exc), trace)

    def _own_files(self, name: str) -> str:
        """The start of the path of a contestant's source file (for its traceback frames)."""
        return str(self.workdir / f"{name}_")

    def _after(self, name: str, result: ContestantResult, task_file: bytes, request: JobRequest) -> ContestantResult:
        """The checks that follow any candidate code: clock, task file, numeric settings."""
        try:
            check_clocks()
            if request.task.path.read_bytes() != task_file:
                request.task.path.write_bytes(task_file)  # put the reference back for what follows
                raise Cheat("it modified the task file (restored)", "task-file")
        except Cheat as exc:
            restore_clocks()
            self.tampered = True
            result = ContestantResult(name, REJECTED, str(exc), precision=result.precision, rule=exc.rule)
        restore_precision(self.defaults)
        return result

    def _check(self, name, entry: Built, request, expected, progress, hypothesis_seed, trials=None,
               label: str = "input set {n}") -> ContestantResult:
        """Run the model on the policy's input sets; the first failing set decides the verdict."""
        policy: CheckPolicy = request.check
        trials = trials or request.trials
        order: dict[InputDraw, int] = {}  # Hypothesis replays a failing draw: count each once
        state: dict[str, Any] = {}
        earlier: dict[str, Any] = {"output": None}
        untrusted = not entry.trusted and request.defenses
        tolerance = policy.tolerance or (request.task.atol, request.task.rtol)

        def check(draw: InputDraw) -> None:
            state["set"], state["draw"] = order.setdefault(draw, len(order) + 1), draw
            progress(f"checking {name} on input set {state['set']} ({draw.describe()})", name)
            # A candidate's first call is where it compiles (Triton, torch.compile): counted as a build.
            self._listen_to_compiles()
            with self.turns.check(CHECK if entry.trusted or entry.right_on else BUILD):
                run_on(draw)

        def run_on(draw: InputDraw) -> None:
            mark = len(self.threads.started)
            got, mine, before = self._call(entry, expected, draw, request.device)
            # No device synchronize here: the comparison runs on the current stream, so
            # work a candidate left on another stream without joining it shows as wrong.
            # The reference runs only now, so its output for this set is not in memory
            # while the candidate runs (nothing to find through gc).
            want = expected.output(draw)
            if untrusted:
                self.threads.check_since(mark)
            try:
                compare(want, got, *tolerance, whole=policy.applies("whole-output"))
            except Mismatch as exc:
                raise self._diagnose(exc, entry, expected, request, draw, got, state["set"]) from None
            # Values first, memory second: an output both stale and shared is named stale.
            if untrusted:
                check_fresh(got, want, mine, storages(earlier["output"]), policy.rules)
            if policy.applies("modified-inputs"):
                for i, (x, y) in enumerate(zip(before, mine)):
                    if isinstance(x, torch.Tensor) and not torch.equal(x, y):
                        raise Mismatch(f"the candidate modified its input {i} in place", "modified-inputs")
            earlier["output"] = got  # kept alive, so its memory cannot come back legitimately
            entry.right_on[draw] = label.format(n=state["set"])

        try:
            if policy.varied_inputs:
                for_each_draw(trials, hypothesis_seed, check)
            else:
                for draw in plain_draws(trials, hypothesis_seed):
                    check(draw)
        except BaseException as exc:  # Hypothesis may wrap the failure in an exception group
            exc = _first_failure(exc)
            seed_name = "Hypothesis seed" if policy.varied_inputs else "seed"
            where = (
                f"input set {state['set']} of {trials} ({state['draw'].describe()}); "
                f"{seed_name} {hypothesis_seed} reproduces it"
                if state
                else "before the first input set"
            )
            if isinstance(exc, Mismatch):
                return ContestantResult(name, INCORRECT, str(exc), where, rule=exc.rule)
            if isinstance(exc, Cheat):
                return ContestantResult(name, REJECTED, str(exc), where, rule=exc.rule)
            if not isinstance(exc, Exception):
                raise exc
            self.cuda_broken |= _is_cuda_error(exc)
            reason = _reason(exc)
            return ContestantResult(name, RUNTIME_ERROR, reason, where + "\n" + source_traceback(exc, self._own_files(name)))
        return ContestantResult(name, CORRECT)

    def _call(self, entry: Built, expected: "ExpectedOutputs", draw: InputDraw, device: str):
        """The model's output on one input set, its own copy of the inputs, and a copy of those as they were."""
        mine = expected.fresh(draw)
        before = [x.clone() if isinstance(x, torch.Tensor) else x for x in mine]
        restore_precision(entry.settings)
        return entry.model(*mine), mine, before

    def _diagnose(self, mismatch: Mismatch, entry: Built, expected, request, draw: InputDraw, got, number: int):
        """A wrong value, named more closely where the policy has the rule: the result of
        an earlier input set returned again (stale output), or a failure only where the
        inputs were scaled or sign-flipped."""
        policy: CheckPolicy = request.check
        if mismatch.rule not in ("allclose", "whole-output"):
            return mismatch
        tolerance = policy.tolerance or (request.task.atol, request.task.rtol)
        whole = policy.applies("whole-output")
        if policy.applies("stale-output"):
            for seen, name in entry.right_on.items():
                if seen != draw and _matches(expected.output(seen), got, tolerance, whole):
                    return Mismatch(
                        f"stale output: on input set {number} it returned the result of {name}, where it was "
                        "right; each call must follow its own input (a cache keyed on nothing, or a CUDA graph "
                        "replayed without its work, returns an earlier result)",
                        "stale-output",
                    )
        if policy.applies("scaled-inputs") and (draw.scale, draw.sign) != (1.0, 1):
            plain = InputDraw(draw.seed)
            try:
                right = _matches(expected.output(plain), self._call(entry, expected, plain, request.device)[0],
                                 tolerance, whole)
            except Exception:  # the probe failed too: the first reason stands
                right = False
            if right:
                return Mismatch(
                    f"fails only at scaled inputs: at scale {draw.scale:g}, sign {draw.sign:+d}: {mismatch}; "
                    "right on the same input set unscaled",
                    "scaled-inputs",
                )
        return mismatch

    def _time(self, built: dict[str, Built], expected: "ExpectedOutputs", request: JobRequest, reply: JobReply) -> None:
        draw = InputDraw(request.timing_seed)
        with self.turns.time():  # alone on the device
            self._time_alone(built, expected, draw, request, reply)

    def _time_alone(self, built, expected: "ExpectedOutputs", draw: InputDraw, request: JobRequest, reply: JobReply):
        failed: list[str] = []

        def timed(name: str, entry: Built) -> Callable[[], Any]:
            own = expected.fresh(draw)

            def call() -> Any:
                try:
                    return entry.model(*own)
                except Exception:
                    failed.append(name)
                    raise

            return call

        calls = {name: timed(name, entry) for name, entry in built.items()}
        settings = {name: (lambda e=entry: restore_precision(e.settings)) for name, entry in built.items()}
        mark = len(self.threads.started)
        reference = "eager" if "eager" in calls else None
        try:
            times = time_interleaved(calls, request.device, request.timing, reference, settings)
        except Exception as exc:
            name = failed[-1] if failed else next(iter(calls))
            reply.results[name] = ContestantResult(
                name, RUNTIME_ERROR, f"failed while timed: {_reason(exc)}"
            )
            self.cuda_broken |= _is_cuda_error(exc)
            reply.cuda_broken_by = name if self.cuda_broken else ""
            return
        finally:
            restore_precision(self.defaults)
        for name, rounds in times.items():
            reply.results[name].timing = summarize(rounds)
        if len(self.threads.started) > mark:  # only candidate code is counted
            for name, entry in built.items():
                if not entry.trusted:
                    reply.results[name] = ContestantResult(
                        name, REJECTED, f"it started a thread while timed ({self.threads.started[mark]})",
                        rule="threads",
                    )

    def _recheck(self, built, request, expected, reply, task_file, progress) -> None:
        """Check untrusted contestants again after timing, on input sets never seen before:
        a candidate that cached results or changed state while timed fails here."""
        for name, entry in built.items():
            if entry.trusted or reply.results[name].status != CORRECT:
                continue
            timing = reply.results[name].timing
            result = self._check(name, entry, request, expected, progress, request.hypothesis_seed ^ 0x5EED, trials=2,
                                 label="input set {n} after timing")
            result = self._after(name, result, task_file, request)
            if result.status != CORRECT:
                # Named by the rule the peers lack; the reason keeps the one it broke on the new set.
                broke = f" [{result.rule}]" if result.rule else ""
                result.reason = f"after timing, on new input sets: {result.reason}{broke}"
                result.rule = "after-timing"
                reply.results[name] = result
            else:
                reply.results[name].timing = timing


class ExpectedOutputs:
    """Input sets and reference outputs per draw, each computed once per job, the
    reference on its own copy of the inputs and under the default numeric settings.

    A draw's inputs are made on the device where the task's get_inputs() can run there
    (else on the CPU, and copied to the device once); each caller gets a copy of its own
    made on the device. Either way is much faster than the CPU's random numbers and a
    host-to-device copy per caller, which took seconds per evaluation on tasks with
    large inputs. The fixed draws (timing, precision probe) are the same in every job of
    a task: `kept`, the worker's store for the task, holds their inputs between jobs."""

    def __init__(self, module, reference, device: str, defaults: dict[str, Any],
                 kept: dict[Any, Any] | None = None, fixed: tuple[InputDraw, ...] = ()):
        self.module, self.reference, self.device, self.defaults = module, reference, device, defaults
        self.kept = {} if kept is None else kept
        self._inputs: dict[InputDraw, list[Any]] = {draw: self.kept[draw] for draw in fixed if draw in self.kept}
        self._fixed = fixed
        self._on_device: dict[InputDraw, list[Any]] = {}
        self._outputs: dict[InputDraw, Any] = {}

    def inputs(self, draw: InputDraw) -> list[Any]:
        """The draw's inputs as the task's get_inputs() makes them (the originals: never handed out)."""
        if draw not in self._inputs:
            self._inputs[draw] = make_inputs(self.module, draw, self.device)
            if draw in self._fixed:
                self.kept[draw] = self._inputs[draw]
        return self._inputs[draw]

    def fresh(self, draw: InputDraw) -> list[Any]:
        """A copy of the draw's inputs on the device, for one caller alone."""
        if draw not in self._on_device:
            self._on_device[draw] = [_on(x, self.device) for x in self.inputs(draw)]
        return [_to(x, self.device) for x in self._on_device[draw]]

    def reference_dtypes(self, draw: InputDraw) -> set[str] | None:
        """The dtypes of the reference's matmuls and convolutions (once per task and worker)."""
        if "dtypes" not in self.kept:
            self.kept["dtypes"] = heavy_op_dtypes(self.reference, self.fresh(draw))
        return self.kept["dtypes"]

    def output(self, draw: InputDraw) -> Any:
        if draw not in self._outputs:
            current = precision_settings()
            restore_precision(self.defaults)
            self._outputs[draw] = self.reference(*self.fresh(draw))
            restore_precision(current)
        return self._outputs[draw]


def _build(contestant: Contestant, request: JobRequest, init_inputs: list[Any], workdir: Path, small) -> Any:
    return construct(_import(contestant, request, workdir, small).ModelNew, init_inputs, request)


def _import(contestant: Contestant, request: JobRequest, workdir: Path, small) -> Any:
    module = import_source(contestant.source, workdir, contestant.name)
    if request.size == "small" and small:
        # The run's size applies to the candidate's constants as to the reference's:
        # a Model that reads batch_size at construction sees the same value in both.
        apply_sizes(module, small)
    if not hasattr(module, "ModelNew"):
        raise AttributeError("the candidate defines no ModelNew; it must define class ModelNew(nn.Module)")
    return module


def construct(model_class: Any, init_inputs: list[Any], request: JobRequest) -> Any:
    """Model or ModelNew from the init inputs, under the same seed (same weights), on the
    run's device and in the run's mode."""
    torch.manual_seed(request.weight_seed)
    # torch draws random CPU tensors on one thread (about 5 s per billion): a task of
    # billions of parameters asks for its weights to be drawn on the device instead.
    where = torch.device(request.device) if request.task.build_on_device else contextlib.nullcontext()
    with where:
        model = model_class(*copy.deepcopy(init_inputs))
    return _prepare(model, request)


def _prepare(model: Any, request: JobRequest) -> Any:
    model = model.to(request.device)
    # PIKE's semantics by default (inference: BatchNorm uses running statistics);
    # KernelBench's original evaluator leaves modules in training mode.
    return model.eval() if request.mode == "eval" else model.train()


def _on(x: Any, device: str) -> Any:
    """The same tensor if it is on the device already, else a copy there."""
    return x.to(device) if isinstance(x, torch.Tensor) else x


def _to(x: Any, device: str) -> Any:
    # Always a copy (on the CPU `.to("cpu")` would return the same tensor): each
    # side gets inputs of its own, so a candidate that writes to them harms no one.
    return x.to(device, copy=True) if isinstance(x, torch.Tensor) else copy.deepcopy(x)


def _matches(expected: Any, got: Any, tolerance: tuple, whole: bool) -> bool:
    try:
        compare(expected, got, *tolerance, whole=whole)
    except Mismatch:
        return False
    return True


def _autotuning() -> bool:
    """Whether inductor is set to benchmark kernels while it compiles."""
    from torch._inductor import config

    names = ("max_autotune", "max_autotune_gemm", "max_autotune_pointwise", "coordinate_descent_tuning")
    return any(getattr(config, name, False) for name in names)


def _fx_graph_cache_counts() -> tuple[int, int]:
    """Inductor's FX graph cache hits and misses so far in this process."""
    from torch._dynamo.utils import counters

    return counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"]


def _first_failure(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _reason(exc: BaseException) -> str:
    """An error of candidate code in one line, naming the resource limit it hit, if any."""
    return f"{type(exc).__name__}: {_first_line(exc)}{broken_limit(exc)}"


def _out_of_device_memory(result: ContestantResult) -> bool:
    return "OutOfMemoryError" in result.reason or "CUDA out of memory" in result.reason


def _ran_out_of_device_memory(reply: JobReply) -> bool:
    return any(_out_of_device_memory(result) for result in reply.results.values())


def _is_cuda_error(exc: BaseException) -> bool:
    accelerator_error = getattr(torch, "AcceleratorError", ())
    return isinstance(exc, accelerator_error) or "CUDA error" in str(exc)


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine() or "cpu"
