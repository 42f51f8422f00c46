"""Unit tests of mcviz.measure: counts, sizes, MACs, accuracy, latency, tables, plug-in storage."""

from __future__ import annotations

import dataclasses
import gzip
import io
import math
import re

import pandas as pd
import pytest
import torch
from helpers import one_line
from torch import nn

import mcviz as mcv
from mcviz import measure
from mcviz.measure import StorageRow

MNIST = (1, 28, 28)
LENET5_MACS = 24 * 24 * 20 * 25 + 8 * 8 * 50 * 20 * 25 + 800 * 500 + 500 * 10
LENET300_MACS = 784 * 300 + 300 * 100 + 100 * 10


def lenet5():
    return mcv.models.build("lenet5", input_shape=MNIST, seed=0)


def small(seed: int = 0):
    return mcv.models.build("mlp", input_shape=(1, 8, 8), hidden=(16,), seed=seed)


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


class UserNet(nn.Module):
    """A user's own network: no ``input_shape`` attribute, not built by mcviz."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 8 * 8, 10, bias=False)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


class PackedLinear(nn.Linear):
    """A layer that stores 4-bit weight codes plus one fp32 scale, and says so."""

    def mcviz_storage(self):
        return [
            StorageRow("ignored", "codes", "weight", self.weight.numel(), 4),
            StorageRow("ignored", "scale", "other", 1, 32),
            StorageRow("ignored", "bias", "bias", self.bias.numel(), 32),
        ]


class Wrapper(nn.Module):
    """A module that describes the storage of the layer inside it."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.inner = linear

    def forward(self, x):
        return self.inner(x)

    def mcviz_storage(self):
        return [StorageRow("", "codes", "weight", self.inner.weight.numel(), 2)]


# ---------------------------------------------------------------- the record


def test_fields_exactly():
    assert measure.FIELDS == (
        "label",
        "params",
        "nonzero_params",
        "sparsity",
        "bits",
        "size_bytes",
        "file_bytes",
        "gzip_bytes",
        "macs",
        "accuracy",
        "latency_ms",
        "latency_iqr_ms",
        "batch_size",
        "threads",
    )


def test_timing_fields():
    assert measure.TIMING_FIELDS == ("latency_ms", "latency_iqr_ms")


def test_measurement_is_frozen():
    record = measure.model(small())
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.params = 0


def test_label_is_recorded():
    assert measure.model(small(), label="baseline").label == "baseline"


# ---------------------------------------------------------------- counts and sizes


def test_params_of_lenet5():
    assert measure.model(lenet5()).params == 431_080


def test_params_of_lenet300():
    assert measure.model(mcv.models.build("lenet300", input_shape=MNIST)).params == 266_610


def test_macs_of_lenet5_equal_hand_count():
    assert LENET5_MACS == 2_293_000
    assert measure.model(lenet5()).macs == LENET5_MACS


def test_macs_of_lenet300_equal_hand_count():
    assert measure.model(mcv.models.build("lenet300", input_shape=MNIST)).macs == LENET300_MACS


def test_macs_of_seed_cnn_equal_hand_count():
    model = mcv.models.build("seed_cnn", input_shape=MNIST)
    assert measure.model(model).macs == 26 * 26 * 32 * 9 + 32 * 13 * 13 * 10


def test_dense_model_has_no_sparsity():
    record = measure.model(small())
    assert (record.sparsity, record.nonzero_params) == (0.0, record.params)


def test_sparsity_counts_only_weights():
    model = small()
    with torch.no_grad():
        model.fc1.weight.view(-1)[:100] = 0
        model.fc2.weight[0, :4] = 0
        model.fc1.bias.zero_()
    n_weights = 64 * 16 + 16 * 10
    assert measure.model(model).sparsity == pytest.approx(104 / n_weights)


def test_nonzero_params_counts_weights_and_biases():
    model = small()
    with torch.no_grad():
        model.fc1.weight.view(-1)[:100] = 0
        model.fc1.bias.zero_()
    record = measure.model(model)
    assert record.nonzero_params == record.params - 100 - 16


def test_sparsity_of_conv_weights():
    model = lenet5()
    with torch.no_grad():
        model.conv2.weight.zero_()
    assert measure.model(model).sparsity == pytest.approx(25_000 / 430_500)


def test_bits_fp32():
    assert measure.model(lenet5()).bits == 32


def test_bits_fp16():
    assert measure.model(mcv.quantize.fp16(lenet5())).bits == 16


