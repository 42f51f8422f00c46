"""Short distillation that repairs a compressed model: train it to reproduce its own uncompressed
teacher's outputs on local text (no labels needed).

Low-rank factorization and layer dropping change a pretrained model's function; a few epochs of
matching the original's outputs on unlabelled text win most of it back. :func:`match` does it
with ``mcv.train.fit`` (its ``loss`` hook). The teacher's outputs are computed once, before
training, when its outputs (final and hint layers') for every row fit in :data:`CACHE_BYTES`. When
they do not, the rows are token ids, there are ``hints`` and a second epoch, each distinct row's
outputs are kept as the first epoch's batches compute them: the final output as it is, the hint
layers' in float16 and only at the positions that are not padding (:class:`_Kept`; the 3 hints of
15,500 MiniLM paragraphs of 60 tokens on average: 2.0 GiB), so later epochs skip the teacher's
pass, about a third of a step's work. Otherwise each batch computes them, which costs a teacher
pass per step and no memory.

- ``"cosine"``: ``1 - cos(student, teacher)`` per row, for sentence embeddings (MiniLM);
- ``"kl"``: ``KL(softmax(teacher) || softmax(student))`` over the class dimension (dim 1), averaged
  over examples and positions, for logits of a classifier ``(N, C)`` or a language model
  ``(N, vocab, length)``;
- ``"auto"``: cosine when the teacher's outputs are 2-D unit vectors, else KL.

``hints`` adds the intermediate matching of DistilBERT / TinyBERT students: named student layers'
outputs ``(batch, length, dim)`` learn the outputs of named teacher layers, with
``1 - cos(student, teacher)`` per position (DistilBERT's cosine loss on hidden states), averaged
over the positions that are not padding (inputs equal to the padding id of the teacher's first
embedding table, MiniLM's 0; a model without one, like the tiny GPT, counts every position). A
layer-dropped student (``mcv.layerdrop``) so learns to hand each kept block the input it had in
the full model, not only to end at the same embedding.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from mcviz import train
from mcviz._checks import (
    check_bool,
    check_choice,
    check_data,
    check_int,
    check_model,
    check_number,
    check_option,
    shorten,
)
from mcviz.distill import _Capture

OBJECTIVES = ("auto", "cosine", "kl")
# the teacher's outputs of every training row are kept when they fit in this many bytes: as computed
# (1,428 MiniLM paragraphs of 128 tokens with 3 hints: 0.8 GB), else the hints as float16 at the
# positions that are not padding (_Kept: 15,500 paragraphs: 2.0 GiB); beyond, each batch computes its own
CACHE_BYTES = 3 * 1024**3


def check_repair(data, *, method: str, epochs: int, lr: float, samples: int | None = None):
    """Returns ``(epochs, lr, samples)`` of the distillation that ends ``method`` (``lowrank``,
    ``layerdrop``), checked before any work: ``epochs`` and ``samples`` within the method's bounds
    (``_checks.DISTILL``: 0 epochs is none; None or 0 samples is all, returned as None), ``lr``
    within the shared ones, ``data`` None or a DataBundle (one is needed when ``epochs`` > 0)
    holding at least ``samples`` training inputs.

    Raises:
        TypeError: a value of the wrong type, or ``data`` that is not a DataBundle. ValueError: a
            value out of bounds, or no data to distill on.
    """
    epochs = check_option("epochs", epochs, method)
    lr = check_option("lr", lr)
    if samples is not None:
        samples = check_option("samples", samples, method) or None
    if data is not None:
        check_data(data)
    if epochs and data is None:
        raise ValueError(f"{method} with epochs > 0 needs data=, a DataBundle to distill on")
    if epochs and samples is not None:
        check_int(samples, "samples", low=1, high=len(data.train))
    return epochs, lr, samples


def check_options(schedule: str, freeze_embeddings: bool, by_length: bool) -> None:
    """Refuses, in one line, a ``schedule`` that is not one of ``mcv.train.SCHEDULES`` or a
    ``freeze_embeddings`` / ``by_length`` that is not a bool: :func:`match`'s options that
    ``layerdrop`` and its config check before any work."""
    check_choice(schedule, "schedule", train.SCHEDULES)
    check_bool(freeze_embeddings, "freeze_embeddings")
    check_bool(by_length, "by_length")


def repair(student, teacher, data, *, method: str, epochs: int, lr: float, samples: int | None = None,
           hints=None, hint_weight: float = 1.0, **options):  # fmt: skip
    """Returns ``student`` after :func:`match` with ``teacher`` for ``epochs`` epochs (none when 0),
    in ``teacher``'s train/eval mode: the last step of a method that changes a model's function
    (``lowrank``, ``layerdrop``). The options are checked by :func:`check_repair` (which the method
    calls first, before any work); ``hints``, ``hint_weight`` and ``options`` (``schedule``,
    ``freeze_embeddings``, ``by_length``) are :func:`match`'s."""
    epochs, lr, samples = check_repair(data, method=method, epochs=epochs, lr=lr, samples=samples)
    check_number(hint_weight, "hint_weight", low=0, low_open=True)
    if epochs:
        match(student, teacher, data, epochs=epochs, lr=lr, samples=samples, hints=hints,
              hint_weight=hint_weight, **options)  # fmt: skip
        student.train(teacher.training)
    return student


