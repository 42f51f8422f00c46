"""Bad input to the pruning and quantization techniques and to the explorers, one test per class of
input (issues #11 and #15): models the library does not take (float64, meta device, not a module),
layers it does not handle (Conv1d), seeds, option bounds, data, and sizes the explorers could be
asked for. The language-model methods (groupwise, gptq, awq, smoothquant, lowrank, semistructured,
embeddings, layerdrop) are in the classes of models, option bounds and data; embeddings and
layerdrop run on a tiny GPT (a classifier has no embedding tables and no stack of blocks).

Each test runs over every entry point of the class (registered configs, keyword functions,
model-level functions, explorers) and checks the error type, that the message is one line naming
the argument, and that the input model is unchanged. A new entry point joins by being added to the
tables below; ``test_every_registered_method_is_covered`` fails until a new registered method is.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from helpers import one_line
from torch import nn

import mcviz as mcv
from mcviz import _checks, _layers, prune, quantize, registry, widgets

# the registered methods of the technique modules; kd (distill) and finetune (train) are tested
# with their own modules
TECHNIQUES = {
    "magnitude": prune.MagnitudeConfig,
    "random": prune.RandomConfig,
    "channels": prune.ChannelsConfig,
    "weights": quantize.WeightsConfig,
    "ptq": quantize.PTQConfig,
    "qat": quantize.QATConfig,
    "kmeans": quantize.KMeansConfig,
    "int8": quantize.Int8Config,
    "fp16": quantize.FP16Config,
    # the language-model methods: any model of Linear layers...
    "groupwise": quantize.GroupwiseConfig,
    "gptq": quantize.GPTQConfig,
    "awq": quantize.AWQConfig,
    "smoothquant": quantize.SmoothQuantConfig,
    "lowrank": mcv.factorize.LowRankConfig,
    "semistructured": prune.SemiStructuredConfig,
    # ... and the parts of a language model a classifier has not
    "embeddings": quantize.EmbeddingsConfig,
    "layerdrop": mcv.layerdrop.LayerDropConfig,
}
# The language-model methods are not in the class of layers not handled: they transform nn.Linear
# layers only (``_layers.linear_targets``: a Conv2d is left too, with a warning of its own, tested
# in test_quantize_groupwise), embedding tables only (embeddings) or a stack of blocks (layerdrop)
LANGUAGE = {"groupwise", "gptq", "awq", "smoothquant", "lowrank", "semistructured", "embeddings", "layerdrop"}
# methods that refuse a classifier: they run on a tiny GPT (gpt_model)
NEEDS_GPT = {"embeddings", "layerdrop"}
# Deep Compression's, distillation's and fine-tuning's methods are tested with their own modules
# (test_encode, test_export, test_deep_compression, test_distill, test_train) and by the
# registry's contract tests
ELSEWHERE = {"kd", "finetune", "huffman", "deep_compression", "onnx", "ort_int8"}
FAST = {  # config options that keep a test short (and that a config needs: lowrank's rule)
    "qat": {"epochs": 1},
    "gptq": {"group_size": 16, "samples": 64},
    "awq": {"group_size": 16, "samples": 16, "grid": 2},
    "smoothquant": {"samples": 16},
    "lowrank": {"rank": 2},
    "layerdrop": {"keep": 1, "epochs": 1, "samples": 16},
}


def test_every_registered_method_is_covered():
    assert set(registry.METHODS) - ELSEWHERE == set(TECHNIQUES)
    assert all(registry.METHODS[name] is cls for name, cls in TECHNIQUES.items())


def via_compress(cls):
    """Returns a call applying config ``cls`` (with FAST options) through ``mcv.compress``."""
    return lambda m, d: mcv.compress(m, cls(**FAST.get(cls.method, {})), data=d)


def mlp() -> nn.Module:
    return mcv.models.build("mlp", input_shape=(1, 8, 8), hidden=(16,), seed=0)


def gpt_model() -> nn.Module:
    """A 2-block GPT of 7,050 parameters: embedding tables and a stack of blocks."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return mcv.gpt.TinyGPT(10, 8, layers=2, dim=16, heads=2)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert value.dtype == after[key].dtype and value.device == after[key].device, key
        if value.device.type != "meta":
            assert torch.equal(value, after[key]), key


