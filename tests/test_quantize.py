"""Unit tests of the tensor primitives of mcviz.quantize: qrange, qparams, quantize, dequantize
and fake_quantize, checked against PyTorch's fake_quantize_per_{tensor,channel}_affine.

Random inputs come from seeded ``torch.Generator``s, never from the global RNG.
"""

from __future__ import annotations

import pytest
import torch
from helpers import one_line

from mcviz import quantize
from mcviz.quantize import dequantize, fake_quantize, qparams, qrange

BITS = range(2, 9)
MODES = pytest.mark.parametrize("symmetric", [True, False], ids=["symmetric", "asymmetric"])


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def along(t, axis, ndim):
    """Per-channel ``t`` shaped to broadcast along ``axis`` (0-d ``t`` when ``axis`` is None)."""
    return t if axis is None else t.reshape((-1,) + (1,) * (ndim - 1 - axis % ndim))


def with_ties(x, scale, axis):
    """``x`` with its first values per channel set to (near) half-steps, ``(k + 0.5) * scale``,
    where the rounding rule and the way ``x / scale`` is computed decide the code. Each channel
    keeps its min and max (ties outside them become 0), so its qparams do not change."""
    moved = x.movedim(axis, 0) if axis is not None else x.reshape(1, -1)
    flat = moved.reshape(moved.shape[0], -1).clone()
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    steps = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5], dtype=torch.float64)
    ties = (steps * scale.reshape(-1, 1).double()).float()
    ties = torch.where((ties >= lo) & (ties <= hi), ties, torch.zeros(()))
    flat[:, : len(steps)] = ties
    flat[:, -2:] = torch.cat([lo, hi], 1)
    out = flat.reshape(moved.shape)
    return out.movedim(0, axis) if axis is not None else out.reshape(x.shape)


# ---------------------------------------------------------------- qrange and qparams


def test_qrange():
    assert qrange() == (-127, 127)
    assert qrange(8, symmetric=False) == (0, 255)
    assert qrange(2) == (-1, 1)
    assert qrange(4, symmetric=False) == (0, 15)


def test_qparams_symmetric_per_tensor():
    scale, zero_point = qparams(torch.tensor([-2.0, 0.5, 1.0]))
    assert scale.shape == () and scale.dtype == torch.float32
    assert zero_point.shape == () and zero_point.dtype == torch.int32
    assert scale.item() == torch.tensor(2.0 / 127).item()
    assert zero_point.item() == 0


@pytest.mark.parametrize(
    "values, scale, zero_point",
    [
        ([-1.0, 3.0], 4.0 / 255, 64),  # -min / scale = 63.75
        ([1.0, 2.0], 2.0 / 255, 0),  # range widened down to 0
        ([-2.0, -1.0], 2.0 / 255, 255),  # range widened up to 0
    ],
)
def test_qparams_asymmetric_per_tensor(values, scale, zero_point):
    s, z = qparams(torch.tensor(values), symmetric=False)
    assert s.item() == torch.tensor(scale).item()
    assert z.item() == zero_point


def test_asymmetric_stores_zero_exactly():
    x = torch.tensor([-0.3, 0.0, 0.7, 1.9])
    out = fake_quantize(x, bits=3, symmetric=False)
    assert out[1].item() == 0.0


@pytest.mark.parametrize("axis, channels", [(0, 4), (1, 3), (-1, 2), (3, 2)])
def test_qparams_per_channel_shapes(axis, channels):
    w = randn(4, 3, 5, 2)
    scale, zero_point = qparams(w, symmetric=False, axis=axis)
    assert scale.shape == (channels,) and scale.dtype == torch.float32
    assert zero_point.shape == (channels,) and zero_point.dtype == torch.int32
    for c in range(channels):
        s, z = qparams(w.select(axis, c), symmetric=False)
        assert scale[c] == s and zero_point[c] == z


# ---------------------------------------------------------------- quantize and dequantize


def test_rounds_half_to_even():
    # x / 0.25 = 0.5, 1.5, 2.5, -0.5, -1.5, -2.5: exact ties
    x = torch.tensor([0.125, 0.375, 0.625, -0.125, -0.375, -0.625])
    assert quantize.quantize(x, 0.25, 0).tolist() == [0, 2, 2, 0, -2, -2]