def test_size_bytes_fp32_is_four_bytes_per_scalar():
    assert measure.model(lenet5()).size_bytes == 4 * 431_080


def test_size_bytes_fp16_is_two_bytes_per_scalar():
    assert measure.model(mcv.quantize.fp16(lenet5())).size_bytes == 2 * 431_080


def test_size_bytes_counts_persistent_buffers():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    # conv 18 + 2, batch norm weight/bias 2 + 2, running mean/var 2 + 2 (fp32), batches 1 (int64)
    assert measure.model(model, input_shape=(1, 5, 5)).size_bytes == 4 * (20 + 4 + 4) + 8


def test_file_bytes_is_torch_save_length():
    model = lenet5()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    assert measure.model(model).file_bytes == len(buf.getvalue())


def test_gzip_bytes_is_gzip_of_the_file():
    model = small()
    expected = len(gzip.compress(measure.serialized(model), compresslevel=6, mtime=0))
    assert measure.model(model).gzip_bytes == expected


def test_files_false_skips_the_file_sizes_only():
    model = lenet5()
    full, lean = measure.model(model), measure.model(model, files=False)
    assert (lean.file_bytes, lean.gzip_bytes) == (None, None)
    assert dataclasses.replace(full, file_bytes=None, gzip_bytes=None) == lean


def test_gzip_is_smaller_than_file():
    record = measure.model(lenet5())
    assert record.gzip_bytes < record.file_bytes


def test_gzip_shrinks_a_sparse_model_more():
    dense, sparse = lenet5(), lenet5()
    with torch.no_grad():
        sparse.fc1.weight.view(-1)[:300_000] = 0
    assert measure.model(sparse).gzip_bytes < 0.5 * measure.model(dense).gzip_bytes


# ---------------------------------------------------------------- accuracy, latency


def test_accuracy_none_without_data():
    assert measure.model(small()).accuracy is None


def test_accuracy_is_test_accuracy(digits_mlp, digits):
    assert measure.model(digits_mlp, digits).accuracy == mcv.train.evaluate(digits_mlp, digits)


def test_latency_fields_none_by_default(digits_mlp, digits):
    record = measure.model(digits_mlp, digits)
    assert [getattr(record, f) for f in ("latency_ms", "latency_iqr_ms", "batch_size", "threads")] == [
        None
    ] * 4


def test_latency_positive_when_asked(digits_mlp, digits):
    record = measure.model(digits_mlp, digits, latency=True, batch_size=8, repeats=5, warmup=1)
    assert record.latency_ms > 0
    assert record.latency_iqr_ms >= 0


def test_latency_records_batch_size_and_threads(digits_mlp, digits):
    record = measure.model(digits_mlp, digits, latency=True, batch_size=8, repeats=3, warmup=0)
    assert (record.batch_size, record.threads) == (8, torch.get_num_threads())


def test_latency_batch_larger_than_test_split(digits):
    seen = []
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    model.register_forward_hook(lambda m, args, out: seen.append(len(args[0])))
    measure.model(model, digits, latency=True, batch_size=1000, repeats=3, warmup=0)
    assert seen.count(1000) == 3


def test_latency_without_data_uses_input_shape():
    record = measure.model(small(), latency=True, batch_size=4, repeats=3, warmup=0)
    assert record.latency_ms > 0


def test_latency_needs_data_or_shape():
    model = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(ValueError, match="input_shape") as e:
        measure.model(model, latency=True, repeats=3)
    one_line(e)


# ---------------------------------------------------------------- the model is left alone


def test_measure_leaves_weights_unchanged(digits):
    model = mcv.models.build("seed_cnn", input_shape=digits.input_shape, seed=0)
    before = snapshot(model)
    measure.model(model, digits, latency=True, batch_size=8, repeats=3, warmup=0)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("training", [True, False])
def test_measure_leaves_training_mode_unchanged(digits, training):
    model = mcv.models.build("seed_cnn", input_shape=digits.input_shape, seed=0)
    model.train(training)
    measure.model(model, digits, latency=True, batch_size=8, repeats=3, warmup=0)
    assert model.training is training


def test_measure_leaves_no_hooks():
    model = lenet5()
    measure.model(model)
    assert all(not m._forward_hooks for m in model.modules())


# ---------------------------------------------------------------- table and layers


def test_table_columns_are_fields():
    table = measure.table([measure.model(small(), label="a")])
    assert list(table.columns) == list(measure.FIELDS)


