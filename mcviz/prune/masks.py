"""Pruning masks at the tensor level: which weights to keep, and how important each channel is.

Every mask is a bool tensor of the weight's shape, ``True`` where the weight is KEPT (the
convention of ``torch.nn.utils.prune``). ``sparsity`` is the resulting fraction of zeros in
[0, 1]: a mask of ``w`` at sparsity ``s`` prunes exactly ``round(s * w.numel())`` weights
(Python's ``round``, half to even). An int is rejected, never read as a count of weights
(``torch.nn.utils.prune`` reads ``amount=1`` as "one weight": mcviz does not).

These functions are pure: they read ``w`` and return a new tensor; ``w`` is left unchanged.
"""

from __future__ import annotations

import torch

from mcviz._checks import check_choice, check_seed, check_sparsity

NORMS = ("l1", "l2")


def n_pruned(numel: int, sparsity: float) -> int:
    """Returns how many of ``numel`` weights a mask at ``sparsity`` prunes: ``round(sparsity * numel)``."""
    return min(numel, round(check_sparsity(sparsity) * numel))


def magnitude_mask(w: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Returns a bool mask of ``w``'s shape keeping the largest ``|w|``; ``w`` is left unchanged.

    Exactly ``round(sparsity * w.numel())`` entries are False: those with the smallest absolute
    values. Ties are broken by flat index (the earlier entry is pruned first), so the mask is
    deterministic. Without ties it keeps the same set as
    ``torch.nn.utils.prune.l1_unstructured(module, "weight", amount=sparsity)``.

    Example:
        >>> magnitude_mask(torch.tensor([0.3, -2.0, 0.1, 1.0]), 0.5)
        tensor([False,  True, False,  True])
    """
    _check_tensor(w)
    return _mask_from_scores(w.detach().abs(), n_pruned(w.numel(), sparsity))


def random_mask(w: torch.Tensor, sparsity: float, *, seed: int) -> torch.Tensor:
    """Returns a bool mask of ``w``'s shape with exactly ``round(sparsity * w.numel())`` False
    entries at uniformly random positions; ``w`` and the global RNG are left unchanged.

    The positions come from a private ``torch.Generator`` seeded with ``seed`` (a random
    permutation: the first ones are pruned), so the same seed and shape give the same mask.
    The values of ``w`` are ignored; only its shape matters.
    """
    _check_tensor(w)
    seed = check_seed(seed)
    scores = random_scores(w.numel(), torch.Generator().manual_seed(seed)).reshape(w.shape)
    return _mask_from_scores(scores, n_pruned(w.numel(), sparsity))


def channel_scores(w: torch.Tensor, *, norm: str = "l1") -> torch.Tensor:
    """Returns one importance score per output channel (conv filter / linear neuron) of ``w``:
    the L1 or L2 norm of its weights, a float tensor of length ``w.shape[0]``; ``w`` is left
    unchanged.

    Args:
        w: a weight of at least 2 dimensions, output channels first (Linear ``(out, in)``,
            Conv2d ``(out, in, kh, kw)``).
        norm: "l1" (sum of absolute values) or "l2" (Euclidean norm).
    """
    _check_tensor(w)
    if w.dim() < 2:
        raise ValueError(
            f"w must have at least 2 dimensions (output channels first), got shape {tuple(w.shape)}"
        )
    check_choice(norm, "norm", NORMS)
    flat = w.detach().float().reshape(w.shape[0], -1)
    return flat.abs().sum(dim=1) if norm == "l1" else flat.norm(dim=1)


def random_scores(numel: int, generator: torch.Generator) -> torch.Tensor:
    """Returns the ranks 0..numel-1 in a random order drawn from ``generator`` (float64): entry i
    is the priority of weight i (lower is pruned first); no ties."""
    order = torch.randperm(numel, generator=generator)
    scores = torch.empty(numel, dtype=torch.float64)
    scores[order] = torch.arange(numel, dtype=torch.float64)
    return scores


def _mask_from_scores(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Returns a mask pruning the ``k`` lowest scores (ties: lower flat index first)."""
    flat = scores.reshape(-1)
    order = torch.sort(flat, stable=True).indices
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[order[:k]] = False
    return keep.reshape(scores.shape)


def _check_tensor(w) -> None:
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"w must be a non-empty floating-point torch.Tensor, got {type(w).__name__}")
    if not w.is_floating_point() or w.numel() == 0:
        got = f"{w.dtype} tensor of shape {tuple(w.shape)}"
        raise ValueError(f"w must be a non-empty floating-point torch.Tensor, got {got}")
