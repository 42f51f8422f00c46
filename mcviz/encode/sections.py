"""What one layer stores, part by part: the bytes of its section in a packed file, and the exact
storage rows ``mcv.measure`` counts.

A layer's weight is one of four kinds (``kind``):

- ``"dense"``: a plain float32 Linear / Conv2d: every weight in 32 bits;
- ``"pruned"``: mcviz's PrunedLinear / PrunedConv2d: where the kept weights are, and their
  float32 values;
- ``"kmeans"``: KMeansLinear / KMeansConv2d (weight sharing): a float32 codebook and one code
  (cluster index) per kept weight;
- ``"quant"``: QuantLinear / QuantConv2d (linear integer codes): scales (and zero points) and one
  code per kept weight.

and is stored with an encoding: where the kept weights are (nothing for an unpruned layer; the
1-bit mask when ``index_bits`` is None; relative indices of ``index_bits`` bits otherwise) and
whether codes and index gaps are Huffman-coded (``huffman``). Every part is written byte-aligned,
so the section is the concatenation of the parts and ``sum(len(part.data))`` its exact size.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from mcviz import _layers
from mcviz.encode import huffman, sparse
from mcviz.measure import StorageRow
from mcviz.prune.unstructured import PrunedConv2d, PrunedLinear
from mcviz.quantize.kmeans import KMeansConv2d, KMeansLinear
from mcviz.quantize.layers import QuantConv2d, QuantLinear
from mcviz.quantize.tensor import qrange

KINDS = ("dense", "pruned", "kmeans", "quant")
# the mcviz layer class of every (kind, Linear or Conv2d) but dense
CLASSES = {
    ("pruned", "Linear"): PrunedLinear,
    ("pruned", "Conv2d"): PrunedConv2d,
    ("kmeans", "Linear"): KMeansLinear,
    ("kmeans", "Conv2d"): KMeansConv2d,
    ("quant", "Linear"): QuantLinear,
    ("quant", "Conv2d"): QuantConv2d,
}


class Part(NamedTuple):
    """One stored part of a layer: its bytes and how ``mcv.measure`` counts them.

    ``symbols`` is the number of coded values (weights, codes, index entries), ``bits`` the bits
    they take without the padding to a byte, ``entropy_bits`` the entropy bound of a coded stream
    (None for raw numbers and tables)."""

    tensor: str
    role: str
    data: bytes
    symbols: int
    bits: int
    entropy_bits: float | None = None
    fixed_bits: int | None = None

    def row(self) -> StorageRow:
        """Returns the StorageRow whose ``nbytes`` is exactly ``len(self.data)``."""
        if self.symbols == 0:
            return StorageRow("", self.tensor, self.role, 0, 0)
        return StorageRow("", self.tensor, self.role, self.symbols, _exact_width(self.bits, self.symbols))


def kind_of(layer: nn.Module) -> str | None:
    """Returns the kind of a Linear / Conv2d layer that can be stored ("dense", "pruned",
    "kmeans", "quant"), or None for anything else."""
    if isinstance(layer, (KMeansLinear, KMeansConv2d)):
        return "kmeans"
    if isinstance(layer, (QuantLinear, QuantConv2d)):
        return "quant"
    if isinstance(layer, (PrunedLinear, PrunedConv2d)):
        return "pruned"
    if type(layer) in (nn.Linear, nn.Conv2d):
        return "dense"
    return None


def options(layer: nn.Module) -> dict:
    """Returns the options that rebuild ``layer``'s kind besides its constructor arguments."""
    kind = kind_of(layer)
    if kind == "kmeans":
        return {"bits": layer.bits}
    if kind == "quant":
        return {"bits": layer.bits, "granularity": layer.granularity, "symmetric": layer.symmetric}
    return {}


