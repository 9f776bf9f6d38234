"""The leaderboard: what each strategy reached on each task, read back from the run store.

    board = build(".pike/runs.sqlite")
    print(board.to_markdown())                     # one row per (strategy, task), then geomeans
    print(board.to_markdown(view="compare"))       # one row per task, one column per strategy
    Path("board.json").write_text(board.to_json()) # follows leaderboard_schema.json
    Path("board.html").write_text(board.to_html({"queries": plots.trajectory_png(board)}))

What an entry is. The optimizer records one run per (task, strategy, config...) key, and
the run's config JSON names its task, strategy and llm. An entry is one (strategy, task):
its best candidate is the store's own ``Store.best`` (only ``correct`` counts; a
``suspicious`` one waits for a person), its times come from that candidate's latest
evaluation (eager and compile medians are the baselines timed in the same rounds), and
its speedups are the stored paired speedups, never recomputed from the medians (the
median of per-round ratios is not the ratio of the medians).

Strategy names. An entry's strategy is the run's strategy, plus "/<llm>" when the store
holds that strategy with more than one llm (offline and anthropic runs side by side
would otherwise be mixed), and " [<check>]" when its runs were judged by a check policy
other than strict (pike, kernelbench: a verdict of another evaluator is another
entry). When two runs still share a (strategy, task) (another budget,
device or model), the run started last (highest id) is shown and the others are listed
in ``superseded_runs``: mixing two budgets in one row would make its numbers belong to
neither. A run under way does not hide a finished one, though: until it finishes, the
finished run is shown and the later one is listed in ``runs_under_way`` (a budget-20 pass
resumed over several sessions would otherwise replace whole tasks by a few candidates).

The trajectory. For each strategy: the geomean over its tasks of the best-so-far
candidate's speedup over eager (best as the record ranks candidates: by the speedup over
the fastest baseline, ``pike_bench.ranking``), against the LLM queries spent on each task
and against the dollars spent on each task (per task, not summed over tasks: every task
had its own budget). Within a task run the calls are ordered by id; a candidate sits at
query index q:

- when it names its call (``llm_call_id``): q is that call's position (1-based);
- otherwise (the optimizer records ``llm_call_id = NULL``): q is the number of the run's
  calls created at or before the candidate (``created_at``). A candidate is recorded
  after its reply, so this is the budget spent when it was known; with concurrent
  requests it also counts calls still in flight, which is what the run had paid for.

Its dollar position is the run's cumulative dollars after q calls. A task with no
correct candidate yet counts 1.0x (its reference is what one would run). A task whose
run ended earlier keeps its last value. The last point of a strategy's trajectory is
therefore its ``geomean_eager_all_tasks``.

The SQL here is read-only and small: listing the runs and their tasks, and reading one
evaluation's result JSON by id, which ``Store`` has no method for.
"""

from __future__ import annotations

import html
import json
import math
import re
import sqlite3
from base64 import b64encode
from collections import defaultdict
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from tabulate import tabulate

from pike_bench.evaluate.result import CORRECT, Speedup
from pike_bench.ranking import standings
from pike_bench.store import Store, row_speedups

SCHEMA_VERSION = 3  # 2: the graph baseline; 3: mark subsets, all-task geomeans over compile and graph, below_graph (moves, reviewed, baselines_failed, runs_under_way: added, readers unaffected)
SCHEMA_PATH = Path(__file__).with_name("leaderboard_schema.json")
AXES = ("queries", "dollars")
VIEWS = ("entries", "compare")
METRICS = ("eager", "compile", "graph")  # the baselines a speedup is over


# -- values -------------------------------------------------------------------------------


@dataclass
class Step:
    """A correct candidate that beat every earlier one of its task: the staircase of best-so-far."""

    queries: int  # query index q (see the module docstring)
    dollars: float  # dollars spent on the task after q queries
    speedup_eager: float
    candidate_id: int

    def at(self, axis: str) -> float:
        return self.queries if axis == "queries" else self.dollars


