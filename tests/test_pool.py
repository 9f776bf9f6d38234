"""Evaluations spread over several workers (two CPU workers stand for two GPUs here)."""

import asyncio
import time

import pytest
import torch

from pike_bench.evaluate import Evaluator, TimingOptions
from pike_bench.evaluate.pool import EvaluatorPool, parse_devices
from pike_bench.optimize import Optimizer, OptimizeOptions
from pike_bench.tasks import task_from_file

from conftest import CANDIDATES, DATA

FAST = dict(trials=2, timing=TimingOptions(min_rounds=10, max_seconds=0.2), baselines=("eager",))


def test_device_lists():
    assert parse_devices("0,1") == ["cuda:0", "cuda:1"]
    assert parse_devices("cpu,cpu") == ["cpu", "cpu"]
    count = torch.cuda.device_count()
    assert parse_devices("all") == ([f"cuda:{i}" for i in range(count)] if count else ["cpu"])


def test_candidates_go_to_the_next_free_worker_and_each_is_timed_with_its_own_baselines():
    task = task_from_file(DATA / "level0" / "1_TinyMLP.py")
    slow = (CANDIDATES / "good.py").read_text().replace(
        "return self.fc2(torch.relu(self.fc1(x)))", "time.sleep(0.3)\n        return self.fc2(torch.relu(self.fc1(x)))"
    ).replace("import torch\n", "import time\n\nimport torch\n", 1)
    with EvaluatorPool.on_devices(["cpu", "cpu"], **FAST) as pool:
        asyncio.run(pool.evaluate(task, (CANDIDATES / "good.py").read_text()))  # both workers started and warm
        asyncio.run(pool.evaluate(task, (CANDIDATES / "good.py").read_text()))

        async def four():
            return await asyncio.gather(*(pool.evaluate(task, slow + f"\n# {i}\n") for i in range(4)))

        started = time.perf_counter()
        results = asyncio.run(four())
        elapsed = time.perf_counter() - started
    assert [r.status for r in results] == ["correct"] * 4
    assert all(r.baselines["eager"].timing.rounds == r.timing.rounds for r in results)
    serial = sum(r.seconds for r in results)
    assert elapsed < 0.75 * serial  # two workers at once, not one after the other


def test_a_pool_serves_one_event_loop_after_another():
    # The optimizer runs each task in its own asyncio.run; a queue left bound to the
    # first loop failed the second task on the GPU ("bound to a different event loop").
    task = task_from_file(DATA / "level0" / "1_TinyMLP.py")
    good = (CANDIDATES / "good.py").read_text()

    async def two_at_once(pool):  # one worker, two candidates: the second waits on the queue
        return await asyncio.gather(pool.evaluate(task, good), pool.evaluate(task, good + "\n# b\n"))

    with EvaluatorPool.on_devices(["cpu"], **FAST) as pool:
        for _ in range(2):
            results = asyncio.run(two_at_once(pool))
            assert [r.status for r in results] == ["correct", "correct"], [(r.status, r.reason) for r in results]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA, where cuda:0 cannot work")
def test_a_device_that_cannot_run_the_reference_is_taken_out_and_the_others_go_on():
    task = task_from_file(DATA / "level0" / "1_TinyMLP.py")
    # On this machine "cuda:0" is a real broken device: its worker cannot even build the reference.
    broken, healthy = Evaluator("cuda:0", **FAST), Evaluator("cpu", **FAST)
    said = []

    async def three():
        return [await pool.evaluate(task, (CANDIDATES / "good.py").read_text()) for _ in range(3)]

    with EvaluatorPool([broken, healthy], max_crashes=1, say=said.append) as pool:
        results = asyncio.run(three())
    assert [r.device for r in results] == ["cpu"] * 3 and [r.status for r in results] == ["correct"] * 3
    assert len(said) == 1 and said[0].startswith("pike-bench: cuda:0 taken out")


@pytest.mark.slow  # a whole optimize run on two workers
def test_the_optimizer_runs_on_a_pool(tmp_path):
    task = task_from_file(DATA / "level0" / "1_TinyMLP.py")
    options = OptimizeOptions(budget_queries=4, llm="offline", store_path=tmp_path / "runs.sqlite",
                              solutions_dir=tmp_path / "solutions")
    with EvaluatorPool.on_devices(["cpu", "cpu"], **FAST) as pool:
        outcome = Optimizer(pool, options, progress=lambda line: None).optimize(task)
    assert outcome.queries == 4 and outcome.best is not None


def test_making_the_plain_cuda_device_or_the_cpu_current_changes_nothing():
    # A one-GPU run's jobs name "cuda", with no index: torch.cuda.set_device refuses that
    # ("Expected a torch.device with a specified index"), and it already is the current
    # device, so no call may be made; with the call, every one-GPU evaluation would fail.
    from pike_bench.evaluate.job import make_current

    make_current("cuda")
    make_current("cpu")