@MODES
def test_code_dtypes_and_range(symmetric):
    x = randn(50, seed=1) * 5
    for bits in BITS:
        scale, zero_point = qparams(x, bits, symmetric=symmetric)
        q = quantize.quantize(x, scale, zero_point, bits, symmetric=symmetric)
        qmin, qmax = qrange(bits, symmetric=symmetric)
        assert q.dtype == (torch.int8 if symmetric else torch.uint8)
        assert int(q.min()) >= qmin and int(q.max()) <= qmax
        assert int(q.min()) == qmin or int(q.max()) == qmax  # the grid is used to its end


def test_quantize_clamps_to_the_range():
    q = quantize.quantize(torch.tensor([-100.0, 100.0, 0.26]), 0.25, 3, bits=3, symmetric=False)
    assert q.tolist() == [0, 7, 4]


def test_dequantize_values():
    q = torch.tensor([0, 3, 7], dtype=torch.uint8)
    out = dequantize(q, 0.5, 3)
    assert out.dtype == torch.float32
    assert out.tolist() == [-1.5, 0.0, 2.0]


def test_dequantize_per_channel():
    q = torch.tensor([[1, -1], [2, 4]], dtype=torch.int8)
    out = dequantize(q, torch.tensor([1.0, 0.5]), torch.tensor([0, 0]), axis=0)
    assert out.tolist() == [[1.0, -1.0], [1.0, 2.0]]


def test_fake_quantize_is_dequantize_of_quantize():
    x = randn(6, 7, seed=2)
    for kwargs in ({}, {"symmetric": False, "axis": 0}, {"bits": 3, "axis": 1}):
        scale, zero_point = qparams(x, **kwargs)
        q = quantize.quantize(x, scale, zero_point, **kwargs)
        axis = kwargs.get("axis")
        assert torch.equal(fake_quantize(x, **kwargs), dequantize(q, scale, zero_point, axis=axis))


# ---------------------------------------------------------------- PyTorch reference


@MODES
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("seed", range(3))
def test_per_tensor_equals_pytorch(symmetric, bits, seed):
    x = randn(32, 17, seed=seed) * 3 + (0.0 if symmetric else 1.0)
    scale, zero_point = qparams(x, bits, symmetric=symmetric)
    x = with_ties(x, scale, None)
    assert qparams(x, bits, symmetric=symmetric) == (scale, zero_point)
    qmin, qmax = qrange(bits, symmetric=symmetric)
    expected = torch.fake_quantize_per_tensor_affine(x, scale.item(), int(zero_point), qmin, qmax)
    assert torch.equal(fake_quantize(x, bits, symmetric=symmetric), expected)
    q = quantize.quantize(x, scale, zero_point, bits, symmetric=symmetric)
    assert torch.equal(dequantize(q, scale, zero_point), expected)


@MODES
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_per_channel_equals_pytorch(symmetric, bits, axis):
    x = randn(8, 6, 3, 3, seed=bits) * torch.logspace(-2, 2, 8).reshape(8, 1, 1, 1)
    x[2] = 0.0  # an all-zero output channel
    scale, zero_point = qparams(x, bits, symmetric=symmetric, axis=axis)
    x = with_ties(x, scale, axis)
    again = qparams(x, bits, symmetric=symmetric, axis=axis)
    assert torch.equal(again[0], scale) and torch.equal(again[1], zero_point)
    qmin, qmax = qrange(bits, symmetric=symmetric)
    expected = torch.fake_quantize_per_channel_affine(x, scale, zero_point, axis % x.dim(), qmin, qmax)
    assert torch.equal(fake_quantize(x, bits, symmetric=symmetric, axis=axis), expected)


