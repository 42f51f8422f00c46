"""Unit tests of mcviz.train: fit, evaluate and the cache of baselines (tiny models on digits)."""

from __future__ import annotations

import random
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import one_line
from torch import nn
from torch.nn import functional as F

import mcviz as mcv
from mcviz import train


def tiny(data, seed: int = 0) -> nn.Module:
    return mcv.models.build("mlp", input_shape=data.input_shape, hidden=(16,), seed=seed)


def fit(model, data, **kw):
    kw = {"epochs": 1, "lr": 1e-2, "progress": False} | kw
    return mcv.train.fit(model, data, **kw)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def global_rng_state():
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def assert_same_rng(before, after):
    assert torch.equal(before[0], after[0])
    assert np.array_equal(before[1], after[1])
    assert before[2] == after[2]


@pytest.fixture
def fit_calls(monkeypatch):
    """Counts calls of train.fit (the real one still runs)."""
    calls = []
    real = train.fit

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "fit", counting)
    return calls


def baseline(data, **kw):
    kw = {"epochs": 1, "progress": False} | kw
    return mcv.train.baseline("mlp", data, **kw)


# ---------------------------------------------------------------- fit


def test_fit_history_columns(digits):
    history = fit(tiny(digits), digits, epochs=2)
    assert list(history.columns) == ["epoch", "loss", "train_accuracy", "val_accuracy"]


def test_fit_history_one_row_per_epoch(digits):
    history = fit(tiny(digits), digits, epochs=3)
    assert history["epoch"].tolist() == [1, 2, 3]


def test_fit_history_values_in_range(digits):
    history = fit(tiny(digits), digits, epochs=2)
    assert (history["loss"] > 0).all()
    assert history[["train_accuracy", "val_accuracy"]].stack().between(0, 1).all()


def test_fit_val_accuracy_is_evaluate_on_val(digits):
    model = tiny(digits)
    history = fit(model, digits, epochs=1)
    assert history["val_accuracy"].iloc[-1] == mcv.train.evaluate(model, digits, "val")


def test_fit_learns(digits):
    model = tiny(digits)
    fit(model, digits, epochs=3)
    assert mcv.train.evaluate(model, digits) > 0.8


def test_fit_trains_in_place(digits):
    model, untouched = tiny(digits), tiny(digits)
    fit(model, digits)
    assert not same_weights(model, untouched)


def test_fit_same_seed_bit_identical(digits):
    a, b = tiny(digits), tiny(digits)
    fit(a, digits, epochs=2, seed=5)
    fit(b, digits, epochs=2, seed=5)
    assert same_weights(a, b)


def test_fit_same_seed_same_history(digits):
    a = fit(tiny(digits), digits, epochs=2, seed=5)
    b = fit(tiny(digits), digits, epochs=2, seed=5)
    pd.testing.assert_frame_equal(a, b)


def test_fit_other_seed_other_weights(digits):
    a, b = tiny(digits), tiny(digits)
    fit(a, digits, seed=5)
    fit(b, digits, seed=6)
    assert not same_weights(a, b)


def test_fit_seeds_dropout(digits):
    def dropout_net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Dropout(0.5), nn.Linear(32, 10))

    a, b = dropout_net(), dropout_net()
    fit(a, digits, seed=1)
    fit(b, digits, seed=1)
    assert same_weights(a, b)


def test_fit_leaves_global_rng_alone(digits):
    model = tiny(digits)
    before = global_rng_state()
    fit(model, digits)
    assert_same_rng(before, global_rng_state())


