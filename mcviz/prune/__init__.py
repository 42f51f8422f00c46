"""Pruning: ``mcv.prune``.

- ``masks``: tensor-level masks (``magnitude_mask``, ``random_mask``) and per-channel scores
  (``channel_scores``); ``sparsity`` is always the resulting fraction of zero weights in [0, 1].
- ``unstructured``: ``magnitude`` (per layer or global) and ``random`` pruning of a model into
  ``PrunedLinear`` / ``PrunedConv2d`` layers that keep their zeros while fine-tuning,
  ``finalize`` back to plain layers, and the registered ``MagnitudeConfig`` / ``RandomConfig``.
- ``structured``: ``channels`` removes whole conv filters / linear neurons (a smaller dense
  model), ``kept_channels`` tells which stay, and the registered ``ChannelsConfig``.
- ``sensitivity``: ``sensitivity`` scans one layer at a time; ``allocate`` picks per-layer
  sparsities under a global budget from the scan.
- ``schedules``: ``one_shot`` and ``iterative`` prune + fine-tune, ``zhu_gupta`` (the cubic
  schedule), ``GradualPruner`` (its stateful ``step()``) and ``gradual`` training.
- ``semistructured``: N:M masks (``nm_mask``; 2:4 keeps two of every four weights of a row),
  ``semistructured`` and ``SemiStructuredConfig``: their storage is exact, their speed needs a GPU.
- ``lottery``: ``lottery_ticket`` (iterative magnitude pruning with rewinding vs random
  re-initialization of the same mask) and ``rewound``.

Every model-level function returns a new model and leaves its input unchanged.
"""

from mcviz.prune.lottery import lottery_ticket, rewound
from mcviz.prune.masks import channel_scores, magnitude_mask, random_mask
from mcviz.prune.schedules import GradualPruner, gradual, iterative, one_shot, weight_sparsity, zhu_gupta
from mcviz.prune.semistructured import SemiStructuredConfig, SemiStructuredLinear, nm_mask, semistructured
from mcviz.prune.sensitivity import allocate, sensitivity
from mcviz.prune.structured import ChannelsConfig, channels, kept_channels
from mcviz.prune.unstructured import (
    MagnitudeConfig,
    PrunedConv2d,
    PrunedLinear,
    RandomConfig,
    finalize,
    magnitude,
    random,
)

__all__ = [
    "ChannelsConfig",
    "SemiStructuredConfig",
    "SemiStructuredLinear",
    "nm_mask",
    "semistructured",
    "allocate",
    "channels",
    "kept_channels",
    "sensitivity",
    "MagnitudeConfig",
    "PrunedConv2d",
    "PrunedLinear",
    "RandomConfig",
    "channel_scores",
    "finalize",
    "magnitude",
    "magnitude_mask",
    "random",
    "random_mask",
    "GradualPruner",
    "gradual",
    "iterative",
    "lottery_ticket",
    "one_shot",
    "rewound",
    "weight_sparsity",
    "zhu_gupta",
]
