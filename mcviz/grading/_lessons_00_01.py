"""Questions of lessons 00 (start here) and 01 (measuring a model)."""

from __future__ import annotations

from torch import nn

from mcviz import measure, models
from mcviz.grading._core import (
    MNIST,
    Wrong,
    _call,
    _close,
    _number,
    _reference_models,
    _short,
    question,
)

# ---- lesson 00: start here --------------------------------------------------------------------


# image sizes the lesson never uses; (28, 28) is the lesson's own, so a function that only knows
# 28x28 fails on the others
_FC_SIZES = [(28, 28), (8, 8), (29, 31), (12, 7), (5, 6), (64, 48)]


@question(
    "00.fc_inputs",
    "Write fc_inputs(height, width): how many numbers enter the seed CNN's dense layer for one "
    "1-channel image of height x width pixels?",
    hint="a 3x3 convolution without padding trims one pixel from every border; 2x2 max-pooling "
    "halves each side, rounding down (an odd side loses its last row or column); all 32 channels "
    "are flattened. Height and width are handled separately.",
)
def _fc_inputs(answer) -> bool:
    for h, w in _FC_SIZES:
        expected = models.build("seed_cnn", input_shape=(1, h, w), seed=0).fc1.in_features
        got = _call(answer, h, w, what="fc_inputs")
        if _number(got, f"fc_inputs({h}, {w})") != expected:
            raise Wrong(f"fc_inputs({h}, {w}) gave {_short(got)}, which is not the number of inputs of fc1")
    return True


