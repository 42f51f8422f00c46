"""Offline HTML export of an executed report notebook.

nbconvert's HTML export drops plotly's kernel output (``application/vnd.plotly.v1+json``) and the
``lab`` template loads require.js, MathJax and mermaid from a CDN. This module converts each
plotly output into a ``<div>`` plus a ``Plotly.newPlot`` script, inlines the ``plotly.min.js``
of the installed plotly package exactly once in the page head, and drops every CDN script, so
the page shows every figure with no network. MathJax is not vendored: LaTeX in markdown cells
shows as source text offline.
"""

from __future__ import annotations

import copy
from pathlib import Path

PLOTLY_MIME = "application/vnd.plotly.v1+json"
DIV_PREFIX = "mcviz-fig-"

_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
{%- if resources.mcviz_plotly_js %}
<script type="text/javascript">{{ resources.mcviz_plotly_js }}</script>
{%- endif %}
{%- endblock html_head_css -%}
"""


def plotly_js() -> str:
    """Return the ``plotly.min.js`` source bundled with the installed plotly package."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    # a literal "</script" inside the inlined code would end the script element early
    return js.replace("</script", "<\\/script")


def convert_figures(nb):
    """Return a copy of ``nb`` whose plotly outputs are ``text/html`` divs; ``nb`` is unchanged.

    Div ids are ``mcviz-fig-0``, ``mcviz-fig-1``, ... in output order, so the page is
    deterministic. The second value returned is the number of figures converted.
    """
    import plotly.io as pio

    nb = copy.deepcopy(nb)
    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME not in data:
                continue
            fig = dict(data[PLOTLY_MIME])
            config = fig.pop("config", None) or {}
            html = pio.to_html(
                fig,
                config=config,
                include_plotlyjs=False,
                full_html=False,
                validate=False,
                div_id=f"{DIV_PREFIX}{count}",
            )
            output["data"] = {"text/html": html}
            count += 1
    return nb, count


def export(nb, path: Path | str, *, title: str | None = None) -> Path:
    """Write ``nb`` as a self-contained offline HTML page to ``path`` and return the path.

    ``nb`` is left unchanged. plotly.js is inlined once, and only if the page has a figure.
    """
    import jinja2
    from nbconvert import HTMLExporter

    page, count = convert_figures(nb)
    if title:
        page.metadata["title"] = title
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"mcviz_report.html.j2": _TEMPLATE})],
        template_file="mcviz_report.html.j2",
    )
    resources = {"mcviz_plotly_js": plotly_js() if count else ""}
    body, _ = exporter.from_notebook_node(page, resources=resources)
    path = Path(path)
    path.write_text(body, encoding="utf-8")
    return path
