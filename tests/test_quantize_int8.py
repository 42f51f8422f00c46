"""Tests of real int8 execution (mcviz.quantize.int8) and of how mcv.measure counts it."""

from __future__ import annotations

import copy
import dataclasses
import gzip
import inspect
import subprocess
import sys
import warnings
from collections import OrderedDict

import pytest
import torch
from helpers import one_line
from torch import nn
from torch.nn.utils import prune

import mcviz as mcv
from mcviz import quantize, registry
from mcviz.quantize.int8 import Int8Conv2d, Int8Linear

MODES = pytest.mark.parametrize("mode", ["dynamic", "static"])


@pytest.fixture(scope="module")
def cnn(digits):
    """seed_cnn trained 2 epochs on digits. Shared: do not modify."""
    model = mcv.models.build("seed_cnn", input_shape=digits.input_shape, seed=0)
    mcv.train.fit(model, digits, epochs=2, lr=1e-2, seed=0, progress=False)
    return model.eval()


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------- the transform


@MODES
def test_input_model_unchanged(digits_mlp, digits, mode):
    model = copy.deepcopy(digits_mlp)
    before = state(model)
    out = quantize.int8(model, digits, mode=mode)
    assert out is not model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(type(m) in (nn.Sequential, nn.Flatten, nn.Linear, nn.ReLU) for m in model.modules())


@MODES
def test_float32_in_float32_out(digits_mlp, digits, mode):
    out = quantize.int8(digits_mlp, digits, mode=mode)(digits.test.tensors[0][:7])
    assert out.dtype == torch.float32 and out.shape == (7, 10)


@MODES
def test_outputs_close_to_fp32(digits_mlp, digits, mode):
    x = digits.test.tensors[0]
    ref = digits_mlp(x)
    out = quantize.int8(digits_mlp, digits, mode=mode)(x)
    # static clips rare outliers to the calibrated activation range: compare means, and predictions
    assert (out - ref).abs().mean() < 0.03 * ref.abs().mean()
    assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.99


@MODES
def test_mlp_accuracy_drop_at_most_2_points(digits_mlp, digits, mode):
    fp32 = mcv.train.evaluate(digits_mlp, digits)
    assert mcv.train.evaluate(quantize.int8(digits_mlp, digits, mode=mode), digits) >= fp32 - 0.02


@MODES
def test_cnn_accuracy_drop_at_most_2_points(cnn, digits, mode):
    fp32 = mcv.train.evaluate(cnn, digits)
    assert mcv.train.evaluate(quantize.int8(cnn, digits, mode=mode), digits) >= fp32 - 0.02


def test_dynamic_quantizes_linear_only(cnn):
    q = quantize.int8(cnn)
    assert isinstance(q.conv1, nn.Conv2d) and isinstance(q.fc1, Int8Linear)


def test_static_runs_every_layer_in_int8(cnn, digits):
    q = quantize.int8(cnn, digits, mode="static")
    assert list(q._modules) == ["quant", "conv1", "relu1", "pool1", "flatten", "fc1", "dequant"]
    assert isinstance(q.conv1, Int8Conv2d)
    assert q.conv1.weight.dtype == torch.qint8 and q.fc1.weight.dtype == torch.qint8
    seen = []
    hook = q.pool1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    q(digits.test.tensors[0][:2])
    hook.remove()
    assert seen == [torch.quint8]  # activations between layers are uint8


def test_static_is_deterministic(cnn, digits):
    a = quantize.int8(cnn, digits, mode="static")
    b = quantize.int8(cnn, digits, mode="static")
    x = digits.test.tensors[0]
    assert torch.equal(a(x), b(x))


def test_calibration_batches_change_the_scales(cnn, digits):
    a = quantize.int8(cnn, digits, mode="static", calibration_batches=1)
    b = quantize.int8(cnn, digits, mode="static", calibration_batches=8)
    assert a.conv1.inner.scale != b.conv1.inner.scale


def test_user_sequential_without_names(digits):
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10)
    )
    q = quantize.int8(model, digits, mode="static")
    x = digits.test.tensors[0][:4]
    assert (q(x) - model(x)).abs().max() < 0.1


