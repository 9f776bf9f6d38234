"""The Claude proposer against the real anthropic SDK and a scripted local Messages API.

The SDK is pointed at a ThreadingHTTPServer on 127.0.0.1 through ANTHROPIC_BASE_URL,
with a dummy ANTHROPIC_API_KEY, so what is tested is the SDK's own behaviour too:
its retries, its reading of retry-after headers, its timeouts. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
import typing
import warnings

import pytest

anthropic = pytest.importorskip("anthropic")

from anthropic._data import DEPRECATED_MODELS  # noqa: E402  (the SDK's own list; no public name for it)

from messages_api import LocalServer, Scripted, message  # noqa: E402
from pike_bench.candidate import NoCodeError, extract_code  # noqa: E402
from pike_bench.llm.anthropic_backend import DEFAULT_MODELS, AnthropicProposer  # noqa: E402
from pike_bench.llm.base import MAX_TOKENS, Proposer, ProposerError, Request, RunStopped  # noqa: E402
from pike_bench.llm.prices import DEFAULT_PRICES, Price, cost, load_prices  # noqa: E402

CODE = "import torch\n\nclass ModelNew(torch.nn.Module):\n    def forward(self, x):\n        return x * 2\n"
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
RATE_LIMITED = {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests exceeded"}}
# Other ways the SDK finds credentials, headers or profiles: none may leak in from the machine.
ANTHROPIC_ENV_TO_CLEAR = (
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_CUSTOM_HEADERS",
    "ANTHROPIC_PROFILE",
    "ANTHROPIC_CONFIG_DIR",
    "ANTHROPIC_FEDERATION_RULE_ID",
    "ANTHROPIC_ORGANIZATION_ID",
    "ANTHROPIC_IDENTITY_TOKEN",
    "ANTHROPIC_IDENTITY_TOKEN_FILE",
)
FAST_RETRY = {"retry-after-ms": "5"}  # the SDK waits what the server asks; default backoff starts at 0.5 s


@pytest.fixture
def api(monkeypatch, tmp_path):
    """A scripted Messages API on a free port; the SDK finds it through its own env vars."""
    with LocalServer() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-dummy")
        monkeypatch.setenv("HOME", str(tmp_path))  # no profile on disk can interfere
        for name in ANTHROPIC_ENV_TO_CLEAR + ("PIKE_PRICES",):
            monkeypatch.delenv(name, raising=False)
        yield fake


def ask(proposer: AnthropicProposer, *requests: Request) -> list:
    """Run requests concurrently on a fresh event loop, then close the client."""

    async def go():
        try:
            return await asyncio.gather(*(proposer.propose(request) for request in requests))
        finally:
            await proposer.aclose()

    return asyncio.run(go())


def request(role: str = "optimizer", **changes) -> Request:
    return Request(role=role, system="You write fast PyTorch.", prompt="Make it faster.", **changes)


def sdk_models() -> set[str]:
    """The model names the installed SDK lists in ModelParam's Literal."""
    names: set[str] = set()
    for part in typing.get_args(anthropic.types.ModelParam):
        names.update(arg for arg in typing.get_args(part) if isinstance(arg, str))
    return names


# --- models and prices ---------------------------------------------------------------


def test_default_models_are_known_current_and_priced():
    known = sdk_models()
    assert known, "the SDK's ModelParam literal could not be read"
    for role, model in DEFAULT_MODELS.items():
        assert model in known, f"{role}: {model} is not a model the installed SDK knows"
        assert model not in DEPRECATED_MODELS, f"{role}: {model} is deprecated in the installed SDK"
        assert model in DEFAULT_PRICES, f"{role}: {model} has no price"
    assert "sonnet" in DEFAULT_MODELS["optimizer"] and "haiku" in DEFAULT_MODELS["efa"]


def test_every_model_the_sdk_knows_has_a_price():
    assert sorted(sdk_models() - set(DEFAULT_PRICES)) == []


def test_override_file_from_argument_and_env(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"claude-sonnet-5-5": {"input": 1.5, "output": 7.5}, "my-model": {"input": 1, "output": 2}}))
    monkeypatch.delenv("PIKE_PRICES", raising=False)
    assert load_prices()["claude-sonnet-5-5"] == DEFAULT_PRICES["claude-sonnet-5-5"]
    assert load_prices(str(path))["claude-sonnet-5-5"] == Price(1.5, 7.5)
    monkeypatch.setenv("PIKE_PRICES", str(path))
    prices = load_prices()
    assert prices["my-model"] == Price(1.0, 2.0)
    assert prices["claude-haiku-5-5"] == DEFAULT_PRICES["claude-haiku-5-5"]


def test_bad_override_file_says_what_is_wrong(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"m": {"input": 1.0}}))
    with pytest.raises(ValueError, match="'m'.*input.*output"):
        load_prices(str(path))


