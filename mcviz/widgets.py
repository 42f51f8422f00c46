"""Interactive explorers: ipywidgets controls driving a plotly ``FigureWidget``.

Each explorer calls the same functions the lessons call (``mcv.measure``, ``mcv.plots``), so what
a slider shows is what a lesson cell would compute. Every function returns the widget and never
displays it; put it last in a cell to show it. The returned :class:`Explorer` exposes
``figure`` (the FigureWidget) and ``controls`` (a dict of ipywidgets by name), so a test can move
a control and read the figure without a browser.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from torch import nn

from mcviz import _layers, measure, models, plots, quantize
from mcviz._checks import (
    BOUNDS,
    Range,
    check_choice,
    check_data,
    check_model,
    check_option,
    check_seed,
    check_shape,
    check_sparsity,
    shorten,
)
from mcviz._explore_kd import temperature_explorer
from mcviz._explore_latency import latency_explorer, latency_table
from mcviz._explore_tradeoff import budget_explorer
from mcviz._explorer import Explorer, check_models
from mcviz.quantize.layers import GRANULARITIES

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
    repeat LeNet-300-100.

    ``input_shape`` holds at most ``BOUNDS["input_size"]`` values and ``num_classes`` is within
    ``BOUNDS["num_classes"]``, so the models fit in memory.
    """
    input_shape = check_shape(input_shape)
    num_classes = check_option("num_classes", num_classes)
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
    model_set = check_models(model_set) if model_set is not None else reference_models()
    check_choice(value, "value", LAYER_VALUES)
    shape = check_shape(input_shape) if input_shape is not None else None
    for name, m in model_set.items():
        if shape is None and getattr(m, "input_shape", None) is not None:
            check_shape(m.input_shape, f"input_shape of {shorten(name)}")
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


def _layers_figure(table, model_name: str, value: str) -> go.Figure:
    return plots.layers(table, value=value, title=f"{value} per layer of {model_name}")


@contextlib.contextmanager
def _quiet():
    """A block in which the explorers' callbacks recompute without repeating the warning about
    layers left uncompressed (each explorer gives it once, when it is built)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _layers.UnsupportedLayersWarning)
        yield


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
        bits: the starting weight bits, an int in [2, 8] (the slider's range: ``BOUNDS["bits"]``).
        granularity: the starting granularity, "per_tensor" or "per_channel".
        observer: the starting observer: "weights only" or one of ``mcv.quantize.OBSERVERS``.
    """
    check_model(model)
    check_data(data)
    bits = check_option("bits", bits)
    check_choice(granularity, "granularity", GRANULARITIES)
    observers = (WEIGHTS_ONLY, *quantize.OBSERVERS)
    check_choice(observer, "observer", observers)
    found = dict(_layers.transformable(model, "quantization_explorer", warn=False))
    if layer is not None:
        check_choice(layer, "layer", found)
    # the one warning: the callbacks are quiet
    _layers.warn_unsupported(model, "quantization_explorer", action="quantizes", rest="stay float32")
    if layer is None:
        layer = max(found, key=lambda n: found[n].weight.numel())

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
            with _quiet():  # warned once above
                if o == WEIGHTS_ONLY:
                    q = quantize.weights(model, b, granularity=g)
                else:
                    q = quantize.ptq(model, data, b, granularity=g, observer=o)
                qlayer = q.get_submodule(layer)
                row = measure.model(q, data, label=f"{b}-bit {g}, {o}")
            results[key] = (row, qlayer.weight.detach().float(), _levels(qlayer))
        return results[key]

    low, high = BOUNDS["bits"].low, BOUNDS["bits"].high
    bits_slider = widgets.IntSlider(
        value=bits, min=low, max=high, description="bits", continuous_update=False
    )
    granularity_choice = widgets.ToggleButtons(
        options=list(GRANULARITIES), value=granularity, description="granularity"
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
SPARSITY_SLIDER = Range(BOUNDS["sparsity"].low, 0.99)  # 1.0 would zero every weight: nothing to see


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
        sparsity: the starting sparsity, a float in [0, 0.99] (the slider's range).
        scope: the starting scope, "layer" or "global" (magnitude only: random pruning takes the
            same fraction of every layer).
        method: the starting method, "magnitude" or "random".
        seed: the seed of random pruning, an int in [0, 2**32 - 1].
    """
    from mcviz import prune

    check_model(model)
    check_data(data)
    sparsity = check_sparsity(sparsity, bounds=SPARSITY_SLIDER)
    check_choice(scope, "scope", prune.unstructured.SCOPES)
    check_choice(method, "method", PRUNE_METHODS)
    check_seed(seed)
    _layers.transformable(model, "pruning_explorer", warn=False)
    _layers.warn_unsupported(model, "pruning_explorer", action="prunes")  # once: the callbacks are quiet

    dense = measure.model(model, data, label="dense")
    results: dict[tuple, tuple] = {}

    def evaluate(s: float, sc: str, m: str):
        key = (s, sc if m == "magnitude" else "layer", m)
        if key not in results:
            with _quiet():  # warned once above
                if m == "magnitude":
                    pruned = prune.magnitude(model, s, scope=key[1])
                else:
                    pruned = prune.random(model, s, seed=seed)
                row = measure.model(pruned, data, label=f"{m} {s:.2f} ({key[1]})")
                results[key] = (row, measure.layers(pruned))
        return results[key]

    sparsity_slider = widgets.FloatSlider(
        value=sparsity, min=SPARSITY_SLIDER.low, max=SPARSITY_SLIDER.high, step=0.01, description="sparsity",
        continuous_update=False,
    )  # fmt: skip
    scope_choice = widgets.ToggleButtons(
        options=list(prune.unstructured.SCOPES), value=scope, description="scope"
    )
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