def match(student, teacher, data, *, epochs: int = 1, lr: float = 1e-4, batch_size: int = 16,
          samples: int | None = None, objective: str = "auto", hints=None, hint_weight: float = 1.0,
          seed: int = 0, progress: bool = False, schedule: str = "constant", freeze_embeddings: bool = False,
          by_length: bool = False) -> pd.DataFrame:  # fmt: skip
    """Trains ``student`` in place to reproduce ``teacher``'s outputs on ``data``'s training inputs;
    returns the history (epoch, loss: the mean objective, plus ``output_loss`` and ``hint_loss``
    with ``hints``). The teacher is unchanged (eval mode, no gradients).

    Args:
        student, teacher: models with the same output shape (e.g. a factorized or layer-dropped
            copy and the original).
        data: a DataBundle; only its training inputs are read (labels are ignored).
        epochs, lr, batch_size, seed, progress: as in ``mcv.train.fit`` (Adam).
        samples: train on the first ``samples`` training inputs only; None uses all.
        objective: "auto", "cosine" or "kl" (see the module doc).
        hints: None, or a list of ``(student_layer, teacher_layer)`` module names whose outputs
            (same shape, ``(batch, length, dim)``) are matched too (see the module doc).
        hint_weight: the weight of the hint loss (the mean over the pairs) added to the
            objective, > 0; used only with ``hints``.
        schedule: the learning rate's schedule, "constant" or "cosine" (``mcv.train.fit``).
        freeze_embeddings: keep the student's embedding tables (its ``nn.Embedding`` modules) as
            they are: a layer-dropped student keeps the teacher's, and everything else learns
            (MiniLM's token table is half its parameters, and the text seen touches few of its
            rows). A student without an ``nn.Embedding`` is refused.
        by_length: batch inputs of about one length together (``mcv.train.fit``'s ``lengths``:
            the tokens that are not the teacher's padding id; every input counts as full length
            when it has none), so a batch of short paragraphs is not padded to a long one's length.
    """
    check_model(student)
    check_model(teacher)
    if student is teacher:
        raise ValueError("student and teacher must be different models")
    check_data(data)
    check_choice(objective, "objective", OBJECTIVES)
    check_options(schedule, freeze_embeddings, by_length)
    check_int(epochs, "epochs")
    check_number(lr, "lr")
    hint_weight = check_number(hint_weight, "hint_weight", low=0, low_open=True)
    pairs = _check_hints(hints, student, teacher)
    tables = [p for m in student.modules() if isinstance(m, nn.Embedding) for p in m.parameters()]
    if freeze_embeddings and not tables:
        raise ValueError(f"freeze_embeddings=True, but the student ({type(student).__name__}) has no "
                         "nn.Embedding table to keep; use freeze_embeddings=False")  # fmt: skip
    X, y = data.train.tensors
    if samples is not None:
        n = check_int(samples, "samples", low=1, high=len(X))
        X, y = X[:n], y[:n]
        data = dataclasses.replace(data, train=TensorDataset(X, y))
    was_training = teacher.training
    teacher.eval()
    found = [_Capture(teacher.get_submodule(t)) for _, t in pairs]
    try:
        with train.num_threads(1), torch.no_grad():
            first = _teach(teacher, X[:64], found)
            per_row = sum(h[0].numel() * h[0].element_size() for h in [first[0], *first[1]])
            cached = per_row * len(X) <= CACHE_BYTES
            if cached:  # every row's outputs, once, written in place (no second copy at any time)
                target = first[0].new_empty((len(X), *first[0].shape[1:]))
                hidden = [h.new_empty((len(X), *h.shape[1:])) for h in first[1]]
                for i in range(0, len(X), 64):
                    out, hints = first if i == 0 else _teach(teacher, X[i : i + 64], found)
                    for whole, part in zip([target, *hidden], [out, *hints], strict=True):
                        whole[i : i + len(part)] = part
        pad = _padding_id(teacher)
        # else, with a second epoch to use them, each row's outputs as the first epoch computes them
        kept = None if cached or epochs < 2 else _Kept.plan(X, pad, first)
        if objective == "auto":  # judged on every row's outputs when they are kept, else the first 64
            seen = target if cached else first[0]
            unit = seen.dim() == 2 and bool(((seen.norm(dim=1) - 1).abs() < 1e-3).all())
            objective = "cosine" if unit else "kl"
        del first
        if cached:  # the teacher runs no more: its hooks go now
            for capture in found:
                capture.remove()
            found = []
            teacher.train(was_training)

        def loss(out: torch.Tensor, batch: train.Batch):
            if cached:
                want, wanted = target[batch.index], [h[batch.index] for h in hidden]
            elif kept is not None and kept.has(batch.index):
                want, wanted = kept.get(batch.index)
            else:
                with torch.no_grad():
                    want, wanted = _teach(teacher, batch.x, found)
                if kept is not None:
                    kept.put(batch.index, want, wanted)
            if out.shape != want.shape:
                raise ValueError(
                    f"the student's outputs {tuple(out.shape)} differ from the teacher's {tuple(want.shape)}"
                )
            if objective == "cosine":
                main = 1 - F.cosine_similarity(out, want, dim=1).mean()
            else:
                log_p = F.log_softmax(out, dim=1)
                log_q = F.log_softmax(want, dim=1)
                main = (log_q.exp() * (log_q - log_p)).sum(1).mean()
            if not pairs:
                return main
            pairs_out = zip(captures, wanted, strict=True)
            hint = sum(_hint_loss(c.out, h, batch.x, pad) for c, h in pairs_out)
            hint = hint / len(pairs)
            return main + hint_weight * hint, {"output_loss": main, "hint_loss": hint}

        lengths = _lengths(X, pad) if by_length else None
        frozen = [p for p in tables if p.requires_grad] if freeze_embeddings else []
        captures = [_Capture(student.get_submodule(s)) for s, _ in pairs]
        try:
            for p in frozen:
                p.requires_grad_(False)
            history = train.fit(student, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                                progress=progress, loss=loss, schedule=schedule, lengths=lengths)  # fmt: skip
        finally:
            for p in frozen:
                p.requires_grad_(True)
            for capture in captures:
                capture.remove()
    finally:
        teacher.train(was_training)
        for capture in found:
            capture.remove()
    return history[["epoch", "loss", *(["output_loss", "hint_loss"] if pairs else [])]]


