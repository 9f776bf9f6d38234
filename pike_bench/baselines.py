"""Baselines as candidate sources, so that they are built, checked and timed by the
same path as an LLM's candidate.

Each baseline is the task's own source with a ``ModelNew`` appended:

- ``eager``: the reference as written;
- ``compile``: ``torch.compile`` of the reference (mode selectable);
- ``graph``: the reference's forward captured once in a CUDA graph and replayed
  (CUDA only). It shows how much of a speedup is launch overhead removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

BASELINES = ("eager", "compile", "graph")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_cache_beside(store_path: Path) -> Path:
    """The inductor cache of the compile baseline kept with a record: the folder beside
    the record's SQLite file, so that it travels with the record."""
    return Path(store_path).parent / "inductor-cache"


# Names the record's cache folder in a worker's environment.
BASELINE_CACHE = "PIKE_BASELINE_CACHE"


@contextlib.contextmanager
def baseline_cache(task_id: str) -> Iterator[None]:
    """Inside: inductor caches in the record's folder for `task_id` (e.g.
    inductor-cache/level3/9_ResNet18), where the worker was given one. One folder per
    task, so that a finished task's builds, never needed again, can be left behind."""
    root = os.environ.get(BASELINE_CACHE)
    if not root:
        yield
        return
    from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir

    folder = Path(root, task_id)
    _forget_if_moved(folder)
    with temporary_cache_dir(str(folder)):
        yield


BUILT_AT = ".built-at"  # names the folder's absolute path when its builds were made


def _forget_if_moved(folder: Path) -> None:
    """Empty a task's cache folder that was built at another path. Inductor's entries
    name absolute paths of its own files (on a GPU, the kernels' cubins), and loading
    one moved elsewhere fails in the sandbox, where the old path cannot be written
    ("Read-only file system"): seen on the H200 when a record moved between folders.
    A moved cache is built once more, cold, at its new place."""
    marker = folder / BUILT_AT
    here = str(folder.resolve())
    if folder.is_dir() and (not marker.exists() or marker.read_text() != here):
        shutil.rmtree(folder, ignore_errors=True)  # another worker of the task may empty it too
    folder.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        marker.write_text(here)


def parse_baselines(option: str) -> tuple[str, ...]:
    """'eager,compile' -> ('eager', 'compile'); eager, the reference, is always there."""
    names = [n.strip() for n in option.split(",") if n.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"{','.join(unknown)}: not a baseline; choose from {', '.join(BASELINES)}")
    return tuple(n for n in BASELINES if n in names or n == "eager")


_EAGER = """

ModelNew = Model
"""

_COMPILE = """

import torch as _pike_torch


def ModelNew(*args, **kwargs):
    return _pike_torch.compile(Model(*args, **kwargs), mode={mode!r})
"""

# Static input buffers are filled before each replay, and the output is cloned so
# that each call returns fresh memory, as a candidate's must.
_GRAPH = """

import torch as _pike_torch


class ModelNew(_pike_torch.nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        self.model = Model(*args, **kwargs)
        self._graph = None

    def _capture(self, inputs):
        self._static = [x.clone() if isinstance(x, _pike_torch.Tensor) else x for x in inputs]
        side = _pike_torch.cuda.Stream()
        side.wait_stream(_pike_torch.cuda.current_stream())
        with _pike_torch.cuda.stream(side):
            for _ in range(3):
                self.model(*self._static)
        _pike_torch.cuda.current_stream().wait_stream(side)
        # Kept only once the capture succeeded: a forward that cannot be captured (a host
        # sync, a data-dependent shape) fails with its own reason on every call.
        graph = _pike_torch.cuda.CUDAGraph()
        with _pike_torch.cuda.graph(graph):
            out = self.model(*self._static)
        self._graph, self._out = graph, out

    def forward(self, *inputs):
        if self._graph is None:
            self._capture(inputs)
        for static, x in zip(self._static, inputs):
            if isinstance(x, _pike_torch.Tensor):
                static.copy_(x)
        self._graph.replay()
        return _pike_torch.utils._pytree.tree_map(
            lambda t: t.clone() if isinstance(t, _pike_torch.Tensor) else t, self._out
        )
"""


def baseline_source(task_path: Path, name: str, compile_mode: str = "default") -> str:
    """The source of a baseline candidate for the task file at ``task_path``."""
    reference = Path(task_path).read_text()
    if name == "eager":
        return reference + _EAGER
    if name == "compile":
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile mode {compile_mode!r} is not one of {', '.join(COMPILE_MODES)}")
        return reference + _COMPILE.format(mode=compile_mode)
    if name == "graph":
        return reference + _GRAPH
    raise ValueError(f"unknown baseline {name!r}; one of {', '.join(BASELINES)}")
