"""The lottery ticket experiment (Frankle & Carbin, 2019): iterative magnitude pruning with rewinding.

``lottery_ticket`` builds a network, remembers its weights at initialization (or after
``rewind`` epochs of training: "late resetting", Frankle et al. 2019), trains it, and then for
each round: prunes ``rate`` of the weights that remain (magnitude), resets the kept weights to
the remembered values, and retrains. The pruned weights are those of the trained network of the
previous round. For comparison the same mask is given a random re-initialization (a freshly
built network with another seed) and trained the same way: the paper's control, which learns
more slowly and reaches lower accuracy at small remaining fractions.

Pruning choice (documented, not the paper's exact recipe for LeNet): ``scope="global"``
(default) ranks all Linear / Conv2d weights together, so after round k exactly
``(1 - rate) ** k`` of the weights remain (up to rounding) and each layer finds its own rate,
the output layer typically keeps more. ``scope="layer"`` follows the paper's LeNet setup:
every layer loses ``rate`` of its remaining weights per round except the output layer (the
last Linear / Conv2d in ``named_modules`` order), which loses ``rate / 2``; the table then
reports the measured remaining fraction, slightly above ``(1 - rate) ** k``.
"""

from __future__ import annotations

import copy
import numbers

import pandas as pd
import torch
from torch import nn

from mcviz import models, train
from mcviz._checks import (
    check_choice,
    check_data,
    check_model,
    check_option,
    check_seed,
    offset_seed,
    shorten,
)
from mcviz.prune.schedules import _sparsity
from mcviz.prune.unstructured import SCOPES, magnitude

LOTTERY_COLUMNS = ("round", "remaining", "ticket_accuracy", "random_accuracy")
RANDOM_REINIT_SEED_OFFSET = 10_000  # the control's init seed: seed + offset + round


def lottery_ticket(
    model_name: str,
    data,
    *,
    rounds: int = 2,
    rate: float = 0.2,
    epochs: int = 2,
    rewind: str | int = "init",
    scope: str = "global",
    lr: float = 1e-3,
    seed: int = 0,
) -> pd.DataFrame:
    """Returns one row per round of the lottery ticket experiment; nothing outside is changed.

    Args:
        model_name: a name in ``mcv.models.NAMES`` (the paper uses "lenet300").
        data: a DataBundle (``mcv.data.load``); accuracy is on its test split.
        rounds: pruning rounds, in [1, 100].
        rate: the fraction of the remaining weights pruned per round, in (0, 1).
        epochs: training epochs of the dense network and of every retraining, in [1, 200].
        rewind: "init" resets kept weights to their initial values; an int e in [0, epochs]
            resets them to their values after e epochs of the dense training (0 = "init").
        scope: "global" or "layer" (output layer at half the rate); see the module doc.
        lr: Adam learning rate of every training, in (0, 10].
        seed: builds the network, and seeds every training (round k trains with ``seed + k``),
            an int in [0, 2**32 - 1] (derived seeds wrap around into that range).

    Returns:
        A DataFrame with columns round (0 = the dense network), remaining (measured fraction of
        nonzero weights), ticket_accuracy (rewound and retrained) and random_accuracy (the same
        mask, randomly re-initialized, trained the same way; NaN in round 0, which has no mask).

    Example:
        >>> mcv.prune.lottery_ticket("lenet300", mcv.data.load("digits"), rounds=2)  # doctest: +SKIP
    """
    check_choice(model_name, "model_name", models.NAMES)
    check_data(data)
    rounds = check_option("rounds", rounds)
    rate = check_option("rate", rate)  # the fraction pruned per round
    epochs = check_option("epochs", epochs)
    rewind_epoch = _check_rewind(rewind, epochs)
    check_choice(scope, "scope", SCOPES)
    check_option("lr", lr)
    seed = check_seed(seed)

    def build(init_seed: int) -> nn.Module:
        return models.build(
            model_name, input_shape=data.input_shape, num_classes=data.num_classes, seed=init_seed
        )

    def fit(model: nn.Module, epochs_: int, seed_: int) -> None:
        train.fit(model, data, epochs=epochs_, lr=lr, seed=seed_, progress=False)

    dense = build(seed)
    if rewind_epoch == 0:
        snapshot = _weights(dense)
        fit(dense, epochs, seed)
    else:  # late resetting: remember the weights after rewind_epoch epochs, then train the rest
        # with a fresh Adam and another shuffling seed (two fit calls, not one uninterrupted run)
        fit(dense, rewind_epoch, seed)
        snapshot = _weights(dense)
        if epochs > rewind_epoch:
            fit(dense, epochs - rewind_epoch, offset_seed(seed, rounds + 1))  # a seed no round uses
    rows = [(0, 1.0, train.evaluate(dense, data), float("nan"))]
    output = [n for n, m in dense.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    trained = dense
    for k in range(1, rounds + 1):
        pruned = _prune(trained, rate, k, scope, output)
        ticket = rewound(pruned, snapshot)
        fit(ticket, epochs, offset_seed(seed, k))
        control = rewound(pruned, _weights(build(offset_seed(seed, RANDOM_REINIT_SEED_OFFSET + k))))
        fit(control, epochs, offset_seed(seed, k))
        remaining = 1.0 - _sparsity(ticket)
        rows.append((k, remaining, train.evaluate(ticket, data), train.evaluate(control, data)))
        trained = ticket
    return pd.DataFrame(rows, columns=list(LOTTERY_COLUMNS))


def rewound(pruned: nn.Module, weights: dict[str, torch.Tensor]) -> nn.Module:
    """Returns a copy of ``pruned`` whose weights and biases are ``weights`` (a state dict of the
    same network, e.g. at initialization) times its masks; ``pruned`` is left unchanged.

    Masks (and any other buffer) stay those of ``pruned``; kept weights get their values in
    ``weights``, pruned weights are zero.
    """
    check_model(pruned, "pruned")
    if not isinstance(weights, dict):
        raise TypeError(f"weights must be a state dict {{name: tensor}}, got {type(weights).__name__}")
    state = pruned.state_dict()
    missing = [k for k in weights if k not in state]
    if missing:
        raise ValueError(f"weights names entries the model does not have: {shorten(missing[:3])}")
    state.update({k: v.clone() for k, v in weights.items()})
    out = copy.deepcopy(pruned)
    out.load_state_dict(state)  # PrunedLinear / PrunedConv2d multiply the loaded weight by the mask
    return out


# ---------------------------------------------------------------- helpers


def _check_rewind(rewind, epochs: int) -> int:
    allowed = f"rewind must be 'init' or an int epoch in [0, epochs={epochs}], got {shorten(rewind)}"
    if isinstance(rewind, str):
        if rewind != "init":
            raise ValueError(allowed)
        return 0
    if isinstance(rewind, bool) or not isinstance(rewind, numbers.Integral):
        raise TypeError(allowed)
    if not 0 <= rewind <= epochs:
        raise ValueError(allowed)
    return int(rewind)


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Returns the parameters (weights and biases) of ``model`` as a cloned state dict."""
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _prune(trained: nn.Module, rate: float, k: int, scope: str, output: str) -> nn.Module:
    sparsity = 1.0 - (1.0 - rate) ** k
    if scope == "global":
        return magnitude(trained, float(sparsity), scope="global")
    plan = {
        name: float(1.0 - (1.0 - (rate / 2 if name == output else rate)) ** k)
        for name, m in trained.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv2d))
    }
    return magnitude(trained, plan, scope="layer")
