"""Private helpers of ``mcv.tradeoff``: the penalized training of ``lagrangian`` and argument checks.

- ``train_penalized`` runs ``mcv.train.fit`` with ``lambda * penalty(weights)`` as its regularizer;
  ``threshold_prune`` zeroes the weights below a fraction of their layer's largest.
- The argument checks of ``lagrangian`` and ``grid``.

The search cache that lived here is ``mcv.engine``'s row cache now.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np
import torch
from torch import nn

from mcviz import prune, registry, train

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


# ---------------------------------------------------------------- argument checks


def is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_)) and not math.isnan(x)


def check_lambdas(lambdas) -> list[float]:
    ok = isinstance(lambdas, (list, tuple, np.ndarray)) and len(lambdas) > 0
    if not ok or not all(is_number(v) and 0 <= v < math.inf for v in lambdas):
        raise ValueError(f"lambdas must be a non-empty list of numbers >= 0, got {lambdas!r}")
    labels = [f"{v:g}" for v in lambdas]
    repeated = [v for i, v in enumerate(labels) if v in labels[:i]]
    if repeated:
        raise ValueError(f"lambdas holds {repeated[0]} more than once; each lambda is one row")
    return [float(v) for v in lambdas]


def unique(name, values, ok, what) -> list:
    if (
        isinstance(values, (str, bytes))
        or not isinstance(values, (list, tuple, range, np.ndarray))
        or not len(values)
    ):
        raise ValueError(f"{name} must be a non-empty list of {what}, got {values!r}")
    for v in values:
        if not ok(v):
            raise ValueError(f"{name} must hold {what}, got {v!r}")
    return list(dict.fromkeys(values))


def one_method(name, spec, option) -> tuple[str, str]:
    """Returns ``(method, other options)`` of a one-method spec whose method takes ``option``."""
    takes = sorted(
        m for m, cls in registry.METHODS.items() if option in {f.name for f in dataclasses.fields(cls)}
    )
    if not isinstance(spec, str) or "+" in spec:
        raise ValueError(f"{name} must be one method spec such as {takes[0]!r}, got {spec!r}")
    (config,) = registry.parse(spec)
    method, _, rest = spec.partition(":")
    if option not in {f.name for f in dataclasses.fields(config)}:
        raise ValueError(
            f"{name} method {config.method!r} takes no {option} option; choose one of {', '.join(takes)}"
        )
    if any(item.partition("=")[0].strip() == option for item in rest.split(",")):
        raise ValueError(f"{name} spec {spec!r} sets {option}; grid sets it, leave it out")
    return method.strip(), rest.strip()