# ---------------------------------------------------------------- every entry point that takes a model

MODEL_CALLS = {
    **{f"compress {name}": via_compress(cls) for name, cls in TECHNIQUES.items()},
    "magnitude": lambda m, d: prune.magnitude(m, 0.5),
    "random": lambda m, d: prune.random(m, 0.5),
    "channels": lambda m, d: prune.channels(m, 0.5),
    "kept_channels": lambda m, d: prune.kept_channels(m, 0.5),
    "finalize": lambda m, d: prune.finalize(m),
    "weight_sparsity": lambda m, d: prune.weight_sparsity(m),
    "rewound": lambda m, d: prune.rewound(m, {}),
    "sensitivity": lambda m, d: prune.sensitivity(m, d, sparsities=(0.5,)),
    "one_shot": lambda m, d: prune.one_shot(m, d, 0.5),
    "iterative": lambda m, d: prune.iterative(m, d, 0.5, steps=2),
    "gradual": lambda m, d: prune.gradual(m, d, final_sparsity=0.5, epochs=2),
    "GradualPruner": lambda m, d: prune.GradualPruner(m, final_sparsity=0.5, begin_step=0, end_step=4),
    "PrunedLinear.from_dense": lambda m, d: prune.PrunedLinear.from_dense(m),
    "weights": lambda m, d: quantize.weights(m, 4),
    "ptq": lambda m, d: quantize.ptq(m, d, 4),
    "qat": lambda m, d: quantize.qat(m, d, 4, epochs=1),
    "kmeans": lambda m, d: quantize.kmeans(m, 2),
    "int8 dynamic": lambda m, d: quantize.int8(m),
    "int8 static": lambda m, d: quantize.int8(m, d, mode="static"),
    "fp16": lambda m, d: quantize.fp16(m),
    "groupwise": lambda m, d: quantize.groupwise(m, 4, group_size=16),
    "gptq": lambda m, d: quantize.gptq(m, d, 4, group_size=16, samples=64),
    "awq": lambda m, d: quantize.awq(m, d, 4, group_size=16, samples=16, grid=2),
    "smoothquant": lambda m, d: quantize.smoothquant(m, d, samples=16),
    "lowrank": lambda m, d: mcv.factorize.lowrank(m, d, rank=2, epochs=1),
    "semistructured": lambda m, d: prune.semistructured(m, 2, 4),
    "embeddings": lambda m, d: quantize.embeddings(m, 4),
    "layerdrop": lambda m, d: mcv.layerdrop.layerdrop(m, d, keep=1, epochs=1),
    "drop_layers": lambda m, d: mcv.layerdrop.drop_layers(m, 1),
    "QuantLinear.from_float": lambda m, d: quantize.QuantLinear.from_float(m),
    "KMeansLinear.from_float": lambda m, d: quantize.KMeansLinear.from_float(m),
    "layers_explorer": lambda m, d: widgets.layers_explorer({"m": m}),
    "latency_explorer": lambda m, d: widgets.latency_explorer(m, d, batch_sizes=(1,), batch_size=1),
    "latency_table": lambda m, d: widgets.latency_table({"m": m}, d, repeats=3),
    "quantization_explorer": lambda m, d: widgets.quantization_explorer(m, d),
    "pruning_explorer": lambda m, d: widgets.pruning_explorer(m, d),
    "temperature_explorer": lambda m, d: widgets.temperature_explorer(m, d),
}  # fmt: skip
LAYER_CALLS = {"PrunedLinear.from_dense", "QuantLinear.from_float", "KMeansLinear.from_float"}


GPT_CALLS = {"drop_layers"} | NEEDS_GPT | {f"compress {name}" for name in NEEDS_GPT}


def model_for(name: str) -> nn.Module:
    """The valid model an entry point takes: a Linear layer for the layer constructors, a tiny GPT
    for the methods that need embedding tables or blocks, else the MLP."""
    if name in GPT_CALLS:
        return gpt_model()
    return nn.Linear(64, 10) if name in LAYER_CALLS else mlp()


