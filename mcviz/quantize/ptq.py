"""Post-training quantization (PTQ): round a trained model's weights, and optionally its
activations, to a ``bits``-bit grid without retraining.

- ``weights(model, bits)``: weight-only PTQ. Every Linear / Conv2d becomes a
  :class:`~mcviz.quantize.layers.QuantLinear` / ``QuantConv2d`` holding integer codes and
  scales; activations stay fp32. Needs no data.
- ``ptq(model, data, bits)``: weights as above, plus each quantized layer rounds its input to an
  8-bit unsigned asymmetric grid whose range an observer chose on calibration batches from the
  TRAINING split (never the test split).

Both return a new model and leave ``model`` unchanged. Weight layers other than Linear / Conv2d
(Conv1d, Embedding...) stay float32, with one warning naming them; a model without a Linear /
Conv2d layer is refused. ``mcv.train.fit`` on the result trains
only the fp32 biases (and any layer left in fp32): the weights are buffers, so the codes stay
fixed; see ``layers.py``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mcviz import _layers
from mcviz._checks import (
    BOUNDS,
    check_bool,
    check_choice,
    check_data,
    check_int,
    check_model,
    check_option,
    shorten,
)
from mcviz.quantize.layers import GRANULARITIES, QuantConv2d, QuantLinear
from mcviz.quantize.observers import OBSERVERS
from mcviz.quantize.observers import observer as make_observer
from mcviz.registry import register

ACT_BITS = 8  # activations: 8-bit unsigned codes, asymmetric (zero point from the range)
CALIBRATION_BATCH_SIZE = 64


def weights(
    model: nn.Module,
    bits: int | dict[str, int] = 8,
    *,
    granularity: str = "per_channel",
    symmetric: bool = True,
) -> nn.Module:
    """Returns a copy of ``model`` whose Linear / Conv2d weights are stored as ``bits``-bit codes
    (weight-only post-training quantization); ``model`` is left unchanged.

    Args:
        model: a trained network. Its Linear / Conv2d layers are quantized; other weight layers
            (Conv1d, Embedding...) stay fp32, with one warning naming them.
        bits: an int in [2, 8] for every layer, or a dict ``{layer name: bits}`` (names as in
            ``model.named_modules()``, e.g. ``"fc1"``) for mixed precision; layers the dict does
            not name stay fp32.
        granularity: "per_channel" (one scale per output channel) or "per_tensor".
        symmetric: signed codes with zero point 0 (True) or unsigned codes with a zero point.

    Example:
        >>> small = weights(model, 8)  # doctest: +SKIP
        >>> mcv.measure.model(small).bits  # doctest: +SKIP
        8.0
    """
    _check_weights(granularity, symmetric)
    return _weights(model, _plan(model, bits, "weights"), granularity, symmetric)


def _weights(model: nn.Module, plan: dict[str, int], granularity: str, symmetric: bool) -> nn.Module:
    """``weights`` for a checked ``plan`` (:func:`_plan`) and options."""
    out = copy.deepcopy(model)
    for name, layer_bits in plan.items():
        layer = out.get_submodule(name)
        cls = QuantConv2d if isinstance(layer, nn.Conv2d) else QuantLinear
        quant = cls.from_float(layer, layer_bits, granularity=granularity, symmetric=symmetric)
        out = _layers.replace(out, name, quant)  # name "": the model is itself one layer
    return out


def ptq(
    model: nn.Module,
    data,
    bits: int | dict[str, int] = 8,
    *,
    granularity: str = "per_channel",
    observer: str = "minmax",
    calibration_batches: int = 8,
) -> nn.Module:
    """Returns a copy of ``model`` with quantized weights and calibrated 8-bit activation
    quantization of every quantized layer's input; ``model`` is left unchanged.

    Weights are quantized as by :func:`weights` (symmetric). Then the copy runs, in eval mode
    and without activation rounding, on the first ``calibration_batches`` batches of 64 of
    ``data``'s training split in their stored order; one observer per layer watches the layer's
    input and sets its 8-bit unsigned asymmetric grid. Same inputs give the same model.

    Args:
        model: a trained network.
        data: a DataBundle (``mcv.data.load``); only its training split is read.
        bits: weight bits, an int in [2, 8] or a dict ``{layer name: bits}`` as in :func:`weights`.
        granularity: "per_channel" or "per_tensor", for the weights.
        observer: how activation ranges are chosen: "minmax", "percentile" (99.99th) or "mse".
        calibration_batches: number of training batches of 64 to calibrate on, in [1, 1000].
    """
    check_data(data)
    _check_ptq(granularity, observer, calibration_batches)
    out = _weights(model, _plan(model, bits, "ptq"), granularity, True)
    layers = {n: m for n, m in out.named_modules() if isinstance(m, (QuantLinear, QuantConv2d))}
    observers = {n: make_observer(observer) for n in layers}
    for m in layers.values():
        m.quantize_input(None, None, None)  # calibrate on unrounded inputs
    hooks = [m.register_forward_pre_hook(_watch(observers[n])) for n, m in layers.items()]
    was_training = out.training
    try:
        out.eval()
        with torch.no_grad():
            # slices, not a DataLoader: an iterator draws a seed from the global RNG
            X = data.train.tensors[0][: calibration_batches * CALIBRATION_BATCH_SIZE]
            for start in range(0, len(X), CALIBRATION_BATCH_SIZE):
                out(X[start : start + CALIBRATION_BATCH_SIZE])
    finally:
        for h in hooks:
            h.remove()
        out.train(was_training)
    for name, m in layers.items():
        if observers[name].min is None:  # the layer never ran (not on the forward path)
            continue
        scale, zero_point = observers[name].qparams(ACT_BITS, symmetric=False)
        m.quantize_input(scale, zero_point, ACT_BITS, symmetric=False)
    return out


@register
@dataclass(frozen=True)
class WeightsConfig:
    """Weight-only post-training quantization: Linear/Conv2d weights as bits-bit integer codes."""

    method: ClassVar[str] = "weights"
    needs_data: ClassVar[bool] = False
    bits: int = 8
    granularity: str = "per_channel"
    symmetric: bool = True

    def __post_init__(self):
        check_option("bits", self.bits)  # an int: a dict of per-layer bits goes to weights() directly
        _check_weights(self.granularity, self.symmetric)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return weights(model, self.bits, granularity=self.granularity, symmetric=self.symmetric)


@register
@dataclass(frozen=True)
class PTQConfig:
    """Post-training quantization of weights and 8-bit activations, calibrated on training data."""

    method: ClassVar[str] = "ptq"
    needs_data: ClassVar[bool] = True
    bits: int = 8
    granularity: str = "per_channel"
    observer: str = "minmax"
    calibration_batches: int = 8

    def __post_init__(self):
        check_option("bits", self.bits)
        _check_ptq(self.granularity, self.observer, self.calibration_batches)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return ptq(
            model,
            data,
            self.bits,
            granularity=self.granularity,
            observer=self.observer,
            calibration_batches=self.calibration_batches,
        )


def _plan(model, bits, method: str, *, warn: bool = True, rest: str = "stay float32") -> dict[str, int]:
    """Returns {layer name: bits} of the layers to quantize, after checking ``model`` and
    ``bits``; warns once about the weight layers left in fp32 (``_layers.transformable``)."""
    check_model(model)
    if isinstance(bits, dict):
        if not bits:
            raise ValueError("bits must be an int in [2, 8] or a non-empty dict {layer name: bits}, got {}")
        for name, b in bits.items():
            check_int(b, f"bits[{shorten(name)}]", bounds=BOUNDS["bits"])
    else:
        bits = check_option("bits", bits)
    names = [n for n, _ in _layers.transformable(model, method, warn=False)]
    if isinstance(bits, dict):
        _layers.check_names("bits", bits, names)
    if warn:
        _layers.warn_unsupported(model, method, action="quantizes", rest=rest)
    if not isinstance(bits, dict):
        return dict.fromkeys(names, bits)
    return {n: int(bits[n]) for n in names if n in bits}


def _watch(obs):
    def hook(module, args):
        obs.observe(args[0])

    return hook


def _check_weights(granularity, symmetric) -> None:
    check_choice(granularity, "granularity", GRANULARITIES)
    check_bool(symmetric, "symmetric")


def _check_ptq(granularity, observer, calibration_batches) -> None:
    check_choice(granularity, "granularity", GRANULARITIES)
    check_choice(observer, "observer", OBSERVERS)
    check_option("calibration_batches", calibration_batches)
