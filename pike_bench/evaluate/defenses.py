"""Checks against candidates that cheat (run in the worker, around candidate code).

Each check names what it caught in one line, so that an LLM (or a person) can see
which rule a candidate broke:

- outputs must be fresh memory: not the reference's output, not an input, not the
  memory an earlier call returned (shared storage: right values now, overwritten by
  the next call, as a CUDA graph's static output is);
- the functions the harness times with must be the ones bound before any candidate
  code was imported;
- a candidate may not start threads while it runs, nor leave threads running its code
  after it is built (work in them would escape the timer);
- global numeric settings (TF32, matmul precision, cuDNN flags) that a candidate
  changes are recorded and reset, so baselines timed after it are not sped up or
  slowed down by its choices.
"""

from __future__ import annotations

import _thread
import sys
import sysconfig
import threading
import time
from typing import Any, Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from pike_bench.evaluate.check import Mismatch


class Cheat(Exception):
    """A candidate broke one of the evaluator's rules; the message says how, ``rule`` which."""

    def __init__(self, message: str, rule: str):
        super().__init__(message)
        self.rule = rule


def storages(value: Any) -> set[int]:
    """Addresses of the storages of every tensor in a (nested) value."""
    flat, _ = tree_flatten(value)
    return {t.untyped_storage().data_ptr() for t in flat if isinstance(t, torch.Tensor) and t.numel() > 0}


def check_fresh(output: Any, reference_output: Any, inputs: Iterable[Any], earlier: set[int],
                rules: Iterable[str]) -> None:
    """Raise Mismatch if the output reuses memory it must not (under the rules given)."""
    mine = storages(output)
    if "reference-memory" in rules and mine & storages(reference_output):
        raise Mismatch("the output is the reference's output memory, not a result of its own", "reference-memory")
    if "input-alias" in rules and mine & storages(list(inputs)):
        raise Mismatch("the output shares memory with an input; return a new tensor", "input-alias")
    if "shared-storage" in rules and mine & earlier:
        # Its values were right (they are compared first): not a cheat, but a caller that
        # keeps a result sees it overwritten by the next call.
        raise Mismatch(
            "shared storage: the output is the memory an earlier call returned, so the next call overwrites "
            "a result the caller still holds (its values are right when read at once); return a new tensor "
            "on each call, or clone a CUDA graph's static output",
            "shared-storage",
        )


# Bound when the worker imports this module, before any candidate code runs.
_CLOCKS = {
    "time.perf_counter": (time, "perf_counter", time.perf_counter),
    "time.perf_counter_ns": (time, "perf_counter_ns", time.perf_counter_ns),
    "time.time": (time, "time", time.time),
    "torch.cuda.synchronize": (torch.cuda, "synchronize", torch.cuda.synchronize),
    "torch.cuda.Event": (torch.cuda, "Event", torch.cuda.Event),
    "torch.cuda.Event.record": (torch.cuda.Event, "record", torch.cuda.Event.record),
    "torch.cuda.Event.elapsed_time": (torch.cuda.Event, "elapsed_time", torch.cuda.Event.elapsed_time),
}


def check_clocks() -> None:
    """Raise Cheat if a timing function was replaced (a patched clock)."""
    patched = [name for name, (owner, attr, original) in _CLOCKS.items() if getattr(owner, attr, None) is not original]
    if patched:
        raise Cheat(f"it replaced the harness's clock: {', '.join(patched)}", "clock")


def restore_clocks() -> None:
    for owner, attr, original in _CLOCKS.values():
        setattr(owner, attr, original)


CANDIDATE_FILES = "pike_candidates_"  # the folder candidate sources are written to
_STDLIB = sysconfig.get_paths()["stdlib"]
# Installed packages (torch among them) may live under the standard library's folder
# (pyenv: lib/python3.X/site-packages); their frames are a library's, not the stdlib's.
_PACKAGES = (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])