@pytest.mark.parametrize("threads", [1, 2])
def test_fit_restores_thread_count(digits, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        fit(tiny(digits), digits, threads=threads)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_fit_trains_with_the_requested_threads(digits):
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return x

    model = nn.Sequential(Spy(), nn.Flatten(), nn.Linear(64, 10))
    fit(model, digits, threads=1)
    assert set(seen) == {1}


def test_fit_restores_state_when_training_fails(digits):
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            raise RuntimeError("boom")

    model = Broken()
    before_threads, before_rng = torch.get_num_threads(), global_rng_state()
    with pytest.raises(RuntimeError, match="boom"):
        fit(model, digits, threads=1 if before_threads > 1 else 2)
    assert torch.get_num_threads() == before_threads
    assert_same_rng(before_rng, global_rng_state())


def test_fit_leaves_model_in_eval_mode(digits):
    model = tiny(digits)
    fit(model, digits)
    assert not model.training


@pytest.mark.parametrize(
    ("kw", "error", "pattern"),
    [
        ({"epochs": 0}, ValueError, "epochs must be an int in [1, 200], got 0"),
        ({"epochs": 10**9}, ValueError, "epochs must be an int in [1, 200], got 1000000000"),
        ({"epochs": 1.5}, TypeError, "epochs must be an int in [1, 200], got 1.5"),
        ({"lr": -1}, ValueError, "lr must be a finite number in (0, 10], got -1"),
        ({"lr": 0}, ValueError, "lr must be a finite number in (0, 10], got 0"),
        ({"lr": float("nan")}, ValueError, "lr must be a finite number in (0, 10], got nan"),
        ({"lr": "0.1"}, TypeError, "lr must be a number in (0, 10], got '0.1'"),
        ({"batch_size": 0}, ValueError, "batch_size must be an int in [1, 4096], got 0"),
        ({"batch_size": 10**7}, ValueError, "batch_size must be an int in [1, 4096], got 10000000"),
        ({"seed": -1}, ValueError, "seed must be an int in [0, 4,294,967,295], got -1"),
        ({"seed": 2**32}, ValueError, "seed must be an int in [0, 4,294,967,295], got 4294967296"),
        ({"threads": 0}, ValueError, "threads must be an int in [1, 256], got 0"),
        ({"progress": 1}, TypeError, "progress must be True or False, got 1"),
        ({"schedule": "linear"}, ValueError, "schedule must be one of 'constant', 'cosine', got 'linear'"),
        ({"schedule": None}, TypeError, "schedule must be one of 'constant', 'cosine', got None"),
        ({"lengths": torch.ones(5, dtype=torch.long)}, ValueError,
         "lengths must have one entry per training example"),
        ({"lengths": torch.ones(1)}, TypeError, "lengths must be None or a 1-D tensor of ints"),
        ({"lengths": torch.ones(1, dtype=torch.bool)}, TypeError, "lengths must be None or a 1-D tensor of"),
        ({"lengths": [1, 2]}, TypeError, "lengths must be None or a 1-D tensor of ints"),
    ],
)  # fmt: skip
def test_fit_rejects_bad_arguments(digits, kw, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)) as e:
        fit(tiny(digits), digits, **kw)
    one_line(e)


def test_cosine_schedule_warms_up_then_decays_to_zero():
    rates = [train._schedule("cosine", 0.1, 100)(k) for k in range(100)]
    assert rates[0] == pytest.approx(0.01) and rates[9] == pytest.approx(0.1) == max(rates)
    assert rates[:10] == sorted(rates[:10]) and rates[9:] == sorted(rates[9:], reverse=True)
    assert 0 < rates[-1] < 1e-4  # every step learns; 0 would come one step after the last
    assert {train._schedule("constant", 0.1, 100)(k) for k in range(100)} == {0.1}
    assert train._schedule("cosine", 0.1, 1)(0) == pytest.approx(0.1)  # one step: at lr
    assert [train._schedule("cosine", 0.1, 3)(k) for k in range(3)] == pytest.approx([0.1, 0.075, 0.025])


