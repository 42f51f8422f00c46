"""Unit tests of the compression registry (mcviz.registry) and the fp16 method (mcviz.quantize).

The CONFIGS tests (input unchanged, frozen, global RNG untouched, config fields == keyword
function options) run over every registered method, so configs that later issues register join
them automatically. Add each new config's keyword function to KEYWORD_FUNCTIONS, and to
EXAMPLE_OPTIONS the options of a config that has required fields.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import random
import re
from typing import ClassVar

import numpy as np
import pytest
import torch
from helpers import one_line
from torch import nn

import mcviz as mcv
from mcviz import quantize, registry

# config class -> the keyword function it must mirror (None: it has none, say why in a comment)
KEYWORD_FUNCTIONS = {
    quantize.FP16Config: quantize.fp16,
    quantize.Int8Config: quantize.int8,
    quantize.WeightsConfig: quantize.weights,
    quantize.PTQConfig: quantize.ptq,
    quantize.KMeansConfig: quantize.kmeans,
    quantize.QATConfig: quantize.qat,
    mcv.prune.MagnitudeConfig: mcv.prune.magnitude,
    mcv.prune.RandomConfig: mcv.prune.random,
    mcv.prune.ChannelsConfig: mcv.prune.channels,
    mcv.distill.KDConfig: mcv.distill.distill,
    mcv.train.FineTuneConfig: mcv.train.fine_tune,
    mcv.encode.HuffmanConfig: mcv.encode.huffman_coded,
    mcv.export.OrtInt8Config: mcv.export.ort_int8,
    mcv.export.OnnxConfig: None,  # no options: it runs to_onnx (bytes) in an OnnxModel
    # per kind (conv_bits, fc_bits) where the function takes per-layer bits; the function returns tables too
    mcv.deep_compression.DeepCompressionConfig: None,
    mcv.prune.SemiStructuredConfig: mcv.prune.semistructured,
    quantize.GroupwiseConfig: quantize.groupwise,
    quantize.AWQConfig: None,  # the function's max_rows (a memory cap on calibration rows) is no option
    quantize.GPTQConfig: quantize.gptq,
    quantize.EmbeddingsConfig: quantize.embeddings,
    quantize.SmoothQuantConfig: quantize.smoothquant,
    # 0 in these configs stands for the function's None ("not given"), which a spec string cannot write
    mcv.factorize.LowRankConfig: None,
    mcv.layerdrop.LayerDropConfig: None,
}
# config class -> options for the contract tests, for configs with required fields (or whose
# defaults do not fit the digits MLP of these tests)
EXAMPLE_OPTIONS: dict[type, dict] = {
    quantize.GPTQConfig: {"samples": 128},  # fc1 has 64 inputs: its Hessian needs >= 64 rows
    mcv.factorize.LowRankConfig: {"rank": 4},
}
# methods for the parts of a language model a classifier has not (embedding tables, a stack of
# blocks): on the digits MLP they must refuse with one line and leave it unchanged
NEEDS_LM = {"embeddings", "layerdrop"}
CONFIGS = pytest.mark.parametrize("cls", list(registry.METHODS.values()), ids=list(registry.METHODS))


def example(cls):
    """Returns an instance of a registered config class (defaults, or EXAMPLE_OPTIONS)."""
    return cls(**EXAMPLE_OPTIONS.get(cls, {}))


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture
def model(digits_mlp):
    return copy.deepcopy(digits_mlp)


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """A test-only method with options of every plain type."""

    method: ClassVar[str] = "toy"
    needs_data: ClassVar[bool] = False
    n: int = 1
    x: float = 0.5
    flag: bool = False
    name: str = "a"

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 0:
            raise ValueError(f"n must be an int >= 0, got {self.n!r}")

    def apply(self, model, data=None):
        return copy.deepcopy(model)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """A test-only method that needs data."""

    method: ClassVar[str] = "needsdata"
    needs_data: ClassVar[bool] = True

    def apply(self, model, data=None):
        return copy.deepcopy(model)


@pytest.fixture
def methods(monkeypatch):
    """A private copy of the registry holding the test-only configs too."""
    private = dict(registry.METHODS)
    monkeypatch.setattr(registry, "METHODS", private)
    registry.register(ToyConfig)
    registry.register(DataConfig)
    return private


# ---------------------------------------------------------------- compress: the contract


@CONFIGS
def test_compress_leaves_input_unchanged(cls, model, digits):
    if cls.method in NEEDS_LM:
        return refuses_a_classifier(cls, model, digits)
    before = state(model)
    out = mcv.compress(model, example(cls), data=digits)
    after = model.state_dict()
    assert out is not model
    assert before.keys() == after.keys()
    for key in before:
        assert before[key].dtype == after[key].dtype, key
        assert torch.equal(before[key], after[key]), key


@CONFIGS
def test_compressed_model_still_classifies(cls, model, digits):
    if cls.method in NEEDS_LM:
        return refuses_a_classifier(cls, model, digits)
    out = mcv.compress(model, example(cls), data=digits)
    assert out(digits.test.tensors[0][:5]).shape == (5, 10)


def refuses_a_classifier(cls, model, digits) -> None:
    before = state(model)
    with pytest.raises(ValueError) as e:
        mcv.compress(model, example(cls), data=digits)
    assert "\n" not in str(e.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError) as declared:  # what engines ask before any work: the same line
        registry.check_applies([(example(cls),)], model)
    assert str(declared.value) == str(e.value)


def test_the_methods_that_refuse_a_classifier_are_the_ones_that_declare_it(model):
    declared = set()
    for name, cls in registry.METHODS.items():
        try:
            registry.check_applies([(example(cls),)], model)
        except ValueError:
            declared.add(name)
    assert declared == NEEDS_LM


def test_engines_refuse_a_method_that_cannot_apply_before_any_work(model, digits, monkeypatch):
    applied = []
    monkeypatch.setattr(mcv.engine, "_apply", lambda *a: applied.append(a))
    for specs in (["fp16", "embeddings"], ["", "weights:bits=4 + layerdrop:keep=1"]):
        with pytest.raises(ValueError, match="needs a model with nn.Embedding|has no stack of blocks") as e:
            mcv.engine.run(model, digits, specs)
        one_line(e)
    with pytest.raises(ValueError, match="has no stack of blocks"):  # a baseline built on demand too
        mcv.engine.run(lambda: model, digits, ["layerdrop:keep=1"])
    assert applied == []


@CONFIGS
def test_configs_are_frozen(cls):
    with pytest.raises(dataclasses.FrozenInstanceError):
        example(cls).method = "changed"


@CONFIGS
def test_config_fields_match_keyword_function(cls):
    assert cls in KEYWORD_FUNCTIONS, f"add {cls.__name__} to KEYWORD_FUNCTIONS"
    function = KEYWORD_FUNCTIONS[cls]
    if function is None:
        return
    assert config_options(cls) == function_options(function)


REQUIRED = "<required>"


def config_options(cls) -> dict:
    """Returns {field name: default} of a config class (REQUIRED when it has no default)."""
    return {
        f.name: REQUIRED if f.default is dataclasses.MISSING else f.default for f in dataclasses.fields(cls)
    }


def function_options(function) -> dict:
    """Returns {name: default} of a function's keyword-only and optional parameters; ``data`` is
    not an option (``compress`` passes it to every config), so it is left out."""
    params = inspect.signature(function).parameters.values()
    return {
        p.name: REQUIRED if p.default is p.empty else p.default
        for p in params
        if p.name != "data"
        and (p.kind is p.KEYWORD_ONLY or (p.default is not p.empty and p.kind is not p.VAR_KEYWORD))
    }


def test_signature_helpers_see_a_drift():
    @dataclasses.dataclass(frozen=True)
    class Config:
        sparsity: float = 0.5
        scope: str = "layer"

    def transform(model, sparsity=0.5, *, scope="global"):
        return model

    assert config_options(Config) != function_options(transform)
    assert function_options(transform) == {"sparsity": 0.5, "scope": "global"}


def test_signature_helpers_agree_on_required_options():
    @dataclasses.dataclass(frozen=True)
    class Config:
        bits: int

    def transform(model, *, bits):
        return model

    assert config_options(Config) == function_options(transform) == {"bits": REQUIRED}


@CONFIGS
def test_compress_leaves_global_rng_alone(cls, model, digits):
    if cls.method in NEEDS_LM:
        return refuses_a_classifier(cls, model, digits)
    before = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    mcv.compress(model, example(cls), data=digits)
    assert torch.equal(before[0], torch.get_rng_state())
    assert np.array_equal(before[1], np.random.get_state()[1])
    assert before[2] == random.getstate()


@CONFIGS
def test_registered_under_its_method_name(cls):
    assert registry.METHODS[cls.method] is cls


def test_compress_without_configs_copies(model):
    before = state(model)
    out = mcv.compress(model)
    assert out is not model
    assert all(torch.equal(before[k], v) for k, v in out.state_dict().items())


def test_compress_without_configs_shares_no_tensors(model):
    out = mcv.compress(model)
    with torch.no_grad():
        out.fc1.weight.zero_()
    assert model.fc1.weight.abs().sum() > 0


def test_compress_fp16_leaves_input_fp32(model):
    mcv.compress(model, quantize.FP16Config())
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_compress_applies_configs_in_order(methods, model):
    seen = []

    @dataclasses.dataclass(frozen=True)
    class Tag:
        method: ClassVar[str] = "tag"
        needs_data: ClassVar[bool] = False
        name: str = ""

        def apply(self, model, data=None):
            seen.append(self.name)
            return copy.deepcopy(model)

    registry.register(Tag)
    mcv.compress(model, Tag("a"), Tag("b"), Tag("c"))
    assert seen == ["a", "b", "c"]


def test_compress_fp16_twice(model):
    out = mcv.compress(model, *registry.parse("fp16 + fp16"))
    assert {p.dtype for p in out.parameters()} == {torch.float16}


def test_compress_rejects_unregistered_config(model):  # a wrong type: TypeError
    with pytest.raises(TypeError, match="'fp16' is not a registered compression config") as e:
        mcv.compress(model, "fp16")
    assert "fp16" in one_line(e)


def test_compress_rejects_non_module():  # a wrong type: TypeError
    with pytest.raises(TypeError, match="got dict") as e:
        mcv.compress({}, quantize.FP16Config())
    one_line(e)


def test_compress_needs_data_when_config_does(methods, model):
    with pytest.raises(ValueError, match="'needsdata' needs data=") as e:
        mcv.compress(model, DataConfig())
    one_line(e)


# ---------------------------------------------------------------- fp16


def test_fp16_takes_and_returns_float32(model, digits):
    out = quantize.fp16(model)(digits.test.tensors[0][:4])
    assert out.dtype == torch.float32


def test_fp16_stores_half_parameters(model):
    assert {p.dtype for p in quantize.fp16(model).parameters()} == {torch.float16}


def test_fp16_accuracy_close_to_fp32(model, digits):
    fp32 = mcv.train.evaluate(model, digits)
    fp16 = mcv.train.evaluate(mcv.compress(model, quantize.FP16Config()), digits)
    assert abs(fp16 - fp32) <= 0.01


def test_fp16_weights_are_rounded_fp32_weights(model):
    half = quantize.fp16(model)
    assert torch.equal(half.fc1.weight, model.fc1.weight.half())


def test_fp16_of_conv_model(digits):
    model = mcv.models.build("seed_cnn", input_shape=digits.input_shape, seed=0)
    x = digits.test.tensors[0][:4]
    assert torch.allclose(quantize.fp16(model)(x), model(x), atol=1e-2)


def test_fp16_rejects_non_module():
    with pytest.raises(TypeError, match="got str") as e:
        quantize.fp16("model")
    one_line(e)


# ---------------------------------------------------------------- parse


def test_parse_fp16():
    assert registry.parse("fp16") == (quantize.FP16Config(),)


def test_parse_chain():
    assert registry.parse("fp16 + fp16") == (quantize.FP16Config(), quantize.FP16Config())


def test_parse_ignores_spaces():
    assert registry.parse("  fp16+fp16 ") == (quantize.FP16Config(), quantize.FP16Config())


def test_parse_options(methods):
    assert registry.parse("toy:n=3,x=0.25,flag=true,name=bob") == (
        ToyConfig(n=3, x=0.25, flag=True, name="bob"),
    )


def test_parse_option_types(methods):
    (config,) = registry.parse("toy:n=3,x=2,flag=false")
    assert [type(v) for v in (config.n, config.x, config.flag)] == [int, int, bool]


@pytest.mark.parametrize("text", ["1e-3", "1.5e-3", "1E+2", "-2e5"])
def test_parse_exponent_is_a_float(methods, text):
    (config,) = registry.parse(f"toy:x={text}")
    assert config.x == float(text)


def test_parse_quoted_exponent_stays_a_string(methods):
    assert registry.parse("toy:name='1e-3'")[0].name == "1e-3"


def test_parse_options_then_chain(methods):
    assert registry.parse("toy:n=2 + fp16") == (ToyConfig(n=2), quantize.FP16Config())


def test_parse_unknown_method():
    with pytest.raises(ValueError, match="unknown method 'int3' in 'fp16 \\+ int3'") as e:
        registry.parse("fp16 + int3")
    assert "fp16" in one_line(e)


def test_parse_unknown_option():
    with pytest.raises(ValueError, match="method 'fp16' has no option 'bits'") as e:
        registry.parse("fp16:bits=8")
    one_line(e)


def test_parse_unknown_option_lists_the_allowed(methods):
    with pytest.raises(ValueError, match="its options: n, x, flag, name") as e:
        registry.parse("toy:m=1")
    one_line(e)


def test_parse_option_without_value(methods):
    with pytest.raises(ValueError, match="'n'") as e:
        registry.parse("toy:n")
    one_line(e)


@pytest.mark.parametrize("value", ["", "[1", "{a: 1}", "a: 1"])
def test_parse_rejects_non_plain_values(methods, value):
    with pytest.raises(ValueError, match=re.escape(repr(value))) as e:
        registry.parse(f"toy:name={value}")
    one_line(e)


def test_parse_bad_value_is_rejected_by_the_config(methods):
    with pytest.raises(ValueError, match="n must be an int >= 0, got -1") as e:
        registry.parse("toy:n=-1")
    one_line(e)


@pytest.mark.parametrize(
    ("spec", "error"), [("", ValueError), ("   ", ValueError), (None, TypeError), (3, TypeError)]
)
def test_parse_rejects_empty_spec(spec, error):
    with pytest.raises(error, match=re.escape(repr(spec))) as e:
        registry.parse(spec)
    one_line(e)


def test_parse_rejects_empty_part():
    with pytest.raises(ValueError, match="has an empty method after the last '\\+'") as e:
        registry.parse("fp16 + ")
    one_line(e)


def test_label_round_trips_through_parse(methods):
    configs = (ToyConfig(n=2, flag=True), quantize.FP16Config())
    assert registry.parse(registry.label(configs)) == configs


def test_label_of_defaults():
    assert registry.label([quantize.FP16Config()]) == "fp16"


# ---------------------------------------------------------------- describe, register


def test_describe_lists_fp16():
    assert any(line.startswith("fp16") for line in registry.describe())


def test_describe_one_line_per_method():
    lines = registry.describe()
    assert len(lines) == len(registry.METHODS)
    assert all("\n" not in line for line in lines)


def test_describe_lists_options(methods):
    (line,) = [line for line in registry.describe() if line.startswith("toy")]
    assert "n=1, x=0.5, flag=False, name='a'" in line


def test_describe_lists_required_options(methods):
    @dataclasses.dataclass(frozen=True)
    class Required:
        """Test-only."""

        method: ClassVar[str] = "required"
        needs_data: ClassVar[bool] = False
        sparsity: float

        def apply(self, model, data=None):
            return copy.deepcopy(model)

    registry.register(Required)
    (line,) = [line for line in registry.describe() if line.startswith("required")]
    assert "(options: sparsity)" in line


def test_register_returns_the_class(methods):
    assert registry.METHODS["toy"] is ToyConfig


def test_register_same_class_twice_is_harmless(methods):
    assert registry.register(ToyConfig) is ToyConfig


def test_register_rejects_non_frozen(methods):
    @dataclasses.dataclass
    class Loose:
        method: ClassVar[str] = "loose"

    with pytest.raises(TypeError, match="Loose must be a frozen dataclass") as e:
        registry.register(Loose)
    one_line(e)
    assert "loose" not in registry.METHODS


def test_register_rejects_plain_class(methods):
    class Plain:
        method = "plain"

    with pytest.raises(TypeError, match="Plain must be a frozen dataclass") as e:
        registry.register(Plain)
    one_line(e)


def test_register_rejects_duplicate_name(methods):
    @dataclasses.dataclass(frozen=True)
    class OtherFP16:
        method: ClassVar[str] = "fp16"

    with pytest.raises(ValueError, match="'fp16' is already registered by FP16Config") as e:
        registry.register(OtherFP16)
    one_line(e)
    assert registry.METHODS["fp16"] is quantize.FP16Config


@pytest.mark.parametrize(
    ("name", "error"), [(None, TypeError), ("int-8", ValueError), ("", ValueError), (8, TypeError)]
)
def test_register_rejects_bad_method_name(methods, name, error):
    @dataclasses.dataclass(frozen=True)
    class Bad:
        method: ClassVar = name

    with pytest.raises(error, match=re.escape(f"got {name!r}")) as e:
        registry.register(Bad)
    one_line(e)


# ---------------------------------------------------------------- the spec grammar, hardened (issue #11)

MALFORMED_SPECS = [
    ("fp16 +", "method spec 'fp16 +' has an empty method after the last '+'; join methods as 'a + b'"),
    ("+ fp16", "has an empty method before the first '+'"),
    ("fp16 ++ toy", "has an empty method between two '+'"),
    ("toy:n=4,,", "method 'toy' has an empty option (a stray ',') in 'toy:n=4,,'"),
    ("toy:,n=4", "has an empty option (a stray ',')"),
    ("toy:n=4,", "has an empty option (a stray ',')"),
    ("toy:=4", "an option of 'toy' has no name before '=' in 'toy:=4'; its options: n, x, flag, name"),
    ("toy:n", "option 'n' of 'toy' needs a plain value: n=VALUE, got ''"),
    ("toy:n=", "option 'n' of 'toy' needs a plain value: n=VALUE, got ''"),
    ("toy:n=4,n=8", "option 'n' of 'toy' is given twice in 'toy:n=4,n=8'; give it once"),
    ("toy:", "method 'toy' has ':' but no option in 'toy:'; write 'toy' or toy:KEY=VALUE"),
    (":n=4", "a method name is missing before ':' in ':n=4'"),
    ("TOY", "unknown method 'TOY' in 'TOY' (did you mean 'toy'?); registered methods:"),
    ("toy:N=4", "method 'toy' has no option 'N' in 'toy:N=4' (did you mean 'n'?); its options"),
    ("toy:n=010", "option 'n' of 'toy' must be a decimal number without a leading zero, got '010'"),
    ("toy:n=0x10", "option 'n' of 'toy' must be a decimal number, got '0x10'; write 16"),
    ("toy:n=[4]", "option 'n' of 'toy' needs a plain value, got '[4]'"),
    (
        "toy:name=&a x",
        "needs a plain value, got '&a x' (it uses an anchor (&a); anchors and aliases are not allowed)",
    ),
    ("toy:name=!!str x", "tags are not allowed"),
    ('toy:name="x', "it is not valid YAML"),
    ("fp16 + " * 200 + "fp16", "a method spec must be at most 1,000 characters, got 1,404"),
]


@pytest.mark.parametrize(("spec", "message"), MALFORMED_SPECS, ids=[s[:24] for s, _ in MALFORMED_SPECS])
def test_parse_refuses_malformed_specs_with_one_clear_line(methods, spec, message):
    with pytest.raises(ValueError) as e:
        registry.parse(spec)
    text = one_line(e)
    assert message in text and len(text) < 400


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("  toy : n = 4 , x = 1e-3  ", (ToyConfig(n=4, x=0.001),)),  # whitespace around every part
        ("toy:n=4\t+\nfp16", (ToyConfig(n=4), quantize.FP16Config())),  # tabs and newlines are spaces
        ("toy:flag=TRUE,name=yes", (ToyConfig(flag=True, name="yes"),)),  # yes is not a bool (YAML 1.2)
        ("toy:name='1:30'", (ToyConfig(name="1:30"),)),
        ("toy:name=1:30", (ToyConfig(name="1:30"),)),  # not base 60
        ("toy:n=1_000", (ToyConfig(n=1000),)),
        ("toy:x=1e+2 + fp16", (ToyConfig(x=100.0), quantize.FP16Config())),  # "+" in an exponent
    ],
)
def test_parse_normalizes_what_is_unambiguous(methods, spec, expected):
    assert registry.parse(spec) == expected


def test_parse_refuses_a_yes_for_a_bool_option_through_the_config(methods):
    (config,) = registry.parse("toy:flag=yes")  # the test config does not check its types
    assert config.flag == "yes"
    # a real config refuses it (a TypeError once the configs use _checks.check_bool)
    with pytest.raises((TypeError, ValueError), match="symmetric must be True or False, got 'yes'"):
        registry.parse("weights:symmetric=yes")
