"""Calibration observers: they watch the values a tensor takes (a layer's input, batch after
batch) and choose the range that activation quantization covers.

- ``"minmax"``: the smallest and largest values seen. Nothing is clipped, but one outlier
  stretches the grid and wastes codes on values that almost never occur.
- ``"percentile"``: the ``percentile``-th percentile (99.99 by default) of ``|x|`` (symmetric)
  or the ``100 - p`` and ``p`` percentiles of ``x`` (asymmetric): the rare extremes are clipped.
- ``"mse"``: tries ``grid`` candidate ranges, the min-max range shrunk by the factors
  ``k / grid`` for k = 1..grid, and keeps the one whose quantization of the observed values has
  the smallest mean squared error. The min-max range is one of the candidates, so its error is
  never larger than min-max's.

A range becomes ``(scale, zero_point)`` by :func:`mcviz.quantize.qparams` of its two ends, so
every convention of ``tensor.py`` holds (the range is widened to contain 0; symmetric codes have
zero point 0). Observers are deterministic: the same values in the same order give the same
result. Percentile and MSE observers keep the observed values (a few MB for 8 batches of 64).

Example:
    >>> obs = observer("minmax")
    >>> obs.observe(torch.tensor([-1.0, 0.5, 2.0]))
    >>> obs.range()
    (-1.0, 2.0)
"""

from __future__ import annotations

import numpy as np
import torch

from mcviz._checks import check_choice, check_int, check_number
from mcviz.quantize.tensor import _check_input, qparams, qrange

OBSERVERS = ("minmax", "percentile", "mse")
_MAX_VALUES = 2**17  # the MSE search uses at most this many values, evenly strided
MAX_GRID = 1000  # candidate ranges of the MSE search


def observer(name: str, **options) -> Observer:
    """Returns a new observer of the kind ``name``, one of :data:`OBSERVERS`.

    Options: ``percentile`` (in (50, 100], for "percentile"), ``grid`` (an int in [1, 1000], for
    "mse").
    """
    check_choice(name, "observer", OBSERVERS)
    return {"minmax": MinMaxObserver, "percentile": PercentileObserver, "mse": MSEObserver}[name](**options)


class Observer:
    """Base class: accumulates what it observes; ``range`` and ``qparams`` read the result."""

    def __init__(self) -> None:
        self.min: float | None = None
        self.max: float | None = None
        self.count = 0

    def observe(self, x: torch.Tensor) -> None:
        """Records the values of ``x`` (any shape, finite floats); ``x`` is left unchanged."""
        _check_input(x, None)
        if x.numel() == 0:
            return
        x = x.detach().float()
        lo, hi = float(x.min()), float(x.max())
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        self.count += x.numel()
        self._keep(x)

    def range(self, symmetric: bool = False, bits: int = 8) -> tuple[float, float]:
        """Returns the chosen ``(lo, hi)`` range of the observed values."""
        if self.min is None:
            raise ValueError("the observer has seen no values yet: call observe(tensor) first")
        return self._range(symmetric, bits)

    def qparams(self, bits: int = 8, symmetric: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(scale, zero_point)`` (0-d float32 and int32 tensors) for the chosen range,
        with the conventions of :func:`mcviz.quantize.qparams`."""
        lo, hi = self.range(symmetric, bits)
        return qparams(torch.tensor([lo, hi], dtype=torch.float32), bits, symmetric=symmetric)

    def _keep(self, x):
        pass

    def _range(self, symmetric, bits):
        return self.min, self.max

    def _values(self) -> torch.Tensor:
        return torch.cat(self._seen) if self._seen else torch.zeros(0)


class MinMaxObserver(Observer):
    """The range ``[min, max]`` of every value seen."""


class PercentileObserver(Observer):
    """The range up to the ``percentile``-th percentile: rare extreme values are clipped."""

    def __init__(self, percentile: float = 99.99) -> None:
        super().__init__()
        self.percentile = check_number(percentile, "percentile", low=50, high=100, low_open=True)
        self._seen: list[torch.Tensor] = []

    def _keep(self, x):
        self._seen.append(x.flatten().clone())

    def _range(self, symmetric, bits):
        v = self._values().double().numpy()
        if symmetric:
            t = float(np.percentile(np.abs(v), self.percentile))
            return -t, t
        lo = float(np.percentile(v, 100 - self.percentile))
        hi = float(np.percentile(v, self.percentile))
        return lo, hi


class MSEObserver(Observer):
    """The range, among ``grid`` shrunk copies of ``[min, max]``, that quantizes the observed
    values with the smallest mean squared error (ties go to the wider range)."""

    def __init__(self, grid: int = 100) -> None:
        super().__init__()
        self.grid = check_int(grid, "grid", low=1, high=MAX_GRID)  # each candidate: one pass over the values
        self._seen: list[torch.Tensor] = []

    def _keep(self, x):
        self._seen.append(x.flatten().clone())

    def _range(self, symmetric, bits):
        v = self._values()
        if v.numel() > _MAX_VALUES:
            v = v[:: -(-v.numel() // _MAX_VALUES)]
        best, best_err = (self.min, self.max), None
        for k in range(self.grid, 0, -1):  # widest first, so a tie keeps the wider range
            f = k / self.grid
            lo, hi = self.min * f, self.max * f
            if symmetric:
                t = max(-lo, hi)
                lo, hi = -t, t
            err = quantization_mse(v, lo, hi, bits, symmetric)
            if best_err is None or err < best_err:
                best, best_err = (lo, hi), err
        return best


def quantization_mse(x: torch.Tensor, lo: float, hi: float, bits: int = 8, symmetric: bool = False) -> float:
    """Returns the mean squared error of quantizing ``x`` on the grid that covers ``[lo, hi]``
    (values outside are clipped); ``x`` is left unchanged.

    The arithmetic is that of :func:`mcviz.quantize.quantize` and ``dequantize`` (``x * (1 /
    scale)``, round half to even, clamp), inlined without their checks because the MSE search
    calls it ``grid`` times per layer.
    """
    scale, zero_point = qparams(torch.tensor([lo, hi], dtype=torch.float32), bits, symmetric=symmetric)
    qmin, qmax = qrange(bits, symmetric=symmetric)
    zp = zero_point.to(torch.float32)
    x = x.detach().float()
    q = (torch.round(x * (1.0 / scale)) + zp).clamp(qmin, qmax)
    back = (q - zp) * scale  # float32, as dequantize computes it
    return float((back.double() - x.double()).pow(2).mean())
