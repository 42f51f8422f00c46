"""Plotly figure builders: a DataFrame in, column names as arguments, a ``go.Figure`` out.

No function here shows its figure; the notebook displays what it returns. Tests assert on
``fig.data``, never on pictures.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mcviz import measure
from mcviz._checks import check_bool, check_number


def history(df: pd.DataFrame, *, title: str = "Training history") -> go.Figure:
    """Returns loss (left) and train / val accuracy (right) per epoch from ``mcv.train.fit``."""
    _need(df, ["epoch", "loss", "train_accuracy", "val_accuracy"], "history")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    fig.add_trace(go.Scatter(x=df["epoch"], y=df["loss"], mode="lines+markers", name="loss"),
                  row=1, col=1)
    for col, name in (("train_accuracy", "train"), ("val_accuracy", "val")):
        fig.add_trace(go.Scatter(x=df["epoch"], y=df[col], mode="lines+markers", name=name),
                      row=1, col=2)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_layout(title=title, height=350)
    return fig


def accuracy_vs_size(table: pd.DataFrame, *, cost: str = "size_bytes", metric: str = "accuracy",
                     log_x: bool = True, title: str | None = None) -> go.Figure:
    """Returns a scatter of ``metric`` against ``cost``, one labelled point per row of a
    ``mcv.measure.table``."""
    _need(table, ["label", cost, metric], "accuracy_vs_size")
    check_bool(log_x, "log_x")
    fig = go.Figure(go.Scatter(
        x=table[cost], y=table[metric], mode="markers+text", text=table["label"],
        textposition="top center", marker={"size": 12},
        hovertemplate="%{text}<br>" + cost + "=%{x}<br>" + metric + "=%{y:.4f}<extra></extra>"))
    fig.update_layout(title=title or f"{metric} vs {cost}", height=400,
                      xaxis_title=_title(cost), yaxis_title=metric)
    if log_x:
        fig.update_xaxes(type="log")
    values = pd.to_numeric(table[metric], errors="coerce").dropna()
    if len(values):  # pad around the data so equal accuracies do not stretch the axis to [-0.1, 1.9]
        lo, hi = float(values.min()), float(values.max())
        pad = max(0.01, 0.15 * (hi - lo))
        fig.update_yaxes(range=[lo - pad, hi + pad])
    return fig


def layers(layer_df: pd.DataFrame, *, value: str = "params", title: str | None = None) -> go.Figure:
    """Returns one bar per layer of ``value`` from ``mcv.measure.layers``."""
    _need(layer_df, ["layer", value], "layers")
    fig = go.Figure(go.Bar(x=layer_df["layer"], y=layer_df[value], name=value,
                           text=layer_df[value], textposition="auto"))
    fig.update_layout(title=title or f"{value} per layer", height=350, xaxis_title="layer",
                      yaxis_title=_title(value))
    return fig


def metric_vs(table: pd.DataFrame, *, x: str, by=(), metric: str = "accuracy", baseline: str = "baseline",
              baseline_text: str | None = None, baseline_position: str = "bottom right",
              x_title: str | None = None, title: str | None = None) -> go.Figure:  # fmt: skip
    """Returns ``metric`` against the column ``x``, one line per group of the ``by`` columns, with
    the row labelled ``baseline`` as a dashed horizontal line; ``table`` is unchanged.

    In the spirit of plotly express: a DataFrame in, column names as arguments. Each line is sorted
    by ``x`` and named by its ``by`` values joined with spaces, leaving out ``"-"`` (the sweeps'
    mark for an option a method does not have). ``baseline_text`` annotates the dashed line
    (default: the baseline's label), at ``baseline_position``. Rows need a ``label`` column.

    Example:
        >>> metric_vs(table, x="weight_bits", by=["method", "granularity"])  # doctest: +SKIP
    """
    by = [by] if isinstance(by, str) else list(by)
    _need(table, ["label", *by, x, metric], "metric_vs")
    rows = table[table["label"] != baseline]
    groups = rows.groupby(by, sort=False) if by else [((metric,), rows)]
    fig = go.Figure()
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        group = group.sort_values(x, kind="stable")
        fig.add_trace(go.Scatter(x=group[x], y=group[metric], mode="lines+markers",
                                 name=" ".join(str(k) for k in key if k != "-"), text=group["label"],
                                 hovertemplate="%{text}<br>" + metric + "=%{y:.4f}<extra></extra>"))
    base = table[table["label"] == baseline]
    if len(base):
        fig.add_hline(y=float(base[metric].iloc[0]), line_dash="dash", line_color="gray",
                      annotation_text=baseline_text or baseline, annotation_position=baseline_position)
    x_title = x_title or _title(x)
    fig.update_layout(title=title or f"{metric} vs {x_title}", height=400, xaxis_title=x_title,
                      yaxis_title=metric)
    return fig


def accuracy_vs_bits(table: pd.DataFrame, *, metric: str = "accuracy", baseline: str = "baseline",
                     title: str | None = None) -> go.Figure:
    """Returns ``metric`` against ``weight_bits``, one line per method and granularity of a
    ``mcv.sweeps.quantization`` table, with the ``baseline`` row as a dashed horizontal line."""
    _need(table, ["label", "method", "granularity", "weight_bits", metric], "accuracy_vs_bits")
    fig = metric_vs(table, x="weight_bits", by=["method", "granularity"], metric=metric, baseline=baseline,
                    baseline_text=f"{baseline} (fp32)", x_title="weight bits", title=title)
    fig.update_xaxes(dtick=1)
    return fig


def accuracy_vs_sparsity(table: pd.DataFrame, *, metric: str = "accuracy", baseline: str = "baseline",
                         title: str | None = None) -> go.Figure:
    """Returns ``metric`` against the measured ``sparsity``, one line per method and scope of a
    ``mcv.sweeps.pruning`` table, with the ``baseline`` row as a dashed horizontal line."""
    _need(table, ["label", "method", "scope", "sparsity", metric], "accuracy_vs_sparsity")
    return metric_vs(table, x="sparsity", by=["method", "scope"], metric=metric, baseline=baseline,
                     baseline_text=f"{baseline} (dense)", baseline_position="bottom left",
                     x_title="sparsity (fraction of zero weights)", title=title or f"{metric} vs sparsity")


def layer_bars(df: pd.DataFrame, *, by: str, value: str, log_y: bool = False, y_title: str | None = None,
               title: str | None = None) -> go.Figure:  # fmt: skip
    """Returns grouped bars of ``value`` per layer, one bar series per value of the column ``by``
    (a bit width, a model's label...); ``df`` is unchanged.

    ``df`` has one row per (``by`` value, layer), such as ``mcv.sweeps.layer_errors`` or
    ``mcv.sweeps.layer_sparsity`` joined with a sweep's columns.

    Example:
        >>> layer_bars(mcv.sweeps.layer_sparsity(models), by="label", value="sparsity")  # doctest: +SKIP
    """
    _need(df, ["layer", by, value], "layer_bars")
    check_bool(log_y, "log_y")
    fig = go.Figure()
    for key, group in df.groupby(by, sort=False):
        fig.add_trace(go.Bar(x=group["layer"], y=group[value], name=str(key),
                             hovertemplate="%{x}: %{y:.4g}<extra></extra>"))
    fig.update_layout(title=title or f"{value} per layer", height=350, barmode="group",
                      xaxis_title="layer", yaxis_title=y_title or _title(value))
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def layer_error(errors: pd.DataFrame, *, by: str = "weight_bits", value: str = "rel_error",
                log_y: bool = True, title: str | None = None) -> go.Figure:
    """Returns grouped bars of ``value`` per layer, one bar series per value of ``by`` (e.g. per
    bit width), from ``mcv.sweeps.layer_errors`` (joined with the sweep columns)."""
    _need(errors, ["layer", by, value], "layer_error")
    if by == "weight_bits":  # series "8-bit", "4-bit"
        errors = errors.assign(weight_bits=[f"{b}-bit" for b in errors["weight_bits"]])
    y_title = "relative weight error ||w - w_q|| / ||w||" if value == "rel_error" else value
    return layer_bars(errors, by=by, value=value, log_y=log_y, y_title=y_title, title=title)


def _title(column: str) -> str:
    """The axis title of a column: a cost's title from ``mcv.measure.COSTS``, else its name."""
    return measure.COSTS[column].title if column in measure.COSTS else column


def _need(df, columns, what):
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"plots.{what} takes a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"plots.{what} needs column {missing[0]!r}; the DataFrame has "
                         f"{', '.join(map(str, df.columns))}")


def pareto(table: pd.DataFrame, *, cost: str = "size_bytes", metric: str = "accuracy",
           front: pd.DataFrame | None = None, choice: pd.Series | None = None, limit: float | None = None,
           log_x: bool = True, title: str | None = None) -> go.Figure:
    """Returns ``metric`` against ``cost`` for every row of a measurement table, with its Pareto
    front, the chosen row and the cost limit (``mcv.tradeoff.search`` gives all four).

    Traces: "configurations" (every row, grey, label in the hover), "Pareto front" (a step line:
    the best ``metric`` reachable at each cost; ``front=None`` computes it with
    ``mcv.tradeoff.pareto``), "selected: <label>" (a star, when ``choice`` is given) and
    "budget <limit>" (a dashed vertical line, when ``limit`` is given).
    """
    from mcviz import tradeoff  # deferred: tradeoff sits beside the plots, not below them

    _need(table, ["label", cost, metric], "pareto")
    if front is None:
        front = tradeoff.pareto(table, cost=cost, metric=metric)
    _need(front, ["label", cost, metric], "pareto")
    if choice is not None and not isinstance(choice, pd.Series):
        raise TypeError(f"choice must be a row (pd.Series) with label, {cost} and {metric}, "
                        f"got {type(choice).__name__}")
    if choice is not None and any(c not in choice.index for c in ("label", cost, metric)):
        raise ValueError(f"choice must be a row (pd.Series) with label, {cost} and {metric}, "
                         f"got one with {', '.join(map(str, choice.index))}")
    if limit is not None:
        check_number(limit, "limit", low=0, low_open=True)
    check_bool(log_x, "log_x")
    hover = "%{text}<br>" + cost + "=%{x:,}<br>" + metric + "=%{y:.4f}<extra></extra>"
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=table[cost], y=table[metric], mode="markers", name="configurations",
                             text=table["label"], hovertemplate=hover,
                             marker={"size": 9, "color": "lightgray", "line": {"color": "gray", "width": 1}}))
    front = front.sort_values(cost, kind="stable")
    fig.add_trace(go.Scatter(x=front[cost], y=front[metric], mode="lines+markers", name="Pareto front",
                             text=front["label"], hovertemplate=hover, line_shape="hv",
                             marker={"size": 9, "color": "#1f77b4"}))
    if choice is not None:
        star = {"symbol": "star", "size": 18, "color": "#d62728"}
        fig.add_trace(go.Scatter(x=[choice[cost]], y=[choice[metric]], mode="markers",
                                 name=f"selected: {choice['label']}", text=[choice["label"]],
                                 hovertemplate=hover, marker=star))
    values = pd.to_numeric(table[metric], errors="coerce").dropna()
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    pad = max(0.01, 0.15 * (hi - lo))
    if limit is not None:
        text = f"budget {tradeoff._fmt(limit)}"
        # a trace rather than add_vline: its annotation would be misplaced on a log axis
        fig.add_trace(go.Scatter(x=[limit, limit], y=[lo - pad / 2, hi + pad / 2], mode="lines+text",
                                 name=text, text=["", text], textposition="top right", hoverinfo="skip",
                                 line={"dash": "dash", "color": "gray"}))
    fig.update_layout(title=title or f"{metric} vs {cost}: the Pareto front", height=400,
                      xaxis_title=_title(cost), yaxis_title=metric)
    fig.update_yaxes(range=[lo - pad, hi + pad])
    if log_x:
        fig.update_xaxes(type="log")
    return fig
