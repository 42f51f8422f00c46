"""GPTQ (Frantar, Ashkboos, Hoefler & Alistarh, 2022): quantize a layer's weight column by column,
each time spreading the rounding error over the columns not yet quantized, weighted by how the
layer's inputs correlate.

For one Linear layer with inputs ``X`` (rows of calibration activations), the output error of a
quantized weight ``Q`` is ``||(W - Q) X^T||^2``, a quadratic form in the Hessian ``H = 2 X^T X / n``.
Quantizing column ``j`` to ``q_j`` leaves the error ``e = (w_j - q_j) / [H^-1]_jj``; the optimal
correction of the remaining columns is ``W[:, j+1:] -= e [H^-1]_{j, j+1:}`` (Optimal Brain
Surgeon). GPTQ takes the columns in a fixed order, reads ``H^-1`` from its upper Cholesky factor
(numerically stable, computed once), dampens ``H`` by ``damp`` times its mean diagonal, and
applies the corrections lazily, ``block_size`` columns at a time. ``act_order`` takes the columns
with the largest ``H_jj`` first.

:func:`quantize_weight` is the algorithm on one matrix; :func:`gptq` / :class:`GPTQConfig`
(method ``"gptq"``) run it on every Linear layer of a model with inputs from calibration data,
stage by stage (``sequential``: each layer sees the inputs of the already-quantized layers before
it, as in the paper) or all from the fp32 model in one pass. The result is the same
``GroupQuantLinear`` storage as round-to-nearest (``groupwise.py``): only the codes differ.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mcviz import _layers
from mcviz._checks import check_bool, check_int, check_model, check_number
from mcviz.quantize import calibration
from mcviz.quantize.groupwise import (
    GroupQuantLinear,
    check_group_size,
    check_layers,
    check_options,
    group_qparams,
)
from mcviz.quantize.tensor import qrange
from mcviz.registry import register


def hessian(x: torch.Tensor) -> torch.Tensor:
    """Returns ``2 X^T X / n`` (float64) of the rows of ``x`` ``(n, in_features)``."""
    x = x.reshape(-1, x.shape[-1]).double()
    return 2 * x.T @ x / len(x)


def quantize_weight(w: torch.Tensor, h: torch.Tensor, bits: int = 4, *, group_size: int = 0,
                    symmetric: bool = True, damp: float = 0.01, block_size: int = 128,
                    act_order: bool = False):  # fmt: skip
    """Returns ``(codes, scale, zero_point)`` of ``w`` ``(out, in)`` quantized by GPTQ with the
    Hessian ``h`` ``(in, in)``; ``w`` and ``h`` are left unchanged.

    ``scale`` and ``zero_point`` are ``(out, groups)`` as in ``GroupQuantLinear``. A group's grid
    is fitted to its columns as they are when the group's first column is reached (after the
    corrections from earlier columns); with ``act_order`` the grids are fitted to the original
    weight first ("static groups"), so that groups stay contiguous in storage.

    Raises:
        ValueError: ``h`` is not positive definite even after dampening (raise ``damp``).
    """
    check_int(bits, "bits")
    out_f, in_f = w.shape
    group_size = check_group_size(group_size, in_f)
    g = group_size or in_f
    W = w.detach().double().clone()
    H = h.detach().double().clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0  # an input that is always 0: its column does not matter
    W[:, dead] = 0.0
    perm = torch.argsort(torch.diag(H), descending=True, stable=True) if act_order else torch.arange(in_f)
    static = act_order or group_size == 0
    if static:  # every group's grid from the original weight
        scale, zero_point = group_qparams(W.float(), bits, group_size, symmetric=symmetric)
    else:
        scale = torch.empty(out_f, in_f // g, dtype=torch.float32)
        zero_point = torch.zeros(out_f, in_f // g, dtype=torch.int32)
    W, H = W[:, perm], H[perm][:, perm]
    H += damp * torch.diag(H).mean() * torch.eye(in_f, dtype=H.dtype)
    try:
        Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    except torch.linalg.LinAlgError:
        raise ValueError(
            f"the Hessian of this layer ({in_f} inputs) is not positive definite even after dampening "
            f"by damp={damp}; give more calibration samples or a larger damp"
        ) from None
    qmin, qmax = qrange(bits, symmetric=symmetric)
    codes = torch.zeros(out_f, in_f, dtype=torch.int64)
    block = max(g, block_size // g * g) if group_size else block_size
    for i1 in range(0, in_f, block):
        i2 = min(i1 + block, in_f)
        W1, Hinv1 = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]
        Err1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            col = int(perm[i1 + i])
            grp = col // g
            if not static and col % g == 0:  # the group's grid, from its columns as corrected so far
                s, z = group_qparams(W1[:, i : i + g].float(), bits, 0, symmetric=symmetric)
                scale[:, grp], zero_point[:, grp] = s[:, 0], z[:, 0]
            s, z = scale[:, grp].double(), zero_point[:, grp].double()
            w_col = W1[:, i]
            q = (torch.round(w_col * (1.0 / s)) + z).clamp(qmin, qmax)
            codes[:, col] = q.long()
            err = (w_col - (q - z) * s) / Hinv1[i, i]
            W1[:, i:] -= err.unsqueeze(1) * Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return codes, scale, zero_point


def gptq(model: nn.Module, data, bits: int = 4, *, group_size: int = 32, symmetric: bool = True,
         samples: int = 32, damp: float = 0.01, act_order: bool = False,
         sequential: bool = True) -> nn.Module:  # fmt: skip
    """Returns a copy of ``model`` whose Linear layers are quantized by GPTQ; ``model`` is unchanged.

    Args:
        model: any model with ``nn.Linear`` layers; other weight layers stay as they are (one
            warning names them). Layers the forward pass never calls are rounded to nearest.
        data: a DataBundle; the first ``samples`` training inputs calibrate (never the test split).
        bits, group_size, symmetric: the storage format, as in ``mcv.quantize.groupwise``.
        samples: calibration inputs (images, windows or paragraphs); every layer must see at least
            as many input rows as it has inputs, or its Hessian is singular.
        damp: dampening, a fraction of the mean diagonal of H added to its diagonal, in (0, 1].
        act_order: quantize the columns with the largest Hessian diagonal first.
        sequential: each stage of layers is calibrated on the outputs of the quantized stages
            before it (the paper's order; one partial forward pass per stage); False collects
            every Hessian from the fp32 model in one pass (faster, slightly worse).

    Raises:
        ValueError: bad arguments, a group size that does not divide a layer, or a calibration set
            too small for a layer's Hessian, before any layer is quantized.
    """
    _check_options(bits, group_size, symmetric, samples, damp, act_order, sequential)
    check_model(model)
    calibration.check_calibration_data(data)  # before linear_targets' warning
    names = _layers.linear_targets(model, "gptq")
    check_layers(model, names, group_size)
    inputs = calibration.batches(data, samples)
    out = copy.deepcopy(model)
    plan = calibration.stages(out, names, inputs[0])
    settings = {"bits": bits, "group_size": group_size, "symmetric": symmetric}
    options = {"damp": damp, "act_order": act_order}
    hessians = None if sequential else _hessians(out, [n for stage in plan for n in stage], inputs)
    if hessians is not None:
        _check_rows(out, hessians)
    for i, stage in enumerate(plan):
        found = hessians if hessians is not None else _hessians(out, stage, inputs)
        if i == 0 and hessians is None:
            _check_rows(out, found)  # the first stage sees as many rows as any: checked before any work
        for name in stage:
            h, rows = found[name]
            _check_rows(out, {name: (h, rows)})
            layer = out.get_submodule(name)
            q = GroupQuantLinear.from_float(layer, **settings)  # RTN first: the layout, bias and mode
            codes, scale, zero_point = quantize_weight(_layers.weight(layer).detach(), h / rows, **settings,
                                                       **options)  # fmt: skip
            q.set_codes(codes, scale, zero_point)
            out = _layers.replace(out, name, q)
    called = {n for stage in plan for n in stage}
    for name in names:  # never called: nothing to calibrate, round to nearest
        if name not in called:
            out = _layers.replace(out, name, GroupQuantLinear.from_float(out.get_submodule(name), **settings))
    return out


@register
@dataclass(frozen=True)
class GPTQConfig:
    """GPTQ: group-wise weight-only quantization with Hessian-weighted error feedback (calibrated)."""

    method: ClassVar[str] = "gptq"
    needs_data: ClassVar[bool] = True
    bits: int = 4
    group_size: int = 32
    symmetric: bool = True
    samples: int = 32
    damp: float = 0.01
    act_order: bool = False
    sequential: bool = True

    def __post_init__(self):
        _check_options(self.bits, self.group_size, self.symmetric, self.samples, self.damp, self.act_order,
                       self.sequential)  # fmt: skip

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        options = {f: getattr(self, f) for f in ("group_size", "symmetric", "samples", "damp", "act_order",
                                                 "sequential")}  # fmt: skip
        return gptq(model, data, self.bits, **options)


def _check_options(bits, group_size, symmetric, samples, damp, act_order, sequential) -> None:
    """The checks of GPTQ's options (shared bounds), in the order of the config's fields."""
    check_options(bits, group_size, symmetric)
    check_int(samples, "samples")
    check_number(damp, "damp")
    check_bool(act_order, "act_order")
    check_bool(sequential, "sequential")


def _hessians(model, names, inputs) -> dict[str, tuple[torch.Tensor, int]]:
    """Returns ``{name: (sum of 2 x x^T over rows, rows)}`` of the layers' inputs."""
    found: dict[str, list] = {}

    def add(name, x):
        x = x.double()
        h, n = found.get(name, (0.0, 0))
        found[name] = (h + 2 * x.T @ x, n + len(x))

    calibration.collect(model, names, inputs, add)
    return {n: (h, rows) for n, (h, rows) in found.items()}


def _check_rows(model, found) -> None:
    for name, (_, rows) in found.items():
        need = model.get_submodule(name).in_features
        if rows < need:
            raise ValueError(
                f"calibration gives layer {name!r} {rows} input rows but it has {need} inputs: its Hessian "
                f"is singular; give more calibration samples (samples=)"
            )
