"""Deep Compression end to end (Han, Mao and Dally, ICLR 2016): prune -> fine-tune -> k-means
weight sharing -> train the centroids -> relative indices and Huffman coding, with exact bytes.

``deep_compression(model, data, ...)`` runs the pipeline with mcviz's own methods
(``mcv.prune.magnitude``, ``mcv.train.fine_tune``, k-means layers of ``mcv.quantize``,
``mcv.train.fit`` for the centroids, ``mcv.encode.encoded``) and returns the model and two
tables in the paper's form:

- ``stages``: bytes of the packed file after each stage (``mcv.encode.pack``: exact, header
  included), the compression ratio against the fp32 weights (4 bytes per parameter) and the test
  accuracy;
- ``layers``: per layer, the kept weights and the bits per weight and per index before and after
  Huffman coding (the columns of the paper's Tables 2-3), and each stream against its entropy bound.

Sparsity and bits can differ per layer (the paper keeps 8% of LeNet's weights and uses 8-bit
codes for conv layers, 5-bit for fc layers). ``PAPER`` holds the paper's published rows, cited
beside ours. The registered method ``deep_compression`` runs the same pipeline inside any report.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import pandas as pd
from torch import nn

from mcviz import _layers, encode, prune, train
from mcviz._checks import (
    BOUNDS,
    check_choice,
    check_data,
    check_int,
    check_model,
    check_number,
    check_option,
    check_seed,
)
from mcviz.data import DataBundle
from mcviz.encode import sections, sparse
from mcviz.quantize.kmeans import KMeansConv2d, KMeansLinear
from mcviz.registry import register

SCOPES = ("layer", "global")
PAPER_BITS = {"Conv2d": 8, "Linear": 5}  # the paper's code widths for LeNet: 8-bit conv, 5-bit fc
CITATION = "Han, Mao and Dally, Deep Compression, ICLR 2016, Tables 1-3"
# The paper's LeNet rows (MNIST, 60,000 training images), quoted as published.
PAPER = pd.DataFrame(
    [
        ("lenet300", "pruned", "8% of weights kept", 12.0, 1.64, 1.59),
        ("lenet300", "pruned + quantized", "6-bit codes, 5-bit relative indices", 32.0, 1.64, 1.58),
        ("lenet300", "+ Huffman", "1070 KB -> 27 KB", 40.0, 1.64, 1.58),
        ("lenet5", "pruned", "8% of weights kept", 12.0, 0.80, 0.77),
        ("lenet5", "pruned + quantized", "8-bit conv / 5-bit fc codes, relative indices", 33.0, 0.80, 0.74),
        ("lenet5", "+ Huffman", "1720 KB -> 44 KB", 39.0, 0.80, 0.74),
    ],
    columns=["model", "stage", "stored as", "ratio", "error_before_pct", "error_after_pct"],
)
STAGE_COLUMNS = ["stage", "stored as", "bytes", "ratio", "accuracy", "change_points"]


class DeepCompressed(NamedTuple):
    """What :func:`deep_compression` returns: unpack it as ``model, stages, layers = ...``."""

    model: nn.Module
    """The final model: encoded k-means layers (relative indices, Huffman codes), in eval mode."""
    stages: pd.DataFrame
    """One row per stage: stage, stored as, bytes (packed file), ratio (fp32 bytes / bytes),
    accuracy, change_points (accuracy change against the baseline, in points)."""
    layers: pd.DataFrame
    """One row per layer in the paper's form (see :func:`layer_table`)."""
    models: dict[str, nn.Module]
    """stage -> the model after that stage (the baseline itself first; stored as the stage says)."""


