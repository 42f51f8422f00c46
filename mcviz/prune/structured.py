"""Structured pruning: remove whole conv filters and linear neurons, so the model really shrinks.

Unstructured pruning leaves a dense model full of zeros: the same matrices, the same MACs, the
same latency. ``channels`` instead deletes the lowest-scoring output channels of every Conv2d
and hidden Linear layer, and the matching inputs of the layer that reads them, producing a
smaller dense ``nn.Sequential`` whose MACs and latency fall.

Channels are scored by the L1 or L2 norm of their incoming weights (Li et al., 2017, "Pruning
Filters for Efficient ConvNets"). Here ``sparsity`` is the fraction of channels removed from each
layer (rounded down, so at least one channel always stays), not a fraction of zero weights.

Before fine-tuning, the pruned model computes exactly what the original computes with the
removed channels' outgoing weights set to zero: the kept channels' outputs are unchanged.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn.utils import parametrize

from mcviz import _layers
from mcviz._checks import Range, check_choice, check_model, check_sparsity, shorten
from mcviz.prune.masks import NORMS, channel_scores
from mcviz.registry import register

FRACTION = Range(0, 1, high_open=True)  # of a layer's channels: at least one always stays
SUPPORTED = (nn.Conv2d, nn.Linear, nn.ReLU, nn.MaxPool2d, nn.Flatten)
_SUPPORTED_TEXT = "Conv2d, Linear, ReLU, MaxPool2d, Flatten"


def channels(model: nn.Module, sparsity: float | dict[str, float] = 0.5, *, norm: str = "l1") -> nn.Module:
    """Returns a smaller copy of ``model`` with the lowest-norm channels of each layer removed.

    ``model`` is left unchanged. Every Conv2d and every Linear layer but the last (the output
    layer, whose outputs are the classes) loses ``floor(sparsity * channels)`` output channels;
    the next Conv2d or Linear layer loses the matching inputs (after a Flatten, each conv channel
    owns ``H * W`` consecutive input columns of the Linear layer).

    Other weight layers (Conv1d, ConvTranspose2d...) are kept as they are, with one warning naming
    them; the layer whose outputs they read keeps all its channels too. A model without a Conv2d
    or Linear layer is refused.

    Args:
        model: an ``nn.Sequential`` of Conv2d, Linear, ReLU, MaxPool2d and Flatten layers (the
            mcviz models seed_cnn, lenet5, lenet300 and mlp are), and other weight layers.
        sparsity: fraction of output channels removed from each prunable layer, in [0, 1); or a
            dict {layer name: fraction} for some layers (the others are left whole).
        norm: "l1" or "l2": channels with the smallest norm of incoming weights go first.

    Returns:
        A new dense ``nn.Sequential`` with the same layer names (and ``input_shape``, if the
        model has one). Its layers are plain Linear / Conv2d: the mask of a magnitude-pruned input
        (PrunedLinear / PrunedConv2d) is applied once, its zeros stay, but fine-tuning may regrow
        them; to keep both, prune channels first and then magnitude.

    Example:
        >>> small = channels(model, 0.5)  # doctest: +SKIP
        >>> mcv.measure.model(small).macs < mcv.measure.model(model).macs  # doctest: +SKIP
        True
    """
    return _rebuild(model, _kept(model, sparsity, norm, "channels"))


def kept_channels(
    model: nn.Module, sparsity: float | dict[str, float] = 0.5, *, norm: str = "l1"
) -> dict[str, list[int]]:
    """Returns {layer name: indices of the output channels that ``channels`` keeps}, sorted.

    ``model`` is left unchanged. Options as in ``channels``; every prunable layer is listed (a
    layer left whole lists all its channels). Ties in the norm remove the lower index first.
    """
    return _kept(model, sparsity, norm, "kept_channels")


def _kept(model, sparsity, norm, method: str) -> dict[str, list[int]]:
    check_model(model)
    check_choice(norm, "norm", NORMS)
    per_layer = _check_sparsity_option(sparsity)
    chain = _chain(model, method)
    prunable = [name for name, _, between in chain[:-1] if not _barrier(between)]
    if isinstance(per_layer, dict):
        unknown = [name for name in per_layer if name not in prunable]
        if unknown:
            output = chain[-1][0]
            hint = " (the output layer)" if unknown[0] == output else ""
            if unknown[0] in {n for n, _, _ in chain} and not hint:
                hint = " (its outputs feed a layer channels leaves as it is)"
            raise ValueError(
                f"sparsity names unknown layer {shorten(unknown[0])}{hint}; prunable layers: "
                f"{_layers.listed(prunable, 20)}"
            )
    _layers.warn_unsupported(model, method, action="prunes")  # the one warning
    kept = {}
    for name, layer, between in chain[:-1]:
        if _barrier(between):
            continue
        fraction = per_layer.get(name, 0.0) if isinstance(per_layer, dict) else per_layer
        weight = _layers.weight(layer).detach()
        n = weight.shape[0]
        remove = math.floor(fraction * n + 1e-9)  # 0.57 * 100 is 56.99999999999999 in floats
        scores = channel_scores(weight, norm=norm)
        order = torch.argsort(scores, stable=True)
        kept[name] = sorted(order[remove:].tolist())
    return kept


@register
@dataclass(frozen=True)
class ChannelsConfig:
    """Structured pruning: removes the lowest-norm fraction of channels of each conv / hidden linear layer."""

    method: ClassVar[str] = "channels"
    needs_data: ClassVar[bool] = False
    sparsity: float | dict = 0.5
    norm: str = "l1"

    def __post_init__(self):
        _check_sparsity_option(self.sparsity)
        check_choice(self.norm, "norm", NORMS)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return channels(model, self.sparsity, norm=self.norm)


# ---------------------------------------------------------------- checks


def _check_sparsity_option(sparsity):
    """Returns a float in [0, 1), or a non-empty dict {layer name: such a float}."""
    if not isinstance(sparsity, dict):
        return check_sparsity(sparsity, bounds=FRACTION)  # 1.0 would remove every channel
    if not sparsity:
        raise ValueError(
            "sparsity must be a float in [0, 1) or a non-empty dict {layer name: fraction}, got {}"
        )
    for key, value in sparsity.items():
        if not isinstance(key, str):
            raise TypeError(f"sparsity dict keys must be layer names (str), got {shorten(key)}")
        check_sparsity(value, f"sparsity[{shorten(key)}]", bounds=FRACTION)
    return dict(sparsity)


def _barrier(between: list[nn.Module]) -> bool:
    """True when a layer's outputs pass through a weight layer channels leaves as it is."""
    return any(_layers.unhandled(m) for m in between)


