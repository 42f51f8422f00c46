"""Group-wise weight-only quantization: every row of a Linear weight cut into groups of
``group_size`` input columns, each group with its own scale (and zero point), round-to-nearest.

This is the storage format of today's 4-bit language models (GPTQ, AWQ and llama.cpp's Q4 files
all store it): ``bits``-bit codes, plus one fp16 scale per group (plus one ``bits``-bit zero point
per group when asymmetric). Small groups follow the local range of the weights, so they lose
less than one scale per row, at the price of more scales: at 4 bits and groups of 32 a weight
costs 4 + 16/32 = 4.5 bits (5 with zero points).

- :func:`group_qparams`, :func:`group_fake_quantize`: the tensor-level primitives (on top of
  ``mcv.quantize.qparams`` / ``quantize``: a group is a row of a reshaped weight);
- :class:`GroupQuantLinear`: a Linear layer holding codes, fp16 scales and zero points, that
  computes with the dequantized weight and counts its exact storage for ``mcv.measure``;
- :func:`groupwise` / :class:`GroupwiseConfig` (method ``"groupwise"``): round-to-nearest (RTN)
  on every Linear layer of a model. GPTQ and AWQ (``gptq.py``, ``awq.py``) produce the same layer.

``group_size=0`` means one group per row (per output channel).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from mcviz import _layers
from mcviz._checks import check_bool, check_int
from mcviz.measure import StorageRow
from mcviz.quantize.tensor import qparams, qrange, quantize
from mcviz.registry import register

SCALE_BITS = 16  # scales are stored as float16, as GPTQ / AWQ checkpoints store them
_FP16_TINY = 2.0**-14  # the smallest normal float16: smaller scales are raised to it


def check_group_size(group_size, in_features: int | None = None, name: str = "") -> int:
    """Returns ``group_size`` (an int >= 0; 0: one group per row) if it divides ``in_features``."""
    group_size = check_int(group_size, "group_size")  # the shared bounds: BOUNDS["group_size"]
    if in_features is not None and group_size and in_features % group_size:
        where = f"layer {name!r}" if name else "the layer"
        raise ValueError(
            f"group_size {group_size} does not divide the {in_features} inputs of {where}; "
            f"use a divisor of {in_features} or 0 (one group per row)"
        )
    return group_size


def group_qparams(w: torch.Tensor, bits: int, group_size: int, *, symmetric: bool = True):
    """Returns ``(scale, zero_point)`` of shape ``(out, groups)`` for a 2-D weight ``w``; ``w`` is unchanged.

    Each group is ``group_size`` consecutive input columns of one row (``group_size=0``: the whole
    row). Scales are rounded to float16, the precision they are stored in, so the codes computed
    with them are the ones a checkpoint would hold.
    """
    out_f, in_f = _check_weight(w)
    g = check_group_size(group_size, in_f) or in_f
    scale, zero_point = qparams(w.detach().float().reshape(-1, g), bits, symmetric=symmetric, axis=0)
    scale = scale.clamp(min=_FP16_TINY).half().float()
    if not symmetric:  # recompute the zero point for the rounded scale
        rows = w.detach().float().reshape(-1, g)
        lo = rows.amin(1).clamp(max=0)
        zero_point = (-lo / scale).round().clamp(*qrange(bits, symmetric=False)).to(torch.int32)
    return scale.reshape(out_f, in_f // g), zero_point.reshape(out_f, in_f // g)


def group_quantize(w, scale, zero_point, bits: int, *, symmetric: bool = True) -> torch.Tensor:
    """Returns the integer codes of ``w`` on the group grid ``(scale, zero_point)`` (``(out, groups)``)."""
    out_f, in_f = _check_weight(w)
    groups = scale.shape[1]
    rows = w.detach().float().reshape(out_f * groups, in_f // groups)
    q = quantize(rows, scale.reshape(-1), zero_point.reshape(-1), bits, symmetric=symmetric, axis=0)
    return q.reshape(out_f, in_f)


def group_dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None) -> torch.Tensor:
    """Returns the float32 weight ``(q - zero_point) * scale``, group by group (``zero_point`` None: 0)."""
    out_f, in_f = q.shape
    g = in_f // scale.shape[1]
    steps = q.to(torch.int64).reshape(out_f, -1, g)
    if zero_point is not None:
        steps = steps - zero_point.to(torch.int64).unsqueeze(-1)
    return (steps.float() * scale.float().unsqueeze(-1)).reshape(out_f, in_f)


def group_fake_quantize(
    w: torch.Tensor, bits: int, group_size: int, *, symmetric: bool = True
) -> torch.Tensor:
    """Returns ``w`` rounded to its own group-wise ``bits``-bit grid, as float32; ``w`` is unchanged.

    Example:
        >>> w = torch.tensor([[0.1, -0.2, 1.0, 3.0]])
        >>> group_fake_quantize(w, 2, 2)  # two groups: scales 0.2 and 3.0
        tensor([[ 0.0000, -0.2002,  1.0000,  3.0000]])
    """
    scale, zero_point = group_qparams(w, bits, group_size, symmetric=symmetric)
    return group_dequantize(
        group_quantize(w, scale, zero_point, bits, symmetric=symmetric), scale, zero_point
    )


class GroupQuantLinear(nn.Linear):
    """A Linear layer storing its weight as group-wise ``bits``-bit codes (see the module doc).

    Buffers: ``codes`` (int8 / uint8, one per weight; counted at ``bits`` bits, as a packed file
    stores them), ``scale`` (float16, ``(out, groups)``), ``zero_point`` (asymmetric only,
    counted at ``bits`` bits), ``input_scale`` (None, or the per-input-channel scale AWQ keeps: the
    layer computes ``W_q @ (x / input_scale)``), and the non-persistent float32 ``weight`` it
    computes with. The bias stays an fp32 Parameter.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, bits: int = 4,
                 group_size: int = 32, symmetric: bool = True) -> None:  # fmt: skip
        super().__init__(in_features, out_features, bias, device="meta")
        check_int(bits, "bits")
        self.bits, self.symmetric = bits, check_bool(symmetric, "symmetric")
        self.group_size = check_group_size(group_size, in_features)
        groups = in_features // (self.group_size or in_features)
        del self.weight
        self.register_buffer("codes", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(out_features, groups, dtype=torch.float16))
        zp = torch.zeros(out_features, groups, dtype=torch.int32) if not symmetric else None
        self.register_buffer("zero_point", zp)
        self.register_buffer("input_scale", None)
        self.register_buffer("weight", torch.zeros(out_features, in_features), persistent=False)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @classmethod
    def from_float(cls, module: nn.Module, bits: int = 4, *, group_size: int = 32,
                   symmetric: bool = True) -> GroupQuantLinear:  # fmt: skip
        """Returns a layer holding ``module``'s weight rounded to the nearest group-wise code (RTN),
        its bias and its train/eval mode; ``module`` is left unchanged."""
        out = _layers.new_like(cls, module, bits=bits, group_size=group_size, symmetric=symmetric)
        return _layers.copy_into(out, module)

    def set_weight(self, weight: torch.Tensor) -> None:
        """Rounds ``weight`` to the nearest code of its own groups' grid (RTN) and stores it."""
        scale, zero_point = group_qparams(weight, self.bits, self.group_size, symmetric=self.symmetric)
        codes = group_quantize(weight, scale, zero_point, self.bits, symmetric=self.symmetric)
        self.set_codes(codes, scale, zero_point)

    def set_codes(self, codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None,
                  input_scale: torch.Tensor | None = None) -> None:  # fmt: skip
        """Stores given codes, scales, zero points (asymmetric) and input scale (AWQ), e.g. from GPTQ."""
        qmin, qmax = qrange(self.bits, symmetric=self.symmetric)
        if tuple(codes.shape) != tuple(self.codes.shape) or tuple(scale.shape) != tuple(self.scale.shape):
            raise ValueError(
                f"codes {tuple(codes.shape)} and scale {tuple(scale.shape)} must be shaped "
                f"{tuple(self.codes.shape)} and {tuple(self.scale.shape)}"
            )
        if int(codes.min()) < qmin or int(codes.max()) > qmax:
            raise ValueError(f"codes must lie in [{qmin}, {qmax}] at {self.bits} bits")
        self.codes = codes.to(torch.int8 if self.symmetric else torch.uint8).clone()
        self.scale = scale.to(torch.float16).clone()
        if not self.symmetric:
            self.zero_point = zero_point.to(torch.int32).clone()
        if input_scale is not None:
            self.input_scale = input_scale.detach().to(torch.float16).clone()
        self._refresh()

    def mcviz_storage(self) -> list[StorageRow]:
        """Returns the stored tensors: codes at ``bits`` bits, fp16 scales, zero points at ``bits``
        bits (asymmetric), the fp16 input scale (AWQ) and the fp32 bias."""
        rows = [
            StorageRow("", "codes", "weight", self.codes.numel(), self.bits),
            StorageRow("", "scale", "other", self.scale.numel(), SCALE_BITS),
        ]
        if self.zero_point is not None:
            rows.append(StorageRow("", "zero_point", "other", self.zero_point.numel(), self.bits))
        if self.input_scale is not None:
            rows.append(StorageRow("", "input_scale", "other", self.input_scale.numel(), SCALE_BITS))
        if self.bias is not None:
            rows.append(StorageRow("", "bias", "bias", self.bias.numel(), 32))
        return rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_scale is not None:
            x = x / self.input_scale.float()
        return F.linear(x, self.weight, self.bias)

    def _refresh(self) -> None:
        self.weight = group_dequantize(self.codes, self.scale, self.zero_point)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if self.input_scale is None and isinstance(state_dict.get(prefix + "input_scale"), torch.Tensor):
            self.input_scale = torch.ones(self.in_features, dtype=torch.float16)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._refresh()

    def extra_repr(self) -> str:
        g = self.group_size or "row"
        sym = "symmetric" if self.symmetric else "asymmetric"
        awq = ", input_scale" if self.input_scale is not None else ""
        return f"{super().extra_repr()}, bits={self.bits}, group_size={g}, {sym}{awq}"


