"""Unstructured pruning: zero individual weights of Linear / Conv2d layers, by magnitude or at random.

- ``magnitude(model, sparsity, scope=...)`` keeps the largest ``|w|``, per layer or ranked
  over all layers together (``scope="global"``); ``random(model, sparsity, seed=...)`` prunes
  uniformly random positions. ``sparsity`` is a float in [0, 1] for every layer, or a dict
  ``{layer name: sparsity}``; layers the dict does not name keep their weights. Other weight
  layers (Conv1d, Embedding...) keep theirs too, with one warning naming them; a model without a
  Linear / Conv2d layer is refused (the rule of every method: ``mcviz._layers.transformable``).
- Pruned layers become :class:`PrunedLinear` / :class:`PrunedConv2d`: the ordinary layer plus a
  bool buffer ``mask`` (True = kept). The forward pass uses ``weight * mask``, so the gradient
  of every pruned weight is exactly zero, and the stored weight is zeroed where the mask is
  False when the mask is set (and after a state_dict load). With zero gradients, Adam and SGD
  (``mcv.train.fit``) leave a zero weight at exactly zero: fine-tuning keeps the zeros with no
  hook and no optimizer change. ``finalize(model)`` returns plain layers with the zeros baked in.
- Pruning a pruned model to ``s`` is not compounded: the new mask is computed from the current
  effective weights, with weights that are already zero pruned first, so a layer ends with
  exactly ``round(s * numel)`` zeros (``s`` below the current sparsity warns: pruned weights
  cannot come back, they only become trainable again, starting from zero).
- Storage (``mcv.measure``): a pruned layer is counted in a bitmask sparse format: 1 bit per
  weight (role "other"), the nonzero values at the weight's width (32 bits for fp32; role
  "weight", numel = number of nonzeros) and the bias at its width. ``size_bytes`` falls with
  sparsity; the bitmask costs 1/32 of the dense fp32 size, so below about 3% sparsity the sparse
  format is larger than the dense one.

Every function returns a new model and leaves its input unchanged.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from mcviz import _layers
from mcviz._checks import check_choice, check_model, check_seed, check_sparsity, shorten
from mcviz.measure import StorageRow
from mcviz.prune.masks import _mask_from_scores, n_pruned, random_scores
from mcviz.registry import register

SCOPES = ("layer", "global")


class _Pruned:
    """What PrunedLinear and PrunedConv2d share: the mask, its storage, and keeping zeros at zero.

    The constructor takes the arguments of ``nn.Linear`` / ``nn.Conv2d`` (without ``device``) and
    a keyword ``dtype``; the weight and bias start at zero, the mask all True.
    """

    weight: nn.Parameter
    bias: nn.Parameter | None
    mask: torch.Tensor

    def __init__(self, *args, dtype: torch.dtype | None = None, **kwargs) -> None:
        # the parent makes its tensors on the meta device: no memory and no draw from the global RNG
        super().__init__(*args, **kwargs, device="meta", dtype=dtype)
        shape, has_bias = self.weight.shape, self.bias is not None
        dtype = dtype or torch.get_default_dtype()
        self.weight = nn.Parameter(torch.zeros(shape, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(shape[0], dtype=dtype)) if has_bias else None
        self.register_buffer("mask", torch.ones(shape, dtype=torch.bool))

    @classmethod
    def from_dense(cls, module: nn.Module, mask: torch.Tensor | None = None) -> _Pruned:
        """Returns a pruned layer with ``module``'s weight (the one it computes with) and bias,
        dtype and train/eval mode, and ``mask`` (all kept when None); ``module`` is left unchanged.

        ``module`` must be an ``nn.Linear`` for PrunedLinear, an ``nn.Conv2d`` for PrunedConv2d.
        """
        check_model(module, "module")
        # the new layer keeps the module's dtype (new_like rejects a module of the other kind)
        dtype = _layers.weight(module).dtype if isinstance(module, _layers.KINDS) else None
        out = _layers.copy_into(_layers.new_like(cls, module, dtype=dtype), module)
        out.set_mask(mask if mask is not None else torch.ones_like(out.mask))
        return out

    def effective_weight(self) -> torch.Tensor:
        """Returns the weight the layer computes with: ``weight * mask``."""
        return self.weight * self.mask

    def set_mask(self, mask: torch.Tensor) -> None:
        """Stores ``mask`` (bool, True = kept, the weight's shape) and zeroes the pruned weights."""
        wanted = f"mask must be a bool tensor of shape {tuple(self.weight.shape)}"
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"{wanted}, got {type(mask).__name__}")
        if mask.dtype != torch.bool or mask.shape != self.weight.shape:
            raise ValueError(f"{wanted}, got {mask.dtype} {tuple(mask.shape)}")
        with torch.no_grad():
            self.mask.copy_(mask)
            self.weight.mul_(self.mask)

    def mcviz_storage(self) -> list[StorageRow]:
        """Returns the stored tensors in the bitmask sparse format: a 1-bit mask per weight
        ("other"), the nonzero values at the weight's width ("weight") and the bias."""
        width = self.weight.element_size() * 8
        nonzero = int(self.effective_weight().count_nonzero())
        rows = [
            StorageRow("", "mask", "other", self.weight.numel(), 1),
            StorageRow("", "weight", "weight", nonzero, width),
        ]
        if self.bias is not None:
            rows.append(StorageRow("", "bias", "bias", self.bias.numel(), self.bias.element_size() * 8))
        return rows

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        with torch.no_grad():
            self.weight.mul_(self.mask)

    def extra_repr(self) -> str:
        sparsity = 1 - int(self.effective_weight().count_nonzero()) / self.mask.numel()
        return f"{super().extra_repr()}, sparsity={sparsity:.4g}"


