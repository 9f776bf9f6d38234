"""The offline proposer's frontier moves on the CPU, on the level-5 tasks at their SMALL
size: each move's candidate is evaluated for real, and the rewrite it promises is
checked on the built model (kept, not silently fallen back)."""

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pike_bench.candidate import extract_code, import_source
from pike_bench.evaluate import Evaluator, TimingOptions
from pike_bench import leaderboard
from pike_bench.llm import Request
from pike_bench.llm.moves.library import channels_last_3d, moe_grouped, plan, scan_chunked, sdpa_rewrite
from pike_bench.llm.moves.render import Recipe, render
from pike_bench.llm.moves.rewrites import rewrite_attention, rewrite_classes
from pike_bench.llm.moves.runtime import frontier as runtime
from pike_bench.llm.offline import OfflineProposer
from pike_bench.optimize import Optimizer, OptimizeOptions
from pike_bench.report import optimize_table
from pike_bench.tasks import apply_sizes, task_from_file

from conftest import DATA

LEVEL5 = Path(__file__).resolve().parent.parent / "kernelbench_tasks" / "level5"
MOE, DECODE, MAMBA, LLAMA = "7_deepseekv3_MOE_smallbatch", "14_llama2_decode", "11_mamba2_pytorch", "4_llama2"


def source(name):
    return (LEVEL5 / f"{name}.py").read_text()


def build(candidate, folder, name, **sizes):
    """ModelNew of a candidate at the task's SMALL size (and the given constants), and inputs."""
    module = import_source(candidate, folder, name)
    apply_sizes(module, {**module.SMALL, **sizes})
    torch.manual_seed(0)
    model = module.ModelNew(*module.get_init_inputs())
    torch.manual_seed(1)
    return module, model.eval(), module.get_inputs()


@pytest.fixture(scope="module")
def evaluator():
    with Evaluator("cpu", trials=2, timing=TimingOptions(min_rounds=3, max_seconds=0.2), baselines=("eager",)) as evaluator:
        yield evaluator


@pytest.mark.parametrize("task, move", [
    (MOE, moe_grouped), ("13_deepseekv3_MOE_largebatch", moe_grouped),
    (DECODE, sdpa_rewrite), (LLAMA, sdpa_rewrite), (MAMBA, scan_chunked),
])  # fmt: skip
def test_frontier_moves_are_correct_on_level5_at_the_small_size(evaluator, task, move):
    candidate = move(source(task), None, "cpu")
    result = evaluator.evaluate(task_from_file(LEVEL5 / f"{task}.py"), candidate)
    assert result.status in ("correct", "suspicious"), f"{result.status}: {result.reason}\n{result.detail}"
    assert "# precision: " in candidate  # what the rewrite does to numerics is stated


@pytest.mark.parametrize("task, recipe", [(MOE, Recipe(pieces=True)), (DECODE, Recipe(rewrites=("sdpa",), fastest=True))])
def test_capture_moves_run_correct_on_the_cpu_where_they_capture_nothing(evaluator, task, recipe):
    result = evaluator.evaluate(task_from_file(LEVEL5 / f"{task}.py"), render(source(task), recipe))
    assert result.status in ("correct", "suspicious"), f"{result.status}: {result.reason}\n{result.detail}"


def test_the_probe_finds_host_syncs_and_the_capture_plan_keeps_to_the_sync_free_modules(tmp_path):
    _, model, inputs = build(render(source(MOE), Recipe(pieces=True)), tmp_path, "pieces")
    want = model.model.model(*inputs)  # before the plan: the task's own model
    torch.testing.assert_close(model(*inputs), want)  # the first call probes
    experts = [f"experts.{e}" for e in range(8)]
    assert model.model.pieces == ["gate", *experts, "shared_experts"]  # the top level syncs (.tolist, where)
    assert model.model.whole is None
    assert all(type(m).__name__ == "_PikeCapture" for m in model.model.model.experts)
    torch.testing.assert_close(model(*inputs), want)  # the pieces run (eagerly on the CPU)
    _, grouped, _ = build(render(source(MOE), Recipe(moe=True, pieces=True)), tmp_path, "grouped_pieces")
    grouped(*inputs)
    assert grouped.model.pieces == [""]  # routed without host syncs: the whole forward can be captured


class MaskSum(torch.nn.Module):
    def forward(self, x):
        return x[x > 0].sum() + torch.where(x > 1)[0].numel()


class Outer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner, self.mlp = MaskSum(), torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4))

    def forward(self, x):
        return self.mlp(x).sum() + self.inner(x)


def test_the_probe_sees_boolean_masks_and_one_argument_where():
    model = Outer()
    probe = runtime._PikeSyncProbe(model)
    probe.run(torch.randn(3, 4))
    assert id(model.inner) in probe.syncing and id(model) in probe.syncing and id(model.mlp) not in probe.syncing
    plan = runtime._pike_capture_plan(model, probe, min_calls=2)
    assert [(name, module) for _, name, module in plan] == [("mlp", model.mlp)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])  # grouped GEMM, padded batched matmul
