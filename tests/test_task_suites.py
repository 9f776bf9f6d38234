"""Every task of the built-in suites imports, has its three names, runs at its small
size and gives the same output for the same seed (run in this process: task files
are the trusted references; candidates never run here)."""

import pytest
import torch
from torch.utils._pytree import tree_flatten

from pike_bench.inputs import InputDraw, make_inputs
from pike_bench.tasks import discover_tasks, sized_module

TASKS, ERRORS = discover_tasks()


def test_suites_are_complete():
    assert ERRORS == []
    levels = [task.level for task in TASKS]
    assert (levels.count("level3"), levels.count("level5")) == (50, 14)
    assert sum("pike" in task.marks for task in TASKS) == 30


def small_output(task, seed):
    module = sized_module(task, "small")
    torch.manual_seed(0)
    model = module.Model(*module.get_init_inputs()).eval()
    with torch.no_grad():
        return model(*make_inputs(module, InputDraw(seed)))


@pytest.mark.parametrize("task", TASKS, ids=[task.id for task in TASKS])
def test_task_runs_small_and_is_deterministic(task):
    assert task.small, f"{task.id} declares no SMALL size for CPU runs"
    first, second = small_output(task, 1), small_output(task, 1)
    for a, b in zip(tree_flatten(first)[0], tree_flatten(second)[0]):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), f"{task.id}: same seed, different output"
            if a.is_floating_point():
                assert torch.isfinite(a).all(), f"{task.id}: non-finite output at small size"
