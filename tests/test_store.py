"""The run store: what is recorded reads back, and an interrupted run resumes without paying twice."""

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from pike_bench.evaluate.result import (
    BUILD_ERROR,
    CORRECT,
    INCORRECT,
    RUNTIME_ERROR,
    SUSPICIOUS,
    TIMEOUT,
    BuildCost,
    ContestantResult,
    EvalResult,
    Speedup,
    Timing,
)
from pike_bench.llm.base import Reply, Request
from pike_bench.store import SCHEMA_VERSION, Store, StoreError

TASK = "level0/1_TinyMLP"
ROOT = Path(__file__).resolve().parent.parent


# -- values (module level and cheap: the killed child imports them too) ----------------


def request_for(slot: str, **changes) -> Request:
    asked = Request(role="optimizer", system="You write fast kernels.", prompt=f"Make it faster ({slot}).",
                    model="claude-test", task_id=TASK, slot=slot)
    return replace(asked, **changes)


def reply_for(slot: str, dollars: float = 0.25) -> Reply:
    return Reply(text=f"```python\n# candidate from {slot}\n```", model="claude-test-2026", input_tokens=1200,
                 output_tokens=800, dollars=dollars, seconds=3.5, meta={"request_id": f"req-{slot}", "stop": "end_turn"})


def timing(ms: float) -> Timing:
    return Timing(times_ms=[ms] * 3, median_ms=ms, mean_ms=ms, stdev_ms=0.0, min_ms=ms, rounds=3)


def eval_result(status: str, ms: float | None = None, eager: float | None = None, reason: str = "") -> EvalResult:
    """A real EvalResult as the evaluator builds it: the candidate's timing, eager's, and the speedup."""
    baselines, speedups = {}, {}
    if eager is not None:
        baselines["eager"] = ContestantResult("eager", CORRECT, timing=timing(ms * eager))
        speedups["eager"] = Speedup(eager, eager * 0.99, eager * 1.01)
        speedups["compile"] = Speedup(eager / 2, eager / 2 * 0.98, eager / 2 * 1.02)
    return EvalResult(task_id=TASK, status=status, reason=reason, detail=f"detail of {status}", device="cpu",
                      device_name="cpu (x86_64)", torch_version="2.13.0+cpu", mode="eval", size="small", trials=5,
                      hypothesis_seed=7, timing=timing(ms) if ms is not None else None, languages=["pytorch"],
                      baselines=baselines, speedups=speedups, seconds=1.25)


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "runs.sqlite"


def without_id(reply):
    """A replayed reply names its recorded call (meta llm_call_id); the rest is as recorded."""
    if reply is None:
        return None
    assert isinstance(reply.meta.pop("llm_call_id"), int)
    return reply


def record_call(store: Store, run_id: int, slot: str, dollars: float = 0.25) -> int:
    """A call as the optimizer records one: written down before it is sent, then answered."""
    call = store.open_llm_call(run_id, request_for(slot), reserved=dollars)
    store.close_llm_call(call, reply_for(slot, dollars))
    return call


def record_candidate(store: Store, run_id: int, source: str, slot: str, parents: tuple[int, ...] = (), call: int | None = None) -> int:
    return store.record_candidate(run_id, TASK, source, parent_ids=list(parents), island=0, round=1,
                                  agent="optimizer", slot=slot, llm_call_id=call)


# -- record and read back ---------------------------------------------------------------


