"""Tasks in flight: one task checked and timed while another builds, each timing alone on
its device (two CPU workers sharing a lock stand for two workers of one GPU)."""

import asyncio
import json
import sqlite3

from pike_bench.evaluate import Evaluator, TimingOptions
from pike_bench.evaluate.turns import ALONE, BUILD, CHECK, COMPILE, TIME, Turns, busy_seconds, prepare_lock
from pike_bench.inflight import InFlight
from pike_bench.optimize import Optimizer, OptimizeOptions
from pike_bench.progress import Evaluated
from pike_bench.tasks import task_from_file

from conftest import CANDIDATES, DATA

pytest_plugins = ["pytester"]
FAST = dict(trials=2, timing=TimingOptions(warmup=1, min_rounds=10, max_seconds=0.3), baselines=("eager",))
TINY, CONV = DATA / "level0" / "1_TinyMLP.py", DATA / "level0" / "2_TinyConvBN.py"


def slowed(seconds: float, where: str) -> str:
    """The good candidate, sleeping in its forward ("forward") or once at import ("import")."""
    source = (CANDIDATES / "good.py").read_text().replace("import torch\n", "import time\n\nimport torch\n", 1)
    if where == "import":
        return source + f"\ntime.sleep({seconds})  # stands for an extension compiled at import\n"
    return source.replace("return self.fc2(", f"time.sleep({seconds})\n        return self.fc2(")


def overlap(a, b) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def crossings(mine, theirs) -> int:
    """How often a timed section of one evaluation overlaps any turn of the other (a
    compile stepped away from a turn is not one)."""
    mine, theirs = ([t for t in turns if t[0] != COMPILE] for turns in (mine, theirs))
    return sum(overlap(t, o) for t in mine if t[0] == TIME for o in theirs) + \
        sum(overlap(t, o) for t in theirs if t[0] == TIME for o in mine)


def evaluate_both_at_once(first: Evaluator, second: Evaluator, source: str):
    task = task_from_file(TINY)
    for evaluator in (first, second):  # workers up and the reference built: what follows is checks and timing
        evaluator.evaluate(task, source)

    async def both():
        return await asyncio.gather(asyncio.to_thread(first.evaluate, task, source + "\n# a\n"),
                                    asyncio.to_thread(second.evaluate, task, source + "\n# b\n"))

    return asyncio.run(both())


def test_a_timed_section_runs_alone_among_the_workers_of_a_device(tmp_path):
    source = slowed(0.02, "forward")
    with Evaluator("cpu", device_lock=tmp_path / "cpu.lock", **FAST) as first, first.twin() as second:
        a, b = evaluate_both_at_once(first, second, source)
    assert a.status == b.status == "correct"
    assert [t[0] for t in a.turns].count(TIME) == [t[0] for t in b.turns].count(TIME) == 1
    assert crossings(a.turns, b.turns) == 0  # while one timed, the other neither checked nor timed
    # Without the lock the same two evaluations run into each other: the lock is what keeps them apart.
    with Evaluator("cpu", device_lock=None, **FAST) as first, first.twin() as second:
        a, b = evaluate_both_at_once(first, second, source)
    assert crossings(a.turns, b.turns) > 0


def replies(path, sources: dict[str, str]):
    """One recorded optimizer reply per task."""
    path.write_text("".join(json.dumps({"task_id": task_id, "role": "optimizer", "text": f"```python\n{source}```"})
                            + "\n" for task_id, source in sources.items()))
    return str(path)


