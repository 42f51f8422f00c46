"""The one place that touches global random-number state."""

from __future__ import annotations

import random

import numpy as np
import torch

from mcviz._checks import check_seed


def seed(n: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators with ``n``, an int in [0, 2**32 - 1].

    Library functions never call this; they take a ``seed`` argument and use a private
    generator, so calling them leaves global state alone.
    """
    n = check_seed(n)  # [0, 2**32 - 1]: what numpy's and torch's generators all take
    random.seed(n)
    np.random.seed(n)
    torch.manual_seed(n)
