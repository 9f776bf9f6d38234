"""Check policies: each candidate of tests/data/policies judged by ours and by the peers'.

Every candidate names, in its first lines, the verdict each policy must give it:

    # strict: STATUS[: RULE[: words the reason must contain]]
    # pike: STATUS[: RULE]
    # kernelbench: STATUS[: RULE]
    # seed: N        (optional: the seed of the input sets, default 1)

strict must name the rule; pike and kernelbench must pass or fail it as PIKE's and
KernelBench's own evaluators would.
"""

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pike_bench import leaderboard
from pike_bench.evaluate import Evaluator
from pike_bench.policy import CHECKS, POLICIES, RULES, check_policy, parse_policies
from pike_bench.evaluate.result import CORRECT, INCORRECT, EvalResult
from pike_bench.store import Store
from pike_bench.tasks import task_from_file

from conftest import CANDIDATES, DATA, FAST_TIMING

pytest_plugins = ["pytester"]
POLICY_CANDIDATES = DATA / "policies"
FILES = sorted(POLICY_CANDIDATES.glob("*.py"))
TINY = DATA / "level0" / "1_TinyMLP.py"


def header(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(":")
        fields[key.strip()] = value.strip()
    return fields


@pytest.fixture(scope="module")
def evaluators():
    # No suspicious flag: the verdict of the checks alone (a stale cache is fast).
    opened = {name: Evaluator("cpu", trials=5, timeout=120, timing=FAST_TIMING, baselines=("eager",),
                              suspicious_over=float("inf"), check=name) for name in CHECKS}
    yield opened
    for evaluator in opened.values():
        evaluator.close()


def test_every_policy_names_known_rules_and_the_peers_apply_fewer():
    for policy in POLICIES.values():
        assert set(policy.rules) <= set(RULES), policy.name
    strict = set(POLICIES["strict"].rules)
    for peer in ("pike", "kernelbench"):
        assert set(POLICIES[peer].rules) < strict
        assert not POLICIES[peer].applies("whole-output") and not POLICIES[peer].applies("shared-storage")
    assert (POLICIES["pike"].mode, POLICIES["pike"].input_sets) == ("eval", 1)
    assert (POLICIES["kernelbench"].mode, POLICIES["kernelbench"].input_sets) == ("train", 5)
    assert [p.name for p in parse_policies("pike, strict,pike")] == ["pike", "strict"]
    with pytest.raises(ValueError, match="'lenient' is not a check policy; use strict, pike, kernelbench"):
        check_policy("lenient")


def test_a_policy_fixes_its_mode_and_input_sets():
    with Evaluator("cpu", mode="eval", trials=7, check="kernelbench") as evaluator:
        assert (evaluator.mode, evaluator.trials) == ("train", 5)
    with Evaluator("cpu", mode="train", trials=7, check="strict") as evaluator:
        assert (evaluator.mode, evaluator.trials) == ("train", 7)


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_candidate_gets_the_verdict_each_policy_names(evaluators, path, check):
    fields = header(path)
    status, _, rest = fields[check].partition(":")
    rule, _, words = rest.partition(":")
    result = evaluators[check].evaluate(task_from_file(TINY), path.read_text(),
                                        hypothesis_seed=int(fields.get("seed", 1)))
    assert (result.status, result.rule) == (status.strip(), rule.strip()), f"{result.reason}\n{result.detail}"
    assert words.strip() in result.reason
    assert result.check == check
    assert result.mode == (POLICIES[check].mode or "eval")
    assert result.trials == (POLICIES[check].input_sets or 5)


def test_a_scaled_only_failure_says_the_scale_and_sign(evaluators):
    result = evaluators["strict"].evaluate(task_from_file(TINY), (POLICY_CANDIDATES / "scaled_only.py").read_text(),
                                           hypothesis_seed=3)
    assert result.rule == "scaled-inputs"
    assert "at scale 2, sign -1: output differs at index" in result.reason
    assert "right on the same input set unscaled" in result.reason


def test_the_result_records_policy_and_rule_and_old_records_load_as_strict(tmp_path):
    task = task_from_file(TINY)
    result = EvalResult(task_id=task.id, status=INCORRECT, reason="stale output: ...", detail="", device="cpu",
                        device_name="cpu", torch_version="2", mode="train", size="small", trials=5,
                        hypothesis_seed=1, check="kernelbench", rule="stale-output")
    again = EvalResult.from_dict(json.loads(result.to_json()))
    assert (again.check, again.rule) == ("kernelbench", "stale-output")
    old = result.to_dict()
    del old["check"], old["rule"]
    assert (EvalResult.from_dict(old).check, EvalResult.from_dict(old).rule) == ("strict", "")

    with Store(tmp_path / "runs.sqlite") as store:
        run = store.start_run("k", {"task": task.id, "strategy": "pike-b", "llm": "offline"})
        first = store.record_candidate(run, task.id, "# a", parent_ids=[], island=None, round=None,
                                       agent="optimizer", slot="s1", llm_call_id=None)
        second = store.record_candidate(run, task.id, "# b", parent_ids=[], island=None, round=None,
                                        agent="optimizer", slot="s2", llm_call_id=None)
        store.record_evaluation(first, result)
        store.record_evaluation(second, result)
    # A record written before rules existed: its result JSON has no "rule".
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        db.execute("UPDATE evaluations SET result = ? WHERE candidate_id = ?", (json.dumps(old), second))
    with Store(tmp_path / "runs.sqlite") as store:
        rows = store.candidates(run, task.id)
    assert [row["rule"] for row in rows] == ["stale-output", None]


def test_the_leaderboard_shows_each_runs_policy_and_keeps_peer_runs_apart(tmp_path):
    task = task_from_file(TINY)
    path = tmp_path / "runs.sqlite"
    with Store(path) as store:
        for key, config in (("old", {}), ("peer", {"check": "kernelbench"})):
            run = store.start_run(key, {"task": task.id, "strategy": "pike-b", "llm": "offline", **config})
            candidate = store.record_candidate(run, task.id, f"# {key}", parent_ids=[], island=None, round=None,
                                               agent="optimizer", slot="s1", llm_call_id=None)
            store.record_evaluation(candidate, EvalResult(
                task_id=task.id, status=CORRECT, reason="", detail="", device="cpu", device_name="cpu",
                torch_version="2", mode="eval", size="small", trials=5, hypothesis_seed=1,
                check=config.get("check", "strict")))
    board = leaderboard.build(path)
    assert [(e.strategy, e.check) for e in board.entries] == [("pike-b", "strict"), ("pike-b [kernelbench]", "kernelbench")]
    assert board.superseded_runs == []
    assert [e["check"] for e in board.to_dict()["entries"]] == ["strict", "kernelbench"]
    assert [c.strip() for c in board.to_markdown().splitlines()[0].split("|")][-2] == "check"


def test_pike_check_reaches_the_evaluator_and_the_header(pytester):
    tasks = pytester.path / "tasks" / "level0"
    tasks.mkdir(parents=True)
    shutil.copy(TINY, tasks)
    pytester.makepyfile(test_policy="""
        def test_evaluator_judges_by_the_policy(pike_evaluator):
            assert (pike_evaluator.check.name, pike_evaluator.mode, pike_evaluator.trials) == ("kernelbench", "train", 5)
    """)
    common = ["-p", "no:cacheprovider", "--pike-tasks", "tasks", "--pike-device", "cpu"]
    # The task's own tests are collected too; only the evaluator's is run here.
    result = pytester.runpytest(*common, "--pike-check", "kernelbench", "-k", "judges_by_the_policy")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["pike-bench: 1 tasks, device cpu, size small, mode train, check kernelbench"])
    result = pytester.runpytest(*common, "--pike-check", "lenient")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pike-check: invalid choice: 'lenient'*"])


