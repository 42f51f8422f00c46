"""``Explorer``: the widget every explorer returns, a row of controls above a figure.

Its own module, so the explorers of later lessons (``_explore_kd``, ``_explore_tradeoff``) and
``mcviz.widgets`` all import it from here without importing each other.
"""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go


class Explorer(widgets.VBox):
    """A VBox of controls above a figure; ``figure`` and ``controls`` give access to both."""

    def __init__(
        self, controls: dict[str, widgets.Widget], figure: go.FigureWidget, note: widgets.HTML | None = None
    ):
        rows: list[widgets.Widget] = [widgets.HBox(list(controls.values()))]
        if note is not None:
            rows.append(note)
        rows.append(figure)
        super().__init__(rows)
        self.controls = controls
        self.figure = figure
        self.note = note
