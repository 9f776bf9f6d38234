"""The budget of an optimization: LLM queries and dollars, never exceeded.

A request reserves its query and its worst-case cost (the proposer's bound: every
prompt byte a token, all of max_tokens written) before it is sent, and settles the
actual cost when the reply comes, so that requests in flight together can never take
the run past its budget. A resumed run starts from what its record already spent.
EFA queries count like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Budget:
    queries: int | None = None  # None: no limit on queries
    dollars: float | None = None  # None: no limit on dollars
    spent_queries: int = 0
    spent_dollars: float = 0.0
    reserved_queries: int = 0
    reserved_dollars: float = 0.0
    role_caps: dict[str, int] = field(default_factory=dict)  # e.g. the EFA's share: {"efa": 6}
    by_role: dict[str, int] = field(default_factory=dict)  # queries reserved or spent per role

    def __post_init__(self) -> None:
        if self.queries is None and self.dollars is None:
            raise ValueError("a budget needs a number of queries, dollars, or both")

    def share(self, role: str, fraction: float) -> None:
        """Give a role (the EFA) at most this fraction of the query budget."""
        if self.queries is not None:
            self.role_caps[role] = int(self.queries * fraction)

    def try_reserve(self, worst_case_dollars: float = 0.0, role: str = "") -> bool:
        """Reserve one query; False when it could take the run past its budget."""
        if self.queries is not None and self.spent_queries + self.reserved_queries + 1 > self.queries:
            return False
        if role in self.role_caps and self.by_role.get(role, 0) + 1 > self.role_caps[role]:
            return False
        if self.dollars is not None:
            if self.spent_dollars + self.reserved_dollars + worst_case_dollars > self.dollars:
                return False
        self.reserved_queries += 1
        self.reserved_dollars += worst_case_dollars
        self.by_role[role] = self.by_role.get(role, 0) + 1
        return True

    def settle(self, worst_case_dollars: float, dollars: float) -> None:
        """The reserved query was sent and answered (or failed after it was paid for)."""
        self.reserved_queries -= 1
        self.reserved_dollars -= worst_case_dollars
        self.spent_queries += 1
        self.spent_dollars += dollars