def pike(*args):
    return subprocess.run([sys.executable, "-m", "pike_bench.cli", *args], capture_output=True, text=True, timeout=900)


def test_audit_prints_and_writes_the_policies_side_by_side(tmp_path):
    folder = tmp_path / "published"
    (folder / "level0").mkdir(parents=True)
    (folder / "1_TinyMLP.py").write_text((POLICY_CANDIDATES / "stale_cache.py").read_text())  # by name
    (folder / "level0" / "2_TinyConvBN.py").write_text((CANDIDATES / "bn_running_stats.py").read_text())  # by id
    (folder / "99.py").write_text("# fits no task\n")
    out = tmp_path / "audit"
    run = pike("audit", str(DATA / "level0"), str(folder), "--device", "cpu", "--seed", "1", "--out", str(out),
               "--max-time", "0.3", "--trials", "3")
    assert run.returncode == 0, run.stderr

    audit = json.loads((out / "audit.json").read_text())
    assert [p["name"] for p in audit["policies"]] == ["strict", "pike", "kernelbench"]
    verdicts = {(row["task"], name): (r["status"], r["rule"], r["check"])
                for row in audit["rows"] for name, r in row["results"].items()}
    mlp, bn = "level0/1_TinyMLP", "level0/2_TinyConvBN"
    assert verdicts[(mlp, "strict")] == ("incorrect", "stale-output", "strict")
    assert verdicts[(mlp, "pike")][:2] in (("correct", ""), ("suspicious", ""))  # a cache is fast
    assert verdicts[(mlp, "kernelbench")] == ("incorrect", "stale-output", "kernelbench")
    assert verdicts[(bn, "strict")] == ("correct", "", "strict")
    assert verdicts[(bn, "pike")] == ("correct", "", "pike")
    assert verdicts[(bn, "kernelbench")] == ("incorrect", "allclose", "kernelbench")  # BatchNorm on batch statistics
    differences = {row["task"]: row["difference"] for row in audit["rows"]}
    assert differences == {mlp: "strict fails on stale-output; kernelbench fails on stale-output; pike passes",
                           bn: "kernelbench fails on allclose; strict, pike pass"}
    assert audit["passed"] == {"strict": 1, "pike": 2, "kernelbench": 0}
    assert audit["unmatched"] == ["99.py"] and bn in audit["rows"][1]["task"]
    assert audit["seed"] == 1

    markdown = (out / "audit.md").read_text()
    assert "| task" in markdown and "| strict" in markdown and "| kernelbench" in markdown
    table_row = next(line for line in markdown.splitlines() if line.startswith(f"| {bn}"))
    assert "level0/2_TinyConvBN.py" in table_row and "correct" in table_row and "incorrect: allclose" in table_row
    assert "## Reasons" in markdown and "stale output: on input set 2 it returned the result of input set 1" in markdown
    assert "fit no task (not judged): 99.py" in markdown
    # The terminal shows the same table.
    assert next(line for line in run.stdout.splitlines() if line.startswith(f"| {bn}")) == table_row

    # Run again into the same --out, as after a cut-off call: the verdicts there are kept, with
    # their seed, and only what is missing or whose candidate file changed is judged again.
    audit["rows"][0]["results"].pop("kernelbench")  # as if the run had stopped before it
    (out / "audit.json").write_text(json.dumps(audit))
    (folder / "level0" / "2_TinyConvBN.py").write_text((CANDIDATES / "bn_running_stats.py").read_text() + "# edited\n")
    run = pike("audit", str(DATA / "level0"), str(folder), "--device", "cpu", "--out", str(out),
               "--max-time", "0.3", "--trials", "3")
    assert run.returncode == 0, run.stderr
    assert f"resuming {out / 'audit.json'}: 5 earlier verdicts (seed 1)" in run.stderr
    judged = [line for line in run.stderr.splitlines() if " <- " in line]
    assert judged == [f"strict: {bn} <- level0/2_TinyConvBN.py", f"pike: {bn} <- level0/2_TinyConvBN.py",
                      f"kernelbench: {mlp} <- 1_TinyMLP.py", f"kernelbench: {bn} <- level0/2_TinyConvBN.py"]
    again = json.loads((out / "audit.json").read_text())
    assert again["seed"] == 1 and again["passed"] == audit["passed"]
    assert [row["difference"] for row in again["rows"]] == [differences[mlp], differences[bn]]


@pytest.mark.slow  # several `pike audit` processes
def test_audit_bad_input_is_one_line(tmp_path):
    run = pike("audit", str(DATA / "level0"), str(tmp_path), "--policies", "strict,lenient")
    assert run.returncode == 2 and run.stderr.strip() == (
        "pike: --policies 'lenient' is not a check policy; use strict, pike, kernelbench")
    run = pike("audit", "level9", str(tmp_path), "--tasks", str(DATA / "level0"))
    assert run.returncode == 2 and run.stderr.strip().startswith("pike: level9: neither a folder of tasks nor a level")
    run = pike("audit", str(DATA / "level0"), str(tmp_path), "--device", "cpu")
    assert run.returncode == 2 and "no file fits a task" in run.stderr
