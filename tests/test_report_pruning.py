"""The pruning report: its template, the sweep helpers behind it (mcv.sweeps), the
accuracy-vs-sparsity plot, list-of-float parameters, the CLI and the example."""

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
EXAMPLE = ROOT / "reports" / "examples" / "pruning"
PLOTLY_MIME = "application/vnd.plotly.v1+json"


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------- list-of-float parameters


def test_a_list_of_float_needs_a_range_and_checks_each_element():
    (p,) = parse_cell("sparsities = [0.5, 0.9]  # [0, 1] target sparsities")
    assert (p.type, p.item, p.default) == ("list", "float", [0.5, 0.9])
    assert p.allowed == "a list of float, each in [0, 1]"
    assert check(p, [0.0, 1.0]) == [0.0, 1.0] and check(p, 0.3) == [0.3] and check(p, (0.1,)) == [0.1]
    for bad in ([1.5], [-0.1], [0.5, 1], [True], ["0.5"], "0.5", [float("nan")]):  # an int is rejected
        with pytest.raises(ParameterError, match=r"sparsities must be a list of float, each in \[0, 1\]"):
            check(p, bad)
    with pytest.raises(ParameterError, match="default must be"):
        parse_cell("sparsities = [0.5]  # target sparsities")  # no range: still rejected
    with pytest.raises(ParameterError, match=r"got \[1.5\]"):
        parse_cell("sparsities = [1.5]  # [0, 1] target sparsities")
    (q,) = parse_cell("bits = [8, 4]  # [2, 8] bit widths")  # a list of int is unchanged
    assert q.item == "int"


def test_a_list_of_float_from_the_command_line():
    (p,) = parse_cell("sparsities = [0.5, 0.9]  # [0, 1] target sparsities")
    assert from_text(p, "[0.5, 0.95]") == [0.5, 0.95]
    assert from_text(p, "0.8") == [0.8]
    with pytest.raises(ParameterError, match="each in"):
        check(p, from_text(p, "[0.5, 1]"))  # 1 is an int: rejected, not read as 1.0


# ---------------------------------------------------------------- pruning_specs and pruning


def test_pruning_specs_expand_methods_over_scopes_then_sparsities():
    plan = sweeps.pruning_specs([0.5, 0.9], ["magnitude", "random"], ["layer", "global"], seed=3)
    assert [r["label"] for r, _ in plan] == [
        "magnitude layer 0.5", "magnitude layer 0.9", "magnitude global 0.5", "magnitude global 0.9",
        "random 0.5", "random 0.9"]
    assert plan[0][0] == {"label": "magnitude layer 0.5", "method": "magnitude", "scope": "layer",
                          "target_sparsity": 0.5, "fine_tune_epochs": 0}
    assert list(plan[0][0]) == list(sweeps.PRUNING_COLUMNS)
    (config,) = plan[3][1]
    assert (config.method, config.sparsity, config.scope) == ("magnitude", 0.9, "global")
    assert (plan[-1][0]["scope"], plan[-1][1][0].seed) == ("-", 3)


def test_pruning_specs_end_with_a_finetune_step():
    plan = sweeps.pruning_specs([0.9], ["magnitude", "random"], ["global"], seed=2, fine_tune_epochs=3)
    for row, (prune, tune) in plan:
        assert row["fine_tune_epochs"] == 3 and prune.sparsity == 0.9
        assert tune == mcv.train.FineTuneConfig(epochs=3, seed=2)  # lr: fit's default, as before


@pytest.mark.parametrize(
    ("sparsities", "methods", "scopes", "message"),
    [([0.5], ["bogus"], ["layer"], "unknown method 'bogus'"),
     ([0.5], ["fp16"], ["layer"], "method 'fp16' has no sparsity option"),
     ([1.5], ["magnitude"], ["layer"], r"sparsities\[0\] must be a finite number in \[0, 1\], got 1.5"),
     ([0.5], ["magnitude"], ["local"], "scope must be one of 'layer', 'global', got 'local'")],
)
def test_pruning_configs_reject_bad_input(sparsities, methods, scopes, message):
    with pytest.raises(ValueError, match=message) as info:
        sweeps.pruning_specs(sparsities, methods, scopes)
    assert "\n" not in str(info.value)


