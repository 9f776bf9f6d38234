"""The evaluator on real worker processes: honest candidates, broken ones, and recovery."""

import time
from pathlib import Path

import pytest
import torch

from pike_bench.baselines import compile_cache_beside
from pike_bench.evaluate import Evaluator
from pike_bench.store import Store
from pike_bench.tasks import task_from_file

from conftest import DATA, FAST_TIMING, candidate


def test_honest_candidate_is_correct_and_timed_against_eager(cpu_evaluator, tiny_task):
    result = cpu_evaluator.evaluate(tiny_task, candidate("good.py"))
    assert (result.status, result.reason) == ("correct", "")
    assert result.timing.rounds >= 10 and result.timing.median_ms > 0
    eager = result.baselines["eager"]
    assert eager.status == "correct" and eager.timing.rounds == result.timing.rounds
    speedup = result.speedups["eager"]
    assert speedup.low <= speedup.value <= speedup.high
    assert (result.device, result.size, result.mode, result.trials) == ("cpu", "small", "eval", 3)


@pytest.mark.parametrize(
    "file, status, reason",
    [
        ("exits.py", "crashed", "exited with code 7 while checking candidate on input set 1"),
        ("segfault.py", "crashed", "killed by SIGSEGV while checking candidate"),
        ("no_import.py", "build_error", "ModuleNotFoundError: No module named 'kernels_that_do_not_exist'"),
        ("syntax_error.py", "build_error", "SyntaxError"),
        ("no_modelnew.py", "build_error", "defines no ModelNew"),
        ("wrong_shape.py", "incorrect", "output has shape (4, 5), expected (4, 4)"),
        ("nan.py", "incorrect", "NaN where the reference has a number"),
        ("raises.py", "runtime_error", "RuntimeError: mat1 and mat2 shapes cannot be multiplied"),
        ("modifies_input.py", "incorrect", "modified its input 0 in place"),
        ("other_seed.py", "incorrect", "differs at index"),
    ],
)
def test_faulty_candidate_gets_its_status_and_the_next_one_still_evaluates(cpu_evaluator, tiny_task, file, status, reason):
    result = cpu_evaluator.evaluate(tiny_task, candidate(file))
    assert result.status == status
    assert reason in result.reason
    assert "\n" not in result.reason
    assert cpu_evaluator.evaluate(tiny_task, candidate("good.py")).status == "correct"


def test_errors_point_at_the_candidates_own_lines(cpu_evaluator, tiny_task):
    result = cpu_evaluator.evaluate(tiny_task, candidate("raises.py"))
    assert "line 13, in forward: return self.fc1(x) @ torch.ones(3, 3, device=x.device)" in result.detail
    assert "input set 1 of 3" in result.detail
    syntax = cpu_evaluator.evaluate(tiny_task, candidate("syntax_error.py"))
    assert "line 6: def forward(self, x)" in syntax.detail


def test_segfault_detail_shows_the_native_crash_report(cpu_evaluator, tiny_task):
    result = cpu_evaluator.evaluate(tiny_task, candidate("segfault.py"))
    assert "Segmentation fault" in result.detail


def test_hang_is_cut_off_and_the_worker_replaced(tiny_task):
    with Evaluator("cpu", trials=2, timeout=3, timing=FAST_TIMING, baselines=("eager",)) as evaluator:
        started = time.perf_counter()
        result = evaluator.evaluate(tiny_task, candidate("hang.py"))
        assert result.status == "timeout"
        assert "timed out after 3 s while checking candidate on input set 1" in result.reason
        assert time.perf_counter() - started < 60
        assert evaluator.evaluate(tiny_task, candidate("good.py")).status == "correct"


def test_wrong_only_on_some_inputs_is_caught_with_a_reproducing_seed(cpu_evaluator, tiny_task):
    caught = [cpu_evaluator.evaluate(tiny_task, candidate("positive_only.py"), hypothesis_seed=s) for s in range(4)]
    failing = [r for r in caught if r.status == "incorrect"]
    assert failing, "sign-flipped input sets must expose a candidate that is right only for positive inputs"
    first = failing[0]
    assert f"Hypothesis seed {first.hypothesis_seed} reproduces it" in first.detail
    again = cpu_evaluator.evaluate(tiny_task, candidate("positive_only.py"), hypothesis_seed=first.hypothesis_seed)
    assert (again.status, again.reason, again.detail) == (first.status, first.reason, first.detail)


def test_triton_candidate_runs_in_the_interpreter(cpu_evaluator, tiny_task):
    result = cpu_evaluator.evaluate(tiny_task, candidate("triton_relu.py"))
    assert result.status == "correct", result.reason + "\n" + result.detail


def test_mode_eval_by_default_and_train_as_kernelbench():
    task = task_from_file(DATA / "level0" / "2_TinyConvBN.py")
    source = candidate("bn_running_stats.py")
    with Evaluator("cpu", trials=2, timing=FAST_TIMING, baselines=()) as evaluator:
        assert evaluator.evaluate(task, source).status == "correct"
    with Evaluator("cpu", mode="train", trials=2, timing=FAST_TIMING, baselines=()) as evaluator:
        result = evaluator.evaluate(task, source)
        assert (result.status, result.mode) == ("incorrect", "train")


