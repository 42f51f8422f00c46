"""Row-wise quantization of embedding tables: each row (one token's vector) gets its own scale.

In a small transformer the embedding tables are a large part of the weights: 52% of MiniLM's
parameters are its 30,522 x 384 word table, which weight-only methods for Linear layers never
touch. A lookup reads one row, so one scale per row is the natural grid: rows of rare and common
tokens have very different ranges, and a row's error stays in that row.

:class:`QuantEmbedding` stores ``bits``-bit codes and one fp16 scale per row (the group-wise
storage of ``groupwise.py`` with one group per row) and looks rows up in the dequantized table;
:func:`embeddings` / :class:`EmbeddingsConfig` (method ``"embeddings"``) quantize every
``nn.Embedding`` of a model and leave everything else unchanged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from mcviz import _layers
from mcviz._checks import check_bool, check_int, check_model
from mcviz.measure import StorageRow
from mcviz.quantize.groupwise import SCALE_BITS, group_dequantize, group_qparams, group_quantize
from mcviz.registry import register


class QuantEmbedding(nn.Embedding):
    """An Embedding whose table is stored as ``bits``-bit codes with one fp16 scale per row (and one
    ``bits``-bit zero point per row when asymmetric); it looks rows up in the dequantized table.

    Its table is a buffer, so ``mcv.measure`` counts it as a layer (``mcviz_layer``): its weights
    stay in the parameter count, and a lookup costs no multiply-accumulate (``in_features = 0``).
    """

    mcviz_layer = True
    bias = None
    in_features = 0

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, *,
                 bits: int = 8, symmetric: bool = True) -> None:  # fmt: skip
        super().__init__(num_embeddings, embedding_dim, padding_idx, device="meta")
        check_int(bits, "bits")
        self.bits, self.symmetric = bits, check_bool(symmetric, "symmetric")
        del self.weight
        self.register_buffer("codes", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(num_embeddings, 1, dtype=torch.float16))
        self.register_buffer(
            "zero_point", None if symmetric else torch.zeros(num_embeddings, 1, dtype=torch.int32)
        )
        self.register_buffer("weight", torch.zeros(num_embeddings, embedding_dim), persistent=False)

    @classmethod
    def from_float(cls, module: nn.Embedding, bits: int = 8, *, symmetric: bool = True) -> QuantEmbedding:
        """Returns ``module``'s table rounded row by row to ``bits``-bit codes; ``module`` is unchanged."""
        if not isinstance(module, nn.Embedding):
            raise ValueError(f"module must be a torch.nn.Embedding, got {type(module).__name__}")
        out = cls(
            module.num_embeddings, module.embedding_dim, module.padding_idx, bits=bits, symmetric=symmetric
        )
        w = module.weight.detach().float()
        scale, zero_point = group_qparams(w, bits, 0, symmetric=symmetric)
        out.codes = group_quantize(w, scale, zero_point, bits, symmetric=symmetric).to(
            torch.int8 if symmetric else torch.uint8
        )
        out.scale = scale.half()
        if not symmetric:
            out.zero_point = zero_point
        out._refresh()
        out.train(module.training)
        return out

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight, self.padding_idx)

    def mcviz_storage(self) -> list[StorageRow]:
        """Returns codes at ``bits`` bits ("weight"), fp16 row scales and, asymmetric, row zero points."""
        rows = [
            StorageRow("", "codes", "weight", self.codes.numel(), self.bits),
            StorageRow("", "scale", "other", self.scale.numel(), SCALE_BITS),
        ]
        if self.zero_point is not None:
            rows.append(StorageRow("", "zero_point", "other", self.zero_point.numel(), self.bits))
        return rows

    def _refresh(self) -> None:
        self.weight = group_dequantize(self.codes, self.scale, self.zero_point)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._refresh()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}, {'symmetric' if self.symmetric else 'asymmetric'}"


def embeddings(model: nn.Module, bits: int = 8, *, symmetric: bool = True) -> nn.Module:
    """Returns a copy of ``model`` whose ``nn.Embedding`` tables are quantized row-wise to ``bits``
    bits; every other layer is unchanged, and so is ``model``.

    Raises:
        ValueError: ``model`` has no ``nn.Embedding`` (quantize its Linear layers with
            ``groupwise`` or ``weights`` instead).
    """
    check_int(bits, "bits")
    check_bool(symmetric, "symmetric")
    check_model(model)
    names = _tables(model)
    out = copy.deepcopy(model)
    for name in names:
        out = _layers.replace(
            out, name, QuantEmbedding.from_float(out.get_submodule(name), bits, symmetric=symmetric)
        )
    return out


def _tables(model: nn.Module) -> list[str]:
    """Returns the names of ``model``'s ``nn.Embedding`` tables; ValueError when it has none."""
    names = [n for n, m in model.named_modules() if type(m) is nn.Embedding]
    if not names:
        raise ValueError(
            f"embeddings needs a model with nn.Embedding tables; {type(model).__name__} has none"
        )
    return names


@register
@dataclass(frozen=True)
class EmbeddingsConfig:
    """Row-wise quantization of embedding tables (one fp16 scale per row); other layers unchanged."""

    method: ClassVar[str] = "embeddings"
    needs_data: ClassVar[bool] = False
    bits: int = 8
    symmetric: bool = True

    def __post_init__(self):
        check_int(self.bits, "bits")
        check_bool(self.symmetric, "symmetric")

    def check_applies(self, model: nn.Module) -> None:
        """Raises ValueError when ``model`` has no embedding table (see ``registry.check_applies``)."""
        _tables(model)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return embeddings(model, self.bits, symmetric=self.symmetric)
