"""Unit tests of k-means weight sharing (mcviz.quantize.kmeans): the clustering, the layers,
storage accounting, centroid fine-tuning and the registry config."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import re

import pytest
import torch
from helpers import one_line
from torch import nn

import mcviz as mcv
from mcviz import quantize, registry
from mcviz.quantize import KMeansConfig, KMeansConv2d, KMeansLinear, kmeans, kmeans_codebook


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def shared_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (KMeansLinear, KMeansConv2d))]


@pytest.fixture
def model(digits_mlp):
    return copy.deepcopy(digits_mlp)


# ---------------------------------------------------------------- kmeans_codebook (tensor level)


def test_codebook_recovers_obvious_clusters():
    # four tight, symmetric clusters of different sizes around -1, 0, 1 and 2
    centers = [-1.0, 0.0, 1.0, 2.0]
    values = [c + d for c, n in zip(centers, (3, 7, 2, 5), strict=True) for d in (-0.05, 0.0, 0.05) * n]
    w = torch.tensor(values)[torch.randperm(len(values), generator=torch.Generator().manual_seed(0))]
    codebook, indices = kmeans_codebook(w, bits=2)
    assert torch.allclose(codebook, torch.tensor(centers), atol=1e-6)
    assert torch.equal(codebook[indices.long()].round(), w.round())


def test_codebook_starts_linear():
    # values on an even grid between min and max are the linear initialization itself: no moves
    grid = torch.linspace(-0.3, 0.9, 8)
    codebook, indices = kmeans_codebook(grid.repeat(3), bits=3)
    assert torch.allclose(codebook, grid)
    assert indices.tolist() == list(range(8)) * 3


def test_codebook_docstring_example():
    codebook, indices = kmeans_codebook(torch.tensor([0.0, 0.1, 0.9, 1.0, 2.0, 3.0]), bits=2)
    assert torch.allclose(codebook, torch.tensor([0.05, 0.95, 2.0, 3.0]))
    assert indices.tolist() == [0, 0, 1, 1, 2, 3]


def test_codebook_is_sorted_and_deterministic(digits_mlp):
    w = digits_mlp.fc1.weight.detach()
    first, second = kmeans_codebook(w, 4), kmeans_codebook(w.clone(), 4)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert bool((first[0][1:] >= first[0][:-1]).all())


def test_codebook_is_a_lloyd_fixed_point(digits_mlp):
    w = digits_mlp.fc1.weight.detach().double().flatten()
    codebook, indices = kmeans_codebook(digits_mlp.fc1.weight, 3)
    idx = indices.flatten().long()
    nearest = (w[:, None] - codebook.double()[None, :]).abs().min(1).values
    assert torch.allclose((w - codebook.double()[idx]).abs(), nearest, atol=1e-6)  # nearest centroid
    for j in idx.unique():
        assert codebook[j].item() == pytest.approx(w[idx == j].mean().item(), abs=1e-6)  # cluster mean


def test_codebook_shapes_and_dtypes():
    w = torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    codebook, indices = kmeans_codebook(w, 5)
    assert codebook.shape == (32,) and codebook.dtype == torch.float32
    assert indices.shape == w.shape and indices.dtype == torch.uint8


def test_codebook_of_a_constant_tensor():
    codebook, indices = kmeans_codebook(torch.full((5,), 0.25), 2)
    assert torch.equal(codebook[indices.long()], torch.full((5,), 0.25))


def test_codebook_leaves_input_unchanged():
    w = torch.randn(10, generator=torch.Generator().manual_seed(2))
    before = w.clone()
    kmeans_codebook(w, 2)
    assert torch.equal(w, before)


@pytest.mark.parametrize(
    "w, match, error",
    [
        (torch.tensor([1, 2, 3]), "floating-point", ValueError),
        ([0.1, 0.2], "got list", TypeError),
        (torch.tensor([0.1, float("nan")]), "finite", ValueError),
        (torch.zeros(0), "at least one value", ValueError),
    ],
)
def test_codebook_rejects_bad_tensors(w, match, error):
    with pytest.raises(error, match=match) as e:
        kmeans_codebook(w, 2)
    one_line(e)


# ---------------------------------------------------------------- kmeans (model level)


def test_kmeans_leaves_input_unchanged(model, digits):
    before = state(model)
    out = kmeans(model, 2, fine_tune_epochs=1, data=digits)
    assert out is not model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert type(model.fc1) is nn.Linear


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_kmeans_layers_share_at_most_2_to_the_bits_values(model, bits):
    out = kmeans(model, bits)
    layers = shared_layers(out)
    assert len(layers) == 2
    for layer in layers:
        assert len(layer.weight.unique()) <= 2**bits


def test_kmeans_layers_are_linear_subclasses(model):
    out = kmeans(model, 4)
    assert isinstance(out.fc1, KMeansLinear) and isinstance(out.fc1, nn.Linear)
    assert out.fc1.indices.dtype == torch.uint8 and out.fc1.codebook.shape == (16,)


def test_kmeans_weight_is_the_codebook_gathered(model):
    layer = kmeans(model, 3).fc1
    assert torch.equal(layer.weight, layer.codebook[layer.indices.long()])


def test_kmeans_matches_kmeans_codebook(model):
    codebook, indices = kmeans_codebook(model.fc2.weight, 3)
    layer = kmeans(model, 3).fc2
    assert torch.equal(layer.codebook.detach(), codebook) and torch.equal(layer.indices, indices)
    assert torch.equal(layer.bias, model.fc2.bias)


def test_kmeans_is_deterministic(model, digits):
    first = kmeans(model, 2, fine_tune_epochs=1, data=digits)
    second = kmeans(model, 2, fine_tune_epochs=1, data=digits)
    assert all(torch.equal(v, second.state_dict()[k]) for k, v in first.state_dict().items())


def test_kmeans_of_a_conv_model(digits):
    model = mcv.models.build("seed_cnn", input_shape=digits.input_shape, seed=0)
    out = kmeans(model, 3)
    convs = [m for m in out.modules() if isinstance(m, KMeansConv2d)]
    assert convs and all(len(m.weight.unique()) <= 8 for m in convs)
    x = digits.test.tensors[0][:4]
    assert out(x).shape == model(x).shape
    assert mcv.measure.model(out).macs == mcv.measure.model(model).macs


def test_kmeans_of_a_single_layer():
    layer = nn.Linear(6, 3)
    out = kmeans(layer, 2)
    assert isinstance(out, KMeansLinear) and len(out.weight.unique()) <= 4


def test_kmeans_state_dict_round_trip(model):
    out = kmeans(model, 3)
    assert out.state_dict()["fc1.indices"].dtype == torch.uint8
    fresh = kmeans(mcv.models.build("mlp", input_shape=(1, 8, 8), hidden=(32,), seed=1), 3)
    fresh.load_state_dict(out.state_dict())
    assert torch.equal(fresh.fc1.weight, out.fc1.weight)


def test_kmeans_accuracy_close_at_4_bits(model, digits):
    fp32 = mcv.train.evaluate(model, digits)
    assert mcv.train.evaluate(kmeans(model, 4), digits) >= fp32 - 0.02


# ---------------------------------------------------------------- storage


def expected_size(model: nn.Module, bits: int) -> int:
    total = 0
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            total += math.ceil(m.weight.numel() * bits / 8) + 4 * 2**bits
            total += 4 * m.bias.numel() if m.bias is not None else 0
    return total


@pytest.mark.parametrize("bits", [2, 3, 5, 8])
def test_size_bytes_exact(model, bits):
    got = mcv.measure.model(kmeans(model, bits))
    assert got.size_bytes == expected_size(model, bits)
    assert got.bits == bits


def test_size_bytes_rounds_up_per_tensor():
    # 5 x 3 = 15 weights at 3 bits = 45 bits -> 6 bytes; 8 centroids; 3 biases
    out = kmeans(nn.Sequential(nn.Linear(5, 3)), 3)
    assert mcv.measure.model(out, input_shape=(5,)).size_bytes == 6 + 8 * 4 + 3 * 4


def test_storage_rows(model):
    rows = [r for r in mcv.measure.storage(kmeans(model, 4)) if r.layer == "fc1"]
    assert [(r.tensor, r.role, r.numel, r.bits) for r in rows] == [
        ("indices", "weight", 64 * 32, 4),
        ("codebook", "other", 16, 32),
        ("bias", "bias", 32, 32),
    ]


def test_params_and_layer_table_unchanged(model):
    out = kmeans(model, 4)
    assert mcv.measure.model(out).params == mcv.measure.model(model).params
    table = mcv.measure.layers(out)
    assert list(table["kind"]) == ["KMeansLinear", "KMeansLinear"]
    assert list(table["bits"]) == [4.0, 4.0]


# ---------------------------------------------------------------- fine-tuning the centroids


def test_centroid_gradient_is_the_sum_of_its_weights_gradients(model):
    layer = kmeans(model, 3).fc1
    g = torch.randn(layer.indices.shape, generator=torch.Generator().manual_seed(0))
    (layer.weight * g).sum().backward()
    want = torch.bincount(layer.indices.flatten().long(), weights=g.flatten().double(), minlength=8)
    assert torch.allclose(layer.codebook.grad.double(), want, atol=1e-5)


def test_fine_tuning_keeps_weights_on_the_codebook(model, digits):
    plain = kmeans(model, 2)
    tuned = kmeans(model, 2, fine_tune_epochs=1, data=digits)
    for a, b in zip(shared_layers(plain), shared_layers(tuned), strict=True):
        assert torch.equal(a.indices, b.indices)  # assignments fixed
        assert not torch.equal(a.codebook, b.codebook)  # centroids trained
        assert len(b.weight.unique()) <= 4


def test_fine_tuning_does_not_lower_accuracy_at_2_bits(model, digits):
    plain = mcv.train.evaluate(kmeans(model, 2), digits)
    tuned = mcv.train.evaluate(kmeans(model, 2, fine_tune_epochs=1, data=digits), digits)
    assert tuned >= plain


def test_kmeans_keeps_training_mode(model):
    model.train()
    assert kmeans(model, 2).training
    model.eval()
    assert not kmeans(model, 2).training


# ---------------------------------------------------------------- config and registry


def test_config_mirrors_kmeans_options_except_data():
    fields = {f.name: f.default for f in dataclasses.fields(KMeansConfig)}
    params = inspect.signature(kmeans).parameters
    options = {n: p.default for n, p in params.items() if n not in ("model", "data")}
    assert fields == options


def test_parse_and_compress_with_fine_tuning(model, digits):
    (config,) = registry.parse("kmeans:bits=2,fine_tune_epochs=1")
    assert config == KMeansConfig(bits=2, fine_tune_epochs=1)
    out = mcv.compress(model, config, data=digits)
    want = kmeans(model, 2, fine_tune_epochs=1, data=digits)
    assert all(torch.equal(v, want.state_dict()[k]) for k, v in out.state_dict().items())


def test_compress_without_data_when_not_fine_tuning(model):
    out = mcv.compress(model, KMeansConfig(bits=3))
    assert mcv.measure.model(out).bits == 3


def test_compress_fine_tuning_without_data(model):
    with pytest.raises(ValueError, match="fine_tune_epochs=1 needs data=") as e:
        mcv.compress(model, KMeansConfig(fine_tune_epochs=1))
    one_line(e)


def test_reexported():
    assert quantize.kmeans is kmeans and "KMeansConfig" in quantize.__all__


BAD = [
    ({"bits": 1}, "bits must be an int in [2, 8], got 1", ValueError),
    ({"bits": 9}, "bits must be an int in [2, 8], got 9", ValueError),
    ({"bits": True}, "bits must be an int in [2, 8], got True", TypeError),
    ({"fine_tune_epochs": -1}, "fine_tune_epochs must be an int in [0, 200], got -1", ValueError),
    ({"fine_tune_epochs": 10**9}, "fine_tune_epochs must be an int in [0, 200], got 1000000000", ValueError),
    ({"fine_tune_epochs": 1.0}, "fine_tune_epochs must be an int in [0, 200], got 1.0", TypeError),
    ({"lr": 0}, "lr must be a finite number in (0, 10], got 0", ValueError),
    ({"seed": -1}, "seed must be an int in [0, 4,294,967,295], got -1", ValueError),
    ({"seed": 2**32}, "seed must be an int in [0, 4,294,967,295], got 4294967296", ValueError),
]


@pytest.mark.parametrize("options, message, error", BAD)
def test_kmeans_rejects_bad_options(model, options, message, error):
    with pytest.raises(error, match=re.escape(message)) as e:
        kmeans(model, **options)
    one_line(e)


@pytest.mark.parametrize("options, message, error", BAD)
def test_config_rejects_bad_options(options, message, error):
    with pytest.raises(error, match=re.escape(message)) as e:
        KMeansConfig(**options)
    one_line(e)


def test_kmeans_fine_tuning_needs_data(model):
    with pytest.raises(ValueError, match="fine_tune_epochs=1 needs data=, a DataBundle \\(got None\\)") as e:
        kmeans(model, 2, fine_tune_epochs=1)
    one_line(e)


def test_kmeans_rejects_non_module():
    with pytest.raises(TypeError, match="got str") as e:
        kmeans("model")
    one_line(e)
