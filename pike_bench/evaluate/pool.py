"""Several evaluators at once: one worker process per device, a candidate to the next
free one.

Every evaluation times its candidate with its own baselines in the same worker, so a
speedup never divides one GPU's time by another's. A device whose worker keeps dying
where no candidate is to blame (it fails to start, or dies loading the reference:
`max_crashes` times in a row) is taken out with a message, and the candidate goes to
another device; the others go on. A candidate that crashes its worker is the
candidate's fault and is judged as such.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from pike_bench.evaluate import Evaluator
from pike_bench.policy import CheckPolicy
from pike_bench.evaluate.result import CRASHED, EvalResult
from pike_bench.evaluate.worker import OnPhase
from pike_bench.tasks import Task


def parse_devices(option: str) -> list[str]:
    """'all', '0,1' (CUDA ordinals) or explicit names ('cpu', 'cuda:2')."""
    import torch

    if option == "all":
        count = torch.cuda.device_count()
        return [f"cuda:{i}" for i in range(count)] or ["cpu"]
    devices = []
    for part in (p.strip() for p in option.split(",") if p.strip()):
        devices.append(f"cuda:{part}" if part.isdigit() else part)
    if not devices:
        raise ValueError(f"{option!r}: no device named; use all, 0,1 or cpu")
    return devices


class EvaluatorPool:
    def __init__(self, evaluators: list[Evaluator], max_crashes: int = 3, say: Callable[[str], None] = print):
        if not evaluators:
            raise ValueError("an evaluator pool needs at least one evaluator")
        self.evaluators = list(evaluators)
        self.max_crashes, self.say = max_crashes, say
        self._crashes = {id(e): 0 for e in self.evaluators}
        self._free: asyncio.Queue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._taken_out: list[str] = []

    @classmethod
    def on_devices(cls, devices: list[str], **evaluator_options) -> "EvaluatorPool":
        return cls([Evaluator(device, **evaluator_options) for device in devices])

    # The optimizer reads these to name its run; all evaluators share them.
    @property
    def device(self) -> str:
        return ",".join(e.device for e in self.evaluators)

    @property
    def size(self) -> str:
        return self.evaluators[0].size

    @property
    def mode(self) -> str:
        return self.evaluators[0].mode

    @property
    def check(self) -> CheckPolicy:
        return self.evaluators[0].check

    async def evaluate(self, task: Task, source: str, on_phase: OnPhase | None = None) -> EvalResult:
        free = self._queue()
        while True:
            evaluator = await free.get()
            try:
                result = await asyncio.to_thread(evaluator.evaluate, task, source, on_phase=on_phase)
            except asyncio.CancelledError:  # Ctrl-C: see Evaluator.interrupt
                evaluator.interrupt()
                raise
            if self._still_usable(evaluator, result):
                free.put_nowait(evaluator)
                return result
            if free.empty() and len(self._taken_out) == len(self.evaluators):
                return result  # every device is out: the verdict stands, nothing else can run

    def _queue(self) -> asyncio.Queue:
        # A queue belongs to one event loop, and each task's optimization runs its own
        # (asyncio.run), so a new loop gets a new queue of the devices still in use.
        loop = asyncio.get_running_loop()
        if self._free is None or self._loop is not loop:
            self._free, self._loop = asyncio.Queue(), loop
            for evaluator in self.evaluators:
                if evaluator.device not in self._taken_out:
                    self._free.put_nowait(evaluator)
        return self._free

    def _still_usable(self, evaluator: Evaluator, result: EvalResult) -> bool:
        key = id(evaluator)
        self._crashes[key] = self._crashes[key] + 1 if _device_fault(result) else 0
        if self._crashes[key] < self.max_crashes:
            return True
        self._taken_out.append(evaluator.device)
        self.say(f"pike-bench: {evaluator.device} taken out: its worker crashed {self._crashes[key]} times in a row "
                 f"(last: {result.reason})")
        evaluator.close()
        return False

    def close(self) -> None:
        for evaluator in self.evaluators:
            evaluator.close()

    def __enter__(self) -> "EvaluatorPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _device_fault(result: EvalResult) -> bool:
    return result.status == CRASHED and (
        "while starting the worker" in result.reason or result.reason.startswith("the reference")
    )
