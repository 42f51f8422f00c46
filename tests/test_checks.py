"""mcviz._checks: one rule per kind of value, TypeError for a wrong type, ValueError for a wrong
value, one-line messages that name the argument and shorten the value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import one_line

from mcviz import _checks as C


@pytest.mark.parametrize("value", [0, 5, np.int64(7), 2**32 - 1])
def test_seed_accepts_ints_numpy_ints_up_to_2_32(value):
    assert C.check_seed(value) == int(value) and type(C.check_seed(value)) is int


@pytest.mark.parametrize(("value", "error"), [
    (True, TypeError), (1.0, TypeError), ("1", TypeError), (None, TypeError),
    (-1, ValueError), (2**32, ValueError), (1180591620717411303424, ValueError),
])  # fmt: skip
def test_seed_refuses_wrong_types_and_values(value, error):
    with pytest.raises(error) as info:
        C.check_seed(value)
    assert one_line(info).startswith("seed must be an int in [0, 4,294,967,295], got ")


def test_shared_bounds_apply_by_name():
    assert C.check_int(200, "epochs") == 200
    with pytest.raises(ValueError, match=r"epochs must be an int in \[1, 200\], got 1000000000"):
        C.check_int(10**9, "epochs")
    assert C.check_option("lr", 1e-3) == 1e-3 and C.check_option("bits", 8) == 8
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, 10\], got 0"):
        C.check_option("lr", 0)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_numbers_are_finite(value):
    with pytest.raises(ValueError, match="finite"):
        C.check_number(value, "x", low=0)


def test_number_accepts_ints_and_numpy_floats_not_bools():
    assert C.check_number(1, "x") == 1.0 and C.check_number(np.float32(0.5), "x") == 0.5
    with pytest.raises(TypeError, match="x must be a number, got True"):
        C.check_number(True, "x")


def test_open_and_closed_ends():
    assert C.check_number(1, "t", low=0, low_open=True) == 1.0
    with pytest.raises(ValueError, match=r"t must be a finite number > 0, got 0"):
        C.check_number(0, "t", low=0, low_open=True)


def test_bool_and_choice():
    assert C.check_bool(np.bool_(True), "flag") is True
    with pytest.raises(TypeError, match="flag must be True or False, got 1"):
        C.check_bool(1, "flag")
    assert C.check_choice("layer", "scope", ("layer", "global")) == "layer"
    with pytest.raises(ValueError, match="scope must be one of 'layer', 'global', got 'glob'"):
        C.check_choice("glob", "scope", ("layer", "global"))
    with pytest.raises(TypeError):
        C.check_choice(1, "scope", ("layer", "global"))


def test_a_huge_value_is_shortened():
    with pytest.raises(TypeError) as info:
        C.check_int("x" * 10**6, "epochs")
    message = one_line(info)
    assert len(message) < 200 and "1,000,002 characters" in message


def test_model_must_be_a_real_float32_cpu_module():
    import torch
    from torch import nn

    net = nn.Sequential(nn.Linear(3, 2))
    assert C.check_model(net) is net
    assert C.check_model(net.half()) is net  # float16: what the fp16 method stores
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got dict"):
        C.check_model({})
    with pytest.raises(ValueError, match="float64.*model.float"):
        C.check_model(nn.Sequential(nn.Linear(3, 2).double()))
    with pytest.raises(ValueError, match="meta device"):
        C.check_model(nn.Sequential(nn.Linear(3, 2, device="meta")))
    assert C.check_model(nn.Sequential(nn.Linear(3, 2).to(torch.float64)), dtypes=("float64",))


def test_unsupported_layers_are_named():
    from torch import nn

    from mcviz import _layers

    net = nn.Sequential(
        nn.Conv1d(1, 2, 3), nn.BatchNorm1d(2), nn.Flatten(), nn.Linear(4, 2), nn.Embedding(5, 3)
    )
    assert _layers.unsupported(net) == ["0 (Conv1d)", "4 (Embedding)"]
    assert _layers.unsupported(nn.Linear(2, 2)) == []


# ---------------------------------------------------------------- V2: techniques and widgets


def test_sparsity_is_a_float_never_a_count():
    assert C.check_sparsity(np.float32(0.5)) == 0.5 and C.check_sparsity(1.0) == 1.0
    with pytest.raises(TypeError) as info:
        C.check_sparsity(1)
    assert one_line(info) == (
        "sparsity must be a float in [0, 1], got 1 (write 0.0 or 1.0: an int is never read as a count)"
    )
    for bad in (1.5, -0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"sparsity must be a float in \[0, 1\], got"):
            C.check_sparsity(bad)
    with pytest.raises(ValueError, match=r"x must be a float in \[0, 1\), got 1.0"):
        C.check_sparsity(1.0, "x", bounds=C.Range(0, 1, high_open=True))


def test_data_must_be_a_data_bundle(digits):
    assert C.check_data(digits) is digits
    for bad in (None, "digits", (1, 2), digits.train):
        with pytest.raises(TypeError) as info:
            C.check_data(bad)
        assert one_line(info).startswith("data must be a DataBundle from mcv.data.load or")


@pytest.mark.parametrize(
    ("value", "error"),
    [("1,28,28", TypeError), ((1.0, 2), TypeError), ((True,), TypeError), ((), ValueError),
     ((1, 2, 3, 4), ValueError), ((0, 28), ValueError), ((3, 4096, 4096), ValueError)],
)  # fmt: skip
def test_shapes_of_one_example_are_bounded(value, error):
    assert C.check_shape([1, 28, 28]) == (1, 28, 28) and C.check_shape((64,)) == (64,)
    with pytest.raises(error) as info:
        C.check_shape(value)
    assert one_line(info).startswith("input_shape must ")


def test_sequences_are_bounded():
    assert C.check_sequence(range(3), "xs", most=3, items="ints") == [0, 1, 2]
    with pytest.raises(TypeError, match="xs must be a list of 1 to 3 ints, got 'abc'"):
        C.check_sequence("abc", "xs", most=3, items="ints")
    for bad in ([], [1, 2, 3, 4]):
        with pytest.raises(ValueError, match="xs must be a list of 1 to 3 ints"):
            C.check_sequence(bad, "xs", most=3, items="ints")


def test_derived_seeds_wrap_into_the_seed_range():
    assert C.offset_seed(0, 5) == 5 and C.offset_seed(C.SEED_MAX, 1) == 0
    assert C.check_seed(C.offset_seed(C.SEED_MAX, 10_001)) == 10_000
