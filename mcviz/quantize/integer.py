"""Integer-only arithmetic by hand (Jacob et al., CVPR 2018) and BatchNorm folding.

An int8 Linear layer of an integer-only network computes, for codes ``x_q`` (input, scale
``S_x``, zero point ``Z_x``) and ``w_q`` (weights, one scale ``S_w[c]`` and zero point
``Z_w[c]`` per output channel):

1. an int32 accumulator ``acc = sum_k (x_q - Z_x)(w_q - Z_w)``, expanded into the int8 x int8
   product ``sum x_q w_q`` and the zero-point cross terms ``- Z_w sum x_q - Z_x sum w_q + K Z_x Z_w``
   (the last two depend on the weights only and are precomputed);
2. plus the bias stored as int32 at scale ``S_x * S_w``: ``round(bias / (S_x S_w))``;
3. requantized to the output grid (``S_y``, ``Z_y``) by the real multiplier
   ``M = S_x S_w / S_y``, which an integer-only kernel stores as a fixed-point number
   ``M = M0 * 2**-shift`` with an int32 ``M0`` in [2**30, 2**31): ``y_q = Z_y +
   round(acc * M0 / 2**shift)``, clamped to the 8-bit range (to ``[Z_y, qmax]`` with a fused ReLU).

PyTorch's fbgemm kernels requantize with a float multiplier instead of ``M0``; the two agree
within one output code (tests check it on real layers through ``mcviz._backends``).

``fold_batchnorm`` removes inference-time BatchNorm: ``BN(conv(x))`` equals a conv whose
weights are scaled by ``gamma / sqrt(var + eps)`` per output channel and whose bias is
``(b - mean) * gamma / sqrt(var + eps) + beta``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from mcviz import _backends
from mcviz._checks import check_bool, check_int, check_model, check_number, shorten
from mcviz._layers import replace

INT32 = (-(2**31), 2**31 - 1)


def fixed_point_multiplier(multiplier: float) -> tuple[int, int]:
    """Returns ``(M0, shift)`` with ``multiplier ≈ M0 * 2**-shift`` and ``M0`` an int in [2**30, 2**31).

    ``M0 / 2**31`` is the multiplier's mantissa in [0.5, 1) rounded to 31 fractional bits, so the
    relative error is at most ``2**-31``. ``shift`` may be any int (>= 31 for multipliers < 1).

    Example:
        >>> fixed_point_multiplier(0.25)
        (1073741824, 32)
    """
    m = check_number(multiplier, "multiplier", low=0, low_open=True)
    mantissa, exponent = math.frexp(m)  # m = mantissa * 2**exponent, mantissa in [0.5, 1)
    m0 = round(mantissa * 2**31)
    if m0 == 2**31:  # the mantissa rounded up to 1.0
        m0, exponent = m0 // 2, exponent + 1
    return m0, 31 - exponent


def requantize(
    acc: torch.Tensor, multiplier, zero_point: int, *, qmin: int = 0, qmax: int = 255
) -> torch.Tensor:
    """Returns ``clamp(zero_point + round(acc * M0 / 2**shift), qmin, qmax)`` as int64 codes;
    ``acc`` is unchanged.

    Integer arithmetic only: ``multiplier`` (a float, or one per output channel, the last axis of
    ``acc``) is turned into fixed-point ``(M0, shift)`` pairs by :func:`fixed_point_multiplier`,
    and the product is rounded half up by adding ``2**(shift - 1)`` before an arithmetic shift.
    """
    if not isinstance(acc, torch.Tensor) or acc.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"acc must be an int32 or int64 tensor, got {shorten(acc)}")
    multipliers = torch.as_tensor(multiplier, dtype=torch.float64).reshape(-1).tolist()
    pairs = [fixed_point_multiplier(m) for m in multipliers]
    m0 = torch.tensor([p[0] for p in pairs], dtype=torch.int64)
    shift = torch.tensor([p[1] for p in pairs], dtype=torch.int64)
    if (shift < 1).any() or (shift > 62).any():
        raise ValueError(f"multiplier must be in [2**-31, 2**30], got {shorten(multipliers)}")
    product = acc.to(torch.int64) * m0  # |acc| < 2**31 and M0 < 2**31: fits in int64
    half = torch.bitwise_left_shift(torch.ones_like(shift), shift - 1)  # 2**(shift - 1): round half up
    rounded = torch.bitwise_right_shift(product + half, shift)
    return torch.clamp(rounded + int(zero_point), qmin, qmax)


def integer_linear(
    x_q: torch.Tensor,
    x_scale: float,
    x_zero_point: int,
    w_q: torch.Tensor,
    w_scale,
    w_zero_point,
    bias: torch.Tensor | None,
    out_scale: float,
    out_zero_point: int,
    *,
    relu: bool = False,
) -> torch.Tensor:
    """Returns the uint8 output codes of an int8 Linear computed with integers only; inputs are unchanged.

    Args:
        x_q: input codes, (batch, in_features), uint8 (or any integer dtype).
        x_scale, x_zero_point: the input grid.
        w_q: weight codes, (out_features, in_features), int8.
        w_scale, w_zero_point: the weight grid, one number or one per output channel.
        bias: float bias (out_features,) or None; it is stored as int32 at scale ``x_scale * w_scale``.
        out_scale, out_zero_point: the output grid (uint8 codes 0..255).
        relu: a fused ReLU (the output is clamped at ``out_zero_point``, the code of 0.0).

    Returns:
        uint8 tensor (batch, out_features). ``x_scale * w_scale / out_scale`` is applied as a
        fixed-point multiplier (``M0 * 2**-shift``), never as a float.
    """
    for name, t in (("x_q", x_q), ("w_q", w_q)):
        integer = isinstance(t, torch.Tensor) and not t.dtype.is_floating_point and t.dtype != torch.bool
        if not integer or t.ndim != 2:
            raise TypeError(f"{name} must be a 2-D integer tensor of codes, got {shorten(t)}")
    if x_q.shape[1] != w_q.shape[1]:
        raise ValueError(f"x_q has {x_q.shape[1]} features but w_q expects {w_q.shape[1]}")
    relu = check_bool(relu, "relu")
    out_channels, k = w_q.shape
    s_x = check_number(x_scale, "x_scale", low=0, low_open=True)
    s_y = check_number(out_scale, "out_scale", low=0, low_open=True)
    z_x = check_int(x_zero_point, "x_zero_point", low=0, high=255)
    z_y = check_int(out_zero_point, "out_zero_point", low=0, high=255)
    s_w = _per_channel(w_scale, out_channels, torch.float64, "w_scale")
    z_w = _per_channel(w_zero_point, out_channels, torch.int64, "w_zero_point")
    if (s_w <= 0).any():
        raise ValueError(f"w_scale must be positive, got {shorten(s_w.tolist())}")
    x, w = x_q.to(torch.int64), w_q.to(torch.int64)

    # 1. int8 x int8 products summed in an integer accumulator, then the zero-point cross terms
    acc = x @ w.T  # sum_k x_q w_q
    acc = acc - z_w * x.sum(dim=1, keepdim=True)  # - Z_w sum_k x_q   (depends on the input)
    acc = acc - z_x * w.sum(dim=1) + k * z_x * z_w  # - Z_x sum_k w_q + K Z_x Z_w   (weights only)
    # 2. the bias, as int32 at scale S_x * S_w
    if bias is not None:
        bias_q = torch.round(bias.detach().to(torch.float64) / (s_x * s_w)).to(torch.int64)
        acc = acc + bias_q
    if acc.min() < INT32[0] or acc.max() > INT32[1]:
        raise ValueError("the accumulator overflowed int32: the layer is too wide for these codes")
    # 3. requantize with the fixed-point multiplier M = S_x S_w / S_y
    out = requantize(acc, s_x * s_w / s_y, z_y, qmin=z_y if relu else 0, qmax=255)
    return out.to(torch.uint8)


def torch_int8_linear(linear: nn.Linear, batches, *, relu: bool = False) -> _backends.StaticLinear:
    """Returns PyTorch's static int8 version of ``linear`` as codes and numbers; ``linear`` is unchanged.

    The layer is calibrated on ``batches`` (float inputs) with PyTorch's default x86 qconfig and
    converted to a torch.ao int8 Linear (fused with a ReLU if ``relu``). The result holds the input
    grid, the int8 weight codes with their per-channel scales and zero points, the fp32 bias, the
    output grid and ``run(x_codes)``, which runs torch's kernel on uint8 input codes: the reference
    :func:`integer_linear` is checked against.
    """
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"linear must be an nn.Linear, got {shorten(linear)}")
    relu = check_bool(relu, "relu")
    return _backends.static_linear(linear, list(batches), relu=relu)


def fold_batchnorm(model: nn.Module, pairs: list[tuple[str, str]] | None = None) -> nn.Module:
    """Returns a copy of ``model`` with each BatchNorm folded into the layer before it; ``model`` unchanged.

    Each folded BatchNorm is replaced by ``nn.Identity``; the layer gets
    ``weight * gamma / sqrt(var + eps)`` (per output channel) and bias
    ``(bias - mean) * gamma / sqrt(var + eps) + beta``. In eval mode the copy computes what
    ``model`` computes, up to float rounding. Training-mode BatchNorm (batch statistics) cannot be
    folded; the copy is returned in eval mode.

    Args:
        model: a float model.
        pairs: ``(layer name, batchnorm name)`` pairs to fold. Default: every ``nn.Conv2d`` or
            ``nn.Linear`` directly followed (in registration order, same parent) by a
            ``nn.BatchNorm2d`` / ``nn.BatchNorm1d`` with as many channels.
    """
    check_model(model)
    folded = copy.deepcopy(model).eval()
    modules = dict(folded.named_modules())
    if pairs is None:
        pairs = _adjacent_pairs(folded)
    if not isinstance(pairs, (list, tuple)):
        raise TypeError(f"pairs must be a list of (layer name, batchnorm name) pairs, got {shorten(pairs)}")
    for item in pairs:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(n, str) for n in item)):
            raise TypeError(f"pairs must hold (layer name, batchnorm name) pairs, got {shorten(item)}")
        layer_name, bn_name = item
        layer, bn = modules.get(layer_name), modules.get(bn_name)
        if not isinstance(layer, (nn.Conv2d, nn.Linear)):
            raise ValueError(f"pairs names {layer_name!r}, which is not a Conv2d or Linear of the model")
        if not isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d)) or bn.running_mean is None:
            raise ValueError(f"pairs names {bn_name!r}, which is not a BatchNorm with running statistics")
        if bn.num_features != layer.weight.shape[0]:
            raise ValueError(
                f"{bn_name!r} has {bn.num_features} channels, {layer_name!r} has {layer.weight.shape[0]}"
            )
        _fold_into(layer, bn)
        replace(folded, bn_name, nn.Identity())
    return folded


def _fold_into(layer: nn.Module, bn: nn.Module) -> None:
    with torch.no_grad():
        gamma = bn.weight if bn.affine else torch.ones_like(bn.running_var)
        factor = gamma / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
        bias = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
        new_bias = (bias - bn.running_mean) * factor + shift
        layer.weight.mul_(factor.reshape(-1, *([1] * (layer.weight.ndim - 1))))
        if layer.bias is None:
            layer.bias = nn.Parameter(new_bias.to(layer.weight.dtype))
        else:
            layer.bias.copy_(new_bias)


def _adjacent_pairs(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for parent_name, parent in model.named_modules():
        children = list(parent.named_children())
        for (name, layer), (next_name, nxt) in zip(children, children[1:], strict=False):
            if (
                isinstance(layer, (nn.Conv2d, nn.Linear))
                and isinstance(nxt, (nn.BatchNorm1d, nn.BatchNorm2d))
                and nxt.num_features == layer.weight.shape[0]
            ):
                prefix = f"{parent_name}." if parent_name else ""
                pairs.append((prefix + name, prefix + next_name))
    return pairs


def _per_channel(value, n: int, dtype, name: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=dtype).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"{name} must be one number or one per output channel ({n}), got {t.numel()}")
    return t
