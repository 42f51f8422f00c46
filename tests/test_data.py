"""Unit tests of mcviz.data: bundled data sets, splits, fingerprints, loaders, IDX files, arrays."""

from __future__ import annotations

import dataclasses
import gzip
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import one_line

import mcviz as mcv
from mcviz import data as mdata


def class_counts(bundle, split: str, k: int = 10) -> np.ndarray:
    return np.bincount(bundle.split(split).tensors[1].numpy(), minlength=k)


# ---------------------------------------------------------------- bundled data sets


@pytest.mark.parametrize(
    ("name", "shape", "sizes"),
    [
        ("digits", (1, 8, 8), (1258, 180, 359)),
        ("mnist5k", (1, 28, 28), (3500, 500, 1000)),
    ],
)
def test_load_split_sizes(name, shape, sizes, request):
    bundle = request.getfixturevalue(name)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == sizes


@pytest.mark.parametrize(("name", "shape"), [("digits", (1, 8, 8)), ("mnist5k", (1, 28, 28))])
def test_load_shapes_and_dtypes(name, shape, request):
    bundle = request.getfixturevalue(name)
    assert bundle.input_shape == shape
    assert bundle.num_classes == 10
    for split in mdata.SPLITS:
        X, y = bundle.split(split).tensors
        assert X.shape[1:] == shape
        assert X.dtype == torch.float32
        assert y.dtype == torch.int64
        assert y.shape == (len(X),)


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_load_values_in_unit_range(name, request):
    bundle = request.getfixturevalue(name)
    X = torch.cat([bundle.split(s).tensors[0] for s in mdata.SPLITS])
    assert float(X.min()) == 0.0
    assert float(X.max()) == 1.0


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_load_labels_cover_all_classes_in_every_split(name, request):
    bundle = request.getfixturevalue(name)
    for split in mdata.SPLITS:
        assert (class_counts(bundle, split) > 0).all()


@pytest.mark.parametrize("split", ["val", "test"])
def test_mnist5k_split_is_stratified(mnist5k, split):
    total = sum(class_counts(mnist5k, s) for s in mdata.SPLITS)
    expected = total * len(mnist5k.split(split)) / total.sum()
    assert np.abs(class_counts(mnist5k, split) - expected).max() <= 1


def test_digits_split_is_stratified(digits):
    total = sum(class_counts(digits, s) for s in mdata.SPLITS)
    expected = total * len(digits.test) / total.sum()
    assert np.abs(class_counts(digits, "test") - expected).max() <= 1


def test_splits_are_disjoint_and_cover_the_data(digits):
    from sklearn.datasets import load_digits

    rows = {tuple(x.flatten().tolist()) for s in mdata.SPLITS for x in digits.split(s).tensors[0]}
    original = {tuple((x / 16.0).astype(np.float32).flatten().tolist()) for x in load_digits().images}
    assert rows == original
    assert len(digits) == 1797


def test_same_split_seed_gives_the_same_split(digits):
    again = mcv.data.load("digits", split_seed=0)
    for split in mdata.SPLITS:
        for a, b in zip(digits.split(split).tensors, again.split(split).tensors, strict=True):
            assert torch.equal(a, b)


def test_other_split_seed_changes_the_split(digits):
    other = mcv.data.load("digits", split_seed=1)
    assert not torch.equal(digits.test.tensors[0], other.test.tensors[0])


def test_fingerprint_is_stable(digits):
    assert mcv.data.load("digits").fingerprint == digits.fingerprint
    assert re.fullmatch(r"[0-9a-f]{64}", digits.fingerprint)


def test_fingerprint_changes_with_split_seed(digits):
    assert mcv.data.load("digits", split_seed=1).fingerprint != digits.fingerprint


def test_fingerprint_changes_with_one_pixel():
    X = np.random.default_rng(0).random((40, 4, 4)).astype(np.float32)
    y = np.arange(40) % 4
    before = mcv.data.from_arrays(X, y).fingerprint
    X[7, 1, 2] += 0.25
    assert mcv.data.from_arrays(X, y).fingerprint != before