@dataclass
class Entry:
    """One (strategy, task): the best candidate and what the search spent to find it."""

    strategy: str
    task: str
    level: str
    run_id: int
    run_key: str
    llm: str
    check: str  # the check policy that judged its candidates (strict, pike, kernelbench)
    models: list[str]  # reply models, as answered
    queries: int
    dollars: float
    candidates_evaluated: int
    candidates_correct: int
    best_candidate_id: int | None = None
    best_ms: float | None = None
    eager_ms: float | None = None
    compile_ms: float | None = None
    graph_ms: float | None = None
    speedup_eager: Speedup | None = None
    speedup_compile: Speedup | None = None
    speedup_graph: Speedup | None = None
    languages: list[str] = field(default_factory=list)
    precision: str = ""
    device_name: str = ""
    steps: list[Step] = field(default_factory=list)
    finished: bool = True  # False: the run was interrupted; the same command resumes it
    marks: list[str] = field(default_factory=list)  # the asked-for pytest marks the task carries
    below_graph: str | None = None  # why the best is below the graph baseline (or none is correct)
    moves: str | None = None  # which candidate (move) won, and how each other one did
    baselines_failed: str | None = None  # a baseline beside the best that has no ratio, and why
    reviewed: bool = False  # the best was flagged suspicious and accepted by a person (pike accept)

    @property
    def solved(self) -> bool:
        # A correct candidate with a speedup over eager (one timed without baselines has none to rank by).
        return self.speedup_eager is not None

    def horizon(self, axis: str) -> float:
        return self.queries if axis == "queries" else self.dollars

    def best_at(self, axis: str, x: float) -> float | None:
        """The best-so-far candidate's speedup over eager once x queries (or dollars) were
        spent; None before any."""
        reached = [step.speedup_eager for step in self.steps if step.at(axis) <= x]
        return reached[-1] if reached else None


@dataclass
class Geomean:
    """Geometric means of one strategy's best speedups, over one level, the tasks that
    carry one pytest mark, or all (level and mark None)."""

    strategy: str
    level: str | None
    tasks: int
    solved: int  # tasks with a correct candidate
    eager: float | None  # over solved tasks
    compile: float | None  # over solved tasks that have a compile speedup
    graph: float | None  # over solved tasks that have a graph speedup (timed on GPUs only)
    eager_all_tasks: float  # over every task, an unsolved one counted 1.0x: comparable across strategies
    compile_all_tasks: float | None = None  # likewise; None when no solved task has that speedup
    graph_all_tasks: float | None = None
    mark: str | None = None

    @property
    def group(self) -> str:
        return f"-m {self.mark}" if self.mark else self.level or "all"


@dataclass
class Trajectory:
    strategy: str
    axis: str  # "queries" or "dollars" (per task)
    points: list[tuple[float, float]]  # (x, geomean best-so-far speedup over eager); a step function


