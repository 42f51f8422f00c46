"""The one place where mcviz calls PyTorch's integer-kernel quantization (``torch.ao.quantization``).

``torch.ao.quantization`` still ships in torch 2.13 but warns that it is deprecated (torchao is
its successor). mcviz keeps every call to it here, each inside ``_quiet()``, so the warning is
silenced for these calls only and a move to another backend changes this file alone.

Everything here is eager-mode post-training quantization on the CPU (the x86 / fbgemm engine):

- ``dynamic(model)``: every ``nn.Linear`` becomes an int8 dynamic Linear (int8 weights per
  output channel, activations quantized on the fly for each batch).
- ``static(model, batches)``: a ``nn.Sequential`` wrapped in QuantStub / DeQuantStub, Conv2d
  / Linear + ReLU pairs fused, observers calibrated on ``batches``, then converted to int8
  kernels with per-channel weights and uint8 activations.
- ``float_island(layer)``: a layer that stays float32 inside a static model (dequantize, the
  layer, quantize again).
- ``describe(module)``: what a converted layer stores, for measurement.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import nn

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import torch.ao.nn.quantized as _nnq
    import torch.ao.nn.quantized.dynamic as _nnqd
    import torch.ao.quantization as _tq

ENGINES = ("x86", "fbgemm")  # engines with per-channel int8 conv and linear kernels


@contextlib.contextmanager
def _quiet():
    """Silences torch.ao's deprecation and quantized-tensor warnings, for this block only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*(deprecated|reduce_range|TypedStorage).*")
        yield


def check_engine() -> str:
    """Returns the active quantized engine, or raises ValueError when it lacks the kernels used here."""
    engine = torch.backends.quantized.engine
    if engine not in ENGINES:
        supported = [e for e in ENGINES if e in torch.backends.quantized.supported_engines]
        raise ValueError(f"int8 needs torch.backends.quantized.engine in {supported}, got {engine!r}")
    return engine


def dynamic(model: nn.Module) -> nn.Module:
    """Converts, in place, every ``nn.Linear`` of ``model`` to an int8 dynamic Linear; returns it."""
    check_engine()
    with _quiet():
        return _tq.quantize_dynamic(model, {nn.Linear: _tq.per_channel_dynamic_qconfig}, inplace=True)


def static(layers: list[tuple[str, nn.Module]], batches, fuse: list[list[str]]) -> nn.Sequential:
    """Returns a static int8 ``nn.Sequential``: "quant" (float -> uint8), ``layers`` converted to
    int8 kernels, "dequant" (uint8 -> float).

    Args:
        layers: (name, float module) pairs in eval mode, used up (fused and converted in place).
        batches: float input batches that calibrate the activation observers.
        fuse: groups of layer names to fuse first, e.g. ``[["conv1", "relu1"]]``.
    """
    engine = check_engine()
    with _quiet():
        model = nn.Sequential(
            OrderedDict([("quant", _tq.QuantStub()), *layers, ("dequant", _tq.DeQuantStub())])
        ).eval()
        if fuse:
            model = _tq.fuse_modules(model, fuse, inplace=True)
        model.qconfig = _tq.get_default_qconfig(engine)
        _tq.prepare(model, inplace=True)
        with torch.no_grad():
            for x in batches:
                model(x)
        _tq.convert(model, inplace=True)
    for m in model.modules():
        m.__dict__.pop("qconfig", None)  # observers' settings: not needed after convert
    return model


def float_island(layer: nn.Module) -> nn.Sequential:
    """Returns ``nn.Sequential(dequant, layer, quant)``: in a model ``static`` converts, ``layer``
    (used up: it is given ``qconfig = None``, so it is not converted) computes in float32 on
    dequantized input, and its output is quantized again with a scale calibrated like the others."""
    layer.qconfig = None
    return nn.Sequential(
        OrderedDict([("dequant", _tq.DeQuantStub()), ("layer", layer), ("quant", _tq.QuantStub())])
    )


class Stored(NamedTuple):
    """What one converted layer keeps: ``weight`` is a quantized tensor, ``bias`` fp32 or None,
    ``act`` the (scale, zero point) of its output for static layers, None for dynamic ones."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    act: tuple[float, int] | None


def is_int8_layer(module: nn.Module) -> bool:
    """Returns True for a converted int8 Linear / Conv2d (fused ReLU variants included)."""
    return isinstance(module, (_nnq.Linear, _nnq.Conv2d))


def is_int8_input(module: nn.Module) -> bool:
    """Returns True for the converted QuantStub (the float -> uint8 input quantizer)."""
    return isinstance(module, _nnq.Quantize)


def describe(module: nn.Module) -> Stored:
    """Returns the stored tensors of a converted layer (``is_int8_layer``)."""
    weight, bias = module.weight(), module.bias()
    act = None if isinstance(module, _nnqd.Linear) else (float(module.scale), int(module.zero_point))
    return Stored(weight, bias, act)
