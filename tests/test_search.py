"""Strategies on a deterministic evaluator stub whose scores are known, and budgets."""

import asyncio

import pytest

from pike_bench.llm.base import ProposerError, Reply, Request
from pike_bench.llm.prompts import parse_ideas
from pike_bench.llm.replay import ReplayProposer
from pike_bench.evaluate.result import CORRECT, EvalResult, Speedup
from pike_bench.ranking import standings
from pike_bench.search.agents import Agents, Outcome, Scored, ranked
from pike_bench.search.budget import Budget
from pike_bench.search.pike_b import PikeBConfig, pike_b
from pike_bench.search.pike_o import PikeOConfig, Population, pike_o, sample_parents
from pike_bench.search.presets import PRESETS, preset


class ScriptedProposer:
    """Answers with a program named by a counter; 'broken' programs every `broken_every`."""

    name = "scripted"

    def __init__(self, broken_every=0, dollars=0.0, bound=None):
        self.requests: list[Request] = []
        self.broken_every, self.dollars = broken_every, dollars
        self.bound = dollars if bound is None else bound

    def worst_case(self, request: Request) -> float:
        return self.bound

    async def propose(self, request: Request) -> Reply:
        self.requests.append(request)
        n = len(self.requests)
        if request.role == "iba":
            return Reply("1. fuse the epilogue\n2. capture a CUDA graph\n3. use bf16", "m")
        broken = self.broken_every and n % self.broken_every == 0 and request.role == "optimizer"
        code = "BROKEN" if broken else f"speed = {n}"
        return Reply(f"```python\n# ModelNew\n{code}\n```", "m", 100, 100, self.dollars)

    async def aclose(self):
        pass


async def stub_evaluate(source: str) -> Outcome:
    """Known scores: 'speed = n' runs in 100/n ms (later programs are faster); BROKEN fails."""
    if "BROKEN" in source:
        return Outcome("incorrect", reason="output differs")
    n = int(source.split("speed = ")[1].split()[0])
    return Outcome("correct", runtime_ms=100.0 / n, speedup=n / 10)


def agents_for(proposer, budget):
    return Agents(proposer, budget, stub_evaluate, "level0/1_Tiny", "class Model: ...", device="cpu")


@pytest.mark.parametrize("queries", [1, 7, 23])
def test_pike_b_stops_exactly_at_the_query_budget(queries):
    proposer = ScriptedProposer(broken_every=3)
    agents = agents_for(proposer, Budget(queries=queries))
    asyncio.run(pike_b(agents, PikeBConfig(per_round=4, top_k=2, fix_attempts=1)))
    assert len(proposer.requests) == queries  # EFA and IBA queries count too
    assert agents.budget.spent_queries == queries


def test_dollar_budget_is_never_exceeded_even_with_requests_in_flight():
    proposer = ScriptedProposer(dollars=0.3)  # its worst case is exact here
    agents = agents_for(proposer, Budget(dollars=2.0))
    asyncio.run(pike_b(agents, PikeBConfig(per_round=8, iba=False)))
    assert agents.budget.spent_dollars <= 2.0
    assert len(proposer.requests) == 6


def test_a_query_reserves_its_worst_case_and_settles_at_the_real_cost():
    class Slow(ScriptedProposer):
        in_flight = most_in_flight = 0

        async def propose(self, request):
            Slow.in_flight += 1
            Slow.most_in_flight = max(Slow.most_in_flight, Slow.in_flight)
            await asyncio.sleep(0.01)  # every branch of a round reserves before any reply is in
            Slow.in_flight -= 1
            return await super().propose(request)

    # Each query may cost up to $0.50 and costs $0.125. Of a round of 8 only 2 fit the
    # $1 budget at their worst case; after them $0.25 is spent, so one more fits at a
    # time, until $0.625 is spent and no worst case fits.
    proposer = Slow(dollars=0.125, bound=0.5)
    agents = agents_for(proposer, Budget(dollars=1.0))
    asyncio.run(pike_b(agents, PikeBConfig(per_round=8, iba=False)))
    assert Slow.most_in_flight == 2
    assert len(proposer.requests) == 5
    assert agents.budget.spent_dollars == 0.625 and agents.budget.reserved_dollars == 0.0
    assert agents.unaffordable == 0.5


def test_pike_b_seeds_each_round_with_the_top_k_by_runtime_and_fixes_failures():
    proposer = ScriptedProposer(broken_every=4)
    agents = agents_for(proposer, Budget(queries=40))
    asyncio.run(pike_b(agents, PikeBConfig(per_round=4, top_k=2, fix_attempts=1, iba=True, max_rounds=2)))
    first_round = [r for r in proposer.requests if r.slot.startswith("r0/") and r.role == "optimizer"]
    second_round = [r for r in proposer.requests if r.slot.startswith("r1/") and r.role == "optimizer"]
    assert all(r.parent == "" for r in first_round)  # round 0 starts from the reference
    assert "fuse the epilogue" in first_round[0].prompt  # with the IBA's ideas
    round0 = [s for s in agents.history if s.round == 0 and s.correct]
    top2 = sorted(round0, key=lambda s: s.runtime)[:2]
    assert {r.parent for r in second_round} == {s.source for s in top2}
    fixes = [r for r in proposer.requests if r.role == "efa"]
    assert fixes and all(r.slot.endswith("/fix1") and "BROKEN" in r.parent for r in fixes)


