"""The wheel as a user meets it: built, installed in a fresh virtual environment, and used
from a folder that has nothing of this repository in it."""

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import DATA

pytestmark = pytest.mark.slow  # builds a wheel and an environment with torch: minutes

ROOT = Path(__file__).resolve().parent.parent
# Without this repository on the path: what runs is what the wheel installed.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}


@pytest.fixture(scope="module")
def python(tmp_path_factory) -> Path:
    """The Python of a fresh environment with torch (this one's version) and the wheel."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(root / "dist"), str(ROOT)], check=True, timeout=600)
    wheel = next((root / "dist").glob("pike_bench-*.whl"))
    made = subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], capture_output=True, text=True,
                          timeout=300)
    if made.returncode:  # Debian without python3-venv: say so rather than fail on the machine's account
        pytest.skip(f"python3 -m venv cannot make an environment here: {made.stderr.strip().splitlines()[-1]}")
    pip = [str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run(pip + [f"torch=={torch.__version__.split('+')[0]}"], check=True, timeout=1200, env=ENV)
    subprocess.run(pip + [str(wheel)], check=True, timeout=1200, env=ENV)
    return root / "venv" / "bin" / "python"


def pytest_in(python: Path, folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=folder, env=ENV,
                          capture_output=True, text=True, timeout=900)


def test_a_folder_of_one_task_passes_from_an_empty_folder(python, tmp_path):
    (tmp_path / "tasks" / "level0").mkdir(parents=True)
    shutil.copy(DATA / "level0" / "1_TinyMLP.py", tmp_path / "tasks" / "level0")
    (tmp_path / "here").mkdir()
    run = pytest_in(python, tmp_path / "here", "--pike-tasks", "../tasks", "--pike-device", "cpu",
                    "--pike-max-time", "0.2")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert "2 passed, 1 skipped" in run.stdout  # eager and compile; graph needs CUDA
    assert str(ROOT) not in run.stdout  # nothing of the repository was used


def test_the_builtin_suites_are_in_the_wheel(python, tmp_path):
    run = pytest_in(python, tmp_path, "--collect-only", "-q", "--pike-device", "cpu", "-k", "level3 and 1_MLP")
    assert run.returncode == 0, run.stdout + run.stderr
    assert [line for line in run.stdout.splitlines() if "::" in line] == [
        f"level3/1_MLP.py::test_baseline[level3/1_MLP-{b}]" for b in ("eager", "compile", "graph")]
    located = subprocess.run([str(python), "-c", "import pike_bench.tasks as t; print(t.BUILTIN_ROOT)"],
                             env=ENV, capture_output=True, text=True, cwd=tmp_path)
    assert "site-packages" in located.stdout  # the wheel's copy, not this repository's


def test_an_unrelated_project_does_not_pay_for_the_plugin(python, tmp_path):
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert True\n")
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(5):
        for plugin in (True, False):
            start = time.perf_counter()
            run = pytest_in(python, tmp_path, "-q", *([] if plugin else ["-p", "no:pike"]))
            times[plugin].append(time.perf_counter() - start)
            assert run.returncode == 0, run.stdout + run.stderr
    assert statistics.median(times[True]) - statistics.median(times[False]) < 0.3, times
