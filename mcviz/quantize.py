"""Quantization. For now: half-precision (fp16) storage; the quantization issue adds the rest.

fp16 stores every weight in 16 bits. CPUs without fast half arithmetic compute it slowly, so the
fp16 model keeps its fp16 weights but is measured honestly: smaller, and not necessarily faster.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mcviz.registry import register


def fp16(model: nn.Module) -> nn.Module:
    """Returns a copy of ``model`` whose parameters and buffers are stored in float16.

    The copy takes and returns float32 tensors (inputs are cast to half on the way in, outputs
    back to float32 on the way out), so it drops into any evaluation code. ``model`` is unchanged.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    out = copy.deepcopy(model).half()
    out.register_forward_pre_hook(_to_half)
    out.register_forward_hook(_to_float)
    return out


@register
@dataclass(frozen=True)
class FP16Config:
    """Half-precision storage: every parameter kept in 16 bits."""

    method: ClassVar[str] = "fp16"
    needs_data: ClassVar[bool] = False

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return fp16(model)


def _to_half(module, args):
    return tuple(a.half() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def _to_float(module, args, output):
    return output.float() if torch.is_tensor(output) else output
