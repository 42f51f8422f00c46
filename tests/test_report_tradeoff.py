"""The trade-off report: its template and parameters, the CLI, a real small search, and the example."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest_reports import listing, run_cli

import mcviz as mcv
from mcviz import reports

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "reports" / "examples" / "tradeoff"
PLOTLY_MIME = "application/vnd.plotly.v1+json"


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _markdown(nb) -> str:
    return "".join(
        "".join(o.get("data", {}).get("text/markdown", "")) for c in nb.cells for o in c.get("outputs", [])
    )


# ---------------------------------------------------------------- the template


def test_template_declares_its_parameters():
    params = {p.name: p for p in reports.parameters("tradeoff")}
    assert list(params) == [
        "dataset",
        "root",
        "model",
        "epochs",
        "seed",
        "split_seed",
        "sparsities",
        "bits",
        "quantize",
        "finetune_epochs",
        "distill",
        "cost",
        "budget",
        "fraction",
        "latency",
    ]
    defaults = {name: p.default for name, p in params.items()}
    assert defaults["model"] == "lenet300" and defaults["epochs"] == 5
    assert defaults["sparsities"] == [0.0, 0.9, 0.95] and defaults["bits"] == [32, 8, 4]
    assert defaults["quantize"] == "kmeans" and defaults["finetune_epochs"] == 2
    assert defaults["distill"] is False and defaults["latency"] is False
    assert (defaults["cost"], defaults["budget"], defaults["fraction"]) == ("size_bytes", None, 0.05)
    # the literal choices must not drift from the library
    assert params["model"].choices == mcv.models.NAMES
    assert set(params["cost"].choices) <= set(mcv.tradeoff.COSTS)
    assert params["bits"].allowed == "a list of int, each one of {2, 3, 4, 5, 6, 7, 8, 32}"
    for b in range(2, 9):  # every allowed width but 32 is a valid quantizer option
        mcv.registry.parse(f"kmeans:bits={b}")
        mcv.registry.parse(f"weights:bits={b}")
    assert (params["budget"].excludes, params["fraction"].excludes) == ("fraction", "budget")
    assert reports.validate("tradeoff") == defaults
    # the default grid is what the report searches
    space = mcv.tradeoff.grid(sparsities=defaults["sparsities"], bits=defaults["bits"], finetune_epochs=2)
    assert len(space) == 3 * 3 - 1


def test_help_shows_the_budget_parameters(capsys):
    code, out, _ = run_cli(["report", "tradeoff", "--help"], capsys)
    assert code == 0
    assert "float > 0 or None (not with budget); default 0.05" in out
    assert "float > 0 or None (not with fraction); default None" in out
    assert "list of int, each one of {2, 3, 4, 5, 6, 7, 8, 32}; default [32, 8, 4]" in out


def test_a_budget_replaces_the_default_fraction():
    values = reports.validate("tradeoff", {"budget": 60000})
    assert (values["budget"], values["fraction"]) == (60000.0, None)
    values = reports.validate("tradeoff", {"fraction": None})
    assert (values["budget"], values["fraction"]) == (None, None)


BAD = [
    (["-p", "bits", "[16]"], "bits must be a list of int, each one of {2, 3, 4, 5, 6, 7, 8, 32}, got [16]"),
    (
        ["-p", "sparsities", "[0.5, 1.5]"],
        "sparsities must be a list of float, each in [0, 1], got [0.5, 1.5]",
    ),
    (["-p", "quantize", "ptq"], "quantize must be a str, one of {kmeans, weights}, got 'ptq'"),
    (
        ["-p", "budget", "60000", "-p", "fraction", "0.1"],
        "give budget or fraction, not both: got budget=60000 and fraction=0.1",
    ),
    (["-p", "budget", "-5"], "budget must be a float > 0 or None (not with fraction), got -5"),
    (["-p", "fraction", "0"], "fraction must be a float > 0 or None (not with budget), got 0"),
    (
        ["-p", "cost", "latency_ms"],
        "cost must be a str, one of {size_bytes, file_bytes, gzip_bytes, params, "
        "nonzero_params, macs}, got 'latency_ms'",
    ),
    (["-p", "model", "resnet"], "model must be a str, one of {seed_cnn, lenet300, lenet5, mlp, small_"),
    (["-p", "finetune_epochs", "-1"], "finetune_epochs must be an int in [0, 50], got -1"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_parameters_exit_2_with_one_line_and_write_nothing(args, message, capsys, cwd):
    code, out, err = run_cli(["report", "tradeoff", *args, "-o", "out"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("mcviz report: error: ") and message in err
    assert listing(cwd) == []


# ---------------------------------------------------------------- real runs (execute kernels)

SMALL = [
    "-p",
    "dataset",
    "digits",
    "-p",
    "model",
    "mlp",
    "-p",
    "epochs",
    "1",
    "-p",
    "sparsities",
    "[0.0, 0.8]",
    "-p",
    "bits",
    "[32, 4]",
    "-p",
    "finetune_epochs",
    "1",
]


@pytest.mark.slow
def test_a_small_search_runs_through_the_cli(capsys, cwd):
    code, out, err = run_cli(
        ["report", "tradeoff", *SMALL, "-p", "fraction", "0.3", "-o", "run", "-q"], capsys
    )
    assert code == 0, err
    assert out.strip() == "run"
    assert sorted(p.name for p in (cwd / "run").iterdir()) == [
        "index.html",
        "results.csv",
        "results.json",
        "tradeoff.ipynb",
    ]
    results = json.loads((cwd / "run" / "results.json").read_text())
    assert (results["parameters"]["fraction"], results["parameters"]["budget"]) == (0.3, None)
    table = pd.DataFrame(results["rows"])
    assert list(table["label"]) == [
        "baseline",
        "kmeans:bits=4",
        "magnitude:sparsity=0.8,scope=global + finetune:epochs=1",
        "magnitude:sparsity=0.8,scope=global + finetune:epochs=1 + kmeans:bits=4",
    ]
    assert list(table["spec"]) == ["", *table["label"][1:]]
    assert table["sparsity"].tolist() == pytest.approx([0, 0, 0.8, 0.8], abs=0.01)
    assert table["bits"].tolist() == [32, 4, 32, 4]
    # the choice the report states is the best row within 30% of the baseline's bytes
    choice = mcv.tradeoff.select(table, fraction=0.3)
    limit = 0.3 * table.loc[0, "size_bytes"]
    fitting = table[table["size_bytes"] <= limit]
    assert choice["size_bytes"] <= limit and choice["accuracy"] == fitting["accuracy"].max()
    nb = nbformat.read(cwd / "run" / "tradeoff.ipynb", as_version=4)
    text = _markdown(nb)
    assert reports.budget_summary(table, fraction=0.3) in text
    assert f"Layers of {choice['label']!r}" in text
    figures = sum(PLOTLY_MIME in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert figures == 2  # the Pareto front, bytes per layer of the choice
    pareto = next(
        o["data"][PLOTLY_MIME]
        for c in nb.cells
        for o in c.get("outputs", [])
        if PLOTLY_MIME in o.get("data", {})
    )
    names = [t["name"] for t in pareto["data"]]
    assert names[:3] == ["configurations", "Pareto front", f"selected: {choice['label']}"]

    # the same search with a budget nothing meets: exit 2, one line naming the budget, nothing written
    code, out, err = run_cli(["report", "tradeoff", *SMALL, "-p", "budget", "10", "-o", "none", "-q"], capsys)
    assert code == 2 and out == ""
    assert (
        err.startswith(
            "mcviz report: error: no configuration has size_bytes <= 10 (budget=10.0); the cheapest is"
        )
        and len(err.strip().splitlines()) == 1
    )
    assert not (cwd / "none").exists() and not list(cwd.glob("*FAILED*"))
    assert sorted(p.name for p in cwd.iterdir()) == ["run"]


# ---------------------------------------------------------------- the committed example


def test_example_report_is_complete():
    assert sorted(p.name for p in EXAMPLE.iterdir()) == [
        "index.html",
        "results.csv",
        "results.json",
        "tradeoff.ipynb",
    ]
    results = json.loads((EXAMPLE / "results.json").read_text())
    assert results["parameters"] == reports.validate("tradeoff")
    assert results["template"] == "tradeoff"
    table = pd.read_csv(EXAMPLE / "results.csv", keep_default_na=False)
    assert len(table) == len(results["rows"]) == 3 * 3
    nb = nbformat.read(EXAMPLE / "tradeoff.ipynb", as_version=4)
    text = _markdown(nb)
    assert reports.budget_summary(table, fraction=0.05) in text  # the sentence matches the recorded numbers
    choice = mcv.tradeoff.select(table, fraction=0.05)
    assert choice["size_bytes"] * 20 <= table.loc[0, "size_bytes"]
