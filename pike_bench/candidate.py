"""Candidate source: pull code out of an LLM reply, and build a module from it.

Building happens in the worker process only. The source is written to a file
before it is imported, so Triton's ``@triton.jit`` (which reads the source of the
function) and tracebacks (which name file and line) work as for any module.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
import traceback
from pathlib import Path
from types import ModuleType

FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


class NoCodeError(ValueError):
    """An LLM reply without a code block."""


def extract_code(reply: str) -> str:
    """The last fenced Python block of a reply that defines ModelNew, else the last block."""
    blocks = FENCE.findall(reply)
    if not blocks:
        raise NoCodeError("the reply has no ```python code block; ask for the whole program in one block")
    with_model = [block for block in blocks if "ModelNew" in block]
    return (with_model or blocks)[-1].strip() + "\n"


def source_path(source: str, workdir: Path, label: str) -> Path:
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    path = Path(workdir) / f"{label}_{digest}.py"
    path.write_text(source)
    return path


def import_source(source: str, workdir: Path, label: str) -> ModuleType:
    """Import candidate source as a module of its own (exceptions propagate)."""
    path = source_path(source, workdir, label)
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def source_traceback(exc: BaseException, path_fragment: str, limit: int = 6) -> str:
    """The frames of a traceback that lie in the candidate's file, with its line text.

    Frames inside torch or Triton tell an LLM little; the lines of its own code do.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if path_fragment in f.filename]
    lines = [f"  line {f.lineno}, in {f.name}: {(f.line or '').strip()}" for f in own[-limit:]]
    # Not format_exception_only: it appends Hypothesis's "Falsifying example" notes.
    message = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, SyntaxError) and exc.lineno:
        lines.append(f"  line {exc.lineno}: {(exc.text or '').strip()}")
    return "\n".join(lines + [_clip(message, 1500)])


# gcc/clang: "path:12:5: error: msg"; nvcc: "path(12): error: msg"
COMPILER_ERROR = re.compile(r"^(?P<path>/\S+?)(?::(?P<line>\d+):\d+:|\((?P<nvline>\d+)\):) (?:fatal )?error: (?P<msg>.*)$")


def compile_errors(message: str, source: str, limit: int = 5) -> list[str]:
    """Compiler errors in a build log, each placed on the line of the candidate's own
    source that holds the offending code (load_inline writes that code to files of
    its own, with lines added before it)."""
    found = []
    for match in map(COMPILER_ERROR.match, message.splitlines()):
        if match is None:
            continue
        number = int(match["line"] or match["nvline"])
        code = _line_of(Path(match["path"]), number)
        where = _find_line(source, code)
        place = f"candidate line {where}" if where else f"{Path(match['path']).name}:{number}"
        found.append(f"{place}: error: {match['msg'].strip()}" + (f"\n    {code}" if code else ""))
        if len(found) == limit:
            break
    return found


def _line_of(path: Path, number: int) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return lines[number - 1].strip() if 0 < number <= len(lines) else ""


def _find_line(source: str, code: str) -> int | None:
    if not code:
        return None
    for index, line in enumerate(source.splitlines(), start=1):
        if line.strip() == code:
            return index
    return None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n  ...\n" + text[-limit // 2 :]
