"""Group-wise RTN, row-wise embedding quantization: the grid, exact storage, any model of Linear layers."""

from __future__ import annotations

import copy
import importlib
import math
import warnings

import pytest
import torch
from torch import nn

import mcviz as mcv
from mcviz import _layers

# the modules: the package exports functions of the same names
embeddings = importlib.import_module("mcviz.quantize.embeddings")
groupwise = importlib.import_module("mcviz.quantize.groupwise")


def _w(out=6, inp=8, seed=0):
    return torch.randn(out, inp, generator=torch.Generator().manual_seed(seed))


def test_each_group_has_its_own_symmetric_grid():
    w = _w()
    q = groupwise.group_fake_quantize(w, 4, 4)
    for row in range(w.shape[0]):
        for g in range(2):
            part = w[row, 4 * g : 4 * g + 4]
            step = float((part.abs().max() / 7).half())  # fp16 scale
            got = q[row, 4 * g : 4 * g + 4]
            assert torch.allclose(got, torch.round(part / step).clamp(-7, 7) * step, atol=1e-6)
    # group_size 0 is one group per row: the same as per-channel quantization with fp16 scales
    per_row = groupwise.group_fake_quantize(w, 4, 0)
    scale, _ = mcv.quantize.qparams(w, 4, axis=0)
    assert torch.allclose(per_row, torch.round(w / scale.half().float()[:, None]).clamp(-7, 7)
                          * scale.half().float()[:, None], atol=1e-6)  # fmt: skip


def test_asymmetric_groups_keep_zero_exact_and_stay_in_range():
    w = torch.rand(4, 16, generator=torch.Generator().manual_seed(1)) + 0.5  # all positive
    w[0, 3] = 0.0
    scale, zp = groupwise.group_qparams(w, 3, 8, symmetric=False)
    codes = groupwise.group_quantize(w, scale, zp, 3, symmetric=False)
    assert int(codes.min()) >= 0 and int(codes.max()) <= 7
    back = groupwise.group_dequantize(codes, scale, zp)
    assert back[0, 3] == 0.0
    assert float((back - w).abs().max()) <= float(scale.float().max()) / 2 + 1e-6


def test_smaller_groups_lose_less():
    w = _w(32, 128) * torch.linspace(0.1, 3, 128)  # columns of very different ranges
    errors = [float((groupwise.group_fake_quantize(w, 3, g) - w).norm()) for g in (0, 64, 32, 8)]
    assert errors == sorted(errors, reverse=True)


def test_storage_is_exactly_codes_scales_zero_points_and_bias():
    model = nn.Sequential(nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 8, bias=False))
    for bits, group, sym in ((4, 8, True), (3, 8, False), (2, 0, True), (5, 0, False)):
        out = groupwise.groupwise(model, bits, group_size=group, symmetric=sym)
        groups1, groups2 = (8, 3) if group else (1, 1)
        codes = math.ceil(24 * 64 * bits / 8) + math.ceil(8 * 24 * bits / 8)
        scales = 2 * (24 * groups1 + 8 * groups2)  # fp16
        zero_points = 0 if sym else math.ceil(24 * groups1 * bits / 8) + math.ceil(8 * groups2 * bits / 8)
        expected = codes + scales + zero_points + 4 * 24  # + the fp32 bias of the first layer
        assert mcv.measure.model(out).size_bytes == expected, (bits, group, sym)
        assert groupwise.storage_bytes(24, 64, bits, group, symmetric=sym) + groupwise.storage_bytes(
            8, 24, bits, group, symmetric=sym, bias=False) == expected  # fmt: skip
        assert mcv.measure.model(out).bits == bits


def test_a_group_size_that_does_not_divide_a_layer_is_refused_before_any_work(digits_mlp):
    with pytest.raises(ValueError, match="group_size 48 does not divide the 64 inputs of layer 'fc1'"):
        groupwise.groupwise(digits_mlp, 4, group_size=48)
    with pytest.raises(ValueError, match=r"bits must be an int in \[2, 8\]"):
        groupwise.GroupwiseConfig(bits=9)
    with pytest.raises(ValueError, match="group_size must be"):
        groupwise.GroupwiseConfig(group_size=-1)
    with pytest.raises(ValueError, match="needs a model with nn.Linear layers"):
        groupwise.groupwise(nn.Sequential(nn.Conv2d(1, 2, 3)), 4)


def test_groupwise_on_lenet_style_mlp_keeps_the_input_and_the_accuracy(digits_mlp, digits):
    before = copy.deepcopy(digits_mlp.state_dict())
    q = mcv.compress(digits_mlp, mcv.registry.parse("groupwise:bits=8,group_size=16")[0])
    assert all(torch.equal(before[k], v) for k, v in digits_mlp.state_dict().items())
    assert isinstance(q.fc1, groupwise.GroupQuantLinear)
    assert abs(mcv.train.evaluate(q, digits) - mcv.train.evaluate(digits_mlp, digits)) < 0.02
    # the state_dict round trip restores the computed weight
    again = groupwise.groupwise(digits_mlp, 8, group_size=16)
    again.load_state_dict(q.state_dict())
    assert torch.equal(again.fc1.weight, q.fc1.weight)


def test_other_weight_layers_are_left_with_one_warning():
    model = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 4))
    with pytest.warns(_layers.UnsupportedLayersWarning, match=r"groupwise leaves 0 \(Embedding\)") as record:
        out = groupwise.groupwise(model, 4, group_size=8)
    assert len(record) == 1 and record[0].filename == __file__  # points at the caller, not at mcviz
    assert type(out[0]) is nn.Embedding and isinstance(out[1], groupwise.GroupQuantLinear)


@pytest.mark.filterwarnings("ignore:MACs and sparsity count")  # an embedding table has no MACs
def test_embeddings_are_quantized_row_by_row_with_exact_storage():
    model = nn.Sequential(nn.Embedding(50, 16, padding_idx=0), nn.Linear(16, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = embeddings.embeddings(model, 4)
    table = model[0].weight.detach()
    assert torch.allclose(q[0].weight, groupwise.group_fake_quantize(table, 4, 0))
    ids = torch.tensor([[1, 2, 3]])
    assert torch.allclose(q(ids), model[1](q[0].weight[ids]))
    fp32, small = mcv.measure.model(model), mcv.measure.model(q)
    assert small.params == fp32.params  # the table is still counted
    assert small.size_bytes == math.ceil(50 * 16 * 4 / 8) + 50 * 2 + (16 * 4 + 4) * 4
    with pytest.raises(ValueError, match="has none"):
        embeddings.embeddings(nn.Sequential(nn.Linear(2, 2)))
