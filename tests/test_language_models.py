"""The tiny GPT, low-rank factorization, 2:4 sparsity, layer dropping and the language-model measurements.

Everything runs on a 1-layer (or 2-layer) 32-dimensional GPT over a short text file: seconds, not minutes.
"""

from __future__ import annotations

import copy
import importlib
import math
import warnings

import pandas as pd
import pytest
import torch
from torch import nn

import mcviz as mcv
from mcviz import factorize, gpt, layerdrop, measure_lm, text

# the modules: the package exports functions of the same names
semistructured = importlib.import_module("mcviz.prune.semistructured")

TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. " * 60


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "hamlet.txt"
    path.write_text(TEXT)
    return text.load("file", path=path, context=16, eval_windows=8)


@pytest.fixture(scope="module")
def trained(corpus):
    model = mcv.models.build("tiny_gpt", input_shape=corpus.input_shape, num_classes=corpus.num_classes,
                             seed=0, layers=2, dim=32, heads=2)  # fmt: skip
    history = mcv.train.fit(model, corpus, epochs=3, lr=1e-2, batch_size=16, progress=False)
    return model, history


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unchanged \\(it transforms nn.Linear layers\\)")
        yield


def test_tiny_gpt_trains_with_fit_and_accuracy_is_per_character(corpus, trained):
    model, history = trained
    assert history["loss"].iloc[-1] < history["loss"].iloc[0] < math.log(corpus.num_classes) + 0.5
    assert 0 <= history["train_accuracy"].max() <= 1 and 0 <= history["val_accuracy"].max() <= 1
    row = measure_lm.model(model, corpus, label="fp32")
    assert row.perplexity == pytest.approx(math.exp(row.val_loss))
    assert row.accuracy == pytest.approx(mcv.train.evaluate(model, corpus, "val"))
    assert row.val_loss < 1.5  # a repeated sentence is easy
    x = corpus.val.tensors[0][:2]
    assert model(x).shape == (2, corpus.num_classes, 16)


