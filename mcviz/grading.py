"""Exercise self-checks: ``mcv.check(question, answer)`` prints one line and never raises.

The line is one of

- ``✓ 01.count_params: correct``
- ``✗ 01.count_params: not yet. <what was wrong>. Hint: <a hint that does not give the answer>``
- ``… 01.count_params: not answered yet (replace the starter value with your answer)``
- ``? unknown question '01.count_parms'; did you mean: 01.count_params``

Expected answers are computed by mcviz itself (``mcv.measure``, ``mcv.models``), never typed in,
so they hold for any seed and follow the library if it changes. An answer may be a value or a
function; a function is called on several reference inputs and compared on each.

A lesson's exercise cell (tagged ``exercise``) holds the starter, usually ``...`` or a function
whose body is ``...``; the cell after it calls ``mcv.check``. Add a question with::

    @question("01.my_question", "What is ...?", hint="Think of ...")
    def _my_question(answer):
        expected = ...  # computed with mcviz
        return _close(answer, expected)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from mcviz import measure, models

QUESTIONS: dict[str, Question] = {}
STATUSES = ("pass", "fail", "not_answered", "unknown")


class NotAnswered(Exception):
    """Raised by a grader when the answer is still a starter (e.g. a function returning None)."""


class Wrong(Exception):
    """Raised by a grader to fail an answer with a specific reason (shown before the hint)."""


@dataclass(frozen=True)
class Question:
    """An exercise: ``grade(answer)`` returns True / False (or raises Wrong / NotAnswered).

    Attributes:
        name: "<lesson>.<topic>", e.g. "01.count_params".
        prompt: the question as the lesson asks it.
        grade: the grading function.
        hint: shown on a wrong answer; it points at the idea, never at the value.
        starter: the unanswered value (``...`` and None always count as unanswered).
    """

    name: str
    prompt: str
    grade: Callable[[object], bool]
    hint: str = ""
    starter: object = ...


@dataclass(frozen=True)
class CheckResult:
    """What ``check`` returns: truthy when the answer passed. It prints its line when made, so
    in a notebook it displays nothing more."""

    question: str
    status: str
    message: str

    def __bool__(self) -> bool:
        return self.status == "pass"

    def _ipython_display_(self) -> None:  # the line was already printed
        return None


def question(name: str, prompt: str, *, hint: str = "", starter: object = ...):
    """Registers a grading function under ``name``; use as a decorator. Returns the function."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"question name must be a non-empty str, got {name!r}")

    def wrap(fn):
        QUESTIONS[name] = Question(name, prompt, fn, hint, starter)
        return fn

    return wrap


def questions(prefix: str = "") -> list[str]:
    """Returns the names of the registered questions that start with ``prefix``, sorted."""
    return sorted(n for n in QUESTIONS if n.startswith(prefix))


def prompt(name: str) -> str:
    """Returns the prompt of question ``name``."""
    if name not in QUESTIONS:
        raise ValueError(f"unknown question {name!r}; known: {', '.join(questions())}")
    return QUESTIONS[name].prompt


def check(question: str, answer) -> CheckResult:
    """Prints whether ``answer`` is right (or a hint, or "not answered yet"); never raises.

    Args:
        question: a registered name such as "01.count_params" (see ``questions()``).
        answer: the learner's value or function.

    Returns:
        a CheckResult, truthy when the answer passed.
    """
    try:
        result = _check(question, answer)
    except Exception as e:  # noqa: BLE001 - a checker bug must not stop the notebook either
        result = CheckResult(
            str(question),
            "fail",
            f"✗ {question}: could not be checked ({type(e).__name__}); please tell your instructor",
        )
    print(result.message)
    return result