def test_baselines_go_through_the_candidate_path_and_compile_is_timed_with_them(tiny_task):
    with Evaluator("cpu", trials=2, timing=FAST_TIMING, baselines=("eager", "compile")) as evaluator:
        result = evaluator.evaluate(tiny_task, candidate("good.py"))
    assert result.status == "correct"
    assert {name: b.status for name, b in result.baselines.items()} == {"eager": "correct", "compile": "correct"}
    assert set(result.speedups) == {"eager", "compile"}
    assert result.baselines["compile"].timing.rounds == result.timing.rounds


def test_small_size_reaches_the_candidates_constants_too(cpu_evaluator):
    task = task_from_file(DATA / "level0" / "4_GlobalState.py")
    source = (DATA / "level0" / "4_GlobalState.py").read_text() + "\nModelNew = Model\n"
    result = cpu_evaluator.evaluate(task, source)
    assert result.status == "correct", result.reason
    assert result.baselines["eager"].status == "correct"


def test_small_size_may_hold_objects_of_the_tasks_own_classes(cpu_evaluator):
    task = task_from_file(DATA / "level0" / "5_ConfigObject.py")
    source = (DATA / "level0" / "5_ConfigObject.py").read_text() + "\nModelNew = Model\n"
    result = cpu_evaluator.evaluate(task, source)
    assert result.status == "correct", result.reason


@pytest.mark.slow  # a C++ build (about 40 s on 2 cores)
def test_cpp_candidates_build_with_load_inline_and_compile_errors_point_at_the_candidate(tiny_task):
    cpp = DATA / "cpp"
    with Evaluator("cpu", trials=2, timeout=300, timing=FAST_TIMING, baselines=()) as evaluator:
        good = evaluator.evaluate(tiny_task, (cpp / "relu_cpp.py").read_text())
        bad = evaluator.evaluate(tiny_task, (cpp / "compile_error.py").read_text())
    assert (good.status, good.languages) == ("correct", ["c++"]), good.reason
    assert bad.status == "build_error"
    assert bad.reason.startswith("compile error: candidate line 8: error: ")  # the compiler's quotes vary by locale
    assert "undefined_name" in bad.reason and "was not declared" in bad.reason
    assert "return x.clamp_min(0) + undefined_name;" in bad.detail


@pytest.mark.slow  # two compiles of the baseline
def test_a_new_worker_builds_the_compile_baseline_from_the_cache_beside_the_record(tmp_path, tiny_task, monkeypatch):
    import torch

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))  # the sandbox's caches, pike-bench/*
    store_path = tmp_path / "record" / "runs.sqlite"
    cache = compile_cache_beside(store_path)
    store_path.parent.mkdir()
    # A candidate that leaves a file where inductor would cache its own compiles.
    planting = candidate("good.py") + (
        "\n\nimport os\nfrom torch._inductor.runtime.cache_dir_utils import cache_dir\n"
        "_mine = ModelNew.forward\n"
        "def _planting(self, x):\n"
        "    os.makedirs(os.path.join(cache_dir(), 'planted'), exist_ok=True)\n"
        "    return _mine(self, x)\n"
        "ModelNew.forward = _planting\n"
    )
    with Store(store_path) as store:
        run_id = store.start_run("cache", {})
        for _ in range(2):  # two workers, as a run and its resume (or a repeat) on one record
            with Evaluator("cpu", trials=2, timing=FAST_TIMING, baselines=("eager", "compile"),
                           compile_cache=cache) as evaluator:
                result = evaluator.evaluate(tiny_task, planting)
            assert result.status == "correct", result.reason
            assert result.baselines["compile"].status == "correct"
            candidate_id = store.record_candidate(run_id, tiny_task.id, candidate("good.py"), parent_ids=[],
                                                  island=None, round=None, agent="test", slot="s0", llm_call_id=None)
            store.record_evaluation(candidate_id, result)
        cold, warm = store.compile_builds(tiny_task.sha256())
    key = ("task_sha256", "device_name", "torch_version", "compile_mode")
    assert [cold[k] for k in key] == [warm[k] for k in key] == [tiny_task.sha256(), result.device_name,
                                                                torch.__version__, "default"]
    assert (cold["cache_hits"], warm["cache_misses"]) == (0, 0)
    assert cold["cache_misses"] >= 1 and warm["cache_hits"] == cold["cache_misses"]
    # The task's folder holds the baseline's build, and nothing a candidate wrote.
    assert (cache / tiny_task.id / "fxgraph").is_dir() and (cache / ".gitignore").read_text().endswith("*\n")
    assert not list(cache.rglob("planted")) and (tmp_path / "user-cache/pike-bench/inductor/planted").is_dir()
    print(f"compile baseline of {tiny_task.id}: {cold['seconds']:.1f} s cold, {warm['seconds']:.1f} s warm")


