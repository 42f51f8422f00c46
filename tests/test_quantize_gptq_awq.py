"""GPTQ, AWQ and SmoothQuant: the algorithms on one matrix by hand, then on models of Linear layers."""

from __future__ import annotations

import copy
import importlib

import pytest
import torch
from torch import nn

import mcviz as mcv
from mcviz.quantize import calibration

# the modules: the package exports functions of the same names
awq = importlib.import_module("mcviz.quantize.awq")
gptq = importlib.import_module("mcviz.quantize.gptq")
groupwise = importlib.import_module("mcviz.quantize.groupwise")
smoothquant = importlib.import_module("mcviz.quantize.smoothquant")


def _correlated(n=512, d=32, seed=0):
    """Inputs with strongly correlated channels and a few large ones: where GPTQ and AWQ help."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 4, generator=g)
    x = base @ torch.randn(4, d, generator=g) + 0.1 * torch.randn(n, d, generator=g)
    x[:, :2] *= 8  # two outlier channels
    return x


def test_one_gptq_column_update_by_hand():
    # two columns, per-row grid fixed from the original weight: quantize column 0, push its error
    # into column 1 by -err * Hinv[0, 1] / Hinv[0, 0], then quantize column 1
    w = torch.tensor([[0.30, -0.55], [1.00, 0.20]])
    h = torch.tensor([[2.0, 1.2], [1.2, 1.5]], dtype=torch.float64)
    codes, scale, zp = gptq.quantize_weight(w, h, 2, group_size=0, damp=1e-9)
    s = scale[:, 0].double()
    hd = h + 1e-9 * h.diag().mean() * torch.eye(2, dtype=torch.float64)
    hinv = torch.linalg.inv(hd)
    q0 = torch.round(w[:, 0].double() / s).clamp(-1, 1)
    err = (w[:, 0].double() - q0 * s) / hinv[0, 0]
    w1 = w[:, 1].double() - err * hinv[0, 1]
    q1 = torch.round(w1 / s).clamp(-1, 1)
    assert torch.equal(codes[:, 0], q0.long()) and torch.equal(codes[:, 1], q1.long())


def test_gptq_beats_round_to_nearest_on_the_layer_output():
    x = _correlated()
    w = torch.randn(16, 32, generator=torch.Generator().manual_seed(3))
    h = gptq.hessian(x)
    for bits, group in ((3, 8), (2, 0), (4, 16)):
        for act_order in (False, True):
            codes, scale, zp = gptq.quantize_weight(w, h, bits, group_size=group, act_order=act_order)
            wq = groupwise.group_dequantize(codes, scale, zp)
            rtn = groupwise.group_fake_quantize(w, bits, group)
            assert (x @ (wq - w).T).norm() < (x @ (rtn - w).T).norm(), (bits, group, act_order)


def test_gptq_with_an_identity_hessian_is_round_to_nearest():
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    codes, scale, zp = gptq.quantize_weight(w, torch.eye(16, dtype=torch.float64), 4, group_size=8)
    assert torch.equal(groupwise.group_dequantize(codes, scale, zp), groupwise.group_fake_quantize(w, 4, 8))


def test_gptq_on_a_model_keeps_storage_and_input(digits_mlp, digits):
    before = copy.deepcopy(digits_mlp.state_dict())
    q = gptq.gptq(digits_mlp, digits, 3, group_size=16, samples=128)
    assert all(torch.equal(before[k], v) for k, v in digits_mlp.state_dict().items())
    rtn = groupwise.groupwise(digits_mlp, 3, group_size=16)
    assert mcv.measure.model(q).size_bytes == mcv.measure.model(rtn).size_bytes  # same format
    x = digits.train.tensors[0][:256]
    err = [float((m(x) - digits_mlp(x)).detach().norm()) for m in (q, rtn)]
    assert err[0] < err[1]
    assert mcv.train.evaluate(q, digits) >= mcv.train.evaluate(rtn, digits) - 0.02
    same = mcv.compress(digits_mlp, gptq.GPTQConfig(bits=3, group_size=16, samples=128), data=digits)
    assert torch.equal(same.fc1.codes, q.fc1.codes)  # deterministic; config and function agree


def test_gptq_bad_input_is_refused_before_any_work(digits_mlp, digits):
    with pytest.raises(ValueError, match=r"calibration gives layer 'fc1' 10 input rows but it has 64 inputs"):
        gptq.gptq(digits_mlp, digits, 4, group_size=16, samples=10)
    with pytest.raises(ValueError, match="group_size 48 does not divide"):
        gptq.gptq(digits_mlp, digits, 4, group_size=48)
    with pytest.raises(ValueError, match="needs data=, a DataBundle"):
        gptq.gptq(digits_mlp, None, 4, group_size=16)
    with pytest.raises(ValueError, match="damp must be"):
        gptq.GPTQConfig(damp=0)
    with pytest.raises(ValueError, match="not positive definite"):
        gptq.quantize_weight(torch.ones(2, 2), -torch.eye(2, dtype=torch.float64), 4, group_size=0)


def test_calibration_stages_group_layers_that_share_an_input():
    model, _ = _tiny_gpt()
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    plan = calibration.stages(model, names, torch.zeros(1, 8, dtype=torch.long))
    assert plan[:4] == [["blocks.0.qkv"], ["blocks.0.proj"], ["blocks.0.fc"], ["blocks.0.out"]]
    assert plan[-1] == ["head"]


def test_awq_search_prefers_scaling_where_channels_are_salient():
    x = _correlated()
    w = torch.randn(16, 32, generator=torch.Generator().manual_seed(5))
    found = awq.search(w, x, 3, group_size=0, grid=10)
    assert found.alpha > 0 and found.errors[0] > min(found.errors)  # alpha 0 is plain RTN
    assert found.scale[:2].min() > found.scale[2:].max()  # the outlier channels are scaled up
    # without salient channels there is little to gain: the search may keep RTN
    flat = awq.search(w, torch.randn(512, 32, generator=torch.Generator().manual_seed(1)), 3, group_size=0)
    assert min(flat.errors) <= flat.errors[0]


def test_awq_layer_stores_its_input_scale_and_computes_w_x(digits_mlp, digits):
    q = awq.awq(digits_mlp, digits, 4, group_size=16, samples=64, grid=5)
    x = digits.train.tensors[0][:64]
    assert (q(x) - digits_mlp(x)).abs().max() < 1.0
    scaled = [
        m for m in q.modules() if isinstance(m, groupwise.GroupQuantLinear) and m.input_scale is not None
    ]
    for m in scaled:
        rows = [r for r in m.mcviz_storage() if r.tensor == "input_scale"]
        assert rows[0].numel == m.in_features and rows[0].bits == 16


def test_smoothquant_smoothing_alone_keeps_the_function_and_int8_runs(digits_mlp, digits):
    x = digits.test.tensors[0][:100]
    smooth = smoothquant.smooth(digits_mlp, digits, alpha=0.5, samples=64)
    assert torch.allclose(smooth(x), digits_mlp(x), atol=1e-4)
    s = smoothquant.smooth_scales(torch.tensor([4.0, 1.0]), torch.tensor([[1.0, 1.0]]), 0.5)
    assert torch.allclose(s, torch.tensor([2.0, 1.0]))
    q = mcv.compress(digits_mlp, smoothquant.SmoothQuantConfig(alpha=0.5, samples=64), data=digits)
    assert any(type(m).__name__ == "Int8Linear" for m in q.modules())
    assert mcv.train.evaluate(q, digits) > mcv.train.evaluate(digits_mlp, digits) - 0.03
    with pytest.raises(ValueError, match="alpha must be"):
        smoothquant.SmoothQuantConfig(alpha=1.5)


def test_outlier_table_finds_the_large_channels():
    lin = nn.Sequential(nn.Linear(8, 4))
    X = torch.randn(40, 8, generator=torch.Generator().manual_seed(0)) * torch.tensor([30.0] + [1.0] * 7)
    data = mcv.data.from_arrays(X.numpy(), (torch.arange(40) % 2).numpy(), split=(20, 10, 10))
    table = calibration.outliers(calibration.input_ranges(lin, data, samples=20))
    assert table.loc[0, "top_channels"][0] == 0 and table.loc[0, "ratio"] > 5


def _tiny_gpt():
    corpus_text = "the quick brown fox jumps over the lazy dog. " * 30
    model = mcv.gpt.TinyGPT(len(set(corpus_text)), 8, layers=1, dim=16, heads=2)
    return model, corpus_text