def check_options(bits, group_size, symmetric) -> None:
    """Refuses a storage format outside the shared bounds: the checks of every group-wise method,
    done before it looks at the model."""
    check_int(bits, "bits")
    check_group_size(group_size)
    check_bool(symmetric, "symmetric")


def check_layers(model: nn.Module, names: list[str], group_size: int) -> None:
    """Raises ValueError (before any work) when ``group_size`` does not divide a layer's inputs."""
    for name in names:
        check_group_size(group_size, model.get_submodule(name).in_features, name)


def groupwise(model: nn.Module, bits: int = 4, *, group_size: int = 32, symmetric: bool = True) -> nn.Module:
    """Returns a copy of ``model`` whose Linear layers store group-wise ``bits``-bit codes, rounded
    to nearest (RTN); ``model`` is left unchanged.

    Args:
        model: any model with ``nn.Linear`` layers (a GPT, MiniLM, LeNet-300-100). Other weight
            layers (embeddings, convolutions) stay as they are, with one warning naming them.
        bits: an int in 2..8.
        group_size: input columns per group; it must divide every layer's inputs; 0: one group per row.
        symmetric: signed codes (zero point 0) or unsigned codes with a ``bits``-bit zero point per group.

    Example:
        >>> small = groupwise(model, 4, group_size=32)  # doctest: +SKIP
    """
    check_options(bits, group_size, symmetric)
    names = _layers.linear_targets(model, "groupwise")
    check_layers(model, names, group_size)
    out = copy.deepcopy(model)
    for name in names:
        layer = out.get_submodule(name)
        quant = GroupQuantLinear.from_float(layer, bits, group_size=group_size, symmetric=symmetric)
        out = _layers.replace(out, name, quant)
    return out


