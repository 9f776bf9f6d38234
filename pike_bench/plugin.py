"""The pytest plugin: a collector that turns task files into tests, fixtures, the summary.

Registered through the ``pytest11`` entry point, so it is loaded into every pytest run
of the environment; it stays inert (no torch, no task discovery, no worker) until a
``--pike-*`` option is given or a task file is collected. The options and the objects
built from them live in :mod:`pike_bench.options`; the work is the library's.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pike_bench.options import Settings, SettingsError, add_pytest_options
from pike_bench.tasks import BUILTIN_ROOT, Task, TaskError, is_task_file, task_from_file

SESSION = pytest.StashKey["PikePlugin"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_pytest_options(parser.getgroup("pike", "pike-bench: KernelBench-form tasks as tests"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pike: a task of PIKE's filtered level-3 set")
    config.addinivalue_line("markers", "pike_optimize: runs only with --pike-optimize (the others only without)")
    try:
        settings = Settings.from_pytest(config)
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    plugin = PikePlugin(config, settings)
    config.stash[SESSION] = plugin
    config.pluginmanager.register(plugin, "pike-session")


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    plugin = parent.config.stash.get(SESSION, None)
    if plugin is not None and plugin.is_task_file(file_path):
        return TaskFile.from_parent(parent, path=file_path)
    return None


def _in_task_order(items: list[pytest.Item]) -> None:
    """Task files in their numbers' order, as KernelBench numbers them (1_MLP, 2_..., 10_...),
    where pytest's name order puts 10_ResNet101 before 1_MLP. Only the task items move,
    among the places they held; a file's items keep their order."""
    places = [n for n, item in enumerate(items) if item.getparent(TaskFile) is not None]
    ordered = sorted((items[n] for n in places), key=lambda item: _numbered(item.getparent(TaskFile).path))
    for n, item in zip(places, ordered):
        items[n] = item


def _numbered(path: Path) -> tuple:
    number = re.match(r"\d+", path.name)
    return str(path.parent), int(number.group()) if number else float("inf"), path.name


def _asked(config: pytest.Config) -> bool:
    """Whether this run names a --pike-* option (on the command line or in addopts)."""
    args = [*config.invocation_params.args, *config.getini("addopts")]
    return any(str(arg).startswith("--pike") for arg in args)


class TaskFile(pytest.Module):
    """A KernelBench-form task file. Its tests are those of :mod:`pike_bench.task_tests`,
    given this file's task; a file that is not a usable task is one failing item that
    says why in one line, so the other tasks still run."""

    task: Task | None = None

    def _getobj(self):
        # The module's test functions, not the task file (tasks.task_from_file loads that).
        from pike_bench import task_tests

        return task_tests

    def collect(self):
        plugin = self.config.stash[SESSION]
        try:
            self.task = plugin.load(self.path)
        except TaskError as exc:
            plugin.errors.append(exc)
            return [BrokenTaskFile.from_parent(self, name=f"test_task_file[{self.path.parent.name}/{self.path.stem}]",
                                               error=str(exc))]
        for mark in self.task.marks:
            self.add_marker(mark)
        return super().collect()


class BrokenTaskFile(pytest.Item):
    def __init__(self, *, error: str, **kwargs):
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:
        pytest.fail(self.error, pytrace=False)

    def reportinfo(self):
        return self.path, None, self.name


