"""The lesson book (``mcviz.book``): two small lessons executed and exported; every link resolves,
no page loads anything from the network, figures and widgets show, a rebuild reuses the cache.

The two lessons are written here (a plotly figure, an mcviz explorer widget, a slider), so the
test measures the book and not the time of the real lessons; ``make book`` builds those."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from mcviz import book

LESSONS = {
    "00_first.ipynb": [
        "# 00 · A figure\n\nA plotly figure, shown as in a lesson.",
        "import plotly.graph_objects as go\n"
        "fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[0, 1, 4]))\nfig.show()",
    ],
    "01_second.ipynb": [
        "# 01 · A widget\n\nAn explorer: controls above a FigureWidget.",
        "import mcviz as mcv\nm = {'tiny': mcv.models.build('mlp', input_shape=(64,), hidden=(8,), seed=0)}\n"
        "mcv.widgets.layers_explorer(m, value='macs', input_shape=(64,))",
        "import ipywidgets as w\nw.IntSlider(7, min=1, max=9, description='bits')",
        # a FigureWidget filled after it was made (its saved state holds only the first data)
        "import plotly.graph_objects as go\nlate = go.FigureWidget()\n"
        "late.add_bar(x=['a', 'b'], y=[3, 4], name='added later')\n"
        "w.VBox([w.HTML('<b>bars</b>'), late])",
    ],
}
URL_ATTRS = {"script": "src", "link": "href", "img": "src", "iframe": "src", "a": "href", "source": "src"}


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value and (name == URL_ATTRS.get(tag) or name in ("src", "href", "data", "poster")):
                self.refs.append((tag, value))


def _refs(page: Path) -> list[tuple[str, str]]:
    parser = _Refs()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.refs


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lessons")
    for name, cells in LESSONS.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(cells[0])]
                                      + [nbformat.v4.new_code_cell(c) for c in cells[1:]])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / name)
    out, cache = tmp_path_factory.mktemp("book"), tmp_path_factory.mktemp("book-cache")
    pages = book.build(book.lessons(folder), out, cache=cache)
    return folder, out, cache, pages


@pytest.mark.slow
def test_the_book_has_an_index_and_a_page_per_lesson_linked_both_ways(site):
    _, out, _, pages = site
    assert [p.name for p in pages] == ["index.html", "00_first.html", "01_second.html"]
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "00 · A figure" in index and "01 · A widget" in index
    for page in pages:
        for tag, ref in _refs(page):
            if tag == "a" and not ref.startswith("#"):
                assert (out / ref).is_file(), f"{page.name}: broken link {ref}"
    assert ("a", "01_second.html") in _refs(out / "00_first.html")
    assert ("a", "00_first.html") in _refs(out / "01_second.html")


@pytest.mark.slow
def test_no_page_loads_anything_from_the_network(site):
    _, out, _, pages = site
    for page in pages:
        text = page.read_text(encoding="utf-8")
        external = [ref for _, ref in _refs(page) if re.match(r"(https?:)?//", ref)]
        assert external == [], f"{page.name} loads {external[:3]}"
        # outside scripts (the inlined plotly.js holds the address of its logo link as a string)
        markup = re.sub(r"<script\b.*?</script>", "", text, flags=re.S | re.I)
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", markup), page.name
        assert not re.search(r"""url\(\s*['"]?(https?:)?//""", markup), page.name  # CSS imports, fonts
        for script in re.findall(r"<script\b[^>]*>(.*?)</script>", text, flags=re.S | re.I):
            if "plotly.js v" not in script[:300]:  # the library's own bundle names map-tile servers
                assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", script), script[:200]
        assert "require.js" not in markup and "cdn.jsdelivr" not in markup


@pytest.mark.slow
def test_figures_are_inlined_once_and_widgets_show_their_initial_state(site):
    _, out, _, _ = site
    first = (out / "00_first.html").read_text(encoding="utf-8")
    second = (out / "01_second.html").read_text(encoding="utf-8")
    for page in (first, second):
        assert page.count("Plotly.newPlot(") >= 1 and page.count("plotly.js v") == 1  # plotly.js once
    # the explorer: its two controls at their initial values, then its figure; the slider at 7
    assert '<option selected="">tiny</option>' in second
    assert re.search(r'<button disabled="" style="[^"]*background:#2a6fdb[^"]*">macs</button>', second)
    assert re.search(r'<button disabled="" style="[^"]*">params</button>', second)
    slider = re.search(r'<input[^>]*type="range"[^>]*>', second).group(0)
    assert all(a in slider for a in ('disabled=""', 'min="1"', 'max="9"', 'value="7"')), slider
    assert second.index("<option selected") < second.index('id="mcviz-fig-0"')  # controls above the figure
    assert '"name":"added later"' in second.replace(": ", ":")
    assert "<b>bars</b>" in second
    assert "widget-view+json" not in second and "jupyter-widgets" not in second


@pytest.mark.slow
def test_a_rebuild_reuses_the_executed_lessons(site, tmp_path, monkeypatch):
    folder, _, cache, _ = site
    assert len(list(cache.glob("*.ipynb"))) == 2

    def no_kernel(*args, **kwargs):
        raise AssertionError("a cached lesson was executed again")

    monkeypatch.setattr("nbclient.NotebookClient.execute", no_kernel)
    pages = book.build(book.lessons(folder), tmp_path / "again", cache=cache)
    assert [p.name for p in pages] == ["index.html", "00_first.html", "01_second.html"]


def test_bad_lesson_folders_and_names_are_refused(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        book.lessons(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no lesson notebooks"):
        book.lessons(tmp_path)
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "00_a.ipynb")
    assert book.main(["--lessons", str(tmp_path), "--out", str(tmp_path / "site"), "07_nope"]) == 2
    assert "no lesson '07_nope'; known: 00_a" in capsys.readouterr().err
    assert not (tmp_path / "site").exists()
    with pytest.raises(FileNotFoundError, match="not a notebook"):
        book.build([tmp_path / "00_a.txt"], tmp_path / "site")
