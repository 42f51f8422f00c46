"""mcv.stats (McNemar's exact test, the paired bootstrap) and mcv.explain (comparisons, saliency,
integrated gradients, reachable inputs, the interpretability table, figures), on digits."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from helpers import one_line

import mcviz as mcv
from mcviz import explain, stats


def test_mcnemar_matches_the_binomial_test():
    scipy_stats = pytest.importorskip("scipy.stats")
    a = np.random.default_rng(0).random(500) < 0.9
    b = a.copy()
    b[:21] = ~b[:21]
    result = stats.mcnemar(a, b)
    assert (result.a_only, result.b_only) == (int((a & ~b).sum()), int((~a & b).sum()))
    expected = scipy_stats.binomtest(result.a_only, result.a_only + result.b_only, 0.5).pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-12)
    assert stats.mcnemar(a, a) == stats.McNemar(0, 0, 1.0)


def test_paired_bootstrap_is_seeded_and_covers_the_difference():
    a = np.random.default_rng(1).random(400) < 0.8
    b = a.copy()
    b[:40] = True
    first = stats.paired_bootstrap(a, b, seed=3)
    assert first == stats.paired_bootstrap(a, b, seed=3)
    assert first.low <= first.difference <= first.high and first.difference == pytest.approx(
        b.mean() - a.mean()
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: stats.mcnemar([True], [True, False]), "equal length, got 1 and 2"),
        (lambda: stats.paired_bootstrap([1.0, float("nan")], [1.0, 2.0]), "finite numbers"),
        (
            lambda: stats.paired_bootstrap([1], [1], resamples=5),
            r"resamples must be an int in \[100, 100000\]",
        ),
        (lambda: stats.paired_bootstrap([1], [1], level=1.0), "level must be a finite number in"),
    ],
)
def test_stats_refuse_bad_input(call, message):
    with pytest.raises(ValueError, match=message) as e:
        call()
    one_line(e)


@pytest.fixture(scope="module")
def pruned(digits_mlp):
    return mcv.prune.magnitude(digits_mlp, 0.9, scope="global")


def test_compare_counts_what_changed(digits_mlp, pruned, digits):
    c = explain.compare(digits_mlp, pruned, digits)
    y = digits.test.tensors[1]
    pa, pb = explain.predict(digits_mlp, digits).argmax(1), explain.predict(pruned, digits).argmax(1)
    assert c.agreement == float((pa == pb).float().mean())
    assert torch.equal(c.disagreements, torch.nonzero(pa != pb).reshape(-1))
    assert c.per_class.images.sum() == len(y) and int(c.confusion_change.to_numpy().sum()) == 0
    assert c.accuracy_b - c.accuracy_a == pytest.approx(c.interval.difference)
    assert c.test.a_only - c.test.b_only == round(len(y) * (c.accuracy_a - c.accuracy_b))


def test_integrated_gradients_add_up_to_the_logit_change(digits_mlp, digits):
    x = digits.test.tensors[0][:8]
    target = digits_mlp(x).argmax(1)
    ig = explain.integrated_gradients(digits_mlp, x, target, steps=64)
    with torch.no_grad():
        change = (digits_mlp(x) - digits_mlp(torch.zeros_like(x))).gather(1, target[:, None]).reshape(-1)
    assert torch.allclose(ig.sum((1, 2, 3)), change, rtol=0.05, atol=0.05)
    assert explain.saliency(digits_mlp, x).shape == (8, 8, 8)


def test_concentration_bounds():
    even, peaked = torch.ones(2, 100), torch.zeros(2, 100)
    peaked[:, 0] = 1.0
    assert torch.allclose(explain.concentration(even, 0.1), torch.full((2,), 0.1))
    assert torch.allclose(explain.concentration(peaked, 0.1), torch.ones(2))


def test_reachable_inputs_follow_the_masks(digits_mlp):
    cut = mcv.prune.magnitude(digits_mlp, {"fc1": 0.0})
    cut.fc1.mask[:, :5] = False  # the first 5 pixels lose every connection
    cut.fc1.set_mask(cut.fc1.mask.clone())
    reach = explain.reachable_inputs(cut)
    assert reach.shape == (1, 8, 8) and int(reach.sum()) == 64 - 5 and not reach.reshape(-1)[:5].any()
    assert bool(explain.reachable_inputs(digits_mlp).all())
    with pytest.raises(ValueError, match="cannot follow module"):
        explain.reachable_inputs(torch.nn.Sequential(torch.nn.GELU()), (4,))


def test_interpretability_table(digits_mlp, pruned, digits):
    table = explain.interpretability(digits_mlp, pruned, digits, images=50)
    assert table.measure.tolist()[:4] == [
        "test accuracy",
        "agreement with a",
        "nonzero weights",
        "inputs that reach an output",
    ]
    assert len(table) == 6 and table.p_value.notna().sum() == 1
    assert (table.difference == table.value_b - table.value_a).all()


def test_figures(digits_mlp, pruned, digits):
    fig = explain.images(digits.test.tensors[0][:5], [str(i) for i in range(5)], cols=3)
    assert isinstance(fig, go.Figure) and len(fig.data) == 5
    fig = explain.weight_pictures(pruned, "fc1", units=4, shape=(8, 8))
    assert len(fig.data) == 4 and "kept" in fig.layout.annotations[0].text
    fig = explain.weight_histograms({"dense": digits_mlp, "pruned": pruned})
    assert len(fig.data) == 2 and fig.layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="not a 28x28 picture"):
        explain.weight_pictures(pruned, "fc1")