class PrunedLinear(_Pruned, nn.Linear):
    """A Linear layer computing with ``weight * mask`` (see the module doc).

    Takes ``nn.Linear``'s arguments (``in_features, out_features, bias=True``) and a keyword
    ``dtype``.

    Example:
        >>> layer = PrunedLinear.from_dense(nn.Linear(4, 2), torch.tensor([[1, 0, 1, 0]] * 2).bool())
        >>> int((layer.weight == 0).sum())
        4
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class PrunedConv2d(_Pruned, nn.Conv2d):
    """A Conv2d layer computing with ``weight * mask`` (see the module doc).

    Takes ``nn.Conv2d``'s arguments (``in_channels, out_channels, kernel_size, stride=1,
    padding=0, dilation=1, groups=1, bias=True, padding_mode="zeros"``) and a keyword ``dtype``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


def magnitude(
    model: nn.Module, sparsity: float | dict[str, float] = 0.5, *, scope: str = "layer"
) -> nn.Module:
    """Returns a copy of ``model`` whose smallest-magnitude weights are pruned to zero; ``model``
    is left unchanged.

    Args:
        model: a network with Linear / Conv2d layers (plain or already pruned).
        sparsity: the fraction of zero weights in [0, 1], a float, for every Linear / Conv2d
            layer; or a dict ``{layer name: sparsity}`` (names as in ``model.named_modules()``,
            e.g. ``"fc1"``): layers it does not name keep their weights.
        scope: "layer" prunes ``round(sparsity * numel)`` weights of each layer; "global" ranks
            the weights of all layers together and prunes the ``round(sparsity * total)``
            smallest, so layers end with different sparsities (a float ``sparsity`` only).

    Example:
        >>> sparse = magnitude(model, 0.9, scope="global")  # doctest: +SKIP
        >>> mcv.measure.model(sparse).sparsity  # doctest: +SKIP
        0.9
    """
    return _magnitude(model, sparsity, scope, "magnitude")


def _magnitude(model: nn.Module, sparsity, scope: str, method: str, *, warn: bool = True) -> nn.Module:
    """``magnitude``, whose checks and warning name ``method`` (warning only when ``warn``: a
    method that prunes in rounds warns once)."""
    plan = _plan(model, sparsity, method, scope=scope, warn=warn)
    return _apply(copy.deepcopy(model), _magnitude_masks(model, plan, sparsity, scope))


def _magnitude_masks(model: nn.Module, plan: dict[str, float], sparsity, scope) -> dict[str, torch.Tensor]:
    """Returns ``{layer name: kept mask}`` of ``magnitude`` for a checked ``plan`` (:func:`_plan`);
    reads ``model`` and changes nothing."""
    scores = {n: _zeros_first(w, w.abs().double()) for n, w in _effective_weights(model, plan).items()}
    if scope == "layer":
        return {n: _layer_mask(n, scores[n], plan[n]) for n in plan}
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    keep = _layer_mask("all layers", flat, sparsity)
    masks, start = {}, 0
    for name, s in scores.items():
        masks[name] = keep[start : start + s.numel()].reshape(s.shape)
        start += s.numel()
    return masks


def random(model: nn.Module, sparsity: float | dict[str, float] = 0.5, *, seed: int = 0) -> nn.Module:
    """Returns a copy of ``model`` with weights at uniformly random positions pruned to zero;
    ``model`` and the global RNG are left unchanged.

    Each layer loses ``round(sparsity * numel)`` weights. The positions come from a private
    generator seeded with ``seed`` that draws one permutation per Linear / Conv2d layer in
    ``model.named_modules()`` order (for layers a dict leaves out too), so a layer's mask does
    not depend on which other layers are pruned. Weights that are already zero are pruned first.

    Args:
        model: a network with Linear / Conv2d layers (plain or already pruned).
        sparsity: a float in [0, 1] for every layer, or a dict ``{layer name: sparsity}``.
        seed: an int in [0, 2**32 - 1] choosing the positions.
    """
    seed = check_seed(seed)
    plan = _plan(model, sparsity, "random")
    out = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    priorities = {n: random_scores(m.weight.numel(), generator) for n, m in _prunable(out)}
    weights = _effective_weights(out, plan)
    masks = {
        n: _layer_mask(n, _zeros_first(w, priorities[n].reshape(w.shape)), plan[n])
        for n, w in weights.items()
    }
    return _apply(out, masks)