def _check(name, answer) -> CheckResult:
    q = QUESTIONS.get(name) if isinstance(name, str) else None
    if q is None:
        close = difflib.get_close_matches(str(name), list(QUESTIONS), n=3)
        tip = f"did you mean: {', '.join(close)}" if close else f"known: {', '.join(questions())}"
        return CheckResult(str(name), "unknown", f"? unknown question {name!r}; {tip}")
    if answer is q.starter or answer is Ellipsis or answer is None:
        return _not_answered(q.name)
    try:
        passed = q.grade(answer)
        reason = ""
    except NotAnswered as e:
        return _not_answered(q.name, str(e))
    except Wrong as e:
        passed, reason = False, str(e)
    except Exception as e:  # noqa: BLE001 - the learner's code raised
        passed, reason = False, f"your answer raised {type(e).__name__}: {_short(e)}"
    if passed:
        return CheckResult(q.name, "pass", f"✓ {q.name}: correct")
    text = f"✗ {q.name}: not yet."
    if reason:
        text += f" {reason.rstrip('.')}."
    if q.hint:
        text += f" Hint: {q.hint}"
    return CheckResult(q.name, "fail", text)


def _not_answered(name: str, why: str = "") -> CheckResult:
    detail = f" ({why})" if why else " (replace the starter value with your answer)"
    return CheckResult(name, "not_answered", f"… {name}: not answered yet{detail}")


def _short(value, limit: int = 80) -> str:
    try:
        text = str(value)
    except Exception:  # noqa: BLE001
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- helpers for graders ----------------------------------------------------------------------


def _number(value, what: str = "your answer") -> float:
    """Returns ``value`` as a float (ints, floats, numpy and 0-d torch numbers); raises Wrong."""
    if isinstance(value, bool):
        raise Wrong(f"{what} is a bool ({value}); a number is expected")
    if torch.is_tensor(value):
        if value.numel() != 1:
            raise Wrong(f"{what} is a tensor of shape {tuple(value.shape)}; a single number is expected")
        value = value.item()
    try:
        return float(value)
    except (TypeError, ValueError):
        raise Wrong(f"{what} is of type {type(value).__name__}, not a number") from None


def _close(answer, expected: float, *, rel: float = 1e-6, what: str = "your answer") -> bool:
    got = _number(answer, what)
    if abs(got - expected) <= rel * max(1.0, abs(expected)):
        return True
    shown = int(got) if got.is_integer() else got
    raise Wrong(f"{what} {shown} is not it")


def _call(fn, *args, what: str):
    """Calls a learner's function; a stub (returns None or ..., or NotImplementedError) is
    "not answered yet"."""
    if not callable(fn):
        raise Wrong(f"a function is expected, got a value of type {type(fn).__name__}")
    try:
        out = fn(*args)
    except NotImplementedError:
        raise NotAnswered("your function raises NotImplementedError") from None
    if out is None or out is Ellipsis:
        raise NotAnswered("your function returns None: replace `...` with your code and `return` the result")
    return out


def _reference_models() -> list[tuple[str, nn.Module]]:
    """Small models the function exercises are graded on (weights do not matter)."""
    mnist = (1, 28, 28)
    return [
        ("seed_cnn on 28x28", models.build("seed_cnn", input_shape=mnist, seed=0)),
        (
            "seed_cnn on 8x8 with 5 classes",
            models.build("seed_cnn", input_shape=(1, 8, 8), num_classes=5, seed=0),
        ),
        ("lenet300", models.build("lenet300", input_shape=mnist, seed=0)),
        ("lenet5", models.build("lenet5", input_shape=mnist, seed=0)),
        ("mlp hidden=(32,)", models.build("mlp", input_shape=(64,), hidden=(32,), seed=0)),
        ("a Linear(20, 7, bias=False)", nn.Sequential(nn.Linear(20, 7, bias=False))),
    ]


MNIST = (1, 28, 28)


# ---- lesson 00: start here --------------------------------------------------------------------


@question(
    "00.fc_inputs",
    "How many numbers enter the seed CNN's dense layer for one 28x28 MNIST image?",
    hint="a 3x3 convolution without padding trims one pixel from every border; 2x2 "
    "max-pooling halves each side (rounding down); every one of the 32 channels "
    "is flattened.",
)
def _fc_inputs(answer) -> bool:
    model = models.build("seed_cnn", input_shape=MNIST, seed=0)
    return _close(answer, model.fc1.in_features)


