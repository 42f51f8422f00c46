"""Unit tests of unstructured pruning (mcviz.prune.masks, mcviz.prune.unstructured)."""

from __future__ import annotations

import copy
import math
import random as stdlib_random

import numpy as np
import pytest
import torch
from helpers import one_line
from torch import nn
from torch.nn.utils import prune as torch_prune

import mcviz as mcv
from mcviz import prune, registry


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def zeros(model: nn.Module) -> dict[str, int]:
    return {
        n: int((m.weight == 0).sum())
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear | nn.Conv2d)
    }


def weight_count(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d))


@pytest.fixture
def model(digits_mlp):
    """A private copy of the trained 64 -> 32 -> 10 MLP (layers fc1, fc2)."""
    return copy.deepcopy(digits_mlp)


@pytest.fixture
def w():
    return torch.randn(30, 20, generator=torch.Generator().manual_seed(0))


# ---------------------------------------------------------------- masks


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_magnitude_mask_matches_torch_l1_unstructured(w, sparsity):
    layer = nn.Linear(20, 30)
    with torch.no_grad():
        layer.weight.copy_(w)
    torch_prune.l1_unstructured(layer, "weight", amount=sparsity)
    mask = prune.magnitude_mask(w, sparsity)
    assert int((~mask).sum()) == int((layer.weight_mask == 0).sum())
    assert torch.equal(mask, layer.weight_mask.bool())


@pytest.mark.parametrize("numel, sparsity", [(7, 0.5), (10, 0.25), (1000, 0.333), (5, 0.1), (3, 1.0)])
def test_magnitude_mask_prunes_exactly_round_sparsity_numel(numel, sparsity):
    mask = prune.magnitude_mask(torch.randn(numel), sparsity)
    assert int((~mask).sum()) == round(sparsity * numel)


def test_magnitude_mask_keeps_the_largest(w):
    mask = prune.magnitude_mask(w, 0.7)
    assert w.abs()[mask].min() >= w.abs()[~mask].max()


def test_magnitude_mask_breaks_ties_by_index():
    assert prune.magnitude_mask(torch.zeros(6), 0.5).tolist() == [False] * 3 + [True] * 3
    w = torch.tensor([1.0, -1.0, 1.0, 2.0])
    assert prune.magnitude_mask(w, 0.5).tolist() == [False, False, True, True]


def test_magnitude_mask_leaves_w_unchanged(w):
    before = w.clone()
    prune.magnitude_mask(w, 0.5)
    assert torch.equal(w, before)


def test_random_mask_exact_count_and_seeds(w):
    a = prune.random_mask(w, 0.6, seed=0)
    assert a.shape == w.shape and a.dtype == torch.bool
    assert int((~a).sum()) == 360
    assert torch.equal(a, prune.random_mask(w, 0.6, seed=0))
    assert not torch.equal(a, prune.random_mask(w, 0.6, seed=1))
    assert torch.equal(a, prune.random_mask(torch.zeros_like(w), 0.6, seed=0))  # values are ignored


def test_random_mask_leaves_global_rng_alone(w):
    before = torch.get_rng_state()
    prune.random_mask(w, 0.5, seed=3)
    assert torch.equal(before, torch.get_rng_state())


def test_channel_scores():
    conv = torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(prune.channel_scores(conv), conv.abs().sum(dim=(1, 2, 3)))
    assert torch.allclose(prune.channel_scores(conv, norm="l2"), conv.pow(2).sum(dim=(1, 2, 3)).sqrt())
    lin = torch.tensor([[3.0, -4.0], [0.0, 1.0]])
    assert prune.channel_scores(lin).tolist() == [7.0, 1.0]
    assert prune.channel_scores(lin, norm="l2").tolist() == [5.0, 1.0]


@pytest.mark.parametrize(("norm", "error"), [("l3", ValueError), ("L1", ValueError), (None, TypeError)])
def test_channel_scores_rejects_unknown_norm(norm, error):
    with pytest.raises(error, match=f"norm must be one of 'l1', 'l2', got {norm!r}") as e:
        prune.channel_scores(torch.ones(2, 2), norm=norm)
    one_line(e)


def test_channel_scores_rejects_1d():
    with pytest.raises(ValueError, match="at least 2 dimensions") as e:
        prune.channel_scores(torch.ones(3))
    one_line(e)


