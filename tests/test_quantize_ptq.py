"""Unit tests of post-training quantization: the quantized layers (mcviz.quantize.layers), the
calibration observers (mcviz.quantize.observers) and the model transforms ``weights`` / ``ptq``.

Random inputs come from seeded ``torch.Generator``s, never from the global RNG.
"""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import one_line
from torch import nn

import mcviz as mcv
from mcviz import quantize, registry
from mcviz.quantize import QuantConv2d, QuantLinear, fake_quantize
from mcviz.quantize.observers import observer, quantization_mse


def randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def model(digits_mlp):
    return copy.deepcopy(digits_mlp)


@pytest.fixture
def cnn(digits):
    return mcv.models.build("seed_cnn", input_shape=digits.input_shape, seed=0)


# ---------------------------------------------------------------- layers


@pytest.mark.parametrize("bits", [8, 4, 2])
@pytest.mark.parametrize("granularity,axis", [("per_channel", 0), ("per_tensor", None)])
@pytest.mark.parametrize("symmetric", [True, False])
def test_quant_linear_weight_is_fake_quantized(model, bits, granularity, axis, symmetric):
    q = QuantLinear.from_float(model.fc1, bits, granularity=granularity, symmetric=symmetric)
    assert torch.equal(q.weight, fake_quantize(model.fc1.weight, bits, symmetric=symmetric, axis=axis))
    assert torch.equal(q.bias, model.fc1.bias)


@pytest.mark.parametrize("granularity,axis", [("per_channel", 0), ("per_tensor", None)])
def test_quant_conv_weight_is_fake_quantized(cnn, granularity, axis):
    q = QuantConv2d.from_float(cnn.conv1, 4, granularity=granularity)
    assert torch.equal(q.weight, fake_quantize(cnn.conv1.weight, 4, axis=axis))
    assert q.scale.shape == ((32,) if axis == 0 else ())


def test_quant_layers_hold_integer_codes(model):
    q = QuantLinear.from_float(model.fc1, 4)
    assert q.codes.dtype == torch.int8 and int(q.codes.abs().max()) <= 7
    assert QuantLinear.from_float(model.fc1, 8, symmetric=False).codes.dtype == torch.uint8
    assert not isinstance(q.weight, nn.Parameter)
    assert [n for n, _ in q.named_parameters()] == ["bias"]


def test_quant_layers_are_layers(model, cnn):
    assert isinstance(QuantLinear.from_float(model.fc1), nn.Linear)
    assert isinstance(QuantConv2d.from_float(cnn.conv1), nn.Conv2d)


def test_quant_layer_computes_with_dequantized_weight(model):
    q = QuantLinear.from_float(model.fc1, 4)
    x = randn(5, 64)
    assert torch.equal(q(x), nn.functional.linear(x, q.weight, q.bias))


def test_quant_layer_storage_rows(model):
    rows = QuantLinear.from_float(model.fc1, 4, symmetric=False).mcviz_storage()
    assert [(r.tensor, r.role, r.numel, r.bits) for r in rows] == [
        ("weight", "weight", 64 * 32, 4),
        ("scale", "other", 32, 32),
        ("zero_point", "other", 32, 32),
        ("bias", "bias", 32, 32),
    ]


def test_input_rounding_matches_tensor_quantize(model):
    q = QuantLinear.from_float(model.fc1)
    scale, zero_point = torch.tensor(0.01), torch.tensor(3, dtype=torch.int32)
    q.quantize_input(scale, zero_point)
    x = randn(4, 64)
    codes = quantize.quantize(x, scale, zero_point, 8, symmetric=False)
    rounded = quantize.dequantize(codes, scale, zero_point)
    assert torch.equal(q(x), nn.functional.linear(rounded, q.weight, q.bias))
    assert [r.tensor for r in q.mcviz_storage()][-2:] == ["act_scale", "act_zero_point"]