@question(
    "00.fp16_ratio",
    "By what factor does fp16 shrink size_bytes (fp32 size_bytes / fp16 size_bytes)?",
    hint="read the size_bytes column of your measurement table and divide fp32 by fp16.",
)
def _fp16_ratio(answer) -> bool:
    from mcviz import quantize

    model = models.build("seed_cnn", input_shape=MNIST, seed=0)
    fp32, fp16 = measure.model(model), measure.model(quantize.fp16(model))
    return _close(answer, fp32.size_bytes / fp16.size_bytes, rel=1e-3)


@question(
    "00.int8_bytes",
    "How many bytes would the seed CNN's parameters take at 8 bits each (ignore scales)?",
    hint="8 bits is one byte; start from the parameter count or from the fp32 size_bytes.",
)
def _int8_bytes(answer) -> bool:
    params = measure.model(models.build("seed_cnn", input_shape=MNIST, seed=0)).params
    return _close(answer, params)


# ---- lesson 01: measuring a model -------------------------------------------------------------


@question(
    "01.count_params",
    "Write count_params(model) that returns the number of parameters of a model.",
    hint="count every element of every weight and every bias (a tensor's .numel() gives "
    "its element count); some layers have no bias.",
)
def _count_params(answer) -> bool:
    for name, model in _reference_models():
        got = _call(answer, model, what="count_params")
        expected = measure.model(model).params
        if _number(got, f"count_params({name})") != expected:
            raise Wrong(f"count_params gave {_short(got)} for {name}")
    return True


_CONVS = [
    ("Conv2d(1, 32, 3) on 28x28", nn.Conv2d(1, 32, 3), 28, 28),
    ("Conv2d(3, 16, 5, stride=2, padding=2) on 32x32", nn.Conv2d(3, 16, 5, stride=2, padding=2), 32, 32),
    ("Conv2d(8, 4, 3, padding=1, bias=False) on 7x9", nn.Conv2d(8, 4, 3, padding=1, bias=False), 7, 9),
    ("Conv2d(4, 6, (3, 1), stride=(1, 2)) on 10x11", nn.Conv2d(4, 6, (3, 1), stride=(1, 2)), 10, 11),
]


@question(
    "01.conv_macs",
    "Write conv_macs(conv, height, width): the MACs of one nn.Conv2d on one input image "
    "of height x width (bias not counted).",
    hint="MACs = (number of output values) x (inputs each output value reads). An output "
    "side is floor((size + 2*padding - kernel) / stride) + 1, per direction; "
    "conv.kernel_size, conv.stride and conv.padding are (height, width) pairs.",
)
def _conv_macs(answer) -> bool:
    for name, conv, h, w in _CONVS:
        got = _call(answer, conv, h, w, what="conv_macs")
        expected = measure.macs(nn.Sequential(conv), (conv.in_channels, h, w))
        if _number(got, f"conv_macs for {name}") != expected:
            raise Wrong(f"conv_macs gave {_short(got)} for {name}")
    return True


@question(
    "01.lenet300_macs",
    "How many MACs does LeNet-300-100 do for one 28x28 image?",
    hint="a Linear layer does in_features x out_features MACs per example; add up the "
    "layers (biases and ReLUs are not counted).",
)
def _lenet300_macs(answer) -> bool:
    model = models.build("lenet300", input_shape=MNIST, seed=0)
    return _close(answer, measure.macs(model, MNIST))


LATENCY_CHOICES = {
    "a": "fp32 timed in yesterday's session, fp16 timed today, compare the two medians",
    "b": "time both models in the same run, same batch size and threads, compare the ratio of their medians",
    "c": "compare the fastest single call of one model with the mean of the other",
}


