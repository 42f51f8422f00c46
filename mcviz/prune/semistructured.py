"""N:M semi-structured sparsity: in every run of ``m`` consecutive input weights of a row, keep the
``n`` largest; 2:4 is the pattern NVIDIA's sparse tensor cores run at up to twice the dense speed.

The pattern is regular enough for a compact format: the kept values, plus for each a
``ceil(log2 m)``-bit index of its position inside its run (2 bits for 2:4). At 2:4 the weights
take half their dense bytes plus 2 bits per kept weight: fp32 weights shrink to 0.5625 of their
size. :class:`SemiStructuredLinear` counts exactly that for ``mcv.measure``.

**Speed needs a GPU.** PyTorch 2.13's ``to_sparse_semi_structured`` is CUDA-only, and on a CPU a
general sparse format (CSR) was 4-7x SLOWER than dense at 50% zeros in planning measurements;
on a CPU a 2:4 model computes densely with half its weights zero, no faster. mcviz measures its
accuracy and its storage honestly and says so.

:func:`nm_mask` is the tensor primitive; :func:`semistructured` / :class:`SemiStructuredConfig`
(method ``"semistructured"``) prune every Linear layer of a model. The layers are
``mcv.prune.PrunedLinear``s (they keep their zeros through fine-tuning), so quantizing them later
keeps the mask, as for any pruned model.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mcviz import _layers
from mcviz._checks import check_option
from mcviz.measure import StorageRow
from mcviz.prune.unstructured import PrunedLinear
from mcviz.registry import register


def check_nm(n, m, in_features: int | None = None, name: str = "") -> tuple[int, int]:
    """Returns ``(n, m)`` if each is within its bounds (``1 <= n <= 31``, ``2 <= m <= 32``), ``n < m``,
    and ``m`` divides ``in_features`` (when given)."""
    n, m = check_option("n", n, "semistructured"), check_option("m", m, "semistructured")
    if n >= m:
        raise ValueError(f"n must be less than m (keep n of every m weights), got n={n} and m={m}")
    if in_features is not None and in_features % m:
        where = f"layer {name!r}" if name else "the layer"
        raise ValueError(
            f"m={m} does not divide the {in_features} inputs of {where}; N:M runs need a divisor"
        )
    return n, m


def nm_mask(w: torch.Tensor, n: int = 2, m: int = 4) -> torch.Tensor:
    """Returns a bool mask of ``w``'s shape keeping the ``n`` largest ``|w|`` of every ``m``
    consecutive entries of each row (ties: the earlier entry is kept); ``w`` is unchanged.

    Example:
        >>> nm_mask(torch.tensor([[0.1, -0.5, 0.3, 0.2]]))
        tensor([[False,  True,  True, False]])
    """
    if not isinstance(w, torch.Tensor) or not w.is_floating_point() or w.dim() != 2:
        got = f"{w.dtype} {tuple(w.shape)}" if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"w must be a 2-D floating-point weight (out, in), got {got}")
    n, m = check_nm(n, m, w.shape[1])
    runs = w.detach().abs().reshape(-1, m)
    # a stable descending sort keeps the earlier of two equal entries
    order = torch.sort(runs, dim=1, descending=True, stable=True).indices[:, :n]
    keep = torch.zeros_like(runs, dtype=torch.bool).scatter_(1, order, True)
    return keep.reshape(w.shape)


class SemiStructuredLinear(PrunedLinear):
    """A PrunedLinear whose mask follows an N:M pattern; it stores the kept values and a
    ``ceil(log2 m)``-bit position index per kept value (not a 1-bit mask per weight)."""

    n: int = 2
    m: int = 4

    def mcviz_storage(self) -> list[StorageRow]:
        """Returns the kept values at the weight's width ("weight"), their in-run indices ("other")
        and the bias."""
        width = self.weight.element_size() * 8
        kept = self.weight.numel() * self.n // self.m
        rows = [
            StorageRow("", "weight", "weight", kept, width),
            StorageRow("", "indices", "other", kept, math.ceil(math.log2(self.m))),
        ]
        if self.bias is not None:
            rows.append(StorageRow("", "bias", "bias", self.bias.numel(), self.bias.element_size() * 8))
        return rows

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pattern={self.n}:{self.m}"


def semistructured(model: nn.Module, n: int = 2, m: int = 4) -> nn.Module:
    """Returns a copy of ``model`` whose Linear layers keep ``n`` of every ``m`` consecutive weights
    of a row (by magnitude); ``model`` is unchanged.

    Raises:
        ValueError: ``m`` does not divide a layer's inputs (before any layer is pruned), or the
            model has no Linear layer.
    """
    check_nm(n, m)
    names = _layers.linear_targets(model, "semistructured")
    for name in names:
        check_nm(n, m, model.get_submodule(name).in_features, name)
    out = copy.deepcopy(model)
    for name in names:
        layer = out.get_submodule(name)
        mask = nm_mask(_layers.weight(layer).detach(), n, m)
        pruned = SemiStructuredLinear.from_dense(layer, mask)
        pruned.n, pruned.m = n, m
        out = _layers.replace(out, name, pruned)
    return out


@register
@dataclass(frozen=True)
class SemiStructuredConfig:
    """N:M semi-structured sparsity of Linear layers (2:4: keep two of every four weights; fast on GPUs)."""

    method: ClassVar[str] = "semistructured"
    needs_data: ClassVar[bool] = False
    n: int = 2
    m: int = 4

    def __post_init__(self):
        check_nm(self.n, self.m)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return semistructured(model, self.n, self.m)
