"""Unit tests of pruning followed by quantization (Deep Compression): quantized and k-means layers
made from pruned layers keep the mask, keep the pruned weights at exactly zero (forward,
fine-tuning, QAT, save / load), cluster only the kept weights, and store the bitmask sparse
format; plus the ``finetune`` method that chains between them."""

from __future__ import annotations

import copy
import math
import re

import pytest
import torch
from helpers import one_line
from torch import nn

import mcviz as mcv
from mcviz import registry
from mcviz.quantize import KMeansConv2d, KMeansLinear, QuantConv2d, QuantLinear, kmeans, kmeans_codebook
from mcviz.train import FineTuneConfig

SPARSITY = 0.8
QUANTIZED = (QuantLinear, QuantConv2d, KMeansLinear, KMeansConv2d)


def quantized_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, QUANTIZED)]


def assert_pruned_entries_zero(model: nn.Module, pruned: nn.Module) -> None:
    """Every quantized layer of ``model`` holds ``pruned``'s mask and is exactly 0 where it prunes."""
    masks = {n: m.mask for n, m in pruned.named_modules() if hasattr(m, "mask")}
    layers = {n: m for n, m in model.named_modules() if isinstance(m, QUANTIZED)}
    assert layers.keys() == masks.keys()
    for name, layer in layers.items():
        assert torch.equal(layer.mask, masks[name]), name
        assert layer.weight[~layer.mask].abs().sum() == 0, name
        assert (layer.weight[~layer.mask] == 0).all(), name


@pytest.fixture(scope="module")
def pruned(digits_mlp):
    """digits_mlp pruned to SPARSITY, global scope (layers end with different sparsities)."""
    return mcv.prune.magnitude(digits_mlp, SPARSITY, scope="global")


@pytest.fixture(scope="module")
def pruned_cnn(digits):
    model = mcv.models.build("seed_cnn", input_shape=digits.input_shape, seed=0)
    return mcv.prune.magnitude(model, 0.7)


def compress(model, spec, data=None):
    return mcv.compress(model, *registry.parse(spec), data=data)


# ---------------------------------------------------------------- zeros stay zero

SPECS = [
    "weights:bits=4",
    "weights:bits=3,symmetric=false",
    "weights:bits=4,granularity=per_tensor,symmetric=false",
    "ptq:bits=8",
    "kmeans:bits=3",
    "kmeans:bits=2,fine_tune_epochs=1",
    "qat:bits=4,epochs=1",
]


@pytest.mark.parametrize("spec", SPECS)
def test_pruned_weights_stay_exactly_zero(pruned, digits, spec):
    assert_pruned_entries_zero(compress(pruned, spec, data=digits), pruned)


@pytest.mark.parametrize("spec", ["weights:bits=4,symmetric=false", "kmeans:bits=3"])
def test_pruned_conv_weights_stay_exactly_zero(pruned_cnn, digits, spec):
    out = compress(pruned_cnn, spec)
    assert any(isinstance(m, (QuantConv2d, KMeansConv2d)) for m in out.modules())
    assert_pruned_entries_zero(out, pruned_cnn)
    x = digits.test.tensors[0][:4]
    assert out(x).shape == pruned_cnn(x).shape


def test_sparsity_and_nonzeros_measured_as_pruned(pruned):
    want = mcv.measure.model(pruned)
    got = mcv.measure.model(kmeans(pruned, 4))
    assert (got.sparsity, got.nonzero_params) == (want.sparsity, want.nonzero_params)
    assert got.sparsity == pytest.approx(SPARSITY, abs=1e-3)


def test_quantized_forward_uses_the_zeros(pruned, digits):
    # the pruned entries are zero in the forward pass: the layer equals F.linear with its weight
    layer = compress(pruned, "weights:bits=4,symmetric=false").fc1
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(0))
    want = nn.functional.linear(x, torch.where(layer.mask, layer.weight, 0.0), layer.bias)
    assert torch.equal(layer(x), want)


def test_asymmetric_codes_of_pruned_entries_are_the_zero_point(pruned):
    layer = compress(pruned, "weights:bits=3,symmetric=false").fc1
    zero_point = layer.zero_point.reshape(-1, 1).expand_as(layer.codes)
    assert torch.equal(layer.codes[~layer.mask].int(), zero_point[~layer.mask])


