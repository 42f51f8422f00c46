"""Encoded layers: pruned, shared or quantized layers that store relative indices and Huffman codes.

``encoded(model, index_bits=None, huffman=True)`` returns a copy whose pruned (PrunedLinear /
PrunedConv2d), k-means (KMeansLinear / KMeansConv2d) and quantized (QuantLinear / QuantConv2d)
layers become their ``Encoded`` subclass: they compute exactly as before (the classes add no
arithmetic) and tell ``mcv.measure`` what the packed file (``mcv.encode.pack``) stores for them,
byte for byte: the positions of the kept weights as relative indices instead of the 1-bit mask,
and the codes and index gaps Huffman-coded when ``huffman`` is True. So ``size_bytes`` of an
encoded model is its exact packed size less the file's own header (magic, version, architecture,
checksum: :func:`mcv.encode.overhead`), and every table, sweep and Pareto front ranks by it.

The registered method ``huffman`` (``"magnitude:sparsity=0.9 + kmeans:bits=4 + huffman"``) is
``encoded(model, index_bits, huffman=True)``; ``huffman=False`` (relative indices, fixed-width
codes) is the "pruning + quantization" stage of Deep Compression's table.

:func:`streams` gives, per layer, the paper's columns: kept weights, bits per weight and per index
before and after Huffman coding, and each stream's entropy bound.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
from torch import nn

from mcviz import _layers
from mcviz._checks import check_bool
from mcviz.encode import sections, sparse
from mcviz.measure import StorageRow
from mcviz.prune.unstructured import PrunedConv2d, PrunedLinear
from mcviz.quantize.kmeans import KMeansConv2d, KMeansLinear
from mcviz.quantize.layers import QuantConv2d, QuantLinear
from mcviz.registry import register


class _Encoded:
    """What every encoded layer adds to its kind: ``index_bits`` (the width of its relative
    indices; None for an unpruned layer), ``huffman`` and the exact storage rows."""

    index_bits: int | None
    huffman: bool

    def __init__(self, *args, index_bits: int | None = None, huffman: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.index_bits = None if index_bits is None else sparse.check_index_bits(index_bits)
        self.huffman = check_bool(huffman, "huffman")

    def parts(self) -> list[sections.Part]:
        """Returns the stored parts of this layer, in the order of its section in a packed file."""
        index_bits = self.index_bits if _layers.mask(self) is not None else None
        if _layers.mask(self) is not None and index_bits is None:
            raise ValueError(f"{type(self).__name__} has a mask but no index_bits")
        return sections.parts(self, index_bits, self.huffman)

    def mcviz_storage(self) -> list[StorageRow]:
        """Returns one row per stored part: relative indices (and their code table), codebook or
        scales, codes (Huffman-coded or fixed-width), bias; ``nbytes`` of each is exact."""
        return [p.row() for p in self.parts()]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, index_bits={self.index_bits}, huffman={self.huffman}"


class EncodedPrunedLinear(_Encoded, PrunedLinear):
    """A PrunedLinear stored with relative indices (and Huffman-coded gaps)."""


class EncodedPrunedConv2d(_Encoded, PrunedConv2d):
    """A PrunedConv2d stored with relative indices (and Huffman-coded gaps)."""


class EncodedKMeansLinear(_Encoded, KMeansLinear):
    """A KMeansLinear stored with relative indices and Huffman-coded codes and gaps."""


class EncodedKMeansConv2d(_Encoded, KMeansConv2d):
    """A KMeansConv2d stored with relative indices and Huffman-coded codes and gaps."""


class EncodedQuantLinear(_Encoded, QuantLinear):
    """A QuantLinear stored with relative indices and Huffman-coded codes and gaps."""


class EncodedQuantConv2d(_Encoded, QuantConv2d):
    """A QuantConv2d stored with relative indices and Huffman-coded codes and gaps."""


ENCODED = {
    PrunedLinear: EncodedPrunedLinear,
    PrunedConv2d: EncodedPrunedConv2d,
    KMeansLinear: EncodedKMeansLinear,
    KMeansConv2d: EncodedKMeansConv2d,
    QuantLinear: EncodedQuantLinear,
    QuantConv2d: EncodedQuantConv2d,
}
PLAIN = {v: k for k, v in ENCODED.items()}


def encoded(
    model: nn.Module, *, index_bits: int | dict[str, int] | None = None, huffman: bool = True
) -> nn.Module:
    """Returns a copy of ``model`` whose pruned, k-means and quantized layers store relative indices
    and (with ``huffman``) Huffman codes; ``model`` is left unchanged.

    The copy computes exactly what ``model`` computes. Plain Linear / Conv2d layers stay as they are
    (raw float32 weights: nothing to code), so a model with no compressed layer comes back as a
    plain copy; an already encoded layer is encoded again with the new options.

    Args:
        model: a network (float32) with pruned, k-means or quantized layers, e.g. after
            ``"magnitude:sparsity=0.9 + kmeans:bits=4"``.
        index_bits: the width of the relative indices: an int in [2, 12] for every pruned layer, a
            dict ``{layer name: width}`` (layers it leaves out choose their own), or None: each
            layer takes the width that stores its positions in the fewest bytes.
        huffman: Huffman-code the codes and the index gaps (False: fixed widths).

    Raises:
        ValueError: a dict naming a layer that is not a pruned, k-means or quantized layer, a width
            out of range, a model that is not float32.

    Example:
        >>> shared = mcv.compress(model, *mcv.registry.parse("magnitude + kmeans"))  # doctest: +SKIP
        >>> small = encoded(shared)  # doctest: +SKIP
        >>> mcv.measure.model(small).size_bytes  # doctest: +SKIP
    """
    from mcviz._checks import check_model

    check_model(model, dtypes=("float32",))
    check_bool(huffman, "huffman")
    targets = {n: m for n, m in model.named_modules() if _plain_kind(m) in ENCODED}
    widths = _widths(index_bits, targets)
    out = copy.deepcopy(model)
    for name, layer in targets.items():
        mask = _layers.mask(layer)
        width = widths.get(name) if mask is not None else None
        if mask is not None and width is None:
            width = sections.best_index_bits(mask.numpy(), huffman)
        out = _layers.replace(out, name, _encode_layer(out.get_submodule(name), width, huffman))
    return out


def huffman_coded(model: nn.Module, *, index_bits: int | dict[str, int] | None = None) -> nn.Module:
    """Returns ``encoded(model, index_bits=index_bits, huffman=True)``: relative indices and Huffman
    codes, what the registered method ``huffman`` does; ``model`` is left unchanged."""
    return encoded(model, index_bits=index_bits, huffman=True)


@register
@dataclass(frozen=True)
class HuffmanConfig:
    """Deep Compression's storage: relative indices and Huffman-coded codes (lossless; exact bytes)."""

    method: ClassVar[str] = "huffman"
    needs_data: ClassVar[bool] = False
    index_bits: int | None = None

    def __post_init__(self):
        if self.index_bits is not None:
            sparse.check_index_bits(self.index_bits)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return huffman_coded(model, index_bits=self.index_bits)


