"""The one place that touches global random-number state."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def global_rng_kept():
    """Runs the block and then puts Python's, NumPy's and PyTorch's global generators back as they were.

    For lazy imports of other packages: some draw from a global generator when first imported
    (scikit-learn's progress-bar callback imports rich, whose ``Style`` draws from ``random``),
    which would make a library call's effect on global state depend on what was imported before.
    """
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