def test_fit_steps_with_the_scheduled_learning_rate(digits, monkeypatch):
    seen = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a: seen.append(self.param_groups[0]["lr"])
                        or step(self, *a))  # fmt: skip
    fit(tiny(digits), digits, epochs=2, batch_size=512, lr=0.01, schedule="cosine")
    steps = 2 * -(-len(digits.train) // 512)
    assert seen == pytest.approx([train._schedule("cosine", 0.01, steps)(k) for k in range(steps)])
    seen.clear()
    fit(tiny(digits), digits, epochs=1, batch_size=512, lr=0.01)
    assert set(seen) == {0.01}  # the default: constant


def test_a_scheduled_run_that_diverges_names_its_rate_at_that_step(digits):
    def loss(logits, batch):  # finite for three steps, then inf
        if int(batch.index[0]) == order[3]:
            return torch.tensor(float("inf"))
        return F.cross_entropy(logits, batch.y)

    order = torch.randperm(len(digits.train), generator=torch.Generator().manual_seed(0)).tolist()[::64]
    with pytest.raises(train.NonFiniteLoss) as e:
        fit(tiny(digits), digits, batch_size=64, lr=0.01, epochs=2, schedule="cosine", loss=loss)
    rate = train._schedule("cosine", 0.01, 2 * -(-len(digits.train) // 64))(3)
    message = one_line(e)
    assert "step 4 (batch 4 of 20); the model keeps its weights from before that step." in message
    assert f"Lower lr (now 0.01 at its peak, {rate:g} at that step)" in message


def test_fit_groups_batches_by_length(digits):
    n = len(digits.train)
    lengths = torch.randint(1, 129, (n,), generator=torch.Generator().manual_seed(1))

    def spreads(**kw):
        batches = []

        def loss(logits, batch):
            batches.append(batch.index)
            return F.cross_entropy(logits, batch.y)

        fit(tiny(digits), digits, batch_size=16, loss=loss, **kw)
        assert sorted(torch.cat(batches).tolist()) == list(range(n))  # every example once
        return [int(lengths[b].max() - lengths[b].min()) for b in batches], batches

    grouped, order = spreads(lengths=lengths)
    plain, _ = spreads()
    assert sum(grouped) * 10 < sum(plain)  # about one length per batch
    assert max(grouped[:-1]) < 16 and len({len(b) for b in order[:-1]}) == 1  # full ones, one short last
    again, order2 = spreads(lengths=lengths)
    assert all(torch.equal(a, b) for a, b in zip(order, order2, strict=True))  # reproducible
    # the batches themselves come in a random order, not longest first within each run of 50
    longest = [int(lengths[b].max()) for b in order[:-1]]
    falls = sum(a >= b for a, b in zip(longest, longest[1:], strict=False))
    assert falls < 0.75 * len(longest)


def test_fit_rejects_bad_arguments_before_training(digits):
    model = tiny(digits)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError):
        fit(model, digits, lr=-1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("data", [None, "digits", (torch.zeros(2, 64), torch.zeros(2))])
def test_fit_rejects_data_that_is_not_a_bundle(digits, data):
    with pytest.raises(TypeError, match=f"DataBundle.*got {type(data).__name__}") as e:
        fit(tiny(digits), data)
    one_line(e)


# ---------------------------------------------------------------- evaluate


def test_evaluate_matches_hand_count(digits_mlp, digits):
    X, y = digits.test.tensors
    with torch.no_grad():
        expected = int((digits_mlp(X).argmax(1) == y).sum()) / len(y)
    assert mcv.train.evaluate(digits_mlp, digits) == expected


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_evaluate_in_unit_interval(digits, split):
    accuracy = mcv.train.evaluate(tiny(digits), digits, split)
    assert 0 <= accuracy <= 1


def test_evaluate_with_small_batches_equals_one_batch(digits_mlp, digits):
    assert mcv.train.evaluate(digits_mlp, digits, batch_size=7) == mcv.train.evaluate(digits_mlp, digits)


def test_evaluate_unknown_split(digits):
    with pytest.raises(ValueError, match="'holdout'") as e:
        mcv.train.evaluate(tiny(digits), digits, "holdout")
    one_line(e)


def test_evaluate_rejects_non_bundle(digits):
    with pytest.raises(TypeError, match="DataBundle") as e:
        mcv.train.evaluate(tiny(digits), [1, 2, 3])
    one_line(e)


# ---------------------------------------------------------------- baseline and its cache


def test_baseline_equals_build_then_fit(digits, cache_dir):
    model = mcv.models.build("mlp", input_shape=digits.input_shape, seed=0)
    mcv.train.fit(model, digits, epochs=1, seed=0, progress=False)
    assert same_weights(baseline(digits), model)


def test_baseline_is_in_eval_mode(digits, cache_dir):
    assert not baseline(digits).training


def test_baseline_second_call_loads_from_cache(digits, cache_dir, fit_calls):
    baseline(digits)
    baseline(digits)
    assert len(fit_calls) == 1


def test_baseline_cached_weights_are_identical(digits, cache_dir):
    assert same_weights(baseline(digits), baseline(digits))


def test_baseline_writes_into_mcviz_cache_dir(digits, cache_dir):
    baseline(digits)
    assert len(list(cache_dir.glob("baseline-mlp-digits-*.pt"))) == 1


def test_cache_dir_honours_environment(cache_dir):
    assert mcv.train.cache_dir() == cache_dir


def test_cache_dir_default(monkeypatch, tmp_path):
    monkeypatch.delenv("MCVIZ_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert mcv.train.cache_dir() == tmp_path / ".cache" / "mcviz"


@pytest.mark.parametrize("change", [{"epochs": 2}, {"seed": 1}, {"lr": 3e-3}, {"batch_size": 32}])
def test_baseline_cache_key_changes(digits, cache_dir, fit_calls, change):
    baseline(digits)
    baseline(digits, **change)
    assert len(fit_calls) == 2
    assert len(list(cache_dir.glob("*.pt"))) == 2


def test_baseline_cache_key_changes_with_data(digits, cache_dir, fit_calls):
    baseline(digits)
    baseline(mcv.data.load("digits", split_seed=1))
    assert len(fit_calls) == 2


def test_baseline_return_history(digits, cache_dir):
    model, history = baseline(digits, epochs=2, return_history=True)
    assert isinstance(model, nn.Module)
    assert history["epoch"].tolist() == [1, 2]


def test_baseline_history_survives_the_cache(digits, cache_dir):
    _, first = baseline(digits, epochs=2, return_history=True)
    _, second = baseline(digits, epochs=2, return_history=True)
    pd.testing.assert_frame_equal(first, second)


def test_baseline_corrupt_cache_warns(digits, cache_dir):
    baseline(digits)
    (entry,) = cache_dir.glob("*.pt")
    entry.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable"):
        baseline(digits)


def test_baseline_corrupt_cache_is_retrained(digits, cache_dir, fit_calls):
    first = baseline(digits)
    (entry,) = cache_dir.glob("*.pt")
    entry.write_bytes(entry.read_bytes()[:100])
    with pytest.warns(UserWarning):
        again = baseline(digits)
    assert len(fit_calls) == 2
    assert same_weights(first, again)


def test_baseline_corrupt_cache_is_repaired(digits, cache_dir):
    baseline(digits)
    (entry,) = cache_dir.glob("*.pt")
    entry.write_bytes(b"")
    with pytest.warns(UserWarning):
        baseline(digits)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        baseline(digits)


def test_baseline_cache_of_other_model_shape_is_retrained(digits, cache_dir):
    baseline(digits)
    (entry,) = cache_dir.glob("*.pt")
    torch.save({"state_dict": tiny(digits).state_dict(), "history": {}}, entry)
    with pytest.warns(UserWarning, match="unreadable"):
        model = baseline(digits)
    assert model.fc1.out_features == 300


def test_baseline_leaves_no_temp_files(digits, cache_dir):
    baseline(digits)
    assert [p.name for p in cache_dir.iterdir() if not p.name.startswith("baseline-")] == []


def test_baseline_failed_write_leaves_nothing_and_returns_the_model(digits, cache_dir, monkeypatch):
    # a cache is never needed for a result: a full disk costs the cache, not the work
    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(train.torch, "save", broken_save)
    with pytest.warns(UserWarning, match=r"cannot be written \(OSError: disk full\); continuing without"):
        model = baseline(digits)
    assert isinstance(model, nn.Module) and list(cache_dir.iterdir()) == []


def test_baseline_leaves_global_rng_alone(digits, cache_dir):
    before = global_rng_state()
    baseline(digits)
    baseline(digits)
    assert_same_rng(before, global_rng_state())


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"epochs": 0}, "epochs must be an int in [1, 200], got 0"),
        ({"lr": -1}, "lr must be a finite number in (0, 10], got -1"),
        ({"batch_size": 0}, "batch_size must be an int in [1, 4096], got 0"),
        ({"seed": -2}, "seed must be an int in [0, 4,294,967,295], got -2"),
        ({"seed": 1180591620717411303424}, "seed must be an int in [0, 4,294,967,295], got 1180591620717"),
        ({"progress": "no"}, "progress must be True or False, got 'no'"),
        ({"return_history": None}, "return_history must be True or False, got None"),
    ],
)
def test_baseline_rejects_bad_arguments(digits, cache_dir, kw, pattern):
    with pytest.raises((TypeError, ValueError), match=re.escape(pattern)) as e:
        baseline(digits, **kw)
    one_line(e)
    assert not cache_dir.exists() or list(cache_dir.iterdir()) == []


