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
    exact = not (e.is_floating_point() or e.is_complex())
    if not exact:
        _check_finite(where, e, flat_e, flat_g)
    _compare_elements(where, e, flat_e, flat_g, atol, rtol, exact)
    if whole and not exact:
        _compare_norms(where, flat_e, flat_g, atol, rtol)


def _check_finite(where: str, e: torch.Tensor, flat_e: torch.Tensor, flat_g: torch.Tensor) -> None:
    """NaN or Inf where the reference is finite: a rule of its own, since no tolerance excuses it."""
    bad, first = 0, None
    for start in range(0, flat_e.numel(), CHUNK):
        wrong = torch.isfinite(flat_e[start : start + CHUNK]) & ~torch.isfinite(flat_g[start : start + CHUNK])
        bad += int(wrong.sum())
        if first is None and wrong.any():
            first = start + int(wrong.nonzero()[0, 0])
    if first is None:
        return
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(first), e.shape))
    have = flat_g[first].item()
    raise Mismatch(
        f"{where} has {'NaN' if have != have else 'Inf'} where the reference has a number: {have} at index "
        f"{index}, expected {flat_e[first].item():.6g}; {bad} of {e.numel()} elements are NaN or Inf "
        "where the reference is finite",
        "nan-inf",
    )


def _compare_norms(where: str, flat_e: torch.Tensor, flat_g: torch.Tensor, atol: float, rtol: float) -> None:
    """The whole output must be close too, relative to its size: where a reference's
    values are far below atol (some KernelBench models output ~1e-21), an output of
    zeros passes element by element but is 100% wrong."""
    diff = want = 0.0
    for start in range(0, flat_e.numel(), CHUNK):
        ce, cg = flat_e[start : start + CHUNK].double(), flat_g[start : start + CHUNK].double()
        finite = torch.isfinite(ce) & torch.isfinite(cg)  # NaN/inf positions were judged element by element
        diff += float(((cg - ce)[finite] ** 2).sum())
        want += float((ce[finite] ** 2).sum())
    error = (diff / want) ** 0.5 if want > 0 else 0.0
    if error > rtol:
        raise Mismatch(
            f"{where} is off as a whole: relative error {error:.3g}, allowed {rtol:g} (rtol; reference norm "
            f"{want ** 0.5:.3g}), though each element is within atol={atol:g}, rtol={rtol:g}",
            "whole-output",
        )


def _compare_elements(where, e, flat_e, flat_g, atol, rtol, exact) -> None:
    for start in range(0, flat_e.numel(), CHUNK):
        ce, cg = flat_e[start : start + CHUNK], flat_g[start : start + CHUNK]
        if exact:
            ok = ce == cg
        else:
            ok = torch.isclose(cg.double(), ce.double(), rtol=rtol, atol=atol, equal_nan=True)
        if bool(ok.all()):
            continue
        first = start + int((~ok).nonzero()[0, 0])
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(first), e.shape))
        want, have = flat_e[first].item(), flat_g[first].item()
        bad = int((~ok).sum()) + _count_rest(flat_e[start + CHUNK :], flat_g[start + CHUNK :], atol, rtol, exact)
        raise Mismatch(
            f"{where} differs at index {index}: expected {want:.6g}, got {have:.6g}; "
            f"{bad} of {e.numel()} elements outside atol={atol:g}, rtol={rtol:g}"
        )


def _count_rest(e: torch.Tensor, g: torch.Tensor, atol: float, rtol: float, exact: bool) -> int:
    bad = 0
    for start in range(0, e.numel(), CHUNK):
        ce, cg = e[start : start + CHUNK], g[start : start + CHUNK]
        ok = (ce == cg) if exact else torch.isclose(cg.double(), ce.double(), rtol=rtol, atol=atol, equal_nan=True)
        bad += int((~ok).sum())
    return bad
