"""The one small protocol every proposer speaks, and the values it returns.

A proposer answers a request for one agent role with text. The optimizing agent,
the error fixing agent (EFA) and the initial brainstorming agent (IBA) are roles, so
a strategy can give each its own model and its own share of the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

ROLES = ("optimizer", "efa", "iba")


@dataclass(frozen=True)
class Request:
    role: str  # one of ROLES
    system: str
    prompt: str
    model: str = ""  # empty: the proposer's default for the role
    max_tokens: int = 16000
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


class ProposerError(Exception):
    """A request that failed for good (after the backend's own retries); the message is one line."""


@runtime_checkable
class Proposer(Protocol):
    name: str

    async def propose(self, request: Request) -> Reply:
        """Answer one request; raises ProposerError when no answer can be had."""
        ...

    async def aclose(self) -> None: ...
