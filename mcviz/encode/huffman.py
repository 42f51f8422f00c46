"""Huffman coding and the entropy bound: the third stage of Deep Compression (Han, Mao and Dally,
ICLR 2016, section 4).

A stream of small integers (k-means cluster indices, relative-index gaps) is coded with a
prefix code whose codeword lengths come from the symbol counts: frequent symbols get short codes.
No lossless code of independent symbols does better on average than the Shannon entropy
``H = -sum p log2 p`` bits per symbol, and Huffman's code is within one bit of it (usually much
closer).

- ``entropy(counts)``: the bound, in bits per symbol.
- ``code_lengths(counts)``: Huffman's codeword length of every symbol (deterministic: ties are
  broken by symbol order, so the same counts always give the same code).
- ``canonical_codes(lengths)``: the canonical code with those lengths (codewords in order of
  length, then symbol), which the decoder rebuilds from the lengths alone, so a file stores only
  the lengths (:func:`table_bytes`).
- ``encode(symbols, lengths)`` / ``decode(data, lengths, count)``: the bit stream (most
  significant bit first, padded with zero bits to a whole byte) and back.
- ``pack_fixed`` / ``unpack_fixed``: the same for a fixed number of bits per value.
- ``code_table(symbols)``: a table for lessons (symbol, count, probability, codeword).

Everything is vectorized with numpy except the Huffman merge (over the alphabet, at most a few
thousand symbols) and the decoder's walk over the symbols.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import pandas as pd

MAX_LENGTH = 57  # codeword bits the decoder's 64-bit windows can hold (counts below 2**38 stay far under it)


class StreamError(ValueError):
    """A coded stream cannot be decoded (it ends early, or holds bits past its symbols)."""


def counts_of(symbols, alphabet: int | None = None) -> np.ndarray:
    """Returns the count of every symbol 0..alphabet-1 in ``symbols`` (non-negative ints);
    ``symbols`` is left unchanged. ``alphabet`` defaults to the largest symbol + 1."""
    x = np.asarray(symbols).reshape(-1)
    if x.size and (not np.issubdtype(x.dtype, np.integer) or x.min() < 0):
        raise ValueError(f"symbols must be non-negative integers, got {x.dtype} from {x.min()}")
    size = int(x.max()) + 1 if x.size else 0
    if alphabet is not None and size > alphabet:
        raise ValueError(f"symbol {size - 1} is outside the alphabet 0..{alphabet - 1}")
    return np.bincount(x.astype(np.int64), minlength=alphabet or size)


def entropy(counts) -> float:
    """Returns the Shannon entropy of a symbol distribution, in bits per symbol (0.0 when there
    are fewer than two distinct symbols); ``counts`` (one count per symbol) is left unchanged.

    Example:
        >>> entropy([1, 1, 2])
        1.5
    """
    c = np.asarray(counts, dtype=np.float64).reshape(-1)
    c = c[c > 0]
    if c.size < 2:
        return 0.0
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def code_lengths(counts) -> np.ndarray:
    """Returns the Huffman codeword length of every symbol (0 for a symbol that never occurs);
    ``counts`` is left unchanged.

    Repeatedly merges the two least frequent groups; every symbol of a merged group gets one bit
    longer. Ties go to the group holding the smallest symbol, so the result is deterministic. A
    stream of one distinct symbol gets a 1-bit code.

    Example:
        >>> code_lengths([5, 1, 1, 2]).tolist()
        [1, 3, 3, 2]
    """
    c = np.asarray(counts).reshape(-1)
    if c.size and (not np.issubdtype(c.dtype, np.integer) or c.min() < 0):
        raise ValueError("counts must be non-negative integers")
    lengths = np.zeros(c.size, dtype=np.int64)
    used = np.flatnonzero(c)
    if used.size == 1:
        lengths[used] = 1
    if used.size <= 1:
        return lengths
    heap = [(int(c[s]), int(s), [int(s)]) for s in used]
    heapq.heapify(heap)
    while len(heap) > 1:
        c1, k1, s1 = heapq.heappop(heap)
        c2, k2, s2 = heapq.heappop(heap)
        lengths[s1] += 1
        lengths[s2] += 1
        heapq.heappush(heap, (c1 + c2, min(k1, k2), s1 + s2))
    if lengths.max() > MAX_LENGTH:
        raise ValueError(f"a Huffman codeword of {lengths.max()} bits is longer than {MAX_LENGTH}")
    return lengths


def canonical_codes(lengths) -> np.ndarray:
    """Returns the canonical codeword (an int, read in ``lengths[s]`` bits) of every symbol;
    ``lengths`` is left unchanged.

    Symbols are sorted by (length, symbol); the first gets code 0, and each next code is the
    previous one plus one, shifted left by the growth in length. Unused symbols (length 0) get 0.

    Example:
        >>> canonical_codes([1, 3, 3, 2]).tolist()  # 0, 110, 111, 10
        [0, 6, 7, 2]
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    codes = np.zeros(lengths.size, dtype=np.uint64)
    code, previous = 0, 0
    for s in np.lexsort((np.arange(lengths.size), lengths)):
        n = int(lengths[s])
        if n == 0:
            continue
        code <<= n - previous
        codes[s] = code
        code, previous = code + 1, n
    if previous and code > (1 << previous):
        raise ValueError("lengths do not form a prefix code (Kraft sum above 1)")
    return codes


