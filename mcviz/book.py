"""The lesson book: every lesson executed and exported as a static HTML site that works offline.

``python -m mcviz.book`` (``make book``) executes each ``lessons/NN_*.ipynb`` with nbclient in
this environment's ``python3`` kernel, keeps the executed notebook in a cache (keyed by the
lesson's bytes and mcviz's own source, so an unchanged lesson is not run again), and writes one
page per lesson plus ``index.html``:

- figures: plotly outputs become divs, with the installed ``plotly.min.js`` inlined once per page
  (``mcviz._html``, the report export); nothing is loaded from a CDN;
- widgets: a page cannot run the kernel, so each widget shows its initial state as static HTML
  drawn from the widget state saved at execution time (sliders, menus and toggles as disabled
  controls at their value; a plotly ``FigureWidget`` as the figure it showed). No widget
  JavaScript is needed;
- navigation: every page links to the index and to the previous and next lesson.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import html
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
_CHOICES = ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel")
_SLIDERS = ("IntSliderModel", "FloatSliderModel", "FloatLogSliderModel", "SelectionSliderModel")
# inline styles: nbconvert's page escapes a <style> element in a cell
_W = "display:inline-block;margin:2px 8px 2px 0;font-family:sans-serif;font-size:13px"
_ON = "margin:0 1px;padding:2px 8px;background:#2a6fdb;color:#fff"
_OFF = "margin:0 1px;padding:2px 8px"


def lessons(folder: str | os.PathLike) -> list[Path]:
    """Returns the lesson notebooks ``NN_*.ipynb`` of ``folder``, in order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"lessons folder {os.fspath(folder)!r} does not exist")
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no lesson notebooks (NN_name.ipynb) in {os.fspath(folder)!r}")
    return found


