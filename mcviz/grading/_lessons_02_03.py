"""Questions of lessons 02 (quantization) and 03 (quantization, advanced)."""

from __future__ import annotations

import torch
from torch import nn

from mcviz import measure
from mcviz.grading._core import (
    Wrong,
    _call,
    _number,
    _reference_models,
    _short,
    question,
)

# ---- lesson 02: quantization ------------------------------------------------------------------


def _reference_tensors() -> list[tuple[str, torch.Tensor, int, bool]]:
    """(name, tensor, bits, symmetric): the cases the quantization functions are graded on."""
    g = torch.Generator().manual_seed(2)
    normal = torch.randn(200, generator=g) * 0.1
    return [
        ("a normal tensor at 8 bits, symmetric", normal, 8, True),
        ("a normal tensor at 8 bits, asymmetric", normal, 8, False),
        ("a skewed tensor at 4 bits, symmetric", torch.rand(50, generator=g) * 3 - 0.5, 4, True),
        ("a skewed tensor at 4 bits, asymmetric", torch.rand(50, generator=g) * 3 - 0.5, 4, False),
        ("an all-positive tensor at 3 bits, asymmetric", torch.rand(40, generator=g) + 0.5, 3, False),
        ("an all-negative tensor at 2 bits, symmetric", -torch.rand(40, generator=g) - 0.1, 2, True),
        ("a 2-d weight at 5 bits, asymmetric", torch.randn(6, 7, generator=g), 5, False),
    ]


@question(
    "02.scale_zero_point",
    "Write scale_zero_point(x, bits, symmetric) that returns the (scale, zero_point) of "
    "per-tensor quantization of x, with mcviz's conventions.",
    hint="symmetric: zero point 0 and the largest |x| lands on the largest code. Asymmetric: "
    "first widen [min, max] so that it contains 0, spread it over all 2**bits codes, and "
    "round the code of 0.0 (then keep it inside the code range).",
)
def _scale_zero_point(answer) -> bool:
    from mcviz import quantize

    for name, x, bits, symmetric in _reference_tensors():
        got = _call(answer, x.clone(), bits, symmetric, what="scale_zero_point")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Wrong(f"scale_zero_point must return a pair (scale, zero_point), got {_short(got)}")
        scale, zero_point = quantize.qparams(x, bits, symmetric=symmetric)
        if abs(_number(got[0], "scale") - scale.item()) > 1e-5 * scale.item():
            raise Wrong(f"the scale is off for {name}")
        if _number(got[1], "zero_point") != zero_point.item():
            raise Wrong(f"the zero point is off for {name}")
    return True


@question(
    "02.fake_quantize",
    "Write fake_quant(x, bits, symmetric): quantize x per tensor to bits-bit codes and map "
    "the codes back to floats, as mcv.quantize.fake_quantize does.",
    hint="get the scale and zero point (mcv.quantize.qparams may help), divide by the scale, "
    "round half to even (torch.round), add the zero point, clip to the code range "
    "(mcv.quantize.qrange), then undo the shift and the scaling.",
)
def _fake_quantize(answer) -> bool:
    from mcviz import quantize

    for name, x, bits, symmetric in _reference_tensors():
        got = _call(answer, x.clone(), bits, symmetric, what="fake_quant")
        if not torch.is_tensor(got) or tuple(got.shape) != tuple(x.shape):
            raise Wrong(f"fake_quant must return a tensor shaped like x, got {_short(got)} for {name}")
        expected = quantize.fake_quantize(x, bits, symmetric=symmetric)
        step = quantize.qparams(x, bits, symmetric=symmetric)[0].item()
        off = (got.detach().double() - expected.double()).abs()
        # x / scale and x * (1 / scale) may round an exact tie differently: one value may be a step off
        if int((off > 1e-4 * step).sum()) > 1 or float(off.max()) > 1.001 * step:
            raise Wrong(f"fake_quant differs from the library for {name}")
    return True


@question(
    "02.int8_size",
    "Write int8_size(model) that returns the size_bytes mcv.measure counts for "
    "mcv.quantize.weights(model, 8) (symmetric, per-channel int8 weights), without quantizing it.",
    hint="per Linear / Conv2d layer: one byte per weight code, one fp32 scale (4 bytes) per output "
    "channel, and the bias kept in fp32 (4 bytes per entry, none if the layer has no bias). Symmetric "
    "codes store no zero point.",
)
def _int8_size(answer) -> bool:
    from mcviz import quantize

    for name, model in _reference_models():
        got = _call(answer, model, what="int8_size")
        expected = measure.model(quantize.weights(model, 8)).size_bytes
        if _number(got, "int8_size") != expected:
            shown = int(_number(got)) if _number(got).is_integer() else _number(got)
            raise Wrong(f"for {name} your int8_size is {shown}, which is not what mcv.measure counts")
    return True


