"""The one place that touches global random-number state."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed(n: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators with ``n``.

    Library functions never call this; they take a ``seed`` argument and use a private
    generator, so calling them leaves global state alone.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"seed must be an int >= 0, got {n!r}")
    random.seed(n)
    np.random.seed(n % 2**32)
    torch.manual_seed(n)
