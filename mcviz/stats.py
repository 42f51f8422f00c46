"""Paired statistics for two models scored on the same test images.

Two models evaluated on the same test split are *paired*: each image is right or wrong for both.
The accuracy difference is then decided by the images on which they disagree, and a paired test
uses exactly those, which makes "within noise" a computed statement instead of an eyeball:

- :func:`mcnemar`: McNemar's exact test. Of the ``n`` images exactly one model gets right,
  ``only_a`` went to model A; under "both models are equally accurate" ``only_a`` follows a
  Binomial(n, 1/2). The two-sided p-value is ``min(1, 2 * P(X <= min(only_a, only_b)))``.
- :func:`paired_bootstrap`: a percentile bootstrap interval for ``accuracy(A) - accuracy(B)``,
  resampling whole images (both models' results for an image move together).

Both take boolean vectors of per-image correctness, e.g. from ``mcv.train.correct(model, data)``;
:func:`paired` (also ``mcv.measure.paired``) runs both for a dict of models against a reference,
the table the compare report shows.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from mcviz._checks import check_int, check_number, check_seed, shorten


class Interval(NamedTuple):
    """``difference`` = accuracy(A) - accuracy(B) on the given images; ``low``, ``high``: the interval."""

    difference: float
    low: float
    high: float


def mcnemar(correct_a, correct_b) -> tuple[float, dict[str, int]]:
    """Returns ``(p_value, counts)`` of McNemar's exact two-sided test; the inputs are unchanged.

    Args:
        correct_a, correct_b: per-image correctness of two models on the SAME images, in the same
            order (bool tensors, arrays or lists of equal length, at least one image).

    Returns:
        ``p_value`` in (0, 1] (1.0 when the models never disagree) and ``counts`` with the keys
        ``both``, ``only_a``, ``only_b``, ``neither`` (numbers of images).

    Example:
        >>> mcnemar([True, True, False, True], [True, False, False, False])
        (0.5, {'both': 1, 'only_a': 2, 'only_b': 0, 'neither': 1})
    """
    a, b = _pair(correct_a, correct_b)
    counts = {
        "both": int((a & b).sum()),
        "only_a": int((a & ~b).sum()),
        "only_b": int((~a & b).sum()),
        "neither": int((~a & ~b).sum()),
    }
    n, k = counts["only_a"] + counts["only_b"], min(counts["only_a"], counts["only_b"])
    if n == 0:
        return 1.0, counts
    tail = sum(math.comb(n, i) for i in range(k + 1))  # exact integers; one division at the end
    return min(1.0, 2 * tail / 2**n), counts


def paired_bootstrap(
    correct_a, correct_b, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> Interval:
    """Returns the percentile bootstrap interval of accuracy(A) - accuracy(B); the inputs are unchanged.

    Each of ``resamples`` resamples draws as many images as there are, with replacement, and keeps
    each drawn image's pair of results together. The same inputs, ``resamples`` and ``seed`` give
    the same interval (a private generator; the global RNG is untouched).

    Args:
        correct_a, correct_b: per-image correctness of two models on the same images, same order.
        resamples: number of resamples, in [100, 100000].
        level: coverage of the interval, in (0, 1), e.g. 0.95.
        seed: seed of the resampling.
    """
    a, b = _pair(correct_a, correct_b)
    resamples = check_int(resamples, "resamples", low=100, high=100_000)
    level = check_number(level, "level", low=0, high=1, low_open=True, high_open=True)
    seed = check_seed(seed)
    diff = a.double() - b.double()  # per image: +1, 0 or -1
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(diff), (resamples, len(diff)), generator=generator)
    means = diff[picks].mean(dim=1)
    tail = (1 - level) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return Interval(float(diff.mean()), low, high)


def verdict(p_value: float, alpha: float = 0.05) -> str:
    """Returns a short sentence on a McNemar p-value: a difference beyond chance or not."""
    p_value = check_number(p_value, "p_value", low=0, high=1)
    alpha = check_number(alpha, "alpha", low=0, high=1, low_open=True, high_open=True)
    if p_value < alpha:
        return f"a difference beyond chance (McNemar p = {p_value:.3g} < {alpha:g})"
    return f"within noise (McNemar p = {p_value:.3g} >= {alpha:g})"


def _pair(correct_a, correct_b) -> tuple[torch.Tensor, torch.Tensor]:
    return _bools(correct_a, "correct_a"), _bools(correct_b, "correct_b", like=correct_a)


def _bools(value, name: str, like=None) -> torch.Tensor:
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a vector of bools (one per image), got {shorten(value)}") from None
    if t.dtype != torch.bool and t.numel() > 0:
        raise TypeError(f"{name} must be a vector of bools (one per image), got dtype {t.dtype}")
    if t.ndim != 1 or len(t) == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D vector (one entry per image), got shape {tuple(t.shape)}"
        )
    if like is not None and len(t) != len(torch.as_tensor(like)):
        raise ValueError(
            f"{name} must score the same images as correct_a: got {len(t)} entries, correct_a has "
            f"{len(torch.as_tensor(like))}"
        )
    return t


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
        p_value, counts = mcnemar(right, base)
        interval = paired_bootstrap(right, base, resamples=resamples, level=level, seed=seed)
        rows.append(
            {
                "label": label,
                "accuracy": float(right.double().mean()),
                "difference": 100 * interval.difference,
                "only_reference": counts["only_b"],
                "only_this": counts["only_a"],
                "mcnemar_p": p_value,
                "ci_low": 100 * interval.low,
                "ci_high": 100 * interval.high,
                "verdict": "beyond chance" if p_value < 0.05 else "within noise",
            }
        )
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


PAIRED_COLUMNS = [
    "label", "accuracy", "difference", "only_reference", "only_this", "mcnemar_p", "ci_low", "ci_high",
    "verdict",
]  # fmt: skip
