"""The deep_compression report: its parameters, and its committed example (what it shows and that
its sizes agree with each other). The example itself is re-executed by nbval in make test."""

from __future__ import annotations

import json
from pathlib import Path

import mcviz as mcv
from mcviz import reports

EXAMPLE = Path(__file__).resolve().parents[1] / "reports" / "examples" / "deep_compression"


def test_template_declares_its_parameters():
    params = {p.name: p for p in reports.parameters("deep_compression")}
    assert list(params) == [
        "dataset", "root", "model", "epochs", "seed", "split_seed", "sparsity", "scope", "bits",
        "prune_epochs", "centroid_epochs", "latency",
    ]  # fmt: skip
    defaults = reports.validate("deep_compression")
    assert defaults["sparsity"] == [0.95] and defaults["bits"] == [4] and defaults["scope"] == "global"
    # vgg_small's BatchNorm layers cannot be stored in the packed file (pack refuses them)
    assert params["model"].choices == tuple(n for n in mcv.models.NAMES if n != "vgg_small")
    assert set(params["scope"].choices) == set(mcv.deep_compression.SCOPES)
    assert params["bits"].allowed == "a list of int, each in [2, 8]"
    assert params["sparsity"].allowed == "a list of float, each in [0, 1]"


def test_the_example_records_the_stages_and_beats_the_papers_ratio():
    result = json.loads((EXAMPLE / "results.json").read_text())
    assert result["parameters"] == reports.validate("deep_compression")
    rows = {r["stage"]: r for r in result["rows"]}
    assert list(rows)[0] == "baseline" and list(rows)[-1] == "+ Huffman coding"
    final = rows["+ Huffman coding"]
    assert (
        final["bytes"] < rows["k-means + trained centroids"]["bytes"] < rows["pruned + fine-tuned"]["bytes"]
    )
    assert final["accuracy"] == rows["k-means + trained centroids"]["accuracy"]  # Huffman is lossless
    assert final["ratio"] > 40  # the paper's LeNet-300-100 ratio
    html = (EXAMPLE / "index.html").read_text()
    assert "identical: True" in html and "The paper reports 40x" in html
