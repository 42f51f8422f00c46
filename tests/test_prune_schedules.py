"""Unit tests of pruning schedules and the lottery ticket experiment (mcviz.prune.schedules, .lottery)."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import one_line
from torch import nn
from torch.nn import functional as F

import mcviz as mcv
from mcviz import prune


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def weight_count(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d))


def zero_count(model: nn.Module) -> int:
    return sum(int((m.weight == 0).sum()) for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d))


# ---------------------------------------------------------------- the cubic schedule

SCHEDULE = dict(final_sparsity=0.8, begin_step=10, end_step=20, initial_sparsity=0.1)


def test_zhu_gupta_endpoints_and_clamping():
    assert prune.zhu_gupta(10, **SCHEDULE) == 0.1
    assert prune.zhu_gupta(0, **SCHEDULE) == 0.1  # before begin_step: s_i
    assert prune.zhu_gupta(20, **SCHEDULE) == 0.8
    assert prune.zhu_gupta(1000, **SCHEDULE) == 0.8  # after end_step: s_f


def test_zhu_gupta_is_the_cubic_formula():
    for t in range(10, 21):
        expected = 0.8 + (0.1 - 0.8) * (1 - (t - 10) / 10) ** 3
        assert prune.zhu_gupta(t, **SCHEDULE) == pytest.approx(expected, abs=1e-12)
    # halfway, 1/8 of the gap remains: 0.8 - 0.7 / 8
    assert prune.zhu_gupta(15, **SCHEDULE) == pytest.approx(0.7125)


def test_zhu_gupta_is_monotone_and_front_loaded():
    values = [prune.zhu_gupta(t, **SCHEDULE) for t in range(0, 30)]
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    increments = np.diff([prune.zhu_gupta(t, **SCHEDULE) for t in range(10, 21)])
    assert all(b < a for a, b in zip(increments, increments[1:], strict=False))  # fast first, slow last


@pytest.mark.parametrize(
    "kwargs, match, error",
    [
        (dict(begin_step=5, end_step=5), "begin_step must be < end_step", ValueError),
        (dict(begin_step=6, end_step=5), "begin_step must be < end_step", ValueError),
        (dict(final_sparsity=1), "final_sparsity must be a float", TypeError),
        (dict(final_sparsity=1.5), "final_sparsity must be a float", ValueError),
        (dict(initial_sparsity=0.9), "initial_sparsity must be <= final_sparsity", ValueError),
        (dict(begin_step=-1), "begin_step must be an int", ValueError),
        (dict(end_step=10.0), "end_step must be an int", TypeError),
    ],
)
def test_zhu_gupta_bad_input(kwargs, match, error):
    options = dict(final_sparsity=0.8, begin_step=0, end_step=10) | kwargs
    with pytest.raises(error, match=match) as excinfo:
        prune.zhu_gupta(3, **options)
    one_line(excinfo)


# ---------------------------------------------------------------- GradualPruner


def test_gradual_pruner_follows_the_schedule_and_reaches_exactly_final(digits_mlp):
    before = state(digits_mlp)
    pruner = prune.GradualPruner(digits_mlp, final_sparsity=0.9, begin_step=2, end_step=7, frequency=2)
    n = weight_count(pruner.model)
    params = [id(p) for p in pruner.model.parameters()]
    seen = [pruner.sparsity]
    for _ in range(10):
        seen.append(pruner.step())
        assert zero_count(pruner.model) == round(pruner.sparsity * n)
    # pruning steps 2, 4, 6 and always end_step 7; fixed afterwards
    assert seen[1] == 0.0 and seen[2] == pruner.schedule(2) and seen[3] == seen[2]
    assert seen[7] == 0.9 and seen[-1] == 0.9
    assert zero_count(pruner.model) == round(0.9 * n)
    assert [id(p) for p in pruner.model.parameters()] == params  # in place: optimizers stay valid
    assert all(torch.equal(before[k], v) for k, v in digits_mlp.state_dict().items())


def pruned_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, prune.PrunedLinear | prune.PrunedConv2d)]


def test_gradual_pruner_keeps_pruned_weights_at_zero_under_adam(digits, digits_mlp):
    pruner = prune.GradualPruner(digits_mlp, final_sparsity=0.8, begin_step=0, end_step=6, frequency=2)
    optimizer = torch.optim.Adam(pruner.model.parameters(), lr=1e-2)
    X, y = digits.train.tensors

    def adam_step():
        optimizer.zero_grad()
        F.cross_entropy(pruner.model(X[:64]), y[:64]).backward()
        optimizer.step()

    for _ in range(10):
        adam_step()
        pruner.step()
        for layer in pruned_layers(pruner.model):
            assert bool((layer.weight[~layer.mask] == 0).all())
    # what step() prevents: Adam's moments move weights pruned mid-run although their gradient is 0
    adam_step()
    assert any(bool((layer.weight[~layer.mask] != 0).any()) for layer in pruned_layers(pruner.model))


# 1,258 digits training examples in batches of 64: 20 optimizer steps per epoch
GRADUAL = dict(final_sparsity=0.8, epochs=3, lr=1e-2)


def test_gradual_trains_to_exact_final_sparsity_and_keeps_input(digits, digits_mlp):
    before = state(digits_mlp)
    model, history = prune.gradual(digits_mlp, digits, **GRADUAL)
    assert list(history.columns) == ["sparsity", "epoch", "loss", "train_accuracy", "val_accuracy"]
    assert list(history["epoch"]) == [1, 2, 3]
    # default schedule: from step 0 to the end of epoch 2 (step 40), then an epoch at 0.8
    n = weight_count(model)
    first = prune.zhu_gupta(20, final_sparsity=0.8, begin_step=0, end_step=40)
    assert list(history["sparsity"]) == [round(first * n) / n, round(0.8 * n) / n, round(0.8 * n) / n]
    assert zero_count(model) == round(0.8 * n)
    assert mcv.measure.model(model).sparsity == pytest.approx(0.8, abs=1e-3)
    for layer in pruned_layers(model):
        assert bool((layer.weight[~layer.mask] == 0).all())  # stored weights, not only weight * mask
    assert all(torch.equal(before[k], v) for k, v in digits_mlp.state_dict().items())


def test_gradual_prunes_every_frequency_steps_from_begin_to_end(digits, digits_mlp, monkeypatch):
    seen = []
    real = prune.GradualPruner.step

    def spy(self):
        before = self.sparsity
        after = real(self)
        if after != before:
            seen.append((self.step_count, after))
        return after

    monkeypatch.setattr(prune.GradualPruner, "step", spy)
    schedule = dict(final_sparsity=0.8, begin_step=5, end_step=30, initial_sparsity=0.1)
    _, history = prune.gradual(digits_mlp, digits, epochs=2, lr=1e-2, frequency=7, **schedule)
    assert [t for t, _ in seen] == [12, 19, 26, 30]  # 5 prunes to initial_sparsity: no change
    assert [s for _, s in seen] == [prune.zhu_gupta(t, **schedule) for t in (12, 19, 26, 30)]
    n = weight_count(digits_mlp)
    assert history["sparsity"].iloc[0] == round(prune.zhu_gupta(19, **schedule) * n) / n


def test_gradual_is_one_training_run(digits, digits_mlp, monkeypatch):
    calls = []
    real = mcv.train.fit
    monkeypatch.setattr(mcv.train, "fit", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    a, history = prune.gradual(digits_mlp, digits, **GRADUAL)
    assert len(calls) == 1 and calls[0]["epochs"] == 3 and callable(calls[0]["on_step"])
    b, again = prune.gradual(digits_mlp, digits, **GRADUAL)
    pd.testing.assert_frame_equal(history, again)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(end_step=61), "end_step must be an int in [1, 60], got 61"),  # the run's last step
        (dict(end_step=0), "end_step must be an int in [1, 60], got 0"),
        (dict(begin_step=40), "begin_step must be < end_step"),
        (dict(frequency=0), "frequency must be an int >= 1, got 0"),
        (dict(batch_size=0), "batch_size must be an int in [1, 4096], got 0"),
        (dict(batch_size=10**7), "batch_size must be an int in [1, 4096], got 10000000"),
        (dict(epochs=1), "epochs must be an int in [2, 200], got 1"),
        (dict(epochs=10**9), "epochs must be an int in [2, 200], got 1000000000"),
        (dict(lr=0.0), "lr must be a finite number in (0, 10], got 0.0"),
        (dict(seed=2**32), "seed must be an int in [0, 4,294,967,295], got 4294967296"),
    ],
)
def test_gradual_bad_input(digits, digits_mlp, kwargs, match):
    with pytest.raises(ValueError, match=re.escape(match)) as excinfo:
        prune.gradual(digits_mlp, digits, **(GRADUAL | kwargs))
    one_line(excinfo)


# ---------------------------------------------------------------- one-shot and iterative


def test_one_shot_prunes_and_zeros_survive_fine_tuning(digits, digits_mlp):
    pruned = prune.magnitude(digits_mlp, 0.7, scope="global")
    masks = {n: m.mask.clone() for n, m in pruned.named_modules() if hasattr(m, "mask")}
    model, history = prune.one_shot(digits_mlp, digits, 0.7, fine_tune_epochs=2, lr=1e-2)
    assert list(history["sparsity"]) == pytest.approx([0.7, 0.7], abs=1e-3)
    for name, mask in masks.items():
        layer = model.get_submodule(name)
        assert torch.equal(layer.mask, mask)  # the same weights pruned as magnitude()
        assert bool((layer.weight[~mask] == 0).all())  # and still zero after fit
    assert zero_count(model) == round(0.7 * weight_count(model))


def test_iterative_reaches_exactly_the_target(digits, digits_mlp):
    model, history = prune.iterative(digits_mlp, digits, 0.9, steps=3, fine_tune_epochs=1, lr=1e-2)
    assert list(history["step"]) == [1, 2, 3]
    expected = [1 - 0.1 ** (k / 3) for k in (1, 2, 3)]
    assert list(history["sparsity"]) == pytest.approx(expected, abs=1e-3)
    assert zero_count(model) == round(0.9 * weight_count(model))
    assert prune.weight_sparsity(digits_mlp) < 0.01  # input unchanged


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sparsity=1.5), "sparsity must be a float"),
        (dict(steps=0), r"steps must be an int in \[1, 100\]"),
        (dict(steps=10**6), r"steps must be an int in \[1, 100\]"),
        (dict(fine_tune_epochs=0), r"fine_tune_epochs must be an int in \[1, 200\]"),
        (dict(scope="net"), "scope must be one of 'layer', 'global'"),
        (dict(seed=-1), "seed must be an int in"),
    ],
)
def test_iterative_bad_input(digits, digits_mlp, kwargs, match):
    options = dict(sparsity=0.5) | kwargs
    with pytest.raises(ValueError, match=match) as excinfo:
        prune.iterative(digits_mlp, digits, **options)
    one_line(excinfo)


# ---------------------------------------------------------------- lottery ticket

LOTTERY = dict(rounds=2, rate=0.5, epochs=1, lr=1e-2, seed=0)


@pytest.fixture(scope="module")
def lottery_table(digits):
    return prune.lottery_ticket("lenet300", digits, **LOTTERY)


def test_lottery_table_has_the_remaining_fractions(lottery_table):
    table = lottery_table
    assert list(table.columns) == ["round", "remaining", "ticket_accuracy", "random_accuracy"]
    assert list(table["round"]) == [0, 1, 2]
    assert list(table["remaining"]) == pytest.approx([1.0, 0.5, 0.25], abs=1e-4)
    assert math.isnan(table["random_accuracy"].iloc[0])
    accuracies = table[["ticket_accuracy", "random_accuracy"]].iloc[1:].to_numpy()
    assert ((accuracies > 0.1) & (accuracies <= 1.0)).all()


def test_lottery_is_deterministic(digits, lottery_table):
    again = prune.lottery_ticket("lenet300", digits, **LOTTERY)
    pd.testing.assert_frame_equal(lottery_table, again)


def test_lottery_layer_scope_prunes_the_output_layer_at_half_rate(digits):
    table = prune.lottery_ticket("mlp", digits, rounds=1, rate=0.5, epochs=1, scope="layer", lr=1e-2)
    model = mcv.models.build("mlp", input_shape=digits.input_shape, seed=0)
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    kept = sum(round(0.5 * m.weight.numel()) for m in layers[:-1]) + round(0.75 * layers[-1].weight.numel())
    assert table["remaining"].iloc[1] == pytest.approx(kept / weight_count(model), abs=1e-6)


def test_rewound_restores_initial_values_on_kept_weights(digits):
    model = mcv.models.build("mlp", input_shape=digits.input_shape, hidden=(16,), seed=0)
    init = {k: v.clone() for k, v in model.named_parameters()}
    trained = copy.deepcopy(model)
    mcv.train.fit(trained, digits, epochs=1, lr=1e-2, progress=False)
    pruned = prune.magnitude(trained, 0.6, scope="global")
    ticket = prune.rewound(pruned, init)
    for name, layer in ticket.named_modules():
        if isinstance(layer, prune.PrunedLinear):
            mask = layer.mask
            assert torch.equal(mask, pruned.get_submodule(name).mask)
            assert torch.equal(layer.weight[mask], init[f"{name}.weight"][mask])
            assert bool((layer.weight[~mask] == 0).all())
            assert torch.equal(layer.bias, init[f"{name}.bias"])
    assert not torch.equal(pruned.get_submodule("fc1").weight, ticket.get_submodule("fc1").weight)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rate=0.0), "rate must be a finite number in \\(0, 1\\)"),
        (dict(rate=1.0), "rate must be a finite number in \\(0, 1\\)"),
        (dict(rounds=0), "rounds must be an int in \\[1, 100\\]"),
        (dict(rounds=10**9), "rounds must be an int in \\[1, 100\\]"),
        (dict(rewind="later"), "rewind must be 'init' or an int epoch"),
        (dict(rewind=5), "rewind must be 'init' or an int epoch"),
        (dict(epochs=0), "epochs must be an int in \\[1, 200\\]"),
        (dict(scope="net"), "scope must be one of 'layer', 'global'"),
        (dict(seed=2**40), "seed must be an int in"),
        (dict(lr=float("nan")), "lr must be a finite number"),
    ],
)
def test_lottery_bad_input(digits, kwargs, match):
    with pytest.raises(ValueError, match=match) as excinfo:
        prune.lottery_ticket("lenet300", digits, **kwargs)
    one_line(excinfo)


def test_lottery_bad_model_name(digits):
    with pytest.raises(ValueError, match="model_name must be one of") as excinfo:
        prune.lottery_ticket("resnet", digits)
    one_line(excinfo)


def test_lottery_late_rewinding_runs(digits):
    options = dict(rounds=1, rate=0.5, epochs=2, lr=1e-2)
    late = prune.lottery_ticket("mlp", digits, rewind=1, **options)
    assert late["remaining"].iloc[1] == pytest.approx(0.5, abs=1e-4)
    assert 0.1 < late["ticket_accuracy"].iloc[1] <= 1.0
