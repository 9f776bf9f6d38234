"""Claude through the anthropic SDK: the proposer that makes real calls.

The SDK does the network work: it reads ``ANTHROPIC_API_KEY`` (or its other credential
sources) and ``ANTHROPIC_BASE_URL``, and retries 408/409/429/5xx/529 and dropped
connections itself, waiting as long as the server's ``retry-after`` asks. This module
adds what a search run needs on top: a cap on requests in flight, a model per role,
dollars per reply and the most a request can cost, and a failed query turned into a
Reply with a status and one readable line, so the search goes on. Only what no later
query can survive (a refused key, a model the key cannot use) stops the run.

anthropic is imported here only, so the rest of pike_bench imports without it.
"""

from __future__ import annotations

import asyncio
import time

import anthropic

from pike_bench.llm.base import ProposerError, Reply, Request, RunStopped, failed
from pike_bench.llm.prices import Price, cost, load_prices

# Tokens the API adds around a prompt (role markers, the system block): a generous bound.
MESSAGE_OVERHEAD_TOKENS = 64

# Sonnet for the agents that write kernels (quality per dollar), Haiku for the error
# fixer, which PIKE calls often on small, local repairs. Both are current models the
# installed SDK knows and does not mark deprecated (tests/test_llm_anthropic.py checks).
DEFAULT_MODELS = {
    "optimizer": "claude-sonnet-5-5",
    "iba": "claude-sonnet-5-5",
    "efa": "claude-haiku-5-5",
}


