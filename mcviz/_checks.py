"""Argument checks in one place, in the manner of scikit-learn's ``check_scalar``.

Every public function of mcviz validates its arguments at the boundary with these, so the same
kind of value gets the same rule and the same words everywhere:

- a value of the wrong TYPE raises ``TypeError``; a value of the right type but outside what is
  allowed raises ``ValueError``;
- the message is one line, ``"<name> must be <what is allowed>, got <value>"``, with the value
  shortened (:func:`shorten`) so that a huge value never floods a terminal;
- bools are never numbers (``True`` is not an epoch count), NaN and infinities are never numbers
  in a range, and numpy scalars are accepted where Python numbers are.

:data:`BOUNDS` holds the range of every option that methods, report parameters and widgets share
(epochs, bits, seeds...), so a config, a function and a slider cannot drift apart;
:data:`METHOD_BOUNDS` the ranges one method gives an option of its own (:func:`option_bounds`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

import numpy as np

# The largest seed every consumer accepts: numpy's RandomState (scikit-learn's splits) takes
# [0, 2**32 - 1]; torch takes more, so the tighter bound is the one to check.
SEED_MAX = 2**32 - 1


class Range:
    """An interval for a number: ``low``/``high`` (None: unbounded), each closed or open."""

    __slots__ = ("low", "high", "low_open", "high_open")

    def __init__(self, low=None, high=None, *, low_open: bool = False, high_open: bool = False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def __contains__(self, x) -> bool:
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return False
        return not (self.high is not None and (x > self.high or (self.high_open and x == self.high)))

    def text(self) -> str:
        """Returns the interval as words: "in [1, 200]", ">= 0", "> 0"."""
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            lb, hb = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {lb}{_num(lo)}, {_num(hi)}{hb}"
        if lo is not None:
            return f"{'>' if self.low_open else '>='} {_num(lo)}"
        if hi is not None:
            return f"{'<' if self.high_open else '<='} {_num(hi)}"
        return ""


# Shared bounds of options that appear in several places (functions, configs, report parameters,
# widgets). A value outside them is refused before any work starts.
BOUNDS: dict[str, Range] = {
    "seed": Range(0, SEED_MAX),
    "epochs": Range(1, 200),
    "fine_tune_epochs": Range(0, 200),
    "batch_size": Range(1, 4096),
    "lr": Range(0, 10, low_open=True),
    "bits": Range(2, 8),
    "calibration_batches": Range(1, 1000),
    "width": Range(1, 4096),
    "temperature": Range(0, 100, low_open=True),
    "alpha": Range(0.0, 1.0),
    "threads": Range(1, 256),
    "repeats": Range(3, 10_000),
    "warmup": Range(0, 10_000),
}


def shorten(value, limit: int = 80) -> str:
    """Returns ``repr(value)`` cut to ``limit`` characters (with its full length said), on one line."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}... ({len(text):,} characters)"


PATH_LIMIT = 4200  # a path is never cut short: PATH_MAX (4096) plus its quotes and escapes


def check_int(value, name: str, *, bounds: Range | None = None, low=None, high=None) -> int:
    """Returns ``value`` as an int if it is an integer (numpy ints too, never a bool) within the bounds.

    ``bounds`` defaults to ``BOUNDS[name]`` when the name has shared bounds, else ``[low, high]``.

    Raises:
        TypeError: not an integer. ValueError: outside the bounds.
    """
    rng = _range(name, bounds, low, high)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int{_with(rng)}, got {shorten(value)}")
    if int(value) not in rng:
        raise ValueError(f"{name} must be an int{_with(rng)}, got {shorten(value)}")
    return int(value)


