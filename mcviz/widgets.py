"""Interactive explorers: ipywidgets controls driving a plotly ``FigureWidget``.

Each explorer calls the same functions the lessons call (``mcv.measure``, ``mcv.plots``), so what
a slider shows is what a lesson cell would compute. Every function returns the widget and never
displays it; put it last in a cell to show it. The returned :class:`Explorer` exposes
``figure`` (the FigureWidget) and ``controls`` (a dict of ipywidgets by name), so a test can move
a control and read the figure without a browser.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from torch import nn

from mcviz import measure, models, plots

LAYER_VALUES = ("params", "macs", "size_bytes")
MODEL_SHAPE = (1, 28, 28)


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


def reference_models(
    input_shape: Sequence[int] = MODEL_SHAPE,
    num_classes: int = 10,
) -> dict[str, nn.Module]:
    """Returns untrained reference models by name: those of ``mcv.models.NAMES``, with the
    "mlp" built as a small student (``hidden=(64,)``, named "mlp-64") since its default widths
    repeat LeNet-300-100."""
    out = {}
    for name in models.NAMES:
        options = {"hidden": (64,)} if name == "mlp" else {}
        key = "mlp-64" if name == "mlp" else name
        out[key] = models.build(name, input_shape=input_shape, num_classes=num_classes, seed=0, **options)
    return out


def layers_explorer(
    model_set: Mapping[str, nn.Module] | None = None,
    *,
    value: str = "params",
    input_shape: Sequence[int] | None = None,
) -> Explorer:
    """Returns an explorer of per-layer params / MACs / size_bytes: pick a model and a quantity.

    Args:
        model_set: models by name; default: every reference model built for 28x28 inputs.
        value: the quantity shown first, one of ``LAYER_VALUES``.
        input_shape: shape of one example, when the models do not carry ``input_shape``.
    """
    model_set = dict(model_set) if model_set is not None else reference_models()
    _check_models(model_set)
    if value not in LAYER_VALUES:
        raise ValueError(f"value must be one of {', '.join(LAYER_VALUES)}, got {value!r}")
    shape = tuple(input_shape) if input_shape is not None else None
    tables = {name: measure.layers(m, input_shape=shape) for name, m in model_set.items()}
    choose = widgets.Dropdown(options=list(model_set), description="model")
    quantity = widgets.ToggleButtons(options=list(LAYER_VALUES), value=value, description="show")
    figure = go.FigureWidget(_layers_figure(tables[choose.value], choose.value, value))

    def redraw(_change=None) -> None:
        new = _layers_figure(tables[choose.value], choose.value, quantity.value)
        with figure.batch_update():
            bar = new.data[0]
            figure.data[0].update(x=bar.x, y=bar.y, text=bar.text, name=bar.name)
            figure.layout.title = new.layout.title
            figure.layout.yaxis.title = new.layout.yaxis.title

    choose.observe(redraw, names="value")
    quantity.observe(redraw, names="value")
    return Explorer({"model": choose, "value": quantity}, figure)


def latency_explorer(
    model_set: Mapping[str, nn.Module] | nn.Module,
    data=None,
    *,
    batch_sizes: Sequence[int] = (1, 8, 64, 256),
    batch_size: int = 64,
    threads: int | None = None,
    repeats: int = 10,
) -> Explorer:
    """Returns an explorer of latency per example: a batch-size slider and a threads toggle.

    Every change re-measures all models with ``mcv.measure.model(..., latency=True)`` in the
    same run, so the bars (median, with the interquartile range as error bar) can be compared
    with each other; the note gives each model's time relative to the first one.

    Args:
        model_set: models by name (the first is the reference of the ratios), or one model.
        data: a DataBundle, only for the input shape of models that do not carry
            ``input_shape``. Inputs are random: dense layers take the same time on any values.
        batch_sizes: the slider's stops.
        batch_size: the starting batch size, one of ``batch_sizes``.
        threads: the starting torch thread count (default: the current one).
        repeats: timed forward passes per measurement (after warm-up).
    """
    if isinstance(model_set, nn.Module):
        model_set = {"model": model_set}
    model_set = dict(model_set)
    _check_models(model_set)
    sizes = list(batch_sizes)
    if not sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
        raise ValueError(f"batch_sizes must be ints >= 1, got {batch_sizes!r}")
    if batch_size not in sizes:
        raise ValueError(f"batch_size must be one of batch_sizes {sizes}, got {batch_size!r}")
    max_threads = max(torch.get_num_threads(), os.cpu_count() or 1)
    threads = torch.get_num_threads() if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= max_threads:
        raise ValueError(f"threads must be an int in [1, {max_threads}], got {threads!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 3:
        raise ValueError(f"repeats must be an int >= 3, got {repeats!r}")

    slider = widgets.SelectionSlider(
        options=sizes, value=batch_size, description="batch size", continuous_update=False
    )
    thread_choice = widgets.ToggleButtons(
        options=list(range(1, max_threads + 1)), value=threads, description="threads"
    )
    note = widgets.HTML()
    figure = go.FigureWidget()
    figure.add_bar(
        x=list(model_set),
        y=[0.0] * len(model_set),
        name="latency per example",
        error_y={"type": "data", "array": [0.0] * len(model_set)},
    )
    figure.update_layout(height=350, yaxis_title="latency per example (µs)", xaxis_title="model")

    def redraw(_change=None) -> None:
        rows = latency_table(
            model_set, data, batch_size=slider.value, threads=thread_choice.value, repeats=repeats
        )
        per_example = [r.latency_ms * 1000 / r.batch_size for r in rows]
        spread = [r.latency_iqr_ms * 1000 / r.batch_size for r in rows]
        with figure.batch_update():
            figure.data[0].update(
                y=per_example,
                error_y={"type": "data", "array": spread},
                text=[f"{v:.1f}" for v in per_example],
                textposition="auto",
            )
            figure.layout.title = (
                f"latency per example: batch {slider.value}, "
                f"{thread_choice.value} thread(s), median of {repeats}"
            )
        ratios = ", ".join(f"{r.label} {r.latency_ms / rows[0].latency_ms:.2f}x" for r in rows[1:])
        note.value = (
            f"Measured together just now; time relative to {rows[0].label}: {ratios or 'only one model'}."
        )

    redraw()
    slider.observe(redraw, names="value")
    thread_choice.observe(redraw, names="value")
    return Explorer({"batch_size": slider, "threads": thread_choice}, figure, note)


def latency_table(
    model_set: Mapping[str, nn.Module],
    data=None,
    *,
    batch_size: int = 64,
    threads: int = 1,
    repeats: int = 10,
) -> list[measure.Measurement]:
    """Returns one Measurement with latency per model, all measured now with ``threads`` threads.

    The torch thread count is restored afterwards.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int >= 1, got {threads!r}")
    with _threads(threads):
        return [
            measure.model(
                m,
                label=name,
                latency=True,
                batch_size=batch_size,
                repeats=repeats,
                input_shape=_shape(m, data),
            )
            for name, m in model_set.items()
        ]


def _layers_figure(table, model_name: str, value: str) -> go.Figure:
    return plots.layers(table, value=value, title=f"{value} per layer of {model_name}")


def _shape(model, data):
    if data is not None:
        return tuple(data.input_shape)
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(
            "latency_explorer needs data= or models that carry input_shape (models from mcv.models.build do)"
        )
    return tuple(shape)


def _check_models(model_set: dict) -> None:
    if not model_set:
        raise ValueError("model_set must hold at least one model")
    for name, m in model_set.items():
        if not isinstance(name, str) or not isinstance(m, nn.Module):
            raise ValueError(
                f"model_set must map str names to torch.nn.Module, got {name!r}: {type(m).__name__}"
            )


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
