"""Unit tests of knowledge distillation (mcviz.distill): the loss against PyTorch's KL divergence,
soft targets, the training loop (teacher untouched, deterministic, scarce labels, jitter, hints)
and the "kd" config."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from helpers import one_line
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

import mcviz as mcv
from mcviz import distill, registry


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def logits(n=16, k=10, seed=0, scale=3.0):
    return scale * torch.randn(n, k, generator=torch.Generator().manual_seed(seed))


def labels(n=16, k=10, seed=0):
    return torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(seed))


def reference_kd(student, teacher, y, temperature, alpha):
    """Hinton et al.'s loss written with F.kl_div (input log-probabilities, target probabilities)."""
    log_p_student = F.log_softmax(student / temperature, dim=1)
    soft = F.kl_div(log_p_student, F.softmax(teacher / temperature, dim=1), reduction="batchmean")
    return alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(student, y)


def student_for(data, seed=0, width=4):
    return mcv.models.build("small_cnn", input_shape=data.input_shape, width=width, seed=seed)


@pytest.fixture
def teacher(digits_mlp):
    """A private copy of the trained 64 -> 32 -> 10 MLP."""
    return copy.deepcopy(digits_mlp)


def fit(student, teacher, data, **kwargs):
    options = {"epochs": 1, "progress": False, "seed": 0, "lr": 1e-2}
    options.update(kwargs)
    return distill.fit(student, teacher, data, **options)


# ---------------------------------------------------------------- kd_loss


@pytest.mark.parametrize("temperature", [1, 2.5, 4.0, 20.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.9, 1.0])
def test_kd_loss_matches_a_direct_kl_div_computation(temperature, alpha):
    s, t, y = logits(seed=1), logits(seed=2), labels(seed=3)
    got = distill.kd_loss(s, t, y, temperature=temperature, alpha=alpha)
    assert torch.allclose(got, reference_kd(s, t, y, temperature, alpha), atol=1e-6, rtol=1e-5)


def test_kd_loss_is_the_kl_sum_over_classes_averaged_over_examples():
    s, t, T = logits(n=5, seed=4), logits(n=5, seed=5), 3.0
    p_t, log_p_s = F.softmax(t / T, dim=1), F.log_softmax(s / T, dim=1)
    by_hand = (p_t * (p_t.log() - log_p_s)).sum(dim=1).mean() * T**2
    got = distill.kd_loss(s, t, None, temperature=T, alpha=1.0)
    assert torch.allclose(got, by_hand, atol=1e-6)
    assert got > 0
    # identical logits: nothing to learn
    assert float(distill.kd_loss(t, t, None, temperature=T, alpha=1.0)) == pytest.approx(0.0, abs=1e-6)


def test_alpha_zero_is_exactly_cross_entropy():
    s, t, y = logits(seed=6), logits(seed=7), labels(seed=8)
    assert torch.equal(distill.kd_loss(s, t, y, temperature=4.0, alpha=0.0), F.cross_entropy(s, y))


def test_alpha_one_ignores_the_labels_which_may_be_none():
    s, t = logits(seed=9), logits(seed=10)
    without = distill.kd_loss(s, t, None, temperature=2.0, alpha=1.0)
    with_labels = distill.kd_loss(s, t, labels(seed=11), temperature=2.0, alpha=1.0)
    assert torch.equal(without, with_labels)
    with pytest.raises(ValueError, match="labels are needed when alpha < 1") as e:
        distill.kd_loss(s, t, None, temperature=2.0, alpha=0.5)
    assert "0.5" in one_line(e)


def test_the_soft_term_is_scaled_by_t_squared():
    s, t = logits(seed=12), logits(seed=13)
    for T in (1.0, 2.0, 5.0, 10.0):
        kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean")
        assert torch.allclose(distill.kd_loss(s, t, None, temperature=T, alpha=1.0), T**2 * kl, rtol=1e-5)