def test_baseline_unknown_model(digits, cache_dir):
    with pytest.raises(ValueError, match="unknown model 'vgg'") as e:
        mcv.train.baseline("vgg", digits, epochs=1)
    one_line(e)


def test_baseline_rejects_non_bundle(cache_dir):
    with pytest.raises(TypeError, match="DataBundle") as e:
        mcv.train.baseline("mlp", "digits", epochs=1)
    one_line(e)


@pytest.mark.slow
def test_baseline_lenet300_on_mnist5k_learns(mnist5k, cache_dir):
    model = mcv.train.baseline("lenet300", mnist5k, epochs=2, progress=False)
    assert mcv.train.evaluate(model, mnist5k) > 0.85


def test_baseline_cache_file_stays_in_cache_dir(cache_dir):
    rng = np.random.default_rng(0)
    data = mcv.data.from_arrays(rng.random((60, 4, 4)), np.arange(60) % 3, name="../my/data")
    mcv.train.baseline("mlp", data, epochs=1, progress=False)
    assert [p.parent for p in cache_dir.rglob("*.pt")] == [cache_dir]


def test_fit_progress_bar_does_not_change_training(digits):
    a, b = tiny(digits), tiny(digits)
    fit(a, digits, progress=True)
    fit(b, digits, progress=False)
    assert same_weights(a, b)


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"batch_size": 0}, "batch_size must be an int in [1, 4096], got 0"),
        ({"threads": 0}, "threads must be an int in [1, 256], got 0"),
        ({"split": 3}, "split must be one of 'train', 'val', 'test', got 3"),
    ],
)
def test_evaluate_rejects_bad_arguments(digits, kw, pattern):
    with pytest.raises((TypeError, ValueError), match=re.escape(pattern)) as e:
        mcv.train.evaluate(tiny(digits), digits, **kw)
    one_line(e)