def test_moe_routing_has_no_host_sync_and_matches_the_loop_over_experts(tmp_path, dtype):
    module, model, inputs = build(moe_grouped(source(MOE), None, "cpu"), tmp_path, f"moe_{dtype}".replace(".", "_"),
                                  DTYPE=dtype, batch_size=24)
    x = inputs[0].to(dtype)
    layer = model.model
    grouped_class = type(layer)
    assert grouped_class.__name__ == "ModelGrouped"  # the probe agreed: the rewrite is kept
    with torch.no_grad():
        got = layer(x)
        layer.__class__ = module.Model
        want = layer(x)  # the task's own forward (bincount().tolist(), a loop over experts)
    tolerance = 3e-2 if dtype == torch.bfloat16 else 1e-5
    torch.testing.assert_close(got.float(), want.float(), atol=tolerance, rtol=tolerance)
    layer.__class__ = grouped_class
    probe = runtime._PikeSyncProbe(layer)
    probe.run(x)
    assert not probe.syncing


def test_the_decode_and_scan_rewrites_are_kept_after_the_first_call_check(tmp_path):
    for task, move, cls in ((DECODE, sdpa_rewrite, "_PikeSDPASelfAttention"), (MAMBA, scan_chunked, "_PikeScanMambaBlock")):
        _, model, inputs = build(move(source(task), None, "cpu"), tmp_path, task)
        model(*inputs)
        assert model.model.kept and cls in {type(m).__name__ for m in model.modules()}, task
        with torch.no_grad():
            torch.testing.assert_close(model(*inputs), model(*inputs))


def test_a_rewrite_that_disagrees_is_dropped_on_the_first_call(tmp_path):
    # The rewrite of a softmax over the wrong axis (the pattern does not check semantics
    # beyond its shape): the first call's comparison catches it and keeps the original.
    reference = source(LLAMA)
    candidate = sdpa_rewrite(reference, None, "cpu").replace("scale=_pike_scale)", "scale=_pike_scale).flip(2)")
    _, model, inputs = build(candidate, tmp_path, "wrong")
    want = model.model.model(*inputs)
    torch.testing.assert_close(model(*inputs), want)
    assert not model.model.kept and "_PikeSDPASelfAttention" not in {type(m).__name__ for m in model.modules()}


ATTENTION_REUSED = '''
import torch
class Attention(torch.nn.Module):
    def forward(self, q, k, v):
        scores = q @ k.transpose(-2, -1)
        probs = scores.softmax(dim=-1)
        out = probs @ v
        return out, probs
'''


def test_the_attention_pattern_is_left_alone_where_its_parts_are_used_after():
    assert rewrite_classes(ATTENTION_REUSED, rewrite_attention, "_P") == {}
    assert rewrite_classes(ATTENTION_REUSED.replace("out, probs", "out"), rewrite_attention, "_P")


@pytest.mark.parametrize("n, chunk", [(37, 16), (16, 16), (5, 8), (1, 4)])
def test_the_chunked_scan_matches_the_step_by_step_loop(n, chunk):
    torch.manual_seed(n)
    a = torch.rand(2, n, 3, 4) * 1.6 - 0.3  # some negative, some above 1
    a[:, n // 2, 0] = 0.0
    x, h = torch.randn(2, n, 3, 4), torch.randn(2, 3, 4)
    states, state = [], h
    for t in range(n):
        state = a[:, t] * state + x[:, t]
        states.append(state)
    got = runtime._pike_linear_scan(a, x, h, dim=1, chunk=chunk)
    torch.testing.assert_close(got, torch.stack(states, dim=1), atol=1e-5, rtol=1e-4)


CONV3D = '''
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(4, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8)
        self.out = nn.Conv3d(8, 4, 1)

    def forward(self, x):
        return self.out(torch.nn.functional.silu(self.norm(self.conv(x))))


def get_inputs():
    return [torch.randn(2, 4, 3, 6, 6)]


def get_init_inputs():
    return []
'''


def test_channels_last_3d_on_a_conv3d_model(evaluator, tmp_path):
    path = tmp_path / "level9" / "1_Conv3dBlock.py"
    path.parent.mkdir()
    path.write_text(CONV3D)
    candidate = channels_last_3d(CONV3D, None, "cpu")
    result = evaluator.evaluate(task_from_file(path), candidate)
    assert result.status in ("correct", "suspicious"), f"{result.status}: {result.reason}\n{result.detail}"
    module = import_source(candidate, tmp_path, "cl3d")
    model = module.ModelNew()
    assert model.model.model.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)