def test_t_squared_keeps_the_gradient_size_steady_as_t_grows():
    t = logits(seed=14)
    norms, raw = {}, {}
    for T in (8.0, 16.0, 32.0):
        s = logits(seed=15).requires_grad_()
        distill.kd_loss(s, t, None, temperature=T, alpha=1.0).backward()
        norms[T] = float(s.grad.norm())
        raw[T] = norms[T] / T**2  # the gradient of the KL term alone
    # with T^2 the soft gradient settles to a constant; without it, it shrinks like 1 / T^2
    assert norms[32.0] / norms[8.0] == pytest.approx(1.0, abs=0.05)
    assert raw[8.0] / raw[32.0] == pytest.approx(16.0, rel=0.05)


def test_kd_loss_leaves_its_inputs_unchanged_and_detaches_the_teacher():
    s, t, y = logits(seed=16).requires_grad_(), logits(seed=17).requires_grad_(), labels(seed=18)
    before = (s.detach().clone(), t.detach().clone(), y.clone())
    distill.kd_loss(s, t, y, temperature=4.0, alpha=0.5).backward()
    assert all(torch.equal(a, b) for a, b in zip((s.detach(), t.detach(), y), before, strict=True))
    assert s.grad is not None and t.grad is None  # the teacher is a fixed target


@pytest.mark.parametrize(
    ("temperature", "error"),
    [(0, ValueError), (-1.0, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
     (101, ValueError), (True, TypeError), ("4", TypeError), (None, TypeError)],
)  # fmt: skip
def test_kd_loss_rejects_bad_temperatures(temperature, error):
    with pytest.raises(error, match=r"temperature must be a (finite )?number in \(0, 100\], got") as e:
        distill.kd_loss(logits(), logits(), labels(), temperature=temperature, alpha=0.5)
    assert repr(temperature) in one_line(e)


@pytest.mark.parametrize(
    ("alpha", "error"),
    [(-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError), (True, TypeError), ("0.5", TypeError),
     (None, TypeError)],
)  # fmt: skip
def test_kd_loss_rejects_alpha_outside_zero_one(alpha, error):
    with pytest.raises(error, match=r"alpha must be a (finite )?number in \[0, 1\], got") as e:
        distill.kd_loss(logits(), logits(), labels(), temperature=4.0, alpha=alpha)
    assert repr(alpha) in one_line(e)


def test_kd_loss_rejects_mismatched_outputs():
    with pytest.raises(ValueError, match="the student has 10 outputs but the teacher has 5") as e:
        distill.kd_loss(logits(k=10), logits(k=5), labels(), temperature=4.0, alpha=0.5)
    one_line(e)
    with pytest.raises(ValueError, match="student_logits must be a 2-D tensor") as e:
        distill.kd_loss(torch.zeros(10), logits(), labels(), temperature=4.0, alpha=0.5)
    one_line(e)
    with pytest.raises(TypeError, match="teacher_logits must be a 2-D tensor") as e:
        distill.kd_loss(logits(), [[0.0] * 10], labels(), temperature=4.0, alpha=0.5)
    one_line(e)


def test_kd_loss_rejects_batches_of_different_sizes():
    # a (1, k) teacher would otherwise broadcast silently against a (16, k) student
    with pytest.raises(ValueError, match=r"batch") as e:
        distill.kd_loss(logits(n=16), logits(n=1), None, temperature=4.0, alpha=1.0)
    assert "16" in one_line(e)


# ---------------------------------------------------------------- soft_targets


def test_soft_targets_sum_to_one_and_match_softmax(digits, teacher):
    x = digits.test.tensors[0][:3]
    table = distill.soft_targets(teacher, x, temperatures=(1, 4, 20))
    assert list(table.columns) == ["example", "temperature", "class", "probability"]
    assert len(table) == 3 * 3 * digits.num_classes
    sums = table.groupby(["example", "temperature"]).probability.sum()
    assert np.allclose(sums, 1.0, atol=1e-6)
    with torch.no_grad():
        expected = F.softmax(teacher(x) / 4, dim=1)
    at4 = table[table.temperature == 4.0].sort_values(["example", "class"]).probability.to_numpy()
    assert np.allclose(at4, expected.flatten().numpy(), atol=1e-6)


def test_soft_targets_flatten_as_t_grows(digits, teacher):
    x = digits.test.tensors[0][0]  # one example, without a batch axis
    table = distill.soft_targets(teacher, x, temperatures=(1, 4, 20, 1e4))
    assert set(table.example) == {0}
    peak = table.groupby("temperature").probability.max()
    assert list(peak) == sorted(peak, reverse=True)  # the top class loses mass as T grows
    flat = table[table.temperature == 1e4].probability
    assert np.allclose(flat, 1 / digits.num_classes, atol=1e-3)  # near uniform
    entropy = table.groupby("temperature").probability.apply(lambda p: -(p * np.log(p)).sum())
    assert list(entropy) == sorted(entropy)
    assert entropy.iloc[-1] == pytest.approx(math.log(digits.num_classes), abs=1e-4)


@pytest.mark.parametrize("training", [True, False])
def test_soft_targets_leave_the_teacher_unchanged(digits, teacher, training):
    teacher.train(training)
    before = state(teacher)
    distill.soft_targets(teacher, digits.test.tensors[0][:2], temperatures=4)
    assert teacher.training is training
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())


