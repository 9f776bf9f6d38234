"""Shared fixtures of the framework's own tests (CPU only)."""

from pathlib import Path

import pytest

from pike_bench.evaluate import Evaluator, TimingOptions
from pike_bench.tasks import task_from_file

DATA = Path(__file__).parent / "data"
CANDIDATES = Path(__file__).parent / "adversarial"
FAST_TIMING = TimingOptions(warmup=1, min_rounds=10, max_seconds=0.3)


def candidate(name: str) -> str:
    return (CANDIDATES / name).read_text()


@pytest.fixture(scope="session")
def tiny_task():
    return task_from_file(DATA / "level0" / "1_TinyMLP.py")


@pytest.fixture(scope="session")
def cpu_evaluator():
    """One worker for the session: the fault tests also prove it is reused and recycled."""
    with Evaluator("cpu", trials=3, timeout=60, timing=FAST_TIMING, baselines=("eager",)) as evaluator:
        yield evaluator
