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


@question(
    "00.fc_inputs",
    "How many numbers enter the seed CNN's dense layer for one 28x28 MNIST image?",
    hint="a 3x3 convolution without padding trims one pixel from every border; 2x2 "
    "max-pooling halves each side (rounding down); every one of the 32 channels "
    "is flattened.",
)
def _fc_inputs(answer) -> bool:
    model = models.build("seed_cnn", input_shape=MNIST, seed=0)
    return _close(answer, model.fc1.in_features)


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


@question(
    "00.int8_bytes",
    "How many bytes would the seed CNN's parameters take at 8 bits each (ignore scales)?",
    hint="8 bits is one byte; start from the parameter count or from the fp32 size_bytes.",
)
def _int8_bytes(answer) -> bool:
    params = measure.model(models.build("seed_cnn", input_shape=MNIST, seed=0)).params
    return _close(answer, params)


# ---- lesson 01: measuring a model -------------------------------------------------------------


@question(
    "01.count_params",
    "Write count_params(model) that returns the number of parameters of a model.",
    hint="count every element of every weight and every bias (a tensor's .numel() gives "
    "its element count); some layers have no bias.",
)
def _count_params(answer) -> bool:
    for name, model in _reference_models():
        got = _call(answer, model, what="count_params")
        expected = measure.model(model).params
        if _number(got, f"count_params({name})") != expected:
            raise Wrong(f"count_params gave {_short(got)} for {name}")
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
