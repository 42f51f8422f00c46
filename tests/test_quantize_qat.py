"""Unit tests of quantization-aware training (mcviz.quantize.qat): the straight-through
estimator, the QAT fine-tuning and its registry config."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from helpers import one_line
from torch import nn

import mcviz as mcv
from mcviz import quantize, registry
from mcviz.quantize import QATConfig, QuantConv2d, QuantLinear, fake_quantize, qat, ste_fake_quantize


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def model(digits_mlp):
    return copy.deepcopy(digits_mlp)


def weight(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- the straight-through estimator


@pytest.mark.parametrize("granularity, axis", [("per_channel", 0), ("per_tensor", None)])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_ste_value_is_fake_quantize(bits, granularity, axis):
    w = weight((16, 9))
    assert torch.equal(ste_fake_quantize(w, bits, granularity=granularity), fake_quantize(w, bits, axis=axis))


@pytest.mark.parametrize("granularity", ["per_channel", "per_tensor"])
def test_ste_gradient_is_all_ones(granularity):
    w = weight((8, 3, 3, 3)).requires_grad_()
    (grad,) = torch.autograd.grad(ste_fake_quantize(w, 2, granularity=granularity).sum(), w)
    assert torch.equal(grad, torch.ones_like(w))


def test_ste_passes_upstream_gradients_through():
    w = weight((5, 4)).requires_grad_()
    g = weight((5, 4), seed=1)
    (grad,) = torch.autograd.grad((ste_fake_quantize(w, 3) * g).sum(), w)
    assert torch.equal(grad, g)


def test_plain_fake_quantize_has_no_gradient():
    # why the STE is needed: rounding alone gives autograd nothing to follow
    w = weight((4,)).requires_grad_()
    assert not fake_quantize(w, 4).requires_grad


def test_ste_docstring_example():
    w = torch.tensor([-1.0, 0.1, 0.3, 1.0], requires_grad=True)
    y = ste_fake_quantize(w, 2, granularity="per_tensor")
    assert y.tolist() == [-1.0, 0.0, 0.0, 1.0]
    assert torch.autograd.grad(y.sum(), w)[0].tolist() == [1.0] * 4


def test_ste_leaves_input_unchanged():
    w = weight((6, 2))
    before = w.clone()
    ste_fake_quantize(w, 2)
    assert torch.equal(w, before)


@pytest.mark.parametrize(
    "kwargs, message, error",
    [
        ({"bits": 1}, "bits must be an int in [2, 8], got 1", ValueError),
        ({"bits": True}, "bits must be an int in [2, 8], got True", TypeError),
        ({"granularity": "per_row"}, "granularity must be one of 'per_tensor', 'per_channel', got 'per_row'",
         ValueError),
    ],
)  # fmt: skip
def test_ste_rejects_bad_options(kwargs, message, error):
    with pytest.raises(error, match=re.escape(message)) as e:
        ste_fake_quantize(weight((3, 3)), **kwargs)
    one_line(e)


# ---------------------------------------------------------------- qat


def test_qat_leaves_input_unchanged(model, digits):
    before = state(model)
    out = qat(model, digits, 4, epochs=1)
    assert out is not model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert type(model.fc1) is nn.Linear and not hasattr(model.fc1, "parametrizations")


def test_qat_returns_integer_layers(model, digits):
    out = qat(model, digits, 4, epochs=1)
    assert isinstance(out.fc1, QuantLinear) and isinstance(out.fc2, QuantLinear)
    assert out.fc1.bits == 4 and out.fc1.granularity == "per_channel"
    assert mcv.measure.model(out).bits == 4


def test_qat_at_4_bits_within_a_point_of_fp32(model, digits):
    fp32 = mcv.train.evaluate(model, digits)
    assert mcv.train.evaluate(qat(model, digits, 4), digits) >= fp32 - 0.01


def test_qat_weights_are_on_the_grid(model, digits):
    out = qat(model, digits, 4)
    for layer in (out.fc1, out.fc2):
        assert torch.equal(layer.weight, fake_quantize(layer.weight, 4, axis=0))


def test_qat_per_tensor(model, digits):
    out = qat(model, digits, 4, epochs=1, granularity="per_tensor")
    assert out.fc1.scale.shape == ()
    assert torch.equal(out.fc1.weight, fake_quantize(out.fc1.weight, 4))


def test_qat_trains(model, digits):
    ptq = quantize.weights(model, 4)
    assert not same_state(qat(model, digits, 4, epochs=1), ptq)


def test_qat_recovers_what_rounding_to_2_bits_loses(model, digits):
    # 2-bit codes are -1, 0, 1: post-training rounding costs many points; training through the
    # rounding wins most of them back
    ptq = mcv.train.evaluate(quantize.weights(model, 2), digits)
    trained = mcv.train.evaluate(qat(model, digits, 2, epochs=2, lr=1e-3), digits)
    assert trained >= ptq + 0.05


def test_qat_is_deterministic(model, digits):
    assert same_state(qat(model, digits, 4, epochs=1), qat(model, digits, 4, epochs=1))


def test_qat_seed_changes_the_result(model, digits):
    a = qat(model, digits, 4, epochs=1, lr=1e-3, seed=0)
    b = qat(model, digits, 4, epochs=1, lr=1e-3, seed=1)
    assert not same_state(a, b)


def test_qat_of_a_conv_model(digits):
    model = mcv.models.build("seed_cnn", input_shape=digits.input_shape, seed=0)
    out = qat(model, digits, 4, epochs=1)
    convs = [m for m in out.modules() if isinstance(m, QuantConv2d)]
    assert convs and all(torch.equal(m.weight, fake_quantize(m.weight, 4, axis=0)) for m in convs)
    assert out(digits.test.tensors[0][:2]).shape == (2, 10)


def test_qat_keeps_training_mode(model, digits):
    model.eval()
    assert not qat(model, digits, 4, epochs=1).training


# ---------------------------------------------------------------- config and registry


def test_parse_and_compress(model, digits):
    (config,) = registry.parse("qat:bits=4,epochs=1")
    assert config == QATConfig(bits=4, epochs=1)
    out = mcv.compress(model, config, data=digits)
    assert same_state(out, qat(model, digits, 4, epochs=1))


def test_compress_needs_data(model):
    with pytest.raises(ValueError, match="'qat' needs data=") as e:
        mcv.compress(model, QATConfig())
    one_line(e)


def test_reexported():
    assert quantize.qat is qat and {"QATConfig", "ste_fake_quantize"} <= set(quantize.__all__)


BAD = [
    ({"bits": 1}, "bits must be an int in [2, 8], got 1", ValueError),
    ({"bits": 9}, "bits must be an int in [2, 8], got 9", ValueError),
    ({"bits": True}, "bits must be an int in [2, 8], got True", TypeError),
    ({"epochs": 0}, "epochs must be an int in [1, 200], got 0", ValueError),
    ({"epochs": 10**9}, "epochs must be an int in [1, 200], got 1000000000", ValueError),
    ({"lr": -1e-4}, "lr must be a finite number in (0, 10], got -0.0001", ValueError),
    ({"granularity": "per_row"}, "granularity must be one of 'per_tensor', 'per_channel', got 'per_row'",
     ValueError),
    ({"seed": -1}, "seed must be an int in [0, 4,294,967,295], got -1", ValueError),
    ({"seed": 2**70}, "seed must be an int in [0, 4,294,967,295], got 1180591620717411303424", ValueError),
]  # fmt: skip


@pytest.mark.parametrize("options, message, error", BAD)
def test_qat_rejects_bad_options(model, digits, options, message, error):
    with pytest.raises(error, match=re.escape(message)) as e:
        qat(model, digits, **options)
    one_line(e)


@pytest.mark.parametrize("options, message, error", BAD)
def test_config_rejects_bad_options(options, message, error):
    with pytest.raises(error, match=re.escape(message)) as e:
        QATConfig(**options)
    one_line(e)


def test_qat_rejects_missing_data(model):
    with pytest.raises(TypeError, match="data must be a DataBundle .* got NoneType") as e:
        qat(model, None)
    one_line(e)


def test_qat_rejects_non_module(digits):
    with pytest.raises(TypeError, match="got str") as e:
        qat("model", digits)
    one_line(e)
