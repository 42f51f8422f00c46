"""Questions of lesson 12 (integer-only arithmetic, BatchNorm folding, channel pruning through BN)."""

from __future__ import annotations

import torch
from torch import nn

from mcviz.grading._core import Wrong, _call, _short, question


def _multipliers() -> list[float]:
    g = torch.Generator().manual_seed(12)
    return [0.5, 0.25, 1.0, 3e-4, 0.999999, 0.0123, *(10 ** (torch.rand(20, generator=g) * 5 - 5)).tolist()]


@question(
    "12.fixed_point",
    "Write fixed_point(M) that returns (M0, shift): an int M0 in [2**30, 2**31) and an int shift with "
    "M ≈ M0 * 2**-shift, M0 being M's mantissa rounded to 31 fractional bits.",
    hint="write M = m * 2**e with m in [0.5, 1) (math.frexp does it), then M0 = round(m * 2**31) and "
    "shift = 31 - e; if the rounding reaches 2**31, halve M0 and lower the shift by one.",
)
def _fixed_point(answer) -> bool:
    from mcviz import quantize

    for m in _multipliers():
        got = _call(answer, m, what="fixed_point")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Wrong(f"fixed_point must return a pair (M0, shift), got {_short(got)}")
        m0, shift = got
        if isinstance(m0, torch.Tensor):
            m0 = m0.item()
        if isinstance(shift, torch.Tensor):
            shift = shift.item()
        if not (isinstance(m0, int) and isinstance(shift, int)):
            raise Wrong(f"M0 and shift must be Python ints, got {_short(got)}")
        if not 2**30 <= m0 < 2**31:
            raise Wrong(f"M0 = {m0} for M = {m:.6g} is outside [2**30, 2**31): normalize the mantissa")
        if (m0, shift) != quantize.fixed_point_multiplier(m):
            raise Wrong(f"(M0, shift) = {(m0, shift)} for M = {m:.6g} is not the 31-bit rounding of M")
    return True


def _linear_cases():
    g = torch.Generator().manual_seed(21)
    cases = []
    shapes = ((5, 40, 7, 0, 0, True), (9, 100, 12, 113, 40, True), (3, 17, 4, 255, 128, False))
    for n, k, out, z_x, z_y, with_bias in shapes:
        x_q = torch.randint(0, 256, (n, k), generator=g).to(torch.uint8)
        w_q = torch.randint(-128, 128, (out, k), generator=g).to(torch.int8)
        w_scale = (torch.rand(out, generator=g, dtype=torch.float64) + 0.2) * 1e-2
        bias = torch.randn(out, generator=g) if with_bias else None
        s_x = 0.01 + 0.02 * torch.rand(1, generator=g).item()
        s_y = 0.05 + 0.2 * torch.rand(1, generator=g).item()
        cases.append((x_q, s_x, z_x, w_q, w_scale, bias, s_y, z_y))
    return cases


@question(
    "12.integer_linear",
    "Write int_linear(x_q, x_scale, x_zero_point, w_q, w_scale, bias, out_scale, out_zero_point): the "
    "uint8 output codes of an int8 Linear (symmetric per-channel weights, no ReLU), computed with "
    "integers: int32 accumulator with the zero-point term, int32 bias, fixed-point requantization.",
    hint="acc = (x_q - Z_x) @ w_q.T in int64; add round(bias / (S_x * S_w)); multiply by M0 and shift "
    "right by `shift` (with 2**(shift - 1) added first to round) for M = S_x * S_w / S_y, one per "
    "output channel; add Z_y and clamp to [0, 255]. mcv.quantize.fixed_point_multiplier gives (M0, shift).",
)
def _integer_linear(answer) -> bool:
    from mcviz import quantize

    for i, (x_q, s_x, z_x, w_q, w_scale, bias, s_y, z_y) in enumerate(_linear_cases()):
        inputs = (x_q.clone(), s_x, z_x, w_q.clone(), w_scale.clone(), None if bias is None else bias.clone())
        got = _call(answer, *inputs, s_y, z_y, what="int_linear")
        if not isinstance(got, torch.Tensor) or got.shape != (x_q.shape[0], w_q.shape[0]):
            shape = (x_q.shape[0], w_q.shape[0])
            raise Wrong(f"int_linear must return a tensor of shape {shape}, got {_short(got)}")
        if got.dtype.is_floating_point:
            raise Wrong("int_linear must return integer codes (uint8), not floats")
        expected = quantize.integer_linear(x_q, s_x, z_x, w_q, w_scale, 0, bias, s_y, z_y)
        diff = (got.to(torch.int64) - expected.to(torch.int64)).abs()
        # one code either way is rounding (a float multiplier rounds near-ties differently); more, or
        # many codes off by one, is a mistake
        if diff.max().item() > 1 or (diff > 0).float().mean().item() > 0.01:
            what = "with a nonzero input zero point" if z_x else "with input zero point 0"
            raise Wrong(
                f"case {i + 1} ({what}{', no bias' if bias is None else ''}): {int((diff > 0).sum())} of "
                f"{diff.numel()} codes differ, by up to {diff.max().item()}"
            )
    return True


def _bn_cases():
    g = torch.Generator().manual_seed(33)
    cases = []
    for c_in, c_out, bias in ((1, 4, True), (3, 6, False), (8, 5, True)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c_in * 7 + c_out)
            conv, bn = nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias), nn.BatchNorm2d(c_out)
        with torch.no_grad():
            bn.running_mean.copy_(torch.randn(c_out, generator=g))
            bn.running_var.copy_(torch.rand(c_out, generator=g) * 2 + 0.1)
            bn.weight.copy_(torch.rand(c_out, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(c_out, generator=g))
        cases.append((conv.eval(), bn.eval(), torch.randn(4, c_in, 6, 6, generator=g)))
    return cases


@question(
    "12.fold_bn",
    "Write fold(conv, bn) that returns a NEW Conv2d computing bn(conv(x)) in eval mode (the running "
    "statistics), leaving conv and bn unchanged.",
    hint="per output channel c, factor = gamma[c] / sqrt(running_var[c] + eps): the new weight is the "
    "conv's weight times factor, the new bias (bias - running_mean) * factor + beta (bias 0 when the "
    "conv has none). Copy the conv (copy.deepcopy) before changing it.",
)
def _fold_bn(answer) -> bool:
    for conv, bn, x in _bn_cases():
        before = (conv.weight.detach().clone(), bn.running_mean.clone())
        got = _call(answer, conv, bn, what="fold")
        if not isinstance(got, nn.Conv2d):
            raise Wrong(f"fold must return an nn.Conv2d, got {_short(got)}")
        unchanged = torch.equal(conv.weight, before[0]) and torch.equal(bn.running_mean, before[1])
        if got is conv or not unchanged:
            raise Wrong("fold changed its input: return a new layer and leave conv and bn as they were")
        with torch.no_grad():
            if not torch.allclose(got.eval()(x), bn(conv(x)), atol=1e-5):
                bias = "with" if conv.bias is not None else "without"
                raise Wrong(f"for a conv {bias} a bias, the folded layer does not compute bn(conv(x))")
    return True