# ---- lesson 03: quantization, advanced ---------------------------------------------------------


def _ste_tensors() -> list[tuple[str, torch.Tensor, int]]:
    """(name, tensor, bits): the cases the straight-through estimator is graded on."""
    g = torch.Generator().manual_seed(3)
    return [
        ("a normal tensor at 8 bits", torch.randn(200, generator=g) * 0.1, 8),
        ("a normal tensor at 4 bits", torch.randn(300, generator=g), 4),
        ("a 2-d weight at 3 bits", torch.randn(10, 30, generator=g) * 0.05, 3),
        ("a skewed tensor at 2 bits", torch.rand(60, generator=g) * 3 - 0.5, 2),
    ]


@question(
    "03.ste_fake_quantize",
    "Write ste_fake_quant(w, bits): per-tensor symmetric fake quantization of w whose gradient "
    "with respect to w is the straight-through estimator's (the identity).",
    hint="the value is the fake-quantized w (zero point 0, the largest |w| on the largest code). "
    "For the gradient, write the result as w plus a correction that autograd must not see "
    "(Tensor.detach), so that the backward pass sees only w.",
)
def _ste_fake_quantize(answer) -> bool:
    from mcviz import quantize

    for name, x, bits in _ste_tensors():
        w = x.clone().requires_grad_(True)
        got = _call(answer, w, bits, what="ste_fake_quant")
        if not torch.is_tensor(got) or tuple(got.shape) != tuple(x.shape):
            raise Wrong(f"ste_fake_quant must return a tensor shaped like w, got {_short(got)} for {name}")
        expected = quantize.ste_fake_quantize(x, bits, granularity="per_tensor")
        step = quantize.qparams(x, bits, symmetric=True)[0].item()
        off = (got.detach().double() - expected.double()).abs()
        # w / scale and w * (1 / scale) may round an exact tie differently: one value may be a step off
        if int((off > 1e-4 * step).sum()) > 1 or float(off.max()) > 1.001 * step:
            raise Wrong(f"the values differ from the library's for {name}")
        if not got.requires_grad:
            raise Wrong(f"no gradient flows back to w for {name} (the result does not require grad)")
        upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
        (grad,) = torch.autograd.grad((got * upstream).sum(), w, allow_unused=True)
        if grad is None or not torch.allclose(grad, upstream, rtol=1e-5, atol=1e-6):
            raise Wrong(f"the gradient with respect to w is not the straight-through one for {name}")
    return True


_KMEANS_LAYERS = [  # (name, layer, budget in bytes): some need few bits, one fits none
    ("Linear(784, 300)", lambda: nn.Linear(784, 300), 94_200),
    ("Linear(300, 100, bias=False)", lambda: nn.Linear(300, 100, bias=False), 23_000),
    ("Conv2d(1, 32, 3)", lambda: nn.Conv2d(1, 32, 3), 576),
    ("Conv2d(3, 5, 3, bias=False)", lambda: nn.Conv2d(3, 5, 3, bias=False), 370),
    ("Linear(10, 3)", lambda: nn.Linear(10, 3), 66),
    ("Linear(64, 32)", lambda: nn.Linear(64, 32), 416),
]


@question(
    "03.kmeans_bits",
    "Write kmeans_bits(layer, budget_bytes): the most bits (2 to 8) of k-means weight sharing whose "
    "size_bytes, as mcv.measure counts it, fits in budget_bytes; None when even 2 bits do not fit.",
    hint="count every stored tensor at b bits: one b-bit index per weight, packed (round the total up to "
    "whole bytes), the codebook of 2**b float32 values (even if some go unused), and the float32 bias "
    "when the layer has one; then try b from 8 down to 2. The codebook grows fast with b: on a small "
    "layer more bits can cost more than they save.",
)
def _kmeans_bits(answer) -> bool:
    from mcviz import quantize

    torch_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)  # the layers' initial weights do not change the byte count
        cases = [(name, make(), budget) for name, make, budget in _KMEANS_LAYERS]
    finally:
        torch.random.set_rng_state(torch_state)  # grading leaves the learner's RNG alone
    for name, layer, budget in cases:
        sizes = {b: measure.model(quantize.kmeans(nn.Sequential(layer), b)).size_bytes for b in range(2, 9)}
        expected = max((b for b, size in sizes.items() if size <= budget), default=None)
        if expected is None:  # the last case: a stub returning None has failed the earlier ones already
            got = answer(layer, budget)
            if got is not None:
                raise Wrong(f"for {name} and {budget:,} bytes 2 bits do not fit (None); got {_short(got)}")
            continue
        got = _call(answer, layer, budget, what="kmeans_bits")
        if _number(got, f"kmeans_bits for {name}") != expected:
            raise Wrong(f"kmeans_bits gave {_short(got)} for {name} and a budget of {budget:,} bytes")
    return True
