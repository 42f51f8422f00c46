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

This module imports only torch (and ``mcviz._checks``): every technique may import it, and it
imports none of them.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import torch
from torch import nn

from mcviz._checks import shorten

KINDS = (nn.Linear, nn.Conv2d)
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


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
    modules = model.named_modules()
    return [f"{name or '(the model)'} ({type(m).__name__})" for name, m in modules if unhandled(m)]


def unhandled(module: nn.Module) -> bool:
    """Returns True when ``module`` itself holds a weight matrix (a 2-D or larger ``weight``
    Parameter) and is not a Linear / Conv2d nor an mcviz layer: one :func:`unsupported` lists."""
    if isinstance(module, KINDS) or getattr(module, "mcviz_layer", False):
        return False
    w = module._parameters.get("weight")
    return isinstance(w, torch.Tensor) and w.dim() >= 2


class UnsupportedLayersWarning(UserWarning):
    """The warning a method gives once for the weight layers it leaves uncompressed
    (:func:`unsupported`); a UserWarning, so ``warnings.simplefilter`` on either silences it."""


def transformable(
    model: nn.Module,
    method: str,
    *,
    warn: bool = True,
    action: str = "compresses",
    rest: str = "stay as they are",
) -> list[tuple[str, nn.Module]]:
    """Returns ``(name, layer)`` of every Linear / Conv2d layer of ``model`` (subclasses included),
    in ``named_modules`` order; ``model`` is left unchanged.

    This is the one rule every method follows: it transforms these layers; the weight layers
    :func:`unsupported` names (Conv1d, Embedding...) are left uncompressed, with ONE
    :class:`UnsupportedLayersWarning` naming them (unless ``warn`` is False: a method calling
    another one, or itself again, warns once at the top); and a model with no Linear / Conv2d
    layer at all is refused. The warning reads "``method`` ``action`` Linear and Conv2d layers
    only; N other weight layer(s) ``rest``: names".

    Raises:
        ValueError: the model has no Linear / Conv2d layer; the message names the layer types it has.
    """
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, KINDS)]
    if not found:
        kinds = list(dict.fromkeys(type(m).__name__ for _, m in model.named_modules() if m is not model))
        has = listed(kinds, 8) if kinds else f"no layers (a bare {type(model).__name__})"
        raise ValueError(f"model must have a Linear or Conv2d layer for {method}; it has {has}")
    if warn:
        warn_unsupported(model, method, action=action, rest=rest)
    return found


def warn_unsupported(
    model: nn.Module, method: str, *, action: str = "compresses", rest: str = "stay as they are"
) -> None:
    """Gives the one warning of :func:`transformable` when ``model`` has layers :func:`unsupported`
    names (for a method that checks everything else first, and warns only then), pointing at the
    first caller outside mcviz."""
    others = unsupported(model)
    if others:
        warnings.warn(
            f"{method} {action} Linear and Conv2d layers only; {len(others)} other weight layer(s) "
            f"{rest}: {listed(others, 5)}",
            UnsupportedLayersWarning,
            stacklevel=_outside_mcviz(),
        )


def _outside_mcviz() -> int:
    """The ``stacklevel`` of the first frame outside the mcviz package, seen from the function
    that calls ``warnings.warn`` (level 1)."""
    frame, level = sys._getframe(2), 2  # the caller of warn_unsupported: level 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def check_names(option: str, given, layers) -> None:
    """Refuses a per-layer dict ``option`` (``{layer name: value}``) naming something that is not
    one of ``layers`` (the names of the Linear / Conv2d layers a method transforms)."""
    unknown = [name for name in given if name not in layers]
    if unknown:
        raise ValueError(
            f"{option} names no Linear/Conv2d layer {shorten(unknown[0])}; layers: {listed(list(layers), 20)}"
        )


def listed(names: list[str], most: int) -> str:
    """``names`` joined by commas, at most ``most`` of them and the count of the others."""
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most:,} more"
