"""Unit tests of mcviz.models: every reference network, its size, seeding and validation."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from helpers import one_line
from torch import nn

import mcviz as mcv

MNIST, DIGITS = (1, 28, 28), (1, 8, 8)
BUILDS = [(name, MNIST) for name in mcv.models.NAMES] + [
    (name, DIGITS) for name in mcv.models.NAMES if name != "lenet5"
]


def count(model: nn.Module, tensor: str) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.endswith(tensor))


@pytest.mark.parametrize(("name", "shape"), BUILDS)
def test_build_output_shape(name, shape):
    model = mcv.models.build(name, input_shape=shape, seed=0)
    assert model(torch.zeros(3, *shape)).shape == (3, 10)


@pytest.mark.parametrize(("name", "shape"), BUILDS)
def test_build_records_input_shape(name, shape):
    assert mcv.models.build(name, input_shape=list(shape), seed=0).input_shape == shape


@pytest.mark.parametrize("name", mcv.models.NAMES)
def test_build_num_classes(name):
    model = mcv.models.build(name, input_shape=MNIST, num_classes=3, seed=0)
    assert model(torch.zeros(2, *MNIST)).shape == (2, 3)


def test_lenet300_parameter_count():
    model = mcv.models.build("lenet300", input_shape=MNIST)
    assert sum(p.numel() for p in model.parameters()) == 266_610


def test_lenet300_weight_count():
    assert count(mcv.models.build("lenet300", input_shape=MNIST), "weight") == 266_200


def test_lenet300_layer_widths():
    model = mcv.models.build("lenet300", input_shape=MNIST)
    widths = [(m.in_features, m.out_features) for m in model if isinstance(m, nn.Linear)]
    assert widths == [(784, 300), (300, 100), (100, 10)]


def test_lenet5_weight_count():
    assert count(mcv.models.build("lenet5", input_shape=MNIST), "weight") == 430_500


def test_lenet5_bias_count():
    assert count(mcv.models.build("lenet5", input_shape=MNIST), "bias") == 580


def test_lenet5_parameter_count():
    model = mcv.models.build("lenet5", input_shape=MNIST)
    assert sum(p.numel() for p in model.parameters()) == 431_080


def test_lenet5_layer_names():
    model = mcv.models.build("lenet5", input_shape=MNIST)
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert names == ["conv1", "conv2", "fc1", "fc2"]


@pytest.mark.parametrize(("shape", "flat"), [(MNIST, 32 * 13 * 13), (DIGITS, 32 * 3 * 3)])
def test_seed_cnn_layout(shape, flat):
    model = mcv.models.build("seed_cnn", input_shape=shape)
    assert [type(m) for m in model] == [nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Linear]
    assert (model.conv1.in_channels, model.conv1.out_channels, model.conv1.kernel_size) == (1, 32, (3, 3))
    assert model.pool1.kernel_size == 2
    assert (model.fc1.in_features, model.fc1.out_features) == (flat, 10)


def test_mlp_hidden_widths():
    model = mcv.models.build("mlp", input_shape=DIGITS, hidden=(20, 7))
    widths = [(m.in_features, m.out_features) for m in model if isinstance(m, nn.Linear)]
    assert widths == [(64, 20), (20, 7), (7, 10)]


def test_mlp_hidden_int_means_one_layer():
    model = mcv.models.build("mlp", input_shape=DIGITS, hidden=16)
    assert [m.out_features for m in model if isinstance(m, nn.Linear)] == [16, 10]


def test_mlp_hidden_empty_is_linear_classifier():
    model = mcv.models.build("mlp", input_shape=DIGITS, hidden=())
    assert [(m.in_features, m.out_features) for m in model if isinstance(m, nn.Linear)] == [(64, 10)]


def test_mlp_takes_feature_vectors():
    model = mcv.models.build("mlp", input_shape=(12,), hidden=(5,))
    assert model(torch.zeros(4, 12)).shape == (4, 10)


def test_lenet5_on_8x8_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 28x28, got 8x8") as e:
        mcv.models.build("lenet5", input_shape=DIGITS)
    one_line(e)


@pytest.mark.parametrize("name", ["seed_cnn", "lenet5"])
def test_conv_models_reject_flat_input(name):
    with pytest.raises(ValueError, match=re.escape("input_shape (64,)")) as e:
        mcv.models.build(name, input_shape=(64,))
    one_line(e)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'resnet18'") as e:
        mcv.models.build("resnet18", input_shape=MNIST)
    assert "lenet300" in one_line(e)


@pytest.mark.parametrize(
    ("name", "option"), [("lenet300", "hidden"), ("mlp", "width"), ("seed_cnn", "channels")]
)
def test_unknown_option(name, option):
    with pytest.raises(ValueError, match=f"unknown option '{option}'") as e:
        mcv.models.build(name, input_shape=MNIST, **{option: 3})
    one_line(e)


@pytest.mark.parametrize(
    ("hidden", "error", "message"),
    [
        ((0,), ValueError, "hidden[0] must be an int in [1, 4096], got 0"),
        ((10, -1), ValueError, "hidden[1] must be an int in [1, 4096], got -1"),
        ((10, 5000), ValueError, "hidden[1] must be an int in [1, 4096], got 5000"),
        ((8,) * 17, ValueError, "hidden must hold at most 16 sizes, got 17"),
        ((10, "a"), TypeError, "hidden[1] must be an int in [1, 4096], got 'a'"),
        (2.5, TypeError, "hidden must be a list of hidden sizes (ints in [1, 4096]), got 2.5"),
        (True, TypeError, "got True"),
        ((True,), TypeError, "hidden[0] must be an int in [1, 4096], got True"),
        (None, TypeError, "got None"),
    ],
)
def test_bad_hidden(hidden, error, message):
    with pytest.raises(error) as e:
        mcv.models.build("mlp", input_shape=DIGITS, hidden=hidden)
    assert message in one_line(e)


@pytest.mark.parametrize(
    ("shape", "error"),
    [((1, 8), ValueError), ((0, 8, 8), ValueError), ((1, 8, -8), ValueError), ((), ValueError),
     ((1, 8, 8, 8), ValueError), (None, TypeError), ("abc", TypeError), ("188", TypeError),
     ((1, 8.5, 8), TypeError), ((True, 8, 8), TypeError)],
)  # fmt: skip
def test_bad_input_shape(shape, error):
    with pytest.raises(error, match=re.escape(repr(shape))) as e:
        mcv.models.build("mlp", input_shape=shape)
    one_line(e)


@pytest.mark.parametrize(
    ("k", "error"),
    [(1, ValueError), (0, ValueError), (1001, ValueError), (10**6, ValueError), (2.0, TypeError),
     (True, TypeError)],
)  # fmt: skip
def test_bad_num_classes(k, error):
    with pytest.raises(error, match=re.escape(f"num_classes must be an int in [2, 1000], got {k!r}")) as e:
        mcv.models.build("mlp", input_shape=DIGITS, num_classes=k)
    one_line(e)


@pytest.mark.parametrize(("seed", "error"), [(-1, ValueError), (2**32, ValueError), (1.0, TypeError),
                                             ("0", TypeError), (False, TypeError)])  # fmt: skip
def test_bad_seed(seed, error):
    with pytest.raises(error, match=re.escape(f"got {seed!r}")) as e:
        mcv.models.build("mlp", input_shape=DIGITS, seed=seed)
    one_line(e)


@pytest.mark.parametrize("name", mcv.models.NAMES)
def test_same_seed_same_weights(name):
    a = mcv.models.build(name, input_shape=MNIST, seed=7).state_dict()
    b = mcv.models.build(name, input_shape=MNIST, seed=7).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", mcv.models.NAMES)
def test_other_seed_other_weights(name):
    a = mcv.models.build(name, input_shape=MNIST, seed=7).state_dict()
    b = mcv.models.build(name, input_shape=MNIST, seed=8).state_dict()
    assert not any(torch.equal(a[k], b[k]) for k in a if k.endswith("weight"))


def test_seeded_build_leaves_global_rng_alone():
    before = torch.get_rng_state()
    mcv.models.build("lenet5", input_shape=MNIST, seed=3)
    assert torch.equal(torch.get_rng_state(), before)


def test_unseeded_build_follows_mcv_seed():
    mcv.seed(11)
    a = mcv.models.build("mlp", input_shape=DIGITS, hidden=(8,)).state_dict()
    mcv.seed(11)
    b = mcv.models.build("mlp", input_shape=DIGITS, hidden=(8,)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("shape", [torch.Size([1, 8, 8]), (np.int64(1), np.int64(8), 8), [1, 8, 8]])
def test_input_shape_accepts_any_int_sequence(shape):
    assert mcv.models.build("mlp", input_shape=shape).input_shape == DIGITS


def test_small_cnn_is_a_47x_smaller_student_than_lenet5():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    student = mcv.models.build("small_cnn", input_shape=MNIST, seed=0)
    teacher = mcv.models.build("lenet5", input_shape=MNIST, seed=0)
    assert count(student) == 8 * 9 + 8 + 16 * 8 * 9 + 16 + 16 * 7 * 7 * 10 + 10 == 9098
    assert count(teacher) / count(student) > 47
    wide = mcv.models.build("small_cnn", input_shape=MNIST, width=4, seed=0)
    assert wide(torch.zeros(3, *MNIST)).shape == (3, 10)


@pytest.mark.parametrize(("width", "error"), [(0, ValueError), (-1, ValueError), (4097, ValueError),
                                              (2.5, TypeError), (True, TypeError)])  # fmt: skip
def test_small_cnn_rejects_bad_widths(width, error):
    with pytest.raises(error, match=r"width must be an int in \[1, 4096\], got"):
        mcv.models.build("small_cnn", input_shape=MNIST, width=width)


def test_small_cnn_needs_4x4_inputs():
    with pytest.raises(ValueError, match="at least 4x4, got 3x3"):
        mcv.models.build("small_cnn", input_shape=(1, 3, 3))


@pytest.mark.parametrize(
    ("name", "options"),
    [("small_cnn", {"width": 4096}), ("mlp", {"hidden": (4096,) * 4}), ("seed_cnn", {})],
)
def test_a_model_too_large_to_be_meant_is_refused_before_it_is_allocated(name, options, monkeypatch):
    shape = (1, 2048, 2048) if name == "seed_cnn" else MNIST  # seed_cnn's linear layer grows with the image
    real = torch.nn.init.kaiming_uniform_

    def meta_only(tensor, *args, **kwargs):  # every layer initializes its weight through this
        assert tensor.device.type == "meta", "a real tensor was allocated"
        return real(tensor, *args, **kwargs)

    monkeypatch.setattr(torch.nn.init, "kaiming_uniform_", meta_only)
    with pytest.raises(ValueError) as e:
        mcv.models.build(name, input_shape=shape, **options)
    assert re.search(r"would have [\d,]+ parameters; at most 50,000,000 are allowed", one_line(e))


def test_the_size_check_counts_the_real_model():
    model = mcv.models.build("small_cnn", input_shape=MNIST, width=4096 // 8)  # 4.7M parameters: allowed
    assert sum(p.numel() for p in model.parameters()) < mcv.models.MAX_PARAMS
