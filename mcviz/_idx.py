"""IDX files (the format of MNIST, Fashion-MNIST, EMNIST): reading one file, and a folder of them.

``mcv.data.load("idx", root=...)`` reads a folder with :func:`read_folder` and checks and splits
the arrays like any others (``mcv.data.from_arrays``'s checks). Only the bytes a header declares
are read, at most :data:`MAX_IDX_BYTES`.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from mcviz._checks import shorten

# IDX header: two zero bytes, a type code, the number of dimensions.
_IDX_TYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MAX_IDX_BYTES = 2**31  # an IDX file declaring more data than this is refused before it is read


def read_idx(path: str | Path) -> np.ndarray:
    """Returns the array stored in one IDX file (optionally gzipped), checking its header and size.

    Only the bytes the header declares are read (at most :data:`MAX_IDX_BYTES`), so a file that
    inflates to more than it declares cannot fill the memory.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read(4)
            if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
                magic = raw[:4].hex() if len(raw) >= 4 else raw.hex() or "empty"
                raise ValueError(
                    f"{path.name} is not an IDX file: magic number 0x{magic}, expected "
                    f"0x0000TTNN (TT a type code such as 08, NN the number of dimensions)"
                )
            ndim, header = raw[3], 4 + 4 * raw[3]
            if ndim == 0:
                raise ValueError(
                    f"{path.name} declares 0 dimensions (magic number 0x{raw[:4].hex()}); expected 1 to 255"
                )
            raw += f.read(header - 4)
            if len(raw) < header:
                raise ValueError(
                    f"{path.name} is truncated: its header needs {header} bytes, the file has {len(raw)}"
                )
            shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
            dtype = np.dtype(_IDX_TYPES[raw[2]])
            need = header + int(np.prod(shape, dtype=object)) * dtype.itemsize
            if need > MAX_IDX_BYTES:
                raise ValueError(
                    f"{path.name} declares shape {shape}: {need:,} bytes, more than the "
                    f"{MAX_IDX_BYTES:,} an IDX file may hold here"
                )
            raw += f.read(need - header)
    except (OSError, EOFError, zlib.error) as e:  # a broken gzip stream too
        raise ValueError(f"cannot read IDX file {path}: {shorten(str(e), 200)}") from None
    if len(raw) < need:
        raise ValueError(
            f"{path.name} is truncated: shape {shape} needs {need} bytes, the file has {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)), offset=header).reshape(shape)


def read_folder(root) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:
    """Returns ``((X, y), (X_test, y_test) or None)`` read from the MNIST-format files in ``root``:
    ``train-{images-idx3,labels-idx1}-ubyte[.gz]`` and, when present, the ``t10k-`` pair. Images are
    ``(N, H, W)`` uint8 or float arrays as stored, labels 1-D int64; each pair is checked to match.
    """
    if root is None:
        raise ValueError("data set 'idx' needs root=, a folder of MNIST-format IDX files")
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder (a str or a path), got {shorten(root)}")
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"root must be a folder of IDX files, got a file: {root}")
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
        if X.ndim != 3 or not (X.dtype == np.uint8 or X.dtype.kind == "f"):
            raise ValueError(
                f"{images.name} must hold uint8 or float images (N, H, W), got {X.dtype} {X.shape}"
            )
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise ValueError(
                f"{labels.name} must hold a 1-D vector of integer labels, got {y.dtype} {y.shape}"
            )
        if len(X) != len(y):
            raise ValueError(
                f"{images.name} has {len(X)} images but {labels.name} has {len(y)} labels; they must match"
            )
        return X, y.astype(np.int64)

    return pair("train", required=True), pair("t10k", required=False)