def test_tiny_gpt_is_causal_and_the_default_size_matches_the_issue():
    model = gpt.TinyGPT(80, 64)
    assert 800_000 < sum(p.numel() for p in model.parameters()) < 850_000
    assert len([m for m in model.modules() if isinstance(m, nn.Linear)]) == 17
    x = torch.randint(0, 80, (1, 10))
    y = x.clone()
    y[0, 7] = (y[0, 7] + 1) % 80
    assert torch.allclose(model(x)[..., :7], model(y)[..., :7], atol=1e-6)  # the future does not leak
    with pytest.raises(ValueError, match="dim must be a multiple of heads"):
        gpt.TinyGPT(10, 8, dim=30, heads=4)
    with pytest.raises(ValueError, match="length <= context 64"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_generate_is_seeded_and_leaves_the_global_rng(trained, corpus):
    model, _ = trained
    state = torch.random.get_rng_state()
    a = gpt.generate(model, corpus.encode("To be"), 20, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a, gpt.generate(model, corpus.encode("To be"), 20, seed=1)) and len(a) == 25


def test_the_shipped_checkpoint_loads_with_weights_only():
    model, meta = gpt.pretrained()
    assert set(meta) >= {"vocab", "context", "options", "val_loss", "training"}
    assert model.tok.num_embeddings == len(meta["vocab"]) and meta["val_loss"] < 2.3
    assert mcv.text.__file__ and gpt.CHECKPOINT


def test_every_lm_method_runs_through_the_engine_and_leaves_the_baseline(corpus, trained):
    model, _ = trained
    before = copy.deepcopy(model.state_dict())
    specs = ["", "groupwise:bits=4,group_size=16", "gptq:bits=4,group_size=16,samples=16",
             "awq:bits=4,group_size=16,samples=16,grid=4", "smoothquant:samples=16", "embeddings:bits=8",
             "semistructured", "lowrank:fraction=0.5", "layerdrop:keep=1,epochs=1"]  # fmt: skip
    table, models = measure_lm.run(model, corpus, specs)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert list(table["label"]) == ["baseline", *specs[1:]] and "cosine" not in table
    rows = table.set_index("label")
    assert rows.loc["baseline", "size_bytes"] > rows.loc["groupwise:bits=4,group_size=16", "size_bytes"]
    gptq = rows.loc["gptq:bits=4,group_size=16,samples=16", "val_loss"]
    assert gptq < rows.loc["baseline", "val_loss"] + 0.3
    assert rows.loc["layerdrop:keep=1,epochs=1", "params"] < rows.loc["baseline", "params"]
    front = mcv.tradeoff.decide(table, cost="size_bytes", metric="accuracy").front
    assert len(front) >= 1
    assert set(measure_lm.table([measure_lm.model(model, corpus)], drop_empty=False)) == set(
        measure_lm.FIELDS
    )


def test_run_without_files_leaves_out_the_file_sizes(corpus, trained):
    model, _ = trained
    full, _ = measure_lm.run(model, corpus, ["", "groupwise:bits=4,group_size=16"])
    lean, _ = measure_lm.run(model, corpus, ["", "groupwise:bits=4,group_size=16"], files=False)
    assert "gzip_bytes" in full and not {"file_bytes", "gzip_bytes"} & set(lean)
    pd.testing.assert_frame_equal(full.drop(columns=["file_bytes", "gzip_bytes"]), lean)
    with pytest.raises(TypeError, match="files must be True or False, got 'no'"):
        measure_lm.run(model, corpus, [""], files="no")


def test_latency_pins_one_thread_and_records_it(corpus, trained):
    model, _ = trained
    before = torch.get_num_threads()
    row = measure_lm.model(model, corpus, latency=True, batch_size=4, repeats=3, warmup=0)
    assert row.threads == 1 and row.batch_size == 4 and row.cpu_capability
    assert row.latency_b1_ms > 0 and row.latency_ms > 0 and torch.get_num_threads() == before
    t = measure_lm.timings({"a": model, "b": model}, corpus, batch_sizes=(1, 2), rounds=2, repeats=2)
    assert list(t["label"]) == ["a", "b", "a", "b"] and (t["threads"] == 1).all()


def test_lowrank_ranks_and_exact_reconstruction():
    w = torch.randn(20, 4) @ torch.randn(4, 30)  # rank 4
    assert factorize.energy_rank(w, 0.999999) == 4
    layer = nn.Linear(30, 20)
    with torch.no_grad():
        layer.weight.copy_(w)
    low = factorize.factorize(layer, 4)
    x = torch.randn(5, 30)
    assert torch.allclose(low(x), layer(x), atol=1e-4)
    assert low.first.weight.shape == (4, 30) and low.second.weight.shape == (20, 4)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
    plan = factorize.ranks(model, fraction=0.25)
    assert plan == {"0": 8, "2": 1}  # 64*8 + 8*64 = a quarter of 64*64; 64x8 keeps rank 1 of 8
    assert factorize.ranks(model, rank=8) == {"0": 8}  # rank 8 of the 64x8 layer saves nothing
    with pytest.raises(ValueError, match="exactly one of rank, energy and fraction"):
        factorize.ranks(model, rank=4, energy=0.9)
    with pytest.raises(ValueError, match="exactly one"):
        factorize.LowRankConfig()
    with pytest.raises(ValueError, match="needs data="):
        factorize.lowrank(model, rank=4, epochs=1)


def test_lowrank_distillation_recovers_the_teacher(corpus, trained):
    model, _ = trained
    raw = factorize.lowrank(model, fraction=0.3)
    tuned = factorize.lowrank(model, corpus, fraction=0.3, epochs=2, lr=3e-3)
    loss = [measure_lm.perplexity(m, corpus)["val_loss"] for m in (model, raw, tuned)]
    assert loss[2] < loss[1]


def test_two_four_masks_and_their_storage(digits_mlp):
    mask = semistructured.nm_mask(torch.tensor([[0.1, -0.5, 0.3, 0.2, 1.0, 1.0, 1.0, 0.0]]))
    assert mask.tolist() == [[False, True, True, False, True, True, False, False]]
    sparse = semistructured.semistructured(digits_mlp)
    w = sparse.fc1.weight
    assert (w.reshape(-1, 4) != 0).sum(1).max() <= 2 and float((w == 0).float().mean()) >= 0.5
    dense, small = mcv.measure.model(digits_mlp), mcv.measure.model(sparse)
    n = digits_mlp.fc1.weight.numel() + digits_mlp.fc2.weight.numel()
    assert dense.size_bytes - small.size_bytes == 4 * n - (2 * n + math.ceil(n // 2 * 2 / 8))
    with pytest.raises(ValueError, match="m=3 does not divide"):
        semistructured.semistructured(digits_mlp, 1, 3)
    with pytest.raises(ValueError, match="n must be"):
        semistructured.SemiStructuredConfig(n=4, m=4)


def test_layer_dropping_keeps_evenly_spread_blocks():
    assert layerdrop.kept(6, 3) == [0, 2, 4] and layerdrop.kept(4, 1) == [0]
    model = gpt.TinyGPT(10, 8, layers=4, dim=16, heads=2)
    assert layerdrop.blocks(model) == "blocks"
    small = layerdrop.drop_layers(model, 2)
    assert len(small.blocks) == 2 and torch.equal(small.blocks[1].fc.weight, model.blocks[2].fc.weight)
    assert len(layerdrop.drop_layers(model, [1, 3]).blocks) == 2 and len(model.blocks) == 4
    with pytest.raises(ValueError, match="no stack of blocks"):
        layerdrop.drop_layers(nn.Sequential(nn.Linear(2, 2)), 1)
    with pytest.raises(ValueError, match="increasing order"):
        layerdrop.drop_layers(model, [2, 1])


def test_layer_dropping_can_keep_the_first_and_the_last_blocks():
    assert layerdrop.kept(6, 3, "last") == [0, 4, 5] and layerdrop.kept(6, 1, "last") == [0]
    assert layerdrop.kept(6, 6, "last") == list(range(6))
    model = gpt.TinyGPT(10, 8, layers=4, dim=16, heads=2)
    small = layerdrop.drop_layers(model, 2, which="last")
    assert torch.equal(small.blocks[0].fc.weight, model.blocks[0].fc.weight)
    assert torch.equal(small.blocks[1].fc.weight, model.blocks[3].fc.weight)
    assert layerdrop.hints(model, layerdrop.kept(4, 2, "last")) == [
        ("blocks.0", "blocks.2"),
        ("blocks.1", "blocks.3"),
    ]
    config = mcv.registry.parse("layerdrop:keep=2,which=last,epochs=0")[0]
    assert config == layerdrop.LayerDropConfig(keep=2, which="last", epochs=0)
    assert torch.equal(config.apply(model).blocks[1].fc.weight, model.blocks[3].fc.weight)
    for bad in (lambda: layerdrop.LayerDropConfig(which="first"), lambda: layerdrop.kept(6, 3, "odd"),
                lambda: layerdrop.layerdrop(model, keep=2, which="middle", epochs=0)):  # fmt: skip
        with pytest.raises(ValueError, match="which must be one of") as e:
            bad()
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="which='last' places a count of blocks; keep=\\[0, 3\\] lists them"):
        layerdrop.drop_layers(model, [0, 3], which="last")


def test_layer_dropping_matches_each_kept_block_to_the_block_before_the_next(corpus, trained):
    assert layerdrop.hints(gpt.TinyGPT(10, 8, layers=6, dim=16, heads=2), [0, 2, 4]) == [
        ("blocks.0", "blocks.1"), ("blocks.1", "blocks.3"), ("blocks.2", "blocks.5"),
    ]  # fmt: skip
    assert layerdrop.hints(gpt.TinyGPT(10, 8, layers=4, dim=16, heads=2), [1, 3]) == [
        ("blocks.0", "blocks.2"), ("blocks.1", "blocks.3"),
    ]  # fmt: skip
    model, _ = trained
    options = dict(keep=1, epochs=2, lr=3e-3)
    one = layerdrop.layerdrop(model, corpus, **options, hint_weight=1.0)
    again = layerdrop.layerdrop(model, corpus, **options, hint_weight=1.0)
    pairs = zip(one.state_dict().values(), again.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)  # deterministic
    plain = layerdrop.layerdrop(model, corpus, **options)  # the default: the final outputs only
    assert not torch.equal(plain.blocks[0].fc.weight, one.blocks[0].fc.weight)
    student = layerdrop.drop_layers(model, 1)
    pairs = [("blocks.0", "blocks.1")]
    history = mcv.distill_lm.match(student, model, corpus, epochs=2, lr=3e-3, hints=pairs)
    assert list(history.columns) == ["epoch", "loss", "output_loss", "hint_loss"]
    assert history["hint_loss"].iloc[-1] < history["hint_loss"].iloc[0]
    config = mcv.registry.parse("layerdrop:keep=1,epochs=2,lr=0.003,hint_weight=0")[0]
    assert config == layerdrop.LayerDropConfig(keep=1, epochs=2, lr=0.003, hint_weight=0)
    applied = config.apply(model, corpus).state_dict().values()
    assert all(torch.equal(a, b) for a, b in zip(applied, plain.state_dict().values(), strict=True))


def test_match_computes_the_teachers_hint_outputs_per_batch_when_they_would_not_fit(corpus, trained,
                                                                                  monkeypatch):  # fmt: skip
    model, _ = trained
    pairs = [("blocks.0", "blocks.1")]
    options = dict(epochs=2, lr=3e-3, hints=pairs, samples=64)
    calls = []  # the teacher's passes: once per 64 rows when kept, once per batch when not
    teach = mcv.distill_lm._teach
    monkeypatch.setattr(mcv.distill_lm, "_teach", lambda *a: calls.append(1) or teach(*a))
    kept = mcv.distill_lm.match(layerdrop.drop_layers(model, 1), model, corpus, **options)
    n_kept = len(calls)
    monkeypatch.setattr(mcv.distill_lm, "CACHE_BYTES", 0)  # as if the rows were too many to keep
    students = [layerdrop.drop_layers(model, 1) for _ in range(2)]
    batched = [mcv.distill_lm.match(s, model, corpus, **options) for s in students]
    assert n_kept == 1 and len(calls) - n_kept > 2 * 2  # two runs of two epochs of several batches
    assert batched[0].equals(batched[1])  # deterministic
    assert all(torch.equal(a, b) for a, b in zip(*(s.state_dict().values() for s in students), strict=True))
    # the same teacher outputs, computed for each batch instead of once: the same training
    assert batched[0]["loss"].to_numpy() == pytest.approx(kept["loss"].to_numpy(), rel=1e-4)
    assert not any(m._forward_hooks for m in model.modules())  # the teacher's hooks are gone
    model.train()  # the teacher is left in the mode it was in
    mcv.distill_lm.match(layerdrop.drop_layers(model, 1), model, corpus, **options)
    assert model.training
    model.eval()


def test_match_keeps_the_teachers_outputs_after_the_first_epoch_in_float16(corpus, trained, monkeypatch):
    model, _ = trained
    pairs = [("blocks.0", "blocks.1")]
    options = dict(epochs=3, lr=3e-3, hints=pairs, samples=64, batch_size=16)
    kept = mcv.distill_lm.match(layerdrop.drop_layers(model, 1), model, corpus, **options)
    x = corpus.train.tensors[0][:1]
    out_bytes = model(x)[0].numel() * 4
    hint_bytes = x.shape[1] * model.tok.embedding_dim  # one output per position
    # room for 64 rows in float16, not in float32
    monkeypatch.setattr(mcv.distill_lm, "CACHE_BYTES", 64 * (hint_bytes * 2 + out_bytes))
    calls = []
    teach = mcv.distill_lm._teach
    monkeypatch.setattr(mcv.distill_lm, "_teach", lambda *a: calls.append(1) or teach(*a))
    students = [layerdrop.drop_layers(model, 1) for _ in range(2)]
    runs = [mcv.distill_lm.match(s, model, corpus, **options) for s in students]
    assert len(calls) == 2 * (1 + 64 // 16)  # the first rows, then each batch of the first epoch only
    assert runs[0].equals(runs[1])  # deterministic
    assert all(torch.equal(a, b) for a, b in zip(*(s.state_dict().values() for s in students), strict=True))
    # the same teacher outputs, rounded to float16 after the first epoch: about the same training
    assert runs[0]["loss"].iloc[0] == pytest.approx(kept["loss"].iloc[0], rel=1e-5)
    assert runs[0]["loss"].to_numpy() == pytest.approx(kept["loss"].to_numpy(), rel=1e-3)
    calls.clear()  # one epoch: nothing to keep them for, so nothing is kept
    plans = []
    plan = mcv.distill_lm._Kept.plan
    monkeypatch.setattr(mcv.distill_lm._Kept, "plan", lambda *a: plans.append(1) or plan(*a))
    mcv.distill_lm.match(layerdrop.drop_layers(model, 1), model, corpus, **{**options, "epochs": 1})
    assert plans == [] and len(calls) == 1 + 64 // 16


def test_kept_outputs_skip_padding_share_repeated_rows_and_give_up_beyond_float16():
    X = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0], [5, 6, 0, 0], [8, 0, 3, 1]])  # padding mid-row too
    out = torch.randn(4, 3)
    hint = torch.randn(4, 4, 2) * (X != 0).unsqueeze(2)  # zeros at the padding, as _teach pads
    store = mcv.distill_lm._Kept.plan(X, 0, (out, [hint]))
    assert store.hidden[0].shape == (2 + 1 + 3, 2)  # the positions that are not padding, row 2 = row 0
    assert not store.has(torch.tensor([0]))
    store.put(torch.tensor([0, 1]), out[:2], [hint[:2]])
    assert store.has(torch.tensor([2, 1])) and not store.has(torch.tensor([2, 3]))  # row 2 is row 0
    want, wanted = store.get(torch.tensor([2, 1]))
    assert torch.equal(want, out[[0, 1]])
    assert torch.allclose(wanted[0], hint[[0, 1]], rtol=1e-3, atol=1e-3) and wanted[0].dtype == torch.float32
    assert torch.equal(wanted[0][0, 2:], torch.zeros(2, 2))
    assert mcv.distill_lm._Kept.plan(X, None, (out, [hint])).hidden[0].shape == (12, 2)  # no padding id
    assert mcv.distill_lm._Kept.plan(X.float(), 0, (out, [hint])) is None  # not token ids
    big = hint.clone()
    big[3, 0, 0] = 1e6  # beyond float16
    store.put(torch.tensor([3]), out[3:], [big[3:]])
    assert not store.has(torch.tensor([0])) and store.hidden == []  # the teacher runs every batch again
    store = mcv.distill_lm._Kept.plan(X, 0, (out, [hint]))
    store.put(torch.tensor([3]), out[3:], [hint[3:]])
    assert torch.allclose(store.get(torch.tensor([3]))[1][0], hint[3:], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"hints": [("blocks.0", "blocks.9")]}, ValueError, "teacher has no layer 'blocks.9'; its layers: "),
        ({"hints": [("nope", "blocks.1")]}, ValueError, "student has no layer 'nope'; its layers: "),
        ({"hints": "blocks.0"}, TypeError, "hints must be None or a list of (student_layer, teacher_layer)"),
        ({"hints": [("blocks.0",)]}, TypeError, "hints must be None or a list of (student_layer, teacher"),
        ({"hints": []}, ValueError, "hints must be None or a list of (student_layer, teacher_layer)"),
        ({"hints": [("blocks.0", "blocks.1")], "hint_weight": 0}, ValueError,
         "hint_weight must be a finite number > 0, got 0"),
        ({"hints": [("pos", "pos")]}, ValueError, "a hint layer must return a (batch, length, dim) tensor"),
    ],
)  # fmt: skip
def test_match_refuses_bad_hints_in_one_line(corpus, trained, options, error, message):
    model, _ = trained
    with pytest.raises(error) as e:
        mcv.distill_lm.match(layerdrop.drop_layers(model, 1), model, corpus, epochs=1, **options)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_match_can_keep_the_embeddings_and_group_by_length(corpus, trained):
    model, _ = trained
    options = dict(keep=1, epochs=2, lr=3e-3, hint_weight=1.0, schedule="cosine")
    frozen = layerdrop.layerdrop(model, corpus, **options, freeze_embeddings=True, by_length=True)
    again = layerdrop.layerdrop(model, corpus, **options, freeze_embeddings=True, by_length=True)
    pairs = zip(frozen.state_dict().values(), again.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)  # deterministic
    for name in ("tok", "pos"):  # the teacher's tables, untouched, and trainable again afterwards
        table = getattr(frozen, name).weight
        assert torch.equal(table, getattr(model, name).weight) and table.requires_grad
    assert not torch.equal(frozen.blocks[0].fc.weight, model.blocks[0].fc.weight)
    trained_tables = layerdrop.layerdrop(model, corpus, **options)
    assert not torch.equal(trained_tables.tok.weight, model.tok.weight)
    config = mcv.registry.parse(
        "layerdrop:keep=1,epochs=2,lr=0.003,hint_weight=1,schedule=cosine,freeze_embeddings=true,by_length=true"
    )[0]
    applied = config.apply(model, corpus).state_dict().values()
    assert all(torch.equal(a, b) for a, b in zip(applied, frozen.state_dict().values(), strict=True))
    # the tiny GPT has no padding id: every window counts as full length
    x = corpus.train.tensors[0]
    assert torch.equal(mcv.distill_lm._lengths(x, None), torch.full((len(x),), x.shape[1]))


