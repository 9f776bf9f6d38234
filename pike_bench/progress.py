"""Progress of an optimization, for a person watching it: a line when a task starts,
when it waits on a slow step (the worker starting, a baseline being built), one per
evaluated candidate, one at the task's end, and a live bar where the output is a terminal.

The optimizer sends the events below to any callable; ``str(event)`` is the event's
line, so ``print`` shows the lines alone and :class:`ProgressDisplay` shows lines and
bars. Under pytest, :func:`for_pytest` writes through the terminal reporter with output
capture suspended, as pytest's own live logging does, so the lines appear while the
task runs and not in a test's captured output.

The bar is tqdm's rather than rich's: a tqdm bar is one line, redrawn with a carriage
return only when we update it, to any object with ``write``; so it goes through pytest's
terminal writer between pytest's own lines. rich's live display redraws from a thread
of its own, moves the cursor over several lines and replaces ``sys.stdout``, which
pytest's output capture replaces too.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from pike_bench.baselines import BASELINES

if TYPE_CHECKING:
    from pike_bench.optimize import TaskOutcome

REASON_CHARS = 120  # a failed candidate's reason is cut here: the record keeps all of it


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _over(speedups: dict[str, float | None]) -> str:
    return ", ".join(f"{_x(speedups.get(name))} over {name}" for name in BASELINES)


@dataclass(frozen=True)
class TaskStarted:
    task_id: str
    strategy: str
    llm: str
    queries: int | None  # the budget: queries, dollars or both
    dollars: float | None

    def __str__(self) -> str:
        budget = [f"{self.queries} queries" if self.queries is not None else "",
                  f"${self.dollars:.2f}" if self.dollars is not None else ""]
        return f"{self.task_id}: started: {self.strategy}, {' and '.join(b for b in budget if b)}, {self.llm} proposer"


@dataclass(frozen=True)
class Waiting:
    """What a task waits for now. A slow step that comes once per worker (its start, a
    baseline's build) gets a line; the others only show on the bar."""

    task_id: str
    what: str
    slow: bool = False

    def __str__(self) -> str:
        return f"{self.task_id}: {self.what}"


@dataclass(frozen=True)
class Evaluated:
    task_id: str
    number: int  # 1, 2, ... in the order the task's candidates were scored
    agent: str  # optimizer or efa
    move: str | None  # the offline proposer's move, when it wrote the candidate
    status: str
    reason: str
    speedups: dict[str, float | None]  # over each baseline timed beside it
    seconds: float | None  # the evaluation's time; None: no evaluation (a reply without code)
    reused: bool  # an earlier evaluation's verdict (a resumed run's record, or the same source): not evaluated again
    queries_done: int  # queries answered and, for a candidate, evaluated
    best: float | None  # the task's best speedup over eager so far

    def __str__(self) -> str:
        who = self.agent + (f", move {self.move}" if self.move else "")
        if any(v is not None for v in self.speedups.values()):
            verdict = f"{self.status}, {_over(self.speedups)}"
        else:
            reason = self.reason.splitlines()[0] if self.reason else ""
            cut = reason[:REASON_CHARS] + ("..." if len(reason) > REASON_CHARS else "")
            verdict = f"{self.status}: {cut}" if cut else self.status
        took = "an earlier verdict" if self.reused else ("" if self.seconds is None else f"{self.seconds:.1f} s")
        return f"{self.task_id}: candidate {self.number} ({who}) {verdict}" + (f", {took}" if took else "")


@dataclass(frozen=True)
class TaskFinished:
    task_id: str
    outcome: "TaskOutcome | None"  # None: stopped before its end (Ctrl-C, an error)
    seconds: float

    def __str__(self) -> str:
        o = self.outcome
        if o is None:
            return f"{self.task_id}: stopped after {self.seconds:.0f} s"
        best = (f"best {_over({'eager': o.speedup_eager, 'compile': o.speedup_compile, 'graph': o.speedup_graph})}"
                if o.best is not None else "no correct candidate")
        return (f"{self.task_id}: done in {self.seconds:.0f} s: {best}; "
                f"{o.queries} queries, ${o.dollars:.2f}, {o.candidates} candidates")


Event = TaskStarted | Waiting | Evaluated | TaskFinished


def waiting_for(task_id: str, phase: str, who: str) -> Waiting:
    """The worker's step (its own words, and the contestant it concerns) in a person's words."""
    named = {**{b: f"the {b} baseline" for b in BASELINES}, "candidate": "the candidate"}
    # The task's id is already on the line, and the input set's description is for the record.
    what = phase.split(" (", 1)[0].replace(f" of {task_id}", "")
    if who in named:
        what = what.replace(who, named[who], 1)
    slow = phase == "starting the worker" or (who in BASELINES and phase.startswith("building "))
    return Waiting(task_id, what, slow)


@dataclass
class TaskBar:
    """One task's bar and what its postfix says."""

    bar: Any  # a tqdm
    best: float | None = None
    what: str = ""

    def show(self) -> None:
        best = f"best {_x(self.best)}"  # "best -": no correct candidate yet
        self.bar.set_postfix_str(f"{best}, {self.what}" if self.what else best)  # and redraws


@dataclass
class ProgressDisplay:
    """Lines through `write_line`; a bar per task in flight on `bar_file`, if it is a terminal."""

    write_line: Callable[[str], None]
    bar_file: Any = None
    quiet: bool = False  # no lines, no bars: the summary at the end says it all
    width: int | None = None  # the bar's width (None: tqdm asks the terminal)
    bars: dict[str, TaskBar] = field(default_factory=dict)

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        if isinstance(event, TaskStarted):
            self.line(str(event))
            self._open_bar(event)
        elif isinstance(event, TaskFinished):
            task = self.bars.pop(event.task_id, None)
            if task is not None:
                task.bar.close()  # leave=False: the bar is wiped, the task's line takes its place
            self.line(str(event))
        else:
            if isinstance(event, Evaluated) or event.slow:
                self.line(str(event))
            self._update(event)

    def line(self, text: str) -> None:
        """A line above the bars (they are cleared first and drawn again after)."""
        for task in self.bars.values():
            task.bar.clear()
        self.write_line(text)
        for task in self.bars.values():
            task.bar.refresh()

    @property
    def interactive(self) -> bool:
        isatty = getattr(self.bar_file, "isatty", None)
        return bool(isatty and isatty())

    def _open_bar(self, event: TaskStarted) -> None:
        if not self.interactive:
            return
        from tqdm import tqdm  # only where a bar is drawn: a run into a log never needs it

        # miniters=1: drawn on every update and never from tqdm's monitor thread, so
        # every write happens where pytest's capture is suspended around it.
        bar = tqdm(total=event.queries, desc=event.task_id, unit="query", file=self.bar_file, leave=False,
                   miniters=1, ncols=self.width, dynamic_ncols=self.width is None, position=len(self.bars))
        self.bars[event.task_id] = TaskBar(bar)
        self.bars[event.task_id].show()

    def _update(self, event: Waiting | Evaluated) -> None:
        task = self.bars.get(event.task_id)
        if task is None:
            return
        if isinstance(event, Evaluated):
            task.bar.n, task.best, task.what = event.queries_done, event.best, ""
        else:
            task.what = event.what
        task.show()


class PytestTerminal:
    """pytest's terminal reporter as a line writer and as the bar's file. Capture is
    suspended around each write, as pytest's live logging does: the optimizer runs in a
    fixture, where output is captured."""

    def __init__(self, config):
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")
        self.capture = config.pluginmanager.get_plugin("capturemanager")

    def _uncaptured(self):
        return self.capture.global_and_fixture_disabled() if self.capture else contextlib.nullcontext()

    def write_line(self, text: str) -> None:
        with self._uncaptured():
            self.reporter.write_line(text)
            self.reporter.flush()

    def write(self, text: str) -> None:  # the bar's file
        with self._uncaptured():
            self.reporter.write(text, flush=True)

    def flush(self) -> None:
        with self._uncaptured():
            self.reporter.flush()

    def isatty(self) -> bool:
        return bool(self.reporter.isatty)


def for_pytest(config) -> ProgressDisplay:
    """The display of `pytest --pike-optimize`: quiet under -q, or without a terminal reporter."""
    if config.pluginmanager.get_plugin("terminalreporter") is None:
        return ProgressDisplay(lambda text: None, quiet=True)
    terminal = PytestTerminal(config)
    return ProgressDisplay(terminal.write_line, bar_file=terminal, quiet=config.get_verbosity() < 0,
                           width=config.get_terminal_writer().fullwidth)


def for_terminal(quiet: bool = False) -> ProgressDisplay:
    """The display of `pike optimize`: lines on stdout, the bar on stderr."""
    return ProgressDisplay(lambda text: print(text, flush=True), bar_file=sys.stderr, quiet=quiet)


__all__ = ["TaskStarted", "Waiting", "Evaluated", "TaskFinished", "Event", "waiting_for", "ProgressDisplay", "TaskBar",
           "for_pytest", "for_terminal"]