def test_table_one_row_per_record():
    records = [measure.model(small(s), label=f"m{s}") for s in range(3)]
    assert measure.table(records)["label"].tolist() == ["m0", "m1", "m2"]


def test_table_of_nothing_has_the_columns():
    table = measure.table([])
    assert (len(table), list(table.columns)) == (0, list(measure.FIELDS))


def test_table_rejects_other_records():
    with pytest.raises(TypeError, match="dict") as e:
        measure.table([{"label": "x"}])
    one_line(e)


def test_layers_one_row_per_linear_and_conv():
    rows = measure.layers(lenet5())
    assert rows[["layer", "kind"]].values.tolist() == [
        ["conv1", "Conv2d"],
        ["conv2", "Conv2d"],
        ["fc1", "Linear"],
        ["fc2", "Linear"],
    ]


def test_layers_columns():
    assert list(measure.layers(small()).columns) == [
        "layer",
        "kind",
        "params",
        "nonzero_params",
        "sparsity",
        "bits",
        "size_bytes",
        "macs",
    ]


def test_layers_macs_sum_to_total():
    model = lenet5()
    assert measure.layers(model)["macs"].sum() == measure.model(model).macs


def test_layers_params_sum_to_total():
    model = lenet5()
    assert measure.layers(model)["params"].sum() == measure.model(model).params


def test_layers_size_bytes_sum_to_total():
    model = mcv.quantize.fp16(lenet5())
    assert measure.layers(model)["size_bytes"].sum() == measure.model(model).size_bytes


def test_layers_sparsity_per_layer():
    model = lenet5()
    with torch.no_grad():
        model.fc2.weight[:5] = 0
    assert measure.layers(model).set_index("layer")["sparsity"].to_dict() == {
        "conv1": 0.0,
        "conv2": 0.0,
        "fc1": 0.0,
        "fc2": 0.5,
    }


def test_layers_macs_none_without_shape():
    assert measure.layers(UserNet())["macs"].isna().all()


# ---------------------------------------------------------------- a user's own module


def test_user_module_counts():
    record = measure.model(UserNet(), input_shape=(1, 8, 8))
    assert (record.params, record.macs) == (4 * 9 + 4 + 256 * 10, 8 * 8 * 4 * 9 + 256 * 10)


def test_user_module_without_shape_has_no_macs():
    assert measure.model(UserNet()).macs is None


def test_user_module_with_data(digits):
    assert measure.model(UserNet(), digits).macs == 8 * 8 * 4 * 9 + 256 * 10


def test_macs_function_matches_model():
    assert measure.macs(UserNet(), (1, 8, 8)) == measure.model(UserNet(), input_shape=(1, 8, 8)).macs


def test_measure_rejects_non_module():
    with pytest.raises(TypeError, match="OrderedDict") as e:
        measure.model(small().state_dict())
    one_line(e)


@pytest.mark.parametrize(
    ("kw", "error", "pattern"),
    [
        ({"repeats": 2}, ValueError, "repeats must be an int in [3, 10000], got 2"),
        ({"batch_size": 0}, ValueError, "batch_size must be an int in [1, 4096], got 0"),
        ({"batch_size": 10**7}, ValueError, "batch_size must be an int in [1, 4096], got 10000000"),
        ({"warmup": -1}, ValueError, "warmup must be an int in [0, 10000], got -1"),
        ({"label": 3}, TypeError, "label must be a str, got 3"),
        ({"latency": "yes"}, TypeError, "latency must be True or False, got 'yes'"),
        ({"files": 0}, TypeError, "files must be True or False, got 0"),
        ({"input_shape": (1, 0, 8)}, ValueError, "input_shape must be a tuple of positive ints, got (1, 0"),
        ({"input_shape": "1x8x8"}, TypeError, "input_shape must be a tuple of positive ints, got '1x8x8'"),
        ({"data": "digits"}, TypeError, "data must be a DataBundle"),
    ],
)
def test_measure_rejects_bad_arguments(kw, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)) as e:
        measure.model(small(), **kw)
    one_line(e)


# ---------------------------------------------------------------- the storage plug-in point


def packed_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), PackedLinear(64, 16), nn.ReLU(), nn.Linear(16, 10))


PACKED_BYTES = math.ceil(64 * 16 * 4 / 8) + 4 + 16 * 4 + (16 * 10 + 10) * 4


