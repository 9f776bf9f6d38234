"""Per call of a sweep record: evaluations a minute and how busy the GPU was.

    python3 benchmarks/sweep_calls.py benchmarks/results/2026-12-03-h200-pike30-timed

Each `machine_callN.txt` that `device_sweep_call.sh` writes gives a call's start and its
wall time (`wall_s`); the record (`runs.sqlite`, or `runs.sqlite.gz` read through a
temporary copy) gives every evaluation's turns on the GPU (evaluate/turns.py). An
evaluation counts in the call in whose wall time its last turn ended; the GPU's busy
share is the union of the check and time turns that began in the call, over its wall time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import sqlite3
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from tabulate import tabulate

from pike_bench.evaluate.turns import TIME, busy_seconds


def call_window(machine_file: Path) -> tuple[float, float] | None:
    """(start, wall seconds) of one call, or None for a call that did not say its wall time."""
    text = machine_file.read_text()
    wall = re.search(r"^wall_s (\d+)", text, re.M)
    epoch = re.search(r"^started_at (\d+)", text, re.M)
    if epoch:
        start = float(epoch.group(1))
    else:  # written before started_at: `date -u` in the device's C locale
        line = next(line for line in text.splitlines() if " UTC " in line)
        start = datetime.strptime(line, "%a %b %d %I:%M:%S %p UTC %Y").replace(tzinfo=timezone.utc).timestamp()
    return (start, float(wall.group(1))) if wall else None


def evaluations(record: Path) -> list[list[tuple[str, float, float]]]:
    """The turns of every evaluation in the record."""
    with tempfile.TemporaryDirectory() as scratch:
        path = record / "runs.sqlite"
        if not path.exists():
            path = Path(scratch) / "runs.sqlite"
            with gzip.open(record / "runs.sqlite.gz") as packed, path.open("wb") as out:
                shutil.copyfileobj(packed, out)
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT result FROM evaluations").fetchall()
    return [[tuple(turn) for turn in json.loads(result).get("turns") or []] for result, in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path, help="a sweep's folder (machine_callN.txt and its record)")
    record = parser.parse_args().record
    every = [turns for turns in evaluations(record) if turns]
    rows = []
    for machine in sorted(record.glob("machine_call*.txt"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0)):
        window = call_window(machine)
        if window is None:
            continue
        start, wall = window
        ended = [turns for turns in every if start <= max(end for _, _, end in turns) <= start + wall]
        began = [turn for turns in every for turn in turns if start <= turn[1] <= start + wall]
        rows.append([machine.stem.removeprefix("machine_"), round(wall), len(ended), f"{len(ended) / wall * 60:.1f}",
                     f"{busy_seconds(began) / wall:.0%}", f"{busy_seconds(began, (TIME,)) / wall:.0%}"])
    if not rows:
        print(f"no machine_callN.txt with a wall_s line in {record}", file=sys.stderr)
        return 1
    print(tabulate(rows, ["call", "wall_s", "evaluations", "per minute", "GPU checking or timing", "timing"],
                   tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
