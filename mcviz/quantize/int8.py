"""Real int8 execution on the CPU: ``int8(model, data, mode=...)`` and its config ``Int8Config``.

Unlike ``QuantLinear`` (fake quantization: int8 storage, fp32 arithmetic), the model that
``int8`` returns computes with PyTorch's integer kernels (x86 / fbgemm), through
``mcviz._backends``, the only module that calls ``torch.ao.quantization``.

- ``mode="dynamic"``: every Linear layer gets int8 weights (symmetric, one scale per output
  channel); its input is quantized to uint8 on the fly, batch by batch, from the batch's own
  range. Needs no data. Other layers (Conv2d included) stay fp32.
- ``mode="static"``: the whole network runs in int8. The input is quantized once ("quant"),
  every Conv2d / Linear (fused with a ReLU that follows it) computes uint8 -> uint8 with
  int8 per-channel weights and fixed activation scales calibrated on the training split,
  and the logits are dequantized at the end ("dequant"). Needs ``data``.

Other weight layers (Conv1d, ConvTranspose2d...) stay float32, with one warning naming them: in
static mode such a layer runs between a dequantize and a quantize step of its own.

Each int8 layer is an ``Int8Layer`` that reports to ``mcv.measure`` what it stores (the same
conventions as ``QuantLinear``): int8 weight codes at 8 bits, one float32 scale per output
channel (the weight zero points are all 0, so none is counted), the fp32 bias, and for static
layers the output activation's float32 scale and int32 zero point; the static input quantizer
stores one scale and one zero point too.

int8 kernels pay a fixed cost per call (quantizing, packing, requantizing), so small models and
small batches can run slower than fp32: measure with ``mcv.measure.model(..., latency=True)``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mcviz import _backends, _layers
from mcviz._checks import check_choice, check_data, check_model, check_option
from mcviz.measure import StorageRow
from mcviz.quantize.ptq import CALIBRATION_BATCH_SIZE
from mcviz.registry import register

MODES = ("dynamic", "static")
STATIC_LAYERS = (nn.Linear, nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Flatten)
_RESERVED = ("quant", "dequant")


def int8(model: nn.Module, data=None, *, mode: str = "dynamic", calibration_batches: int = 8) -> nn.Module:
    """Returns a copy of ``model`` that computes with int8 kernels on the CPU; ``model`` is unchanged.

    The copy takes float32 input and returns float32 logits, in eval mode; it has no trainable
    parameters. Static mode calibrates on the first ``calibration_batches`` batches of 64
    examples of ``data``'s training split, in order (so the result is deterministic).

    Args:
        model: for "dynamic", any module with a Linear layer (its ``nn.Linear`` layers are
            quantized); for "static", a ``nn.Sequential`` of Linear, Conv2d, ReLU, MaxPool2d and
            Flatten layers (all of mcviz's models are), and other weight layers that stay float32.
        data: a DataBundle; required by "static", unused by "dynamic".
        mode: "dynamic" or "static" (see the module docstring).
        calibration_batches: batches used to calibrate activation ranges in static mode, in
            [1, 1000].

    Example:
        Save the state_dict; to reload, rebuild the same architecture with ``int8`` (static
        mode needs data again, but the loaded scales replace the new calibration) and load::

            q = mcv.quantize.int8(model, data, mode="static")
            torch.save(q.state_dict(), "q.pt")
            arch = mcv.models.build("lenet5", input_shape=data.input_shape)
            q2 = mcv.quantize.int8(arch, data, mode="static")
            q2.load_state_dict(torch.load("q.pt"))  # q2 now computes exactly what q does
    """
    check_model(model)
    _check_options(mode, calibration_batches)
    if data is not None:
        check_data(data)
    elif mode == "static":
        raise ValueError("int8 mode='static' needs data=, a DataBundle whose training split calibrates it")
    _backends.check_engine()
    _layers.transformable(model, "int8", warn=False)  # refuses a model without Linear / Conv2d
    out = _dynamic(model) if mode == "dynamic" else _static(model, data, calibration_batches)
    _layers.warn_unsupported(model, "int8", action="quantizes", rest="stay float32")
    return out


@register
@dataclass(frozen=True)
class Int8Config:
    """Real int8 execution on CPU: mode 'dynamic' (Linear layers) or 'static' (all layers, calibrated)."""

    method: ClassVar[str] = "int8"
    needs_data: ClassVar[bool] = False  # "dynamic" needs none; int8() asks for data in "static"
    mode: str = "dynamic"
    calibration_batches: int = 8

    def __post_init__(self) -> None:
        _check_options(self.mode, self.calibration_batches)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return int8(model, data, mode=self.mode, calibration_batches=self.calibration_batches)


class Int8Layer(nn.Module):
    """An int8 Linear or Conv2d kernel, with what ``mcv.measure`` reads: ``weight`` (the int8
    weight as a quantized tensor), ``bias``, the layer's shape attributes and ``mcviz_storage``."""

    mcviz_layer = True

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        if hasattr(inner, "in_features"):
            self.in_features, self.out_features = inner.in_features, inner.out_features
        else:
            self.in_channels, self.out_channels = inner.in_channels, inner.out_channels
            self.kernel_size, self.groups = inner.kernel_size, inner.groups

    @property
    def weight(self) -> torch.Tensor:
        return _backends.describe(self.inner).weight

    @property
    def bias(self) -> torch.Tensor | None:
        return _backends.describe(self.inner).bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)

    def mcviz_storage(self) -> list[StorageRow]:
        """Returns int8 codes, float32 scales per channel (and zero points if any is nonzero),
        the fp32 bias, and for static layers the output's float32 scale and int32 zero point."""
        w, bias, act = _backends.describe(self.inner)
        channels = w.shape[0]
        rows = [
            StorageRow("", "weight", "weight", w.numel(), 8),
            StorageRow("", "scale", "other", channels, 32),
        ]
        if w.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            rows[1] = StorageRow("", "scale", "other", 1, 32)
            if w.q_zero_point() != 0:
                rows.append(StorageRow("", "zero_point", "other", 1, 32))
        elif bool(w.q_per_channel_zero_points().ne(0).any()):
            rows.append(StorageRow("", "zero_point", "other", channels, 32))
        if bias is not None:
            rows.append(StorageRow("", "bias", "bias", bias.numel(), 32))
        if act is not None:
            rows.append(StorageRow("", "act_scale", "other", 1, 32))
            rows.append(StorageRow("", "act_zero_point", "other", 1, 32))
        return rows