def test_a_task_s_compile_cache_moved_to_another_folder_is_built_again(tmp_path, monkeypatch):
    """Inductor's entries name absolute paths of its files; on the H200 a record moved
    from one folder to another failed its compile baseline on every candidate
    ("Read-only file system" at the old path). A moved task folder starts empty."""
    import shutil

    from pike_bench.baselines import BASELINE_CACHE, baseline_cache
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    def build(root: Path) -> Path:
        monkeypatch.setenv(BASELINE_CACHE, str(root))
        with baseline_cache("level0/1_TinyMLP"):
            built = Path(cache_dir(), "built.py")
            if not built.exists():
                built.write_text("compiled here")
        return built

    first = build(tmp_path / "here" / "inductor-cache")
    kept = first.stat().st_mtime_ns
    assert build(tmp_path / "here" / "inductor-cache").stat().st_mtime_ns == kept  # same place: kept
    shutil.copytree(tmp_path / "here", tmp_path / "there")
    moved = build(tmp_path / "there" / "inductor-cache")
    assert moved.stat().st_mtime_ns != kept and first.exists()  # built again there; the original untouched
    assert (moved.parent / ".built-at").read_text() == str(moved.parent.resolve())


def test_a_baseline_that_breaks_the_cuda_context_is_set_aside_and_the_candidate_is_still_timed(tiny_task):
    """On the H200 the graph baseline once hit an illegal memory access beside a candidate
    compiled with reduce-overhead; the candidate was then left correct but untimed. Here a
    baseline raises the same error (on the CPU, by its message) after the candidate passed."""
    from pike_bench.evaluate.messages import Contestant

    breaking = tiny_task.path.read_text() + (
        "\n\nclass ModelNew(Model):\n"
        "    def forward(self, *inputs):\n"
        "        raise RuntimeError('CUDA error: an illegal memory access was encountered')\n"
    )
    with Evaluator("cpu", trials=2, timing=FAST_TIMING, baselines=("eager",)) as evaluator:
        contestants = evaluator.contestants(tiny_task, candidate("good.py"))
        contestants.insert(1, Contestant("graph", breaking, trusted=True))
        reply = evaluator.run(tiny_task, contestants, hypothesis_seed=1)
    graph, mine = reply.results["graph"], reply.results["candidate"]
    assert graph.status in ("build_error", "runtime_error") and "illegal memory access" in graph.reason
    assert mine.status == "correct" and mine.timing is not None and mine.timing.rounds >= 10
    assert reply.results["eager"].timing.rounds == mine.timing.rounds


def test_a_task_s_fixed_input_sets_are_drawn_once_per_worker_and_each_caller_gets_its_own_copy(tiny_task):
    from pike_bench.evaluate.job import ExpectedOutputs
    from pike_bench.inputs import InputDraw
    from pike_bench.tasks import sized_module

    module = sized_module(tiny_task, "small")
    reference = module.Model(*module.get_init_inputs())
    kept, timing, check = {}, InputDraw(7), InputDraw(8)
    first = ExpectedOutputs(module, reference, "cpu", {}, kept, fixed=(timing,))
    mine, theirs = first.fresh(timing), first.fresh(timing)
    assert torch.equal(mine[0], theirs[0]) and mine[0].data_ptr() != theirs[0].data_ptr()
    first.fresh(check)
    second = ExpectedOutputs(module, reference, "cpu", {}, kept, fixed=(timing,))  # the next job of the task
    assert second.inputs(timing) is first.inputs(timing)  # not drawn again
    assert second.inputs(check) is not first.inputs(check)  # a check's set is drawn per job


@pytest.mark.parametrize("error, kept", [("cannot capture: the forward syncs with the host", True),
                                         ("CUDA out of memory. Tried to allocate 2.00 GiB", False)])
def test_a_baseline_that_fails_twice_in_a_task_is_not_built_again_unless_the_machine_failed(tiny_task, error, kept):
    """A task whose forward cannot be captured rebuilt its graph baseline (a copy of a large
    model) for every candidate on the H200; its own failure is now kept after two jobs.
    Out of memory names the machine (another worker's models), so that one is tried again,
    and at once: the job runs a second time, alone on the device."""
    from pike_bench.evaluate.messages import Contestant

    failing = tiny_task.path.read_text() + (
        "\n\nclass ModelNew(Model):\n"
        "    def forward(self, *inputs):\n"
        f"        raise RuntimeError({error!r})\n"
    )
    builds: list[str] = []

    def heard(phase: str, who: str) -> None:
        if who == "graph" and phase.startswith("building"):
            builds.append(phase)

    with Evaluator("cpu", trials=2, timing=FAST_TIMING, baselines=("eager",)) as evaluator:
        contestants = evaluator.contestants(tiny_task, candidate("good.py"))
        contestants.append(Contestant("graph", failing, trusted=True))
        replies = [evaluator.run(tiny_task, contestants, hypothesis_seed=1, on_phase=heard) for _ in range(4)]
    assert len(builds) == (2 if kept else 2 * 4)
    for reply in replies:
        assert reply.results["graph"].status == "build_error" and error in reply.results["graph"].reason
        assert reply.results["candidate"].status == "correct" and reply.results["candidate"].timing is not None
