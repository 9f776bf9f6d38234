"""Hypothesis strategies for input sets shaped like a task's ``get_inputs()``.

An input set is described by an :class:`InputDraw` (seed, scale, sign) and made by
calling the task's own ``get_inputs()`` under that seed, then scaling and flipping
the sign of its floating-point tensors. Shapes, dtypes and the ranges of integer
tensors (indices, token ids) are therefore exactly the task's, while the values,
their scale and their sign vary from one set to the next.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

SCALES = (1.0, 0.5, 2.0)
SIGNS = (1, -1)


@dataclass(frozen=True)
class InputDraw:
    seed: int
    scale: float = 1.0
    sign: int = 1

    def describe(self) -> str:
        return f"seed={self.seed}, scale={self.scale:g}, sign={self.sign:+d}"


def input_draws(scales: tuple[float, ...] = SCALES, signs: tuple[int, ...] = SIGNS) -> st.SearchStrategy[InputDraw]:
    """Draws of input sets; the simplest draw (shrunk) is the task's own distribution."""
    return st.builds(
        InputDraw,
        seed=st.integers(min_value=0, max_value=2**31 - 1),
        scale=st.sampled_from(scales),
        sign=st.sampled_from(signs),
    )


def plain_draws(count: int, seed: int) -> list[InputDraw]:
    """Input sets as the task's own get_inputs() makes them (scale 1, sign +1), each under
    a seed of its own drawn from ``seed``: what the peers' evaluators check on."""
    rng = random.Random(seed)
    return [InputDraw(rng.randrange(2**31)) for _ in range(count)]


def make_inputs(module: ModuleType, draw: InputDraw, device: str | None = None) -> list[Any]:
    """The input set a draw describes, made by the task's get_inputs(): on the CPU, or
    with `device` (a GPU) as the default device of its tensors. Drawn there, a large
    input set costs milliseconds instead of seconds of the CPU's random number
    generator; the values differ from the CPU's for the same seed, and the seed
    reproduces them on the same kind of device. A get_inputs() that cannot run so is
    drawn on the CPU."""
    import torch

    if device is not None and device != "cpu":
        try:
            with torch.device(device):
                return _drawn(module, draw)
        except Exception:  # the task's own way, on the CPU, decides
            pass
    return _drawn(module, draw)


def _drawn(module: ModuleType, draw: InputDraw) -> list[Any]:
    import torch

    torch.manual_seed(draw.seed)
    inputs = list(module.get_inputs())
    factor = draw.scale * draw.sign
    if factor == 1.0:
        return inputs
    return [x * factor if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in inputs]


def for_each_draw(trials: int, hypothesis_seed: int, check: Callable[[InputDraw], None]) -> None:
    """Run ``check`` on ``trials`` draws; the first exception it raises propagates.

    Shrinking is off: each example runs the candidate, and the first failing set,
    with the Hypothesis seed, is what a reader needs to reproduce it.
    """

    @settings(
        max_examples=trials,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @seed(hypothesis_seed)
    @given(input_draws())
    def run(draw: InputDraw) -> None:
        check(draw)

    run()