def test_no_iba_preset_sends_no_brainstorming_query():
    proposer = ScriptedProposer()
    asyncio.run(pike_b(agents_for(proposer, Budget(queries=5)), preset("pike-b-no-iba")))
    assert all(r.role != "iba" for r in proposer.requests)


def test_pike_o_sampling_follows_the_ratios():
    islands = [[], []]
    agents = agents_for(ScriptedProposer(), Budget(queries=1))
    for n in range(1, 11):
        scored = asyncio.run(agents.score(Reply(f"```python\n# ModelNew\nspeed = {n}\n```", "m"), "optimizer", f"x{n}"))
        islands[n % 2].append(scored)
    population = Population(islands)
    import random

    exploit_only = PikeOConfig(explore=0.0, exploit=1.0, elite=0.0, crossover=0.0, elite_size=1)
    picks = {sample_parents(random.Random(i), exploit_only, population, 0)[0].number for i in range(50)}
    assert picks == {population.correct(0)[0].number}  # exploit with one elite: always the island's best
    explore = PikeOConfig(explore=1.0, exploit=0.0, elite=0.0, crossover=0.0)
    picks = {sample_parents(random.Random(i), explore, population, 0)[0].number for i in range(200)}
    assert picks == {s.number for s in islands[0]}  # explore: any program of the island
    crossover = PikeOConfig(crossover=1.0, parents_for_crossover=2, explore=1.0, exploit=0.0, elite=0.0)
    assert len(sample_parents(random.Random(3), crossover, population, 1)) == 2


def test_pike_o_runs_islands_migrates_and_stops_at_the_budget():
    proposer = ScriptedProposer(broken_every=5)
    agents = agents_for(proposer, Budget(queries=30))
    asyncio.run(pike_o(agents, PikeOConfig(islands=3, per_generation=3, migration_interval=1, fix_attempts=1)))
    assert len(proposer.requests) == 30
    assert {s.island for s in agents.history if s.agent == "optimizer"} == {0, 1, 2}
    again = ScriptedProposer(broken_every=5)
    asyncio.run(pike_o(agents_for(again, Budget(queries=30)),
                       PikeOConfig(islands=3, per_generation=3, migration_interval=1, fix_attempts=1)))
    assert [r.slot for r in again.requests] == [r.slot for r in proposer.requests]  # same questions, same places


def test_every_preset_is_a_valid_config():
    assert {"pike-b", "pike-b-no-iba", "pike-o", "pike-o-mut-1isl-eo"} <= set(PRESETS)
    assert preset("pike-o-mut-1isl").islands == 1 and preset("pike-o-mut").crossover == 0.0
    with pytest.raises(ValueError, match="unknown strategy"):
        preset("pike-x")


def test_a_reply_without_code_is_a_failed_query_and_the_search_goes_on():
    class Chatty(ScriptedProposer):
        async def propose(self, request):  # every other reply is talk without a program
            if len(self.requests) % 2 == 0:
                self.requests.append(request)
                return Reply("I would use a CUDA graph here.", "m")
            return await super().propose(request)

    proposer = Chatty()
    agents = agents_for(proposer, Budget(queries=6))
    asyncio.run(pike_b(agents, PikeBConfig(per_round=3, iba=False, fix_attempts=1)))
    assert len(proposer.requests) == 6
    assert [r.status for r in agents.failed_queries] == ["no_code"] * 3
    assert "no ```python code block" in agents.failed_queries[0].reason
    assert len(agents.history) == 3 and all(s.correct for s in agents.history)
    assert not [r for r in proposer.requests if r.role == "efa"]  # nothing to fix in a reply without a program


def test_replay_answers_by_slot_then_in_order(tmp_path):
    request = Request(role="optimizer", system="", prompt="p", task_id="t", slot="r0/s0")
    path = tmp_path / "replies.jsonl"
    path.write_text('{"task_id": "t", "slot": "r0/s0", "role": "optimizer", "text": "first", "model": "m"}\n'
                    '{"task_id": "t", "role": "optimizer", "text": "second"}\n')
    proposer = ReplayProposer(path)
    assert asyncio.run(proposer.propose(request)).text == "first"
    other = Request(role="optimizer", system="", prompt="p", task_id="t", slot="r0/s1")
    assert asyncio.run(proposer.propose(other)).text == "second"
    with pytest.raises(ProposerError, match="no recorded reply for t optimizer r0/s2"):
        asyncio.run(proposer.propose(Request(role="optimizer", system="", prompt="", task_id="t", slot="r0/s2")))


