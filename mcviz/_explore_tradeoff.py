"""The budget explorer: a fraction slider that picks the best configuration of a measured table.

``budget_explorer`` is re-exported by ``mcv.widgets``; like the other explorers it returns an
:class:`mcviz.widgets.Explorer` and never displays it. Nothing is trained or measured: the
slider only re-reads the table with ``mcv.tradeoff.limit`` and ``mcv.tradeoff.select``, as
lesson 07 does, and redraws ``mcv.plots.pareto``.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mcviz import plots, tradeoff
from mcviz._checks import check_number, shorten
from mcviz._explorer import Explorer

FRACTION_MIN, FRACTION_MAX = 1e-3, 1.0  # from 1,000x smaller than the baseline up to the baseline
TRACES = ("configurations", "front", "selected", "budget")  # the figure always has these four


def budget_explorer(
    table: pd.DataFrame,
    *,
    cost: str = "size_bytes",
    metric: str = "accuracy",
    fraction: float = 0.1,
    baseline: str = "baseline",
) -> Explorer:
    """Returns an explorer of the best configuration under a budget: a fraction slider and a cost
    dropdown above the Pareto figure of ``table``, with the limit line and the chosen row's star.

    Each setting calls ``mcv.tradeoff.limit`` (``fraction`` of the ``baseline`` row's cost) and
    ``mcv.tradeoff.select`` and redraws ``mcv.plots.pareto``; when no row fits, the star is
    removed and the note says so and names the cheapest row. ``table`` is left unchanged.

    Args:
        table: a measurement table (``mcv.measure.table``, ``mcv.tradeoff.search(...).table``)
            with a ``label`` column, a row labelled ``baseline`` and the ``metric`` column.
        cost: the cost column shown first, one of ``mcv.tradeoff.COSTS`` present in ``table``
            (the dropdown offers every such column the baseline row has a value > 0 for).
        metric: the column to maximize, e.g. "accuracy".
        fraction: the starting limit relative to the baseline's cost, a number in [0.001, 1].
        baseline: the label of the reference row.

    Example:
        >>> result = mcv.tradeoff.search("lenet300", data, space=["fp16", "int8"])  # doctest: +SKIP
        >>> mcv.widgets.budget_explorer(result.table, fraction=0.3)  # doctest: +SKIP
    """
    _check_table(table, metric, baseline)
    costs = _costs(table, baseline)
    shown = ", ".join(costs) if costs else "none"
    if not isinstance(cost, str):
        raise TypeError(f"cost must be a cost column of the table ({shown}), got {shorten(cost)}")
    if cost not in costs:
        raise ValueError(f"cost must be a cost column of the table ({shown}), got {shorten(cost)}")
    fraction = check_number(fraction, "fraction", low=FRACTION_MIN, high=FRACTION_MAX)

    slider = widgets.FloatLogSlider(
        value=fraction,
        base=10,
        min=math.log10(FRACTION_MIN),
        max=math.log10(FRACTION_MAX),
        step=0.01,
        description="fraction",
        readout_format=".3f",
        continuous_update=False,
    )
    choose = widgets.Dropdown(options=list(costs), value=cost, description="cost")
    note = widgets.HTML()
    figure = go.FigureWidget(_figure(table, cost, metric, None, 1.0))

    def redraw(_change=None) -> None:
        c, f = choose.value, float(slider.value)
        lim = tradeoff.limit(table, cost=c, fraction=f, baseline=baseline)
        try:
            choice = tradeoff.select(table, cost=c, metric=metric, fraction=f, baseline=baseline)
            text = _note(table, c, metric, f, lim, choice, baseline)
        except tradeoff.NothingFits as e:  # the message names the cheapest row
            choice, text = None, f"Nothing fits: {e}."
        new = _figure(table, c, metric, choice, lim)
        with figure.batch_update():
            for old, trace in zip(figure.data, new.data, strict=True):
                spec = trace.to_plotly_json()
                spec.pop("type", None)
                spec.pop("uid", None)
                old.update(spec, overwrite=True)
            figure.update_layout(title=new.layout.title, xaxis=new.layout.xaxis, yaxis=new.layout.yaxis)
        note.value = text

    redraw()
    slider.observe(redraw, names="value")
    choose.observe(redraw, names="value")
    return Explorer({"fraction": slider, "cost": choose}, figure, note)


def _figure(table, cost, metric, choice, lim) -> go.Figure:
    """``plots.pareto`` with exactly the four traces of ``TRACES``: an empty star when nothing fits."""
    fig = plots.pareto(table, cost=cost, metric=metric, choice=choice, limit=lim)
    if choice is None:
        empty = go.Scatter(x=[], y=[], mode="markers", name="nothing fits", marker={"symbol": "star"})
        fig = go.Figure(data=[fig.data[0], fig.data[1], empty, fig.data[2]], layout=fig.layout)
    return fig


def _note(table, cost, metric, fraction, lim, choice, baseline) -> str:
    base = table[table["label"] == baseline].iloc[0]
    b_cost, b_metric = float(base[cost]), float(base[metric])
    c, m = float(choice[cost]), float(choice[metric])
    ratio = f"{b_cost / c:.1f}x smaller" if c > 0 else "free"
    return (
        f"Limit: {fraction:.3f} x the baseline's {cost} ({_fmt(b_cost)}) = {_fmt(lim)}. "
        f"Best {metric} within it: <b>{choice['label']}</b>, {metric} {m:.4f} "
        f"({100 * (m - b_metric):+.1f} points vs the baseline), {cost} {_fmt(c)} ({ratio})."
    )


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.4g}"


def _costs(table: pd.DataFrame, baseline: str) -> list[str]:
    """The columns of ``tradeoff.COSTS`` in ``table`` whose baseline value is a number > 0."""
    base = table[table["label"] == baseline].iloc[0]
    out = []
    for c in tradeoff.COSTS:
        if c in table.columns:
            value = pd.to_numeric(pd.Series([base[c]]), errors="coerce").iloc[0]
            if np.isfinite(value) and value > 0:
                out.append(c)
    return out


def _check_table(table, metric, baseline) -> None:
    wanted = "table must be a non-empty measurement table (mcv.measure.table)"
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{wanted}, got {type(table).__name__}")
    if not len(table):
        raise ValueError(f"{wanted}, got an empty DataFrame")
    for name, value in (("metric", metric), ("baseline", baseline)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, got {shorten(value)}")
    for column in ("label", metric):
        if column not in table.columns:
            raise ValueError(
                f"the table has no column {shorten(column)}; its columns: {shorten(list(table.columns), 200)}"
            )
    if not (table["label"] == baseline).any():
        raise ValueError(
            f"baseline must name the table's reference row, got {shorten(baseline)}: no row is labelled so"
        )
