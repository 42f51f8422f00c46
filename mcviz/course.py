"""What the graded assignments under ``course/`` need: the budget gate's data, baseline and verdict,
and ``forbid``, which makes library functions unusable while a hidden test runs.

The budget gate is graded on a held-out part of scikit-learn's digits that the student's data,
``gate_data()``, never contains: ``HELDOUT`` images chosen (stratified) by ``HELDOUT_SEED`` are
cut out before the rest is split into train / val / test. Only the graders call
``heldout_data()``. (The digits ship with scikit-learn, so a student who goes looking can find
every image; the instructor guide says so.)

Thresholds are not kept here: each assignment states them in a locked cell that nbgrader restores
from the instructor's source when it autogrades, so the instructor edits them in one place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from mcviz import _layers, measure, train
from mcviz import data as _data
from mcviz._checks import check_choice, check_number

HELDOUT = 300
HELDOUT_SEED = 1305
GATE_MODEL = "mlp"
GATE_EPOCHS = 10


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns the digits images, labels and the sorted indices of the held-out part."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X = d.images.astype(np.float32) / 16.0
    _, held = train_test_split(
        np.arange(len(d.target)), test_size=HELDOUT, random_state=HELDOUT_SEED, stratify=d.target
    )
    return X, d.target, np.sort(held)


def gate_data() -> _data.DataBundle:
    """Returns the digits without the held-out images, split into train / val / test (split_seed 0).

    This is all the data a student's notebook loads for the budget gate.
    """
    X, y, held = _digits()
    rest = np.setdiff1d(np.arange(len(y)), held)
    return _data.from_arrays(X[rest], y[rest], name="digits-course", split_seed=0, scale=None)


def heldout_data() -> _data.DataBundle:
    """Returns a DataBundle whose test split is the ``HELDOUT`` images ``gate_data()`` never holds.

    Its train and val splits are ``gate_data()``'s, so ``mcv.measure.model(m, heldout_data())``
    measures accuracy on the held-out images. For graders; a student's notebook never calls it.
    """
    X, y, held = _digits()
    student = gate_data()
    images = torch.from_numpy(np.ascontiguousarray(X[held][:, None]))
    labels = torch.from_numpy(y[held].astype(np.int64))
    return dataclasses.replace(
        student,
        name="digits-heldout",
        test=TensorDataset(images, labels),
        fingerprint=f"{student.fingerprint}|heldout-{HELDOUT_SEED}-{HELDOUT}",
    )


def gate_baseline(*, progress: bool = False) -> nn.Module:
    """Returns the budget gate's trained baseline (an MLP 64-300-100-10 on ``gate_data()``, cached)."""
    return train.baseline(GATE_MODEL, gate_data(), epochs=GATE_EPOCHS, seed=0, lr=1e-3, progress=progress)


