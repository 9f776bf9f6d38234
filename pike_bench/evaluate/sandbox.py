"""What candidate code can reach: the environment and the sandbox of worker and build processes.

Candidate code is written by an LLM and runs on the user's machine, and a C++ or CUDA
kernel is out of the static screen's sight. So every process that imports a candidate
(the worker, the CPU prebuild) starts

- from an allow-list of environment variables: what Python, torch, CUDA, Triton and the
  compilers read, never a name that looks like a credential, so an API key is not in the
  process's environment when it starts;
- inside bubblewrap where it works, else util-linux's ``unshare`` with namespaces.py
  (same view): no network, its own process and IPC namespaces (the parent's
  ``/proc/PID/environ`` is out of sight), the filesystem read-only except its scratch
  folder and the compiler caches, the system's sockets (``/run``) and the usual
  credential files of the home folder hidden, the GPU device nodes passed through, and
  no capabilities (not even when the user is root).

The sandbox does not hide files that any process of the user may read, nor GPU memory,
nor timing: see the README's section on the sandbox.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

MODES = ("auto", "on", "off")

# What Python, torch, CUDA, Triton and the compilers read; nothing else reaches a candidate.
ALLOWED_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TERM", "XDG_CACHE_HOME",
    "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONWARNINGS",
    "VIRTUAL_ENV", "CONDA_PREFIX", "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH", "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH", "CC", "CXX", "CFLAGS", "CXXFLAGS", "LDFLAGS", "MAX_JOBS",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
})  # fmt: skip
ALLOWED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "NVCC_", "CUDNN_", "CUBLAS_", "NCCL_", "TORCH_", "TORCHINDUCTOR_",
                    "PYTORCH_", "TRITON_", "KMP_", "HIP_", "ROCM_", "HSA_")
# Dropped even where the allow-list would pass them (TORCH_HUB_TOKEN, CUDA_..._KEY).
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE", "ANTHROPIC")

# The caches the worker writes, each in a folder of pike-bench's own unless the user
# names one: candidates can write there, so never into the user's own torch caches,
# where a planted artifact would be loaded by the user's code outside the sandbox.
CACHES = {"TORCH_EXTENSIONS_DIR": "torch_extensions", "TORCHINDUCTOR_CACHE_DIR": "inductor",
          "TRITON_CACHE_DIR": "triton", "CUDA_CACHE_PATH": "nv"}

# Hidden inside the sandbox: the system's sockets (a read-only mount does not stop a
# connect(): Docker's socket, D-Bus, agents) and credentials kept in the home folder.
HIDDEN = ("/run", "/tmp/.X11-unix")
HIDDEN_IN_HOME = (".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker", ".netrc", ".git-credentials", ".pypirc",
                  ".config/gcloud", ".config/gh", ".bash_history", ".zsh_history", ".python_history")
SHOWN_AGAIN = ("/run/nvidia-persistenced",)  # the NVIDIA driver's daemon, as NVIDIA's container toolkit mounts it
GPU_NODES = ("/dev/nvidia*", "/dev/dri")
# The tools, in the order `auto` tries them: bubblewrap, else util-linux's unshare with
# namespaces.py inside, which builds what bubblewrap would.
TOOLS = {"bwrap": "bubblewrap", "unshare": "unshare (util-linux)"}
INSTALL = {"bwrap": "apt-get install bubblewrap, or dnf install bubblewrap",
           "unshare": "apt-get install util-linux, or dnf install util-linux"}
NAMESPACES = Path(__file__).with_name("namespaces.py")


class SandboxUnavailable(RuntimeError):
    """The sandbox was required (mode ``on``) and cannot run here; the message says why."""


def allowed_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of `environ` that a worker may see."""
    return {
        name: value
        for name, value in environ.items()
        if (name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES))
        and not any(word in name.upper() for word in SECRET_WORDS)
    }


