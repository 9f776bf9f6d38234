"""Timing: interleaved rounds in the worker, and their hand-over to pytest-benchmark.

In the worker, every contestant (eager, compile, graph, candidate) is called once
per round, in an order that rotates from round to round, so that all of them see
the same state of the machine and a ratio of round i to round i is fair even when
the machine drifts. On CUDA a call is timed with CUDA events on the current stream,
with the whole device synchronized before and after (work left on other streams is
waited for before the next call starts); the L2 cache can be flushed before each
call. On the CPU the same loop uses ``time.perf_counter``.

In the pytest process, :class:`ReplayClock` replays those per-round times through
pytest-benchmark's own ``pedantic`` runner, so its statistics, ``--benchmark-json``,
``--benchmark-autosave`` and ``--benchmark-compare`` see the device times.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from pike_bench.evaluate.stats import paired_speedup, relative_halfwidth

L2_FLUSH_BYTES = 256 * 1024 * 1024  # several times the H100/H200 L2 (50/60 MB)


@dataclass
class TimingOptions:
    warmup: int = 3
    min_rounds: int = 20
    max_rounds: int = 2000
    max_seconds: float = 20.0
    target: float = 0.01  # stop once every speedup's interval is within +-1%
    l2_flush: bool = True


def time_interleaved(
    calls: dict[str, Callable[[], Any]],
    device: str,
    options: TimingOptions,
    reference: str | None = None,
    prepare: dict[str, Callable[[], None]] | None = None,
) -> dict[str, list[float]]:
    """Per-round times in ms of each call, rounds interleaved; stops early once tight.

    ``prepare[name]`` runs before each of its calls, outside the timed region (it
    puts the numeric settings that contestant chose in place)."""
    prepare = prepare or {}
    import torch

    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    cuda = device.startswith("cuda")
    flush = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.float32, device=device) if cuda and options.l2_flush else None
    for name in names:
        prepare.get(name, _nothing)()
        for _ in range(options.warmup):
            calls[name]()
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    next_check = options.min_rounds
    for round_index in range(options.max_rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            prepare.get(name, _nothing)()
            if flush is not None:
                flush.zero_()
            times[name].append(_time_call(calls[name], cuda))
        done = round_index + 1
        if time.perf_counter() - started > options.max_seconds and done >= options.min_rounds:
            break
        if done >= next_check:
            # The bootstrap costs O(rounds) per check: check at geometrically spaced
            # round counts so that its cost stays a small share of the timing.
            if _tight(times, reference, options.target):
                break
            next_check = max(done + 10, int(done * 1.25))
    return times


def _nothing() -> None:
    pass


def _time_call(call: Callable[[], Any], cuda: bool) -> float:
    import torch

    if cuda:
        torch.cuda.synchronize()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end)
    begin = time.perf_counter()
    call()
    return (time.perf_counter() - begin) * 1e3


def _tight(times: dict[str, list[float]], reference: str | None, target: float) -> bool:
    if reference is None or reference not in times:
        return False
    base = times[reference]
    return all(
        relative_halfwidth(paired_speedup(base, rounds, resamples=500)) <= target
        for name, rounds in times.items()
        if name != reference
    )


class ReplayClock:
    """A pytest-benchmark timer whose clock advances by the measured device times.

    pytest-benchmark reads its timer before and after each round; the target that
    runs in between is :meth:`advance`, which moves this clock on by the next
    measured time. The round durations pytest-benchmark records are then exactly
    the worker's device times.
    """

    __name__ = "pike_device_time"

    def __init__(self, times_ms: list[float]):
        self._times_s = [t / 1e3 for t in times_ms]
        self._now = 0.0
        self._next = 0

    def __call__(self) -> float:
        return self._now

    def advance(self) -> None:
        # Extra calls (pytest-benchmark's --benchmark-cprofile runs the target again) add nothing.
        if self._next < len(self._times_s):
            self._now += self._times_s[self._next]
            self._next += 1


def record_in_benchmark(benchmark: Any, times_ms: list[float], extra_info: dict[str, Any]) -> None:
    """Hand measured per-round times to a pytest-benchmark fixture."""
    clock = ReplayClock(times_ms)
    # pytest-benchmark has no public way to set one fixture's timer; `_timer` is the
    # attribute its runner reads, stable since pytest-benchmark 3.
    benchmark._timer = clock
    benchmark.extra_info.update(extra_info)
    benchmark.pedantic(clock.advance, rounds=len(times_ms), iterations=1, warmup_rounds=0)
