"""Knowledge distillation: ``mcv.distill``.

- ``kd_loss``: Hinton, Vinyals & Dean's loss, ``alpha * T^2 * KL(soft teacher || soft student)
  + (1 - alpha) * cross-entropy``; ``alpha`` is that weight and nothing else in mcviz.
- ``soft_targets``: a teacher's softened distribution for some examples at several temperatures
  (the "dark knowledge" a one-hot label does not carry).
- ``fit``: trains a student in place from a frozen teacher with ``mcv.train.fit`` (its ``loss``
  hook); optionally on scarce labels (the teacher's soft targets cover the unlabelled rest), with
  jittered inputs, and with a FitNets-style hint loss on an intermediate layer.
- ``KDConfig`` (method ``"kd"``): distills a named student architecture from the model it is
  given, for ``mcv.compress`` and reports.
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from mcviz import data as data_module
from mcviz import models, registry, train
from mcviz._checks import (
    BOUNDS,
    check_bool,
    check_choice,
    check_data,
    check_list,
    check_model,
    check_number,
    check_option,
    check_seed,
    shorten,
)
from mcviz.data import DataBundle

HISTORY_COLUMNS = train.HISTORY_COLUMNS + ("soft_loss", "hard_loss")
STUDENTS = models.NAMES


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """Returns the mean distillation loss over the batch; the inputs are unchanged.

    ``alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student,
    labels)``, with the KL summed over classes and averaged over examples (``F.kl_div`` with
    ``reduction="batchmean"``). The T^2 factor keeps the soft term's gradients the same size as T
    changes. ``alpha = 0`` is plain cross-entropy; ``alpha = 1`` ignores the labels, which may
    then be None.

    Example:
        >>> s, t = torch.zeros(2, 3), torch.tensor([[2.0, 0, 0], [0, 2.0, 0]])
        >>> round(float(kd_loss(s, t, torch.tensor([0, 1]), temperature=1.0, alpha=0.0)), 4)
        1.0986
    """
    check_option("temperature", temperature)
    check_number(alpha, "alpha")
    _check_logits(student_logits, teacher_logits)
    soft = _soft_loss(student_logits, teacher_logits.detach(), temperature)
    if alpha == 1:
        return soft
    if labels is None:
        raise ValueError(f"labels are needed when alpha < 1 (alpha={alpha!r})")
    hard = F.cross_entropy(student_logits, labels)
    if alpha == 0:
        return hard
    return alpha * soft + (1 - alpha) * hard


@torch.no_grad()
def soft_targets(teacher: nn.Module, x: torch.Tensor, temperatures=(1, 2, 4, 8, 20)) -> pd.DataFrame:
    """Returns the teacher's softened class probabilities for ``x`` at each temperature.

    The teacher is unchanged (it runs in eval mode without gradients).

    Args:
        teacher: a classifier returning logits.
        x: one example (``data.input_shape``) or a batch of them.
        temperatures: finite values of T > 0 (not bounded by 100 here: nothing is trained).

    Returns:
        a long table with columns example, temperature, class, probability, one row per
        (example, temperature, class); each example's probabilities sum to 1 per temperature.
    """
    check_model(teacher, "teacher")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor of examples, got {type(x).__name__}")
    one = isinstance(temperatures, (int, float)) and not isinstance(temperatures, bool)
    positive = lambda t, n: check_number(t, n, low=0, low_open=True)  # noqa: E731
    temps = check_list([temperatures] if one else temperatures, "temperatures", positive, what="numbers > 0")
    shape = getattr(teacher, "input_shape", None)
    if shape is not None and tuple(x.shape) == tuple(shape):
        x = x.unsqueeze(0)
    was_training = teacher.training
    teacher.eval()
    logits = teacher(x)
    teacher.train(was_training)
    rows = []
    for t in temps:
        p = F.softmax(logits / t, dim=1)
        for i in range(p.shape[0]):
            rows += [(i, float(t), k, float(p[i, k])) for k in range(p.shape[1])]
    return pd.DataFrame(rows, columns=["example", "temperature", "class", "probability"])


def fit(
    student: nn.Module,
    teacher: nn.Module,
    data: DataBundle,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    labels: float = 1.0,
    label_seed: int = 0,
    jitter: int = 0,
    hint: tuple[str, str] | None = None,
    hint_weight: float = 1.0,
    progress: bool = True,
    threads: int = 1,
) -> pd.DataFrame:
    """Trains ``student`` in place to match ``teacher`` and returns one history row per epoch.

    The teacher is unchanged: it runs in eval mode without gradients.

    It is ``mcv.train.fit`` (the loop, Adam, shuffling and seeding are fit's) with Hinton's loss
    (``kd_loss``) as fit's ``loss`` hook: every step is one Adam step on a shuffled batch of the
    training split (the transfer set). With ``labels < 1`` only a stratified fraction of the
    training labels is used (``mcv.data.labelled_indices(y, labels, seed=label_seed)``, the same
    examples as ``mcv.data.subset``): the cross-entropy term averages over the labelled examples
    of the batch, and the soft term covers every example, labelled or not.

    Args:
        student: the network to train (same number of outputs as the teacher).
        teacher: a trained network; it is run in eval mode without gradients and never changed.
        data: a DataBundle (``mcv.data.load``).
        temperature: T > 0 that softens both distributions.
        alpha: weight of the soft term, in [0, 1].
        epochs, lr, batch_size, seed, progress, threads: as in ``mcv.train.fit``.
        labels: fraction of the training labels the student may see, in (0, 1].
        label_seed: which stratified fraction.
        jitter: shift every training image by up to this many pixels (a fresh random shift per
            example and step; the teacher sees the same shifted image). 0 turns it off.
        hint: ``(student_layer, teacher_layer)`` module names whose outputs are matched with a
            mean-squared error through a learned linear map (FitNets); None turns it off.
        hint_weight: weight of the hint loss, > 0; used only with a ``hint``.

    Returns:
        the history: epoch, loss, train_accuracy (on the labelled examples as they were trained),
        val_accuracy, soft_loss and hard_loss (epoch means).
    """
    check_model(student, "student")
    check_model(teacher, "teacher")
    if student is teacher:
        raise ValueError("student and teacher must be different models")
    check_data(data)
    _check_options(temperature=temperature, alpha=alpha, epochs=epochs, lr=lr, labels=labels, jitter=jitter,
                   seed=seed)  # fmt: skip
    check_option("batch_size", batch_size)
    check_option("threads", threads)
    check_seed(label_seed, "label_seed")
    check_number(hint_weight, "hint_weight", low=0, low_open=True)
    check_bool(progress, "progress")
    if hint is not None:
        _check_hint(hint)
    X, y = data.train.tensors
    labelled = torch.zeros(len(y), dtype=torch.bool)
    labelled[data_module.labelled_indices(y.numpy(), labels, seed=label_seed)] = True
    was_training = teacher.training
    student_hook = teacher_hook = regressor = None
    try:
        teacher.eval()
        with torch.no_grad():
            probe_s, probe_t = student(X[:1]), teacher(X[:1])
        _check_outputs(probe_s, probe_t)
        if hint is not None:
            student_hook, teacher_hook, regressor = _hint(student, teacher, hint, X[:1])
        cached = None
        if not jitter and hint is None:  # a hint needs the teacher's features of every batch
            with train.num_threads(threads), torch.no_grad():
                cached = _logits(teacher, X)

        def loss(logits: torch.Tensor, batch: train.Batch):  # the student's logits
            with torch.no_grad():
                teacher_logits = cached[batch.index] if cached is not None else teacher(batch.x)
            soft = _soft_loss(logits, teacher_logits, temperature)
            mask = labelled[batch.index]  # the hard term sees only the labelled examples
            hard = F.cross_entropy(logits[mask], batch.y[mask]) if mask.any() else logits.sum() * 0.0
            total = alpha * soft + (1 - alpha) * hard
            if regressor is not None:
                guess = regressor(student_hook.out.flatten(1))
                total = total + hint_weight * F.mse_loss(guess, teacher_hook.out.flatten(1))
            return total, {"soft_loss": soft, "hard_loss": hard}

        return train.fit(
            student, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, progress=progress,
            threads=threads, loss=loss, accuracy_mask=labelled,
            extra_parameters=regressor.parameters() if regressor is not None else (),
            transform=(lambda xb, generator: _shift(xb, jitter, generator)) if jitter else None,
        )  # fmt: skip
    finally:
        for hook in (student_hook, teacher_hook):
            if hook is not None:
                hook.remove()
        teacher.train(was_training)


def distill(
    teacher: nn.Module,
    data: DataBundle,
    *,
    student: str = "small_cnn",
    width: int = 8,
    temperature: float = 4.0,
    alpha: float = 0.9,
    epochs: int = 10,
    lr: float = 1e-3,
    labels: float = 1.0,
    jitter: int = 0,
    seed: int = 0,
) -> nn.Module:
    """Returns a new student network distilled from ``teacher`` on ``data``; the teacher is unchanged.

    Args:
        teacher: a trained classifier.
        data: the transfer set (its training split) and the labels the student may see.
        student: a model name from ``mcv.models.NAMES``.
        width: hidden units of an "mlp" student (one hidden layer) or first-layer filters of a
            "small_cnn" student; the fixed architectures do not use it.
        temperature, alpha, epochs, lr, labels, jitter, seed: as in ``fit``.
    """
    check_model(teacher, "teacher")
    check_data(data)
    _check_options(student=student, width=width, temperature=temperature, alpha=alpha, epochs=epochs, lr=lr,
                   labels=labels, jitter=jitter, seed=seed)  # fmt: skip
    net = _build_student(student, width, data, seed)
    fit(
        net,
        teacher,
        data,
        temperature=temperature,
        alpha=alpha,
        epochs=epochs,
        lr=lr,
        labels=labels,
        jitter=jitter,
        seed=seed,
        progress=False,
    )
    return net


@registry.register
@dataclasses.dataclass(frozen=True)
class KDConfig:
    """Distill a new student (mcv.models name) from the model, which becomes the teacher."""

    student: str = "small_cnn"
    width: int = 8
    temperature: float = 4.0
    alpha: float = 0.9
    epochs: int = 10
    lr: float = 1e-3
    labels: float = 1.0
    jitter: int = 0
    seed: int = 0

    method = "kd"
    needs_data = True

    def __post_init__(self):
        _check_options(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def apply(self, model: nn.Module, data: DataBundle) -> nn.Module:
        return distill(model, data, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


def _build_student(name, width, data, seed):
    options = {"mlp": {"hidden": (width,)}, "small_cnn": {"width": width}}.get(name, {})
    return models.build(
        name, input_shape=data.input_shape, num_classes=data.num_classes, seed=seed, **options
    )


def _soft_loss(student_logits, teacher_logits, temperature):
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def _logits(model, X, batch_size=1000):
    return torch.cat([model(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])


def _shift(xb, jitter, generator):
    """Returns each image shifted by its own random (dy, dx) in [-jitter, jitter], zero-filled."""
    if xb.dim() != 4:
        raise ValueError(f"jitter needs image inputs (N, C, H, W), got shape {tuple(xb.shape)}")
    n, _, h, w = xb.shape
    shifts = torch.randint(-jitter, jitter + 1, (n, 2), generator=generator)
    padded = F.pad(xb, (jitter, jitter, jitter, jitter))
    out = torch.empty_like(xb)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        out[i] = padded[i, :, jitter + dy : jitter + dy + h, jitter + dx : jitter + dx + w]
    return out


class _Capture:
    def __init__(self, module):
        self.out = None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        self.out = output

    def remove(self):
        self.handle.remove()


def _check_hint(hint) -> None:
    what = f"hint must be None or (student_layer, teacher_layer) module names, got {shorten(hint)}"
    if not isinstance(hint, (tuple, list)) or not all(isinstance(h, str) for h in hint):
        raise TypeError(what)
    if len(hint) != 2:
        raise ValueError(what)


def _hint(student, teacher, hint, probe):
    layers = []
    for who, net, name in (("student", student, hint[0]), ("teacher", teacher, hint[1])):
        modules = dict(net.named_modules())
        if name not in modules or name == "":
            names = ", ".join(n for n in modules if n)
            raise ValueError(f"{who} has no layer {name!r}; its layers: {names}")
        layers.append(modules[name])
    found = [_Capture(layer) for layer in layers]  # hooked only once both names are known
    with torch.no_grad():
        student(probe)
        teacher(probe)
    s_dim, t_dim = found[0].out[0].numel(), found[1].out[0].numel()
    gen = torch.Generator().manual_seed(0)
    regressor = nn.Linear(s_dim, t_dim, device="meta").to_empty(device="cpu")  # no draw from the global RNG
    with torch.no_grad():
        bound = 1 / math.sqrt(s_dim)
        regressor.weight.uniform_(-bound, bound, generator=gen)
        regressor.bias.zero_()
    return found[0], found[1], regressor


def _check_options(**options) -> None:
    """Checks the options a kd run shares (those given), each against ``mcviz._checks.BOUNDS``:
    student (a model name), width, temperature in (0, 100], alpha in [0, 1], epochs in [1, 200],
    lr in (0, 10], labels in (0, 1], jitter in [0, 8], seed in [0, 2**32 - 1]."""
    for name, value in options.items():
        if name == "student":
            check_choice(value, "student", STUDENTS)
        elif name == "seed":
            check_seed(value)
        elif name in ("labels", "alpha"):
            check_number(value, name, bounds=BOUNDS[name])
        else:
            check_option(name, value)


def _check_logits(student_logits, teacher_logits) -> None:
    for name, t in (("student_logits", student_logits), ("teacher_logits", teacher_logits)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a 2-D tensor (batch, classes), got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"{name} must be a 2-D tensor (batch, classes), got shape {tuple(t.shape)}")
    _check_outputs(student_logits, teacher_logits)
    if student_logits.shape[0] != teacher_logits.shape[0]:
        raise ValueError(
            f"the student's batch has {student_logits.shape[0]} examples but the teacher's has "
            f"{teacher_logits.shape[0]}; they must match"
        )


def _check_outputs(student_out, teacher_out) -> None:
    if student_out.shape[-1] != teacher_out.shape[-1]:
        raise ValueError(
            f"the student has {student_out.shape[-1]} outputs but the teacher has "
            f"{teacher_out.shape[-1]}; they must match"
        )
