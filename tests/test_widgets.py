"""Explorers, headless: build them, move a control, and read the figure they drive."""

from __future__ import annotations

import subprocess
import sys

import ipywidgets
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from helpers import one_line

import mcviz as mcv
from mcviz import widgets


@pytest.fixture(scope="module")
def small_models():
    """Two tiny models on 8x8 inputs: fast to time."""
    a = mcv.models.build("mlp", input_shape=(1, 8, 8), hidden=(16,), seed=0)
    return {"fp32": a, "fp16": mcv.compress(a, mcv.quantize.FP16Config())}


def test_layers_explorer_shows_the_layers_of_the_chosen_model(capsys):
    explorer = widgets.layers_explorer()
    assert capsys.readouterr().out == ""  # returned, never displayed
    assert isinstance(explorer, ipywidgets.VBox)
    assert isinstance(explorer.figure, go.FigureWidget)
    assert explorer.figure in explorer.children
    first = mcv.measure.layers(widgets.reference_models()["seed_cnn"])
    assert list(explorer.figure.data[0].x) == list(first.layer)
    assert list(explorer.figure.data[0].y) == list(first.params)

    explorer.controls["model"].value = "lenet5"
    lenet5 = mcv.measure.layers(mcv.models.build("lenet5", input_shape=(1, 28, 28), seed=0))
    assert list(explorer.figure.data[0].x) == list(lenet5.layer)
    assert list(explorer.figure.data[0].y) == list(lenet5.params)
    assert "lenet5" in explorer.figure.layout.title.text

    explorer.controls["value"].value = "macs"
    assert list(explorer.figure.data[0].y) == list(lenet5.macs)
    assert explorer.figure.layout.title.text.startswith("macs")


def test_layers_explorer_takes_the_learners_models(small_models):
    explorer = widgets.layers_explorer(small_models, value="size_bytes")
    assert explorer.controls["model"].options == ("fp32", "fp16")
    fp32_bytes = list(explorer.figure.data[0].y)
    explorer.controls["model"].value = "fp16"
    assert [2 * b for b in explorer.figure.data[0].y] == fp32_bytes  # 16 bits instead of 32


def test_reference_models_are_distinct_and_untrained_builds():
    zoo = widgets.reference_models()
    assert list(zoo) == ["seed_cnn", "lenet300", "lenet5", "mlp-64", "small_cnn"]
    assert mcv.measure.model(zoo["mlp-64"]).params != mcv.measure.model(zoo["lenet300"]).params


def test_latency_explorer_remeasures_when_a_control_moves(small_models, capsys):
    threads_before = torch.get_num_threads()
    explorer = widgets.latency_explorer(small_models, batch_sizes=(1, 8), batch_size=1, threads=1, repeats=3)
    assert capsys.readouterr().out == ""
    bar = explorer.figure.data[0]
    assert list(bar.x) == ["fp32", "fp16"]
    assert all(v > 0 for v in bar.y)
    assert "batch 1," in explorer.figure.layout.title.text
    assert "fp16" in explorer.note.value and "x" in explorer.note.value
    first = tuple(bar.y)

    explorer.controls["batch_size"].value = 8
    assert "batch 8," in explorer.figure.layout.title.text
    assert tuple(explorer.figure.data[0].y) != first  # re-measured
    assert len(explorer.figure.data[0].error_y.array) == 2

    explorer.controls["threads"].value = max(explorer.controls["threads"].options)
    assert f"{max(explorer.controls['threads'].options)} thread" in explorer.figure.layout.title.text
    assert torch.get_num_threads() == threads_before  # restored after every measurement


def test_latency_explorer_accepts_one_model_and_data_for_the_shape(digits):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))  # no input_shape
    explorer = widgets.latency_explorer(model, digits, batch_sizes=(2,), batch_size=2, repeats=3)
    assert list(explorer.figure.data[0].x) == ["model"]
    assert "only one model" in explorer.note.value


