"""PIKE-O: evolutionary search in the manner of OpenEvolve.

Programs live on islands. Each generation sends `per_generation` optimizer queries,
each on one island (in turn), with its parent sampled by the explore / exploit /
elite ratios: a random program of the island, one of the island's best, or one of the
elite archive of all islands. With probability `crossover` a query gets several
parents instead of one (crossover rather than mutation). A library of top and diverse
programs is shown as inspirations. Every `migration_interval` generations each
island's best program is copied to the next island. The EFA fixes failures when on.
Randomness comes from one seeded generator per query slot, so a rerun asks the same
questions in the same places.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pike_bench.search.agents import Agents, Scored, gather_in_order, ranked


@dataclass
class PikeOConfig:
    islands: int = 3
    per_generation: int = 8
    explore: float = 0.2
    exploit: float = 0.7
    elite: float = 0.1
    crossover: float = 0.3
    parents_for_crossover: int = 2
    inspirations: int = 3
    elite_size: int = 5
    migration_interval: int = 5
    efa: bool = True
    fix_attempts: int = 1
    efa_share: float = 0.3  # the EFA's share of the query budget
    seed: int = 0
    max_generations: int | None = None

    def __post_init__(self) -> None:
        if abs(self.explore + self.exploit + self.elite - 1.0) > 1e-9:
            raise ValueError("explore + exploit + elite must be 1")


@dataclass
class Population:
    islands: list[list[Scored]]

    def correct(self, island: int) -> list[Scored]:
        return ranked(s for s in self.islands[island] if s.correct)

    def elite(self, size: int) -> list[Scored]:
        everyone = {s.number: s for island in self.islands for s in island if s.correct}
        return ranked(everyone.values())[:size]

    def migrate(self) -> None:
        bests = [self.correct(i)[:1] for i in range(len(self.islands))]
        for i, best in enumerate(bests):
            target = self.islands[(i + 1) % len(self.islands)]
            target.extend(s for s in best if s not in target)


async def pike_o(agents: Agents, config: PikeOConfig) -> list[Scored]:
    agents.budget.share("efa", config.efa_share)
    population = Population([[] for _ in range(config.islands)])
    generation = 0
    while config.max_generations is None or generation < config.max_generations:
        queries = [_query(agents, config, population, generation, index) for index in range(config.per_generation)]
        produced = await gather_in_order(queries)
        if not any(produced):
            break
        for index, scored in enumerate(produced):
            population.islands[index % config.islands].extend(s for s in scored if s.evaluated)
        generation += 1
        if config.islands > 1 and generation % config.migration_interval == 0:
            population.migrate()
    return agents.history


async def _query(agents: Agents, config: PikeOConfig, population: Population, generation: int, index: int):
    rng = random.Random(f"{config.seed}/{generation}/{index}")
    island = index % config.islands
    parents = sample_parents(rng, config, population, island)
    inspirations = tuple(s.example("from the library") for s in library(population, config.inspirations, parents))
    first = await agents.optimize(f"g{generation}/s{index}", parents, inspirations=inspirations,
                                  round=generation, island=island)
    if first is None:
        return []
    fixes = await agents.fix(first, config.fix_attempts) if config.efa else []
    return [first] + fixes


def sample_parents(rng: random.Random, config: PikeOConfig, population: Population, island: int) -> list[Scored]:
    """Parents by the explore/exploit/elite ratios; several of them on a crossover."""
    count = config.parents_for_crossover if rng.random() < config.crossover else 1
    parents: list[Scored] = []
    for _ in range(count):
        pick = _sample_one(rng, config, population, island)
        if pick is not None and pick not in parents:
            parents.append(pick)
    return parents


def _sample_one(rng: random.Random, config: PikeOConfig, population: Population, island: int) -> Scored | None:
    draw = rng.random()
    if draw < config.explore:
        pool = population.islands[island]  # any program of the island, correct or not
    elif draw < config.explore + config.exploit:
        pool = population.correct(island)[: max(1, config.elite_size)]
    else:
        pool = population.elite(config.elite_size)
    return rng.choice(pool) if pool else None


def library(population: Population, size: int, exclude: list[Scored]) -> list[Scored]:
    """Top programs, then diverse ones: the fastest first, then one per island not yet shown."""
    chosen = [s for s in population.elite(size) if s not in exclude][: max(1, size - 1)]
    for island in range(len(population.islands)):
        for candidate in population.correct(island):
            if len(chosen) >= size:
                return chosen
            if candidate not in chosen and candidate not in exclude:
                chosen.append(candidate)
                break
    return chosen[:size]