def _kind(m: nn.Module) -> type | None:
    """Returns the supported class ``m`` is, else None. A Linear / Conv2d under a torch
    parametrization, or mcviz's PrunedLinear / PrunedConv2d (they have ``effective_weight``),
    counts as the plain layer: its effective weight is what gets pruned."""
    cls = type(m)
    if cls in SUPPORTED:
        return cls
    if parametrize.is_parametrized(m) or callable(getattr(m, "effective_weight", None)):
        for base in (nn.Conv2d, nn.Linear):
            if isinstance(m, base):
                return base
    return None


def _chain(model: nn.Module, method: str) -> list[tuple[str, nn.Module, list[nn.Module]]]:
    """Checks ``model`` and returns its Conv2d / Linear layers in order, each with the modules
    that follow it up to the next such layer (other weight layers among them)."""
    if not isinstance(model, nn.Sequential):
        raise ValueError(
            f"channels needs an nn.Sequential of {_SUPPORTED_TEXT} layers, got {type(model).__name__}"
        )
    _layers.transformable(model, method, warn=False)  # refuses a model without Conv2d / Linear
    chain: list[tuple[str, nn.Module, list[nn.Module]]] = []
    for name, m in model.named_children():
        kind = _kind(m)
        if kind is None and _layers.unhandled(m):
            if chain:
                chain[-1][2].append(m)  # a barrier: left as it is, and so are its input channels
            continue
        if kind is None:
            raise ValueError(
                f"channels cannot prune a model with layer {name!r} of type {type(m).__name__}; "
                f"supported layers: {_SUPPORTED_TEXT}"
            )
        if kind is nn.Conv2d and m.groups != 1:
            raise ValueError(
                f"channels supports Conv2d with groups=1 only; layer {name!r} has groups={m.groups}"
            )
        if kind in (nn.Conv2d, nn.Linear):
            chain.append((name, m, []))
        elif chain:
            chain[-1][2].append(m)
    if not any(not _barrier(between) for _, _, between in chain[:-1]):
        raise ValueError(
            "channels needs at least one Conv2d or hidden Linear layer before the output layer, "
            f"got {len(chain)} Conv2d/Linear layer(s)"
            + (" (whose outputs feed layers it leaves as they are)" if len(chain) > 1 else "")
        )
    for (name, layer, between), (next_name, nxt, _) in zip(chain, chain[1:], strict=False):
        if not _barrier(between):
            _check_link(name, layer, between, next_name, nxt)
    return chain