@register
@dataclass(frozen=True)
class GroupwiseConfig:
    """Group-wise weight-only quantization of Linear layers, round-to-nearest (group_size=0: per row)."""

    method: ClassVar[str] = "groupwise"
    needs_data: ClassVar[bool] = False
    bits: int = 4
    group_size: int = 32
    symmetric: bool = True

    def __post_init__(self):
        check_options(self.bits, self.group_size, self.symmetric)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return groupwise(model, self.bits, group_size=self.group_size, symmetric=self.symmetric)


def storage_bytes(out_features: int, in_features: int, bits: int, group_size: int, *,
                  symmetric: bool = True, bias: bool = True) -> int:  # fmt: skip
    """Returns the exact stored bytes of one GroupQuantLinear: codes + fp16 scales (+ zero points) + bias."""
    groups = in_features // (group_size or in_features)
    total = math.ceil(out_features * in_features * bits / 8) + math.ceil(
        out_features * groups * SCALE_BITS / 8
    )
    if not symmetric:
        total += math.ceil(out_features * groups * bits / 8)
    return total + (4 * out_features if bias else 0)


def _check_weight(w) -> tuple[int, int]:
    if not isinstance(w, torch.Tensor) or not w.is_floating_point() or w.dim() != 2:
        got = f"{w.dtype} {tuple(w.shape)}" if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"w must be a 2-D floating-point weight (out, in), got {got}")
    return w.shape[0], w.shape[1]
