"""Pruning schedules: when and how much to prune while (re)training.

- ``one_shot``: prune once to ``sparsity`` (``magnitude``), then fine-tune.
- ``iterative``: prune to increasing sparsities that reach ``sparsity`` in ``steps`` rounds,
  fine-tuning after each round. Every round removes the same fraction of the weights that are
  still there: round k of n prunes to ``1 - (1 - sparsity) ** (k / n)`` (the last round to
  ``sparsity`` exactly), the schedule of Han et al. (2015) and Frankle & Carbin (2019).
- ``zhu_gupta``: the cubic schedule of Zhu & Gupta (2017), "To prune, or not to prune":
  ``s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0)) ** 3`` for ``t0 <= t <= t1``,
  ``s_i`` before ``t0`` and ``s_f`` after ``t1``: it prunes fast while many redundant weights
  remain and slowly near the end.
- ``GradualPruner``: the object that follows the cubic schedule during training; its state (the
  step count and the masks) lasts across steps. Call ``step()`` after every optimizer step; it
  re-prunes ``pruner.model`` in place when the schedule says so, so an optimizer built on that
  model's parameters keeps working, and keeps every pruned weight at exactly zero.
- ``gradual``: one ``mcv.train.fit`` run (one Adam for the whole run) whose per-step callback
  steps a ``GradualPruner``: Zhu & Gupta's step schedule, pruning every ``frequency`` optimizer
  steps from ``begin_step`` to ``end_step``, then training on at the final sparsity.

Pruning uses ``unstructured.magnitude``, which does not compound: re-pruning to ``s`` leaves
exactly ``round(s * n)`` zeros. Every function returns a new model and leaves its input unchanged.
"""

from __future__ import annotations

import warnings

import pandas as pd
import torch
from torch import nn

from mcviz import _layers, train
from mcviz._checks import (
    BOUNDS,
    Range,
    check_choice,
    check_data,
    check_int,
    check_model,
    check_option,
    check_seed,
    check_sparsity,
    offset_seed,
)
from mcviz.prune.unstructured import SCOPES, _magnitude, _magnitude_masks, _plan, _Pruned

# a gradual run prunes between epochs: it needs two at least
GRADUAL_EPOCHS = Range(2, BOUNDS["epochs"].high)


def one_shot(
    model: nn.Module,
    data,
    sparsity: float,
    *,
    scope: str = "global",
    fine_tune_epochs: int = 1,
    lr: float = 1e-3,
    seed: int = 0,
) -> tuple[nn.Module, pd.DataFrame]:
    """Returns ``(pruned and fine-tuned model, history)``; ``model`` is left unchanged.

    Args:
        model: a trained network with Linear / Conv2d layers.
        data: a DataBundle (``mcv.data.load``).
        sparsity: the fraction of zero weights in [0, 1] after pruning (a float).
        scope: "layer" or "global" (see ``mcv.prune.magnitude``).
        fine_tune_epochs: epochs of ``mcv.train.fit`` after pruning, in [1, 200].
        lr: the fine-tuning learning rate, in (0, 10].
        seed: the fine-tuning seed (shuffling order), in [0, 2**32 - 1].

    Returns:
        The model (PrunedLinear / PrunedConv2d layers, zeros kept) and the fine-tuning history
        of ``mcv.train.fit`` with a ``sparsity`` column (the measured fraction of zero weights).

    Example:
        >>> sparse, history = one_shot(model, data, 0.9)  # doctest: +SKIP
    """
    check_data(data)
    _check_fine_tune(fine_tune_epochs, lr, seed)
    out = _magnitude(model, check_sparsity(sparsity), scope, "one_shot")
    history = train.fit(out, data, epochs=fine_tune_epochs, lr=lr, seed=seed, progress=False)
    history.insert(0, "sparsity", _sparsity(out))
    return out, history


