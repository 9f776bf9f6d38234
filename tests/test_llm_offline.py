"""The offline proposer: every move it gives for the CPU is evaluated for real, in order,
and every role is answered (CPU only; no asyncio plugin: asyncio.run per request)."""

import ast
import asyncio
import importlib
import sys
from pathlib import Path

import pytest

from pike_bench.candidate import extract_code, import_source
from pike_bench.evaluate import Evaluator, TimingOptions
from pike_bench.llm import Proposer, ProposerError, Request, prompts
from pike_bench.llm.moves.library import COMBOS, MOVES, compile_default, plan
from pike_bench.llm.moves.render import paste, runtime_sections
from pike_bench.llm.offline import OfflineProposer
from pike_bench.screen import screen
from pike_bench.tasks import task_from_file

from conftest import DATA

ROOT = Path(__file__).resolve().parent.parent
TASKS = {
    "1_TinyMLP": DATA / "level0" / "1_TinyMLP.py",
    "2_TinyConvBN": DATA / "level0" / "2_TinyConvBN.py",
    "1_MLP": ROOT / "kernelbench_tasks" / "level3" / "1_MLP.py",
    "44_MiniGPTBlock": ROOT / "kernelbench_tasks" / "level3" / "44_MiniGPTBlock.py",
}
CUDA_ONLY = {move.name for move in MOVES + COMBOS if move.cuda_only}
TOLERANCE_REASONS = ("differs at index", "is off as a whole")


def ask(proposer, task_id, role="optimizer", device="cpu", parent=""):
    request = Request(
        role=role, system="", prompt="", task_id=task_id, reference=TASKS[task_id].read_text(), device=device, parent=parent
    )
    return asyncio.run(proposer.propose(request))


def sequence(task_id, device="cpu"):
    """Replies to optimizer requests until the proposer starts repeating itself, and two more."""
    proposer = OfflineProposer()
    replies = []
    while not replies or "best-known" not in replies[-1].text:
        replies.append(ask(proposer, task_id, device=device))
        assert len(replies) < 40, "the moves never run out"
    return replies + [ask(proposer, task_id, device=device) for _ in range(2)]


@pytest.fixture(scope="module")
def evaluator():
    with Evaluator("cpu", trials=2, timing=TimingOptions(min_rounds=10, max_seconds=0.2), baselines=("eager",)) as evaluator:
        yield evaluator


# The two slowest (half a minute each on 2 cores) go with the slow tests; 1_MLP and
# 2_TinyConvBN stay in the quick set.
@pytest.mark.parametrize("task_id", [pytest.param(t, marks=pytest.mark.slow) if t in ("1_TinyMLP", "44_MiniGPTBlock")
                                     else t for t in TASKS])
def test_every_move_for_the_cpu_is_correct_on_the_cpu(evaluator, task_id):
    task = task_from_file(TASKS[task_id])
    replies = sequence(task_id)[:-3]  # the distinct moves, before the repeats
    assert len(replies) >= 3
    for reply in replies:
        move, source = reply.meta["move"], extract_code(reply.text)
        result = evaluator.evaluate(task, source)
        if move.startswith("bf16") and result.status == "incorrect":
            assert any(reason in result.reason for reason in TOLERANCE_REASONS), (move, result.reason)
            continue
        assert result.status == "correct", f"{task_id} {move}: {result.status}: {result.reason}\n{result.detail}"
        assert result.languages == (["triton"] if "triton" in move else ["pytorch"]), move


