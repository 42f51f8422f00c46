"""Unit tests of mcviz.tradeoff: Pareto fronts, budgets, decide, the Lagrangian sweep, grid and search."""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import one_line
from torch import nn

import mcviz as mcv
from mcviz import _search, engine, registry, tradeoff


def frame(rows, columns=("label", "size_bytes", "accuracy")) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


@pytest.fixture
def table() -> pd.DataFrame:
    return frame(
        [
            ("baseline", 10_240, 0.95),
            ("fp16", 5_120, 0.95),
            ("int8", 2_560, 0.94),
            ("int4", 1_280, 0.90),
            ("bad", 4_000, 0.80),  # dominated by int8
            ("sparse", 2_560, 0.93),  # dominated by int8 (same cost)
        ]
    )


def row_dict(table: pd.DataFrame, label: str) -> dict:
    """The Measurement fields of the row named ``label``."""
    row = table[table["label"] == label].iloc[0]
    return {f: row[f] for f in mcv.measure.FIELDS}


def dominated(c, m, i) -> bool:
    """The definition: another row has cost <= and metric >= with at least one strict."""
    return any(
        c[j] <= c[i] and m[j] >= m[i] and (c[j] < c[i] or m[j] > m[i]) for j in range(len(c)) if j != i
    )


# ---------------------------------------------------------------- pareto


def test_pareto_keeps_the_non_dominated_rows_sorted_by_cost(table):
    front = tradeoff.pareto(table)
    assert front["label"].tolist() == ["int4", "int8", "fp16"]
    assert front.index.tolist() == [3, 2, 1]  # the original index is kept


def test_pareto_equal_metric_keeps_the_cheaper(table):
    assert "baseline" not in tradeoff.pareto(table)["label"].tolist()  # fp16: same accuracy, half the bytes


def test_pareto_equal_cost_keeps_the_better(table):
    assert "sparse" not in tradeoff.pareto(table)["label"].tolist()


def test_pareto_exact_duplicates_keep_the_first():
    df = frame([("a", 10, 0.5), ("b", 10, 0.5), ("c", 20, 0.9)])
    assert tradeoff.pareto(df)["label"].tolist() == ["a", "c"]


def test_pareto_drops_missing_values():
    df = frame([("a", None, 0.99), ("b", 10, float("nan")), ("c", 20, 0.5), ("d", 30, None)])
    assert tradeoff.pareto(df)["label"].tolist() == ["c"]


def test_pareto_single_row():
    df = frame([("only", 10, 0.5)], columns=("label", "size_bytes", "accuracy"))
    pd.testing.assert_frame_equal(tradeoff.pareto(df), df)


def test_pareto_all_dominated_but_one():
    df = frame([("best", 1, 0.99), ("x", 2, 0.5), ("y", 3, 0.98), ("z", 1, 0.1)])
    assert tradeoff.pareto(df)["label"].tolist() == ["best"]


@pytest.mark.parametrize("seed", range(5))
def test_pareto_matches_the_definition_on_random_tables(seed):
    rng = np.random.default_rng(seed)
    c, m = rng.integers(0, 6, 40), rng.integers(0, 6, 40) / 5  # small ranges: many ties
    df = pd.DataFrame({"label": [f"r{i}" for i in range(40)], "size_bytes": c, "accuracy": m})
    expected = [i for i in range(40) if not dominated(c, m, i)]
    first = [i for i in expected if not any((c[j], m[j]) == (c[i], m[i]) for j in expected if j < i)]
    front = tradeoff.pareto(df)
    assert sorted(front.index) == first
    assert front["size_bytes"].is_monotonic_increasing and front["accuracy"].is_monotonic_increasing


def test_pareto_other_columns_and_input_unchanged(table):
    df = table.assign(macs=[100, 100, 100, 100, 50, 100])
    before = df.copy()
    assert tradeoff.pareto(df, cost="macs")["label"].tolist() == ["bad", "baseline"]
    pd.testing.assert_frame_equal(df, before)