def streams(model: nn.Module) -> pd.DataFrame:
    """Returns one row per stored stream of every encoded layer of ``model``: layer, stream
    ("codes" or "index"), symbols, coded_bits (as stored), fixed_bits (at the fixed width), entropy_bits
    (the bound ``symbols * H``), bits per symbol and the stored bits over the bound; ``model`` is
    left unchanged. Tables (code lengths) are not part of the streams: see ``mcv.measure.storage``."""
    rows = []
    for name, m in model.named_modules():
        if not isinstance(m, _Encoded):
            continue
        for p in m.parts():
            if p.entropy_bits is None:
                continue
            rows.append(
                {
                    "layer": name,
                    "stream": p.tensor,
                    "symbols": p.symbols,
                    "coded_bits": p.bits,
                    "fixed_bits": p.fixed_bits,
                    "entropy_bits": p.entropy_bits,
                    "bits_per_symbol": p.bits / p.symbols if p.symbols else 0.0,
                    "over_bound": p.bits / p.entropy_bits - 1 if p.entropy_bits else 0.0,
                }
            )
    columns = [
        "layer",
        "stream",
        "symbols",
        "coded_bits",
        "fixed_bits",
        "entropy_bits",
        "bits_per_symbol",
        "over_bound",
    ]
    return pd.DataFrame(rows, columns=columns)


def _plain_kind(m: nn.Module):
    """Returns the mcviz layer class ``m`` is (its plain kind for an encoded layer), or None."""
    cls = PLAIN.get(type(m), type(m))
    return cls if cls in ENCODED else None


def _encode_layer(layer: nn.Module, index_bits: int | None, huffman: bool) -> nn.Module:
    plain = _plain_kind(layer)
    new = _layers.new_like(
        ENCODED[plain], layer, **sections.options(layer), index_bits=index_bits, huffman=huffman
    )
    if plain in (PrunedLinear, PrunedConv2d):
        new.weight.data = new.weight.data.to(layer.weight.dtype)
    new.load_state_dict(layer.state_dict())
    if plain in (QuantLinear, QuantConv2d) and layer.act_scale is not None:
        new.quantize_input(
            layer.act_scale, layer.act_zero_point, layer.act_bits, symmetric=layer.act_symmetric
        )
    new.train(layer.training)
    return new


def _widths(index_bits, targets) -> dict[str, int]:
    if index_bits is None:
        return {}
    if isinstance(index_bits, dict):
        for name, width in index_bits.items():
            if name not in targets:
                raise ValueError(
                    f"index_bits names {name!r}, which is not a pruned, k-means or quantized layer; "
                    f"those are: {', '.join(targets)}"
                )
            sparse.check_index_bits(width, f"index_bits[{name!r}]")
        return dict(index_bits)
    width = sparse.check_index_bits(index_bits)
    return dict.fromkeys(targets, width)