NOT_FLOAT32 = {
    "float64": (lambda m: m.double(), ValueError, "float64"),
    "meta": (lambda m: m.to("meta"), ValueError, "meta device"),
    "bfloat16": (lambda m: m.to(torch.bfloat16), ValueError, "bfloat16"),
    "str": (lambda m: "lenet5", TypeError, "torch.nn.Module}?, got str"),
}


@pytest.mark.parametrize(
    ("name", "kind"),
    # (mcv.compress checks that its model is a module itself: the registry's own test)
    [(n, k) for n in MODEL_CALLS for k in NOT_FLOAT32 if not (k == "str" and n.startswith("compress"))],
)
def test_models_that_are_not_float32_cpu_modules_are_refused(name, kind, digits):
    convert, error, words = NOT_FLOAT32[kind]
    model = convert(model_for(name))
    before = state(model) if isinstance(model, nn.Module) else None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before any work: nothing warns either
        with pytest.raises(error) as info:
            MODEL_CALLS[name](model, digits)
    message = one_line(info)
    assert re.search(words, message), message
    named = {"model", "module", "pruned", "teacher", "model_set", "model_set['m']", "model_set['model']"}
    assert message.split(" ")[0] in named, message
    if before is not None:
        assert_unchanged(model, before)


def test_compress_refuses_a_meta_model_instead_of_returning_one():
    with pytest.raises(ValueError, match="model has tensors on the meta device"):
        mcv.compress(mlp().to("meta"), quantize.FP16Config())


def test_a_float16_model_is_still_taken():
    half = mcv.compress(mlp(), quantize.FP16Config())
    assert isinstance(prune.magnitude(half, 0.5).fc1, prune.PrunedLinear)


# ---------------------------------------------------------------- layers the methods do not handle


