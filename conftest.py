"""Root conftest: the plugin itself comes from the `pytest11` entry point (pike_bench.plugin).

`pytest` at the root collects the task suite (kernelbench_tasks/test_suite.py);
the framework's own tests are run with `pytest tests`.
"""

collect_ignore = ["benchmarks", "build"]
