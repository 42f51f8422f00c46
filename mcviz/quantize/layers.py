"""Quantized layers: ``QuantLinear`` and ``QuantConv2d`` store integer weight codes and compute
with the dequantized float weights ("fake quantization": the arithmetic is fp32, the storage
is what a b-bit deployment would keep).

Each layer holds, as buffers:

- ``codes``: the integer weight codes (int8 when symmetric, uint8 when asymmetric; at fewer
  than 8 bits the codes still sit one per byte in memory and in the saved file, while
  ``mcv.measure`` counts ``bits`` bits per weight, as a packed format would store them),
- ``scale`` (float32) and ``zero_point`` (int32): one per tensor or one per output channel,
- ``weight``: the dequantized float32 weight ``(codes - zero_point) * scale``. It is a
  non-persistent buffer, NOT a Parameter: the saved state_dict holds the codes only, and
  training (``mcv.train.fit``) cannot move the weights off the b-bit grid. ``fit`` on a
  quantized model therefore trains the fp32 biases only (and the layers that were not
  quantized); the codes, scales and weights stay exactly as quantized.

A layer made from a pruned layer (``mcv.prune``'s PrunedLinear / PrunedConv2d, or any layer with
a bool or 0/1 ``mask`` buffer shaped like its weight) keeps that mask as a persistent bool
buffer ``mask`` (True = kept): its weight is exactly zero wherever the mask is False, and it
stores the Deep Compression sparse format (a 1-bit mask per weight plus ``bits``-bit codes of the
kept weights only). A layer made from a dense layer has ``mask = None`` and stores every code.

The bias stays an fp32 Parameter. Optionally (``quantize_input``) the layer also rounds its
input to a calibrated activation grid (8-bit unsigned asymmetric by default) before computing;
the activation scale and zero point are stored as buffers too.

Both classes subclass ``nn.Linear`` / ``nn.Conv2d``, so code that checks ``isinstance`` (MAC
counting, layer tables) keeps treating them as layers, and they describe their stored bits to
``mcv.measure`` through ``mcviz_storage()``.
"""

from __future__ import annotations

import torch
from torch import nn

from mcviz import _layers
from mcviz._checks import check_bool, check_choice, check_int, check_model
from mcviz.measure import StorageRow
from mcviz.quantize.tensor import _dequantize, qparams, qrange, quantize

GRANULARITIES = ("per_tensor", "per_channel")