class Int8Linear(Int8Layer):
    """An int8 Linear kernel (dynamic or static); see ``Int8Layer``."""


class Int8Conv2d(Int8Layer):
    """An int8 Conv2d kernel (static); see ``Int8Layer``."""


def _wrap(inner: nn.Module) -> Int8Layer:
    return Int8Linear(inner) if hasattr(inner, "in_features") else Int8Conv2d(inner)


class Int8Input(nn.Module):
    """The static model's input quantizer (float32 -> uint8): stores one scale and one zero point."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)

    def mcviz_storage(self) -> list[StorageRow]:
        """Returns the input's float32 scale and int32 zero point."""
        return [StorageRow("", "scale", "other", 1, 32), StorageRow("", "zero_point", "other", 1, 32)]


def _dynamic(model: nn.Module) -> nn.Module:
    if isinstance(model, nn.Linear):
        raise ValueError("int8 needs a model that contains its Linear layers, e.g. nn.Sequential(linear)")
    out = copy.deepcopy(model)
    linears = [n for n, m in out.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(
            f"int8 mode='dynamic' quantizes nn.Linear layers and {type(model).__name__} has none; "
            "use mode='static' for Conv2d"
        )
    for name in linears:  # subclasses (pruned, fake-quant): plain
        out = _layers.replace(out, name, _plain(out.get_submodule(name)))
    out = _backends.dynamic(out.eval())
    for name in linears:
        out = _layers.replace(out, name, _wrap(out.get_submodule(name)))
    return out.eval()


def _static(model: nn.Module, data, calibration_batches: int) -> nn.Module:
    if type(model).forward is not nn.Sequential.forward:
        raise ValueError(
            f"int8 mode='static' needs a nn.Sequential (it runs layers in order), got "
            f"{type(model).__name__}; use mode='dynamic' for a model with its own forward"
        )
    layers = []
    for name, m in model.named_children():
        if _layers.unhandled(m):
            layers.append((name, _backends.float_island(copy.deepcopy(m).eval())))
            continue
        if not isinstance(m, STATIC_LAYERS):
            allowed = ", ".join(c.__name__ for c in STATIC_LAYERS)
            raise ValueError(
                f"int8 mode='static' cannot run layer {name!r} ({type(m).__name__}); supported: {allowed}"
            )
        if name in _RESERVED:
            raise ValueError(
                f"int8 mode='static' names its input stubs 'quant' and 'dequant'; rename layer {name!r}"
            )
        if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
            raise ValueError(
                f"int8 supports Conv2d padding_mode 'zeros' only, got {m.padding_mode!r} in {name!r}"
            )
        layers.append((name, _plain(m) if isinstance(m, (nn.Linear, nn.Conv2d)) else copy.deepcopy(m).eval()))
    if not any(isinstance(m, (nn.Linear, nn.Conv2d)) for _, m in layers):
        raise ValueError(f"int8 found no Linear or Conv2d layer in {type(model).__name__}")
    X = data.train.tensors[0].float()
    size = CALIBRATION_BATCH_SIZE
    batches = [X[i * size : (i + 1) * size] for i in range(calibration_batches) if i * size < len(X)]
    fuse = [
        [a, b]
        for (a, ma), (b, mb) in zip(layers, layers[1:], strict=False)
        if isinstance(ma, (nn.Linear, nn.Conv2d)) and isinstance(mb, nn.ReLU)
    ]
    try:
        out = _backends.static(layers, batches, fuse)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        shape = tuple(X.shape[1:])
        raise ValueError(f"int8 could not calibrate on {data.name!r} (input {shape}): {first}") from None
    for name, m in list(out.named_modules()):  # an island's quantize step is nested
        if _backends.is_int8_layer(m):
            out = _layers.replace(out, name, _wrap(m))
        elif _backends.is_int8_input(m):
            out = _layers.replace(out, name, Int8Input(m))
    if hasattr(model, "input_shape"):
        out.input_shape = model.input_shape
    return out.eval()


def _plain(m: nn.Module) -> nn.Module:
    """Returns a plain float32 nn.Linear / nn.Conv2d in eval mode with ``m``'s weight as it computes
    with it (pruning masks and fake-quantized weights applied) and bias, which the int8 converters
    recognize; ``m`` is left unchanged."""
    bias = m.bias.detach().float() if m.bias is not None else None
    return _layers.plain_like(m, _layers.weight(m).detach().float(), bias).eval()


def _check_options(mode, calibration_batches) -> None:
    check_choice(mode, "mode", MODES)
    check_option("calibration_batches", calibration_batches)
