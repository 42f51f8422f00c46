"""Layer surgery in one place: read, build, fill and replace the Linear / Conv2d layers of a model.

Every technique (prune, quantize) that turns a layer into another goes through these helpers, so
that a new method (Deep Compression, transformers) does not grow its own copy. "Linear / Conv2d"
means ``nn.Linear`` / ``nn.Conv2d`` and their subclasses: mcviz's pruned, quantized and shared
layers, and layers under a ``torch.nn.utils.parametrize`` parametrization.

Policies (every helper follows them; a caller that wants something else says so):

- dtype and device: a layer built from a weight takes that weight's dtype and device (its bias is
  converted to them). A caller that needs another dtype converts the weight first (``int8`` passes
  float32). Filling a layer with :func:`copy_into` converts into the dtype the layer already has
  (mcviz's quantized and shared layers keep float32 scales, codebooks and biases).
- train / eval: a new layer copies the train/eval mode of the layer it is made from; a caller that
  needs eval mode (``int8``) calls ``.eval()``.
- global RNG: nothing here draws from it. Layers are made on the meta device, where the
  constructor's initialization allocates and draws nothing, and then given their tensors.
- nothing here changes its inputs, except the layer :func:`copy_into` fills and the model
  :func:`replace` edits.

This module imports only torch: every technique may import it, and it imports none of them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

KINDS = (nn.Linear, nn.Conv2d)


def kind(layer: nn.Module | type) -> type:
    """Returns ``nn.Conv2d`` or ``nn.Linear``, whichever ``layer`` (a module or a class) is; raises
    ValueError for anything else."""
    cls = layer if isinstance(layer, type) else type(layer)
    for base in (nn.Conv2d, nn.Linear):
        if issubclass(cls, base):
            return base
    raise ValueError(f"layer must be a torch.nn.Linear or torch.nn.Conv2d, got {cls.__name__}")


def constructor_args(layer: nn.Module) -> dict[str, Any]:
    """Returns the keyword arguments of ``nn.Linear`` / ``nn.Conv2d`` that build a layer shaped and
    configured like ``layer`` (without device and dtype); ``layer`` is left unchanged.

    Linear: ``in_features``, ``out_features``, ``bias``. Conv2d: ``in_channels``,
    ``out_channels``, ``kernel_size``, ``stride``, ``padding``, ``dilation``, ``groups``,
    ``bias``, ``padding_mode``. ``bias`` is True when the layer has one.

    Example:
        >>> constructor_args(nn.Linear(4, 2, bias=False))
        {'in_features': 4, 'out_features': 2, 'bias': False}
    """
    if kind(layer) is nn.Linear:
        return {
            "in_features": layer.in_features,
            "out_features": layer.out_features,
            "bias": layer.bias is not None,
        }
    return {
        "in_channels": layer.in_channels,
        "out_channels": layer.out_channels,
        "kernel_size": layer.kernel_size,
        "stride": layer.stride,
        "padding": layer.padding,
        "dilation": layer.dilation,
        "groups": layer.groups,
        "bias": layer.bias is not None,
        "padding_mode": layer.padding_mode,
    }


def new_like(cls: type, layer: nn.Module, **options) -> nn.Module:
    """Returns a new ``cls`` layer (a Linear / Conv2d subclass) built with ``layer``'s constructor
    arguments plus ``options``, as ``cls`` initializes it; ``layer`` is left unchanged.

    Raises ValueError when ``layer`` is not the kind (Linear or Conv2d) that ``cls`` is.
    """
    base = kind(cls)
    if not isinstance(layer, base):
        raise ValueError(f"module must be a torch.nn.{base.__name__}, got {type(layer).__name__}")
    return cls(**constructor_args(layer), **options)


def plain_like(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """Returns a plain ``nn.Linear`` / ``nn.Conv2d`` configured like ``layer`` that holds copies of
    ``weight`` and ``bias`` (None: no bias); ``layer``, ``weight``, ``bias`` and the global RNG are
    left unchanged.

    The sizes come from ``weight`` (``(out, in)``, or ``(out, in / groups, *kernel)``), so they may
    differ from ``layer``'s, as structured pruning needs; a Conv2d keeps ``layer``'s kernel size,
    stride, padding, dilation, groups and padding mode. The new layer takes ``weight``'s dtype and
    device (the bias is converted to them) and ``layer``'s train/eval mode.

    Example:
        >>> conv = nn.Conv2d(1, 4, 3, stride=2, padding_mode="reflect", padding=1)
        >>> small = plain_like(conv, conv.weight[:2], conv.bias[:2])
        >>> small.out_channels, small.stride, small.padding_mode
        (2, (2, 2), 'reflect')
    """
    args = constructor_args(layer)
    if kind(layer) is nn.Linear:
        args.update(out_features=weight.shape[0], in_features=weight.shape[1])
    else:
        args.update(out_channels=weight.shape[0], in_channels=weight.shape[1] * layer.groups)
    args["bias"] = bias is not None
    # on the meta device the constructor's initialization allocates nothing and draws nothing
    new = kind(layer)(**args, device="meta", dtype=weight.dtype)
    new.weight = nn.Parameter(weight.detach().clone())
    new.bias = nn.Parameter(bias.detach().to(weight.dtype).clone()) if bias is not None else None
    new.train(layer.training)
    return new


def weight(layer: nn.Module) -> torch.Tensor:
    """Returns the weight ``layer`` computes with (not detached); ``layer`` is left unchanged.

    That is ``effective_weight()`` for a layer that has one (mcviz's pruned layers: ``weight *
    mask``), else ``layer.weight``: the stored Parameter of a plain layer, the parametrized value
    of a parametrized one, the dequantized buffer of a quantized one, ``codebook[indices]`` of a
    shared one.
    """
    effective = getattr(layer, "effective_weight", None)
    return effective() if callable(effective) else layer.weight


def mask(layer: nn.Module) -> torch.Tensor | None:
    """Returns a bool copy of ``layer``'s ``mask`` buffer (True = kept) when it has one shaped like
    its weight with only 0/1 values (a pruned layer), else None; ``layer`` is left unchanged."""
    kept = layer._buffers.get("mask")
    if not isinstance(kept, torch.Tensor) or tuple(kept.shape) != tuple(weight(layer).shape):
        return None
    if kept.dtype != torch.bool and not bool(((kept == 0) | (kept == 1)).all()):
        return None
    return kept.detach().bool().clone()


def copy_into(dst: nn.Module, src: nn.Module) -> nn.Module:
    """Returns ``dst`` holding ``src``'s computed weight (:func:`weight`) and bias, in ``src``'s
    train/eval mode; ``src`` is left unchanged.

    ``dst`` is a layer shaped like ``src`` (from :func:`new_like`). The weight goes in through
    ``dst.set_weight`` when ``dst`` has one (mcviz's quantized and shared layers round or cluster
    it there, after their mask is set), else it is copied into ``dst.weight``. Copies convert to
    ``dst``'s dtype.
    """
    w = weight(src).detach()
    with torch.no_grad():
        if callable(getattr(dst, "set_weight", None)):
            dst.set_weight(w)
        else:
            dst.weight.copy_(w)
        if src.bias is not None:
            dst.bias.copy_(src.bias.detach())
    dst.train(src.training)
    return dst


def replace(model: nn.Module, name: str, module: nn.Module) -> nn.Module:
    """Returns ``model`` with its submodule ``name`` (dotted, as in ``model.named_modules()``)
    replaced by ``module``, in place; ``name == ""`` means the model itself, and returns ``module``.

    Example:
        >>> model = nn.Sequential(nn.Sequential(nn.Linear(2, 2)))
        >>> replace(model, "0.0", nn.Identity())[0][0]
        Identity()
    """
    if not name:
        return module
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)
    return model


def unsupported(model: nn.Module) -> list[str]:
    """Returns the names of the modules of ``model`` that hold a weight matrix mcviz's methods do
    not transform (anything with its own 2-D or larger ``weight`` that is not a Linear / Conv2d:
    Conv1d, Conv3d, ConvTranspose2d, Embedding...); normalization layers (1-D weights) are not
    listed. ``model`` is left unchanged.

    The one rule for every method: it transforms the Linear / Conv2d layers, leaves the layers
    this returns unchanged with one warning naming them, and refuses a model that has no Linear /
    Conv2d layer at all.
    """
    names = []
    for name, m in model.named_modules():
        if isinstance(m, KINDS) or getattr(m, "mcviz_layer", False):
            continue
        w = m._parameters.get("weight")
        if isinstance(w, torch.Tensor) and w.dim() >= 2:
            names.append(f"{name or '(the model)'} ({type(m).__name__})")
    return names


def linear_targets(model: nn.Module, method: str) -> list[str]:
    """Returns the names of ``model``'s Linear layers with a float weight Parameter (plain or pruned:
    mcviz's quantized layers, whose weight is a buffer, are not quantized again), after the one rule
    every method follows: refuse a model without one, warn once naming the weight layers left
    unchanged (embeddings, convolutions...)."""
    import warnings

    from mcviz._checks import check_model  # deferred: this module imports only torch at import time

    check_model(model)
    names = [
        n for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and isinstance(m._parameters.get("weight"), nn.Parameter)
    ]  # fmt: skip
    if not names:
        raise ValueError(f"{method} needs a model with nn.Linear layers; {type(model).__name__} has none")
    skipped = unsupported(model) + [
        f"{n} ({type(m).__name__})" for n, m in model.named_modules() if isinstance(m, nn.Conv2d)
    ]
    if skipped:
        shown = ", ".join(skipped[:4]) + (f" and {len(skipped) - 4} more" if len(skipped) > 4 else "")
        warnings.warn(f"{method} leaves {shown} unchanged (it transforms nn.Linear layers)", stacklevel=3)
    return names