@question(
    "00.random_prune",
    "Write random_prune(model, fraction, seed) that returns a NEW model in which exactly "
    "round(fraction * n) of the n weights of every Linear / Conv2d layer are zero, chosen at random "
    "with a torch.Generator seeded with seed; the biases and the input model stay unchanged.",
    hint="copy the model (copy.deepcopy), then for each layer draw a random order of its weight "
    "positions (torch.randperm(n, generator=g)) and zero the first round(fraction * n) of them.",
)
def _random_prune(answer) -> bool:
    import torch

    for name, model in _reference_models()[:4]:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        for fraction, seed in ((0.5, 0), (0.3, 1)):
            got = _call(answer, model, fraction, seed, what="random_prune")
            if not isinstance(got, nn.Module) or got is model:
                raise Wrong(f"random_prune must return a new model, got {_short(got)}")
            if any(not torch.equal(v, model.state_dict()[k]) for k, v in before.items()):
                raise Wrong(f"random_prune changed its input model ({name}): work on a copy")
            for layer_name, layer in model.named_modules():
                if not isinstance(layer, (nn.Linear, nn.Conv2d)):
                    continue
                new = got.get_submodule(layer_name)
                n, zeros = layer.weight.numel(), int((new.weight == 0).sum())
                if zeros != round(fraction * n):
                    raise Wrong(f"{name}, layer {layer_name}: {zeros} of {n} weights are zero at fraction "
                                f"{fraction}; exactly round(fraction * n) must be")
                kept = new.weight != 0
                if not torch.equal(new.weight[kept], layer.weight[kept]):
                    raise Wrong(f"{name}, layer {layer_name}: a kept weight changed its value")
                if layer.bias is not None and not torch.equal(new.bias, layer.bias):
                    raise Wrong(f"{name}, layer {layer_name}: the bias changed; prune weights only")
        first = next(n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
        runs = [_call(answer, model, 0.5, seed, what="random_prune") for seed in (0, 0, 1)]
        masks = [run.get_submodule(first).weight == 0 for run in runs]
        if not torch.equal(masks[0], masks[1]):
            raise Wrong("the same seed must give the same zeros (seed a torch.Generator with it)")
        if torch.equal(masks[0], masks[2]):
            raise Wrong("different seeds gave the same zeros: the positions must depend on the seed")
    return True


def _agreement_cases():
    """(what, model_a, model_b, images): pairs of models on images the lesson never loads."""
    import copy

    import torch

    g = torch.Generator().manual_seed(7)
    base = models.build("seed_cnn", input_shape=MNIST, seed=3)
    halved = copy.deepcopy(base)
    with torch.no_grad():
        for layer in (halved.conv1, halved.fc1):
            layer.weight.mul_(torch.rand(layer.weight.shape, generator=g) >= 0.5)
    other = models.build("seed_cnn", input_shape=MNIST, seed=4)
    small = models.build("mlp", input_shape=(1, 8, 8), hidden=(16,), seed=5)
    return [
        ("a seed CNN and its randomly half-pruned copy, 100 noise images", base, halved,
         torch.rand(100, 1, 28, 28, generator=g)),
        ("two differently seeded seed CNNs, 37 noise images", base, other,
         torch.rand(37, 1, 28, 28, generator=g)),
        ("a model and itself, 5 images", small, small, torch.rand(5, 1, 8, 8, generator=g)),
    ]


@question(
    "00.agreement",
    "Write agreement(model_a, model_b, images): the fraction (0 to 1) of the images on which the "
    "two models predict the same class.",
    hint="a model's predicted class is the index of its highest score (argmax over dimension 1); "
    "compare the two predictions image by image, without gradients (torch.no_grad()), and divide "
    "the number of equal predictions by the number of images. Accuracy is not involved: there are "
    "no labels.",
)
def _agreement(answer) -> bool:
    import torch

    for what, a, b, images in _agreement_cases():
        with torch.no_grad():
            expected = (a(images).argmax(1) == b(images).argmax(1)).float().mean().item()
        got = _call(answer, a, b, images, what="agreement")
        value = _number(got, f"agreement for {what}")
        if not 0 <= value <= 1:
            raise Wrong(f"agreement gave {_short(got)} for {what}: a fraction from 0 to 1 is expected")
        if abs(value - expected) > 1e-6:
            raise Wrong(f"agreement gave {_short(got)} for {what}: not the fraction of equal predictions")
    return True


# ---- lesson 01: measuring a model -------------------------------------------------------------


# (budget, height, width): budgets and image sizes the lesson never uses; 54,410 is the seed CNN's
# own count on 28x28 (exactly 32 channels fit), one less fits 31
_BUDGETS = [(54_410, 28, 28), (54_409, 28, 28), (10_000, 28, 28), (1_000_000, 8, 8), (100, 28, 28),
            (250_000, 32, 20), (20, 5, 5)]


def _seed_cnn_params(channels: int, height: int, width: int) -> int:
    """Parameters of the seed CNN with ``channels`` convolution channels, counted by mcv.measure."""
    conv = nn.Conv2d(1, channels, 3)
    flat = channels * ((height - 2) // 2) * ((width - 2) // 2)
    model = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(flat, 10))
    return measure.model(model, files=False).params


def _most_channels(budget: int, height: int, width: int) -> int:
    """The largest channel count whose seed CNN fits ``budget`` (counts grow with channels)."""
    lo, hi = 0, 1
    while _seed_cnn_params(hi, height, width) <= budget:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # fits at lo (or lo == 0), not at hi
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _seed_cnn_params(mid, height, width) <= budget else (lo, mid)
    return lo


@question(
    "01.channels_for_budget",
    "Write channels_for_budget(budget, height, width): the largest number of output channels the "
    "seed CNN's convolution can have so that the whole model (a 3x3 convolution, 2x2 max-pooling, "
    "a dense layer to 10 classes, all weights and biases) has at most `budget` parameters on "
    "1-channel images of height x width; 0 if not even one channel fits.",
    hint="write the parameter count as a function of the channel count c: the convolution has "
    "c * 3 * 3 weights and c biases, the dense layer c * (pooled height) * (pooled width) * 10 "
    "weights and 10 biases. It grows with c, so the answer is the largest c whose count is still "
    "within the budget: solve for c and round down, or try c = 1, 2, ...",
)
def _channels_for_budget(answer) -> bool:
    for budget, h, w in _BUDGETS:
        expected = _most_channels(budget, h, w)
        got = _call(answer, budget, h, w, what="channels_for_budget")
        if _number(got, f"channels_for_budget({budget}, {h}, {w})") != expected:
            raise Wrong(f"channels_for_budget({budget:_}, {h}, {w}) gave {_short(got)}: with that many "
                        "channels the model either exceeds the budget or a larger count still fits")
    return True


_CONVS = [
    ("Conv2d(1, 32, 3) on 28x28", nn.Conv2d(1, 32, 3), 28, 28),
    ("Conv2d(3, 16, 5, stride=2, padding=2) on 32x32", nn.Conv2d(3, 16, 5, stride=2, padding=2), 32, 32),
    ("Conv2d(8, 4, 3, padding=1, bias=False) on 7x9", nn.Conv2d(8, 4, 3, padding=1, bias=False), 7, 9),
    ("Conv2d(4, 6, (3, 1), stride=(1, 2)) on 10x11", nn.Conv2d(4, 6, (3, 1), stride=(1, 2)), 10, 11),
]


@question(
    "01.conv_macs",
    "Write conv_macs(conv, height, width): the MACs of one nn.Conv2d on one input image "
    "of height x width (bias not counted).",
    hint="MACs = (number of output values) x (inputs each output value reads). An output "
    "side is floor((size + 2*padding - kernel) / stride) + 1, per direction; "
    "conv.kernel_size, conv.stride and conv.padding are (height, width) pairs.",
)
def _conv_macs(answer) -> bool:
    for name, conv, h, w in _CONVS:
        got = _call(answer, conv, h, w, what="conv_macs")
        expected = measure.macs(nn.Sequential(conv), (conv.in_channels, h, w))
        if _number(got, f"conv_macs for {name}") != expected:
            raise Wrong(f"conv_macs gave {_short(got)} for {name}")
    return True


@question(
    "01.lenet300_macs",
    "How many MACs does LeNet-300-100 do for one 28x28 image?",
    hint="a Linear layer does in_features x out_features MACs per example; add up the "
    "layers (biases and ReLUs are not counted).",
)
def _lenet300_macs(answer) -> bool:
    model = models.build("lenet300", input_shape=MNIST, seed=0)
    return _close(answer, measure.macs(model, MNIST))


LATENCY_CHOICES = {
    "a": "fp32 timed in yesterday's session, fp16 timed today, compare the two medians",
    "b": "time both models in the same run, same batch size and threads, compare the ratio of their medians",
    "c": "compare the fastest single call of one model with the mean of the other",
}


@question(
    "01.fair_latency",
    "Which latency comparison is fair? Answer 'a', 'b' or 'c' (see LATENCY_CHOICES).",
    hint="noise differs between sessions and machines, and one statistic must be compared "
    "with the same statistic.",
)
def _fair_latency(answer) -> bool:
    if not isinstance(answer, str) or answer.strip().lower() not in LATENCY_CHOICES:
        raise Wrong(f"answer one of {', '.join(map(repr, LATENCY_CHOICES))}, got {_short(answer)}")
    return answer.strip().lower() == "b"