def test_records_and_reads_back(path):
    with Store(path) as store:
        run_id = store.start_run("run-a", {"budget": 10, "model": "claude-test"})
        call = record_call(store, run_id, "r0/s0")
        assert without_id(store.recorded_reply(run_id, TASK, "r0/s0", request_for("r0/s0"))) == reply_for("r0/s0")

        [row] = store.llm_calls(run_id, TASK)
        assert (row["id"], row["slot"], row["role"], row["prompt"]) == (call, "r0/s0", "optimizer", "Make it faster (r0/s0).")
        assert (row["reply_model"], row["input_tokens"], row["dollars"]) == ("claude-test-2026", 1200, 0.25)
        assert row["meta"] == {"request_id": "req-r0/s0", "stop": "end_turn"}

        parent = record_candidate(store, run_id, "reference source", "r0/seed")
        child = record_candidate(store, run_id, "source one", "r0/s0", parents=(parent,), call=call)
        result = eval_result(CORRECT, ms=2.0, eager=1.5)
        store.record_evaluation(child, result)
        assert store.recorded_evaluation(run_id, TASK, "source one") == result.to_dict()
        assert store.recorded_evaluation(run_id, TASK, "never evaluated") is None

        rows = store.candidates(run_id, TASK)
        assert [r["id"] for r in rows] == [parent, child]
        assert rows[0]["status"] is None  # recorded, not evaluated yet
        assert rows[1]["parent_ids"] == [parent] and rows[1]["llm_call_id"] == call
        assert (rows[1]["status"], rows[1]["candidate_ms"], rows[1]["speedup_eager"]) == (CORRECT, 2.0, 1.5)
        assert rows[1]["speedup_compile"] == 0.75 and rows[1]["speedup_graph"] is None

        run = store.run(run_id)
        assert (run["key"], run["config"], run["starts"], run["finished_at"]) == ("run-a", {"budget": 10, "model": "claude-test"}, 1, None)
        store.finish_run(run_id)
        assert store.run(run_id)["finished_at"] is not None
    assert path.exists()


def test_the_file_is_in_wal_mode(path):
    with Store(path) as store:
        record_call(store, store.start_run("run-a", {}), "r0/s0")
        assert Path(f"{path}-wal").exists()


def test_the_same_candidate_again_is_the_same_row(path):
    with Store(path) as store:
        run_id = store.start_run("run-a", {})
        first = record_candidate(store, run_id, "source", "r0/s0")
        assert record_candidate(store, run_id, "source", "r0/s0") == first
        # The same code from another slot is another candidate (another lineage), evaluated once.
        other = record_candidate(store, run_id, "source", "r1/s3")
        assert other != first
        store.record_evaluation(first, eval_result(CORRECT, ms=1.0, eager=2.0))
        assert store.recorded_evaluation(run_id, TASK, "source")["status"] == CORRECT


# -- resume ---------------------------------------------------------------------------


def test_a_sibling_runs_verdict_is_taken_where_it_judged_the_code_not_the_machine(path):
    with Store(path) as store:
        small, other = store.start_run("budget-4", {}), store.start_run("another command", {})
        verdicts = {"correct one": eval_result(CORRECT, ms=2.0, eager=1.5),
                    "wrong one": eval_result(INCORRECT, reason="output differs"),
                    "hung one": eval_result(TIMEOUT, reason="timed out after 300 s"),
                    "crowded one": eval_result(BUILD_ERROR, reason="OutOfMemoryError: CUDA out of memory. Tried ...")}
        for n, (source, result) in enumerate(verdicts.items()):
            store.record_evaluation(record_candidate(store, small, source, f"r0/s{n}"), result)
        store.record_evaluation(record_candidate(store, other, "elsewhere", "r0/s0"), eval_result(CORRECT, 1.0, 2.0))
        assert store.run_ids(["budget-4", "budget-9"]) == [small]
        assert store.verdict_of_other_runs([small], TASK, "correct one") == verdicts["correct one"].to_dict()
        assert store.verdict_of_other_runs([small], TASK, "wrong one") == verdicts["wrong one"].to_dict()
        for judged_again in ("hung one", "crowded one", "elsewhere", "never evaluated"):
            assert store.verdict_of_other_runs([small], TASK, judged_again) is None


