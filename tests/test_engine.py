"""Unit tests of mcviz.engine: specs applied to a baseline and measured, shared prefixes, the row cache."""

from __future__ import annotations

import copy
import dataclasses
import warnings

import pandas as pd
import pytest
import torch
from helpers import one_line

import mcviz as mcv
from mcviz import engine, registry

NAMES = {"model": "digits_mlp", "epochs": 5, "seed": 0}  # what names the shared fixture model


@pytest.fixture
def counted(monkeypatch):
    """The configs of every mcv.registry.compress call (the engine calls it through the module)."""
    calls = []
    real = registry.compress

    def compress(model, *configs, **kwargs):
        calls.append(configs)
        return real(model, *configs, **kwargs)

    monkeypatch.setattr(registry, "compress", compress)
    return calls


def fail(*args, **kwargs):
    pytest.fail("the baseline was loaded")


def measured(model, data, label) -> dict:
    return dataclasses.asdict(mcv.measure.model(model, data, label=label))


def row(table: pd.DataFrame, label: str) -> dict:
    r = table[table["label"] == label].iloc[0]
    return {f: r[f] for f in mcv.measure.FIELDS}


# ---------------------------------------------------------------- rows and models


def test_run_measures_every_spec_and_returns_the_models(digits, digits_mlp):
    before = copy.deepcopy(digits_mlp.state_dict())
    table, models = engine.run(digits_mlp, digits, ["", "fp16", "weights:bits=4"])
    assert table.columns.tolist() == [*mcv.measure.FIELDS, "spec"]
    assert table["label"].tolist() == ["baseline", "fp16", "weights:bits=4"]
    assert table["spec"].tolist() == ["", "fp16", "weights:bits=4"]
    assert list(models) == table["label"].tolist() and models["baseline"] is digits_mlp
    assert row(table, "baseline") == measured(digits_mlp, digits, "baseline")
    fresh = mcv.compress(digits_mlp, *registry.parse("weights:bits=4"), data=digits)
    assert row(table, "weights:bits=4") == measured(fresh, digits, "weights:bits=4")
    assert row(table, "fp16") == measured(models["fp16"], digits, "fp16")
    assert models["fp16"] is not digits_mlp and table["latency_ms"].isna().all()
    after = digits_mlp.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the baseline is unchanged


def test_config_tuples_are_specs_too(digits, digits_mlp):
    configs = (mcv.prune.MagnitudeConfig(0.5, scope="global"), mcv.quantize.FP16Config())
    table, models = engine.run(digits_mlp, digits, [(), configs], labels=["dense", "small"])
    assert table["label"].tolist() == ["dense", "small"] and list(models) == ["dense", "small"]
    assert table["spec"].tolist() == ["", registry.label(configs)]
    assert registry.parse(table["spec"].iloc[1]) == configs  # the spec column parses back
    text, _ = engine.run(digits_mlp, digits, ["magnitude:sparsity=0.5,scope=global + fp16"], labels=["small"])
    assert row(text, "small") == row(table, "small")


def test_a_spec_given_twice_is_measured_once(digits, digits_mlp, counted):
    table, models = engine.run(digits_mlp, digits, ["fp16", "", "fp16"])
    assert table["label"].tolist() == ["fp16", "baseline"] and len(counted) == 1
    with pytest.raises(ValueError) as e:
        engine.run(digits_mlp, digits, ["fp16", "int8"], labels=["x", "x"])
    assert one_line(e) == "label 'x' names two different specs: 'fp16' and 'int8'"


def test_shared_prefixes_are_computed_once_and_give_the_fresh_chains_rows(digits, digits_mlp, counted):
    prune = "magnitude:sparsity=0.8,scope=global + finetune:epochs=1"
    specs = [f"{prune} + kmeans:bits=4", prune, f"{prune} + kmeans:bits=2", "magnitude:sparsity=0.8"]
    table, models = engine.run(digits_mlp, digits, specs)
    # magnitude, finetune, two kmeans, and the last spec's magnitude (scope "layer": another config):
    # 5 steps, not the 3 + 2 + 3 + 1 of fresh chains
    assert [type(c[0]).__name__ for c in counted] == [
        "MagnitudeConfig", "FineTuneConfig", "KMeansConfig", "KMeansConfig", "MagnitudeConfig"
    ]  # fmt: skip
    for spec in specs:
        fresh = mcv.compress(digits_mlp, *registry.parse(spec), data=digits)
        assert row(table, spec) == measured(fresh, digits, spec)
        for a, b in zip(fresh.state_dict().values(), models[spec].state_dict().values(), strict=True):
            assert torch.equal(a, b)  # bit-identical weights


# ---------------------------------------------------------------- the row cache


def test_cached_rows_need_no_baseline(digits, digits_mlp, cache_dir, counted):
    first = engine.run(lambda: digits_mlp, digits, ["", "fp16", "weights:bits=4"], cache=NAMES)
    assert len(counted) == 2 and list(first.models) == ["baseline", "fp16", "weights:bits=4"]
    second = engine.run(fail, digits, ["", "fp16", "weights:bits=4"], cache=NAMES)
    assert len(counted) == 2 and second.models == {}  # nothing loaded, compressed or measured
    pd.testing.assert_frame_equal(first.table, second.table)
    assert len(list(cache_dir.glob("row-*.json"))) == 3