def test_cost_uses_the_table_and_the_long_prompt_tier():
    prices = load_prices()
    assert cost("claude-sonnet-5-5", 1_000_000, 1_000_000, prices) == pytest.approx(12.0)
    assert cost("claude-haiku-5-5", 100_000, 1000, prices) == pytest.approx(0.01 + 0.0005)
    assert cost("claude-haiku-5-5", 100_001, 1000, prices) == pytest.approx(100_001 * 0.5e-6 + 1000 * 2.5e-6)


def test_unknown_model_costs_nothing_and_warns_once():
    with pytest.warns(UserWarning, match="no price for model 'not-a-real-model'.*PIKE_PRICES"):
        assert cost("not-a-real-model", 1000, 1000, {}) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cost("not-a-real-model", 1000, 1000, {}) == 0.0


def test_pike_bench_imports_without_anthropic():
    code = "import sys, pike_bench, pike_bench.llm, pike_bench.llm.prices; sys.exit('anthropic' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --- replies -------------------------------------------------------------------------


def test_reply_with_code(api):
    text = f"Fuse the ops.\n\n```python\n{CODE}```\n"
    api.script(Scripted(body=message(text)))
    proposer = AnthropicProposer()
    assert isinstance(proposer, Proposer)
    [reply] = ask(proposer, request())
    assert CODE in reply.text
    assert extract_code(reply.text) == CODE
    assert (reply.model, reply.input_tokens, reply.output_tokens) == ("claude-sonnet-5-5", 1200, 800)
    assert reply.dollars == pytest.approx(1200 * 2.0 / 1e6 + 800 * 10.0 / 1e6)
    assert reply.meta == {"id": "msg_1", "stop_reason": "end_turn"}
    assert reply.seconds > 0
    sent = api.requests[0]
    assert "sk-test-dummy" in sent["headers"].get("x-api-key", "") + sent["headers"].get("authorization", "")
    assert sent["body"]["model"] == "claude-sonnet-5-5"
    assert sent["body"]["max_tokens"] == MAX_TOKENS["optimizer"]
    assert sent["body"]["system"] == "You write fast PyTorch."
    assert sent["body"]["messages"] == [{"role": "user", "content": "Make it faster."}]


def test_reply_without_code(api):
    api.script(Scripted(body=message("I would fuse the two matmuls, but here is no code.")))
    [reply] = ask(AnthropicProposer(), request())
    with pytest.raises(NoCodeError) as caught:
        extract_code(reply.text)
    assert "\n" not in str(caught.value) and "```python" in str(caught.value)


def test_roles_pick_models_and_request_model_overrides(api):
    api.script(Scripted(body=message("a", model="claude-haiku-5-5")), Scripted(body=message("b", model="claude-opus-5-5")))
    proposer = AnthropicProposer(concurrency=1)  # one at a time: the queue's order is the requests' order
    efa, overridden = ask(proposer, request("efa"), request("efa", model="claude-opus-5-5"))
    assert [sent["body"]["model"] for sent in api.requests] == ["claude-haiku-5-5", "claude-opus-5-5"]
    assert efa.dollars == pytest.approx(1200 * 0.10 / 1e6 + 800 * 0.50 / 1e6)
    assert overridden.dollars == pytest.approx(1200 * 4.0 / 1e6 + 800 * 20.0 / 1e6)


# --- failures and retries ------------------------------------------------------------


@pytest.mark.parametrize("headers", [FAST_RETRY, {"retry-after": "0"}], ids=["retry-after-ms", "retry-after-0"])
def test_rate_limit_is_retried(api, headers):
    api.script(Scripted(status=429, body=RATE_LIMITED, headers=headers), Scripted(body=message("ok")))
    [reply] = ask(AnthropicProposer(max_retries=2), request())
    assert reply.text == "ok"
    assert len(api.requests) == 2


def test_overloaded_is_retried(api):
    api.script(Scripted(status=529, body=OVERLOADED, headers=FAST_RETRY), Scripted(body=message("ok")))
    [reply] = ask(AnthropicProposer(max_retries=2), request())
    assert reply.text == "ok"
    assert len(api.requests) == 2


def test_overloaded_beyond_retries_is_a_failed_query_in_one_line(api):
    api.script(*[Scripted(status=529, body=OVERLOADED, headers=FAST_RETRY)] * 3)
    [reply] = ask(AnthropicProposer(max_retries=2), request())
    assert (reply.status, reply.dollars, reply.text) == ("server_error", 0.0, "")
    assert re.search(r"overloaded \(529, after 3 attempts\)", reply.reason)
    assert len(api.requests) == 3
    assert api.url in reply.reason and "\n" not in reply.reason


def test_timeout_counts_at_its_worst_case(api):
    api.script(Scripted(delay=2.0))
    proposer = AnthropicProposer(max_retries=0, timeout=0.5)
    started = time.perf_counter()
    [reply] = ask(proposer, request())
    assert time.perf_counter() - started < 1.5
    assert reply.status == "timeout" and re.search(r"within the 0.5 s timeout.*raise the timeout", reply.reason)
    assert reply.dollars == proposer.worst_case(request()) > 0  # the API may have billed it