def test_input_rounding_passes_gradients_straight_through(model):
    q = QuantLinear.from_float(model.fc1)
    q.quantize_input(0.01, 0)
    x = randn(2, 64).abs().requires_grad_()
    q(x).sum().backward()
    assert torch.allclose(x.grad, q.weight.sum(0).expand(2, -1))


def test_state_dict_round_trip(model, digits):
    # same architecture (what ptq builds), different values: loading restores codes and weights
    a, b = quantize.ptq(model, digits, 4), quantize.ptq(model, digits, 4, calibration_batches=1)
    assert "fc1.weight" not in a.state_dict() and a.state_dict()["fc1.codes"].dtype == torch.int8
    b.fc1.set_weight(torch.zeros_like(b.fc1.weight))
    x = digits.test.tensors[0][:8]
    assert not torch.equal(a(x), b(x))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(x), b(x))


# ---------------------------------------------------------------- weights: model transform


def test_weights_leaves_input_unchanged(model):
    before = state(model)
    out = quantize.weights(model, 4)
    assert out is not model and type(model.fc1) is nn.Linear
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_weights_replaces_every_layer(cnn):
    out = quantize.weights(cnn, 8)
    assert isinstance(out.conv1, QuantConv2d) and isinstance(out.fc1, QuantLinear)
    assert mcv.measure.model(out).macs == mcv.measure.model(cnn).macs


def test_weights_size_is_exact(model):
    # 64 -> 32 -> 10: 1 byte per weight, a 4-byte scale per output channel, fp32 biases
    m = mcv.measure.model(quantize.weights(model, 8))
    assert m.size_bytes == (64 * 32 + 32 * 10) + 4 * (32 + 10) + 4 * (32 + 10)
    assert m.bits == 8.0


def test_weights_lenet300_is_at_most_a_quarter(digits):
    lenet = mcv.models.build("lenet300", input_shape=(1, 28, 28), seed=0)
    fp32 = mcv.measure.model(lenet).size_bytes
    int8 = mcv.measure.model(quantize.weights(lenet, 8)).size_bytes
    assert int8 == 266_200 + 4 * 410 + 4 * 410
    assert int8 <= 0.255 * fp32


def test_weights_4_bits_halves_weight_bytes(model):
    def weight_bytes(bits):
        rows = mcv.measure.storage(quantize.weights(model, bits))
        return sum(r.nbytes for r in rows if r.role == "weight")

    assert weight_bytes(4) * 2 == weight_bytes(8)
    assert mcv.measure.model(quantize.weights(model, 4)).bits == 4.0
    assert list(mcv.measure.layers(quantize.weights(model, 4))["bits"]) == [4.0, 4.0]


def test_weights_mixed_precision(model):
    out = quantize.weights(model, {"fc1": 4})
    assert isinstance(out.fc1, QuantLinear) and out.fc1.bits == 4
    assert type(out.fc2) is nn.Linear
    assert mcv.measure.model(out).bits == (64 * 32 * 4 + 32 * 10 * 32) / (64 * 32 + 32 * 10)
    both = quantize.weights(model, {"fc1": 4, "fc2": 8})
    assert (both.fc1.bits, both.fc2.bits) == (4, 8)


def test_weights_8_bit_accuracy_close_to_fp32(model, digits):
    fp32 = mcv.train.evaluate(model, digits)
    assert abs(mcv.train.evaluate(quantize.weights(model, 8), digits) - fp32) <= 0.01


def test_per_channel_beats_per_tensor_on_uneven_channels():
    layer = nn.Linear(32, 8)
    with torch.no_grad():  # channel ranges from 0.001 to 1
        layer.weight.copy_(randn(8, 32) * torch.logspace(-3, 0, 8).reshape(-1, 1))
    x = randn(100, 32, seed=1)
    errors = {}
    for g in ("per_channel", "per_tensor"):
        q = quantize.weights(layer, 4, granularity=g)
        with torch.no_grad():
            errors[g] = ((q.weight - layer.weight).pow(2).mean(), (q(x) - layer(x)).pow(2).mean())
    assert errors["per_channel"][0] < errors["per_tensor"][0]
    assert errors["per_channel"][1] < errors["per_tensor"][1]


