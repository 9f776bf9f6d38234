import numpy as np

from pike_bench.evaluate.stats import paired_speedup, summarize


def test_paired_ratio_cancels_drift_that_moves_both():
    rng = np.random.default_rng(0)
    drift = np.linspace(1.0, 1.7, 200)  # the machine slows by 70% during the run
    base = 2.0 * drift * rng.normal(1.0, 0.01, 200)
    cand = 1.0 * drift * rng.normal(1.0, 0.01, 200)
    speedup = paired_speedup(list(base), list(cand))
    assert speedup.low <= 2.0 <= speedup.high
    assert speedup.high - speedup.low < 0.02


def test_summary_statistics():
    timing = summarize([3.0, 1.0, 2.0])
    assert (timing.median_ms, timing.min_ms, timing.rounds) == (2.0, 1.0, 3)