@pytest.mark.parametrize(
    "temperatures, error, match",
    [((), ValueError, "temperatures must be a non-empty list"),
     ((1, 0), ValueError, r"temperatures\[1\] must be"),
     (float("nan"), ValueError, r"temperatures\[0\] must be"),
     ((True,), TypeError, r"temperatures\[0\] must be"),
     ("4", TypeError, "temperatures must be a list of numbers > 0")],
)  # fmt: skip
def test_soft_targets_reject_bad_temperatures(digits, teacher, temperatures, error, match):
    with pytest.raises(error, match=match) as e:
        distill.soft_targets(teacher, digits.test.tensors[0][:2], temperatures=temperatures)
    one_line(e)


def test_soft_targets_want_a_module(digits):
    with pytest.raises(TypeError, match="teacher must be a torch.nn.Module, got str") as e:
        distill.soft_targets("lenet5", digits.test.tensors[0][:2])
    one_line(e)


# ---------------------------------------------------------------- fit


@pytest.mark.parametrize("training", [True, False])
def test_fit_trains_the_student_and_leaves_the_teacher_unchanged(digits, teacher, training):
    teacher.train(training)
    before_teacher = state(teacher)
    student = student_for(digits)
    before_student = state(student)
    history = fit(student, teacher, digits, epochs=2)
    assert teacher.training is training
    assert all(torch.equal(v, before_teacher[k]) for k, v in teacher.state_dict().items())
    assert not all(torch.equal(v, before_student[k]) for k, v in student.state_dict().items())
    assert not student.training
    assert list(history.columns) == list(distill.HISTORY_COLUMNS)
    assert list(history.columns)[4:] == ["soft_loss", "hard_loss"]
    assert list(history.columns)[:4] == list(mcv.train.HISTORY_COLUMNS)
    assert list(history.epoch) == [1, 2]
    assert history.loss.iloc[-1] < history.loss.iloc[0]
    # the epoch loss is the weighted sum of its parts (defaults: alpha 0.9)
    assert np.allclose(history.loss, 0.9 * history.soft_loss + 0.1 * history.hard_loss, rtol=1e-5)
    assert mcv.train.evaluate(student, digits) > 0.3  # well above chance (0.1) after 2 epochs


def test_fit_is_deterministic_and_leaves_the_global_rng_alone(digits, teacher):
    torch.manual_seed(123)
    rng = torch.random.get_rng_state()
    a, b, c = student_for(digits), student_for(digits), student_for(digits)
    ha = fit(a, teacher, digits, seed=1)
    hb = fit(b, teacher, digits, seed=1)
    fit(c, teacher, digits, seed=2)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert same_weights(a, b) and ha.equals(hb)
    assert not same_weights(a, c)


def test_temperature_and_alpha_change_the_result(digits, teacher):
    base = student_for(digits)
    fit(base, teacher, digits)
    for options in ({"temperature": 1.0}, {"alpha": 0.5}):
        other = student_for(digits)
        fit(other, teacher, digits, **options)
        assert not same_weights(base, other), options


