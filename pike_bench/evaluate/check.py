"""Compare a candidate's outputs with the reference's (runs in the worker)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._pytree import tree_flatten

# Default tolerances by output dtype: (atol, rtol). fp32 is KernelBench's 1e-2;
# bf16 keeps 8 bits of mantissa (eps 7.8e-3), so one rounding step must pass.
DEFAULT_TOLERANCE = {
    torch.float64: (1e-2, 1e-2),
    torch.float32: (1e-2, 1e-2),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (2e-2, 2e-2),
}
CHUNK = 1 << 24  # elements compared at a time, so float64 copies of big outputs stay small


class Mismatch(AssertionError):
    """The candidate's output differs from the reference's; the message says where, and
    ``rule`` names the rule it broke (see :mod:`pike_bench.policy`)."""

    def __init__(self, message: str, rule: str = "allclose"):
        super().__init__(message)
        self.rule = rule


def tolerance(dtype: torch.dtype, atol: float | None, rtol: float | None) -> tuple[float, float]:
    default_atol, default_rtol = DEFAULT_TOLERANCE.get(dtype, (0.0, 0.0))
    return (default_atol if atol is None else atol, default_rtol if rtol is None else rtol)


def leaves(output: Any) -> list[Any]:
    flat, _ = tree_flatten(output)
    return flat


def compare(
    expected: Any, got: Any, atol: float | None = None, rtol: float | None = None, whole: bool = True
) -> None:
    """Raise Mismatch with the first difference between two outputs; ``whole``: also
    the whole-output rule (the relative error of each output as a whole)."""
    want, have = leaves(expected), leaves(got)
    if len(want) != len(have):
        raise Mismatch(f"output has {len(have)} values, expected {len(want)}", "shape")
    for index, (e, g) in enumerate(zip(want, have)):
        where = f"output {index}" if len(want) > 1 else "output"
        if not isinstance(e, torch.Tensor):
            if e != g:
                raise Mismatch(f"{where} is {g!r}, expected {e!r}")
            continue
        if not isinstance(g, torch.Tensor):
            raise Mismatch(f"{where} is a {type(g).__name__}, expected a tensor", "shape")
        if tuple(g.shape) != tuple(e.shape):
            raise Mismatch(f"{where} has shape {tuple(g.shape)}, expected {tuple(e.shape)}", "shape")
        if g.dtype != e.dtype:
            raise Mismatch(f"{where} has dtype {g.dtype}, expected {e.dtype}", "dtype")
        a, r = tolerance(e.dtype, atol, rtol)
        _compare_values(where, e, g, a, r, whole)


def _compare_values(where: str, e: torch.Tensor, g: torch.Tensor, atol: float, rtol: float, whole: bool) -> None:
    flat_e, flat_g = e.detach().reshape(-1), g.detach().to(e.device).reshape(-1)
    if not (e.is_floating_point() or e.is_complex()):
        _compare_exact(where, e, flat_e, flat_g, atol, rtol)
        return
    # One pass, each chunk turned into float64 once; the rules are then applied in their
    # order (NaN or Inf anywhere, the first element out of tolerance, the output as a
    # whole), with the verdicts and counts that a pass per rule gives.
    tally = _Tally()
    for start in range(0, flat_e.numel(), CHUNK):
        tally.add(start, flat_e[start : start + CHUNK].double(), flat_g[start : start + CHUNK].double(), atol, rtol)
    if tally.first_nonfinite is not None:
        _raise_nonfinite(where, e, flat_e, flat_g, tally.first_nonfinite, tally.nonfinite)
    if tally.first_wrong is not None:
        _raise_wrong(where, e, flat_e, flat_g, tally.first_wrong, tally.wrong, atol, rtol)
    if whole:
        _check_norms(where, tally.diff, tally.want, atol, rtol)


class _Tally:
    """What the chunks of one output add up to: NaN/Inf where the reference is finite,
    elements out of tolerance (count, first index), squared error and squared norm."""

    def __init__(self) -> None:
        self.nonfinite, self.first_nonfinite = 0, None
        self.wrong, self.first_wrong = 0, None
        self.diff = self.want = 0.0

    def add(self, start: int, ce: torch.Tensor, cg: torch.Tensor, atol: float, rtol: float) -> None:
        finite_e, finite_g = torch.isfinite(ce), torch.isfinite(cg)
        lost = finite_e & ~finite_g
        count = int(lost.sum())
        if count:
            self.nonfinite += count
            if self.first_nonfinite is None:
                self.first_nonfinite = start + int(lost.nonzero()[0, 0])
        out = ~torch.isclose(cg, ce, rtol=rtol, atol=atol, equal_nan=True)
        count = int(out.sum())
        if count:
            self.wrong += count
            if self.first_wrong is None:
                self.first_wrong = start + int(out.nonzero()[0, 0])
        # NaN/Inf positions were judged element by element; the norms take the rest.
        both = finite_e & finite_g
        self.diff += float(torch.where(both, cg - ce, 0.0).square().sum())
        self.want += float(torch.where(both, ce, 0.0).square().sum())


def _index(e: torch.Tensor, flat: int) -> tuple[int, ...]:
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), e.shape))


def _raise_nonfinite(where: str, e, flat_e, flat_g, first: int, bad: int) -> None:
    """NaN or Inf where the reference is finite: a rule of its own, since no tolerance excuses it."""
    have = flat_g[first].item()
    raise Mismatch(
        f"{where} has {'NaN' if have != have else 'Inf'} where the reference has a number: {have} at index "
        f"{_index(e, first)}, expected {flat_e[first].item():.6g}; {bad} of {e.numel()} elements are NaN or Inf "
        "where the reference is finite",
        "nan-inf",
    )


def _raise_wrong(where: str, e, flat_e, flat_g, first: int, bad: int, atol: float, rtol: float) -> None:
    raise Mismatch(
        f"{where} differs at index {_index(e, first)}: expected {flat_e[first].item():.6g}, "
        f"got {flat_g[first].item():.6g}; {bad} of {e.numel()} elements outside atol={atol:g}, rtol={rtol:g}"
    )


def _check_norms(where: str, diff: float, want: float, atol: float, rtol: float) -> None:
    """The whole output must be close too, relative to its size: where a reference's
    values are far below atol (some KernelBench models output ~1e-21), an output of
    zeros passes element by element but is 100% wrong."""
    error = (diff / want) ** 0.5 if want > 0 else 0.0
    if error > rtol:
        raise Mismatch(
            f"{where} is off as a whole: relative error {error:.3g}, allowed {rtol:g} (rtol; reference norm "
            f"{want ** 0.5:.3g}), though each element is within atol={atol:g}, rtol={rtol:g}",
            "whole-output",
        )


def _compare_exact(where: str, e: torch.Tensor, flat_e: torch.Tensor, flat_g: torch.Tensor, atol: float,
                   rtol: float) -> None:
    """Integer and boolean outputs: every element equal."""
    bad, first = 0, None
    for start in range(0, flat_e.numel(), CHUNK):
        out = flat_e[start : start + CHUNK] != flat_g[start : start + CHUNK]
        count = int(out.sum())
        if count and first is None:
            first = start + int(out.nonzero()[0, 0])
        bad += count
    if first is not None:
        raise Mismatch(
            f"{where} differs at index {_index(e, first)}: expected {flat_e[first].item():.6g}, "
            f"got {flat_g[first].item():.6g}; {bad} of {e.numel()} elements outside atol={atol:g}, rtol={rtol:g}"
        )
