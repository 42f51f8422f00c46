"""Short distillation that repairs a compressed model: train it to reproduce its own uncompressed
teacher's outputs on local text (no labels needed).

Low-rank factorization and layer dropping change a pretrained model's function; a few epochs of
matching the original's outputs on unlabelled text win most of it back. :func:`match` does it
with ``mcv.train.fit`` (its ``loss`` hook; the teacher's outputs are computed once):

- ``"cosine"``: ``1 - cos(student, teacher)`` per row, for sentence embeddings (MiniLM);
- ``"kl"``: ``KL(softmax(teacher) || softmax(student))`` over the class dimension (dim 1), averaged
  over examples and positions, for logits of a classifier ``(N, C)`` or a language model
  ``(N, vocab, length)``;
- ``"auto"``: cosine when the teacher's outputs are 2-D unit vectors, else KL.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import torch
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from mcviz import train
from mcviz._checks import check_choice, check_data, check_int, check_model, check_number, check_option

OBJECTIVES = ("auto", "cosine", "kl")


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


def repair(student, teacher, data, *, method: str, epochs: int, lr: float, samples: int | None = None):
    """Returns ``student`` after :func:`match` with ``teacher`` for ``epochs`` epochs (none when 0),
    in ``teacher``'s train/eval mode: the last step of a method that changes a model's function
    (``lowrank``, ``layerdrop``). The options are checked by :func:`check_repair` (which the method
    calls first, before any work)."""
    epochs, lr, samples = check_repair(data, method=method, epochs=epochs, lr=lr, samples=samples)
    if epochs:
        match(student, teacher, data, epochs=epochs, lr=lr, samples=samples)
        student.train(teacher.training)
    return student


def match(student, teacher, data, *, epochs: int = 1, lr: float = 1e-4, batch_size: int = 16,
          samples: int | None = None, objective: str = "auto", seed: int = 0,
          progress: bool = False) -> pd.DataFrame:  # fmt: skip
    """Trains ``student`` in place to reproduce ``teacher``'s outputs on ``data``'s training inputs;
    returns the history (epoch, loss: the mean objective). The teacher is unchanged (eval mode,
    no gradients).

    Args:
        student, teacher: models with the same output shape (e.g. a factorized or layer-dropped
            copy and the original).
        data: a DataBundle; only its training inputs are read (labels are ignored).
        epochs, lr, batch_size, seed, progress: as in ``mcv.train.fit`` (Adam).
        samples: train on the first ``samples`` training inputs only; None uses all.
        objective: "auto", "cosine" or "kl" (see the module doc).
    """
    check_model(student)
    check_model(teacher)
    if student is teacher:
        raise ValueError("student and teacher must be different models")
    check_data(data)
    check_choice(objective, "objective", OBJECTIVES)
    check_int(epochs, "epochs")
    check_number(lr, "lr")
    X, y = data.train.tensors
    if samples is not None:
        n = check_int(samples, "samples", low=1, high=len(X))
        X, y = X[:n], y[:n]
        data = dataclasses.replace(data, train=TensorDataset(X, y))
    was_training = teacher.training
    teacher.eval()
    try:
        with train.num_threads(1), torch.no_grad():
            target = torch.cat([teacher(X[i : i + 64]) for i in range(0, len(X), 64)])
    finally:
        teacher.train(was_training)
    if objective == "auto":
        unit = target.dim() == 2 and bool(((target.norm(dim=1) - 1).abs() < 1e-3).all())
        objective = "cosine" if unit else "kl"

    def loss(out: torch.Tensor, batch: train.Batch) -> torch.Tensor:
        want = target[batch.index]
        if out.shape != want.shape:
            raise ValueError(
                f"the student's outputs {tuple(out.shape)} differ from the teacher's {tuple(want.shape)}"
            )
        if objective == "cosine":
            return 1 - F.cosine_similarity(out, want, dim=1).mean()
        log_p = F.log_softmax(out, dim=1)
        log_q = F.log_softmax(want, dim=1)
        return (log_q.exp() * (log_q - log_p)).sum(1).mean()

    history = train.fit(student, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                        progress=progress, loss=loss)  # fmt: skip
    return history[["epoch", "loss"]]