@MODES
@pytest.mark.parametrize("bits", [2, 5, 8])
def test_given_scale_and_zero_point_equals_pytorch(symmetric, bits):
    # exact ties: a power-of-two scale makes x / scale = k + 0.5 exactly
    qmin, qmax = qrange(bits, symmetric=symmetric)
    zero_point = 0 if symmetric else (qmax + 1) // 3
    x = torch.arange(-300, 300, dtype=torch.float32) * 0.125 + 0.0625  # (k + 0.5) * 0.125
    x = torch.cat([x, randn(100, seed=bits) * 10])
    expected = torch.fake_quantize_per_tensor_affine(x, 0.125, zero_point, qmin, qmax)
    q = quantize.quantize(x, 0.125, zero_point, bits, symmetric=symmetric)
    assert torch.equal(dequantize(q, 0.125, zero_point), expected)
    scales = torch.tensor([0.125, 0.3, 7.0])
    zero_points = torch.tensor([zero_point] * 3, dtype=torch.int32)
    w = x[:600].reshape(3, 200)
    expected = torch.fake_quantize_per_channel_affine(w, scales, zero_points, 0, qmin, qmax)
    q = quantize.quantize(w, scales, zero_points, bits, symmetric=symmetric, axis=0)
    assert torch.equal(dequantize(q, scales, zero_points, axis=0), expected)


@MODES
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_float_dtypes_equal_pytorch(symmetric, dtype):
    x = randn(40, 9, seed=5, dtype=torch.float64).to(dtype)
    out = fake_quantize(x, symmetric=symmetric)
    scale, zero_point = qparams(x, symmetric=symmetric)
    qmin, qmax = qrange(symmetric=symmetric)
    try:
        expected = torch.fake_quantize_per_tensor_affine(x, scale.item(), int(zero_point), qmin, qmax)
    except RuntimeError as e:  # not every dtype has a CPU kernel in every torch version
        pytest.skip(f"torch has no {dtype} fake_quantize here: {str(e).splitlines()[0]}")
    assert out.dtype == dtype
    assert torch.equal(out, expected)


# ---------------------------------------------------------------- properties (seeded sweep)


def random_case(g):
    """A random tensor, bits, mode and axis; some channels constant or zero, ranges up to 1e6x."""
    ndim = int(torch.randint(1, 5, (), generator=g))
    shape = tuple(int(n) for n in torch.randint(1, 7, (ndim,), generator=g))
    magnitude = 10 ** float(torch.empty(()).uniform_(-4, 4, generator=g))
    x = torch.randn(shape, generator=g) * magnitude + float(torch.randn((), generator=g)) * magnitude
    kind = int(torch.randint(0, 4, (), generator=g))
    if kind == 1:
        x[0] = 0.0  # a zero slice
    elif kind == 2:
        x[..., 0] = 0.5 * magnitude  # a constant slice along the last axis
    bits = int(torch.randint(2, 9, (), generator=g))
    symmetric = bool(torch.randint(0, 2, (), generator=g))
    axis = None if torch.rand((), generator=g) < 0.4 else int(torch.randint(-ndim, ndim, (), generator=g))
    return x, bits, symmetric, axis


def test_every_value_in_range_comes_back_within_half_a_step():
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        x, bits, symmetric, axis = random_case(g)
        scale, zero_point = qparams(x, bits, symmetric=symmetric, axis=axis)
        out = fake_quantize(x, bits, symmetric=symmetric, axis=axis)
        step = along(scale, axis, x.dim())
        case = f"shape={tuple(x.shape)} bits={bits} symmetric={symmetric} axis={axis}"
        assert ((x - out).abs() <= step * (0.5 + 1e-4)).all(), case


def test_values_outside_the_range_are_clamped_to_its_end():
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        x, bits, symmetric, axis = random_case(g)
        scale, zero_point = qparams(x, bits, symmetric=symmetric, axis=axis)
        qmin, qmax = qrange(bits, symmetric=symmetric)
        step, z = along(scale, axis, x.dim()), along(zero_point, axis, x.dim())
        low = ((qmin - z).double() * step.double()).float()
        high = ((qmax - z).double() * step.double()).float()
        y = x * 3 - float(x.abs().max())  # pushes many values beyond both ends
        q = quantize.quantize(y, scale, zero_point, bits, symmetric=symmetric, axis=axis)
        out = dequantize(q, scale, zero_point, axis=axis)
        case = f"shape={tuple(x.shape)} bits={bits} symmetric={symmetric} axis={axis}"
        below, above = y < low, y > high
        inside = ~(below | above)
        assert torch.equal(out[below], low.expand_as(y)[below]), case
        assert torch.equal(out[above], high.expand_as(y)[above]), case
        assert ((y - out).abs()[inside] <= step.expand_as(y)[inside] * (0.5 + 1e-4)).all(), case


