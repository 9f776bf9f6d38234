"""The plugin through pytest's own pytester: ids, selection, errors, options, the summary."""

import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DATA

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["pytester"]


@pytest.fixture
def suite(pytester):
    """A project with a folder of tasks: two tasks, one broken file."""
    tasks = pytester.path / "tasks" / "level0"
    tasks.mkdir(parents=True)
    shutil.copy(DATA / "level0" / "1_TinyMLP.py", tasks)
    shutil.copy(DATA / "level0" / "3_Embedding.py", tasks)
    (tasks / "9_Broken.py").write_text("import torch\nclass Model(torch.nn.Module):\n    pass\n")
    return pytester


COMMON = ["-p", "no:cacheprovider", "--pike-tasks", "tasks", "--pike-device", "cpu", "--pike-max-time", "0.3"]


def test_ids_follow_task_ids_and_k_selects(suite):
    result = suite.runpytest("--collect-only", "-q", *COMMON, "-k", "Tiny")
    result.stdout.fnmatch_lines(["*test_baseline?level0/1_TinyMLP-eager?", "*test_baseline?level0/1_TinyMLP-compile?"])
    assert "Embedding" not in result.stdout.str()


def test_suite_checks_and_times_tasks_and_reports_broken_files(suite):
    json_path = suite.path / "bench.json"
    result = suite.runpytest(*COMMON, f"--benchmark-json={json_path}")
    result.assert_outcomes(passed=4, skipped=2, failed=1)
    out = result.stdout.str()
    assert "9_Broken.py: missing get_inputs, get_init_inputs" in out
    assert "Traceback" not in out
    result.stdout.fnmatch_lines(["*pike-bench*", "*| task*eager ms*compile ms*status*", "*level0/1_TinyMLP*correct*"])
    benchmarks = {b["name"]: b for b in json.loads(json_path.read_text())["benchmarks"]}
    eager = benchmarks["test_baseline[level0/1_TinyMLP-eager]"]
    compiled = benchmarks["test_baseline[level0/1_TinyMLP-compile]"]
    assert eager["extra_info"]["device"] == "cpu" and eager["group"] == "level0/1_TinyMLP"
    assert eager["stats"]["rounds"] == compiled["stats"]["rounds"] >= 10
    assert compiled["extra_info"]["speedup_over_eager"] > 0


def test_optimize_end_to_end_with_the_offline_proposer_on_two_small_tasks(suite):
    result = suite.runpytest(*COMMON, "--pike-optimize", "--pike-budget", "3", "--pike-llm", "offline",
                             "--pike-store", "runs.sqlite", "--pike-solutions", "solutions")
    result.assert_outcomes(passed=2, failed=1)  # the broken task file is still reported
    out = result.stdout.str()
    assert "offline proposer" in out
    result.stdout.fnmatch_lines(["*level0/1_TinyMLP: done in * 3 queries*", "*| task*best over eager*queries*"])
    assert re.search(r"\| level0/1_TinyMLP +\| [\d.]+x +\| [\d.]+x +\| - +\| +3 \| +0 \| \$0\.00", out)
    best = float(re.search(r"\| level0/1_TinyMLP +\| ([\d.]+)x", out).group(1))
    assert (suite.path / "solutions" / "level0" / "1_TinyMLP" / "best.py").exists() == (best > 1.0)
    assert "leaderboard: leaderboard/leaderboard.html" in out  # written next to the record
    assert "test_baseline" not in out  # optimizing replaces the baseline tests


def test_replay_without_a_file_is_a_usage_error(suite):
    result = suite.runpytest(*COMMON, "--pike-optimize", "--pike-llm", "replay")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pike-llm replay needs --pike-replay FILE*"])


def test_bad_options_are_one_line_usage_errors(suite):
    result = suite.runpytest("-p", "no:cacheprovider", "--pike-tasks", "nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pike-tasks: *nowhere: no such file or folder of tasks*"])
    result = suite.runpytest("-p", "no:cacheprovider", "--pike-tasks", "tasks", "--pike-device", "tpu")
    result.stderr.fnmatch_lines(["*--pike-device tpu: not a device; use cpu, cuda or cuda:N*"])
    result = suite.runpytest(*COMMON, "--pike-baselines", "eager,compiled")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pike-baselines compiled: not a baseline; choose from eager, compile, graph*"])
    result = suite.runpytest(*COMMON, "--pike-ray-cpus", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pike-ray-cpus needs --pike-ray auto|ADDRESS|local*"])
    result = suite.runpytest(*COMMON, "--pike-ray", "local", "--pike-devices", "cpu,cpu")
    result.stderr.fnmatch_lines(["*--pike-ray and --pike-devices exclude each other*"])


def test_baselines_left_out_are_skipped_and_not_timed(suite):
    result = suite.runpytest(*COMMON, "-k", "TinyMLP and test_baseline", "--pike-baselines", "eager", "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*compile is not in --pike-baselines", "*graph is not in --pike-baselines"])
    result.stdout.fnmatch_lines(["| level0/1_TinyMLP *| - *| - *| - *| - *| correct *|"])  # nothing but eager timed