def test_frontier_plans_lead_with_the_move_for_their_pattern():
    names = {task: [s.name for s in plan(source(task), None, "cuda")[0]] for task in (MOE, DECODE, MAMBA)}
    assert names[MOE][0] == "moe-grouped+cuda-graph" and "capture-pieces" in names[MOE]
    assert names[DECODE][0] == "tf32+decode-capture-if-faster" and "sdpa-rewrite" in names[DECODE]
    assert "scan-chunked" in names[MAMBA] and "tf32+scan-chunked+compile-cuda-graph" in names[MAMBA]
    for task in (DECODE, MAMBA):  # no host sync in these: nothing to capture piecewise
        assert "capture-pieces" not in names[task]
    # every graph candidate of the MoE task is piecewise-safe (the source syncs with the host)
    assert all("_PikeCUDAGraph(model)" not in s.source for s in plan(source(MOE), None, "cuda")[0])


@pytest.mark.slow  # the offline library run to its end
def test_an_offline_budget_stops_at_the_library_and_a_flagged_best_says_how_to_accept_it(tmp_path):
    task = task_from_file(DATA / "level0" / "1_TinyMLP.py")
    size = OfflineProposer.library_size(task.path.read_text(), "cpu")
    options = OptimizeOptions(budget_queries=50, llm="offline", store_path=tmp_path / "runs.sqlite",
                              solutions_dir=tmp_path / "solutions")
    # every correct candidate is flagged at this threshold, so the best one needs a review
    with Evaluator("cpu", trials=2, timing=TimingOptions(min_rounds=3, max_seconds=0.1), baselines=("eager",),
                   suspicious_over=1e-3) as evaluator:
        outcome = Optimizer(evaluator, options, progress=lambda line: None).optimize(task)
    assert outcome.queries == size < 50
    assert outcome.best is None and outcome.review is not None and outcome.review.outcome.status == "suspicious"
    assert outcome.review_file.read_text() == outcome.review.source
    summary = optimize_table([outcome])
    command = f"pike accept {outcome.review_file} --task level0/1_TinyMLP --store {options.store_path}"
    assert "level0/1_TinyMLP: best candidate needs review: " in summary and command in summary
    assert "over eager, the fastest baseline" in summary
    [entry] = leaderboard.build(options.store_path).entries
    assert entry.best_candidate_id is None
    # Accepted after review (flagged again at this threshold): kept, and the record's leaderboard counts it.
    accepted = subprocess.run([sys.executable, "-m", "pike_bench.cli", "accept", str(outcome.review_file),
                               "--task", str(task.path), "--device", "cpu", "--solutions", str(tmp_path / "kept"),
                               "--store", str(options.store_path), "--suspicious-over", "1e-3"],
                              capture_output=True, text=True, timeout=600)
    assert accepted.returncode == 0 and "kept " in accepted.stdout, accepted.stderr
    assert "review noted in " in accepted.stdout and "its leaderboard counts this candidate" in accepted.stdout
    [entry] = leaderboard.build(options.store_path).entries
    assert entry.reviewed and entry.speedup_eager.value == pytest.approx(outcome.review.outcome.speedup)
    assert "accepted after review" in entry.moves


def test_offline_replies_name_the_move_and_fit_the_screen():
    proposer = OfflineProposer()
    reply = asyncio.run(proposer.propose(Request(role="optimizer", system="", prompt="", task_id=MOE,
                                                 reference=source(MOE), device="cuda")))
    assert reply.meta["move"] == "moe-grouped+cuda-graph"
    from pike_bench.screen import screen

    for step in plan(source(MOE), None, "cuda")[0] + plan(source(DECODE), None, "cuda")[0]:
        assert screen(step.source).passed, (step.name, screen(step.source).problems)
    assert extract_code(reply.text).count("class ModelNew") == 1


@pytest.mark.parametrize("speedups, flagged_over", [
    ({"eager": 31.7, "compile": 4.7, "graph": 8.8}, None),  # mamba2 on the H200: routine after capture
    ({"eager": 31.7, "compile": 12.0, "graph": 11.0}, "graph"),  # 11x over the fastest baseline: look first
    ({"eager": 12.0}, "eager"),  # only eager timed: measured over eager
])  # fmt: skip
def test_suspicious_is_measured_over_the_fastest_baseline(speedups, flagged_over):
    from types import SimpleNamespace

    from pike_bench.evaluate.result import EvalResult, Speedup

    result = EvalResult("t", "correct", "", "", "cuda", "H200", "2.11", "eval", "full", 2, 0,
                        speedups={name: Speedup(v, v, v) for name, v in speedups.items()})
    Evaluator._flag_if_suspicious(SimpleNamespace(suspicious_over=10.0), result)
    if flagged_over is None:
        assert result.status == "correct"
    else:
        assert result.status == "suspicious"
        assert f"x over {flagged_over}, the fastest baseline, is above the 10x threshold" in result.reason