def test_alpha_zero_distillation_is_cross_entropy_training(digits, teacher):
    # with alpha = 0 the teacher has no say: any teacher gives the same student
    other_teacher = mcv.models.build("mlp", input_shape=digits.input_shape, hidden=(8,), seed=5)
    a, b = student_for(digits), student_for(digits)
    fit(a, teacher, digits, alpha=0.0)
    fit(b, other_teacher, digits, alpha=0.0)
    assert same_weights(a, b)


def _replaced(data, where: torch.Tensor, *, images: bool = False, labels: bool = False):
    """data whose training examples at ``where`` get blank images and / or another label."""
    X, y = (t.clone() for t in data.train.tensors)
    if images:
        X[where] = 0.0
    if labels:
        y[where] = (y[where] + 1) % data.num_classes
    return dataclasses.replace(data, train=TensorDataset(X, y))


def test_scarce_labels_are_the_same_examples_as_subset(digits):
    y = digits.train.tensors[1]
    keep = mcv.data.labelled_indices(y.numpy(), 0.1, seed=3)
    assert len(keep) == round(0.1 * len(y))
    assert torch.equal(mcv.data.subset(digits, 0.1, seed=3).train.tensors[1], y[keep])


def _unlabelled(data, fraction, seed):
    keep = mcv.data.labelled_indices(data.train.tensors[1].numpy(), fraction, seed=seed)
    outside = torch.ones(len(data.train), dtype=torch.bool)
    outside[keep] = False
    return keep, outside.nonzero().flatten()


def test_with_alpha_zero_only_the_labelled_examples_matter(digits, teacher):
    keep, unlabelled = _unlabelled(digits, 0.1, seed=3)
    a, b, c = student_for(digits), student_for(digits), student_for(digits)
    history = fit(a, teacher, digits, alpha=0.0, labels=0.1, label_seed=3)
    # blank the unlabelled images: the batches are the same, their loss weight is zero
    fit(b, teacher, _replaced(digits, unlabelled, images=True), alpha=0.0, labels=0.1, label_seed=3)
    assert same_weights(a, b)
    # blank the labelled images instead: the student changes
    fit(c, teacher, _replaced(digits, keep, images=True), alpha=0.0, labels=0.1, label_seed=3)
    assert not same_weights(a, c)
    assert 0 <= history.train_accuracy.iloc[0] <= 1 and (history.soft_loss > 0).all()


def test_the_hard_term_never_reads_an_unlabelled_label(digits, teacher, monkeypatch):
    keep, unlabelled = _unlabelled(digits, 0.1, seed=3)
    # fix the labelled set, so that relabelling cannot change which examples are drawn
    monkeypatch.setattr(mcv.data, "labelled_indices", lambda y, fraction, seed=0: keep)
    a, b, c, d = (student_for(digits) for _ in range(4))
    fit(a, teacher, digits, alpha=0.5, labels=0.1)
    fit(b, teacher, _replaced(digits, unlabelled, labels=True), alpha=0.5, labels=0.1)
    assert same_weights(a, b)
    fit(c, teacher, _replaced(digits, keep, labels=True), alpha=0.5, labels=0.1)
    assert not same_weights(a, c)
    # and the soft term does cover the unlabelled images
    fit(d, teacher, _replaced(digits, unlabelled, images=True), alpha=0.5, labels=0.1)
    assert not same_weights(a, d)


def test_labels_and_label_seed_change_which_examples_are_labelled(digits, teacher):
    a, b, c = student_for(digits), student_for(digits), student_for(digits)
    fit(a, teacher, digits, alpha=0.5, labels=0.1, label_seed=0)
    fit(b, teacher, digits, alpha=0.5, labels=0.1, label_seed=1)
    fit(c, teacher, digits, alpha=0.5)
    assert not same_weights(a, b) and not same_weights(a, c)


def test_jitter_is_reproducible_and_changes_the_result(digits, teacher):
    plain, a, b = student_for(digits), student_for(digits), student_for(digits)
    fit(plain, teacher, digits)
    before = state(teacher)
    fit(a, teacher, digits, jitter=1)
    fit(b, teacher, digits, jitter=1)
    assert same_weights(a, b)
    assert not same_weights(plain, a)
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())