def test_resume_after_close_without_finish(path):
    with Store(path) as store:
        run_id = store.start_run("run-a", {"budget": 10})
        for slot in ("r0/s0", "r0/s1", "r0/s1/fix1"):
            record_call(store, run_id, slot, dollars=0.5)
        candidate = record_candidate(store, run_id, "source one", "r0/s0")
        store.record_evaluation(candidate, eval_result(CORRECT, ms=2.0, eager=1.5))
        # No finish_run: the process stops here as after Ctrl-C.

    with Store(path) as store:
        assert store.start_run("run-a", {"budget": 10}) == run_id
        assert store.run(run_id)["starts"] == 2 and store.run(run_id)["resumed_at"] is not None
        for slot in ("r0/s0", "r0/s1", "r0/s1/fix1"):
            assert without_id(store.recorded_reply(run_id, TASK, slot, request_for(slot))) == reply_for(slot, dollars=0.5)
        assert store.recorded_reply(run_id, TASK, "r0/s2", request_for("r0/s2")) is None
        assert store.spent(run_id, TASK) == (3, 1.5)
        assert store.recorded_evaluation(run_id, TASK, "source one")["speedups"]["eager"]["value"] == 1.5
        assert store.best(run_id, TASK)["id"] == candidate


def test_resume_after_the_process_is_killed(path):
    """A child records calls in a loop, printing each slot after its commit; SIGKILL mid-run."""
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])})
    try:
        printed = [child.stdout.readline().strip() for _ in range(20)]
        assert all(printed), "the child stopped before it was killed"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    printed += child.stdout.read().split()  # what it printed before the kill: committed
    assert child.returncode == -signal.SIGKILL

    with Store(path) as store:
        run_id = store.start_run("killed-run", {"budget": 1000})
        assert run_id == 1 and store.run(run_id)["starts"] == 2
        recorded = [row["slot"] for row in store.llm_calls(run_id, TASK)]
        # Every printed slot is there, plus at most the one committed before its print.
        assert recorded[: len(printed)] == printed and len(recorded) - len(printed) <= 1
        assert recorded == [f"r0/s{i}" for i in range(len(recorded))]
        for slot in printed:  # the one after them may have been killed before its answer
            assert without_id(store.recorded_reply(run_id, TASK, slot, request_for(slot))) == reply_for(slot)
        after = f"r0/s{len(recorded)}"
        assert store.recorded_reply(run_id, TASK, after, request_for(after)) is None
        assert store.spent(run_id, TASK) == (len(recorded), 0.25 * len(recorded))


KILLED_CHILD = """
import sys
from test_store import record_call
from pike_bench.store import Store

store = Store(sys.argv[1])
run_id = store.start_run("killed-run", {"budget": 1000})
slot = 0
while True:
    name = f"r0/s{slot}"
    record_call(store, run_id, name)
    print(name, flush=True)
    slot += 1
"""


@pytest.mark.parametrize(
    "change", [{"prompt": "Another prompt."}, {"system": "Another system."}, {"model": "another-model"}, {"role": "efa"}]
)
def test_a_changed_request_for_a_recorded_slot_is_not_replayed(path, change):
    with Store(path) as store:
        run_id = store.start_run("run-a", {})
        record_call(store, run_id, "r0/s0")
        changed = request_for("r0/s0", **change)
        assert store.recorded_reply(run_id, TASK, "r0/s0", changed) is None

        # The caller pays again: both answers are on record and both were spent.
        fresh = replace(reply_for("r0/s0"), text="a fresh answer")
        store.close_llm_call(store.open_llm_call(run_id, changed, reserved=0.25), fresh)
        assert without_id(store.recorded_reply(run_id, TASK, "r0/s0", changed)) == fresh
        assert without_id(store.recorded_reply(run_id, TASK, "r0/s0", request_for("r0/s0"))) == reply_for("r0/s0")
        assert store.spent(run_id, TASK) == (2, 0.5)


def test_a_request_with_another_token_limit_is_still_replayed(path):
    with Store(path) as store:
        run_id = store.start_run("run-a", {})
        record_call(store, run_id, "r0/s0")
        assert without_id(store.recorded_reply(run_id, TASK, "r0/s0", request_for("r0/s0", max_tokens=100))) == reply_for("r0/s0")


def test_finish_then_start_again(path):
    with Store(path) as store:
        run_id = store.start_run("run-a", {})
        store.finish_run(run_id)
        assert store.start_run("run-a", {}) == run_id
        assert store.run(run_id)["finished_at"] is None  # running again
        with pytest.raises(KeyError):
            store.finish_run(run_id + 1)