def iterative(
    model: nn.Module,
    data,
    sparsity: float,
    *,
    steps: int = 3,
    fine_tune_epochs: int = 1,
    scope: str = "global",
    lr: float = 1e-3,
    seed: int = 0,
) -> tuple[nn.Module, pd.DataFrame]:
    """Returns ``(model pruned to sparsity in steps rounds, history)``; ``model`` is left unchanged.

    Round k (1..steps) prunes to ``1 - (1 - sparsity) ** (k / steps)`` and fine-tunes
    ``fine_tune_epochs`` epochs (seed ``seed + k - 1``); the last round prunes to ``sparsity``
    exactly, so the result has exactly ``round(sparsity * n)`` zeros (``scope="global"``).

    Args:
        model: a trained network with Linear / Conv2d layers.
        data: a DataBundle.
        sparsity: the final fraction of zero weights in [0, 1] (a float).
        steps: prune/fine-tune rounds, in [1, 100] (1 is ``one_shot``).
        fine_tune_epochs: epochs of fine-tuning after each round, in [1, 200].
        scope: "layer" or "global".
        lr: the fine-tuning learning rate, in (0, 10].
        seed: the seed of the first round's fine-tuning, in [0, 2**32 - 1] (round k's is
            ``seed + k - 1``, wrapped into that range).

    Returns:
        The model and one history row per fine-tuning epoch: columns step, sparsity (measured
        after that round's pruning), epoch, loss, train_accuracy, val_accuracy.
    """
    final = check_sparsity(sparsity)
    steps = check_int(steps, "steps", bounds=BOUNDS["rounds"])
    check_data(data)
    _check_fine_tune(fine_tune_epochs, lr, seed)
    out, frames = model, []
    for k in range(1, steps + 1):
        target = final if k == steps else 1.0 - (1.0 - final) ** (k / steps)
        out = _magnitude(out, float(target), scope, "iterative", warn=k == 1)  # checks model, scope first
        history = train.fit(
            out, data, epochs=fine_tune_epochs, lr=lr, seed=offset_seed(seed, k - 1), progress=False
        )
        history.insert(0, "sparsity", _sparsity(out))
        history.insert(0, "step", k)
        frames.append(history)
    return out, pd.concat(frames, ignore_index=True)


def zhu_gupta(
    step: int, *, final_sparsity: float, begin_step: int, end_step: int, initial_sparsity: float = 0.0
) -> float:
    """Returns the sparsity of the Zhu & Gupta (2017) cubic schedule at ``step``.

    ``s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0)) ** 3``, clamped: ``s_i`` before
    ``begin_step`` (t0), ``s_f`` from ``end_step`` (t1) on.

    Example:
        >>> round(zhu_gupta(5, final_sparsity=0.8, begin_step=0, end_step=10), 6)
        0.7
    """
    check_int(step, "step", low=0)
    initial, final = _check_schedule(final_sparsity, begin_step, end_step, initial_sparsity)
    if step <= begin_step:
        return initial
    if step >= end_step:
        return final
    progress = (step - begin_step) / (end_step - begin_step)
    return final + (initial - final) * (1.0 - progress) ** 3