def test_fit_trains_biases_and_keeps_codes(model, digits):
    out = quantize.weights(model, 8)
    codes, bias = out.fc1.codes.clone(), out.fc1.bias.clone()
    mcv.train.fit(out, digits, epochs=1, progress=False)
    assert torch.equal(out.fc1.codes, codes)
    assert torch.equal(out.fc1.weight, fake_quantize(model.fc1.weight, 8, axis=0))
    assert not torch.equal(out.fc1.bias, bias)


# ---------------------------------------------------------------- observers


def outliers():
    x = randn(10_000)
    x[0] = 100.0
    return x


def test_minmax_observer_is_the_data_range():
    obs = observer("minmax")
    obs.observe(torch.tensor([-1.0, 0.5]))
    obs.observe(torch.tensor([[2.0, 0.0]]))
    assert obs.range() == (-1.0, 2.0)
    scale, zero_point = obs.qparams(8, symmetric=False)
    assert torch.equal(scale, quantize.qparams(torch.tensor([-1.0, 2.0]), symmetric=False)[0])
    assert zero_point.item() == quantize.qparams(torch.tensor([-1.0, 2.0]), symmetric=False)[1].item()


def test_percentile_observer_clips_outliers():
    obs = observer("percentile")
    obs.observe(outliers())
    lo, hi = obs.range()
    assert hi < 10 and lo > -10
    assert obs.range(symmetric=True)[1] < 10


def test_mse_observer_beats_minmax_on_outliers():
    x = outliers()
    ranges = {}
    for name in ("minmax", "mse"):
        obs = observer(name)
        obs.observe(x)
        ranges[name] = obs.range(bits=4)
    (lo_mm, hi_mm), (lo, hi) = ranges["minmax"], ranges["mse"]
    assert lo_mm <= lo and hi <= hi_mm
    assert quantization_mse(x, lo, hi, 4) < quantization_mse(x, lo_mm, hi_mm, 4)


@pytest.mark.parametrize("symmetric", [True, False])
def test_quantization_mse_matches_quantize(symmetric):
    x = outliers()
    scale, zero_point = quantize.qparams(torch.tensor([-1.5, 2.0]), 4, symmetric=symmetric)
    codes = quantize.quantize(x, scale, zero_point, 4, symmetric=symmetric)
    expected = (quantize.dequantize(codes, scale, zero_point).double() - x.double()).pow(2).mean()
    assert quantization_mse(x, -1.5, 2.0, 4, symmetric) == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize("name", quantize.OBSERVERS)
def test_observers_are_deterministic(name):
    results = []
    for _ in range(2):
        obs = observer(name)
        obs.observe(outliers())
        results.append(obs.qparams(8))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_observer_without_values():
    with pytest.raises(ValueError, match="seen no values") as e:
        observer("mse").range()
    one_line(e)


# ---------------------------------------------------------------- ptq


def test_ptq_deterministic_and_close(model, digits):
    before = state(model)
    a, b = quantize.ptq(model, digits), quantize.ptq(model, digits)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    x = digits.test.tensors[0]
    assert torch.equal(a(x), b(x))
    plain = quantize.weights(model, 8)(x)
    assert not torch.equal(a(x), plain)
    assert (a(x) - plain).abs().max() < 0.1 * plain.abs().max()
    assert abs(mcv.train.evaluate(a, digits) - mcv.train.evaluate(model, digits)) <= 0.01


def test_ptq_calibrates_on_first_training_batches(model, digits):
    out = quantize.ptq(model, digits, calibration_batches=2)
    x = digits.train.tensors[0][:128]
    scale, zero_point = quantize.qparams(x, 8, symmetric=False)
    assert torch.equal(out.fc1.act_scale, scale) and torch.equal(out.fc1.act_zero_point, zero_point)


