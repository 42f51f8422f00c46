"""Quantization-aware training (QAT): fine-tune a trained model while its weights are rounded to
the ``bits``-bit grid in every forward pass, so that it learns weights that survive rounding.

Rounding has a zero gradient almost everywhere, so training through it needs a trick: the
straight-through estimator (STE). The forward pass uses the rounded weight, the backward pass
pretends the rounding was the identity:

    w_q = w + (fake_quantize(w) - w).detach()

The value of ``w_q`` is ``fake_quantize(w)``; its gradient with respect to ``w`` is 1, so the
optimizer keeps updating the float "shadow" weights ``w``, and a small update that carries a
weight across a rounding boundary changes the forward pass. The scales are recomputed from the
current float weights at every step (symmetric, zero point 0, per channel or per tensor).

At the end the float weights are converted to integer codes by ``mcv.quantize.weights`` with the
same bits and granularity: exactly the grid the last forward passes used.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn.utils import parametrize

from mcviz import train
from mcviz._checks import check_choice, check_data, check_option, check_seed
from mcviz.data import DataBundle
from mcviz.quantize.layers import GRANULARITIES
from mcviz.quantize.ptq import _plan, _weights
from mcviz.quantize.tensor import fake_quantize
from mcviz.registry import register


def ste_fake_quantize(w: torch.Tensor, bits: int = 8, *, granularity: str = "per_channel") -> torch.Tensor:
    """Returns ``w`` rounded to the symmetric ``bits``-bit grid in the forward pass, with the
    gradient of the identity in the backward pass (straight-through estimator); ``w`` is left
    unchanged.

    The value equals ``fake_quantize(w, bits, axis=...)``; ``d(result)/dw`` is 1 everywhere,
    including for values the rounding clamped.

    Args:
        w: a floating-point tensor with finite values (a weight).
        bits: code width, an int in [2, 8].
        granularity: "per_channel" (one scale per slice along dimension 0: an output channel) or
            "per_tensor".

    Example:
        >>> w = torch.tensor([-1.0, 0.1, 0.3, 1.0], requires_grad=True)
        >>> y = ste_fake_quantize(w, 2, granularity="per_tensor")
        >>> y.detach(), torch.autograd.grad(y.sum(), w)[0]
        (tensor([-1.,  0.,  0.,  1.]), tensor([1., 1., 1., 1.]))
    """
    check_option("bits", bits)
    axis = 0 if check_choice(granularity, "granularity", GRANULARITIES) == "per_channel" else None
    return w + (fake_quantize(w, bits, axis=axis) - w).detach()


class _STE(nn.Module):
    """A parametrization: the layer's ``weight`` reads as ``ste_fake_quantize(original)``."""

    def __init__(self, bits: int, granularity: str) -> None:
        super().__init__()
        self.bits, self.granularity = bits, granularity

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return ste_fake_quantize(w, self.bits, granularity=self.granularity)


def qat(
    model: nn.Module,
    data: DataBundle,
    bits: int = 4,
    *,
    epochs: int = 2,
    lr: float = 1e-4,
    granularity: str = "per_channel",
    seed: int = 0,
) -> nn.Module:
    """Returns a copy of ``model`` fine-tuned with fake-quantized weights and stored as
    ``bits``-bit integer codes; ``model`` is left unchanged.

    Each Linear / Conv2d of the copy whose weight is a Parameter reads its weight through
    :func:`ste_fake_quantize` (a ``torch.nn.utils.parametrize`` parametrization); the copy is
    trained with ``mcv.train.fit`` (Adam, one thread, deterministic), then converted with
    ``mcv.quantize.weights(trained, bits, granularity=granularity)`` into QuantLinear /
    QuantConv2d layers. The codes are the grid the trained model computed with, so the returned
    model's outputs are those of the fake-quantized model at the end of training.

    Args:
        model: a trained network (QAT starts from trained weights, it does not replace training).
            Other weight layers than Linear / Conv2d (Conv1d, Embedding...) are fine-tuned in fp32
            and stay fp32, with one warning naming them.
        data: a DataBundle; trained on its training split.
        bits: weight bits, an int in [2, 8].
        epochs: fine-tuning epochs, an int in [1, 200].
        lr: Adam learning rate in (0, 10]; small, because the model is already trained.
        granularity: "per_channel" or "per_tensor" scales.
        seed: fixes the shuffling order, an int in [0, 2**32 - 1].

    Example:
        >>> small = qat(model, data, bits=4, epochs=2)  # doctest: +SKIP
        >>> mcv.measure.model(small).bits  # doctest: +SKIP
        4.0
    """
    check_data(data)
    _check_options(bits, epochs, lr, granularity, seed)
    # checks the model; warns once about the layers that stay float32
    _plan(model, bits, "qat", rest="stay float32 (fine-tuned, not quantized)")
    trained = copy.deepcopy(model)
    layers = [
        m
        for m in trained.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d)) and isinstance(m._parameters.get("weight"), nn.Parameter)
    ]
    for m in layers:
        parametrize.register_parametrization(m, "weight", _STE(bits, granularity))
    try:
        train.fit(trained, data, epochs=epochs, lr=lr, seed=seed, progress=False)
    finally:
        for m in layers:  # keep the float weights: weights() below rounds them to the same grid
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
    out = _weights(trained, _plan(trained, bits, "qat", warn=False), granularity, True)
    out.train(model.training)
    return out


@register
@dataclass(frozen=True)
class QATConfig:
    """Quantization-aware fine-tuning (straight-through estimator), then bits-bit integer weights."""

    method: ClassVar[str] = "qat"
    needs_data: ClassVar[bool] = True
    bits: int = 4
    epochs: int = 2
    lr: float = 1e-4
    granularity: str = "per_channel"
    seed: int = 0

    def __post_init__(self):
        _check_options(self.bits, self.epochs, self.lr, self.granularity, self.seed)

    def apply(self, model: nn.Module, data: DataBundle | None = None) -> nn.Module:
        return qat(
            model, data, self.bits, epochs=self.epochs, lr=self.lr, granularity=self.granularity,
            seed=self.seed,
        )


def _check_options(bits, epochs, lr, granularity, seed) -> None:
    check_option("bits", bits)
    check_option("epochs", epochs)
    check_option("lr", lr)
    check_choice(granularity, "granularity", GRANULARITIES)
    check_seed(seed)