def deep_compression(
    model: nn.Module,
    data: DataBundle,
    *,
    sparsity: float | Sequence[float] | dict[str, float] = 0.95,
    scope: str = "global",
    bits: int | Sequence[int] | dict[str, int] | None = None,
    index_bits: int | Sequence[int] | dict[str, int] | None = None,
    prune_epochs: int = 8,
    centroid_epochs: int = 2,
    lr: float = 1e-3,
    seed: int = 0,
) -> DeepCompressed:
    """Returns the model Deep Compression makes of ``model`` and its stage and layer tables;
    ``model`` is left unchanged.

    Stages: magnitude pruning, ``prune_epochs`` of fine-tuning (pruned weights stay zero), k-means
    weight sharing of the kept weights (``bits`` per layer, linear initialization),
    ``centroid_epochs`` of centroid training (codes fixed), then relative indices and Huffman
    coding (lossless). Training is seeded and single-threaded: the same arguments give the same
    model and tables.

    Args:
        model: a trained float32 network of Linear / Conv2d layers.
        data: a DataBundle: fine-tuning on its training split, accuracy on its test split.
        sparsity: the fraction of weights pruned, in [0, 1]: one float (ranked over all layers with
            ``scope="global"``, per layer with ``"layer"``), or one per Linear / Conv2d layer as a
            list in layer order or a dict naming every layer (``scope="layer"``).
        scope: "global" or "layer" (see ``mcv.prune.magnitude``).
        bits: code width of the k-means layers, ints in [2, 8]: None (the paper's 8 for Conv2d, 5
            for Linear), one int, or one per layer (list or dict).
        index_bits: width of the relative indices, ints in [2, 12]: None (each layer takes the
            width that stores it in the fewest bytes), one int, or one per layer.
        prune_epochs: fine-tuning epochs after pruning, an int in [0, 200].
        centroid_epochs: epochs of centroid training, an int in [0, 200].
        lr: Adam learning rate of both trainings.
        seed: shuffling seed of both trainings.

    Raises:
        TypeError / ValueError: a bad argument (a value out of range, a list of the wrong length,
            a dict that does not name every layer), before anything is computed.

    Example:
        >>> run = mcv.deep_compression.deep_compression(model, data, bits=4)  # doctest: +SKIP
        >>> run.stages  # doctest: +SKIP
    """
    check_model(model, dtypes=("float32",))
    check_data(data)
    names = _layer_names(model)
    plan = _Plan(
        sparsity=_per_layer_sparsity(sparsity, scope, names),
        scope=check_choice(scope, "scope", SCOPES),
        bits=_per_layer(
            bits, names, "bits", _check_bits, default={n: PAPER_BITS[k] for n, k in names.items()}
        ),
        index_bits=_per_layer(
            index_bits, names, "index_bits", lambda name, v: sparse.check_index_bits(v, name)
        ),
        prune_epochs=check_int(prune_epochs, "prune_epochs", low=0, high=200),
        centroid_epochs=check_int(centroid_epochs, "centroid_epochs", low=0, high=200),
        lr=check_option("lr", lr),
        seed=check_seed(seed),
    )
    return _run(model, data, plan)


@register
@dataclass(frozen=True)
class DeepCompressionConfig:
    """Deep Compression: prune, fine-tune, k-means (conv_bits / fc_bits), train centroids, Huffman."""

    method: ClassVar[str] = "deep_compression"
    needs_data: ClassVar[bool] = True
    sparsity: float = 0.95
    scope: str = "global"
    conv_bits: int = 8
    fc_bits: int = 5
    index_bits: int | None = None
    prune_epochs: int = 8
    centroid_epochs: int = 2
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        check_number(self.sparsity, "sparsity", low=0, high=1)
        check_choice(self.scope, "scope", SCOPES)
        check_option("bits", self.conv_bits)
        check_option("bits", self.fc_bits)
        if self.index_bits is not None:
            sparse.check_index_bits(self.index_bits)
        check_int(self.prune_epochs, "prune_epochs", low=0, high=200)
        check_int(self.centroid_epochs, "centroid_epochs", low=0, high=200)
        check_option("lr", self.lr)
        check_seed(self.seed)

    def apply(self, model: nn.Module, data: DataBundle | None = None) -> nn.Module:
        widths = {"Conv2d": self.conv_bits, "Linear": self.fc_bits}
        bits = {n: widths[k] for n, k in _layer_names(model).items()}
        return deep_compression(
            model, data, sparsity=self.sparsity, scope=self.scope, bits=bits, index_bits=self.index_bits,
            prune_epochs=self.prune_epochs, centroid_epochs=self.centroid_epochs, lr=self.lr, seed=self.seed,
        ).model  # fmt: skip


def share_weights(model: nn.Module, bits: dict[str, int]) -> nn.Module:
    """Returns a copy of ``model`` whose Linear / Conv2d layers share ``2**bits[name]`` values each
    (k-means of the kept weights, as ``mcv.quantize.kmeans`` does with one width for all);
    ``model`` is left unchanged."""
    out = copy.deepcopy(model)
    for name, width in bits.items():
        layer = out.get_submodule(name)
        cls = KMeansConv2d if isinstance(layer, nn.Conv2d) else KMeansLinear
        out = _layers.replace(out, name, cls.from_float(layer, width))
    return out