class AnthropicProposer:
    name = "anthropic"

    def __init__(
        self,
        models: dict[str, str] | None = None,
        concurrency: int = 16,
        max_retries: int = 4,
        timeout: float = 600.0,
        prices: dict[str, Price] | None = None,
        base_url: str | None = None,  # None: the SDK's own choice (ANTHROPIC_BASE_URL, else the public API)
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.models = {**DEFAULT_MODELS, **(models or {})}
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.prices = load_prices() if prices is None else prices
        self._client = _client(base_url, max_retries, timeout)
        self._slots = asyncio.Semaphore(concurrency)

    @property
    def base_url(self) -> str:
        return str(self._client.base_url).rstrip("/")

    def model_for(self, request: Request) -> str:
        model = request.model or self.models.get(request.role, "")
        if not model:
            raise ProposerError(f"no model for role {request.role!r}: pass models={{{request.role!r}: ...}}")
        return model

    def worst_case(self, request: Request) -> float:
        """The most this request can cost: every prompt byte a token (no token is shorter
        than a byte) at the input rate, and all of max_tokens at the output rate, of the
        model that will answer it. An unpriced model has no bound (inf)."""
        price = self.prices.get(self.model_for(request))
        if price is None:
            return float("inf")
        tokens_in = prompt_tokens_bound(request)
        input_rate, output_rate = price.rates(tokens_in)
        return (tokens_in * input_rate + request.max_tokens * output_rate) / 1_000_000

    async def propose(self, request: Request) -> Reply:
        model = self.model_for(request)
        async with self._slots:
            started = time.perf_counter()
            try:
                message = await self._client.messages.create(
                    model=model,
                    max_tokens=request.max_tokens,
                    system=request.system,
                    messages=[{"role": "user", "content": request.prompt}],
                )
            except (anthropic.AuthenticationError, anthropic.PermissionDeniedError, anthropic.NotFoundError) as error:
                raise RunStopped(self._explain(error, model)) from error
            except anthropic.AnthropicError as error:
                return self._failure(error, request, model)
            except ValueError as error:  # a 200 whose body is not JSON: the SDK's json.loads fails
                return failed("bad_reply", _one_line(f"{self.base_url} answered with a body that is not JSON ({error})"),
                              model, self.worst_case(request))
            seconds = time.perf_counter() - started
        return self._reply(message, model, seconds, request)

    def _reply(self, message, requested: str, seconds: float, request: Request) -> Reply:
        if not isinstance(message, anthropic.types.Message) or message.usage is None or message.content is None:
            # An HTML page or another body served with status 200: no usage to bill by, so
            # it is counted at its worst case (it may have been billed).
            shown = _one_line(str(message), 80)
            return failed("bad_reply", f"{self.base_url} answered with something that is not a message: {shown}",
                          requested, self.worst_case(request))
        # Price by the model that answered (the API may name a dated snapshot of an alias),
        # falling back to the name we asked for when only that one has a price.
        model = message.model or requested
        priced = model if model in self.prices else requested
        usage = message.usage
        return Reply(
            text="".join(block.text for block in message.content if block.type == "text"),
            model=model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            dollars=cost(priced, usage.input_tokens, usage.output_tokens, self.prices),
            seconds=seconds,
            meta={"id": message.id, "stop_reason": message.stop_reason},
        )

    def _failure(self, error: anthropic.AnthropicError, request: Request, model: str) -> Reply:
        """A query that failed after the SDK's retries, as a Reply the search can pass over."""
        reason = self._explain(error, model)
        if isinstance(error, anthropic.BadRequestError):
            long = "too long" in str(error.message).lower() or "too many tokens" in str(error.message).lower()
            return failed("prompt_too_long" if long else "rejected", reason, model)
        if isinstance(error, anthropic.RateLimitError):
            return failed("rate_limited", reason, model)
        if isinstance(error, anthropic.APIStatusError):
            return failed("server_error" if error.status_code >= 500 else "rejected", reason, model)
        if isinstance(error, anthropic.APITimeoutError):
            # The API may have answered (and billed) after we stopped listening.
            return failed("timeout", reason, model, self.worst_case(request))
        if isinstance(error, anthropic.APIConnectionError):
            # Refused: nothing reached the API. (The SDK's HTTP library is httpx, or httpx2 in
            # newer releases; the name of the cause's class is the same in both.)
            never_sent = type(error.__cause__).__name__ == "ConnectError"
            return failed("connection", reason, model, 0.0 if never_sent else self.worst_case(request))
        return failed("bad_reply", reason, model, self.worst_case(request))

    def _explain(self, error: anthropic.AnthropicError, model: str) -> str:
        return _one_line(_explanation(error, model, self.base_url, self.max_retries, self.timeout))

    async def aclose(self) -> None:
        await self._client.close()


def prompt_tokens_bound(request: Request) -> int:
    return len(request.system.encode("utf-8")) + len(request.prompt.encode("utf-8")) + MESSAGE_OVERHEAD_TOKENS


def _client(base_url: str | None, max_retries: int, timeout: float) -> anthropic.AsyncAnthropic:
    """The SDK's client, checked for credentials now rather than at the first request."""
    try:
        client = anthropic.AsyncAnthropic(base_url=base_url, max_retries=max_retries, timeout=timeout)
    except anthropic.AnthropicError as error:  # a profile named by the environment that cannot be read
        raise ProposerError(_one_line(_credentials_problem(error))) from error
    # With no credentials at all the SDK would fail only at the first request, with a TypeError.
    if client.api_key is None and client.auth_token is None and client.credentials is None:
        raise ProposerError("no Anthropic credentials: set ANTHROPIC_API_KEY (or log in with an Anthropic profile)")
    return client


def _credentials_problem(error: anthropic.AnthropicError) -> str:
    return f"Anthropic credentials could not be loaded: set ANTHROPIC_API_KEY or fix the profile ({error})"


def _explanation(error: anthropic.AnthropicError, model: str, base: str, retries: int, timeout: float) -> str:
    tries = f"after {retries + 1} attempt{'s' if retries else ''}"
    if isinstance(error, anthropic.APITimeoutError):
        return f"no reply from {base} within the {timeout:g} s timeout ({tries}): raise the timeout or lower max_tokens"
    if isinstance(error, anthropic.APIConnectionError):
        return f"cannot reach {base} ({tries}): check the network and ANTHROPIC_BASE_URL"
    if isinstance(error, anthropic.APIStatusError):
        return _status_explanation(error, model, base, tries)
    if isinstance(error, anthropic.CredentialsError):
        return _credentials_problem(error)
    return f"the anthropic SDK failed on {model}: {error}"


def _status_explanation(error: anthropic.APIStatusError, model: str, base: str, tries: str) -> str:
    status, detail = error.status_code, error.api_message or error.message
    if isinstance(error, anthropic.AuthenticationError):
        return f"ANTHROPIC_API_KEY is not accepted by {base}: set a valid key ({detail})"
    if isinstance(error, anthropic.PermissionDeniedError):
        return f"the key may not use {model} at {base}: choose another with --pike-model / --pike-efa-model ({detail})"
    if isinstance(error, anthropic.NotFoundError):
        return f"{base} does not know model {model!r}: choose another with --pike-model / --pike-efa-model ({detail})"
    if isinstance(error, anthropic.RateLimitError):
        return f"rate limited by {base} ({tries}): lower the concurrency or wait ({detail})"
    if status == 529:
        return f"{base} is overloaded (529, {tries}): try again later or raise max_retries"
    if status >= 500:
        return f"{base} failed with {status} ({tries}): try again later ({detail})"
    return f"{base} rejected the request to {model} with {status}: {detail}"


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
