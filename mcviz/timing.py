"""Comparing latencies fairly: interleaved rounds, the quietest round, a verdict against the spread.

One timing of one model says little: another program can slow any run down. The lessons (and
anyone comparing two models) follow one protocol, kept here so that every comparison is made the
same way:

- :func:`interleaved` times every model in ``rounds`` rounds, alternating the models inside each
  round (a busy moment hits all of them), and keeps each model's quietest round (the lowest
  median), with its interquartile range and the thread count;
- :func:`speedup` turns two timed measurements into ``reference time / other time`` and says
  whether the gap is clear: larger than the two spreads (IQRs) together.

Latency is machine-dependent: compare only ratios measured in the same run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
from torch import nn

from mcviz import measure
from mcviz._checks import check_int

__all__ = ["Speedup", "interleaved", "speedup"]


@dataclass(frozen=True)
class Speedup:
    """``ratio`` = reference time / other time (above 1: the other model is faster); ``clear`` when
    the gap exceeds both spreads together; ``verdict`` says it in words."""

    ratio: float
    clear: bool
    verdict: str

    def __str__(self) -> str:
        return f"{self.ratio:.2f}x ({self.verdict})"


def speedup(reference, other) -> Speedup:
    """Returns how much faster ``other`` ran than ``reference``; both are left unchanged.

    Each is a timed ``mcv.measure.Measurement`` (``latency=True``) or a row of a measurement
    table (a pandas Series, or a tuple from ``DataFrame.itertuples``), ideally timed in the same
    run with the same batch size and threads. The gap is "clear" when ``|t_ref - t_other|`` is
    larger than the sum of the two interquartile ranges; otherwise the verdict is "no clear
    difference".

    Example:
        >>> a = measure.Measurement("a", 1, 1, 0.0, 32.0, 4, 4, 4, 1, None, 2.0, 0.1, 8, 1)
        >>> b = measure.Measurement("b", 1, 1, 0.0, 32.0, 4, 4, 4, 1, None, 1.0, 0.1, 8, 1)
        >>> str(speedup(a, b))
        '2.00x (faster)'
    """
    (t_ref, iqr_ref), (t_other, iqr_other) = _timing("reference", reference), _timing("other", other)
    ratio = t_ref / t_other
    clear = abs(t_ref - t_other) > iqr_ref + iqr_other
    verdict = ("faster" if ratio > 1 else "slower") if clear else "no clear difference"
    return Speedup(ratio, clear, verdict)


def _timing(name: str, m) -> tuple[float, float]:
    get = m.get if isinstance(m, pd.Series) else lambda key: getattr(m, key, None)
    t, iqr, label = get("latency_ms"), get("latency_iqr_ms"), get("label")
    if label is None:
        raise TypeError(f"{name} must be a mcv.measure.Measurement or a table row, got {type(m).__name__}")
    if t is None or iqr is None or pd.isna(t) or pd.isna(iqr):
        raise ValueError(f"{name} {label!r} has no latency: measure it with latency=True")
    if not t > 0:
        raise ValueError(f"{name} {label!r} has latency_ms {t!r}; it must be > 0")
    return float(t), float(iqr)


def interleaved(
    models: Mapping[str, nn.Module],
    data=None,
    *,
    rounds: int = 3,
    batch_size: int = 256,
    repeats: int = 20,
    warmup: int = 3,
    input_shape: tuple[int, ...] | None = None,
) -> pd.DataFrame:
    """Returns one timed ``mcv.measure`` row per model: its quietest of ``rounds`` interleaved rounds.

    The models are left unchanged. In each round every model is measured once
    (``mcv.measure.model(..., latency=True)`` with ``batch_size``, ``repeats`` and ``warmup``), in
    the order given; each model keeps the round with the lowest median latency. Rows come in the
    order of ``models`` (labels are its keys).

    Args:
        models: ``{label: model}``, at least one.
        data: a DataBundle (accuracy and the timing inputs), or None with ``input_shape``.
        rounds: interleaved rounds, an int in [1, 100].
        batch_size, repeats, warmup, input_shape: as in ``mcv.measure.model``.
    """
    if not isinstance(models, Mapping) or not models:
        raise TypeError(f"models must be a non-empty dict {{label: model}}, got {type(models).__name__}")
    check_int(rounds, "rounds", low=1, high=100)
    best: dict[str, measure.Measurement] = {}
    for _ in range(rounds):
        for label, model in models.items():
            row = measure.model(model, data, label=str(label), latency=True, batch_size=batch_size,
                                repeats=repeats, warmup=warmup, input_shape=input_shape)  # fmt: skip
            if label not in best or row.latency_ms < best[label].latency_ms:
                best[label] = row
    return measure.table(best[label] for label in models)
