"""The `pike` command, run as a user runs it."""

import json
import subprocess
import sys

from conftest import CANDIDATES, DATA

TINY = str(DATA / "level0" / "1_TinyMLP.py")


def pike(*args):
    command = [sys.executable, "-m", "pike_bench.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_eval_json_for_a_correct_candidate():
    run = pike("eval", TINY, str(CANDIDATES / "good.py"), "--device", "cpu", "--json", "--max-time", "0.3")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["status"] == "correct" and result["task_id"] == "level0/1_TinyMLP"
    assert set(result["speedups"]) == {"eager", "compile"}
    assert result["timing"]["rounds"] == result["baselines"]["eager"]["timing"]["rounds"]


def test_eval_text_for_an_incorrect_candidate_exits_1():
    run = pike("eval", TINY, str(CANDIDATES / "wrong_shape.py"), "--device", "cpu", "--no-baselines")
    assert run.returncode == 1
    assert "level0/1_TinyMLP: incorrect: output has shape (4, 5), expected (4, 4)" in run.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    run = pike("eval", "level3/NoSuchTask", str(CANDIDATES / "good.py"))
    assert run.returncode == 2
    assert run.stderr.strip() == "pike: level3/NoSuchTask: no such task; `pike tasks` lists them"
    run = pike("eval", TINY, str(tmp_path / "missing.py"))
    assert run.returncode == 2 and run.stderr.startswith("pike: cannot read")


def test_tasks_lists_the_builtin_suite():
    run = pike("tasks")
    assert run.returncode == 0
    assert "level3/1_MLP" in run.stdout and "pike" in run.stdout
