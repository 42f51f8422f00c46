"""mcviz.reproduce's tolerances, and the nbval plugin (mcviz._nbval) that applies them to the
committed example reports."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from mcviz import reproduce

ROOT = Path(__file__).resolve().parent.parent


def _table(df: pd.DataFrame):
    return reproduce.parse_html_table(df._repr_html_())


BASE = pd.DataFrame(
    {"label": ["baseline", "int8"], "params": [1000, 1000], "size_bytes": [4000, 1012],
     "gzip_bytes": [3700, 980], "accuracy": [0.911, 0.905]}
)


def test_parse_reads_columns_index_and_cells():
    columns, rows = _table(BASE)
    assert columns == list(BASE.columns)
    assert rows == [
        ["0", "baseline", "1000", "4000", "3700", "0.911"],
        ["1", "int8", "1000", "1012", "980", "0.905"],
    ]
    named = _table(BASE.set_index("label"))
    assert named[0] == ["params", "size_bytes", "gzip_bytes", "accuracy"]
    assert [r[0] for r in named[1]] == ["baseline", "int8"]
    assert reproduce.parse_html_table("<p>no table</p>") is None


def test_equal_tables_agree():
    assert reproduce.compare_tables(_table(BASE), _table(BASE.copy())) == []


@pytest.mark.parametrize(
    ("column", "value", "ok"),
    [
        ("accuracy", 0.910, True),  # one test image of 1,000
        ("accuracy", 0.913, True),  # two
        ("accuracy", 0.915, False),  # four: a real change
        ("gzip_bytes", 3730, True),  # 0.8%
        ("gzip_bytes", 3800, False),  # 2.7%
        ("size_bytes", 4003, True),  # 0.075%: a code moved between layers
        ("size_bytes", 4010, False),
        ("params", 1001, False),  # no tolerance: exact
        ("label", "fp16", False),
    ],
)
def test_each_column_has_its_tolerance(column, value, ok):
    other = BASE.copy()
    other.loc[0, column] = value
    problems = reproduce.compare_tables(_table(BASE), _table(other))
    assert (problems == []) is ok, problems
    if not ok:
        assert len(problems) == 1 and column in problems[0] and "\n" not in problems[0]


def test_shape_and_index_must_match():
    assert "columns differ" in reproduce.compare_tables(_table(BASE), _table(BASE.drop(columns="params")))[0]
    assert "rows" in reproduce.compare_tables(_table(BASE), _table(BASE.iloc[:1]))[0]
    assert reproduce.compare_tables(_table(BASE), _table(BASE.set_axis([5, 6])))


def test_close_reads_numbers_in_their_displayed_forms():
    assert reproduce.close("accuracy", "91.0%", "91.1%") is False  # percent points are not fractions
    assert reproduce.close("size_bytes", "48,417", "48,418")
    assert reproduce.close("params", "nan", "NaN")
    assert not reproduce.close("params", "1", "x")


def test_every_tolerance_says_why():
    for column, tol in reproduce.TOLERANCES.items():
        assert tol.why and (tol.abs > 0 or tol.rel > 0), column


# ---- the nbval plugin, on tiny notebooks executed for real ---------------------------------

CELLS = [
    "import pandas as pd\nfrom IPython.display import Markdown, display",
    "table = pd.DataFrame({'label': ['a', 'b'], 'params': [10, 20], 'accuracy': [0.911, 0.905]})\ntable",
    "best = table.loc[table.accuracy.idxmax()]\n"
    "display(Markdown(f\"The best is {best.label} at {best.accuracy:.3f}.\"))",
]


def _notebook(folder: Path, name: str, edit) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    edit(nb)  # the committed outputs, as another machine might have written them
    nbformat.write(nb, folder / f"{name}.ipynb")


def _replace(cell: int, old: str, new: str):
    def edit(nb):
        for out in nb.cells[cell].outputs:
            for mime, value in out.get("data", {}).items():
                if isinstance(value, str):
                    out["data"][mime] = value.replace(old, new)

    return edit


@pytest.mark.slow
def test_nbval_accepts_a_moved_image_and_rejects_real_changes(tmp_path):
    def both(*edits):
        return lambda nb: [e(nb) for e in edits]

    cases = {
        "same": (lambda nb: None, True),
        # one test image flipped elsewhere: the table within tolerance, the sentence's number follows it
        "one_image": (both(_replace(1, "0.911", "0.910"), _replace(2, "0.911", "0.910")), True),
        "big_change": (both(_replace(1, "0.911", "0.931"), _replace(2, "0.911", "0.931")), False),
        "exact_column": (_replace(1, "<td>20</td>", "<td>21</td>"), False),
        # no table moved, so the sentence must match exactly
        "number_alone": (_replace(2, "0.911", "0.910"), False),
        # a table moved, but the words of the sentence must still match
        "words": (both(_replace(1, "0.911", "0.910"), _replace(2, "best", "worst")), False),
    }
    for name, (edit, _) in cases.items():
        _notebook(tmp_path, name, edit)
    report = tmp_path / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path), "--nbval", "-p", "mcviz._nbval",
         "-p", "no:cacheprovider", "-q", f"--junitxml={report}", "--rootdir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    failed: dict[str, bool] = {}
    for case in ET.parse(report).getroot().iter("testcase"):  # classname: "<notebook>.ipynb"
        notebook = case.get("classname", "").removesuffix(".ipynb")
        failed[notebook] = failed.get(notebook, False) or case.find("failure") is not None
    assert set(failed) == set(cases)
    for name, (_, ok) in cases.items():
        assert failed[name] is (not ok), name
