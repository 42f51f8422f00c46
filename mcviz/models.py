"""Reference networks by name: LeNet-300-100, LeNet-5, the seed article's CNN, MLP students.

Layers are named (``conv1``, ``fc1``...) so per-layer tables and figures read well. Every library
function also accepts a user's own ``nn.Module`` built from Linear and Conv2d layers.
"""

from __future__ import annotations

import numbers
import operator
from collections import OrderedDict
from collections.abc import Sequence
from math import prod

import torch
from torch import nn

from mcviz._checks import BOUNDS, check_int, check_list, check_option, check_seed, shorten

NAMES = ("seed_cnn", "lenet300", "lenet5", "mlp", "small_cnn")
# A model larger than this is a typo (a width of 40960), not a lesson: 50M float32 parameters are
# 200 MB, and Adam keeps two more copies while training. LeNet-5 has 431K.
MAX_PARAMS = 50_000_000
MAX_HIDDEN_LAYERS = 16


def build(
    name: str, *, input_shape: Sequence[int], num_classes: int = 10, seed: int | None = None, **options
) -> nn.Module:
    """Returns a freshly initialized network; the global RNG is left untouched when ``seed`` is given.

    Args:
        name: "seed_cnn" (conv 32@3x3 + ReLU -> max-pool 2 -> flatten -> linear), "lenet300"
            (LeNet-300-100), "lenet5" (Caffe LeNet-5 as in Deep Compression, 431K weights; needs
            inputs of at least 28x28), "mlp" (hidden widths via ``hidden=(300, 100)``), or
            "small_cnn" (a distillation student: padded conv 3x3 -> max-pool 2 -> ReLU twice,
            then linear; ``width=8`` filters in the first conv and twice that in the second;
            9,098 params on 28x28 digits, 47x fewer than LeNet-5; needs inputs of at least 4x4).
        input_shape: shape of one example, e.g. ``data.input_shape``.
        num_classes: number of outputs.
        seed: initialize with this seed (without touching global RNG state); None draws from the
            global generator, which ``mcv.seed`` controls.
        options: "mlp" takes ``hidden`` (at most 16 layers of 1 to 4,096 units), "small_cnn" takes
            ``width`` (1 to 4,096); the others take none.

    The model records ``model.input_shape`` so that MACs can be counted without data.

    Raises:
        TypeError, ValueError: a bad argument, or a model of more than :data:`MAX_PARAMS`
            parameters; nothing is allocated then.
    """
    check_name(name)
    shape = _check_shape(input_shape)
    num_classes = check_int(num_classes, "num_classes")
    allowed = {"mlp": {"hidden"}, "small_cnn": {"width"}}.get(name, set())
    unknown = sorted(set(options) - allowed)
    if unknown:
        allowed_text = ", ".join(sorted(allowed)) or "none"
        raise ValueError(f"model {name!r} got unknown option {shorten(unknown[0])}; allowed: {allowed_text}")
    if seed is not None:
        seed = check_seed(seed)
    if "hidden" in options:
        options["hidden"] = _check_hidden(options["hidden"])
    if "width" in options:
        options["width"] = check_option("width", options["width"])
    maker = {
        "seed_cnn": _seed_cnn,
        "lenet300": _lenet300,
        "lenet5": _lenet5,
        "mlp": _mlp,
        "small_cnn": _small_cnn,
    }[name]
    with torch.random.fork_rng(devices=[]), torch.device("meta"):  # counts: allocates and draws nothing
        params = sum(p.numel() for p in maker(shape, num_classes, **options).parameters())
    if params > MAX_PARAMS:
        given = ", ".join(f"{k}={shorten(v, 40)}" for k, v in options.items())
        raise ValueError(
            f"model {name!r} with input_shape {shape}{', ' + given if given else ''} would have "
            f"{params:,} parameters; at most {MAX_PARAMS:,} are allowed (models.MAX_PARAMS)"
        )
    if seed is None:
        model = maker(shape, num_classes, **options)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = maker(shape, num_classes, **options)
    model.input_shape = shape
    return model