def parts(layer: nn.Module, index_bits: int | None, coded: bool) -> list[Part]:
    """Returns the stored parts of ``layer`` under an encoding; ``layer`` is left unchanged.

    Args:
        layer: a layer of one of the four kinds (float32).
        index_bits: None (a pruned layer stores its 1-bit mask) or the width of relative indices.
        coded: Huffman-code the codes and the index gaps.
    """
    kind = kind_of(layer)
    weight = _layers.weight(layer).detach()
    mask = _layers.mask(layer)
    out: list[Part] = []
    flat_mask = mask.reshape(-1).numpy() if mask is not None else None
    if flat_mask is not None:
        out += _position_parts(flat_mask, index_bits, coded)
    if kind == "kmeans":
        out.append(_raw("codebook", "other", layer.codebook.detach()))
        symbols = layer.indices.reshape(-1).numpy().astype(np.int64)
    elif kind == "quant":
        out.append(_raw("scale", "other", layer.scale.detach()))
        if not layer.symmetric:
            out.append(_raw("zero_point", "other", layer.zero_point.detach()))
        symbols = (
            layer.codes.reshape(-1).numpy().astype(np.int64)
            - qrange(layer.bits, symmetric=layer.symmetric)[0]
        )
    else:
        values = weight.reshape(-1)
        out.append(
            _raw("weight", "weight", values[torch.from_numpy(flat_mask)] if flat_mask is not None else values)
        )
        symbols = None
    if symbols is not None:
        kept = symbols[flat_mask] if flat_mask is not None else symbols
        out += _symbol_parts("codes", "weight", kept, layer.bits, coded, table="code_table")
    if layer.bias is not None:
        out.append(_raw("bias", "bias", layer.bias.detach()))
    if kind == "quant" and layer.act_scale is not None:
        out.append(_raw("act_scale", "other", layer.act_scale.detach()))
        if not layer.act_symmetric:
            out.append(_raw("act_zero_point", "other", layer.act_zero_point.detach()))
    return out


def best_index_bits(mask, coded: bool) -> int:
    """Returns the relative-index width in 2..12 that stores ``mask``'s positions in the fewest
    bytes (ties: the narrower), with or without Huffman coding of the gaps."""
    flat = np.asarray(mask).reshape(-1)
    sizes = {
        b: sum(len(p.data) for p in _position_parts(flat, b, coded))
        for b in range(sparse.INDEX_BITS.low, sparse.INDEX_BITS.high + 1)
    }
    return min(sizes, key=lambda b: (sizes[b], b))


def read(kind: str, shape: tuple, store: dict, has_bias: bool, data: bytes, at: int):
    """Returns ``(state, at)``: the tensors of a layer section read from ``data[at:]`` (a state_dict
    of the layer's kind) and the offset after the section. Raises ValueError on bad content."""
    numel = math.prod(shape)
    reader = _Reader(data, at)
    mask = None
    if store.get("mask"):
        index_bits = store.get("index_bits")
        if index_bits is None:
            mask = sparse.read_bitmask(reader.take(math.ceil(numel / 8)), numel)
        else:
            sparse.check_index_bits(index_bits)
            count = reader.varint()
            entries = reader.stream(count, 1 << index_bits, index_bits, store["huffman"])
            mask = sparse.mask_from_positions(sparse.positions(entries, index_bits, numel), (numel,))
    kept = int(mask.sum()) if mask is not None else numel
    state: dict[str, torch.Tensor] = {}
    if kind == "kmeans":
        bits = store["bits"]
        state["codebook"] = reader.floats(1 << bits)
        codes = reader.stream(kept, 1 << bits, bits, store["huffman"])
        indices = np.zeros(numel, dtype=np.uint8)
        indices[mask if mask is not None else slice(None)] = codes
        state["indices"] = torch.from_numpy(indices).reshape(shape)
    elif kind == "quant":
        bits, symmetric = store["bits"], store["symmetric"]
        channels = shape[0] if store["granularity"] == "per_channel" else None
        state["scale"] = reader.floats(channels or 1).reshape((channels,) if channels else ())
        if not symmetric:
            state["zero_point"] = reader.ints(channels or 1).reshape((channels,) if channels else ())
        else:
            state["zero_point"] = torch.zeros((channels,) if channels else (), dtype=torch.int32)
        qmin = qrange(bits, symmetric=symmetric)[0]
        codes = np.zeros(numel, dtype=np.int64)
        codes[mask if mask is not None else slice(None)] = (
            reader.stream(kept, 1 << bits, bits, store["huffman"]) + qmin
        )
        state["codes"] = torch.from_numpy(codes.astype(np.int8 if symmetric else np.uint8)).reshape(shape)
    else:
        values = reader.floats(kept)
        weight = torch.zeros(numel)
        weight[torch.from_numpy(mask) if mask is not None else slice(None)] = values
        state["weight"] = weight.reshape(shape)
    if has_bias:
        state["bias"] = reader.floats(shape[0])
    if kind == "quant" and store.get("act_bits") is not None:
        state["act_scale"] = reader.floats(1).reshape(())
        state["act_zero_point"] = (
            reader.ints(1).reshape(()) if not store["act_symmetric"] else torch.zeros((), dtype=torch.int32)
        )
    if mask is not None:
        state["mask"] = torch.from_numpy(mask).reshape(shape)
    return state, reader.at