def test_storage_plugin_sets_size_bytes():
    assert measure.model(packed_net(), input_shape=(1, 8, 8)).size_bytes == PACKED_BYTES


def test_storage_plugin_sets_bits():
    n1, n2 = 64 * 16, 16 * 10
    bits = measure.model(packed_net(), input_shape=(1, 8, 8)).bits
    assert bits == pytest.approx((4 * n1 + 32 * n2) / (n1 + n2))


def test_storage_plugin_rows_are_named_by_the_module():
    rows = measure.storage(packed_net())
    assert [(r.layer, r.tensor) for r in rows][:3] == [("1", "codes"), ("1", "scale"), ("1", "bias")]


def test_storage_plugin_replaces_the_modules_own_tensors():
    assert [r.tensor for r in measure.storage(packed_net()) if r.layer == "1"] == ["codes", "scale", "bias"]


def test_storage_plugin_in_layers_table():
    rows = measure.layers(packed_net(), input_shape=(1, 8, 8)).set_index("layer")
    assert (rows.loc["1", "bits"], rows["size_bytes"].sum()) == (4, PACKED_BYTES)


def test_storage_plugin_hides_submodules():
    model = nn.Sequential(nn.Flatten(), Wrapper(nn.Linear(64, 10)))
    assert [(r.layer, r.tensor) for r in measure.storage(model)] == [("1", "codes")]


def test_storage_plugin_on_the_root_module_hides_submodules():
    model = Wrapper(nn.Linear(8, 4))
    assert measure.model(model, input_shape=(8,)).size_bytes == 8 * 4 * 2 // 8


def test_storage_plugin_on_a_root_layer():
    model = PackedLinear(8, 4)
    assert measure.model(model, input_shape=(8,)).size_bytes == 8 * 4 * 4 // 8 + 4 + 4 * 4


def test_storage_row_nbytes_rounds_up():
    assert StorageRow("l", "w", "weight", 3, 3).nbytes == 2


def test_table_from_measurements_of_compressed_models(digits_mlp, digits):
    table = measure.table(
        [
            measure.model(digits_mlp, digits, label="fp32"),
            measure.model(mcv.compress(digits_mlp, mcv.quantize.FP16Config()), digits, label="fp16"),
        ]
    )
    assert isinstance(table, pd.DataFrame)
    assert table.set_index("label")["bits"].to_dict() == {"fp32": 32.0, "fp16": 16.0}


def test_layers_rejects_non_module():
    with pytest.raises(TypeError, match="got str") as e:
        measure.layers("lenet5")
    one_line(e)


def test_input_shape_the_model_cannot_take():
    with pytest.raises(ValueError, match=r"input_shape \(1, 28, 28\)") as e:
        measure.model(small(), input_shape=(1, 28, 28))
    one_line(e)


def test_failed_mac_count_leaves_no_hooks():
    model = small()
    with pytest.raises(ValueError):
        measure.macs(model, (1, 28, 28))
    assert all(not m._forward_hooks for m in model.modules())


def test_sparsity_of_a_torch_pruned_layer():
    from torch.nn.utils import prune

    model = mcv.models.build("lenet300", input_shape=MNIST, seed=0)
    prune.l1_unstructured(model.fc1, "weight", amount=0.5)
    record = measure.model(model)
    assert (record.params, record.sparsity) == (266_610, pytest.approx(117_600 / 266_200))


def test_one_table_of_cost_columns():
    assert list(measure.COSTS) == [
        "size_bytes", "file_bytes", "gzip_bytes", "params", "nonzero_params", "macs", "latency_ms", "bits"
    ]  # fmt: skip
    assert set(measure.COSTS) <= set(measure.FIELDS)  # every cost is a measured column
    for name, cost in measure.COSTS.items():
        assert cost.name == name and cost.unit and cost.title
    assert (measure.COSTS["size_bytes"].unit, measure.COSTS["macs"].title) == ("bytes", "MACs per example")
    # tradeoff checks against it, plots title axes with it, reports write its units
    assert mcv.tradeoff.COSTS == tuple(measure.COSTS)
    table = pd.DataFrame({"label": ["baseline", "small"], "macs": [100, 40], "accuracy": [0.9, 0.8]})
    assert mcv.plots.accuracy_vs_size(table, cost="macs").layout.xaxis.title.text == "MACs per example"
    assert "budget of 50 MACs (fraction 0.5" in mcv.reports.budget_summary(table, cost="macs", fraction=0.5)
