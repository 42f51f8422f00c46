"""mcv.encode: Huffman codes and the entropy bound, relative indices, encoded layers (exact bytes
through mcv.measure), the packed file (lossless round trip) and every kind of bad file."""

from __future__ import annotations

import copy
import math
import zlib

import numpy as np
import pytest
import torch
from helpers import one_line
from torch import nn

import mcviz as mcv
from mcviz.encode import huffman, sparse
from mcviz.encode.pack import _CRC, _HEADER

# ---------------------------------------------------------------- Huffman and entropy


def test_huffman_lengths_of_a_known_histogram():
    counts = [5, 1, 1, 2]
    assert huffman.code_lengths(counts).tolist() == [1, 3, 3, 2]
    codes = huffman.canonical_codes([1, 3, 3, 2])
    words = [format(int(c), f"0{n}b") for c, n in zip(codes, [1, 3, 3, 2], strict=True)]
    assert words == ["0", "110", "111", "10"]
    assert huffman.entropy([1, 1, 2]) == 1.5
    assert huffman.entropy([7]) == 0.0 and huffman.code_lengths([0, 7]).tolist() == [0, 1]


@pytest.mark.parametrize("seed", range(4))
def test_huffman_round_trip_is_within_one_bit_of_the_entropy(seed):
    rng = np.random.default_rng(seed)
    x = np.minimum(rng.geometric(0.15 + 0.2 * seed, size=5000) - 1, 63)
    counts = huffman.counts_of(x, 64)
    lengths = huffman.code_lengths(counts)
    assert sum(2.0 ** -int(n) for n in lengths if n) == pytest.approx(1.0)  # a complete prefix code
    data, nbits = huffman.encode(x, lengths)
    assert len(data) == math.ceil(nbits / 8) and nbits == huffman.coded_bits(counts, lengths)
    h = huffman.entropy(counts)
    assert h * len(x) <= nbits < (h + 1) * len(x)
    back, used = huffman.decode(data, lengths, len(x))
    assert np.array_equal(back, x) and used == nbits
    table, end = huffman.read_table(huffman.table_bytes(lengths))
    assert np.array_equal(table, lengths[: table.size]) and not lengths[table.size :].any()


def test_decode_of_a_short_stream_raises():
    lengths = huffman.code_lengths([3, 1, 1])
    data, _ = huffman.encode([0, 1, 2, 0, 0], lengths)
    with pytest.raises(huffman.StreamError, match="ends after"):
        huffman.decode(data[:0], lengths, 5)
    with pytest.raises(huffman.StreamError):
        huffman.decode(data, lengths, 50)


def test_code_table_is_sorted_and_reports_the_bound():
    table = mcv.encode.code_table([0, 0, 0, 1, 1, 2, 3])
    assert table.symbol.tolist() == [0, 1, 2, 3] and table.codeword.tolist() == ["0", "10", "110", "111"]
    assert table.attrs["average_length"] == pytest.approx(13 / 7)
    assert table.attrs["entropy"] <= table.attrs["average_length"]


# ---------------------------------------------------------------- relative indices


def test_relative_indices_of_the_papers_example():
    mask = np.zeros(16, dtype=bool)
    mask[[1, 4, 15]] = True
    entries = mcv.encode.relative_indices(mask, 3)
    assert entries.tolist() == [1, 2, 7, 3]  # gap 10 > 6: one filler (7), then 3
    assert mcv.encode.positions(entries, 3, 16).tolist() == [1, 4, 15]


@pytest.mark.parametrize("width", [2, 3, 5, 8, 12])
def test_relative_indices_round_trip(width):
    mask = np.random.default_rng(width).random((40, 70)) < 0.07
    entries = sparse.relative_indices(mask, width)
    assert entries.max() < 1 << width
    assert np.array_equal(sparse.positions(entries, width, mask.size), np.flatnonzero(mask))


def test_relative_indices_refuse_bad_input():
    with pytest.raises(ValueError, match=r"index_bits must be an int in \[2, 12\], got 1"):
        sparse.relative_indices(np.ones(4, dtype=bool), 1)
    with pytest.raises(ValueError, match="point at weight 6"):
        sparse.positions([6], 3, 5)
    with pytest.raises(ValueError, match=r"must be in \[0, 7\]"):
        sparse.positions([9], 3, 50)
    with pytest.raises(ValueError, match="end with a filler"):
        sparse.positions([1, 7], 3, 50)


# ---------------------------------------------------------------- encoded layers and measure