@pytest.mark.parametrize("task_id", list(TASKS))
def test_the_best_combination_comes_first_then_the_moves_then_the_other_combinations(task_id):
    reference = TASKS[task_id].read_text()
    replies = sequence(task_id)
    best = next(m for m in COMBOS if m.fn(reference, None, "cpu") is not None)
    assert replies[0].meta["move"] == best.name
    best_source = best.fn(reference, None, "cpu")
    applicable = [m for m in MOVES if m.fn(reference, None, "cpu") not in (None, best_source)]
    moves = replies[1 : 1 + len(applicable)]
    assert [r.meta["move"] for r in moves] == [m.name for m in applicable]
    for reply, move in zip(moves, applicable):
        assert extract_code(reply.text) == move.fn(reference, None, "cpu").strip() + "\n"
    combos = [r.meta["move"] for r in replies[1 + len(applicable) : -3]]
    assert combos == [m.name for m in COMBOS if m.name in combos]  # in table order, after the moves
    assert best.name not in combos
    sources = [extract_code(r.text) for r in replies[:-3]]
    assert len(set(sources)) == len(sources), "a move is never proposed twice"
    for reply in replies:
        assert (reply.model, reply.input_tokens, reply.output_tokens, reply.dollars) == ("offline", 0, 0, 0.0)
        assert reply.text.count("```python") == 1


def test_moves_apply_where_the_task_has_what_they_need():
    names = {task_id: [r.meta["move"] for r in sequence(task_id)[1:-3]] for task_id in TASKS}
    assert names["2_TinyConvBN"][:4] == ["channels-last", "compile-max-autotune", "compile", "bf16-autocast"]
    assert names["44_MiniGPTBlock"][:4] == ["sdpa", "triton-activation", "triton-layernorm", "compile-max-autotune"]
    assert "triton-activation" in names["1_MLP"] and "triton-activation" not in names["1_TinyMLP"]  # torch.relu: no module
    assert not any("channels-last" in n or n == "sdpa" for n in names["1_MLP"] + names["1_TinyMLP"])


@pytest.mark.parametrize("task_id", list(TASKS))
def test_cuda_only_moves_are_not_proposed_for_the_cpu_but_are_for_cuda(task_id):
    for reply in sequence(task_id):
        source = extract_code(reply.text)
        assert reply.meta["move"] not in CUDA_ONLY
        assert "_PikeCUDAGraph" not in source and "reduce-overhead" not in source and "allow_tf32" not in source
    on_cuda = sequence(task_id, device="cuda")
    names = [r.meta["move"] for r in on_cuda]
    assert names[0] == "tf32+compile-cuda-graph"  # exploit first: the best-known combination
    assert names[1] == ("sdpa" if task_id == "44_MiniGPTBlock" else "compile-cuda-graph")
    assert {"compile-cuda-graph", "cuda-graph", "tf32"} <= set(names)
    assert on_cuda[-1].meta["move"] == "tf32+compile-cuda-graph"  # the best-known combination
    for reply in on_cuda:  # what runs only on a GPU is at least well-formed and passes the screen
        source = extract_code(reply.text)
        ast.parse(source)
        assert screen(source).passed, screen(source).problems


def test_requests_are_never_left_unanswered():
    replies = sequence("1_TinyMLP")
    best = replies[-1]
    assert "best-known" in best.text and replies[-2].text == best.text == replies[-3].text
    assert best.meta["move"] == "compile-max-autotune+task-moves"  # the first combination that applies
    assert extract_code(best.text) == extract_code(replies[0].text)  # on this task it is compile max-autotune


def test_counts_are_kept_per_task_and_role():
    proposer = OfflineProposer()
    assert ask(proposer, "1_TinyMLP").meta["index"] == 0
    assert ask(proposer, "1_TinyMLP").meta["index"] == 1
    ask(proposer, "1_TinyMLP", role="iba")
    ask(proposer, "1_TinyMLP", role="efa")
    assert ask(proposer, "2_TinyConvBN").meta["index"] == 0
    assert ask(proposer, "1_TinyMLP").meta["index"] == 2


def test_iba_lists_the_ideas_that_apply():
    proposer = OfflineProposer()
    text = ask(proposer, "44_MiniGPTBlock", role="iba").text
    assert text.splitlines()[1].startswith("1. compile-max-autotune+task-moves:")  # the best combination
    assert text.splitlines()[2].startswith("2. sdpa:")
    for name in ("compile-max-autotune", "triton-activation", "bf16-autocast"):
        assert f". {name}:" in text
    assert not any(f". {name}:" in text for name in CUDA_ONLY)
    on_cuda = asyncio.run(proposer.propose(Request(
        role="iba", system="", prompt="", task_id="x", reference=TASKS["2_TinyConvBN"].read_text(), device="cuda"
    )))  # fmt: skip
    assert ". compile-cuda-graph:" in on_cuda.text and ". cudnn-benchmark:" in on_cuda.text