# a wrong type (an int is never a fraction) raises TypeError, a float out of [0, 1] ValueError
BAD_SPARSITIES = [
    (1, TypeError), (0, TypeError), (1.5, ValueError), (-0.1, ValueError), (float("nan"), ValueError),
    (float("inf"), ValueError), (True, TypeError), ("0.5", TypeError), (None, TypeError),
    (np.int64(1), TypeError),
]  # fmt: skip


@pytest.mark.parametrize(("sparsity", "error"), BAD_SPARSITIES, ids=repr)
def test_bad_sparsity_is_rejected_everywhere(sparsity, error, model, w):
    calls = [
        lambda: prune.magnitude_mask(w, sparsity),
        lambda: prune.random_mask(w, sparsity, seed=0),
        lambda: prune.magnitude(model, sparsity),
        lambda: prune.magnitude(model, sparsity, scope="global"),
        lambda: prune.random(model, sparsity),
        lambda: prune.magnitude(model, {"fc1": sparsity}),
        lambda: prune.MagnitudeConfig(sparsity),
        lambda: prune.RandomConfig(sparsity),
    ]
    for call in calls:
        with pytest.raises(error, match=r"sparsity(\['fc1'\])? must be a float in \[0, 1\], got") as e:
            call()
        assert repr(sparsity) in one_line(e)


def test_int_sparsity_error_says_it_is_not_a_count(w):
    with pytest.raises(TypeError, match="an int is never read as a count"):
        prune.magnitude_mask(w, 1)


def test_numpy_float_sparsity_is_accepted(w):
    assert int((~prune.magnitude_mask(w, np.float32(0.5))).sum()) == 300


@pytest.mark.parametrize(
    ("seed", "error"),
    [(-1, ValueError), (2**32, ValueError), (1.0, TypeError), (True, TypeError), ("0", TypeError)],
)
def test_bad_seed(seed, error, model, w):
    calls = (
        lambda: prune.random_mask(w, 0.5, seed=seed),
        lambda: prune.random(model, 0.5, seed=seed),
        lambda: prune.RandomConfig(0.5, seed=seed),
    )
    for call in calls:
        with pytest.raises(error, match=rf"seed must be an int in \[0, 4,294,967,295\], got {seed!r}") as e:
            call()
        one_line(e)


# ---------------------------------------------------------------- model-level pruning


def test_magnitude_layer_scope(model):
    before = state(model)
    out = prune.magnitude(model, 0.5)
    assert isinstance(out.fc1, prune.PrunedLinear) and isinstance(out.fc2, prune.PrunedLinear)
    assert zeros(out) == {"fc1": 1024, "fc2": 160}
    assert torch.equal(out.fc1.mask, prune.magnitude_mask(model.fc1.weight, 0.5))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert type(model.fc1) is nn.Linear


def test_magnitude_global_scope(model):
    out = prune.magnitude(model, 0.9, scope="global")
    layered = prune.magnitude(model, 0.9)
    n = weight_count(model)
    assert sum(zeros(out).values()) == round(0.9 * n) == sum(zeros(layered).values())  # 2131
    per_layer = mcv.measure.layers(out).set_index("layer")["sparsity"]
    assert per_layer["fc1"] != pytest.approx(per_layer["fc2"], abs=0.05)  # global: layers differ
    kept = torch.cat([model.fc1.weight[out.fc1.mask], model.fc2.weight[out.fc2.mask]]).abs()
    dropped = torch.cat([model.fc1.weight[~out.fc1.mask], model.fc2.weight[~out.fc2.mask]]).abs()
    assert kept.min() >= dropped.max()  # one threshold over all layers


def test_measure_sparsity_equals_requested(model):
    # exact whenever sparsity * numel is a whole number (2048 and 320 weights; 2368 in all)
    assert mcv.measure.model(prune.magnitude(model, 0.5)).sparsity == 0.5
    assert mcv.measure.model(prune.random(model, 0.75, seed=3)).sparsity == 0.75
    assert mcv.measure.model(prune.magnitude(model, 0.75, scope="global")).sparsity == 0.75