def encode(symbols, lengths) -> tuple[bytes, int]:
    """Returns ``(data, nbits)``: ``symbols`` coded with the canonical code of ``lengths``, most
    significant bit first, padded with zero bits to whole bytes; the inputs are left unchanged.

    Raises ValueError when a symbol has no codeword (length 0).
    """
    x = np.asarray(symbols, dtype=np.int64).reshape(-1)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if x.size == 0:
        return b"", 0
    if x.min() < 0 or x.max() >= lengths.size or (lengths[x] == 0).any():
        raise ValueError("a symbol has no codeword in this code")
    return _write(canonical_codes(lengths)[x], lengths[x])


def decode(data: bytes, lengths, count: int) -> tuple[np.ndarray, int]:
    """Returns ``(symbols, nbits)``: the first ``count`` symbols coded in ``data`` with the
    canonical code of ``lengths``, and the bits they used; ``data`` is left unchanged.

    Raises StreamError when the data ends before ``count`` symbols.
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if count == 0:
        return np.zeros(0, dtype=np.int64), 0
    used = np.flatnonzero(lengths)
    if used.size == 0:
        raise StreamError(f"a stream of {count} symbols has an empty code")
    longest = int(lengths.max())
    codes = canonical_codes(lengths)
    order = used[np.lexsort((used, lengths[used]))]  # codeword order
    starts = codes[order] << (longest - lengths[order]).astype(np.uint64)  # left-aligned, ascending
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    n = bits.size
    # the `longest`-bit window that starts at every bit position (zeros past the end)
    padded = np.concatenate([bits, np.zeros(longest, dtype=np.uint8)]).astype(np.uint64)
    window = np.zeros(n, dtype=np.uint64)
    for j in range(longest):
        window = (window << np.uint64(1)) | padded[j : j + n]
    rank = np.searchsorted(starts, window, side="right") - 1
    symbol_at = order[rank].tolist()
    step = lengths[order][rank].tolist()
    out = [0] * count
    p = 0
    for i in range(count):  # each codeword starts where the previous one ended
        if p >= n:
            raise StreamError(f"the stream ends after {i} of {count} symbols")
        out[i] = symbol_at[p]
        p += step[p]
    if p > n:
        raise StreamError(f"the stream ends inside symbol {count} of {count}")
    return np.asarray(out, dtype=np.int64), p


def pack_fixed(values, width: int) -> bytes:
    """Returns ``values`` (ints in [0, 2**width)) written in ``width`` bits each, most significant
    bit first, padded with zero bits to whole bytes; ``values`` is left unchanged."""
    x = np.asarray(values, dtype=np.int64).reshape(-1)
    if x.size and (x.min() < 0 or x.max() >= 1 << width):
        raise ValueError(f"values must be in [0, {1 << width}) to fit in {width} bits")
    return _write(x.astype(np.uint64), np.full(x.size, width, dtype=np.int64))[0]


def unpack_fixed(data: bytes, width: int, count: int) -> np.ndarray:
    """Returns the ``count`` values of ``width`` bits each that :func:`pack_fixed` wrote."""
    need = math.ceil(count * width / 8)
    if len(data) < need:
        raise StreamError(f"{count} values of {width} bits need {need} bytes, got {len(data)}")
    bits = np.unpackbits(np.frombuffer(data[:need], dtype=np.uint8))[: count * width]
    weights = (1 << np.arange(width - 1, -1, -1, dtype=np.int64)).astype(np.int64)
    return bits.reshape(count, width).astype(np.int64) @ weights if count else np.zeros(0, dtype=np.int64)


def coded_bits(counts, lengths) -> int:
    """Returns the bits a stream with symbol ``counts`` takes under codeword ``lengths``."""
    return int((np.asarray(counts, dtype=np.int64) * np.asarray(lengths, dtype=np.int64)).sum())


def table_bytes(lengths) -> bytes:
    """Returns the stored form of a code: the number of symbols up to the last used one (2 bytes),
    the width of a length (1 byte), then every length in that width, padded to a byte.

    The decoder rebuilds the canonical code from it (:func:`read_table`)."""
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    used = np.flatnonzero(lengths)
    size = int(used[-1]) + 1 if used.size else 0
    width = max(1, int(lengths.max()).bit_length()) if size else 1
    if size >= 1 << 16:
        raise ValueError(f"an alphabet of {size} symbols is too large for a code table (at most 65,535)")
    return size.to_bytes(2, "little") + bytes([width]) + pack_fixed(lengths[:size], width)


def read_table(data: bytes, offset: int = 0) -> tuple[np.ndarray, int]:
    """Returns ``(lengths, end)``: the code table stored at ``data[offset:]`` and the offset after it."""
    if len(data) < offset + 3:
        raise StreamError("a code table is cut short")
    size = int.from_bytes(data[offset : offset + 2], "little")
    width = data[offset + 2]
    if not 1 <= width <= 6:
        raise StreamError(f"a code table has lengths of {width} bits (1-6 allowed)")
    nbytes = math.ceil(size * width / 8)
    lengths = unpack_fixed(data[offset + 3 : offset + 3 + nbytes], width, size)
    if lengths.size and lengths.max() > MAX_LENGTH:
        raise StreamError(f"a code table holds a {lengths.max()}-bit codeword (at most {MAX_LENGTH})")
    if lengths.size and (lengths > 0).any():
        kraft = sum(2.0 ** -int(n) for n in lengths[lengths > 0])
        if kraft > 1 + 1e-12:
            raise StreamError("a code table does not describe a prefix code")
    return lengths, offset + 3 + nbytes


def code_table(symbols, alphabet: int | None = None) -> pd.DataFrame:
    """Returns one row per symbol that occurs: symbol, count, probability, length and codeword
    (as a string of 0s and 1s) of its Huffman code, most frequent first; ``symbols`` is left
    unchanged. ``table.attrs`` holds the entropy and the average length (bits per symbol)."""
    counts = counts_of(symbols, alphabet)
    lengths = code_lengths(counts)
    codes = canonical_codes(lengths)
    used = np.flatnonzero(counts)
    rows = [
        {
            "symbol": int(s),
            "count": int(counts[s]),
            "probability": counts[s] / counts.sum(),
            "length": int(lengths[s]),
            "codeword": format(int(codes[s]), f"0{int(lengths[s])}b"),
        }
        for s in used
    ]
    table = pd.DataFrame(rows, columns=["symbol", "count", "probability", "length", "codeword"])
    table = table.sort_values(["count", "symbol"], ascending=[False, True], ignore_index=True)
    total = int(counts.sum())
    table.attrs["entropy"] = entropy(counts)
    table.attrs["average_length"] = coded_bits(counts, lengths) / total if total else 0.0
    return table


def _write(codes: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Returns the bit stream of ``codes`` (uint64), each written in its ``lengths`` bits."""
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if ends.size else 0
    starts = ends - lengths
    bits = np.zeros(total + (-total) % 8, dtype=np.uint8)
    for j in range(int(lengths.max()) if lengths.size else 0):
        sel = lengths > j
        shift = (lengths[sel] - 1 - j).astype(np.uint64)
        bits[starts[sel] + j] = ((codes[sel] >> shift) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits).tobytes(), total