def test_pareto_of_a_measure_table(digits_mlp, digits):
    t = mcv.measure.table(
        [
            mcv.measure.model(digits_mlp, digits, label="fp32"),
            mcv.measure.model(mcv.quantize.fp16(digits_mlp), digits, label="fp16"),
        ]
    )  # latency columns hold None: they do not matter here
    assert tradeoff.pareto(t)["label"].tolist()[0] == "fp16"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cost": "bytes"}, "unknown cost column 'bytes'; choose one of size_bytes, file_bytes, gzip_bytes"),
        ({"cost": "macs"}, "the table has no column 'macs'; its columns: label, size_bytes, accuracy"),
        ({"metric": "f1"}, "the table has no column 'f1'; its columns: label, size_bytes, accuracy"),
    ],
)
def test_pareto_bad_columns(table, kwargs, message):
    with pytest.raises(ValueError) as e:
        tradeoff.pareto(table, **kwargs)
    assert one_line(e).startswith(message)


@pytest.mark.parametrize(("kwargs", "message"), [({"cost": None}, "unknown cost column None"),
                                                 ({"metric": 3}, "the table has no column 3")])  # fmt: skip
def test_pareto_column_names_of_the_wrong_type(table, kwargs, message):
    with pytest.raises(TypeError) as e:
        tradeoff.pareto(table, **kwargs)
    assert one_line(e).startswith(message)


def test_pareto_empty_table():
    with pytest.raises(ValueError, match="the table is empty") as e:
        tradeoff.pareto(frame([]))
    one_line(e)


def test_pareto_no_numbers():
    with pytest.raises(ValueError, match="no row has both a size_bytes and a accuracy value") as e:
        tradeoff.pareto(frame([("a", None, 0.5), ("b", 1, None)]))
    one_line(e)


def test_pareto_not_a_dataframe():
    with pytest.raises(TypeError, match="must be a pandas DataFrame .*, got list") as e:
        tradeoff.pareto([{"size_bytes": 1}])
    one_line(e)


# ---------------------------------------------------------------- limit and select


def test_limit_budget_is_itself(table):
    assert tradeoff.limit(table, budget=3000) == 3000.0


def test_limit_fraction_of_the_baseline(table):
    assert tradeoff.limit(table, fraction=0.25) == 2560.0
    assert tradeoff.limit(table, fraction=2) == 20480.0  # above 1 admits bigger models


def test_limit_other_baseline_label(table):
    assert tradeoff.limit(table, fraction=0.5, baseline="fp16") == 2560.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"budget": 1000, "fraction": 0.5},
            "give either budget or fraction, not both (budget=1000, fraction=0.5)",
        ),
        ({}, "give a budget (absolute size_bytes limit) or a fraction of the baseline's size_bytes"),
        ({"budget": 0}, "budget must be a finite number > 0, got 0"),
        ({"budget": -5}, "budget must be a finite number > 0, got -5"),
        ({"budget": float("nan")}, "budget must be a finite number > 0, got nan"),
        ({"budget": float("inf")}, "budget must be a finite number > 0, got inf"),
        ({"fraction": 0}, "fraction must be a finite number > 0, got 0"),
        ({"fraction": float("nan")}, "fraction must be a finite number > 0, got nan"),
        (
            {"fraction": 0.5, "baseline": "fp32"},
            "no row is labelled 'fp32' (the baseline of fraction=0.5); labels: 'baseline', 'fp16'",
        ),
    ],
)
def test_limit_bad_arguments(table, kwargs, message):
    with pytest.raises(ValueError) as e:
        tradeoff.limit(table, **kwargs)
    assert one_line(e).startswith(message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"budget": True}, "budget must be a number > 0, got True"),
     ({"budget": "1000"}, "budget must be a number > 0, got '1000'")],
)  # fmt: skip
def test_limit_of_the_wrong_type(table, kwargs, message):
    with pytest.raises(TypeError) as e:
        tradeoff.limit(table, **kwargs)
    assert one_line(e) == message


def test_limit_neither_names_the_cost(table):
    with pytest.raises(
        ValueError, match=r"a budget \(absolute macs limit\) or a fraction of the baseline's macs"
    ):
        tradeoff.limit(table.assign(macs=1), cost="macs")


def test_select_budget(table):
    row = tradeoff.select(table, budget=3000)
    assert (row["label"], row.name) == ("int8", 2)


def test_select_fraction(table):
    assert tradeoff.select(table, fraction=0.5)["label"] == "fp16"  # ties with baseline at 0.95, cheaper
    assert tradeoff.select(table, fraction=1.0)["label"] == "fp16"