def test_pruning_measures_every_configuration(digits, digits_mlp):
    before = copy.deepcopy(digits_mlp.state_dict())
    table, models = sweeps.pruning(digits_mlp, digits, [0.5, 0.9], ["magnitude", "random"], ["global"])
    assert list(table.columns[:5]) == list(sweeps.PRUNING_COLUMNS)
    assert list(table.columns[5:]) == list(mcv.measure.FIELDS)[1:]
    assert list(table["label"]) == ["baseline", "magnitude global 0.5", "magnitude global 0.9",
                                    "random 0.5", "random 0.9"]
    assert list(models) == list(table["label"]) and models["baseline"] is digits_mlp
    assert table["sparsity"].tolist() == pytest.approx([0.0, 0.5, 0.9, 0.5, 0.9], abs=1e-3)
    assert table.loc[1, "accuracy"] == mcv.train.evaluate(models["magnitude global 0.5"], digits)
    assert (table["fine_tune_epochs"] == 0).all() and table["latency_ms"].isna().all()
    after = digits_mlp.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the baseline is unchanged


def test_pruning_fine_tunes_with_zeros_kept(digits, digits_mlp):
    table, models = sweeps.pruning(digits_mlp, digits, [0.9], ["magnitude"], ["layer"], fine_tune_epochs=1)
    assert table.loc[1, "fine_tune_epochs"] == 1
    assert table.loc[1, "sparsity"] == pytest.approx(0.9, abs=1e-3)  # still 90% zeros after training
    pruned = mcv.prune.finalize(mcv.prune.magnitude(digits_mlp, 0.9))
    tuned = mcv.prune.finalize(models["magnitude layer 0.9"])
    for (_, a), (_, b) in zip(pruned.state_dict().items(), tuned.state_dict().items(), strict=True):
        if a.dim() > 1:  # weights: trained, and zero exactly where the pruned ones are
            assert not torch.equal(a, b) and torch.equal(a == 0, b == 0)
    with pytest.raises(ValueError, match=r"fine_tune_epochs must be an int in \[0, 200\], got -1"):
        sweeps.pruning(digits_mlp, digits, [0.9], ["magnitude"], ["layer"], fine_tune_epochs=-1)


def test_the_finetune_step_trains_bit_identically_to_the_former_in_place_fit(digits, digits_mlp):
    # the sweep used to prune and then mcv.train.fit the pruned copy in place with seed=seed; its
    # finetune step (mcv.train.FineTuneConfig) must give the very same weights
    _, models = sweeps.pruning(digits_mlp, digits, [0.9], ["magnitude", "random"], ["global"],
                               fine_tune_epochs=2, seed=1)  # fmt: skip
    pruners = {"magnitude global 0.9": mcv.prune.MagnitudeConfig(0.9, scope="global"),
               "random 0.9": mcv.prune.RandomConfig(0.9, seed=1)}  # fmt: skip
    for label, config in pruners.items():
        former = mcv.compress(digits_mlp, config, data=digits)
        mcv.train.fit(former, digits, epochs=2, seed=1, progress=False)
        now = models[label].state_dict()
        assert list(now) == list(former.state_dict())
        for name, tensor in former.state_dict().items():
            assert torch.equal(tensor, now[name]), (label, name)


def test_layer_sparsity_has_one_row_per_layer(digits_mlp):
    pruned = mcv.prune.magnitude(digits_mlp, 0.9, scope="global")
    df = sweeps.layer_sparsity({"base": digits_mlp, "p": pruned})
    n = len(mcv.measure.layers(digits_mlp))
    assert list(df.columns) == ["label", "layer", "params", "nonzero_params", "sparsity"]
    assert list(df["label"]) == ["base"] * n + ["p"] * n
    assert (df[df.label == "base"]["sparsity"] == 0).all()
    p = df[df.label == "p"]
    assert p["sparsity"].tolist() == mcv.measure.layers(pruned)["sparsity"].tolist()
    assert p["sparsity"].nunique() > 1  # global scope: layers end with different sparsities


