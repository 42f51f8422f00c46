"""Interactive explorers: ipywidgets controls driving a plotly ``FigureWidget``.

Each explorer calls the same functions the lessons call (``mcv.measure``, ``mcv.plots``), so what
a slider shows is what a lesson cell would compute. Every function returns the widget and never
displays it; put it last in a cell to show it. The returned :class:`Explorer` exposes
``figure`` (the FigureWidget) and ``controls`` (a dict of ipywidgets by name), so a test can move
a control and read the figure without a browser.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from torch import nn

from mcviz import measure, models, plots, quantize, train
from mcviz._explore_kd import temperature_explorer
from mcviz._explore_tradeoff import budget_explorer
from mcviz._explorer import Explorer

__all__ = [
    "Explorer",
    "budget_explorer",
    "latency_explorer",
    "latency_table",
    "layers_explorer",
    "pruning_explorer",
    "quantization_explorer",
    "reference_models",
    "temperature_explorer",
]

LAYER_VALUES = ("params", "macs", "size_bytes")
MODEL_SHAPE = (1, 28, 28)


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


# ---- quantization ----------------------------------------------------------------------------

WEIGHTS_ONLY = "weights only"
HISTOGRAM_BINS = 120


def quantization_explorer(
    model: nn.Module,
    data,
    *,
    layer: str | None = None,
    bits: int = 4,
    granularity: str = "per_channel",
    observer: str = WEIGHTS_ONLY,
) -> Explorer:
    """Returns an explorer of post-training quantization: bits, granularity and observer controls
    above a histogram of one layer's weights before and after rounding, with the grid's levels.

    Each setting builds the model ``mcv.quantize.weights`` (observer "weights only") or
    ``mcv.quantize.ptq`` (an observer of ``mcv.quantize.OBSERVERS``, calibrating 8-bit
    activations on the training split) returns, and measures it with ``mcv.measure.model`` on
    the test split; the title and the note give its accuracy and ``size_bytes`` beside the fp32
    model's. Results are remembered, so returning to a setting is instant. ``model`` is left
    unchanged.

    Args:
        model: a trained network.
        data: a DataBundle (``mcv.data.load``).
        layer: the Linear / Conv2d layer whose weights are drawn, by name as in
            ``model.named_modules()``; default: the one with the most weights.
        bits: the starting weight bits, an int in 2..8.
        granularity: the starting granularity, "per_tensor" or "per_channel".
        observer: the starting observer: "weights only" or one of ``mcv.quantize.OBSERVERS``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not hasattr(getattr(data, "test", None), "tensors"):
        raise ValueError(f"data must be a DataBundle (mcv.data.load), got {type(data).__name__}")
    found = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    if not found:
        raise ValueError("model has no Linear or Conv2d layer to quantize")
    if layer is None:
        layer = max(found, key=lambda n: found[n].weight.numel())
    if layer not in found:
        raise ValueError(f"layer must name a Linear/Conv2d layer ({', '.join(found)}), got {layer!r}")
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an int in 2..8, got {bits!r}")
    if granularity not in ("per_tensor", "per_channel"):
        raise ValueError(f"granularity must be 'per_tensor' or 'per_channel', got {granularity!r}")
    observers = (WEIGHTS_ONLY, *quantize.OBSERVERS)
    if observer not in observers:
        raise ValueError(f"observer must be one of {', '.join(map(repr, observers))}, got {observer!r}")

    weight = found[layer].weight.detach().float()
    lo, hi = float(weight.min()), float(weight.max())
    edges = torch.linspace(lo, hi, HISTOGRAM_BINS + 1)
    centers = ((edges[:-1] + edges[1:]) / 2).tolist()
    width = (hi - lo) / HISTOGRAM_BINS
    fp32 = measure.model(model, data, label="fp32")
    results: dict[tuple, tuple] = {}

    def evaluate(b: int, g: str, o: str):
        key = (b, g, o)
        if key not in results:
            if o == WEIGHTS_ONLY:
                q = quantize.weights(model, b, granularity=g)
            else:
                q = quantize.ptq(model, data, b, granularity=g, observer=o)
            qlayer = q.get_submodule(layer)
            row = measure.model(q, data, label=f"{b}-bit {g}, {o}")
            results[key] = (row, qlayer.weight.detach().float(), _levels(qlayer))
        return results[key]

    bits_slider = widgets.IntSlider(value=bits, min=2, max=8, description="bits", continuous_update=False)
    granularity_choice = widgets.ToggleButtons(
        options=["per_tensor", "per_channel"], value=granularity, description="granularity"
    )
    observer_choice = widgets.Dropdown(options=list(observers), value=observer, description="observer")
    note = widgets.HTML()
    figure = go.FigureWidget()
    figure.add_bar(x=centers, y=_counts(weight, edges), width=width, name="fp32 weights", opacity=0.5)
    figure.add_bar(x=centers, y=[0] * HISTOGRAM_BINS, width=width, name="quantized weights", opacity=0.6)
    figure.add_scatter(
        x=[], y=[], mode="markers", name="levels", marker={"symbol": "line-ns-open", "size": 10}
    )
    figure.update_layout(
        height=380, barmode="overlay", xaxis_title=f"{layer} weight", yaxis_title="count", bargap=0
    )

    def redraw(_change=None) -> None:
        b, g, o = bits_slider.value, granularity_choice.value, observer_choice.value
        row, qweight, (levels, which) = evaluate(b, g, o)
        with figure.batch_update():
            figure.data[1].y = _counts(qweight, edges)
            figure.data[2].update(x=levels, y=[0] * len(levels), name=which)
            figure.layout.title = (
                f"{layer}, {b}-bit {g} ({o}): accuracy {row.accuracy:.3f} "
                f"(fp32 {fp32.accuracy:.3f}), size_bytes {row.size_bytes:,}"
            )
        note.value = (
            f"{row.label}: accuracy {row.accuracy:.3f} vs fp32 {fp32.accuracy:.3f} "
            f"({100 * (row.accuracy - fp32.accuracy):+.1f} points); size_bytes {row.size_bytes:,} vs "
            f"{fp32.size_bytes:,} ({fp32.size_bytes / row.size_bytes:.2f}x smaller). "
            f"{len(levels)} levels shown ({which})."
        )

    redraw()
    for control in (bits_slider, granularity_choice, observer_choice):
        control.observe(redraw, names="value")
    controls = {"bits": bits_slider, "granularity": granularity_choice, "observer": observer_choice}
    return Explorer(controls, figure, note)