def test_a_second_task_is_checked_and_timed_while_the_first_builds_and_a_rerun_resumes_both(tmp_path):
    tiny, conv = task_from_file(TINY), task_from_file(CONV)
    good_conv = CONV.read_text() + "\n\nModelNew = Model\n"
    options = OptimizeOptions(strategy="pike-b-no-iba", budget_queries=1, llm="replay",
                              replay_file=replies(tmp_path / "replies.jsonl", {
                                  tiny.id: slowed(10, "import"), conv.id: good_conv}),
                              store_path=tmp_path / "runs.sqlite", solutions_dir=tmp_path / "solutions")
    events = []

    def run_both():
        with Evaluator("cpu", device_lock=tmp_path / "cpu.lock", **FAST) as evaluator:
            lanes = InFlight(Optimizer(evaluator, options, progress=events.append), 2)
            try:
                return lanes.optimize_all([tiny, conv])
            finally:
                lanes.close()

    outcomes = run_both()
    assert [o.task_id for o in outcomes] == [tiny.id, conv.id]
    assert [o.best.outcome.status for o in outcomes] == ["correct", "correct"]
    assert [o.queries for o in outcomes] == [1, 1]  # each task's own budget, as alone
    first, second = (o.best.outcome.result for o in outcomes)
    first_turn = min(start for _, start, _ in first.turns)  # the first task's candidate built: its first turn
    assert max(end for _, _, end in second.turns) < first_turn  # the second was checked and timed before it
    assert busy_seconds(second.turns, (TIME,)) > 0

    # The same command again: both runs found in the record, nothing asked or evaluated again.
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        before = db.execute("select count(*) from evaluations").fetchone()[0], \
            db.execute("select count(*) from llm_calls").fetchone()[0]
    events.clear()
    again = run_both()
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        after = db.execute("select count(*) from evaluations").fetchone()[0], \
            db.execute("select count(*) from llm_calls").fetchone()[0]
        runs = db.execute("select count(*) from runs").fetchone()[0]
    assert after == before == (2, 2) and runs == 2
    assert [o.best.outcome.status for o in again] == ["correct", "correct"]
    assert all(e.reused for e in events if isinstance(e, Evaluated))


def test_under_pytest_items_wait_for_their_tasks_which_run_together(pytester):
    tasks = pytester.path / "tasks" / "level0"
    tasks.mkdir(parents=True)
    for path in (TINY, CONV):
        (tasks / path.name).write_text(path.read_text())
    replay = replies(pytester.path / "replies.jsonl", {
        "level0/1_TinyMLP": slowed(6, "import"), "level0/2_TinyConvBN": CONV.read_text() + "\n\nModelNew = Model\n"})
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--pike-tasks", "tasks", "--pike-device", "cpu", "--pike-max-time", "0.3",
        "--pike-baselines", "eager", "--pike-trials", "2", "--pike-optimize", "--pike-strategy", "pike-b-no-iba",
        "--pike-budget", "1", "--pike-llm", "replay", "--pike-replay", replay, "--pike-store", "runs.sqlite",
        "--pike-in-flight", "2")
    result.assert_outcomes(passed=2)
    # The second item's task ended first, while the first item waited for its own.
    result.stdout.fnmatch_lines(["*level0/2_TinyConvBN: done in *", "*level0/1_TinyMLP: done in *"])
    with sqlite3.connect(pytester.path / "runs.sqlite") as db:
        rows = db.execute("select c.task_id, e.created_at - json_extract(e.result, '$.seconds'), e.created_at "
                          "from evaluations e join candidates c on c.id = e.candidate_id order by c.task_id").fetchall()
    (_, tiny_start, tiny_end), (_, conv_start, conv_end) = rows
    assert conv_start < tiny_end and conv_end < tiny_end  # the second item's task ran during the first's


def compiled_slowly(seconds: float, note: str = "") -> str:
    """The good candidate under torch.compile, with a backend that takes `seconds` to
    compile: it stands for inductor generating and compiling code on the CPU."""
    return (CANDIDATES / "good.py").read_text() + f"""
import time

_Plain = ModelNew


def _slow_backend(graph, example_inputs):
    time.sleep({seconds}){note}
    return graph.forward


def ModelNew(*args):
    return torch.compile(_Plain(*args), backend=_slow_backend)
"""


def test_a_turn_stepped_away_from_lets_another_worker_time_and_is_taken_again_after(tmp_path):
    import threading

    lock = prepare_lock(tmp_path / "gpu.lock")
    compiling, timing = Turns(lock), Turns(lock)
    timed, section = threading.Event(), timing.time()
    with compiling.check(BUILD):
        compiling.step_away()
        threading.Thread(target=lambda: [section.__enter__(), timed.set()]).start()
        assert timed.wait(5)  # the exclusive turn was free while the first stepped away
        back = threading.Thread(target=compiling.come_back)
        back.start()
        back.join(0.3)
        assert back.is_alive()  # coming back waits for the timed section, as any turn does
        section.__exit__(None, None, None)
        back.join(5)
        assert not back.is_alive()
    assert [kind for kind, _, _ in compiling.held()] == [BUILD, COMPILE, BUILD]
    timing.held()
    with timing.time():
        timing.step_away()  # a timed section never lets go: no compile span, one timed turn
        timing.come_back()
    assert [kind for kind, _, _ in timing.held()] == [TIME]


