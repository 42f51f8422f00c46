"""``Explorer``: the widget every explorer returns, a row of controls above a figure.

Its own module, so the explorers of later lessons (``_explore_kd``, ``_explore_tradeoff``,
``_explore_latency``) and ``mcviz.widgets`` all import it from here without importing each other;
``check_models`` checks the ``{name: model}`` dict that several of them take.
"""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets
import plotly.graph_objects as go
from torch import nn

from mcviz._checks import check_model, shorten


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


def check_models(model_set) -> dict[str, nn.Module]:
    """Returns ``model_set`` as a dict after checking it maps names to models."""
    if not isinstance(model_set, Mapping):
        raise TypeError(f"model_set must be a dict {{name: torch.nn.Module}}, got {type(model_set).__name__}")
    if not model_set:
        raise ValueError("model_set must hold at least one model, got {}")
    for name, m in model_set.items():
        if not isinstance(name, str):
            raise TypeError(f"model_set must map str names to torch.nn.Module, got the key {shorten(name)}")
        check_model(m, f"model_set[{shorten(name)}]")
    return dict(model_set)