def test_loaded_codes_cannot_revive_pruned_weights(pruned):
    # a state_dict whose codes are nonzero where the mask prunes still loads as exact zeros
    out = compress(pruned, "weights:bits=4,symmetric=false")
    state = out.state_dict()
    state["fc1.codes"] = torch.full_like(state["fc1.codes"], 15)
    out.load_state_dict(state)
    assert (out.fc1.weight[~out.fc1.mask] == 0).all()
    assert (out.fc1.weight[out.fc1.mask] != 0).all()


@pytest.mark.parametrize("spec", ["kmeans:bits=2", "weights:bits=4"])
def test_fine_tuning_a_quantized_pruned_model_keeps_zeros(pruned, digits, spec):
    out = mcv.train.fine_tune(compress(pruned, spec), digits, epochs=1, lr=1e-2)
    assert_pruned_entries_zero(out, pruned)


def test_kmeans_fine_tuning_moves_centroids_and_keeps_zeros(pruned, digits):
    plain = kmeans(pruned, 2)
    tuned = kmeans(pruned, 2, fine_tune_epochs=1, data=digits)
    for a, b in zip(quantized_layers(plain), quantized_layers(tuned), strict=True):
        assert torch.equal(a.indices, b.indices)
        assert not torch.equal(a.codebook, b.codebook)
        assert (b.weight[~b.mask] == 0).all()
        assert set(b.weight[b.mask].tolist()) <= set(b.codebook.tolist())


def test_pruned_weights_pass_no_gradient_to_the_centroids(pruned):
    layer = kmeans(pruned, 3).fc1
    g = torch.randn(layer.indices.shape, generator=torch.Generator().manual_seed(0))
    (layer.weight * g).sum().backward()
    kept = layer.indices[layer.mask].long()
    want = torch.bincount(kept, weights=g[layer.mask].double(), minlength=8)
    assert torch.allclose(layer.codebook.grad.double(), want, atol=1e-5)


def test_qat_of_a_pruned_model_trains_the_kept_weights(pruned, digits):
    plain = compress(pruned, "weights:bits=4")
    trained = compress(pruned, "qat:bits=4,epochs=1", data=digits)
    assert not torch.equal(plain.fc1.codes, trained.fc1.codes)
    assert_pruned_entries_zero(trained, pruned)


# ---------------------------------------------------------------- k-means clusters the kept weights only


def test_kmeans_codebook_is_built_from_the_kept_weights(pruned):
    out = kmeans(pruned, 3)
    for name in ("fc1", "fc2"):
        source, layer = pruned.get_submodule(name), out.get_submodule(name)
        codebook, indices = kmeans_codebook(source.effective_weight().detach()[source.mask], 3)
        assert torch.equal(layer.codebook.detach(), codebook)
        assert torch.equal(layer.indices[layer.mask], indices)
        assert torch.equal(layer.weight[layer.mask], codebook[indices.long()])


def test_no_centroid_is_spent_on_the_zeros(pruned):
    # clustering the dense weight spends a centroid near 0 on the 80% pruned entries; the sparse
    # layer's centroids all sit among the kept weights, whose magnitudes exceed the pruning cut
    sparse = kmeans(pruned, 2).fc1
    dense = kmeans(mcv.prune.finalize(pruned), 2).fc1
    cut = pruned.fc1.effective_weight().abs()[pruned.fc1.mask].min()
    assert (sparse.codebook.abs() >= cut).all()
    assert (dense.codebook.abs() < cut).any()
    assert dense.mask is None


def test_kmeans_of_a_fully_pruned_layer():
    layer = mcv.prune.magnitude(nn.Linear(6, 3), 1.0)
    out = kmeans(layer, 2)
    assert isinstance(out, KMeansLinear) and torch.equal(out.weight, torch.zeros(3, 6))
    assert [(r.tensor, r.numel) for r in out.mcviz_storage()][:2] == [("mask", 18), ("indices", 0)]


# ---------------------------------------------------------------- storage


def expected_size(pruned: nn.Module, bits: int, per_layer_other: int) -> int:
    """Bytes of the sparse format: 1-bit mask + bits per kept weight + other 32-bit values + bias."""
    total = 0
    for m in pruned.modules():
        if isinstance(m, mcv.prune.PrunedLinear):
            kept = int(m.mask.sum())
            total += math.ceil(m.mask.numel() / 8) + math.ceil(kept * bits / 8)
            total += 4 * per_layer_other(m) + 4 * m.bias.numel()
    return total


