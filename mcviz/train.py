"""Training and evaluation: deterministic, single-threaded by default, with a cache of baselines.

Same arguments and seed give bit-identical weights on every rerun: shuffling uses a private
generator, the global RNG is forked and restored, and training runs on one thread unless asked.

``fit`` is mcviz's only training loop. What other techniques need goes through its hooks, not
through a loop of their own: a ``loss`` (distillation), ``extra_parameters`` (a hint regressor),
an input ``transform`` on fit's generator (jitter), an ``accuracy_mask`` (scarce labels), an
``on_step`` callback (gradual pruning) and a ``regularizer`` (Lagrangian sweeps); a learning-rate
``schedule`` and ``lengths`` to group batches by (a language model's distillation) are options.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from mcviz import _cache, models
from mcviz._checks import (
    check_bool,
    check_choice,
    check_data,
    check_model,
    check_option,
    check_seed,
    shorten,
)
from mcviz.data import SPLITS, DataBundle
from mcviz.registry import register  # registry imports nothing from mcviz

# bump when the training loop changes what a cached entry means (2: an entry holds its key and format)
CACHE_FORMAT = 2
HISTORY_COLUMNS = ("epoch", "loss", "train_accuracy", "val_accuracy")
# how fit's learning rate moves: "constant"; "cosine": up linearly over the first tenth of the steps
# (warm-up), then down along a half cosine that would reach 0 one step after the last
SCHEDULES = ("constant", "cosine")
# with lengths=, each epoch's shuffled order is cut into runs of this many batches, each run sorted
# by length: a batch holds inputs of about one length, the order stays random (Hugging Face's
# LengthGroupedSampler sorts up to 50 batches at a time)
LENGTH_GROUP = 50
# what fit's ``loss`` hook returns: the loss, or the loss and its named components
LossOutput = torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]


class NonFiniteLoss(FloatingPointError):
    """Training stopped because a batch's loss was NaN or infinite (the message names the epoch and step)."""


@dataclass(frozen=True)
class Batch:
    """One training step's examples, as ``fit``'s ``loss`` hook sees them.

    Attributes:
        x: the inputs as the model saw them (after ``transform``).
        y: their labels.
        index: their positions in the training split (e.g. to look up cached teacher outputs).
    """

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor


