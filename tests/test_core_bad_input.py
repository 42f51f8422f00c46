"""Issue #11, the core library's part: one test per class of bad input, over every entry point of
data, models, train, distill, measure, engine, tradeoff and sweeps that takes it.

Each refusal is checked for its type (TypeError for a wrong type, ValueError for a wrong value),
for one line naming the argument, and for leaving nothing written or changed. The caches are
checked to trust no entry that a fresh result would not pass, and to degrade to "no cache" with
one warning when their folder cannot be written; training to stop on a non-finite loss.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import one_line
from torch import nn

import mcviz as mcv
from mcviz import _cache, engine, measure, train

SEED_MESSAGE = "must be an int in [0, 4,294,967,295], got"
TOO_LARGE_SEEDS = [2**32, 8589934592, 1180591620717411303424]


def tiny(data, seed: int = 0) -> nn.Module:
    return mcv.models.build("mlp", input_shape=data.input_shape, hidden=(8,), seed=seed)


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def arrays(n: int = 60, k: int = 3):
    X = np.random.default_rng(0).random((n, 4, 4)).astype(np.float32)
    return X, np.arange(n) % k


# ---------------------------------------------------------------- seeds (issue item 5)


def seed_entry_points(digits, model):
    """Every function and config of the core that takes a seed, as (name, call(seed))."""
    X, y = arrays()
    return [
        ("split_seed", lambda s: mcv.data.load("digits", split_seed=s)),
        ("split_seed", lambda s: mcv.data.from_arrays(X, y, split_seed=s)),
        ("seed", lambda s: digits.loader("train", shuffle=True, seed=s)),
        ("seed", lambda s: mcv.data.labelled_indices(y, 0.5, seed=s)),
        ("seed", lambda s: mcv.data.subset(digits, 0.5, seed=s)),
        ("seed", lambda s: mcv.models.build("mlp", input_shape=(1, 8, 8), seed=s)),
        ("seed", lambda s: mcv.train.fit(model, digits, epochs=1, seed=s, progress=False)),
        ("seed", lambda s: mcv.train.fine_tune(model, digits, seed=s)),
        ("seed", lambda s: mcv.train.FineTuneConfig(seed=s)),
        ("seed", lambda s: mcv.train.baseline("mlp", digits, epochs=1, seed=s, progress=False)),
        ("seed", lambda s: mcv.distill.fit(tiny(digits), model, digits, epochs=1, seed=s, progress=False)),
        ("label_seed", lambda s: mcv.distill.fit(tiny(digits), model, digits, epochs=1, label_seed=s)),
        ("seed", lambda s: mcv.distill.distill(model, digits, student="mlp", epochs=1, seed=s)),
        ("seed", lambda s: mcv.distill.KDConfig(seed=s)),
        ("seed", lambda s: mcv.tradeoff.lagrangian("mlp", digits, lambdas=[0], epochs=1, seed=s)),
        ("seed", lambda s: mcv.tradeoff.search("mlp", digits, space=["fp16"], epochs=1, seed=s)),
        ("seed", lambda s: mcv.sweeps.pruning_specs([0.5], ["random"], [], seed=s)),
        ("seed", lambda s: mcv.seed(s)),
    ]


@pytest.mark.parametrize("seed", [-1, *TOO_LARGE_SEEDS])
def test_every_seed_is_checked_before_any_work(digits, cache_dir, seed, monkeypatch):
    model = tiny(digits)
    before = state(model)
    monkeypatch.setattr(train, "_progress_bar", lambda *a: pytest.fail("training started"))
    for name, call in seed_entry_points(digits, model):
        with pytest.raises(ValueError) as e:
            call(seed)
        assert one_line(e).startswith(f"{name} {SEED_MESSAGE} {seed}"), one_line(e)
    assert same(before, state(model)) and not cache_dir.exists()


@pytest.mark.parametrize("seed", [1.0, "0", True, np.float64(1)])
def test_a_seed_of_the_wrong_type_is_a_type_error(digits, cache_dir, seed):
    for name, call in seed_entry_points(digits, tiny(digits)):
        with pytest.raises(TypeError) as e:
            call(seed)
        assert one_line(e).startswith(f"{name} {SEED_MESSAGE} {seed!r}")


def test_the_largest_seed_is_accepted_everywhere(digits):
    biggest = 2**32 - 1
    mcv.models.build("mlp", input_shape=(1, 8, 8), seed=biggest)
    mcv.data.load("digits", split_seed=biggest)
    mcv.train.FineTuneConfig(seed=biggest)
    mcv.distill.KDConfig(seed=biggest)
    mcv.train.fit(tiny(digits), digits, epochs=1, seed=biggest, progress=False)


# ---------------------------------------------------------------- bounds of options (issue item 13)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: mcv.distill.KDConfig(epochs=10**9), "epochs must be an int in [1, 200], got 1000000000"),
        (lambda: mcv.distill.KDConfig(width=10**5), "width must be an int in [1, 4096], got 100000"),
        (lambda: mcv.distill.KDConfig(temperature=1e6), "temperature must be a finite number in (0, 100]"),
        (lambda: mcv.distill.KDConfig(jitter=1000), "jitter must be an int in [0, 8], got 1000"),
        (lambda: mcv.train.FineTuneConfig(epochs=10**9), "epochs must be an int in [1, 200], got 1000000000"),
        (lambda: mcv.train.FineTuneConfig(lr=100), "lr must be a finite number in (0, 10], got 100"),
        (lambda: mcv.registry.parse("kd:epochs=1000000000"), "epochs must be an int in [1, 200]"),
        (lambda: mcv.registry.parse("finetune:epochs=1000"), "epochs must be an int in [1, 200]"),
        (lambda: mcv.models.build("small_cnn", input_shape=(1, 28, 28), width=40960), "width must be an int"),
        (lambda: mcv.models.build("mlp", input_shape=(1, 8, 8), hidden=(300, 10**6)), "hidden[1] must be"),
        (lambda: mcv.models.build("mlp", input_shape=(1, 8, 8), num_classes=10**6), "num_classes must be"),
        (lambda: mcv.models.build("mlp", input_shape=(1, 4096, 4096), hidden=(4096,)), "50,000,000"),
    ],
)
def test_options_have_bounds_from_one_place(make, message):
    with pytest.raises(ValueError) as e:
        make()
    assert message in one_line(e)


# ---------------------------------------------------------------- models the core does not take


def model_entry_points(digits):
    """Every function of the core that takes a model, as (argument name, call(model))."""
    teacher = tiny(digits)
    return [
        ("model", lambda m: mcv.train.fit(m, digits, epochs=1, progress=False)),
        ("model", lambda m: mcv.train.fine_tune(m, digits)),
        ("model", lambda m: mcv.train.evaluate(m, digits)),
        ("model", lambda m: mcv.measure.model(m, digits)),
        ("model", lambda m: mcv.measure.layers(m)),
        ("model", lambda m: mcv.measure.macs(m, (1, 8, 8))),
        ("student", lambda m: mcv.distill.fit(m, teacher, digits, epochs=1, progress=False)),
        ("teacher", lambda m: mcv.distill.fit(tiny(digits), m, digits, epochs=1, progress=False)),
        ("teacher", lambda m: mcv.distill.distill(m, digits, student="mlp", epochs=1)),
        ("teacher", lambda m: mcv.distill.soft_targets(m, digits.test.tensors[0][:2])),
        ("baseline", lambda m: mcv.engine.run(m, digits, [""])),
        ("the baseline function", lambda m: mcv.engine.run(lambda: m, digits, [""])),
        ("reference", lambda m: mcv.sweeps.layer_errors(m, {})),
    ]


@pytest.mark.parametrize("kind", ["float64", "meta"])
def test_float64_and_meta_models_are_refused_by_every_entry_point(digits, kind):
    through_compress = ("model", lambda m: mcv.compress(m, mcv.train.FineTuneConfig(), data=digits))
    for name, call in [*model_entry_points(digits), through_compress]:
        model = tiny(digits).double() if kind == "float64" else tiny(digits).to("meta")
        before = {k: (v.dtype, v.device) for k, v in model.state_dict().items()}
        with pytest.raises(ValueError) as e:
            call(model)
        message = one_line(e)
        assert message.startswith(name) and ("float64" in message if kind == "float64" else "meta" in message)
        assert {k: (v.dtype, v.device) for k, v in model.state_dict().items()} == before


def test_a_module_is_required(digits):
    for name, call in model_entry_points(digits):
        with pytest.raises(TypeError) as e:
            call({"weight": torch.zeros(2)})
        message = one_line(e)
        assert message.startswith(name) and "torch.nn.Module" in message and message.endswith("got dict")


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 2, 3)
        self.embed = nn.Embedding(4, 2)  # not used in forward: counted as parameters, never as MACs
        self.fc = nn.Linear(12, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_measure_names_the_layers_it_does_not_count():
    net = Conv1dNet()
    with pytest.warns(UserWarning) as record:
        row = mcv.measure.model(net, input_shape=(1, 8))
    (warning,) = [w for w in record if "not counted" in str(w.message)]
    assert "conv (Conv1d), embed (Embedding)" in str(warning.message)
    assert row.macs == 12 * 2  # the Linear layer's only; the warning says so
    assert row.params == sum(p.numel() for p in net.parameters())  # every parameter is counted
    layers = mcv.measure.layers(net, input_shape=(1, 8))
    kinds = [["conv", "Conv1d"], ["embed", "Embedding"], ["fc", "Linear"]]
    assert layers[["layer", "kind"]].values.tolist() == kinds
    assert layers["params"].tolist() == [8, 8, 26] and layers["macs"].isna().tolist() == [True, True, False]
    assert layers["params"].sum() == row.params  # nothing is left out of the table
    with pytest.warns(UserWarning, match="not counted: conv"):
        assert mcv.measure.macs(net, (1, 8)) == 24


def test_measure_does_not_warn_about_the_layers_it_counts(digits_mlp, digits):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mcv.measure.model(digits_mlp, digits)
        mcv.measure.layers(digits_mlp)


# ---------------------------------------------------------------- data: values that are not finite (item 2)


def write_idx(path: Path, array: np.ndarray, code: int) -> Path:
    dtype = {0x08: np.uint8, 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}[code]
    raw = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(raw + array.astype(dtype).tobytes())
    return path


@pytest.mark.parametrize("bad", [1e300, -1e300, np.inf, np.nan, 1e39])
def test_every_loader_refuses_values_that_are_not_finite_in_float32(tmp_path, bad):
    X, y = arrays(100, k=10)
    X64 = X.astype(np.float64)
    X64[7, 1, 2] = bad
    loaders = [
        lambda: mcv.data.from_arrays(X64, y),
        lambda: mcv.data.from_arrays(X64.reshape(100, 16), y),  # feature vectors
        lambda: mcv.data.from_arrays(X * 1e10, y, scale=1e-30),  # finite until scaled
    ]
    for i, code in enumerate((0x0D, 0x0E)):  # IDX float32 and float64 images
        root = tmp_path / f"idx{i}"
        root.mkdir()
        write_idx(root / "train-images-idx3-ubyte", X64, code)
        write_idx(root / "train-labels-idx1-ubyte", y, 0x08)
        loaders.append(lambda root=root: mcv.data.load("idx", root=root))
    for load in loaders:
        with pytest.raises(ValueError) as e:
            load()
        assert "X contains NaN or infinite values once cast to float32" in one_line(e)


def test_float_idx_images_load_like_arrays(tmp_path):
    X, y = arrays(100, k=10)
    write_idx(tmp_path / "train-images-idx3-ubyte", X, 0x0D)
    write_idx(tmp_path / "train-labels-idx1-ubyte", y, 0x08)
    idx = mcv.data.load("idx", root=tmp_path)
    assert idx.fingerprint == mcv.data.from_arrays(X, y, name="idx").fingerprint


def test_an_idx_header_declaring_too_much_is_refused_unread(tmp_path):
    path = tmp_path / "huge-idx3-ubyte.gz"
    header = bytes([0, 0, 0x08, 3]) + b"".join(n.to_bytes(4, "big") for n in (60000, 2**16, 2**16))
    path.write_bytes(gzip.compress(header))
    with pytest.raises(ValueError) as e:
        mcv.data.read_idx(path)
    assert "more than the 2,147,483,648 an IDX file may hold here" in one_line(e)


def test_a_file_as_the_idx_folder_is_named_a_file(tmp_path):
    (tmp_path / "x").write_text("not a folder")
    with pytest.raises(NotADirectoryError) as e:
        mcv.data.load("idx", root=tmp_path / "x")
    assert one_line(e).startswith("root must be a folder of IDX files, got a file")
    with pytest.raises(TypeError, match="root must be a folder"):
        mcv.data.load("idx", root=3)


# ---------------------------------------------------------------- data: label sets (item 14)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda y: np.where(y == 9, 200, y), "but classes 9, 10, 11, 12, 13 and 186 more are missing"),
        (lambda y: np.where(y == 0, 10**6, y), "with K <= 1,000, got a label 1,000,000"),
        (lambda y: np.zeros_like(y), "labels must hold at least two classes, got only class 0"),
        (lambda y: np.where(y == 3, 4, y), "but class 3 is missing; relabel the classes as 0 .. K-1"),
        (lambda y: y - 1, "labels must be >= 0 (the classes 0 .. K-1), got a label -1"),
    ],
)
def test_every_loader_refuses_label_sets_that_are_not_the_classes_0_to_k(tmp_path, change, message):
    X, y = arrays(100, k=10)
    y = change(y)
    loaders = [lambda: mcv.data.from_arrays(X, y)]
    if y.min() >= 0 and y.max() < 256:  # what an IDX file of uint8 labels can hold
        write_idx(tmp_path / "train-images-idx3-ubyte", X, 0x0D)
        write_idx(tmp_path / "train-labels-idx1-ubyte", y, 0x08)
        loaders.append(lambda: mcv.data.load("idx", root=tmp_path))
    for load in loaders:
        with pytest.raises(ValueError) as e:
            load()
        assert message in one_line(e)


def test_a_class_missing_from_the_training_split_is_refused_at_load():
    X, y = arrays(61, k=3)
    y[-1] = 3  # one example of class 3: wherever the split puts it, a loaded bundle trains on it
    refused = 0
    for split_seed in range(20):
        try:
            data = mcv.data.from_arrays(X, y, split=(40, 7, 14), split_seed=split_seed)
        except ValueError as e:
            assert str(e) == (
                "every class needs examples in the training split, but class 3 has none there "
                f"(split_seed={split_seed}); give those classes more examples"
            )
            refused += 1
        else:
            assert 3 in data.train.tensors[1]
    assert 0 < refused < 20


def test_t10k_labels_must_be_classes_of_the_training_labels(tmp_path):
    X, y = arrays(100, k=10)
    write_idx(tmp_path / "train-images-idx3-ubyte", X, 0x0D)
    write_idx(tmp_path / "train-labels-idx1-ubyte", y, 0x08)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", X[:5], 0x0D)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 2, 3, 12]), 0x08)
    with pytest.raises(ValueError, match=r"t10k labels must be classes of the train labels \(0 .. 9\), got"):
        mcv.data.load("idx", root=tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 2, 3, 4]), 0x08)  # classes absent: fine
    assert mcv.data.load("idx", root=tmp_path).num_classes == 10


def test_a_subset_keeps_every_class(digits):
    smallest = mcv.data.subset(digits, 10 / len(digits.train))
    assert smallest.train.tensors[1].unique().tolist() == list(range(10))
    with pytest.raises(ValueError) as e:
        mcv.data.subset(digits, 0.001)
    assert one_line(e) == (
        "fraction=0.001 keeps 1 of 1,258 training examples, fewer than one per class (10); "
        "use a fraction of at least 0.0079"
    )


def test_num_classes_is_bounded_and_checked_against_the_labels():
    X, y = arrays()
    assert mcv.data.from_arrays(X, y, num_classes=3).num_classes == 3
    with pytest.raises(ValueError, match="but class 3 is missing"):
        mcv.data.from_arrays(X, y, num_classes=4)
    with pytest.raises(ValueError, match=r"num_classes must be an int in \[2, 1000\], got 1001"):
        mcv.data.from_arrays(X, y, num_classes=1001)


# ---------------------------------------------------------------- a non-finite loss stops training (item 2)


def nan_head(digits):
    """A trained-looking model whose output bias is NaN: every loss computed with it is NaN."""
    model = tiny(digits)
    with torch.no_grad():
        model.fc2.bias[0] = float("nan")
    return model


def training_entry_points(digits):
    """Every training path of the library (all run mcv.train.fit), as call(model)."""
    return [
        lambda m: mcv.train.fit(m, digits, epochs=2, progress=False),
        lambda m: mcv.train.fine_tune(m, digits, epochs=2),
        lambda m: mcv.compress(m, mcv.train.FineTuneConfig(), data=digits),
        lambda m: mcv.distill.fit(m, tiny(digits), digits, epochs=1, progress=False),  # the student
        lambda m: mcv.distill.fit(tiny(digits), m, digits, epochs=1, progress=False),  # the teacher's
        lambda m: mcv.distill.distill(m, digits, student="mlp", epochs=1),
        lambda m: mcv.quantize.kmeans(m, bits=4, fine_tune_epochs=1, data=digits),
        lambda m: mcv.quantize.qat(m, digits, bits=4, epochs=1),
    ]


def test_every_training_path_stops_on_a_nan_loss_naming_epoch_and_step(digits):
    for call in training_entry_points(digits):
        with pytest.raises(train.NonFiniteLoss) as e:
            call(nan_head(digits))
        message = one_line(e)
        assert "the loss is nan at epoch 1 of " in message and ", step 1 (batch 1 of 20)" in message, message


def test_the_lagrangian_stops_on_a_nan_penalty(digits, monkeypatch):
    from mcviz import _search

    monkeypatch.setattr(_search, "penalty", lambda model, kind: torch.tensor(float("nan")))
    with pytest.raises(FloatingPointError, match=r"the loss is nan at epoch 1 of 1, step 1 \(batch 1 of"):
        mcv.tradeoff.lagrangian("mlp", digits, lambdas=[1.0], epochs=1)


def test_a_loss_that_becomes_infinite_stops_before_the_step_that_would_poison_the_weights(digits):
    model = tiny(digits)
    seen = []  # the weights each step started from

    def loss(logits, batch):
        seen.append(state(model))
        if len(seen) == 3:
            return torch.tensor(float("inf"))
        return torch.nn.functional.cross_entropy(logits, batch.y)

    with pytest.raises(train.NonFiniteLoss) as e:
        mcv.train.fit(model, digits, epochs=3, progress=False, loss=loss)
    assert "the loss is inf at epoch 1 of 3, step 3 (batch 3 of 20)" in one_line(e)
    assert same(seen[2], state(model)) and not same(seen[1], seen[2])  # step 2 was taken, step 3 not


# ---------------------------------------------------------------- the caches trust no bad entry (item 1)

NAMES = {"model": "mlp", "epochs": 1, "seed": 0}


def row_path(digits, spec="fp16") -> Path:
    return engine.cache_path(engine.cache_key(NAMES, digits, spec))


def tamper_row(path: Path, change) -> None:
    entry = json.loads(path.read_text())
    change(entry)
    path.write_text(json.dumps(entry))


def set_field(name, value):
    return lambda entry: entry["row"].__setitem__(name, value)


ROW_TAMPERING = {
    "accuracy a string": set_field("accuracy", "banana"),
    "accuracy above 1": set_field("accuracy", 1.5),
    "accuracy NaN": set_field("accuracy", math.nan),
    "accuracy missing": set_field("accuracy", None),
    "params negative": set_field("params", -1),
    "params a float": set_field("params", 10.5),
    "params a bool": set_field("params", True),
    "nonzero above params": set_field("nonzero_params", 10**9),
    "sparsity above 1": set_field("sparsity", 2.0),
    "bits infinite": set_field("bits", math.inf),
    "size a string": set_field("size_bytes", "big"),
    "macs missing": set_field("macs", None),
    "a timing": set_field("latency_ms", 1.0),
    "label not a str": set_field("label", 3),
    "a field too many": set_field("extra", 1),
    "a field missing": lambda entry: entry["row"].pop("gzip_bytes"),
    "another key": lambda entry: entry.__setitem__("key", "0" * 64),
    "another format": lambda entry: entry.__setitem__("format", engine.CACHE_FORMAT - 1),
    "no format": lambda entry: entry.pop("format"),
    "row a list": lambda entry: entry.__setitem__("row", [1, 2]),
}


@pytest.fixture
def fresh_row(digits, digits_mlp, cache_dir):
    return engine.run(digits_mlp, digits, ["fp16"], cache=NAMES).table


@pytest.mark.parametrize("tampering", list(ROW_TAMPERING))
def test_a_tampered_row_is_recomputed_with_a_warning(digits, digits_mlp, fresh_row, tampering):
    path = row_path(digits)
    tamper_row(path, ROW_TAMPERING[tampering])
    with pytest.warns(UserWarning, match=r"cache entry .* is unreadable \(.*\); recomputing"):
        table = engine.run(digits_mlp, digits, ["fp16"], cache=NAMES).table
    pd.testing.assert_frame_equal(table, fresh_row)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = engine.run(lambda: pytest.fail("recomputed"), digits, ["fp16"], cache=NAMES).table
    pd.testing.assert_frame_equal(table, fresh_row)  # the file was rewritten with the fresh row


def test_a_row_file_too_large_is_refused_unread(digits, digits_mlp, fresh_row, monkeypatch):
    path = row_path(digits)
    path.write_bytes(b" " * (engine.ROW_LIMIT + 1))
    monkeypatch.setattr(json, "loads", lambda *a, **k: pytest.fail("parsed"))
    with pytest.warns(UserWarning, match="more than the 1,048,576 an entry of this kind can hold"):
        engine._load(engine.cache_key(NAMES, digits, "fp16"), "fp16")


def test_the_search_never_picks_a_tampered_row(digits, cache_dir):
    space = ["fp16", "weights:bits=2"]
    honest = mcv.tradeoff.search("mlp", digits, space=space, epochs=1, fraction=1.0)
    tamper_row(row_path(digits, honest.choice["spec"]), set_field("accuracy", "banana"))  # the best row
    with pytest.warns(UserWarning, match="accuracy must be a number in"):
        again = mcv.tradeoff.search("mlp", digits, space=space, epochs=1, fraction=1.0)
    pd.testing.assert_frame_equal(again.table, honest.table)
    assert again.choice["label"] == honest.choice["label"]


def test_a_measurement_checks_its_own_fields(digits_mlp, digits):
    good = mcv.measure.model(digits_mlp, digits)
    fields = good.__dict__
    for name, value, error in [("accuracy", "banana", TypeError), ("accuracy", -0.1, ValueError),
                               ("params", 1.5, TypeError), ("sparsity", math.nan, ValueError),
                               ("threads", 1, ValueError), ("label", None, TypeError)]:  # fmt: skip
        with pytest.raises(error) as e:
            measure.Measurement(**{**fields, name: value})
        assert name in one_line(e)


def test_decide_refuses_a_table_whose_numbers_are_not_numbers():
    table = pd.DataFrame({"label": ["baseline", "x"], "size_bytes": [100, 10], "accuracy": [0.9, "banana"]})
    for call in (mcv.tradeoff.pareto, mcv.tradeoff.decide):
        with pytest.raises(ValueError) as e:
            call(table)
        assert one_line(e) == "the table's accuracy column must hold finite numbers, got 'banana' in row 'x'"
    table["accuracy"] = [0.9, None]  # missing is allowed: the row has no accuracy
    assert mcv.tradeoff.pareto(table)["label"].tolist() == ["baseline"]


BASELINE_TAMPERING = {
    "not a checkpoint": lambda entry, path: path.write_bytes(b"not a checkpoint"),
    "a NaN weight": lambda entry, path: entry["state_dict"]["fc1.weight"].__setitem__((0, 0), math.nan),
    "an infinite bias": lambda entry, path: entry["state_dict"]["fc2.bias"].__setitem__(0, math.inf),
    "float64 weights": lambda entry, path: entry["state_dict"].__setitem__(
        "fc1.weight", entry["state_dict"]["fc1.weight"].double()),
    "a tensor too many": lambda entry, path: entry["state_dict"].__setitem__("extra", torch.zeros(1)),
    "another shape": lambda entry, path: entry["state_dict"].__setitem__("fc2.bias", torch.zeros(3)),
    "another key": lambda entry, path: entry.__setitem__("key", "0" * 64),
    "another format": lambda entry, path: entry.__setitem__("format", train.CACHE_FORMAT - 1),
    "history loss a string": lambda entry, path: entry["history"]["loss"].__setitem__(0, "banana"),
    "history accuracy above 1": lambda entry, path: entry["history"]["val_accuracy"].__setitem__(0, 7.0),
    "history loss NaN": lambda entry, path: entry["history"]["loss"].__setitem__(0, math.nan),
    "history too short": lambda entry, path: [v.pop() for v in entry["history"].values()],
    "history without a column": lambda entry, path: entry["history"].pop("val_accuracy"),
}  # fmt: skip


@pytest.mark.parametrize("tampering", list(BASELINE_TAMPERING))
def test_a_tampered_baseline_is_retrained_with_a_warning(digits, cache_dir, tampering):
    first, history = mcv.train.baseline("mlp", digits, epochs=1, progress=False, return_history=True)
    (path,) = cache_dir.glob("baseline-*.pt")
    entry = torch.load(path, weights_only=True)
    BASELINE_TAMPERING[tampering](entry, path)
    if tampering != "not a checkpoint":
        torch.save(entry, path)
    with pytest.warns(UserWarning, match=r"cache entry .* is unreadable \(.*\); retraining"):
        again, again_history = mcv.train.baseline(
            "mlp", digits, epochs=1, progress=False, return_history=True
        )
    assert same(state(first), state(again))
    pd.testing.assert_frame_equal(history, again_history)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mcv.train.baseline("mlp", digits, epochs=1, progress=False)  # rewritten: trusted again


def test_a_baseline_file_too_large_is_refused_unread(digits, cache_dir, monkeypatch):
    mcv.train.baseline("mlp", digits, epochs=1, progress=False)
    (path,) = cache_dir.glob("baseline-*.pt")
    path.write_bytes(b"\0" * (2 * path.stat().st_size + 2**20))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("loaded"))
    with pytest.warns(UserWarning, match="an entry of this kind can hold"):
        mcv.train.baseline("mlp", digits, epochs=1, progress=False)


# ---------------------------------------------------------------- a cache folder not writable (item 4)


def blocked_folders(tmp_path, monkeypatch):
    """The ways a cache folder can be unusable, as (label, set it up)."""

    def a_file():
        path = tmp_path / "a-file"
        path.write_text("x")
        monkeypatch.setenv("MCVIZ_CACHE_DIR", str(path))

    def under_a_file():
        path = tmp_path / "b-file"
        path.write_text("x")
        monkeypatch.setenv("MCVIZ_CACHE_DIR", str(path / "cache"))

    def read_only():  # chmod does not stop root (as CI may run): refuse the writes themselves
        (tmp_path / "ro").mkdir()
        monkeypatch.setenv("MCVIZ_CACHE_DIR", str(tmp_path / "ro"))

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied", str(tmp_path / "ro"))

        monkeypatch.setattr(_cache.tempfile, "mkstemp", refuse)

    def blocked():  # a folder the user may not even look into
        monkeypatch.setenv("MCVIZ_CACHE_DIR", str(tmp_path / "no-access-here" / "cache"))
        real_is_file, real_mkdir = Path.is_file, Path.mkdir

        def guard(real):
            def call(self, *args, **kwargs):
                if "no-access-here" in str(self):
                    raise PermissionError(13, "Permission denied", str(self))
                return real(self, *args, **kwargs)

            return call

        monkeypatch.setattr(Path, "is_file", guard(real_is_file))
        monkeypatch.setattr(Path, "mkdir", guard(real_mkdir))

    return {"a file": a_file, "under a file": under_a_file, "read-only": read_only, "blocked": blocked}


@pytest.mark.parametrize("folder", ["a file", "under a file", "read-only", "blocked"])
def test_an_unusable_cache_folder_degrades_to_no_cache_with_one_warning(digits, tmp_path, monkeypatch,
                                                                          folder):  # fmt: skip
    monkeypatch.setattr(_cache, "_WARNED", set())
    blocked_folders(tmp_path, monkeypatch)[folder]()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.warns(UserWarning) as record:
        result = mcv.tradeoff.search("mlp", digits, space=["fp16", "weights:bits=4"], epochs=1, fraction=1.0)
    messages = [str(w.message) for w in record if "cannot be written" in str(w.message)]
    assert len(messages) == 1 and "continuing without a cache" in messages[0], messages
    assert result.choice is not None and len(result.table) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per folder and process: none now
        assert isinstance(mcv.train.baseline("mlp", digits, epochs=1, progress=False), nn.Module)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, no temporary file


def test_the_warning_comes_once_per_folder(digits, digits_mlp, tmp_path, monkeypatch):
    monkeypatch.setattr(_cache, "_WARNED", set())
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("MCVIZ_CACHE_DIR", str(tmp_path / "f"))
    with pytest.warns(UserWarning, match="cannot be written"):
        engine.run(digits_mlp, digits, ["fp16"], cache=NAMES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine.run(digits_mlp, digits, ["fp16", "weights:bits=4"], cache=NAMES)  # still works, silently
    monkeypatch.setenv("MCVIZ_CACHE_DIR", str(tmp_path / "f" / "other"))
    with pytest.warns(UserWarning, match="cannot be written"):
        engine.run(digits_mlp, digits, ["fp16"], cache=NAMES)  # another folder: its own warning


# ---------------------------------------------------------------- lists of values


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: mcv.tradeoff.grid(sparsities="0.5"), TypeError, "sparsities must be a list of numbers"),
        (lambda: mcv.tradeoff.grid(sparsities=[0.5, math.nan]), ValueError, "sparsities[1] must be a finite"),
        (lambda: mcv.tradeoff.grid(bits=[4.0]), TypeError, "bits[0] must be an int, got 4.0"),
        (lambda: mcv.sweeps.pruning_specs(0.5, ["random"], []), TypeError, "sparsities must be a list"),
        (lambda: mcv.sweeps.pruning_specs([2.0], ["random"], []), ValueError, "sparsities[0] must be"),
        (lambda: mcv.sweeps.pruning_specs([0.5], "random", []), TypeError, "methods must be a list"),
        (lambda: mcv.sweeps.quantization_specs(["weights"], 4, ["per_tensor"]), TypeError, "bits must be a"),
        (lambda: mcv.sweeps.quantization_specs(["weights"], [], ["per_tensor"]), ValueError, "non-empty"),
        (lambda: mcv.distill.soft_targets(nn.Linear(2, 2), torch.zeros(1, 2), temperatures=[]), ValueError,
         "temperatures must be a non-empty list"),
    ],
)  # fmt: skip
def test_list_arguments_are_checked_item_by_item(call, error, message):
    with pytest.raises(error) as e:
        call()
    assert message in one_line(e)


def test_a_huge_value_is_shortened_in_the_message(digits):
    for call in (lambda v: mcv.train.fit(tiny(digits), digits, epochs=v),
                 lambda v: mcv.models.build(v, input_shape=(1, 8, 8)),
                 lambda v: mcv.data.load(v),
                 lambda v: mcv.engine.run(tiny(digits), digits, v)):  # fmt: skip
        with pytest.raises((TypeError, ValueError)) as e:
            call("x" * 10**6)
        assert len(one_line(e)) < 300 and "1,000,002 characters" in one_line(e)


def test_checks_leave_the_shared_model_alone(digits, digits_mlp):
    before = copy.deepcopy(digits_mlp.state_dict())
    with pytest.raises(ValueError):
        mcv.train.fit(digits_mlp, digits, epochs=0)
    assert same(before, digits_mlp.state_dict())
