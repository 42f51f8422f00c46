"""Quantization: linear (affine) quantization of tensors, and half-precision (fp16) storage.

Linear quantization stores a float ``x`` as a small integer ``q`` and reads it back as
``(q - zero_point) * scale``. The conventions every function here follows:

- symmetric (the default): signed codes in ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]`` (int8 uses
  -127..127, so the grid is symmetric around 0 and -128 is never used), ``zero_point = 0`` and
  ``scale = max|x| / qmax``.
- asymmetric: unsigned codes in ``[0, 2**bits - 1]``. The float range is widened to contain 0,
  ``[min(x, 0), max(x, 0)]``, so that 0.0 (padding, pruned weights) is stored exactly;
  ``scale = (max - min) / (2**bits - 1)`` and ``zero_point = round(-min / scale)`` clamped into
  the code range.
- granularity: ``axis=None`` gives one scale for the whole tensor (per-tensor); ``axis=0`` one
  scale per output channel (per-channel: a row of a Linear weight, a filter of a Conv2d weight).
- rounding is half to even (``torch.round``) and is followed by clamping into the code range.
  ``x / scale`` is computed as ``x * (1 / scale)`` with ``scale`` in float32, as PyTorch's
  ``torch.fake_quantize_per_tensor_affine`` does, so results match PyTorch bit for bit.

fp16 stores every weight in 16 bits. CPUs without fast half arithmetic compute it slowly, so the
fp16 model keeps its fp16 weights but is measured honestly: smaller, and not necessarily faster.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mcviz._checks import check_bool, check_int, check_model, shorten
from mcviz.registry import register


def fp16(model: nn.Module) -> nn.Module:
    """Returns a copy of ``model`` whose parameters and buffers are stored in float16.

    The copy takes and returns float32 tensors (inputs are cast to half on the way in, outputs
    back to float32 on the way out), so it drops into any evaluation code. ``model`` is unchanged.

    Every floating-point tensor is stored in 16 bits, whatever layer holds it (Conv1d and
    Embedding too): unlike the other methods, fp16 leaves no layer uncompressed.
    """
    check_model(model)
    out = copy.deepcopy(model).half()
    out.register_forward_pre_hook(_to_half)
    out.register_forward_hook(_to_float)
    return out


@register
@dataclass(frozen=True)
class FP16Config:
    """Half-precision storage: every parameter kept in 16 bits."""

    method: ClassVar[str] = "fp16"
    needs_data: ClassVar[bool] = False

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return fp16(model)


def _to_half(module, args):
    return tuple(a.half() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def _to_float(module, args, output):
    return output.float() if torch.is_tensor(output) else output


# ---------------------------------------------------------------- linear quantization of tensors

_TINY = torch.finfo(torch.float32).tiny  # smallest normal float32: 1 / scale stays finite above it


def qrange(bits: int = 8, *, symmetric: bool = True) -> tuple[int, int]:
    """Returns ``(qmin, qmax)``, the integer code range of ``bits``-bit quantization.

    Symmetric codes are signed and leave the most negative one unused: ``(-127, 127)`` at 8 bits,
    ``(-1, 1)`` at 2 bits. Asymmetric codes are unsigned: ``(0, 255)`` at 8 bits.

    Example:
        >>> qrange(8), qrange(4, symmetric=False)
        ((-127, 127), (0, 15))
    """
    bits = check_int(bits, "bits")
    if check_bool(symmetric, "symmetric"):
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def qparams(
    x: torch.Tensor, bits: int = 8, *, symmetric: bool = True, axis: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``(scale, zero_point)`` that fit the range of ``x``; ``x`` is left unchanged.

    Symmetric: ``scale = max|x| / qmax`` and ``zero_point = 0``. Asymmetric: the range
    ``[min(x, 0), max(x, 0)]`` is spread over ``[0, 2**bits - 1]``, ``scale = (max - min) /
    (2**bits - 1)`` and ``zero_point = round(-min / scale)`` clamped into ``[0, 2**bits - 1]``.
    A tensor (or channel) that is all zeros gets ``scale = 1.0``; a scale too small to invert
    in float32 is raised to the smallest normal float32, so ``scale`` is never 0, inf or NaN.

    Args:
        x: a floating-point tensor with finite values.
        bits: code width, an int in [2, 8].
        symmetric: signed codes with zero point 0 (True) or unsigned codes (False).
        axis: None for one scale per tensor; a dimension of ``x`` (0: output channels) for one
            scale per slice along it.

    Returns:
        ``scale`` (float32) and ``zero_point`` (int32): 0-d tensors when ``axis`` is None, else
        tensors of shape ``(x.shape[axis],)``.

    Example:
        >>> scale, zero_point = qparams(torch.tensor([-1.0, 3.0]), symmetric=False)
        >>> round(scale.item(), 5), zero_point.item()
        (0.01569, 64)
    """
    qmin, qmax = qrange(bits, symmetric=symmetric)
    axis = _check_input(x, axis)
    rows = _rows(x.detach(), axis).double()  # float64: max - min cannot overflow
    if rows.shape[1] == 0:  # no values at all: treat as zeros
        lo = hi = rows.new_zeros(rows.shape[0])
    else:
        lo, hi = rows.amin(1).clamp(max=0), rows.amax(1).clamp(min=0)
    scale = (torch.maximum(-lo, hi) if symmetric else hi - lo) / qmax
    scale = scale.float().clamp(min=_TINY)  # float32, as PyTorch's kernels use it
    scale = torch.where(hi == lo, torch.ones_like(scale), scale)
    if symmetric:
        zero_point = torch.zeros(scale.shape, dtype=torch.int32)
    else:
        zero_point = (-lo / scale.double()).round().clamp(qmin, qmax).to(torch.int32)
    if axis is None:
        return scale.reshape(()), zero_point.reshape(())
    return scale, zero_point