def cache_key(lesson: Path) -> str:
    """Returns the cache key of an executed lesson: its bytes, mcviz's source and torch's version."""
    import torch

    import mcviz

    digest = hashlib.sha256(lesson.read_bytes())
    for path in sorted(Path(mcviz.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    digest.update(f"{mcviz.__version__}|{torch.__version__}".encode())
    return digest.hexdigest()[:24]


# Run after the lesson's last cell, in its kernel: each live plotly FigureWidget as the figure it
# shows. The saved widget state holds only a FigureWidget's first data (traces added or updated
# later travel as messages), so the page draws the figure from this snapshot.
_SNAPSHOT = """\
import json as _mcviz_json
try:
    import plotly.graph_objects as _mcviz_go
    from ipywidgets.widgets.widget import _instances as _mcviz_widgets
    print(_mcviz_json.dumps({_id: _mcviz_json.loads(_w.to_json()) for _id, _w in list(_mcviz_widgets.items())
                             if isinstance(_w, _mcviz_go.FigureWidget)}))
except ImportError:
    print("{}")
"""
FIGURES = "mcviz_book_figures"


def execute(lesson: Path, *, cache: Path, timeout: int = 600) -> nbformat.NotebookNode:
    """Returns ``lesson`` executed (from ``cache`` when it ran before); the lesson file is unchanged.

    The kernel runs in the lesson's folder with the report environment (plotly's mimetype
    renderer, one thread, no progress bars); widget state is saved in the notebook, and the
    figure of every FigureWidget in its metadata (``FIGURES``, by widget model id).
    """
    from nbclient import NotebookClient

    from mcviz.reports._environment import KERNEL_ENV

    cached = cache / f"{lesson.stem}-{cache_key(lesson)}.ipynb"
    if cached.exists():
        return nbformat.read(cached, as_version=4)
    nb = nbformat.read(lesson, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_SNAPSHOT))
    client = NotebookClient(
        nb, kernel_name="python3", timeout=timeout, store_widget_state=True,
        resources={"metadata": {"path": str(lesson.parent)}},
    )
    client.execute(env={**os.environ, **KERNEL_ENV})
    snapshot = nb.cells.pop()
    printed = "".join(o.get("text", "") for o in snapshot.outputs if o.output_type == "stream")
    nb.metadata[FIGURES] = json.loads(printed or "{}")
    cache.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    nbformat.write(nb, partial)
    os.replace(partial, cached)  # atomic: a killed build never leaves a half-written entry
    return nb


def title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """Returns the text of the notebook's first markdown heading, or ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


# ---- widgets as static HTML ----------------------------------------------------------------------


def _decode(entry: dict) -> dict:
    """Returns a widget's state with its binary buffers (numpy arrays of plotly figures) as lists."""
    import numpy as np

    state = copy.deepcopy(entry.get("state", {}))
    for buf in entry.get("buffers", []):
        *path, _ = buf["path"]
        target = state
        for key in path:
            target = target[key]
        raw = base64.b64decode(buf["data"]) if buf.get("encoding", "base64") == "base64" else buf["data"]
        values = np.frombuffer(raw, dtype=target.get("dtype", "float64")).reshape(target.get("shape", [-1]))
        holder = state
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = values.tolist()
    return state


def _control(model: str, s: dict) -> str:
    label = html.escape(str(s.get("description", "")))
    head = f'<span style="color:#555">{label}</span> ' if label else ""
    if model in _CHOICES:
        options = [str(o) for o in s.get("_options_labels", [])]
        chosen = s.get("index")
        if model == "ToggleButtonsModel":
            buttons = "".join(
                f'<button disabled="" style="{_ON if i == chosen else _OFF}">{html.escape(o)}</button>'
                for i, o in enumerate(options))
            return f'<span style="{_W}">{head}{buttons}</span>'
        selected = ' selected=""'
        items = "".join(f"<option{selected if i == chosen else ''}>{html.escape(o)}</option>"
                        for i, o in enumerate(options))
        return f'<span style="{_W}">{head}<select disabled="">{items}</select></span>'
    if model in _SLIDERS:
        if model == "SelectionSliderModel":
            options = [str(o) for o in s.get("_options_labels", [])]
            low, high, step, value = 0, max(len(options) - 1, 0), 1, s.get("index", 0)
            shown = options[value] if 0 <= value < len(options) else ""
        else:
            low, high, step, value = s.get("min", 0), s.get("max", 100), s.get("step", 1), s.get("value", 0)
            shown = value if model != "FloatLogSliderModel" else f"{s.get('base', 10)}^{value}"
        return (f'<span style="{_W}">{head}<input type="range" disabled="" min="{low}" max="{high}" '
                f'step="{step}" value="{value}"> <code>{html.escape(str(shown))}</code></span>')
    if model == "CheckboxModel":
        checked = ' checked=""' if s.get("value") else ""
        return f'<span style="{_W}"><input type="checkbox" disabled=""{checked}/> {label}</span>'
    if model == "HTMLModel":
        return f'<div style="{_W}">{head}{s.get("value", "")}</div>'
    if model in ("LabelModel", "TextModel", "IntTextModel", "FloatTextModel"):
        return f'<span style="{_W}">{head}<code>{html.escape(str(s.get("value", "")))}</code></span>'
    return ""


def _render(model_id: str, states: dict, parts: list, figures: dict) -> None:
    """Appends the widget's static parts: ("html", text) or ("figure", plotly dict)."""
    entry = states.get(model_id)
    if entry is None:
        return
    name = entry.get("model_name", "")
    s = _decode(entry)
    if model_id in figures:  # a FigureWidget, as it showed at the end of the run
        parts.append(("figure", figures[model_id]))
        return
    if s.get("_anywidget_id", "").endswith("FigureWidget") and "_widget_data" in s:
        parts.append(("figure", {"data": s["_widget_data"], "layout": s.get("_widget_layout", {})}))
        return
    if name in ("VBoxModel", "HBoxModel", "BoxModel", "GridBoxModel"):
        inner: list = []
        for child in s.get("children", []):
            _render(str(child).removeprefix("IPY_MODEL_"), states, inner, figures)
        if any(kind == "figure" for kind, _ in inner):  # a figure is its own output: no wrapper around it
            parts.extend(inner)
            return
        direction = "row" if name == "HBoxModel" else "column"
        body = "".join(value for _, value in inner)
        parts.append(("html", f'<div style="display:flex;flex-direction:{direction};gap:8px">{body}</div>'))
        return
    if name == "OutputModel":
        for out in s.get("outputs", []):
            data = out.get("data", {})
            text = data.get("text/html") or html.escape(str(data.get("text/plain", out.get("text", ""))))
            parts.append(("html", f"<div>{text}</div>"))
        return
    parts.append(("html", _control(name, s)))


def static_widgets(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Returns a copy of ``nb`` whose widget outputs are static HTML (and plotly figures) showing
    the widgets' saved state; ``nb`` is unchanged. A FigureWidget is drawn from the snapshot
    :func:`execute` saved, else from its first data. A widget without saved state keeps its
    plain-text representation."""
    nb = copy.deepcopy(nb)
    states = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    figures = nb.metadata.get(FIGURES, {})
    for cell in nb.cells:
        outputs = []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view is None or view.get("model_id") not in states:
                if view is not None:
                    out.data.pop(WIDGET_VIEW)
                outputs.append(out)
                continue
            parts: list = []
            _render(view["model_id"], states, parts, figures)
            outputs.extend(_outputs(parts))
        cell.outputs = outputs if cell.cell_type == "code" else cell.get("outputs", [])
    nb.metadata.pop("widgets", None)
    nb.metadata.pop(FIGURES, None)
    return nb


def _outputs(parts: list) -> list:
    """Returns display outputs for the parts: runs of HTML joined; each figure a plotly output."""
    out, run = [], []
    for kind, value in parts + [("end", None)]:
        if kind == "html":
            run.append(value)
            continue
        if run:
            out.append(nbformat.v4.new_output("display_data", data={"text/html": "".join(run)}))
            run = []
        if kind == "figure":
            out.append(nbformat.v4.new_output("display_data", data={PLOTLY_MIME: value}))
    return out


# ---- the site ------------------------------------------------------------------------------------

_NAV = "font-family:sans-serif;margin:1em 0;padding:.5em 0;border-bottom:1px solid #ddd"


def _nav(pages: list[tuple[str, str]], i: int) -> str:
    links = ['<a href="index.html">Index</a>']
    if i > 0:
        links.insert(0, f'<a href="{pages[i - 1][0]}">&larr; {html.escape(pages[i - 1][1])}</a>')
    if i + 1 < len(pages):
        links.append(f'<a href="{pages[i + 1][0]}">{html.escape(pages[i + 1][1])} &rarr;</a>')
    return f'<div class="mcviz-nav" style="{_NAV}">{" &middot; ".join(links)}</div>'


def _with_nav(nb: nbformat.NotebookNode, nav: str) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    top = nbformat.v4.new_raw_cell(nav, metadata={"format": "text/html", "raw_mimetype": "text/html"})
    bottom = nbformat.v4.new_raw_cell(nav, metadata={"format": "text/html", "raw_mimetype": "text/html"})
    nb.cells = [top, *nb.cells, bottom]
    return nb


def _index(pages: list[tuple[str, str]], heading: str) -> str:
    items = "\n".join(f'<li><a href="{href}">{html.escape(name)}</a></li>' for href, name in pages)
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(heading)}</title>'
            f"</head>\n<body style=\"font-family:sans-serif;max-width:50em;margin:2em auto\">\n"
            f"<h1>{html.escape(heading)}</h1>\n<p>Every lesson executed once, with its outputs; figures "
            f"work offline, widgets show their initial state (run the notebooks in JupyterLab to move "
            f"them).</p>\n<ol>\n{items}\n</ol>\n</body></html>\n")


def build(
    lesson_paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    cache: str | os.PathLike | None = None,
    heading: str = "mcviz lessons",
    timeout: int = 600,
) -> list[Path]:
    """Returns the pages written to ``out``: ``index.html`` first, then one page per lesson.

    Args:
        lesson_paths: lesson notebooks, in reading order (see :func:`lessons`).
        out: the site's folder (created; existing pages of the same names are replaced).
        cache: folder of executed lessons; default ``<mcviz cache>/book``.
        heading: the index page's title.
        timeout: seconds one cell may run.
    """
    from mcviz import _html, train

    paths = [Path(p) for p in lesson_paths]
    for p in paths:
        if p.suffix != ".ipynb" or not p.is_file():
            raise FileNotFoundError(f"lesson {os.fspath(p)!r} is not a notebook file")
    if len({p.stem for p in paths}) != len(paths):
        raise ValueError("two lessons share a file name; pages would overwrite each other")
    cache = Path(cache) if cache is not None else train.cache_dir() / "book"
    executed = [execute(p, cache=cache, timeout=timeout) for p in paths]
    pages = [(f"{p.stem}.html", title(nb, p.stem)) for p, nb in zip(paths, executed, strict=True)]
    site = Path(out)
    site.mkdir(parents=True, exist_ok=True)
    written = [site / "index.html"]
    for i, nb in enumerate(executed):
        page = _with_nav(static_widgets(nb), _nav(pages, i))
        written.append(_html.export(page, site / pages[i][0], title=pages[i][1]))
    (site / "index.html").write_text(_index(pages, heading), encoding="utf-8")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mcviz.book [--lessons DIR] [--out DIR] [NAMES...]``: builds the book; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m mcviz.book", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="lesson file names or stems (default: every lesson)")
    parser.add_argument("--lessons", default="lessons", help="folder of NN_*.ipynb lessons")
    parser.add_argument("--out", default="book", help="folder of the site (default: book)")
    args = parser.parse_args(argv)
    try:
        found = lessons(args.lessons)
        if args.names:
            by_name = {p.stem: p for p in found} | {p.name: p for p in found}
            unknown = [n for n in args.names if n not in by_name]
            if unknown:
                known = ", ".join(p.stem for p in found)
                raise FileNotFoundError(f"no lesson {unknown[0]!r}; known: {known}")
            found = [by_name[n] for n in args.names]
        pages = build(found, args.out)
    except (FileNotFoundError, ValueError) as e:
        print(f"mcviz book: {e}", file=sys.stderr)
        return 2
    print(f"{len(pages) - 1} lessons -> {Path(args.out) / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["build", "cache_key", "execute", "lessons", "main", "static_widgets", "title"]
