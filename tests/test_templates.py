"""Rules every report template follows; a new template in notebooks/ joins these tests by itself."""

from __future__ import annotations

import ast

import nbformat
import pytest
from conftest_reports import run_cli

from mcviz import reports

TEMPLATES = pytest.mark.parametrize("name", sorted(reports.templates()))


@TEMPLATES
def test_template_follows_the_template_rules(name):
    nb = nbformat.read(reports.template_path(name), as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") for c in code)
    assert len([c for c in code if "parameters" in c.metadata.get("tags", [])]) == 1
    for cell in code:  # templates hold parameters, calls and displays; logic lives in mcviz
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.Lambda, ast.ClassDef)), cell.source
    ignored = [c for c in code if "NBVAL_IGNORE_OUTPUT" in c.source]
    assert len(ignored) == 1 and "timing" in ignored[0].source and "latency" in ignored[0].source


@TEMPLATES
def test_help_lists_every_parameter_with_its_default(name, capsys):
    code, out, _ = run_cli(["report", name, "--help"], capsys)
    assert code == 0
    for p in reports.parameters(name):
        line = next(x for x in out.splitlines() if x.strip().startswith(p.name + " "))
        assert f"default {p.default!r}" in line
