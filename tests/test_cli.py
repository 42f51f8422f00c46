"""The ``mcviz`` command: --version, report --list / --help, parameter errors, runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest_reports import listing, run_cli, write_template

import mcviz as mcv
from mcviz import cli, reports


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_version(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"mcviz {mcv.__version__}"


def test_report_list(capsys):
    code, out, _ = run_cli(["report", "--list"], capsys)
    assert code == 0
    assert re.search(r"^compare\s+Compare compression methods", out, flags=re.M)


def test_compare_help_lists_every_parameter_and_method(capsys):
    code, out, _ = run_cli(["report", "compare", "--help"], capsys)
    assert code == 0
    for p in reports.parameters("compare"):
        line = next(x for x in out.splitlines() if x.strip().startswith(p.name + " "))
        assert f"default {p.default!r}" in line  # type, allowed values and default on one line
        assert p.help.split()[0] in out
    assert "int in [1, 200]; default 3" in out
    assert "str, one of {seed_cnn, lenet300, lenet5, mlp, small_cnn}; default 'seed_cnn'" in out
    assert 'required if dataset is "idx"' in out
    for line in mcv.registry.describe():
        assert line in out


def test_report_help_without_a_name(capsys):
    code, out, _ = run_cli(["report", "--help"], capsys)
    assert code == 0 and "-p NAME VALUE" in out and "compare" in out.rstrip().splitlines()[-1]


def test_report_without_a_name(capsys, cwd):
    code, _, err = run_cli(["report"], capsys)
    assert code == 2 and "give a template NAME; available: compare" in err


BAD = [
    (["-p", "epoch", "3"], "unknown parameter 'epoch' for compare (did you mean epochs?)"),
    (["-p", "epochs", "three"], "epochs must be an int in [1, 200], got 'three'"),
    (["-p", "epochs", "2.5"], "epochs must be an int in [1, 200], got 2.5"),
    (["-p", "epochs", "0"], "epochs must be an int in [1, 200], got 0"),
    (["-p", "lr", "0"], "lr must be a float in (0, 1], got 0"),
    (["-p", "latency", "maybe"], "latency must be a bool, got 'maybe'"),
    (["-p", "model", "resnet"], "model must be a str, one of {seed_cnn"),
    (["-p", "dataset", "001"], "dataset must be a str, one of {digits, mnist5k, idx}, got '001'"),
    (["-p", "methods", "bogus"], "methods: bad method spec 'bogus': unknown method 'bogus'"),
    (["-p", "methods", "fp16:bits=4"], "bad method spec 'fp16:bits=4'"),
    (["-p", "methods", "[fp16"], "not a YAML list"),
    (["-p", "dataset", "idx"], 'root is required when dataset is "idx"'),
    (["-p", "dataset", "idx", "-p", "root", "no/such/dir"], "got 'no/such/dir' (not found)"),
    (["-f", "missing.yaml"], "parameters file 'missing.yaml' not found"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_parameters_exit_2_with_one_line_and_write_nothing(args, message, capsys, cwd):
    code, out, err = run_cli(["report", "compare", *args], capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("mcviz report: error: ") and message in err
    assert listing(cwd) == []


def test_bad_yaml_file(capsys, cwd):
    (cwd / "p.yaml").write_text("- just\n- a list\n")
    code, _, err = run_cli(["report", "compare", "-f", "p.yaml"], capsys)
    assert code == 2 and "must be a YAML mapping" in err
    (cwd / "p.yaml").write_text("epochs: 3\nmodel: 001\n")  # YAML reads 001 as an int
    code, _, err = run_cli(["report", "compare", "-f", "p.yaml"], capsys)
    assert code == 2 and "model must be a str" in err and "got 1" in err
    assert listing(cwd) == ["p.yaml"]


def test_output_folder_must_be_empty(capsys, cwd):
    (cwd / "out").mkdir()
    (cwd / "out" / "x").write_text("")
    code, _, err = run_cli(["report", "compare", "-o", "out"], capsys)
    assert code == 2 and "output folder 'out' exists and is not empty" in err
    assert listing(cwd) == ["out", "out/x"]


def test_p_overrides_f_and_lists_accumulate(cwd):
    (cwd / "p.yaml").write_text("epochs: 5\nmodel: lenet5\nmethods: [fp16]\nlr: 1e-3\n")
    values = cli._collect(
        "compare",
        "p.yaml",
        [["epochs", "3"], ["methods", "fp16"], ["methods", "fp16 + fp16"]],
    )
    assert values == {"epochs": 3, "model": "lenet5", "methods": ["fp16", "fp16 + fp16"], "lr": 0.001}
    out = reports.validate("compare", values)
    assert out["epochs"] == 3 and out["model"] == "lenet5" and out["dataset"] == "mnist5k"


def test_list_parameter_from_a_scalar(cwd):
    values = cli._collect("compare", None, [["methods", "fp16"]])
    assert reports.validate("compare", values)["methods"] == ["fp16"]


@pytest.mark.slow
def test_cli_run_of_a_tiny_template_records_strings_verbatim(capsys, cwd):
    template = write_template(cwd, "tiny")
    code, out, err = run_cli(
        ["report", str(template), "-p", "name", "001", "-p", "items", "[b, 'c,d']", "-q"], capsys
    )
    assert code == 0, err
    folder = cwd / out.strip()
    assert folder.parent == cwd / "reports"
    results = json.loads((folder / "results.json").read_text())
    assert results["parameters"]["name"] == "001"
    assert results["rows"][0]["label"] == "001" and results["rows"][0]["items"] == "b|c,d"


@pytest.mark.slow
def test_cli_failure_prints_one_short_block(capsys, cwd):
    template = write_template(cwd, "tiny")
    code, out, err = run_cli(["report", str(template), "-p", "fail", "true", "-q"], capsys)
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert lines[0] == "mcviz report: tiny failed in cell 6 (In [6]):"
    assert lines[1].strip() == "ValueError: boom"
    assert re.fullmatch(r"\s+partial output: reports/tiny-\d{8}-\d{6}-FAILED", lines[2])
    assert len(lines) == 3
    (failed,) = (cwd / "reports").iterdir()
    assert failed.name.endswith("-FAILED")


@pytest.mark.slow
def test_compare_end_to_end(tmp_path):
    """``python -m mcviz report compare`` with small parameters writes all four files."""
    cmd = [
        sys.executable,
        "-m",
        "mcviz",
        "report",
        "compare",
        "-q",
        "-p",
        "dataset",
        "digits",
        "-p",
        "model",
        "mlp",
        "-p",
        "epochs",
        "1",
    ]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    folder = tmp_path / res.stdout.strip()
    assert re.fullmatch(r"compare-\d{8}-\d{6}", folder.name)
    assert sorted(p.name for p in folder.iterdir()) == [
        "compare.ipynb",
        "index.html",
        "results.csv",
        "results.json",
    ]
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [folder.name]
    results = json.loads((folder / "results.json").read_text())
    assert set(results) == {"template", "rows", "parameters", "seed", "started", "duration_s", "environment"}
    assert set(results["environment"]) == {
        "mcviz",
        "torch",
        "python",
        "platform",
        "cpu",
        "cpu_count",
        "threads",
        "cpu_capability",
    }
    assert results["environment"]["threads"] == 1
    assert results["environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert results["parameters"]["dataset"] == "digits" and results["parameters"]["epochs"] == 1
    assert results["seed"] == 0 and results["duration_s"] > 0
    rows = results["rows"]
    labels = ["baseline", "fp16", "int8:mode=static", "kd"]  # the template's default methods
    assert [r["label"] for r in rows] == labels
    assert set(rows[0]) == set(mcv.measure.FIELDS)
    assert rows[1]["size_bytes"] * 2 == rows[0]["size_bytes"]
    assert rows[2]["bits"] == 8 and rows[2]["size_bytes"] < rows[1]["size_bytes"]
    assert rows[3]["params"] < rows[0]["params"] / 10  # kd: a small_cnn student of the mlp
    table = pd.read_csv(folder / "results.csv")
    assert list(table["label"]) == labels and list(table.columns) == list(rows[0])
    html = (folder / "index.html").read_text()
    # history, accuracy vs size, the Pareto front (no budget given: no choice), 4 models' layers
    assert len(re.findall(r'<div[^>]*\bid="mcviz-fig-\d+"', html)) == 7
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert "fp16 is 2.00x smaller than the baseline" in html