def fit(
    model: nn.Module,
    data: DataBundle,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
    threads: int = 1,
    regularizer: Callable[[nn.Module], torch.Tensor] | None = None,
    loss: Callable[[torch.Tensor, Batch], LossOutput] | None = None,
    extra_parameters: Iterable[torch.Tensor] = (),
    transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    accuracy_mask: torch.Tensor | None = None,
    on_step: Callable[[int], None] | None = None,
    schedule: str = "constant",
    lengths: torch.Tensor | None = None,
) -> pd.DataFrame:
    """Trains ``model`` in place with Adam and cross-entropy; returns one history row per epoch.

    The history has the columns epoch, loss (mean training loss), train_accuracy (on the
    batches as they were trained) and val_accuracy, then one column per loss component that
    ``loss`` reports. The global RNG state is left unchanged.

    Each epoch shuffles the training split with a private generator seeded with ``seed``; each
    step takes the next batch, applies ``transform``, runs the model, adds ``regularizer`` to
    ``loss``, takes one Adam step over the model's parameters and ``extra_parameters``, then calls
    ``on_step``. Without hooks it is the plain cross-entropy loop; every hook is optional.

    Args:
        model: any classifier taking ``(N, *data.input_shape)`` and returning logits, with
            float32 (or float16) CPU tensors (``mcv._checks.check_model``).
        data: a DataBundle (``mcv.data.load``).
        epochs: passes over the training split, in [1, 200] (the shared ``BOUNDS``).
        lr: Adam learning rate, in (0, 10].
        batch_size: examples per step, in [1, 4096].
        seed: fixes the shuffling order (and any randomness inside the model), in [0, 2**32 - 1].
        progress: show a tqdm progress bar (a widget in JupyterLab, text in a terminal).
        threads: torch threads used while training, in [1, 256]; 1 keeps results bit-identical.
        regularizer: None, or a function ``model -> scalar tensor`` added to every batch's loss
            (e.g. ``lambda m: lam * penalty(m)`` for a Lagrangian sweep); the history's ``loss``
            includes it.
        loss: None (cross-entropy on the labels), or a function ``(logits, batch) -> loss`` where
            ``batch`` is a :class:`Batch` (inputs, labels, positions in the training split) and
            ``loss`` a scalar tensor, or ``(scalar tensor, {name: scalar tensor})`` whose named
            components (e.g. ``{"soft_loss": ..., "hard_loss": ...}``) become history columns of
            their epoch means, in the order given. ``mcv.distill.fit`` is this hook.
        extra_parameters: tensors trained by the same Adam after the model's own parameters,
            e.g. a hint regressor that is not part of the model.
        transform: None, or a function ``(inputs, generator) -> inputs`` applied to every
            batch before the forward pass (data augmentation such as random shifts). It draws
            its randomness from ``generator``, fit's private generator, so a run stays
            reproducible; it must not change its input in place.
        accuracy_mask: None (every example counts), or a bool tensor with one entry per
            training example: train_accuracy counts only the examples marked True (e.g. the
            labelled ones when labels are scarce); 0 in an epoch that saw none.
        on_step: None, or a function called after every optimizer step with the global step
            number (1, 2, ..., ``epochs`` times the steps per epoch), e.g. to prune on a
            schedule. Changing parameters in place there is allowed.
        schedule: the learning rate over the run (:data:`SCHEDULES`): "constant" (``lr`` at every
            step) or "cosine" (linear warm-up over the first tenth of the steps to ``lr``, then a
            half cosine down towards 0, which it would reach one step after the last; under 20
            steps the warm-up is the first step alone, at ``lr``).
        lengths: None, or one int per training example (e.g. its tokens that are not padding):
            each epoch's shuffled order is then grouped by length (:data:`LENGTH_GROUP` batches at
            a time are sorted by it), so a batch of token sequences pads less. The batches still
            come in a random order, drawn from fit's generator.

    Raises:
        TypeError, ValueError: a bad argument, before anything is trained (one line each).
        NonFiniteLoss: a batch's loss was NaN or infinite (diverging training, or data or
            weights with huge values); the message names the epoch and step, and the model keeps
            the finite weights it had before that step.
    """
    check_model(model)
    check_data(data)
    epochs, batch_size = check_option("epochs", epochs), check_option("batch_size", batch_size)
    seed, threads, lr = check_seed(seed), check_option("threads", threads), check_option("lr", lr)
    check_bool(progress, "progress")
    if regularizer is not None and not callable(regularizer):
        raise TypeError(f"regularizer must be None or a function of the model, got {shorten(regularizer)}")
    for name, hook in (("loss", loss), ("transform", transform), ("on_step", on_step)):
        if hook is not None and not callable(hook):
            raise TypeError(f"{name} must be None or a function, got {shorten(hook)}")
    X, y = data.train.tensors
    n = len(y)
    extra = _check_extra_parameters(extra_parameters, model)
    _check_accuracy_mask(accuracy_mask, n)
    check_choice(schedule, "schedule", SCHEDULES)
    _check_lengths(lengths, n)
    steps = (n + batch_size - 1) // batch_size
    rate = _schedule(schedule, lr, epochs * steps)
    rows, parts = [], None  # parts: the names of the loss components, from the first step
    step = 0
    with num_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(list(model.parameters()) + extra, lr=lr)
        bar = _progress_bar(epochs * steps, progress)
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(n, generator=generator)
            if lengths is not None:
                order = _grouped_by_length(order, lengths, batch_size, generator)
            total_loss, correct, seen = 0.0, 0, 0
            sums = dict.fromkeys(parts or (), 0.0)
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                xb, yb = X[idx], y[idx]
                if transform is not None:
                    xb = transform(xb, generator)
                optimizer.zero_grad(set_to_none=True)
                logits = model(xb)
                if loss is None:
                    batch_loss, components = F.cross_entropy(logits, yb), {}
                else:
                    batch_loss, components = _loss_output(loss(logits, Batch(xb, yb, idx)), parts)
                    if parts is None:
                        parts, sums = list(components), dict.fromkeys(components, 0.0)
                if regularizer is not None:
                    batch_loss = batch_loss + regularizer(model)
                value = batch_loss.item()
                if not math.isfinite(value):  # stop before the step: the weights stay finite
                    now = "" if schedule == "constant" else f" at its peak, {rate(step):g} at that step"
                    raise NonFiniteLoss(
                        f"training stopped: the loss is {value} at epoch {epoch} of {epochs}, step "
                        f"{step + 1} (batch {start // batch_size + 1} of {steps}); the model keeps its "
                        f"weights from before that step. Lower lr (now {lr:g}{now}) or check the "
                        "data and model"
                    )
                batch_loss.backward()
                for group in optimizer.param_groups:
                    group["lr"] = rate(step)
                optimizer.step()
                step += 1
                if on_step is not None:
                    on_step(step)
                k = len(idx)
                total_loss += value * k
                for name, value in components.items():
                    sums[name] += value.item() * k
                if accuracy_mask is None:
                    correct += int((logits.argmax(1) == yb).sum())
                    seen += yb.numel()  # k labels, or k x length next-character targets
                else:
                    counted = accuracy_mask[idx]
                    correct += int((logits[counted].argmax(1) == yb[counted]).sum())
                    seen += yb[counted].numel()
                if bar is not None:
                    bar.update(1)
            val = evaluate(model, data, split="val", threads=threads)
            rows.append((epoch, total_loss / n, correct / max(seen, 1), val, *(v / n for v in sums.values())))
            if bar is not None:
                bar.set_postfix(epoch=epoch, loss=f"{total_loss / n:.4f}", val=f"{val:.4f}")
        if bar is not None:
            bar.close()
    model.eval()
    return pd.DataFrame(rows, columns=[*HISTORY_COLUMNS, *(parts or ())])


