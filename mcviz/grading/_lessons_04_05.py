"""Questions of lessons 04 (pruning) and 05 (pruning, advanced)."""

from __future__ import annotations

import torch
from torch import nn

from mcviz import measure, models
from mcviz.grading._core import (
    MNIST,
    Wrong,
    _call,
    _number,
    _short,
    question,
)

# ---- lesson 04: pruning ------------------------------------------------------------------------


def _prune_models() -> list[tuple[str, nn.Module, float]]:
    """(name, model, sparsity): the cases the global magnitude mask is graded on."""
    return [
        ("lenet300 at sparsity 0.9", models.build("lenet300", input_shape=MNIST, seed=0), 0.9),
        ("seed_cnn on 28x28 at sparsity 0.5", models.build("seed_cnn", input_shape=MNIST, seed=1), 0.5),
        ("lenet5 at sparsity 0.75", models.build("lenet5", input_shape=MNIST, seed=2), 0.75),
        ("mlp hidden=(32,) at 0.3", models.build("mlp", input_shape=(64,), hidden=(32,), seed=3), 0.3),
    ]


@question(
    "04.global_mask",
    "Write global_mask(model, sparsity) that returns {layer name: bool mask} pruning the "
    "smallest |w| ranked over ALL Linear/Conv2d weights together (True = kept), as "
    "mcv.prune.magnitude(model, sparsity, scope='global') does.",
    hint="collect |w| of every Linear/Conv2d weight (biases excluded) into one flat tensor; prune "
    "round(sparsity * total) of them, the smallest; cut the flat mask back into one piece per "
    "layer, shaped like its weight (torch.split and reshape help).",
)
def _global_mask(answer) -> bool:
    from mcviz import prune

    for name, model, sparsity in _prune_models():
        got = _call(answer, model, sparsity, what="global_mask")
        layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
        if not isinstance(got, dict) or set(got) != set(layers):
            keys = sorted(got) if isinstance(got, dict) else type(got).__name__
            raise Wrong(f"global_mask must return a dict keyed by layer name: {sorted(layers)}, got {keys}")
        kept, pruned, n_pruned = [], [], 0
        for n, layer in layers.items():
            mask = got[n]
            if not torch.is_tensor(mask) or mask.dtype != torch.bool or mask.shape != layer.weight.shape:
                raise Wrong(f"the mask of {n} must be a bool tensor shaped like its weight, for {name}")
            w = layer.weight.detach().abs()
            kept.append(w[mask])
            pruned.append(w[~mask])
            n_pruned += int((~mask).sum())
        reference = prune.magnitude(model, sparsity, scope="global")
        expected = sum(int((~m.mask).sum()) for m in reference.modules() if hasattr(m, "mask"))
        if n_pruned != expected:
            raise Wrong(f"global_mask prunes {n_pruned} weights for {name}, not the right count")
        largest_pruned, smallest_kept = torch.cat(pruned).max(), torch.cat(kept).min()
        if n_pruned and largest_pruned > smallest_kept:
            raise Wrong(f"a pruned weight is larger than a kept one for {name}: rank all layers together")
    return True


def _reference_scans() -> list[tuple[str, object, float]]:
    """(name, scan, budget_sparsity): synthetic sensitivity scans the allocation is graded on."""
    import pandas as pd

    def scan(layers: dict[str, tuple[int, list[float]]], grid=(0.5, 0.7, 0.9)) -> pd.DataFrame:
        rows = [
            (n, s, 0.9 - d, d, weights)
            for n, (weights, drops) in layers.items()
            for s, d in zip(grid, drops, strict=True)
        ]
        return pd.DataFrame(rows, columns=["layer", "sparsity", "accuracy", "drop", "weights"])

    lenet = {"fc1": (235200, [0.0, 0.004, 0.03]), "fc2": (30000, [0.002, 0.01, 0.05]),
             "fc3": (1000, [0.01, 0.05, 0.3])}  # fmt: skip
    cnn = {"conv1": (288, [0.05, 0.2, 0.5]), "conv2": (18432, [0.01, 0.03, 0.12]),
           "fc1": (46080, [0.002, 0.006, 0.04]), "fc2": (1280, [0.02, 0.06, 0.2])}  # fmt: skip
    flat = {"a": (100, [0.01, 0.02, 0.03]), "b": (300, [0.02, 0.03, 0.5])}
    return [
        ("a LeNet-300-100-like scan, budget 0.8", scan(lenet), 0.8),
        ("a LeNet-300-100-like scan, budget 0.88", scan(lenet), 0.88),
        ("a CNN-like scan, budget 0.6", scan(cnn), 0.6),
        ("a two-layer scan, budget 0.5", scan(flat), 0.5),
    ]