@pytest.mark.parametrize("status, kind, message, says", [
    (401, "authentication_error", "invalid x-api-key", "ANTHROPIC_API_KEY is not accepted by {url}: set a valid key"),
    (403, "permission_error", "no access to this model", "the key may not use claude-sonnet-5-5 .*--pike-model"),
    (404, "not_found_error", "model: claude-sonnet-5-5", "does not know model 'claude-sonnet-5-5': .*--pike-model"),
])
def test_a_key_or_model_the_api_refuses_stops_the_run_at_once(api, status, kind, message, says):
    api.script(Scripted(status=status, body={"type": "error", "error": {"type": kind, "message": message}}))
    with pytest.raises(RunStopped, match=says.format(url=re.escape(api.url))) as caught:
        ask(AnthropicProposer(max_retries=2), request())
    assert len(api.requests) == 1  # not retried
    assert "\n" not in str(caught.value)


def test_unreachable_server_is_a_failed_query_that_cost_nothing(api):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    [reply] = ask(AnthropicProposer(max_retries=0, base_url=f"http://127.0.0.1:{port}"), request())
    assert (reply.status, reply.dollars) == ("connection", 0.0)
    assert re.search("cannot reach .*ANTHROPIC_BASE_URL", reply.reason)


@pytest.mark.parametrize("answer, status, says", [
    (Scripted(body="{not json"), "bad_reply", "a body that is not JSON"),
    (Scripted(body="<html><body>Service unavailable</body></html>", headers={"content-type": "text/html"}),
     "bad_reply", "not a message: <html>"),
    (Scripted(status=502, body="<html>Bad gateway</html>", headers={"content-type": "text/html"}),
     "server_error", "failed with 502"),
    (Scripted(status=400, body={"type": "error", "error": {
        "type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"}}),
     "prompt_too_long", "prompt is too long"),
    (Scripted(status=429, body=RATE_LIMITED, headers=FAST_RETRY), "rate_limited", "rate limited"),
    (Scripted(drop=True), "connection", "cannot reach"),  # dropped after the request was read
])
def test_a_bad_answer_is_a_failed_query_with_one_line(api, answer, status, says):
    api.script(answer)  # max_retries=0: the SDK's retries are tested above
    proposer = AnthropicProposer(max_retries=0, timeout=2.0)
    [reply] = ask(proposer, request())
    assert reply.status == status and says in reply.reason and "\n" not in reply.reason
    assert reply.text == ""
    # Only an answer that may have been billed (a 200 with an unreadable body, a reply
    # that never arrived) counts, at its worst case; error statuses are not billed.
    billed = status in ("bad_reply", "connection")
    assert reply.dollars == (proposer.worst_case(request()) if billed else 0.0)


def test_the_worst_case_bounds_the_real_cost(api):
    proposer = AnthropicProposer()
    asked = Request(role="optimizer", system="You write fast PyTorch.", prompt="é" * 3000 + "make it fast",
                    max_tokens=500)
    bound = proposer.worst_case(asked)
    # The most the API could bill: more input tokens than the prompt has bytes cannot be.
    tokens_in = len(asked.prompt.encode()) + len(asked.system.encode())
    api.script(Scripted(body=message(f"```python\n{CODE}```", input_tokens=tokens_in, output_tokens=500)))
    [reply] = ask(proposer, asked)
    assert 0 < reply.dollars <= bound
    assert bound == pytest.approx(((tokens_in + 64) * 2.0 + 500 * 10.0) / 1e6)
    # An unpriced model has no bound: a dollar budget never sends it.
    assert AnthropicProposer(models={"optimizer": "claude-unpriced"}).worst_case(request()) == float("inf")


def test_missing_key_fails_at_construction(api, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ProposerError, match="no Anthropic credentials: set ANTHROPIC_API_KEY"):
        AnthropicProposer()


def test_unreadable_profile_fails_at_construction(api, monkeypatch, tmp_path):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path / "empty"))  # names a profile folder with no profile
    with pytest.raises(ProposerError, match="credentials could not be loaded: set ANTHROPIC_API_KEY") as caught:
        AnthropicProposer()
    assert "\n" not in str(caught.value)


# --- concurrency ---------------------------------------------------------------------


def test_requests_run_concurrently_up_to_the_limit(api):
    api.script(*[Scripted(delay=0.3)] * 8)
    started = time.perf_counter()
    replies = ask(AnthropicProposer(concurrency=4), *[request(slot=f"s{i}") for i in range(8)])
    elapsed = time.perf_counter() - started
    assert len(replies) == 8 and len(api.requests) == 8
    assert elapsed < 1.5, f"8 requests of 0.3 s took {elapsed:.2f} s"
    assert api.max_in_flight == 4


def test_long_replies_need_no_streaming(api):
    # The SDK refuses large non-streaming max_tokens only under its default timeout; ours is explicit.
    [reply] = ask(AnthropicProposer(), request(max_tokens=64000))
    assert reply.text == "Hello" and api.requests[0]["body"]["max_tokens"] == 64000
