"""Low-rank factorization: a Linear layer's ``(out, in)`` weight replaced by two thin ones,
``(out, r) @ (r, in)``, from its truncated singular value decomposition.

``W = U S V^T``; keeping the ``r`` largest singular values gives the closest rank-``r`` matrix
(Eckart-Young), stored as ``r (in + out)`` numbers instead of ``in out`` and computed as two
smaller matmuls (fewer MACs, really faster on a CPU). The rank of each layer comes from:

- ``rank``: the same rank everywhere (capped at each layer's own size);
- ``energy``: the smallest rank keeping that fraction of the squared singular values (the
  weight's "energy"): a weight that really is low-rank needs few;
- ``fraction``: a budget, the rank that keeps that fraction of each layer's parameters.

A layer is only factorized when that saves parameters. Pretrained weights are often NOT low-rank
(MiniLM's FFN weights need most of their rank for 90% of their energy), so a factorized model is
followed by a short distillation on local text (``epochs``; ``mcv.distill_lm.match``).

:func:`lowrank` and :class:`LowRankConfig` (method ``"lowrank"``) return a new model of
:class:`LowRankLinear` layers, each two plain ``nn.Linear``: every other mcviz method and
measurement sees them as ordinary layers.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mcviz import _layers, distill_lm
from mcviz._checks import check_int, check_number, check_option
from mcviz.registry import register


class LowRankLinear(nn.Module):
    """``second(first(x))``: ``first`` is ``Linear(in, rank, bias=False)`` (``S^1/2 V^T``),
    ``second`` is ``Linear(rank, out)`` (``U S^1/2``, with the original bias)."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.first = nn.Linear(in_features, rank, bias=False, device="meta").to_empty(device="cpu")
        self.second = nn.Linear(rank, out_features, bias=bias, device="meta").to_empty(device="cpu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


def singular_values(w: torch.Tensor) -> torch.Tensor:
    """Returns the singular values of a 2-D weight, largest first (float32); ``w`` is unchanged."""
    return torch.linalg.svdvals(w.detach().double()).float()


def energy_rank(w: torch.Tensor, energy: float) -> int:
    """Returns the smallest rank whose singular values keep ``energy`` (in (0, 1]) of ``sum(S^2)``."""
    energy = check_number(energy, "energy", low=0, high=1, low_open=True)
    s2 = singular_values(w).double() ** 2
    kept = torch.cumsum(s2, 0) / s2.sum().clamp(min=1e-30)
    return int(torch.searchsorted(kept, torch.tensor(energy, dtype=kept.dtype) - 1e-12)) + 1


def factorize(layer: nn.Linear, rank: int) -> LowRankLinear:
    """Returns the rank-``rank`` truncated SVD of ``layer`` as a LowRankLinear (its bias copied,
    its train/eval mode kept); ``layer`` is unchanged."""
    w = _layers.weight(layer).detach()
    out_f, in_f = w.shape
    rank = check_int(rank, "rank", low=1, high=min(out_f, in_f))
    U, S, Vh = torch.linalg.svd(w.double(), full_matrices=False)
    root = S[:rank].sqrt()
    new = LowRankLinear(in_f, out_f, rank, bias=layer.bias is not None)
    with torch.no_grad():
        new.first.weight.copy_((root[:, None] * Vh[:rank]).float())
        new.second.weight.copy_((U[:, :rank] * root).float())
        if layer.bias is not None:
            new.second.bias.copy_(layer.bias.detach())
    return new.train(layer.training)


def ranks(model: nn.Module, *, rank: int | None = None, energy: float | None = None,
          fraction: float | None = None, layers: str = "") -> dict[str, int]:  # fmt: skip
    """Returns ``{layer: rank}`` of the Linear layers (whose name contains ``layers``) that the
    chosen rule factorizes with a saving; give exactly one of ``rank``, ``energy``, ``fraction``
    (None or 0: not given)."""
    rule = check_rule(rank, energy, fraction)
    rank, energy, fraction = rule["rank"], rule["energy"], rule["fraction"]
    _check_layers(layers)
    names = [n for n in _layers.linear_targets(model, "lowrank") if layers in n]
    if not names:
        raise ValueError(f"no Linear layer name contains {layers!r}")
    plan = {}
    for name in names:
        w = _layers.weight(model.get_submodule(name))
        out_f, in_f = w.shape
        if rank is not None:
            r = min(rank, out_f, in_f)
        elif energy is not None:
            r = energy_rank(w, energy)
        else:
            r = max(1, math.floor(fraction * out_f * in_f / (out_f + in_f)))
        if r * (out_f + in_f) < out_f * in_f:
            plan[name] = r
    return plan


def check_rule(rank, energy, fraction) -> dict:
    """Returns ``{"rank": ..., "energy": ..., "fraction": ...}`` with the one rule given and the
    others None, if each value is None or within its bounds (``_checks.METHOD_BOUNDS["lowrank"]``,
    where 0 is "not given", as in a config) and exactly one of them is given."""
    rule = {"rank": rank, "energy": energy, "fraction": fraction}
    for name, value in rule.items():
        if value is not None:
            rule[name] = check_option(name, value, "lowrank") or None
    given = [name for name, value in rule.items() if value is not None]
    if len(given) != 1:
        raise ValueError(
            f"lowrank needs exactly one of rank, energy and fraction (> 0), got {given or 'none'}"
        )
    return rule


def _check_layers(layers) -> None:
    if not isinstance(layers, str):
        raise TypeError(f"layers must be a str (part of a layer name), got {type(layers).__name__}")


def lowrank(model: nn.Module, data=None, *, rank: int | None = None, energy: float | None = None,
            fraction: float | None = None, layers: str = "", epochs: int = 0, lr: float = 1e-4,
            samples: int | None = None) -> nn.Module:  # fmt: skip
    """Returns a copy of ``model`` whose Linear layers are replaced by truncated-SVD factorizations,
    then (``epochs`` > 0) distilled from ``model`` on ``data``'s training inputs; ``model`` is unchanged.

    Args:
        model: any model with ``nn.Linear`` layers.
        data: a DataBundle, needed when ``epochs`` > 0.
        rank, energy, fraction: the rule for each layer's rank (exactly one; see the module doc).
        layers: factorize only the Linear layers whose name contains this text ("" : all).
        epochs: distillation epochs after factorizing (``mcv.distill_lm.match``); 0: none.
        lr, samples: the distillation's learning rate and number of training inputs (None or 0: all).

    Every argument is checked before the SVDs (0 for a rule, as in a config, is "not given").
    """
    rule = check_rule(rank, energy, fraction)
    _check_layers(layers)
    epochs, lr, samples = distill_lm.check_repair(
        data, method="lowrank", epochs=epochs, lr=lr, samples=samples
    )
    plan = ranks(model, **rule, layers=layers)
    out = copy.deepcopy(model)
    for name, r in plan.items():
        out = _layers.replace(out, name, factorize(out.get_submodule(name), r))
    return distill_lm.repair(out, model, data, method="lowrank", epochs=epochs, lr=lr, samples=samples)


@register
@dataclass(frozen=True)
class LowRankConfig:
    """Low-rank factorization of Linear layers by truncated SVD (rank, energy or fraction), then distilled."""

    method: ClassVar[str] = "lowrank"
    needs_data: ClassVar[bool] = True
    rank: int = 0
    energy: float = 0.0
    fraction: float = 0.0
    layers: str = ""
    epochs: int = 0
    lr: float = 1e-4
    samples: int = 0  # distil on the first samples training inputs; 0: all of them

    def __post_init__(self):
        check_rule(self.rank, self.energy, self.fraction)
        _check_layers(self.layers)
        for option in ("epochs", "lr", "samples"):
            check_option(option, getattr(self, option), self.method)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        rule = {"rank": self.rank or None, "energy": self.energy or None, "fraction": self.fraction or None}
        distill = {"epochs": self.epochs, "lr": self.lr, "samples": self.samples or None}
        return lowrank(model, data, **rule, layers=self.layers, **distill)