class ThreadWatch:
    """Notes every thread that candidate code starts (directly or through the standard
    library's pools); threads that torch starts for itself are not the candidate's."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def install(self) -> None:
        original_start, original_new = threading.Thread.start, _thread.start_new_thread

        def start(thread, *args, **kwargs):
            self._note(sys._getframe(1))
            return original_start(thread, *args, **kwargs)

        def start_new_thread(*args, **kwargs):
            self._note(sys._getframe(1))
            return original_new(*args, **kwargs)

        threading.Thread.start, _thread.start_new_thread = start, start_new_thread
        # The hooks are timing functions too: a candidate must not take them out.
        _CLOCKS["threading.Thread.start"] = (threading.Thread, "start", start)
        _CLOCKS["_thread.start_new_thread"] = (_thread, "start_new_thread", start_new_thread)

    def _note(self, frame) -> None:
        while frame is not None and _in_stdlib(frame.f_code.co_filename):
            frame = frame.f_back
        if frame is not None and CANDIDATE_FILES in frame.f_code.co_filename:
            self.started.append(f"line {frame.f_lineno} of its code")

    def check_since(self, mark: int) -> None:
        if len(self.started) > mark:
            raise Cheat(f"it started a thread while running ({self.started[mark]}); work in threads escapes the timer",
                        "threads")


def _in_stdlib(filename: str) -> bool:
    return filename.startswith(_STDLIB) and not filename.startswith(_PACKAGES)


def check_no_candidate_threads() -> None:
    """Raise Cheat if a thread is still running the candidate's code (started at build time)."""
    frames = sys._current_frames()
    for thread in threading.enumerate():
        frame = frames.get(thread.ident)
        if thread is threading.current_thread() or frame is None:
            continue
        while frame is not None:
            if CANDIDATE_FILES in frame.f_code.co_filename:
                raise Cheat(
                    f"its thread {thread.name!r} is still running its code (line {frame.f_lineno}); "
                    "work in threads escapes the timer",
                    "threads",
                )
            frame = frame.f_back


def precision_settings() -> dict[str, Any]:
    return {
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
    }


def restore_precision(settings: dict[str, Any]) -> None:
    torch.backends.cuda.matmul.allow_tf32 = settings["matmul_tf32"]
    torch.backends.cudnn.allow_tf32 = settings["cudnn_tf32"]
    torch.set_float32_matmul_precision(settings["float32_matmul_precision"])
    torch.backends.cudnn.benchmark = settings["cudnn_benchmark"]
    torch.backends.cudnn.deterministic = settings["cudnn_deterministic"]


def describe_precision(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What a candidate changed, e.g. 'matmul_tf32=True, float32_matmul_precision=high'."""
    return ", ".join(f"{key}={after[key]}" for key in before if after[key] != before[key])


# Ops whose input dtype is the precision a model computes in (matrix products, convolutions, attention).
HEAVY_OPS = {
    "mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "convolution", "_convolution", "cudnn_convolution",
    "mkldnn_convolution", "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu", "_cudnn_rnn",
}


class HeavyOpDtypes(TorchDispatchMode):
    """Records the floating-point dtypes that reach matrix products and convolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in HEAVY_OPS:
            for value in tree_flatten((args, kwargs))[0]:
                if isinstance(value, torch.Tensor) and value.is_floating_point():
                    self.dtypes.add(str(value.dtype).removeprefix("torch."))
        return func(*args, **(kwargs or {}))


def heavy_op_dtypes(model: Any, inputs: list[Any]) -> set[str] | None:
    """The dtypes a model's matrix products and convolutions see on these inputs (None:
    it could not be observed, e.g. a compiled graph that refuses the dispatch mode).
    Custom Triton and CUDA kernels are invisible here; their precision shows only
    through the tolerance check."""
    recorder = HeavyOpDtypes()
    try:
        with recorder:
            model(*inputs)
    except Exception:
        return None
    return recorder.dtypes
