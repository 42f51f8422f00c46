"""What compression changed inside a model, and for whom: ``mcv.explain``.

The seed article (section 2.2) claims that compressed models are simpler and therefore easier to
interpret. This module measures instead of assuming, always on the same test images for both models
(paired, so ``mcviz.stats`` can test the differences):

- ``compare(a, b, data)``: agreement of the predicted classes, both accuracies with McNemar's exact
  test and a bootstrap interval of the difference, per-class accuracy changes, the change of the
  confusion matrix, and the images on which the two models disagree;
- ``saliency`` (the gradient of the predicted logit with respect to the input) and
  ``integrated_gradients`` (Sundararajan et al., 2017: the gradient averaged along the straight path
  from a black image, times the input; its attributions add up to the logit's change);
- ``concentration(attribution, top=0.1)``: the share of an image's total attribution in its top 10%
  of pixels (1.0: all of it; 0.1: spread evenly), one way to put "easier to read" into a number;
- ``reachable_inputs(model)``: which inputs still have a path of nonzero weights to an output;
- ``interpretability(a, b, data)``: those numbers for two models side by side, with paired tests;
- figures: ``images`` (a grid of pictures), ``weight_pictures`` (first-layer weights as 28x28
  images), ``weight_histograms`` (one model per stage: pruning leaves a gap at zero, k-means spikes).

Every function leaves its models unchanged (they are put in eval mode) and the global RNG alone.
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from mcviz import _layers, stats
from mcviz._checks import check_data


class Comparison(NamedTuple):
    """What :func:`compare` returns."""

    agreement: float
    accuracy_a: float
    accuracy_b: float
    test: stats.McNemar
    interval: stats.Interval
    per_class: pd.DataFrame
    confusion_change: pd.DataFrame
    disagreements: torch.Tensor


@torch.no_grad()
def predict(model: nn.Module, data, split: str = "test") -> torch.Tensor:
    """Returns the logits of ``model`` on every example of a split (in batches of 1,000)."""
    check_data(data)
    X = data.split(split).tensors[0]
    model.eval()
    return torch.cat([model(X[i : i + 1000]) for i in range(0, len(X), 1000)])


def compare(a: nn.Module, b: nn.Module, data, *, split: str = "test", seed: int = 0) -> Comparison:
    """Returns how model ``b`` (e.g. compressed) differs from ``a`` (e.g. the baseline) on the same
    images of a split: agreement, accuracies, McNemar's test, a bootstrap interval of the accuracy
    change, per-class changes (in points), the confusion-matrix change (``b``'s counts minus ``a``'s;
    rows: true class, columns: predicted) and the indices of the images they classify differently."""
    y = data.split(split).tensors[1]
    pa, pb = predict(a, data, split).argmax(1), predict(b, data, split).argmax(1)
    ca, cb = pa == y, pb == y
    classes = int(data.num_classes)
    rows = []
    for k in range(classes):
        sel = y == k
        n = int(sel.sum())
        acc_a = float(ca[sel].float().mean()) if n else float("nan")
        acc_b = float(cb[sel].float().mean()) if n else float("nan")
        rows.append({"class": k, "images": n, "accuracy_a": acc_a, "accuracy_b": acc_b,
                     "change_points": 100 * (acc_b - acc_a)})  # fmt: skip
    change = _confusion(y, pb, classes) - _confusion(y, pa, classes)
    labels = list(range(classes))
    return Comparison(
        agreement=float((pa == pb).float().mean()),
        accuracy_a=float(ca.float().mean()),
        accuracy_b=float(cb.float().mean()),
        test=stats.mcnemar(ca.numpy(), cb.numpy()),
        interval=stats.paired_bootstrap(ca.numpy(), cb.numpy(), seed=seed),
        per_class=pd.DataFrame(rows),
        confusion_change=pd.DataFrame(change.numpy(), index=labels, columns=labels),
        disagreements=torch.nonzero(pa != pb).reshape(-1),
    )


def saliency(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Returns ``|d logit / d input|`` per pixel (the largest over channels), shaped ``(N, H, W)``, for
    the ``target`` class of each image (default: the class the model predicts)."""
    grad = _gradient(model, x, target)
    return grad.abs().amax(dim=1) if grad.dim() == 4 else grad.abs()


