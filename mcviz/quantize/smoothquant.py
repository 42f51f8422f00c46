"""SmoothQuant (Xiao et al., 2022): W8A8 with the quantization difficulty moved from activations
to weights.

int8 activations fail where a few input channels are far larger than the rest (outliers): one
scale per tensor must cover them, and every other channel is left with a handful of codes.
Weights have no such outliers. SmoothQuant divides each input channel by
``s_j = max|X_j| ** alpha / max|W_:,j| ** (1 - alpha)`` and multiplies the matching weight column
by it: ``X W^T = (X / s)(W diag(s))^T`` exactly, and both factors are now moderate. ``alpha``
(about 0.5) says how much of the difficulty moves.

- :func:`smooth_scales`: ``s`` of one layer from its input ranges and weight;
- :func:`smooth`: a copy of a model whose Linear layers compute ``(W s)(x / s)`` (a
  :class:`Smoothed` layer; the same function up to float rounding);
- :func:`smoothquant` / :class:`SmoothQuantConfig` (method ``"smoothquant"``): smooth, then run
  every Linear with real int8 kernels (``mcv.quantize.int8``'s dynamic mode: int8 weights per
  output channel, activations quantized to int8 per tensor, batch by batch, by torch's x86 kernels).

The paper folds ``1 / s`` into the LayerNorm before the layer, which makes it free; mcviz keeps it
as a division in front of the layer (one fp32 scale per input channel, counted in the size), so
it works on any model of Linear layers and costs a little time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mcviz import _layers
from mcviz._checks import check_int, check_model, check_number
from mcviz.quantize import calibration
from mcviz.quantize.int8 import int8
from mcviz.registry import register


class Smoothed(nn.Module):
    """A Linear layer that divides its input by a per-channel ``scale`` (buffer) first: the layer
    ``linear`` holds ``W diag(scale)``. ``mcv.quantize.int8`` turns ``linear`` into an int8 kernel."""

    def __init__(self, linear: nn.Linear, scale: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("scale", scale.detach().float().clone())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x / self.scale)


def smooth_scales(act_max: torch.Tensor, w: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Returns ``s_j = max|X_j| ** alpha / max|W_:,j| ** (1 - alpha)`` (float32, one per input channel)
    from a layer's input ranges ``act_max`` ``(in,)`` and weight ``w`` ``(out, in)``; both unchanged.

    ``max|X_j|`` is floored at 1% of the median channel's: a channel that calibration never saw
    active (a border pixel, a rare token) would otherwise get a tiny ``s_j``, and one later
    activation divided by it would stretch the whole tensor's int8 range.
    """
    alpha = check_number(alpha, "alpha")  # the shared bounds: [0, 1]
    a = act_max.detach().float()
    a = a.clamp(min=max(1e-5, 0.01 * float(a.median())))  # a channel never seen active must not blow up
    m = w.detach().float().abs().amax(0).clamp(min=1e-5)
    return (a.pow(alpha) / m.pow(1 - alpha)).clamp(min=1e-5)


def smooth(model: nn.Module, data, *, alpha: float = 0.5, samples: int = 32) -> nn.Module:
    """Returns a float copy of ``model`` whose Linear layers are :class:`Smoothed` with scales from
    the input ranges of ``samples`` training inputs of ``data``; ``model`` is unchanged. The copy
    computes the same function (up to float rounding): only int8 rounding tells the difference."""
    _check_options(alpha, samples)
    check_model(model)
    calibration.check_calibration_data(data)  # before linear_targets' warning
    names = _layers.linear_targets(model, "smoothquant")
    ranges: dict[str, torch.Tensor] = {}

    def keep(name, x):
        m = x.abs().amax(0)
        ranges[name] = m if name not in ranges else torch.maximum(ranges[name], m)

    calibration.collect(model, names, calibration.batches(data, samples), keep, stop=False)
    out = copy.deepcopy(model)
    for name in names:
        if name not in ranges:  # never called: nothing to smooth
            continue
        layer = out.get_submodule(name)
        w = _layers.weight(layer).detach().float()
        s = smooth_scales(ranges[name], w, alpha)
        bias = layer.bias.detach().float() if layer.bias is not None else None
        out = _layers.replace(out, name, Smoothed(_layers.plain_like(layer, w * s, bias), s))
    return out


def smoothquant(model: nn.Module, data, *, alpha: float = 0.5, samples: int = 32) -> nn.Module:
    """Returns a copy of ``model`` smoothed (:func:`smooth`) and run with int8 weights and int8
    activations through torch's integer kernels; ``model`` is unchanged.

    Args:
        model: any model with ``nn.Linear`` layers (other weight layers stay fp32; one warning).
        data: a DataBundle; the first ``samples`` training inputs give the activation ranges.
        alpha: the migration strength in [0, 1]; 0 is plain dynamic int8.
        samples: calibration inputs.
    """
    return int8(smooth(model, data, alpha=alpha, samples=samples), mode="dynamic")


@register
@dataclass(frozen=True)
class SmoothQuantConfig:
    """SmoothQuant: W8A8 on int8 kernels after moving activation outliers into the weights (alpha)."""

    method: ClassVar[str] = "smoothquant"
    needs_data: ClassVar[bool] = True
    alpha: float = 0.5
    samples: int = 32

    def __post_init__(self):
        _check_options(self.alpha, self.samples)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return smoothquant(model, data, alpha=self.alpha, samples=self.samples)


def _check_options(alpha, samples) -> None:
    """The checks of SmoothQuant's options (shared bounds), in the order of the config's fields."""
    check_number(alpha, "alpha")
    check_int(samples, "samples")