def test_another_key_is_another_run(path):
    with Store(path) as store:
        first = store.start_run("run-a", {"budget": 10})
        record_call(store, first, "r0/s0")
        second = store.start_run("run-b", {"budget": 10})
        assert second != first
        assert store.run(second)["starts"] == 1 and store.run(first)["starts"] == 1
        assert store.recorded_reply(second, TASK, "r0/s0", request_for("r0/s0")) is None
        assert store.spent(second, TASK) == (0, 0.0)
        assert store.spent(first, TASK) == (1, 0.25)
        assert store.spent(first, "level0/other") == (0, 0.0)


# -- best ------------------------------------------------------------------------------


def test_best_is_the_fastest_correct_candidate(path):
    with Store(path) as store:
        run_id = store.start_run("run-a", {})
        assert store.best(run_id, TASK) is None

        def evaluated(source: str, result: EvalResult) -> int:
            candidate = record_candidate(store, run_id, source, f"slot-{source}")
            store.record_evaluation(candidate, result)
            return candidate

        slow = evaluated("slow", eval_result(CORRECT, ms=4.0, eager=1.5))
        fast = evaluated("fast", eval_result(CORRECT, ms=2.0, eager=3.0))
        evaluated("wrong", eval_result(INCORRECT, ms=0.1, eager=60.0, reason="output 0 differs"))
        evaluated("too good", eval_result(SUSPICIOUS, ms=0.2, eager=30.0))
        evaluated("raises", eval_result(RUNTIME_ERROR, reason="RuntimeError"))
        record_candidate(store, run_id, "not evaluated yet", "slot-pending")

        best = store.best(run_id, TASK)
        assert (best["id"], best["source"], best["candidate_ms"]) == (fast, "fast", 2.0)
        assert best["speedups"]["eager"] == pytest.approx({"value": 3.0, "low": 2.97, "high": 3.03, "confidence": 0.95})

        # Evaluated again and found wrong (another input set): its latest verdict counts.
        store.record_evaluation(fast, eval_result(INCORRECT, ms=2.0, eager=3.0))
        assert store.best(run_id, TASK)["id"] == slow


def test_a_flagged_candidate_counts_as_best_once_a_person_accepts_it(path):
    with Store(path) as store:
        run_id = store.start_run("run-a", {})
        for source, status, eager in (("honest", CORRECT, 3.0), ("too good", SUSPICIOUS, 30.0), ("wrong", INCORRECT, 60.0)):
            store.record_evaluation(record_candidate(store, run_id, source, source), eval_result(status, ms=1.0, eager=eager))
        assert (store.best(run_id, TASK)["source"], store.best(run_id, TASK)["reviewed"]) == ("honest", False)
        assert store.record_review(TASK, "too good", "read by hand") == 1
        assert store.record_review("level3/other", "wrong", "another task's review") == 0
        assert (store.best(run_id, TASK)["source"], store.best(run_id, TASK)["reviewed"]) == ("too good", True)
    with Store(path) as store:  # the review is in the file, and a second one replaces the first
        assert store.record_review(TASK, "too good", "read again") == 1
        assert store.best(run_id, TASK)["source"] == "too good"


def test_best_is_ranked_by_the_speedup_over_the_fastest_baseline(path):
    # As in the H200 level-3 sweep: one candidate's evaluation met a slow eager run, so it
    # shows more over eager, yet it is slower (in time, and over graph replay) than another.
    def over(ms: float, eager: float, compile: float, graph: float) -> EvalResult:
        result = eval_result(CORRECT, ms=ms, eager=eager)
        result.speedups["compile"] = Speedup(compile, compile * 0.99, compile * 1.01)
        result.speedups["graph"] = Speedup(graph, graph * 0.99, graph * 1.01)
        return result

    with Store(path) as store:
        run_id = store.start_run("run-a", {})
        for source, result in (("slow eager beside it", over(0.357, 8.53, 6.14, 0.98)),
                               ("faster", over(0.260, 6.29, 4.96, 1.35))):
            store.record_evaluation(record_candidate(store, run_id, source, source), result)
        best = store.best(run_id, TASK)
        assert (best["source"], best["speedups"]["graph"]["value"]) == ("faster", 1.35)
        assert set(best) == {"id", "source", "slot", "agent", "evaluation_id", "candidate_ms", "speedups", "reviewed"}


