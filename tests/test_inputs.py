import pytest
import torch

from pike_bench.inputs import InputDraw, for_each_draw, make_inputs
from pike_bench.tasks import sized_module, task_from_file

from conftest import DATA


@pytest.fixture(scope="module")
def embedding():
    return sized_module(task_from_file(DATA / "level0" / "3_Embedding.py"), "full")


def test_draws_keep_shapes_dtypes_and_integer_ranges(embedding):
    template = embedding.get_inputs()
    for draw in [InputDraw(1), InputDraw(2, 2.0, -1), InputDraw(3, 0.5, 1)]:
        ids, scale = make_inputs(embedding, draw)
        assert ids.shape == template[0].shape and ids.dtype == torch.int64
        assert 0 <= int(ids.min()) and int(ids.max()) < embedding.vocab
        assert scale.dtype == template[1].dtype


def test_scale_and_sign_apply_to_floats_only(embedding):
    plain = make_inputs(embedding, InputDraw(5))
    flipped = make_inputs(embedding, InputDraw(5, 2.0, -1))
    assert torch.equal(plain[0], flipped[0])
    assert torch.allclose(flipped[1], plain[1] * -2.0)


def test_seeds_give_different_and_reproducible_sets(embedding):
    a, b = make_inputs(embedding, InputDraw(1)), make_inputs(embedding, InputDraw(2))
    assert not torch.equal(a[0], b[0])
    assert torch.equal(a[0], make_inputs(embedding, InputDraw(1))[0])


def test_sets_are_drawn_on_the_device_where_get_inputs_runs_there_else_on_the_cpu(embedding):
    # "meta" stands for a GPU: a tensor made by get_inputs() lands where the device context puts it.
    on_device = make_inputs(embedding, InputDraw(5, 2.0, -1), "meta")
    assert [x.device.type for x in on_device] == ["meta", "meta"]
    assert [x.shape for x in on_device] == [x.shape for x in make_inputs(embedding, InputDraw(5))]

    class HostOnly:  # a get_inputs() that reads values back (impossible on meta): drawn on the CPU
        @staticmethod
        def get_inputs():
            x = torch.randn(4)
            return [x, int(x.argmax())]

    drawn = make_inputs(HostOnly, InputDraw(7), "meta")
    assert drawn[0].device.type == "cpu" and torch.equal(drawn[0], make_inputs(HostOnly, InputDraw(7))[0])


def test_for_each_draw_runs_the_trials_and_a_seed_reproduces_them():
    def draws(hypothesis_seed):
        seen = []
        for_each_draw(6, hypothesis_seed, seen.append)
        return seen

    first = draws(123)
    assert len(set(first)) == 6
    assert draws(123) == first
    assert draws(124) != first


def test_for_each_draw_stops_at_the_first_failure():
    seen = []

    def check(draw):
        seen.append(draw)
        if len(set(seen)) == 2:
            raise AssertionError(f"failed on {draw.describe()}")

    with pytest.raises(AssertionError, match="failed on seed="):
        for_each_draw(5, 7, check)
    assert len(set(seen)) == 2