def test_marks_from_task_files_select_with_m(suite):
    tiny = suite.path / "tasks" / "level0" / "1_TinyMLP.py"
    tiny.write_text(tiny.read_text() + '\nMARKS = ["pike"]\n')
    result = suite.runpytest("--collect-only", "-q", *COMMON, "-m", "pike")
    result.stdout.fnmatch_lines(["*3/11 tests collected (8 deselected)*"])  # optimize and solution tests are left out too


def test_a_task_folder_and_the_builtin_suites_are_collected_from_any_folder(pytester, monkeypatch):
    # No test module and no testpaths here: the plugin's collector finds the tasks itself.
    (pytester.path / "elsewhere" / "level0").mkdir(parents=True)
    shutil.copy(DATA / "level0" / "1_TinyMLP.py", pytester.path / "elsewhere" / "level0")
    (pytester.path / "here").mkdir()
    monkeypatch.chdir(pytester.path / "here")
    given = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "--pike-tasks", "../elsewhere")
    given.stdout.fnmatch_lines(["*1_TinyMLP.py::test_baseline?level0/1_TinyMLP-eager?", "3/5 tests collected*"])
    builtin = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "--pike-device", "cpu",
                                 "-k", "level3 and 1_MLP")
    builtin.stdout.fnmatch_lines(["*level3/1_MLP.py::test_baseline?level3/1_MLP-eager?",
                                  "*level3/1_MLP.py::test_baseline?level3/1_MLP-graph?", "3/* tests collected*"])
    unasked = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "-k", "level3")
    assert unasked.ret == pytest.ExitCode.NO_TESTS_COLLECTED  # the built-in suites only when a --pike-* option asks


def test_tasks_run_in_their_numbers_order_and_other_tests_keep_their_places(suite):
    for name in ("10_TinyMLPTen.py", "2_TinyMLPTwo.py"):
        shutil.copy(DATA / "level0" / "1_TinyMLP.py", suite.path / "tasks" / "level0" / name)
    (suite.path / "tasks" / "test_plain.py").write_text("def test_plain():\n    pass\n")
    result = suite.runpytest("--collect-only", "-q", *COMMON, "-k", "eager or plain or Broken")
    lines = [line for line in result.stdout.lines if "::" in line]
    assert [line.split("::")[0].rsplit("/", 1)[-1] for line in lines] == [
        "1_TinyMLP.py", "2_TinyMLPTwo.py", "3_Embedding.py", "9_Broken.py", "10_TinyMLPTen.py", "test_plain.py"]


def test_the_repository_root_collects_each_task_once(pytester):
    # Plain `pytest` in the root collects the suites through testpaths; the task files
    # must not also be imported as test modules.
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "-k", "level3 and 1_MLP"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    collected = [line for line in run.stdout.splitlines() if "::" in line]
    assert collected == [f"kernelbench_tasks/level3/1_MLP.py::test_baseline[level3/1_MLP-{b}]"
                         for b in ("eager", "compile", "graph")], run.stdout + run.stderr


def test_an_unrelated_run_does_not_pay_for_the_plugin(pytester):
    # Installed, the plugin is loaded into every pytest run: with no --pike-* option and
    # no task collected it must not import torch, discover tasks or start anything.
    pytester.makepyfile("""
        import sys

        def test_one():
            assert not {"torch", "pike_bench.task_tests", "pike_bench.evaluate"} & set(sys.modules)
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "pike-bench:" not in result.stdout.str()  # no header, no summary (the plugins line names it)
    # And in time: with the plugin and without it, in turns (the machine may be busy), medians apart.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(5):
        for plugin in (True, False):
            start = time.perf_counter()
            subprocess.run(command + ([] if plugin else ["-p", "no:pike"]), cwd=pytester.path, check=True,
                           capture_output=True, timeout=120)
            times[plugin].append(time.perf_counter() - start)
    assert statistics.median(times[True]) - statistics.median(times[False]) < 0.3, times