@pytest.mark.parametrize("function", [mcv.train.evaluate, fit])
def test_rejects_non_module(digits, function):
    with pytest.raises(TypeError, match="torch.nn.Module, got OrderedDict") as e:
        function(tiny(digits).state_dict(), digits)
    one_line(e)


# ---------------------------------------------------------------- fine_tune


def test_fine_tune_is_fit_on_a_copy(digits):
    model = tiny(digits)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = mcv.train.fine_tune(model, digits, epochs=2, lr=1e-2, seed=4)
    want = tiny(digits)
    fit(want, digits, epochs=2, lr=1e-2, seed=4)
    assert out is not model and same_weights(out, want)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fine_tune_learns(digits):
    model = tiny(digits)
    assert mcv.train.evaluate(mcv.train.fine_tune(model, digits, lr=1e-2), digits) > max(
        0.5, mcv.train.evaluate(model, digits) + 0.3
    )


def test_fine_tune_is_deterministic_and_seeded(digits):
    model = tiny(digits)
    a, b = (mcv.train.fine_tune(model, digits, seed=1) for _ in range(2))
    assert same_weights(a, b)
    assert not same_weights(a, mcv.train.fine_tune(model, digits, seed=2))


def test_fine_tune_leaves_global_rng_alone(digits):
    model = tiny(digits)
    before = global_rng_state()
    mcv.train.fine_tune(model, digits)
    assert_same_rng(before, global_rng_state())


