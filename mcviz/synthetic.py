"""Full-size data sets made offline: scikit-learn's bundled 8x8 digits, upsampled to 28x28 and
jittered, written as MNIST-format IDX files (``write_idx`` is ``mcv.data.read_idx``'s inverse).

Nothing is downloaded, so a 60,000-image set of MNIST's size and format can be made on any
machine to measure how a report's cost grows with the number of images. The images are not
MNIST: each one is a shifted, rescaled, noisy copy of one of 1,797 small digits, and the train
and test files come from disjoint halves of those digits.

Example:
    >>> root = mcv.synthetic.digits_idx("idx60k", n_train=60_000, n_test=10_000)  # doctest: +SKIP
    >>> data = mcv.data.load("idx", root=root)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mcviz._idx import _IDX_TYPES

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def write_idx(path: str | Path, array) -> Path:
    """Write ``array`` to ``path`` as an IDX file (uncompressed) and return the path; ``array`` is
    unchanged. ``mcv.data.read_idx`` reads it back equal.

    Raises:
        ValueError: a dtype IDX cannot hold (it holds uint8, int8, int16, int32, float32 and
            float64), no dimension, or a dimension above 2**32 - 1.
    """
    a = np.asarray(array)
    codes = {np.dtype(t).newbyteorder("=") if np.dtype(t).itemsize > 1 else np.dtype(t): c
             for c, t in _IDX_TYPES.items()}  # fmt: skip
    dtype = a.dtype.newbyteorder("=") if a.dtype.itemsize > 1 else a.dtype
    if dtype not in codes:
        allowed = ", ".join(str(d) for d in codes)
        raise ValueError(f"IDX files hold {allowed}; got an array of dtype {a.dtype}")
    if a.ndim == 0 or a.ndim > 255 or max(a.shape) >= 2**32:
        raise ValueError(f"an IDX array needs 1 to 255 dimensions, each < 2**32; got shape {a.shape}")
    header = bytes([0, 0, codes[dtype], a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    big = a.astype(a.dtype.newbyteorder(">"), copy=False) if a.dtype.itemsize > 1 else a
    path.write_bytes(header + np.ascontiguousarray(big).tobytes())
    return path


def digits_idx(root: str | Path, *, n_train: int = 60_000, n_test: int = 10_000, size: int = 28,
               seed: int = 0) -> Path:  # fmt: skip
    """Write a synthetic MNIST-format data set to folder ``root`` and return it.

    ``n_train`` training and ``n_test`` test images (``size`` x ``size`` uint8, with labels), made
    from scikit-learn's digits: each is one 8x8 digit upsampled to about 0.7 of ``size``, placed at
    a random offset, rescaled in brightness and given a little noise. Train and test images come
    from disjoint stratified halves of the 1,797 digits. The same arguments always write the same
    bytes; no global random state is used.

    Raises:
        ValueError: counts below 10, a size below 12, or a bad seed.
    """
    from mcviz import _checks
    from mcviz._seed import global_rng_kept
    from mcviz.data import _two_way

    with global_rng_kept():  # a first import of scikit-learn draws from `random`
        from sklearn.datasets import load_digits

    n_train = _checks.check_int(n_train, "n_train", low=10)
    n_test = _checks.check_int(n_test, "n_test", low=10)
    size = _checks.check_int(size, "size", low=12, high=1024)
    seed = _checks.check_seed(seed)
    digits = load_digits()
    base = _upsample(digits.images.astype(np.float32) / 16.0, round(0.7 * size))
    labels = digits.target.astype(np.uint8)
    train_i, test_i = _two_way(np.arange(len(labels)), labels, len(labels) // 2, seed)
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, pool, n in (("train", train_i, n_train), ("test", test_i, n_test)):
        pick = rng.choice(pool, size=n)
        images = _jitter(base[pick], size, rng)
        write_idx(root / FILES[split][0], images)
        write_idx(root / FILES[split][1], labels[pick])
    return root


def _upsample(images: np.ndarray, side: int) -> np.ndarray:
    """Bilinear upsampling of (N, h, w) images to (N, side, side)."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        out = F.interpolate(torch.from_numpy(images)[:, None], size=(side, side), mode="bilinear",
                            align_corners=False)  # fmt: skip
    return out[:, 0].numpy()


def _jitter(digits: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Place each digit at a random offset in a size x size canvas, rescale and add noise: uint8."""
    n, side = len(digits), digits.shape[-1]
    canvas = np.zeros((n, size, size), dtype=np.float32)
    room = size - side
    rows, cols = rng.integers(0, room + 1, size=n), rng.integers(0, room + 1, size=n)
    for r in range(room + 1):  # one slice assignment per offset row and column, not per image
        for c in range(room + 1):
            at = np.flatnonzero((rows == r) & (cols == c))
            if len(at):
                canvas[at, r : r + side, c : c + side] = digits[at]
    canvas *= rng.uniform(0.7, 1.0, size=(n, 1, 1)).astype(np.float32)
    canvas += rng.normal(0.0, 0.03, size=canvas.shape).astype(np.float32)
    return (np.clip(canvas, 0.0, 1.0) * 255).round().astype(np.uint8)
