"""The evaluator pool on a real local Ray cluster: two CPU actors stand for two GPUs.

One pool serves the whole file (starting Ray and the actors' workers is most of the
time). The test that kills an actor comes last: it leaves the pool one actor short.
"""

import asyncio
import json
import shutil
import sqlite3

import pytest

ray = pytest.importorskip("ray")

from pike_bench.evaluate import TimingOptions  # noqa: E402
from pike_bench.evaluate.ray_pool import RayEvaluatorPool  # noqa: E402
from pike_bench.optimize import Optimizer, OptimizeOptions  # noqa: E402
from pike_bench.tasks import task_from_file  # noqa: E402

from conftest import CANDIDATES, DATA  # noqa: E402

FAST = dict(trials=2, timing=TimingOptions(min_rounds=10, max_seconds=0.2), baselines=("eager",))
GOOD = (CANDIDATES / "good.py").read_text()
# Busy for a while as it is built, so that a test knows both actors are at work.
SLOW = "import time\n\ntime.sleep(1.5)\n" + GOOD


@pytest.fixture(scope="module")
def ray_pool():
    said = []
    with RayEvaluatorPool("local", cpu_actors=2, say=said.append, **FAST) as pool:
        pool.said = said
        yield pool
    assert not ray.is_initialized()  # the pool started this Ray, so it stopped it


@pytest.fixture(scope="module")
def tiny():
    return task_from_file(DATA / "level0" / "1_TinyMLP.py")


def test_two_candidates_at_once_run_on_two_actors_each_with_its_own_baselines(ray_pool, tiny):
    async def two():
        return await asyncio.gather(ray_pool.evaluate(tiny, GOOD), ray_pool.evaluate(tiny, GOOD + "\n# b\n"))

    results = asyncio.run(two())
    assert [r.status for r in results] == ["correct", "correct"]
    assert sorted(r.device for r in results) == sorted(r.device for r in ray_pool.evaluators)
    assert all(r.task_id == tiny.id and r.size == "small" for r in results)
    # Each candidate was timed in the same rounds as an eager baseline on its own actor.
    assert all(r.baselines["eager"].timing.rounds == r.timing.rounds for r in results)
    assert all("eager" in r.speedups for r in results)


def test_the_optimizer_runs_on_the_ray_pool_task_after_task(ray_pool, tmp_path):
    # Each task runs its own asyncio.run: the pool's queue must follow the new loop.
    tasks = [task_from_file(DATA / "level0" / name) for name in ("1_TinyMLP.py", "2_TinyConvBN.py")]
    store = tmp_path / "runs.sqlite"
    options = OptimizeOptions(budget_queries=2, llm="offline", store_path=store, solutions_dir=tmp_path / "solutions")
    optimizer = Optimizer(ray_pool, options, progress=lambda line: None)
    outcomes = [optimizer.optimize(task) for task in tasks]
    assert [o.queries for o in outcomes] == [2, 2]
    assert all(o.best is not None for o in outcomes)
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT c.task_id, e.result FROM evaluations e JOIN candidates c ON c.id = e.candidate_id")
        recorded = [(task_id, json.loads(result)["device"]) for task_id, result in rows]
    assert {task_id for task_id, _ in recorded} == {task.id for task in tasks}
    assert {device for _, device in recorded} <= {r.device for r in ray_pool.evaluators}


def test_the_task_text_travels_not_its_path(ray_pool, tmp_path):
    # A copy of the task that is gone from the disk before any actor takes it up: an actor
    # that read the driver's path would fail; one that got the text does not.
    copy = tmp_path / "level9" / "7_Copied.py"
    copy.parent.mkdir()
    shutil.copy(DATA / "level0" / "1_TinyMLP.py", copy)
    task = task_from_file(copy)
    tiny = task_from_file(DATA / "level0" / "1_TinyMLP.py")

    async def run():
        busy = [asyncio.ensure_future(ray_pool.evaluate(tiny, SLOW + f"\n# {i}\n")) for i in range(2)]
        copied = asyncio.ensure_future(ray_pool.evaluate(task, GOOD))
        await asyncio.sleep(0.2)  # the copy's text is read; it waits for a free actor
        copy.unlink()
        return await asyncio.gather(*busy, copied)

    results = asyncio.run(run())
    assert [r.status for r in results] == ["correct"] * 3
    assert results[-1].task_id == "level9/7_Copied"


def test_an_actor_killed_mid_run_is_taken_out_and_its_candidate_goes_to_the_other(ray_pool, tiny):
    doomed, survivor = ray_pool.evaluators

    async def run():
        pending = [asyncio.ensure_future(ray_pool.evaluate(tiny, SLOW + f"\n# kill {i}\n")) for i in range(2)]
        await asyncio.sleep(0.5)  # both actors are building their slow candidate
        ray.kill(doomed.actor)
        return await asyncio.gather(*pending)

    results = asyncio.run(run())
    assert [r.status for r in results] == ["correct", "correct"]
    assert [r.device for r in results] == [survivor.device] * 2
    assert len(ray_pool.said) == 1
    assert ray_pool.said[0].startswith(f"pike-bench: {doomed.device} taken out: its Ray actor died")
    assert ray_pool.device == f"{doomed.device},{survivor.device}"  # the run's name does not change
