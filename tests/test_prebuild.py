"""C++ extensions built on the CPU beside the worker, before the worker imports them."""

import asyncio
import json
import time

import pytest

from pike_bench.evaluate import Evaluator, TimingOptions
from pike_bench.evaluate.prebuild import Prebuilder
from pike_bench.optimize import Optimizer, OptimizeOptions
from pike_bench.tasks import task_from_file

from conftest import CANDIDATES, DATA

pytestmark = pytest.mark.slow  # C++ builds: about 2 minutes on 2 cores

FAST = dict(trials=2, timing=TimingOptions(min_rounds=10, max_seconds=0.2), baselines=("eager",))


@pytest.fixture
def extensions(tmp_path, monkeypatch):
    # The build process and the worker (started after this) share this cache, as they
    # share the user's default one outside the tests.
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "extensions"))
    return tmp_path / "extensions"


def cpp_candidate(name: str) -> str:
    return (DATA / "cpp" / "relu_cpp.py").read_text().replace('"pike_test_relu"', f'"{name}"')


def test_a_prebuilt_extension_is_only_loaded_by_the_worker(extensions):
    source = cpp_candidate("pike_prebuild_relu")
    builder = Prebuilder("cpu")
    assert builder.needed(source) and not builder.needed((CANDIDATES / "good.py").read_text())
    built = asyncio.run(builder.build(source))
    assert built.ok, built.message
    assert list((extensions / "pike_prebuild_relu").glob("*.so"))
    task = task_from_file(DATA / "level0" / "1_TinyMLP.py")
    with Evaluator("cpu", **FAST) as evaluator:
        evaluator.evaluate(task, (CANDIDATES / "good.py").read_text())  # the worker is up
        started = time.perf_counter()
        result = evaluator.evaluate(task, source)
        seconds = time.perf_counter() - started
    assert result.status == "correct" and result.languages == ["c++"]
    assert seconds < built.seconds / 2  # loaded, not compiled again


def test_a_failed_prebuild_leaves_the_verdict_to_the_worker(extensions):
    broken = (DATA / "cpp" / "compile_error.py").read_text()
    built = asyncio.run(Prebuilder("cpu").build(broken))
    assert not built.ok and "Error" in built.message
    with Evaluator("cpu", **FAST) as evaluator:
        result = evaluator.evaluate(task_from_file(DATA / "level0" / "1_TinyMLP.py"), broken)
    assert result.status == "build_error"  # the worker's verdict, with its compiler excerpt
    assert "error" in result.detail


def test_the_optimizer_builds_extension_candidates_before_evaluating_them(extensions, tmp_path):
    replies = tmp_path / "replies.jsonl"  # one recorded reply for the task's optimizer: the C++ candidate
    text = f"```python\n{cpp_candidate('pike_prebuild_opt')}```"
    replies.write_text(json.dumps({"task_id": "level0/1_TinyMLP", "role": "optimizer", "text": text}) + "\n")
    options = OptimizeOptions(strategy="pike-b-no-iba", budget_queries=1, llm="replay", replay_file=str(replies),
                              store_path=tmp_path / "runs.sqlite", solutions_dir=tmp_path / "solutions")
    with Evaluator("cpu", **FAST) as evaluator:
        optimizer = Optimizer(evaluator, options, progress=lambda line: None)
        outcome = optimizer.optimize(task_from_file(DATA / "level0" / "1_TinyMLP.py"))
    assert [b.ok for b in optimizer.prebuilder.done] == [True]
    assert outcome.best is not None and outcome.best.outcome.status == "correct"
