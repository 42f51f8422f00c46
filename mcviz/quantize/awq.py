"""AWQ (Lin et al., 2023): activation-aware weight quantization.

A few input channels of a layer carry much larger activations than the rest; the weights that
multiply them matter most ("salient"), and rounding them hurts the output most. Keeping them in
fp16 (1% of the channels) recovers most of the loss, but mixed precision is awkward to store;
AWQ instead SCALES them: ``W x = (W diag(s)) (x / s)``. Multiplying a salient column by ``s > 1``
before rounding shrinks its relative rounding error, and dividing its input by ``s`` undoes the
scale exactly. The per-channel scale is ``s = mean|x_j| ** alpha`` (normalized), with ``alpha``
searched on a grid in [0, 1] to minimize the layer's output error ``||Q(W s)(x / s) - W x||``
on calibration data; ``alpha = 0`` is plain round-to-nearest.

The paper folds ``1 / s`` into the operation before the layer (a LayerNorm or the previous
Linear); for any model of Linear layers mcviz keeps it as a scale: the layer stores ``s`` (fp16,
one per input channel, counted in its size) and divides its input by it. :func:`search` is the
search on one layer, :func:`awq` / :class:`AWQConfig` (method ``"awq"``) run it on every Linear
layer with inputs from the fp32 model. AWQ's second step (clipping the weight range) is left out.

AWQ helps where activations have outlier channels (large language models, MiniLM's FFN
down-projections); a small model without them gains little or nothing: measure it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from mcviz import _layers
from mcviz._checks import check_int, check_model
from mcviz.quantize import calibration
from mcviz.quantize.groupwise import (
    GroupQuantLinear,
    check_layers,
    check_options,
    group_fake_quantize,
)
from mcviz.registry import register


class Search(NamedTuple):
    """What :func:`search` found for one layer: the best ``alpha``, its per-channel ``scale``, and
    the output error (mean squared) of every ``alpha`` tried (``errors[0]`` is alpha 0: RTN)."""

    alpha: float
    scale: torch.Tensor
    alphas: list[float]
    errors: list[float]


def search(w: torch.Tensor, x: torch.Tensor, bits: int = 4, *, group_size: int = 32, symmetric: bool = True,
           grid: int = 20) -> Search:  # fmt: skip
    """Returns the AWQ scale of one layer with weight ``w`` ``(out, in)`` and calibration inputs
    ``x`` ``(rows, in)``; ``w`` and ``x`` are unchanged.

    For each ``alpha`` in ``0, 1/grid, ..., (grid-1)/grid``: ``s = mean|x| ** alpha``, normalized so
    that ``sqrt(max(s) min(s)) = 1`` and rounded to fp16 (as stored); the error is the mean squared
    difference between ``x W^T`` and ``(x / s) Q(W s)^T``.
    """
    check_int(bits, "bits")
    grid = check_int(grid, "grid")
    w, x = w.detach().float(), x.detach().float()
    x_mean = x.abs().mean(0).clamp(min=1e-8)
    reference = x @ w.T
    alphas, errors, scales = [], [], []
    for k in range(grid):
        alpha = k / grid
        s = x_mean.pow(alpha)
        s = (s / (s.max() * s.min()).sqrt()).clamp(min=1e-4).half().float()
        wq = group_fake_quantize(w * s, bits, group_size, symmetric=symmetric)
        errors.append(float(F.mse_loss((x / s) @ wq.T, reference)))
        alphas.append(alpha)
        scales.append(s)
    best = min(range(grid), key=errors.__getitem__)
    return Search(alphas[best], scales[best], alphas, errors)


def awq(model: nn.Module, data, bits: int = 4, *, group_size: int = 32, symmetric: bool = True,
        samples: int = 32, grid: int = 20, max_rows: int = 512) -> nn.Module:  # fmt: skip
    """Returns a copy of ``model`` whose Linear layers are quantized group-wise with AWQ scales;
    ``model`` is unchanged.

    Args:
        model: any model with ``nn.Linear`` layers; other weight layers stay (one warning names them).
        data: a DataBundle; the first ``samples`` training inputs calibrate.
        bits, group_size, symmetric: the storage format, as in ``mcv.quantize.groupwise``.
        samples: calibration inputs.
        grid: alphas tried per layer (0 included: a layer where scaling does not help stays RTN).
        max_rows: input rows per layer kept for the search (evenly spread), to bound its cost.
    """
    _check_options(bits, group_size, symmetric, samples, grid)
    max_rows = check_int(max_rows, "max_rows", low=1, high=10_000_000)
    check_model(model)
    calibration.check_calibration_data(data)  # before linear_targets' warning
    names = _layers.linear_targets(model, "awq")
    check_layers(model, names, group_size)
    inputs = calibration.batches(data, samples)
    rows: dict[str, list[torch.Tensor]] = {}
    calibration.collect(model, names, inputs, lambda n, x: rows.setdefault(n, []).append(x), stop=False)
    out = copy.deepcopy(model)
    for name in names:
        layer = out.get_submodule(name)
        q = GroupQuantLinear.from_float(layer, bits, group_size=group_size, symmetric=symmetric)
        if name in rows:
            x = torch.cat(rows[name])
            x = x[torch.linspace(0, len(x) - 1, min(max_rows, len(x))).round().long()]
            found = search(
                _layers.weight(layer), x, bits, group_size=group_size, symmetric=symmetric, grid=grid
            )
            if found.alpha > 0:
                q.set_weight(_layers.weight(layer).detach() * found.scale)
                q.set_codes(q.codes, q.scale, q.zero_point, input_scale=found.scale)
        out = _layers.replace(out, name, q)
    return out


@register
@dataclass(frozen=True)
class AWQConfig:
    """AWQ: group-wise weight-only quantization with activation-aware per-channel scales (calibrated)."""

    method: ClassVar[str] = "awq"
    needs_data: ClassVar[bool] = True
    bits: int = 4
    group_size: int = 32
    symmetric: bool = True
    samples: int = 32
    grid: int = 20

    def __post_init__(self):
        _check_options(self.bits, self.group_size, self.symmetric, self.samples, self.grid)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return awq(model, data, self.bits, group_size=self.group_size, symmetric=self.symmetric,
                   samples=self.samples, grid=self.grid)  # fmt: skip


def _check_options(bits, group_size, symmetric, samples, grid) -> None:
    """The checks of AWQ's options (shared bounds), in the order of the config's fields."""
    check_options(bits, group_size, symmetric)
    check_int(samples, "samples")
    check_int(grid, "grid")