def test_dynamic_on_a_custom_forward():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)) + x)

    model = Net()
    x = torch.rand(5, 8)
    assert torch.allclose(quantize.int8(model)(x), model(x), atol=0.05)


def test_pruned_weights_stay_zero(digits_mlp):
    model = copy.deepcopy(digits_mlp)
    with torch.no_grad():  # keeps the masked weight a leaf tensor, which deepcopy needs
        prune.l1_unstructured(model.fc1, "weight", amount=0.5)
    q = quantize.int8(model)
    assert int((q.fc1.weight.dequantize() == 0).sum()) >= model.fc1.weight.numel() // 2


def test_no_deprecation_warning_escapes(digits_mlp, digits):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for mode in ("dynamic", "static"):
            q = quantize.int8(digits_mlp, digits, mode=mode)
            q(digits.test.tensors[0][:3])
            mcv.measure.model(q, digits)


# ---------------------------------------------------------------- measure


def expected_size(model, static):
    """int8 codes + one fp32 scale per output channel + fp32 bias (+ output scale and zero point);
    dynamic mode leaves Conv2d in fp32; static adds the input's scale and zero point."""
    total = 8 if static else 0
    for m in model.modules():
        if isinstance(m, nn.Linear) or (static and isinstance(m, nn.Conv2d)):
            total += m.weight.numel() + 4 * m.weight.shape[0] + 4 * m.bias.numel() + (8 if static else 0)
        elif isinstance(m, nn.Conv2d):
            total += 4 * (m.weight.numel() + m.bias.numel())
    return total


@pytest.mark.parametrize("mode", ["dynamic", "static"])
@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_measure_fields(digits_mlp, cnn, digits, mode, which):
    model = {"mlp": digits_mlp, "cnn": cnn}[which]
    q = quantize.int8(model, digits, mode=mode)
    fp = mcv.measure.model(model, digits)
    m = mcv.measure.model(q, digits)
    assert (m.params, m.macs) == (fp.params, fp.macs)
    assert m.size_bytes == expected_size(model, mode == "static")
    weights = [layer.weight for _, layer in mcv.measure._layers(q)]
    weights = [w.dequantize() if w.is_quantized else w for w in weights]
    assert m.sparsity == sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    if which == "mlp" or mode == "static":
        assert m.bits == 8
    else:  # dynamic leaves the conv layer in fp32
        conv, fc = model.conv1.weight.numel(), model.fc1.weight.numel()
        assert m.bits == pytest.approx((32 * conv + 8 * fc) / (conv + fc))
    raw = mcv.measure.serialized(q)
    assert m.file_bytes == len(raw) < fp.file_bytes
    assert m.gzip_bytes == len(gzip.compress(raw, compresslevel=6, mtime=0))
    assert m.accuracy == mcv.train.evaluate(q, digits)


def test_measure_counts_lenet300_exactly():
    model = mcv.models.build("lenet300", input_shape=(1, 28, 28), seed=0)
    m = mcv.measure.model(quantize.int8(model))
    weights = 784 * 300 + 300 * 100 + 100 * 10
    assert m.params == weights + 410
    assert m.size_bytes == weights + 4 * 410 + 4 * 410  # codes, a scale per row, fp32 biases
    assert m.bits == 8 and m.macs == weights


def test_measure_layers_table(cnn, digits):
    table = mcv.measure.layers(quantize.int8(cnn, digits, mode="static"))
    assert list(table["kind"]) == ["Int8Conv2d", "Int8Linear"]
    assert list(table["bits"]) == [8.0, 8.0]
    assert list(table["macs"]) == list(mcv.measure.layers(cnn)["macs"])
    assert table["size_bytes"][0] == 288 + 4 * 32 + 4 * 32 + 8


def test_measure_latency_runs(digits_mlp, digits):
    m = mcv.measure.model(quantize.int8(digits_mlp, digits, mode="static"), digits, latency=True, repeats=3)
    assert m.latency_ms > 0


# ---------------------------------------------------------------- save and reload