def quantize(
    x: torch.Tensor,
    scale: torch.Tensor | float,
    zero_point: torch.Tensor | int,
    bits: int = 8,
    *,
    symmetric: bool = True,
    axis: int | None = None,
) -> torch.Tensor:
    """Returns the integer codes ``clamp(round(x / scale) + zero_point, qmin, qmax)``; ``x`` is
    left unchanged.

    Rounding is half to even (``torch.round``). Values beyond the range the codes can represent
    are clamped to the nearest end of it.

    Args:
        x: a floating-point tensor with finite values.
        scale: positive step size, used in float32: a number or 0-d tensor when ``axis`` is None,
            else a tensor of shape ``(x.shape[axis],)``, e.g. from :func:`qparams`.
        zero_point: the code of 0.0, an int (tensor) shaped like ``scale``, inside
            :func:`qrange`; 0 when ``symmetric``.
        bits: code width, an int in [2, 8].
        symmetric: signed codes (int8 tensor) or unsigned codes (uint8 tensor).
        axis: None (per-tensor) or the dimension of ``x`` that ``scale`` runs along.

    Example:
        >>> quantize(torch.tensor([0.125, 0.375, 1.0, 99.0]), 0.25, 0, bits=4)
        tensor([0, 2, 4, 7], dtype=torch.int8)
    """
    qmin, qmax = qrange(bits, symmetric=symmetric)
    axis = _check_input(x, axis)
    scale, zero_point = _check_qparams(scale, zero_point, x.shape, axis, (qmin, qmax), symmetric)
    xf = x.detach().to(torch.promote_types(x.dtype, torch.float32))
    inv = _along(1.0 / scale, axis, x.dim())  # multiply by 1 / scale, as PyTorch's kernels do
    q = torch.round(xf * inv) + _along(zero_point, axis, x.dim()).to(xf.dtype)
    return q.clamp(qmin, qmax).to(torch.int8 if symmetric else torch.uint8)


def dequantize(
    q: torch.Tensor,
    scale: torch.Tensor | float,
    zero_point: torch.Tensor | int,
    *,
    axis: int | None = None,
) -> torch.Tensor:
    """Returns the float32 tensor ``(q - zero_point) * scale``; ``q`` is left unchanged.

    Args:
        q: integer codes, e.g. from :func:`quantize`.
        scale: the step size ``q`` was quantized with (a number or 0-d tensor when ``axis`` is
            None, else a tensor of shape ``(q.shape[axis],)``).
        zero_point: the code of 0.0, an int (tensor) shaped like ``scale``.
        axis: None (per-tensor) or the dimension of ``q`` that ``scale`` runs along.

    Example:
        >>> dequantize(torch.tensor([0, 2, 4, 7], dtype=torch.int8), 0.25, 0)
        tensor([0.0000, 0.5000, 1.0000, 1.7500])
    """
    if not isinstance(q, torch.Tensor):
        raise TypeError(f"q must be an integer torch.Tensor of codes, got {type(q).__name__}")
    if q.is_floating_point() or q.is_complex() or q.is_quantized:
        raise ValueError(f"q must be an integer torch.Tensor of codes, got {q.dtype}")
    if q.dtype == torch.bool:
        raise ValueError(f"q must be an integer torch.Tensor of codes, got {q.dtype}")
    axis = _check_axis(axis, q.dim())
    scale, zero_point = _check_qparams(scale, zero_point, q.shape, axis, None, False)
    return _dequantize(q, scale, zero_point, axis, torch.float32)