def _check_link(name, layer, between, next_name, nxt) -> None:
    for m in between:
        if isinstance(m, nn.Flatten) and (m.start_dim != 1 or m.end_dim != -1):
            raise ValueError(
                f"channels supports Flatten() over all but the batch dim only; between {name!r} and "
                f"{next_name!r} there is {m}"
            )
    out = _layers.weight(layer).shape[0]
    kinds = [_kind(m) for m in between]
    flat = nn.Flatten in kinds
    if isinstance(layer, nn.Conv2d) and isinstance(nxt, nn.Conv2d):
        ok = not flat and nxt.in_channels == out
    elif isinstance(layer, nn.Conv2d):
        after = kinds[kinds.index(nn.Flatten) + 1 :] if flat else [None]
        ok = flat and all(k is nn.ReLU for k in after) and nxt.in_features % out == 0
    elif isinstance(nxt, nn.Linear):
        ok = nn.MaxPool2d not in kinds and nxt.in_features == out
    else:
        ok = False
    if not ok:
        raise ValueError(
            f"channels cannot follow the outputs of {name!r} into {next_name!r} through "
            f"{[type(m).__name__ for m in between]}; supported: Conv2d -> ReLU/MaxPool2d -> Conv2d, "
            "Conv2d -> ReLU/MaxPool2d -> Flatten -> Linear, Linear -> ReLU -> Linear"
        )


# ---------------------------------------------------------------- the pruning itself


def _rebuild(model: nn.Sequential, kept: dict[str, list[int]]) -> nn.Sequential:
    layers = OrderedDict()
    inputs: torch.Tensor | None = None  # kept input indices of the next Conv2d/Linear layer
    width = None  # output channels of the previous Conv2d/Linear layer
    for name, m in model.named_children():
        if not isinstance(m, (nn.Conv2d, nn.Linear)):
            layers[name] = copy.deepcopy(m)
            continue
        weight = _layers.weight(m).detach()
        in_idx = slice(None)
        if inputs is not None:
            if isinstance(m, nn.Linear) and m.in_features != width:  # a conv's channels, flattened
                hw = m.in_features // width
                in_idx = (inputs[:, None] * hw + torch.arange(hw)).reshape(-1)
            else:
                in_idx = inputs
        out_idx = torch.tensor(kept[name]) if name in kept else slice(None)
        new_weight = weight[out_idx][:, in_idx]
        bias = m.bias.detach()[out_idx] if m.bias is not None else None
        layers[name] = _layers.plain_like(m, new_weight, bias)
        width = weight.shape[0]
        inputs = torch.tensor(kept[name]) if name in kept else None
    out = nn.Sequential(layers)
    if hasattr(model, "input_shape"):
        out.input_shape = model.input_shape
    out.train(model.training)
    return out