def test_select_budget_exactly_at_a_cost(table):
    assert tradeoff.select(table, budget=1280)["label"] == "int4"


def test_select_ties_go_to_lower_cost_then_first_row():
    df = frame([("a", 30, 0.9), ("b", 20, 0.9), ("c", 20, 0.9), ("d", 10, 0.5)])
    assert tradeoff.select(df, budget=100)["label"] == "b"


def test_select_skips_missing_metric():
    df = frame([("a", 10, None), ("b", 20, 0.5)])
    with pytest.raises(ValueError) as e:
        tradeoff.select(df, budget=15.5)
    assert one_line(e) == (
        "no configuration has size_bytes <= 15.5 (budget=15.5); the cheapest is 'b' with size_bytes 20"
    )
    assert tradeoff.select(df, budget=20)["label"] == "b"


def test_select_other_cost_and_metric(table):
    df = table.assign(macs=[9, 9, 9, 9, 1, 9], score=[1, 2, 3, 4, 5, 6])
    assert tradeoff.select(df, cost="macs", budget=5)["label"] == "bad"
    assert tradeoff.select(df, metric="score", budget=5000)["label"] == "sparse"


def test_select_nothing_fits_message():
    df = frame([("baseline", 10_240, 0.95), ("int8", 5_120, 0.94)])
    with pytest.raises(tradeoff.NothingFits) as e:  # a ValueError, named so reports can tell it apart
        tradeoff.select(df, budget=1000)
    assert isinstance(e.value, ValueError)
    assert one_line(e) == (
        "no configuration has size_bytes <= 1,000 (budget=1000); the cheapest is 'int8' with size_bytes 5,120"
    )


def test_select_nothing_fits_with_fraction():
    df = frame([("baseline", 10_240, 0.95), ("int8", 5_120, 0.94)])
    with pytest.raises(ValueError) as e:
        tradeoff.select(df, fraction=0.1)
    assert one_line(e) == (
        "no configuration has size_bytes <= 1,024 (fraction=0.1 of 'baseline'); "
        "the cheapest is 'int8' with size_bytes 5,120"
    )


def test_select_leaves_the_table_unchanged(table):
    before = table.copy()
    tradeoff.select(table, budget=3000)
    pd.testing.assert_frame_equal(table, before)


# ---------------------------------------------------------------- decide


def test_decide_without_a_limit_is_the_front(table):
    before = table.copy()
    d = tradeoff.decide(table)
    assert d.table is table and (d.choice, d.limit) == (None, None)
    pd.testing.assert_frame_equal(d.front, tradeoff.pareto(table))
    pd.testing.assert_frame_equal(table, before)


@pytest.mark.parametrize(
    "limits", [{"budget": 3000}, {"fraction": 0.5}, {"fraction": 1.0, "baseline": "int8"}]
)
def test_decide_is_pareto_limit_and_select(table, limits):
    d = tradeoff.decide(table, **limits)
    pd.testing.assert_frame_equal(d.front, tradeoff.pareto(table))
    assert d.limit == tradeoff.limit(table, **limits)
    pd.testing.assert_series_equal(d.choice, tradeoff.select(table, **limits))
    assert d.choice["label"] in d.front["label"].tolist()  # the best under any limit is on the front
    assert repr(d).startswith(f"SearchResult(6 rows, 3 on the front, choice={d.choice['label']!r}")


def test_decide_other_cost_and_metric(table):
    df = table.assign(macs=[9, 9, 9, 9, 1, 9], score=[1, 2, 3, 4, 5, 6])
    d = tradeoff.decide(df, cost="macs", metric="score", budget=9)
    assert d.choice["label"] == "sparse" and d.front["label"].tolist() == ["bad", "sparse"]


def test_decide_nothing_fits_and_bad_arguments(table):
    with pytest.raises(tradeoff.NothingFits, match=r"no configuration has size_bytes <= 1 \(budget=1\)"):
        tradeoff.decide(table, budget=1)
    with pytest.raises(ValueError, match="give either budget or fraction, not both"):
        tradeoff.decide(table, budget=1, fraction=0.5)
    with pytest.raises(ValueError, match="unknown cost column 'bytes'"):
        tradeoff.decide(table, cost="bytes")


# ---------------------------------------------------------------- grid


