"""Every candidate in this folder names the verdict it must get in its first lines:

    # expect: STATUS[: words the reason must contain]
    # task: NAME        (optional: a task of tests/data/level0, default 1_TinyMLP)
    # needs: cuda       (optional: runs only where CUDA is; measured on the GPU machine)
    # seed: N           (optional: a fixed Hypothesis seed, for a cheat caught only on some sets)
    # rule: NAME        (optional: the rule it breaks, pike_bench.policy.RULES; none for a correct one)

Cheats must be caught, faults must get their status, and the honest twin of each cheat
must still pass: a defense that rejects honest code is a bug.
"""

from pathlib import Path

import pytest
import torch

from pike_bench.evaluate import Evaluator, TimingOptions
from pike_bench.evaluate.messages import Contestant
from pike_bench.tasks import task_from_file

HERE = Path(__file__).parent
DATA = HERE.parent / "data" / "level0"
FILES = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("test_"))


def header(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(":")
        if key.strip() in ("expect", "task", "needs", "seed", "rule"):
            fields[key.strip()] = value.strip()
    return fields


@pytest.fixture(scope="module")
def evaluator():
    with Evaluator("cpu", trials=3, timeout=5, timing=TimingOptions(warmup=1, min_rounds=10, max_seconds=0.2),
                   baselines=("eager",)) as evaluator:
        yield evaluator


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_candidate_gets_the_verdict_it_names(evaluator, path):
    fields = header(path)
    if fields.get("needs") == "cuda" and not torch.cuda.is_available():
        pytest.skip("a CUDA-only cheat: run on the GPU machine (benchmarks/adversarial.py)")
    status, _, words = fields["expect"].partition(":")
    task = task_from_file(DATA / f"{fields.get('task', '1_TinyMLP')}.py")
    seed = int(fields["seed"]) if "seed" in fields else None
    result = evaluator.evaluate(task, path.read_text(), hypothesis_seed=seed)
    assert result.status == status.strip(), f"{result.reason}\n{result.detail}"
    assert words.strip() in result.reason
    assert "\n" not in result.reason
    if "rule" in fields or result.status == "correct":
        assert result.rule == fields.get("rule", ""), result.reason


def run_unscreened(evaluator, task, source):
    """The worker's own defenses, with the static screen out of the way."""
    reply = evaluator.run(task, [Contestant("candidate", source)], hypothesis_seed=1)
    return reply.results["candidate"]


def test_gc_peeking_finds_no_reference_output_of_the_set_it_is_checked_on(evaluator):
    task = task_from_file(DATA / "1_TinyMLP.py")
    result = run_unscreened(evaluator, task, (HERE / "gc_peek.py").read_text())
    assert result.status == "incorrect"


def test_task_file_tampering_is_caught_and_undone(tmp_path):
    level = tmp_path / "level0"
    level.mkdir()
    task_path = level / "1_TinyMLP.py"
    original = (DATA / "1_TinyMLP.py").read_text()
    task_path.write_text(original)
    source = (HERE / "tamper_task.py").read_text().replace(
        'next(pathlib.Path(".").rglob("1_TinyMLP.py"), None)', f"pathlib.Path({str(task_path)!r})"
    )
    # Without the sandbox, which makes the task file read-only (tests/test_sandbox.py).
    with Evaluator("cpu", trials=2, timing=TimingOptions(warmup=1, min_rounds=10, max_seconds=0.2),
                   baselines=("eager",), sandbox="off") as evaluator:
        result = run_unscreened(evaluator, task_from_file(task_path), source)
    assert (result.status, result.reason) == ("rejected", "it modified the task file (restored)")
    assert task_path.read_text() == original


def test_numeric_settings_are_recorded_and_do_not_leak_into_the_next_evaluation(evaluator):
    task = task_from_file(DATA / "1_TinyMLP.py")
    result = evaluator.evaluate(task, (HERE / "precision_tf32.py").read_text())
    assert result.status == "correct"
    assert "matmul_tf32=True" in result.precision and "float32_matmul_precision=high" in result.precision
    assert evaluator.evaluate(task, (HERE / "good.py").read_text()).precision == ""


def test_too_good_to_be_true_is_flagged_not_celebrated():
    task = task_from_file(DATA / "1_TinyMLP.py")
    with Evaluator("cpu", trials=2, timing=TimingOptions(min_rounds=10, max_seconds=0.2), baselines=("eager",),
                   suspicious_over=0.01) as evaluator:
        result = evaluator.evaluate(task, (HERE / "good.py").read_text())
    assert result.status == "suspicious"
    assert "above the 0.01x threshold" in result.reason


def test_policy_can_require_a_custom_kernel_and_languages_are_reported():
    task = task_from_file(DATA / "1_TinyMLP.py")
    with Evaluator("cpu", trials=2, timing=TimingOptions(min_rounds=10, max_seconds=0.2), baselines=(),
                   require_custom_kernel=True) as evaluator:
        plain = evaluator.evaluate(task, (HERE / "good.py").read_text())
        triton = evaluator.evaluate(task, (HERE / "triton_relu.py").read_text())
    assert (plain.status, plain.languages, plain.policy) == ("rejected", ["pytorch"], "custom-kernel")
    assert plain.reason.startswith("policy: at least one custom kernel")
    assert (triton.status, triton.languages) == ("correct", ["triton"])


def test_lower_precision_inside_the_tolerance_is_recorded(evaluator):
    task = task_from_file(DATA / "1_TinyMLP.py")
    result = evaluator.evaluate(task, (HERE / "precision_bf16.py").read_text(), hypothesis_seed=3)
    assert result.status == "correct"
    assert result.precision == "matmul/conv dtypes bfloat16, float32 (reference: float32)"