def test_size_bytes_counts_bitmask_and_nonzero_values(model):
    dense = mcv.measure.model(model).size_bytes
    assert dense == (2048 + 32 + 320 + 10) * 4
    # fc1: 2048-bit mask (256 B) + 1024 values * 4 B + 32 biases * 4 B; fc2: 40 B + 160 * 4 B + 40 B
    assert mcv.measure.model(prune.magnitude(model, 0.5)).size_bytes == 256 + 4096 + 128 + 40 + 640 + 40
    sizes = [mcv.measure.model(prune.magnitude(model, s)).size_bytes for s in (0.0, 0.5, 0.9)]
    assert sizes[0] == dense + 256 + 40  # at sparsity 0 the bitmask is pure overhead
    assert sizes[0] > sizes[1] > sizes[2]


def test_measure_layers_of_a_pruned_model(model):
    table = mcv.measure.layers(prune.magnitude(model, {"fc1": 0.75})).set_index("layer")
    assert table.loc["fc1", "sparsity"] == 0.75 and table.loc["fc2", "sparsity"] == 0.0
    assert table.loc["fc1", "kind"] == "PrunedLinear"


def test_random_seeds(model):
    a, b = prune.random(model, 0.5, seed=0), prune.random(model, 0.5, seed=0)
    assert torch.equal(a.fc1.mask, b.fc1.mask) and torch.equal(a.fc2.mask, b.fc2.mask)
    assert not torch.equal(a.fc1.mask, prune.random(model, 0.5, seed=1).fc1.mask)
    assert zeros(a) == {"fc1": 1024, "fc2": 160}


def test_random_layer_mask_does_not_depend_on_other_layers(model):
    both = prune.random(model, 0.5, seed=4)
    only_fc2 = prune.random(model, {"fc2": 0.5}, seed=4)
    assert torch.equal(both.fc2.mask, only_fc2.fc2.mask)


def test_pruning_leaves_global_rng_alone(model):
    before = torch.get_rng_state(), np.random.get_state()[1].copy(), stdlib_random.getstate()
    prune.random(model, 0.5, seed=2)
    prune.magnitude(model, 0.5, scope="global")
    assert torch.equal(before[0], torch.get_rng_state())
    assert np.array_equal(before[1], np.random.get_state()[1])
    assert before[2] == stdlib_random.getstate()


def test_dict_sparsity_prunes_only_the_named_layers(model):
    out = prune.magnitude(model, {"fc1": 0.7})
    assert isinstance(out.fc1, prune.PrunedLinear) and type(out.fc2) is nn.Linear
    assert zeros(out)["fc1"] == round(0.7 * 2048)
    assert torch.equal(out.fc2.weight, model.fc2.weight)
    out = prune.random(model, {"fc1": 0.2, "fc2": 0.9}, seed=0)
    assert zeros(out) == {"fc1": round(0.2 * 2048), "fc2": 288}


def test_dict_with_unknown_layer(model):
    for call in (lambda: prune.magnitude(model, {"fc9": 0.5}), lambda: prune.random(model, {"fc9": 0.5})):
        with pytest.raises(
            ValueError, match="sparsity names no Linear/Conv2d layer 'fc9'; layers: fc1, fc2"
        ) as e:
            call()
        one_line(e)


def test_empty_dict_and_dict_with_global_scope(model):
    with pytest.raises(ValueError, match="non-empty dict"):
        prune.magnitude(model, {})
    with pytest.raises(ValueError, match="scope='global' takes one float sparsity") as e:
        prune.magnitude(model, {"fc1": 0.5}, scope="global")
    one_line(e)


@pytest.mark.parametrize(
    ("scope", "error"), [("local", ValueError), ("Global", ValueError), (None, TypeError), (1, TypeError)]
)
def test_unknown_scope(scope, error, model):
    for call in (lambda: prune.magnitude(model, 0.5, scope=scope), lambda: prune.MagnitudeConfig(0.5, scope)):
        with pytest.raises(error, match=f"scope must be one of 'layer', 'global', got {scope!r}") as e:
            call()
        one_line(e)


def test_model_without_prunable_layers_and_non_module():
    with pytest.raises(ValueError, match="must have a Linear or Conv2d layer for magnitude; it has ReLU"):
        prune.magnitude(nn.Sequential(nn.ReLU()), 0.5)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got str"):
        prune.random("model", 0.5)
    with pytest.raises(TypeError, match="got list"):
        prune.finalize([])