def layer_table(model: nn.Module) -> pd.DataFrame:
    """Returns one row per encoded k-means layer of ``model`` in the paper's form; ``model`` is left
    unchanged.

    Columns: layer, weights, kept (fraction, "Weights% (P)"), bits_pq (the code width) and
    bits_pqh (Huffman bits per kept weight), index_bits_pq and index_bits_pqh (bits of relative
    indices per kept weight, fillers included, before and after Huffman), codes_over_bound and
    index_over_bound (Huffman bits over the entropy bound, minus 1), bytes (the layer's section:
    indices, tables, codebook, codes, bias), fp32_bytes and ratio (fp32_bytes / bytes).
    """
    rows = []
    for name, m in model.named_modules():
        if not isinstance(m, (encode.EncodedKMeansLinear, encode.EncodedKMeansConv2d)):
            continue
        parts = {p.tensor: p for p in m.parts()}
        fixed = {p.tensor: p for p in sections.parts(m, m.index_bits, False)}
        codes, index = parts["codes"], parts.get("index")
        kept = max(codes.symbols, 1)
        weights = _layers.weight(m).numel()
        stored = sum(len(p.data) for p in parts.values())
        fp32 = 4 * (weights + (m.bias.numel() if m.bias is not None else 0))
        rows.append(
            {
                "layer": name,
                "weights": weights,
                "kept": codes.symbols / weights,
                "bits_pq": m.bits,
                "bits_pqh": codes.bits / kept,
                "index_bits_pq": fixed["index"].bits / kept if index else 0.0,
                "index_bits_pqh": index.bits / kept if index else 0.0,
                "codes_over_bound": _over(codes),
                "index_over_bound": _over(index) if index else 0.0,
                "bytes": stored,
                "fp32_bytes": fp32,
                "ratio": fp32 / stored,
            }
        )
    return pd.DataFrame(rows)


def trained(stages: pd.DataFrame) -> pd.DataFrame:
    """Returns the rows of a stage table after each training: without "pruned" when "pruned +
    fine-tuned" follows it, and without "k-means" when "k-means + trained centroids" does; ``stages``
    is left unchanged.

    Those are the rows a rerun on another CPU reproduces within ``mcviz.reproduce.TOLERANCES``: a
    model pruned or clustered but not yet retrained sits on a cliff, where the last bits of a weight
    move several test images."""
    names = set(stages.stage)
    drop = {s for s, after in (("pruned", "pruned + fine-tuned"), ("k-means", "k-means + trained centroids"))
            if after in names}  # fmt: skip
    return stages[~stages.stage.isin(drop)].reset_index(drop=True)


def beside_paper(stages: pd.DataFrame, model: str) -> pd.DataFrame:
    """Returns our stage table (from :func:`deep_compression`) with the paper's published ratio and
    error beside each stage it reports ("pruned", "pruned + quantized", "+ Huffman"), for ``model``
    "lenet300" or "lenet5" (other models: the paper columns are empty); ``stages`` is left unchanged."""
    paper = PAPER[PAPER.model == model].set_index("stage")
    match = {"pruned + fine-tuned": "pruned", "k-means + trained centroids": "pruned + quantized",
             "+ Huffman coding": "+ Huffman"}  # fmt: skip
    if "pruned + fine-tuned" not in set(stages.stage):
        match["pruned"] = "pruned"
    if "k-means + trained centroids" not in set(stages.stage):
        match["k-means"] = "pruned + quantized"
    out = stages[["stage", "bytes", "ratio", "accuracy"]].copy()
    keys = out.stage.map(match)
    out["paper_ratio"] = [paper.ratio.get(k) if isinstance(k, str) else None for k in keys]
    out["paper_error_pct"] = [paper.error_after_pct.get(k) if isinstance(k, str) else None for k in keys]
    out["error_pct"] = 100 * (1 - out.accuracy)
    return out


def summary(stages: pd.DataFrame, model: str) -> str:
    """Returns one paragraph (markdown) on the final stage: bytes, ratio and accuracy change, beside
    the paper's ratio for ``model`` when it reports one, saying which is larger."""
    first, last = stages.iloc[0], stages.iloc[-1]
    text = (
        f"Deep Compression stored the model in **{last.bytes:,} bytes**, "
        f"**{last.ratio:.1f}x** smaller than its {stages.attrs.get('fp32_bytes', first.bytes):,} fp32 bytes, "
        f"at {last.change_points:+.1f} points of test accuracy ({first.accuracy:.4f} -> {last.accuracy:.4f})."
    )
    paper = PAPER[(PAPER.model == model) & (PAPER.stage == "+ Huffman")]
    if len(paper):
        ratio = float(paper.ratio.iloc[0])
        word = "more" if last.ratio > ratio else "less"
        text += (
            f" The paper reports {ratio:.0f}x for this network on full MNIST ({CITATION}); ours compresses "
            f"{word} ({last.ratio / ratio:.2f} times its ratio), on the 5,000-image sample with our own "
            "sparsity and bits, and counts every byte of the file (header and architecture included)."
        )
    return text


# ---------------------------------------------------------------- the pipeline


@dataclass(frozen=True)
class _Plan:
    sparsity: float | dict[str, float]
    scope: str
    bits: dict[str, int]
    index_bits: dict[str, int] | None
    prune_epochs: int
    centroid_epochs: int
    lr: float
    seed: int


