"""Kept solutions and regression gating, with the real evaluator on the CPU."""

import json
import shutil
import subprocess
import sys

import pytest

from pike_bench import solutions
from pike_bench.evaluate import Evaluator, TimingOptions
from pike_bench.tasks import task_from_file

from conftest import DATA

SOLUTIONS = DATA / "solutions"
pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def task():
    return task_from_file(DATA / "level0" / "6_SlowReference.py")


@pytest.fixture(scope="module")
def evaluator():
    with Evaluator("cpu", trials=2, timing=TimingOptions(min_rounds=20, max_seconds=1.0), baselines=("eager",)) as ev:
        yield ev


def keep(evaluator, task, tmp_path, name="fast"):
    return solutions.accept(evaluator, task, (SOLUTIONS / f"{name}.py").read_text(), name, {"by": "test"}, tmp_path)


def test_accept_records_where_and_how_fast(evaluator, task, tmp_path):
    kept = keep(evaluator, task, tmp_path)
    meta = json.loads((tmp_path / "level0" / "6_SlowReference" / "fast.json").read_text())
    assert meta["accepted"]["device"] == "cpu" and meta["accepted"]["languages"] == ["pytorch"]
    assert meta["baselines"][kept.accepted["device_name"]] == meta["accepted"]["speedups"]["eager"]["value"] > 2.0
    assert [s.name for s in solutions.for_task(tmp_path, task.id)] == ["fast"]
    solutions.remove(tmp_path, task.id, "fast")
    assert solutions.for_task(tmp_path, task.id) == []


def test_wrong_candidates_are_not_accepted(evaluator, task, tmp_path):
    with pytest.raises(ValueError, match="not accepted: incorrect"):
        keep(evaluator, task, tmp_path, "wrong")


def test_gate_passes_the_kept_solution_and_fails_a_slowed_and_a_wrong_copy(evaluator, task, tmp_path):
    kept = keep(evaluator, task, tmp_path)
    # A wide tolerance: CPU timings on a shared 2-core machine move; the slowed copy is ~20x off.
    assert solutions.gate(evaluator, task, kept, tolerance=0.5).passed
    slowed = solutions.Solution(**{**kept.__dict__, "source": (SOLUTIONS / "slowed.py").read_text()})
    verdict = solutions.gate(evaluator, task, slowed, tolerance=0.5)
    assert not verdict.passed and "regressed" in verdict.message and "recorded" in verdict.message
    wrong = solutions.Solution(**{**kept.__dict__, "source": (SOLUTIONS / "wrong.py").read_text()})
    verdict = solutions.gate(evaluator, task, wrong)
    assert not verdict.passed and "is incorrect" in verdict.message


def test_another_device_is_baselined_not_failed(evaluator, task, tmp_path):
    kept = keep(evaluator, task, tmp_path)
    kept.baselines = {"NVIDIA H200": 50.0}  # recorded elsewhere, far faster
    verdict = solutions.gate(evaluator, task, kept)
    assert verdict.passed and verdict.rebaselined and "first run on" in verdict.message


def test_pytest_gates_kept_solutions(pytester, evaluator, task, tmp_path):
    tasks = pytester.path / "tasks" / "level0"
    tasks.mkdir(parents=True)
    shutil.copy(DATA / "level0" / "6_SlowReference.py", tasks)
    kept_root = pytester.path / "solutions"
    good = keep(evaluator, task_from_file(tasks / "6_SlowReference.py"), kept_root)
    slowed = solutions.Solution(**{**good.__dict__, "name": "slowed", "source": (SOLUTIONS / "slowed.py").read_text()})
    solutions.save(kept_root, slowed)
    result = pytester.runpytest("-p", "no:cacheprovider", "--pike-tasks", "tasks", "--pike-device", "cpu",
                                "--pike-max-time", "1", "--pike-gate-tolerance", "0.5", "-k", "test_solution")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*level0/6_SlowReference/slowed regressed*"])


@pytest.mark.slow  # `pike accept` times every baseline in a new process
def test_pike_accept_and_remove_commands(tmp_path):
    base = [sys.executable, "-m", "pike_bench.cli"]
    run = subprocess.run(base + ["accept", str(SOLUTIONS / "fast.py"), "--task", str(DATA / "level0" / "6_SlowReference.py"),
                                 "--device", "cpu", "--solutions", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "kept" in run.stdout and "over eager" in run.stdout
    run = subprocess.run(base + ["remove", "--task", "level0/6_SlowReference", "--name", "manual",
                                 "--solutions", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0 and "removed level0/6_SlowReference/manual" in run.stdout
    run = subprocess.run(base + ["remove", "--task", "level0/6_SlowReference", "--name", "manual",
                                 "--solutions", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.startswith("pike: no solution 'manual'")