def test_latency_table_measures_with_the_given_threads(small_models):
    before = torch.get_num_threads()
    rows = widgets.latency_table(small_models, batch_size=4, threads=1, repeats=3)
    assert [r.label for r in rows] == ["fp32", "fp16"]
    assert {r.threads for r in rows} == {1} and {r.batch_size for r in rows} == {4}
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 3}, "batch_size must be one of"),
        ({"batch_sizes": (0, 1), "batch_size": 1}, r"each of batch_sizes must be an int in \[1, 4096\]"),
        ({"threads": 0}, "threads must be an int"),
        ({"repeats": 2}, r"repeats must be an int in \[3, 10000\], got 2"),
    ],
)
def test_latency_explorer_rejects_bad_settings(small_models, kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        widgets.latency_explorer(small_models, **kwargs)
    one_line(e)


def test_quantization_explorer_redraws_when_a_control_moves(digits, digits_mlp, capsys):
    explorer = widgets.quantization_explorer(digits_mlp, digits, bits=8, granularity="per_tensor")
    assert capsys.readouterr().out == ""  # returned, never displayed
    assert set(explorer.controls) == {"bits", "granularity", "observer"}
    fp32_hist, quant_hist, levels = explorer.figure.data
    assert explorer.figure.layout.xaxis.title.text == "fc1 weight"  # the layer with the most weights
    assert sum(fp32_hist.y) == sum(quant_hist.y)  # the same weights, before and after rounding
    assert len(levels.x) == 255  # 8-bit symmetric codes -127..127, one scale
    eight_bit = mcv.measure.model(mcv.quantize.weights(digits_mlp, 8, granularity="per_tensor"), digits)
    assert f"size_bytes {eight_bit.size_bytes:,}" in explorer.figure.layout.title.text
    assert f"accuracy {eight_bit.accuracy:.3f}" in explorer.figure.layout.title.text
    first = tuple(explorer.figure.data[1].y)

    explorer.controls["bits"].value = 2
    assert len(explorer.figure.data[2].x) == 3  # -1, 0, 1
    assert tuple(explorer.figure.data[1].y) != first
    assert sum(1 for c in explorer.figure.data[1].y if c) <= 3  # every weight sits on one of 3 levels
    assert tuple(explorer.figure.data[0].y) == tuple(fp32_hist.y)  # the fp32 histogram stays
    two_bit = mcv.measure.model(mcv.quantize.weights(digits_mlp, 2, granularity="per_tensor"), digits)
    assert f"size_bytes {two_bit.size_bytes:,}" in explorer.note.value

    explorer.controls["granularity"].value = "per_channel"
    assert "per_channel" in explorer.figure.layout.title.text
    assert "widest" in explorer.figure.data[2].name
    explorer.controls["observer"].value = "minmax"
    calibrated = mcv.quantize.ptq(digits_mlp, digits, 2, granularity="per_channel", observer="minmax")
    assert f"accuracy {mcv.train.evaluate(calibrated, digits):.3f}" in explorer.figure.layout.title.text
    assert "(minmax)" in explorer.figure.layout.title.text


def test_quantization_explorer_rejects_bad_settings(digits, digits_mlp):
    with pytest.raises(ValueError, match="layer must be one of 'fc1', 'fc2', got 'nope'"):
        widgets.quantization_explorer(digits_mlp, digits, layer="nope")
    with pytest.raises(ValueError, match=r"bits must be an int in \[2, 8\]"):
        widgets.quantization_explorer(digits_mlp, digits, bits=9)
    with pytest.raises(ValueError, match="granularity must be"):
        widgets.quantization_explorer(digits_mlp, digits, granularity="per_row")
    with pytest.raises(ValueError, match="observer must be one of"):
        widgets.quantization_explorer(digits_mlp, digits, observer="max")
    with pytest.raises(TypeError, match="data must be a DataBundle"):
        widgets.quantization_explorer(digits_mlp, None)


def test_bad_model_sets_are_rejected():
    with pytest.raises(ValueError, match="at least one model"):
        widgets.layers_explorer({})
    with pytest.raises(TypeError, match=r"model_set\['x'\] must be a torch.nn.Module, got str"):
        widgets.layers_explorer({"x": "not a model"})
    with pytest.raises(TypeError, match="map str names"):
        widgets.layers_explorer({1: torch.nn.Linear(4, 2)})
    with pytest.raises(ValueError, match="value must be one of"):
        widgets.layers_explorer(value="flops")
    with pytest.raises(ValueError, match="input_shape"):
        widgets.latency_explorer(torch.nn.Sequential(torch.nn.Linear(4, 2)))
    with pytest.raises(ValueError, match=r"threads must be an int in \[1, 256\]"):
        widgets.latency_table({"m": torch.nn.Linear(4, 2)}, threads=0)


def test_widgets_sit_above_the_low_modules():
    # importing mcviz does not load the widgets, and no low module mentions them
    code = "import sys, mcviz; assert 'mcviz.widgets' not in sys.modules; mcviz.widgets"
    subprocess.run([sys.executable, "-c", code], check=True)
    from pathlib import Path

    package = Path(mcv.__file__).parent
    lows = ("data", "models", "train", "measure", "registry", "plots", "distill", "tradeoff", "_search")
    packages = ("quantize", "prune", "grading")
    paths = [package / f"{low}.py" for low in lows]
    for path in paths + [p for name in packages for p in sorted((package / name).glob("*.py"))]:
        assert "widgets" not in path.read_text(), f"{path.relative_to(package.parent)} refers to widgets"


def test_pruning_explorer_redraws_when_a_control_moves(digits, digits_mlp, capsys):
    before = [p.detach().clone() for p in digits_mlp.parameters()]
    explorer = widgets.pruning_explorer(digits_mlp, digits, sparsity=0.5)
    assert capsys.readouterr().out == ""  # returned, never displayed
    assert set(explorer.controls) == {"sparsity", "scope", "method"}
    bars = explorer.figure.data[0]
    assert list(bars.x) == ["fc1", "fc2"]
    assert all(abs(v - 0.5) < 0.01 for v in bars.y)  # per layer: every layer at 0.5
    half = mcv.measure.model(mcv.prune.magnitude(digits_mlp, 0.5), digits)
    assert f"accuracy {half.accuracy:.3f}" in explorer.figure.layout.title.text
    assert f"size_bytes {half.size_bytes:,}" in explorer.figure.layout.title.text

    explorer.controls["sparsity"].value = 0.9
    explorer.controls["scope"].value = "global"
    glob = mcv.prune.magnitude(digits_mlp, 0.9, scope="global")
    assert list(explorer.figure.data[0].y) == list(mcv.measure.layers(glob).sparsity)
    assert f"accuracy {mcv.train.evaluate(glob, digits):.3f}" in explorer.figure.layout.title.text

    explorer.controls["method"].value = "random"
    assert explorer.controls["scope"].disabled
    rand = mcv.prune.random(digits_mlp, 0.9, seed=0)
    assert f"accuracy {mcv.train.evaluate(rand, digits):.3f}" in explorer.figure.layout.title.text
    assert "random pruning" in explorer.figure.layout.title.text
    assert all(torch.equal(a, b) for a, b in zip(before, digits_mlp.parameters(), strict=True))


def test_pruning_explorer_rejects_bad_settings(digits, digits_mlp):
    with pytest.raises(TypeError, match=r"sparsity must be a float in \[0, 0.99\], got 1"):
        widgets.pruning_explorer(digits_mlp, digits, sparsity=1)
    with pytest.raises(ValueError, match=r"sparsity must be a float in \[0, 0.99\], got 1.0"):
        widgets.pruning_explorer(digits_mlp, digits, sparsity=1.0)
    with pytest.raises(ValueError, match="scope must be"):
        widgets.pruning_explorer(digits_mlp, digits, scope="net")
    with pytest.raises(ValueError, match="method must be"):
        widgets.pruning_explorer(digits_mlp, digits, method="l2")
    with pytest.raises(TypeError, match="data must be a DataBundle"):
        widgets.pruning_explorer(digits_mlp, None)


def test_temperature_explorer_softens_the_teachers_distribution(digits, digits_mlp, capsys):
    before = {k: v.clone() for k, v in digits_mlp.state_dict().items()}
    explorer = widgets.temperature_explorer(digits_mlp, digits, index=3, temperature=4.0)
    assert capsys.readouterr().out == ""  # returned, never displayed
    assert set(explorer.controls) == {"temperature", "index"}
    assert isinstance(explorer.controls["temperature"], ipywidgets.FloatLogSlider)
    assert explorer.controls["index"].max == len(digits.test) - 1

    def expected(index, temperature):
        table = mcv.distill.soft_targets(digits_mlp, digits.test.tensors[0][index], temperatures=temperature)
        return table.sort_values("class").probability.to_numpy()

    bars, at_one, image = (
        tuple(trace.y if trace.type != "heatmap" else trace.z) for trace in explorer.figure.data
    )
    assert np.allclose(bars, expected(3, 4.0)) and np.allclose(at_one, expected(3, 1.0))
    assert np.allclose(image, digits.test.tensors[0][3, 0].numpy())
    label = int(digits.test.tensors[1][3])
    assert f"test image 3 (label {label})" in explorer.figure.layout.title.text
    entropy = -(expected(3, 4.0) * np.log(expected(3, 4.0))).sum()
    assert f"entropy {entropy:.2f} nats" in explorer.figure.layout.title.text

    explorer.controls["temperature"].value = 20.0
    assert np.allclose(explorer.figure.data[0].y, expected(3, 20.0))
    assert max(explorer.figure.data[0].y) < max(bars)  # flatter
    explorer.controls["temperature"].value = 1.0
    assert np.allclose(explorer.figure.data[0].y, explorer.figure.data[1].y)

    explorer.controls["index"].value = 7
    assert np.allclose(explorer.figure.data[0].y, expected(7, 1.0))
    assert np.allclose(explorer.figure.data[2].z, digits.test.tensors[0][7, 0].numpy())
    assert "test image 7" in explorer.figure.layout.title.text
    assert "Most likely wrong classes" in explorer.note.value
    assert all(torch.equal(v, before[k]) for k, v in digits_mlp.state_dict().items())


def test_temperature_explorer_rejects_bad_settings(digits, digits_mlp):
    with pytest.raises(ValueError, match=r"index must be an int in \[0, 358\]"):
        widgets.temperature_explorer(digits_mlp, digits, index=len(digits.test))
    with pytest.raises(ValueError, match=r"temperature must be a finite number in \[0.1, 100\], got 0"):
        widgets.temperature_explorer(digits_mlp, digits, temperature=0)
    with pytest.raises(TypeError, match=r"temperature must be a number in \[0.1, 100\], got True"):
        widgets.temperature_explorer(digits_mlp, digits, temperature=True)
    with pytest.raises(TypeError, match="teacher must be a torch.nn.Module"):
        widgets.temperature_explorer("lenet5", digits)
    with pytest.raises(TypeError, match="data must be a DataBundle"):
        widgets.temperature_explorer(digits_mlp, None)


# ---- the budget explorer (lesson 07) ---------------------------------------------------------


@pytest.fixture
def tradeoff_table():
    """A hand-made measurement table: nothing is trained, and latency was never measured."""
    import pandas as pd

    return pd.DataFrame(
        [
            ("baseline", 1000, 500, 250, 0.95, float("nan")),
            ("fp16", 500, 500, 250, 0.95, float("nan")),
            ("int8", 250, 500, 248, 0.94, float("nan")),
            ("pruned", 150, 500, 25, 0.93, float("nan")),
            ("channels", 480, 250, 120, 0.945, float("nan")),
            ("student", 100, 50, 25, 0.90, float("nan")),
        ],
        columns=["label", "size_bytes", "macs", "nonzero_params", "accuracy", "latency_ms"],
    )


def test_budget_explorer_moves_the_limit_and_the_star(tradeoff_table, capsys):
    before = tradeoff_table.copy()
    explorer = widgets.budget_explorer(tradeoff_table, fraction=0.1)
    assert capsys.readouterr().out == ""  # returned, never displayed
    assert set(explorer.controls) == {"fraction", "cost"}
    assert isinstance(explorer.controls["fraction"], ipywidgets.FloatLogSlider)
    assert list(explorer.controls["cost"].options) == ["size_bytes", "nonzero_params", "macs"]  # no latency
    points, front, star, line = explorer.figure.data
    assert list(points.x) == list(tradeoff_table.size_bytes)
    assert list(front.text) == list(mcv.tradeoff.pareto(tradeoff_table).label)

    def shown(fraction, cost):
        choice = mcv.tradeoff.select(tradeoff_table, cost=cost, fraction=fraction)
        lim = mcv.tradeoff.limit(tradeoff_table, cost=cost, fraction=fraction)
        star, line = explorer.figure.data[2:]
        assert list(star.x) == [choice[cost]] and list(star.y) == [choice["accuracy"]]
        assert star.name == f"selected: {choice['label']}"
        assert list(line.x) == pytest.approx([lim, lim])
        assert choice["label"] in explorer.note.value
        return choice["label"]

    assert shown(0.1, "size_bytes") == "student"
    explorer.controls["fraction"].value = 0.5
    assert shown(0.5, "size_bytes") == "fp16"

    explorer.controls["fraction"].value = 0.05  # below the cheapest row: nothing fits, no crash
    star, line = explorer.figure.data[2:]
    assert list(star.x) == [] and star.name == "nothing fits"
    assert list(line.x) == pytest.approx([50, 50])
    assert "Nothing fits" in explorer.note.value and "'student'" in explorer.note.value

    explorer.controls["fraction"].value = 0.5
    explorer.controls["cost"].value = "macs"
    assert list(explorer.figure.data[0].x) == list(tradeoff_table.macs)
    assert shown(0.5, "macs") == "channels"
    assert "macs" in explorer.figure.layout.xaxis.title.text.lower()
    assert tradeoff_table.equals(before)


@pytest.mark.parametrize(
    "kwargs, match, error",
    [
        ({"fraction": 0}, r"fraction must be a finite number in \[0.001, 1\], got 0", ValueError),
        ({"fraction": 2.0}, r"fraction must be a finite number in \[0.001, 1\], got 2.0", ValueError),
        ({"fraction": float("nan")}, r"fraction must be a finite number in \[0.001, 1\], got nan",
         ValueError),
        ({"fraction": True}, r"fraction must be a number in \[0.001, 1\], got True", TypeError),
        ({"cost": "latency_ms"}, r"cost column of the table \(size_bytes, nonzero_params, macs\)",
         ValueError),
        ({"cost": "flops"}, "got 'flops'", ValueError),
        ({"cost": None}, "got None", TypeError),
        ({"metric": "top5"}, "the table has no column 'top5'", ValueError),
        ({"metric": 5}, "metric must be a str, got 5", TypeError),
        ({"baseline": "fp32"}, "baseline must name the table's reference row, got 'fp32'", ValueError),
    ],
)
def test_budget_explorer_rejects_bad_settings(tradeoff_table, kwargs, match, error):
    with pytest.raises(error, match=match) as excinfo:
        widgets.budget_explorer(tradeoff_table, **kwargs)
    one_line(excinfo)


def test_budget_explorer_rejects_what_is_not_a_table(tradeoff_table):
    with pytest.raises(TypeError, match="table must be a non-empty measurement table"):
        widgets.budget_explorer(tradeoff_table.to_dict())
    with pytest.raises(ValueError, match="got an empty DataFrame"):
        widgets.budget_explorer(tradeoff_table.iloc[:0])
