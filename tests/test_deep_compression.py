"""mcv.deep_compression: the pipeline's stages and tables, per-layer options, the registered method
and its bad arguments (on the small digits MLP; benchmarks/deep_compression.py does mnist5k)."""

from __future__ import annotations

import pytest
import torch
from helpers import one_line

import mcviz as mcv
from mcviz import deep_compression as dc


@pytest.fixture(scope="module")
def run(digits_mlp, digits):
    return dc.deep_compression(digits_mlp, digits, sparsity=0.8, bits=4, prune_epochs=2, centroid_epochs=1)


def test_stages_in_the_papers_form(run, digits_mlp):
    stages = run.stages
    assert list(stages.columns) == dc.STAGE_COLUMNS
    assert stages.stage.tolist() == [
        "baseline",
        "pruned",
        "pruned + fine-tuned",
        "k-means",
        "k-means + trained centroids",
        "+ Huffman coding",
    ]
    fp32 = 4 * sum(p.numel() for p in digits_mlp.parameters())
    assert stages.attrs["fp32_bytes"] == fp32
    assert stages.ratio.tolist() == pytest.approx((fp32 / stages.bytes).tolist())
    b = stages.set_index("stage").bytes
    assert b["baseline"] > b["pruned"] == b["pruned + fine-tuned"] > b["k-means"]
    assert b["k-means"] == b["k-means + trained centroids"] > b["+ Huffman coding"]
    # Huffman coding is lossless: the same accuracy as the trained centroids
    assert stages.accuracy.iloc[-1] == stages.accuracy.iloc[-2]
    assert stages.change_points.iloc[0] == 0.0
    assert b["+ Huffman coding"] == len(mcv.encode.pack(run.model))


def test_the_final_model_is_encoded_and_the_input_unchanged(run, digits_mlp, digits):
    assert isinstance(run.model.fc1, mcv.encode.EncodedKMeansLinear) and run.model.fc1.huffman
    assert type(digits_mlp.fc1) is torch.nn.Linear
    x = digits.test.tensors[0]
    assert torch.equal(mcv.encode.unpack(mcv.encode.pack(run.model))(x), run.model(x))
    assert mcv.measure.model(run.model).sparsity == pytest.approx(0.8, abs=1e-3)


def test_layer_table(run):
    layers = run.layers
    assert layers.layer.tolist() == ["fc1", "fc2"]
    assert (layers.bits_pq == 4).all() and (layers.bits_pqh < 4).all()
    assert (layers.index_bits_pqh <= layers.index_bits_pq).all()
    assert (layers.codes_over_bound >= 0).all() and (layers.ratio > 1).all()
    assert layers.bytes.sum() == mcv.measure.model(run.model).size_bytes


def test_per_layer_sparsity_bits_and_index_bits(digits_mlp, digits):
    out = dc.deep_compression(
        digits_mlp, digits, sparsity=[0.9, 0.5], scope="layer", bits={"fc1": 3, "fc2": 5},
        index_bits=[4], prune_epochs=0, centroid_epochs=0,
    )  # fmt: skip
    assert out.layers.bits_pq.tolist() == [3, 5]
    assert out.layers.kept.round(2).tolist() == [0.1, 0.5]
    assert (out.model.fc1.index_bits, out.model.fc2.index_bits) == (4, 4)
    assert out.stages.stage.tolist() == ["baseline", "pruned", "k-means", "+ Huffman coding"]


def test_the_registered_method(digits_mlp, digits):
    spec = "deep_compression:sparsity=0.7,fc_bits=3,prune_epochs=1,centroid_epochs=1"
    model = mcv.compress(digits_mlp, *mcv.registry.parse(spec), data=digits)
    assert model.fc1.bits == 3 and isinstance(model.fc2, mcv.encode.EncodedKMeansLinear)
    with pytest.raises(ValueError, match="needs data"):
        mcv.compress(digits_mlp, *mcv.registry.parse(spec))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"bits": 9}, ValueError, r"bits must be an int in \[2, 8\], got 9"),
        ({"bits": [4, 4, 4]}, ValueError, r"bits has 3 values; give 1 or one per layer \(2: fc1, fc2\)"),
        ({"bits": {"fc1": 4}}, ValueError, "bits leaves out layer 'fc2'"),
        ({"sparsity": 1.5}, ValueError, r"sparsity must be a finite number in \[0, 1\], got 1.5"),
        ({"sparsity": "high"}, TypeError, "sparsity must be a number"),
        ({"sparsity": {"fc1": 0.9, "fc7": 0.5}}, ValueError, "sparsity names no layer 'fc7'"),
        ({"sparsity": [0.9, 0.5]}, ValueError, "scope='global' ranks all layers together"),
        ({"index_bits": 1}, ValueError, r"index_bits must be an int in \[2, 12\], got 1"),
        ({"prune_epochs": -1}, ValueError, r"prune_epochs must be an int in \[0, 200\], got -1"),
        ({"scope": "row"}, ValueError, "scope must be one of 'layer', 'global'"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(digits_mlp, digits, kwargs, error, message):
    with pytest.raises(error, match=message) as e:
        dc.deep_compression(digits_mlp, digits, **kwargs)
    one_line(e)


def test_bad_config_options_are_refused():
    for spec, message in [
        ("deep_compression:conv_bits=1", r"bits must be an int in \[2, 8\], got 1"),
        ("deep_compression:sparsity=2", r"sparsity must be a finite number in \[0, 1\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            mcv.registry.parse(spec)


def test_the_papers_rows_are_cited():
    assert set(dc.PAPER.model) == {"lenet300", "lenet5"}
    assert dc.PAPER.set_index(["model", "stage"]).ratio[("lenet300", "+ Huffman")] == 40.0
    assert "Han, Mao and Dally" in dc.CITATION


def test_stage_models_beside_the_paper_and_the_summary(run, digits):
    assert list(run.models) == run.stages.stage.tolist() and run.models["+ Huffman coding"] is run.model
    x = digits.test.tensors[0]
    shared = run.models["k-means + trained centroids"]
    assert torch.equal(shared(x), run.model(x))  # Huffman coding changes no output
    table = dc.beside_paper(run.stages, "lenet300")
    assert table.set_index("stage").paper_ratio.dropna().to_dict() == {
        "pruned + fine-tuned": 12.0,
        "k-means + trained centroids": 32.0,
        "+ Huffman coding": 40.0,
    }
    assert dc.beside_paper(run.stages, "mlp").paper_ratio.isna().all()
    text = dc.summary(run.stages, "lenet300")
    assert f"{run.stages.bytes.iloc[-1]:,} bytes" in text and "The paper reports 40x" in text
    assert "paper" not in dc.summary(run.stages, "mlp")


def test_trained_keeps_the_rows_after_each_training(run):
    assert dc.trained(run.stages).stage.tolist() == [
        "baseline",
        "pruned + fine-tuned",
        "k-means + trained centroids",
        "+ Huffman coding",
    ]
    untrained = run.stages[~run.stages.stage.isin(["pruned + fine-tuned", "k-means + trained centroids"])]
    assert dc.trained(untrained).stage.tolist() == ["baseline", "pruned", "k-means", "+ Huffman coding"]
