"""Per-layer pruning sensitivity, and per-layer sparsities chosen from it under a global budget.

``sensitivity`` prunes ONE layer at a time (magnitude pruning, the others left whole) at each
of a few sparsities and records the accuracy: layers whose accuracy falls fast are sensitive
(usually the first conv and the output layer), the big hidden layers usually are not.
``allocate`` turns such a scan into a dict {layer: sparsity} that reaches an overall sparsity
with the least summed accuracy drop, the per-layer choice of Han et al. (2015).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from torch import nn

from mcviz import _layers, train
from mcviz._checks import check_choice, check_data, check_model, check_sequence, check_sparsity, shorten
from mcviz.prune.masks import n_pruned
from mcviz.prune.unstructured import _magnitude

METHODS = ("magnitude",)
SPLITS = ("train", "val", "test")
COLUMNS = ["layer", "sparsity", "accuracy", "drop", "weights"]
MAX_SPARSITIES = 100  # each is one evaluation per layer


def sensitivity(
    model: nn.Module,
    data,
    *,
    sparsities: Sequence[float] = (0.5, 0.7, 0.9),
    method: str = "magnitude",
    split: str = "val",
) -> pd.DataFrame:
    """Returns a DataFrame with one row per (layer, sparsity): the accuracy with only that layer
    pruned; ``model`` is left unchanged.

    Args:
        model: a network with Linear / Conv2d layers (every one of them is scanned).
        data: a DataBundle; accuracy is measured on its ``split``.
        sparsities: fractions of the layer's weights set to zero, each a float in [0, 1].
        method: "magnitude" (the smallest ``|w|`` of the layer go).
        split: "val" (default: choosing sparsities on the test split would overfit it),
            "train" or "test".

    Returns:
        Columns ``layer``, ``sparsity``, ``accuracy`` (in [0, 1]), ``drop`` (unpruned accuracy
        minus accuracy: positive is worse) and ``weights`` (the layer's weight count, biases
        excluded, which ``allocate`` needs). ``df.attrs["baseline"]`` is the unpruned accuracy.

    Example:
        >>> scan = sensitivity(model, data, sparsities=(0.5, 0.9))  # doctest: +SKIP
        >>> per_layer = allocate(scan, budget_sparsity=0.8)  # doctest: +SKIP
        >>> small = mcv.prune.magnitude(model, per_layer)  # doctest: +SKIP
    """
    check_model(model)
    check_data(data)
    grid = _check_sparsities(sparsities)
    check_choice(method, "method", METHODS)
    check_choice(split, "split", SPLITS)
    layers = _layers.transformable(model, "sensitivity", action="scans", rest="are not scanned")
    baseline = train.evaluate(model, data, split)
    rows = []
    for name, layer in layers:
        weights = layer.weight.numel()
        for s in grid:
            accuracy = train.evaluate(_prune_one(model, name, s), data, split)
            rows.append((name, s, accuracy, baseline - accuracy, weights))
    scan = pd.DataFrame(rows, columns=COLUMNS)
    scan.attrs["baseline"] = baseline
    return scan


def allocate(scan: pd.DataFrame, *, budget_sparsity: float) -> dict[str, float]:
    """Returns {layer: sparsity} reaching an overall sparsity >= ``budget_sparsity`` with the least
    summed accuracy drop; ``scan`` is left unchanged.

    Each layer takes one of the scan's sparsities, or 0.0 (left whole). The overall sparsity is
    the fraction of zero weights over all the scan's layers, counted as magnitude pruning counts
    them (``round(sparsity * weights)`` per layer; zeros already in the model are not counted).
    The cost of a choice is the sum of the scan's per-layer drops: an estimate, since layers
    pruned together interact. The search is exact over the grid, not greedy: a dynamic program
    over the layers that keeps only the (zeros, summed drop) pairs no other pair beats on both.
    Of choices with the same summed drop, the one with more zeros wins (a negative drop, an
    accuracy gain within the noise of the split, counts as such too).

    Args:
        scan: a DataFrame from ``sensitivity`` (columns layer, sparsity, drop, weights).
        budget_sparsity: the overall fraction of zero weights to reach, a float in [0, 1].

    Returns:
        Every layer of the scan, in its order, with its sparsity: pass it to
        ``mcv.prune.magnitude``.
    """
    wanted = f"scan must be a DataFrame from sensitivity() with columns {', '.join(COLUMNS)}"
    if not isinstance(scan, pd.DataFrame):
        raise TypeError(f"{wanted}, got {type(scan).__name__}")
    if not set(COLUMNS) - {"accuracy"} <= set(scan.columns):
        raise ValueError(f"{wanted}, got columns {shorten(list(scan.columns))}")
    budget = check_sparsity(budget_sparsity, "budget_sparsity")
    if scan.empty:
        raise ValueError("scan is empty: run sensitivity() with at least one layer and sparsity")
    names = list(dict.fromkeys(scan["layer"]))
    options, sizes = {}, {}
    for name in names:
        rows = scan[scan["layer"] == name]
        sizes[name] = int(rows["weights"].iloc[0])
        options[name] = [(0.0, 0.0)] + [
            (float(s), float(d)) for s, d in zip(rows["sparsity"], rows["drop"], strict=True)
        ]
    total = sum(sizes.values())
    most = sum(n_pruned(sizes[n], max(s for s, _ in options[n])) for n in names)
    need = math.ceil(budget * total - 1e-9)
    if most < need:
        raise ValueError(
            f"budget_sparsity={budget_sparsity!r} cannot be reached with the scan's sparsities "
            f"(at most {most / total:.4f} overall); scan higher sparsities"
        )
    # frontier: (zeros, summed drop, choices), none beaten on both zeros and drop by another
    frontier: list[tuple[int, float, tuple[float, ...]]] = [(0, 0.0, ())]
    for name in names:
        grown = [
            (z + n_pruned(sizes[name], s), d + drop, choice + (s,))
            for z, d, choice in frontier
            for s, drop in options[name]
        ]
        grown.sort(key=lambda t: (-t[0], t[1]))
        frontier, best = [], math.inf
        for state in grown:
            if state[1] < best:
                frontier.append(state)
                best = state[1]
    reachable = [state for state in frontier if state[0] >= need]
    _, _, choice = min(reachable, key=lambda t: (t[1], -t[0]))
    return dict(zip(names, choice, strict=True))


def _check_sparsities(sparsities) -> list[float]:
    grid = check_sequence(sparsities, "sparsities", most=MAX_SPARSITIES, items="floats in [0, 1]")
    return sorted({check_sparsity(s, "each of sparsities") for s in grid})


def _prune_one(model: nn.Module, name: str, sparsity: float) -> nn.Module:
    """Returns a copy of ``model`` with layer ``name`` magnitude-pruned to ``sparsity``."""
    return _magnitude(model, {name: sparsity}, "layer", "sensitivity", warn=False)
