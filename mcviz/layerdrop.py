"""Layer dropping: a deep transformer made shallower by keeping some of its blocks, then distilled
from the original on local text (the recipe of DistilBERT-style students that start from the
teacher's own layers).

Transformer blocks map a hidden state to one of the same shape, so any subset of them still
computes; keeping every other one (6 -> 3 layers: 0, 2, 4) halves the work of the encoder. The
function changes, so :func:`drop_layers` is followed by a short distillation
(``mcv.distill_lm.match``: the student learns to reproduce the full model's outputs and, with
``hint_weight`` > 0, each kept block's output learns the output of the teacher's block just before
the next kept one, :func:`hints`: student block 0 of 0, 2, 4 learns the output of teacher block 1,
the input that teacher block 2 expects). ``which="last"`` keeps the first block and the last
``keep - 1`` instead (0, 4, 5 of 6): all-MiniLM-L6-v2 so dropped starts at a mean test cosine of
0.67 to the full model instead of 0.34, and its distillation ends higher (``benchmarks/student.py``).

:func:`blocks` finds the stack: the ``nn.ModuleList`` of at least two blocks of one class (MiniLM's
``layers``, the tiny GPT's ``blocks``). :class:`LayerDropConfig` (method ``"layerdrop"``) does
both steps for ``mcv.compress`` and reports.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from mcviz import distill_lm
from mcviz._checks import check_choice, check_int, check_model, check_option
from mcviz.registry import register

# which blocks a count keeps: "even" spreads them from the first (0, 2, 4 of 6); "last" keeps the
# first and the last keep - 1 (0, 4, 5 of 6)
WHICH = ("even", "last")


def blocks(model: nn.Module) -> str:
    """Returns the name of ``model``'s stack of blocks: its largest ``nn.ModuleList`` whose children
    (at least two) all have one class; raises ValueError when there is none."""
    best = None
    for name, m in model.named_modules():
        if isinstance(m, nn.ModuleList) and len(m) >= 2 and len({type(c) for c in m}) == 1:
            if best is None or len(m) > len(model.get_submodule(best)):
                best = name
    if best is None:
        raise ValueError(
            f"{type(model).__name__} has no stack of blocks (an nn.ModuleList of 2 or more alike)"
        )
    return best


def kept(total: int, keep: int, which: str = "even") -> list[int]:
    """Returns which of ``total`` blocks to keep: spread evenly from the first (``which="even"``:
    6 -> 3 gives 0, 2, 4) or the first and the last ``keep - 1`` (``"last"``: 0, 4, 5)."""
    keep = check_int(keep, "keep", low=1, high=total)
    check_choice(which, "which", WHICH)
    if which == "last":
        return [0, *range(total - keep + 1, total)]
    return [i * total // keep for i in range(keep)]


def hints(model: nn.Module, indices: list[int]) -> list[tuple[str, str]]:
    """Returns the (student block, teacher block) module names whose outputs a student keeping the
    blocks ``indices`` of ``model``'s stack matches: kept block ``j`` <-> the teacher's block before
    the next kept one (the last: the teacher's last block). 0, 2, 4 of 6 gives 0-1, 1-3, 2-5."""
    name = blocks(model)
    ends = [*indices[1:], len(model.get_submodule(name))]
    return [(f"{name}.{j}", f"{name}.{end - 1}") for j, end in enumerate(ends)]


def _indices(model: nn.Module, keep, which: str = "even") -> list[int]:
    """Returns the block indices that ``keep`` (a count, placed by ``which``, or a list of indices)
    selects; raises on bad ones."""
    stack = model.get_submodule(blocks(model))
    if isinstance(keep, int) and not isinstance(keep, bool):
        return kept(len(stack), keep, which)
    if which != "even":
        raise ValueError(f"which={which!r} places a count of blocks; keep={keep!r} lists them already")
    if isinstance(keep, (list, tuple)) and keep:
        indices = [check_int(i, "keep index", low=0, high=len(stack) - 1) for i in keep]
        if sorted(set(indices)) != list(indices):
            raise ValueError(f"keep must list distinct block indices in increasing order, got {keep!r}")
        return indices
    raise TypeError(f"keep must be an int or a list of block indices, got {keep!r}")


def drop_layers(model: nn.Module, keep: int | list[int], which: str = "even") -> nn.Module:
    """Returns a copy of ``model`` with only some blocks of its stack (:func:`blocks`); ``model`` is
    unchanged.

    Args:
        model: a model with a stack of blocks (a transformer).
        keep: how many blocks to keep, placed by ``which`` (:func:`kept`), or the list of their indices.
        which: "even" or "last" (see :func:`kept`); only with a count.
    """
    check_model(model)
    _check_keep(keep)
    check_choice(which, "which", WHICH)
    name = blocks(model)
    indices = _indices(model, keep, which)
    out = copy.deepcopy(model)
    parent, _, child = name.rpartition(".")
    owner = out.get_submodule(parent) if parent else out
    setattr(owner, child, nn.ModuleList(out.get_submodule(name)[i] for i in indices))
    return out


def layerdrop(model: nn.Module, data=None, *, keep: int = 3, epochs: int = 1, lr: float = 1e-4,
              samples: int | None = None, hint_weight: float = 0.0,
              which: str = "even", schedule: str = "constant", freeze_embeddings: bool = False,
              by_length: bool = False) -> nn.Module:  # fmt: skip
    """Returns a copy of ``model`` with ``keep`` of its blocks (placed by ``which``: :func:`kept`),
    distilled from ``model`` for ``epochs`` epochs on ``data``'s training inputs (0: no
    distillation; ``samples`` None or 0: all of them); ``model`` is unchanged. Every argument is
    checked before any work.

    ``hint_weight`` >= 0 weighs the matching of the kept blocks' outputs (:func:`hints`) against
    the final outputs' objective during the distillation (so only when ``epochs`` > 0); 0 (the
    default) matches the final outputs only. ``schedule``, ``freeze_embeddings`` and ``by_length``
    are ``mcv.distill_lm.match``'s (a cosine learning rate; the embedding tables kept as the
    teacher's; batches grouped by length)."""
    _check_keep(keep)
    epochs, lr, samples = distill_lm.check_repair(
        data, method="layerdrop", epochs=epochs, lr=lr, samples=samples
    )
    hint_weight = check_option("hint_weight", hint_weight, "layerdrop")  # the config's order
    check_choice(which, "which", WHICH)
    distill_lm.check_options(schedule, freeze_embeddings, by_length)
    out = drop_layers(model, keep, which)
    matched = {}
    if hint_weight:
        matched = {"hints": hints(model, _indices(model, keep, which)), "hint_weight": hint_weight}
    return distill_lm.repair(out, model, data, method="layerdrop", epochs=epochs, lr=lr, samples=samples,
                             schedule=schedule, freeze_embeddings=freeze_embeddings, by_length=by_length,
                             **matched)  # fmt: skip


def _check_keep(keep) -> None:
    """Refuses a count of blocks outside the bounds of a config's ``keep`` (a list is checked later,
    against the model's blocks)."""
    if isinstance(keep, int) and not isinstance(keep, bool):
        check_option("keep", keep, "layerdrop")


@register
@dataclass(frozen=True)
class LayerDropConfig:
    """Layer dropping: keep `keep` blocks of a transformer (`which`: spread or last), then distill."""

    method: ClassVar[str] = "layerdrop"
    needs_data: ClassVar[bool] = True
    keep: int = 3
    epochs: int = 1
    lr: float = 1e-4
    samples: int = 0  # distil on the first samples training inputs; 0: all of them
    hint_weight: float = 0.0  # weight of matching each kept block's output; 0: final outputs only
    which: str = "even"  # "even": blocks spread from the first (0, 2, 4 of 6); "last": 0, 4, 5
    schedule: str = "constant"  # the distillation's learning rate: "constant" or "cosine"
    freeze_embeddings: bool = False  # keep the teacher's embedding tables (nn.Embedding); the rest learns
    by_length: bool = False  # batch paragraphs of about one length together (less padding)

    def __post_init__(self):
        for option in ("keep", "epochs", "lr", "samples", "hint_weight"):
            check_option(option, getattr(self, option), self.method)
        check_choice(self.which, "which", WHICH)
        distill_lm.check_options(self.schedule, self.freeze_embeddings, self.by_length)

    def check_applies(self, model: nn.Module) -> None:
        """Raises ValueError when ``model`` has no stack of blocks (see ``registry.check_applies``)."""
        blocks(model)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        samples = self.samples or None
        return layerdrop(model, data, keep=self.keep, epochs=self.epochs, lr=self.lr, samples=samples,
                         hint_weight=self.hint_weight, which=self.which, schedule=self.schedule,
                         freeze_embeddings=self.freeze_embeddings, by_length=self.by_length)  # fmt: skip