def test_fingerprint_changes_with_one_label():
    X = np.random.default_rng(0).random((40, 4, 4)).astype(np.float32)
    y = np.arange(40) % 4
    before = mcv.data.from_arrays(X, y).fingerprint
    y[0] = 3 - y[0]
    assert mcv.data.from_arrays(X, y).fingerprint != before


def test_databundle_is_frozen(digits):
    with pytest.raises(dataclasses.FrozenInstanceError):
        digits.num_classes = 3


def test_split_rejects_unknown_name(digits):
    with pytest.raises(ValueError, match="'validation'") as e:
        digits.split("validation")
    assert "'train', 'val', 'test'" in one_line(e)


def test_load_unknown_name():
    with pytest.raises(ValueError, match="unknown data set 'cifar10'") as e:
        mcv.data.load("cifar10")
    assert "digits" in one_line(e)


SEEDS = "must be an int in [0, 4,294,967,295], got"


@pytest.mark.parametrize(
    ("bad", "error"),
    [(-1, ValueError), (2**32, ValueError), (8589934592, ValueError), (1.5, TypeError), ("0", TypeError),
     (True, TypeError)],
)  # fmt: skip
def test_load_rejects_bad_split_seed(bad, error):
    with pytest.raises(error, match=re.escape(f"split_seed {SEEDS} {bad!r}")) as e:
        mcv.data.load("digits", split_seed=bad)
    one_line(e)


# ---------------------------------------------------------------- loaders


def test_loader_batch_size(digits):
    batches = list(digits.loader("train", batch_size=100))
    assert [len(b[1]) for b in batches] == [100] * 12 + [58]


def test_loader_without_shuffle_keeps_order(digits):
    labels = torch.cat([y for _, y in digits.loader("val", batch_size=32)])
    assert torch.equal(labels, digits.val.tensors[1])


def test_loader_shuffle_with_seed_is_reproducible(digits):
    def order(seed):
        return torch.cat([y for _, y in digits.loader("train", shuffle=True, seed=seed)])

    assert torch.equal(order(3), order(3))


def test_loader_shuffle_seed_changes_order(digits):
    def order(seed):
        return torch.cat([x.flatten(1) for x, _ in digits.loader("train", shuffle=True, seed=seed)])

    assert not torch.equal(order(3), order(4))


def test_loader_shuffle_keeps_all_examples(digits):
    labels = torch.cat([y for _, y in digits.loader("train", shuffle=True, seed=0)])
    assert torch.equal(labels.sort().values, digits.train.tensors[1].sort().values)


@pytest.mark.parametrize(("bad", "error"), [(0, ValueError), (-5, ValueError), (10**7, ValueError),
                                            (2.0, TypeError), (True, TypeError)])  # fmt: skip
def test_loader_rejects_bad_batch_size(digits, bad, error):
    with pytest.raises(error, match=re.escape(f"got {bad!r}")) as e:
        digits.loader("train", batch_size=bad)
    one_line(e)


# ---------------------------------------------------------------- IDX files