def fake_quantize(
    x: torch.Tensor, bits: int = 8, *, symmetric: bool = True, axis: int | None = None
) -> torch.Tensor:
    """Returns ``dequantize(quantize(x))`` with the :func:`qparams` of ``x``: ``x`` rounded to
    the ``bits``-bit grid, in the dtype of ``x``; ``x`` is left unchanged.

    Every value of ``x`` comes back within half a step (``scale / 2``) of where it was. The
    arithmetic is float32 (as in PyTorch, so float64 results carry float32 precision). No
    gradient flows through the rounding: the result is a constant for autograd.

    Args:
        x: a floating-point tensor with finite values.
        bits: code width, an int in [2, 8].
        symmetric: signed codes with zero point 0 (True) or unsigned codes (False).
        axis: None for one scale per tensor; a dimension of ``x`` (0: output channels) for one
            scale per slice along it.

    Example:
        >>> fake_quantize(torch.tensor([-1.0, 0.1, 0.3, 1.0]), bits=2)
        tensor([-1.,  0.,  0.,  1.])
    """
    scale, zero_point = qparams(x, bits, symmetric=symmetric, axis=axis)
    q = quantize(x, scale, zero_point, bits, symmetric=symmetric, axis=axis)
    return _dequantize(q, scale, zero_point, _check_axis(axis, x.dim()), x.dtype)


def _dequantize(q, scale, zero_point, axis, dtype):
    # float32 arithmetic, then a cast to ``dtype``: what PyTorch's kernels do for every dtype
    steps = (q.to(torch.int64) - _along(zero_point, axis, q.dim())).to(torch.float32)
    return (steps * _along(scale, axis, q.dim())).to(dtype)


def _rows(x, axis):
    """(channels, values) view of ``x``: one row per slice along ``axis``, or one row."""
    if axis is None:
        return x.reshape(1, x.numel())
    t = x.movedim(axis, 0)
    return t.reshape(t.shape[0], math.prod(t.shape[1:]))


def _along(t, axis, ndim):
    """Reshapes a per-channel ``t`` to broadcast along ``axis`` of an ``ndim``-D tensor."""
    return t if axis is None else t.reshape((-1,) + (1,) * (ndim - 1 - axis))


def _check_axis(axis, ndim):
    """Returns ``axis`` as a non-negative dimension (or None)."""
    if axis is None:
        return None
    wanted = f"axis must be None (per-tensor) or an int in [{-ndim}, {ndim - 1}] for a {ndim}-d tensor"
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"{wanted}, got {shorten(axis)}")
    if ndim == 0:
        raise ValueError(f"axis must be None for a 0-d tensor, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{wanted}, got {axis!r}")
    return axis % ndim


def _check_input(x, axis):
    """Validates a float input and its axis; returns the axis as a non-negative dimension."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point torch.Tensor, got dtype {x.dtype}")
    axis = _check_axis(axis, x.dim())
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = x.detach()[~finite]
        raise ValueError(
            f"x must hold finite values only, got {bad[0].item()!r} "
            f"({bad.numel()} of {x.numel()} values are NaN or infinite)"
        )
    return axis


def _check_qparams(scale, zero_point, shape, axis, code_range, symmetric):
    """Returns ``scale`` as float32 and ``zero_point`` as int64 tensors, checked against ``x``."""
    want = () if axis is None else (shape[axis],)
    where = "per-tensor (axis=None)" if axis is None else f"axis={axis}"
    if isinstance(scale, bool) or not isinstance(scale, (int, float, torch.Tensor)):
        raise TypeError(f"scale must be a number or a float tensor, got {type(scale).__name__}")
    scale = torch.as_tensor(scale).detach()
    if scale.is_complex() or scale.dtype == torch.bool:
        raise ValueError(f"scale must be a number or a float tensor, got dtype {scale.dtype}")
    scale = scale.to(torch.float32)
    if isinstance(zero_point, bool) or not isinstance(zero_point, (int, torch.Tensor)):
        raise TypeError(f"zero_point must be an int or an integer tensor, got {shorten(zero_point)}")
    zero_point = torch.as_tensor(zero_point).detach()
    if zero_point.is_floating_point() or zero_point.is_complex() or zero_point.dtype == torch.bool:
        got = zero_point.dtype
        raise ValueError(f"zero_point must be an int or an integer tensor, got dtype {got}")
    for name, t in (("scale", scale), ("zero_point", zero_point)):
        if tuple(t.shape) != want and not (axis is None and t.numel() == 1):
            raise ValueError(f"{name} must have shape {want} for {where}, got {tuple(t.shape)}")
    scale, zero_point = scale.reshape(want), zero_point.reshape(want).to(torch.int64)
    ok = torch.isfinite(scale) & (scale >= _TINY)
    if not bool(ok.all()):
        raise ValueError(
            f"scale must be finite and >= {_TINY:.4g} (the smallest normal float32), "
            f"got {scale[~ok].flatten()[0].item()!r}"
        )
    if code_range is not None:
        qmin, qmax = code_range
        lo, hi = (0, 0) if symmetric else code_range
        bad = (zero_point < lo) | (zero_point > hi)
        if bool(bad.any()):
            allowed = "0 when symmetric=True" if symmetric else f"an int in [{qmin}, {qmax}]"
            got = zero_point[bad].flatten()[0].item()
            raise ValueError(f"zero_point must be {allowed}, got {got!r}")
    return scale, zero_point