def pike_cache(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pike-bench"


@dataclass
class Confined:
    """A process ready to start: its command line, its environment and its scratch folder."""

    argv: list[str]
    env: dict[str, str]
    scratch: Path

    def remove_scratch(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


@dataclass(frozen=True)
class Sandbox:
    """The tool that confines candidates and its path; no tool where candidates run without
    a sandbox: turned off, or unavailable, and then `why_not` says why."""

    tool: str | None = None  # one of TOOLS
    path: str = ""
    why_not: str = ""

    @property
    def enabled(self) -> bool:
        return self.tool is not None

    @classmethod
    def choose(cls, mode: str, tools: tuple[str, ...] = tuple(TOOLS)) -> "Sandbox":
        """`auto`: the first of `tools` that works; `on`: it or SandboxUnavailable; `off`: none."""
        if mode not in MODES:
            raise ValueError(f"{mode!r} is not one of {', '.join(MODES)}")
        if mode == "off":
            return cls()
        problems = []
        for tool in tools:
            found = cls(tool, shutil.which(tool) or "")
            problem = found._problem()
            if not problem:
                return found
            problems.append(problem)
        if mode == "on":
            raise SandboxUnavailable("; ".join(problems))
        return cls(why_not="; ".join(problems))

    def _problem(self) -> str:
        """Why this tool cannot sandbox a process here, or '' (it started one)."""
        name = TOOLS[self.tool]
        if not sys.platform.startswith("linux"):
            return f"the sandbox uses {name}, which runs on Linux only (this is {sys.platform})"
        if not self.path:
            return f"{name} is not installed ({INSTALL[self.tool]})"
        # With the GPU nodes a worker gets: a node that cannot be bound shows here, not at the first job.
        done = self._try(["true"])
        if isinstance(done, str):
            return f"{name} could not start: {done}"
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
            return f"{name} cannot make a sandbox here ({lines[-1]}); user namespaces may be disabled"
        # Where the GPU driver starts outside, it must start inside too: in one container
        # (an H200 machine) unshare's view made cuInit fail (error 304), and with it every
        # GPU evaluation, while bubblewrap's did not.
        if cuda_init_error() == 0:
            inside = self._try([sys.executable, "-c", _CUDA_INIT.format(library=CUDA_DRIVER)])
            code = inside if isinstance(inside, str) else _cuda_init_result(inside)
            if code != 0:
                return f"{name} makes a sandbox here, but the GPU driver does not start inside it (cuInit: {code})"
        return ""

    def _try(self, argv: list[str]) -> subprocess.CompletedProcess | str:
        """`argv` run inside this sandbox, or why it could not be started."""
        confined = self.prepare(argv)
        try:
            return subprocess.run(confined.argv, env=confined.env, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        finally:
            confined.remove_scratch()

    def prepare(self, argv: list[str], *, gpus: bool = True, env: Mapping[str, str] | None = None,
                writable: tuple[Path, ...] | list[Path] = ()) -> Confined:
        """The command line and environment that start `argv` confined, with a fresh scratch
        folder as its TMPDIR; `env` is added to the allowed variables, and the folders of
        `writable` to those it may write besides the scratch folder and the caches."""
        scratch = Path(tempfile.mkdtemp(prefix="pike_scratch_")).resolve()
        environment = {**allowed_environment(os.environ), **(env or {}), "TMPDIR": str(scratch)}
        for name, folder in CACHES.items():
            environment.setdefault(name, str(pike_cache(environment) / folder))
            Path(environment[name]).mkdir(parents=True, exist_ok=True)
        writable = [scratch] + [Path(environment[name]).resolve() for name in CACHES] + list(writable)
        wrap = {None: lambda *_: list(argv), "bwrap": self._bwrap, "unshare": self._unshare}[self.tool]
        return Confined(wrap(argv, writable, gpus), environment, scratch)

    def _bwrap(self, argv: list[str], writable: list[Path], gpus: bool) -> list[str]:
        args = [self.path, "--ro-bind", "/", "/", "--dev", "/dev", "--tmpfs", "/dev/shm", "--proc", "/proc",
                "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                "--new-session",  # no controlling terminal: no keystrokes pushed into the user's shell
                "--die-with-parent",
                # Run by root, bubblewrap keeps root's capabilities, and a candidate could mount / writable again.
                "--cap-drop", "ALL"]  # fmt: skip
        for node in gpu_nodes() if gpus else []:
            args += ["--dev-bind", node, node]
        for path in hidden():
            args += ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]
        for path in filter(os.path.isdir, SHOWN_AGAIN):
            args += ["--ro-bind", path, path]
        for path in writable:
            args += ["--bind", str(path), str(path)]
        return args + ["--", *argv]

    def _unshare(self, argv: list[str], writable: list[Path], gpus: bool) -> list[str]:
        """New namespaces from unshare; the rest of the sandbox is namespaces.py's work, inside them."""
        plan = {"writable": [str(path) for path in writable], "hide": hidden(),
                "show": list(filter(os.path.isdir, SHOWN_AGAIN)), "gpu_nodes": gpu_nodes() if gpus else []}
        # As root the namespaces need no user namespace; anyone else maps themselves to root inside one.
        user = ["--user", "--map-root-user"] if os.geteuid() != 0 else []
        return [self.path, "--mount", "--net", "--pid", "--fork", "--mount-proc", "--ipc", "--uts",
                "--kill-child",  # the worker and all it started end with unshare
                *user, "--", sys.executable, "-I", "-S", str(NAMESPACES), json.dumps(plan), "--", *argv]  # fmt: skip

    def exit_code(self, code: int | None) -> int | None:
        """A sandboxed process's exit code as Popen gives it unsandboxed: both tools
        report death by signal N as 128 + N (a candidate's own exit(139) reads the same)."""
        if self.enabled and code is not None and code > 128:
            return -(code - 128)
        return code


# Prints cuInit's result (0: the driver started; 304 where a sandbox hides what it needs),
# or exits with 1 where there is no driver to load.
CUDA_DRIVER = "libcuda.so.1"
_CUDA_INIT = """
import ctypes, sys
try:
    driver = ctypes.CDLL({library!r})
except OSError:
    sys.exit(1)
print(driver.cuInit(0))
"""
NO_DRIVER = -1


def _cuda_init_result(done: subprocess.CompletedProcess) -> int:
    """cuInit's result from a run of _CUDA_INIT, or NO_DRIVER."""
    try:
        return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else NO_DRIVER
    except (ValueError, IndexError):
        return NO_DRIVER


@functools.lru_cache(maxsize=1)
def cuda_init_error() -> int:
    """cuInit's result in a fresh process here, unconfined (NO_DRIVER: no GPU driver); a
    child process, since the parent must not start CUDA before it forks workers. Asked
    once per process: every tool `choose` tries is compared with the same answer."""
    if not gpu_nodes():
        return NO_DRIVER
    try:
        done = subprocess.run([sys.executable, "-c", _CUDA_INIT.format(library=CUDA_DRIVER)], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return NO_DRIVER
    return _cuda_init_result(done)


def gpu_nodes() -> list[str]:
    return sorted(node for pattern in GPU_NODES for node in glob.glob(pattern))


def hidden() -> list[str]:
    """The folders and files to cover that exist here (a link is left: covering it would cover its target)."""
    home = Path.home()
    paths = [*HIDDEN, *(str(home / name) for name in HIDDEN_IN_HOME)]
    return [path for path in paths if os.path.exists(path) and not os.path.islink(path)]
