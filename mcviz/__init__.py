"""mcviz: learn, teach and measure neural-network model compression.

Typical use in a notebook::

    import mcviz as mcv
    data = mcv.data.load("digits")
    model = mcv.models.build("mlp", input_shape=data.input_shape, hidden=(64,))
    mcv.train.fit(model, data, epochs=2)
    small = mcv.compress(model, mcv.quantize.FP16Config())
    table = mcv.measure.table([mcv.measure.model(m, data, label=l)
                               for l, m in [("fp32", model), ("fp16", small)]])
    mcv.plots.accuracy_vs_size(table)
"""

from __future__ import annotations

__version__ = "0.1.0"

from mcviz import (
    data,
    distill,
    engine,
    grading,
    measure,
    models,
    plots,
    prune,
    quantize,
    registry,
    sweeps,
    timing,
    tradeoff,
    train,
)
from mcviz._seed import seed
from mcviz.grading import check
from mcviz.registry import compress

__all__ = [
    "__version__",
    "check",
    "compress",
    "data",
    "distill",
    "engine",
    "grading",
    "measure",
    "models",
    "plots",
    "prune",
    "quantize",
    "registry",
    "seed",
    "sweeps",
    "timing",
    "tradeoff",
    "train",
]


def __getattr__(name: str):
    # Heavy, top-of-the-stack modules load on first use so `import mcviz` stays fast.
    if name in ("reports", "widgets"):
        import importlib

        return importlib.import_module(f"mcviz.{name}")
    raise AttributeError(f"module 'mcviz' has no attribute {name!r}")
