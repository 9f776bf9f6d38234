"""Money and bad replies end to end: `pike optimize` and `pytest --pike-optimize` with the
real anthropic SDK talking to a Messages API of our own on 127.0.0.1.

What is checked is what a user pays and sees: the dollars recorded (and the dollars the
server would bill) never pass --pike-dollars, with 16 requests allowed in flight and
across a killed and resumed run; each bad answer is one recorded call with a status and
one line, and the good answers are evaluated; a source is evaluated once; a key the API
refuses stops the run in one line; a kept solution passes the very next gate.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("anthropic")

from conftest import DATA  # noqa: E402
from messages_api import FakeMessagesAPI, LocalServer, Scripted, message  # noqa: E402
from pike_bench.llm.prices import DEFAULT_PRICES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SLOW = str(DATA / "level0" / "6_SlowReference.py")
# The honest fast program for 6_SlowReference: the product it keeps, without the three it throws away.
FAST = """import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.linear = nn.Linear(features, features)

    def forward(self, x):
        return self.linear(x)
"""
OUTPUT_TOKENS = 4000  # an expensive reply: $0.04 of Sonnet output each
SONNET = DEFAULT_PRICES["claude-sonnet-5-5"]
FAST_RETRY = {"retry-after-ms": "5"}


def answer(body: dict) -> dict:
    """The server's good answer: ideas for the brainstorming agent, FAST for the others,
    with input tokens a third of the prompt's bytes (what code and English take)."""
    asked = body["system"] + "".join(m["content"] for m in body["messages"])
    tokens_in = len(asked.encode()) // 3
    if "plans optimizations" in body["system"]:
        return message("1. drop the unused products\n2. capture a CUDA graph", body["model"], tokens_in, 60)
    return message(f"Drop the unused work.\n\n```python\n{FAST}```\n", body["model"], tokens_in, OUTPUT_TOKENS)


def billed(api: FakeMessagesAPI) -> float:
    """What the API would have billed: every request answered with a usage, at list price
    (answers scripted with an error or an unreadable body bill nothing here)."""
    total = 0.0
    for sent in api.answered:
        usage = sent.get("usage") if isinstance(sent, dict) else None
        if usage:
            total += (usage["input_tokens"] * SONNET.input + usage["output_tokens"] * SONNET.output) / 1e6
    return total


