"""mcv.text: corpora split by position, character windows, paragraphs and retrieval pairs, bad files."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest
import torch

import mcviz as mcv
from mcviz import text


@pytest.fixture(scope="module")
def pydoc():
    return text.load("pydoc", context=32, eval_windows=40)


def test_windows_are_next_character_targets_split_by_position(pydoc):
    x, y = pydoc.train.tensors
    assert x.dtype == torch.int64 and x.shape[1] == 32 and y.shape == x.shape
    assert torch.equal(x[0, 1:], y[0, :-1])  # y is x shifted by one character
    assert torch.equal(x[1, 0], y[0, -1])  # non-overlapping windows: the next window starts there
    whole = text.read("pydoc")
    assert pydoc.decode(x[0]) == whole[:32]
    n_train, n_val, n_test = pydoc.chars
    assert n_train + n_val + n_test == len(whole) and abs(n_val - n_test) <= 1
    assert (
        pydoc.decode(pydoc.val.tensors[0][0]) == whole[n_train : n_train + 32]
    )  # val starts where train ends
    assert len(pydoc.val) == len(pydoc.test) == 40
    assert pydoc.num_classes == len(pydoc.vocab) and pydoc.input_shape == (32,)
    assert isinstance(pydoc, mcv.data.DataBundle)


def test_encode_decode_round_trip_and_unknown_characters(pydoc):
    assert pydoc.decode(pydoc.encode("def f(x):")) == "def f(x):"
    with pytest.raises(ValueError, match="outside the corpus vocabulary"):
        pydoc.encode("\u2603")


def test_a_user_file_and_its_bad_inputs(tmp_path):
    good = tmp_path / "a.txt"
    good.write_text("to be or not to be, that is the question. " * 40)
    corpus = text.load("file", path=good, context=16)
    assert corpus.name == "a.txt" and set(corpus.vocab) == set("to be or not to be, that is the question.")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(ValueError, match="is empty"):
        text.load("file", path=empty)
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"abc\x00\x01\x02" * 100)
    with pytest.raises(ValueError, match="NUL bytes"):
        text.load("file", path=binary)
    latin = tmp_path / "l.txt"
    latin.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(ValueError, match="not UTF-8"):
        text.load("file", path=latin)
    with pytest.raises(ValueError, match="shorter than one window"):
        text.load("file", path=good, context=200)
    with pytest.raises(FileNotFoundError):
        text.load("file", path=tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="needs path"):
        text.load("file")
    with pytest.raises(ValueError, match="name must be one of"):
        text.load("wikipedia")
    with pytest.raises(ValueError, match="context must be"):
        text.load("pydoc", context=1)
    with pytest.raises(ValueError, match="outside vocab"):
        text.load("file", path=good, context=16, vocab="abc")


def test_shakespeare_is_read_without_markup():
    body = text.read("shakespeare")
    assert len(body) > 4_000_000
    assert "**" not in body and "\\" not in body and "HAMLET:" in body


def test_paragraphs_and_retrieval_pairs_are_fixed_and_offline():
    paras = text.paragraphs()
    assert len(paras) > 500 and all(100 <= len(p) <= 1200 for p in paras)
    assert paras == text.paragraphs()
    assert len(set(paras)) == len(paras)  # pydoc repeats paragraphs across topics: each once here
    pairs = text.retrieval_pairs()
    assert len(pairs) > 250
    assert len({d for _, d in pairs}) == len(pairs)  # one query per document: no ties by construction
    assert pairs == sorted(pairs)


def test_docstrings_are_fixed_offline_and_disjoint_from_the_evaluation_text():
    docs = text.docstrings()
    assert len(docs) > 500 and all(100 <= len(p) <= 1200 for p in docs)
    assert docs == text.docstrings() and len(set(docs)) == len(docs)
    assert not set(docs) & set(text.paragraphs())  # never a test paragraph of mcv.minilm.corpus
    documents = "\n".join(body for _, body in text.retrieval_pairs())
    assert not any(p in documents for p in docs)  # never a retrieval document
    assert not set(text.TEXT_MODULES) & set(text.DOC_MODULES)
    with pytest.raises(ValueError, match="max_chars must be an int in"):
        text.docstrings(min_chars=50, max_chars=10)


def test_package_docstrings_follow_the_standard_librarys_and_never_hold_evaluation_text():
    stdlib = text.docstrings()
    state = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    docs = text.docstrings(packages=True)  # imports the packages in its own process: no generator moves
    assert random.getstate() == state[0] and (np.random.get_state()[1] == state[1]).all()
    assert torch.equal(torch.get_rng_state(), state[2])
    assert docs[: len(stdlib)] == stdlib  # the standard library's paragraphs come first, unchanged
    more = docs[len(stdlib) :]
    assert len(more) > 10_000 and len(set(docs)) == len(docs)
    assert all(100 <= len(p) <= 1200 and ">>>" not in p and "----" not in p for p in more)
    assert not set(more) & set(text.paragraphs())  # no pydoc paragraph: none of a test or val split
    documents = "\n".join(body for _, body in text.retrieval_pairs())
    assert not any(p in documents for p in more)  # never a retrieval document
    assert not {m.partition(".")[0] for m in text.PACKAGE_MODULES} & set(sys.stdlib_module_names)
    with pytest.raises(TypeError, match="packages must be True or False, got 'yes'"):
        text.docstrings(packages="yes")


def test_docstrings_do_not_depend_on_the_callers_imports_or_hash_seed():
    import concurrent.futures
    import hashlib
    import os
    import subprocess
    import sys

    first = text.docstrings()
    assert concurrent.futures.ProcessPoolExecutor  # loads a class lazily into the module
    text._fresh_docstrings.cache_clear()
    assert text.docstrings() == first
    digest = hashlib.sha256("\n".join(first).encode()).hexdigest()
    code = (
        "import hashlib; from mcviz import text; "
        "print(hashlib.sha256(chr(10).join(text.docstrings()).encode()).hexdigest())"
    )
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             check=True)  # fmt: skip
        assert out.stdout.strip() == digest, seed
