"""PNG plots of a leaderboard (matplotlib, Agg: no display, no pyplot state).

    png = trajectory_png(board, x="dollars")      # best-so-far geomean per strategy
    png = speedup_bars_png(board)                 # per task: over eager, over compile

matplotlib is imported inside the functions: building a leaderboard or its tables
should not need it.
"""

from __future__ import annotations

import io
import math

from pike_bench.leaderboard import AXES, Leaderboard

_X_LABELS = {"queries": "LLM queries per task", "dollars": "dollars per task"}


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)  # a Figure of its own, on Agg, whatever backend the process chose
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    # No Software field: matplotlib would write its web address into the file.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def trajectory_png(leaderboard: Leaderboard, x: str = "queries") -> bytes:
    """Per strategy: geomean over its tasks of the best-so-far speedup over eager, against x."""
    if x not in AXES:
        raise ValueError(f"x must be one of {', '.join(AXES)}, not {x!r}")
    figure = _figure(7, 4.5)
    ax = figure.add_subplot()
    for strategy in leaderboard.strategies:
        trajectory = leaderboard.trajectory(strategy, x)
        xs = [point[0] for point in trajectory.points]
        ys = [point[1] for point in trajectory.points]
        ax.step(xs, ys, where="post", marker="o", markersize=3, label=strategy)
    ax.axhline(1.0, color="gray", linestyle="--", linewidth=1)  # the reference: no speedup
    ax.set_xlabel(_X_LABELS[x])
    ax.set_ylabel("geomean best speedup over eager")
    ax.set_title(f"Best so far against {_X_LABELS[x]}")
    if leaderboard.strategies:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no runs in the store", ha="center", va="center", transform=ax.transAxes)
    return _png(figure)


def speedup_bars_png(leaderboard: Leaderboard) -> bytes:
    """Per task, a bar per strategy: the best candidate's speedup over eager (top) and over compile (bottom)."""
    tasks, strategies = leaderboard.tasks, leaderboard.strategies
    width = min(30.0, max(6.0, 0.5 * len(tasks) * max(1, len(strategies)) + 2))
    figure = _figure(width, 7)
    top, bottom = figure.subplots(2, 1, sharex=True)
    bar = 0.8 / max(1, len(strategies))
    for i, strategy in enumerate(strategies):
        offsets = [t + (i - (len(strategies) - 1) / 2) * bar for t in range(len(tasks))]
        for ax, metric in ((top, "speedup_eager"), (bottom, "speedup_compile")):
            ax.bar(offsets, [_value(leaderboard, strategy, task, metric) for task in tasks], bar, label=strategy)
    for ax, name in ((top, "eager"), (bottom, "compile")):
        ax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
        ax.set_ylabel(f"speedup over {name}")
    bottom.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
    if strategies:
        top.legend()
    top.set_title("Best correct candidate per task")
    return _png(figure)


def _value(leaderboard: Leaderboard, strategy: str, task: str, metric: str) -> float:
    # NaN draws no bar: an unsolved task shows as a gap, not as a zero speedup.
    entry = leaderboard.entry(strategy, task)
    interval = getattr(entry, metric) if entry else None
    return interval.value if interval else math.nan


__all__ = ["trajectory_png", "speedup_bars_png"]