@MODES
def test_per_channel_beats_per_tensor_when_channel_ranges_differ(symmetric):
    w = randn(16, 64, seed=3) * torch.logspace(0, 2, 16).reshape(16, 1)  # ranges differ 100x
    per_tensor = (w - fake_quantize(w, 4, symmetric=symmetric)).pow(2).mean()
    per_channel = (w - fake_quantize(w, 4, symmetric=symmetric, axis=0)).pow(2).mean()
    assert per_channel < 0.5 * per_tensor


# ---------------------------------------------------------------- purity and edge cases


def test_inputs_are_not_modified():
    x = randn(5, 4, seed=4)
    x.requires_grad_(True)
    before = x.detach().clone()
    scale, zero_point = qparams(x, 4, symmetric=False, axis=0)
    saved = scale.clone(), zero_point.clone()
    q = quantize.quantize(x, scale, zero_point, 4, symmetric=False, axis=0)
    q_before = q.clone()
    dequantize(q, scale, zero_point, axis=0)
    fake_quantize(x, 3, axis=1)
    fake_quantize(x, symmetric=False)
    assert torch.equal(x.detach(), before) and x.requires_grad
    assert torch.equal(q, q_before)
    assert torch.equal(scale, saved[0]) and torch.equal(zero_point, saved[1])
    assert not scale.requires_grad


@MODES
@pytest.mark.parametrize("axis", [None, 0])
def test_zero_tensor(symmetric, axis):
    x = torch.zeros(3, 4)
    scale, zero_point = qparams(x, symmetric=symmetric, axis=axis)
    assert (scale == 1.0).all() and (zero_point == 0).all()
    assert torch.equal(fake_quantize(x, symmetric=symmetric, axis=axis), x)


@MODES
def test_tiny_values_get_a_usable_scale(symmetric):
    x = torch.tensor([1e-44, -3e-45, 0.0])  # subnormal float32: range / qmax underflows
    scale, _ = qparams(x, symmetric=symmetric)
    assert torch.isfinite(1 / scale) and scale > 0
    out = fake_quantize(x, symmetric=symmetric)
    assert torch.isfinite(out).all() and ((x - out).abs() <= scale / 2).all()


def test_huge_range_does_not_overflow():
    x = torch.tensor([-3e38, 3e38])
    scale, zero_point = qparams(x, 2, symmetric=False)
    assert torch.isfinite(scale) and zero_point.item() in (1, 2)
    assert torch.isfinite(fake_quantize(x, 2, symmetric=False)).all()


@pytest.mark.parametrize("shape, axis", [((0,), None), ((3, 0), 0), ((0, 4), 0), ((), None)])
def test_empty_and_0d_tensors(shape, axis):
    x = torch.full(shape, 0.5)
    out = fake_quantize(x, axis=axis)
    assert out.shape == x.shape
    assert torch.allclose(out, x, atol=0.5 / 127)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("bits", "error"),
    [(1, ValueError), (9, ValueError), (0, ValueError), (-8, ValueError), (8.0, TypeError), (True, TypeError),
     ("8", TypeError), (None, TypeError)],
)  # fmt: skip
def test_bad_bits(bits, error):
    for call in (
        lambda: qparams(torch.ones(3), bits),
        lambda: fake_quantize(torch.ones(3), bits),
        lambda: quantize.quantize(torch.ones(3), 1.0, 0, bits),
        lambda: qrange(bits),
    ):
        with pytest.raises(error, match=r"bits must be an int in \[2, 8\]") as excinfo:
            call()
        assert f"got {bits!r}" in one_line(excinfo)


