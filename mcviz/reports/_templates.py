"""Report templates: find them, read one ONCE into a :class:`Template`, and check values against
its declared parameters (the grammar is ``mcviz._params``'s)."""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcviz import _paths, _yaml
from mcviz._checks import PATH_LIMIT, shorten
from mcviz._params import Param, ParameterError, parse_cell
from mcviz._params import validate as _validate

MAX_TEMPLATE_BYTES = 20_000_000  # a template is a few kB; an executed example a few MB


@dataclass(frozen=True, eq=False)
class Template:
    """A template read from disk once: its name, path, notebook, parameters and description."""

    name: str
    path: Path
    notebook: Any  # an nbformat NotebookNode; copy it before changing it
    parameters: tuple[Param, ...]
    description: str

    def validate(self, params: dict[str, Any] | None = None) -> dict:
        """Returns every parameter value (defaults filled in), checked and normalized; ``params``
        is not modified.

        Raises:
            ParameterError: (a ValueError) one line naming the parameter and what is allowed.
        """
        return _validate(list(self.parameters), {} if params is None else params, template=self.name)


def templates() -> dict[str, Path]:
    """Return the packaged templates, name -> notebook path (works from a wheel too)."""
    root = importlib.resources.files("mcviz.notebooks")
    return {
        entry.name[: -len(".ipynb")]: Path(str(entry))
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".ipynb") and not entry.name.startswith(".")
    }


def template_path(template: str | os.PathLike) -> Path:
    """Return the notebook path of a template given by name or by ``.ipynb`` path.

    Raises:
        TypeError: not a str or path. FileNotFoundError: no such template (the message lists the
            packaged ones) or no such notebook. ValueError: an ``.ipynb`` path that is a folder,
            unreadable, or empty.
    """
    text = _paths.path_text(template, "template", "a template name or an .ipynb path")
    if text.endswith(".ipynb"):
        try:
            return _paths.check_path(text, "template", kind="file", allowed="an .ipynb notebook file")
        except ValueError as exc:
            if str(exc).endswith("(not found)"):
                raise FileNotFoundError(f"template notebook {shorten(text, PATH_LIMIT)} not found") from None
            raise
    found = templates()
    if text not in found:
        raise FileNotFoundError(f"unknown template {shorten(text, PATH_LIMIT)}; available: {', '.join(found) or 'none'}")
    return found[text]


def template_name(template: str | os.PathLike | Template) -> str:
    """Return a template's name: the packaged name, or the stem of an ``.ipynb`` path."""
    if isinstance(template, Template):
        return template.name
    text = _paths.path_text(template, "template", "a template name or an .ipynb path")
    return Path(text).stem if text.endswith(".ipynb") else text


def load(template: str | os.PathLike | Template) -> Template:
    """Return the template read once from disk (a Template is returned as it is).

    Raises:
        FileNotFoundError: no such template. ParameterError: its parameters cell is malformed.
    """
    if isinstance(template, Template):
        return template
    import nbformat

    name = template_name(template)
    path = template_path(template)
    try:
        nb = nbformat.reads(
            _yaml.read_text(path, f"template {name}", max_bytes=MAX_TEMPLATE_BYTES), as_version=4
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # not JSON, not a notebook
        raise ParameterError(
            f"template {shorten(str(path), PATH_LIMIT)} is not a readable notebook ({shorten(str(exc))})"
        ) from None
    cell = parameters_cell(nb, name)
    return Template(
        name=name,
        path=path,
        notebook=nb,
        parameters=tuple(parse_cell(cell.source, where=f"template {name}")),
        description=_description(nb),
    )


def parameters(template: str | os.PathLike | Template) -> list[Param]:
    """Return the parameters the template declares, in cell order; the template is not run."""
    return list(load(template).parameters)


def description(template: str | os.PathLike | Template) -> str:
    """Return the first line of the template's first markdown cell, without ``#`` marks."""
    return load(template).description


def validate(template: str | os.PathLike | Template, params: dict[str, Any] | None = None) -> dict:
    """Return every parameter value of ``template`` (defaults filled in), checked and normalized.

    Path parameters come back absolute (the kernel runs in the template's folder). ``params``
    is not modified.

    Raises:
        ParameterError: (a ValueError) one line naming the parameter and what is allowed.
    """
    return load(template).validate(params)


def parameters_cell(nb, name: str):
    """Return the one cell of ``nb`` tagged ``parameters``; raise ParameterError otherwise."""
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"template {name} needs exactly one cell tagged 'parameters'")
    return cells[0]


def _description(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.strip():
            return cell.source.strip().splitlines()[0].lstrip("#").strip()
    return ""
