import pytest
import torch

from pike_bench.evaluate.check import Mismatch, compare


def test_within_tolerance_passes_and_first_difference_is_reported():
    expected = torch.zeros(3, 4)
    compare(expected, expected + 5e-3)
    got = expected.clone()
    got[1, 2] = 0.5
    with pytest.raises(Mismatch, match=r"differs at index \(1, 2\): expected 0, got 0.5; 1 of 12 elements"):
        compare(expected, got)


def test_shape_dtype_count_and_nan_are_named():
    x = torch.ones(2, 3)
    with pytest.raises(Mismatch, match=r"shape \(3, 2\), expected \(2, 3\)"):
        compare(x, torch.ones(3, 2))
    with pytest.raises(Mismatch, match="dtype torch.float16, expected torch.float32"):
        compare(x, x.half())
    with pytest.raises(Mismatch, match="output has 1 values, expected 2"):
        compare((x, x), (x,))
    nan = x.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(Mismatch, match="NaN where the reference has a number"):
        compare(x, nan)
    compare(nan, nan.clone())  # NaN where the reference has NaN too is a match


def test_bfloat16_has_a_wider_default_and_a_task_can_set_its_own():
    x = torch.full((4,), 1.0, dtype=torch.bfloat16)
    compare(x, x * 1.015)
    with pytest.raises(Mismatch):
        compare(x.float(), x.float() * 1.015, atol=1e-3, rtol=1e-3)


def test_integer_outputs_must_match_exactly():
    with pytest.raises(Mismatch, match="expected 3, got 4"):
        compare(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 4]))


def test_tiny_outputs_must_be_right_as_a_whole_not_only_within_atol():
    expected = torch.full((100,), 1e-21)
    with pytest.raises(Mismatch, match="off as a whole: relative error 1 > rtol=0.01"):
        compare(expected, torch.zeros(100))
    compare(expected, expected * (1 + 1e-4))
