"""Private helpers of ``mcv.tradeoff``: the penalized training of ``lagrangian`` and argument checks.

- ``train_penalized`` runs ``mcv.train.fit`` with ``lambda * penalty(weights)`` as its regularizer;
  ``threshold_prune`` zeroes the weights below a fraction of their layer's largest.
- ``one_method``: the checked method of a one-method spec, for ``grid`` (its other checks are
  ``mcviz._checks``').

The search cache that lived here is ``mcv.engine``'s row cache now.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from mcviz import prune, registry, train
from mcviz._checks import shorten

PENALTIES = ("l1", "l0")
L0_EPS = 1e-4  # w^2 / (w^2 + eps) is ~1 for |w| >> 0.01 and ~0 for |w| << 0.01


# ---------------------------------------------------------------- Lagrangian training


def weights(model: nn.Module) -> list[torch.Tensor]:
    """Returns the weight tensors of the Linear / Conv2d layers (biases are not penalized)."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def penalty(model: nn.Module, kind: str) -> torch.Tensor:
    """Returns the mean penalty over all Linear / Conv2d weights: ``|w|`` ("l1") or the smooth
    nonzero count ``w^2 / (w^2 + eps)`` ("l0"); a mean, so lambda does not scale with model size."""
    w = torch.cat([t.reshape(-1) for t in weights(model)])
    if kind == "l1":
        return w.abs().mean()
    return (w * w / (w * w + L0_EPS)).mean()


def train_penalized(
    model: nn.Module, data, *, lam: float, kind: str, epochs: int, lr: float, seed: int, batch_size: int = 64
) -> None:
    """Trains ``model`` in place with ``mcv.train.fit`` on cross-entropy + ``lam * penalty``."""
    regularizer = (lambda m: lam * penalty(m, kind)) if lam else None
    train.fit(model, data, epochs=epochs, lr=lr, seed=seed, batch_size=batch_size, progress=False,
              regularizer=regularizer)  # fmt: skip


def threshold_prune(model: nn.Module, threshold: float) -> nn.Module:
    """Returns a copy of ``model`` with every weight ``|w| < threshold * max|w|`` of its layer
    pruned (``mcv.prune.magnitude`` with per-layer sparsities, so storage is counted sparse);
    ``model`` is left unchanged. Layers with no weight under the threshold stay dense."""
    plan = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            w = m.weight.detach().abs()
            below = int((w < threshold * w.max()).sum())
            if below:
                plan[name] = below / w.numel()
    if not plan:
        return prune.finalize(model)  # a plain copy
    return prune.magnitude(model, plan, scope="layer")


# ---------------------------------------------------------------- arguments of grid


def one_method(name, spec, option) -> tuple[str, str]:
    """Returns ``(method, other options)`` of a one-method spec whose method takes ``option``."""
    takes = sorted(
        m for m, cls in registry.METHODS.items() if option in {f.name for f in dataclasses.fields(cls)}
    )
    if not isinstance(spec, str):
        raise TypeError(f"{name} must be one method spec such as {takes[0]!r}, got {shorten(spec)}")
    if "+" in spec:
        raise ValueError(f"{name} must be one method spec such as {takes[0]!r}, got {shorten(spec)}")
    (config,) = registry.parse(spec)
    method, _, rest = spec.partition(":")
    if option not in {f.name for f in dataclasses.fields(config)}:
        raise ValueError(
            f"{name} method {config.method!r} takes no {option} option; choose one of {', '.join(takes)}"
        )
    if any(item.partition("=")[0].strip() == option for item in rest.split(",")):
        raise ValueError(f"{name} spec {spec!r} sets {option}; grid sets it, leave it out")
    return method.strip(), rest.strip()
