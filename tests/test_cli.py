"""The ``mcviz`` command: --version, report --list / --help, parameter errors, runs."""

from __future__ import annotations

import codecs
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest_reports import listing, run_cli, unprivileged, write_template

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
    assert "str, one of {seed_cnn, lenet300, lenet5, mlp, small_cnn, vgg_small}; default 'seed_cnn'" in out
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
    (["-f", "missing.yaml"], "-f must be a YAML file of parameters, got 'missing.yaml' (not found)"),
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
    (cwd / "p.yaml").write_text("epochs: 3\nmodel: 001\n")  # a str parameter keeps what was written
    code, _, err = run_cli(["report", "compare", "-f", "p.yaml"], capsys)
    assert code == 2 and "model must be a str" in err and "got '001'" in err
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


# ---------------------------------------------------------------- hardening (issue #11): every CLI input

BAD_INPUT = [
    (["-p", "epochs", "010"], "epochs must be a decimal number without a leading zero, got '010'"),
    (["-p", "latency", "yes"], "latency must be a bool, got 'yes' (yes/no/on/off are not booleans here"),
    (
        ["-p", "seed", "1180591620717411303424"],
        "seed must be an int in [0, 4,294,967,295], got 1180591620717411303424",
    ),
    (["-p", "split_seed", "8589934592"], "split_seed must be an int in [0, 4,294,967,295], got 8589934592"),
    (["-p", "epochs", "3", "-p", "epochs", "4"], "-p epochs is given twice ('3' and '4'); give it once"),
    (["-p", "methods", "fp16 +"], "has an empty method after the last '+'"),
    (["-p", "methods", "[]"], "with at least one item, got []"),
    (
        ["-p", "model", "caf\udce9"],
        "model must be a str, one of {seed_cnn, lenet300, lenet5, mlp, small_cnn, vgg_small}, got "
        "'caf\\udce9' (not UTF-8 text)",
    ),  # bytes that are not UTF-8 arrive as surrogates
    (["-p", "methods", "[caf\udce9]"], "(not UTF-8 text)"),
    (
        ["-o", "caf\udce9"],
        "-o must be a folder that is empty or can be created, got 'caf\\udce9' (not UTF-8 text)",
    ),
    (["-p", "methods", "weights:bits=4,bits=8"], "option 'bits' of 'weights' is given twice"),
    (["-p", "methods", "[fp16, *a]"], "anchors and aliases are not allowed"),
    (["-p", "model", "x" * 20_000], "model must be at most 10,000 characters, got 20,000"),
    (["-p", "x" * 5000, "1"], "unknown parameter 'xxxxxxxx"),
    (["--timeout", "nan"], "--timeout (seconds) must be a finite number in (0, 86400], got nan"),
    (["--timeout", "0"], "--timeout (seconds) must be a finite number in (0, 86400], got 0"),
    (["--timeout", "-1"], "got -1"),
    (["--timeout", "inf"], "got inf"),
    (["--timeout", "1e9"], "got 1000000000.0"),
    (["--timeout", "soon"], "--timeout (seconds) must be a number in (0, 86400], got 'soon'"),
    (["--timeout", "true"], "got True"),
    (["--timeout", "1", "--timeout", "2"], "argument --timeout: given twice; give it once"),
    (["-o", "a", "-o", "b"], "argument -o/--output: given twice; give it once"),
    (["-f", "a.yaml", "-f", "b.yaml"], "argument -f/--file: given twice; give it once"),
    (["-o", ""], "-o must be a folder that is empty or can be created, got '' (an empty path)"),
    (["-p", "epochs"], "argument -p/--param: expected 2 arguments"),
    (["--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[" ".join(a)[:40] for a, _ in BAD_INPUT])
def test_bad_input_exits_2_with_one_short_line_and_writes_nothing(args, message, capsys, cwd):
    code, out, err = run_cli(["report", "compare", *args], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "error: " in err and message in err
    assert len(err) < 1200  # what is echoed is shortened
    assert listing(cwd) == []


LAUGHS = "epochs: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n"
    for a, b in zip(["a", *"bcdefgh"], "bcdefghi", strict=True)
)

BAD_FILES = [
    (
        LAUGHS.encode(),
        "parameters file 'p.yaml' uses an anchor (&a); anchors and aliases are not allowed (line 1)",
    ),
    (b"epochs: 3\nmodel: mlp\nepochs: 4\n", "parameters file 'p.yaml' gives 'epochs' twice (lines 1 and 3)"),
    (b"epochs: 3\n\tmodel: mlp\n", "a tab where YAML needs spaces (indent with spaces, not tabs) at line 2"),
    (
        "model: m\xe9\n".encode("latin-1"),
        "parameters file 'p.yaml' is not UTF-8 text (byte 0xE9 at offset 8)",
    ),
    ("epochs: 3\n".encode("utf-16-le"), "holds NUL bytes (UTF-16 without a byte-order mark, or binary)"),
    (b"- just\n- a list\n", "parameters file 'p.yaml' must be a YAML mapping of name: value, got a list"),
    (b"just a word\n", "must be a YAML mapping of name: value, got a single value"),
    (b"epochs: {a: 1}\n", "epochs must be an int in [1, 200], got a mapping {'a': '1'}"),
    (
        b"methods: [[fp16]]\n",
        "methods must be a list of method specs (see mcv.registry.describe()), got a nested value",
    ),
    (b"epochs: 3\n---\nepochs: 4\n", "holds several YAML documents ('---'); give one mapping (line 2)"),
    (b"x: !!python/object/apply:os.system ['echo hi']\n", "tags are not allowed"),
    (b"~: 3\n", "unknown parameter '~' for compare"),
    (
        b"latency: no\n",
        "latency must be a bool, got 'no' (yes/no/on/off are not booleans here: write true or false)",
    ),
    (b"epochs: 010\n", "epochs must be a decimal number without a leading zero, got '010'"),
    (b'epochs: "3"\n', "epochs must be an int in [1, 200], got '3'"),  # quoted: a str
    (b"epochs: 1:30\n", "epochs must be an int in [1, 200], got '1:30'"),  # not base 60
    (b"# " + b"x" * 70_000 + b"\n", "parameters file 'p.yaml' must be at most 65,536 bytes, got more"),
]


@pytest.mark.parametrize(("data", "message"), BAD_FILES, ids=[m[:40] for _, m in BAD_FILES])
def test_bad_parameter_files_exit_2_with_one_short_line(data, message, capsys, cwd):
    (cwd / "p.yaml").write_bytes(data)
    code, out, err = run_cli(["report", "compare", "-f", "p.yaml", "-o", "out"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert message in err and len(err) < 600
    assert listing(cwd) == ["p.yaml"]


@pytest.mark.parametrize(
    "data",
    [
        codecs.BOM_UTF8 + b"epochs: 5\nlr: 1e-3\nlatency: false\n",
        "epochs: 5\nlr: 1e-3\nlatency: false\n".encode("utf-16"),
        b"epochs: 5  # a comment\nlr: 1.0e-3\nlatency: FALSE\n",
    ],
    ids=["utf-8-bom", "utf-16-bom", "comments"],
)
def test_parameter_files_read_as_written(data, cwd):
    (cwd / "p.yaml").write_bytes(data)
    assert cli._collect("compare", "p.yaml", []) == {"epochs": 5, "lr": 0.001, "latency": False}


def test_an_empty_parameter_file_sets_nothing(cwd):
    (cwd / "p.yaml").write_text("# nothing yet\n")
    assert cli._collect("compare", "p.yaml", []) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "folder"], "-f must be a YAML file of parameters, got 'folder' (a folder, not a file)"),
        (["-f", ""], "-f must be a YAML file of parameters, got '' (an empty path)"),
        (["-o", "file.txt"], "-o must be a folder that is empty or can be created, got 'file.txt' (a file)"),
        (["-o", "file.txt/run"], "('" + os.sep),  # a file in the way of the folder
        (
            ["-p", "dataset", "idx", "-p", "root", "file.txt"],
            "root must be an existing folder or None (required "
            "if dataset is \"idx\"), got 'file.txt' (a file, not a folder)",
        ),
        (["-p", "dataset", "idx", "-p", "root", ""], 'root is required when dataset is "idx"'),
    ],
)
def test_every_path_is_checked_for_its_kind(args, message, capsys, cwd):
    (cwd / "folder").mkdir()
    (cwd / "file.txt").write_text("x")
    code, out, err = run_cli(["report", "compare", *args], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert message in err
    assert listing(cwd) == ["file.txt", "folder"]


@pytest.mark.parametrize("template", ["folder.ipynb", "broken.ipynb", "x" * 5000 + ".ipynb"])
def test_a_bad_template_path_exits_2_with_one_line(template, capsys, cwd):
    (cwd / "folder.ipynb").mkdir()
    (cwd / "broken.ipynb").write_text("{not json")
    code, out, err = run_cli(["report", template], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert len(err) < 600
    assert listing(cwd) == ["broken.ipynb", "folder.ipynb"]


def test_an_output_folder_that_cannot_be_written_exits_2_and_leaves_nothing(capsys, cwd, monkeypatch):
    from mcviz.reports import _runner

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    template = write_template(cwd, "tiny")
    monkeypatch.setattr(_runner.tempfile, "mkdtemp", refuse)  # root cannot be refused for real here
    code, out, err = run_cli(["report", str(template), "-o", "deep/new/run", "-q"], capsys)
    assert code == 2 and out == ""
    assert err == (
        f"mcviz report: error: cannot write the run folder {str(cwd / 'deep/new/run')!r}: permission denied "
        f"in {str(cwd)!r}; choose a writable output folder\n"
    )
    assert listing(cwd) == ["tiny.ipynb"]  # deep/ and deep/new/ were removed again


def test_type_errors_from_the_library_exit_2(capsys, cwd, monkeypatch):
    def typed(*args, **kwargs):
        raise TypeError("threads must be an int in [1, 256], got '2'")

    monkeypatch.setattr(reports, "run", typed)
    code, out, err = run_cli(["report", "compare"], capsys)
    assert (code, out, err) == (2, "", "mcviz report: error: threads must be an int in [1, 256], got '2'\n")


@pytest.mark.parametrize(
    ("raised", "code", "message"),
    [
        (KeyboardInterrupt(), 130, "mcviz report: interrupted by Ctrl-C; nothing was written\n"),
        (
            reports.Interrupted(signal.SIGTERM),
            143,
            "mcviz report: interrupted by SIGTERM; nothing was written\n",
        ),
        (
            reports.Interrupted(signal.SIGINT, Path("reports/x-FAILED")),
            130,
            "mcviz report: interrupted by Ctrl-C; partial output: reports/x-FAILED\n",
        ),
        (
            reports.Interrupted(signal.SIGHUP),
            129,
            "mcviz report: interrupted by SIGHUP; nothing was written\n",
        ),
    ],
)
def test_an_interrupted_run_names_its_failed_folder(raised, code, message, capsys, cwd, monkeypatch):
    def interrupted(*args, **kwargs):
        raise raised

    monkeypatch.setattr(reports, "run", interrupted)
    assert run_cli(["report", "compare"], capsys) == (code, "", message)


def test_timeout_is_read_as_seconds():
    assert cli._timeout(None) is None
    assert cli._timeout("5") == 5.0 and cli._timeout("1e3") == 1000.0 and cli._timeout("86400") == 86400.0
    with pytest.raises(ValueError, match=r"--timeout \(seconds\) must be a finite number in \(0, 86400\]"):
        cli._timeout("86401")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["cwd", "-o"])
def test_a_read_only_folder_exits_2_and_writes_nothing(tmp_path, where):
    """A real read-only folder (root runs this without the capabilities that ignore permissions)."""
    template = write_template(tmp_path, "tiny")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    out = [] if where == "cwd" else ["-o", str(locked / "run")]
    try:
        res = subprocess.run(
            [*unprivileged(), sys.executable, "-m", "mcviz", "report", str(template), "-q", *out],
            cwd=locked if where == "cwd" else tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode == 2 and res.stdout == "", res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "cannot write the run folder" in res.stderr and "permission denied" in res.stderr
        assert listing(locked) == []
    finally:
        locked.chmod(0o755)