@question(
    "01.fair_latency",
    "Which latency comparison is fair? Answer 'a', 'b' or 'c' (see LATENCY_CHOICES).",
    hint="noise differs between sessions and machines, and one statistic must be compared "
    "with the same statistic.",
)
def _fair_latency(answer) -> bool:
    if not isinstance(answer, str) or answer.strip().lower() not in LATENCY_CHOICES:
        raise Wrong(f"answer one of {', '.join(map(repr, LATENCY_CHOICES))}, got {_short(answer)}")
    return answer.strip().lower() == "b"


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
    "02.int8_ratio",
    "By what factor does 8-bit per-channel weight quantization (mcv.quantize.weights) shrink "
    "LeNet-300-100's size_bytes (fp32 size_bytes / int8 size_bytes)?",
    hint="measure both models with mcv.measure.model and divide. The ratio of the bit widths is "
    "not the answer: the biases stay fp32 and every channel stores a scale and a zero point.",
)
def _int8_ratio(answer) -> bool:
    from mcviz import quantize

    model = models.build("lenet300", input_shape=MNIST, seed=0)
    fp32, int8 = measure.model(model), measure.model(quantize.weights(model, 8, granularity="per_channel"))
    return _close(answer, fp32.size_bytes / int8.size_bytes, rel=1e-3)


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


_KMEANS_LAYERS = [
    ("Linear(784, 300) at 2 bits", lambda: nn.Linear(784, 300), 2),
    ("Linear(300, 100, bias=False) at 5 bits", lambda: nn.Linear(300, 100, bias=False), 5),
    ("Conv2d(1, 32, 3) at 4 bits", lambda: nn.Conv2d(1, 32, 3), 4),
    ("Conv2d(3, 5, 3, bias=False) at 3 bits", lambda: nn.Conv2d(3, 5, 3, bias=False), 3),
    ("Linear(10, 3) at 8 bits", lambda: nn.Linear(10, 3), 8),
]


@question(
    "03.kmeans_bytes",
    "Write kmeans_bytes(layer, bits): the size_bytes of one Linear or Conv2d layer after k-means "
    "weight sharing with 2**bits shared values.",
    hint="count every stored tensor: one bits-bit index per weight, packed (round the total up to "
    "whole bytes), the codebook of 2**bits float32 values (even if some go unused), and the "
    "float32 bias when the layer has one.",
)
def _kmeans_bytes(answer) -> bool:
    from mcviz import quantize

    torch_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)  # the layers' initial weights do not change the byte count
        cases = [(name, make(), bits) for name, make, bits in _KMEANS_LAYERS]
    finally:
        torch.random.set_rng_state(torch_state)  # grading leaves the learner's RNG alone
    for name, layer, bits in cases:
        got = _call(answer, layer, bits, what="kmeans_bytes")
        expected = measure.model(quantize.kmeans(nn.Sequential(layer), bits)).size_bytes
        if _number(got, f"kmeans_bytes for {name}") != expected:
            raise Wrong(f"kmeans_bytes gave {_short(got)} for {name}")
    return True


# ---- lesson 04: pruning ------------------------------------------------------------------------


def _prune_models() -> list[tuple[str, nn.Module, float]]:
    """(name, model, sparsity): the cases the global magnitude mask is graded on."""
    return [
        ("lenet300 at sparsity 0.9", models.build("lenet300", input_shape=MNIST, seed=0), 0.9),
        ("seed_cnn on 28x28 at sparsity 0.5", models.build("seed_cnn", input_shape=MNIST, seed=1), 0.5),
        ("lenet5 at sparsity 0.75", models.build("lenet5", input_shape=MNIST, seed=2), 0.75),
        ("mlp hidden=(32,) at 0.3", models.build("mlp", input_shape=(64,), hidden=(32,), seed=3), 0.3),
    ]