def write_idx(path: Path, array: np.ndarray, code: int = 0x08) -> Path:
    """Writes ``array`` as an IDX file (gzipped when the name ends in .gz)."""
    dtype = {0x08: np.uint8, 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4")}[code]
    raw = (
        bytes([0, 0, code, array.ndim])
        + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
        + array.astype(dtype).tobytes()
    )
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def fake_mnist(n: int, seed: int = 0, size: int = 6):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    X[0, 0, 0], X[0, 0, 1] = 0, 255  # the full range appears
    y = (np.arange(n) % 10).astype(np.uint8)
    return X, y


def write_split(root: Path, prefix: str, X, y, gz: bool = False) -> None:
    ext = ".gz" if gz else ""
    write_idx(root / f"{prefix}-images-idx3-ubyte{ext}", X)
    write_idx(root / f"{prefix}-labels-idx1-ubyte{ext}", y)


@pytest.fixture
def idx_root(tmp_path):
    X, y = fake_mnist(100)
    write_split(tmp_path, "train", X, y)
    return tmp_path


def test_read_idx_round_trip(tmp_path):
    X, _ = fake_mnist(5)
    assert np.array_equal(mdata.read_idx(write_idx(tmp_path / "a-idx3-ubyte", X)), X)


def test_read_idx_gzip_round_trip(tmp_path):
    X, _ = fake_mnist(5)
    assert np.array_equal(mdata.read_idx(write_idx(tmp_path / "a-idx3-ubyte.gz", X)), X)


@pytest.mark.parametrize("code", [0x0C, 0x0D])
def test_read_idx_big_endian_types(tmp_path, code):
    values = np.array([[1, -2, 300], [4, 5, -70000]])
    out = mdata.read_idx(write_idx(tmp_path / "v-idx2", values, code))
    assert out.tolist() == values.tolist()


def test_load_idx_train_only_is_split_seventy_ten_twenty(idx_root):
    bundle = mcv.data.load("idx", root=idx_root)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (70, 10, 20)


def test_load_idx_train_only_shapes_and_range(idx_root):
    bundle = mcv.data.load("idx", root=idx_root)
    X, y = bundle.train.tensors
    assert bundle.name == "idx"
    assert bundle.input_shape == (1, 6, 6)
    assert (X.dtype, y.dtype) == (torch.float32, torch.int64)
    all_x = torch.cat([bundle.split(s).tensors[0] for s in mdata.SPLITS])
    assert (float(all_x.min()), float(all_x.max())) == (0.0, 1.0)


def test_load_idx_gzip_equals_plain(tmp_path, idx_root):
    gz_root = tmp_path / "gz"
    gz_root.mkdir()
    write_split(gz_root, "train", *fake_mnist(100), gz=True)
    plain, packed = mcv.data.load("idx", root=idx_root), mcv.data.load("idx", root=gz_root)
    assert plain.fingerprint == packed.fingerprint


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_t10k_is_the_test_split(tmp_path, gz):
    X, y = fake_mnist(100)
    Xt, yt = fake_mnist(30, seed=1)
    write_split(tmp_path, "train", X, y, gz=gz)
    write_split(tmp_path, "t10k", Xt, yt, gz=gz)
    bundle = mcv.data.load("idx", root=tmp_path)
    assert torch.equal(bundle.test.tensors[0], torch.from_numpy(Xt[:, None] / np.float32(255)))
    assert torch.equal(bundle.test.tensors[1], torch.from_numpy(yt.astype(np.int64)))


def test_load_idx_with_t10k_takes_val_from_train(tmp_path):
    write_split(tmp_path, "train", *fake_mnist(100))
    write_split(tmp_path, "t10k", *fake_mnist(30, seed=1))
    bundle = mcv.data.load("idx", root=tmp_path)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (90, 10, 30)


def test_load_idx_needs_root():
    with pytest.raises(ValueError, match="root=") as e:
        mcv.data.load("idx")
    one_line(e)


def test_load_idx_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere") as e:
        mcv.data.load("idx", root=missing)
    one_line(e)


def test_load_idx_missing_file(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", fake_mnist(10)[0])
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte") as e:
        mcv.data.load("idx", root=tmp_path)
    one_line(e)


def test_load_idx_t10k_images_without_labels(idx_root):
    write_idx(idx_root / "t10k-images-idx3-ubyte", fake_mnist(10)[0])
    with pytest.raises(FileNotFoundError, match="t10k-labels") as e:
        mcv.data.load("idx", root=idx_root)
    one_line(e)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent-idx1-ubyte") as e:
        mdata.read_idx(tmp_path / "absent-idx1-ubyte")
    one_line(e)


def test_read_idx_bad_magic_number(tmp_path):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(bytes([0x1F, 0x8B, 0x08, 0x01]) + bytes(8))
    with pytest.raises(ValueError, match="0x1f8b0801") as e:
        mdata.read_idx(path)
    one_line(e)


def test_read_idx_empty_file(tmp_path):
    path = tmp_path / "empty-idx1-ubyte"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty-idx1-ubyte") as e:
        mdata.read_idx(path)
    one_line(e)


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + (100).to_bytes(4, "big"))
    with pytest.raises(ValueError, match="truncated: its header needs 16 bytes, the file has 8") as e:
        mdata.read_idx(path)
    one_line(e)


def test_read_idx_truncated_data(tmp_path):
    path = write_idx(tmp_path / "cut-idx3-ubyte", fake_mnist(10)[0])
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"truncated: shape \(10, 6, 6\) needs 376 bytes") as e:
        mdata.read_idx(path)
    one_line(e)