def _run(model: nn.Module, data: DataBundle, plan: _Plan) -> DeepCompressed:
    fp32 = 4 * sum(p.numel() for p in model.parameters())
    base_accuracy = train.evaluate(copy.deepcopy(model), data)
    rows = [("baseline", "fp32, every weight", model, base_accuracy)]
    pruned = prune.magnitude(model, plan.sparsity, scope=plan.scope)
    widths = plan.index_bits or {}
    for name, m in pruned.named_modules():  # each layer's index width, chosen once from its mask
        if isinstance(m, prune.PrunedLinear | prune.PrunedConv2d) and name not in widths:
            widths[name] = sections.best_index_bits(m.mask.numpy(), True)
    stored_pruned = "fp32 kept weights, relative indices"
    rows.append(("pruned", stored_pruned, encode.encoded(pruned, index_bits=widths, huffman=False), None))
    if plan.prune_epochs:
        pruned = train.fine_tune(pruned, data, epochs=plan.prune_epochs, lr=plan.lr, seed=plan.seed)
        rows.append(
            (
                "pruned + fine-tuned",
                stored_pruned,
                encode.encoded(pruned, index_bits=widths, huffman=False),
                None,
            )
        )
    shared = share_weights(pruned, plan.bits)
    codes = "codebook + fixed-width codes, relative indices"
    rows.append(("k-means", codes, encode.encoded(shared, index_bits=widths, huffman=False), None))
    if plan.centroid_epochs:
        train.fit(shared, data, epochs=plan.centroid_epochs, lr=plan.lr, seed=plan.seed, progress=False)
        rows.append(
            (
                "k-means + trained centroids",
                codes,
                encode.encoded(shared, index_bits=widths, huffman=False),
                None,
            )
        )
    final = encode.encoded(shared, index_bits=widths, huffman=True).eval()
    rows.append(("+ Huffman coding", "Huffman-coded codes and index gaps", final, None))
    table = []
    for stage, stored, m, accuracy in rows:
        size = len(encode.pack(m))
        accuracy = train.evaluate(m, data) if accuracy is None else accuracy
        table.append((stage, stored, size, fp32 / size, accuracy, 100 * (accuracy - base_accuracy)))
    stages = pd.DataFrame(table, columns=STAGE_COLUMNS)
    stages.attrs.update(fp32_bytes=fp32, baseline_accuracy=base_accuracy)
    return DeepCompressed(final, stages, layer_table(final), {stage: m for stage, _, m, _ in rows})


def _over(part) -> float:
    return part.bits / part.entropy_bits - 1 if part.entropy_bits else 0.0


# ---------------------------------------------------------------- per-layer arguments


def _layer_names(model: nn.Module) -> dict[str, str]:
    """Returns {layer name: "Linear" | "Conv2d"} of the layers the pipeline compresses, in order."""
    names = {n: _layers.kind(m).__name__ for n, m in model.named_modules() if isinstance(m, _layers.KINDS)}
    if not names:
        raise ValueError(f"model {type(model).__name__} has no Linear or Conv2d layer to compress")
    return names


def _per_layer(value, names: dict[str, str], what: str, check, *, default=None):
    """Returns {layer: value} from one value, a list in layer order or a dict naming every layer."""
    if value is None:
        return default
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        missing = [n for n in names if n not in value]
        if unknown or missing:
            problem = f"names no layer {unknown[0]!r}" if unknown else f"leaves out layer {missing[0]!r}"
            raise ValueError(f"{what} {problem}; give one value for each of: {', '.join(names)}")
        return {n: check(f"{what}[{n!r}]", value[n]) for n in names}
    if isinstance(value, (list, tuple)):
        if len(value) not in (1, len(names)):
            raise ValueError(
                f"{what} has {len(value)} values; give 1 or one per layer ({len(names)}: {', '.join(names)})"
            )
        values = list(value) * len(names) if len(value) == 1 else list(value)
        return {n: check(f"{what}[{i}]", v) for i, (n, v) in enumerate(zip(names, values, strict=True))}
    one = check(what, value)
    return dict.fromkeys(names, one)


def _per_layer_sparsity(sparsity, scope, names):
    check_choice(scope, "scope", SCOPES)

    def check(name, v):
        return check_number(v, name, low=0, high=1)

    if isinstance(sparsity, (dict, list, tuple)):
        per_layer = _per_layer(sparsity, names, "sparsity", check)
        if len(set(per_layer.values())) == 1:
            return next(iter(per_layer.values()))
        if scope == "global":
            raise ValueError("scope='global' ranks all layers together: give one sparsity, or scope='layer'")
        return per_layer
    return check("sparsity", sparsity)


def _check_bits(name, value) -> int:
    return check_int(value, name, bounds=BOUNDS["bits"])