@pytest.fixture(scope="module")
def compressed(digits_mlp, digits):
    """The shared digits MLP pruned 80% and shared with 4-bit codes, and its encoded form."""
    spec = "magnitude:sparsity=0.8,scope=global + kmeans:bits=4"
    shared = mcv.compress(digits_mlp, *mcv.registry.parse(spec))
    return shared, mcv.encode.encoded(shared)


def test_encoding_changes_the_bytes_not_the_outputs(compressed, digits):
    shared, coded = compressed
    x = digits.test.tensors[0]
    assert torch.equal(shared.eval()(x), coded(x))
    before, after = mcv.measure.model(shared), mcv.measure.model(coded)
    assert after.size_bytes < before.size_bytes
    assert (after.params, after.sparsity) == (before.params, before.sparsity)
    assert 0 < after.bits < 4  # Huffman bits per kept weight, under the fixed 4
    assert type(shared.fc1) is mcv.quantize.KMeansLinear  # the input is left unchanged


def test_size_bytes_is_the_packed_file_less_its_header(compressed):
    _, coded = compressed
    size = mcv.measure.model(coded).size_bytes
    assert len(mcv.encode.pack(coded)) == size + mcv.encode.overhead(coded)
    for layer in (coded.fc1, coded.fc2):
        assert sum(r.nbytes for r in layer.mcviz_storage()) == sum(len(p.data) for p in layer.parts())


def test_streams_sit_above_their_entropy_bound(compressed):
    table = mcv.encode.streams(compressed[1])
    assert set(table.stream) == {"codes", "index"} and len(table) == 4
    assert (table.coded_bits >= table.entropy_bits - 1e-6).all()
    assert (table.coded_bits < table.entropy_bits + table.symbols).all()  # within one bit per symbol


def test_huffman_is_a_registered_method(digits_mlp, digits):
    spec = "magnitude:sparsity=0.8 + kmeans:bits=4 + huffman:index_bits=4"
    table, models = mcv.engine.run(digits_mlp, digits, ["magnitude:sparsity=0.8 + kmeans:bits=4", spec])
    assert table.size_bytes[1] < table.size_bytes[0] and table.accuracy[1] == table.accuracy[0]
    assert models[spec].fc1.index_bits == 4 and models[spec].fc1.huffman
    with pytest.raises(ValueError, match=r"index_bits must be an int in \[2, 12\], got 13"):
        mcv.registry.parse("huffman:index_bits=13")


def test_encoded_refuses_bad_options_and_copies_plain_models(digits_mlp):
    plain = mcv.encode.encoded(digits_mlp)  # nothing to code: a plain copy
    assert plain is not digits_mlp and type(plain.fc1) is nn.Linear
    pruned = mcv.prune.magnitude(digits_mlp, 0.5)
    with pytest.raises(ValueError, match="index_bits names 'fc9'"):
        mcv.encode.encoded(pruned, index_bits={"fc9": 4})
    with pytest.raises(ValueError, match=r"index_bits\['fc1'\] must be an int in \[2, 12\]"):
        mcv.encode.encoded(pruned, index_bits={"fc1": 20})
    with pytest.raises(TypeError, match="huffman must be True or False"):
        mcv.encode.encoded(pruned, huffman="yes")


# ---------------------------------------------------------------- the packed file


SPECS = [
    "",
    "magnitude:sparsity=0.7",
    "magnitude:sparsity=0.7 + huffman",
    "kmeans:bits=3",
    "magnitude:sparsity=0.7 + kmeans:bits=4 + huffman:index_bits=3",
    "magnitude:sparsity=0.5 + weights:bits=4,granularity=per_tensor + huffman",
    "ptq:bits=6,calibration_batches=1",
]


@pytest.fixture(scope="module")
def conv_model(digits):
    model = mcv.models.build("small_cnn", input_shape=digits.input_shape, width=4, seed=0)
    mcv.train.fit(model, digits, epochs=1, seed=0, progress=False)
    return model


@pytest.mark.parametrize("spec", SPECS)
def test_pack_unpack_gives_identical_outputs(spec, conv_model, digits):
    model = mcv.compress(conv_model, *(mcv.registry.parse(spec) if spec else ()), data=digits).eval()
    data = mcv.encode.pack(model)
    back = mcv.encode.unpack(data, like=conv_model)
    x = digits.test.tensors[0]
    assert torch.equal(back(x), model(x))
    assert [type(m) for m in back.modules()] == [type(m) for m in model.modules()]
    assert back.input_shape == model.input_shape
    assert mcv.encode.pack(back) == data  # a packed model packs to the same bytes


