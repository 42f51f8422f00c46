"""Unit tests of mcviz.stats (paired statistics) and mcviz.train.correct, against scipy and by hand."""

from __future__ import annotations

import pytest
import torch
from scipy import stats as scipy_stats

import mcviz as mcv


def pair(only_a: int, only_b: int, both: int = 5, neither: int = 3):
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return torch.tensor(a), torch.tensor(b)


@pytest.mark.parametrize("only_a, only_b", [(0, 1), (1, 1), (7, 2), (2, 7), (30, 12), (100, 80), (0, 25)])
def test_mcnemar_matches_scipy_exact_binomial(only_a, only_b):
    a, b = pair(only_a, only_b)
    test = mcv.stats.mcnemar(a, b)
    expected = scipy_stats.binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert test.p_value == pytest.approx(expected, rel=1e-12)
    assert (test.a_only, test.b_only) == (only_a, only_b)


def test_mcnemar_is_symmetric_and_never_disagreeing_gives_one():
    a, b = pair(9, 3)
    ab, ba = mcv.stats.mcnemar(a, b), mcv.stats.mcnemar(b, a)
    assert ab.p_value == ba.p_value and (ab.a_only, ab.b_only) == (ba.b_only, ba.a_only)
    same = torch.tensor([True, False, True])
    assert mcv.stats.mcnemar(same, same) == mcv.stats.McNemar(0, 0, 1.0)


def test_mcnemar_accepts_lists_and_leaves_inputs_unchanged():
    a, b = pair(4, 1)
    a0, b0 = a.clone(), b.clone()
    assert mcv.stats.mcnemar(a.tolist(), b.tolist()) == mcv.stats.mcnemar(a, b)
    assert torch.equal(a, a0) and torch.equal(b, b0)


def test_paired_bootstrap_is_deterministic_and_brackets_the_difference():
    a, b = pair(60, 30, both=700, neither=210)
    state = torch.get_rng_state()
    first = mcv.stats.paired_bootstrap(a, b, seed=3)
    assert torch.equal(state, torch.get_rng_state())  # a private generator
    assert first == mcv.stats.paired_bootstrap(a, b, seed=3)
    assert first.difference == pytest.approx(-30 / 1000)  # mean(b - a): b gets 30 fewer right
    assert first.low < first.difference < first.high
    # normal approximation of the paired difference: sd of the per-image differences / sqrt(n)
    d = b.double() - a.double()
    half = 1.96 * d.std().item() / len(d) ** 0.5
    assert (first.high - first.low) / 2 == pytest.approx(half, rel=0.15)


def test_paired_bootstrap_degenerate_cases_and_level():
    same = torch.tensor([True, False] * 50)
    assert mcv.stats.paired_bootstrap(same, same)[:3] == (0.0, 0.0, 0.0)
    a, b = pair(40, 20, both=100, neither=40)
    wide, narrow = mcv.stats.paired_bootstrap(a, b, level=0.99), mcv.stats.paired_bootstrap(a, b, level=0.5)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_correct_is_the_per_image_accuracy(digits, digits_mlp):
    right = mcv.train.correct(digits_mlp, digits)
    assert right.dtype == torch.bool and right.shape == (len(digits.test),)
    assert int(right.sum()) / len(right) == mcv.train.evaluate(digits_mlp, digits)
    assert len(mcv.train.correct(digits_mlp, digits, "val", batch_size=7)) == len(digits.val)


@pytest.mark.parametrize(
    "a, b, error, match",
    [
        ([True, False], [True], ValueError, "must be non-empty and of equal length, got 2 and 1"),
        ([], [], ValueError, "must be non-empty and of equal length, got 0 and 0"),
        ([True, False], ["yes", "no"], ValueError, "must hold finite numbers or bools"),
    ],
)
def test_bad_vectors(a, b, error, match):
    with pytest.raises(error, match=match):
        mcv.stats.mcnemar(a, b)
    with pytest.raises(error, match=match):
        mcv.stats.paired_bootstrap(a, b)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"resamples": 10}, ValueError, "resamples must be an int"),
        ({"resamples": 1.5}, TypeError, "resamples must be an int"),
        ({"level": 1.0}, ValueError, "level must be a finite number"),
        ({"level": "0.9"}, TypeError, "level must be a number"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_bad_bootstrap_options(kwargs, error, match):
    a, b = pair(3, 1)
    with pytest.raises(error, match=match):
        mcv.stats.paired_bootstrap(a, b, **kwargs)


def test_verdict_words():
    assert mcv.stats.verdict(0.01).startswith("a difference beyond chance")
    assert mcv.stats.verdict(0.2).startswith("within noise")
    with pytest.raises(ValueError, match="p_value"):
        mcv.stats.verdict(1.5)


def test_paired_table_compares_each_model_with_the_reference(digits, digits_mlp):
    worse = mcv.prune.magnitude(digits_mlp, 0.9)
    table = mcv.measure.paired({"baseline": digits_mlp, "same": digits_mlp, "pruned": worse}, digits)
    assert list(table.columns) == mcv.stats.PAIRED_COLUMNS and list(table.label) == ["same", "pruned"]
    same, pruned = table.iloc[0], table.iloc[1]
    assert (same.difference, same.only_reference, same.only_this, same.mcnemar_p) == (0.0, 0, 0, 1.0)
    assert same.verdict == "within noise"
    base_acc = mcv.train.evaluate(digits_mlp, digits)
    assert pruned.accuracy == pytest.approx(mcv.train.evaluate(worse, digits))
    assert pruned.difference == pytest.approx(100 * (pruned.accuracy - base_acc))
    n = len(digits.test)
    assert pruned.only_this - pruned.only_reference == round(pruned.difference * n / 100)
    assert pruned.ci_low <= pruned.difference <= pruned.ci_high
    test = mcv.stats.mcnemar(mcv.train.correct(worse, digits), mcv.train.correct(digits_mlp, digits))
    assert pruned.mcnemar_p == test.p_value


def test_paired_bad_arguments(digits, digits_mlp):
    with pytest.raises(TypeError, match="models must be a non-empty dict"):
        mcv.stats.paired([digits_mlp], digits)
    with pytest.raises(ValueError, match="reference must be one of the labels \\['a'\\], got 'baseline'"):
        mcv.stats.paired({"a": digits_mlp}, digits)