class _Kept:
    """The teacher's outputs for each distinct training row, kept as the batches first compute them:
    the final output as computed, each hint layer's output in float16 at the row's positions that
    are not padding (all of them when there is no padding id). Repeated rows share one entry."""

    def __init__(self, inverse, mask, out_shape, out_dtype, dims):
        self.inverse, self.mask = inverse, mask  # training row -> distinct row; its positions kept
        counts = mask.sum(1)
        self.start = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]).tolist()
        self.out = torch.empty((len(mask), *out_shape), dtype=out_dtype)
        self.hidden = [torch.empty((self.start[-1], dim), dtype=torch.float16) for dim in dims]
        self.filled = torch.zeros(len(mask), dtype=torch.bool)
        self.usable = True  # False once a hint output overflows float16: the teacher runs again

    @classmethod
    def plan(cls, X: torch.Tensor, pad: int | None, first) -> _Kept | None:
        """Returns a store for the training inputs ``X`` when they are token ids (2-D integers)
        and their teacher outputs (shapes as in ``first``, :func:`_teach` of the first rows) fit in
        :data:`CACHE_BYTES` so kept; else None."""
        out, hints = first
        if not hints or X.dim() != 2 or X.is_floating_point() or len(X) == 0:
            return None
        if any(h.shape[1] != X.shape[1] for h in hints):  # longer than the inputs (_teach pads shorter)
            return None
        rows, inverse = torch.unique(X, dim=0, return_inverse=True)
        mask = rows != pad if pad is not None else torch.ones_like(rows, dtype=torch.bool)
        dims = [h.shape[2] for h in hints]
        size = int(mask.sum()) * sum(dims) * 2 + len(rows) * out[0].numel() * out.element_size()
        if size > CACHE_BYTES:
            return None
        return cls(inverse, mask, out.shape[1:], out.dtype, dims)

    def has(self, index: torch.Tensor) -> bool:
        """Whether every training row of ``index`` is kept."""
        return self.usable and bool(self.filled[self.inverse[index]].all())

    def get(self, index: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Returns the kept outputs of the training rows ``index`` in :func:`_teach`'s shapes: the
        hint outputs in float32 with zeros at the padding, where the teacher's own are left out by
        :func:`_hint_loss` (it averages over the positions that are not padding)."""
        rows = self.inverse[index].tolist()
        wanted = []
        for h in self.hidden:
            full = torch.zeros((len(rows), self.mask.shape[1], h.shape[1]))
            for i, r in enumerate(rows):
                full[i, self.mask[r]] = h[self.start[r] : self.start[r + 1]].float()
            wanted.append(full)
        return self.out[rows], wanted

    def put(self, index: torch.Tensor, want: torch.Tensor, wanted: list[torch.Tensor]) -> None:
        """Keeps the outputs the teacher just computed for the training rows ``index`` (those not
        kept yet)."""
        if not self.usable:
            return
        for i, r in enumerate(self.inverse[index].tolist()):
            if self.filled[r]:
                continue
            self.out[r] = want[i]
            for h, w in zip(self.hidden, wanted, strict=True):
                half = w[i, self.mask[r]].half()
                if not torch.isfinite(half).all():  # beyond float16: compute every batch from now on
                    self.usable, self.hidden, self.out = False, [], None  # the memory goes too
                    return
                h[self.start[r] : self.start[r + 1]] = half
            self.filled[r] = True


def _teach(teacher, x: torch.Tensor, found) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Returns the teacher's outputs for the inputs ``x`` and, per captured hint layer, its outputs
    padded to ``x``'s length."""
    out = teacher(x)
    return out, [_padded(capture.out, x.shape[1]) for capture in found]


def _lengths(X: torch.Tensor, pad: int | None) -> torch.Tensor:
    """Returns each input's length for grouping batches: its entries that are not ``pad`` (token
    ids), or its full length when there is no padding id or the inputs are not token ids."""
    if pad is None or X.is_floating_point() or X.dim() != 2:
        return torch.full((len(X),), X[0].numel() if len(X) else 0, dtype=torch.long)
    return (X != pad).sum(1)


def _check_hints(hints, student, teacher) -> list[tuple[str, str]]:
    """Returns ``hints`` as a list of (student_layer, teacher_layer) pairs of existing module names
    ([] for None); raises TypeError or ValueError (one line) otherwise."""
    if hints is None:
        return []
    what = "hints must be None or a list of (student_layer, teacher_layer) module names, got "
    what += shorten(hints)
    if not isinstance(hints, (list, tuple)):
        raise TypeError(what)
    if not hints:
        raise ValueError(what)
    pairs = []
    for pair in hints:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(isinstance(n, str) for n in pair):
            raise TypeError(what)
        for who, net, name in (("student", student, pair[0]), ("teacher", teacher, pair[1])):
            modules = dict(net.named_modules())
            if name not in modules or name == "":
                names = ", ".join(n for n in modules if n)
                raise ValueError(f"{who} has no layer {name!r}; its layers: {shorten(names, 200)}")
        pairs.append((pair[0], pair[1]))
    return pairs


def _padded(out, length: int) -> torch.Tensor:
    """Returns a layer's ``(batch, width, dim)`` output padded with zeros to ``length`` positions
    (MiniLM drops the columns that are padding in a whole batch)."""
    if not isinstance(out, torch.Tensor) or out.dim() != 3:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"a hint layer must return a (batch, length, dim) tensor, got {got}")
    return F.pad(out, (0, 0, 0, length - out.shape[1])) if out.shape[1] < length else out