@pytest.fixture
def env(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_") and k != "PIKE_PRICES"}
    environ.update(ANTHROPIC_API_KEY="sk-test-dummy", HOME=str(tmp_path), PYTHONUNBUFFERED="1")
    return environ


def optimize(tmp_path, api, dollars, budget=40, extra=()):
    return [sys.executable, "-m", "pike_bench.cli", "optimize", SLOW, "--device", "cpu", "--llm", "anthropic",
            "--budget", str(budget), "--dollars", str(dollars), "--concurrency", "16", "--max-time", "0.2",
            "--baselines", "eager",
            "--store", str(tmp_path / "runs.sqlite"), "--solutions", str(tmp_path / "solutions"),
            *extra]


def record(tmp_path, sql):
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        return db.execute(sql).fetchall()


def test_the_dollar_cap_holds_and_every_bad_reply_is_one_recorded_line(tmp_path, env):
    api = FakeMessagesAPI(reply=answer)
    truncated = message("Here it comes:\n\n```python\nimport torch\nclass ModelNew(", "claude-sonnet-5-5", 900, 8192)
    truncated["stop_reason"] = "max_tokens"
    refusal = message("I can't help with that.", "claude-sonnet-5-5", 900, 12)
    refusal["stop_reason"] = "refusal"
    api.script(
        Scripted(),  # the brainstorming query: answered by `answer`
        Scripted(body="{not json", delay=0.3),
        Scripted(body="<html><body>Gateway timeout</body></html>", headers={"content-type": "text/html"}),
        # A 5xx the API says not to retry: a failed query at once (the SDK's retries are tested elsewhere).
        Scripted(status=503, body="<html>unavailable</html>", headers={"content-type": "text/html",
                                                                      "x-should-retry": "false"}),
        Scripted(body=refusal, delay=0.3),
        Scripted(body=message("A CUDA graph would help here.", "claude-sonnet-5-5", 900, 30)),
        Scripted(body=truncated, delay=0.3),
    )
    api.delay = 0.3  # every good answer is slow, so the round's queries are in flight together
    cap = 0.6
    with LocalServer(api):
        env["ANTHROPIC_BASE_URL"] = api.url
        run = subprocess.run(optimize(tmp_path, api, cap), capture_output=True, text=True, timeout=900, env=env)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    spent = record(tmp_path, "SELECT SUM(dollars) FROM llm_calls")[0][0]
    assert 0 < spent <= cap and billed(api) <= spent
    # A round of 10 at ~$0.09 worst case each: never more in flight than the cap allows.
    assert 2 <= api.max_in_flight <= int(cap // 0.08)
    failures = dict(record(tmp_path, "SELECT status, reason FROM llm_calls WHERE status != 'ok'"))
    assert {"bad_reply", "server_error", "refused", "no_code", "truncated"} <= set(failures)
    assert all(reason and "\n" not in reason for reason in failures.values())
    assert "not JSON" in str(record(tmp_path, "SELECT reason FROM llm_calls WHERE status = 'bad_reply'"))
    # The good answers were evaluated, each distinct source once: the rest took its verdict.
    candidates = record(tmp_path, "SELECT same_as FROM candidates")
    assert len(candidates) >= 2 and sum(same is None for (same,) in candidates) == 1
    assert {s for (s,) in record(tmp_path, "SELECT status FROM evaluations")} == {"correct"}
    report = subprocess.run([sys.executable, "-m", "pike_bench.cli", "report", "1", "--store",
                             str(tmp_path / "runs.sqlite")], capture_output=True, text=True, timeout=60, env=env)
    assert "queries gave no program" in report.stdout and "| truncated" in report.stdout
    assert "same source as" in report.stdout


@pytest.mark.slow  # two optimize processes, one killed
def test_the_cap_holds_across_a_killed_and_resumed_run(tmp_path, env):
    api = FakeMessagesAPI(reply=answer)
    api.delay = 3.0
    cap = 0.3
    with LocalServer(api):
        env["ANTHROPIC_BASE_URL"] = api.url
        child = subprocess.Popen(optimize(tmp_path, api, cap, extra=("--strategy", "pike-b-no-iba")), env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while api.in_flight < 3 and time.monotonic() < deadline:  # a round of queries is out
            time.sleep(0.05)
        assert api.in_flight >= 3
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
        pending = record(tmp_path, "SELECT COUNT(*), SUM(dollars) FROM llm_calls WHERE status = 'pending'")[0]
        assert pending[0] >= 3 and pending[1] > 0.2  # each counted at its worst case
        api.delay = 0.0
        sent = len(api.requests)
        rerun = subprocess.run(optimize(tmp_path, api, cap, extra=("--strategy", "pike-b-no-iba")),
                               capture_output=True, text=True, timeout=900, env=env)
        time.sleep(3.5)  # the killed run's requests finish on the server: they are billed too
    assert "Traceback" not in rerun.stdout + rerun.stderr
    lost = record(tmp_path, "SELECT COUNT(*) FROM llm_calls WHERE status = 'lost'")[0][0]
    assert lost == pending[0]
    # The lost queries filled the budget at their worst case: the resumed run may send
    # only what still fits, and says so when nothing does.
    spent = record(tmp_path, "SELECT SUM(dollars) FROM llm_calls")[0][0]
    assert spent <= cap and billed(api) <= cap
    new = len(api.requests) - sent
    assert new == record(tmp_path, "SELECT COUNT(*) FROM llm_calls WHERE status != 'lost'")[0][0]
    if new == 0:
        assert "no query fits the dollar budget" in rerun.stdout


def test_a_refused_key_stops_the_run_in_one_line(tmp_path, env):
    api = FakeMessagesAPI(reply=answer)
    api.script(*[Scripted(status=401, body={"type": "error", "error": {
        "type": "authentication_error", "message": "invalid x-api-key"}})] * 4)
    with LocalServer(api):
        env["ANTHROPIC_BASE_URL"] = api.url
        run = subprocess.run(optimize(tmp_path, api, 1.0), capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("pike: ANTHROPIC_API_KEY is not accepted by")
    assert "Traceback" not in run.stderr
    assert len(api.requests) == 1  # the brainstorming query; nothing more was sent


@pytest.mark.slow  # a whole optimize run, then the gate
def test_optimize_then_gate_is_green(tmp_path, env):
    api = FakeMessagesAPI(reply=answer)
    common = ["-p", "no:cacheprovider", "--pike-tasks", SLOW, "--pike-device", "cpu", "--pike-max-time", "0.2",
              "--pike-trials", "2", "--pike-baselines", "eager", "--pike-store", str(tmp_path / "runs.sqlite"),
              "--pike-solutions", str(tmp_path / "solutions")]
    with LocalServer(api):
        env["ANTHROPIC_BASE_URL"] = api.url
        first = subprocess.run([sys.executable, "-m", "pytest", *common, "--pike-optimize", "--pike-llm", "anthropic",
                                "--pike-budget", "3", "--pike-dollars", "1"],
                               cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert first.returncode == 0, first.stdout[-3000:]
    assert (tmp_path / "solutions" / "level0" / "6_SlowReference" / "best.py").read_text() == FAST
    gate = subprocess.run([sys.executable, "-m", "pytest", *common, "-k", "solution"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert gate.returncode == 0, gate.stdout[-3000:]
    assert "gate ok: level0/6_SlowReference/best" in gate.stdout
