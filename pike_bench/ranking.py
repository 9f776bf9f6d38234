"""How the candidates of a task are ranked, in one place for the search, the record's
best and the leaderboard. Kept apart from pike_bench.evaluate, whose package pulls in torch.

A candidate's standing is its speedup over the fastest baseline timed beside it, among
the baselines timed beside every ranked candidate (a baseline that failed in one
evaluation would otherwise let that candidate be measured against a slower one). Higher
is better; None where nothing was timed.

Not the speedup over eager: a task's eager and compile times move between its
evaluations, while graph replay holds steady (H200 level-3 sweep of 2026-12-03: a task's
slowest median over its fastest across its evaluations, median over the 50 tasks, was
1.32x for eager, 1.35x for compile, 1.02x for graph), so ranking by the speedup over eager
favours the candidate whose evaluation met a slow eager run. There it kept, on 11 of 50
tasks, a candidate slower in median time than another of the same run (24_EfficientNetB2:
0.357 ms at 8.53x over eager, against 0.260 ms at 6.29x).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Speedups = Mapping[str, "float | None"]  # baseline name -> the candidate's speedup over it


def standings(speedups: Sequence[Speedups]) -> list[float | None]:
    """Each candidate's standing, for candidates ranked together (one task's)."""
    timed = [_timed(s) for s in speedups]
    common = set.intersection(*(set(t) for t in timed if t)) if any(timed) else set()
    return [min((v for k, v in t.items() if k in common or not common), default=None) for t in timed]


def _timed(speedups: Speedups) -> dict[str, float]:
    return {name: value for name, value in speedups.items() if value is not None}
