"""Private helpers of ``mcv.tradeoff``: the search cache and the penalized training of ``lagrangian``.

- The search cache keeps one JSON file per measured configuration in ``mcv.train.cache_dir()``,
  keyed by the sha256 of everything that decides its numbers; files are written atomically and an
  unreadable one is recomputed with a warning.
- ``train_penalized`` runs ``mcv.train.fit`` with ``lambda * penalty(weights)`` as its regularizer;
  ``threshold_prune`` zeroes the weights below a fraction of their layer's largest.
- The argument checks of ``lagrangian`` and ``grid``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import numbers
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mcviz import measure, prune, registry, train

CACHE_FORMAT = 1  # bump when compressing or measuring changes what a cached row means
PENALTIES = ("l1", "l0")
L0_EPS = 1e-4  # w^2 / (w^2 + eps) is ~1 for |w| >> 0.01 and ~0 for |w| << 0.01


# ---------------------------------------------------------------- search cache


def cache_key(model_name: str, data, *, epochs: int, seed: int, spec: str, latency: bool) -> str:
    """Returns the sha256 hex digest naming one configuration's cached Measurement."""
    blob = json.dumps(
        {
            "model": model_name,
            "data": data.fingerprint,
            "epochs": epochs,
            "seed": seed,
            "spec": spec,
            "torch": torch.__version__,
            "format": CACHE_FORMAT,
            "train_format": train.CACHE_FORMAT,  # a retrained baseline must not reuse old rows
            "latency": bool(latency),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_path(key: str) -> Path:
    """Returns the file of one cached search row."""
    return train.cache_dir() / f"search-{key[:24]}.json"


def load_row(key: str) -> measure.Measurement | None:
    """Returns the cached Measurement for ``key``, or None when there is none or it is unreadable
    (with a warning; the caller recomputes and overwrites it)."""
    path = cache_path(key)
    if not path.exists():
        return None
    try:
        entry = json.loads(path.read_text())
        if entry["key"] != key or set(entry["row"]) != set(measure.FIELDS):
            raise KeyError("key or fields differ")
        return measure.Measurement(**entry["row"])
    except Exception as e:  # noqa: BLE001 - any unreadable entry is recomputed
        warnings.warn(f"cache entry {path} is unreadable ({type(e).__name__}); recomputing", stacklevel=3)
        return None


def store_row(key: str, row: measure.Measurement) -> None:
    """Writes ``row`` under ``key`` atomically (a temporary file, then ``os.replace``)."""
    path = cache_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"key": key, "format": CACHE_FORMAT, "row": dataclasses.asdict(row)}, f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