def test_grid_example():
    assert tradeoff.grid(sparsities=(0.9,), bits=(4,)) == [
        "magnitude:sparsity=0.9,scope=global + kmeans:bits=4"
    ]


def test_grid_all_off_is_omitted():
    assert tradeoff.grid() == []
    assert tradeoff.grid(sparsities=(0.0, 0.5)) == ["magnitude:sparsity=0.5,scope=global"]


def test_grid_every_combination_in_order():
    specs = tradeoff.grid(
        sparsities=(0, 0.5, 0.9), bits=(32, 8, 4), kd=(False, True), kd_options="student=mlp,width=8"
    )
    assert len(specs) == 2 * 3 * 3 - 1 == len(set(specs))
    assert specs[:3] == ["kmeans:bits=8", "kmeans:bits=4", "magnitude:sparsity=0.5,scope=global"]
    assert specs[8] == "kd:student=mlp,width=8"
    rank = {"kd": 0, "magnitude": 1, "finetune": 2, "kmeans": 3}
    for spec in specs:
        methods = [c.method for c in registry.parse(spec)]  # every spec round-trips
        assert methods == sorted(methods, key=rank.get)


def test_grid_specs_build_the_configs_they_name():
    (spec,) = tradeoff.grid(
        sparsities=(0.75,), bits=(3,), kd=(True,), quantize="weights:granularity=per_tensor"
    )
    kd, pruning, quant = registry.parse(spec)
    assert kd == mcv.distill.KDConfig()
    assert pruning == mcv.prune.MagnitudeConfig(0.75, scope="global")
    assert quant == mcv.quantize.WeightsConfig(bits=3, granularity="per_tensor")


@pytest.mark.parametrize(
    ("prune", "quantize"), [("random", "qat"), ("channels", "weights"), ("magnitude", "kmeans")]
)
def test_grid_other_methods(prune, quantize):
    specs = tradeoff.grid(sparsities=(0.5,), bits=(32, 4), prune=prune, quantize=quantize)
    assert specs == [f"{prune}:sparsity=0.5", f"{prune}:sparsity=0.5 + {quantize}:bits=4"]


def test_grid_repeated_values_once():
    assert tradeoff.grid(sparsities=[0.5, 0.5], bits=[32, 32]) == ["magnitude:sparsity=0.5,scope=global"]


def test_grid_finetune_after_pruning():
    if "finetune" not in registry.METHODS:
        pytest.skip("method 'finetune' (FineTuneConfig in mcviz/train.py) is not registered yet")
    specs = tradeoff.grid(sparsities=(0.9,), bits=(32, 4), finetune_epochs=2)
    assert specs == [
        "magnitude:sparsity=0.9,scope=global + finetune:epochs=2",
        "magnitude:sparsity=0.9,scope=global + finetune:epochs=2 + kmeans:bits=4",
    ]
    assert tradeoff.grid(bits=(4,), finetune_epochs=2) == ["kmeans:bits=4"]  # no pruning, no finetune


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sparsities": ()}, "sparsities must be a non-empty list of numbers in [0, 1], got ()"),
        ({"sparsities": (1.5,)}, "sparsities[0] must be a finite number in [0, 1], got 1.5"),
        ({"bits": (1,)}, "bits must be an int in [2, 8], got 1"),
        (
            {"quantize": "fp16"},
            "quantize method 'fp16' takes no bits option; choose one of kmeans, ptq, qat, weights",
        ),
        (
            {"quantize": "kmeans:bits=4"},
            "quantize spec 'kmeans:bits=4' sets bits; grid sets it, leave it out",
        ),
        (
            {"quantize": "fp16 + kmeans"},
            "quantize must be one method spec such as 'kmeans', got 'fp16 + kmeans'",
        ),
        (
            {"prune": "kmeans"},
            "prune method 'kmeans' takes no sparsity option; choose one of channels, magnitude, random",
        ),
        ({"prune": "magnitud"}, "unknown method 'magnitud' in 'magnitud'"),
        ({"finetune_epochs": -1}, "finetune_epochs must be an int in [0, 200], got -1"),
        ({"finetune_epochs": 10**9}, "finetune_epochs must be an int in [0, 200], got 1000000000"),
        ({"kd": (True,), "kd_options": "student=vgg"}, "student must be one of"),
        ({"kd": (True,), "kd_options": "epochs=1000000000"}, "epochs must be an int in [1, 200]"),
    ],
)
def test_grid_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as e:
        tradeoff.grid(**{"sparsities": (0.5,), **kwargs})
    assert one_line(e).startswith(message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sparsities": 0.5}, "sparsities must be a list of numbers in [0, 1], got 0.5"),
        ({"sparsities": "0.5"}, "sparsities must be a list of numbers in [0, 1], got '0.5'"),
        ({"bits": ("4",)}, "bits[0] must be an int, got '4'"),
        ({"kd": (1,)}, "kd[0] must be True or False, got 1"),
        ({"kd_options": 3}, "kd_options must be a str of options"),
        ({"prune": None}, "prune must be one method spec such as 'channels', got None"),
    ],
)
def test_grid_arguments_of_the_wrong_type(kwargs, message):
    with pytest.raises(TypeError) as e:
        tradeoff.grid(**{"sparsities": (0.5,), **kwargs})
    assert one_line(e).startswith(message)