@pytest.mark.parametrize("bits", [2, 4, 5])
def test_kmeans_size_bytes_exact(pruned, bits):
    got = mcv.measure.model(kmeans(pruned, bits))
    assert got.size_bytes == expected_size(pruned, bits, lambda m: 2**bits)
    assert got.bits == bits


@pytest.mark.parametrize(("symmetric", "per_channel_values"), [(True, 1), (False, 2)])
def test_weights_size_bytes_exact(pruned, symmetric, per_channel_values):
    got = mcv.measure.model(mcv.quantize.weights(pruned, 4, symmetric=symmetric))
    assert got.size_bytes == expected_size(pruned, 4, lambda m: per_channel_values * m.out_features)
    assert got.bits == 4


def test_storage_rows(pruned, digits):
    kept = int(pruned.fc1.mask.sum())
    rows = [r for r in mcv.measure.storage(kmeans(pruned, 4)) if r.layer == "fc1"]
    assert [(r.tensor, r.role, r.numel, r.bits) for r in rows] == [
        ("mask", "other", 64 * 32, 1),
        ("indices", "weight", kept, 4),
        ("codebook", "other", 16, 32),
        ("bias", "bias", 32, 32),
    ]
    rows = [r for r in mcv.measure.storage(compress(pruned, "ptq:bits=8", data=digits)) if r.layer == "fc1"]
    assert [(r.tensor, r.role, r.numel, r.bits) for r in rows] == [
        ("mask", "other", 64 * 32, 1),
        ("weight", "weight", kept, 8),
        ("scale", "other", 32, 32),
        ("bias", "bias", 32, 32),
        ("act_scale", "other", 1, 32),
        ("act_zero_point", "other", 1, 32),
    ]


def test_sparse_quantization_is_smaller_than_either_alone(pruned, digits_mlp):
    size = {
        "pruned": mcv.measure.model(pruned).size_bytes,
        "kmeans": mcv.measure.model(kmeans(digits_mlp, 4)).size_bytes,
        "both": mcv.measure.model(kmeans(pruned, 4)).size_bytes,
    }
    # (on this 2,410-parameter MLP the biases and codebooks weigh much; lenet300 gains far more)
    assert size["both"] < size["pruned"] / 2.5 and size["both"] < size["kmeans"] / 1.5


@pytest.mark.parametrize("spec", ["weights:bits=4", "kmeans:bits=3"])
def test_dense_layers_behave_as_before(digits_mlp, spec):
    out = compress(digits_mlp, spec)
    assert all(m.mask is None for m in quantized_layers(out))
    assert not any(k.endswith("mask") for k in out.state_dict())
    assert "mask" not in {r.tensor for r in mcv.measure.storage(out)}


# ---------------------------------------------------------------- which masks are adopted