def mixed() -> nn.Module:
    """Conv1d (not handled) + two Linear layers, on digits (8x8 images read as 64-long signals)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Flatten(2), nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(248, 16), nn.ReLU(),
            nn.Linear(16, 10),
        )  # fmt: skip


def conv1d_only() -> nn.Module:
    return nn.Sequential(nn.Flatten(2), nn.Conv1d(1, 10, 64), nn.Flatten())


def _model(out):
    return out[0] if isinstance(out, tuple) else getattr(out, "model", out)


def pruned(out, original) -> bool:
    layer = _model(out).get_submodule("4")
    return isinstance(layer, prune.PrunedLinear) and not bool(layer.mask.all())


def layer4_is(kind):
    return lambda out, m: type(_model(out).get_submodule("4")).__name__ == kind


def changed(out, m) -> bool:
    layer = out.get_submodule("4")
    return type(layer) is not nn.Linear or layer.out_features != 16


# name -> (call, did it transform the Linear layers?, does it train every parameter?)
RULE_CASES = {
    "magnitude": (lambda m, d: prune.magnitude(m, 0.5), pruned, False),
    "random": (lambda m, d: prune.random(m, 0.5), pruned, False),
    "one_shot": (lambda m, d: prune.one_shot(m, d, 0.5), pruned, True),
    "iterative": (lambda m, d: prune.iterative(m, d, 0.5, steps=2), pruned, True),
    "gradual": (lambda m, d: prune.gradual(m, d, final_sparsity=0.5, epochs=2), pruned, True),
    "GradualPruner": (
        lambda m, d: prune.GradualPruner(
            m, final_sparsity=0.5, begin_step=0, end_step=4, initial_sparsity=0.2
        ),
        pruned, False,
    ),
    "channels": (lambda m, d: prune.channels(m, 0.5), lambda out, m: out[4].out_features == 8, False),
    "kept_channels": (lambda m, d: prune.kept_channels(m, 0.5), lambda out, m: list(out) == ["4"], False),
    "sensitivity": (
        lambda m, d: prune.sensitivity(m, d, sparsities=(0.5,)), lambda out, m: list(out.layer) == ["4", "6"],
        False,
    ),
    "weights": (lambda m, d: quantize.weights(m, 4), layer4_is("QuantLinear"), False),
    "ptq": (lambda m, d: quantize.ptq(m, d, 4), lambda out, m: out[4].act_scale is not None, False),
    "qat": (lambda m, d: quantize.qat(m, d, 4, epochs=1), layer4_is("QuantLinear"), True),
    "kmeans": (lambda m, d: quantize.kmeans(m, 2), layer4_is("KMeansLinear"), False),
    "int8 dynamic": (lambda m, d: quantize.int8(m), layer4_is("Int8Linear"), False),
    "int8 static": (lambda m, d: quantize.int8(m, d, mode="static"), layer4_is("Int8Linear"), False),
}  # fmt: skip
for _name, _cls in TECHNIQUES.items():  # every registered method, through compress
    # fp16 stores every float tensor in 16 bits: it leaves no layer alone
    if _name != "fp16" and _name not in LANGUAGE:
        RULE_CASES[f"compress {_name}"] = (via_compress(_cls), changed, _name == "qat")


def unsupported_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, _layers.UnsupportedLayersWarning)]


@pytest.mark.parametrize("name", list(RULE_CASES))
def test_layers_not_handled_are_left_as_they_are_with_one_warning(name, digits):
    call, transformed, trains = RULE_CASES[name]
    model = mixed()
    before = state(model)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = call(model, digits)
    found = unsupported_warnings(record)
    assert len(found) == 1, found
    assert "1 (Conv1d)" in found[0] and "Linear and Conv2d layers only" in found[0]
    assert issubclass(_layers.UnsupportedLayersWarning, UserWarning)
    assert transformed(out, model)
    assert_unchanged(model, before)
    if isinstance(out, nn.Module) or hasattr(out, "model") or isinstance(out, tuple):
        result = _model(out)
        conv = result.get_submodule("1.layer" if name.endswith("int8 static") else "1")
        assert type(conv) is nn.Conv1d and conv.weight.dtype == torch.float32
        if not trains:
            assert torch.equal(conv.weight, model[1].weight)


@pytest.mark.parametrize("name", list(RULE_CASES))
def test_a_model_with_no_layer_it_handles_is_refused_the_same_way(name, digits):
    model = conv1d_only()
    before = state(model)
    with pytest.raises(ValueError) as info:
        RULE_CASES[name][0](model, digits)
    assert one_line(info).startswith("model must have a Linear or Conv2d layer for ")
    assert str(info.value).endswith("it has Flatten, Conv1d")
    assert_unchanged(model, before)


def test_weight_sparsity_counts_linear_and_conv2d_only():
    model = mixed()
    with torch.no_grad():
        model[1].weight.zero_()  # not counted
        model[4].weight[0].zero_()  # 248 zeros
    with pytest.warns(_layers.UnsupportedLayersWarning, match="weight_sparsity counts .* are not counted"):
        assert prune.weight_sparsity(model) == 248 / (248 * 16 + 16 * 10)


def test_fp16_stores_every_layer_in_16_bits(digits):
    with warnings.catch_warnings():
        warnings.simplefilter("error", _layers.UnsupportedLayersWarning)
        half = quantize.fp16(mixed())
        only = quantize.fp16(conv1d_only())
    assert half[1].weight.dtype == half[4].weight.dtype == only[1].weight.dtype == torch.float16
    assert only(digits.test.tensors[0][:4]).shape == (4, 10)


def test_static_int8_runs_a_layer_it_does_not_handle_in_float32(digits):
    model = mixed()
    mcv.train.fit(model, digits, epochs=2, lr=1e-2, seed=0, progress=False)
    with pytest.warns(_layers.UnsupportedLayersWarning):
        q = quantize.int8(model, digits, mode="static")
    assert torch.equal(q.get_submodule("1.layer").weight, model[1].weight)
    assert abs(mcv.train.evaluate(q, digits) - mcv.train.evaluate(model, digits)) < 0.05


def test_channels_prunes_around_a_layer_it_does_not_handle():
    # the Linear after the Conv1d loses channels (and the next one the matching inputs)
    model = nn.Sequential(
        nn.Flatten(2), nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(124, 8), nn.ReLU(), nn.Linear(8, 10)
    )
    with pytest.warns(_layers.UnsupportedLayersWarning):
        small = prune.channels(model, 0.5)
    assert small[1] is not model[1] and torch.equal(small[1].weight, model[1].weight)
    assert (small[3].in_features, small[3].out_features, small[5].in_features) == (124, 4, 4)
    # a layer whose outputs feed the Conv1d keeps all of them (the Conv1d's inputs stay as they are)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Conv1d(1, 4, 3), nn.Flatten(), nn.Linear(56, 8),
        nn.ReLU(), nn.Linear(8, 10),
    )  # fmt: skip
    with pytest.warns(_layers.UnsupportedLayersWarning):
        assert list(prune.kept_channels(model, 0.5)) == ["5"]
    with pytest.raises(ValueError, match=r"'1' \(its outputs feed a layer channels leaves") as info:
        prune.kept_channels(model, {"1": 0.5})
    assert "prunable layers: 5" in one_line(info)


def test_explorers_warn_once_when_built_and_never_when_a_control_moves(digits):
    model = mixed()
    for build, control, value in (
        (lambda: widgets.quantization_explorer(model, digits, bits=8), "bits", 4),
        (lambda: widgets.pruning_explorer(model, digits, sparsity=0.5), "sparsity", 0.8),
    ):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            explorer = build()
        assert len(unsupported_warnings(record)) == 1
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            explorer.controls[control].value = value
        assert unsupported_warnings(record) == []
    with pytest.raises(ValueError, match="must have a Linear or Conv2d layer for quantization_explorer"):
        widgets.quantization_explorer(conv1d_only(), digits)


# ---------------------------------------------------------------- seeds


SEED_CALLS = {
    "random_mask": lambda s, m, d: prune.random_mask(torch.ones(4, 4), 0.5, seed=s),
    "random": lambda s, m, d: prune.random(m, 0.5, seed=s),
    "RandomConfig": lambda s, m, d: prune.RandomConfig(0.5, seed=s),
    "one_shot": lambda s, m, d: prune.one_shot(m, d, 0.5, seed=s),
    "iterative": lambda s, m, d: prune.iterative(m, d, 0.5, seed=s),
    "gradual": lambda s, m, d: prune.gradual(m, d, final_sparsity=0.5, epochs=2, seed=s),
    "lottery_ticket": lambda s, m, d: prune.lottery_ticket("mlp", d, seed=s),
    "qat": lambda s, m, d: quantize.qat(m, d, seed=s),
    "QATConfig": lambda s, m, d: quantize.QATConfig(seed=s),
    "kmeans": lambda s, m, d: quantize.kmeans(m, seed=s),
    "KMeansConfig": lambda s, m, d: quantize.KMeansConfig(seed=s),
    "pruning_explorer": lambda s, m, d: widgets.pruning_explorer(m, d, seed=s),
}
BAD_SEEDS = {
    "2**32": (2**32, ValueError),
    "-1": (-1, ValueError),
    "2**70": (1180591620717411303424, ValueError),  # the seed: too large for torch and numpy
    "np -1": (np.int64(-1), ValueError),
    "1.0": (1.0, TypeError),
    "True": (True, TypeError),
    "'0'": ("0", TypeError),
    "None": (None, TypeError),
}


@pytest.mark.parametrize("name", list(SEED_CALLS))
@pytest.mark.parametrize("seed", list(BAD_SEEDS))
def test_seeds_outside_what_numpy_and_torch_take_are_refused(name, seed, digits):
    value, error = BAD_SEEDS[seed]
    model = mlp()
    before = state(model)
    with pytest.raises(error) as info:
        SEED_CALLS[name](value, model, digits)
    assert one_line(info).startswith("seed must be an int in [0, 4,294,967,295], got ")
    assert_unchanged(model, before)


def test_seeds_derived_from_the_largest_seed_stay_valid(digits):
    assert _checks.offset_seed(2**32 - 1, 1) == 0 and _checks.offset_seed(7, 3) == 10
    _, history = prune.iterative(mlp(), digits, 0.5, steps=2, seed=2**32 - 1)  # rounds seed 2**32 - 1, 0
    assert list(history.step) == [1, 2]


# ---------------------------------------------------------------- option bounds (configs and functions alike)

# config -> its keyword function, called with a model, data and options (model and data positional
# only: semistructured has an option called m)
FUNCTIONS = {
    prune.MagnitudeConfig: lambda m, d, /, **o: prune.magnitude(m, **o),
    prune.RandomConfig: lambda m, d, /, **o: prune.random(m, **o),
    prune.ChannelsConfig: lambda m, d, /, **o: prune.channels(m, **o),
    quantize.WeightsConfig: lambda m, d, /, **o: quantize.weights(m, **o),
    quantize.PTQConfig: lambda m, d, /, **o: quantize.ptq(m, d, **o),
    quantize.QATConfig: lambda m, d, /, **o: quantize.qat(m, d, **o),
    quantize.KMeansConfig: lambda m, d, /, **o: quantize.kmeans(m, data=d, **o),
    quantize.Int8Config: lambda m, d, /, **o: quantize.int8(m, d, **o),
    quantize.FP16Config: lambda m, d, /, **o: quantize.fp16(m, **o),
    quantize.GroupwiseConfig: lambda m, d, /, **o: quantize.groupwise(m, **o),
    quantize.GPTQConfig: lambda m, d, /, **o: quantize.gptq(m, d, **o),
    quantize.AWQConfig: lambda m, d, /, **o: quantize.awq(m, d, **o),
    quantize.SmoothQuantConfig: lambda m, d, /, **o: quantize.smoothquant(m, d, **o),
    mcv.factorize.LowRankConfig: lambda m, d, /, **o: mcv.factorize.lowrank(m, d, **o),
    prune.SemiStructuredConfig: lambda m, d, /, **o: prune.semistructured(m, **o),
    quantize.EmbeddingsConfig: lambda m, d, /, **o: quantize.embeddings(m, **o),
    mcv.layerdrop.LayerDropConfig: lambda m, d, /, **o: mcv.layerdrop.layerdrop(m, d, **o),
}


def numeric_options():
    """(config, option, bad value) for every int / float option of every registered technique."""
    cases = []
    for cls in TECHNIQUES.values():
        for f in dataclasses.fields(cls):
            if isinstance(f.default, bool) or not isinstance(f.default, (int, float)):
                continue
            bounds = _checks.option_bounds(f.name, cls.method)  # KeyError: an option without shared bounds
            if isinstance(f.default, int):
                values = [bounds.low - 1, bounds.high + 1, max(10**9, bounds.high * 1000)]
            else:
                values = [float(bounds.low) - 1.0, float(bounds.high) + 1.0, math.nan, math.inf]
            cases += [pytest.param(cls, f.name, v, id=f"{cls.method}-{f.name}-{v}") for v in values]
    return cases


def test_every_numeric_option_has_shared_bounds():
    assert {c.values[1] for c in numeric_options()} >= {
        "sparsity", "seed", "bits", "calibration_batches", "epochs", "lr", "fine_tune_epochs",
        "group_size", "samples", "damp", "grid", "alpha", "rank", "energy", "fraction", "n", "m", "keep",
    }  # fmt: skip


@pytest.mark.parametrize(("cls", "option", "value"), numeric_options())
def test_out_of_bounds_options_are_refused_by_config_and_function_alike(cls, option, value, digits):
    options = {**FAST.get(cls.method, {}), option: value}
    with pytest.raises(ValueError) as from_config:
        cls(**options)
    message = one_line(from_config)
    assert message.startswith(f"{option} must be ") and "got" in message
    # (no warning about mixed()'s Conv1d either: the call is refused before that)
    model = gpt_model() if cls.method in NEEDS_GPT else mixed()
    before = state(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError) as from_function:
            FUNCTIONS[cls](model, digits, **options)
    assert str(from_function.value) == message
    assert_unchanged(model, before)


# ---------------------------------------------------------------- data


DATA_CALLS = {
    "ptq": lambda m, d: quantize.ptq(m, d),
    "qat": lambda m, d: quantize.qat(m, d),
    "kmeans": lambda m, d: quantize.kmeans(m, fine_tune_epochs=1, data=d),
    "int8 static": lambda m, d: quantize.int8(m, d, mode="static"),
    "int8 dynamic": lambda m, d: quantize.int8(m, d),
    "one_shot": lambda m, d: prune.one_shot(m, d, 0.5),
    "iterative": lambda m, d: prune.iterative(m, d, 0.5),
    "gradual": lambda m, d: prune.gradual(m, d, final_sparsity=0.5, epochs=2),
    "lottery_ticket": lambda m, d: prune.lottery_ticket("mlp", d),
    "sensitivity": lambda m, d: prune.sensitivity(m, d),
    "quantization_explorer": lambda m, d: widgets.quantization_explorer(m, d),
    "pruning_explorer": lambda m, d: widgets.pruning_explorer(m, d),
    "temperature_explorer": lambda m, d: widgets.temperature_explorer(m, d),
    "latency_explorer": lambda m, d: widgets.latency_explorer(m, d),
    "latency_table": lambda m, d: widgets.latency_table({"m": m}, d),
    "gptq": lambda m, d: quantize.gptq(m, d, group_size=16, samples=64),
    "awq": lambda m, d: quantize.awq(m, d, group_size=16, samples=16, grid=2),
    "smoothquant": lambda m, d: quantize.smoothquant(m, d, samples=16),
    "smooth": lambda m, d: quantize.smooth(m, d, samples=16),
    "lowrank": lambda m, d: mcv.factorize.lowrank(m, d, rank=2, epochs=1),
    "lowrank without distillation": lambda m, d: mcv.factorize.lowrank(m, d, rank=2),
    "layerdrop": lambda m, d: mcv.layerdrop.layerdrop(m, d, keep=1, epochs=1),
    # every registered method through compress, which hands data to the methods that take it
    **{f"compress {name}": via_compress(cls) for name, cls in TECHNIQUES.items()},
}


@pytest.mark.parametrize("name", list(DATA_CALLS))
@pytest.mark.parametrize("data", ["digits", (torch.zeros(4, 64), torch.zeros(4))], ids=["str", "tuple"])
def test_data_that_is_not_a_data_bundle_is_refused(name, data):
    model = model_for(name)
    before = state(model)
    with pytest.raises(TypeError) as info:
        DATA_CALLS[name](model, data)
    assert one_line(info).startswith("data must be a DataBundle from mcv.data.load or mcv.data.from_arrays")
    assert_unchanged(model, before)


# ---------------------------------------------------------------- sizes an explorer could be asked for


def wide_model() -> nn.Module:
    """A model whose examples hold 3 * 224 * 224 values: a timed batch of 4096 would be 2.5 GB."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 224 * 224, 2))
    model.input_shape = (3, 224, 224)
    return model


