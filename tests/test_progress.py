"""Progress of `pytest --pike-optimize`, through pytest's own pytester, on real runs of a
small task on the CPU: the lines in order and agreeing with the record, the live bar on a
terminal, silence under -q, and the summary's graph column."""

import os
import pty
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import DATA

from pike_bench.store import Store

pytest_plugins = ["pytester"]
TASK = "level0/1_TinyMLP"
OPTIONS = ["-p", "no:cacheprovider", "--pike-tasks", "tasks", "--pike-device", "cpu", "--pike-max-time", "0.3",
           "--pike-optimize", "--pike-budget", "3", "--pike-llm", "offline", "--pike-store", "runs.sqlite",
           "--pike-solutions", "solutions"]
# The budget of 3: the brainstorming agent's query, then two candidates.
CANDIDATE = re.compile(
    rf"{TASK}: candidate (\d+) \(optimizer, move (\S+)\) (\w+)"
    r"(?:, ([\d.]+)x over eager, ([\d.]+)x over compile, - over graph|: .*), ([\d.]+) s$"
)


def project(pytester):
    """A folder of one task, collected by the plugin."""
    (pytester.path / "tasks" / "level0").mkdir(parents=True)
    shutil.copy(DATA / "level0" / "1_TinyMLP.py", pytester.path / "tasks" / "level0")
    return pytester


def run_on_a_terminal(args: list[str], cwd: Path, columns: int = 150) -> str:
    """Run a command with a pseudo-terminal as its stdout and stderr; what it wrote there."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    child = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                             env={**os.environ, "COLUMNS": str(columns)})
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:  # read as it comes: a full pty buffer would stop the child
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    child.wait(timeout=900)
    reader.join(timeout=30)
    os.close(master)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow  # an optimize run on a terminal; tests/test_plugin.py has one in the quick set
def test_progress_lines_come_live_in_order_agree_with_the_record_and_a_bar_runs_on_a_terminal(pytester):
    project(pytester)
    # -rP would show a passed test's captured output: the lines must not be there, but live.
    out = run_on_a_terminal([sys.executable, "-m", "pytest", *OPTIONS, "-rP"], pytester.path)
    assert "1 passed" in out, out
    assert "Captured stdout" not in out
    # The lines, in order, as they stay on the screen: the bar is drawn over with carriage
    # returns, and wiped before each line.
    screen = [line.rsplit("\r", 1)[-1] for line in out.split("\r\n")]
    lines = [line for line in screen if line.startswith(f"{TASK}: ")]
    events = [re.sub(r"candidate (\d+) .*", r"candidate \1", line[len(TASK) + 2:]) for line in lines]
    assert events[0] == "started: pike-b, 3 queries, offline proposer"
    assert re.fullmatch(r"done in \d+ s: best [\d.]+x over eager, [\d.]+x over compile, - over graph; "
                        r"3 queries, \$0\.00, 2 candidates", events[-1]), events[-1]
    # Between them, each candidate, after what its evaluation waited for: a fresh worker (the
    # first one, or the next after a candidate that broke a rule) and its baselines' builds.
    fresh = re.escape("starting the worker|building the eager baseline|building the compile baseline|")
    between = "|".join(events[1:-1]) + "|"
    assert re.fullmatch(f"{fresh}candidate 1\\|({fresh})?candidate 2\\|", between), lines
    # Each candidate's line says what the record says of it: move, verdict, speedups.
    with Store(pytester.path / "runs.sqlite") as store:
        recorded = store.candidates(1, TASK)
        moves = {call["id"]: call["meta"].get("move") for call in store.llm_calls(1, TASK)}
    shown = [CANDIDATE.match(line) for line in lines if " candidate " in line]
    assert all(shown), lines
    for match, candidate in zip(shown, recorded, strict=True):
        number, move, status, eager, compiled, seconds = match.groups()
        assert (move, status) == (moves[candidate["llm_call_id"]], candidate["status"])
        if status == "correct":
            assert float(eager) == round(candidate["speedup_eager"], 2)
            assert float(compiled) == round(candidate["speedup_compile"], 2)
        assert candidate["speedup_graph"] is None  # not timed on the CPU
        assert float(seconds) > 0
    # The live bar (tqdm): the task, queries done of the budget, the step it waits for.
    assert re.search(rf"\r{TASK}: +67%\|[#\d ]+\| 2/3 \[", out)
    assert re.search(rf"\r{TASK}: .*\| 0/3 \[.*building the compile baseline", out)
    assert "\r" + " " * 40 in out  # wiped before each line, not left behind it
    # The summary: over graph beside over eager and over compile, "-" where it was not timed.
    assert re.search(rf"\| {TASK} +\| [\d.]+x +\| [\d.]+x +\| - +\| +3 \| +0 \| \$0\.00", out)
    assert "| task " in out and "| best over eager   | best over compile   | best over graph   |" in out


@pytest.mark.slow  # a second optimize run; the quick command has the first
def test_quiet_under_q_and_without_a_terminal_no_bar(pytester):
    project(pytester)
    quiet = pytester.runpytest(*OPTIONS, "-q")
    quiet.assert_outcomes(passed=1)
    out = quiet.stdout.str()
    assert f"{TASK}: started" not in out and f"{TASK}: candidate" not in out and f"{TASK}: done" not in out
    assert "offline proposer writes the candidates" in out  # a note, not progress: kept
    assert re.search(rf"\| {TASK} +\| [\d.]+x +\| [\d.]+x +\| - +\|", out)  # the summary stays
    # The same run again (resumed from the record), not quiet, into a file: lines, no bar.
    loud = pytester.runpytest(*OPTIONS)
    out = loud.stdout.str()
    assert f"{TASK}: candidate 1 (optimizer, move " in out and "an earlier verdict" in out
    assert "query/s" not in out and "\r" not in out