@question(
    "04.global_mask",
    "Write global_mask(model, sparsity) that returns {layer name: bool mask} pruning the "
    "smallest |w| ranked over ALL Linear/Conv2d weights together (True = kept), as "
    "mcv.prune.magnitude(model, sparsity, scope='global') does.",
    hint="collect |w| of every Linear/Conv2d weight (biases excluded) into one flat tensor; prune "
    "round(sparsity * total) of them, the smallest; cut the flat mask back into one piece per "
    "layer, shaped like its weight (torch.split and reshape help).",
)
def _global_mask(answer) -> bool:
    from mcviz import prune

    for name, model, sparsity in _prune_models():
        got = _call(answer, model, sparsity, what="global_mask")
        layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
        if not isinstance(got, dict) or set(got) != set(layers):
            keys = sorted(got) if isinstance(got, dict) else type(got).__name__
            raise Wrong(f"global_mask must return a dict keyed by layer name: {sorted(layers)}, got {keys}")
        kept, pruned, n_pruned = [], [], 0
        for n, layer in layers.items():
            mask = got[n]
            if not torch.is_tensor(mask) or mask.dtype != torch.bool or mask.shape != layer.weight.shape:
                raise Wrong(f"the mask of {n} must be a bool tensor shaped like its weight, for {name}")
            w = layer.weight.detach().abs()
            kept.append(w[mask])
            pruned.append(w[~mask])
            n_pruned += int((~mask).sum())
        reference = prune.magnitude(model, sparsity, scope="global")
        expected = sum(int((~m.mask).sum()) for m in reference.modules() if hasattr(m, "mask"))
        if n_pruned != expected:
            raise Wrong(f"global_mask prunes {n_pruned} weights for {name}, not the right count")
        largest_pruned, smallest_kept = torch.cat(pruned).max(), torch.cat(kept).min()
        if n_pruned and largest_pruned > smallest_kept:
            raise Wrong(f"a pruned weight is larger than a kept one for {name}: rank all layers together")
    return True


def _reference_scans() -> list[tuple[str, object, float]]:
    """(name, scan, budget_sparsity): synthetic sensitivity scans the allocation is graded on."""
    import pandas as pd

    def scan(layers: dict[str, tuple[int, list[float]]], grid=(0.5, 0.7, 0.9)) -> pd.DataFrame:
        rows = [
            (n, s, 0.9 - d, d, weights)
            for n, (weights, drops) in layers.items()
            for s, d in zip(grid, drops, strict=True)
        ]
        return pd.DataFrame(rows, columns=["layer", "sparsity", "accuracy", "drop", "weights"])

    lenet = {"fc1": (235200, [0.0, 0.004, 0.03]), "fc2": (30000, [0.002, 0.01, 0.05]),
             "fc3": (1000, [0.01, 0.05, 0.3])}  # fmt: skip
    cnn = {"conv1": (288, [0.05, 0.2, 0.5]), "conv2": (18432, [0.01, 0.03, 0.12]),
           "fc1": (46080, [0.002, 0.006, 0.04]), "fc2": (1280, [0.02, 0.06, 0.2])}  # fmt: skip
    flat = {"a": (100, [0.01, 0.02, 0.03]), "b": (300, [0.02, 0.03, 0.5])}
    return [
        ("a LeNet-300-100-like scan, budget 0.8", scan(lenet), 0.8),
        ("a LeNet-300-100-like scan, budget 0.88", scan(lenet), 0.88),
        ("a CNN-like scan, budget 0.6", scan(cnn), 0.6),
        ("a two-layer scan, budget 0.5", scan(flat), 0.5),
    ]


@question(
    "04.allocate",
    "Write choose_sparsities(scan, budget_sparsity): from a sensitivity scan, return "
    "{layer: sparsity} whose overall sparsity reaches budget_sparsity with the least summed drop.",
    hint="each layer takes one of the scan's sparsities or 0.0; a layer at sparsity s has "
    "round(s * weights) zeros; the overall sparsity is total zeros / total weights. With a few "
    "layers and a few sparsities you can try every combination (itertools.product).",
)
def _allocate(answer) -> bool:
    from mcviz import prune

    for name, scan, budget in _reference_scans():
        got = _call(answer, scan.copy(), budget, what="choose_sparsities")
        layers = list(dict.fromkeys(scan["layer"]))
        if not isinstance(got, dict) or set(got) != set(layers):
            keys = sorted(got) if isinstance(got, dict) else type(got).__name__
            raise Wrong(f"choose_sparsities must return a dict keyed by every layer {layers}, got {keys}")
        zeros = drop = 0.0
        for layer in layers:
            rows = scan[scan["layer"] == layer]
            s = _number(got[layer], f"the sparsity of {layer}")
            if s != 0.0 and not (rows["sparsity"] == s).any():
                raise Wrong(f"{layer} gets sparsity {s}, which the scan did not measure, for {name}")
            weights = int(rows["weights"].iloc[0])
            zeros += round(s * weights)
            drop += float(rows.loc[rows["sparsity"] == s, "drop"].iloc[0]) if s else 0.0
        total = int(scan.drop_duplicates("layer")["weights"].sum())
        if zeros < budget * total - 1e-9:
            raise Wrong(f"your choice reaches sparsity {zeros / total:.4f}, under the budget, for {name}")
        best = prune.allocate(scan, budget_sparsity=budget)
        best_drop = sum(
            float(scan.loc[(scan["layer"] == n) & (scan["sparsity"] == s), "drop"].iloc[0])
            for n, s in best.items()
            if s
        )
        if drop > best_drop + 1e-9:
            raise Wrong(f"another choice meets the budget with a smaller summed drop, for {name}")
    return True