def test_shift_moves_each_image_by_at_most_jitter_pixels():
    x = torch.zeros(50, 1, 7, 7)
    x[:, 0, 3, 3] = 1.0  # one bright pixel in the middle
    out = distill._shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out.sum(dim=(1, 2, 3)), torch.ones(50))  # nothing falls off
    where = out[:, 0].flatten(1).argmax(1)
    dy, dx = where // 7 - 3, where % 7 - 3
    assert dy.abs().max() <= 2 and dx.abs().max() <= 2
    assert len(set(zip(dy.tolist(), dx.tolist(), strict=True))) > 10  # shifts vary per image
    assert torch.equal(x[:, 0, 3, 3], torch.ones(50))  # the input is unchanged


def test_jitter_needs_images():
    rng = np.random.default_rng(0)
    flat = mcv.data.from_arrays(rng.normal(size=(60, 6)).astype(np.float32), np.arange(60) % 3)
    student = mcv.models.build("mlp", input_shape=flat.input_shape, num_classes=3, hidden=(4,), seed=0)
    teacher = mcv.models.build("mlp", input_shape=flat.input_shape, num_classes=3, hidden=(8,), seed=1)
    with pytest.raises(ValueError, match=r"jitter needs image inputs \(N, C, H, W\), got shape") as e:
        fit(student, teacher, flat, jitter=1)
    one_line(e)


def test_hint_matches_an_intermediate_layer(digits):
    teacher = student_for(digits, seed=7, width=8)  # a wider small CNN as the teacher
    mcv.train.fit(teacher, digits, epochs=1, seed=0, progress=False)
    before = state(teacher)
    plain, a, b = student_for(digits), student_for(digits), student_for(digits)
    fit(plain, teacher, digits)
    fit(a, teacher, digits, hint=("relu2", "relu2"), hint_weight=1.0)
    fit(b, teacher, digits, hint=("relu2", "relu2"), hint_weight=1.0)
    assert same_weights(a, b)
    assert not same_weights(plain, a)
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    for net in (a, teacher):  # the hooks are gone
        assert all(not m._forward_hooks for m in net.modules())


def test_hint_follows_the_teachers_features_of_each_batch(digits):
    # the hint target is the teacher layer's output for the same images as the student's batch
    teacher = student_for(digits, seed=7, width=8)
    seen = []

    def spy(module, inputs, output):
        seen.append(output.shape[0])

    handle = teacher.relu2.register_forward_hook(spy)
    try:
        fit(student_for(digits), teacher, digits, hint=("relu2", "relu2"), hint_weight=1.0, batch_size=100)
    finally:
        handle.remove()
    n = len(digits.train)
    batches = [min(100, n - start) for start in range(0, n, 100)]
    assert seen[-len(batches) :] == batches


def test_hint_rejects_unknown_layers_and_leaves_no_hook(digits, teacher):
    student = student_for(digits)
    with pytest.raises(ValueError, match=r"student has no layer 'nope'; its layers: conv1") as e:
        fit(student, teacher, digits, hint=("nope", "fc1"), hint_weight=1.0)
    one_line(e)
    with pytest.raises(ValueError, match=r"teacher has no layer 'conv9'; its layers: flatten, fc1") as e:
        fit(student, teacher, digits, hint=("relu2", "conv9"), hint_weight=1.0)
    one_line(e)
    with pytest.raises(TypeError, match=r"hint must be None or \(student_layer, teacher_layer\)") as e:
        fit(student, teacher, digits, hint="relu2", hint_weight=1.0)
    one_line(e)
    with pytest.raises(ValueError, match=r"hint must be None or \(student_layer, teacher_layer\)") as e:
        fit(student, teacher, digits, hint=("relu2",), hint_weight=1.0)
    one_line(e)
    for net in (student, teacher):
        assert all(not m._forward_hooks for m in net.modules())