# ---------------------------------------------------------------- lagrangian

MLP = {"hidden": (32,)}


@pytest.fixture(scope="module")
def l1_sweep(digits):
    return tradeoff.lagrangian(
        "mlp", digits, lambdas=[0, 0.1, 10], epochs=3, model_options=MLP, return_models=True
    )


def test_lagrangian_table_columns(l1_sweep):
    table, _ = l1_sweep
    assert table.columns.tolist() == [*mcv.measure.FIELDS, "lambda", "penalty"]
    assert table["label"].tolist() == ["lambda=0", "lambda=0.1", "lambda=10"]
    assert table["lambda"].tolist() == [0.0, 0.1, 10.0] and set(table["penalty"]) == {"l1"}


def test_lagrangian_larger_lambda_more_sparsity(l1_sweep):
    # measured on digits, mlp 64-32-10, 3 epochs, l1: sparsity 0.0013, 0.027, 0.082 for lambda 0, 0.1, 10
    # (Adam shrinks penalized weights towards zero but rarely to it: the threshold does the cut)
    table, _ = l1_sweep
    assert table["sparsity"].is_monotonic_increasing and table["sparsity"].is_unique
    assert table["nonzero_params"].is_monotonic_decreasing and table["size_bytes"].is_monotonic_decreasing
    assert table["sparsity"].iloc[-1] > 0.05


def test_lagrangian_l0_larger_lambda_more_sparsity(digits):
    table = tradeoff.lagrangian(
        "mlp", digits, lambdas=[0, 0.1, 10], penalty="l0", epochs=3, model_options=MLP
    )
    assert table["sparsity"].is_monotonic_increasing and table["sparsity"].is_unique
    assert set(table["penalty"]) == {"l0"}


def test_lagrangian_models_match_the_table(l1_sweep, digits):
    table, models = l1_sweep
    assert list(models) == table["label"].tolist()
    for label, model in models.items():
        assert row_dict(table, label) == dataclasses.asdict(mcv.measure.model(model, digits, label=label))


def test_lagrangian_prunes_below_the_threshold(l1_sweep):
    _, models = l1_sweep
    for model in models.values():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                w = (m.effective_weight() if hasattr(m, "effective_weight") else m.weight).detach().abs()
                assert w[w > 0].min() >= 1e-3 * w.max()


def test_lagrangian_pruned_layers_count_sparse_storage(l1_sweep):
    _, models = l1_sweep
    assert any(isinstance(m, mcv.prune.PrunedLinear) for m in models["lambda=10"].modules())