def test_save_and_load(tmp_path, compressed, digits):
    _, coded = compressed
    path = tmp_path / "model.mcz"
    assert mcv.encode.save(coded, path) == path.stat().st_size
    assert torch.equal(mcv.encode.load(path)(digits.test.tensors[0]), coded(digits.test.tensors[0]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.mcz"]


# ---------------------------------------------------------------- bad files, one class at a time


@pytest.fixture(scope="module")
def packed(compressed):
    return mcv.encode.pack(compressed[1])


@pytest.mark.parametrize("cut", [0, 5, 12, 13, 100, -5, -1])
def test_a_truncated_file_is_refused(packed, cut):
    with pytest.raises(mcv.encode.FormatError, match="truncated|not a packed mcviz model") as e:
        mcv.encode.unpack(packed[:cut])
    one_line(e)


@pytest.mark.parametrize("where", [9, 20, 200, -6])
def test_a_corrupted_byte_is_refused(packed, where):
    bad = bytearray(packed)
    bad[where] ^= 0x10
    with pytest.raises(mcv.encode.FormatError, match="corrupted|truncated|unexpected bytes") as e:
        mcv.encode.unpack(bytes(bad))
    one_line(e)


def test_a_file_of_another_format_is_refused(compressed, tmp_path):
    torch.save(compressed[0].state_dict(), tmp_path / "w.pt")
    for foreign in [(tmp_path / "w.pt").read_bytes(), b"\x89PNG\r\n\x1a\n" + bytes(40), b""]:
        with pytest.raises(mcv.encode.FormatError, match="not a packed mcviz model") as e:
            mcv.encode.unpack(foreign)
        one_line(e)
    with pytest.raises(TypeError, match="data must be bytes"):
        mcv.encode.unpack("model.mcz")


def test_another_version_and_trailing_bytes_are_refused(packed):
    newer = bytearray(packed)
    newer[8] = 2
    with pytest.raises(mcv.encode.FormatError, match="format version 2; this mcviz reads version 1"):
        mcv.encode.unpack(bytes(newer))
    with pytest.raises(mcv.encode.FormatError, match="4 unexpected bytes"):
        mcv.encode.unpack(packed + b"\0\0\0\0")


def test_content_that_does_not_decode_is_refused_even_with_a_valid_checksum(packed):
    payload = bytearray(packed[_HEADER.size : -_CRC.size])
    payload[-10] ^= 0xFF  # inside the last layer's section: its bias, or a stream
    payload = payload[:-3]  # and a section cut short
    head = _HEADER.pack(mcv.encode.MAGIC, mcv.encode.FORMAT_VERSION, len(payload)) + bytes(payload)
    forged = head + _CRC.pack(zlib.crc32(head))
    with pytest.raises(mcv.encode.FormatError, match="content does not decode") as e:
        mcv.encode.unpack(forged)
    one_line(e)


def test_a_model_encoding_mismatch_is_refused(packed, digits):
    other = mcv.models.build("mlp", input_shape=digits.input_shape, hidden=(16,), seed=0)
    with pytest.raises(mcv.encode.FormatError, match="not match the expected architecture at 'fc1'") as e:
        mcv.encode.unpack(packed, like=other)
    one_line(e)


class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x) * 2


def test_models_pack_cannot_store_are_refused_and_nothing_is_written(digits_mlp, tmp_path):
    cases = [
        (_Custom(), "pack stores nn.Sequential models, got _Custom"),
        (nn.Sequential(nn.Linear(4, 2), nn.GELU()), r"cannot store module '1' \(GELU\)"),
        (mcv.quantize.fp16(digits_mlp), "must hold float32 tensors"),
        (copy.deepcopy(digits_mlp).double(), "must hold float32 tensors"),
        (nn.Sequential(nn.ReLU()), "has no Linear or Conv2d layer"),
    ]
    for model, message in cases:
        with pytest.raises(ValueError, match=message) as e:
            mcv.encode.save(model, tmp_path / "x.mcz")
        one_line(e)
    hooked = copy.deepcopy(digits_mlp)
    hooked.fc1.register_forward_hook(lambda m, i, o: o * 2)
    with pytest.raises(ValueError, match="forward hooks"):
        mcv.encode.pack(hooked)
    assert list(tmp_path.iterdir()) == []