def fix_request(task_id, parent, status, reason, device="cuda"):
    return Request(role="efa", system="", task_id=task_id, reference=TASKS[task_id].read_text(), device=device,
                   parent=parent, prompt=prompts.fix_prompt(TASKS[task_id].read_text(), parent, status, reason, ""))


def test_efa_answers_a_broken_rewrite_with_the_plain_compile_then_other_moves(evaluator):
    proposer = OfflineProposer()
    reference = TASKS["1_TinyMLP"].read_text()
    compiled = compile_default(reference, None, "cpu").strip() + "\n"
    broken = reference + "\n\nclass ModelNew(Model):\n    def forward(self, x):\n        return undefined_name\n"
    assert extract_code(ask(proposer, "1_TinyMLP", role="efa", parent=broken).text) == compiled
    again = ask(proposer, "1_TinyMLP", role="efa", parent=compiled)  # the compile failed too: not a variant of it
    assert "torch.compile(default)" not in extract_code(again.text) and again.meta["move"] != "compile"
    assert evaluator.evaluate(task_from_file(TASKS["1_TinyMLP"]), compiled).status == "correct"


@pytest.mark.parametrize("reason, marks", [
    ("Cannot copy between CPU and CUDA tensors during CUDA graph capture unless the CPU tensor is pinned",
     ("_PikeCUDAGraph(model)", "reduce-overhead", "_PikePiecewiseGraph(", "_PikeCapture(")),
    ("torch._dynamo.exc.Unsupported: data dependent operator", ("_pike_torch.compile(",)),
    ("output 0 differs at index (3, 1): 0.52 vs 0.41", ("allow_tf32", "_PikeBF16")),
])  # fmt: skip
def test_efa_reads_the_reason_and_avoids_its_cause(reason, marks):
    """The failed candidate is the first move (TF32 + compile + capture); the fix has none of the cause's marks."""
    proposer = OfflineProposer()
    first = asyncio.run(proposer.propose(Request(role="optimizer", system="", prompt="", task_id="44_MiniGPTBlock",
                                                 reference=TASKS["44_MiniGPTBlock"].read_text(), device="cuda")))
    failed = extract_code(first.text)
    assert all(mark in failed for mark in marks[:1])  # the failed one has the cause
    fix = asyncio.run(proposer.propose(fix_request("44_MiniGPTBlock", failed, "runtime_error", reason)))
    source = extract_code(fix.text)
    assert source.strip() != failed.strip() and not any(mark in source for mark in marks), fix.meta
    assert fix.meta["cause"] and fix.text.startswith("Offline fix (")
    second = asyncio.run(proposer.propose(fix_request("44_MiniGPTBlock", source, "runtime_error", reason)))
    assert extract_code(second.text) not in (source, failed)  # the next one: what was given is not given again


@pytest.mark.parametrize("task_id", list(TASKS))
def test_on_a_gpu_no_move_autotunes(task_id):
    """max-autotune held the H200 past the step limit on the ResNets and won no task there."""
    reference = TASKS[task_id].read_text()
    assert not [step.name for step in plan(reference, None, "cuda")[0] if "max-autotune" in step.source]
    if task_id == "2_TinyConvBN":  # on the CPU, where nothing holds a device, the library keeps them
        assert len([step for step in plan(reference, None, "cpu")[0] if "max-autotune" in step.source]) >= 2


@pytest.mark.parametrize("task, kept", [("level3/16_DenseNet201", False), ("level5/2_stablediffusion3_mmdit", False),
                                        ("level5/3_deepseek_v3_1gpu", True)])