def test_another_worker_times_while_a_candidate_compiles_but_not_while_it_autotunes(tmp_path):
    task = task_from_file(TINY)
    good = slowed(0.02, "forward")

    def side_by_side(compiling_source):
        with Evaluator("cpu", device_lock=tmp_path / "cpu.lock", **FAST) as first, first.twin() as second:
            for evaluator in (first, second):  # workers up, references built
                evaluator.evaluate(task, good)

            async def both():
                async def later():
                    await asyncio.sleep(2.5)  # the first is compiling by then (it compiles for 6 s)
                    return await asyncio.to_thread(second.evaluate, task, good + "\n# b\n")

                return await asyncio.gather(asyncio.to_thread(first.evaluate, task, compiling_source), later())

            return asyncio.run(both())

    a, b = side_by_side(compiled_slowly(6))
    assert a.status == b.status == "correct", (a.reason, b.reason)
    (_, away, back), = [t for t in a.turns if t[0] == COMPILE]
    assert back - away >= 6
    (_, start, end), = [t for t in b.turns if t[0] == TIME]
    assert away < start < end < back  # timed while the first compiled, off its turn
    assert crossings(a.turns, b.turns) == 0
    # A candidate that autotunes benchmarks kernels while it compiles: it keeps its turn.
    a, b = side_by_side(compiled_slowly(6, "  # mode='max-autotune' would benchmark here"))
    assert a.status == b.status == "correct" and not [t for t in a.turns if t[0] == COMPILE]
    (_, start, _), = [t for t in b.turns if t[0] == TIME]
    assert start > max(end for kind, _, end in a.turns if kind == BUILD)


def test_a_stretch_alone_keeps_every_other_turn_out_and_its_own_turns_inside(tmp_path):
    import threading

    lock = prepare_lock(tmp_path / "gpu.lock")
    retrying, neighbour = Turns(lock), Turns(lock)
    checked = threading.Event()
    with retrying.alone():
        with retrying.check():  # a nested turn: no lock of its own, so the exclusive one holds
            retrying.step_away()  # and never lets go while alone
            other = threading.Thread(target=lambda: [neighbour.check().__enter__(), checked.set()])
            other.start()
            assert not checked.wait(0.3)
        with retrying.time():
            pass
        assert not checked.is_set()  # between its turns the device stays its own
    assert checked.wait(5)
    kinds = [kind for kind, _, _ in retrying.held()]
    assert kinds == [CHECK, TIME, ALONE]


def out_of_memory(times: int, flag: str) -> str:
    """The good candidate, raising CUDA's out-of-memory error in its first `times` forwards
    in this worker process (a count kept on builtins survives the candidate's re-import)."""
    source = (CANDIDATES / "good.py").read_text().replace("import torch\n", "import builtins\n\nimport torch\n", 1)
    return source.replace("        return self.fc2(", f"""\
        builtins.{flag} = getattr(builtins, "{flag}", 0) + 1
        if builtins.{flag} <= {times}:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB.")
        return self.fc2(""")


def test_a_job_that_ran_out_of_device_memory_runs_again_alone_and_its_verdict_is_the_second(tmp_path):
    task = task_from_file(TINY)
    with Evaluator("cpu", device_lock=tmp_path / "cpu.lock", **FAST) as evaluator:
        once = evaluator.evaluate(task, out_of_memory(1, "_pike_oom_once"))
        always = evaluator.evaluate(task, out_of_memory(10**6, "_pike_oom_always"))
        fine = evaluator.evaluate(task, (CANDIDATES / "good.py").read_text())
    assert once.status == "correct", once.reason
    (_, start, end), = [turn for turn in once.turns if turn[0] == ALONE]
    inside = [kind for kind, s, e in once.turns if start <= s and e <= end and kind != ALONE]
    assert CHECK in inside and TIME in inside  # checked and timed within the stretch alone
    assert always.status == "runtime_error"
    assert always.reason.startswith("OutOfMemoryError: CUDA out of memory")
    assert always.reason.endswith("(again when the job ran alone on the device)")
    assert [turn for turn in always.turns if turn[0] == ALONE]
    assert fine.status == "correct" and not [turn for turn in fine.turns if turn[0] == ALONE]
