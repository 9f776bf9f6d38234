"""PIKE-B: branching search in rounds, exploit-heavy.

Each round sends `per_round` optimizer queries, spread over the current seeds (the
top-k correct candidates so far by speedup over eager; the reference in the first round, with
the IBA's ideas if it is on). A candidate that fails goes to the EFA, up to
`fix_attempts` queries (the cutoff). The round's correct candidates join the ranking
that picks the next round's seeds. The search stops when the budget has no room for
another query.
"""

from __future__ import annotations

from dataclasses import dataclass

from pike_bench.search.agents import Agents, Scored, gather_in_order


@dataclass
class PikeBConfig:
    per_round: int = 10
    top_k: int = 3
    fix_attempts: int = 2
    efa_share: float = 0.3  # the EFA's share of the query budget
    iba: bool = True
    ideas: int = 10
    max_rounds: int | None = None


async def pike_b(agents: Agents, config: PikeBConfig) -> list[Scored]:
    agents.budget.share("efa", config.efa_share)
    ideas = await agents.brainstorm(config.ideas) if config.iba else []
    round_number = 0
    while config.max_rounds is None or round_number < config.max_rounds:
        seeds = agents.best(config.top_k)
        branches = [
            _branch(agents, config, round_number, index, seeds, ideas if round_number == 0 else [])
            for index in range(config.per_round)
        ]
        produced = await gather_in_order(branches)
        if not any(produced):  # the budget had no room for a single query this round
            break
        round_number += 1
    return agents.history


async def _branch(agents: Agents, config: PikeBConfig, round_number: int, index: int,
                  seeds: list[Scored], ideas: list[str]) -> list[Scored]:
    parents = [seeds[index % len(seeds)]] if seeds else []
    idea = ideas[index % len(ideas)] if ideas else ""
    first = await agents.optimize(f"r{round_number}/s{index}", parents, idea, round=round_number)
    if first is None:
        return []
    return [first] + await agents.fix(first, config.fix_attempts)
