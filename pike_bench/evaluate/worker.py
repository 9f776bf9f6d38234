"""The worker process: one per device, long-lived, replaced after a crash, a hang or a
CUDA error.

The parent sends a job; the worker answers with progress lines (what it is doing
now) and then the reply (the messages: :mod:`pike_bench.evaluate.messages`). The
parent waits at most ``timeout`` seconds for each next message: a candidate that hangs
is killed with its worker, and the last progress line says what it was doing. A worker that dies (``os._exit``, a
segfault, the OOM killer) is seen as end-of-file on the pipe.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import socket
import subprocess
import sys
import tempfile
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

from pike_bench.baselines import BASELINE_CACHE
from pike_bench.evaluate import build_lock
from pike_bench.evaluate.limits import VARIABLE, Limits, apply_from_environment
from pike_bench.evaluate.messages import DONE, ERROR, PHASE, READY, JobReply, JobRequest
from pike_bench.evaluate.sandbox import Confined, Sandbox

OnPhase = Callable[[str, str], None]  # (what the worker is doing, which contestant or "")

STARTUP_TIMEOUT = 300.0  # importing torch and initialising CUDA on a cold machine

# Workers are started from this one thread, which lives as long as the process: bubblewrap's
# --die-with-parent kills the sandbox when the *thread* that started it ends (the kernel's
# parent-death signal follows the thread), and evaluations run in asyncio's executor
# threads, which end with their event loop (each task's asyncio.run). Started there, a
# worker was killed between two tasks, or in the middle of the next task's candidate,
# whose verdict then read "killed by SIGKILL while building candidate".
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pike-worker-start")


class WorkerDied(Exception):
    """The worker ended or was killed; ``status`` is ``crashed`` or ``timeout``."""

    def __init__(self, status: str, reason: str, detail: str = "", culprit: str = ""):
        super().__init__(reason)
        self.status, self.reason, self.detail, self.culprit = status, reason, detail, culprit


def serve(conn: Connection) -> None:
    """The worker's main loop (runs in the child process, whose output goes to its log)."""
    apply_from_environment()  # before any candidate code
    faulthandler.enable()  # a segfault leaves its Python stack in the log
    build_lock.install()  # a candidate killed mid-build must not stall the next build of its extension
    from pike_bench.evaluate.job import Worker

    worker = Worker()
    conn.send((READY, os.getpid()))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        except Exception:  # a request that does not unpickle here is our bug: say so
            conn.send((ERROR, traceback.format_exc()))
            continue
        try:
            reply = worker.run(request, lambda phase, who: conn.send((PHASE, (phase, who))))
        except Exception:
            conn.send((ERROR, traceback.format_exc()))
            continue
        conn.send((DONE, reply))


