"""What the data-aware methods (GPTQ, AWQ, SmoothQuant) need to know about a layer's inputs.

- :func:`batches`: calibration inputs from the TRAINING split of a DataBundle (images, character
  windows or token ids), in a fixed order; token ids are grouped by length so little padding is
  computed;
- :func:`stages`: the Linear layers in the order the forward pass calls them, grouped by shared
  input (a transformer's query, key and value read the same tensor);
- :func:`collect`: runs the model on the batches with forward pre-hooks on some layers and hands
  every input to a function, stopping each pass after the last watched layer (the rest of the
  network is not computed);
- :func:`input_ranges` / :func:`outliers`: the largest ``|x_j|`` of every input channel of every
  Linear layer, and which layers have outlier channels (SmoothQuant's and AWQ's motivation).

Nothing here changes the model.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch
from torch import nn

from mcviz._checks import check_data, check_int


class _Stop(Exception):
    """Raised inside a hook to end a forward pass early."""


def check_calibration_data(data):
    """Returns ``data`` if it is a DataBundle. Raises ValueError when it is None (missing, as
    ``compress`` says too), TypeError when it is anything else."""
    if data is None:
        raise ValueError("calibration needs data=, a DataBundle with training inputs, got None")
    return check_data(data)


def batches(data, samples: int, *, batch_size: int = 16) -> list[torch.Tensor]:
    """Returns the first ``samples`` training inputs of ``data`` in batches of ``batch_size``.

    Integer inputs (token ids, 0 = padding) are ordered by length first, so a batch holds rows of
    similar length. Raises as :func:`check_calibration_data`, and ValueError when ``data`` has no
    training inputs.
    """
    check_calibration_data(data)
    samples = check_int(samples, "samples")  # the shared bounds of calibration samples
    batch_size = check_int(batch_size, "batch_size", low=1, high=100_000)
    X = getattr(data.train, "tensors", (None,))[0]
    if not isinstance(X, torch.Tensor) or not len(X):
        raise ValueError("calibration needs training inputs; the train split of data is empty")
    X = X[:samples]
    if not X.is_floating_point():
        X = X[torch.argsort((X != 0).sum(1), stable=True)]
    return [X[i : i + batch_size] for i in range(0, len(X), batch_size)]


def stages(model: nn.Module, names: list[str], probe: torch.Tensor) -> list[list[str]]:
    """Returns ``names`` grouped into stages in call order: layers called on the same input tensor
    share a stage; layers the forward pass never calls are left out."""
    order: list[tuple[str, torch.Tensor]] = []  # the inputs are kept alive: their ids stay unique
    hooks = [
        model.get_submodule(n).register_forward_pre_hook(lambda m, args, n=n: order.append((n, args[0])))
        for n in names
    ]
    try:
        with torch.no_grad():
            _eval(model, lambda: model(probe))
    finally:
        for h in hooks:
            h.remove()
    out: list[list[str]] = []
    seen, last_input = set(), None
    for name, x in order:
        if name in seen:
            continue
        seen.add(name)
        if out and x is last_input:
            out[-1].append(name)
        else:
            out.append([name])
        last_input = x
    return out


def collect(model: nn.Module, names: list[str], inputs: list[torch.Tensor],
            fn: Callable[[str, torch.Tensor], None], *, stop: bool = True) -> None:  # fmt: skip
    """Calls ``fn(name, x)`` with every input ``x`` (flattened to ``(rows, in_features)``) of every
    layer in ``names``, over all ``inputs``; with ``stop`` each pass ends after the last of them."""
    pending: set[str] = set()

    def hook(name):
        def record(module, args):
            x = args[0].detach()
            fn(name, x.reshape(-1, x.shape[-1]))
            pending.discard(name)
            if stop and not pending:
                raise _Stop

        return record

    hooks = [model.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        with torch.no_grad():
            for x in inputs:
                pending.update(names)
                try:
                    _eval(model, lambda x=x: model(x))
                except _Stop:
                    pass
    finally:
        for h in hooks:
            h.remove()


def input_ranges(model: nn.Module, data, *, samples: int = 32) -> dict[str, torch.Tensor]:
    """Returns ``{layer: max |x_j| per input channel}`` for every ``nn.Linear`` of ``model`` over
    ``samples`` training inputs of ``data``; ``model`` is unchanged."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    ranges: dict[str, torch.Tensor] = {}

    def keep(name, x):
        m = x.abs().amax(0)
        ranges[name] = m if name not in ranges else torch.maximum(ranges[name], m)

    collect(model, names, batches(data, samples), keep, stop=False)
    return ranges


def outliers(ranges: dict[str, torch.Tensor], *, top: int = 3) -> pd.DataFrame:
    """Returns one row per layer: its input channels' median maximum, its ``top`` largest channels
    and their ratio to the median (``ratio`` of the largest: SmoothQuant's "outlier channels" are
    the ones far above 1), sorted by ratio, largest first."""
    rows = []
    for name, r in ranges.items():
        median = float(r.median())
        values, channels = torch.topk(r, min(top, len(r)))
        rows.append({
            "layer": name, "channels": len(r), "median_max": median,
            "top_channels": [int(c) for c in channels], "top_max": [round(float(v), 3) for v in values],
            "ratio": float(values[0]) / median if median > 0 else float("inf"),
        })  # fmt: skip
    return pd.DataFrame(rows).sort_values("ratio", ascending=False, kind="stable").reset_index(drop=True)


def _eval(model: nn.Module, run):
    was_training = model.training
    model.eval()
    try:
        return run()
    finally:
        model.train(was_training)
