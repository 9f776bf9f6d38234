"""The offline proposer's move library (:mod:`pike_bench.llm.offline` answers from it).

- :mod:`~pike_bench.llm.moves.detect`: what a task's source contains;
- :mod:`~pike_bench.llm.moves.rewrites`: method rewrites found in a task's classes;
- :mod:`~pike_bench.llm.moves.render`: a candidate's source from a recipe;
- :mod:`~pike_bench.llm.moves.library`: the moves, their combinations, a task's plan;
- :mod:`~pike_bench.llm.moves.runtime`: the code a candidate runs, pasted into it.
"""
