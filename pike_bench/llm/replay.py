"""Replay: answers from a recorded file of earlier replies, so that a run can be
reproduced exactly and tests are deterministic.

The file is JSON Lines, one reply a line: {"task_id": ..., "slot": ..., "role": ...,
"text": ..., "model": ..., "input_tokens": ..., "output_tokens": ..., "dollars": ...}.
A request is answered by the line of its task and slot; without one, by the next
unused line of its task and role, in file order.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from pike_bench.llm.base import ProposerError, Reply, Request


class ReplayProposer:
    name = "replay"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            lines = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        except (OSError, json.JSONDecodeError) as exc:
            raise ProposerError(f"{self.path}: not a replay file of JSON lines ({exc})") from None
        self._by_slot = {(r.get("task_id", ""), r.get("slot", "")): r for r in lines if r.get("slot")}
        self._in_order: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for record in lines:
            self._in_order[(record.get("task_id", ""), record.get("role", ""))].append(record)
        self._used: set[int] = set()

    async def propose(self, request: Request) -> Reply:
        record = self._by_slot.get((request.task_id, request.slot))
        if record is None:
            queue = self._in_order.get((request.task_id, request.role), [])
            record = next((r for r in queue if id(r) not in self._used), None)
        if record is None:
            raise ProposerError(
                f"{self.path}: no recorded reply for {request.task_id} {request.role} {request.slot}; "
                "record one, or run with another --pike-llm"
            )
        self._used.add(id(record))
        return Reply(
            text=record["text"],
            model=record.get("model", "replay"),
            input_tokens=record.get("input_tokens", 0),
            output_tokens=record.get("output_tokens", 0),
            dollars=record.get("dollars", 0.0),
        )

    def worst_case(self, request: Request) -> float:
        """The dearest recorded reply: a replayed run keeps to a dollar budget as the original did."""
        return max((float(r.get("dollars", 0.0)) for queue in self._in_order.values() for r in queue), default=0.0)

    async def aclose(self) -> None:
        pass

