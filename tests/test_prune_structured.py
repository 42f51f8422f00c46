"""Tests of structured channel pruning (mcviz.prune.structured) and the per-layer sensitivity scan
and budget allocation (mcviz.prune.sensitivity), on digits and small untrained networks."""

from __future__ import annotations

import copy
import itertools
import math
from collections import OrderedDict

import pandas as pd
import pytest
import torch
from helpers import one_line
from torch import nn

import mcviz as mcv
from mcviz import prune


def deep_cnn(seed: int = 0) -> nn.Sequential:
    """Conv -> conv -> pool -> flatten -> hidden linear -> output, for 8x8 digits."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _deep_cnn()
    model.input_shape = (1, 8, 8)
    return model


def _deep_cnn() -> nn.Sequential:
    model = nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(1, 8, 3, padding=1)),
                ("relu1", nn.ReLU()),
                ("conv2", nn.Conv2d(8, 12, 3)),
                ("relu2", nn.ReLU()),
                ("pool", nn.MaxPool2d(2)),
                ("flatten", nn.Flatten()),
                ("fc1", nn.Linear(12 * 3 * 3, 20)),
                ("relu3", nn.ReLU()),
                ("fc2", nn.Linear(20, 10)),
            ]
        )
    )
    for m in model.modules():  # nonzero biases: a removed channel's bias must not leak through
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.uniform_(m.bias, -0.5, 0.5)
    return model


def masked_equivalent(model: nn.Sequential, kept: dict[str, list[int]]) -> nn.Sequential:
    """Returns a copy of ``model`` with the removed channels' OUTGOING weights zeroed (the next
    Conv2d/Linear layer's matching inputs): the same function as the channel-pruned model."""
    out = copy.deepcopy(model)
    layers = [(n, m) for n, m in out.named_children() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for (name, layer), (_, nxt) in zip(layers, layers[1:], strict=False):
        width = layer.weight.shape[0]
        removed = sorted(set(range(width)) - set(kept[name]))
        with torch.no_grad():
            if isinstance(nxt, nn.Linear) and nxt.in_features != width:
                cols = nxt.weight.view(nxt.out_features, width, -1)  # each channel owns H*W columns
                cols[:, removed] = 0
            else:
                nxt.weight[:, removed] = 0
    return out


def activations(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Returns the output of every Conv2d / Linear layer of ``model`` on ``x``, by layer name."""
    seen, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o)))
    with torch.no_grad():
        seen["logits"] = model(x)
    for h in hooks:
        h.remove()
    return seen


# ---------------------------------------------------------------- channels: the claims


MODELS = {
    "seed_cnn": lambda: mcv.models.build("seed_cnn", input_shape=(1, 8, 8), seed=0),
    "lenet5": lambda: mcv.models.build("lenet5", input_shape=(1, 28, 28), seed=0),
    "lenet300": lambda: mcv.models.build("lenet300", input_shape=(1, 8, 8), seed=0),
    "mlp": lambda: mcv.models.build("mlp", input_shape=(1, 8, 8), hidden=(32, 16), seed=0),
    "deep_cnn": deep_cnn,
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_kept_channels_compute_what_they_computed(name, norm):
    """Layer by layer, the pruned model's outputs equal the kept channels' outputs of the
    original with the removed channels' outgoing weights zeroed; the logits are equal too (within
    float32 rounding: float64 models are refused, as by every method)."""
    model = MODELS[name]()
    x = torch.rand(16, *model.input_shape, generator=torch.Generator().manual_seed(1))
    pruned = prune.channels(model, 0.5, norm=norm)
    kept = prune.kept_channels(model, 0.5, norm=norm)
    got, want = activations(pruned, x), activations(masked_equivalent(model, kept), x)
    first = next(iter(kept))
    original = activations(model, x)
    torch.testing.assert_close(got[first], original[first][:, kept[first]], rtol=0, atol=1e-6)
    for layer in got:
        expected = want[layer][:, kept[layer]] if layer in kept else want[layer]
        torch.testing.assert_close(got[layer], expected, rtol=0, atol=1e-5, msg=layer)


def test_logits_match_the_masked_model_in_float32(digits):
    model = deep_cnn()
    x = digits.test.tensors[0][:64]
    kept = prune.kept_channels(model, 0.5)
    torch.testing.assert_close(
        prune.channels(model, 0.5)(x), masked_equivalent(model, kept)(x), rtol=0, atol=1e-6
    )


def test_seed_cnn_shrinks(digits):
    model = mcv.models.build("seed_cnn", input_shape=digits.input_shape, seed=0)
    pruned = prune.channels(model, 0.5)
    assert (pruned.conv1.out_channels, pruned.fc1.in_features, pruned.fc1.out_features) == (16, 144, 10)
    before, after = mcv.measure.model(model), mcv.measure.model(pruned)
    assert after.macs == before.macs // 2
    assert after.params < before.params
    assert after.sparsity == 0.0  # dense: nothing is stored as zeros


def test_lenet5_shrinks_every_layer_but_the_output():
    model = MODELS["lenet5"]()
    pruned = prune.channels(model, 0.5)
    shapes = {n: tuple(m.weight.shape) for n, m in pruned.named_children() if hasattr(m, "weight")}
    assert shapes == {
        "conv1": (10, 1, 5, 5),
        "conv2": (25, 10, 5, 5),
        "fc1": (250, 25 * 4 * 4),
        "fc2": (10, 250),
    }
    assert mcv.measure.model(pruned).macs < mcv.measure.model(model).macs / 3


def test_removes_the_lowest_norms_and_norms_differ():
    model = nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 3))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [3.0, 0.0, 0.0, 0.0]]))
    # neuron 0: L1 4, L2 2; neuron 1: L1 3, L2 3
    assert prune.kept_channels(model, 0.5, norm="l1") == {"0": [0]}
    assert prune.kept_channels(model, 0.5, norm="l2") == {"0": [1]}
    torch.testing.assert_close(prune.channels(model, 0.5, norm="l2")[2].weight, model[2].weight[:, [1]])


@pytest.mark.parametrize(("sparsity", "kept"), [(0.0, 32), (0.3, 23), (0.5, 16), (0.99, 1), (0.999, 1)])
def test_removed_count_is_rounded_down(sparsity, kept):
    model = MODELS["seed_cnn"]()
    assert prune.channels(model, sparsity).conv1.out_channels == kept


def test_sparsity_zero_copies():
    model = MODELS["deep_cnn"]()
    pruned = prune.channels(model, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), pruned.parameters(), strict=True))


def test_dict_prunes_only_the_named_layers():
    pruned = prune.channels(MODELS["deep_cnn"](), {"conv2": 0.5})
    assert (pruned.conv1.out_channels, pruned.conv2.out_channels, pruned.fc1.in_features) == (8, 6, 54)
    assert pruned.fc1.out_features == 20


def test_input_unchanged_and_nothing_shared():
    model = MODELS["deep_cnn"]()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pruned = prune.channels(model, 0.5)
    assert pruned is not model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    ptrs = {p.data_ptr() for p in model.parameters()}
    assert not ptrs & {p.data_ptr() for p in pruned.parameters()}


def test_keeps_names_input_shape_and_mode():
    model = MODELS["lenet300"]().eval()
    pruned = prune.channels(model, 0.5)
    assert [n for n, _ in pruned.named_children()] == [n for n, _ in model.named_children()]
    assert pruned.input_shape == model.input_shape
    assert not pruned.training


def test_pruned_model_fine_tunes(digits):
    model = mcv.models.build("seed_cnn", input_shape=digits.input_shape, seed=0)
    pruned = prune.channels(model, 0.5)
    history = mcv.train.fit(pruned, digits, epochs=1, lr=1e-2, progress=False)
    assert history["val_accuracy"].iloc[-1] > 0.5


def test_of_a_magnitude_pruned_model(digits_mlp):
    sparse = prune.magnitude(digits_mlp, 0.5)
    pruned = prune.channels(sparse, 0.5)
    assert type(pruned.fc1) is nn.Linear and pruned.fc1.out_features == 16
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    kept = prune.kept_channels(sparse, 0.5)
    torch.testing.assert_close(pruned(x), masked_equivalent(prune.finalize(sparse), kept)(x))


def test_config_through_compress_and_parse(digits_mlp):
    (config,) = mcv.registry.parse("channels:sparsity=0.25,norm=l2")
    assert config == prune.ChannelsConfig(sparsity=0.25, norm="l2")
    out = mcv.compress(digits_mlp, config)
    assert out.fc1.out_features == 24
    assert "channels" in mcv.registry.METHODS


# ---------------------------------------------------------------- channels: bad input


@pytest.mark.parametrize(
    ("sparsity", "match", "error"),
    [
        (1.0, r"sparsity must be a float in \[0, 1\), got 1.0", ValueError),  # would remove every channel
        (1, "an int is never read as a count", TypeError),
        (0, "an int is never read as a count", TypeError),
        (float("nan"), "nan", ValueError),
        (-0.1, "-0.1", ValueError),
        (1.5, "1.5", ValueError),
        ("0.5", "'0.5'", TypeError),
        (True, "True", TypeError),
        ({"fc1": 1.0}, r"sparsity\['fc1'\] must be a float in \[0, 1\)", ValueError),
        ({"fc1": 2}, "sparsity\\['fc1'\\]", TypeError),
        ({}, "non-empty dict", ValueError),
        ({1: 0.5}, "layer names", TypeError),
    ],
)
def test_rejects_bad_sparsity(digits_mlp, sparsity, match, error):
    with pytest.raises(error, match=match) as e:
        prune.channels(digits_mlp, sparsity)
    one_line(e)


@pytest.mark.parametrize(("sparsity", "match"), [(1.0, r"in \[0, 1\), got 1.0"), (0.5, None)])
def test_config_validates(sparsity, match):
    if match is None:
        assert prune.ChannelsConfig(sparsity).sparsity == sparsity
        return
    with pytest.raises(ValueError, match=match) as e:
        prune.ChannelsConfig(sparsity)
    one_line(e)


@pytest.mark.parametrize(("norm", "error"), [("l3", ValueError), ("L1", ValueError), (None, TypeError)])
def test_rejects_unknown_norm(digits_mlp, norm, error):
    with pytest.raises(error, match=f"norm must be .*got {norm!r}") as e:
        prune.channels(digits_mlp, 0.5, norm=norm)
    one_line(e)
    with pytest.raises(error, match="norm"):
        prune.ChannelsConfig(norm=norm)


@pytest.mark.parametrize(
    ("key", "match"), [("fc9", "unknown layer 'fc9'"), ("fc2", r"'fc2' \(the output layer\)")]
)
def test_rejects_unknown_layer_in_dict(digits_mlp, key, match):
    with pytest.raises(ValueError, match=match) as e:
        prune.channels(digits_mlp, {key: 0.5})
    assert "prunable layers: fc1" in one_line(e)


@pytest.mark.parametrize(
    ("layer", "kind"),
    [(nn.BatchNorm1d(32), "BatchNorm1d"), (nn.Dropout(0.1), "Dropout"), (nn.Sigmoid(), "Sigmoid")],
)
def test_rejects_unsupported_layer(layer, kind):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), layer, nn.Linear(32, 10))
    with pytest.raises(ValueError, match=f"type {kind}; supported layers: Conv2d, Linear") as e:
        prune.channels(model, 0.5)
    one_line(e)


def test_rejects_quantized_layers(digits_mlp):
    with pytest.raises(ValueError, match="QuantLinear") as e:
        prune.channels(mcv.quantize.weights(digits_mlp), 0.5)
    one_line(e)


def test_rejects_non_sequential():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

    with pytest.raises(ValueError, match="nn.Sequential .* got Net") as e:
        prune.channels(Net(), 0.5)
    one_line(e)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), "at least one Conv2d or hidden Linear"),
        (nn.Sequential(nn.ReLU()), "model must have a Linear or Conv2d layer for channels; it has ReLU"),
        (nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(), nn.Linear(144, 2)), "groups=2"),
        (nn.Sequential(nn.Conv2d(1, 4, 3), nn.Linear(6, 2)), "cannot follow the outputs of '0'"),
        (nn.Sequential(nn.Linear(8, 4), nn.MaxPool2d(2), nn.Linear(2, 2)), "cannot follow"),
    ],
)
def test_rejects_models_it_cannot_follow(model, match):
    with pytest.raises(ValueError, match=match) as e:
        prune.channels(model, 0.5)
    one_line(e)


# ---------------------------------------------------------------- sensitivity


@pytest.fixture(scope="module")
def scan(digits, digits_mlp):
    return prune.sensitivity(digits_mlp, digits, sparsities=(0.0, 0.5, 0.9))


def test_sensitivity_table(scan, digits_mlp):
    assert list(scan.columns) == ["layer", "sparsity", "accuracy", "drop", "weights"]
    assert list(scan["layer"]) == ["fc1"] * 3 + ["fc2"] * 3
    assert list(scan["sparsity"]) == [0.0, 0.5, 0.9] * 2
    assert list(scan["weights"]) == [64 * 32] * 3 + [32 * 10] * 3
    assert (scan[scan["sparsity"] == 0.0]["drop"] == 0).all()
    assert scan["drop"].tolist() == pytest.approx((scan.attrs["baseline"] - scan["accuracy"]).tolist())


def test_sensitivity_rows_are_one_layer_magnitude_pruning(scan, digits, digits_mlp):
    row = scan[(scan["layer"] == "fc2") & (scan["sparsity"] == 0.9)].iloc[0]
    alone = prune.magnitude(digits_mlp, {"fc2": 0.9})
    assert row["accuracy"] == mcv.train.evaluate(alone, digits, "val")
    assert scan.attrs["baseline"] == mcv.train.evaluate(digits_mlp, digits, "val")


def test_sensitivity_leaves_model_unchanged(digits, digits_mlp):
    before = {k: v.clone() for k, v in digits_mlp.state_dict().items()}
    prune.sensitivity(digits_mlp, digits, sparsities=(0.9,), split="test")
    assert all(torch.equal(before[k], v) for k, v in digits_mlp.state_dict().items())


def test_sensitivity_of_a_cnn(digits):
    model = mcv.models.build("seed_cnn", input_shape=digits.input_shape, seed=0)
    scan = prune.sensitivity(model, digits, sparsities=(0.5,))
    assert list(scan["layer"]) == ["conv1", "fc1"]


@pytest.mark.parametrize(
    ("options", "match", "error"),
    [
        ({"sparsities": ()}, r"sparsities must be a list of 1 to 100 floats in \[0, 1\], got", ValueError),
        ({"sparsities": 0.5}, "must be a list of 1 to 100", TypeError),
        ({"sparsities": (0.5,) * 101}, "must be a list of 1 to 100", ValueError),
        ({"sparsities": (0.5, 1)}, "an int is never read as a count", TypeError),
        ({"sparsities": (float("nan"),)}, "nan", ValueError),
        ({"method": "random"}, "method must be one of 'magnitude', got 'random'", ValueError),
        ({"split": "dev"}, "split must be one of 'train', 'val', 'test', got 'dev'", ValueError),
    ],
)
def test_sensitivity_rejects_bad_options(digits, digits_mlp, options, match, error):
    with pytest.raises(error, match=match) as e:
        prune.sensitivity(digits_mlp, digits, **options)
    one_line(e)


def test_sensitivity_rejects_bad_model_and_data(digits, digits_mlp):
    with pytest.raises(ValueError, match="model must have a Linear or Conv2d layer for sensitivity") as e:
        prune.sensitivity(nn.Sequential(nn.ReLU()), digits)
    one_line(e)
    with pytest.raises(TypeError, match="DataBundle") as e:
        prune.sensitivity(digits_mlp, None)
    one_line(e)


# ---------------------------------------------------------------- allocate


def synthetic_scan(
    sizes: dict[str, int], drops: dict[str, list[float]], grid=(0.5, 0.7, 0.9)
) -> pd.DataFrame:
    rows = [(n, s, 0.0, d, sizes[n]) for n in sizes for s, d in zip(grid, drops[n], strict=True)]
    return pd.DataFrame(rows, columns=["layer", "sparsity", "accuracy", "drop", "weights"])


def overall(sizes: dict[str, int], choice: dict[str, float]) -> float:
    return sum(round(choice[n] * sizes[n]) for n in sizes) / sum(sizes.values())


def test_allocate_prunes_the_big_insensitive_layer():
    sizes = {"conv1": 100, "fc1": 10_000, "fc2": 500}
    drops = {"conv1": [0.05, 0.2, 0.5], "fc1": [0.0, 0.001, 0.01], "fc2": [0.01, 0.03, 0.3]}
    choice = prune.allocate(synthetic_scan(sizes, drops), budget_sparsity=0.8)
    assert choice == {"conv1": 0.0, "fc1": 0.9, "fc2": 0.0}


@pytest.mark.parametrize("budget", [0.3, 0.6, 0.75, 0.85])
def test_allocate_is_exact_over_the_grid(budget):
    gen = torch.Generator().manual_seed(0)
    sizes = {f"l{i}": int(n) for i, n in enumerate(torch.randint(50, 2000, (5,), generator=gen))}
    drops = {n: sorted(torch.rand(3, generator=gen).mul(0.2).tolist()) for n in sizes}
    choice = prune.allocate(synthetic_scan(sizes, drops), budget_sparsity=budget)
    assert overall(sizes, choice) >= budget
    options = {n: [(0.0, 0.0), *zip((0.5, 0.7, 0.9), drops[n], strict=True)] for n in sizes}
    best = min(
        sum(d for _, d in combo)
        for combo in itertools.product(*options.values())
        if overall(sizes, dict(zip(sizes, (s for s, _ in combo), strict=True))) >= budget
    )
    got = sum(dict(zip((0.5, 0.7, 0.9), drops[n], strict=True)).get(choice[n], 0.0) for n in sizes)
    assert got == pytest.approx(best)


def test_allocate_meets_the_budget_on_a_real_model(scan, digits_mlp):
    choice = prune.allocate(scan, budget_sparsity=0.6)
    assert set(choice) == {"fc1", "fc2"}
    measured = mcv.measure.model(prune.magnitude(digits_mlp, choice)).sparsity
    assert measured >= 0.6


def test_allocate_zero_budget_prunes_nothing():
    scan = synthetic_scan({"a": 100, "b": 10}, {"a": [0.1, 0.2, 0.3], "b": [0.01, 0.02, 0.03]})
    assert prune.allocate(scan, budget_sparsity=0.0) == {"a": 0.0, "b": 0.0}


def test_allocate_ties_go_to_the_higher_sparsity():
    scan = synthetic_scan({"a": 100, "b": 10}, {"a": [0.0, 0.0, 0.1], "b": [0.01, 0.02, 0.03]})
    assert prune.allocate(scan, budget_sparsity=0.1) == {"a": 0.7, "b": 0.0}


def test_allocate_unreachable_budget(scan):
    with pytest.raises(
        ValueError, match=r"budget_sparsity=0.95 cannot be reached .*at most 0.8999 overall"
    ) as e:
        prune.allocate(scan, budget_sparsity=0.95)
    one_line(e)


@pytest.mark.parametrize(
    ("scan_value", "budget", "match", "error"),
    [
        (None, 0.5, "scan must be a DataFrame", TypeError),
        (pd.DataFrame({"layer": ["a"]}), 0.5, "with columns", ValueError),
        (pd.DataFrame(columns=["layer", "sparsity", "accuracy", "drop", "weights"]), 0.5, "scan is empty",
         ValueError),
        ("fixture", 1, "an int is never read as a count", TypeError),
        ("fixture", math.nan, "nan", ValueError),
        ("fixture", 1.2, "1.2", ValueError),
    ],
)  # fmt: skip
def test_allocate_rejects_bad_input(scan, scan_value, budget, match, error):
    with pytest.raises(error, match=match) as e:
        prune.allocate(scan if isinstance(scan_value, str) else scan_value, budget_sparsity=budget)
    one_line(e)
