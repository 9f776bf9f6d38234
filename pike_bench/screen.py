"""A static screen of candidate source, before anything runs.

It rejects what a kernel has no business doing (spawning processes, opening
sockets, writing files, reaching the harness's objects through the garbage collector
or the call stack, running code it hides from the screen, replacing the functions
the harness times with), and it names the kernel languages a candidate uses.

The screen is a first filter, not the sandbox: whatever gets past it still runs
only in the worker process, under the runtime checks of ``evaluate.defenses``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

FORBIDDEN_MODULES = {
    "subprocess": "spawns processes",
    "multiprocessing": "spawns processes",
    "pty": "spawns processes",
    "socket": "opens network sockets",
    "http": "talks to the network",
    "urllib": "talks to the network",
    "requests": "talks to the network",
    "gc": "can reach the reference's tensors through the garbage collector",
    "inspect": "can read the harness's frames",
    "importlib": "imports code the screen cannot see",
    "shutil": "copies or removes files",
}
FORBIDDEN_CALLS = {
    "eval": "runs code the screen cannot see",
    "exec": "runs code the screen cannot see",
    "compile": "runs code the screen cannot see",
    "__import__": "imports code the screen cannot see",
    "globals": "reads or changes module state the screen cannot see",
}
FORBIDDEN_OS = {
    "system": "spawns processes", "popen": "spawns processes", "fork": "spawns processes",
    "forkpty": "spawns processes", "kill": "signals processes", "killpg": "signals processes",
    "remove": "changes files", "unlink": "changes files", "rmdir": "changes files",
    "open": "opens files at the system level", "write": "writes to files",
    "rename": "changes files", "replace": "changes files", "chmod": "changes files",
}  # fmt: skip
FORBIDDEN_SYS = {
    "_getframe": "reads the harness's frames",
    "settrace": "traces the harness",
    "setprofile": "traces the harness",
    "modules": "reaches modules the candidate did not import",
}
TIMED_MODULES = ("time", "torch.cuda", "threading", "_thread")
WRITE_METHODS = {"write_text", "write_bytes"}
LANGUAGES = ("pytorch", "triton", "cuda", "c++")


@dataclass
class Screen:
    problems: list[str] = field(default_factory=list)  # "line 3: imports subprocess (spawns processes)"
    languages: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def custom_kernel(self) -> bool:
        return any(language != "pytorch" for language in self.languages)


def screen(source: str) -> Screen:
    """Screen candidate source (a SyntaxError is left for the build to report)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return Screen(languages=["pytorch"])
    visitor = _Visitor()
    visitor.visit(tree)
    languages = sorted(visitor.languages, key=LANGUAGES.index) or ["pytorch"]
    return Screen(visitor.problems, languages)


def _dotted(node: ast.AST) -> str:
    """'torch.cuda.Event' for the expression torch.cuda.Event, '' for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


class _Visitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.languages: set[str] = set()
        self.builders = {"load_inline"}  # names that build C++/CUDA extensions

    def _flag(self, node: ast.AST, what: str) -> None:
        self.problems.append(f"line {node.lineno}: {what}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._module(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._module(node, node.module or "")
        if node.module == "torch.utils.cpp_extension":
            self.builders.update(alias.asname or alias.name for alias in node.names if alias.name in ("load", "load_inline"))
        if node.module == "os":
            for alias in node.names:
                if alias.name in FORBIDDEN_OS or alias.name.startswith(("exec", "spawn", "posix_spawn")):
                    self._flag(node, f"imports os.{alias.name} ({FORBIDDEN_OS.get(alias.name, 'spawns processes')})")

    def _module(self, node: ast.AST, name: str) -> None:
        root = name.split(".")[0]
        if root in FORBIDDEN_MODULES:
            self._flag(node, f"imports {name} ({FORBIDDEN_MODULES[root]})")
        if root == "triton":
            self.languages.add("triton")

    def visit_Call(self, node: ast.Call) -> None:
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        if name in FORBIDDEN_CALLS:
            self._flag(node, f"calls {name} ({FORBIDDEN_CALLS[name]})")
        elif name == "setattr" and node.args and _dotted(node.args[0]).startswith(TIMED_MODULES):
            self._flag(node, f"calls setattr on {_dotted(node.args[0])} (replaces a function the harness times with)")
        elif name.startswith("os.") and (last in FORBIDDEN_OS or last.startswith(("exec", "spawn", "posix_spawn"))):
            self._flag(node, f"calls {name} ({FORBIDDEN_OS.get(last, 'spawns processes')})")
        elif name == "open" and _writes(node):
            self._flag(node, "opens a file for writing (kernels build through load_inline, in its own folder)")
        elif isinstance(node.func, ast.Attribute) and node.func.attr in WRITE_METHODS:
            self._flag(node, f"calls {node.func.attr} (writes a file)")
        if name in self.builders or name.endswith((".load_inline", "cpp_extension.load")):
            self.languages.add("cuda" if _has_cuda(node) else "c++")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "__builtins__":
            self._flag(node, "uses __builtins__ (reaches functions the screen cannot see)")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = _dotted(node)
        if name.startswith("sys.") and name.split(".")[1] in FORBIDDEN_SYS:
            key = name.split(".")[1]
            self._flag(node, f"uses {name} ({FORBIDDEN_SYS[key]})")
        if isinstance(node.ctx, ast.Store) and name.startswith(tuple(m + "." for m in TIMED_MODULES)):
            self._flag(node, f"replaces {name} (a function the harness times with)")
        self.generic_visit(node)


def _writes(node: ast.Call) -> bool:
    mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
    if mode is None:
        return False
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return any(flag in mode.value for flag in "wax+")
    return True  # a mode the screen cannot read


def _has_cuda(node: ast.Call) -> bool:
    keywords = {k.arg for k in node.keywords}
    if "cuda_sources" in keywords:
        return True
    sources = next((k.value for k in node.keywords if k.arg == "sources"), None)
    return isinstance(sources, (ast.List, ast.Tuple)) and any(
        isinstance(e, ast.Constant) and str(e.value).endswith(".cu") for e in sources.elts
    )
