"""The pytest plugin: options, one test parameter per task, fixtures, the summary table.

Registered through the ``pytest11`` entry point. The work is done by the library
(:mod:`pike_bench.tasks`, :mod:`pike_bench.evaluate`, :mod:`pike_bench.suite`);
this module only connects it to pytest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pike_bench.baselines import BASELINES, COMPILE_MODES, compile_cache_beside, parse_baselines
from pike_bench.policy import CHECKS, check_policy
from pike_bench.llm.base import LLMS
from pike_bench.search.presets import PRESETS, preset
from pike_bench.tasks import SIZES, Task, TaskError, discover_tasks


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pike", "pike-bench: KernelBench-form tasks as tests")
    group.addoption("--pike-tasks", action="append", default=[], metavar="PATH",
                    help="folder or file of KernelBench-form tasks, replacing the built-in suites (repeatable)")
    group.addoption("--pike-device", default=None, metavar="DEVICE",
                    help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    group.addoption("--pike-size", choices=SIZES, default=None,
                    help="task size: full, or the task's SMALL size (default: full on a GPU, small on the CPU)")
    group.addoption("--pike-mode", choices=("eval", "train"), default="eval",
                    help="eval (PIKE: .eval(), BatchNorm uses running statistics) or train (KernelBench's original)")
    group.addoption("--pike-check", choices=CHECKS, default="strict",
                    help="check policy: strict (ours), pike or kernelbench (the peers' evaluators, which fix "
                         "their mode and input sets)")
    group.addoption("--pike-trials", type=int, default=5, metavar="N",
                    help="Hypothesis input sets checked per candidate (default 5)")
    group.addoption("--pike-seed", type=int, default=None, metavar="SEED",
                    help="Hypothesis seed for the input sets (default: a fresh one each run, printed on failure)")
    group.addoption("--pike-timeout", type=float, default=300.0, metavar="SECONDS",
                    help="longest a worker may stay silent in one step (build, one input set, timing)")
    group.addoption("--pike-sandbox", choices=("auto", "on", "off"), default="auto",
                    help="run candidates without network, secrets or write access (bubblewrap, else unshare): auto uses it where "
                         "it works, on refuses to run without it (default auto)")
    group.addoption("--pike-max-time", type=float, default=20.0, metavar="SECONDS",
                    help="time cap for the interleaved timing rounds of one task")
    group.addoption("--pike-no-l2-flush", action="store_true", default=False,
                    help="do not flush the GPU's L2 cache before each timed call")
    group.addoption("--pike-baselines", default=",".join(BASELINES), metavar="eager,compile,graph",
                    help="baselines timed beside each task or candidate (eager, the reference, always is)")
    group.addoption("--pike-compile-mode", choices=COMPILE_MODES, default="default",
                    help="torch.compile mode of the compile baseline")
    group.addoption("--pike-optimize", action="store_true", default=False,
                    help="let LLM agents optimize the selected tasks (instead of timing their baselines)")
    group.addoption("--pike-strategy", default="pike-b", metavar="NAME|FILE.json",
                    help=f"search strategy: {', '.join(PRESETS)}, or a JSON preset file (default pike-b)")
    group.addoption("--pike-budget", type=int, default=20, metavar="QUERIES",
                    help="LLM queries per task, EFA and IBA queries included (default 20)")
    group.addoption("--pike-dollars", type=float, default=None, metavar="USD", help="dollars per task at most")
    group.addoption("--pike-llm", choices=LLMS, default="auto",
                    help="auto (anthropic if ANTHROPIC_API_KEY is set, else offline), anthropic, offline, replay")
    group.addoption("--pike-replay", default=None, metavar="FILE", help="recorded replies for --pike-llm replay")
    group.addoption("--pike-model", default=None, help="model of the optimizing and brainstorming agents")
    group.addoption("--pike-efa-model", default=None, help="model of the error fixing agent (a cheaper one)")
    group.addoption("--pike-concurrency", type=int, default=16, metavar="N", help="LLM requests in flight")
    group.addoption("--pike-devices", default=None, metavar="all|0,1,...",
                    help="optimize with one worker per listed GPU, candidates to the next free one")
    group.addoption("--pike-ray", default=None, metavar="auto|ADDRESS|local",
                    help="evaluate candidates on Ray actors, one per GPU of the cluster (local: start one here)")
    group.addoption("--pike-ray-cpus", type=int, default=0, metavar="N",
                    help="with --pike-ray: N CPU actors, for a cluster without GPUs (default 0: one actor per GPU)")
    group.addoption("--pike-store", default=".pike/runs.sqlite", metavar="PATH",
                    help="the record of runs (a rerun of the same command resumes from it)")
    group.addoption("--pike-solutions", default="solutions", metavar="DIR",
                    help="kept solutions: written by --pike-optimize, gated on every run without it")
    group.addoption("--pike-in-flight", type=int, default=1, metavar="N",
                    help="with --pike-optimize: optimize N tasks at once, each with a worker of its own per GPU, "
                         "so one is checked and timed while another builds (default 1)")
    group.addoption("--pike-gate-tolerance", type=float, default=0.10, metavar="FRACTION",
                    help="a solution fails when its speedup over eager drops more than this below the recorded one")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pike: a task of PIKE's filtered level-3 set")
    config.addinivalue_line("markers", "pike_optimize: runs only with --pike-optimize (the others only without)")
    try:
        preset(config.getoption("--pike-strategy"))
    except ValueError as exc:
        raise pytest.UsageError(f"--pike-strategy: {exc}") from None
    if config.getoption("--pike-llm") == "replay" and not config.getoption("--pike-replay"):
        raise pytest.UsageError("--pike-llm replay needs --pike-replay FILE (a file of recorded replies)")
    if config.getoption("--pike-budget") < 1 and config.getoption("--pike-dollars") is None:
        raise pytest.UsageError("--pike-budget must be at least 1 (or give --pike-dollars)")
    try:
        parse_baselines(config.getoption("--pike-baselines"))
    except ValueError as exc:
        raise pytest.UsageError(f"--pike-baselines {exc}") from None
    if config.getoption("--pike-trials") < 1:
        raise pytest.UsageError("--pike-trials must be at least 1")
    if config.getoption("--pike-in-flight") < 1 or (config.getoption("--pike-in-flight") > 1
                                                   and config.getoption("--pike-ray")):
        raise pytest.UsageError("--pike-in-flight must be at least 1, and 1 with --pike-ray (Ray spreads one "
                                "task's candidates over the cluster instead)")
    if config.getoption("--pike-ray") or config.getoption("--pike-ray-cpus") or config.getoption("--pike-devices"):
        _check_ray_options(config)  # imports the evaluator (torch): only when these options are given
    plugin = PikePlugin(config)
    config.pluginmanager.register(plugin, "pike-session")


def _asked(config: pytest.Config) -> bool:
    """Whether this run names a --pike-* option (on the command line or in addopts)."""
    args = [*config.invocation_params.args, *config.getini("addopts")]
    return any(str(arg).startswith("--pike") for arg in args)


def _check_ray_options(config: pytest.Config) -> None:
    from pike_bench.evaluate.ray_pool import check_options

    try:  # here, not in the first optimize test
        check_options(config.getoption("--pike-ray"), config.getoption("--pike-ray-cpus"),
                      config.getoption("--pike-devices"), "--pike-ray")
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


class PikePlugin:
    """The session's pike-bench state. Inert until asked: nothing is discovered, no torch
    is imported and no sandbox is probed until a --pike-* option is given (then checked at
    once, before anything runs) or a test asks for a pike fixture, so a pytest run that
    has nothing to do with pike-bench costs nothing more."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.asked = _asked(config)
        self._found: tuple[list[Task], list[TaskError]] | None = None
        self._device: str | None = None
        self._sandbox = None
        self._evaluator = None
        self._optimizer = None
        self._pool = None
        self._in_flight = None  # the lanes of --pike-in-flight N > 1 (pike_bench.inflight)
        self.runs: dict[str, object] = {}
        self.optimized: dict[str, object] = {}
        self.gated: list = []
        if self.asked:  # a bad option is a usage error now, not in the first test
            self._discover()
            self.device  # noqa: B018  (resolved and checked)

    @property
    def tasks(self) -> list[Task]:
        return self._discover()[0]

    @property
    def errors(self) -> list[TaskError]:
        return self._discover()[1]

    def _discover(self) -> tuple[list[Task], list[TaskError]]:
        if self._found is None:
            roots = [Path(p) for p in self.config.getoption("--pike-tasks")]
            try:
                self._found = discover_tasks(roots or None)
            except TaskError as exc:
                raise pytest.UsageError(f"--pike-tasks: {exc}") from None
            for mark in sorted({m for task in self._found[0] for m in task.marks}):
                self.config.addinivalue_line("markers", f"{mark}: tasks whose file lists {mark!r} in MARKS")
        return self._found

    @property
    def device(self) -> str:
        if self._device is None:
            from pike_bench.evaluate import resolve_device

            try:
                self._device = resolve_device(self.config.getoption("--pike-device"))
            except ValueError as exc:
                raise pytest.UsageError(f"--pike-device {exc}") from None
        return self._device

    @property
    def sandbox(self):
        """Chosen once; where there is none, said once, in one line, even under -q (it is
        about the user's secrets)."""
        if self._sandbox is None:
            self._sandbox = _choose_sandbox(self.config.getoption("--pike-sandbox"))
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if self._sandbox.why_not and reporter:
                reporter.write_line(f"pike-bench: no sandbox: {self._sandbox.why_not}; candidates run with your "
                                    "network and files (--pike-sandbox off silences this)")
        return self._sandbox

    def header(self) -> str:
        size = self.config.getoption("--pike-size") or ("full" if self.device.startswith("cuda") else "small")
        check = check_policy(self.config.getoption("--pike-check"))
        return (
            f"pike-bench: {len(self.tasks)} tasks, device {self.device}, size {size}, "
            f"mode {check.mode or self.config.getoption('--pike-mode')}, check {check.name}"
            + (f", {len(self.errors)} task files with errors" if self.errors else "")
        )

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        return self.header() if self.asked else None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.asked:
            self.sandbox  # noqa: B018  (`on` without one is refused before anything runs)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # Task files collected without a --pike-* option (the suite in this repository's
        # root): the header comes once the tasks are known.
        if not self.asked and self._found is not None and self.config.get_verbosity() >= 0:
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter:
                reporter.write_line(self.header())

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        # --pike-optimize runs the optimize tests only; without it they are left out, and so
        # is the solution test when no solution is kept.
        optimize = config.getoption("--pike-optimize")
        keep = [i for i in items if bool(i.get_closest_marker("pike_optimize")) == optimize and not _no_solution(i)]
        dropped = [i for i in items if i not in keep]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "pike_solution" in metafunc.fixturenames:
            from pike_bench import solutions

            root = Path(self.config.getoption("--pike-solutions"))
            pairs = [(task, s) for task in self.tasks for s in solutions.for_task(root, task.id)]
            metafunc.parametrize("pike_solution", [
                pytest.param(pair, id=f"{pair[0].id}-{pair[1].name}", marks=[getattr(pytest.mark, m) for m in pair[0].marks])
                for pair in pairs
            ])
            return
        if "pike_task" not in metafunc.fixturenames:
            return
        params = [
            pytest.param(task, id=task.id, marks=[getattr(pytest.mark, m) for m in task.marks])
            for task in self.tasks
        ]
        params += [pytest.param(error, id=_error_id(error)) for error in self.errors]
        metafunc.parametrize("pike_task", params, indirect=True)

    def evaluator(self):
        if self._evaluator is None:
            from pike_bench.evaluate import Evaluator

            self.sandbox  # noqa: B018  (chosen, and said where there is none, before the first worker)
            self._evaluator = Evaluator(self.device, **self._evaluator_options())
        return self._evaluator

    def _evaluator_options(self) -> dict:
        """The options as given; each Evaluator fills in what depends on its device (size, graph)."""
        from pike_bench.evaluate import TimingOptions

        option = self.config.getoption
        return dict(
            size=option("--pike-size"),
            mode=option("--pike-mode"),
            trials=option("--pike-trials"),
            timeout=option("--pike-timeout"),
            timing=TimingOptions(max_seconds=option("--pike-max-time"), l2_flush=not option("--pike-no-l2-flush")),
            compile_mode=option("--pike-compile-mode"),
            baselines=parse_baselines(option("--pike-baselines")),
            sandbox=option("--pike-sandbox"),
            check=option("--pike-check"),
            compile_cache=compile_cache_beside(Path(option("--pike-store"))),
        )

    def optimizer(self):
        if self._optimizer is None:
            from pike_bench.optimize import Optimizer, OptimizeOptions, choose_llm

            option = self.config.getoption
            options = OptimizeOptions(
                strategy=option("--pike-strategy"), budget_queries=option("--pike-budget"),
                budget_dollars=option("--pike-dollars"), llm=option("--pike-llm"), replay_file=option("--pike-replay"),
                model=option("--pike-model"), efa_model=option("--pike-efa-model"),
                concurrency=option("--pike-concurrency"), store_path=Path(option("--pike-store")),
                solutions_dir=Path(option("--pike-solutions")),
            )
            from pike_bench.progress import for_pytest

            display = for_pytest(self.config)
            say = display.line  # notes are shown under -q too
            if choose_llm(options) == "offline":
                say("pike-bench: no ANTHROPIC_API_KEY, so the offline proposer writes the candidates "
                    "(known-good rewrites, no LLM, no cost)")
            devices = option("--pike-devices")
            if option("--pike-ray"):
                self._pool = self._ray_pool(say)
            elif devices:
                from pike_bench.evaluate.pool import EvaluatorPool, parse_devices

                base = self.evaluator()
                self._pool = EvaluatorPool.on_devices(
                    parse_devices(devices), size=base.size, mode=base.mode, trials=base.trials,
                    timeout=base.timeout, timing=base.timing, compile_mode=base.compile_mode,
                    baselines=base.baselines, sandbox=self.config.getoption("--pike-sandbox"),
                    check=base.check.name, compile_cache=base.compile_cache)
            self._optimizer = Optimizer(self._pool or self.evaluator(), options, progress=display)
        return self._optimizer

    def _ray_pool(self, say):
        from pike_bench.evaluate.ray_pool import open_pool

        # Not this machine's evaluator's settings: the driver may have no GPU where the
        # actors have one (its size would be small, its baselines without graph).
        try:
            return open_pool(self.config.getoption("--pike-ray"), self.config.getoption("--pike-ray-cpus"),
                             "--pike-ray", say, **self._evaluator_options())
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None

    def optimize(self, task: Task, items: list[pytest.Item] = ()):
        from pike_bench.llm.base import ProposerError

        try:
            if self.config.getoption("--pike-in-flight") > 1:
                self.optimized[task.id] = self.in_flight(items).result(task)
            else:
                self.optimized[task.id] = self.optimizer().optimize(task)
        except ProposerError as exc:  # no later query could succeed (a refused key or model): stop here
            pytest.exit(f"pike-bench: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        return self.optimized[task.id]

    def in_flight(self, items: list[pytest.Item]):
        """Lanes started on the first optimize item with every selected task, in item order."""
        if self._in_flight is None:
            from pike_bench.inflight import InFlight

            self._in_flight = InFlight(self.optimizer(), self.config.getoption("--pike-in-flight"))
            self._in_flight.start(_optimize_tasks(items))
        return self._in_flight

    def gate(self, task: Task, solution):
        from pike_bench import solutions

        verdict = solutions.gate(self.evaluator(), task, solution, self.config.getoption("--pike-gate-tolerance"))
        if verdict.rebaselined:
            solutions.rebaseline(Path(self.config.getoption("--pike-solutions")), solution, verdict)
        self.gated.append(verdict)
        return verdict

    def baseline_run(self, task: Task):
        if task.id not in self.runs:
            from pike_bench.suite import measure_baselines

            self.runs[task.id] = measure_baselines(self.evaluator(), task, self.config.getoption("--pike-seed"))
        return self.runs[task.id]

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._in_flight is not None:
            self._in_flight.close()  # stops the lanes still running, and their twin workers
        for evaluator in (self._evaluator, self._pool):
            if evaluator is not None:
                evaluator.close()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        errors = self._found[1] if self._found else []
        if not self.runs and not errors and not self.optimized and not self.gated:
            return
        from pike_bench.report import baseline_table, optimize_table

        terminalreporter.section("pike-bench")
        if self.runs:
            terminalreporter.write_line(baseline_table(list(self.runs.values())))
        if self.optimized:
            from pike_bench.publish import publish

            terminalreporter.write_line(optimize_table(list(self.optimized.values())))
            store = Path(self.config.getoption("--pike-store"))
            terminalreporter.write_line(f"leaderboard: {publish(store, store.parent / 'leaderboard')}")
        for verdict in self.gated:
            terminalreporter.write_line(("gate ok: " if verdict.passed else "gate FAILED: ") + verdict.message)
        for error in errors:
            terminalreporter.write_line(f"task error: {error}")


def _choose_sandbox(mode: str):
    from pike_bench.evaluate.sandbox import Sandbox, SandboxUnavailable

    try:
        return Sandbox.choose(mode)
    except SandboxUnavailable as exc:
        raise pytest.UsageError(f"--pike-sandbox on: {exc}") from None


def _no_solution(item: pytest.Item) -> bool:
    """A solution test with nothing to gate (no kept solutions): left out rather than skipped."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return "pike_solution" in getattr(item, "fixturenames", ()) and not isinstance(params.get("pike_solution"), tuple)


def _optimize_tasks(items: list[pytest.Item]) -> list[Task]:
    """The tasks of the selected optimize items, in their order."""
    params = (getattr(getattr(item, "callspec", None), "params", {}) for item in items
              if "pike_optimize" in getattr(item, "fixturenames", ()))
    return [p["pike_task"] for p in params if isinstance(p.get("pike_task"), Task)]


def _error_id(error: TaskError) -> str:
    path = Path(str(error).split(":", 1)[0])
    return f"{path.parent.name}/{path.stem}"


@pytest.fixture
def pike_task(request: pytest.FixtureRequest) -> Task:
    """The task under test: a parameter per task file, with ids like ``level3/35_LSTM``."""
    task = request.param
    if isinstance(task, TaskError):
        pytest.fail(str(task), pytrace=False)
    return task


@pytest.fixture
def pike_baselines(request: pytest.FixtureRequest, pike_task: Task):
    """Eager, compile and graph of the task, checked and timed together (once per task)."""
    return request.config.pluginmanager.get_plugin("pike-session").baseline_run(pike_task)


@pytest.fixture
def pike_optimize(request: pytest.FixtureRequest, pike_task: Task):
    """Runs the optimizer on the task (once) and returns its TaskOutcome."""
    return request.config.pluginmanager.get_plugin("pike-session").optimize(pike_task, request.session.items)


@pytest.fixture
def pike_gate(request: pytest.FixtureRequest, pike_solution):
    """Re-verifies and re-times a kept solution against eager; returns its Verdict."""
    task, solution = pike_solution
    return request.config.pluginmanager.get_plugin("pike-session").gate(task, solution)


@pytest.fixture
def pike_evaluator(request: pytest.FixtureRequest):
    """The session's :class:`~pike_bench.evaluate.Evaluator` (one worker for the device)."""
    return request.config.pluginmanager.get_plugin("pike-session").evaluator()


__all__ = ["BASELINES", "pike_task", "pike_baselines", "pike_evaluator", "pike_optimize", "pike_gate"]