def test_on_a_gpu_reduce_overhead_is_proposed_only_where_a_host_sync_breaks_the_forward(task, kept):
    """None of its 50 candidates on the H200 was a task's best; one took 234 s (SD3);
    compile-cuda-graph captures the same forward whole. The MoE task's routing syncs with
    the host, so whole capture fails there and inductor's cudagraph trees stay a move."""
    reference = (ROOT / "kernelbench_tasks" / f"{task}.py").read_text()
    names = [step.name for step in plan(reference, None, "cuda")[0] if "reduce-overhead" in step.source]
    assert names == (["compile-reduce-overhead", "tf32+compile-reduce-overhead"] if kept else [])


def test_a_move_that_ran_out_of_time_rules_its_variants_out_of_later_picks_also_after_a_resume():
    """10_ResNet101's compile-max-autotune ran past the 300 s step limit on the H200: any
    other autotuning move would cost as much (the library's autotuning moves are left on the CPU)."""
    task, reference = "2_TinyConvBN", TASKS["2_TinyConvBN"].read_text()
    size = OfflineProposer.library_size(reference, "cpu")

    def optimizer_picks(proposer):
        return [extract_code(ask(proposer, task).text) for _ in range(size - 1)]

    autotuning = [source for source in optimizer_picks(OfflineProposer()) if "max-autotune" in source]
    assert len(autotuning) >= 2
    timeout = fix_request(task, autotuning[0], "timeout",
                          "timed out after 300 s while checking candidate on input set 1", device="cpu")
    for fresh in (True, False):  # asked now, or replayed from the record by a resumed run
        proposer = OfflineProposer()
        if fresh:
            fix = asyncio.run(proposer.propose(timeout))
        else:
            fix = asyncio.run(OfflineProposer().propose(timeout))
            proposer.observe(timeout, fix)
        assert "max-autotune" not in extract_code(fix.text)
        picks = optimizer_picks(proposer)
        assert not [source for source in picks if "max-autotune" in source]
        assert "every move spent" in ask(proposer, task).text  # what is left is spent, not autotuned
    # Another failure rules nothing out of the optimizer's picks.
    proposer = OfflineProposer()
    asyncio.run(proposer.propose(fix_request(task, autotuning[0], "runtime_error", "anything at all", device="cpu")))
    assert [source for source in optimizer_picks(proposer) if "max-autotune" in source]


def test_the_optimizer_skips_what_the_efa_gave_and_the_library_size_counts_the_distinct_candidates():
    proposer = OfflineProposer()
    reference = TASKS["2_TinyConvBN"].read_text()
    size = OfflineProposer.library_size(reference, "cpu")
    fix = asyncio.run(proposer.propose(fix_request("2_TinyConvBN", reference, "runtime_error", "anything at all")))
    sources = {extract_code(fix.text)}
    for _ in range(size - 2):  # the ideas list is one query of the library's size
        sources.add(extract_code(ask(proposer, "2_TinyConvBN").text))
    assert len(sources) == size - 1  # every candidate once, the EFA's included
    assert "best-known" in ask(proposer, "2_TinyConvBN").text  # then the library is spent


def test_rewrites_change_the_built_model_not_the_source(tmp_path):
    reference = TASKS["44_MiniGPTBlock"].read_text()
    by_name = {r.meta["move"]: extract_code(r.text) for r in sequence("44_MiniGPTBlock")}
    models = {}
    for move, part in (("sdpa", "CausalSelfAttentionSDPA"), ("triton-activation", "_PikeTritonActivation"),
                       ("triton-layernorm", "_PikeTritonLayerNorm")):
        assert by_name[move].startswith(reference.rstrip())
        module = import_source(by_name[move], tmp_path, move.replace("-", "_"))
        models[move] = module.ModelNew(*module.get_init_inputs())
        assert part in {type(m).__name__ for m in models[move].modules()}, move
    assert type(models["triton-activation"].model.mlp["act"]).__name__ == "_PikeTritonActivation"  # NewGELU, by a probe
    assert type(models["triton-layernorm"].model.ln_1).__name__ == "_PikeTritonLayerNorm"


def test_protocol_and_errors():
    proposer = OfflineProposer()
    assert isinstance(proposer, Proposer) and proposer.name == "offline"
    with pytest.raises(ProposerError, match="no reference"):
        asyncio.run(proposer.propose(Request(role="optimizer", system="", prompt="", task_id="t", device="cpu")))
    with pytest.raises(ProposerError, match="role"):
        ask(proposer, "1_TinyMLP", role="critic")
    asyncio.run(proposer.aclose())