def _schedule(schedule: str, lr: float, total: int) -> Callable[[int], float]:
    """Returns the learning rate of step ``k`` (0, 1, ..., ``total`` - 1) under ``schedule``."""
    if schedule == "constant":
        return lambda k: lr
    warm = max(1, total // 10)

    def cosine(k: int) -> float:  # every step learns: 0 would come one step after the last
        if k < warm:
            return lr * (k + 1) / warm
        return lr * 0.5 * (1 + math.cos(math.pi * (k - warm + 1) / (total - warm + 1)))

    return cosine


def _check_lengths(lengths, n: int) -> None:
    """Refuses ``lengths`` that are not None or a 1-D integer tensor of ``n`` entries (one line)."""
    if lengths is None:
        return
    integer = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
    if not isinstance(lengths, torch.Tensor) or lengths.dim() != 1 or lengths.dtype not in integer:
        raise TypeError(f"lengths must be None or a 1-D tensor of ints (torch.int64 or another integer "
                        f"dtype), got {shorten(lengths)}")  # fmt: skip
    if len(lengths) != n:
        raise ValueError(f"lengths must have one entry per training example ({n:,}), got {len(lengths):,}")


def _grouped_by_length(order: torch.Tensor, lengths: torch.Tensor, batch_size: int,
                       generator: torch.Generator) -> torch.Tensor:  # fmt: skip
    """Returns ``order`` with every run of :data:`LENGTH_GROUP` batches sorted by ``lengths``
    (longest first, ties in ``order``'s order), then its full batches shuffled with ``generator``
    (a last, shorter batch stays last: fit cuts the order into batches from the start)."""
    run = LENGTH_GROUP * batch_size
    parts = []
    for start in range(0, len(order), run):
        part = order[start : start + run]
        parts.append(part[torch.sort(lengths[part], descending=True, stable=True).indices])
    grouped = torch.cat(parts)
    full = len(grouped) // batch_size
    batches = list(torch.split(grouped[: full * batch_size], batch_size))
    shuffled = [batches[i] for i in torch.randperm(full, generator=generator)]
    return torch.cat([*shuffled, grouped[full * batch_size :]])


def fine_tune(
    model: nn.Module, data: DataBundle, *, epochs: int = 1, lr: float = 1e-3, seed: int = 0
) -> nn.Module:
    """Returns a copy of ``model`` trained ``epochs`` more epochs with :func:`fit`; ``model`` is
    left unchanged.

    Use it between compression steps (prune, fine-tune, quantize: the Deep Compression
    pipeline). Whatever ``fit`` does to a layer, the copy gets: pruned layers keep their zeros,
    quantized layers keep their codes (only biases and float layers move). The copy keeps
    ``model``'s train / eval mode. Same arguments give bit-identical weights.

    Args:
        model: a trained network, plain or compressed.
        data: a DataBundle; trained on its training split.
        epochs: passes over the training split, an int in [1, 200].
        lr: Adam learning rate, a number in (0, 10]; small, because the model is already trained.
        seed: fixes the shuffling order, an int in [0, 2**32 - 1].

    Example:
        >>> sparse = mcv.prune.magnitude(model, 0.9, scope="global")  # doctest: +SKIP
        >>> recovered = mcv.train.fine_tune(sparse, data, epochs=3)  # doctest: +SKIP
    """
    check_model(model)
    check_data(data)
    _check_fine_tune(epochs, lr, seed)
    out = copy.deepcopy(model)
    fit(out, data, epochs=epochs, lr=lr, seed=seed, progress=False)
    out.train(model.training)
    return out


@register
@dataclass(frozen=True)
class FineTuneConfig:
    """Fine-tuning with Adam: a few more epochs of training, e.g. after pruning and before quantizing."""

    method: ClassVar[str] = "finetune"
    needs_data: ClassVar[bool] = True
    epochs: int = 1
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        _check_fine_tune(self.epochs, self.lr, self.seed)

    def apply(self, model: nn.Module, data: DataBundle | None = None) -> nn.Module:
        return fine_tune(model, data, epochs=self.epochs, lr=self.lr, seed=self.seed)


@torch.no_grad()
def evaluate(
    model: nn.Module, data: DataBundle, split: str = "test", *, batch_size: int = 1000, threads: int = 1
) -> float:
    """Returns the accuracy of ``model`` on one split, in [0, 1]; the model is left in eval mode.

    A classifier's logits are ``(N, classes)`` against ``(N,)`` labels; a sequence model's (``mcv.gpt``)
    are ``(N, classes, length)`` against ``(N, length)`` targets, and every target counts once.
    """
    right = correct(model, data, split, batch_size=batch_size, threads=threads)
    return int(right.sum()) / right.numel()  # per label: a sequence model's targets are (N, length)


def correct(
    model: nn.Module, data: DataBundle, split: str = "test", *, batch_size: int = 1000, threads: int = 1
) -> torch.Tensor:
    """Returns a bool tensor shaped like the split's labels: True where the model's top class is the
    label (one entry per image; per target, ``(N, length)``, for a sequence model). The model is
    left in eval mode, its weights unchanged.

    Two models' vectors on the same split are paired: ``mcv.stats.mcnemar`` and
    ``mcv.stats.paired_bootstrap`` compare them image by image.
    """
    check_model(model)
    check_data(data)
    check_choice(split, "split", SPLITS)
    batch_size, threads = check_option("batch_size", batch_size), check_option("threads", threads)
    X, y = data.split(split).tensors
    if len(y) == 0:
        raise ValueError(f"split {split!r} of {data.name!r} is empty")
    model.eval()
    parts = []
    with num_threads(threads), torch.no_grad():
        for start in range(0, len(y), batch_size):
            logits = model(X[start : start + batch_size])
            parts.append(logits.argmax(1) == y[start : start + batch_size])
    return torch.cat(parts)


def baseline(
    model_name: str,
    data: DataBundle,
    *,
    epochs: int,
    seed: int = 0,
    lr: float = 1e-3,
    batch_size: int = 64,
    progress: bool = True,
    return_history: bool = False,
):
    """Returns a trained ``models.build(model_name)``, from the cache when it was trained before.

    The cache key covers everything that affects the weights: model, data fingerprint, epochs,
    seed, lr, batch size, torch version and the cache format. The folder is ``$MCVIZ_CACHE_DIR``
    (default ``~/.cache/mcviz``); entries are written atomically and loaded with
    ``weights_only=True``. An entry is trusted only when it holds its own key and format, exactly
    the model's tensors (names, shapes, dtypes, finite values) and a history of ``epochs`` rows
    with finite values in range; any other entry is retrained with a warning and overwritten. A
    folder that cannot be written leaves the model untrained-from-cache but returned: caching
    degrades to none, with one warning.

    Returns:
        the model in eval mode, or ``(model, history)`` when ``return_history`` is true.
    """
    models.check_name(model_name)
    check_data(data)
    settings = {
        "epochs": check_option("epochs", epochs),
        "seed": check_seed(seed),
        "lr": check_option("lr", lr),
        "batch_size": check_option("batch_size", batch_size),
    }
    check_bool(progress, "progress")
    check_bool(return_history, "return_history")

    def build() -> nn.Module:
        return models.build(
            model_name, input_shape=data.input_shape, num_classes=data.num_classes, seed=settings["seed"]
        )

    model = build()
    key = _cache_key(model_name, data, **settings)
    safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", data.name)[:60]  # a user's name may hold "/"
    path = cache_dir() / f"baseline-{model_name}-{safe_name}-{key[:20]}.pt"
    history = None
    try:
        history = _cache.load_trained(path, key, CACHE_FORMAT, model, HISTORY_COLUMNS, settings["epochs"])
    except Exception as e:  # noqa: BLE001 - any entry that is not exactly right is retrained
        warnings.warn(f"cache entry {path} is unreadable ({_cache.reason(e)}); retraining", stacklevel=2)
        model = build()
    if history is None:
        history = fit(model, data, **settings, progress=progress)
        _cache.store_trained(path, key, CACHE_FORMAT, model, history)
    model.eval()
    return (model, history) if return_history else model


def cache_dir() -> Path:
    """Returns the folder of cached baselines and rows: ``$MCVIZ_CACHE_DIR`` or ``~/.cache/mcviz``."""
    return _cache.folder()


def _cache_key(model_name, data, **settings) -> str:
    blob = json.dumps(
        {
            "model": model_name,
            "data": data.fingerprint,
            "input_shape": list(data.input_shape),
            "classes": data.num_classes,
            "torch": torch.__version__,
            "format": CACHE_FORMAT,
            **{k: settings[k] for k in sorted(settings)},
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@contextlib.contextmanager
def num_threads(n: int):
    """Runs the block with ``n`` torch threads, then restores the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _progress_bar(total: int, show: bool):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="training", unit="step", leave=False)


def _loss_output(out, parts: list[str] | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Returns ``(loss, components)`` from what a ``loss`` hook returned; raises on anything else,
    or when the component names differ from ``parts`` (those of the first step) or clash."""
    loss, found = (out[0], out[1]) if isinstance(out, tuple) and len(out) == 2 else (out, {})
    ok = isinstance(loss, torch.Tensor) and loss.dim() == 0 and isinstance(found, dict)
    if not ok or not all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in found.values()):
        got = f"a tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"loss must return a scalar tensor or (scalar tensor, dict of them), got {got}")
    names = list(found)
    if parts is not None and names != parts:
        raise ValueError(f"loss must report the same components at every step: {parts}, got {names}")
    bad = [k for k in names if not isinstance(k, str) or not k or k in HISTORY_COLUMNS]
    if bad:
        raise ValueError(
            f"loss components need names other than {', '.join(HISTORY_COLUMNS)}, got {shorten(bad[0])}"
        )
    return loss, found


def _check_extra_parameters(extra, model: nn.Module) -> list[torch.Tensor]:
    if isinstance(extra, torch.Tensor) or not isinstance(extra, Iterable):
        raise TypeError(f"extra_parameters must be an iterable of tensors, got {type(extra).__name__}")
    extra, own = list(extra), {id(p) for p in model.parameters()}
    for p in extra:
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"extra_parameters must hold tensors, got {type(p).__name__}")
        if id(p) in own:
            got = "one of the model's own parameters"
        elif not p.is_leaf or not p.requires_grad:
            got = f"a tensor with is_leaf={p.is_leaf}, requires_grad={p.requires_grad}"
        else:
            continue
        raise ValueError(
            f"extra_parameters must be leaf tensors that require grad, not the model's; got {got}"
        )
    return extra


def _check_accuracy_mask(mask, n: int) -> None:
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor):
        raise TypeError(
            f"accuracy_mask must be None or a bool tensor of shape ({n},) (training split), got "
            f"{type(mask).__name__}"
        )
    if mask.dtype != torch.bool or tuple(mask.shape) != (n,):
        raise ValueError(
            f"accuracy_mask must be None or a bool tensor of shape ({n},) (training split), got "
            f"{mask.dtype} {tuple(mask.shape)}"
        )


def _check_fine_tune(epochs, lr, seed) -> None:
    check_option("epochs", epochs)
    check_option("lr", lr)
    check_seed(seed)