def test_fit_rejects_a_student_whose_outputs_differ(digits, teacher):
    five = mcv.models.build("small_cnn", input_shape=digits.input_shape, num_classes=5, width=4, seed=0)
    teacher.train(True)
    with pytest.raises(
        ValueError, match="student has 5 outputs but the teacher has 10; they must match"
    ) as e:
        fit(five, teacher, digits)
    one_line(e)
    assert teacher.training  # restored, even on the error path


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"temperature": 0}, ValueError, "temperature must be a finite number in (0, 100], got 0"),
        ({"temperature": float("nan")}, ValueError, "temperature must be a finite number in (0, 100], got nan"),  # noqa: E501
        ({"temperature": 1000}, ValueError, "temperature must be a finite number in (0, 100], got 1000"),
        ({"temperature": True}, TypeError, "temperature must be a number in (0, 100], got True"),
        ({"alpha": 1.2}, ValueError, "alpha must be a finite number in [0, 1], got 1.2"),
        ({"alpha": False}, TypeError, "alpha must be a number in [0, 1], got False"),
        ({"labels": 0}, ValueError, "labels must be a finite number in (0, 1], got 0"),
        ({"labels": 1.5}, ValueError, "labels must be a finite number in (0, 1], got 1.5"),
        ({"jitter": -1}, ValueError, "jitter must be an int in [0, 8], got -1"),
        ({"jitter": 1.5}, TypeError, "jitter must be an int in [0, 8], got 1.5"),
        ({"hint_weight": -1.0}, ValueError, "hint_weight must be a finite number > 0, got -1.0"),
        ({"hint_weight": 0}, ValueError, "hint_weight must be a finite number > 0, got 0"),
        ({"hint_weight": float("inf")}, ValueError, "hint_weight must be a finite number > 0, got inf"),
        ({"epochs": 0}, ValueError, "epochs must be an int in [1, 200], got 0"),
        ({"epochs": 10**9}, ValueError, "epochs must be an int in [1, 200], got 1000000000"),
        ({"batch_size": 10**7}, ValueError, "batch_size must be an int in [1, 4096], got 10000000"),
        ({"threads": 0}, ValueError, "threads must be an int in [1, 256], got 0"),
        ({"lr": 0}, ValueError, "lr must be a finite number in (0, 10], got 0"),
        ({"seed": 2**32}, ValueError, "seed must be an int in [0, 4,294,967,295], got 4294967296"),
        ({"label_seed": -1}, ValueError, "label_seed must be an int in [0, 4,294,967,295], got -1"),
        ({"label_seed": 8589934592}, ValueError, "label_seed must be an int in [0, 4,294,967,295], got 85"),
        ({"progress": "no"}, TypeError, "progress must be True or False, got 'no'"),
    ],
)
def test_fit_rejects_bad_settings(digits, teacher, options, error, message):
    student = student_for(digits)
    before = state(student)
    with pytest.raises(error) as e:
        fit(student, teacher, digits, **options)
    assert message in one_line(e)
    assert all(torch.equal(v, before[k]) for k, v in student.state_dict().items())  # nothing trained


def test_fit_rejects_bad_models_and_data(digits, teacher):
    with pytest.raises(TypeError, match="teacher must be a torch.nn.Module, got str") as e:
        fit(student_for(digits), "lenet5", digits)
    one_line(e)
    with pytest.raises(ValueError, match="student and teacher must be different models") as e:
        fit(teacher, teacher, digits)
    one_line(e)
    with pytest.raises(TypeError, match="data") as e:
        fit(student_for(digits), teacher, None)
    one_line(e)
    with pytest.raises(ValueError, match="teacher must hold float32 or float16 tensors, got .*float64") as e:
        fit(student_for(digits), copy.deepcopy(teacher).double(), digits)
    one_line(e)


# ---------------------------------------------------------------- distill and the "kd" config


def test_distill_builds_the_named_student(digits, teacher):
    before = state(teacher)
    net = distill.distill(teacher, digits, student="small_cnn", width=4, epochs=1)
    assert mcv.measure.model(net).params == mcv.measure.model(student_for(digits, width=4)).params
    assert net.input_shape == digits.input_shape
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    again = distill.distill(teacher, digits, student="small_cnn", width=4, epochs=1)
    assert same_weights(net, again)
    mlp = distill.distill(teacher, digits, student="mlp", width=16, epochs=1)
    assert [m.out_features for m in mlp.modules() if isinstance(m, nn.Linear)] == [16, 10]
    with pytest.raises(ValueError, match="student must be one of") as e:
        distill.distill(teacher, digits, student="resnet")
    one_line(e)


