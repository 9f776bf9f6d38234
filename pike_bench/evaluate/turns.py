"""Turns on one device between worker processes: timing alone, checking side by side.

Several workers may serve one GPU (tasks in flight: one builds while another is timed).
A timed round is fair only if nothing else runs on the GPU meanwhile: a kernel of
another process, time-sliced in, lands in whichever contestant's call is being timed.
So the workers of a device share a reader-writer lock, a pair of files locked with
``flock``:

- a timed section takes it exclusively (alone on the device);
- a check (a model run on an input set, and the comparison) takes it shared: checks of
  several workers may overlap, but none overlaps a timed section; so does any other run
  of candidate code (its constructor, its first call, which compiles);
- the rest takes nothing and overlaps everything: a worker starting, imports, a
  baseline's build (trusted code compiling or capturing, one forward on the device),
  the parent's work between jobs. That is the time the other workers use. (Input sets
  are drawn within the turn that uses them: on the GPU, in milliseconds.)
- inside a shared turn, a worker may step away while torch.compile compiles (tracing
  and code generation, on the CPU: the bulk of a compile move's first call) and come
  back before the compiled code runs (job.py says when): another worker times meanwhile.
- a job run again after the device's memory ran out takes the lock exclusively for the
  whole job (``alone``): no other worker checks or times meanwhile, so none of their
  allocations of the moment stand in its way a second time.

A waiting writer closes a turnstile first, so that a stream of checks cannot starve it.
``flock`` needs only read access, so a sandboxed worker (read-only filesystem) can lock
files the parent made; a lock dies with its process, so a killed worker frees it.
Every turn taken is kept (kind, start, end in unix seconds), for reports of how busy the
device was.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

# A build that holds the device (a candidate's constructor and first call, where Triton
# and torch.compile compile and autotune) is told apart from the checks proper.
BUILD, CHECK, TIME = "build", "check", "time"
COMPILE = "compile"  # stepped away from a shared turn while torch.compile compiled
ALONE = "alone"  # a whole job with the device to itself; its checks and timed sections are recorded inside
POLL_SECONDS = 0.005
HEARTBEAT_SECONDS = 5.0  # a waiting worker says so this often, so its parent's step timeout does not fire


def lock_path(device: str) -> Path:
    """The lock of a device as this machine names it: the device and the GPUs visible to
    this process (cuda:0 of CUDA_VISIBLE_DEVICES=2 is another GPU than cuda:0 of all)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "all")
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{visible}-{device}")
    folder = Path(tempfile.gettempdir()) / f"pike-bench-turns-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{name}.lock"


def prepare_lock(path: str | Path) -> str:
    """Make the lock's two files (a sandboxed worker cannot create them); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for file in (path, _turnstile(path)):
        file.touch(exist_ok=True)
    return str(path)


def _turnstile(path: Path) -> Path:
    return path.with_name(path.name + ".turnstile")


class Turns:
    """One worker's side of a device's lock; with no path, turns are only recorded."""

    def __init__(self, path: str = "", waiting: Callable[[bool], None] = lambda still: None):
        # waiting(True) every few seconds while it waits, waiting(False) once it has its turn
        self.path, self.waiting = path, waiting
        self.taken: list[tuple[str, float, float]] = []
        self._files: tuple[int, int] | None = None
        self._holding: tuple[str, int, float] | None = None  # the turn held now: kind, lock mode, since
        self._away: tuple[str, int, float] | None = None  # the shared turn stepped away from, and since when
        self._alone = False  # inside `alone`: turns are recorded, the lock is already held exclusively

    @contextlib.contextmanager
    def check(self, kind: str = CHECK) -> Iterator[None]:
        """A shared turn, recorded as `kind` (check or build)."""
        with self._turn(kind, fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def time(self) -> Iterator[None]:
        with self._turn(TIME, fcntl.LOCK_EX):
            yield

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        """The device to this worker alone for a stretch of turns (a job run again after it
        ran out of device memory): they take no lock of their own inside, and none of them
        steps away (flock would turn the exclusive lock into a shared one)."""
        self._enter(ALONE, fcntl.LOCK_EX)
        self._alone = True
        try:
            yield
        finally:
            self._alone = False
            self._leave()

    @contextlib.contextmanager
    def _turn(self, kind: str, mode: int) -> Iterator[None]:
        if self._alone:
            start = time.time()
            try:
                yield
            finally:
                self.taken.append((kind, start, time.time()))
            return
        self._enter(kind, mode)
        try:
            yield
        finally:
            if self._away is not None:  # a compile that raised never said it ended: nothing to give back
                self.taken.append((COMPILE, self._away[2], time.time()))
                self._away = None
            else:
                self._leave()

    def _enter(self, kind: str, mode: int) -> None:
        if self.path:
            lock, turnstile = self._open()
            self._take(turnstile, fcntl.LOCK_EX)
            try:
                self._take(lock, mode)
            finally:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
        self._holding = (kind, mode, time.time())

    def _leave(self) -> None:
        kind, _, start = self._holding
        self._holding = None
        self.taken.append((kind, start, time.time()))
        if self.path:
            fcntl.flock(self._open()[0], fcntl.LOCK_UN)

    def step_away(self) -> None:
        """Let a shared turn go for a while (until come_back): the work in between does not
        use the device. No-op outside a shared turn: a timed section stays alone."""
        if self._holding is None or self._holding[1] != fcntl.LOCK_SH or self._away is not None:
            return
        kind, mode, _ = self._holding
        self._leave()
        self._away = (kind, mode, time.time())

    def come_back(self) -> None:
        """Take the turn stepped away from again, waiting as any turn waits."""
        if self._away is None:
            return
        kind, mode, since = self._away
        self._away = None
        self.taken.append((COMPILE, since, time.time()))
        self._enter(kind, mode)

    def _take(self, fd: int, mode: int) -> None:
        """Poll rather than block: a waiting worker keeps telling its parent it is alive."""
        said, waited = time.monotonic(), False
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            if time.monotonic() - said > HEARTBEAT_SECONDS:
                self.waiting(True)
                said, waited = time.monotonic(), True
            time.sleep(POLL_SECONDS)
        if waited:
            self.waiting(False)

    def _open(self) -> tuple[int, int]:
        if self._files is None:
            path = Path(self.path)
            self._files = (os.open(path, os.O_RDONLY), os.open(_turnstile(path), os.O_RDONLY))
        return self._files

    def held(self) -> list[tuple[str, float, float]]:
        """The turns taken since the last call (one job's)."""
        taken, self.taken = self.taken, []
        return taken


def busy_seconds(turns: list[tuple[str, float, float]], kinds: tuple[str, ...] = (CHECK, TIME)) -> float:
    """Seconds in which at least one of the turns of the given kinds was held (their union)."""
    spans = sorted((start, end) for kind, start, end in turns if kind in kinds)
    total, reach = 0.0, float("-inf")
    for start, end in spans:
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total