def test_a_cached_row_is_reused_only_when_everything_that_decides_it_matches(digits, digits_mlp, cache_dir,
                                                                              counted):  # fmt: skip
    engine.run(digits_mlp, digits, ["fp16"], cache=NAMES)
    # the same configs spelled otherwise, under another label: the cached row, relabelled
    table, models = engine.run(fail, digits, [(mcv.quantize.FP16Config(),)], labels=["half"], cache=NAMES)
    assert len(counted) == 1 and models == {} and table["label"].tolist() == ["half"]
    engine.run(lambda: digits_mlp, digits, ["fp16"], cache={**NAMES, "seed": 1})  # another baseline
    engine.run(lambda: digits_mlp, digits, ["weights:bits=4"], cache=NAMES)  # another spec
    engine.run(lambda: digits_mlp, mcv.data.load("digits", split_seed=1), ["fp16"], cache=NAMES)  # other data
    assert len(counted) == 4
    key = lambda spec: engine.cache_key(NAMES, digits, spec)  # noqa: E731
    assert key("weights:bits=4") == key("weights:bits=4,symmetric=true,granularity=per_channel")  # defaults
    assert engine.cache_path(key("weights:bits=4")).exists()
    assert key("weights:bits=4") != key("weights:bits=4,symmetric=false")
    assert not engine.cache_path(key("weights:bits=4,symmetric=false")).exists()


def test_an_unreadable_row_is_recomputed_with_a_warning(digits, digits_mlp, cache_dir, counted):
    first = engine.run(digits_mlp, digits, ["fp16"], cache=NAMES).table
    engine.cache_path(engine.cache_key(NAMES, digits, "fp16")).write_text("{not json")
    with pytest.warns(UserWarning, match="is unreadable .*; recomputing"):
        second = engine.run(digits_mlp, digits, ["fp16"], cache=NAMES).table
    assert len(counted) == 2
    pd.testing.assert_frame_equal(first, second)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine.run(fail, digits, ["fp16"], cache=NAMES)  # rewritten: no warning now


def test_latency_bypasses_the_cache(digits, digits_mlp, cache_dir, counted):
    engine.run(digits_mlp, digits, ["fp16"], cache=NAMES)
    table, models = engine.run(digits_mlp, digits, ["fp16"], cache=NAMES, latency=True)
    assert len(counted) == 2 and list(models) == ["fp16"]  # computed again, though cached
    assert table["latency_ms"].notna().all() and table["threads"].notna().all()
    engine.run(fail, digits, ["fp16"], cache=NAMES)  # the cached row is still the untimed one
    assert not any(cache_dir.glob(".tmp*")) and len(list(cache_dir.glob("row-*.json"))) == 1


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("baseline", "specs", "kwargs", "error", "message"),
    [
        ("model", [""], {}, TypeError, "baseline must be a torch.nn.Module or a function returning one"),
        (fail, "fp16", {}, TypeError, "specs must be a list of method specs such as ['', 'fp16'], got"),
        (fail, ["fp16", "bogus"], {}, ValueError, "unknown method 'bogus'"),
        (fail, [3], {}, TypeError, "a spec must be a method spec string or a tuple of registered configs"),
        (fail, [("fp16",)], {}, TypeError, "'fp16' is not a registered compression config"),
        (fail, ["fp16"], {"labels": ["a", "b"]}, ValueError, "labels must be None or a list of 1 str"),
        (fail, ["fp16"], {"labels": [1]}, TypeError, "labels must hold str, got 1"),
        (fail, ["fp16"], {"cache": "mlp"}, TypeError, "cache must be None or a dict naming the baseline"),
        (fail, ["fp16"], {"cache": {"spec": "x"}}, ValueError, "cache must not set 'spec'"),
        (fail, ["fp16"], {"cache": {"model": object()}}, TypeError, "cache must hold plain JSON values"),
        (fail, ["fp16"], {"cache": {"lr": float("nan")}}, TypeError, "cache must hold plain JSON values"),
        (fail, ["fp16"], {"latency": "yes"}, TypeError, "latency must be True or False, got 'yes'"),
    ],
)  # fmt: skip
def test_bad_input_fails_before_anything_runs(digits, baseline, specs, kwargs, error, message):
    with pytest.raises(error) as e:
        engine.run(baseline, digits, specs, **kwargs)
    assert message in one_line(e)


def test_bad_data_and_a_baseline_function_returning_no_model(digits):
    with pytest.raises(TypeError, match="DataBundle"):
        engine.run(fail, "digits", ["fp16"])
    with pytest.raises(TypeError) as e:
        engine.run(lambda: "model", digits, ["fp16"])
    assert one_line(e) == "the baseline function must return a torch.nn.Module, got str"


def test_the_engine_sits_below_the_views_and_reports():
    import ast
    from pathlib import Path

    package = Path(mcv.__file__).parent
    for module in ("engine", "sweeps", "tradeoff"):
        tree = ast.parse((package / f"{module}.py").read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "mcviz"
                 for a in n.names}  # fmt: skip
        assert not names & {"plots", "widgets", "reports", "cli", "_params", "_html"}, module


def test_cache_key_needs_a_dict(digits):
    with pytest.raises(TypeError) as e:
        engine.cache_key(None, digits, "fp16")
    assert one_line(e) == "cache must be a dict naming the baseline, got None"