@pytest.mark.parametrize("training", [True, False])
def test_fine_tune_keeps_training_mode(digits, training):
    model = tiny(digits).train(training)
    assert mcv.train.fine_tune(model, digits).training is training


def test_fine_tune_keeps_pruned_weights_at_zero(digits_mlp, digits):
    pruned = mcv.prune.magnitude(digits_mlp, 0.8, scope="global")
    out = mcv.train.fine_tune(pruned, digits, epochs=1, lr=1e-2)
    assert not torch.equal(out.fc1.weight, pruned.fc1.weight)
    for name in ("fc1", "fc2"):
        layer = out.get_submodule(name)
        assert torch.equal(layer.mask, pruned.get_submodule(name).mask)
        assert (layer.weight[~layer.mask] == 0).all()


@pytest.mark.parametrize(
    ("kw", "pattern"),
    [
        ({"epochs": 0}, "epochs must be an int in [1, 200], got 0"),
        ({"epochs": 10**9}, "epochs must be an int in [1, 200], got 1000000000"),
        ({"lr": 11}, "lr must be a finite number in (0, 10], got 11"),
        ({"seed": -1}, "seed must be an int in [0, 4,294,967,295], got -1"),
        ({"seed": 8589934592}, "seed must be an int in [0, 4,294,967,295], got 8589934592"),
        ({"seed": 0.5}, "seed must be an int in [0, 4,294,967,295], got 0.5"),
    ],
)
def test_fine_tune_rejects_bad_arguments(digits, kw, pattern):
    with pytest.raises((TypeError, ValueError), match=re.escape(pattern)) as e:
        mcv.train.fine_tune(tiny(digits), digits, **kw)
    one_line(e)


def test_fine_tune_rejects_bad_model_or_data(digits):
    with pytest.raises(TypeError, match="torch.nn.Module, got str") as e:
        mcv.train.fine_tune("net", digits)
    one_line(e)
    with pytest.raises(TypeError, match="DataBundle.*got str") as e:
        mcv.train.fine_tune(tiny(digits), "digits")
    one_line(e)


def test_fit_adds_the_regularizer_to_every_batch_loss(digits):
    build = lambda: mcv.models.build("mlp", input_shape=digits.input_shape, hidden=(16,), seed=0)  # noqa: E731
    plain, zero, l1 = build(), build(), build()
    mcv.train.fit(plain, digits, epochs=1, progress=False)
    mcv.train.fit(zero, digits, epochs=1, progress=False, regularizer=lambda m: torch.zeros(()))
    h = mcv.train.fit(l1, digits, epochs=1, progress=False, regularizer=lambda m: m.fc1.weight.abs().sum())
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), zero.parameters(), strict=True))
    assert l1.fc1.weight.abs().sum() < plain.fc1.weight.abs().sum()  # the penalty shrank the weights
    assert h["loss"].iloc[0] > 1  # the reported loss includes the penalty


def test_fit_rejects_a_regularizer_that_is_not_a_function(digits, digits_mlp):
    with pytest.raises(TypeError, match="regularizer must be None or a function of the model, got 3") as e:
        # the check runs before any training, so the shared model is not touched
        mcv.train.fit(digits_mlp, digits, epochs=1, regularizer=3)
    one_line(e)


# ---------------------------------------------------------------- fit's hooks


def ce(logits, batch):
    return F.cross_entropy(logits, batch.y)


def test_fit_loss_hook_of_cross_entropy_is_the_default(digits):
    a, b = tiny(digits), tiny(digits)
    ha = fit(a, digits, epochs=2)
    hb = fit(b, digits, epochs=2, loss=ce)
    assert same_weights(a, b)
    pd.testing.assert_frame_equal(ha, hb)