@pytest.mark.parametrize(
    "shape, axis, error",
    [((4,), 1, ValueError), ((4,), -2, ValueError), ((2, 3), 2, ValueError), ((2, 3), 0.0, TypeError),
     ((2, 3), "0", TypeError), ((2, 3), True, TypeError), ((), 0, ValueError)],
)  # fmt: skip
def test_bad_axis(shape, axis, error):
    for call in (
        lambda: qparams(torch.ones(shape), axis=axis),
        lambda: fake_quantize(torch.ones(shape), axis=axis),
        lambda: quantize.quantize(
            torch.ones(shape), torch.ones(2), torch.zeros(2, dtype=torch.int32), axis=axis
        ),
        lambda: dequantize(torch.ones(shape, dtype=torch.int8), torch.ones(2), 0, axis=axis),
    ):
        with pytest.raises(error, match="axis must be None") as excinfo:
            call()
        assert f"got {axis!r}" in one_line(excinfo)


@pytest.mark.parametrize(
    "x, named, error",
    [
        (torch.arange(4), "torch.int64", ValueError),
        (torch.ones(3, dtype=torch.bool), "torch.bool", ValueError),
        (torch.ones(3, dtype=torch.complex64), "torch.complex64", ValueError),
        ([0.5, 1.0], "list", TypeError),
        (0.5, "float", TypeError),
    ],
)
def test_non_float_input(x, named, error):
    for call in (lambda: qparams(x), lambda: fake_quantize(x), lambda: quantize.quantize(x, 1.0, 0)):
        with pytest.raises(error, match="x must be a floating-point torch.Tensor") as excinfo:
            call()
        assert named in one_line(excinfo)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_input(bad):
    x = torch.tensor([0.5, bad, 1.0])
    for call in (lambda: qparams(x), lambda: fake_quantize(x, axis=0), lambda: quantize.quantize(x, 1.0, 0)):
        with pytest.raises(ValueError, match="x must hold finite values only") as excinfo:
            call()
        assert f"got {bad!r}" in one_line(excinfo)


def test_bad_symmetric():
    with pytest.raises(TypeError, match="symmetric must be True or False") as excinfo:
        fake_quantize(torch.ones(3), symmetric="yes")
    assert "'yes'" in one_line(excinfo)


@pytest.mark.parametrize(
    "scale, zero_point, kwargs, match, named",
    [
        (0.0, 0, {}, "scale must be finite and >=", "0.0"),
        (-1.0, 0, {}, "scale must be finite and >=", "-1.0"),
        (float("nan"), 0, {}, "scale must be finite and >=", "nan"),
        (1e-45, 0, {}, "scale must be finite and >=", "1.4"),
        (True, 0, {}, "scale must be a number", "bool"),  # TypeError: see below
        ("1", 0, {}, "scale must be a number", "str"),
        (torch.ones(3), 0, {}, r"scale must have shape \(\)", "(3,)"),
        (torch.ones(3), torch.zeros(4, dtype=torch.int64), {"axis": 0}, r"shape \(4,\)", "(3,)"),
        (1.0, 1.5, {}, "zero_point must be an int", "1.5"),
        (1.0, torch.tensor(1.0), {}, "zero_point must be an int", "torch.float32"),
        (1.0, 3, {}, "zero_point must be 0 when symmetric=True", "3"),
        (1.0, 256, {"symmetric": False}, r"zero_point must be an int in \[0, 255\]", "256"),
        (1.0, -1, {"symmetric": False}, r"zero_point must be an int in \[0, 255\]", "-1"),
    ],
)
def test_bad_scale_or_zero_point(scale, zero_point, kwargs, match, named):
    wrong_type = isinstance(scale, (bool, str)) or isinstance(zero_point, float)
    with pytest.raises(TypeError if wrong_type else ValueError, match=match) as excinfo:
        quantize.quantize(torch.ones(4, 2), scale, zero_point, **kwargs)
    assert named in one_line(excinfo)


@pytest.mark.parametrize(
    "q, error",
    [(torch.ones(3), ValueError), (torch.ones(3, dtype=torch.bool), ValueError), ([1, 2], TypeError)],
)
def test_dequantize_needs_integer_codes(q, error):
    with pytest.raises(error, match="q must be an integer torch.Tensor") as excinfo:
        dequantize(q, 1.0, 0)
    one_line(excinfo)