class PikePlugin:
    """The session's pike-bench state: which files are tasks, and the evaluator, optimizer
    and results of the run, each made when first needed. When a --pike-* option is given,
    the device is resolved (and so torch imported) at once, so that a bad one is a usage
    error before anything runs."""

    def __init__(self, config: pytest.Config, settings: Settings):
        self.config, self.settings = config, settings
        self.asked = _asked(config)
        self.roots = [Path(p).expanduser().resolve() for p in settings.tasks] or [BUILTIN_ROOT]
        self.tasks: dict[str, Task] = {}  # collected, by id
        self.errors: list[TaskError] = []
        self._device: str | None = None
        self._sandbox = None
        self._evaluator = None
        self._optimizer = None
        self._pool = None
        self._in_flight = None  # the lanes of --pike-in-flight N > 1 (pike_bench.inflight)
        self.runs: dict[str, object] = {}
        self.optimized: dict[str, object] = {}
        self.gated: list = []
        missing = [p for p in self.roots if not p.exists()]
        if missing:
            raise pytest.UsageError(f"{settings.flag('tasks')}: {missing[0]}: no such file or folder of tasks")
        if settings.tasks or (self.asked and config.args_source != pytest.Config.ArgsSource.ARGS):
            _collect_also(config, self.roots)
        if self.asked:
            self.device  # noqa: B018  (resolved and checked)

    # Collection.

    def is_task_file(self, path: Path) -> bool:
        return any(path.is_relative_to(root) and is_task_file(path, root) if root.is_dir() else path == root
                   for root in self.roots)

    def load(self, path: Path) -> Task:
        task = task_from_file(path)
        if task.id in self.tasks and self.tasks[task.id].path != task.path:
            raise TaskError(f"{path}: task id {task.id} is already taken by {self.tasks[task.id].path}")
        self.tasks[task.id] = task
        for mark in task.marks:
            self.config.addinivalue_line("markers", f"{mark}: tasks whose file lists {mark!r} in MARKS")
        return task

    @pytest.hookimpl(tryfirst=True)  # first, so that ids read "level3/1_MLP-eager"
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        task_file = metafunc.definition.getparent(TaskFile)
        if task_file is None:
            return
        task = task_file.task
        if "pike_solution" in metafunc.fixturenames:
            from pike_bench import solutions

            kept = solutions.for_task(self.settings.solutions_dir, task.id)
            metafunc.parametrize("pike_solution", [(task, s) for s in kept], ids=[f"{task.id}-{s.name}" for s in kept])
            return
        metafunc.parametrize("pike_task", [task], ids=[task.id])

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        # A task's optimize test runs with --pike-optimize only, its other tests only without;
        # a solution test with no kept solution is left out rather than skipped. A broken
        # task file is reported either way; tests that are not a task's are not touched.
        optimize = self.settings.optimize
        keep = [i for i in items if not _task_test(i) or isinstance(i, BrokenTaskFile) or
                (bool(i.get_closest_marker("pike_optimize")) == optimize and not _no_solution(i))]
        if len(keep) < len(items):
            config.hook.pytest_deselected(items=[i for i in items if i not in keep])
            items[:] = keep
        _in_task_order(items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if (self.asked or self.tasks or self.errors) and self.config.get_verbosity() >= 0:
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter:
                reporter.write_line(self.header())

    def header(self) -> str:
        size = self.settings.size or ("full" if self.device.startswith("cuda") else "small")
        from pike_bench.policy import check_policy

        check = check_policy(self.settings.check)
        return (
            f"pike-bench: {len(self.tasks)} tasks, device {self.device}, size {size}, "
            f"mode {check.mode or self.settings.mode}, check {check.name}"
            + (f", {len(self.errors)} task files with errors" if self.errors else "")
        )

    # What the tests use, made when first needed.

    @property
    def device(self) -> str:
        if self._device is None:
            try:
                self._device = self.settings.resolve_device()
            except SettingsError as exc:
                raise pytest.UsageError(str(exc)) from None
        return self._device

    @property
    def sandbox(self):
        """Chosen once; where there is none, said once, in one line, even under -q (it is
        about the user's secrets)."""
        if self._sandbox is None:
            try:
                self._sandbox = self.settings.choose_sandbox()
            except SettingsError as exc:
                raise pytest.UsageError(str(exc)) from None
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if self._sandbox.why_not and reporter:
                reporter.write_line("pike-bench: " + self.settings.no_sandbox_note(self._sandbox.why_not))
        return self._sandbox

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.asked:
            self.sandbox  # noqa: B018  (`on` without one is refused before anything runs)

    def evaluator(self):
        if self._evaluator is None:
            self.sandbox  # noqa: B018  (chosen, and said where there is none, before the first worker)
            self._evaluator = self.settings.evaluator(self.device)
        return self._evaluator

    def optimizer(self):
        if self._optimizer is None:
            from pike_bench.optimize import choose_llm
            from pike_bench.progress import for_pytest

            display = for_pytest(self.config)
            say = display.line  # notes are shown under -q too
            options = self.settings.optimize_options()
            if choose_llm(options) == "offline":
                say("pike-bench: no ANTHROPIC_API_KEY, so the offline proposer writes the candidates "
                    "(known-good rewrites, no LLM, no cost)")
            if self.settings.ray or self.settings.devices:
                try:
                    self._pool = self.settings.optimizing_evaluator(self.device, say)
                except SettingsError as exc:
                    raise pytest.UsageError(str(exc)) from None
            self._optimizer = self.settings.optimizer(self._pool or self.evaluator(), display)
        return self._optimizer

    def optimize(self, task: Task, items: list[pytest.Item] = ()):
        from pike_bench.llm.base import ProposerError

        try:
            if self.settings.in_flight > 1:
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

            self._in_flight = InFlight(self.optimizer(), self.settings.in_flight)
            self._in_flight.start(_optimize_tasks(items))
        return self._in_flight

    def gate(self, task: Task, solution):
        verdict = self.settings.gate(self.evaluator(), task, solution)
        self.gated.append(verdict)
        return verdict

    def baseline_run(self, task: Task):
        if task.id not in self.runs:
            from pike_bench.suite import measure_baselines

            self.runs[task.id] = measure_baselines(self.evaluator(), task, self.settings.seed)
        return self.runs[task.id]

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._in_flight is not None:
            self._in_flight.close()  # stops the lanes still running, and their twin workers
        for evaluator in (self._evaluator, self._pool):
            if evaluator is not None:
                evaluator.close()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.runs and not self.errors and not self.optimized and not self.gated:
            return
        from pike_bench.report import baseline_table, optimize_table

        terminalreporter.section("pike-bench")
        if self.runs:
            terminalreporter.write_line(baseline_table(list(self.runs.values())))
        if self.optimized:
            terminalreporter.write_line(optimize_table(list(self.optimized.values())))
            terminalreporter.write_line(f"leaderboard: {self.settings.publish()}")
        for verdict in self.gated:
            terminalreporter.write_line(("gate ok: " if verdict.passed else "gate FAILED: ") + verdict.message)
        for error in self.errors:
            terminalreporter.write_line(f"task error: {error}")


def _collect_also(config: pytest.Config, roots: list[Path]) -> None:
    """Add the task folders to what pytest collects, unless a path given already holds them."""
    given = [Path(str(arg).split("::")[0]).resolve() for arg in config.args]
    for root in roots:
        if not any(root == path or path in root.parents for path in given):
            config.args.append(str(root))


def _task_test(item: pytest.Item) -> bool:
    return item.getparent(TaskFile) is not None


def _no_solution(item: pytest.Item) -> bool:
    """A solution test with nothing to gate (no kept solutions): pytest's empty parameter set."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return "pike_solution" in getattr(item, "fixturenames", ()) and not isinstance(params.get("pike_solution"), tuple)


def _optimize_tasks(items: list[pytest.Item]) -> list[Task]:
    """The tasks of the selected optimize items, in their order."""
    params = (getattr(getattr(item, "callspec", None), "params", {}) for item in items
              if "pike_optimize" in getattr(item, "fixturenames", ()))
    return [p["pike_task"] for p in params if isinstance(p.get("pike_task"), Task)]


def _plugin(request: pytest.FixtureRequest) -> PikePlugin:
    return request.config.stash[SESSION]


@pytest.fixture
def pike_settings(request: pytest.FixtureRequest) -> Settings:
    """The run's :class:`~pike_bench.options.Settings` (from the --pike-* options)."""
    return _plugin(request).settings


@pytest.fixture
def pike_baselines(request: pytest.FixtureRequest, pike_task: Task):
    """Eager, compile and graph of the task, checked and timed together (once per task)."""
    return _plugin(request).baseline_run(pike_task)


@pytest.fixture
def pike_optimize(request: pytest.FixtureRequest, pike_task: Task):
    """Runs the optimizer on the task (once) and returns its TaskOutcome."""
    return _plugin(request).optimize(pike_task, request.session.items)


@pytest.fixture
def pike_gate(request: pytest.FixtureRequest, pike_solution):
    """Re-verifies and re-times a kept solution against eager; returns its Verdict."""
    task, solution = pike_solution
    return _plugin(request).gate(task, solution)


@pytest.fixture
def pike_evaluator(request: pytest.FixtureRequest):
    """The session's :class:`~pike_bench.evaluate.Evaluator` (one worker for the device)."""
    return _plugin(request).evaluator()


__all__ = ["TaskFile", "pike_settings", "pike_baselines", "pike_evaluator", "pike_optimize", "pike_gate"]