RELOAD = """
import sys, torch, mcviz as mcv
data = mcv.data.load("digits")
arch = mcv.models.build("seed_cnn", input_shape=data.input_shape)
q = mcv.quantize.int8(arch, data, mode=sys.argv[1])
q.load_state_dict(torch.load(sys.argv[2]))
torch.save(q(data.test.tensors[0]), sys.argv[3])
"""


@MODES
def test_reload_in_a_fresh_process(cnn, digits, tmp_path, mode):
    q = quantize.int8(cnn, digits, mode=mode)
    torch.save(q.state_dict(), tmp_path / "q.pt")
    subprocess.run(
        [sys.executable, "-c", RELOAD, mode, str(tmp_path / "q.pt"), str(tmp_path / "out.pt")],
        check=True,
        timeout=120,
    )
    assert torch.equal(torch.load(tmp_path / "out.pt"), q(digits.test.tensors[0]))


# ---------------------------------------------------------------- config and registry


def test_config_options_match_the_function():
    fields = {f.name: f.default for f in dataclasses.fields(quantize.Int8Config)}
    params = inspect.signature(quantize.int8).parameters.values()
    assert fields == {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}


def test_parse():
    assert registry.parse("int8") == (quantize.Int8Config(),)
    assert registry.parse("int8:mode=static") == (quantize.Int8Config(mode="static"),)
    assert registry.parse("int8:mode=static,calibration_batches=2")[0].calibration_batches == 2


@MODES
def test_compress_matches_the_function(digits_mlp, digits, mode):
    x = digits.test.tensors[0]
    a = mcv.compress(digits_mlp, *registry.parse(f"int8:mode={mode}"), data=digits)
    assert torch.equal(a(x), quantize.int8(digits_mlp, digits, mode=mode)(x))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, match, error",
    [
        (lambda m, d: quantize.int8(m, mode="fast"), "mode must be one of 'dynamic', 'static', got 'fast'",
         ValueError),
        (lambda m, d: quantize.Int8Config(mode="fast"), "got 'fast'", ValueError),
        (lambda m, d: quantize.int8(m, d, mode="static", calibration_batches=0), "calibration_batches",
         ValueError),
        (lambda m, d: quantize.int8(m, d, calibration_batches=10**6), r"calibration_batches .*\[1, 1000\]",
         ValueError),
        (lambda m, d: quantize.Int8Config(calibration_batches=True), "calibration_batches", TypeError),
        (lambda m, d: quantize.int8(m, mode="static"), "mode='static' needs data=", ValueError),
        (lambda m, d: mcv.compress(m, quantize.Int8Config("static")), "needs data=", ValueError),
        (lambda m, d: quantize.int8(m, "digits", mode="static"), "DataBundle", TypeError),
        (lambda m, d: quantize.int8("model"), "got str", TypeError),
        (lambda m, d: quantize.int8(nn.Sequential(nn.Conv2d(1, 2, 3))), "has none", ValueError),
    ],
)  # fmt: skip
def test_bad_input(digits_mlp, digits, call, match, error):
    with pytest.raises(error, match=match) as e:
        call(digits_mlp, digits)
    one_line(e)


@pytest.mark.parametrize(
    "layer, name", [(nn.BatchNorm1d(64), "BatchNorm1d"), (nn.LSTM(64, 10), "LSTM"), (nn.Tanh(), "Tanh")]
)
def test_static_rejects_unsupported_layer(digits, layer, name):
    model = nn.Sequential(OrderedDict([("flatten", nn.Flatten()), ("odd", layer), ("fc", nn.Linear(64, 10))]))
    match = f"cannot run layer 'odd' \\({name}\\); supported: Linear, Conv2d"
    with pytest.raises(ValueError, match=match) as e:
        quantize.int8(model, digits, mode="static")
    one_line(e)


def test_static_rejects_custom_forward(digits):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.flatten(1))

    with pytest.raises(ValueError, match="needs a nn.Sequential.*got Net") as e:
        quantize.int8(Net(), digits, mode="static")
    one_line(e)


def test_static_rejects_wrong_input_shape(digits):
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 10))
    with pytest.raises(ValueError, match="could not calibrate on 'digits'") as e:
        quantize.int8(model, digits, mode="static")
    one_line(e)