def test_read_idx_corrupt_gzip(tmp_path):
    path = write_idx(tmp_path / "cut-idx3-ubyte.gz", fake_mnist(10)[0])
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(ValueError, match="cut-idx3-ubyte.gz") as e:
        mdata.read_idx(path)
    one_line(e)


def test_load_idx_count_mismatch(tmp_path):
    X, y = fake_mnist(10)
    write_idx(tmp_path / "train-images-idx3-ubyte", X)
    write_idx(tmp_path / "train-labels-idx1-ubyte", y[:9])
    with pytest.raises(ValueError, match="has 10 images but .* has 9 labels") as e:
        mcv.data.load("idx", root=tmp_path)
    one_line(e)


def test_load_idx_labels_with_two_dims(tmp_path):
    X, y = fake_mnist(10)
    write_idx(tmp_path / "train-images-idx3-ubyte", X)
    write_idx(tmp_path / "train-labels-idx1-ubyte", y.reshape(10, 1))
    with pytest.raises(ValueError, match=r"1-D vector of integer labels, got uint8 \(10, 1\)") as e:
        mcv.data.load("idx", root=tmp_path)
    one_line(e)


def test_load_idx_images_with_wrong_dtype(tmp_path):
    X, y = fake_mnist(10)
    write_idx(tmp_path / "train-images-idx3-ubyte", X, code=0x0C)
    write_idx(tmp_path / "train-labels-idx1-ubyte", y)
    with pytest.raises(ValueError, match=r"uint8 or float images .*got >i4 \(10, 6, 6\)") as e:
        mcv.data.load("idx", root=tmp_path)
    one_line(e)


def test_load_idx_images_with_wrong_dims(tmp_path):
    X, y = fake_mnist(10)
    write_idx(tmp_path / "train-images-idx3-ubyte", X.reshape(10, 36))
    write_idx(tmp_path / "train-labels-idx1-ubyte", y)
    with pytest.raises(ValueError, match=r"\(10, 36\)") as e:
        mcv.data.load("idx", root=tmp_path)
    one_line(e)


def test_load_idx_float_labels_are_rejected(tmp_path):
    X, y = fake_mnist(10)
    write_idx(tmp_path / "train-images-idx3-ubyte", X)
    write_idx(tmp_path / "train-labels-idx1-ubyte", y + 0.5, code=0x0D)
    with pytest.raises(ValueError, match=r"integer labels, got >f4 \(10,\)") as e:
        mcv.data.load("idx", root=tmp_path)
    one_line(e)


def test_load_idx_t10k_image_size_mismatch(idx_root):
    write_split(idx_root, "t10k", *fake_mnist(20, size=5))
    with pytest.raises(ValueError, match=r"\(5, 5\).*\(6, 6\)") as e:
        mcv.data.load("idx", root=idx_root)
    one_line(e)


# ---------------------------------------------------------------- from_arrays


def arrays(n: int = 50, shape=(4, 4)):
    X = np.random.default_rng(0).random((n, *shape)).astype(np.float32)
    return X, np.arange(n) % 5


def test_from_arrays_adds_channel_dim():
    bundle = mcv.data.from_arrays(*arrays())
    assert bundle.input_shape == (1, 4, 4)


def test_from_arrays_keeps_feature_vectors_flat():
    bundle = mcv.data.from_arrays(*arrays(shape=(12,)))
    assert bundle.input_shape == (12,)


def test_from_arrays_scales_uint8_by_255():
    X = np.full((20, 2, 2), 255, dtype=np.uint8)
    bundle = mcv.data.from_arrays(X, np.arange(20) % 2)
    assert float(bundle.train.tensors[0].max()) == 1.0