class _Quantized:
    """What QuantLinear and QuantConv2d share: codes, dequantized weight, storage, input rounding.

    The constructor takes the arguments of ``nn.Linear`` / ``nn.Conv2d`` (without ``device`` and
    ``dtype``: the layer stores integer codes and float32 scales, weight and bias) and the keywords
    ``bits``, ``granularity`` and ``symmetric``.
    """

    bits: int
    granularity: str
    symmetric: bool

    def __init__(
        self, *args, bits: int = 8, granularity: str = "per_channel", symmetric: bool = True, **kwargs
    ) -> None:
        # the parent's weights go on the meta device: no memory, and no draw from the global RNG
        super().__init__(*args, **kwargs, device="meta")
        self.bits = check_int(bits, "bits")
        self.granularity = check_choice(granularity, "granularity", GRANULARITIES)
        self.symmetric = check_bool(symmetric, "symmetric")
        shape = self.weight.shape  # still the meta Parameter made by the parent constructor
        has_bias = self.bias is not None
        del self.weight
        channels = (shape[0],) if granularity == "per_channel" else ()
        code_dtype = torch.int8 if symmetric else torch.uint8
        zero = 0 if symmetric else qrange(bits, symmetric=False)[0]
        self.register_buffer("codes", torch.full(shape, zero, dtype=code_dtype))
        self.register_buffer("scale", torch.ones(channels))
        self.register_buffer("zero_point", torch.zeros(channels, dtype=torch.int32))
        self.register_buffer("weight", torch.zeros(shape), persistent=False)
        self.register_buffer("mask", None)  # a bool tensor shaped like the weight when pruned
        self.bias = nn.Parameter(torch.zeros(shape[0])) if has_bias else None
        self.register_buffer("act_scale", None)
        self.register_buffer("act_zero_point", None)
        self.act_bits: int | None = None
        self.act_symmetric = False
        self._refresh()

    @classmethod
    def from_float(
        cls, module: nn.Module, bits: int = 8, *, granularity: str = "per_channel", symmetric: bool = True
    ) -> _Quantized:
        """Returns a quantized layer holding ``module``'s weight (the one it computes with)
        quantized, its bias copied, its mask (if pruned) and its train/eval mode; ``module`` is
        left unchanged.

        ``module`` must be an ``nn.Linear`` for QuantLinear, an ``nn.Conv2d`` for QuantConv2d.
        """
        check_model(module, "module")
        out = _layers.new_like(cls, module, bits=bits, granularity=granularity, symmetric=symmetric)
        return _copy_into(out, module)

    @property
    def axis(self) -> int | None:
        """The dimension the scales run along: 0 (output channels) or None (one scale)."""
        return 0 if self.granularity == "per_channel" else None

    def set_weight(self, weight: torch.Tensor) -> None:
        """Quantizes ``weight`` (same shape as the layer's) to this layer's grid and stores it;
        entries the ``mask`` prunes are stored as zero."""
        _check_weight(weight, self.codes.shape)
        w = weight.detach().float()
        if self.mask is not None:
            # zero is on every grid (symmetric: code 0; asymmetric: the zero point), so the
            # pruned entries get the code of an exact zero and the kept ones set the range
            w = torch.where(self.mask, w, 0.0)
        scale, zero_point = qparams(w, self.bits, symmetric=self.symmetric, axis=self.axis)
        codes = quantize(w, scale, zero_point, self.bits, symmetric=self.symmetric, axis=self.axis)
        self.codes.copy_(codes)
        self.scale.copy_(scale)
        self.zero_point.copy_(zero_point)
        self._refresh()

    def quantize_input(
        self,
        scale: torch.Tensor | float,
        zero_point: torch.Tensor | int,
        bits: int = 8,
        *,
        symmetric: bool = False,
    ) -> None:
        """Makes the layer round its input to the grid ``(scale, zero_point)`` before computing.

        ``scale`` and ``zero_point`` are one per tensor, typically from an observer
        (``mcv.quantize.observers``) run on calibration data. Pass ``bits=None`` to turn the
        rounding off again.
        """
        if bits is None:
            self.act_scale = self.act_zero_point = self.act_bits = None
            return
        qmin, qmax = qrange(bits, symmetric=symmetric)
        scale = torch.as_tensor(scale, dtype=torch.float32).detach().clone().reshape(())
        zero_point = torch.as_tensor(zero_point).detach().clone().reshape(())
        if not bool(torch.isfinite(scale)) or float(scale) <= 0:
            raise ValueError(f"scale must be a finite number > 0, got {float(scale)!r}")
        if zero_point.is_floating_point() or not (qmin <= int(zero_point) <= qmax):
            raise ValueError(f"zero_point must be an int in [{qmin}, {qmax}], got {zero_point.item()!r}")
        if symmetric and int(zero_point) != 0:
            raise ValueError(f"zero_point must be 0 when symmetric=True, got {int(zero_point)!r}")
        self.act_scale, self.act_zero_point = scale, zero_point.to(torch.int32)
        self.act_bits, self.act_symmetric = bits, symmetric

    def mcviz_storage(self) -> list[StorageRow]:
        """Returns the stored tensors: codes at ``bits`` bits, scales (and zero points when
        asymmetric) as 32-bit "other", the fp32 bias, and the activation scale / zero point.

        With a ``mask`` the codes are those of the kept weights only, after a 1-bit mask per
        weight ("other"): the bitmask sparse format of ``mcv.prune``'s layers.
        """
        rows = _sparse_rows(self.mask, "weight", self.codes.numel(), self.bits) + [
            StorageRow("", "scale", "other", self.scale.numel(), 32),
        ]
        if not self.symmetric:
            rows.append(StorageRow("", "zero_point", "other", self.zero_point.numel(), 32))
        if self.bias is not None:
            rows.append(StorageRow("", "bias", "bias", self.bias.numel(), 32))
        if self.act_scale is not None:
            rows.append(StorageRow("", "act_scale", "other", 1, 32))
            if not self.act_symmetric:
                rows.append(StorageRow("", "act_zero_point", "other", 1, 32))
        return rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self._round_input(x))

    def _round_input(self, x):
        if self.act_scale is None:
            return x
        qmin, qmax = qrange(self.act_bits, symmetric=self.act_symmetric)
        zp = self.act_zero_point.to(torch.float32)
        # x * (1 / scale), round half to even, clamp: the same arithmetic as tensor.quantize
        q = (torch.round(x.detach() * (1.0 / self.act_scale)) + zp).clamp(qmin, qmax)
        rounded = ((q - zp) * self.act_scale).to(x.dtype)
        # straight-through estimator: the value is exactly ``rounded`` (x - x.detach() is 0), the
        # gradient passes as if nothing were rounded
        return rounded + (x - x.detach())

    def _refresh(self) -> None:
        """Recomputes the float weight from the codes (after a change or a state_dict load)."""
        weight = _dequantize(self.codes, self.scale, self.zero_point, self.axis, torch.float32)
        self.weight = weight if self.mask is None else torch.where(self.mask, weight, 0.0)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        _expect_mask(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._refresh()

    def extra_repr(self) -> str:
        act = f", act_bits={self.act_bits}" if self.act_bits is not None else ""
        sym = "symmetric" if self.symmetric else "asymmetric"
        return f"{super().extra_repr()}, bits={self.bits}, {self.granularity}, {sym}{act}"


class QuantLinear(_Quantized, nn.Linear):
    """A Linear layer whose weight is stored as ``bits``-bit integer codes (see the module doc).

    Takes ``nn.Linear``'s arguments (``in_features, out_features, bias=True``) and the keywords
    ``bits=8``, ``granularity="per_channel"``, ``symmetric=True``.

    Example:
        >>> q = QuantLinear.from_float(nn.Linear(4, 3), bits=8)
        >>> q.codes.dtype, q.scale.shape
        (torch.int8, torch.Size([3]))
    """


class QuantConv2d(_Quantized, nn.Conv2d):
    """A Conv2d layer whose weight is stored as ``bits``-bit integer codes (see the module doc);
    per-channel scales run over the output channels (filters).

    Takes ``nn.Conv2d``'s arguments (``in_channels, out_channels, kernel_size, stride=1,
    padding=0, dilation=1, groups=1, bias=True, padding_mode="zeros"``) and the keywords
    ``bits=8``, ``granularity="per_channel"``, ``symmetric=True``.
    """


def _check_weight(weight, shape) -> None:
    """Refuses a ``weight`` that is not a tensor of ``shape`` (``set_weight`` of Quant* and KMeans*)."""
    wanted = f"weight must be a tensor of shape {tuple(shape)}"
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{wanted}, got {type(weight).__name__}")
    if tuple(weight.shape) != tuple(shape):
        raise ValueError(f"{wanted}, got {tuple(weight.shape)}")


def _copy_into(out: nn.Module, module: nn.Module) -> nn.Module:
    """Gives ``out`` (a fresh quantized or shared layer shaped like ``module``) ``module``'s mask,
    then its weight, bias and train/eval mode; returns ``out``."""
    out.mask = _layers.mask(module)  # first: set_weight stores the entries it prunes as zero
    return _layers.copy_into(out, module)


def _sparse_rows(mask, name: str, numel: int, bits: int) -> list[StorageRow]:
    """Returns the storage rows of ``numel`` weight codes: all of them at ``bits`` bits without a
    mask; with one, a 1-bit mask per weight ("other") and ``bits`` bits per kept weight."""
    if mask is None:
        return [StorageRow("", name, "weight", numel, bits)]
    return [
        StorageRow("", "mask", "other", numel, 1),
        StorageRow("", name, "weight", int(mask.sum()), bits),
    ]


def _expect_mask(layer: nn.Module, state_dict, prefix: str) -> None:
    """Makes a dense layer ready to load a saved mask (a pruned layer's state_dict)."""
    saved = state_dict.get(prefix + "mask")
    if layer.mask is None and isinstance(saved, torch.Tensor):
        layer.mask = torch.zeros(saved.shape, dtype=torch.bool)
