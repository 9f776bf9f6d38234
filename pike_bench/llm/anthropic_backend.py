"""Claude through the anthropic SDK: the proposer that makes real calls.

The SDK does the network work: it reads ``ANTHROPIC_API_KEY`` (or its other credential
sources) and ``ANTHROPIC_BASE_URL``, and retries 408/409/429/5xx/529 and dropped
connections itself, waiting as long as the server's ``retry-after`` asks. This module
adds what a search run needs on top: a cap on requests in flight, a model per role,
dollars per reply, and one readable line when a request fails for good.

anthropic is imported here only, so the rest of pike_bench imports without it.
"""

from __future__ import annotations

import asyncio
import time

import anthropic

from pike_bench.llm.base import ProposerError, Reply, Request
from pike_bench.llm.prices import Price, cost, load_prices

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
            except anthropic.AnthropicError as error:
                raise ProposerError(self._explain(error, model)) from error
            seconds = time.perf_counter() - started
        return self._reply(message, model, seconds)

    def _reply(self, message, requested: str, seconds: float) -> Reply:
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

    def _explain(self, error: anthropic.AnthropicError, model: str) -> str:
        return _one_line(_explanation(error, model, self.base_url, self.max_retries, self.timeout))

    async def aclose(self) -> None:
        await self._client.close()


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
        return f"ANTHROPIC_API_KEY is not accepted by {base}: check the key ({detail})"
    if isinstance(error, anthropic.PermissionDeniedError):
        return f"the key may not use {model} at {base}: pick another model or check the account ({detail})"
    if isinstance(error, anthropic.NotFoundError):
        return f"{base} does not know model {model!r}: check the model name ({detail})"
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
