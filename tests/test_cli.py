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


def test_forget_deletes_runs_so_that_the_same_command_starts_them_afresh(tmp_path):
    from pike_bench.evaluate.result import EvalResult
    from pike_bench.llm.base import Reply, Request
    from pike_bench.store import Store

    record = tmp_path / "runs.sqlite"
    with Store(record) as store:
        runs = {}
        for key, task in (("crowded", "level5/2_sd3"), ("fine", "level5/4_llama2")):
            run_id = runs[key] = store.start_run(key, {"task": task})
            request = Request(role="optimizer", system="", prompt="faster", task_id=task, slot="r0/s0")
            store.close_llm_call(store.open_llm_call(run_id, request, 0.0), Reply(text="```python\n```", model="m"))
            candidate = store.record_candidate(run_id, task, "source", parent_ids=[], island=0, round=0,
                                               agent="optimizer", slot="r0/s0", llm_call_id=None)
            store.record_evaluation(candidate, EvalResult(task, "build_error", "CUDA out of memory", "", "cuda", "H200",
                                                          "2.11", "eval", "full", 2, 0))
    missing = pike("forget", str(runs["crowded"]), "99", "--store", str(record))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"pike: no run 99 in {record}: nothing was deleted"
    done = pike("forget", str(runs["crowded"]), "--store", str(record))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (f"forgot run {runs['crowded']} (level5/2_sd3): 1 query, 1 candidate;"
                                   " the same command starts it afresh")
    with Store(record) as store:
        assert store.run(runs["crowded"]) is None and store.run(runs["fine"]) is not None
        assert store.recorded_evaluation(runs["fine"], "level5/4_llama2", "source")["status"] == "build_error"
        assert not store.llm_calls(runs["crowded"], "level5/2_sd3")
        again = store.start_run("crowded", {"task": "level5/2_sd3"})  # the same command: a new run, from nothing
        assert store.run(again)["starts"] == 1 and store.recorded_evaluation(again, "level5/2_sd3", "source") is None
