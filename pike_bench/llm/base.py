"""The one small protocol every proposer speaks, and the values it returns.

A proposer answers a request for one agent role with text. The optimizing agent,
the error fixing agent (EFA) and the initial brainstorming agent (IBA) are roles, so
a strategy can give each its own model and its own share of the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

ROLES = ("optimizer", "efa", "iba")
LLMS = ("auto", "anthropic", "offline", "replay")  # auto: anthropic when ANTHROPIC_API_KEY is set, else offline

# The longest reply each role may write, which is also what bounds a query's cost: the
# optimizer and the EFA return a whole program (a KernelBench candidate with inline CUDA
# is 3,000-6,000 tokens), the IBA a numbered list of ideas.
MAX_TOKENS = {"optimizer": 8192, "efa": 8192, "iba": 2048}

# What became of a query. "ok" is an answer to evaluate; every other status is a query
# that gave nothing to evaluate, recorded with a one-line reason, and the search goes on.
OK = "ok"
QUERY_FAILURES = (
    "no_code",  # the reply holds no ```python block
    "truncated",  # cut at max_tokens before the program ended
    "refused",  # the model declined (stop_reason "refusal")
    "bad_reply",  # a body that is not a Messages API reply (not JSON, an HTML page, fields missing)
    "prompt_too_long",  # 400: the prompt does not fit the model's context
    "rejected",  # another 4xx for this request
    "rate_limited",  # 429 after the SDK's own retries
    "server_error",  # 5xx / 529 after the SDK's own retries
    "timeout",  # no reply within the timeout
    "connection",  # refused, reset or dropped connection
    "lost",  # sent, but the run ended (killed) before its reply came back
)


@dataclass(frozen=True)
class Request:
    role: str  # one of ROLES
    system: str
    prompt: str
    model: str = ""  # empty: the proposer's default for the role
    max_tokens: int = MAX_TOKENS["optimizer"]
    task_id: str = ""  # which task this request serves (for the record and for offline moves)
    slot: str = ""  # the strategy's name for this request ("r2/s5", "r2/s5/fix1"): stable across reruns
    reference: str = ""  # the task's reference source (the offline proposer rewrites it)
    parent: str = ""  # the candidate source this request improves or fixes, if any
    device: str = "cuda"  # where candidates will run (offline moves that need CUDA skip the CPU)


@dataclass
class Reply:
    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    dollars: float = 0.0
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)  # backend details worth recording (request id, stop reason)
    status: str = OK  # OK, or one of QUERY_FAILURES
    reason: str = ""  # one line on what went wrong, when status is not OK

    @property
    def ok(self) -> bool:
        return self.status == OK


def failed(status: str, reason: str, model: str = "", dollars: float = 0.0, **usage: int) -> Reply:
    """A query that gave nothing to evaluate; `dollars` is what the API bills for it."""
    return Reply(text="", model=model, dollars=dollars, status=status, reason=reason, **usage)


class ProposerError(Exception):
    """A proposer that cannot work at all (a bad replay file, an unknown role); one line."""


class RunStopped(ProposerError):
    """No further query can succeed (a key the API refuses, a model it cannot use): the run
    stops before anything more is spent. The message says what to change, in one line."""


@runtime_checkable
class Proposer(Protocol):
    name: str

    async def propose(self, request: Request) -> Reply:
        """Answer one request. A query that fails is a Reply whose status says how; a
        proposer that cannot go on raises RunStopped (or ProposerError)."""
        ...

    def worst_case(self, request: Request) -> float:
        """The most dollars this request can cost: what a budget reserves before sending it."""
        ...

    async def aclose(self) -> None: ...