CHECK_LAYER_NORM = """
import sys
import torch
from pike_bench.candidate import import_source
from pike_bench.llm.moves.library import triton_layer_norm

reference, folder = open(sys.argv[1]).read(), sys.argv[2]
module = import_source(triton_layer_norm(reference, None, "cpu"), folder, "with_triton_layer_norm")
torch.manual_seed(0)
for norm, dtype in ((torch.nn.LayerNorm(48), torch.float32), (torch.nn.LayerNorm(100, bias=False), torch.float32),
                    (torch.nn.LayerNorm(64, elementwise_affine=False), torch.float32),
                    (torch.nn.LayerNorm(48), torch.bfloat16)):
    with torch.no_grad():
        for p in norm.parameters():
            p.normal_()
    norm = norm.to(dtype)
    x = torch.randn(3, 5, norm.normalized_shape[0], dtype=dtype) * 3 + 1
    want = norm(x)
    real, torch.nn.functional.layer_norm = torch.nn.functional.layer_norm, None  # only the kernel can answer
    got = module._PikeTritonLayerNorm(norm)(x)
    torch.nn.functional.layer_norm = real
    tolerance = 2e-2 if dtype == torch.bfloat16 else 1e-5
    torch.testing.assert_close(got, want, atol=tolerance, rtol=tolerance)
strided = torch.randn(5, 48, 3).transpose(1, 2)  # not contiguous: the original module answers
torch.testing.assert_close(module._PikeTritonLayerNorm(torch.nn.LayerNorm(48))(strided),
                           torch.nn.LayerNorm(48)(strided))
print("ok")
"""


def test_the_triton_layer_norm_kernel_matches_torch_in_the_interpreter(tmp_path):
    # A fresh interpreter: Triton reads TRITON_INTERPRET when it is imported.
    import os
    import subprocess
    import sys

    script = tmp_path / "check.py"
    script.write_text(CHECK_LAYER_NORM)
    run = subprocess.run([sys.executable, str(script), str(TASKS["44_MiniGPTBlock"]), str(tmp_path)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "TRITON_INTERPRET": "1"})
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]


@pytest.mark.parametrize("module", ["wrappers", "sdpa", "triton_kernels", "frontier"])
def test_a_runtime_module_reaches_a_candidate_whole(module, tmp_path):
    """The code pasted into candidates is a module of its own: it imports, and its sections,
    pasted after the torch import as a candidate has it, define what the module defines."""
    if module == "triton_kernels" and not sys.platform.startswith("linux"):
        pytest.skip("Triton is a dependency on Linux only (pyproject.toml)")
    imported = importlib.import_module(f"pike_bench.llm.moves.runtime.{module}")
    pasted = import_source("import torch as _pike_torch\n" + paste(module, *runtime_sections(module)), tmp_path, module)
    defined = {name for name in vars(imported) if name.startswith(("_pike", "_Pike", "_PIKE"))}
    assert defined and defined == {name for name in vars(pasted) if name.startswith(("_pike", "_Pike", "_PIKE"))}


def test_the_bf16_wrapper_gives_back_the_model_s_dtype_for_outputs_autocast_made_float16_or_bf16():
    """On the H200, cuDNN's LSTM came out of bf16 autocast in float16, and the LSTM tasks
    failed with "output has dtype torch.float16, expected torch.float32"."""
    import torch

    namespace: dict = {}
    exec("import torch as _pike_torch\n" + paste("wrappers", "map", "bf16 autocast"), namespace)

    class Outputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x):
            y = self.fc(x)
            return y.half(), (y.bfloat16(), y.double()), x.argmax(-1)

    half, (bf16, double), index = namespace["_PikeBF16"](Outputs())(torch.randn(3, 4))
    assert half.dtype == bf16.dtype == torch.float32  # the model's parameters' dtype
    assert double.dtype == torch.float64 and index.dtype == torch.int64  # not autocast's: left as they are