def test_match_makes_the_tables_trainable_again_when_training_fails(corpus, trained, monkeypatch):
    model, _ = trained
    student = layerdrop.drop_layers(model, 1)

    def failing(net, *args, **kwargs):
        assert not net.tok.weight.requires_grad and not net.pos.weight.requires_grad
        assert net.blocks[0].fc.weight.requires_grad
        raise mcv.train.NonFiniteLoss("diverged")

    monkeypatch.setattr(mcv.train, "fit", failing)
    with pytest.raises(mcv.train.NonFiniteLoss):
        mcv.distill_lm.match(student, model, corpus, freeze_embeddings=True)
    assert all(p.requires_grad for p in student.parameters())
    with pytest.raises(ValueError) as e:  # nothing to keep: refused, not ignored
        mcv.distill_lm.match(nn.Sequential(nn.Linear(2, 2)), nn.Sequential(nn.Linear(2, 2)), corpus,
                             freeze_embeddings=True)  # fmt: skip
    assert str(e.value) == ("freeze_embeddings=True, but the student (Sequential) has no nn.Embedding table "
                            "to keep; use freeze_embeddings=False")  # fmt: skip


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"schedule": "linear"}, ValueError, "schedule must be one of 'constant', 'cosine', got 'linear'"),
        ({"freeze_embeddings": 1}, TypeError, "freeze_embeddings must be True or False, got 1"),
        ({"by_length": "yes"}, TypeError, "by_length must be True or False, got 'yes'"),
    ],
)  # fmt: skip
def test_layerdrop_distillation_options_are_checked_before_any_work(corpus, trained, monkeypatch, options,
                                                                    error, message):  # fmt: skip
    model, _ = trained
    monkeypatch.setattr(mcv.distill_lm, "_teach", lambda *a: pytest.fail("the teacher ran"))
    student = layerdrop.drop_layers(model, 1)
    calls = (lambda: layerdrop.LayerDropConfig(**options),
             lambda: layerdrop.layerdrop(model, corpus, keep=1, epochs=1, **options),
             lambda: mcv.distill_lm.match(student, model, corpus, **options))  # fmt: skip
    for call in calls:
        with pytest.raises(error) as e:
            call()
        assert str(e.value) == message


