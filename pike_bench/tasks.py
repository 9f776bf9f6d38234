"""Find and load KernelBench-form task files.

A task file defines ``Model``, ``get_inputs()`` and ``get_init_inputs()`` at module
level (the KernelBench form). Optional names: ``SMALL`` (constants replaced for a
CPU-sized run), ``ATOL``/``RTOL`` (tolerances), ``MARKS`` (pytest marks) and
``BUILD_ON_DEVICE`` (construct the models on the run's device, for models of billions of
parameters).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

REQUIRED_NAMES = ("Model", "get_inputs", "get_init_inputs")
SIZES = ("full", "small")

# The suites that ship with the project (a top-level package beside pike_bench, in the
# repository and in the wheel alike); `--pike-tasks` replaces them.
BUILTIN_ROOT = Path(__file__).resolve().parent.parent / "kernelbench_tasks"


class TaskError(Exception):
    """A task file that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class Task:
    id: str  # "level3/35_LSTM"
    level: str  # "level3"
    name: str  # "35_LSTM"
    path: Path
    # Names of the constants SMALL replaces; the values stay in the file (they may be
    # objects of the task's own classes, which only an import of the file can make).
    small: tuple[str, ...] = ()
    atol: float | None = None
    rtol: float | None = None
    marks: tuple[str, ...] = ()
    # BUILD_ON_DEVICE = True: Model (and ModelNew) are constructed on the run's device.
    build_on_device: bool = False

    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def load_module(path: Path) -> ModuleType:
    """Import a task file under a name of its own, raising TaskError if it does not import."""
    path = Path(path).resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    safe_stem = re.sub(r"\W", "_", path.stem)
    module_name = f"pike_task_{safe_stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TaskError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    # Registered while it executes so dataclasses and pickling can find the module.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        raise TaskError(f"{path}: does not import: SyntaxError at line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # any error in a task file becomes one readable line
        sys.modules.pop(module_name, None)
        raise TaskError(f"{path}: does not import: {type(exc).__name__}: {exc}") from None
    return module


def task_from_file(path: Path) -> Task:
    """Load one task file and check its form; the level is the name of its folder."""
    path = Path(path).resolve()
    module = load_module(path)
    missing = [name for name in REQUIRED_NAMES if not hasattr(module, name)]
    if missing:
        raise TaskError(
            f"{path}: missing {', '.join(missing)}; a task defines Model, get_inputs() and get_init_inputs()"
        )
    small = getattr(module, "SMALL", None)
    if small is not None and not isinstance(small, dict):
        raise TaskError(f"{path}: SMALL must be a dict of module constants, got {type(small).__name__}")
    unknown = [key for key in (small or {}) if not hasattr(module, key)]
    if unknown:
        raise TaskError(f"{path}: SMALL names {', '.join(unknown)}, which the file does not define")
    level = path.parent.name
    return Task(
        id=f"{level}/{path.stem}",
        level=level,
        name=path.stem,
        path=path,
        small=tuple(small or ()),
        atol=_optional_float(module, "ATOL"),
        rtol=_optional_float(module, "RTOL"),
        marks=tuple(getattr(module, "MARKS", ())),
        build_on_device=bool(getattr(module, "BUILD_ON_DEVICE", False)),
    )


def _optional_float(module: ModuleType, name: str) -> float | None:
    value = getattr(module, name, None)
    return None if value is None else float(value)


def _natural_key(path: Path) -> tuple:
    # "2_X" before "10_Y", as KernelBench numbers its tasks.
    return (path.parent.name, [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.stem)])


def task_files(roots: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        root = Path(root).expanduser().resolve()
        if root.is_file():
            files.append(root)
            continue
        if not root.is_dir():
            raise TaskError(f"{root}: no such file or folder of tasks")
        files.extend(path for path in root.rglob("*.py") if is_task_file(path, root))
    return sorted(set(files), key=_natural_key)


def is_task_file(path: Path, root: Path) -> bool:
    """Whether a file under a folder of tasks is a task: a .py file, not hidden (``.`` or
    ``_``), not a test module or conftest (those are pytest's)."""
    if path.suffix != ".py" or path.name.startswith("test_") or path.name == "conftest.py":
        return False
    return not any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


def discover_tasks(roots: Iterable[Path] | None = None) -> tuple[list[Task], list[TaskError]]:
    """All tasks under the roots, and one error per file that is not a usable task."""
    roots = list(roots) if roots else [BUILTIN_ROOT]
    tasks: list[Task] = []
    errors: list[TaskError] = []
    seen: dict[str, Path] = {}
    for path in task_files(roots):
        try:
            task = task_from_file(path)
        except TaskError as exc:
            errors.append(exc)
            continue
        if task.id in seen:
            errors.append(TaskError(f"{path}: task id {task.id} is already taken by {seen[task.id]}"))
            continue
        seen[task.id] = path
        tasks.append(task)
    return tasks, errors


def find_task(spec: str, roots: Iterable[Path] | None = None) -> Task:
    """A task by id ("level3/1_MLP") or by the path of its file."""
    candidate = Path(spec).expanduser()
    if candidate.suffix == ".py" and candidate.is_file():
        return task_from_file(candidate)
    tasks, _ = discover_tasks(roots)
    for task in tasks:
        if task.id == spec:
            return task
    close = [task.id for task in tasks if spec.lower() in task.id.lower()]
    hint = f"; did you mean {', '.join(close[:5])}?" if close else "; `pike tasks` lists them"
    raise TaskError(f"{spec}: no such task{hint}")


def sized_module(task: Task, size: str) -> ModuleType:
    """A fresh copy of the task's module with its constants set for the size asked for."""
    if size not in SIZES:
        raise TaskError(f"size {size!r} is not one of {', '.join(SIZES)}")
    module = load_module(task.path)
    if size == "small":
        apply_sizes(module, getattr(module, "SMALL", None) or {})
    return module


def apply_sizes(module: ModuleType, sizes: dict[str, Any]) -> None:
    """Replace the module constants named in ``sizes`` (those the module defines)."""
    for key, value in sizes.items():
        if hasattr(module, key):
            setattr(module, key, copy.deepcopy(value))