def test_pruning_a_quantized_layer_is_refused(model):
    quantized = mcv.quantize.weights(model, 8)
    with pytest.raises(ValueError, match="layer 'fc1' is a QuantLinear.*prune before quantizing") as e:
        prune.magnitude(quantized, 0.5)
    one_line(e)


def test_single_layer_model():
    out = prune.magnitude(nn.Linear(8, 4), 0.5)
    assert isinstance(out, prune.PrunedLinear) and int((out.weight == 0).sum()) == 16
    assert type(prune.finalize(out)) is nn.Linear


def test_conv_model(digits):
    cnn = mcv.models.build("seed_cnn", input_shape=digits.input_shape, seed=0)
    out = prune.magnitude(cnn, 0.6, scope="global")
    convs = [m for m in out.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(isinstance(m, prune.PrunedConv2d) for m in convs)
    assert out(digits.test.tensors[0][:3]).shape == (3, 10)
    assert sum(zeros(out).values()) == round(0.6 * weight_count(cnn))
    x = digits.test.tensors[0][:3]
    assert torch.equal(out(x), prune.finalize(out)(x))


# ---------------------------------------------------------------- re-pruning, fine-tuning, finalize


def test_pruning_again_is_not_compounded(model):
    half = prune.magnitude(model, 0.5)
    again = prune.magnitude(half, 0.5)
    assert mcv.measure.model(again).sparsity == 0.5
    assert torch.equal(again.fc1.mask, half.fc1.mask)
    more = prune.magnitude(again, 0.8)
    assert zeros(more) == {"fc1": round(0.8 * 2048), "fc2": 256}  # 1638.4 -> 1638 zeros
    assert mcv.measure.model(more).sparsity == pytest.approx(0.8, abs=0.5 / 2048)
    assert mcv.measure.model(prune.magnitude(more, 0.875)).sparsity == 0.875  # whole counts: exact
    assert not (more.fc1.mask & ~half.fc1.mask).any()  # pruned weights stay pruned
    assert sum(zeros(prune.magnitude(half, 0.8, scope="global")).values()) == round(0.8 * 2368)
    assert mcv.measure.model(prune.random(prune.random(model, 0.5), 0.5, seed=7)).sparsity == 0.5
    assert zeros(prune.random(half, 0.8, seed=7)) == {"fc1": 1638, "fc2": 256}
    assert mcv.measure.model(half).sparsity == 0.5  # input unchanged


def test_lower_sparsity_than_current_warns(model):
    with pytest.warns(UserWarning, match="already zero"):
        out = prune.magnitude(prune.magnitude(model, 0.8), 0.5)
    assert int((~out.fc1.mask).sum()) == 1024  # the mask prunes exactly 0.5 ...
    assert zeros(out)["fc1"] == round(0.8 * 2048)  # ... but pruned weights do not come back


def test_fine_tuning_keeps_pruned_weights_at_zero(model, digits):
    pruned = prune.magnitude(model, 0.8, scope="global")
    before = {n: m.weight.detach().clone() for n, m in pruned.named_modules() if isinstance(m, nn.Linear)}
    mcv.train.fit(pruned, digits, epochs=2, lr=1e-2, seed=0, progress=False)
    for name, w0 in before.items():
        layer = pruned.get_submodule(name)
        assert torch.equal(layer.weight == 0, w0 == 0), name
        assert not torch.equal(layer.weight, w0), name  # the kept weights did train
    assert sum(zeros(pruned).values()) == round(0.8 * 2368)


def test_forward_uses_masked_weight(model, digits):
    out = prune.magnitude(model, 0.5)
    x = digits.test.tensors[0][:8]
    with torch.no_grad():
        out.fc1.weight.add_(1.0)  # even if the stored weight drifts, the forward pass masks it
    expected = nn.functional.linear(x.flatten(1), out.fc1.weight * out.fc1.mask, out.fc1.bias)
    assert torch.equal(out.fc1(x.flatten(1)), expected)


def test_state_dict_load_zeroes_pruned_weights(model):
    out = prune.magnitude(model, 0.5)
    sd = out.state_dict()
    sd["fc1.weight"] = torch.ones_like(sd["fc1.weight"])
    out.load_state_dict(sd)
    assert int((out.fc1.weight == 0).sum()) == 1024


def test_finalize(model, digits):
    pruned = prune.magnitude(model, 0.7)
    before = state(pruned)
    plain = prune.finalize(pruned)
    assert type(plain.fc1) is nn.Linear and type(plain.fc2) is nn.Linear
    assert torch.equal(plain.fc1.weight, pruned.fc1.weight * pruned.fc1.mask)
    assert "fc1.mask" not in plain.state_dict()
    x = digits.test.tensors[0][:16]
    assert torch.equal(plain(x), pruned(x))
    assert mcv.measure.model(plain).sparsity == mcv.measure.model(pruned).sparsity
    assert mcv.measure.model(plain).size_bytes == mcv.measure.model(model).size_bytes  # dense again
    assert all(torch.equal(before[k], v) for k, v in pruned.state_dict().items())
    assert isinstance(pruned.fc1, prune.PrunedLinear)


def test_magnitude_beats_random_at_half(model, digits):
    magnitude = mcv.train.evaluate(prune.magnitude(model, 0.5), digits)
    randoms = [mcv.train.evaluate(prune.random(model, 0.5, seed=s), digits) for s in range(3)]
    assert magnitude > max(randoms)


# ---------------------------------------------------------------- configs and the registry


def test_configs_are_registered():
    assert registry.METHODS["magnitude"] is prune.MagnitudeConfig
    assert registry.METHODS["random"] is prune.RandomConfig


def test_parse_pruning_specs():
    assert registry.parse("magnitude:sparsity=0.9,scope=global") == (prune.MagnitudeConfig(0.9, "global"),)
    assert registry.parse("random:sparsity=0.5,seed=1") == (prune.RandomConfig(0.5, 1),)
    with pytest.raises(TypeError, match="got 1"):
        registry.parse("magnitude:sparsity=1")  # YAML reads 1 as an int: write 1.0


def test_config_rejects_dict_sparsity():
    with pytest.raises(TypeError, match="sparsity must be a float"):
        prune.MagnitudeConfig({"fc1": 0.5})


def test_compress_with_configs_equals_keyword_functions(model):
    a = mcv.compress(model, *registry.parse("magnitude:sparsity=0.9,scope=global"))
    assert torch.equal(a.fc1.mask, prune.magnitude(model, 0.9, scope="global").fc1.mask)
    b = mcv.compress(model, *registry.parse("random:sparsity=0.5,seed=1"))
    assert torch.equal(b.fc2.mask, prune.random(model, 0.5, seed=1).fc2.mask)


def test_prune_then_quantize_keeps_the_zeros(model, digits):
    out = mcv.compress(model, *registry.parse("magnitude:sparsity=0.5 + weights:bits=8"))
    assert isinstance(out.fc1, mcv.quantize.QuantLinear)
    m = mcv.measure.model(out, digits)
    assert m.sparsity == 0.5 and m.bits == 8.0
    # the quantized layers keep the bitmask format: a 1-bit mask + 8-bit codes of the kept half
    saved = 0
    for layer in (out.fc1, out.fc2):
        n = layer.mask.numel()
        saved += n - math.ceil(n / 8) - int(layer.mask.sum())  # dense codes - (mask + kept codes)
    assert saved > 0
    assert m.size_bytes == mcv.measure.model(mcv.quantize.weights(model, 8)).size_bytes - saved
    assert m.accuracy == pytest.approx(mcv.train.evaluate(prune.magnitude(model, 0.5), digits), abs=0.03)


def test_fp16_then_prune(model):
    out = mcv.compress(model, *registry.parse("fp16 + magnitude:sparsity=0.5"))
    assert out.fc1.weight.dtype == torch.float16
    # half-precision values: 16 bits per nonzero
    assert mcv.measure.model(out).size_bytes == 256 + 1024 * 2 + 32 * 2 + 40 + 160 * 2 + 10 * 2


def test_describe_mentions_pruning():
    lines = registry.describe()
    assert any(line.startswith("magnitude (options: sparsity=0.5, scope='layer')") for line in lines)
    assert any(line.startswith("random (options: sparsity=0.5, seed=0)") for line in lines)


def test_sparsity_rounding_is_documented_round():
    assert prune.masks.n_pruned(5, 0.5) == 2 == round(2.5)  # half to even, like torch's prune
    assert math.isclose(mcv._checks.check_sparsity(np.float64(0.3)), 0.3)