@pytest.fixture(scope="module")
def table():
    import pandas as pd

    return pd.DataFrame(
        [("baseline", 1000, 500, 250, 0.95), ("int8", 250, 500, 248, 0.94)],
        columns=["label", "size_bytes", "nonzero_params", "macs", "accuracy"],
    )


# name -> (call, the argument named first in the message); every call asks for too much
TOO_MUCH = {
    "latency batch size": (
        lambda m, d, t: widgets.latency_explorer(m, batch_sizes=(1, 10**7), batch_size=1),
        "each of batch_sizes",
    ),
    "latency slider stops": (
        lambda m, d, t: widgets.latency_explorer(m, batch_sizes=list(range(1, 101)), batch_size=1),
        "batch_sizes",
    ),
    "latency threads": (lambda m, d, t: widgets.latency_explorer(m, threads=10**6), "threads"),
    "latency repeats": (lambda m, d, t: widgets.latency_explorer(m, repeats=10**9), "repeats"),
    "latency input values": (
        lambda m, d, t: widgets.latency_explorer(wide_model(), batch_sizes=(1, 4096), batch_size=1),
        "batch_size",
    ),
    "table batch size": (lambda m, d, t: widgets.latency_table({"m": m}, batch_size=10**7), "batch_size"),
    "table threads": (lambda m, d, t: widgets.latency_table({"m": m}, threads=10**6), "threads"),
    "table repeats": (lambda m, d, t: widgets.latency_table({"m": m}, repeats=10**9), "repeats"),
    "table input values": (
        lambda m, d, t: widgets.latency_table({"w": wide_model()}, batch_size=4096), "batch_size"
    ),
    "reference input": (lambda m, d, t: widgets.reference_models((1, 10**5, 10**5)), "input_shape"),
    "reference classes": (lambda m, d, t: widgets.reference_models(num_classes=10**6), "num_classes"),
    "layers input": (
        lambda m, d, t: widgets.layers_explorer({"m": m}, input_shape=(3, 4096, 4096)), "input_shape"
    ),
    "layers model input": (
        lambda m, d, t: widgets.layers_explorer({"m": big_input(m)}), "input_shape of 'm'"
    ),
    "quantization bits": (lambda m, d, t: widgets.quantization_explorer(m, d, bits=64), "bits"),
    "pruning sparsity": (lambda m, d, t: widgets.pruning_explorer(m, d, sparsity=0.999), "sparsity"),
    "temperature": (lambda m, d, t: widgets.temperature_explorer(m, d, temperature=1e9), "temperature"),
    "test image": (lambda m, d, t: widgets.temperature_explorer(m, d, index=10**9), "index"),
    "fraction": (lambda m, d, t: widgets.budget_explorer(t, fraction=1e9), "fraction"),
}
WRONG_TYPE = {
    "latency batch sizes": (lambda m, d, t: widgets.latency_explorer(m, batch_sizes="64"), "batch_sizes"),
    "latency threads": (lambda m, d, t: widgets.latency_explorer(m, threads=2.0), "threads"),
    "table repeats": (lambda m, d, t: widgets.latency_table({"m": m}, repeats="10"), "repeats"),
    "table models": (lambda m, d, t: widgets.latency_table([m]), "model_set"),
    "reference input": (lambda m, d, t: widgets.reference_models("1,28,28"), "input_shape"),
    "reference classes": (lambda m, d, t: widgets.reference_models(num_classes=10.0), "num_classes"),
    "quantization bits": (lambda m, d, t: widgets.quantization_explorer(m, d, bits="4"), "bits"),
    "quantization layer": (lambda m, d, t: widgets.quantization_explorer(m, d, layer=0), "layer"),
    "pruning sparsity": (lambda m, d, t: widgets.pruning_explorer(m, d, sparsity=1), "sparsity"),
    "pruning seed": (lambda m, d, t: widgets.pruning_explorer(m, d, seed=0.5), "seed"),
    "temperature": (lambda m, d, t: widgets.temperature_explorer(m, d, temperature="4"), "temperature"),
    "test image": (lambda m, d, t: widgets.temperature_explorer(m, d, index=1.0), "index"),
    "fraction": (lambda m, d, t: widgets.budget_explorer(t, fraction="0.1"), "fraction"),
    "table": (lambda m, d, t: widgets.budget_explorer(t.to_dict()), "table"),
}