# ---- lesson 05: pruning, advanced --------------------------------------------------------------

_SCHEDULES = [  # (final_sparsity, begin_step, end_step): each graded on steps around and inside
    (0.8, 0, 10),
    (0.9, 5, 25),
    (0.5, 2, 3),
    (0.975, 100, 1100),
]


@question(
    "05.zhu_gupta",
    "Write schedule(step, final_sparsity, begin_step, end_step): the sparsity of the Zhu & Gupta "
    "cubic schedule (initial sparsity 0) at step, as mcv.prune.zhu_gupta gives it.",
    hint="before begin_step nothing is pruned and from end_step on the final sparsity holds; in "
    "between, the progress p = (step - begin) / (end - begin) runs from 0 to 1 and the sparsity "
    "still missing shrinks like the cube of (1 - p).",
)
def _zhu_gupta(answer) -> bool:
    from mcviz import prune

    for final, begin, end in _SCHEDULES:
        steps = sorted({0, max(begin - 1, 0), begin, begin + 1, (begin + end) // 2, end - 1, end, end + 7})
        for step in steps:
            got = _call(answer, step, final, begin, end, what="schedule")
            expected = prune.zhu_gupta(step, final_sparsity=final, begin_step=begin, end_step=end)
            if abs(_number(got, "schedule") - expected) > 1e-9:
                raise Wrong(f"schedule gave {_short(got)} at step {step} of a schedule from {begin} to {end}")
    return True


def _channel_models() -> list[tuple[str, nn.Module, tuple[int, int, int], int]]:
    """(name, model, input_shape, k): seed CNNs whose conv1 loses k filters."""
    return [
        ("seed_cnn on 28x28 losing 8 filters", models.build("seed_cnn", input_shape=MNIST, seed=0), MNIST, 8),
        (
            "seed_cnn on 8x8 with 5 classes losing 3 filters",
            models.build("seed_cnn", input_shape=(1, 8, 8), num_classes=5, seed=0),
            (1, 8, 8),
            3,
        ),
        ("seed_cnn on 15x15 losing 31 filters", models.build("seed_cnn", input_shape=(1, 15, 15), seed=1),
         (1, 15, 15), 31),  # fmt: skip
        ("seed_cnn on 28x28 losing no filter", models.build("seed_cnn", input_shape=MNIST, seed=2), MNIST, 0),
    ]


@question(
    "05.pruned_macs",
    "Write pruned_macs(model, input_shape, k): the MACs of a seed CNN (conv1, relu, 2x2 max-pool, "
    "flatten, fc1) for one example after its conv1 loses k filters and fc1 the inputs they fed.",
    hint="each removed filter takes away its own output map (every position reads in_channels x "
    "kernel inputs) and, after pooling and flattening, a block of fc1's input columns, each used "
    "by every output class. Pooling and ReLU are not counted.",
)
def _pruned_macs(answer) -> bool:
    from mcviz import prune

    for name, model, shape, k in _channel_models():
        got = _call(answer, model, shape, k, what="pruned_macs")
        n = model.conv1.out_channels
        smaller = prune.channels(model, {"conv1": k / n})
        if _number(got, f"pruned_macs for {name}") != measure.macs(smaller, shape):
            raise Wrong(f"pruned_macs gave {_short(got)} for {name}")
    return True