# ---------------------------------------------------------------- parts


def _position_parts(flat_mask: np.ndarray, index_bits: int | None, coded: bool) -> list[Part]:
    if index_bits is None:
        return [Part("mask", "other", sparse.bitmask_bytes(flat_mask), flat_mask.size, flat_mask.size)]
    entries = sparse.relative_indices(flat_mask, index_bits)
    count = _varint(len(entries))
    return [Part("index_count", "other", count, len(count), 8 * len(count))] + _symbol_parts(
        "index", "other", entries, index_bits, coded, table="index_table"
    )


def _symbol_parts(name: str, role: str, symbols: np.ndarray, width: int, coded: bool, *, table: str):
    counts = huffman.counts_of(symbols, 1 << width)
    bound = huffman.entropy(counts) * len(symbols)
    fixed = width * len(symbols)
    if not coded:
        return [Part(name, role, huffman.pack_fixed(symbols, width), len(symbols), fixed, bound, fixed)]
    lengths = huffman.code_lengths(counts)
    stored = huffman.table_bytes(lengths)
    data, nbits = huffman.encode(symbols, lengths)
    return [
        Part(table, "other", stored, len(stored), 8 * len(stored)),
        Part(name, role, data, len(symbols), nbits, bound, fixed),
    ]


def _raw(name: str, role: str, t: torch.Tensor) -> Part:
    t = t.detach().reshape(-1)
    dtype = "<i4" if t.dtype == torch.int32 else "<f4"
    data = t.numpy().astype(dtype).tobytes()
    return Part(name, role, data, t.numel(), 32 * t.numel())


def _exact_width(bits: int, numel: int) -> float:
    """Returns the bits per value that make ``ceil(numel * width / 8)`` exactly ``ceil(bits / 8)``
    in floating point (the mean width, nudged by the last unit when rounding would add a byte)."""
    want = math.ceil(bits / 8)
    width = bits / numel
    for _ in range(4):
        got = math.ceil(numel * width / 8)
        if got == want:
            return width
        width = math.nextafter(width, 0.0 if got > want else math.inf)
    raise AssertionError(f"no float width stores {bits} bits of {numel} values in {want} bytes")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class _Reader:
    """Reads the parts of a section in order, checking that each fits in the data."""

    def __init__(self, data: bytes, at: int) -> None:
        self.data, self.at = data, at

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ValueError(f"a layer section needs {n} more bytes at offset {self.at}, the data ends first")
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
            if shift > 63:
                raise ValueError("a count in a layer section is too long")

    def floats(self, n: int) -> torch.Tensor:
        return torch.from_numpy(np.frombuffer(self.take(4 * n), dtype="<f4").astype(np.float32))

    def ints(self, n: int) -> torch.Tensor:
        return torch.from_numpy(np.frombuffer(self.take(4 * n), dtype="<i4").astype(np.int32))

    def stream(self, count: int, alphabet: int, width: int, coded: bool) -> np.ndarray:
        if not coded:
            return huffman.unpack_fixed(self.take(math.ceil(count * width / 8)), width, count)
        lengths, self.at = huffman.read_table(self.data, self.at)
        if lengths.size > alphabet:
            raise ValueError(f"a code table of {lengths.size} symbols for an alphabet of {alphabet}")
        longest = int(lengths.max()) if lengths.size else 0
        window = self.data[self.at : self.at + math.ceil(count * longest / 8)]  # the most it can use
        symbols, nbits = huffman.decode(window, lengths, count)
        self.take(math.ceil(nbits / 8))
        return symbols