def _counts(values: torch.Tensor, edges: torch.Tensor) -> list[int]:
    """Histogram counts of ``values`` over the bins ``edges`` (values outside go to the ends)."""
    index = torch.bucketize(values.flatten(), edges[1:-1], right=True)
    return torch.bincount(index, minlength=len(edges) - 1).tolist()


def _levels(qlayer) -> tuple[list[float], str]:
    """The values a quantized layer's codes can take: for per-channel scales, those of the
    channel with the widest grid."""
    qmin, qmax = quantize.qrange(qlayer.bits, symmetric=qlayer.symmetric)
    scale, zero_point = qlayer.scale.flatten(), qlayer.zero_point.flatten()
    c = int(scale.argmax())
    codes = torch.arange(qmin, qmax + 1, dtype=torch.float32)
    levels = ((codes - float(zero_point[c])) * float(scale[c])).tolist()
    which = "levels" if scale.numel() == 1 else f"levels of channel {c}, the widest of {scale.numel()}"
    return levels, which


# ---- pruning ---------------------------------------------------------------------------------

PRUNE_METHODS = ("magnitude", "random")


def pruning_explorer(
    model: nn.Module,
    data,
    *,
    sparsity: float = 0.5,
    scope: str = "layer",
    method: str = "magnitude",
    seed: int = 0,
) -> Explorer:
    """Returns an explorer of unstructured pruning: sparsity, scope and method controls above the
    sparsity of every Linear / Conv2d layer, with the pruned model's test accuracy in the title.

    Each setting builds the model ``mcv.prune.magnitude`` (per layer or global) or
    ``mcv.prune.random`` returns, without fine-tuning, and measures it with ``mcv.measure``
    on the test split. Results are remembered, so returning to a setting is instant. ``model``
    is left unchanged.

    Args:
        model: a trained network.
        data: a DataBundle (``mcv.data.load``).
        sparsity: the starting sparsity, a float in [0, 0.99].
        scope: the starting scope, "layer" or "global" (magnitude only: random pruning takes the
            same fraction of every layer).
        method: the starting method, "magnitude" or "random".
        seed: the seed of random pruning, an int >= 0.
    """
    from mcviz import prune

    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not hasattr(getattr(data, "test", None), "tensors"):
        raise ValueError(f"data must be a DataBundle (mcv.data.load), got {type(data).__name__}")
    if not any(isinstance(m, (nn.Linear, nn.Conv2d)) for m in model.modules()):
        raise ValueError("model has no Linear or Conv2d layer to prune")
    ok = isinstance(sparsity, float) and 0.0 <= sparsity <= 0.99
    if not ok:
        raise ValueError(f"sparsity must be a float in [0, 0.99], got {sparsity!r}")
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    if method not in PRUNE_METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, PRUNE_METHODS))}, got {method!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")

    dense = measure.model(model, data, label="dense")
    results: dict[tuple, tuple] = {}

    def evaluate(s: float, sc: str, m: str):
        key = (s, sc if m == "magnitude" else "layer", m)
        if key not in results:
            if m == "magnitude":
                pruned = prune.magnitude(model, s, scope=key[1])
            else:
                pruned = prune.random(model, s, seed=seed)
            row = measure.model(pruned, data, label=f"{m} {s:.2f} ({key[1]})")
            results[key] = (row, measure.layers(pruned))
        return results[key]

    sparsity_slider = widgets.FloatSlider(
        value=sparsity, min=0.0, max=0.99, step=0.01, description="sparsity", continuous_update=False
    )
    scope_choice = widgets.ToggleButtons(options=["layer", "global"], value=scope, description="scope")
    method_choice = widgets.ToggleButtons(options=list(PRUNE_METHODS), value=method, description="method")
    note = widgets.HTML()
    figure = go.FigureWidget()
    figure.add_bar(x=[], y=[], name="layer sparsity")
    figure.update_layout(
        height=360, xaxis_title="layer", yaxis_title="sparsity (fraction of zero weights)", yaxis_range=[0, 1]
    )

    def redraw(_change=None) -> None:
        s, sc, m = round(float(sparsity_slider.value), 4), scope_choice.value, method_choice.value
        scope_choice.disabled = m == "random"
        row, table = evaluate(s, sc, m)
        shown = sc if m == "magnitude" else "per layer"
        with figure.batch_update():
            figure.data[0].update(
                x=list(table.layer), y=list(table.sparsity), text=[f"{v:.2f}" for v in table.sparsity]
            )
            figure.layout.title = (
                f"{m} pruning to sparsity {s:.2f} ({shown}): accuracy {row.accuracy:.3f} "
                f"(dense {dense.accuracy:.3f}), size_bytes {row.size_bytes:,}"
            )
        note.value = (
            f"{row.label}: overall sparsity {row.sparsity:.3f}, accuracy {row.accuracy:.3f} vs dense "
            f"{dense.accuracy:.3f} ({100 * (row.accuracy - dense.accuracy):+.1f} points), no fine-tuning; "
            f"size_bytes {row.size_bytes:,} vs {dense.size_bytes:,} (bitmask sparse format)."
        )

    redraw()
    for control in (sparsity_slider, scope_choice, method_choice):
        control.observe(redraw, names="value")
    controls = {"sparsity": sparsity_slider, "scope": scope_choice, "method": method_choice}
    return Explorer(controls, figure, note)
