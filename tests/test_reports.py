"""mcviz.reports: templates, record/summary, the offline HTML export, and the runner."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import nbformat
import pandas as pd
import plotly.graph_objects as go
import pytest
from conftest_reports import SLOW_CELL, listing, run_cli, unprivileged, write_template

import mcviz as mcv
from mcviz import _html, reports

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "reports" / "examples" / "compare"
EXAMPLE_PARAMETERS = {"fraction": 0.3}  # how the committed example was made (see its first cell)
PLOTLY_MIME = _html.PLOTLY_MIME


# ---------------------------------------------------------------- templates


def test_compare_template_is_packaged_and_declares_its_parameters():
    assert "compare" in reports.templates()
    params = {p.name: p for p in reports.parameters("compare")}
    assert list(params) == [
        "dataset",
        "root",
        "model",
        "epochs",
        "lr",
        "batch_size",
        "seed",
        "split_seed",
        "methods",
        "cost",
        "budget",
        "fraction",
        "latency",
    ]
    defaults = {name: p.default for name, p in params.items()}
    assert defaults["dataset"] == "mnist5k" and defaults["model"] == "seed_cnn"
    assert defaults["epochs"] == 3 and defaults["methods"] == ["fp16", "int8:mode=static", "kd"]
    assert defaults["latency"] is True and defaults["root"] is None
    assert defaults["cost"] == "size_bytes" and defaults["budget"] is None and defaults["fraction"] is None
    assert set(params["cost"].choices) <= set(mcv.tradeoff.COSTS)
    assert (params["budget"].excludes, params["fraction"].excludes) == ("fraction", "budget")
    # the literal choices in the template must not drift from the library
    assert params["dataset"].choices == mcv.data.NAMES
    assert params["model"].choices == mcv.models.NAMES
    assert params["root"].required_if == ("dataset", "idx")
    assert params["methods"].spec


def test_unknown_template(tmp_path):
    with pytest.raises(FileNotFoundError, match="unknown template 'nope'; available: .*compare"):
        reports.template_path("nope")
    with pytest.raises(FileNotFoundError, match="not found"):
        reports.template_path(tmp_path / "missing.ipynb")


def test_validate_compare_defaults():
    out = reports.validate("compare")
    assert out == {p.name: p.default for p in reports.parameters("compare")}


# ---------------------------------------------------------------- record and summary


def _table():
    return pd.DataFrame(
        {
            "label": ["baseline", "fp16", "big"],
            "size_bytes": [200, 100, 400],
            "accuracy": [0.92, 0.9175, 0.93],
        }
    )


def test_record_is_a_no_op_outside_a_run(tmp_path, monkeypatch):
    monkeypatch.delenv(reports.RESULTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    table = _table()
    assert reports.record(table) is table
    assert listing(tmp_path) == []


def test_record_writes_rows_inside_a_run(tmp_path, monkeypatch):
    monkeypatch.setenv(reports.RESULTS_ENV, str(tmp_path))
    table = _table()
    assert reports.record(table) is table
    assert pd.read_csv(tmp_path / "results.csv").equals(table)
    assert json.loads((tmp_path / "_rows.json").read_text())[1] == {
        "label": "fp16",
        "size_bytes": 100,
        "accuracy": 0.9175,
    }


def test_summary_sentence():
    text = reports.summary(_table())
    assert text == (
        "fp16 is 2.00x smaller than the baseline at -0.0025 accuracy. "
        "big is 2.00x larger than the baseline at +0.0100 accuracy."
    )
    assert reports.summary(_table().iloc[:1]) == "Only the baseline was measured."
    with pytest.raises(ValueError, match="row labelled 'baseline'"):
        reports.summary(_table().iloc[1:])


def _costs():
    return pd.DataFrame(
        {
            "label": ["baseline", "fp16", "int8", "kd"],
            "size_bytes": [217640, 108820, 55000, 9876],
            "accuracy": [0.965, 0.965, 0.964, 0.957],
        }
    )


def test_budget_summary_names_the_choice_from_the_numbers():
    table = _costs()
    before = table.copy()
    assert reports.budget_summary(table, fraction=0.3) == (
        "Under a size_bytes budget of 65,292 bytes (fraction 0.3 of the baseline's 217,640), 2 of 4 "
        "configurations fit; the most accurate is 'int8': accuracy 0.9640 (baseline 0.9650), "
        "size_bytes 55,000 (3.96x smaller than the baseline)."
    )
    assert reports.budget_summary(table, budget=50000) == (
        "Under a size_bytes budget of 50,000 bytes, 1 of 4 configurations fit; the most accurate is "
        "'kd': accuracy 0.9570 (baseline 0.9650), size_bytes 9,876 (22.04x smaller than the baseline)."
    )
    # a limit that is not a whole number still reads as an amount, not as 7.182e+04
    assert "budget of 71,821.2 bytes (fraction 0.33 of" in reports.budget_summary(table, fraction=0.33)
    # a tie in accuracy goes to the cheaper row; the baseline itself can be the choice
    assert "the most accurate is 'fp16'" in reports.budget_summary(table, fraction=2.0)
    assert reports.budget_summary(table.iloc[:1], fraction=1.0).endswith("(the baseline itself).")
    table.loc[0, "accuracy"] = 0.97
    assert "'baseline'" in reports.budget_summary(table, budget=300000)
    pd.testing.assert_frame_equal(table.drop(index=0), before.drop(index=0))


def test_budget_summary_without_a_limit_names_the_front_and_how_to_set_one():
    assert reports.budget_summary(_costs(), cost="size_bytes") == (
        "No budget was given: 3 of 4 configurations are on the Pareto front (no other is both cheaper "
        "in size_bytes and better in accuracy): 'kd', 'int8', 'fp16'. Set a limit with `-p budget N` "
        "(bytes) or `-p fraction F` (of the baseline's size_bytes) to select the best configuration "
        "under it."
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"budget": 1}, mcv.tradeoff.NothingFits, "no configuration has size_bytes <= 1 (budget=1)"),
        ({"budget": 1, "fraction": 0.5}, ValueError, "give either budget or fraction, not both"),
        ({"budget": 0}, ValueError, "budget must be a finite number > 0, got 0"),
        ({"fraction": 0.5, "cost": "weight"}, ValueError, "unknown cost column 'weight'"),
        ({"fraction": 0.5, "baseline": "dense"}, ValueError, "no row is labelled 'dense'"),
    ],
)
def test_budget_summary_rejects_bad_input(kwargs, error, message):
    with pytest.raises(error) as info:
        reports.budget_summary(_costs(), **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- offline HTML


def _figure_notebook(n_figures: int):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# Figures"))
    for i in range(n_figures):
        fig = go.Figure(go.Scatter(x=[1, 2], y=[i, i + 1]), layout_title_text=f"fig {i} </script>")
        cell = nbformat.v4.new_code_cell("fig")
        bundle = {**fig.to_plotly_json(), "config": {"displaylogo": False}}
        cell.outputs = [nbformat.v4.new_output("display_data", data={PLOTLY_MIME: bundle})]
        nb.cells.append(cell)
    return nb


def _script_srcs(html: str) -> list[str]:
    return re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?([^\"' >]+)", html, flags=re.I)


def _figure_divs(html: str) -> list[str]:
    return re.findall(r'<div[^>]*\bid="(mcviz-fig-\d+)"', html)


def test_html_inlines_plotly_once_and_one_div_per_figure(tmp_path):
    nb = _figure_notebook(3)
    before = nbformat.writes(nb)
    html = _html.export(nb, tmp_path / "index.html").read_text()
    assert nbformat.writes(nb) == before  # the notebook is left unchanged
    head = _html.plotly_js()[:300]
    assert html.count(head) == 1
    assert _figure_divs(html) == ["mcviz-fig-0", "mcviz-fig-1", "mcviz-fig-2"]
    assert html.count("Plotly.newPlot(") == 3
    assert _script_srcs(html) == []  # no CDN (or any other) script source
    rest = html.replace(_html.plotly_js(), "").lower()  # the page without plotly.js itself
    assert "cdn" not in rest and "require.js" not in rest and "mathjax" not in rest
    assert PLOTLY_MIME not in html


def test_html_without_figures_has_no_plotly(tmp_path):
    html = _html.export(_figure_notebook(0), tmp_path / "index.html").read_text()
    assert "Plotly.newPlot(" not in html and _html.plotly_js()[:300] not in html


# ---------------------------------------------------------------- the committed example


def test_example_report_is_complete():
    assert sorted(p.name for p in EXAMPLE.iterdir()) == [
        "compare.ipynb",
        "index.html",
        "results.csv",
        "results.json",
    ]
    results = json.loads((EXAMPLE / "results.json").read_text())
    assert set(results) >= {"template", "rows", "parameters", "seed", "started", "duration_s", "environment"}
    assert set(results["environment"]) >= {
        "mcviz",
        "torch",
        "python",
        "platform",
        "cpu",
        "threads",
        "cpu_capability",
    }
    assert results["environment"]["cpu_capability"] in ("DEFAULT", "AVX2", "AVX512", "NEON", "SVE256")
    assert [r["label"] for r in results["rows"]] == ["baseline", *reports.validate("compare")["methods"]]
    assert results["parameters"] == reports.validate("compare", EXAMPLE_PARAMETERS)
    table = pd.read_csv(EXAMPLE / "results.csv")
    assert len(table) == len(results["rows"])
    nb = nbformat.read(EXAMPLE / "compare.ipynb", as_version=4)
    figures = sum(PLOTLY_MIME in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert figures >= 4  # history, accuracy vs size, the Pareto front, bytes per layer
    text = "".join(
        "".join(o.get("data", {}).get("text/markdown", "")) for c in nb.cells for o in c.get("outputs", [])
    )
    assert reports.budget_summary(table, **EXAMPLE_PARAMETERS) in text  # the choice matches the numbers
    assert "the most accurate is" in text
    html = (EXAMPLE / "index.html").read_text()
    assert len(_figure_divs(html)) == figures
    assert html.count(_html.plotly_js()[:300]) == 1 and _script_srcs(html) == []
    assert "papermill" in nb.metadata and "/" not in nb.metadata.papermill.input_path


# ---------------------------------------------------------------- running (executes kernels)


@pytest.mark.slow
def test_run_writes_the_run_folder(tmp_path, monkeypatch):
    (tmp_path / "tpl").mkdir()
    template = write_template(tmp_path / "tpl", "tiny")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    weird = "a\"b\\c'd"
    folder = reports.run(template, {"n": 3, "name": weird, "items": "001"})
    assert folder.parent == work / "reports" and folder.name.startswith("tiny-")
    assert listing(work / "reports") == [folder.name] + [
        f"{folder.name}/{f}" for f in ("index.html", "results.csv", "results.json", "tiny.ipynb")
    ]
    results = json.loads((folder / "results.json").read_text())
    rows = results["rows"]
    assert [r["row"] for r in rows] == [0, 1, 2]
    assert rows[0]["label"] == weird and rows[0]["items"] == "001"
    assert rows[0]["executable"] == sys.executable  # this interpreter's kernel
    assert rows[0]["cwd"] == str(template.parent)  # the template's folder
    assert rows[0]["omp"] == "1" and rows[0]["renderer"] == "plotly_mimetype"
    assert results["parameters"] == {"n": 3, "name": weird, "items": ["001"], "fail": False, "die": False}
    assert results["environment"]["threads"] == 1
    import torch

    assert results["environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    html = (folder / "index.html").read_text()
    assert _figure_divs(html) == ["mcviz-fig-0"] and _script_srcs(html) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flag", "error"),
    [
        ("fail", "ValueError: boom"),
        ("die", "DeadKernelError: the kernel died (crashed, killed or out of memory)"),
    ],
)
def test_failed_run_leaves_only_a_failed_folder(tmp_path, flag, error):
    template = write_template(tmp_path, "tiny")
    out = tmp_path / "out" / "mine"
    with pytest.raises(reports.ReportError) as info:
        reports.run(template, {flag: True}, out)
    exc = info.value
    assert exc.folder == tmp_path / "out" / "mine-FAILED"
    assert listing(tmp_path / "out") == ["mine-FAILED", "mine-FAILED/tiny.ipynb"]
    assert exc.cell == 6  # the last cell (after the injected parameters cell)
    assert exc.error == error
    assert "\n" not in str(exc)


@pytest.mark.slow
def test_out_dir_must_be_empty(tmp_path):
    template = write_template(tmp_path, "tiny")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="exists and is not empty"):
        reports.run(template, {}, tmp_path / "out")
    assert listing(tmp_path / "out") == ["keep.txt"]


@pytest.mark.slow
def test_bad_parameter_runs_nothing(tmp_path, monkeypatch):
    template = write_template(tmp_path, "tiny")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(reports.ParameterError, match=r"n must be an int in \[1, 10\], got 11"):
        reports.run(template, {"n": 11})
    assert not (tmp_path / "reports").exists()


@pytest.mark.slow
def test_two_reports_at_once_finish_in_distinct_folders(tmp_path):
    template = write_template(tmp_path, "tiny")
    cmd = [sys.executable, "-m", "mcviz", "report", str(template), "-q"]
    procs = [
        subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    folders = sorted(out.strip() for out, _ in outs)
    assert len(set(folders)) == 2
    names = sorted(p.name for p in (tmp_path / "reports").iterdir())  # hidden ones included
    assert names == sorted(Path(f).name for f in folders)
    for f in folders:
        assert (tmp_path / f / "results.json").exists() and (tmp_path / f / "index.html").exists()


@pytest.mark.slow
def test_wheel_ships_the_templates(tmp_path):
    # build from a copy: an in-tree build would leave build/ behind, and reuse stale files from it
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in ("mcviz", "notebooks"):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            ".",
        ],
        check=True,
        cwd=src,
    )
    (wheel,) = dist.glob("mcviz-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mcviz/notebooks/compare.ipynb" in names
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        cwd=tmp_path,
    )
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import mcviz.reports as r; print(r.__file__); print(r.template_path('compare'))",
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(line.startswith(str(target)) for line in where), where
    res = subprocess.run(
        [sys.executable, "-m", "mcviz", "report", "compare", "--help"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert "epochs" in res.stdout and "fp16" in res.stdout
    assert listing(cwd) == []
    # and a real run of the packaged template, outside the repository
    small = ["-p", "dataset", "digits", "-p", "model", "mlp", "-p", "epochs", "1", "-o", "run", "-q"]
    res = subprocess.run(
        [sys.executable, "-m", "mcviz", "report", "compare", *small],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (cwd / "run").iterdir()) == [
        "compare.ipynb",
        "index.html",
        "results.csv",
        "results.json",
    ]


# ---------------------------------------------------------------- budget parameters and "nothing fits"

BAD_COMPARE = [
    (
        ["-p", "budget", "1000", "-p", "fraction", "0.5"],
        "give budget or fraction, not both: got budget=1000 and fraction=0.5",
    ),
    (["-p", "budget", "0"], "budget must be a float > 0 or None (not with fraction), got 0"),
    (["-p", "fraction", "-0.3"], "fraction must be a float > 0 or None (not with budget), got -0.3"),
    (["-p", "budget", "lots"], "budget must be a float > 0 or None (not with fraction), got 'lots'"),
    (
        ["-p", "cost", "weight"],
        "cost must be a str, one of {size_bytes, file_bytes, gzip_bytes, params, "
        "nonzero_params, macs}, got 'weight'",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD_COMPARE, ids=[" ".join(a) for a, _ in BAD_COMPARE])
def test_bad_budget_parameters_exit_2_with_one_line_and_write_nothing(
    args, message, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["report", "compare", *args, "-o", "out"], capsys)
    assert code == 2 and out == ""
    assert err == f"mcviz report: error: {message}\n"
    assert listing(tmp_path) == []


def test_budget_and_fraction_from_the_command_line():
    from mcviz import cli

    values = reports.validate("compare", cli._collect("compare", None, [["budget", "1000"]]))
    assert (values["budget"], values["fraction"]) == (1000.0, None)
    values = reports.validate("compare", cli._collect("compare", None, [["fraction", "none"]]))
    assert (values["budget"], values["fraction"]) == (None, None)


NOTHING_FITS = [
    "import mcviz as mcv",
    "raise mcv.tradeoff.NothingFits('no configuration has size_bytes <= 1 (budget=1.0); the cheapest is '\n"
    "                               \"'kd' with size_bytes 9,876\")",
]


@pytest.mark.slow
def test_a_cell_raising_nothing_fits_is_a_bad_parameter_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    (tmp_path / "tpl").mkdir()
    template = write_template(tmp_path / "tpl", "tiny", cells=NOTHING_FITS)
    monkeypatch.chdir(tmp_path / "tpl")
    with pytest.raises(reports.ParameterError) as info:
        reports.run(template, {}, tmp_path / "out" / "deep" / "mine")
    assert str(info.value) == (
        "no configuration has size_bytes <= 1 (budget=1.0); the cheapest is 'kd' with size_bytes 9,876"
    )
    assert listing(tmp_path) == ["tpl", "tpl/tiny.ipynb"]  # no run folder, no *-FAILED, no parents
    code, out, err = run_cli(["report", str(template), "-q"], capsys)  # default folder reports/tiny-...
    assert code == 2 and out == ""
    assert err == f"mcviz report: error: {info.value}\n"
    assert listing(tmp_path) == ["tpl", "tpl/tiny.ipynb"]


@pytest.mark.slow
def test_other_cell_errors_still_fail_the_run(tmp_path):
    template = write_template(tmp_path, "tiny", cells=["raise ValueError('no configuration has it')"])
    with pytest.raises(reports.ReportError, match="ValueError: no configuration has it"):
        reports.run(template, {}, tmp_path / "out")
    assert listing(tmp_path / "out-FAILED") == ["tiny.ipynb"]


@pytest.mark.slow
def test_compare_with_a_budget_nothing_fits_exits_2_and_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small = ["-p", "dataset", "digits", "-p", "model", "mlp", "-p", "epochs", "1", "-p", "latency", "false"]
    code, out, err = run_cli(["report", "compare", *small, "-p", "budget", "1", "-o", "run", "-q"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("mcviz report: error: no configuration has size_bytes <= 1 (budget=1.0); the ")
    assert listing(tmp_path) == []
    # the same run with a budget that fits: the choice is the best row under it
    fits = ["-p", "fraction", "0.3", "-o", "run", "-q"]
    code, out, err = run_cli(["report", "compare", *small, *fits], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    table = pd.DataFrame(results["rows"])
    assert list(table["label"]) == ["baseline", "fp16", "int8:mode=static", "kd"]
    choice = mcv.tradeoff.select(table, fraction=0.3)
    assert choice["size_bytes"] <= 0.3 * table.loc[0, "size_bytes"]
    nb = nbformat.read(tmp_path / "run" / "compare.ipynb", as_version=4)
    text = "".join(
        "".join(o.get("data", {}).get("text/markdown", "")) for c in nb.cells for o in c.get("outputs", [])
    )
    assert f"the most accurate is {choice['label']!r}" in text
    assert reports.budget_summary(table, fraction=0.3) in text


# ---------------------------------------------------------------- hardening (issue #11): the runner


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"timeout": math.nan}, ValueError, "timeout must be a finite number in (0, 86400], got nan"),
        ({"timeout": 0}, ValueError, "timeout must be a finite number in (0, 86400], got 0"),
        ({"timeout": -1}, ValueError, "got -1"),
        ({"timeout": math.inf}, ValueError, "got inf"),
        ({"timeout": 86_401}, ValueError, "got 86401"),
        ({"timeout": "5"}, TypeError, "timeout must be a number in (0, 86400], got '5'"),
        ({"timeout": True}, TypeError, "got True"),
        ({"progress": "yes"}, TypeError, "progress must be True or False, got 'yes'"),
        ({"params": [("n", 3)]}, TypeError, "parameters must be a dict of name: value, got [('n', 3)]"),
        ({"params": {"n": "3"}}, TypeError, "n must be an int in [1, 10], got '3'"),
        ({"params": {"n": 11}}, ValueError, "n must be an int in [1, 10], got 11"),
        ({"out_dir": 3}, TypeError, "out_dir must be a folder that is empty or can be created, got 3"),
        ({"out_dir": ""}, ValueError, "got '' (an empty path)"),
        ({"out_dir": "tiny.ipynb"}, ValueError, "got 'tiny.ipynb' (a file)"),
    ],
)
def test_run_refuses_bad_arguments_before_anything(tmp_path, monkeypatch, kwargs, error, message):
    template = write_template(tmp_path, "tiny")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error) as info:
        reports.run(template, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert listing(tmp_path) == ["tiny.ipynb"]


def test_run_refuses_a_template_of_the_wrong_type():
    with pytest.raises(TypeError, match="template must be a name, an .ipynb path or a Template, got 3"):
        reports.run(3)


def _fail_in(monkeypatch, name: str, exc: BaseException):
    from mcviz.reports import _runner

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(_runner, name, fail)


@pytest.mark.parametrize(
    ("step", "exc", "error"),
    [
        ("_kernel_manager", OSError(28, "No space left on device"), OSError),
        ("_kernel_manager", RuntimeError("no kernel spec"), RuntimeError),
        ("_inject", ValueError("bad cell"), ValueError),
        ("_kernel_manager", KeyboardInterrupt(), reports.Interrupted),
    ],
)
def test_an_error_before_the_kernel_starts_leaves_nothing(tmp_path, monkeypatch, step, exc, error):
    template = write_template(tmp_path, "tiny")
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where the kernel folder goes
    _fail_in(monkeypatch, step, exc)
    with pytest.raises(error) as info:
        reports.run(template, {}, tmp_path / "out" / "deep" / "run")
    assert "\n" not in str(info.value)
    if error is reports.Interrupted:
        assert info.value.folder is None and "nothing was written" in str(info.value)
    assert listing(tmp_path) == ["temp", "tiny.ipynb"]  # no run folder, no parents, no kernel folder


def test_emitted_warnings_are_read_from_the_executed_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    for text in [
        "/x/train.py:12: UserWarning: cache folder /c is not writable; running without a cache\n"
        "  warnings.warn(\n",
        "/x/train.py:12: UserWarning: cache folder /c is not writable; running without a cache\n",
        "progress 3/5\n",
        "RuntimeWarning: " + "x" * 1000 + "\n",
    ]:
        cell = nbformat.v4.new_code_cell("pass")
        cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=text)]
        nb.cells.append(cell)
    nbformat.write(nb, tmp_path / "r.ipynb")
    found = reports.emitted_warnings(tmp_path)
    assert found[0] == "cell 0: UserWarning: cache folder /c is not writable; running without a cache"
    assert len(found) == 2 and found[1].startswith("cell 3: RuntimeWarning: xxx") and len(found[1]) < 400


def _wait_for(path: Path, proc, seconds: float = 240) -> str:
    deadline = time.monotonic() + seconds  # a hang guard only
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.2)
    raise AssertionError(f"the cell never started: {proc.communicate()}")


def _gone(pid: int, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "said"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")]
)
def test_a_signal_leaves_a_named_failed_folder_no_key_file_and_no_kernel(tmp_path, signum, code, said):
    """A real ``mcviz report`` process and a real signal, sent while a cell runs."""
    template = write_template(tmp_path, "slow", cells=[SLOW_CELL])
    temp, mark = tmp_path / "temp", tmp_path / "kernel.pid"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "MCVIZ_TEST_MARK": str(mark)}
    cmd = [sys.executable, "-m", "mcviz", "report", str(template), "-q", "-o", "run"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    kernel = int(_wait_for(mark, proc))
    assert [p.name for p in temp.iterdir()][0].startswith("mcviz-kernel-")  # the key file is in there
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code and out == ""
    assert err == f"mcviz report: interrupted by {said}; partial output: run-FAILED\n"
    assert listing(tmp_path / "run-FAILED") == ["slow.ipynb"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kernel.pid", "run-FAILED", "slow.ipynb", "temp"]
    assert listing(temp) == []  # no kernel folder, no connection file (it holds the key)
    assert _gone(kernel), "the kernel outlived the report"


CACHE_CELLS = [
    "import pandas as pd\nimport mcviz as mcv",
    "data = mcv.data.load('digits')\nmodel = mcv.train.baseline('mlp', data, epochs=1, progress=False)",
    "mcv.reports.record(pd.DataFrame({'label': ['mlp'], 'accuracy': [mcv.train.evaluate(model, data)]}))",
]


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["a file", "a read-only folder"])
def test_a_cache_that_cannot_be_written_never_fails_a_report(tmp_path, cache):
    """MCVIZ_CACHE_DIR unusable: the report still runs (the cache degrades to none, with one
    warning, in the library), and the command says so once on stderr."""
    template = write_template(tmp_path, "cached", cells=CACHE_CELLS)
    where, prefix = tmp_path / "cache", []
    if cache == "a file":
        where.write_text("not a folder")
    else:
        where.mkdir()
        where.chmod(0o555)
        prefix = unprivileged()
    env = {**os.environ, "MCVIZ_CACHE_DIR": str(where)}
    cmd = [*prefix, sys.executable, "-m", "mcviz", "report", str(template), "-q", "-o", "run"]
    try:
        res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    finally:
        if where.is_dir():
            where.chmod(0o755)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "run"
    warnings = [line for line in res.stderr.splitlines() if line.startswith("mcviz report: warning: ")]
    assert len(warnings) == 1 and "cache" in warnings[0].lower(), res.stderr
    assert json.loads((tmp_path / "run" / "results.json").read_text())["rows"][0]["label"] == "mlp"
    assert where.is_file() if cache == "a file" else listing(where) == []


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: reports.record([1, 2]), TypeError, "table must be a pandas DataFrame, got list"),
        (lambda: reports.summary({"label": []}), TypeError, "table must be a pandas DataFrame, got dict"),
        (
            lambda: reports.summary(_table(), cost="bytes"),
            ValueError,
            "table needs a column 'bytes'; its columns:",
        ),
        (lambda: reports.summary(_table().drop(columns="label")), ValueError, "table needs a column 'label'"),
        (lambda: reports.budget_summary(None, fraction=0.5), TypeError, "got NoneType"),
    ],
)
def test_the_template_helpers_refuse_what_is_not_a_results_table(call, error, message, tmp_path, monkeypatch):
    monkeypatch.setenv(reports.RESULTS_ENV, str(tmp_path))
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)
    assert listing(tmp_path) == []


def test_an_unusable_temporary_directory_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    template = write_template(tmp_path, "tiny")
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "not-a-folder"))
    with pytest.raises(OSError) as info:
        reports.run(template, {}, tmp_path / "out")
    where = str(tmp_path / "not-a-folder")
    assert str(info.value) == (
        f"cannot create the kernel's temporary folder in {where!r}: not a directory; "
        "set TMPDIR to a writable folder"
    )
    assert listing(tmp_path) == ["not-a-folder", "tiny.ipynb"]


def test_stopping_on_signals_turns_sigterm_into_interrupted_once_and_restores(monkeypatch):
    before = signal.getsignal(signal.SIGTERM)
    if before is not signal.SIG_DFL:
        pytest.skip("a SIGTERM handler is installed already (the context leaves it alone)")
    with pytest.raises(reports.Interrupted) as info:
        with reports.stopping_on_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at once; this is a hang guard only
    assert info.value.signum == signal.SIGTERM and info.value.folder is None
    assert str(info.value) == "report interrupted by SIGTERM; nothing was written"
    assert signal.getsignal(signal.SIGTERM) is before
    with reports.stopping_on_signals():
        pass
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("wrote", [False, True])
def test_a_signal_while_the_kernel_starts_leaves_a_named_folder_or_nothing(tmp_path, monkeypatch, wrote):
    import papermill

    template = write_template(tmp_path, "tiny")
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    def stopped(nb, output, **kwargs):
        if wrote:
            nbformat.write(nb, output)
        raise reports.Interrupted(signal.SIGTERM)

    monkeypatch.setattr(papermill, "execute_notebook", stopped)
    with pytest.raises(reports.Interrupted) as info:
        reports.run(template, {}, tmp_path / "out" / "run")
    assert info.value.signum == signal.SIGTERM
    if wrote:
        assert info.value.folder == tmp_path / "out" / "run-FAILED"
        assert listing(tmp_path) == [
            "out",
            "out/run-FAILED",
            "out/run-FAILED/tiny.ipynb",
            "temp",
            "tiny.ipynb",
        ]
    else:
        assert info.value.folder is None
        assert listing(tmp_path) == ["temp", "tiny.ipynb"]
