"""Where the kept weights of a pruned layer are: a bitmask, or relative indices (Deep Compression,
section 2).

The weights are read in row-major order (``weight.reshape(-1)``). A **bitmask** spends 1 bit on
every weight. **Relative indices** spend ``index_bits`` bits on every *kept* weight: the number of
pruned weights skipped since the previous kept one (its gap). A gap too large for ``index_bits``
bits is split: each *filler* entry, the largest value ``F = 2**index_bits - 1``, skips ``F``
positions and stands for no weight; the gap that remains follows. Han, Mao and Dally pad with a
filler *zero weight* instead, which also costs a weight code; here a filler costs only its index.

Example: kept positions 1, 4 and 15 with 3-bit indices (F = 7): gaps 1, 2 and 10 -> entries
``[1, 2, 7, 3]`` (10 = one filler of 7, then 3).

At sparsity ``s`` the bitmask costs ``1 / (1 - s)`` bits per kept weight (10 bits at 90%, 20 at
95%), relative indices ``index_bits`` plus the fillers: above about 80% sparsity they win, and
Huffman coding of the gaps (:mod:`mcviz.encode.huffman`) shrinks them further.
"""

from __future__ import annotations

import numpy as np

from mcviz._checks import Range, check_int

INDEX_BITS = Range(2, 12)  # the widths relative indices may use (and the "auto" choice searches)


def check_index_bits(value, name: str = "index_bits") -> int:
    """Returns ``value`` if it is an int in [2, 12]; raises TypeError / ValueError otherwise."""
    return check_int(value, name, bounds=INDEX_BITS)


def relative_indices(mask, index_bits: int) -> np.ndarray:
    """Returns the relative-index entries of the True positions of ``mask`` (read row-major):
    each kept weight's gap, with filler entries ``2**index_bits - 1`` before gaps that do not fit;
    ``mask`` is left unchanged.

    Example:
        >>> relative_indices(np.array([0, 1, 0, 0, 1] + [0] * 10 + [1], dtype=bool), 3).tolist()
        [1, 2, 7, 3]
    """
    check_index_bits(index_bits)
    filler = (1 << index_bits) - 1
    positions = np.flatnonzero(np.asarray(mask).reshape(-1))
    gaps = np.diff(positions, prepend=-1) - 1
    fillers, rest = np.divmod(gaps, filler)
    entries = np.full(int((fillers + 1).sum()), filler, dtype=np.int64)
    entries[np.cumsum(fillers + 1) - 1] = rest
    return entries


def positions(entries, index_bits: int, numel: int) -> np.ndarray:
    """Returns the kept positions that relative-index ``entries`` describe (the inverse of
    :func:`relative_indices`); raises ValueError when they point past ``numel`` weights or end
    with a filler (no encoder writes one)."""
    filler = (1 << index_bits) - 1
    e = np.asarray(entries, dtype=np.int64).reshape(-1)
    if e.size and (e.min() < 0 or e.max() > filler):
        raise ValueError(f"relative indices must be in [0, {filler}]")
    if e.size and e[-1] == filler:
        raise ValueError("relative indices end with a filler entry")
    steps = np.where(e == filler, filler, e + 1)
    at = np.cumsum(steps) - 1
    kept = at[e != filler]
    if kept.size and kept[-1] >= numel:
        raise ValueError(f"relative indices point at weight {kept[-1]} of a layer of {numel}")
    return kept


def mask_from_positions(kept, shape) -> np.ndarray:
    """Returns a bool mask of ``shape`` that is True at the flat positions ``kept``."""
    mask = np.zeros(int(np.prod(shape)), dtype=bool)
    mask[np.asarray(kept, dtype=np.int64)] = True
    return mask.reshape(shape)


def bitmask_bytes(mask) -> bytes:
    """Returns ``mask`` (read row-major) as 1 bit per weight, most significant bit first."""
    return np.packbits(np.asarray(mask, dtype=bool).reshape(-1)).tobytes()


def read_bitmask(data: bytes, numel: int) -> np.ndarray:
    """Returns the flat bool mask of ``numel`` weights stored by :func:`bitmask_bytes`."""
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=numel).astype(bool)
