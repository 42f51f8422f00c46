"""Questions of lesson 06 (knowledge distillation)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from mcviz import distill, models
from mcviz.grading._core import MNIST, Wrong, _call, _number, _short, question

# (temperature, alpha) pairs the loss is graded on: both ends of alpha, T from 1 to 20
_KD_CASES = [(1.0, 0.0), (1.0, 1.0), (2.0, 0.5), (4.0, 0.9), (4.0, 1.0), (2.5, 0.3), (20.0, 0.9), (8.0, 0.0)]


def _kd_inputs(case: int, k: int = 10, n: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Student logits, teacher logits and labels for one graded case (a private generator)."""
    g = torch.Generator().manual_seed(100 + case)
    student = 2.0 * torch.randn(n, k, generator=g)
    teacher = 4.0 * torch.randn(n, k, generator=g)
    labels = torch.randint(0, k, (n,), generator=g)
    return student, teacher, labels


def _kd_variants(s, t, y, temperature, alpha) -> dict[str, float]:
    """Common slips, computed the same way as the right loss, to name them in the feedback."""
    log_p_s = F.log_softmax(s / temperature, dim=1)
    log_p_t = F.log_softmax(t / temperature, dim=1)
    kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    ce = F.cross_entropy(s, y)
    return {
        "no_t2": float(alpha * kl + (1 - alpha) * ce),
        "swapped": float((1 - alpha) * temperature**2 * kl + alpha * ce),
    }


@question(
    "06.kd_loss",
    "Write kd_loss(student_logits, teacher_logits, labels, T, alpha): Hinton et al.'s distillation "
    "loss, alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * "
    "cross-entropy(student, labels), the KL summed over classes and averaged over the batch.",
    hint="soften both sets of logits by dividing by T; log_softmax for the student, softmax for the "
    "teacher; the KL of one example is sum(p_teacher * (log p_teacher - log p_student)); the "
    "cross-entropy uses the raw logits (T = 1); alpha weights the soft term.",
)
def _kd_loss(answer) -> bool:
    for case, (temperature, alpha) in enumerate(_KD_CASES):
        s, t, y = _kd_inputs(case)
        got = _call(answer, s.clone(), t.clone(), y.clone(), temperature, alpha, what="kd_loss")
        value = _number(got, "kd_loss")
        expected = float(distill.kd_loss(s, t, y, temperature=temperature, alpha=alpha))
        if math.isclose(value, expected, rel_tol=1e-4, abs_tol=1e-5):
            continue
        slips = _kd_variants(s, t, y, temperature, alpha)
        if math.isclose(value, slips["no_t2"], rel_tol=1e-4, abs_tol=1e-5):
            raise Wrong(f"at T = {temperature:g} your soft term is missing its T^2 factor")
        if math.isclose(value, slips["swapped"], rel_tol=1e-4, abs_tol=1e-5):
            raise Wrong(
                "your alpha weights the cross-entropy and 1 - alpha the soft term; it is the other way round"
            )
        raise Wrong(f"kd_loss gave {_short(value)} at T = {temperature:g}, alpha = {alpha:g}")
    return True


def _entropy_cases() -> list[tuple[str, nn.Module, torch.Tensor, float]]:
    """(name, model, one example, T): untrained models built with fixed seeds, so the expected
    entropies never depend on training."""
    g = torch.Generator().manual_seed(6)
    with torch.random.fork_rng(devices=[]):  # nn.Linear's default init draws from the global RNG
        sharp = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        sharp[1].weight.copy_(2.0 * torch.randn(10, 64, generator=g))  # large logits: a peaked softmax
        sharp[1].bias.zero_()
    digit = torch.rand(1, 8, 8, generator=g)
    image = torch.rand(*MNIST, generator=g)
    return [
        ("a peaked linear model at T = 1", sharp, digit, 1.0),
        ("the same model at T = 4", sharp, digit, 4.0),
        ("the same model at T = 20", sharp, digit, 20.0),
        (
            "lenet5 (untrained, seed 0) at T = 0.5",
            models.build("lenet5", input_shape=MNIST, seed=0),
            image,
            0.5,
        ),
        (
            "an mlp with 5 classes at T = 2.5",
            models.build("mlp", input_shape=(1, 8, 8), num_classes=5, hidden=(16,), seed=1),
            digit,
            2.5,
        ),
    ]


def _entropy(model: nn.Module, x: torch.Tensor, temperature: float) -> float:
    p = torch.tensor(distill.soft_targets(model, x, temperatures=temperature).probability.to_numpy())
    return float(torch.special.entr(p).sum())


@question(
    "06.soft_entropy",
    "Write soft_entropy(model, x, T): the entropy, in nats, of the model's softened distribution "
    "softmax(model(x) / T) for one example x (shaped like one image, without a batch axis).",
    hint="add a batch axis (x.unsqueeze(0)), divide the logits by T, take the softmax, then "
    "-sum(p * log p) with the natural log; a probability of exactly 0 adds nothing.",
)
def _soft_entropy(answer) -> bool:
    for name, model, x, temperature in _entropy_cases():
        got = _call(answer, model, x.clone(), temperature, what="soft_entropy")
        value = _number(got, "soft_entropy")
        expected = _entropy(model, x, temperature)
        if math.isclose(value, expected, rel_tol=1e-4, abs_tol=1e-5):
            continue
        if math.isclose(value, expected / math.log(2), rel_tol=1e-4, abs_tol=1e-5):
            raise Wrong("your entropy is in bits (log base 2); nats use the natural log")
        if temperature != 1.0 and math.isclose(value, _entropy(model, x, 1.0), rel_tol=1e-4, abs_tol=1e-5):
            raise Wrong(f"your answer for {name} is the entropy at T = 1: divide the logits by T")
        raise Wrong(f"soft_entropy gave {_short(value)} for {name}")
    return True