def layer_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Returns ``{layer name: bool tensor, True = kept}`` for every Linear / Conv2d layer; ``model``
    is unchanged. A pruned layer's mask, or where a plain layer's weight is not zero."""
    masks = {}
    for name, layer in model.named_modules():
        if isinstance(layer, _layers.KINDS):
            kept = _layers.mask(layer)
            masks[name] = kept if kept is not None else _layers.weight(layer).detach() != 0
    return masks


@dataclasses.dataclass(frozen=True)
class GateResult:
    """The budget gate's verdict on one model, from measurements on one split.

    Attributes:
        split: "val" (the student's preview) or "heldout" (the grade).
        size_bytes, baseline_bytes: stored bytes (``mcv.measure``'s ``size_bytes``).
        fraction: ``size_bytes / baseline_bytes``.
        accuracy, baseline_accuracy: in [0, 1], on ``split``.
        drop_points: ``100 * (baseline_accuracy - accuracy)``.
        max_fraction, max_drop_points: the thresholds applied.
        size_ok, accuracy_ok: each threshold met.
    """

    split: str
    size_bytes: int
    baseline_bytes: int
    fraction: float
    accuracy: float
    baseline_accuracy: float
    drop_points: float
    max_fraction: float
    max_drop_points: float
    size_ok: bool
    accuracy_ok: bool

    @property
    def passed(self) -> bool:
        """True when both thresholds are met."""
        return self.size_ok and self.accuracy_ok

    def __str__(self) -> str:
        return (
            f"{self.split}: {self.size_bytes:,} bytes = {self.fraction:.1%} of the baseline's "
            f"{self.baseline_bytes:,} (limit {self.max_fraction:.0%}: {'ok' if self.size_ok else 'OVER'}); "
            f"accuracy {self.accuracy:.3f} vs {self.baseline_accuracy:.3f}, "
            f"{self.drop_points:+.1f} points lost "
            f"(limit {self.max_drop_points:g}: {'ok' if self.accuracy_ok else 'TOO MANY'})"
        )


SPLITS = ("val", "heldout")


def gate(model: nn.Module, *, max_fraction: float, max_drop_points: float, split: str = "val") -> GateResult:
    """Returns the budget gate's verdict on ``model`` against ``gate_baseline()``; ``model`` is unchanged.

    Args:
        model: the submitted model (8x8 digits in, 10 logits out).
        max_fraction: the largest allowed ``size_bytes`` relative to the baseline's, in (0, 1].
        max_drop_points: the most accuracy points (0-100 scale) the model may lose, >= 0.
        split: "val" measures on ``gate_data()``'s validation split (what a student can check);
            "heldout" on ``heldout_data()`` (what the autograder uses).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_number(max_fraction, "max_fraction", low=0.0, high=1.0, low_open=True)
    check_number(max_drop_points, "max_drop_points", low=0.0, high=100.0)
    check_choice(split, "split", SPLITS)
    base = gate_baseline()
    bundle = heldout_data() if split == "heldout" else gate_data()
    part = "test" if split == "heldout" else "val"
    was_training = model.training
    ours, theirs = measure.model(model), measure.model(base)
    accuracy, base_accuracy = train.evaluate(model, bundle, part), train.evaluate(base, bundle, part)
    model.train(was_training)
    fraction = ours.size_bytes / theirs.size_bytes
    drop = 100.0 * (base_accuracy - accuracy)
    return GateResult(
        split=split,
        size_bytes=ours.size_bytes,
        baseline_bytes=theirs.size_bytes,
        fraction=fraction,
        accuracy=accuracy,
        baseline_accuracy=base_accuracy,
        drop_points=drop,
        max_fraction=float(max_fraction),
        max_drop_points=float(max_drop_points),
        size_ok=fraction <= max_fraction,
        accuracy_ok=drop <= max_drop_points + 1e-9,
    )


def _forbidden(*args, **kwargs):
    # Runs with the replaced function's globals, so it names only builtins.
    name = __import__("sys")._getframe().f_code.co_name
    raise RuntimeError(f"{name} may not be used in this task: the point is to write it yourself")


@contextlib.contextmanager
def forbid(*functions: Callable) -> Iterator[None]:
    """Makes every call of ``functions`` raise RuntimeError inside the block; restores them after.

    The functions' code is swapped, not their names, so a reference taken earlier (``from
    mcviz.prune import magnitude_mask``, a default argument, a library function calling it) is
    caught too. Only plain Python functions can be forbidden.

    Example:
        >>> with forbid(mcv.prune.magnitude_mask):  # doctest: +SKIP
        ...     students_mask(w, 0.5)              # fails if it calls magnitude_mask
    """
    for fn in functions:
        if not isinstance(fn, types.FunctionType):
            raise TypeError(f"forbid takes plain Python functions, got {fn!r}")
        if fn.__code__.co_freevars:
            raise TypeError(f"forbid cannot replace {fn.__qualname__}: it is a closure")
    saved = [(fn, fn.__code__) for fn in functions]
    try:
        for fn, _ in saved:
            fn.__code__ = _forbidden.__code__.replace(co_name=f"{fn.__module__}.{fn.__qualname__}")
        yield
    finally:
        for fn, code in saved:
            fn.__code__ = code


__all__ = [
    "GATE_EPOCHS",
    "GATE_MODEL",
    "HELDOUT",
    "HELDOUT_SEED",
    "SPLITS",
    "GateResult",
    "forbid",
    "gate",
    "gate_baseline",
    "gate_data",
    "heldout_data",
    "layer_masks",
]