def big_input(model: nn.Module) -> nn.Module:
    model.input_shape = (3, 2048, 2048)
    return model


@pytest.fixture
def no_work(monkeypatch):
    """Returns a model, then makes every measurement, model build and figure fail: a check must
    refuse before them."""
    model = mlp()

    def boom(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(mcv.measure, "model", boom)
    monkeypatch.setattr(mcv.measure, "layers", boom)
    monkeypatch.setattr(mcv.models, "build", boom)
    monkeypatch.setattr(go, "FigureWidget", boom)
    return model


@pytest.mark.parametrize(
    ("case", "error"),
    [(name, ValueError) for name in TOO_MUCH] + [(name, TypeError) for name in WRONG_TYPE],
)
def test_explorers_refuse_sizes_and_types_before_building_anything(case, error, no_work, digits, table):
    call, argument = (TOO_MUCH if error is ValueError else WRONG_TYPE)[case]
    with pytest.raises(error) as info:
        call(no_work, digits, table)
    assert one_line(info).startswith(f"{argument} must ")


def test_every_slider_range_comes_from_the_shared_bounds(digits, digits_mlp):
    bits = widgets.quantization_explorer(digits_mlp, digits).controls["bits"]
    assert (bits.min, bits.max) == (_checks.BOUNDS["bits"].low, _checks.BOUNDS["bits"].high)
    sparsity = widgets.pruning_explorer(digits_mlp, digits).controls["sparsity"]
    assert sparsity.min == _checks.BOUNDS["sparsity"].low and sparsity.max < _checks.BOUNDS["sparsity"].high
    temperature = widgets.temperature_explorer(digits_mlp, digits).controls["temperature"]
    assert 10**temperature.max == pytest.approx(_checks.BOUNDS["temperature"].high)
    threads = widgets.latency_explorer(digits_mlp, digits, batch_sizes=(1,), batch_size=1, repeats=3)
    assert max(threads.controls["threads"].options) <= _checks.BOUNDS["threads"].high
