"""A record's leaderboard written out in every format, with its plots, into one folder.

It sits above :mod:`pike_bench.leaderboard` (the tables) and :mod:`pike_bench.plots`
(pictures drawn from a board): the plots read a board, the leaderboard knows no plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from pike_bench import plots
from pike_bench.leaderboard import build


def publish(store_path: str | Path, out: str | Path, marks: dict[str, Iterable[str]] | None = None) -> Path:
    """Write the leaderboard of a record in every format, with its plots, into a folder;
    returns the HTML page. Optimize runs end with this, next to their record."""
    board = build(store_path, marks)
    pictures = {
        "trajectory_queries.png": plots.trajectory_png(board, x="queries"),
        "trajectory_dollars.png": plots.trajectory_png(board, x="dollars"),
        "speedups.png": plots.speedup_bars_png(board),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.md").write_text(board.to_markdown(view="entries") + "\n\n" + board.to_markdown(view="compare"))
    (out / "leaderboard.json").write_text(board.to_json())
    for name, data in pictures.items():
        (out / name).write_bytes(data)
    page = out / "leaderboard.html"
    page.write_text(board.to_html(pictures))
    return page
