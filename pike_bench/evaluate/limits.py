"""Resource limits of the processes that run candidate code (workers, CPU prebuilds).

The parent decides them and passes them in PIKE_LIMITS; the process sets them on itself
first thing, before any candidate code, soft and hard alike, so that the candidate (which
has no capability left in a sandbox) cannot raise them again:

- memory: RLIMIT_DATA, the private writable memory (heap, buffers, thread stacks), on
  processes that run on the CPU only. Not RLIMIT_AS: glibc's malloc arenas and thread
  stacks reserve far more address space than they use, and the CUDA driver reserves
  hundreds of GiB of it; a CUDA worker gets no memory limit (RLIMIT_RSS does nothing on
  Linux), as its large buffers live on the GPU anyway.
- file size: RLIMIT_FSIZE, per file written.
- processes: RLIMIT_NPROC, processes and threads together. The kernel counts them per user
  and per user namespace, and never limits root: so only in a sandbox of a user other
  than root, where they are the sandbox's own and the user's other programs do not count.
- core dumps: none (RLIMIT_CORE 0), so a crash leaves no image of the process's memory.

A candidate that goes over one meets an error (MemoryError, "File too large", a fork or
a thread that fails); `broken_limit` names the limit in its verdict.
"""

from __future__ import annotations

import errno
import os
import resource
from dataclasses import dataclass

VARIABLE = "PIKE_LIMITS"
GiB = 1 << 30
FILE_SIZE = 4 * GiB  # an extension built with several GPU architectures is some hundreds of MiB
PROCESSES = 4096  # torch starts a thread per core for each of several pools
MEMORY_SHARE = 0.75  # of the machine's RAM, for one process

RULES = {"memory": (resource.RLIMIT_DATA, "RLIMIT_DATA"), "file_size": (resource.RLIMIT_FSIZE, "RLIMIT_FSIZE"),
         "processes": (resource.RLIMIT_NPROC, "RLIMIT_NPROC"), "core": (resource.RLIMIT_CORE, "RLIMIT_CORE")}


@dataclass(frozen=True)
class Limits:
    memory: int | None = None  # bytes
    file_size: int | None = FILE_SIZE
    processes: int | None = None
    core: int = 0

    @classmethod
    def for_process(cls, device: str, sandboxed: bool) -> "Limits":
        """The limits of a process that runs candidates on `device`, inside a sandbox or not."""
        memory = int(MEMORY_SHARE * ram()) if ram() and not device.startswith("cuda") else None
        return cls(memory, FILE_SIZE, PROCESSES if sandboxed and os.geteuid() != 0 else None)

    def encode(self) -> str:
        return ",".join(f"{name}={value}" for name, value in vars(self).items() if value is not None)

    @classmethod
    def decode(cls, text: str) -> "Limits":
        given = dict(item.split("=") for item in text.split(",") if item)
        return cls(**{name: int(given[name]) if name in given else None for name in RULES})

    def apply(self) -> None:
        for name, value in vars(self).items():
            if value is not None:
                resource.setrlimit(RULES[name][0], (value, value))


def apply_from_environment() -> None:
    """The limits the parent chose for this process, if it chose any."""
    if os.environ.get(VARIABLE):
        Limits.decode(os.environ[VARIABLE]).apply()


def ram() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def broken_limit(exc: BaseException) -> str:
    """' (over the ... limit: ...)' when `exc`, or an exception it came from, is what
    going over one of this process's limits raises; else ''."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = _limit_of(exc)
        if name and _current(name) is not None:
            return f" (over the {name.replace('_', ' ')} limit of candidates: {_describe(name)})"
        exc = exc.__cause__ or exc.__context__
    return ""


def _limit_of(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return "file_size"
    if isinstance(exc, MemoryError) or "Cannot allocate memory" in text or "can't allocate memory" in text:
        return "memory"
    if "can't start new thread" in text or (isinstance(exc, OSError) and exc.errno == errno.EAGAIN
                                            and os.geteuid() != 0):
        return "processes"
    return ""


def _current(name: str) -> int | None:
    soft = resource.getrlimit(RULES[name][0])[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _describe(name: str) -> str:
    value = _current(name)
    if name == "processes":
        amount = f"{value} processes and threads"
    else:
        amount = f"{value / GiB:.1f} GiB" if value >= GiB else f"{value >> 20} MiB"
    return f"{amount}, {RULES[name][1]}"
