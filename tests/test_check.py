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


def test_shape_dtype_count_and_nan_are_named_with_their_rules():
    x = torch.ones(2, 3)
    with pytest.raises(Mismatch, match=r"shape \(3, 2\), expected \(2, 3\)") as caught:
        compare(x, torch.ones(3, 2))
    assert caught.value.rule == "shape"
    with pytest.raises(Mismatch, match="dtype torch.float16, expected torch.float32") as caught:
        compare(x, x.half())
    assert caught.value.rule == "dtype"
    with pytest.raises(Mismatch, match="output has 1 values, expected 2") as caught:
        compare((x, x), (x,))
    assert caught.value.rule == "shape"
    nan = x.clone()
    nan[0, 0] = float("nan")
    nan[1, 2] = float("inf")
    with pytest.raises(Mismatch, match=r"NaN where the reference has a number: nan at index \(0, 0\), expected 1; "
                                       "2 of 6 elements are NaN or Inf") as caught:
        compare(x, nan)
    assert caught.value.rule == "nan-inf"
    compare(nan, nan.clone())  # NaN (or Inf) where the reference has it too is a match


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
    with pytest.raises(Mismatch, match=r"off as a whole: relative error 1, allowed 0.01 \(rtol") as caught:
        compare(expected, torch.zeros(100))
    assert caught.value.rule == "whole-output"
    compare(expected, expected * (1 + 1e-4))
    compare(expected, torch.zeros(100), whole=False)  # what allclose alone (the peers' check) lets through


def test_a_drift_within_atol_names_the_measured_and_the_allowed_error():
    expected = torch.linspace(-0.3, 0.3, 64)
    drifted = expected + 0.009  # each element within atol=0.01
    error = float((drifted - expected).norm() / expected.norm())
    with pytest.raises(Mismatch, match=rf"relative error {error:.3g}, allowed 0.01 \(rtol"):
        compare(expected, drifted)