def check_name(name, what: str = "model") -> str:
    """Returns ``name`` if it is one of :data:`NAMES`; raises TypeError (not a str) or ValueError
    ("unknown model 'vgg'; choose one of ...") naming ``what`` it is."""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be one of {', '.join(NAMES)}, got {shorten(name)}")
    if name not in NAMES:
        raise ValueError(f"unknown {what} {shorten(name)}; choose one of {', '.join(NAMES)}")
    return name


def _check_shape(input_shape) -> tuple[int, ...]:
    try:
        if isinstance(input_shape, (str, bytes)) or any(isinstance(s, bool) for s in input_shape):
            raise TypeError
        shape = tuple(operator.index(s) for s in input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a tuple of positive ints, got {shorten(input_shape)}") from None
    if not shape or min(shape) < 1 or len(shape) not in (1, 3):
        raise ValueError(
            f"input_shape must be (C, H, W) or (D,) with positive sizes, got {shorten(input_shape)}"
        )
    return shape


def _image(shape, name) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(f"model {name!r} needs image input (C, H, W), got input_shape {shape}")
    return shape


def _seed_cnn(shape, k):
    c, h, w = _image(shape, "seed_cnn")
    if h < 4 or w < 4:
        raise ValueError(f"model 'seed_cnn' needs inputs of at least 4x4, got {h}x{w}")
    flat = 32 * ((h - 2) // 2) * ((w - 2) // 2)
    return nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(c, 32, 3)),
                ("relu1", nn.ReLU()),
                ("pool1", nn.MaxPool2d(2)),
                ("flatten", nn.Flatten()),
                ("fc1", nn.Linear(flat, k)),
            ]
        )
    )


def _lenet5(shape, k):
    c, h, w = _image(shape, "lenet5")
    if h < 28 or w < 28:
        raise ValueError(
            f"model 'lenet5' needs inputs of at least 28x28, got {h}x{w}; "
            "use 'seed_cnn' or 'mlp' for smaller images"
        )
    h2, w2 = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
    # Caffe's LeNet-5 (the one Deep Compression prunes): ReLU only after ip1.
    return nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(c, 20, 5)),
                ("pool1", nn.MaxPool2d(2)),
                ("conv2", nn.Conv2d(20, 50, 5)),
                ("pool2", nn.MaxPool2d(2)),
                ("flatten", nn.Flatten()),
                ("fc1", nn.Linear(50 * h2 * w2, 500)),
                ("relu1", nn.ReLU()),
                ("fc2", nn.Linear(500, k)),
            ]
        )
    )


def _lenet300(shape, k):
    return _mlp(shape, k, hidden=(300, 100))


def _check_hidden(hidden) -> tuple[int, ...]:
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
        hidden = (hidden,)
    what = "hidden sizes (ints in [1, 4096])"
    hidden = tuple(check_list(hidden, "hidden", lambda h, n: check_int(h, n, bounds=BOUNDS["width"]),
                              what=what, empty=True))  # fmt: skip
    if len(hidden) > MAX_HIDDEN_LAYERS:
        raise ValueError(f"hidden must hold at most {MAX_HIDDEN_LAYERS} sizes, got {len(hidden)}")
    return hidden


def _mlp(shape, k, hidden=(300, 100)):
    layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    width = prod(shape)
    for i, h in enumerate(hidden, start=1):
        layers += [(f"fc{i}", nn.Linear(width, h)), (f"relu{i}", nn.ReLU())]
        width = h
    layers.append((f"fc{len(hidden) + 1}", nn.Linear(width, k)))
    return nn.Sequential(OrderedDict(layers))


def _small_cnn(shape, k, width=8):
    c, h, w = _image(shape, "small_cnn")
    if h < 4 or w < 4:
        raise ValueError(f"model 'small_cnn' needs inputs of at least 4x4, got {h}x{w}")
    h2, w2 = h // 2 // 2, w // 2 // 2
    return nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(c, width, 3, padding=1)),
                ("pool1", nn.MaxPool2d(2)),
                ("relu1", nn.ReLU()),
                ("conv2", nn.Conv2d(width, 2 * width, 3, padding=1)),
                ("pool2", nn.MaxPool2d(2)),
                ("relu2", nn.ReLU()),
                ("flatten", nn.Flatten()),
                ("fc1", nn.Linear(2 * width * h2 * w2, k)),
            ]
        )
    )