def test_kd_config_through_compress_and_parse(digits, teacher):
    (config,) = registry.parse("kd:student=mlp,width=16,epochs=1")
    assert config == distill.KDConfig(student="mlp", width=16, epochs=1)
    assert config.method == "kd" and config.needs_data
    assert registry.label([config]) == "kd:student=mlp,width=16,epochs=1"
    before = state(teacher)
    net = mcv.compress(teacher, config, data=digits)
    assert net is not teacher
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    assert same_weights(net, distill.distill(teacher, digits, student="mlp", width=16, epochs=1))
    assert not same_weights(net, distill._build_student("mlp", 16, digits, 0))  # trained
    with pytest.raises(ValueError, match="needs data="):
        mcv.compress(teacher, config)


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"student": "resnet"}, ValueError, "student must be one of"),
        ({"student": 3}, TypeError, "student must be one of"),
        ({"width": 0}, ValueError, "width must be an int in [1, 4096], got 0"),
        ({"width": 10**6}, ValueError, "width must be an int in [1, 4096], got 1000000"),
        ({"temperature": -2.0}, ValueError, "temperature must be a finite number in (0, 100], got -2.0"),
        ({"alpha": 2}, ValueError, "alpha must be a finite number in [0, 1], got 2"),
        ({"labels": 0.0}, ValueError, "labels must be a finite number in (0, 1], got 0.0"),
        ({"epochs": 0}, ValueError, "epochs must be an int in [1, 200], got 0"),
        ({"epochs": 10**9}, ValueError, "epochs must be an int in [1, 200], got 1000000000"),
        ({"epochs": 2.0}, TypeError, "epochs must be an int in [1, 200], got 2.0"),
        ({"jitter": 100}, ValueError, "jitter must be an int in [0, 8], got 100"),
        ({"lr": 1e9}, ValueError, "lr must be a finite number in (0, 10], got 1000000000.0"),
        ({"seed": 1180591620717411303424}, ValueError, "seed must be an int in [0, 4,294,967,295], got 1"),
    ],
)
def test_kd_config_validates_itself(options, error, message):
    with pytest.raises(error) as e:
        distill.KDConfig(**options)
    assert message in one_line(e)


def test_kd_config_options_come_from_the_shared_bounds():
    for option in ("width", "temperature", "alpha", "epochs", "lr", "labels", "jitter"):
        high = mcv._checks.BOUNDS[option].high
        distill.KDConfig(**{option: high})  # the bound itself is allowed
        with pytest.raises(ValueError, match=option):
            distill.KDConfig(**{option: high + 1})


def test_distill_checks_every_option_before_building_the_student(digits, teacher, monkeypatch):
    monkeypatch.setattr(distill, "_build_student", lambda *a: pytest.fail("built the student"))
    with pytest.raises(ValueError, match="epochs must be an int in"):
        distill.distill(teacher, digits, epochs=0)


def test_fit_is_train_fit_with_a_distillation_loss(digits, teacher, monkeypatch):
    # one training loop in mcviz: distill.fit hands its loss, hint regressor, jitter and labelled
    # examples to mcv.train.fit instead of running a loop of its own
    calls = []
    real = mcv.train.fit

    def spy(model, data, **options):
        calls.append(options)
        return real(model, data, **options)

    monkeypatch.setattr(mcv.train, "fit", spy)
    history = fit(student_for(digits), teacher, digits, labels=0.5, jitter=1)
    assert len(calls) == 1
    assert callable(calls[0]["loss"]) and callable(calls[0]["transform"])
    assert int(calls[0]["accuracy_mask"].sum()) == round(0.5 * len(digits.train))
    assert list(history.columns) == list(distill.HISTORY_COLUMNS)


def test_hint_fit_leaves_the_global_rng_alone(digits):
    teacher = student_for(digits, seed=7, width=8)
    torch.manual_seed(321)
    rng = torch.random.get_rng_state()
    fit(student_for(digits), teacher, digits, hint=("relu2", "relu2"))
    assert torch.equal(torch.random.get_rng_state(), rng)  # the hint regressor draws from its own generator
