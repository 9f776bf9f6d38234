"""Root conftest of this repository (not in the wheel); the plugin itself comes from the
`pytest11` entry point (pike_bench.plugin), whose collector makes the task files tests.

Two test commands (README): the quick one, `-m "not slow"`, runs every framework test
but the slowest and a few representative tasks end to end; CI also runs `-m slow`, the
rest: every other task of the suites at its small size, the C++ builds, whole optimize
runs. Here a task's tests (the suite's and tests/test_task_suites.py's) are slow unless
the task is in QUICK_TASKS.
"""

import pytest

collect_ignore = ["benchmarks", "build"]

# One of each kind, each checked and timed in well under half a minute on 2 cores: an
# MLP, a CNN, attention, and a level-5 state-space model.
QUICK_TASKS = {"level3/1_MLP", "level3/4_LeNet5", "level3/43_MinGPTCausalAttention", "level5/5_s4"}


def pytest_configure(config: pytest.Config) -> None:
    # Here rather than in pyproject.toml: this file is also read when the suites are
    # collected from another folder (an editable install), where pyproject.toml is not.
    config.addinivalue_line("markers", "slow: left out of the quick test command (-m 'not slow'); CI runs them")


@pytest.hookimpl(tryfirst=True)  # marked before -m selects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        task = params.get("pike_task") or params.get("task")
        if getattr(task, "id", None) and task.id not in QUICK_TASKS:
            item.add_marker(pytest.mark.slow)