def check_number(value, name: str, *, bounds: Range | None = None, low=None, high=None,
                 low_open: bool = False, high_open: bool = False) -> float:  # fmt: skip
    """Returns ``value`` as a float if it is a finite real number (ints accepted, bools not) within
    the bounds (``BOUNDS[name]`` when the name has shared bounds).

    Raises:
        TypeError: not a real number. ValueError: NaN, infinite, or outside the bounds.
    """
    rng = _range(name, bounds, low, high, low_open, high_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number{_with(rng)}, got {shorten(value)}")
    x = float(value)
    if not math.isfinite(x) or x not in rng:
        raise ValueError(f"{name} must be a finite number{_with(rng)}, got {shorten(value)}")
    return x


def check_bool(value, name: str) -> bool:
    """Returns ``value`` if it is True or False (numpy bools too).

    Raises:
        TypeError: anything else (1, "yes", None).
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {shorten(value)}")


def check_choice(value, name: str, choices: Iterable[str]) -> str:
    """Returns ``value`` if it is one of ``choices`` (strings).

    Raises:
        TypeError: not a str. ValueError: not one of the choices.
    """
    choices = tuple(choices)
    allowed = ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {allowed}, got {shorten(value)}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {allowed}, got {shorten(value)}")
    return value


def check_seed(value, name: str = "seed") -> int:
    """Returns ``value`` if it is an int in [0, 2**32 - 1] (what numpy, scikit-learn and torch all take).

    Raises:
        TypeError: not an int. ValueError: negative or too large.
    """
    return check_int(value, name, bounds=BOUNDS["seed"])


def option_bounds(name: str, method: str | None = None) -> Range:
    """Returns the range of option ``name`` of ``method``: the method's own (``METHOD_BOUNDS``)
    when it has one, else the shared one (``BOUNDS``); KeyError when there is neither."""
    own = METHOD_BOUNDS.get(method, {})
    return own[name] if name in own else BOUNDS[name]


def check_option(name: str, value, method: str | None = None):
    """Returns ``value`` checked against the bounds of option ``name`` (:func:`option_bounds`): an
    int for integer options, a float for the others (lr, temperature, alpha)."""
    rng = option_bounds(name, method)
    integer = isinstance(rng.low, int) and isinstance(rng.high, int) and not rng.low_open
    return check_int(value, name, bounds=rng) if integer else check_number(value, name, bounds=rng)


def _range(name, bounds, low, high, low_open=False, high_open=False) -> Range:
    if bounds is not None:
        return bounds
    if low is None and high is None and name in BOUNDS:
        return BOUNDS[name]
    return Range(low, high, low_open=low_open, high_open=high_open)


def _with(rng: Range) -> str:
    text = rng.text()
    return f" {text}" if text else ""


def _num(x) -> str:
    if isinstance(x, int) and abs(x) >= 10**6:
        return f"{x:,}"
    return str(int(x)) if float(x).is_integer() else repr(x)


# float16 is what the fp16 method stores; float64 (and bfloat16) models are refused, not converted
MODEL_DTYPES = ("float32", "float16")


def check_model(value, name: str = "model", *, dtypes=MODEL_DTYPES):
    """Returns ``value`` if it is a ``torch.nn.Module`` whose floating-point parameters and buffers
    are real tensors on the CPU, of a dtype in ``dtypes`` (float32 or float16 by default).

    Raises:
        TypeError: not a module. ValueError: a tensor on the meta device (no data: load real
            weights first), on another device, or of another dtype (float64: ``model.float()``).
    """
    import torch
    from torch import nn

    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(value).__name__}")
    tensors = list(value.named_parameters()) + list(value.named_buffers())
    for tname, t in tensors:
        if not isinstance(t, torch.Tensor):
            continue
        if t.device.type == "meta":
            raise ValueError(
                f"{name} has tensors on the meta device, which hold no values ({tname!r}); "
                "build or load it with real weights first"
            )
        if t.device.type != "cpu":
            raise ValueError(f"{name} must be on the CPU, got {tname!r} on {t.device}; use .cpu()")
        if t.is_floating_point() and str(t.dtype).removeprefix("torch.") not in dtypes:
            allowed = " or ".join(dtypes)
            raise ValueError(
                f"{name} must hold {allowed} tensors, got {tname!r} as {t.dtype}; "
                "convert it with model.float()"
            )
    return value


# ---- V3 (reports, CLI): shared by the report helpers and, after the merge, plots/tradeoff/explorers


def check_frame(value, name: str, columns: Iterable[str] = ()):
    """Returns ``value`` if it is a pandas DataFrame holding every column in ``columns``.

    Raises:
        TypeError: not a DataFrame. ValueError: a column is missing (the message lists the columns).
    """
    import pandas as pd

    if not isinstance(value, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(value).__name__}")
    have = [str(c) for c in value.columns]
    for column in columns:
        if column not in have:
            raise ValueError(f"{name} needs a column {shorten(column)}; its columns: {shorten(have, 200)}")
    return value


# ---------------------------------------------------------------- V2: techniques and widgets
# Bounds of the options of the pruning and quantization methods and of the explorers' controls,
# and the checks of values they share (sparsities, DataBundles, seeds derived from a seed).

BOUNDS.update({
    "sparsity": Range(0.0, 1.0),  # the fraction of zero weights
    "rounds": Range(1, 100),  # prune / retrain rounds (iterative pruning, lottery tickets)
    "rate": Range(0, 1, low_open=True, high_open=True),  # the fraction pruned per round
    "num_classes": Range(2, 1000),  # outputs of a model the explorers build
    # one example's number of values (C * H * W) that explorers build and run models for
    "input_size": Range(1, 2**18),
    # input values of one timed batch (batch size x input size): 64 MB of float32
    "batch_values": Range(1, 2**24),
})  # fmt: skip


# ---- V1 (core: data, models, train, measure, engine, tradeoff): the bounds of the options they add
BOUNDS.update(
    {
        # classes of a data set (and outputs of a model): at least two; 1,000 is ImageNet's count
        "num_classes": Range(2, 1000),
        "labels": Range(0, 1, low_open=True),  # the fraction of training labels a student sees (kd)
        "jitter": Range(0, 8),  # pixels a kd training image is shifted by
    }
)


# ---- the language-model methods (groupwise, GPTQ, AWQ, SmoothQuant, low-rank, N:M, layer dropping)
BOUNDS.update({
    "group_size": Range(0, 1_000_000),  # input columns per group; 0: one group per row
    "samples": Range(1, 1_000_000),  # calibration inputs (GPTQ, AWQ, SmoothQuant)
    "damp": Range(0, 1, low_open=True),  # GPTQ's dampening: a fraction of the Hessian's mean diagonal
    "grid": Range(1, 1000),  # AWQ's alphas tried per layer
})  # fmt: skip

# the distillation that repairs a low-rank or layer-dropped model: 0 epochs is none, 0 samples all
DISTILL = {"epochs": Range(0, 200), "samples": Range(0, 10_000_000)}
# method -> {option: range}: the options of one method whose range is its own, because the shared
# one differs (DISTILL) or because the name means something else elsewhere (a report's fraction is
# a cost limit, not a share of parameters), so it must not be a shared bound (``_params`` tightens
# report parameters named like a shared bound to it)
METHOD_BOUNDS: dict[str, dict[str, Range]] = {
    # one rule for the ranks; 0 (a config's default; a function's None too): not this rule
    "lowrank": {
        "rank": Range(0, 1_000_000),
        "energy": Range(0.0, 1.0),  # the fraction of the squared singular values kept
        "fraction": Range(0.0, 1.0, high_open=True),  # the fraction of each layer's parameters kept
        **DISTILL,
    },
    "semistructured": {"n": Range(1, 31), "m": Range(2, 32)},  # keep n (< m) of every m weights
    # keep: the blocks a dropped transformer keeps; hint_weight: of matching their outputs (0: none)
    "layerdrop": {"keep": Range(1, 10_000), "hint_weight": Range(0.0, 1000.0), **DISTILL},
}


def check_sparsity(value, name: str = "sparsity", *, bounds: Range | None = None) -> float:
    """Returns ``value`` as a float if it is a float (numpy floats too) in ``bounds`` (default
    ``BOUNDS["sparsity"]``, [0, 1]).

    An int, even 0 or 1, is refused: ``torch.nn.utils.prune`` reads ``amount=1`` as one weight,
    mcviz never reads a sparsity as a count.

    Raises:
        TypeError: not a float. ValueError: NaN, infinite or outside the bounds.
    """
    rng = bounds if bounds is not None else BOUNDS["sparsity"]
    if isinstance(value, bool) or not isinstance(value, (float, np.floating)):
        count = isinstance(value, numbers.Integral)
        hint = " (write 0.0 or 1.0: an int is never read as a count)" if count else ""
        raise TypeError(f"{name} must be a float{_with(rng)}, got {shorten(value)}{hint}")
    if not math.isfinite(value) or float(value) not in rng:
        raise ValueError(f"{name} must be a float{_with(rng)}, got {shorten(value)}")
    return float(value)


def check_data(value, name: str = "data"):
    """Returns ``value`` if it is a ``mcviz.data.DataBundle``.

    Raises:
        TypeError: anything else (None, a DataLoader, a tuple of tensors).
    """
    import sys

    # looked up, not imported: mcviz.data imports this module (a value can only be a DataBundle
    # once mcviz.data is loaded)
    data_module = sys.modules.get("mcviz.data")
    if data_module is None or not isinstance(value, data_module.DataBundle):
        raise TypeError(
            f"{name} must be a DataBundle from mcv.data.load or mcv.data.from_arrays, "
            f"got {type(value).__name__}"
        )
    return value


def check_shape(value, name: str = "input_shape") -> tuple[int, ...]:
    """Returns ``value`` as a tuple of 1 to 3 ints >= 1 (one example's shape: ``(1, 28, 28)``,
    ``(64,)``, ``(1, 64)`` for a Conv1d) whose product is within ``BOUNDS["input_size"]``.

    Raises:
        TypeError: not a tuple or list of ints. ValueError: not 1 to 3 sizes, a size < 1, or too
            many values in all.
    """
    wanted = f"{name} must be a tuple of 1 to 3 ints such as (1, 28, 28), got {shorten(value)}"
    if not isinstance(value, (tuple, list)):
        raise TypeError(wanted)
    if not 1 <= len(value) <= 3:
        raise ValueError(wanted)
    if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in value):
        raise TypeError(wanted)
    shape = tuple(int(s) for s in value)
    if min(shape) < 1:
        raise ValueError(f"{name} must have sizes >= 1, got {shorten(value)}")
    size, rng = math.prod(shape), BOUNDS["input_size"]
    if size not in rng:
        raise ValueError(
            f"{name} must hold at most {rng.high:,} values per example (C * H * W), got {shorten(value)}: "
            f"{size:,}"
        )
    return shape


def check_sequence(value, name: str, *, most: int, items: str) -> list:
    """Returns ``value`` as a list if it is a sequence (list, tuple, range; not a str) of 1 to
    ``most`` items (``items`` says what they are, e.g. "floats in [0, 1]"; the caller checks each).

    Raises:
        TypeError: not a sequence (a str, a number, a set). ValueError: empty or too long.
    """
    wanted = f"{name} must be a list of 1 to {most:,} {items}"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{wanted}, got {shorten(value)}")
    if not 1 <= len(value) <= most:
        raise ValueError(f"{wanted}, got {shorten(value)}")
    return list(value)


def offset_seed(seed: int, offset: int) -> int:
    """Returns ``seed + offset`` wrapped into [0, 2**32 - 1], so a seed derived from a valid seed
    (round k trains with seed + k) is valid too; below the top of the range it is just the sum."""
    return (seed + offset) % (SEED_MAX + 1)


def check_list(value, name: str, item=None, *, what: str = "values", empty: bool = False) -> list:
    """Returns ``value`` as a list if it is a list, tuple, range or 1-D array (never a str) whose
    every item passes ``item(v, f"{name}[{i}]")`` (a check of this module, or None).

    ``what`` describes the items in messages ("numbers in [0, 1]"); ``empty`` allows no items.

    Raises:
        TypeError: not a list, or an item of the wrong type. ValueError: empty, or a bad item.
    """
    ok = isinstance(value, (list, tuple, range)) or (isinstance(value, np.ndarray) and value.ndim == 1)
    if not ok:
        raise TypeError(f"{name} must be a list of {what}, got {shorten(value)}")
    items = list(value)
    if not items and not empty:
        raise ValueError(f"{name} must be a non-empty list of {what}, got {shorten(value)}")
    if item is not None:
        items = [item(v, f"{name}[{i}]") for i, v in enumerate(items)]
    return items