@pytest.mark.parametrize(
    "weight, error", [(-1, ValueError), (1001, ValueError), ("1", TypeError), (True, TypeError)]
)
def test_layerdrop_hint_weight_is_checked(corpus, trained, weight, error):
    model, _ = trained
    with pytest.raises(error, match=r"hint_weight must be a (finite )?number in \[0, 1000\], got"):
        layerdrop.LayerDropConfig(hint_weight=weight)
    with pytest.raises(error, match=r"hint_weight must be a (finite )?number in \[0, 1000\], got"):
        layerdrop.layerdrop(model, corpus, keep=1, epochs=1, hint_weight=weight)


def test_sweep_expands_methods_over_bits_and_group_sizes(corpus, trained):
    model, _ = trained
    table, models = measure_lm.sweep(model, corpus, ["groupwise", "semistructured"], [4, 3], [16], samples=8)
    assert list(table["label"]) == [
        "baseline", "groupwise:bits=4,group_size=16", "groupwise:bits=3,group_size=16", "semistructured",
    ]  # fmt: skip
    assert table["weight_bits"].tolist() == [32, 4, 3, "-"] and table["group_size"].tolist()[-1] == "-"
    assert 4 < table.loc[1, "bits"] < table.loc[0, "bits"] == 32  # the fp32 embedding tables count too
    assert set(models) == set(table["label"])
    with pytest.raises(ValueError, match="name must be 'tiny_gpt' or 'minilm'"):
        measure_lm.setup("bert")
