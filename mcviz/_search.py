"""Private helpers of ``mcv.tradeoff``: the penalized training of ``lagrangian`` and argument checks.

- ``train_penalized`` runs ``mcv.train.fit`` with ``lambda * penalty(weights)`` as its regularizer;
  ``threshold_prune`` zeroes the weights below a fraction of their layer's largest.
- ``one_method``: the checked method of a one-method spec, for ``grid`` (its other checks are
  ``mcviz._checks``'); the checks of a measurement table and of a cost limit, for ``decide`` and
  the functions it is made of (``check_table``, ``check_cost``, ``numbers``, ``check_limit``).

The search cache that lived here is ``mcv.engine``'s row cache now.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
from torch import nn

from mcviz import measure, prune, registry, train
from mcviz._checks import check_number, shorten

COSTS = tuple(measure.COSTS)

PENALTIES = ("l1", "l0")
L0_EPS = 1e-4  # w^2 / (w^2 + eps) is ~1 for |w| >> 0.01 and ~0 for |w| << 0.01


# ---------------------------------------------------------------- Lagrangian training


def weights(model: nn.Module) -> list[torch.Tensor]:
    """Returns the weight tensors of the Linear / Conv2d layers (biases are not penalized)."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def penalty(model: nn.Module, kind: str) -> torch.Tensor:
    """Returns the mean penalty over all Linear / Conv2d weights: ``|w|`` ("l1") or the smooth
    nonzero count ``w^2 / (w^2 + eps)`` ("l0"); a mean, so lambda does not scale with model size."""
    w = torch.cat([t.reshape(-1) for t in weights(model)])
    if kind == "l1":
        return w.abs().mean()
    return (w * w / (w * w + L0_EPS)).mean()


def train_penalized(
    model: nn.Module, data, *, lam: float, kind: str, epochs: int, lr: float, seed: int, batch_size: int = 64
) -> None:
    """Trains ``model`` in place with ``mcv.train.fit`` on cross-entropy + ``lam * penalty``."""
    regularizer = (lambda m: lam * penalty(m, kind)) if lam else None
    train.fit(model, data, epochs=epochs, lr=lr, seed=seed, batch_size=batch_size, progress=False,
              regularizer=regularizer)  # fmt: skip


def threshold_prune(model: nn.Module, threshold: float) -> nn.Module:
    """Returns a copy of ``model`` with every weight ``|w| < threshold * max|w|`` of its layer
    pruned (``mcv.prune.magnitude`` with per-layer sparsities, so storage is counted sparse);
    ``model`` is left unchanged. Layers with no weight under the threshold stay dense."""
    plan = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            w = m.weight.detach().abs()
            below = int((w < threshold * w.max()).sum())
            if below:
                plan[name] = below / w.numel()
    if not plan:
        return prune.finalize(model)  # a plain copy
    return prune.magnitude(model, plan, scope="layer")


# ---------------------------------------------------------------- arguments of grid


def one_method(name, spec, option) -> tuple[str, str]:
    """Returns ``(method, other options)`` of a one-method spec whose method takes ``option``."""
    takes = sorted(
        m for m, cls in registry.METHODS.items() if option in {f.name for f in dataclasses.fields(cls)}
    )
    if not isinstance(spec, str):
        raise TypeError(f"{name} must be one method spec such as {takes[0]!r}, got {shorten(spec)}")
    if "+" in spec:
        raise ValueError(f"{name} must be one method spec such as {takes[0]!r}, got {shorten(spec)}")
    (config,) = registry.parse(spec)
    method, _, rest = spec.partition(":")
    if option not in {f.name for f in dataclasses.fields(config)}:
        raise ValueError(
            f"{name} method {config.method!r} takes no {option} option; choose one of {', '.join(takes)}"
        )
    if any(item.partition("=")[0].strip() == option for item in rest.split(",")):
        raise ValueError(f"{name} spec {spec!r} sets {option}; grid sets it, leave it out")
    return method.strip(), rest.strip()


# ---------------------------------------------------------------- checks of decide (and its parts) and search


def check_table(df) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"the table must be a pandas DataFrame such as mcv.measure.table(...), got {type(df).__name__}"
        )
    if not len(df):
        raise ValueError("the table is empty; it needs at least one row")


def columns(df) -> str:
    return ", ".join(map(str, df.columns))


def check_cost(df, cost) -> None:
    if not isinstance(cost, str) or cost not in COSTS:
        error = ValueError if isinstance(cost, str) else TypeError
        raise error(f"unknown cost column {shorten(cost)}; choose one of {', '.join(COSTS)}")
    if df is not None and cost not in df.columns:
        raise ValueError(f"the table has no column {cost!r}; its columns: {columns(df)}")


def numbers(df, cost, metric) -> tuple[np.ndarray, np.ndarray]:
    """Returns the ``cost`` and ``metric`` columns of the table ``df`` as floats, after checking both."""
    check_table(df)
    check_cost(df, cost)
    if not isinstance(metric, str) or metric not in df.columns:
        error = ValueError if isinstance(metric, str) else TypeError
        raise error(f"the table has no column {shorten(metric)}; its columns: {columns(df)}")
    return _column(df, cost), _column(df, metric)


def _column(df, col) -> np.ndarray:
    """Returns ``df[col]`` as floats (missing values as NaN); raises ValueError naming the first row
    whose value is there but is not a finite number (a tampered or broken row is never ranked)."""
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values) & df[col].notna().to_numpy())
    if len(bad):
        i = bad[0]
        raise ValueError(
            f"the table's {col} column must hold finite numbers, got {shorten(df[col].iloc[i])} "
            f"in row {row_name(df, i)}"
        )
    return values


def check_limit(cost, budget, fraction, *, required: bool = True) -> None:
    if budget is not None and fraction is not None:
        raise ValueError(
            f"give either budget or fraction, not both (budget={shorten(budget)}, "
            f"fraction={shorten(fraction)})"
        )
    if budget is None and fraction is None:
        if required:
            raise ValueError(f"give a budget (absolute {cost} limit) or a fraction of the baseline's {cost}")
        return
    name, value = ("budget", budget) if budget is not None else ("fraction", fraction)
    check_number(value, name, low=0, low_open=True)


def row_name(df, i: int) -> str:
    """Returns how a message names row ``i`` of ``df``: its label, else its index."""
    return repr(df["label"].iloc[i]) if "label" in df.columns else f"row {df.index[i]!r}"
