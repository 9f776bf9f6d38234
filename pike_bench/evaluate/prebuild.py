"""Builds beside the GPU workers: a candidate's C++/CUDA extensions compiled on the CPU.

`load_inline` compiles at import time, for tens of seconds with nvcc; done in the GPU
worker, the GPU would wait all that time. Instead, a candidate that builds an extension
is first imported in a separate, short-lived CPU process, with every GPU hidden (its
code is untrusted, and another candidate may be timing on the GPU meanwhile), in the
same sandbox and with the same environment allow-list as the worker. That
process fills torch's extension cache; when the worker then imports the candidate,
`load_inline` finds the build done and only loads it.

This only moves work: the verdict is always the worker's. A prebuild that fails (a
compile error, code that needs a GPU at import) is left for the worker to meet and
report. Triton compiles on first call and is not prebuilt.

    python -m pike_bench.evaluate.prebuild < candidate.py   # what each build process runs
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pike_bench.evaluate import build_lock
from pike_bench.evaluate.limits import VARIABLE, Limits, apply_from_environment
from pike_bench.evaluate.sandbox import Sandbox
from pike_bench.screen import screen

BUILT_LANGUAGES = {"cuda", "c++"}


@dataclass
class Prebuild:
    ok: bool
    seconds: float
    message: str = ""  # the build process's last line when it failed


class Prebuilder:
    """At most `processes` builds at once, each stopped after `timeout` seconds."""

    def __init__(self, device: str, processes: int | None = None, timeout: float = 600.0,
                 sandbox: Sandbox | None = None):
        self.device, self.timeout = device, timeout
        self.processes = processes or max(1, (os.cpu_count() or 2) // 4)
        self.sandbox = sandbox or Sandbox.choose("auto")
        # Now, before the workers start: they must inherit the architecture (see below).
        set_cuda_arch(device)
        self.done: list[Prebuild] = []  # what was built, for reports and tests
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def needed(source: str) -> bool:
        return bool(BUILT_LANGUAGES & set(screen(source).languages))

    async def build(self, source: str) -> Prebuild:
        async with self._slots_of_this_loop():
            started = time.perf_counter()
            # No GPU: no device nodes, and none visible to CUDA.
            confined = self.sandbox.prepare([sys.executable, "-m", "pike_bench.evaluate.prebuild"], gpus=False,
                                            env={"CUDA_VISIBLE_DEVICES": "",
                                                 VARIABLE: Limits.for_process("cpu", self.sandbox.enabled).encode()})
            process = await asyncio.create_subprocess_exec(
                *confined.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=confined.env,
            )  # fmt: skip
            try:
                _, err = await asyncio.wait_for(process.communicate(source.encode()), self.timeout)
            except asyncio.CancelledError:  # Ctrl-C: nobody needs this build any more
                process.kill()
                raise
            except asyncio.TimeoutError:  # a hang: the worker meets it and says so
                process.kill()
                await process.wait()
                err = f"the build took more than {self.timeout:g} s".encode()
            finally:
                confined.remove_scratch()
            lines = err.decode(errors="replace").strip().splitlines()
            outcome = Prebuild(process.returncode == 0, time.perf_counter() - started, lines[-1] if lines else "")
            self.done.append(outcome)
            return outcome

    def _slots_of_this_loop(self) -> asyncio.Semaphore:
        # A semaphore belongs to one event loop, and each task's optimization runs its own.
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self._slots, self._loop = asyncio.Semaphore(self.processes), loop
        return self._slots


def set_cuda_arch(device: str) -> None:
    """The GPU's own architecture to compile for, as the build process cannot see the GPU.

    The worker must compile with the same flags, or it rebuilds: so the architecture is
    put in this process's environment, which the build processes and workers it starts
    are given (TORCH_CUDA_ARCH_LIST is on the allow-list)."""
    if device.startswith("cuda") and "TORCH_CUDA_ARCH_LIST" not in os.environ:
        arch = cuda_arch(device)
        if arch:
            os.environ["TORCH_CUDA_ARCH_LIST"] = arch


def cuda_arch(device: str) -> str:
    """'9.0' for an H100 or H200, asked of a short-lived process (this one keeps no CUDA context)."""
    index = int(device.split(":")[1]) if ":" in device else 0
    probe = f"import torch; print('%d.%d' % torch.cuda.get_device_capability({index}))"
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def main() -> int:
    from pike_bench.candidate import import_source

    apply_from_environment()  # before any candidate code
    build_lock.install()  # the worker builds under the same lock: the two must agree on it
    source = sys.stdin.read()
    with tempfile.TemporaryDirectory(prefix="pike_prebuild_") as folder:
        try:
            import_source(source, Path(folder), "prebuild")
        except BaseException as exc:  # noqa: BLE001 - any failure is left for the worker to report
            print(f"{type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