@dataclass
class Leaderboard:
    store: str
    generated_at: str
    entries: list[Entry]
    geomeans: list[Geomean]
    trajectories: list[Trajectory]
    superseded_runs: list[int] = field(default_factory=list)
    runs_under_way: list[int] = field(default_factory=list)  # behind a finished run, shown once they finish

    @property
    def strategies(self) -> list[str]:
        return sorted({entry.strategy for entry in self.entries})

    @property
    def tasks(self) -> list[str]:
        return sorted({entry.task for entry in self.entries}, key=_task_order)

    def entry(self, strategy: str, task: str) -> Entry | None:
        return next((e for e in self.entries if e.strategy == strategy and e.task == task), None)

    def geomean(self, strategy: str, level: str | None = None, mark: str | None = None) -> Geomean | None:
        return next((g for g in self.geomeans if (g.strategy, g.level, g.mark) == (strategy, level, mark)), None)

    def trajectory(self, strategy: str, axis: str = "queries") -> Trajectory | None:
        return next((t for t in self.trajectories if t.strategy == strategy and t.axis == axis), None)

    # -- formats ------------------------------------------------------------------------

    def to_dict(self) -> dict:
        trajectories = [
            {"strategy": t.strategy, "axis": t.axis, "points": [{"x": x, "speedup_eager": y} for x, y in t.points]}
            for t in self.trajectories
        ]
        return {
            "schema_version": SCHEMA_VERSION,
            "store": self.store,
            "generated_at": self.generated_at,
            "strategies": self.strategies,
            "tasks": self.tasks,
            "entries": [asdict(entry) for entry in self.entries],
            "geomeans": [asdict(geomean) for geomean in self.geomeans],
            "trajectories": trajectories,
            "superseded_runs": self.superseded_runs,
            "runs_under_way": self.runs_under_way,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_markdown(self, view: str = "entries", metric: str = "eager") -> str:
        """GitHub tables. "entries": a row per (strategy, task), then the geomeans;
        "compare": a row per task, a column per strategy (speedup over `metric`)."""
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; one of {', '.join(VIEWS)}")
        if view == "compare":
            headers, rows, footer = _compare_table(self, metric, bold=True)
            return tabulate(rows + footer, headers=headers, tablefmt="github")
        entries = tabulate([_entry_row(e) for e in self.entries], headers=ENTRY_HEADERS, tablefmt="github")
        geomeans = tabulate([_geomean_row(g) for g in self.geomeans], headers=GEOMEAN_HEADERS, tablefmt="github")
        sections = "".join(f"\n\n{title}:\n\n" + "\n".join(f"- {line}" for line in lines)
                           for title, lines, _ in _line_sections(self) if lines)
        return f"{entries}\n\n{geomeans}\n\n{NOTE}{_under_way_note(self)}{sections}"

    def to_html(self, plots: dict[str, bytes] | None = None) -> str:
        """One self-contained page: sortable tables and the plots as data URIs; nothing is fetched."""
        return _html_page(self, plots or {})


# -- reading the store --------------------------------------------------------------------


@dataclass
class _Run:
    id: int
    key: str
    strategy: str
    llm: str
    tasks: list[str]
    finished: bool = True
    check: str = "strict"  # runs recorded before check policies were judged by what is now strict


def build(store_path: str | Path, marks: dict[str, Iterable[str]] | None = None) -> Leaderboard:
    """The leaderboard of a record. ``marks``: pytest marks to give geomeans of their own
    (e.g. PIKE's set, ``{"pike": task ids}``)."""
    path = Path(store_path)
    if not path.is_file():  # Store() would create an empty record; a typo should say so instead
        raise FileNotFoundError(f"no run store at {path}")
    marked = {mark: set(tasks) for mark, tasks in (marks or {}).items()}
    with Store(path) as store, closing(_read_only(path)) as db:
        runs = _runs(store, db)
        chosen, superseded, under_way = _choose_runs(runs)
        entries = [_entry(store, db, run, strategy, task) for (strategy, task), run in chosen.items()]
    for entry in entries:
        entry.marks = sorted(mark for mark, tasks in marked.items() if entry.task in tasks)
    entries.sort(key=lambda e: (e.strategy, _task_order(e.task)))
    return Leaderboard(
        store=str(path),
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        entries=entries,
        geomeans=_geomeans(entries, sorted(marked)),
        trajectories=[_trajectory(s, [e for e in entries if e.strategy == s], axis)
                      for s in sorted({e.strategy for e in entries}) for axis in AXES],
        superseded_runs=sorted(superseded),
        runs_under_way=under_way,
    )


def _read_only(path: Path) -> sqlite3.Connection:
    # Opened while Store holds the file, so the WAL's shared-memory file exists for a read-only reader.
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    return db


def _runs(store: Store, db: sqlite3.Connection) -> list[_Run]:
    tasks: dict[int, set[str]] = defaultdict(set)
    for row in db.execute("SELECT run_id, task_id FROM candidates UNION SELECT run_id, task_id FROM llm_calls"):
        tasks[row["run_id"]].add(row["task_id"])
    runs = []
    for (run_id,) in db.execute("SELECT id FROM runs ORDER BY id").fetchall():
        run = store.run(run_id)
        config = run["config"] if isinstance(run["config"], dict) else {}
        named = {config["task"]} if config.get("task") else set()  # a run that recorded nothing yet still shows
        runs.append(_Run(run_id, run["key"], str(config.get("strategy", "?")), str(config.get("llm", "")),
                         sorted(tasks[run_id] | named), finished=run["finished_at"] is not None,
                         check=str(config.get("check", "strict"))))
    return runs


def _choose_runs(runs: list[_Run]) -> tuple[dict[tuple[str, str], _Run], list[int], list[int]]:
    """(strategy label, task) -> the run shown; the runs left out because a later one
    covers them; and the runs under way left out because an earlier one has finished."""
    llms: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        llms[run.strategy].add(run.llm)
    chosen: dict[tuple[str, str], _Run] = {}
    waiting: dict[tuple[str, str], _Run] = {}  # under way behind a finished run
    superseded: set[int] = set()
    for run in runs:  # in id order: a later run replaces an earlier one, once it has finished
        label = run.strategy if len(llms[run.strategy]) == 1 else f"{run.strategy}/{run.llm or '?'}"
        label += "" if run.check == "strict" else f" [{run.check}]"
        for task in run.tasks:
            key = (label, task)
            earlier, behind = chosen.get(key), waiting.pop(key, None)
            if behind is not None:
                superseded.add(behind.id)
            if earlier is not None and earlier.finished and not run.finished:
                waiting[key] = run
                continue
            if earlier is not None and earlier.id != run.id:
                superseded.add(earlier.id)
            chosen[key] = run
    shown = {run.id for run in chosen.values()}
    under_way = {run.id for run in waiting.values()} - shown
    return chosen, sorted(superseded - shown - under_way), sorted(under_way)


def _entry(store: Store, db: sqlite3.Connection, run: _Run, strategy: str, task: str) -> Entry:
    calls = store.llm_calls(run.id, task)
    candidates = store.candidates(run.id, task)
    entry = Entry(
        strategy=strategy, task=task, level=_level(task), run_id=run.id, run_key=run.key, llm=run.llm, check=run.check,
        models=sorted({c["reply_model"] for c in calls if c["reply_model"]}),
        queries=len(calls), dollars=_spent(calls)[-1],
        candidates_evaluated=sum(1 for c in candidates if c["evaluation_id"] is not None),
        candidates_correct=sum(1 for c in candidates if c["status"] == "correct"),
        steps=_steps(calls, candidates), finished=run.finished,
    )
    best = store.best(run.id, task)
    if best is not None:
        _fill_best(entry, best, _result(db, best["evaluation_id"]))
    entry.below_graph = _below_graph(entry, best, candidates, calls)
    entry.moves = _moves(best, candidates, calls)
    return entry


_FAILURES_SHOWN = 5  # per task: enough to see the pattern, short enough to stay one line


def _namer(calls: list[dict]):
    """A candidate's name in a line: the offline move that wrote it, if any, and its slot."""
    moves = {call["id"]: (call["meta"] or {}).get("move") for call in calls}

    def name(candidate: dict) -> str:
        move = moves.get(candidate["llm_call_id"])
        return f"{move} ({candidate['slot']})" if move else candidate["slot"]

    return name


def _below_graph(entry: Entry, best: dict | None, candidates: list[dict], calls: list[dict]) -> str | None:
    """Why the task's best is below the graph baseline, from the record: the best's own
    speedup, and each candidate that failed with its status and reason. None when the
    best is at or above graph, graph was not timed, or nothing was evaluated."""
    evaluated = [c for c in candidates if c["evaluation_id"] is not None]
    at_or_above = best is not None and (entry.speedup_graph is None or entry.speedup_graph.value >= 1.0)
    if at_or_above or not evaluated:
        return None
    name = _namer(calls)
    correct = [c for c in evaluated if c["status"] == "correct"]
    if best is None:
        parts = ["no correct candidate"]
    else:
        top = next(c for c in candidates if c["id"] == best["id"])
        parts = [f"best {name(top)} at {_x_interval(entry.speedup_graph)} over graph, "
                 f"{len(correct)} of {len(evaluated)} evaluated candidates correct"]
    failed = [c for c in evaluated if c["status"] != "correct"]
    shown = [f"{name(c)} {c['status']}: {_clip(c['reason'])}" for c in failed[:_FAILURES_SHOWN]]
    if len(failed) > _FAILURES_SHOWN:
        shown.append(f"{len(failed) - _FAILURES_SHOWN} more failed")
    return "; ".join(parts + (["failed: " + "; ".join(shown)] if shown else []))


def _moves(best: dict | None, candidates: list[dict], calls: list[dict]) -> str | None:
    """Which candidate won the task and how each other one did, in evaluation order: a
    timed one by its speedup over eager and over the fastest baseline (what ranks them,
    pike_bench.ranking), any other by its status and reason (the rule it broke). Reused
    verdicts (the same source again) are left out. None when nothing was evaluated."""
    evaluated = [c for c in candidates if c["evaluation_id"] is not None and not c.get("same_as")]
    if not evaluated:
        return None
    name = _namer(calls)
    timed = [c for c in evaluated if c["speedup_eager"] is not None]
    standing = dict(zip((c["id"] for c in timed), standings([row_speedups(c) for c in timed])))
    top = next((c for c in evaluated if best is not None and c["id"] == best["id"]), None)
    won = (f"won by {name(top)} at {_x(top['speedup_eager'])} over eager, {_x(standing.get(top['id']))} over the "
           "fastest baseline" if top else "no correct candidate")
    if top is not None and best["reviewed"]:
        won += " (flagged suspicious, accepted after review)"
    others = [_how_it_did(name(c), c, standing.get(c["id"])) for c in evaluated if c is not top]
    return won + ("; others: " + "; ".join(others) if others else "")


def _how_it_did(name: str, candidate: dict, standing: float | None) -> str:
    if candidate["status"] == "correct":
        return f"{name} {_x(candidate['speedup_eager'])}, {_x(standing)}"
    return f"{name} {candidate['status']}: {_clip(candidate['reason'], 80)}"


def _clip(text: str, width: int = 110) -> str:
    line = " ".join((text or "no reason recorded").split())
    return line if len(line) <= width else line[: width - 3] + "..."


def _result(db: sqlite3.Connection, evaluation_id: int) -> dict:
    row = db.execute("SELECT result FROM evaluations WHERE id = ?", (evaluation_id,)).fetchone()
    return json.loads(row["result"])


def _fill_best(entry: Entry, best: dict, result: dict) -> None:
    entry.best_candidate_id = best["id"]
    entry.best_ms = best["candidate_ms"]
    entry.eager_ms = _baseline_ms(result, "eager")
    entry.compile_ms = _baseline_ms(result, "compile")
    entry.graph_ms = _baseline_ms(result, "graph")
    entry.speedup_eager = _speedup(best["speedups"].get("eager"))
    entry.speedup_compile = _speedup(best["speedups"].get("compile"))
    entry.speedup_graph = _speedup(best["speedups"].get("graph"))
    entry.languages = list(result.get("languages") or [])
    entry.precision = result.get("precision") or ""
    entry.device_name = result.get("device_name") or ""
    entry.reviewed = best["reviewed"]
    entry.baselines_failed = _baselines_failed(result)


def _baselines_failed(result: dict) -> str | None:
    """The baselines timed beside the best that failed there (so its ratio over them is
    missing), each with its status and reason: a graph capture that the model's host
    syncs break, a compile whose output is outside the task's tolerance."""
    failed = [f"{name} baseline {baseline.get('status')}: {_clip(baseline.get('reason'))}"
              for name, baseline in (result.get("baselines") or {}).items() if baseline.get("status") != CORRECT]
    return "; ".join(failed) or None


def _baseline_ms(result: dict, name: str) -> float | None:
    timing = (result.get("baselines", {}).get(name) or {}).get("timing")
    return timing["median_ms"] if timing else None


def _speedup(stored: dict | None) -> Speedup | None:
    return Speedup(stored["value"], stored["low"], stored["high"], stored.get("confidence", 0.95)) if stored else None


def _spent(calls: list[dict]) -> list[float]:
    """spent[q]: dollars after q calls. Each a correctly rounded sum (fsum), so a step's
    dollars and the entry's total are the same number when they are the same sum."""
    dollars = [call["dollars"] for call in calls]
    return [math.fsum(dollars[:q]) for q in range(len(dollars) + 1)]


def _steps(calls: list[dict], candidates: list[dict]) -> list[Step]:
    """The best-so-far candidate after each query, as its speedup over eager, each step
    placed at its query index. A step is a candidate ranked above every earlier one (by
    its speedup over the fastest baseline, as the search and the record's best rank
    them), so the last step is the task's best and its speedup over eager is the table's;
    a step may show less over eager than the one before it."""
    spent = _spent(calls)
    position = {call["id"]: q for q, call in enumerate(calls, start=1)}
    created = [call["created_at"] for call in calls]
    timed = [c for c in candidates if c["status"] == "correct" and c["speedup_eager"] is not None]
    over = standings([row_speedups(c) for c in timed])
    placed = []
    for candidate, standing in zip(timed, over):
        q = position.get(candidate["llm_call_id"])
        if q is None:  # no link: the calls made by the time it was recorded
            q = sum(1 for t in created if t <= candidate["created_at"])
        placed.append((q, candidate["id"], standing, candidate["speedup_eager"]))
    steps: list[Step] = []
    best = 0.0
    for q, candidate_id, standing, speedup in sorted(placed):
        if standing > best:
            best = standing
            steps.append(Step(q, spent[q], speedup, candidate_id))
    return steps


# -- geomeans and trajectories --------------------------------------------------------------


def geometric_mean(values: Iterable[float]) -> float | None:
    logs = [math.log(v) for v in values if v is not None and v > 0]
    return math.exp(math.fsum(logs) / len(logs)) if logs else None


def _geomeans(entries: list[Entry], marks: list[str] = ()) -> list[Geomean]:
    out = []
    for strategy in sorted({e.strategy for e in entries}):
        mine = [e for e in entries if e.strategy == strategy]
        for level in sorted({e.level for e in mine}):
            out.append(_geomean(strategy, level, [e for e in mine if e.level == level]))
        for mark in marks:
            marked = [e for e in mine if mark in e.marks]
            if marked:
                out.append(_geomean(strategy, None, marked, mark))
        out.append(_geomean(strategy, None, mine))
    return out


def _geomean(strategy: str, level: str | None, entries: list[Entry], mark: str | None = None) -> Geomean:
    solved = [e for e in entries if e.solved]
    over = {metric: [getattr(e, f"speedup_{metric}").value for e in solved if getattr(e, f"speedup_{metric}")]
            for metric in METRICS}
    unsolved = [1.0] * (len(entries) - len(solved))
    return Geomean(
        strategy=strategy, level=level, tasks=len(entries), solved=len(solved),
        eager=geometric_mean(over["eager"]), compile=geometric_mean(over["compile"]),
        graph=geometric_mean(over["graph"]),
        eager_all_tasks=geometric_mean(over["eager"] + unsolved) or 1.0,
        compile_all_tasks=geometric_mean(over["compile"] + unsolved) if over["compile"] else None,
        graph_all_tasks=geometric_mean(over["graph"] + unsolved) if over["graph"] else None,
        mark=mark,
    )


def _trajectory(strategy: str, entries: list[Entry], axis: str) -> Trajectory:
    # The geomean changes only where some task steps up; the horizons carry each curve to its end.
    xs = sorted({0} | {step.at(axis) for e in entries for step in e.steps} | {e.horizon(axis) for e in entries})
    points = [(x, geometric_mean(_or_one(e.best_at(axis, x)) for e in entries) or 1.0) for x in xs]
    return Trajectory(strategy, axis, points)


def _or_one(value: float | None) -> float:
    return 1.0 if value is None else value


# -- tables ----------------------------------------------------------------------------------

NOTE = ("speedups: stored paired speedups of the best correct candidate (median of per-round ratios) "
        "with their 95% bootstrap intervals; geomeans over solved tasks, 'all tasks' counts an unsolved task "
        "as 1.00x; '-m MARK': the tasks that carry that pytest mark; queries marked * belong to a run that "
        "was interrupted (the same command resumes it)")
ENTRY_HEADERS = ["strategy", "task", "eager ms", "compile ms", "best ms", "over eager", "over compile",
                 "over graph", "models", "queries", "dollars", "languages", "candidates", "check"]
GEOMEAN_HEADERS = ["strategy", "tasks of", "tasks", "solved", "geomean over eager", "geomean over compile",
                   "geomean over graph", "over eager, all tasks", "over compile, all tasks", "over graph, all tasks"]


def _task_order(task: str) -> tuple:
    # level3/2_X before level3/10_X: the number in front of the name, as KernelBench numbers them.
    level, _, name = task.rpartition("/")
    number = re.match(r"\d+", name)
    return level, int(number.group()) if number else math.inf, name


def _level(task: str) -> str:
    return task.split("/", 1)[0] if "/" in task else ""


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _x_interval(speedup: Speedup | None) -> str:
    return "-" if speedup is None else f"{speedup.value:.2f}x [{speedup.low:.2f}, {speedup.high:.2f}]"


def _queries(e: Entry) -> str:
    return f"{e.queries}" if e.finished else f"{e.queries}*"


def _entry_row(e: Entry) -> list:
    return [e.strategy, e.task, _ms(e.eager_ms), _ms(e.compile_ms), _ms(e.best_ms),
            *(_x_interval(getattr(e, f"speedup_{metric}")) for metric in METRICS),
            ", ".join(e.models) or "-", _queries(e), f"${e.dollars:.2f}", ", ".join(e.languages) or "-",
            e.candidates_evaluated, e.check]


def _geomean_values(g: Geomean) -> list[float | None]:
    return [g.eager, g.compile, g.graph, g.eager_all_tasks, g.compile_all_tasks, g.graph_all_tasks]


def _geomean_row(g: Geomean) -> list:
    return [g.strategy, g.group, g.tasks, g.solved, *(_x(v) for v in _geomean_values(g))]


def _under_way_note(board: "Leaderboard") -> str:
    if not board.runs_under_way:
        return ""
    runs = ", ".join(str(run) for run in board.runs_under_way)
    return f"; runs under way behind a finished run of the same strategy and task, shown once they finish: {runs}"


def _line_sections(board: "Leaderboard") -> list[tuple[str, list[str], str]]:
    """The per-task notes under the tables: (title, a line per task, what the page says when none)."""
    def lines(field: str) -> list[str]:
        return [f"{e.strategy} {e.task}: {getattr(e, field)}" for e in board.entries if getattr(e, field)]

    return [
        ("Below the graph baseline, and why", lines("below_graph"),
         "none: every best is at or above the graph baseline, or graph was not timed"),
        ("Baselines without a ratio, and why", lines("baselines_failed"), "none: every baseline timed beside a best ran"),
        ("How each task was won (each timed candidate over eager, then over the fastest baseline, which ranks them)",
         lines("moves"), "no candidate was evaluated"),
    ]


def _speedup_of(entry: Entry | None, metric: str) -> float | None:
    if entry is None:
        return None
    interval = getattr(entry, f"speedup_{metric}")
    return interval.value if interval else None


def _compare_table(board: Leaderboard, metric: str, bold: bool) -> tuple[list[str], list[list], list[list]]:
    """Headers, a row per task (the best strategy's cell in bold) and geomean rows (cells: value and solved count)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
    strategies = board.strategies
    rows = []
    for task in board.tasks:
        values = [_speedup_of(board.entry(s, task), metric) for s in strategies]
        top = max((v for v in values if v is not None), default=None)
        rows.append([task] + [f"**{_x(v)}**" if bold and v == top and len(strategies) > 1 else _x(v) for v in values])
    footer = []
    groups = {(g.level, g.mark): g.group for g in board.geomeans}
    for (level, mark), group in groups.items():
        cells = []
        for s in strategies:
            g = board.geomean(s, level, mark)
            cells.append("-" if g is None else f"{_x(getattr(g, metric))} ({g.solved}/{g.tasks})")
        footer.append([f"geomean {group}"] + cells)
    return [f"task (over {metric})"] + strategies, rows, footer


# -- the HTML page ------------------------------------------------------------------------------

# Inline only, and a policy that forbids fetching anything: the page must open offline,
# from a CI artifact, without a request leaving the machine.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
td:first-child, th:first-child, td.text { text-align: left; }
th { background: #eee; cursor: pointer; user-select: none; text-align: left; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
tfoot td { font-weight: bold; background: #f6f6f6; }
figure { display: inline-block; margin: 1em; }
img { max-width: 100%; }
"""

# Click a header to sort by it; again to reverse. Cells with data-v sort as numbers
# (missing ones last), others as text. Footer rows (geomeans) stay put.
_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var key = function (row) {
      var cell = row.cells[col], v = cell.getAttribute("data-v");
      return v === null ? cell.textContent : (v === "" ? null : parseFloat(v));
    };
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === null || y === null) { return (x === null) - (y === null); }
      var order = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _cell(text: object, value: float | None = None, numeric: bool = False) -> str:
    sort = f' data-v="{"" if value is None else repr(float(value))}"' if numeric else ""
    css = "" if numeric else ' class="text"'
    return f"<td{sort}{css}>{html.escape(str(text))}</td>"