@dataclass
class WorkerProcess:
    """The parent's handle on one worker process."""

    device: str
    sandbox: Sandbox
    compile_cache: str = ""  # the record's cache of compile baselines ("": none kept)
    process: subprocess.Popen | None = None
    confined: Confined | None = None  # its command line, environment and scratch folder
    conn: Connection | None = None
    log_path: str = ""
    phase: str = ""
    culprit: str = ""  # the contestant the worker was busy with, if any
    log_offset: int = 0  # where the current job's output starts in the log

    def start(self) -> None:
        # A fresh interpreter (not multiprocessing's spawn, which re-runs the caller's
        # __main__ and inherits its environment), sandboxed, talking over a socket pair;
        # its stdout and stderr go to a log file.
        parent, child = socket.socketpair()
        fd, self.log_path = tempfile.mkstemp(prefix=f"pike_worker_{self.device.replace(':', '')}_", suffix=".log")
        # On the CPU, Triton candidates run in its interpreter.
        env = {"TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET", "1")} if self.device == "cpu" else {}
        env[VARIABLE] = Limits.for_process(self.device, self.sandbox.enabled).encode()
        writable = []
        if self.compile_cache:
            # Only the baselines' builds go there (job.baseline_cache); candidates compile
            # into the sandbox's own inductor cache, so the record's stays small enough to
            # carry between machines and holds nothing a candidate built.
            cache = prepare_compile_cache(Path(self.compile_cache))
            writable.append(cache)
            env[BASELINE_CACHE] = str(cache)
            env["TORCHINDUCTOR_FX_GRAPH_CACHE"] = os.environ.get("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
        self.confined = self.sandbox.prepare([sys.executable, "-c", _WORKER_MAIN, str(child.fileno())], env=env,
                                             writable=writable)
        with os.fdopen(fd, "w") as log:
            self.process = _SPAWNER.submit(
                subprocess.Popen,
                self.confined.argv,
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.confined.env,
            ).result()
        child.close()
        self.conn = Connection(parent.detach())
        self.phase, self.culprit = "starting the worker", ""
        self._receive(STARTUP_TIMEOUT)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def run(self, request: JobRequest, timeout: float, on_phase: OnPhase | None = None) -> JobReply:
        """Send a job, wait for its reply; raises WorkerDied (and stops the worker) on a crash or hang.
        `on_phase` hears each step as the worker reports it: (what, which contestant or "")."""
        if not self.alive:
            if on_phase is not None:
                on_phase("starting the worker", "")
            self.start()
        self.phase, self.culprit = "sending the job", ""
        self.log_offset = os.path.getsize(self.log_path)
        self.conn.send(request)
        while True:
            kind, payload = self._receive(timeout)
            if kind == PHASE:
                self.phase, self.culprit = payload
                if on_phase is not None:
                    on_phase(*payload)
            elif kind == DONE:
                return payload
            elif kind == ERROR:
                self.stop()
                raise RuntimeError(f"pike-bench worker failed (a bug in pike-bench, please report):\n{payload}")

    def _receive(self, timeout: float):
        try:
            ready = self.conn.poll(timeout)
        except (EOFError, OSError):
            ready = True
        if not ready:
            phase, culprit = self.phase, self.culprit
            self.stop()
            raise WorkerDied("timeout", f"timed out after {timeout:g} s while {phase}", culprit=culprit)
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            phase, culprit = self.phase, self.culprit
            code = self._wait_exit()
            detail = self.log_tail()
            self.stop()
            raise WorkerDied("crashed", f"the worker process {_describe_exit(code)} while {phase}", detail, culprit)

    def _wait_exit(self) -> int | None:
        try:
            return self.sandbox.exit_code(self.process.wait(timeout=10))
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, lines: int = 20) -> str:
        """What the worker wrote during this job: the native crash report, cut to the
        candidate's own frames, or else its last lines."""
        try:
            with open(self.log_path, errors="replace") as log:
                log.seek(self.log_offset)
                text = log.read().strip().splitlines()
        except OSError:
            return ""
        fatal = [i for i, line in enumerate(text) if line.startswith("Fatal Python error")]
        if fatal:
            report = text[fatal[-1] :]
            own = [line for line in report if "pike_candidates_" in line]
            return "\n".join(report[:2] + own[:lines])
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=10)
        if self.conn is not None:
            self.conn.close()
        if self.confined is not None:
            self.confined.remove_scratch()
        self.process, self.conn, self.confined = None, None, None


def prepare_compile_cache(path: Path) -> Path:
    """The folder where torch's inductor keeps what it compiled (FX graph, autotune and
    Triton caches), made if missing. A worker that builds the compile baseline again (a
    new worker, another run on the same record) then loads it instead of compiling.
    Its files are binaries of one machine's GPU and toolchain, so git ignores them."""
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# pike-bench: torch inductor's compile cache, not for version control\n*\n")
    return path


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            return f"was killed by signal {-code}"
        # Python ignores SIGXFSZ (the write fails instead), unless the candidate restores its default.
        return f"was killed by {name}" + (" (over the file size limit of candidates)" if name == "SIGXFSZ" else "")
    return f"exited with code {code}"


_WORKER_MAIN = (
    "import sys; from multiprocessing.connection import Connection; "
    "from pike_bench.evaluate.worker import serve; serve(Connection(int(sys.argv[1])))"
)