def finalize(model: nn.Module) -> nn.Module:
    """Returns a copy of ``model`` with every PrunedLinear / PrunedConv2d replaced by a plain
    nn.Linear / nn.Conv2d holding ``weight * mask``; ``model`` is left unchanged.

    The zeros stay in the weights, but nothing keeps them at zero any more: fine-tuning the
    result regrows them.
    """
    check_model(model)
    out = copy.deepcopy(model)
    for name, layer in [(n, m) for n, m in out.named_modules() if isinstance(m, _Pruned)]:
        out = _layers.replace(out, name, _layers.plain_like(layer, layer.effective_weight(), layer.bias))
    return out


@register
@dataclass(frozen=True)
class MagnitudeConfig:
    """Unstructured magnitude pruning: zero the smallest |w| of Linear/Conv2d layers."""

    method: ClassVar[str] = "magnitude"
    needs_data: ClassVar[bool] = False
    sparsity: float = 0.5
    scope: str = "layer"

    def __post_init__(self):
        check_sparsity(self.sparsity)  # a float: a dict of per-layer sparsities goes to magnitude()
        check_choice(self.scope, "scope", SCOPES)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return magnitude(model, self.sparsity, scope=self.scope)


@register
@dataclass(frozen=True)
class RandomConfig:
    """Unstructured random pruning: zero uniformly random weights of Linear/Conv2d layers."""

    method: ClassVar[str] = "random"
    needs_data: ClassVar[bool] = False
    sparsity: float = 0.5
    seed: int = 0

    def __post_init__(self):
        check_sparsity(self.sparsity)
        check_seed(self.seed)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return random(model, self.sparsity, seed=self.seed)


# ---------------------------------------------------------------- helpers


def _prunable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _plan(model, sparsity, method: str, *, scope: str = "layer", warn: bool = True) -> dict[str, float]:
    """Returns {layer name: sparsity} of the layers to prune, after checking the arguments; warns
    once about layers left unpruned (``_layers.transformable``)."""
    check_model(model)
    check_choice(scope, "scope", SCOPES)
    if isinstance(sparsity, dict):
        if not sparsity:
            raise ValueError(
                "sparsity must be a float in [0, 1] or a non-empty dict {layer name: sparsity}, got {}"
            )
        if scope == "global":
            raise ValueError("scope='global' takes one float sparsity, not a dict of per-layer sparsities")
        for name, s in sparsity.items():
            check_sparsity(s, f"sparsity[{shorten(name)}]")
    else:
        check_sparsity(sparsity)
    layers = dict(_layers.transformable(model, method, warn=False))
    if isinstance(sparsity, dict):
        _layers.check_names("sparsity", sparsity, layers)
        plan = {n: float(sparsity[n]) for n in layers if n in sparsity}
    else:
        plan = dict.fromkeys(layers, float(sparsity))
    for name in plan:
        kind = type(layers[name])
        if kind not in (nn.Linear, nn.Conv2d, PrunedLinear, PrunedConv2d):
            raise ValueError(
                f"layer {name!r} is a {kind.__name__}; prune only plain or pruned Linear/Conv2d layers "
                "(prune before quantizing, e.g. 'magnitude:sparsity=0.5 + weights:bits=8')"
            )
    if warn:
        _layers.warn_unsupported(model, method, action="prunes")
    return plan


def _effective_weights(model, plan) -> dict[str, torch.Tensor]:
    return {name: _layers.weight(model.get_submodule(name)).detach() for name in plan}


def _zeros_first(w: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Returns ``scores`` with the weights that are already zero ranked first (pruned first)."""
    return torch.where(w == 0, torch.full_like(scores, -1.0), scores)


def _layer_mask(name: str, scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    k = n_pruned(scores.numel(), sparsity)
    zeros = int((scores == -1.0).sum())
    if zeros > k:
        warnings.warn(
            f"{name}: {zeros} of {scores.numel()} weights are already zero, more than sparsity "
            f"{sparsity} prunes ({k}); the extra zeros stay zero until fine-tuning regrows them",
            stacklevel=3,
        )
    return _mask_from_scores(scores, k)


def _apply(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    for name, mask in masks.items():
        layer = model.get_submodule(name)
        if isinstance(layer, _Pruned):
            layer.set_mask(mask)
            continue
        cls = PrunedConv2d if isinstance(layer, nn.Conv2d) else PrunedLinear
        model = _layers.replace(model, name, cls.from_dense(layer, mask))  # name "": the model is one layer
    return model