def test_parse_ideas_reads_numbered_lines():
    assert parse_ideas("Ideas:\n1. fuse\n2. graph it\nnot an idea\n3. ") == ["fuse", "graph it"]


def test_the_efa_keeps_to_its_share_of_the_budget():
    proposer = ScriptedProposer(broken_every=1)  # every optimizer program fails: the EFA would take all
    agents = agents_for(proposer, Budget(queries=20))
    asyncio.run(pike_b(agents, PikeBConfig(per_round=2, fix_attempts=5, iba=False, efa_share=0.25)))
    roles = [r.role for r in proposer.requests]
    assert roles.count("efa") == 5 and len(roles) == 20


def test_a_preset_file_overrides_a_named_preset(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text('{"base": "pike-o", "islands": 2, "efa": false}')
    config = preset(str(path))
    assert (config.islands, config.efa, config.explore) == (2, False, PRESETS["pike-o"].explore)
    path.write_text('{"base": "pike-o", "island": 2}')
    with pytest.raises(ValueError, match="not a preset file"):
        preset(str(path))


def test_candidates_rank_by_their_paired_speedup_not_by_raw_time():
    # B ran in a slower moment (its eager run was slower too): its raw time is worse, its
    # speedup over the eager run beside it better. Ranking by raw time would pick A.
    a = Scored(0, "a", Outcome("correct", runtime_ms=1.0, speedup=1.2), "optimizer", "s0")
    b = Scored(1, "b", Outcome("correct", runtime_ms=1.1, speedup=1.5), "optimizer", "s1")
    wrong = Scored(2, "w", Outcome("incorrect"), "optimizer", "s2")
    timed_only = Scored(3, "t", Outcome("correct", runtime_ms=0.5), "optimizer", "s3")
    assert [s.source for s in ranked([a, wrong, timed_only, b])] == ["b", "a", "t", "w"]


def timed(number: int, ms: float, **over: float) -> Scored:
    """A correct candidate with a real EvalResult: its speedup over each baseline named."""
    result = EvalResult(task_id="level3/24_EfficientNetB2", status=CORRECT, reason="", detail="", device="cuda",
                        device_name="NVIDIA Test", torch_version="2.13.0", mode="eval", size="full", trials=2,
                        hypothesis_seed=1, speedups={name: Speedup(v, v * 0.99, v * 1.01) for name, v in over.items()})
    return Scored(number, f"c{number}", Outcome(CORRECT, ms, over["eager"], result=result), "optimizer", f"s{number}")


def test_candidates_rank_by_the_speedup_over_the_fastest_baseline_not_over_eager():
    # 24_EfficientNetB2 on the H200: the cuda-graph candidate's evaluation met a slow eager
    # run (8.53x over it) but it is no faster than graph replay (0.98x); the
    # compile-cuda-graph one is 6.29x over eager and 1.35x over graph, and 0.260 ms
    # against 0.357 ms. Ranked by the speedup over eager, the slower one would win.
    slower = timed(0, 0.357, eager=8.53, compile=6.14, graph=0.98)
    faster = timed(1, 0.260, eager=6.29, compile=4.96, graph=1.35)
    assert [s.source for s in ranked([slower, faster])] == ["c1", "c0"]


def test_a_baseline_that_failed_beside_one_candidate_is_left_out_of_everyone_s_ranking():
    # B's graph baseline failed. Over its fastest remaining baseline (compile) B stands at
    # 1.6x, above A's 1.3x over graph; but A is ahead on every baseline timed beside both.
    a = timed(0, 1.0, eager=2.0, compile=1.9, graph=1.3)
    b = timed(1, 1.1, eager=1.8, compile=1.6)
    assert [s.source for s in ranked([b, a])] == ["c0", "c1"]
    assert standings([{"eager": 2.0, "compile": 1.9, "graph": 1.3}, {"eager": 1.8, "compile": 1.6, "graph": None},
                      {}]) == [1.9, 1.6, None]


def test_a_prompt_too_long_is_asked_once_more_with_less_context():
    class Small(ScriptedProposer):  # a model whose context takes no inspirations
        async def propose(self, request):
            if "Inspiration" in request.prompt:
                self.requests.append(request)
                return Reply("", "m", status="prompt_too_long", reason="prompt is too long: 210000 tokens")
            return await super().propose(request)

    proposer = Small()
    agents = agents_for(proposer, Budget(queries=5))
    parent = asyncio.run(agents.score(Reply("```python\n# ModelNew\nspeed = 1\n```", "m"), "optimizer", "x"))
    shown = (parent.example("from the library"),)
    scored = asyncio.run(agents.optimize("g0/s0", [parent], inspirations=shown))
    first, second = proposer.requests
    assert "Inspiration 1" in first.prompt and "Inspiration" not in second.prompt
    assert parent.source.strip() in second.prompt  # the parent is still shown
    assert (second.slot, scored.slot, scored.correct) == ("g0/s0/short", "g0/s0/short", True)
    assert agents.budget.spent_queries == 2  # the retry is a query like any other
