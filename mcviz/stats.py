"""Paired statistics for comparing two models on the same test images.

Two models evaluated on the same images are paired: an image one gets right is likely right for
the other too, so the accuracy difference is much less noisy than two independent accuracies would
suggest, and the tests below use the pairing.

- ``mcnemar(correct_a, correct_b)``: McNemar's exact test. Only the discordant images count:
  ``b`` (A right, B wrong) and ``c`` (A wrong, B right). Under "same accuracy" each discordant image
  is a fair coin flip, so the two-sided p-value is ``min(1, 2 * P(X <= min(b, c)))`` for
  ``X ~ Binomial(b + c, 1/2)``, computed exactly.
- ``paired_bootstrap(a, b)``: a percentile interval for the mean of ``b - a`` over images
  (accuracy: 0/1 correctness; or any per-image number such as a saliency score), resampling images
  with a private generator, so the global RNG is untouched and the same seed gives the same
  interval.
- ``paired(models, data)`` (also ``mcv.measure.paired``): both, for a dict of models against a
  reference, the table the compare report shows; ``verdict(p)`` says it in words.

Per-image correctness comes from ``mcv.train.correct(model, data)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from mcviz._checks import check_int, check_number, check_seed, shorten


class McNemar(NamedTuple):
    """McNemar's exact test: ``a_only`` images only A gets right, ``b_only`` only B, and ``p_value``."""

    a_only: int
    b_only: int
    p_value: float


class Interval(NamedTuple):
    """A paired difference ``mean(b - a)`` and its bootstrap interval ``[low, high]`` at ``level``."""

    difference: float
    low: float
    high: float
    level: float


def mcnemar(correct_a, correct_b) -> McNemar:
    """Returns McNemar's exact test of two models' correctness on the same images (bool arrays of
    equal length); the inputs are left unchanged.

    Example:
        >>> mcnemar([True, True, False, True], [True, False, False, False])
        McNemar(a_only=2, b_only=0, p_value=0.5)
    """
    a, b = _pair(correct_a, correct_b, "correct_a", "correct_b")
    a, b = a.astype(bool), b.astype(bool)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n, k = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return McNemar(0, 0, 1.0)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return McNemar(a_only, b_only, min(1.0, float(2 * tail / 2**n)))


def paired_bootstrap(a, b, *, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Returns ``mean(b - a)`` over paired values (one per image) and its percentile bootstrap
    interval; the inputs and the global RNG are left unchanged.

    Args:
        a, b: per-image values of the two models (bools count as 0/1), of equal length.
        resamples: bootstrap resamples, an int in [100, 100000].
        level: the interval's coverage, in (0, 1).
        seed: the private generator's seed.
    """
    x, y = _pair(a, b, "a", "b")
    check_int(resamples, "resamples", low=100, high=100_000)
    check_number(level, "level", low=0, high=1, low_open=True, high_open=True)
    check_seed(seed)
    d = y.astype(np.float64) - x.astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 250):  # in chunks: resamples x images can be large
        stop = min(resamples, start + 250)
        means[start:stop] = d[rng.integers(0, len(d), size=(stop - start, len(d)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(d.mean()), float(low), float(high), float(level))


def verdict(p_value: float, alpha: float = 0.05) -> str:
    """Returns a short sentence on a McNemar p-value: a difference beyond chance or not."""
    p_value = check_number(p_value, "p_value", low=0, high=1)
    alpha = check_number(alpha, "alpha", low=0, high=1, low_open=True, high_open=True)
    if p_value < alpha:
        return f"a difference beyond chance (McNemar p = {p_value:.3g} < {alpha:g})"
    return f"within noise (McNemar p = {p_value:.3g} >= {alpha:g})"


def _pair(a, b, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a).reshape(-1)
    y = np.asarray(b.detach().cpu().numpy() if hasattr(b, "detach") else b).reshape(-1)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"{name_a} and {name_b} must be non-empty and of equal length, got {len(x)} and {len(y)}"
        )
    for name, v in ((name_a, x), (name_b, y)):
        if v.dtype.kind not in "biuf" or not np.isfinite(v.astype(np.float64)).all():
            raise ValueError(f"{name} must hold finite numbers or bools, got {v.dtype}")
    return x, y


def paired(
    models: dict,
    data,
    *,
    reference: str = "baseline",
    split: str = "test",
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
):
    """Returns a DataFrame comparing each model with ``models[reference]``, image by image; nothing changes.

    One row per other model: ``accuracy``, ``difference`` (its accuracy minus the reference's, in
    points), ``only_reference`` and ``only_this`` (test images exactly one of the two gets right),
    ``mcnemar_p`` (McNemar's exact test), ``ci_low`` / ``ci_high`` (the paired bootstrap interval
    of the difference, in points) and ``verdict`` ("beyond chance" or "within noise" at p < 0.05).

    Args:
        models: {label: model}, e.g. the models ``mcv.engine.run`` returns.
        data: the DataBundle whose ``split`` all models are scored on.
        reference: the label of the model the others are compared with.
        split, resamples, level, seed: as in ``mcv.train.correct`` and :func:`paired_bootstrap`.
    """
    import pandas as pd

    from mcviz import train  # train imports nothing from here; deferred to keep this module light

    if not isinstance(models, dict) or not models:
        raise TypeError(f"models must be a non-empty dict {{label: model}}, got {shorten(models)}")
    if reference not in models:
        labels = shorten(list(models))
        raise ValueError(f"reference must be one of the labels {labels}, got {shorten(reference)}")
    base = train.correct(models[reference], data, split)
    rows = []
    for label, model in models.items():
        if label == reference:
            continue
        right = train.correct(model, data, split)
        test = mcnemar(right, base)
        interval = paired_bootstrap(base, right, resamples=resamples, level=level, seed=seed)  # right - base
        rows.append(
            {
                "label": label,
                "accuracy": float(right.double().mean()),
                "difference": 100 * interval.difference,
                "only_reference": test.b_only,
                "only_this": test.a_only,
                "mcnemar_p": test.p_value,
                "ci_low": 100 * interval.low,
                "ci_high": 100 * interval.high,
                "verdict": "beyond chance" if test.p_value < 0.05 else "within noise",
            }
        )
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


PAIRED_COLUMNS = [
    "label", "accuracy", "difference", "only_reference", "only_this", "mcnemar_p", "ci_low", "ci_high",
    "verdict",
]  # fmt: skip