# ---------------------------------------------------------------- pruning_summary


def _table(rows) -> pd.DataFrame:
    cols = ["label", "method", "scope", "target_sparsity", "accuracy", "sparsity", "nonzero_params"]
    base = ("baseline", "dense", "-", 0.0, 0.93, 0.0, 1000)
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in [base, *rows]])


def test_pruning_summary_comes_from_the_numbers():
    table = _table([
        ("magnitude global 0.5", "magnitude", "global", 0.5, 0.93, 0.5, 500),
        ("magnitude global 0.9", "magnitude", "global", 0.9, 0.92, 0.9, 100),  # exactly 1 point: within
        ("magnitude global 0.95", "magnitude", "global", 0.95, 0.80, 0.95, 50),
        ("random 0.5", "random", "-", 0.5, 0.85, 0.5, 500),
        ("random 0.9", "random", "-", 0.9, 0.10, 0.9, 100),
    ])
    assert sweeps.pruning_summary(table) == (
        "The sparsest model within 1 point of the dense accuracy (93.00%) is magnitude global 0.9: "
        "92.00% with 90.0% of its weights zero (10.0x fewer nonzero parameters). "
        "Magnitude (global): within 1 point up to sparsity 0.9 (92.00%); 0.95 loses 13.00 points. "
        "Random: more than 1 point lost at every sparsity swept (0.5 loses 8.00 points)."
    )
    text = sweeps.pruning_summary(table, tolerance=0)
    assert text.startswith("The sparsest model within 0 points of the dense accuracy (93.00%) is magnitude "
                           "global 0.5")
    bad = _table([("random 0.5", "random", "-", 0.5, 0.5, 0.5, 500)])
    assert sweeps.pruning_summary(bad).startswith("No pruned model stays within 1 point")
    assert sweeps.pruning_summary(_table([])) == "Only the baseline was measured."