def _table(table_id: str, headers: list[str], rows: list[list[str]], footer: list[list[str]] = ()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    foot = "".join(f"<tr>{''.join(row)}</tr>" for row in footer)
    foot = f"<tfoot>{foot}</tfoot>" if foot else ""
    return f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>{foot}</table>'


def _entries_html(board: Leaderboard) -> str:
    rows = []
    for e in board.entries:
        speedups = [_speedup_of(e, metric) for metric in METRICS]
        rows.append([
            _cell(e.strategy), _cell(e.task), _cell(_ms(e.eager_ms), e.eager_ms, True),
            _cell(_ms(e.compile_ms), e.compile_ms, True), _cell(_ms(e.best_ms), e.best_ms, True),
            *(_cell(_x_interval(getattr(e, f"speedup_{m}")), v, True) for m, v in zip(METRICS, speedups)),
            _cell(", ".join(e.models) or "-"), _cell(_queries(e), e.queries, True),
            _cell(f"${e.dollars:.2f}", e.dollars, True), _cell(", ".join(e.languages) or "-"),
            _cell(e.candidates_evaluated, e.candidates_evaluated, True), _cell(e.check),
        ])
    return _table("entries", ENTRY_HEADERS, rows)


def _geomeans_html(board: Leaderboard) -> str:
    rows = [[_cell(g.strategy), _cell(g.group), _cell(g.tasks, g.tasks, True), _cell(g.solved, g.solved, True),
             *(_cell(_x(v), v, True) for v in _geomean_values(g))] for g in board.geomeans]
    return _table("geomeans", GEOMEAN_HEADERS, rows)


def _compare_html(board: Leaderboard) -> str:
    headers, rows, footer = _compare_table(board, "eager", bold=False)
    body = [[_cell(row[0])] + [_cell(text, _speedup_of(board.entry(s, row[0]), "eager"), True)
                               for s, text in zip(board.strategies, row[1:])] for row in rows]
    foot = [[_cell(text) for text in row] for row in footer]
    return _table("compare", headers, body, foot)


def _line_sections_html(board: Leaderboard) -> str:
    parts = []
    for title, lines, none in _line_sections(board):
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        parts.append(f"<h2>{html.escape(title)}</h2>" + (f"<ul>{items}</ul>" if lines else f"<p>{html.escape(none)}</p>"))
    return "\n".join(parts)


def _figures_html(plots: dict[str, bytes]) -> str:
    figures = []
    for name, png in plots.items():
        uri = "data:image/png;base64," + b64encode(png).decode("ascii")
        label = html.escape(name)
        figures.append(f'<figure><img src="{uri}" alt="{label}"><figcaption>{label}</figcaption></figure>')
    return "".join(figures)


def _html_page(board: Leaderboard, plots: dict[str, bytes]) -> str:
    solved = sum(1 for e in board.entries if e.solved)
    summary = (f"{len(board.strategies)} strategies, {len(board.tasks)} tasks, {solved} of {len(board.entries)} "
               f"strategy-task pairs with a correct candidate; store {board.store}, {board.generated_at}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<title>pike-bench leaderboard</title><style>{_STYLE}</style></head>
<body>
<h1>pike-bench leaderboard</h1>
<p>{html.escape(summary)}</p>
<h2>Geomeans</h2>{_geomeans_html(board)}
<h2>Strategies side by side (speedup over eager)</h2>{_compare_html(board)}
<h2>Per strategy and task</h2>{_entries_html(board)}
<p>{html.escape(NOTE + _under_way_note(board))}</p>
{_line_sections_html(board)}
<h2>Plots</h2>{_figures_html(plots)}
<script>{_SCRIPT}</script>
</body></html>
"""


__all__ = ["build", "Leaderboard", "Entry", "Geomean", "Trajectory", "Step", "geometric_mean",
           "SCHEMA_PATH", "SCHEMA_VERSION"]

