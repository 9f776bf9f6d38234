"""pike-bench: KernelBench-form tasks as pytest tests, an isolated evaluator, GPU timing."""

from pike_bench.tasks import Task, TaskError, discover_tasks, find_task

__all__ = ["Task", "TaskError", "discover_tasks", "find_task"]
__version__ = "0.1.0"