@question(
    "04.allocate",
    "Write choose_sparsities(scan, budget_sparsity): from a sensitivity scan, return "
    "{layer: sparsity} whose overall sparsity reaches budget_sparsity with the least summed drop.",
    hint="each layer takes one of the scan's sparsities or 0.0; a layer at sparsity s has "
    "round(s * weights) zeros; the overall sparsity is total zeros / total weights. With a few "
    "layers and a few sparsities you can try every combination (itertools.product).",
)
def _allocate(answer) -> bool:
    from mcviz import prune

    for name, scan, budget in _reference_scans():
        got = _call(answer, scan.copy(), budget, what="choose_sparsities")
        layers = list(dict.fromkeys(scan["layer"]))
        if not isinstance(got, dict) or set(got) != set(layers):
            keys = sorted(got) if isinstance(got, dict) else type(got).__name__
            raise Wrong(f"choose_sparsities must return a dict keyed by every layer {layers}, got {keys}")
        zeros = drop = 0.0
        for layer in layers:
            rows = scan[scan["layer"] == layer]
            s = _number(got[layer], f"the sparsity of {layer}")
            if s != 0.0 and not (rows["sparsity"] == s).any():
                raise Wrong(f"{layer} gets sparsity {s}, which the scan did not measure, for {name}")
            weights = int(rows["weights"].iloc[0])
            zeros += round(s * weights)
            drop += float(rows.loc[rows["sparsity"] == s, "drop"].iloc[0]) if s else 0.0
        total = int(scan.drop_duplicates("layer")["weights"].sum())
        if zeros < budget * total - 1e-9:
            raise Wrong(f"your choice reaches sparsity {zeros / total:.4f}, under the budget, for {name}")
        best = prune.allocate(scan, budget_sparsity=budget)
        best_drop = sum(
            float(scan.loc[(scan["layer"] == n) & (scan["sparsity"] == s), "drop"].iloc[0])
            for n, s in best.items()
            if s
        )
        if drop > best_drop + 1e-9:
            raise Wrong(f"another choice meets the budget with a smaller summed drop, for {name}")
    return True


# ---- lesson 05: pruning, advanced --------------------------------------------------------------


@question(
    "05.vgg_pruned_macs",
    "Write vgg_pruned_macs(input_shape, width, sparsity): the MACs of mcv.models.build('vgg_small', "
    "input_shape=..., width=...) after mcv.prune.channels(model, sparsity), computed by hand.",
    hint="each conv is 3x3 with padding 1 (the output map has the input's size) and loses "
    "floor(sparsity * channels) of its output channels; the next conv's inputs are the channels kept; "
    "each block's 2x2 max-pooling halves height and width (rounding down); the final Linear reads "
    "channels * h * w inputs. BatchNorm, ReLU and pooling count no MACs.",
)
def _vgg_pruned_macs(answer) -> bool:
    from mcviz import prune

    for shape, width, sparsity in (((1, 28, 28), 8, 0.5), ((3, 16, 12), 6, 0.25), ((1, 9, 9), 5, 0.7)):
        got = _call(answer, shape, width, sparsity, what="vgg_pruned_macs")
        model = models.build("vgg_small", input_shape=shape, width=width, seed=0)
        expected = measure.model(prune.channels(model, sparsity)).macs
        if _number(got, "vgg_pruned_macs") != expected:
            raise Wrong(f"for input {shape}, width {width}, sparsity {sparsity}: {_short(got)} is not "
                        "the pruned model's MACs")
    return True


def _channel_models() -> list[tuple[str, nn.Module, tuple[int, int, int], int]]:
    """(name, model, input_shape, k): seed CNNs whose conv1 loses k filters."""
    return [
        ("seed_cnn on 28x28 losing 8 filters", models.build("seed_cnn", input_shape=MNIST, seed=0), MNIST, 8),
        (
            "seed_cnn on 8x8 with 5 classes losing 3 filters",
            models.build("seed_cnn", input_shape=(1, 8, 8), num_classes=5, seed=0),
            (1, 8, 8),
            3,
        ),
        (
            "seed_cnn on 15x15 losing 31 filters",
            models.build("seed_cnn", input_shape=(1, 15, 15), seed=1),
            (1, 15, 15),
            31,
        ),  # fmt: skip
        ("seed_cnn on 28x28 losing no filter", models.build("seed_cnn", input_shape=MNIST, seed=2), MNIST, 0),
    ]


@question(
    "05.pruned_macs",
    "Write pruned_macs(model, input_shape, k): the MACs of a seed CNN (conv1, relu, 2x2 max-pool, "
    "flatten, fc1) for one example after its conv1 loses k filters and fc1 the inputs they fed.",
    hint="each removed filter takes away its own output map (every position reads in_channels x "
    "kernel inputs) and, after pooling and flattening, a block of fc1's input columns, each used "
    "by every output class. Pooling and ReLU are not counted.",
)
def _pruned_macs(answer) -> bool:
    from mcviz import prune

    for name, model, shape, k in _channel_models():
        got = _call(answer, model, shape, k, what="pruned_macs")
        n = model.conv1.out_channels
        smaller = prune.channels(model, {"conv1": k / n})
        if _number(got, f"pruned_macs for {name}") != measure.macs(smaller, shape):
            raise Wrong(f"pruned_macs gave {_short(got)} for {name}")
    return True