def _padding_id(model: nn.Module) -> int | None:
    """Returns the padding token id of ``model``'s first embedding table (MiniLM's 0), or None when
    it has none (the tiny GPT: its id 0 is a real character)."""
    return next((m.padding_idx for m in model.modules() if isinstance(m, nn.Embedding)), None)


def _hint_loss(out: torch.Tensor, want: torch.Tensor, x: torch.Tensor, pad: int | None) -> torch.Tensor:
    """Returns ``1 - cos`` between the student's and the teacher's outputs of one hint pair, averaged
    over the positions whose input token is not ``pad`` (every position when ``pad`` is None)."""
    if out.dim() != 3 or out.shape[0] != want.shape[0] or out.shape[2] != want.shape[2]:
        raise ValueError(
            f"a hint pair's outputs differ: the student's {tuple(out.shape)}, "
            f"the teacher's {tuple(want.shape)}"
        )
    width = out.shape[1]
    cos = F.cosine_similarity(out, want[:, :width], dim=2)
    if pad is not None and x.dim() == 2 and not x.is_floating_point() and x.shape[1] >= width:
        keep = (x[:, :width] != pad).to(cos.dtype)
        return 1 - (cos * keep).sum() / keep.sum().clamp(min=1)
    return 1 - cos.mean()