def integrated_gradients(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None, *, steps: int = 32
) -> torch.Tensor:
    """Returns integrated gradients from a black (all-zero) image, shaped like ``x``: the input times
    the mean gradient at ``steps`` points along the straight path (midpoint rule). Their sum over an
    image approximates ``logit(x) - logit(0)`` of the target class (the completeness property)."""
    if target is None:
        with torch.no_grad():
            target = model.eval()(x).argmax(1)
    total = torch.zeros_like(x)
    for i in range(steps):
        total += _gradient(model, x * ((i + 0.5) / steps), target)
    return x * total / steps


def concentration(attribution: torch.Tensor, top: float = 0.1) -> torch.Tensor:
    """Returns, per image, the share of its total ``|attribution|`` held by its top ``top`` fraction
    of pixels: 1.0 when a few pixels carry everything, ``top`` when it is spread evenly."""
    a = attribution.detach().abs().reshape(len(attribution), -1)
    k = max(1, math.ceil(top * a.shape[1]))
    total = a.sum(1).clamp_min(1e-12)
    return a.topk(k, dim=1).values.sum(1) / total


def reachable_inputs(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Returns a bool tensor shaped like one input: True where some path of nonzero weights leads from
    that input to an output (ReLUs taken as open, max-pooling as reaching every input it covers).

    Works for ``nn.Sequential`` models of Linear / Conv2d, activation, pooling, Flatten and Dropout
    layers; raises ValueError for other modules."""
    shape = tuple(input_shape or getattr(model, "input_shape", None) or ())
    if not shape:
        raise ValueError("reachable_inputs needs input_shape=, the shape of one example")
    structure = nn.Sequential()
    for name, m in model.named_children() if isinstance(model, nn.Sequential) else [("", model)]:
        if isinstance(m, _layers.KINDS):
            w = (_layers.weight(m).detach() != 0).float()
            structure.append(_layers.plain_like(m, w, None).eval())
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            structure.append(nn.AvgPool2d(m.kernel_size, m.stride, m.padding))
        elif isinstance(m, nn.Flatten):
            structure.append(copy.deepcopy(m))
        elif isinstance(m, (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Identity)):
            continue
        else:
            raise ValueError(f"reachable_inputs cannot follow module {name!r} ({type(m).__name__})")
    x = torch.ones((1, *shape), requires_grad=True)
    structure(x).sum().backward()
    return (x.grad[0] > 0).detach()


def interpretability(a: nn.Module, b: nn.Module, data, *, images: int = 200, seed: int = 0) -> pd.DataFrame:
    """Returns the numbers that test "compressed models are easier to interpret" for two models on the
    same test images, one row per measure: value_a, value_b, difference (b - a), low / high (a paired
    95% bootstrap interval) or p_value (McNemar), and what the measure means.

    Saliency and integrated gradients are computed on the first ``images`` test images."""
    comparison = compare(a, b, data, seed=seed)
    x = data.test.tensors[0][:images]
    rows = [
        _row(
            "test accuracy",
            comparison.accuracy_a,
            comparison.accuracy_b,
            comparison.interval,
            p=comparison.test.p_value,
            meaning="paired: McNemar's exact test on the same images",
        ),  # fmt: skip
        _row("agreement with a", 1.0, comparison.agreement, None, meaning="share of test images, same class"),
        _row("nonzero weights", _nonzero(a), _nonzero(b), None, meaning="fewer: simpler to write down"),
        _row(
            "inputs that reach an output",
            int(reachable_inputs(a, data.input_shape).sum()),
            int(reachable_inputs(b, data.input_shape).sum()),
            None,
            meaning="of the input's pixels",
        ),  # fmt: skip
    ]
    for name, fn in (("saliency", saliency), ("integrated gradients", integrated_gradients)):
        ca, cb = concentration(fn(a, x)), concentration(fn(b, x))
        interval = stats.paired_bootstrap(ca.numpy(), cb.numpy(), seed=seed)
        rows.append(_row(f"{name}: share in the top 10% of pixels", float(ca.mean()), float(cb.mean()),
                         interval, meaning="higher: attention on fewer pixels"))  # fmt: skip
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- figures


def images(pictures, titles=None, *, cols: int = 8, diverging: bool = False, title: str = "") -> go.Figure:
    """Returns a grid of heatmaps, one per picture (``(N, H, W)`` or ``(N, 1, H, W)``), top row first;
    ``diverging`` centres a red-blue scale on zero (weights, attributions)."""
    p = torch.as_tensor(pictures).detach().float()
    p = p[:, 0] if p.dim() == 4 else p
    n = len(p)
    rows = max(1, math.ceil(n / cols))
    fig = make_subplots(rows=rows, cols=min(cols, max(n, 1)), subplot_titles=list(titles or []),
                        horizontal_spacing=0.01, vertical_spacing=0.06)  # fmt: skip
    for i in range(n):
        img = p[i].flip(0).numpy()  # plotly draws row 0 at the bottom
        bound = float(np.abs(img).max()) or 1.0
        scale = (
            {"colorscale": "RdBu", "zmid": 0, "zmin": -bound, "zmax": bound}
            if diverging
            else {"colorscale": "Greys"}
        )
        fig.add_trace(go.Heatmap(z=img, showscale=False, **scale), row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig.update_layout(title=title, height=120 * rows + 80, margin={"l": 10, "r": 10, "t": 60, "b": 10})
    fig.update_annotations(font_size=10)
    return fig


def weight_pictures(model: nn.Module, layer: str = "fc1", *, units: int = 16, shape=(28, 28),
                    title: str = "") -> go.Figure:  # fmt: skip
    """Returns the first ``units`` rows of a Linear layer's weight (the weight it computes with) drawn
    as ``shape`` pictures: what each hidden unit looks for in the input (pruned weights are 0)."""
    w = _layers.weight(model.get_submodule(layer)).detach()[:units]
    if w.shape[1] != math.prod(shape):
        raise ValueError(f"layer {layer!r} has {w.shape[1]} inputs, not a {shape[0]}x{shape[1]} picture")
    kept = [f"unit {i}: {int((row != 0).sum())} kept" for i, row in enumerate(w)]
    return images(
        w.reshape(-1, *shape), kept, diverging=True, title=title or f"{layer}: weights of {units} units"
    )


def weight_histograms(
    models: dict[str, nn.Module], layer: str | None = None, *, bins: int = 150
) -> go.Figure:
    """Returns one histogram per model (e.g. per pipeline stage) of the weights it computes with in
    ``layer`` (default: all Linear / Conv2d layers), on a log count axis so that a gap at zero (pruning)
    and spikes (k-means' shared values) show.

    The counts are binned here, over ``bins`` equal bins spanning +-(the largest |weight| rounded up
    to a tenth), so the figure holds counts, not every weight."""
    weights = {}
    for label, m in models.items():
        layers = (
            [m.get_submodule(layer)] if layer else [x for x in m.modules() if isinstance(x, _layers.KINDS)]
        )
        weights[label] = torch.cat([_layers.weight(x).detach().reshape(-1) for x in layers]).numpy()
    bound = math.ceil(10 * max(float(np.abs(w).max()) for w in weights.values())) / 10 or 0.1
    edges = np.linspace(-bound, bound, bins + 1)
    centers = ((edges[:-1] + edges[1:]) / 2).round(6).tolist()
    fig = go.Figure()
    for label, w in weights.items():
        counts, _ = np.histogram(w, bins=edges)
        fig.add_bar(
            x=centers, y=counts.tolist(), name=f"{label} ({int((w != 0).sum()):,} nonzero)", opacity=0.6
        )
    fig.update_layout(
        barmode="overlay", bargap=0, title=f"Weights of {layer or 'every layer'}, stage by stage",
        xaxis_title="weight", yaxis_title="count (log)", yaxis_type="log", height=380,
    )  # fmt: skip
    return fig


# ---------------------------------------------------------------- helpers


def _gradient(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    model = model.eval()
    x = x.detach().clone().requires_grad_(True)
    logits = model(x)
    if target is None:
        target = logits.argmax(1)
    logits.gather(1, target.reshape(-1, 1)).sum().backward()
    return x.grad.detach()


def _confusion(y: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    return torch.bincount(y * classes + predicted, minlength=classes * classes).reshape(classes, classes)


def _nonzero(model: nn.Module) -> int:
    return sum(int((_layers.weight(m) != 0).sum()) for m in model.modules() if isinstance(m, _layers.KINDS))


def _row(measure, a, b, interval, *, p=None, meaning="") -> dict:
    return {
        "measure": measure,
        "value_a": a,
        "value_b": b,
        "difference": b - a,
        "low": interval.low if interval is not None else None,
        "high": interval.high if interval is not None else None,
        "p_value": p,
        "meaning": meaning,
    }
