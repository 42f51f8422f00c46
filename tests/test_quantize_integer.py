"""Unit tests of mcviz.quantize.integer: integer-only Linear arithmetic checked against torch.ao's
static int8 Linear (through mcviz._backends) within one output code, and BatchNorm folding
checked against the unfolded model and torch's own fuse_conv_bn_eval."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

import mcviz as mcv
from mcviz import _backends
from mcviz.quantize import integer


@pytest.mark.parametrize("m", [0.25, 1.0, 0.0007, 0.999999999, 3.5, 2.0**-20])
def test_fixed_point_multiplier(m):
    m0, shift = mcv.quantize.fixed_point_multiplier(m)
    assert 2**30 <= m0 < 2**31
    assert abs(m0 * 2.0**-shift - m) <= m * 2**-31


def test_requantize_is_rounded_fixed_point_product():
    acc = torch.randint(-(2**24), 2**24, (64, 7), generator=torch.Generator().manual_seed(0))
    multipliers = torch.linspace(1e-4, 0.3, 7, dtype=torch.float64)
    ours = integer.requantize(acc, multipliers, 10, qmin=-(2**40), qmax=2**40)
    exact = torch.floor(acc.double() * multipliers + 0.5) + 10
    assert (ours.double() - exact).abs().max() <= 1
    real = acc.double() * multipliers
    off = ours.double() != exact  # only (near-)ties may round the other way: M0 * 2**-shift is not exactly M
    assert ((real[off] - torch.floor(real[off]) - 0.5).abs() < 1e-3).all()
    assert off.float().mean() < 0.1


def _check_against_torch(layer, batches, test_x, relu):
    ref = _backends.static_linear(layer, batches, relu=relu)
    x_q = torch.clamp(torch.round(test_x / ref.x_scale) + ref.x_zero_point, 0, 255).to(torch.uint8)
    torch_codes = ref.run(x_q)
    ours = mcv.quantize.integer_linear(
        x_q, ref.x_scale, ref.x_zero_point, ref.w_codes, ref.w_scales, ref.w_zero_points, ref.bias,
        ref.out_scale, ref.out_zero_point, relu=relu,
    )  # fmt: skip
    assert ours.dtype == torch.uint8 and ours.shape == torch_codes.shape
    diff = (ours.int() - torch_codes.int()).abs()
    assert diff.max() <= 1, "more than one code (LSB) away from torch.ao's int8 Linear"
    assert (diff > 0).float().mean() < 0.01
    return ref, x_q, ours


@pytest.mark.parametrize("relu", [False, True])
def test_integer_linear_matches_torch_ao_on_trained_layers(digits, digits_mlp, relu):
    X = digits.train.tensors[0].flatten(1)
    test_x = digits.test.tensors[0].flatten(1)
    ref, x_q, _ = _check_against_torch(digits_mlp.fc1, [X[:256], X[256:512]], test_x, relu)
    assert ref.x_zero_point == 0 and int(x_q.max()) <= 127  # reduce_range: 7-bit activations
    hidden = torch.relu(digits_mlp.fc1(test_x)).detach()
    train_hidden = torch.relu(digits_mlp.fc1(X[:512])).detach()
    _check_against_torch(digits_mlp.fc2, [train_hidden], hidden, relu)


def test_integer_linear_cross_terms_with_weight_zero_points():
    g = torch.Generator().manual_seed(1)
    x_q = torch.randint(0, 256, (32, 50), generator=g, dtype=torch.int64).to(torch.uint8)
    w_q = torch.randint(-128, 128, (6, 50), generator=g).to(torch.int8)
    w_zero = torch.tensor([0, 3, -5, 7, 1, -2])
    w_scale = torch.linspace(0.001, 0.01, 6, dtype=torch.float64)
    bias = torch.randn(6, generator=g)
    s_x, z_x, s_y, z_y = 0.02, 17, 0.05, 128
    ours = mcv.quantize.integer_linear(x_q, s_x, z_x, w_q, w_scale, w_zero, bias, s_y, z_y)
    w_real = (w_q.double() - w_zero[:, None]) * w_scale[:, None]
    real = ((x_q.double() - z_x) * s_x) @ w_real.T + bias.double()
    expected = torch.clamp(torch.round(real / s_y) + z_y, 0, 255)
    assert (ours.double() - expected).abs().max() <= 1
    x0 = x_q.clone()
    mcv.quantize.integer_linear(x_q, s_x, z_x, w_q, w_scale, w_zero, None, s_y, z_y)
    assert torch.equal(x_q, x0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"x_q": torch.zeros(2, 4)}, TypeError, "x_q must be a 2-D integer tensor"),
        ({"w_q": torch.zeros(3, 5, dtype=torch.int8)}, ValueError, "x_q has 4 features but w_q expects 5"),
        ({"x_scale": 0.0}, ValueError, "x_scale"),
        ({"out_zero_point": 300}, ValueError, "out_zero_point"),
        ({"w_scale": [0.1, 0.2]}, ValueError, "w_scale must be one number or one per output channel"),
        ({"relu": "yes"}, TypeError, "relu"),
    ],
)
def test_integer_linear_bad_input(kwargs, error, match):
    args = {
        "x_q": torch.zeros(2, 4, dtype=torch.uint8), "x_scale": 0.1, "x_zero_point": 0,
        "w_q": torch.ones(3, 4, dtype=torch.int8), "w_scale": 0.1, "w_zero_point": 0, "bias": None,
        "out_scale": 0.1, "out_zero_point": 0,
    }  # fmt: skip
    args.update(kwargs)
    with pytest.raises(error, match=match):
        mcv.quantize.integer_linear(**args)


def _conv_bn_model():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 6, 3, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 5), nn.BatchNorm1d(5),
    )  # fmt: skip
    with torch.no_grad():  # statistics far from the identity, so a missing fold would show
        for bn in (model[1], model[4], model[8]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 3)
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
    return model.eval()


def test_fold_batchnorm_matches_unfolded_model_and_torch():
    model = _conv_bn_model()
    before = copy.deepcopy(model.state_dict())
    folded = mcv.quantize.fold_batchnorm(model)
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-5)
    assert [type(folded[i]) for i in (1, 4, 8)] == [nn.Identity] * 3
    for conv, bn, fuse in ((0, 1, fuse_conv_bn_eval), (3, 4, fuse_conv_bn_eval), (7, 8, fuse_linear_bn_eval)):
        theirs = fuse(copy.deepcopy(model[conv]), copy.deepcopy(model[bn]))
        assert torch.allclose(folded[conv].weight, theirs.weight, atol=1e-6)
        assert torch.allclose(folded[conv].bias, theirs.bias, atol=1e-6)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # input unchanged


def test_fold_batchnorm_explicit_pairs_and_bad_pairs():
    model = _conv_bn_model()
    only_first = mcv.quantize.fold_batchnorm(model, [("0", "1")])
    assert isinstance(only_first[1], nn.Identity) and isinstance(only_first[4], nn.BatchNorm2d)
    with pytest.raises(ValueError, match="'2', which is not a Conv2d or Linear"):
        mcv.quantize.fold_batchnorm(model, [("2", "1")])
    with pytest.raises(ValueError, match="'2', which is not a BatchNorm"):
        mcv.quantize.fold_batchnorm(model, [("0", "2")])
    with pytest.raises(ValueError, match="'4' has 6 channels, '0' has 4"):
        mcv.quantize.fold_batchnorm(model, [("0", "4")])
    with pytest.raises(TypeError, match="pairs must be a list"):
        mcv.quantize.fold_batchnorm(model, "0,1")
    with pytest.raises(TypeError, match="model"):
        mcv.quantize.fold_batchnorm("model")
