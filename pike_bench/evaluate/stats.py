"""Statistics of interleaved timing rounds (numpy only, used in both processes)."""

from __future__ import annotations

import numpy as np

from pike_bench.evaluate.result import Speedup, Timing

BOOTSTRAP_RESAMPLES = 2000


def summarize(times_ms: list[float]) -> Timing:
    a = np.asarray(times_ms, dtype=float)
    return Timing(
        times_ms=[float(t) for t in a],
        median_ms=float(np.median(a)),
        mean_ms=float(a.mean()),
        stdev_ms=float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        min_ms=float(a.min()),
        rounds=len(a),
    )


def paired_speedup(
    base_ms: list[float], cand_ms: list[float], confidence: float = 0.95, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> Speedup:
    """Speedup of the candidate over the baseline from rounds measured side by side.

    Round i of each was timed back to back, so drift of the machine (clocks, host
    load) moves both; the median of the per-round ratios cancels most of it. The
    interval is a percentile bootstrap of that median.
    """
    base = np.asarray(base_ms, dtype=float)
    cand = np.asarray(cand_ms, dtype=float)
    n = min(len(base), len(cand))
    ratios = base[:n] / cand[:n]
    value = float(np.median(ratios))
    if n < 3:
        return Speedup(value, value, value, confidence)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(resamples, n))
    medians = np.median(ratios[picks], axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(medians, [tail, 1.0 - tail])
    return Speedup(value, float(low), float(high), confidence)


def relative_halfwidth(speedup: Speedup) -> float:
    return (speedup.high - speedup.low) / 2.0 / speedup.value if speedup.value > 0 else float("inf")
