"""Unit tests of mcviz._layers: layer surgery (build, read, fill, replace) and its policies."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from mcviz import _layers
from mcviz.prune import PrunedConv2d, PrunedLinear
from mcviz.quantize import KMeansConv2d, KMeansLinear, QuantConv2d, QuantLinear


def _filled(layer: nn.Module, seed: int = 0) -> nn.Module:
    """Returns ``layer`` with its parameters set from a private generator."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return layer


def _odd_conv(**options) -> nn.Conv2d:
    """A Conv2d with every option away from its default, and no bias."""
    conv = nn.Conv2d(
        4, 6, (3, 2), stride=(2, 1), padding=(2, 1), dilation=(2, 1), groups=2, bias=False,
        padding_mode="reflect", **options,
    )  # fmt: skip
    return _filled(conv)


def _config(layer: nn.Module) -> dict:
    keys = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
            "padding_mode", "in_features", "out_features")  # fmt: skip
    return {k: getattr(layer, k) for k in keys if hasattr(layer, k)}


X_CONV = torch.randn(2, 4, 9, 7, generator=torch.Generator().manual_seed(1))


# ---------------------------------------------------------------- plain_like


def test_plain_like_reproduces_a_conv_with_every_option_and_no_bias():
    conv = _odd_conv()
    new = _layers.plain_like(conv, conv.weight, None)
    assert type(new) is nn.Conv2d and repr(new) == repr(conv) and _config(new) == _config(conv)
    assert new.bias is None
    assert torch.equal(new.weight, conv.weight)
    assert new.weight.data_ptr() != conv.weight.data_ptr()  # a copy: the source stays unchanged
    with torch.no_grad():
        assert torch.equal(new(X_CONV), conv(X_CONV))  # bit for bit


def test_plain_like_reproduces_a_linear_with_bias():
    linear = _filled(nn.Linear(5, 3))
    new = _layers.plain_like(linear, linear.weight, linear.bias)
    assert type(new) is nn.Linear and repr(new) == repr(linear)
    assert isinstance(new.weight, nn.Parameter) and new.weight.requires_grad
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(new(x), linear(x))
    with torch.no_grad():
        new.bias.add_(1)
    assert not torch.equal(new.bias, linear.bias)  # no storage shared


def test_plain_like_takes_its_sizes_from_the_weight():
    conv = _odd_conv()  # groups=2: weight (6, 2, 3, 2)
    new = _layers.plain_like(conv, conv.weight[:4], None)
    assert (new.out_channels, new.in_channels, new.groups) == (4, 4, 2)
    assert (new.stride, new.padding, new.dilation, new.padding_mode) == ((2, 1), (2, 1), (2, 1), "reflect")
    linear = _filled(nn.Linear(5, 3))
    small = _layers.plain_like(linear, linear.weight[:2, 1:], linear.bias[:2])
    assert (small.in_features, small.out_features) == (4, 2)
    assert torch.equal(small.bias, linear.bias[:2])


def test_plain_like_takes_the_weights_dtype_and_converts_the_bias():
    linear = _filled(nn.Linear(5, 3))
    new = _layers.plain_like(linear, linear.weight.double(), linear.bias)
    assert new.weight.dtype == new.bias.dtype == torch.float64
    assert torch.equal(new.bias, linear.bias.double())
    assert _layers.plain_like(linear.double(), linear.weight.float(), None).weight.dtype == torch.float32


@pytest.mark.parametrize("training", [True, False])
def test_plain_like_copies_the_train_eval_mode(training):
    conv = _odd_conv().train(training)
    assert _layers.plain_like(conv, conv.weight, None).training is training


def test_nothing_draws_from_the_global_rng():
    conv, linear = _odd_conv(), _filled(nn.Linear(5, 3))
    state = torch.get_rng_state()
    _layers.plain_like(conv, conv.weight, None)
    _layers.plain_like(linear, linear.weight, linear.bias)
    _layers.copy_into(_layers.new_like(PrunedConv2d, conv), conv)
    _layers.copy_into(_layers.new_like(QuantLinear, linear, bits=4), linear)
    _layers.copy_into(_layers.new_like(KMeansConv2d, conv, bits=2), conv)
    assert torch.equal(torch.get_rng_state(), state)
    nn.Linear(5, 3)  # the check sees a draw: an ordinary constructor draws its initial weights
    assert not torch.equal(torch.get_rng_state(), state)


# ---------------------------------------------------------------- constructor_args, new_like, kind


def test_constructor_args_rebuild_the_same_configuration():
    conv = _odd_conv()
    assert repr(nn.Conv2d(**_layers.constructor_args(conv))) == repr(conv)
    assert _layers.constructor_args(nn.Linear(4, 2, bias=False)) == {
        "in_features": 4,
        "out_features": 2,
        "bias": False,
    }
    with pytest.raises(ValueError, match="layer must be a torch.nn.Linear or torch.nn.Conv2d, got ReLU"):
        _layers.constructor_args(nn.ReLU())


@pytest.mark.parametrize("cls", [PrunedConv2d, QuantConv2d, KMeansConv2d])
def test_new_like_builds_the_mcviz_layers_configured_like_a_conv(cls):
    conv = _odd_conv()
    new = _layers.new_like(cls, conv)
    assert type(new) is cls and _config(new) == _config(conv) and new.bias is None