@pytest.mark.parametrize("name", quantize.OBSERVERS)
def test_ptq_every_observer(model, digits, name):
    out = quantize.ptq(model, digits, 4, granularity="per_tensor", observer=name)
    assert out.fc2.act_bits == 8 and out.fc2.bits == 4


def test_ptq_of_conv_model(cnn, digits):
    out = quantize.ptq(cnn, digits)
    x = digits.test.tensors[0][:8]
    assert torch.allclose(out(x), cnn(x), atol=0.05)


# ---------------------------------------------------------------- registry and validation


def test_parse_specs():
    assert registry.parse("weights:bits=4,granularity=per_tensor") == (
        quantize.WeightsConfig(bits=4, granularity="per_tensor"),
    )
    assert registry.parse("ptq:observer=mse") == (quantize.PTQConfig(observer="mse"),)


def test_compress_with_configs_equals_functions(model, digits):
    x = digits.test.tensors[0][:8]
    out = mcv.compress(model, *registry.parse("weights:bits=4"))
    assert torch.equal(out(x), quantize.weights(model, 4)(x))
    out = mcv.compress(model, *registry.parse("ptq:observer=percentile"), data=digits)
    assert torch.equal(out(x), quantize.ptq(model, digits, observer="percentile")(x))


BAD = [
    ({"bits": 1}, r"bits must be an int in \[2, 8\], got 1", ValueError),
    ({"bits": 9}, "got 9", ValueError),
    ({"bits": 8.0}, "got 8.0", TypeError),
    ({"bits": True}, "got True", TypeError),
    ({"granularity": "per_row"}, "granularity must be one of 'per_tensor', 'per_channel', got 'per_row'",
     ValueError),
    ({"symmetric": 1}, "symmetric must be True or False, got 1", TypeError),
]  # fmt: skip
BAD_PTQ = [
    ({"observer": "max"}, "observer must be one of 'minmax', 'percentile', 'mse', got 'max'", ValueError),
    ({"calibration_batches": 0}, r"calibration_batches must be an int in \[1, 1000\], got 0", ValueError),
    ({"calibration_batches": 10**6}, r"calibration_batches must be an int in \[1, 1000\]", ValueError),
]


@pytest.mark.parametrize("options,message,error", BAD)
def test_weights_rejects(model, options, message, error):
    for call in (lambda: quantize.weights(model, **options), lambda: quantize.WeightsConfig(**options)):
        with pytest.raises(error, match=message) as e:
            call()
        one_line(e)


@pytest.mark.parametrize("options,message,error", [o for o in BAD if "symmetric" not in o[0]] + BAD_PTQ)
def test_ptq_rejects(model, digits, options, message, error):
    for call in (lambda: quantize.ptq(model, digits, **options), lambda: quantize.PTQConfig(**options)):
        with pytest.raises(error, match=message) as e:
            call()
        one_line(e)


@pytest.mark.parametrize(
    "bits,message,error",
    [
        ({"fc9": 4}, "bits names no Linear/Conv2d layer 'fc9'; layers: fc1, fc2", ValueError),
        ({"relu1": 4}, "'relu1'", ValueError),
        ({"fc1": 9}, r"bits\['fc1'\] must be an int in \[2, 8\], got 9", ValueError),
        ({}, "non-empty dict", ValueError),
        ("8", "got '8'", TypeError),
    ],
)
def test_weights_rejects_bad_bits(model, bits, message, error):
    with pytest.raises(error, match=message) as e:
        quantize.weights(model, bits)
    one_line(e)


def test_ptq_rejects_non_data(model):
    with pytest.raises(TypeError, match="data must be a DataBundle") as e:
        quantize.ptq(model, None)
    one_line(e)


def test_weights_rejects_non_module():
    with pytest.raises(TypeError, match="got str") as e:
        quantize.weights("model")
    one_line(e)
