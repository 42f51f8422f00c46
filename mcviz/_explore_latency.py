"""The latency explorer: a batch-size slider and a threads toggle above latency bars, every bar
re-measured with ``mcv.measure.model(..., latency=True)`` when a control moves.

``latency_explorer`` and ``latency_table`` are re-exported by ``mcv.widgets``; like the other
explorers it returns an :class:`mcviz.widgets.Explorer` and never displays it. What a control can
ask for is bounded by ``mcviz._checks.BOUNDS`` (batch sizes, threads, repeats, and the input
values of one timed batch), so a slider cannot ask for more memory than a laptop has.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from torch import nn

from mcviz import measure, train
from mcviz._checks import BOUNDS, check_data, check_int, check_option, check_sequence, check_shape, shorten
from mcviz._explorer import Explorer, check_models

MAX_STOPS = 32  # stops of the batch-size slider


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
        batch_sizes: the slider's stops, at most 32 ints in [1, 4096]; a batch holds at most
            ``BOUNDS["batch_values"]`` input values (batch size x values per example).
        batch_size: the starting batch size, one of ``batch_sizes``.
        threads: the starting torch thread count (default: the current one), at most the
            machine's core count.
        repeats: timed forward passes per measurement (after warm-up), in [3, 10000].
    """
    if isinstance(model_set, nn.Module):
        model_set = {"model": model_set}
    model_set = check_models(model_set)
    if data is not None:
        check_data(data)
    sizes = _check_batch_sizes(batch_sizes)
    check_int(batch_size, "batch_size")
    if batch_size not in sizes:
        raise ValueError(f"batch_size must be one of batch_sizes {shorten(sizes)}, got {batch_size!r}")
    max_threads = min(max(torch.get_num_threads(), os.cpu_count() or 1), BOUNDS["threads"].high)
    threads = torch.get_num_threads() if threads is None else threads
    threads = check_int(threads, "threads", low=1, high=max_threads)
    check_option("repeats", repeats)
    for name, m in model_set.items():
        _check_batch_values(max(sizes), _shape(m, data), name)

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

    The torch thread count is restored afterwards. ``batch_size``, ``threads`` and ``repeats``
    are bounded by ``BOUNDS``, and a batch holds at most ``BOUNDS["batch_values"]`` input values.
    """
    model_set = check_models(model_set)
    if data is not None:
        check_data(data)
    check_option("batch_size", batch_size)
    check_option("threads", threads)
    check_option("repeats", repeats)
    for name, m in model_set.items():
        _check_batch_values(batch_size, _shape(m, data), name)
    with train.num_threads(threads):
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


def _shape(model, data) -> tuple[int, ...]:
    if data is not None:
        return tuple(data.input_shape)
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(
            "latency_explorer needs data= or models that carry input_shape (models from mcv.models.build do)"
        )
    return check_shape(shape, "input_shape")


def _check_batch_sizes(batch_sizes) -> list[int]:
    allowed = f"ints {BOUNDS['batch_size'].text()}"
    sizes = check_sequence(batch_sizes, "batch_sizes", most=MAX_STOPS, items=allowed)
    return [check_int(b, "each of batch_sizes", bounds=BOUNDS["batch_size"]) for b in sizes]


def _check_batch_values(batch_size: int, shape: tuple[int, ...], name: str) -> None:
    """Refuses a timed batch whose input alone would not fit: more than ``BOUNDS["batch_values"]``."""
    values, most = batch_size * math.prod(shape), BOUNDS["batch_values"].high
    if values > most:
        raise ValueError(
            f"batch_size must keep a batch of {shorten(name)} (input {shape}) within {most:,} input values, "
            f"got {batch_size:,} ({values:,} values); use a smaller batch size"
        )