@pytest.mark.parametrize(
    ("cls", "layer", "message"),
    [
        (PrunedLinear, nn.Conv2d(1, 2, 3), "module must be a torch.nn.Linear, got Conv2d"),
        (QuantConv2d, nn.Linear(2, 2), "module must be a torch.nn.Conv2d, got Linear"),
        (KMeansLinear, nn.ReLU(), "module must be a torch.nn.Linear, got ReLU"),
    ],
)
def test_new_like_and_from_float_reject_the_other_kind(cls, layer, message):
    with pytest.raises(ValueError, match=message):
        _layers.new_like(cls, layer)
    convert = getattr(cls, "from_dense", None) or cls.from_float
    with pytest.raises(ValueError, match=message):
        convert(layer)


def test_kind_of_classes_and_modules():
    assert _layers.kind(QuantConv2d) is nn.Conv2d
    assert _layers.kind(PrunedLinear(3, 2)) is nn.Linear
    with pytest.raises(ValueError, match="got ReLU"):
        _layers.kind(nn.ReLU)


def test_mcviz_layers_take_the_constructor_arguments_of_their_parent():
    reference = nn.Conv2d(4, 6, 3, 2, 1, 1, 2, False, "circular")
    for layer in (
        PrunedConv2d(4, 6, 3, 2, 1, 1, 2, False, "circular", dtype=torch.float64),
        QuantConv2d(4, 6, 3, stride=2, padding=1, groups=2, bias=False, padding_mode="circular", bits=4),
        KMeansConv2d(4, 6, 3, 2, 1, groups=2, bias=False, padding_mode="circular", bits=3),
    ):
        assert _config(layer) == _config(reference) and layer.bias is None
    assert PrunedConv2d(4, 6, 3, dtype=torch.float64).weight.dtype == torch.float64
    assert QuantLinear(3, 2, False, bits=5).codes.shape == (2, 3)
    assert KMeansLinear(3, 2, bits=2).codebook.shape == (4,)


# ---------------------------------------------------------------- weight, mask, copy_into


def test_weight_is_what_the_layer_computes_with():
    linear = _filled(nn.Linear(5, 3))
    assert _layers.weight(linear) is linear.weight
    keep = torch.rand(3, 5, generator=torch.Generator().manual_seed(3)) > 0.5
    pruned = PrunedLinear.from_dense(linear, keep)
    assert torch.equal(_layers.weight(pruned), linear.weight * keep)
    with torch.no_grad():  # the stored weight drifts where pruned: the computed one does not
        pruned.weight.add_(1.0)
    assert torch.equal(_layers.weight(pruned) == 0, ~keep)
    shared = KMeansLinear.from_float(linear, bits=2)
    assert torch.equal(_layers.weight(shared), shared.codebook[shared.indices.long()])
    quant = QuantLinear.from_float(linear, 4)
    assert _layers.weight(quant) is quant.weight
    parametrize.register_parametrization(linear, "weight", _Double())
    assert torch.equal(_layers.weight(linear), 2 * linear.parametrizations.weight.original)


class _Double(nn.Module):
    def forward(self, w):
        return 2 * w


def test_mask_reads_a_pruned_layers_mask_as_a_bool_copy():
    linear = _filled(nn.Linear(5, 3))
    keep = torch.arange(15).reshape(3, 5) % 2 == 0
    pruned = PrunedLinear.from_dense(linear, keep)
    got = _layers.mask(pruned)
    assert torch.equal(got, keep) and got.data_ptr() != pruned.mask.data_ptr()
    assert _layers.mask(linear) is None
    linear.register_buffer("mask", keep.float())  # a 0/1 float mask counts
    assert torch.equal(_layers.mask(linear), keep)
    linear.mask = keep.float() * 0.5  # values other than 0/1 do not
    assert _layers.mask(linear) is None
    linear.mask = keep[:, :2]  # nor does another shape
    assert _layers.mask(linear) is None


def test_copy_into_copies_the_computed_weight_bias_and_mode():
    source = PrunedLinear.from_dense(_filled(nn.Linear(5, 3)), torch.eye(3, 5, dtype=torch.bool)).eval()
    with torch.no_grad():
        source.weight.add_(1.0)  # stored weight off zero where pruned: copy_into reads weight * mask
    plain = _layers.copy_into(nn.Linear(5, 3, dtype=torch.float64), source)
    assert plain is not source and not plain.training
    assert plain.weight.dtype == torch.float64  # converted into the layer's dtype
    assert torch.equal(plain.weight, source.effective_weight().double())
    assert torch.equal(plain.bias, source.bias.double())


def test_copy_into_goes_through_set_weight():
    linear = _filled(nn.Linear(5, 3))
    quant = _layers.copy_into(QuantLinear(5, 3, bits=2), linear)
    assert set(quant.codes.unique().tolist()) <= {-2, -1, 0, 1}  # quantized on the way in
    assert torch.equal(quant.bias, linear.bias)


# ---------------------------------------------------------------- replace


def test_replace_a_nested_layer_in_place():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 2)))
    new = nn.Identity()
    assert _layers.replace(model, "1.1", new) is model
    assert model[1][1] is new and isinstance(model[0], nn.Linear)
    _layers.replace(model, "0", new)
    assert model[0] is new


def test_replace_the_model_itself():
    model, new = nn.Linear(2, 3), nn.Identity()
    assert _layers.replace(model, "", new) is new
    assert isinstance(model, nn.Linear)  # the old model is left as it was


def test_layers_imports_only_torch_and_checks():
    tree = ast.parse(Path(_layers.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module if node.module.startswith("mcviz") else node.module.split(".")[0])
    # mcviz._checks imports no other mcviz module, so no technique is ever imported from here
    assert names - {"__future__", "typing", "warnings", "os", "sys"} == {"torch", "mcviz._checks"}