class Masked(nn.Linear):
    """A 4 -> 3 Linear with a ``mask`` buffer, not a mcviz pruned layer (nor zeroed by it)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__(4, 3)
        with torch.no_grad():
            self.weight.copy_(torch.linspace(0.1, 1.2, 12).reshape(3, 4))
        self.register_buffer("mask", mask)


def test_a_float_zero_one_mask_is_adopted():
    mask = (torch.arange(12).reshape(3, 4) % 3 == 0).float()
    out = kmeans(Masked(mask), 2)
    assert out.mask.dtype == torch.bool and torch.equal(out.mask, mask.bool())
    assert (out.weight[~out.mask] == 0).all() and (out.weight[out.mask] != 0).all()


@pytest.mark.parametrize("mask", [torch.full((3, 4), 0.5), torch.ones(4, 3), torch.ones(12)])
def test_other_masks_are_ignored(mask):
    out = mcv.quantize.weights(Masked(mask), 4)
    assert out.mask is None and (out.weight != 0).all()
    assert [r.tensor for r in out.mcviz_storage()] == ["weight", "scale", "bias"]


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize("spec", ["weights:bits=4,symmetric=false", "ptq:bits=8", "kmeans:bits=3"])
def test_state_dict_round_trip(pruned, digits, spec, tmp_path):
    out = compress(pruned, spec, data=digits).eval()
    assert out.state_dict()["fc1.mask"].dtype == torch.bool
    torch.save(out.state_dict(), tmp_path / "state.pt")
    assert mcv.measure.model(out).file_bytes == len(mcv.measure.serialized(out))
    other = mcv.prune.magnitude(mcv.models.build("mlp", input_shape=(1, 8, 8), hidden=(32,), seed=1), 0.3)
    fresh = compress(other, spec, data=digits).eval()
    fresh.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert_pruned_entries_zero(fresh, pruned)
    x = digits.test.tensors[0][:20]
    assert torch.equal(fresh(x), out(x))


@pytest.mark.parametrize("spec", ["weights:bits=4", "kmeans:bits=3"])
def test_a_dense_quantized_model_loads_a_sparse_state_dict(pruned, digits, spec):
    out = compress(pruned, spec)
    dense = compress(mcv.models.build("mlp", input_shape=(1, 8, 8), hidden=(32,), seed=1), spec)
    dense.load_state_dict(out.state_dict())
    assert_pruned_entries_zero(dense, pruned)
    assert mcv.measure.model(dense).size_bytes == mcv.measure.model(out).size_bytes


def test_a_sparse_model_refuses_a_state_dict_without_mask(pruned, digits_mlp):
    dense_state = kmeans(digits_mlp, 3).state_dict()
    with pytest.raises(RuntimeError, match="fc1.mask"):
        kmeans(pruned, 3).load_state_dict(dense_state)


# ---------------------------------------------------------------- int8 and the finetune method


def test_int8_of_a_pruned_model_still_works(pruned, digits):
    out = compress(pruned, "int8")
    drop = mcv.train.evaluate(pruned, digits) - mcv.train.evaluate(out, digits)
    assert abs(drop) <= 0.02


def test_deep_compression_chain_parses_and_keeps_sparsity(digits_mlp, digits):
    prune = "magnitude:sparsity=0.7,scope=global"
    configs = registry.parse(f"{prune} + finetune:epochs=2,lr=0.01 + kmeans:bits=4,fine_tune_epochs=1")
    assert configs[1] == FineTuneConfig(epochs=2, lr=0.01)
    assert registry.label(configs) == f"{prune} + finetune:epochs=2,lr=0.01 + kmeans:fine_tune_epochs=1"
    got = mcv.measure.model(mcv.compress(digits_mlp, *configs, data=digits), digits)
    assert got.sparsity == pytest.approx(0.7, abs=1e-3) and got.bits == 4
    # fine-tuning between pruning and sharing recovers what the two cost (0.81 -> 0.95 here)
    untuned = mcv.train.evaluate(compress(digits_mlp, f"{prune} + kmeans:bits=4"), digits)
    assert got.accuracy >= mcv.train.evaluate(digits_mlp, digits) - 0.02
    assert got.accuracy >= untuned + 0.05


def test_finetune_config_applies_fine_tune(digits_mlp, digits):
    config = FineTuneConfig(epochs=2, lr=1e-2, seed=3)
    assert config.needs_data and config.method == "finetune"
    out = mcv.compress(digits_mlp, config, data=digits)
    want = mcv.train.fine_tune(digits_mlp, digits, epochs=2, lr=1e-2, seed=3)
    assert all(torch.equal(v, want.state_dict()[k]) for k, v in out.state_dict().items())
    assert not torch.equal(out.fc1.weight, digits_mlp.fc1.weight)


def test_finetune_needs_data(digits_mlp):
    with pytest.raises(ValueError, match="method 'finetune' needs data=") as e:
        mcv.compress(copy.deepcopy(digits_mlp), FineTuneConfig())
    one_line(e)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"epochs": 0}, ValueError, "epochs must be an int in [1, 200], got 0"),
        ({"epochs": 10**9}, ValueError, "epochs must be an int in [1, 200], got 1000000000"),
        ({"epochs": 1.5}, TypeError, "epochs must be an int in [1, 200], got 1.5"),
        ({"lr": 0}, ValueError, "lr must be a finite number in (0, 10], got 0"),
        ({"lr": "fast"}, TypeError, "lr must be a number in (0, 10], got 'fast'"),
        ({"seed": -1}, ValueError, "seed must be an int in [0, 4,294,967,295], got -1"),
        ({"seed": 8589934592}, ValueError, "seed must be an int in [0, 4,294,967,295], got 8589934592"),
        ({"seed": True}, TypeError, "seed must be an int in [0, 4,294,967,295], got True"),
    ],
)
def test_finetune_config_rejects_bad_options(options, error, message):
    with pytest.raises(error, match=re.escape(message)) as e:
        FineTuneConfig(**options)
    one_line(e)
