"""The pytest plugin: options, one test parameter per task, fixtures, the summary table.

Registered through the ``pytest11`` entry point. The work is done by the library
(:mod:`pike_bench.tasks`, :mod:`pike_bench.evaluate`, :mod:`pike_bench.suite`);
this module only connects it to pytest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pike_bench.baselines import BASELINES, COMPILE_MODES
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
    group.addoption("--pike-trials", type=int, default=5, metavar="N",
                    help="Hypothesis input sets checked per candidate (default 5)")
    group.addoption("--pike-seed", type=int, default=None, metavar="SEED",
                    help="Hypothesis seed for the input sets (default: a fresh one each run, printed on failure)")
    group.addoption("--pike-timeout", type=float, default=300.0, metavar="SECONDS",
                    help="longest a worker may stay silent in one step (build, one input set, timing)")
    group.addoption("--pike-max-time", type=float, default=20.0, metavar="SECONDS",
                    help="time cap for the interleaved timing rounds of one task")
    group.addoption("--pike-no-l2-flush", action="store_true", default=False,
                    help="do not flush the GPU's L2 cache before each timed call")
    group.addoption("--pike-compile-mode", choices=COMPILE_MODES, default="default",
                    help="torch.compile mode of the compile baseline")
    group.addoption("--pike-optimize", action="store_true", default=False,
                    help="let LLM agents optimize the selected tasks (not available yet)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pike: a task of PIKE's filtered level-3 set")
    if config.getoption("--pike-optimize"):
        raise pytest.UsageError(
            "--pike-optimize: the optimizer is not part of this version of pike-bench yet; "
            "run without it to check and time the tasks"
        )
    if config.getoption("--pike-trials") < 1:
        raise pytest.UsageError("--pike-trials must be at least 1")
    plugin = PikePlugin(config)
    config.pluginmanager.register(plugin, "pike-session")


class PikePlugin:
    def __init__(self, config: pytest.Config):
        self.config = config
        roots = [Path(p) for p in config.getoption("--pike-tasks")]
        try:
            self.tasks, self.errors = discover_tasks(roots or None)
        except TaskError as exc:
            raise pytest.UsageError(f"--pike-tasks: {exc}") from None
        for mark in sorted({m for task in self.tasks for m in task.marks}):
            config.addinivalue_line("markers", f"{mark}: tasks whose file lists {mark!r} in MARKS")
        from pike_bench.evaluate import resolve_device

        try:
            self.device = resolve_device(config.getoption("--pike-device"))
        except ValueError as exc:
            raise pytest.UsageError(f"--pike-device {exc}") from None
        self._evaluator = None
        self.runs: dict[str, object] = {}

    def pytest_report_header(self, config: pytest.Config) -> str:
        size = config.getoption("--pike-size") or ("full" if self.device.startswith("cuda") else "small")
        return (
            f"pike-bench: {len(self.tasks)} tasks, device {self.device}, size {size}, "
            f"mode {config.getoption('--pike-mode')}"
            + (f", {len(self.errors)} task files with errors" if self.errors else "")
        )

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
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
            from pike_bench.evaluate import Evaluator, TimingOptions

            option = self.config.getoption
            self._evaluator = Evaluator(
                self.device,
                size=option("--pike-size"),
                mode=option("--pike-mode"),
                trials=option("--pike-trials"),
                timeout=option("--pike-timeout"),
                timing=TimingOptions(max_seconds=option("--pike-max-time"), l2_flush=not option("--pike-no-l2-flush")),
                compile_mode=option("--pike-compile-mode"),
            )
        return self._evaluator

    def baseline_run(self, task: Task):
        if task.id not in self.runs:
            from pike_bench.suite import measure_baselines

            self.runs[task.id] = measure_baselines(self.evaluator(), task, self.config.getoption("--pike-seed"))
        return self.runs[task.id]

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._evaluator is not None:
            self._evaluator.close()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.runs and not self.errors:
            return
        from pike_bench.report import baseline_table

        terminalreporter.section("pike-bench")
        if self.runs:
            terminalreporter.write_line(baseline_table(list(self.runs.values())))
        for error in self.errors:
            terminalreporter.write_line(f"task error: {error}")


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
def pike_evaluator(request: pytest.FixtureRequest):
    """The session's :class:`~pike_bench.evaluate.Evaluator` (one worker for the device)."""
    return request.config.pluginmanager.get_plugin("pike-session").evaluator()


__all__ = ["BASELINES", "pike_task", "pike_baselines", "pike_evaluator"]
