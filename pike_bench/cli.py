"""The `pike` command.

    pike tasks [--tasks PATH]
    pike eval TASK CANDIDATE.py [--device cpu|cuda] [--check strict|pike|kernelbench] [--json]
    pike audit TASKS_OR_LEVEL CANDIDATES_DIR [--policies strict,pike,kernelbench] [--out DIR]

The options that a run's settings are made of (device, trials, budget, ...) are declared
once, for this command and the pytest plugin alike, in :mod:`pike_bench.options`; the
presentation flags of one sub-command (--json, --quiet, --format) are declared here.

Exit codes: 0 success (for `eval`: the candidate is correct), 1 the candidate is
not correct, 2 bad input (unknown task, unreadable file, wrong option).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from pike_bench.llm.base import ProposerError
from pike_bench.options import Settings, SettingsError, add_cli_options
from pike_bench.policy import CHECKS
from pike_bench.tasks import TaskError, discover_tasks, find_task

EXIT_OK, EXIT_NOT_CORRECT, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C


class BadInput(Exception):
    """A wrong option or file; the message is the one line the user sees."""


def build_parser() -> argparse.ArgumentParser:
    """The sub-commands; the options they share with pytest come from pike_bench.options."""
    parser = argparse.ArgumentParser(prog="pike", description="pike-bench: make PyTorch programs faster, measured honestly")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tasks = commands.add_parser("tasks", help="list the tasks (ids, marks, small size)")
    add_cli_options(tasks, "tasks")

    run = commands.add_parser(
        "eval",
        help="check and time one candidate file against a task",
        description="Check CANDIDATE (a file defining ModelNew) against TASK on Hypothesis inputs, "
        "then time it with eager and torch.compile side by side. Exit code 0 only if it is correct.",
    )
    run.add_argument("task", help="task id (level3/1_MLP) or path of a task file")
    run.add_argument("candidate", type=Path, help="Python file that defines ModelNew")
    add_cli_options(run, "eval")
    run.add_argument("--json", action="store_true", help="print the EvalResult as JSON")

    opt = commands.add_parser(
        "optimize",
        help="let agents make tasks faster within a budget",
        description="Run a search strategy on each TASK: agents propose candidates, the evaluator checks and "
        "times them, the best correct one is kept. Rerunning the same command resumes from the record.",
    )
    opt.add_argument("tasks_to_run", nargs="+", metavar="TASK", help="task ids or task file paths")
    add_cli_options(opt, "optimize")
    opt.add_argument("--quiet", "-q", action="store_true",
                     help="no progress lines or bar while it runs: only the table at the end")

    keep = commands.add_parser("accept", help="check a candidate and keep it as a task's solution (gated on every run)")
    keep.add_argument("candidate", type=Path, help="Python file that defines ModelNew")
    keep.add_argument("--task", required=True, help="task id or task file path")
    keep.add_argument("--name", default="manual", help="the solution's name (default manual)")
    add_cli_options(keep, "accept")

    add_audit_parser(commands)

    board = commands.add_parser("leaderboard", help="the runs in the record as a table, JSON or an HTML page with plots")
    add_cli_options(board, "leaderboard")
    board.add_argument("--format", choices=("md", "json", "html"), default="md")
    board.add_argument("--view", choices=("entries", "compare"), default="entries",
                       help="md: a row per strategy and task, or strategies side by side")
    board.add_argument("--over", choices=("eager", "compile", "graph"), default="eager",
                       help="the baseline of the side-by-side view's speedups (default eager)")
    board.add_argument("--out", type=Path, default=None,
                       help="folder to write leaderboard.md, .json, .html and the plots to (default: print one format)")
    board.add_argument("--mark", action="append", default=[], metavar="MARK",
                       help="geomeans also over the tasks with this pytest mark, e.g. pike (repeatable)")

    report = commands.add_parser("report", help="one run of the record: its candidates and LLM calls")
    report.add_argument("run", type=int, help="run id (the leaderboard's JSON lists them)")
    add_cli_options(report, "report")

    forget = commands.add_parser(
        "forget", help="delete runs from the record, so that the same command starts them afresh",
        description="Delete each RUN (its queries, candidates and evaluations) from the record: for runs whose "
        "verdicts judged the machine rather than the code. Their queries are asked, and paid for, again "
        "when the same command runs.")
    forget.add_argument("runs", type=int, nargs="+", metavar="RUN", help="run ids (the leaderboard's JSON lists them)")
    add_cli_options(forget, "forget")

    drop = commands.add_parser("remove", help="remove a kept solution")
    drop.add_argument("--task", required=True)
    drop.add_argument("--name", required=True)
    add_cli_options(drop, "remove")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_args(args)
        if args.command == "tasks":
            return list_tasks(settings)
        if args.command == "optimize":
            return optimize_tasks(args, settings)
        if args.command == "accept":
            return accept_solution(args, settings)
        if args.command == "remove":
            return remove_solution(args, settings)
        if args.command == "leaderboard":
            return show_leaderboard(args, settings)
        if args.command == "report":
            return show_run(args)
        if args.command == "forget":
            return forget_runs(args)
        if args.command == "audit":
            return run_audit(args, settings)
        return eval_candidate(args, settings)
    # ProposerError: a refused key or model, a bad replay file
    except (TaskError, BadInput, SettingsError, ProposerError) as exc:
        print(f"pike: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("pike: interrupted; what was finished is in the record: rerun the same command to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED


def list_tasks(settings: Settings) -> int:
    from tabulate import tabulate

    tasks, errors = discover_tasks(settings.task_roots)
    rows = [[t.id, ",".join(t.marks), "yes" if t.small else "no", str(t.path)] for t in tasks]
    print(tabulate(rows, headers=["task", "marks", "small size", "file"], tablefmt="github"))
    for error in errors:
        print(f"pike: task error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT if errors else EXIT_OK


def eval_candidate(args: argparse.Namespace, settings: Settings) -> int:
    from pike_bench.report import eval_table

    task = find_task(args.task, settings.task_roots)
    source = _read_candidate(args.candidate)
    device = settings.resolve_device()
    _say_sandbox(settings)
    with settings.evaluator(device) as evaluator:
        result = evaluator.evaluate(task, source, hypothesis_seed=settings.seed)
    if args.json:
        print(result.to_json(indent=2))
    else:
        print(
            f"{result.task_id}: {result.status}"
            + (f": {result.reason}" if result.reason else "")
            + f"\n  check {result.check}" + (f", rule broken: {result.rule}" if result.rule else "")
            + f"\n  {result.device} ({result.device_name}), torch {result.torch_version}, size {result.size}, "
            f"mode {result.mode}, {result.trials} input sets, Hypothesis seed {result.hypothesis_seed}, "
            f"{result.seconds:.1f} s\n  kernels: {', '.join(result.languages)}"
            + (f"; precision changed: {result.precision}" if result.precision else "")
            + (f"; policy: {result.policy}" if result.policy != "any" else "")
        )
        if result.detail:
            print("  " + result.detail.replace("\n", "\n  "))
        table = eval_table(result)
        if table:
            print(table)
    return EXIT_OK if result.correct else EXIT_NOT_CORRECT


def optimize_tasks(args: argparse.Namespace, settings: Settings) -> int:
    from pike_bench.optimize import choose_llm
    from pike_bench.progress import for_terminal
    from pike_bench.report import optimize_table

    tasks = [find_task(spec, settings.task_roots) for spec in args.tasks_to_run]
    device = settings.resolve_device()
    if choose_llm(settings.optimize_options()) == "offline":
        print("pike: no ANTHROPIC_API_KEY, so the offline proposer writes the candidates (no LLM, no cost)")
    _say_sandbox(settings)
    with settings.optimizing_evaluator(device, print) as evaluator:
        optimizer = settings.optimizer(evaluator, for_terminal(args.quiet))
        outcomes = _in_flight(optimizer, tasks, settings.in_flight)
    print(optimize_table(outcomes))
    print(f"leaderboard: {settings.publish()}")
    return EXIT_OK if all(o.best is not None for o in outcomes) else EXIT_NOT_CORRECT


def _in_flight(optimizer, tasks: list, lanes: int) -> list:
    """The tasks one after another, or `lanes` of them at once (pike_bench.inflight)."""
    if lanes == 1:
        return [optimizer.optimize(task) for task in tasks]
    from pike_bench.inflight import InFlight

    try:
        in_flight = InFlight(optimizer, lanes)
    except ValueError as exc:
        raise BadInput(f"--in-flight {exc}") from None
    try:
        return in_flight.optimize_all(tasks)
    finally:
        in_flight.close()


def accept_solution(args: argparse.Namespace, settings: Settings) -> int:
    from pike_bench import solutions

    task = find_task(args.task, settings.task_roots)
    source = _read_candidate(args.candidate)
    device = settings.resolve_device()
    _say_sandbox(settings)
    with settings.evaluator(device) as evaluator:
        try:
            kept = solutions.accept(evaluator, task, source, args.name, {"by": "hand", "file": str(args.candidate)},
                                    settings.solutions_dir)
        except ValueError as exc:
            print(f"pike: {task.id}: {exc}", file=sys.stderr)
            return EXIT_NOT_CORRECT
    speedups = kept.accepted["speedups"]
    print(f"kept {kept.path(settings.solutions_dir)}: " + ", ".join(
        f"{v['value']:.2f}x over {k}" for k, v in speedups.items()) + f" on {kept.accepted['device_name']}")
    if "flagged" in kept.accepted:
        _record_review(settings.store_path, task.id, source, kept)
    return EXIT_OK


def _record_review(store_path: Path, task_id: str, source: str, kept) -> None:
    """A flagged candidate accepted by hand counts as its task's best in the record's leaderboard."""
    from pike_bench.store import Store

    if not store_path.exists():
        print(f"flagged ({kept.accepted['flagged']}); accepted by hand. No record at {store_path} to note the "
              "review in (--store PATH names the record whose leaderboard should count it)")
        return
    note = f"accepted by hand with pike accept on {kept.accepted['device_name']}: {kept.accepted['flagged']}"
    with Store(store_path) as store:
        found = store.record_review(task_id, source, note)
    print(f"review noted in {store_path}: " + (f"its leaderboard counts this candidate ({found} in the record)"
          if found else "no candidate of the record has this source yet; it counts once one does"))


def remove_solution(args: argparse.Namespace, settings: Settings) -> int:
    from pike_bench import solutions

    try:
        solutions.remove(settings.solutions_dir, args.task, args.name)
    except FileNotFoundError as exc:
        raise BadInput(str(exc)) from None
    print(f"removed {args.task}/{args.name}")
    return EXIT_OK


def show_leaderboard(args: argparse.Namespace, settings: Settings) -> int:
    from pike_bench import leaderboard, plots
    from pike_bench.publish import publish

    marks = _marked_tasks(args.mark, settings)
    try:
        if args.out is not None:
            print(f"wrote {publish(args.store, args.out, marks)}, with .md, .json and the plots beside it")
            return EXIT_OK
        board = leaderboard.build(args.store, marks)
    except FileNotFoundError:
        raise BadInput(f"no record at {args.store}; run `pike optimize` (or pytest --pike-optimize) first") from None
    if args.format == "md":
        print(board.to_markdown(view=args.view, metric=args.over))
    elif args.format == "json":
        print(board.to_json())
    else:
        print(board.to_html({"speedups.png": plots.speedup_bars_png(board),
                             "trajectory_queries.png": plots.trajectory_png(board, x="queries")}))
    return EXIT_OK


def _marked_tasks(marks: list[str], settings: Settings) -> dict[str, list[str]]:
    """For each mark, the ids of the tasks that carry it."""
    if not marks:
        return {}
    tasks, _ = discover_tasks(settings.task_roots)
    unknown = [m for m in marks if not any(m in t.marks for t in tasks)]
    if unknown:
        raise BadInput(f"--mark {', '.join(unknown)}: no task carries it; marks there: "
                       f"{', '.join(sorted({m for t in tasks for m in t.marks})) or 'none'}")
    return {mark: [t.id for t in tasks if mark in t.marks] for mark in marks}


def forget_runs(args: argparse.Namespace) -> int:
    from pike_bench.store import Store

    if not Path(args.store).exists():
        raise BadInput(f"no record at {args.store}")
    with Store(args.store) as store:
        runs = {run_id: store.run(run_id) for run_id in args.runs}
        missing = [str(run_id) for run_id, run in runs.items() if run is None]
        if missing:
            raise BadInput(f"no run {', '.join(missing)} in {args.store}: nothing was deleted")
        for run_id, run in runs.items():
            counts = store.forget_run(run_id)
            queries, candidates = counts["llm_calls"], counts["candidates"]
            print(f"forgot run {run_id} ({run['config'].get('task', '?')}): {queries} quer{'y' if queries == 1 else 'ies'}, "
                  f"{candidates} candidate{'' if candidates == 1 else 's'}; the same command starts it afresh")
    return EXIT_OK


def show_run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from pike_bench.store import Store

    if not Path(args.store).exists():
        raise BadInput(f"no record at {args.store}")
    with Store(args.store) as store:
        run = store.run(args.run)
        if run is None:
            raise BadInput(f"no run {args.run} in {args.store}")
        task_id = run["config"].get("task", "")
        candidates = store.candidates(args.run, task_id)
        calls = store.llm_calls(args.run, task_id)
    when = lambda t: datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds") if t else "no"  # noqa: E731
    print(f"run {args.run}: {task_id}, strategy {run['config'].get('strategy')}, llm {run['config'].get('llm')}, "
          f"started {when(run['started_at'])}, {run['starts']} start(s), finished {when(run['finished_at'])}")
    print(f"{len(calls)} LLM calls, ${sum(c['dollars'] for c in calls):.2f}, "
          f"{sum(c['input_tokens'] for c in calls)} tokens in, {sum(c['output_tokens'] for c in calls)} out")
    rows = [[c["id"], c["slot"], c["agent"], c["status"] or "-", c["rule"] or "",
             f"same source as {c['same_as']}: its verdict" if c["same_as"] else c["reason"] or "",
             "-" if c["candidate_ms"] is None else f"{c['candidate_ms']:.4g}",
             "-" if c.get("speedup_eager") is None else f"{c['speedup_eager']:.2f}x"] for c in candidates]
    print(tabulate(rows, headers=["id", "slot", "agent", "status", "rule", "reason", "ms", "over eager"],
                   tablefmt="github"))
    failed = [[c["id"], c["slot"], c["role"], c["status"], f"${c['dollars']:.4f}", c["reason"]]
              for c in calls if c["status"] != "ok"]
    if failed:
        print(f"{len(failed)} queries gave no program:")
        print(tabulate(failed, headers=["call", "slot", "role", "status", "dollars", "reason"], tablefmt="github"))
    return EXIT_OK


def _say_sandbox(settings: Settings) -> None:
    """`on` without a sandbox is bad input (SettingsError); `auto` without one says so, once."""
    chosen = settings.choose_sandbox()
    if chosen.why_not:
        print(f"pike: {settings.no_sandbox_note(chosen.why_not)}", file=sys.stderr)


def add_audit_parser(commands) -> None:
    audit = commands.add_parser(
        "audit",
        help="judge a folder of candidates under several check policies, side by side",
        description="Judge each candidate file of CANDIDATES_DIR (named by task id, name or number: "
        "level3/1_MLP.py, 1_MLP.py or 1.py) under each policy, and print verdicts, speedups over eager "
        "and the rule that made the difference. Each policy evaluates and times on its own.",
    )
    audit.add_argument("tasks_or_level", metavar="TASKS_OR_LEVEL",
                       help="a folder or file of tasks, or a level of the suites (level3)")
    audit.add_argument("candidates", type=Path, metavar="CANDIDATES_DIR", help="one Python file per task")
    audit.add_argument("--policies", default=",".join(CHECKS), help=f"default {','.join(CHECKS)}")
    audit.add_argument("--out", type=Path, default=None, help="folder to write audit.md and audit.json to")
    add_cli_options(audit, "audit", baselines="eager")


def run_audit(args: argparse.Namespace, settings: Settings) -> int:
    import secrets

    from pike_bench.audit import audit_folder, earlier_verdicts
    from pike_bench.policy import parse_policies

    try:
        policies = parse_policies(args.policies)
    except ValueError as exc:
        raise BadInput(f"--policies {exc}") from None
    if not args.candidates.is_dir():
        raise BadInput(f"{args.candidates}: not a folder of candidate files")
    tasks = _audit_tasks(args.tasks_or_level, settings.task_roots)
    device = settings.resolve_device()
    _say_sandbox(settings)
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731  (progress apart from the table)
    # An earlier run into the same --out is resumed: its verdicts are kept, with its seed.
    earlier_seed, earlier = earlier_verdicts(args.out / "audit.json") if args.out is not None else (None, {})
    if settings.seed is not None and settings.seed != earlier_seed:
        earlier = {}  # other input sets: nothing of the earlier run is comparable
    seed = next((s for s in (settings.seed, earlier_seed) if s is not None), None)
    seed = secrets.randbelow(2**31) if seed is None else seed
    if earlier:
        say(f"resuming {args.out / 'audit.json'}: {len(earlier)} earlier verdicts (seed {seed}); "
            "those of unchanged candidate files are kept")

    def evaluator_for(policy):
        return settings.evaluator(device, check=policy.name)

    def write_out(audit):
        if args.out is not None:
            audit.write(args.out)

    try:
        audit = audit_folder(tasks, args.candidates, policies, evaluator_for, seed, say, earlier, write_out)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise BadInput(str(exc)) from None
    if not audit.rows:
        raise BadInput(f"{args.candidates}: no file fits a task of {args.tasks_or_level} "
                       "(name them level/name.py, name.py or number.py)")
    print("\n".join([audit.table(), *audit.notes()]))
    if args.out is not None:
        print("wrote " + ", ".join(str(p) for p in audit.write(args.out)))
    return EXIT_OK


def _audit_tasks(spec: str, roots: list[Path] | None):
    """Tasks of a folder or file, else of a level of the suites; one line on what to give instead."""
    if Path(spec).exists():
        tasks, errors = discover_tasks([Path(spec)])
    else:
        everything, errors = discover_tasks(roots)
        tasks = [t for t in everything if t.level == spec]
        if not tasks:
            levels = sorted({t.level for t in everything})
            raise BadInput(f"{spec}: neither a folder of tasks nor a level; levels: {', '.join(levels)}")
    for error in errors:
        print(f"pike: task error: {error}", file=sys.stderr)
    return tasks


def _read_candidate(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None


if __name__ == "__main__":
    sys.exit(main())
