"""Unit tests of mcviz.plots: figures carry the data they were given and are never shown."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import plotly.io
import pytest

import mcviz as mcv
from mcviz import measure, plots


@pytest.fixture(autouse=True)
def never_show(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a plots function showed its figure")

    monkeypatch.setattr(plotly.io, "show", fail)
    monkeypatch.setattr(go.Figure, "show", fail)


@pytest.fixture
def history():
    return pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "loss": [2.0, 1.0, 0.5],
            "train_accuracy": [0.3, 0.6, 0.8],
            "val_accuracy": [0.25, 0.55, 0.7],
        }
    )


@pytest.fixture
def table():
    return pd.DataFrame(
        {"label": ["fp32", "fp16"], "size_bytes": [4000, 2000], "macs": [900, 900], "accuracy": [0.91, 0.90]}
    )


@pytest.fixture
def layer_df():
    return measure.layers(mcv.models.build("lenet5", input_shape=(1, 28, 28)))


def test_history_returns_figure(history):
    assert isinstance(plots.history(history), go.Figure)


def test_history_traces(history):
    fig = plots.history(history)
    assert [t.name for t in fig.data] == ["loss", "train", "val"]


def test_history_trace_values(history):
    loss, train, val = plots.history(history).data
    assert list(loss.x) == [1, 2, 3]
    assert (list(loss.y), list(train.y), list(val.y)) == ([2.0, 1.0, 0.5], [0.3, 0.6, 0.8], [0.25, 0.55, 0.7])


def test_history_loss_and_accuracy_on_separate_axes(history):
    loss, train, val = plots.history(history).data
    assert loss.xaxis != train.xaxis == val.xaxis


def test_history_of_real_training(digits):
    model = mcv.models.build("mlp", input_shape=digits.input_shape, hidden=(8,), seed=0)
    df = mcv.train.fit(model, digits, epochs=2, progress=False)
    assert list(plots.history(df).data[2].y) == df["val_accuracy"].tolist()


def test_history_missing_column(history):
    with pytest.raises(ValueError, match="needs column 'val_accuracy'") as e:
        plots.history(history.drop(columns="val_accuracy"))
    assert "\n" not in str(e.value)


def test_accuracy_vs_size_returns_figure(table):
    assert isinstance(plots.accuracy_vs_size(table), go.Figure)


def test_accuracy_vs_size_points(table):
    (trace,) = plots.accuracy_vs_size(table).data
    assert (list(trace.x), list(trace.y), list(trace.text)) == ([4000, 2000], [0.91, 0.90], ["fp32", "fp16"])


def test_accuracy_vs_size_other_cost(table):
    (trace,) = plots.accuracy_vs_size(table, cost="macs").data
    assert list(trace.x) == [900, 900]


def test_accuracy_vs_size_log_axis(table):
    assert plots.accuracy_vs_size(table).layout.xaxis.type == "log"
    assert plots.accuracy_vs_size(table, log_x=False).layout.xaxis.type != "log"


def test_accuracy_vs_size_of_measure_table(digits_mlp, digits):
    t = measure.table(
        [
            measure.model(digits_mlp, digits, label="fp32"),
            measure.model(mcv.quantize.fp16(digits_mlp), digits, label="fp16"),
        ]
    )
    (trace,) = plots.accuracy_vs_size(t).data
    assert list(trace.x) == t["size_bytes"].tolist()


def test_accuracy_vs_size_missing_cost(table):
    with pytest.raises(ValueError, match="needs column 'gzip_bytes'"):
        plots.accuracy_vs_size(table, cost="gzip_bytes")


def test_accuracy_vs_size_missing_label(table):
    with pytest.raises(ValueError, match="needs column 'label'"):
        plots.accuracy_vs_size(table.drop(columns="label"))


def test_layers_returns_figure(layer_df):
    assert isinstance(plots.layers(layer_df), go.Figure)


def test_layers_bars(layer_df):
    (bar,) = plots.layers(layer_df).data
    assert (bar.type, list(bar.x), list(bar.y)) == (
        "bar",
        ["conv1", "conv2", "fc1", "fc2"],
        [520, 25_050, 400_500, 5_010],
    )


def test_layers_other_value(layer_df):
    (bar,) = plots.layers(layer_df, value="macs").data
    assert list(bar.y) == layer_df["macs"].tolist()


def test_layers_missing_value(layer_df):
    with pytest.raises(ValueError, match="needs column 'latency_ms'"):
        plots.layers(layer_df, value="latency_ms")


@pytest.mark.parametrize("function", [plots.history, plots.accuracy_vs_size, plots.layers])
def test_rejects_non_dataframe(function):
    with pytest.raises(TypeError, match="takes a pandas DataFrame, got list"):
        function([{"epoch": 1}])


def test_accuracy_vs_size_pads_the_axis_around_equal_accuracies(table):
    same = table.assign(accuracy=0.92)
    lo, hi = plots.accuracy_vs_size(same).layout.yaxis.range
    assert lo < 0.92 < hi and hi - lo < 0.1


# ---------------------------------------------------------------- pareto


@pytest.fixture
def trade():
    return pd.DataFrame(
        {
            "label": ["baseline", "fp16", "int8", "bad", "int4"],
            "size_bytes": [10_240, 5_120, 2_560, 4_000, 1_280],
            "accuracy": [0.95, 0.95, 0.94, 0.80, 0.90],
        }
    )


def traces(fig) -> dict:
    return {t.name: t for t in fig.data}


def test_pareto_trace_names(trade):
    choice = mcv.tradeoff.select(trade, budget=3000)
    fig = plots.pareto(trade, choice=choice, limit=3000)
    assert [t.name for t in fig.data] == ["configurations", "Pareto front", "selected: int8", "budget 3,000"]


def test_pareto_all_rows_and_front(trade):
    t = traces(plots.pareto(trade))
    assert list(t) == ["configurations", "Pareto front"]  # no choice, no limit
    assert list(t["configurations"].x) == trade["size_bytes"].tolist()
    assert list(t["configurations"].text) == trade["label"].tolist()
    assert list(t["Pareto front"].text) == ["int4", "int8", "fp16"]  # computed, sorted by cost
    assert list(t["Pareto front"].x) == [1_280, 2_560, 5_120]


def test_pareto_given_front(trade):
    front = trade.iloc[[1, 4]]  # given out of order: drawn by cost
    assert list(traces(plots.pareto(trade, front=front))["Pareto front"].text) == ["int4", "fp16"]


def test_pareto_highlights_the_choice(trade):
    choice = mcv.tradeoff.select(trade, fraction=0.3)
    star = traces(plots.pareto(trade, choice=choice))["selected: int8"]
    assert (list(star.x), list(star.y), star.marker.symbol) == ([2_560], [0.94], "star")


def test_pareto_limit_is_a_vertical_dashed_line(trade):
    line = traces(plots.pareto(trade, limit=3072.5))["budget 3,072.5"]
    assert list(line.x) == [3072.5, 3072.5] and line.line.dash == "dash"
    assert line.y[0] < 0.80 and line.y[1] > 0.95


def test_pareto_other_cost_and_axes(trade):
    df = trade.assign(macs=[9, 9, 9, 1, 9])
    fig = plots.pareto(df, cost="macs", log_x=False, title="t")
    assert list(traces(fig)["Pareto front"].text) == ["bad", "baseline"]
    assert fig.layout.xaxis.type != "log" and fig.layout.title.text == "t"
    assert plots.pareto(trade).layout.xaxis.type == "log"


def test_pareto_of_a_search_result(digits, cache_dir):
    result = mcv.tradeoff.search("mlp", digits, space=["fp16", "weights:bits=4"], epochs=1, fraction=0.5)
    fig = plots.pareto(result.table, front=result.front, choice=result.choice, limit=result.limit)
    star = traces(fig)[f"selected: {result.choice['label']}"]
    assert (star.x[0], star.y[0]) == (result.choice["size_bytes"], result.choice["accuracy"])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"choice": "int8"}, TypeError, "choice must be a row (pd.Series) with label, size_bytes and accur"),
        ({"choice": pd.Series({"label": "x"})}, ValueError, "choice must be a row (pd.Series) with label"),
        ({"limit": 0}, ValueError, "limit must be a finite number > 0, got 0"),
        ({"limit": float("inf")}, ValueError, "limit must be a finite number > 0, got inf"),
        ({"limit": True}, TypeError, "limit must be a number > 0, got True"),
        ({"log_x": "yes"}, TypeError, "log_x must be True or False, got 'yes'"),
        ({"cost": "macs"}, ValueError, "plots.pareto needs column 'macs'"),
    ],
)
def test_pareto_bad_arguments(trade, kwargs, error, message):
    with pytest.raises(error) as e:
        plots.pareto(trade, **kwargs)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


# ---------------------------------------------------------------- metric_vs and layer_bars


@pytest.fixture
def sweep():
    return pd.DataFrame(
        {
            "label": ["baseline", "m 0.9", "m 0.5", "r 0.5", "r 0.9"],
            "method": ["dense", "magnitude", "magnitude", "random", "random"],
            "scope": ["-", "global", "global", "-", "-"],
            "nonzero_params": [1000, 100, 500, 500, 100],
            "accuracy": [0.95, 0.90, 0.94, 0.80, 0.30],
            "f1": [0.9, 0.8, 0.85, 0.7, 0.2],
        }
    )


def test_metric_vs_draws_one_sorted_line_per_group(sweep):
    fig = plots.metric_vs(sweep, x="nonzero_params", by=["method", "scope"])
    assert [t.name for t in fig.data] == ["magnitude global", "random"]  # "-" is left out of a name
    assert list(fig.data[0].x) == [100, 500] and list(fig.data[0].y) == [0.90, 0.94]  # sorted by x
    assert list(fig.data[0].text) == ["m 0.9", "m 0.5"]
    (line,) = fig.layout.shapes
    assert (line.y0, line.line.dash) == (0.95, "dash")  # the baseline, not a point
    assert fig.layout.annotations[0].text == "baseline"
    # a cost column gets its title from the one cost table
    assert fig.layout.xaxis.title.text == mcv.measure.COSTS["nonzero_params"].title
    assert fig.layout.title.text == "accuracy vs nonzero parameters"


def test_metric_vs_other_metric_grouping_and_texts(sweep):
    fig = plots.metric_vs(sweep, x="nonzero_params", by="method", metric="f1", baseline="m 0.9",
                          baseline_text="reference", x_title="kept weights", title="t")  # fmt: skip
    assert [t.name for t in fig.data] == ["dense", "magnitude", "random"]
    assert list(fig.data[1].y) == [0.85] and fig.layout.shapes[0].y0 == 0.8
    assert (fig.layout.annotations[0].text, fig.layout.xaxis.title.text, fig.layout.title.text) == (
        "reference", "kept weights", "t")
    (one,) = plots.metric_vs(sweep[sweep.label != "baseline"], x="nonzero_params").data  # no by: one line
    assert one.name == "accuracy" and list(one.x) == [100, 100, 500, 500] and not fig.layout.shapes[1:]


def test_metric_vs_missing_column(sweep):
    with pytest.raises(ValueError, match="plots.metric_vs needs column 'granularity'") as e:
        plots.metric_vs(sweep, x="nonzero_params", by=["method", "granularity"])
    assert "\n" not in str(e.value)


def test_the_sweep_plots_are_metric_vs(sweep):
    bits = sweep.assign(granularity=["-", "per_tensor", "per_tensor", "-", "-"], weight_bits=[32, 2, 8, 4, 3])
    fig = plots.accuracy_vs_bits(bits)
    same = plots.metric_vs(bits, x="weight_bits", by=["method", "granularity"],
                           baseline_text="baseline (fp32)", x_title="weight bits")  # fmt: skip
    assert fig.to_json() != same.to_json()  # the wrapper adds one tick per bit ...
    assert fig.to_json() == same.update_xaxes(dtick=1).to_json()  # ... and nothing else
    assert [t.name for t in fig.data] == ["magnitude per_tensor", "random"]
    assert (fig.layout.annotations[0].text, fig.layout.annotations[0].xanchor) == ("baseline (fp32)", "right")
    sparse = sweep.assign(sparsity=[0.0, 0.9, 0.5, 0.5, 0.9])
    fig = plots.accuracy_vs_sparsity(sparse)
    assert fig.layout.annotations[0].text == "baseline (dense)"
    assert fig.layout.title.text == "accuracy vs sparsity"
    assert fig.layout.annotations[0].xanchor == "left"  # bottom left: the lines fall on the right


def test_layer_bars_one_series_per_value_of_by():
    df = pd.DataFrame({"layer": ["fc1", "fc2"] * 2, "label": ["a", "a", "b", "b"],
                       "sparsity": [0.5, 0.6, 0.9, 0.8]})  # fmt: skip
    fig = plots.layer_bars(df, by="label", value="sparsity")
    assert [t.name for t in fig.data] == ["a", "b"] and list(fig.data[1].y) == [0.9, 0.8]
    assert (fig.layout.barmode, fig.layout.yaxis.type) == ("group", None)
    assert fig.layout.yaxis.title.text == "sparsity"
    sizes = df.assign(size_bytes=[1, 2, 3, 4])
    fig = plots.layer_bars(sizes, by="label", value="size_bytes", log_y=True)
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.yaxis.title.text == "size (bytes at stored bit widths)"  # a cost's title
    with pytest.raises(ValueError, match="plots.layer_bars needs column 'label'"):
        plots.layer_bars(df.drop(columns="label"), by="label", value="sparsity")


def test_layer_error_is_layer_bars_named_by_bit_width():
    errors = pd.DataFrame({"layer": ["fc1", "fc2"] * 2, "weight_bits": [8, 8, 2, 2],
                           "rel_error": [0.1, 0.2, 0.5, 0.6]})  # fmt: skip
    fig = plots.layer_error(errors)
    assert [t.name for t in fig.data] == ["8-bit", "2-bit"]
    assert fig.layout.yaxis.title.text == "relative weight error ||w - w_q|| / ||w||"
    assert errors["weight_bits"].tolist() == [8, 8, 2, 2]  # the input is unchanged