def test_from_arrays_leaves_floats_unscaled():
    X, y = arrays()
    bundle = mcv.data.from_arrays(X, y, split=(30, 10, 10))
    got = torch.cat([bundle.split(s).tensors[0] for s in mdata.SPLITS]).flatten().sort().values
    assert torch.equal(got, torch.from_numpy(X).flatten().sort().values)


def test_from_arrays_split_counts():
    bundle = mcv.data.from_arrays(*arrays(), split=(30, 10, 10), name="mine")
    assert (bundle.name, len(bundle.train), len(bundle.val), len(bundle.test)) == ("mine", 30, 10, 10)


def test_from_arrays_split_is_stratified():
    bundle = mcv.data.from_arrays(*arrays(), split=(30, 10, 10))
    assert class_counts(bundle, "test", 5).tolist() == [2] * 5


@pytest.mark.parametrize(
    ("X", "pattern"),
    [
        (np.zeros((10, 4, 4), dtype=np.complex64), "dtype complex64"),
        (np.zeros((10, 4, 4), dtype=bool), "dtype bool"),
        (np.zeros((10, 4, 4), dtype=np.float16), "dtype float16"),
        (np.array([["a"] * 4] * 10), "dtype <U1"),
    ],
)
def test_from_arrays_rejects_wrong_dtype(X, pattern):
    with pytest.raises(ValueError, match=re.escape(pattern)) as e:
        mcv.data.from_arrays(X, np.arange(10) % 2)
    one_line(e)


@pytest.mark.parametrize("shape", [(10,), (10, 1, 1, 4, 4)])
def test_from_arrays_rejects_wrong_shape(shape):
    with pytest.raises(ValueError, match=re.escape(f"got shape {shape}")) as e:
        mcv.data.from_arrays(np.zeros(shape, dtype=np.float32), np.arange(10) % 2)
    one_line(e)


def test_from_arrays_rejects_length_mismatch():
    X, y = arrays()
    with pytest.raises(ValueError, match="X has 50 examples but y has 49 labels") as e:
        mcv.data.from_arrays(X, y[:-1])
    one_line(e)


