"""Exact, lossless storage of compressed models: ``mcv.encode`` (Deep Compression's last stage).

- ``huffman``: Huffman codes, the entropy bound, bit streams (``entropy``, ``code_lengths``,
  ``canonical_codes``, ``code_table``, ``encode`` / ``decode``).
- ``sparse``: where the kept weights are: the 1-bit mask or relative indices with filler entries
  (``relative_indices``, ``positions``).
- ``layers``: ``encoded(model, index_bits=None, huffman=True)`` (registered as the method
  ``huffman``): layers that store relative indices and Huffman codes and report their exact bytes
  to ``mcv.measure``; ``streams(model)``: each stream's bits against its entropy bound.
- ``pack``: ``pack(model) -> bytes`` / ``unpack(bytes) -> model`` (magic, version, CRC-32; bad
  files raise ``FormatError``), ``save`` / ``load`` (atomic), ``overhead``.

Every function returns new objects and leaves its inputs unchanged.
"""

from mcviz.encode.huffman import canonical_codes, code_lengths, code_table, counts_of, decode, encode, entropy
from mcviz.encode.layers import (
    EncodedKMeansConv2d,
    EncodedKMeansLinear,
    EncodedPrunedConv2d,
    EncodedPrunedLinear,
    EncodedQuantConv2d,
    EncodedQuantLinear,
    HuffmanConfig,
    encoded,
    huffman_coded,
    streams,
)
from mcviz.encode.pack import FORMAT_VERSION, MAGIC, FormatError, load, overhead, pack, save, unpack
from mcviz.encode.sparse import positions, relative_indices

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "EncodedKMeansConv2d",
    "EncodedKMeansLinear",
    "EncodedPrunedConv2d",
    "EncodedPrunedLinear",
    "EncodedQuantConv2d",
    "EncodedQuantLinear",
    "FormatError",
    "HuffmanConfig",
    "canonical_codes",
    "code_lengths",
    "code_table",
    "counts_of",
    "decode",
    "encode",
    "encoded",
    "entropy",
    "huffman_coded",
    "load",
    "overhead",
    "pack",
    "positions",
    "relative_indices",
    "save",
    "streams",
    "unpack",
]
