"""Helpers for the report tests: tiny templates written into a test's tmp_path.

They need no trained model, so the runner, the CLI and the HTML export are tested on their own.
Not a conftest.py (the lead owns that); test modules import it by name.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

TINY_PARAMETERS = """n = 2  # [1, 10] number of rows
name = "x"  # a label, recorded verbatim
items = ["a"]  # list items
fail = False  # raise ValueError("boom") in the last cell
die = False  # kill the kernel in the last cell"""

TINY_CELLS = [
    "import os, sys\nimport pandas as pd\nimport plotly.graph_objects as go\nimport mcviz as mcv",
    "go.Figure(go.Bar(x=list(range(n)), y=list(range(n))))",
    "table = mcv.reports.record(pd.DataFrame({\n"
    "    'label': [name] * n, 'row': list(range(n)), 'items': ['|'.join(items)] * n,\n"
    "    'executable': [sys.executable] * n, 'cwd': [os.getcwd()] * n,\n"
    "    'omp': [os.environ.get('OMP_NUM_THREADS')] * n,\n"
    "    'renderer': [os.environ.get('PLOTLY_RENDERER')] * n,\n"
    "}))\ntable",
    "if fail:\n    raise ValueError('boom')\nif die:\n    os._exit(1)",
]


def write_template(
    folder: Path, name: str = "tiny", *, parameters: str = TINY_PARAMETERS, cells: list[str] | None = None
) -> Path:
    """Write a template notebook ``folder/name.ipynb`` and return its path."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# Tiny report {name}"), params]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in (TINY_CELLS if cells is None else cells)]
    path = Path(folder) / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def listing(folder: Path) -> list[str]:
    """Return every entry under ``folder`` (hidden ones too), relative, sorted."""
    folder = Path(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """Runs ``mcviz ARGV`` in-process; returns (exit code, stdout, stderr)."""
    from mcviz import cli

    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def unprivileged() -> list[str]:
    """Returns a command prefix under which folder permissions hold (root ignores them): none for
    a normal user; for root, ``setpriv`` without the capabilities that override them. Skips the
    test when neither works."""
    import os
    import shutil

    import pytest

    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: folder permissions cannot be enforced")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


SLOW_CELL = (
    "import os, pathlib, time\n"
    "pathlib.Path(os.environ['MCVIZ_TEST_MARK']).write_text(str(os.getpid()))  # the kernel's pid\n"
    "time.sleep(120)"
)
