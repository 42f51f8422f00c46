"""The optimization view of compression: the best accuracy of compressed weights W' under a budget.

Compression is the constrained problem "maximize accuracy subject to cost(W') <= budget", where
the cost is a column of ``mcv.measure.table`` (:data:`COSTS`, the names of ``mcv.measure.COSTS``:
bytes, nonzeros, MACs, latency).

- :func:`pareto` keeps the configurations no other one beats on both cost and accuracy,
- :func:`limit` turns a ``budget`` (absolute) or a ``fraction`` (of the baseline's cost) into a
  number, and :func:`select` picks the best row within it; :func:`decide` does all three,
- :func:`lagrangian` solves the relaxation "loss + lambda * penalty(W)" for several lambdas and
  measures each pruned result: a front traced by lambda,
- :func:`grid` writes method specs (kd -> prune -> finetune -> quantize) and :func:`search`
  applies them to a cached baseline with ``mcv.engine.run`` (every measured row is cached), then
  decides.

Every function leaves its input table unchanged. ``mcv.plots.pareto`` draws the result.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pandas as pd
from torch import nn

from mcviz import _search, engine, measure, models, registry, train
from mcviz._checks import (
    BOUNDS,
    check_bool,
    check_choice,
    check_data,
    check_int,
    check_list,
    check_number,
    check_option,
    check_seed,
    shorten,
)
from mcviz.data import DataBundle

__all__ = [
    "COSTS",
    "NothingFits",
    "SearchResult",
    "decide",
    "grid",
    "lagrangian",
    "limit",
    "pareto",
    "search",
    "select",
]

COSTS = _search.COSTS  # the cost column names, in mcv.measure.COSTS's order
PENALTIES = _search.PENALTIES


class NothingFits(ValueError):
    """No configuration meets the budget (a ValueError; reports turn it into a parameter error)."""



def pareto(df: pd.DataFrame, *, cost: str = "size_bytes", metric: str = "accuracy") -> pd.DataFrame:
    """Returns the rows of ``df`` that no other row dominates, sorted by ``cost``; ``df`` is unchanged.

    Lower ``cost`` and higher ``metric`` are better; a row is dominated when another has cost <=
    and metric >= with at least one strict. Rows with a missing cost or metric are dropped; of
    rows equal in both cost and metric the first is kept. The original index is kept.

    Example:
        >>> front = pareto(table, cost="macs")  # doctest: +SKIP
    """
    c, m = _search.numbers(df, cost, metric)
    ok = np.flatnonzero(~(np.isnan(c) | np.isnan(m)))
    if not len(ok):
        raise ValueError(f"no row has both a {cost} and a {metric} value; pareto needs at least one")
    order = ok[np.lexsort((-m[ok], c[ok]))]  # cost up, then metric down; stable, so ties keep row order
    keep, best = [], -math.inf
    for i in order:
        if m[i] > best:
            keep.append(i)
            best = m[i]
    return df.iloc[keep]


def limit(
    df: pd.DataFrame,
    *,
    cost: str = "size_bytes",
    budget: float | None = None,
    fraction: float | None = None,
    baseline: str = "baseline",
) -> float:
    """Returns the cost limit: ``budget`` itself, or ``fraction`` times the baseline row's cost.

    ``df`` is unchanged. Give exactly one of ``budget`` (an absolute limit in the units of
    ``cost``) and ``fraction`` (> 0, relative to the row labelled ``baseline``; above 1 admits
    models bigger than the baseline).
    """
    _search.check_table(df)
    _search.check_cost(df, cost)
    _search.check_limit(cost, budget, fraction)
    if budget is not None:
        return float(budget)
    if "label" not in df.columns:
        raise ValueError(f"the table has no column 'label'; its columns: {_search.columns(df)}")
    rows = df[df["label"] == baseline]
    if not len(rows):
        labels = ", ".join(repr(v) for v in df["label"].tolist())
        raise ValueError(
            f"no row is labelled {baseline!r} (the baseline of fraction={fraction!r}); labels: {labels}"
        )
    value = float(pd.to_numeric(rows[cost], errors="coerce").iloc[0])
    if not value > 0:
        raise ValueError(f"the baseline row {baseline!r} has {cost} {value!r}; fraction needs a number > 0")
    return float(fraction) * value


def select(
    df: pd.DataFrame,
    *,
    cost: str = "size_bytes",
    metric: str = "accuracy",
    budget: float | None = None,
    fraction: float | None = None,
    baseline: str = "baseline",
) -> pd.Series:
    """Returns the row with the best ``metric`` among those with ``cost`` <= the limit; ``df`` is unchanged.

    The limit comes from :func:`limit`. Ties go to the lower cost, then to the first row.

    Raises:
        ValueError: bad arguments. NothingFits (a ValueError): no row fits; the message names
            the cheapest row.
    """
    lim = limit(df, cost=cost, budget=budget, fraction=fraction, baseline=baseline)
    c, m = _search.numbers(df, cost, metric)
    fits = np.flatnonzero((c <= lim) & ~np.isnan(m))
    if not len(fits):
        given = f"budget={budget!r}" if budget is not None else f"fraction={fraction!r} of {baseline!r}"
        priced = np.flatnonzero(~np.isnan(c) & ~np.isnan(m))  # rows that could be chosen
        cheapest = ""
        if len(priced):
            i = priced[np.argmin(c[priced])]
            cheapest = f"; the cheapest is {_search.row_name(df, i)} with {cost} {_fmt(c[i])}"
        raise NothingFits(f"no configuration has {cost} <= {_fmt(lim)} ({given}){cheapest}")
    best = fits[np.lexsort((fits, c[fits], -m[fits]))[0]]
    return df.iloc[best]


@dataclasses.dataclass(frozen=True, eq=False)
class SearchResult:
    """What :func:`decide` (and so :func:`search`) found: every row, the Pareto front, the choice
    under the limit."""

    table: pd.DataFrame
    front: pd.DataFrame
    choice: pd.Series | None
    limit: float | None

    def __repr__(self) -> str:
        choice = None if self.choice is None else self.choice["label"]
        return (
            f"SearchResult({len(self.table)} rows, {len(self.front)} on the front, "
            f"choice={choice!r}, limit={self.limit!r})"
        )


def decide(
    df: pd.DataFrame,
    *,
    cost: str = "size_bytes",
    metric: str = "accuracy",
    budget: float | None = None,
    fraction: float | None = None,
    baseline: str = "baseline",
) -> SearchResult:
    """Returns the Pareto front of ``df`` and, under a limit, the limit and the best row; ``df`` is
    unchanged.

    The front is :func:`pareto`'s; with ``budget`` or ``fraction`` the limit is :func:`limit`'s and
    the choice :func:`select`'s, else both are None. ``result.table`` is ``df`` itself.

    Raises:
        ValueError: bad arguments. NothingFits (a ValueError): no row fits the limit.

    Example:
        >>> d = decide(table, fraction=0.3)  # doctest: +SKIP
        >>> mcv.plots.pareto(table, front=d.front, choice=d.choice, limit=d.limit)  # doctest: +SKIP
    """
    if budget is None and fraction is None:
        return SearchResult(df, pareto(df, cost=cost, metric=metric), None, None)
    limits = {"cost": cost, "budget": budget, "fraction": fraction, "baseline": baseline}
    lim = limit(df, **limits)
    choice = select(df, metric=metric, **limits)
    return SearchResult(df, pareto(df, cost=cost, metric=metric), choice, lim)


def lagrangian(
    model_name: str,
    data: DataBundle,
    *,
    lambdas,
    penalty: str = "l1",
    epochs: int = 5,
    lr: float = 1e-3,
    seed: int = 0,
    threshold: float = 1e-3,
    model_options: dict | None = None,
    return_models: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, dict[str, nn.Module]]:
    """Returns one measured row per lambda of the Lagrangian relaxation of the budget constraint.

    ``data`` is unchanged. For each lambda a fresh ``models.build(model_name, seed=seed)`` (the
    same initial weights every time) is trained ``epochs`` epochs with Adam on cross-entropy +
    ``lambda * penalty``, where the penalty is the mean over all Linear / Conv2d weights of
    ``|w|`` ("l1") or of the smooth nonzero count ``w^2 / (w^2 + 1e-4)`` ("l0"). Then weights
    with ``|w| < threshold * max|w|`` of their layer are pruned (layers with none stay dense)
    and the model is measured, labelled ``f"lambda={lam:g}"``. Larger lambdas trade accuracy for
    fewer nonzeros: the rows trace a front by lambda.

    Args:
        model_name: a name of ``mcv.models.NAMES``.
        data: a DataBundle.
        lambdas: a non-empty list of numbers >= 0 (0 is the unpenalized model).
        penalty: "l1" or "l0".
        epochs, lr, seed: as in ``mcv.train.fit``.
        threshold: in [0, 1), relative to each layer's largest weight.
        model_options: keyword options of ``models.build`` (e.g. ``{"hidden": (64,)}``).
        return_models: also return ``{label: pruned model}``.

    Returns:
        the ``mcv.measure.table`` with the columns "lambda" and "penalty" added, or
        ``(table, models)`` when ``return_models`` is true.
    """
    models.check_name(model_name)
    check_data(data)
    lams = check_list(lambdas, "lambdas", lambda v, n: check_number(v, n, low=0), what="numbers >= 0")
    labels = [f"{v:g}" for v in lams]
    repeated = [v for i, v in enumerate(labels) if v in labels[:i]]
    if repeated:
        raise ValueError(f"lambdas holds {repeated[0]} more than once; each lambda is one row")
    check_choice(penalty, "penalty", PENALTIES)
    check_option("epochs", epochs)
    check_seed(seed)
    check_option("lr", lr)
    check_number(threshold, "threshold", low=0, high=1, high_open=True)
    if model_options is not None and not isinstance(model_options, dict):
        raise TypeError(
            f"model_options must be a dict of models.build options or None, got {shorten(model_options)}"
        )
    check_bool(return_models, "return_models")
    options = dict(model_options or {})
    build = lambda: models.build(  # noqa: E731
        model_name, input_shape=data.input_shape, num_classes=data.num_classes, seed=seed, **options
    )
    build()  # a bad name or option fails here, before any training
    out: dict[str, nn.Module] = {}
    for lam in lams:
        model = build()
        _search.train_penalized(model, data, lam=lam, kind=penalty, epochs=epochs, lr=lr, seed=seed)
        out[f"lambda={lam:g}"] = _search.threshold_prune(model, threshold)
    table = measure.table(measure.model(m, data, label=label) for label, m in out.items())
    table["lambda"] = [float(lam) for lam in lams]
    table["penalty"] = penalty
    return (table, out) if return_models else table


def grid(
    *,
    sparsities=(0.0,),
    bits=(32,),
    kd=(False,),
    prune: str = "magnitude:scope=global",
    quantize: str = "kmeans",
    finetune_epochs: int = 0,
    kd_options: str = "",
) -> list[str]:
    """Returns the method spec of every combination of kd x sparsity x bits, in that order.

    Nothing is trained. Within a spec the steps run in Deep Compression order: kd (a student is
    distilled from the model), prune (``prune`` with ``sparsity=``), finetune (after pruning,
    when ``finetune_epochs`` > 0), quantize (``quantize`` with ``bits=``). Sparsity 0, bits 32
    and kd False each leave their step out; the combination with no step is omitted (the
    baseline is always searched). Every spec parses with ``mcv.registry.parse``.

    Example:
        >>> grid(sparsities=(0.9,), bits=(4,))
        ['magnitude:sparsity=0.9,scope=global + kmeans:bits=4']
    """
    fraction = lambda v, n: check_number(v, n, low=0, high=1)  # noqa: E731
    sparsities = list(dict.fromkeys(check_list(sparsities, "sparsities", fraction, what="numbers in [0, 1]")))
    bits = list(dict.fromkeys(check_list(bits, "bits", check_int, what="ints (32: no quantization)")))
    kd = list(dict.fromkeys(check_list(kd, "kd", check_bool, what="True / False values")))
    prune_name, prune_rest = _search.one_method("prune", prune, "sparsity")
    quant_name, quant_rest = _search.one_method("quantize", quantize, "bits")
    check_int(finetune_epochs, "finetune_epochs", bounds=BOUNDS["fine_tune_epochs"])
    if not isinstance(kd_options, str):
        raise TypeError(
            f"kd_options must be a str of options such as 'student=mlp,epochs=2', got {shorten(kd_options)}"
        )
    specs = []
    for distil, s, b in itertools.product(kd, sparsities, bits):
        steps = []
        if distil:
            steps.append("kd" + (f":{kd_options.strip()}" if kd_options.strip() else ""))
        if s > 0:
            steps.append(f"{prune_name}:sparsity={float(s)!r}" + (f",{prune_rest}" if prune_rest else ""))
            if finetune_epochs:
                steps.append(f"finetune:epochs={finetune_epochs}")
        if b != 32:
            steps.append(f"{quant_name}:bits={b}" + (f",{quant_rest}" if quant_rest else ""))
        if steps:
            specs.append(" + ".join(steps))
    for spec in specs:
        registry.parse(spec)  # every spec round-trips; a bad value fails here, before any training
    return specs


def search(
    model_name: str,
    data: DataBundle,
    *,
    space,
    cost: str = "size_bytes",
    metric: str = "accuracy",
    budget: float | None = None,
    fraction: float | None = None,
    epochs: int = 5,
    seed: int = 0,
    latency: bool = False,
    progress: bool = False,
) -> SearchResult:
    """Returns every configuration of ``space`` applied to the cached baseline, measured, with its
    Pareto front and the best row under the limit; ``data`` is unchanged.

    The baseline is ``mcv.train.baseline(model_name, data, epochs=epochs, seed=seed)``, the row
    labelled "baseline" (spec ""). Each spec is applied and measured with ``label=spec`` by
    ``mcv.engine.run`` (chains that start alike share their first steps), then :func:`decide`
    finds the front and the choice. Every spec, the cost, the metric and budget / fraction are
    checked before anything is trained; that nothing fits is only known at the end (the rows
    are cached by then, so retrying with another limit is instant).

    Each row is cached as JSON in ``mcv.train.cache_dir()`` under the sha256 of the model, data
    fingerprint, epochs, seed, the spec's configs, torch version and cache formats, so a repeated
    call trains and compresses nothing (not even loading the baseline). ``latency=True`` bypasses
    the cache (timings are not reproducible): every configuration is compressed, measured and
    timed again.

    Args:
        model_name: a name of ``mcv.models.NAMES``.
        data: a DataBundle.
        space: a list of method specs (``grid`` writes them); an empty list searches the
            baseline alone (is it within the budget?).
        cost, metric: columns of the measurement table (:data:`COSTS` for ``cost``).
        budget, fraction: at most one; with neither, ``choice`` and ``limit`` are None.
        epochs, seed: of the baseline.
        latency: also time every model (needed for ``cost="latency_ms"``).
        progress: show a progress bar over the configurations.
    """
    check_data(data)
    models.check_name(model_name)
    space = check_list(space, "space", what="method specs such as ['fp16']", empty=True)
    for spec in space:
        registry.parse(spec)
    repeated = [s for i, s in enumerate(space) if s in space[:i]]
    if repeated:
        raise ValueError(f"space names {repeated[0]!r} more than once; each spec is one row")
    _search.check_cost(None, cost)
    if not isinstance(metric, str) or metric not in measure.FIELDS[1:]:
        error = ValueError if isinstance(metric, str) else TypeError
        raise error(
            f"unknown metric {shorten(metric)}; choose a measurement column: {', '.join(measure.FIELDS[1:])}"
        )
    check_bool(latency, "latency")
    check_bool(progress, "progress")
    if cost in measure.TIMING_FIELDS and not latency:
        raise ValueError(f"cost {cost!r} needs latency=True (timings are measured only when asked)")
    _search.check_limit(cost, budget, fraction, required=False)
    check_option("epochs", epochs)
    check_seed(seed)

    load = lambda: train.baseline(model_name, data, epochs=epochs, seed=seed, progress=False)  # noqa: E731
    names = {"model": model_name, "epochs": epochs, "seed": seed}  # with the data: what decides the baseline
    table = engine.run(load, data, ["", *space], cache=names, latency=latency, progress=progress).table
    return decide(table, cost=cost, metric=metric, budget=budget, fraction=fraction)


# ---------------------------------------------------------------- formatting (the checks are in _search)


def _fmt(x: float) -> str:
    """An amount for a message: thousands separated and no exponent (71,821.2 not 7.182e+04)."""
    if float(x).is_integer():
        return f"{x:,.0f}"
    return f"{x:,.1f}" if abs(x) >= 1000 else f"{x:,.6g}"

