"""The quantization report: its template, the sweep helpers behind it (mcv.sweeps), the plot
builders it uses, list-of-int parameters, the CLI and the example."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import torch
from conftest_reports import listing, run_cli

import mcviz as mcv
from mcviz import reports, sweeps
from mcviz._params import ParameterError, check, from_text, parse_cell

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "reports" / "examples" / "quantization"
PLOTLY_MIME = "application/vnd.plotly.v1+json"


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- list-of-int parameters


def test_a_list_of_int_needs_a_range_and_checks_each_element():
    (p,) = parse_cell("bits = [8, 4]  # [2, 8] bit widths")
    assert (p.type, p.item, p.default) == ("list", "int", [8, 4])
    assert p.allowed == "a list of int, each in [2, 8]"
    assert check(p, [2, 8]) == [2, 8] and check(p, 3) == [3] and check(p, (4,)) == [4]
    for bad in ([1], [9], [4, "4"], [True], [4.0], "4"):
        with pytest.raises(ParameterError, match=r"bits must be a list of int, each in \[2, 8\]"):
            check(p, bad)
    with pytest.raises(ParameterError, match="default must be"):
        parse_cell("bits = [8, 4]  # bit widths")  # no range: still rejected
    with pytest.raises(ParameterError, match=r"must be a list of int, each in \[2, 8\], got \[1\]"):
        parse_cell("bits = [1]  # [2, 8] bit widths")


def test_a_list_of_int_from_the_command_line():
    (p,) = parse_cell("bits = [8, 4]  # [2, 8] bit widths")
    assert from_text(p, "[8, 2]") == [8, 2]
    assert from_text(p, "4") == [4]
    assert from_text(p, "x") == ["x"]  # check() rejects it with the allowed values
    (s,) = parse_cell('tags = ["a"]  # {a, 001} tags')
    assert from_text(s, "[a, 001]") == ["a", "001"]  # a list of str still keeps every scalar a str


# ---------------------------------------------------------------- quantization_specs


def test_quantization_specs_expand_specs_over_granularity_then_bits():
    granularities = ["per_tensor", "per_channel"]
    plan = sweeps.quantization_specs(["weights", "ptq:observer=percentile"], [8, 2], granularities)
    rows = [row for row, _ in plan]
    assert [r["label"] for r in rows] == [
        "weights 8b per_tensor",
        "weights 2b per_tensor",
        "weights 8b per_channel",
        "weights 2b per_channel",
        "ptq:observer=percentile 8b per_tensor",
        "ptq:observer=percentile 2b per_tensor",
        "ptq:observer=percentile 8b per_channel",
        "ptq:observer=percentile 2b per_channel",
    ]
    assert rows[0] == {"label": "weights 8b per_tensor", "method": "weights", "granularity": "per_tensor",
                       "weight_bits": 8}
    (config,) = plan[-1][1]
    assert (config.method, config.bits, config.granularity, config.observer) == (
        "ptq", 2, "per_channel", "percentile")


def test_quantization_specs_without_granularity_and_in_a_chain():
    plan = sweeps.quantization_specs(["kmeans"], [4, 3], ["per_tensor", "per_channel"])
    assert [r["label"] for r, _ in plan] == ["kmeans 4b", "kmeans 3b"]
    assert [r["granularity"] for r, _ in plan] == ["-", "-"]
    (row, (fp16, weights)), = sweeps.quantization_specs(["fp16 + weights"], [4], ["per_tensor"])
    assert fp16.method == "fp16" and (weights.bits, weights.granularity) == (4, "per_tensor")


@pytest.mark.parametrize(
    ("methods", "bits", "message"),
    [(["fp16"], [4], "method spec 'fp16' has no bits option"),
     (["bogus"], [4], "unknown method 'bogus'"),
     (["weights"], [1], "bits")],
)
def test_quantization_specs_reject_bad_input(methods, bits, message):
    with pytest.raises(ValueError, match=message) as info:
        sweeps.quantization_specs(methods, bits, ["per_tensor"])
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- quantization and layer_errors


def test_quantization_measures_every_configuration(digits, digits_mlp):
    before = copy.deepcopy(digits_mlp.state_dict())
    table, models = sweeps.quantization(digits_mlp, digits, ["weights"], [8, 2], ["per_channel"])
    assert list(table.columns[:4]) == list(sweeps.QUANTIZATION_COLUMNS)
    assert list(table.columns[4:]) == list(mcv.measure.FIELDS)[1:]  # label comes first
    assert list(table["label"]) == ["baseline", "weights 8b per_channel", "weights 2b per_channel"]
    assert list(models) == list(table["label"]) and models["baseline"] is digits_mlp
    assert list(table["weight_bits"]) == [32, 8, 2] and list(table["bits"]) == [32.0, 8.0, 2.0]
    assert table.loc[0, "accuracy"] == mcv.train.evaluate(digits_mlp, digits)
    assert table.loc[1, "accuracy"] == mcv.train.evaluate(models["weights 8b per_channel"], digits)
    assert table["size_bytes"].is_monotonic_decreasing
    assert table["latency_ms"].isna().all()
    after = digits_mlp.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the baseline is unchanged


def test_a_bit_width_given_twice_is_one_row(digits, digits_mlp):
    table, models = sweeps.quantization(digits_mlp, digits, ["weights"], [4, 4], ["per_tensor"])
    assert table["label"].tolist() == list(models) == ["baseline", "weights 4b per_tensor"]


def test_the_sweeps_are_no_longer_reports_attributes():
    # templates call mcv.sweeps.* (reports re-exported them through a module __getattr__)
    for name in ("sweep", "sweep_configs", "pruning_sweep", "quantization_summary", "SWEEP_COLUMNS"):
        assert not hasattr(reports, name)


def test_layer_errors_are_relative_frobenius_norms(digits_mlp):
    q4 = mcv.quantize.weights(digits_mlp, 4, granularity="per_tensor")
    q8 = mcv.quantize.weights(digits_mlp, 8, granularity="per_tensor")
    errors = sweeps.layer_errors(digits_mlp, {"base": digits_mlp, "q4": q4, "q8": q8})
    layers = [n for n, m in digits_mlp.named_modules() if isinstance(m, torch.nn.Linear)]
    assert list(errors.columns) == ["label", "layer", "rel_error"]
    assert list(errors["label"]) == ["q4"] * len(layers) + ["q8"] * len(layers)  # reference skipped
    assert list(errors["layer"]) == layers * 2
    w = digits_mlp.get_submodule(layers[0]).weight.detach()
    wq = q4.get_submodule(layers[0]).weight
    expected = float(torch.linalg.vector_norm(wq - w) / torch.linalg.vector_norm(w))
    assert errors.loc[0, "rel_error"] == pytest.approx(expected, rel=1e-6)
    e4, e8 = errors[errors.label == "q4"].rel_error.values, errors[errors.label == "q8"].rel_error.values
    assert (e8 < e4).all() and (e8 > 0).all() and (e4 < 1).all()


def test_layer_errors_skip_missing_layers(digits_mlp):
    other = mcv.models.build("mlp", input_shape=(1, 8, 8), hidden=(16,), seed=0)  # other shapes
    assert sweeps.layer_errors(digits_mlp, {"x": other}).empty
    with pytest.raises(TypeError, match="reference must be a torch.nn.Module"):
        sweeps.layer_errors("model", {})


# ---------------------------------------------------------------- quantization_summary


def _table(rows) -> pd.DataFrame:
    base = {"label": "baseline", "method": "fp32", "granularity": "-", "weight_bits": 32,
            "accuracy": 0.93, "size_bytes": 1000}
    cols = ["label", "method", "granularity", "weight_bits", "accuracy", "size_bytes"]
    return pd.DataFrame([base] + [dict(zip(cols, r, strict=True)) for r in rows])


def test_summary_sentences_come_from_the_numbers():
    table = _table([
        ("w 8b pc", "w", "per_channel", 8, 0.93, 260),
        ("w 4b pc", "w", "per_channel", 4, 0.92, 135),  # exactly 1 point: within (no float noise)
        ("w 2b pc", "w", "per_channel", 2, 0.80, 70),
        ("k 8b", "k", "-", 8, 0.9301, 255),
        ("k 2b", "k", "-", 2, 0.925, 68),
    ])
    text = sweeps.quantization_summary(table)
    assert text == (
        "The smallest model within 1 point of the fp32 accuracy (93.00%) is k 2b: 92.50% at 6.8% "
        "of the fp32 size (14.7x smaller). "
        "Per-channel w: within 1 point down to 4 bits (92.00%, 13.5% of the fp32 size); "
        "2-bit loses 13.00 points. "
        "K: within 1 point down to 2 bits (92.50%, 6.8% of the fp32 size)."
    )


def test_summary_when_nothing_stays_within_the_tolerance():
    table = _table([("w 8b pt", "w", "per_tensor", 8, 0.95, 260), ("w 2b pt", "w", "per_tensor", 2, 0.5, 70)])
    text = sweeps.quantization_summary(table, tolerance=0.5)
    assert "0.5 points" in text and "Per-tensor w: within 0.5 points down to 8 bits" in text
    assert "8-bit" not in text and "2-bit loses 43.00 points" in text
    text = sweeps.quantization_summary(_table([("w 2b pt", "w", "per_tensor", 2, 0.5, 70)]), tolerance=0)
    assert text == (
        "No configuration stays within 0 points of the fp32 accuracy (93.00%). "
        "Per-tensor w: more than 0 points lost at every bit width swept (2-bit loses 43.00 points)."
    )
    assert sweeps.quantization_summary(_table([])) == "Only the baseline was measured."


@pytest.mark.parametrize(
    ("table", "kwargs", "message"),
    [
        (_table([]).drop(columns="weight_bits"), {}, "needs column 'weight_bits'"),
        (_table([]), {"baseline": "fp32"}, "needs a row labelled 'fp32'"),
        (_table([]), {"tolerance": -1}, "tolerance must be a finite number >= 0"),
        (_table([("w", "w", "-", 4, None, 10)]), {}, "needs accuracy on every row"),
    ],
)
def test_summary_rejects_bad_input(table, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sweeps.quantization_summary(table, **kwargs)


@pytest.mark.parametrize("summary", [sweeps.quantization_summary, sweeps.pruning_summary])
def test_summaries_refuse_arguments_of_the_wrong_type(summary):
    with pytest.raises(TypeError, match="tolerance must be a number >= 0, got True"):
        summary(_table([]), tolerance=True)
    with pytest.raises(TypeError, match="takes a pandas DataFrame, got list"):
        summary([], tolerance=1)


# ---------------------------------------------------------------- plot builders


def test_accuracy_vs_bits_has_one_line_per_method_and_granularity():
    table = _table([
        ("w 2b pt", "w", "per_tensor", 2, 0.5, 70),
        ("w 8b pt", "w", "per_tensor", 8, 0.93, 260),
        ("k 4b", "k", "-", 4, 0.92, 130),
    ])
    fig = mcv.plots.accuracy_vs_bits(table)
    assert [t.name for t in fig.data] == ["w per_tensor", "k"]
    assert list(fig.data[0].x) == [2, 8] and list(fig.data[0].y) == [0.5, 0.93]  # sorted by bits
    assert fig.layout.shapes[0].y0 == 0.93  # the baseline line
    with pytest.raises(ValueError, match="needs column 'weight_bits'"):
        mcv.plots.accuracy_vs_bits(table.drop(columns="weight_bits"))


def test_layer_error_has_one_bar_series_per_bit_width():
    errors = pd.DataFrame({"layer": ["fc1", "fc2"] * 2, "weight_bits": [8, 8, 2, 2],
                           "rel_error": [0.01, 0.02, 0.5, 0.6]})
    fig = mcv.plots.layer_error(errors)
    assert [t.name for t in fig.data] == ["8-bit", "2-bit"]
    assert list(fig.data[1].x) == ["fc1", "fc2"] and list(fig.data[1].y) == [0.5, 0.6]
    assert fig.layout.yaxis.type == "log" and fig.layout.barmode == "group"
    with pytest.raises(TypeError, match="takes a pandas DataFrame"):
        mcv.plots.layer_error(errors.to_dict())


# ---------------------------------------------------------------- the template


def test_template_declares_its_parameters():
    params = {p.name: p for p in reports.parameters("quantization")}
    assert list(params) == ["dataset", "root", "model", "epochs", "seed", "split_seed", "bits",
                            "granularities", "methods", "latency"]
    assert params["bits"].allowed == "a list of int, each in [2, 8]"
    assert params["granularities"].choices == ("per_tensor", "per_channel")
    assert params["methods"].spec and params["latency"].default is False
    for spec in params["methods"].default:  # the default names only registered methods taking bits
        assert sweeps.quantization_specs([spec], [4], ["per_channel"])
    assert reports.validate("quantization") == {p.name: p.default for p in params.values()}


def test_help_shows_the_list_parameters(capsys):
    code, out, _ = run_cli(["report", "quantization", "--help"], capsys)
    assert code == 0
    assert "list of int, each in [2, 8]; default [8, 6, 4, 3, 2]" in out
    assert "each one of {per_tensor, per_channel}" in out


BAD = [
    (["-p", "bits", "[1]"], "bits must be a list of int, each in [2, 8], got [1]"),
    (["-p", "bits", "[8, x]"], "bits must be a list of int, each in [2, 8], got [8, 'x']"),
    (["-p", "granularities", "[per_row]"], "granularities must be a list of str, each one of "
                                           "{per_tensor, per_channel}, got ['per_row']"),
    (["-p", "methods", "[weights, bogus]"], "methods: bad method spec 'bogus': unknown method 'bogus'"),
    (["-p", "methods", "weights:bitz=4"], "bad method spec 'weights:bitz=4'"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_parameters_exit_2_with_one_line_and_write_nothing(args, message, capsys, cwd):
    code, out, err = run_cli(["report", "quantization", *args, "-o", "out"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("mcviz report: error: ") and message in err
    assert listing(cwd) == []


@pytest.mark.slow
def test_template_runs_through_the_cli(capsys, cwd):
    small = ["-p", "dataset", "digits", "-p", "model", "mlp", "-p", "epochs", "1", "-p", "bits", "[8, 2]"]
    code, out, err = run_cli(["report", "quantization", *small, "-o", "run", "-q"], capsys)
    assert code == 0, err
    assert out.strip() == "run"
    assert sorted(p.name for p in (cwd / "run").iterdir()) == [
        "index.html", "quantization.ipynb", "results.csv", "results.json"]
    results = json.loads((cwd / "run" / "results.json").read_text())
    assert results["parameters"]["bits"] == [8, 2]
    labels = [r["label"] for r in results["rows"]]
    assert labels == ["baseline"] + [f"{m} {b}b {g}" for m in ("weights", "ptq")
                                     for g in ("per_tensor", "per_channel") for b in (8, 2)]
    assert len(pd.read_csv(cwd / "run" / "results.csv")) == len(labels)
    nb = nbformat.read(cwd / "run" / "quantization.ipynb", as_version=4)
    figures = sum(PLOTLY_MIME in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert figures == 2 + 4  # accuracy vs size, vs bits, one per-layer figure per method x granularity
    text = "".join("".join(o.get("data", {}).get("text/markdown", "")) for c in nb.cells
                   for o in c.get("outputs", []))
    assert "within 1 point" in text or "more than 1 point" in text


# ---------------------------------------------------------------- the committed example


def test_example_report_is_complete():
    assert sorted(p.name for p in EXAMPLE.iterdir()) == [
        "index.html", "quantization.ipynb", "results.csv", "results.json"]
    results = json.loads((EXAMPLE / "results.json").read_text())
    assert results["parameters"] == reports.validate("quantization")
    assert results["template"] == "quantization"
    table = pd.read_csv(EXAMPLE / "results.csv")
    assert len(table) == len(results["rows"]) == 1 + 5 * 2 * 2
    nb = nbformat.read(EXAMPLE / "quantization.ipynb", as_version=4)
    text = "".join("".join(o.get("data", {}).get("text/markdown", "")) for c in nb.cells
                   for o in c.get("outputs", []))
    assert sweeps.quantization_summary(table) in text  # the sentence matches the recorded numbers
