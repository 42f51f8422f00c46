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
    with pytest.raises(ValueError, match="takes a pandas DataFrame, got list"):
        function([{"epoch": 1}])


def test_accuracy_vs_size_pads_the_axis_around_equal_accuracies(table):
    same = table.assign(accuracy=0.92)
    lo, hi = plots.accuracy_vs_size(same).layout.yaxis.range
    assert lo < 0.92 < hi and hi - lo < 0.1