@pytest.mark.parametrize(
    ("table", "kwargs", "message"),
    [(_table([]).drop(columns="scope"), {}, "needs column 'scope'"),
     (_table([]), {"baseline": "dense"}, "needs a row labelled 'dense'"),
     (_table([]), {"tolerance": -1}, "tolerance must be a finite number >= 0"),
     (_table([("r", "random", "-", 0.5, None, 0.5, 1)]), {}, "needs accuracy on every row")],
)
def test_pruning_summary_rejects_bad_input(table, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sweeps.pruning_summary(table, **kwargs)


# ---------------------------------------------------------------- plot builder


def test_accuracy_vs_sparsity_has_one_line_per_method_and_scope():
    table = _table([
        ("m g 0.9", "magnitude", "global", 0.9, 0.9, 0.9, 100),
        ("m g 0.5", "magnitude", "global", 0.5, 0.93, 0.5, 500),
        ("r 0.5", "random", "-", 0.5, 0.8, 0.5, 500),
    ])
    fig = mcv.plots.accuracy_vs_sparsity(table)
    assert [t.name for t in fig.data] == ["magnitude global", "random"]
    assert list(fig.data[0].x) == [0.5, 0.9] and list(fig.data[0].y) == [0.93, 0.9]  # sorted by sparsity
    assert fig.layout.shapes[0].y0 == 0.93  # the baseline line
    with pytest.raises(ValueError, match="needs column 'scope'"):
        mcv.plots.accuracy_vs_sparsity(table.drop(columns="scope"))


# ---------------------------------------------------------------- the template


def test_template_declares_its_parameters():
    params = {p.name: p for p in reports.parameters("pruning")}
    assert list(params) == ["dataset", "root", "model", "epochs", "seed", "split_seed", "sparsities",
                            "methods", "scopes", "fine_tune_epochs", "latency"]
    assert params["model"].default == "lenet300" and params["epochs"].default == 3
    assert params["sparsities"].allowed == "a list of float, each in [0, 1]"
    assert params["methods"].default == ["magnitude", "random"]
    assert params["scopes"].choices == ("layer", "global")
    assert params["fine_tune_epochs"].default == 0 and params["latency"].default is False
    assert sweeps.pruning_specs(params["sparsities"].default, params["methods"].default,
                                params["scopes"].default)
    assert reports.validate("pruning") == {p.name: p.default for p in params.values()}


def test_help_shows_the_list_parameters(capsys):
    code, out, _ = run_cli(["report", "pruning", "--help"], capsys)
    assert code == 0
    assert "list of float, each in [0, 1]; default [0.5, 0.8, 0.9, 0.95]" in out
    assert "each one of {layer, global}" in out


BAD = [
    (["-p", "sparsities", "[1.5]"], "sparsities must be a list of float, each in [0, 1], got [1.5]"),
    (["-p", "sparsities", "[0.5, 1]"], "sparsities must be a list of float, each in [0, 1], got [0.5, 1]"),
    (["-p", "scopes", "[local]"], "scopes must be a list of str, each one of {layer, global}, got ['local']"),
    (["-p", "methods", "[magnitude, bogus]"],
     "methods must be a list of str, each one of {magnitude, random}"),
    (["-p", "fine_tune_epochs", "-1"], "fine_tune_epochs must be an int in [0, 50], got -1"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_parameters_exit_2_with_one_line_and_write_nothing(args, message, capsys, cwd):
    code, out, err = run_cli(["report", "pruning", *args, "-o", "out"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("mcviz report: error: ") and message in err
    assert listing(cwd) == []


@pytest.mark.slow
def test_template_runs_through_the_cli(capsys, cwd):
    small = ["-p", "dataset", "digits", "-p", "model", "mlp", "-p", "epochs", "1",
             "-p", "sparsities", "[0.5, 0.9]", "-p", "fine_tune_epochs", "1"]
    code, out, err = run_cli(["report", "pruning", *small, "-o", "run", "-q"], capsys)
    assert code == 0, err
    assert out.strip() == "run"
    assert sorted(p.name for p in (cwd / "run").iterdir()) == [
        "index.html", "pruning.ipynb", "results.csv", "results.json"]
    results = json.loads((cwd / "run" / "results.json").read_text())
    assert results["parameters"]["sparsities"] == [0.5, 0.9]
    labels = [r["label"] for r in results["rows"]]
    assert labels == ["baseline", "magnitude layer 0.5", "magnitude layer 0.9", "magnitude global 0.5",
                      "magnitude global 0.9", "random 0.5", "random 0.9"]
    table = pd.read_csv(cwd / "run" / "results.csv")
    assert len(table) == len(labels) and (table["fine_tune_epochs"][1:] == 1).all()
    nb = nbformat.read(cwd / "run" / "pruning.ipynb", as_version=4)
    figures = sum(PLOTLY_MIME in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert figures == 2  # accuracy vs sparsity, per-layer sparsity (no latency figure by default)
    text = "".join("".join(o.get("data", {}).get("text/markdown", "")) for c in nb.cells
                   for o in c.get("outputs", []))
    assert sweeps.pruning_summary(table) in text


# ---------------------------------------------------------------- the committed example


def test_example_report_is_complete():
    assert sorted(p.name for p in EXAMPLE.iterdir()) == [
        "index.html", "pruning.ipynb", "results.csv", "results.json"]
    results = json.loads((EXAMPLE / "results.json").read_text())
    assert results["parameters"] == reports.validate("pruning")
    assert results["template"] == "pruning"
    table = pd.read_csv(EXAMPLE / "results.csv")
    assert len(table) == len(results["rows"]) == 1 + 4 * 3
    nb = nbformat.read(EXAMPLE / "pruning.ipynb", as_version=4)
    text = "".join("".join(o.get("data", {}).get("text/markdown", "")) for c in nb.cells
                   for o in c.get("outputs", []))
    assert sweeps.pruning_summary(table) in text  # the sentence matches the recorded numbers
