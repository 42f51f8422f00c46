"""A pytest plugin that teaches nbval the tolerances of ``mcviz.reproduce``.

nbval compares every output of a re-executed notebook with the committed one, exactly. On another
CPU a trained model's accuracy can move by one test image and a gzip size by a few bytes
(``mcviz.reproduce`` says which values and why), so an exact comparison would fail on a reader's
machine although the report reproduced. With this plugin:

- a pandas table (an output whose HTML is a DataFrame) is compared cell by cell with
  ``mcviz.reproduce.compare_tables``: exactly, except the columns that have a tolerance;
- every other output is compared as nbval does (after its sanitize patterns), exactly, until a
  table of the notebook has differed within its tolerance; from then on the numbers in the later
  outputs (summary sentences, figures) may differ too, since they are computed from those tables,
  while every word and the structure must still match.

With ``pytest -n N --dist loadgroup`` it also keeps each notebook's cells on one worker (they share
one kernel). The repository's ``conftest.py`` loads it (``pytest_plugins``), so ``pytest --nbval
reports/examples`` uses it from the repository root. It changes nothing for non-nbval tests.
"""

from __future__ import annotations

import copy
import re

import pytest

from mcviz import reproduce

_NUMBER = re.compile(r"[-+]?(\d[\d,]*\.?\d*|\.\d+)([eE][-+]?\d+)?")
_MASK = "#"


def pytest_configure(config):
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:  # nbval not installed: nothing to teach
        return
    if getattr(IPyNbCell.compare_outputs, "_mcviz", False):
        return
    exact = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        return _compare(self, exact, test, ref, skip_compare)

    compare_outputs._mcviz = True
    IPyNbCell.compare_outputs = compare_outputs


def _compare(cell, exact, test, ref, skip_compare) -> bool:
    notebook = cell.parent  # one IPyNbFile per notebook: it carries whether a table moved
    ref_tables, ref_rest = _split(ref)
    test_tables, test_rest = _split(test)
    cell.comparison_traceback = []
    if len(ref_tables) != len(test_tables):
        cell.comparison_traceback.append(
            f"expected {len(ref_tables)} table output(s), got {len(test_tables)}"
        )
        return False
    for expected, actual in zip(ref_tables, test_tables, strict=True):
        problems = reproduce.compare_tables(expected, actual)
        if problems:
            cell.comparison_traceback.append("table differs beyond mcviz.reproduce.TOLERANCES:")
            cell.comparison_traceback += ["  " + p for p in problems[:20]]
            return False
        if expected != actual:
            notebook._mcviz_moved = True
    if getattr(notebook, "_mcviz_moved", False):
        ref_rest, test_rest = _masked(cell, ref_rest), _masked(cell, test_rest)
    return exact(cell, test_rest, ref_rest, skip_compare)


def _split(outputs):
    """Returns (parsed tables, the other outputs) of a cell's outputs."""
    tables, rest = [], []
    for out in outputs:
        html = out.get("data", {}).get("text/html") if hasattr(out, "get") else None
        parsed = reproduce.parse_html_table(html) if isinstance(html, str) else None
        if parsed is None:
            rest.append(out)
        else:
            tables.append(parsed)  # its text/plain is the same table: not compared twice
    return tables, rest


def _masked(cell, outputs):
    """Returns copies of ``outputs`` with every number replaced by '#' (after nbval's own
    sanitize patterns, so a pattern that matches digits still applies first)."""

    def mask(value):
        if isinstance(value, str):
            return _NUMBER.sub(_MASK, cell.sanitize(value))
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, (int, float)):
            return _MASK
        if isinstance(value, dict):
            if "bdata" in value and "dtype" in value:  # plotly's base64-encoded number arrays
                return {**value, "bdata": _MASK}
            return {k: mask(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mask(v) for v in value]
        return value

    out = []
    for o in outputs:
        o = copy.deepcopy(o)
        for key in list(o.keys()):
            if key == "data":
                o["data"] = {k: mask(v) for k, v in o["data"].items()}
            elif key not in ("output_type", "metadata", "execution_count", "name"):
                o[key] = mask(o[key])
        out.append(o)
    return out


def pytest_addoption(parser):
    parser.addini(
        "one_worker_files",
        "test files whose tests all run on one pytest-xdist worker (an expensive module fixture "
        "is then built once, not once per worker)",
        type="linelist",
        default=[],
    )


@pytest.hookimpl(optionalhook=True)  # pytest -p no:xdist has no such hook: nothing to register then
def pytest_xdist_make_scheduler(config, log):
    """With ``pytest -n N --dist loadgroup``, keeps each notebook's cells on one worker.

    nbval runs a notebook's cells in order in one kernel, so they must not be spread over
    workers. pytest-xdist's own ``xdist_group`` marks did not group anything with the pinned
    pytest 9.2 / pytest-xdist 3.8 (every test was scheduled on its own), so this scheduler groups
    by the test id itself: an nbval notebook is one unit of work, so is a test file listed in the
    ``one_worker_files`` ini option, a test id ending in ``@name`` belongs to group ``name``, and
    every other test is a unit of its own.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    whole_files = set(config.getini("one_worker_files"))

    class NotebookScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]"):
                return nodeid.rsplit("@", 1)[-1]
            path = nodeid.partition("::")[0]
            return path if path.endswith(".ipynb") or path in whole_files else nodeid

    return NotebookScheduling(config, log)