def test_best_without_baselines_is_the_lowest_time(path):
    with Store(path) as store:
        run_id = store.start_run("run-a", {})
        for source, ms in (("a", 3.0), ("b", 1.0), ("c", 2.0)):
            store.record_evaluation(record_candidate(store, run_id, source, source), eval_result(CORRECT, ms=ms))
        assert store.best(run_id, TASK)["source"] == "b"


# -- concurrency and the file ---------------------------------------------------------------


def test_a_compile_baseline_built_in_the_evaluation_is_recorded_by_its_key(path):
    built = eval_result(CORRECT, ms=2.0, eager=3.0)
    built.task_sha256, built.compile_mode = "ab" * 32, "max-autotune"
    built.baselines["compile"] = ContestantResult("compile", CORRECT, timing=timing(4.0), build=BuildCost(41.5, 0, 3))
    kept = replace(built, baselines={**built.baselines, "compile": ContestantResult("compile", CORRECT, timing=timing(4.0))})
    with Store(path) as store:
        run_id = store.start_run("run-a", {})
        store.record_evaluation(record_candidate(store, run_id, "a", "s0"), built)
        store.record_evaluation(record_candidate(store, run_id, "b", "s1"), kept)  # built in an earlier job
        assert [(b["task_id"], b["device_name"], b["torch_version"], b["compile_mode"], b["seconds"],
                 b["cache_hits"], b["cache_misses"]) for b in store.compile_builds("ab" * 32)] == [
            (TASK, "cpu (x86_64)", "2.13.0+cpu", "max-autotune", 41.5, 0, 3)]
        assert store.compile_builds("cd" * 32) == []
        assert EvalResult.from_dict(store.recorded_evaluation(run_id, TASK, "a")) == built


def test_writes_from_many_threads_under_asyncio(path):
    async def main(store: Store, run_id: int) -> list[int]:
        slots = [f"r{i // 10}/s{i % 10}" for i in range(60)]
        return await asyncio.gather(*(asyncio.to_thread(record_call, store, run_id, slot) for slot in slots))

    with Store(path) as store:
        run_id = store.start_run("run-a", {})
        ids = asyncio.run(main(store, run_id))
        assert len(set(ids)) == 60
        assert store.spent(run_id, TASK) == (60, 15.0)


def test_a_file_from_a_newer_version_is_refused(path):
    Store(path).close()
    with closing(sqlite3.connect(path)) as db:  # stands in for a newer pike-bench that wrote the file
        db.execute("UPDATE schema_version SET version = 99")
        db.commit()
    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_a_file_written_before_compile_builds_gains_the_table_and_keeps_its_runs(path):
    with Store(path) as store:
        store.start_run("run-a", {"budget": 3})
    with closing(sqlite3.connect(path)) as db:  # as pike-bench wrote it before compile_builds
        db.execute("DROP TABLE compile_builds")
        db.commit()
    with Store(path) as store:
        assert store.start_run("run-a", {}) == 1 and store.run(1)["config"] == {"budget": 3}
        assert store.compile_builds() == []


def test_opening_again_keeps_one_schema_version(path):
    Store(path).close()
    with Store(path) as store:
        run_id = store.start_run("run-a", {})
        assert store.spent(run_id, TASK) == (0, 0.0)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_a_record_of_the_first_schema_is_upgraded_in_place(tmp_path):
    # A sweep record committed by an earlier release (schema 1: no query statuses).
    old = Path(__file__).parent.parent / "benchmarks/results/2026-11-30b-h200x2/sweep/runs.sqlite"
    path = tmp_path / "runs.sqlite"
    shutil.copy(old, path)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        calls = db.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0]
    with Store(path) as store:
        run = store._read("SELECT id, config FROM runs ORDER BY id LIMIT 1")[0]
        task = json.loads(run["config"])["task"]
        rows = store.llm_calls(run["id"], task)
        assert rows and {row["status"] for row in rows} == {"ok"}
        assert store.spent(run["id"], task)[0] == len(rows)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert db.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] == calls
