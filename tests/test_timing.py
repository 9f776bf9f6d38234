"""Measured times reach pytest-benchmark's statistics unchanged."""

import json

pytest_plugins = ["pytester"]


def test_replayed_times_are_pytest_benchmarks_statistics(pytester):
    pytester.makepyfile(
        """
        from pike_bench.evaluate.timing import record_in_benchmark

        def test_replay(benchmark):
            record_in_benchmark(benchmark, [2.0, 1.0, 4.0, 3.0], {"device": "cuda"})
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--pike-tasks", ".", "--benchmark-json=out.json")
    result.assert_outcomes(passed=1)
    stats = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]
    assert stats["stats"]["rounds"] == 4
    assert abs(stats["stats"]["min"] - 0.001) < 1e-12 and abs(stats["stats"]["max"] - 0.004) < 1e-12
    assert abs(stats["stats"]["median"] - 0.0025) < 1e-12
    assert stats["extra_info"] == {"device": "cuda"}