def test_lagrangian_lambda_zero_is_plain_training(digits):
    # lambda 0 and threshold 0: the same loop as mcv.train.fit, so bit-identical weights
    _, models = tradeoff.lagrangian(
        "mlp", digits, lambdas=[0], epochs=2, threshold=0, model_options=MLP, return_models=True, seed=3
    )
    reference = mcv.models.build("mlp", input_shape=digits.input_shape, seed=3, **MLP)
    mcv.train.fit(reference, digits, epochs=2, seed=3, progress=False)
    for (name, a), b in zip(
        models["lambda=0"].state_dict().items(), reference.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_lagrangian_is_deterministic_and_leaves_global_rng(digits):
    before = torch.get_rng_state()
    first = tradeoff.lagrangian("mlp", digits, lambdas=[1.0], epochs=1, model_options=MLP)
    assert torch.equal(torch.get_rng_state(), before)
    second = tradeoff.lagrangian("mlp", digits, lambdas=[1.0], epochs=1, model_options=MLP)
    pd.testing.assert_frame_equal(first, second)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lambdas": []}, "lambdas must be a non-empty list of numbers >= 0, got []"),
        ({"lambdas": [0, -1]}, "lambdas[1] must be a finite number >= 0, got -1"),
        ({"lambdas": [float("nan")]}, "lambdas[0] must be a finite number >= 0, got nan"),
        ({"lambdas": [0.1, 0.1]}, "lambdas holds 0.1 more than once"),
        ({"penalty": "l2"}, "penalty must be one of 'l1', 'l0', got 'l2'"),
        ({"threshold": 1}, "threshold must be a finite number in [0, 1), got 1"),
        ({"threshold": -0.1}, "threshold must be a finite number in [0, 1), got -0.1"),
        ({"epochs": 0}, "epochs must be an int in [1, 200], got 0"),
        ({"epochs": 201}, "epochs must be an int in [1, 200], got 201"),
        ({"lr": 0}, "lr must be a finite number in (0, 10], got 0"),
        ({"seed": 2**32}, "seed must be an int in [0, 4,294,967,295], got 4294967296"),
        ({"model_options": {"width": 3}}, "model 'mlp' got unknown option 'width'"),
        ({"model_options": {"hidden": (10**6,)}}, "hidden[0] must be an int in [1, 4096], got 1000000"),
    ],
)
def test_lagrangian_bad_arguments(digits, monkeypatch, kwargs, message):
    monkeypatch.setattr(_search, "train_penalized", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(ValueError) as e:
        tradeoff.lagrangian("mlp", digits, **{"lambdas": [0.1], **kwargs})
    assert one_line(e).startswith(message)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lambdas": 0.1}, "lambdas must be a list of numbers >= 0, got 0.1"),
        ({"lambdas": [True]}, "lambdas[0] must be a number >= 0, got True"),
        ({"penalty": 1}, "penalty must be one of 'l1', 'l0', got 1"),
        ({"seed": 1.0}, "seed must be an int in [0, 4,294,967,295], got 1.0"),
        ({"model_options": "wide"}, "model_options must be a dict of models.build options or None"),
        ({"return_models": 1}, "return_models must be True or False, got 1"),
    ],
)
def test_lagrangian_arguments_of_the_wrong_type(digits, monkeypatch, kwargs, message):
    monkeypatch.setattr(_search, "train_penalized", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(TypeError) as e:
        tradeoff.lagrangian("mlp", digits, **{"lambdas": [0.1], **kwargs})
    assert one_line(e).startswith(message)


def test_lagrangian_bad_model_and_data(digits):
    with pytest.raises(ValueError, match="unknown model 'vgg'; choose one of seed_cnn"):
        tradeoff.lagrangian("vgg", digits, lambdas=[0])
    with pytest.raises(TypeError, match="data must be a DataBundle"):
        tradeoff.lagrangian("mlp", None, lambdas=[0])


# ---------------------------------------------------------------- search

SPACE = ["fp16", "magnitude:sparsity=0.5", "weights:bits=4"]


def search(digits, **kwargs):
    return tradeoff.search("mlp", digits, **{"space": SPACE, "epochs": 1, **kwargs})


@pytest.fixture
def counted(monkeypatch):
    """Counts the calls of mcv.registry.compress (search calls it through the module)."""
    calls = []
    real = registry.compress

    def compress(*args, **kwargs):
        calls.append(args[1:])
        return real(*args, **kwargs)

    monkeypatch.setattr(registry, "compress", compress)
    return calls


def test_search_table_front_and_choice_agree(digits, cache_dir):
    result = search(digits, fraction=0.3)
    t = result.table
    assert t["label"].tolist() == ["baseline", *SPACE] and t["spec"].tolist() == ["", *SPACE]
    assert t.columns.tolist() == [*mcv.measure.FIELDS, "spec"]
    pd.testing.assert_frame_equal(result.front, tradeoff.pareto(t))
    assert result.limit == 0.3 * t.loc[0, "size_bytes"]
    pd.testing.assert_series_equal(result.choice, tradeoff.select(t, fraction=0.3))
    fits = t[t["size_bytes"] <= result.limit]
    assert result.choice["accuracy"] == fits["accuracy"].max()
    assert result.choice["label"] in result.front["label"].tolist()


def test_search_rows_are_the_measured_models(digits, cache_dir):
    t = search(digits).table
    base = mcv.train.baseline("mlp", digits, epochs=1, progress=False)
    for spec in SPACE:
        model = mcv.compress(base, *registry.parse(spec), data=digits)
        assert row_dict(t, spec) == dataclasses.asdict(mcv.measure.model(model, digits, label=spec))


def test_search_without_a_limit(digits, cache_dir):
    result = search(digits)
    assert result.choice is None and result.limit is None
    assert len(result.front) >= 1


def test_search_second_call_trains_and_compresses_nothing(digits, cache_dir, counted, monkeypatch):
    first = search(digits, budget=1e9)
    assert len(counted) == len(SPACE)
    monkeypatch.setattr(mcv.train, "baseline", lambda *a, **k: pytest.fail("loaded the baseline again"))
    monkeypatch.setattr(mcv.train, "fit", lambda *a, **k: pytest.fail("trained again"))
    second = search(digits, budget=1e9)
    assert len(counted) == len(SPACE)  # no new compress call: the rows came from the cache
    pd.testing.assert_frame_equal(first.table, second.table)
    pd.testing.assert_series_equal(first.choice, second.choice)


def test_search_cache_entries_are_keyed_and_complete(digits, cache_dir):
    search(digits)
    files = sorted(p.name for p in cache_dir.iterdir())
    assert len([f for f in files if f.startswith("row-")]) == len(SPACE) + 1
    assert not [f for f in files if f.startswith(".tmp")]
    keys = {
        (s, p): engine.cache_key({"model": "mlp", "epochs": 1, "seed": s}, digits, p)
        for s, p in itertools.product((0, 1), ["", "fp16"])
    }
    assert len(set(keys.values())) == 4
    for (s, _), key in keys.items():  # the rows searched (seed 0) are the files written
        assert engine.cache_path(key).exists() == (s == 0)


def test_search_new_spec_computes_only_that_row(digits, cache_dir, counted):
    search(digits)
    search(digits, space=[*SPACE, "int8"])
    assert len(counted) == len(SPACE) + 1


def test_search_unreadable_entry_is_recomputed_with_a_warning(digits, cache_dir, counted):
    first = search(digits).table
    key = engine.cache_key({"model": "mlp", "epochs": 1, "seed": 0}, digits, "fp16")
    engine.cache_path(key).write_text("{not json")
    with pytest.warns(UserWarning, match="is unreadable .*; recomputing"):
        second = search(digits).table
    assert len(counted) == len(SPACE) + 1
    pd.testing.assert_frame_equal(first, second)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        search(digits)  # rewritten: no warning now


def test_search_latency_bypasses_the_cache(digits, cache_dir, counted):
    result = search(digits, space=["fp16"], latency=True, cost="latency_ms", budget=1e6)
    assert result.table["latency_ms"].notna().all() and result.choice is not None
    assert not cache_dir.exists() or not any(p.name.startswith("row-") for p in cache_dir.iterdir())
    search(digits, space=["fp16"], latency=True)
    assert len(counted) == 2


def test_search_nothing_fits_after_training(digits, cache_dir, counted):
    with pytest.raises(
        ValueError, match=r"no configuration has size_bytes <= 1 \(budget=1\); the cheapest is"
    ) as e:
        search(digits, budget=1)
    one_line(e)
    assert len(counted) == len(SPACE)  # the rows were measured and cached
    assert search(digits, budget=1e9).choice is not None and len(counted) == len(SPACE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"space": ["fp16", "magnitde:sparsity=0.5"]}, "unknown method 'magnitde'"),
        ({"space": ["magnitude:sparsity=2.0"]}, "sparsity must be"),
        ({"space": ["fp16", "fp16"]}, "space names 'fp16' more than once"),
        (
            {"budget": 100, "fraction": 0.5},
            "give either budget or fraction, not both (budget=100, fraction=0.5)",
        ),
        ({"budget": -1}, "budget must be a finite number > 0, got -1"),
        ({"cost": "bytes"}, "unknown cost column 'bytes'; choose one of size_bytes"),
        ({"cost": "latency_ms"}, "cost 'latency_ms' needs latency=True"),
        ({"metric": "f1"}, "unknown metric 'f1'; choose a measurement column"),
        ({"epochs": 0}, "epochs must be an int in [1, 200], got 0"),
        ({"epochs": 10**9}, "epochs must be an int in [1, 200], got 1000000000"),
        ({"seed": -1}, "seed must be an int in [0, 4,294,967,295], got -1"),
        ({"seed": 1180591620717411303424}, "seed must be an int in [0, 4,294,967,295], got 118059162071741"),
    ],
)
def test_search_checks_everything_before_training(digits, cache_dir, monkeypatch, kwargs, message):
    monkeypatch.setattr(mcv.train, "baseline", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(ValueError) as e:
        search(digits, **kwargs)
    assert one_line(e).startswith(message) or message in one_line(e)
    assert not cache_dir.exists()  # nothing written


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"space": "fp16"}, "space must be a list of method specs such as ['fp16'], got 'fp16'"),
        ({"fraction": "half"}, "fraction must be a number > 0, got 'half'"),
        ({"latency": "yes"}, "latency must be True or False, got 'yes'"),
        ({"metric": None}, "unknown metric None"),
        ({"epochs": 1.0}, "epochs must be an int in [1, 200], got 1.0"),
    ],
)
def test_search_refuses_arguments_of_the_wrong_type_before_training(digits, cache_dir, monkeypatch, kwargs,
                                                                    message):  # fmt: skip
    monkeypatch.setattr(mcv.train, "baseline", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(TypeError) as e:
        search(digits, **kwargs)
    assert one_line(e).startswith(message)


def test_search_unknown_model(digits):
    with pytest.raises(ValueError, match="unknown model 'vgg'; choose one of seed_cnn"):
        tradeoff.search("vgg", digits, space=["fp16"])


def test_search_result_is_frozen(digits, cache_dir):
    result = search(digits, space=["fp16"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.limit = 3.0
    assert repr(result).startswith("SearchResult(2 rows")


def test_search_kd_spec(digits, cache_dir):
    result = search(digits, space=["kd:student=mlp,width=8,epochs=1"])
    student = result.table.iloc[1]
    assert student["params"] < result.table.iloc[0]["params"] and not math.isnan(student["accuracy"])


def test_grid_feeds_search(digits, cache_dir):
    space = tradeoff.grid(sparsities=(0.5,), bits=(32, 4))
    result = search(digits, space=space, budget=1e9)
    assert result.table["spec"].tolist() == ["", *space]
    assert result.choice["label"] in result.table["label"].tolist()


def test_search_of_an_empty_space_is_the_baseline_alone(digits, cache_dir):
    # an all-off grid (no pruning, no quantization, no kd) is a legitimate question: does the
    # baseline itself fit the budget?
    assert tradeoff.grid(sparsities=(0.0,), bits=(32,)) == []
    result = tradeoff.search("mlp", digits, space=[], epochs=1, fraction=1.0)
    assert list(result.table["label"]) == ["baseline"]
    assert result.choice["label"] == "baseline"
    with pytest.raises(tradeoff.NothingFits):
        tradeoff.search("mlp", digits, space=[], epochs=1, fraction=0.5)


def test_search_computes_a_shared_prefix_once_and_gets_the_fresh_chains_rows(digits, cache_dir, counted):
    prune = "magnitude:sparsity=0.8,scope=global + finetune:epochs=1"
    space = [prune, f"{prune} + kmeans:bits=4", f"{prune} + kmeans:bits=2", "weights:bits=4"]
    t = tradeoff.search("mlp", digits, space=space, epochs=1).table
    # magnitude, finetune, two kmeans and weights: 5 steps, not the 2 + 3 + 3 + 1 of fresh chains
    assert [type(c[0]).__name__ for c in counted] == [
        "MagnitudeConfig", "FineTuneConfig", "KMeansConfig", "KMeansConfig", "WeightsConfig"
    ]  # fmt: skip
    base = mcv.train.baseline("mlp", digits, epochs=1, progress=False)
    for spec in space:
        fresh = mcv.compress(base, *registry.parse(spec), data=digits)
        assert row_dict(t, spec) == dataclasses.asdict(mcv.measure.model(fresh, digits, label=spec))