def test_fit_loss_hook_changes_training(digits):
    a, b = tiny(digits), tiny(digits)
    fit(a, digits)
    fit(b, digits, loss=lambda logits, batch: F.cross_entropy(logits, batch.y, label_smoothing=0.3))
    assert not same_weights(a, b)


def test_fit_loss_components_become_epoch_mean_columns(digits):
    def loss(logits, batch):
        value = F.cross_entropy(logits, batch.y)
        return value, {"ce": value, "half": value / 2}

    history = fit(tiny(digits), digits, epochs=2, loss=loss)
    assert list(history.columns) == [*mcv.train.HISTORY_COLUMNS, "ce", "half"]
    assert history["ce"].tolist() == history["loss"].tolist()  # the same batch values, summed alike
    assert np.allclose(history["half"], history["loss"] / 2, rtol=1e-6)


def test_fit_loss_hook_sees_each_batch_once_per_epoch(digits):
    X, y = digits.train.tensors
    seen = []

    def loss(logits, batch):
        assert isinstance(batch, mcv.train.Batch)
        assert torch.equal(batch.x, X[batch.index]) and torch.equal(batch.y, y[batch.index])
        assert logits.shape == (len(batch.index), digits.num_classes)
        seen.append(batch.index)
        return F.cross_entropy(logits, batch.y)

    fit(tiny(digits), digits, epochs=2, batch_size=100, loss=loss)
    steps = -(-len(y) // 100)
    for epoch in range(2):
        order = torch.cat(seen[epoch * steps : (epoch + 1) * steps])
        assert torch.equal(order.sort().values, torch.arange(len(y)))
    assert not torch.equal(torch.cat(seen[:steps]), torch.cat(seen[steps:]))  # reshuffled


@pytest.mark.parametrize(
    ("loss", "pattern"),
    [
        (
            lambda logits, batch: 1.0,
            "loss must return a scalar tensor or (scalar tensor, dict of them), got float",
        ),
        (lambda logits, batch: logits, "got a tensor of shape ("),
        (lambda logits, batch: (ce(logits, batch), {"loss": ce(logits, batch)}), "other than"),
        (
            lambda logits, batch: (ce(logits, batch), {str(len(batch.y)): ce(logits, batch)}),
            "same components",
        ),
    ],
)
def test_fit_rejects_bad_loss_hooks(digits, loss, pattern):
    with pytest.raises(ValueError, match=re.escape(pattern)) as e:
        fit(tiny(digits), digits, loss=loss)  # digits' last batch is smaller: names change there
    one_line(e)


def test_fit_rejects_a_loss_hook_that_is_not_a_function(digits):
    with pytest.raises(TypeError, match="loss must be None or a function, got 'cross-entropy'") as e:
        fit(tiny(digits), digits, loss="cross-entropy")
    one_line(e)


def test_fit_trains_extra_parameters(digits):
    scale = torch.ones((), requires_grad=True)

    def loss(logits, batch):
        return F.cross_entropy(logits * scale, batch.y)

    fit(tiny(digits), digits, loss=loss, extra_parameters=[scale])
    assert scale.item() != 1.0
    frozen = torch.ones((), requires_grad=True)
    fit(tiny(digits), digits, loss=lambda logits, batch: F.cross_entropy(logits * frozen, batch.y))
    assert frozen.item() == 1.0  # not handed to fit: it gets gradients but is never stepped


def test_fit_with_no_extra_parameters_is_unchanged(digits):
    a, b = tiny(digits), tiny(digits)
    fit(a, digits)
    fit(b, digits, extra_parameters=iter([]))
    assert same_weights(a, b)


def test_fit_rejects_bad_extra_parameters(digits):
    model = tiny(digits)
    for extra, error, pattern in [
        ([model.fc1.weight], ValueError, "one of the model's own parameters"),
        ([torch.zeros(3)], ValueError, "requires_grad=False"),
        ([3.0], TypeError, "got float"),
        (torch.zeros(3, requires_grad=True), TypeError, "an iterable of tensors, got Tensor"),
    ]:
        with pytest.raises(error, match=re.escape(pattern)) as e:
            fit(model, digits, extra_parameters=extra)
        one_line(e)


def test_fit_transform_draws_from_fits_private_generator(digits):
    def noisy(x, generator):
        return x + torch.randn(x.shape, generator=generator)

    plain, a, b, c = tiny(digits), tiny(digits), tiny(digits), tiny(digits)
    before = global_rng_state()
    fit(plain, digits)
    fit(a, digits, transform=noisy)
    fit(b, digits, transform=noisy)
    fit(c, digits, transform=noisy, seed=1)
    assert_same_rng(before, global_rng_state())
    assert same_weights(a, b)
    assert not same_weights(a, plain) and not same_weights(a, c)


def test_fit_transform_output_is_what_the_model_and_the_loss_see(digits):
    X = digits.train.tensors[0]
    generators, inputs = [], []

    def transform(x, generator):
        generators.append(generator)
        return -x

    def loss(logits, batch):
        inputs.append(torch.equal(batch.x, -X[batch.index]))
        return F.cross_entropy(logits, batch.y)

    model = tiny(digits)
    fit(model, digits, transform=transform, loss=loss)
    assert all(inputs) and len(inputs) == -(-len(X) // 64)
    assert all(g is generators[0] for g in generators) and isinstance(generators[0], torch.Generator)


def test_fit_rejects_a_transform_that_is_not_a_function(digits):
    with pytest.raises(TypeError, match=re.escape("transform must be None or a function, got 3")) as e:
        fit(tiny(digits), digits, transform=3)
    one_line(e)


def test_fit_accuracy_mask_counts_only_the_marked_examples(digits):
    y = digits.train.tensors[1]
    marked = torch.arange(len(y)) % 3 == 0
    right = torch.zeros(len(y), dtype=torch.bool)

    def loss(logits, batch):
        right[batch.index] = logits.argmax(1) == batch.y
        return F.cross_entropy(logits, batch.y)

    a, b = tiny(digits), tiny(digits)
    history = fit(a, digits, loss=loss, accuracy_mask=marked)
    assert history["train_accuracy"].iloc[0] == int(right[marked].sum()) / int(marked.sum())
    everything = fit(b, digits, accuracy_mask=torch.ones(len(y), dtype=torch.bool))
    assert same_weights(a, b)  # the mask changes what is counted, not what is trained
    assert everything["train_accuracy"].iloc[0] == int(right.sum()) / len(y)
    nothing = fit(tiny(digits), digits, accuracy_mask=torch.zeros(len(y), dtype=torch.bool))
    assert nothing["train_accuracy"].tolist() == [0.0]


@pytest.mark.parametrize(
    ("mask", "pattern"),
    [
        (torch.ones(5, dtype=torch.bool), "torch.bool (5,)"),
        ([True] * 5, "got list"),
        (torch.ones(1258), "float32"),
    ],
)
def test_fit_rejects_a_bad_accuracy_mask(digits, mask, pattern):
    error = TypeError if isinstance(mask, list) else ValueError
    with pytest.raises(
        error, match=re.escape("accuracy_mask must be None or a bool tensor of shape (1258,)")
    ) as e:
        fit(tiny(digits), digits, accuracy_mask=mask)
    assert pattern in one_line(e)


def test_fit_on_step_gets_every_global_step_after_the_optimizer_step(digits):
    model = tiny(digits)
    start = model.fc1.weight.detach().clone()
    steps, moved = [], []

    def on_step(step):
        steps.append(step)
        moved.append(not torch.equal(model.fc1.weight, start))
        with torch.no_grad():
            model.fc1.weight[0].zero_()  # changed in place after the step: stays zero at the end

    fit(model, digits, epochs=2, batch_size=100, on_step=on_step)
    assert steps == list(range(1, 2 * 13 + 1))  # 1,258 examples: 13 steps per epoch
    assert moved[0]
    assert bool((model.fc1.weight[0] == 0).all())


def test_fit_on_step_that_does_nothing_changes_nothing(digits):
    a, b = tiny(digits), tiny(digits)
    fit(a, digits)
    fit(b, digits, on_step=lambda step: None)
    assert same_weights(a, b)