class GradualPruner:
    """Prunes a copy of a model following the cubic schedule, one ``step()`` at a time.

    ``pruner.model`` is a copy of ``model`` (the input is left unchanged) pruned to the schedule's
    sparsity at step 0. Call ``step()`` after every optimizer step: it advances the step count by
    one and, at the pruning steps (``begin_step + j * frequency`` up to ``end_step``, and always
    at ``end_step``), sets new magnitude masks in place; after ``end_step`` the masks stay fixed.
    Parameters are never replaced, so an optimizer over ``pruner.model.parameters()`` stays valid.

    Every ``step()`` also sets the pruned weights back to exactly zero. The forward pass uses
    ``weight * mask``, so a pruned weight's gradient is zero, but an optimizer with momentum (Adam)
    still moves a weight pruned in the middle of training: its moment estimates are not zero.
    Outputs would be right, but the stored weights (what ``mcv.measure`` counts) would not be.

    Example:
        >>> pruner = GradualPruner(model, final_sparsity=0.9, begin_step=0, end_step=100)  # doctest: +SKIP
        >>> for batch in batches:  # doctest: +SKIP
        ...     train_step(pruner.model, batch)  # one optimizer step
        ...     pruner.step()
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        frequency: int = 1,
        initial_sparsity: float = 0.0,
        scope: str = "global",
    ) -> None:
        self.initial_sparsity, self.final_sparsity = _check_schedule(
            final_sparsity, begin_step, end_step, initial_sparsity
        )
        self.begin_step, self.end_step = int(begin_step), int(end_step)
        self.frequency = check_int(frequency, "frequency", low=1)
        self.scope = check_choice(scope, "scope", SCOPES)
        self.step_count = 0
        self.sparsity = self.schedule(0)
        self.model = _magnitude(model, self.sparsity, scope, "GradualPruner")

    def schedule(self, step: int) -> float:
        """Returns the schedule's sparsity at ``step`` (``zhu_gupta`` with this pruner's settings)."""
        return zhu_gupta(
            step,
            final_sparsity=self.final_sparsity,
            begin_step=self.begin_step,
            end_step=self.end_step,
            initial_sparsity=self.initial_sparsity,
        )

    def step(self) -> float:
        """Advances one step, re-prunes ``self.model`` in place when due and sets its pruned weights
        back to zero; returns its target sparsity."""
        self.step_count += 1
        t = self.step_count
        due = self.begin_step <= t <= self.end_step and (
            (t - self.begin_step) % self.frequency == 0 or t == self.end_step
        )
        if due:
            self.sparsity = self.schedule(t)
            # only the masks are needed: no copy of the model per step
            plan = _plan(self.model, self.sparsity, "GradualPruner", scope=self.scope, warn=False)
            for name, mask in _magnitude_masks(self.model, plan, self.sparsity, self.scope).items():
                self.model.get_submodule(name).set_mask(mask)  # zeroes the newly pruned weights
        else:
            with torch.no_grad():
                for m in self.model.modules():
                    if isinstance(m, _Pruned):
                        m.weight.mul_(m.mask)
        return self.sparsity


def gradual(
    model: nn.Module,
    data,
    *,
    final_sparsity: float,
    epochs: int,
    initial_sparsity: float = 0.0,
    scope: str = "global",
    lr: float = 1e-3,
    seed: int = 0,
    batch_size: int = 64,
    begin_step: int = 0,
    end_step: int | None = None,
    frequency: int | None = None,
) -> tuple[nn.Module, pd.DataFrame]:
    """Returns ``(model trained while pruned gradually, history)``; ``model`` is left unchanged.

    Zhu & Gupta (2017)'s step schedule: training starts from ``model``'s weights pruned to
    ``initial_sparsity`` and runs ``epochs`` epochs as one ``mcv.train.fit`` (one Adam for the
    whole run, shuffled with ``seed``). After optimizer step t, at ``t = begin_step + j *
    frequency`` up to ``end_step`` (and at ``end_step``), the weights are pruned by magnitude to
    the cubic schedule's sparsity ``zhu_gupta(t, ...)``; from ``end_step`` on the model trains at
    ``final_sparsity`` and recovers. By default ``begin_step = 0``, ``end_step`` is the end of the
    next-to-last epoch (the last epoch trains at the final sparsity) and ``frequency`` a tenth of
    an epoch (at least 1 step). The model ends with exactly ``final_sparsity`` zeros
    (``scope="global"``), and pruned weights stay exactly zero (see ``GradualPruner``).

    Args:
        model: a network with Linear / Conv2d layers (usually trained).
        data: a DataBundle.
        final_sparsity: the fraction of zero weights at the end, in [0, 1].
        epochs: training epochs, in [2, 200].
        initial_sparsity: the sparsity at ``begin_step``, in [0, final_sparsity].
        scope: "layer" or "global".
        lr: the Adam learning rate, in (0, 10].
        seed: the shuffling seed of ``mcv.train.fit``, in [0, 2**32 - 1].
        batch_size: examples per optimizer step, in [1, 4096]; an epoch is
            ``ceil(len(data.train) / batch_size)`` steps.
        begin_step: the optimizer step at which pruning starts, an int >= 0.
        end_step: the step at which ``final_sparsity`` is reached, in (begin_step, the run's last
            step]; None for the default above.
        frequency: optimizer steps between two prunings, an int >= 1; None for the default above.

    Returns:
        The model and one history row per epoch: columns sparsity (measured at the end of that
        epoch, when val_accuracy is measured), epoch, loss, train_accuracy, val_accuracy.

    Example:
        >>> sparse, history = gradual(model, data, final_sparsity=0.9, epochs=3)  # doctest: +SKIP
    """
    check_model(model)
    check_data(data)
    _layers.transformable(model, "gradual", warn=False)  # refuses a model without Linear / Conv2d
    epochs = check_int(epochs, "epochs", bounds=GRADUAL_EPOCHS)
    check_option("lr", lr)
    check_seed(seed)
    per_epoch = -(-len(data.train) // check_option("batch_size", batch_size))
    last = epochs * per_epoch
    end_step = (epochs - 1) * per_epoch if end_step is None else end_step
    frequency = max(1, per_epoch // 10) if frequency is None else frequency
    check_int(end_step, "end_step", low=1, high=last)  # the run's last optimizer step
    with warnings.catch_warnings():  # the warning about unpruned layers names gradual, below
        warnings.simplefilter("ignore", _layers.UnsupportedLayersWarning)
        pruner = GradualPruner(
            model,
            final_sparsity=final_sparsity,
            begin_step=begin_step,
            end_step=end_step,
            frequency=frequency,
            initial_sparsity=initial_sparsity,
            scope=scope,
        )
    _layers.warn_unsupported(model, "gradual", action="prunes")
    at_epoch_end = []

    def on_step(step: int) -> None:
        pruner.step()
        if step % per_epoch == 0:
            at_epoch_end.append(_sparsity(pruner.model))

    history = train.fit(
        pruner.model, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, progress=False,
        on_step=on_step,
    )  # fmt: skip
    history.insert(0, "sparsity", at_epoch_end)
    return pruner.model, history


def weight_sparsity(model: nn.Module) -> float:
    """Returns the fraction of zero weights (effective weights of pruned layers) over all
    Linear / Conv2d layers, biases excluded; ``model`` is left unchanged.

    Other weight layers (Conv1d, Embedding...) are not counted, with one warning naming them; a
    model without a Linear / Conv2d layer is refused (ValueError).
    """
    check_model(model)
    layers = _layers.transformable(model, "weight_sparsity", action="counts", rest="are not counted")
    return _weight_sparsity(layers)


def _weight_sparsity(layers: list[tuple[str, nn.Module]]) -> float:
    zeros = total = 0
    for _, m in layers:
        w = _layers.weight(m)
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros / total if total else 0.0


# ---------------------------------------------------------------- helpers


def _check_schedule(final_sparsity, begin_step, end_step, initial_sparsity) -> tuple[float, float]:
    final = check_sparsity(final_sparsity, "final_sparsity")
    initial = check_sparsity(initial_sparsity, "initial_sparsity")
    if initial > final:
        raise ValueError(f"initial_sparsity must be <= final_sparsity {final!r}, got {initial!r}")
    end, begin = check_int(end_step, "end_step", low=1), check_int(begin_step, "begin_step", low=0)
    if begin >= end:
        raise ValueError(f"begin_step must be < end_step, got begin_step={begin!r}, end_step={end!r}")
    return initial, final


def _check_fine_tune(epochs, lr, seed) -> None:
    check_int(epochs, "fine_tune_epochs", bounds=BOUNDS["epochs"])
    check_option("lr", lr)
    check_seed(seed)


def _sparsity(model: nn.Module) -> float:
    """``weight_sparsity`` of a model already checked (no second warning)."""
    return _weight_sparsity(_layers.transformable(model, "weight_sparsity", warn=False))