def test_from_arrays_rejects_nan():
    X, y = arrays()
    X[3, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN") as e:
        mcv.data.from_arrays(X, y)
    one_line(e)


def test_from_arrays_rejects_float_labels():
    X, y = arrays()
    with pytest.raises(ValueError, match="dtype float64") as e:
        mcv.data.from_arrays(X, y.astype(float))
    one_line(e)


def test_from_arrays_rejects_negative_labels():
    X, y = arrays()
    y[4] = -1
    with pytest.raises(ValueError, match="-1") as e:
        mcv.data.from_arrays(X, y)
    one_line(e)


def test_from_arrays_rejects_label_above_num_classes():
    X, y = arrays()
    with pytest.raises(ValueError, match="num_classes=3, got a label 4") as e:
        mcv.data.from_arrays(X, y, num_classes=3)
    one_line(e)


@pytest.mark.parametrize(
    ("split", "pattern"),
    [
        ((0.8, 0.2), "three parts"),
        ((0.6, 0.3, 0.3), "sum to 1"),
        ((0.9, 0.0, 0.1), "> 0"),
        ((30, 10, 5), "sum to 50"),
        ((40, 10, 0), "sum to 50"),
    ],
)
def test_from_arrays_rejects_bad_split(split, pattern):
    with pytest.raises(ValueError, match=re.escape(pattern)) as e:
        mcv.data.from_arrays(*arrays(), split=split)
    assert repr(split) in one_line(e)


@pytest.mark.parametrize(("bad", "error"), [(-1, ValueError), (1.5, TypeError), ("a", TypeError),
                                            (True, TypeError)])  # fmt: skip
def test_loader_rejects_bad_seed(digits, bad, error):
    with pytest.raises(error, match=re.escape(f"seed {SEEDS} {bad!r}")) as e:
        digits.loader("train", shuffle=True, seed=bad)
    one_line(e)


def test_from_arrays_rejects_empty_arrays():
    with pytest.raises(ValueError, match="empty") as e:
        mcv.data.from_arrays(np.zeros((0, 4, 4)), np.zeros(0, dtype=int))
    one_line(e)


def test_read_idx_zero_dimensions(tmp_path):
    path = tmp_path / "flat-idx0-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 0]))
    with pytest.raises(ValueError, match="0 dimensions .*0x00000800") as e:
        mdata.read_idx(path)
    one_line(e)


@pytest.mark.parametrize("split", [None, "0.7,0.1,0.2", (0.7, 0.1, "x"), (0.7, 0.1, None)])
def test_from_arrays_rejects_split_of_wrong_type(split):
    with pytest.raises(TypeError, match=re.escape(repr(split))) as e:
        mcv.data.from_arrays(*arrays(), split=split)
    one_line(e)


def test_from_arrays_rejects_too_few_examples_for_three_splits():
    with pytest.raises(ValueError, match="of 2 examples leaves no training examples") as e:
        mcv.data.from_arrays(np.zeros((2, 4)), np.array([0, 1]))
    one_line(e)


@pytest.mark.parametrize(("scale", "error"), [(0, ValueError), (-255, ValueError), (float("inf"), ValueError),
                                              ("255", TypeError), (True, TypeError)])  # fmt: skip
def test_from_arrays_rejects_bad_scale(scale, error):
    with pytest.raises(error, match=re.escape(f"got {scale!r}")) as e:
        mcv.data.from_arrays(*arrays(), scale=scale)
    one_line(e)


def test_from_arrays_scale_divides():
    X, y = arrays()
    bundle = mcv.data.from_arrays(X * 10, y, scale=10)
    got = torch.cat([bundle.split(s).tensors[0] for s in mdata.SPLITS])
    assert float(got.max()) == pytest.approx(float(X.max()))


@pytest.mark.parametrize(("k", "error"), [(2.5, TypeError), ("10", TypeError), (True, TypeError),
                                          (1, ValueError), (1001, ValueError)])  # fmt: skip
def test_from_arrays_rejects_bad_num_classes(k, error):
    with pytest.raises(error, match=re.escape(f"got {k!r}")) as e:
        mcv.data.from_arrays(*arrays(), num_classes=k)
    one_line(e)


# ---- labelled subsets (scarce labels for distillation) -----------------------------------------


def test_labelled_indices_are_a_stratified_reproducible_fraction(mnist5k):
    y = mnist5k.train.tensors[1]
    keep = mcv.data.labelled_indices(y.numpy(), 0.1, seed=0)
    assert len(keep) == 350 and torch.equal(keep, keep.sort().values)
    assert torch.equal(keep, mcv.data.labelled_indices(y.numpy(), 0.1, seed=0))
    assert not torch.equal(keep, mcv.data.labelled_indices(y.numpy(), 0.1, seed=1))
    assert y[keep].bincount().tolist() == [35] * 10  # mnist5k's train split is balanced


def test_subset_keeps_val_and_test_and_leaves_the_bundle_unchanged(digits):
    before = digits.train.tensors[0].clone()
    small = mcv.data.subset(digits, 0.2, seed=3)
    keep = mcv.data.labelled_indices(digits.train.tensors[1].numpy(), 0.2, seed=3)
    assert torch.equal(small.train.tensors[0], digits.train.tensors[0][keep])
    assert small.val is digits.val and small.test is digits.test
    assert small.fingerprint != digits.fingerprint and small.name == "digits[0.2]"
    assert torch.equal(digits.train.tensors[0], before)
    assert mcv.data.subset(digits, 1.0).train.tensors[0].shape == digits.train.tensors[0].shape


@pytest.mark.parametrize(
    ("fraction", "error"),
    [(0, ValueError), (-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError), (True, TypeError),
     ("0.1", TypeError)],
)  # fmt: skip
def test_subset_rejects_bad_fractions(digits, fraction, error):
    with pytest.raises(error, match=r"fraction must be a (finite )?number in \(0, 1\], got") as e:
        mcv.data.subset(digits, fraction)
    assert "\n" not in str(e.value)


def test_subset_rejects_a_non_bundle():
    with pytest.raises(TypeError, match="data must be a DataBundle from mcv.data.load .*, got list"):
        mcv.data.subset([1, 2], 0.5)
