"""Measurements of language models: the size columns of ``mcv.measure`` plus what a language model
or a sentence encoder is judged by, and latency at batch 1 and a larger batch in one run.

- a character model (``mcv.gpt`` on a ``mcv.text.CharCorpus``): ``val_loss`` (mean cross-entropy
  per character on the VALIDATION split, in nats), ``perplexity`` (``exp(val_loss)``), ``likelihood``
  (``exp(-val_loss)``: the geometric-mean probability given to the right next character, higher is
  better, what a Pareto front ranks by) and ``accuracy`` (the next character right);
- a sentence encoder (``mcv.minilm``): agreement with the uncompressed model on the TEST split of
  the pydoc paragraphs: ``cosine`` (mean cosine similarity to its embeddings), ``nn_agreement``
  (how often each paragraph's nearest neighbour is the same one); and an offline retrieval score
  on the standard library's (summary line, docstring) pairs: ``recall_at_1`` and ``mrr``;
- both: ``params``, ``size_bytes`` (exact, at stored widths), ``file_bytes``... as in
  ``mcv.measure``, and with ``latency=True`` the median and interquartile range of forward passes
  at batch 1 (``latency_b1_ms``) and at ``batch_size`` (``latency_ms``), on ``threads`` torch
  threads (1 by default: on a shared 2-core machine two threads made batch-1 latency 7x noisier),
  with the thread count and the CPU's kernel path (``cpu_capability``) recorded.

The rows are frozen :class:`LMMeasurement`s; :func:`table` makes the DataFrame that
``mcv.tradeoff.decide`` (cost ``size_bytes``, metric ``cosine`` or ``likelihood``), the plots and the
reports take. :func:`run` applies method specs to a baseline (with ``mcv.engine``'s shared
prefixes) and measures each model; :func:`timings` compares models' latency in interleaved rounds.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from mcviz import _layers, engine, measure, registry, train
from mcviz._checks import check_bool, check_data, check_int, check_model
from mcviz.data import DataBundle
from mcviz.text import CharCorpus

KINDS = ("language_model", "encoder")


@dataclasses.dataclass(frozen=True)
class LMMeasurement(measure.Measurement):
    """One row: a ``mcv.measure.Measurement`` (sizes; ``accuracy`` is the next character right, None
    for an encoder; ``latency_ms`` is at ``batch_size``) plus a language model's or an encoder's
    quality, the latency at batch 1 and the CPU's kernel path."""

    val_loss: float | None = None
    perplexity: float | None = None
    likelihood: float | None = None
    cosine: float | None = None
    nn_agreement: float | None = None
    recall_at_1: float | None = None
    mrr: float | None = None
    latency_b1_ms: float | None = None
    latency_b1_iqr_ms: float | None = None
    cpu_capability: str | None = None


FIELDS = tuple(f.name for f in dataclasses.fields(LMMeasurement))
TIMING_FIELDS = (
    "latency_b1_ms",
    "latency_b1_iqr_ms",
    "latency_ms",
    "latency_iqr_ms",
    "batch_size",
    "threads",
)


@dataclasses.dataclass(frozen=True)
class Reference:
    """What an encoder is compared with: the uncompressed model's test embeddings, each one's
    nearest neighbour, and the retrieval pairs' token ids (or None)."""

    embeddings: torch.Tensor
    neighbours: torch.Tensor
    retrieval: tuple[torch.Tensor, torch.Tensor] | None


def reference(model: nn.Module, data: DataBundle, retrieval=None) -> Reference:
    """Returns the :class:`Reference` of an uncompressed encoder on ``data``'s test split (and the
    ``(queries, documents)`` ids of ``mcv.minilm.retrieval()``, if given); ``model`` is unchanged."""
    from mcviz.minilm import embed

    emb = embed(model, data.test.tensors[0])
    return Reference(emb, _neighbours(emb), retrieval)


def model(model: nn.Module, data: DataBundle, *, label: str = "", reference: Reference | None = None,
          latency: bool = False, batch_size: int = 32, threads: int = 1, repeats: int = 10,
          warmup: int = 2, files: bool = True) -> LMMeasurement:  # fmt: skip
    """Returns an LMMeasurement of ``model`` on ``data``; the model is left unchanged.

    Args:
        model: a character model (``data`` a ``mcv.text.CharCorpus``) or a sentence encoder
            (``data`` from ``mcv.minilm.corpus``, with ``reference``).
        data: the corpus: validation split for a character model, test split for an encoder.
        label: names the row.
        reference: the uncompressed encoder's :class:`Reference` (encoders only).
        latency: also time batch 1 and ``batch_size`` (test inputs), ``repeats`` passes each
            after ``warmup``, on ``threads`` threads.
        files: also measure ``file_bytes`` and ``gzip_bytes`` (as ``mcv.measure.model``); gzip
            is most of the cost of measuring a model of MiniLM's size (3 s of 90 MB).
    """
    check_model(model)
    check_data(data)
    kind = _kind(data, reference)
    batch_size = check_int(batch_size, "batch_size")
    threads = check_int(threads, "threads")
    check_bool(latency, "latency")
    with warnings.catch_warnings():  # an embedding table is a lookup (no MACs); its bytes are counted
        warnings.filterwarnings("ignore", message="MACs and sparsity count the Linear and Conv2d layers only")
        size = measure.model(model, input_shape=data.input_shape, label=label, files=files)
    row = dataclasses.asdict(size)  # accuracy None: measure.model had no labelled data
    with train.num_threads(threads):
        row.update(
            _language_model(model, data) if kind == "language_model" else _encoder(model, data, reference)
        )
        if latency:
            for key, batch in (("latency_b1", 1), ("latency", batch_size)):
                med, iqr = measure._latency(model, data, data.input_shape, batch, repeats, warmup)
                row[f"{key}_ms"], row[f"{key}_iqr_ms"] = med, iqr
            row.update(batch_size=batch_size, threads=threads,
                       cpu_capability=torch.backends.cpu.get_cpu_capability())  # fmt: skip
    return LMMeasurement(**row)


def table(records, *, drop_empty: bool = True) -> pd.DataFrame:
    """Returns a DataFrame with one row per LMMeasurement; ``drop_empty`` leaves out the columns that
    are None in every row (a character model has no ``cosine``, an encoder no ``val_loss``)."""
    records = list(records)
    for r in records:
        if not isinstance(r, LMMeasurement):
            raise TypeError(f"table takes LMMeasurement records, got {type(r).__name__}")
    df = pd.DataFrame([dataclasses.asdict(r) for r in records], columns=list(FIELDS))
    return df.dropna(axis=1, how="all") if drop_empty and len(df) else df


def run(baseline: nn.Module, data: DataBundle, specs, *, labels=None, retrieval=None, latency: bool = False,
        batch_size: int = 32, threads: int = 1, files: bool = True) -> engine.Applied:  # fmt: skip
    """Returns every spec applied to ``baseline`` and measured with :func:`model`, and the models.

    The same contract as ``mcv.engine.run`` (specs are method spec strings or config tuples, ``""``
    is the baseline itself; chains that start alike share their prefix), without its row cache.
    An encoder is compared with ``baseline``'s own embeddings (and scored on ``retrieval``, the
    ids of ``mcv.minilm.retrieval()``, if given). Compressing and measuring both run on ``threads``
    torch threads; ``files=False`` skips ``file_bytes`` and ``gzip_bytes`` (their columns are left out
    of the table). The methods' one warning about the weight layers they leave as they are (the
    embedding tables: every language model has them, and ``size_bytes`` shows what they cost) is
    not repeated for every spec. ``baseline`` and ``data`` are unchanged.
    """
    check_model(baseline)
    check_data(data)
    check_bool(files, "files")
    chains, texts = engine._chains(specs)
    labels = engine._labels(labels, chains, texts)
    registry.check_applies(chains, baseline)  # before any work
    ref = None if isinstance(data, CharCorpus) else reference(baseline, data, retrieval)
    prefixes: dict[tuple, nn.Module] = {(): baseline}
    rows, used, models = [], [], {}
    for label, chain, text in zip(labels, chains, texts, strict=True):
        if label in models:
            continue
        with train.num_threads(threads), warnings.catch_warnings():  # compressing (calibration...) too
            warnings.simplefilter("ignore", _layers.UnsupportedLayersWarning)  # embeddings: see above
            models[label] = m = engine._apply(prefixes, chain, data)
        rows.append(model(m, data, label=label, reference=ref, latency=latency, batch_size=batch_size,
                          threads=threads, files=files))  # fmt: skip
        used.append(text)
    out = table(rows)
    out["spec"] = used
    return engine.Applied(out, models)


def timings(models: dict[str, nn.Module], data: DataBundle, *, batch_sizes=(1, 32), rounds: int = 5,
            repeats: int = 5, threads: int = 1) -> pd.DataFrame:  # fmt: skip
    """Returns the latency of every model at every batch size, measured in interleaved rounds (each
    round times every model in turn, so a load change hits them all alike): one row per model and
    batch size with the median and interquartile range in ms, the ``speedup`` over the first model
    (its median / this one's), the thread count and the CPU's kernel path. Models are unchanged."""
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict {label: model}")
    rounds = check_int(rounds, "rounds", low=1, high=10_000)
    repeats = check_int(repeats, "repeats", low=1, high=10_000)
    threads = check_int(threads, "threads")
    X = data.test.tensors[0]
    out = []
    for b in batch_sizes:
        b = check_int(b, "batch size", low=1, high=100_000)
        x = X.repeat(math.ceil(b / len(X)), *([1] * (X.dim() - 1)))[:b]
        times: dict[str, list[float]] = {label: [] for label in models}
        with train.num_threads(threads), torch.no_grad():
            for m in models.values():
                m.eval()
                m(x)  # warm-up
            for _ in range(rounds):
                for label, m in models.items():
                    for _ in range(repeats):
                        start = time.perf_counter()
                        m(x)
                        times[label].append((time.perf_counter() - start) * 1000)
        first = float(np.median(times[next(iter(models))]))
        for label, t in times.items():
            q1, med, q3 = np.percentile(t, [25, 50, 75])
            out.append({"label": label, "batch_size": b, "latency_ms": float(med), "iqr_ms": float(q3 - q1),
                        "speedup": first / float(med), "threads": threads,
                        "cpu_capability": torch.backends.cpu.get_cpu_capability()})  # fmt: skip
    return pd.DataFrame(out)


def setup(name: str = "tiny_gpt", *, eval_size: int = 48, max_length: int = 64):
    """Returns ``(model, data, retrieval)`` for a report: the shipped tiny GPT with the Shakespeare
    corpus (``eval_size`` validation windows; ``retrieval`` None), or the pretrained MiniLM with the
    pydoc paragraphs (``eval_size`` test paragraphs of at most ``max_length`` tokens) and the
    retrieval pairs' ids. Nothing is downloaded or trained."""
    from mcviz import gpt, minilm, text

    check_int(eval_size, "eval_size", low=1, high=1_000_000)
    if name == "tiny_gpt":
        model, meta = gpt.pretrained()
        data = text.load("shakespeare", context=meta["context"], vocab=meta["vocab"], eval_windows=eval_size)
        return model, data, None
    if name == "minilm":
        model = minilm.load()
        data = minilm.corpus(max_length=max_length, test=eval_size)
        return model, data, minilm.retrieval(max_length=max_length)
    raise ValueError(f"name must be 'tiny_gpt' or 'minilm', got {name!r}")


def sweep(baseline: nn.Module, data: DataBundle, methods, bits, group_sizes, *, samples: int = 32,
          retrieval=None, latency: bool = False) -> engine.Applied:  # fmt: skip
    """Returns ``(table, models)``: the baseline, then every method spec of ``methods`` at every bit
    width and group size (an option a method does not have is left out, and its column shows
    "-"), applied and measured with :func:`run`. ``table`` starts with the key columns ``label``,
    ``method``, ``weight_bits`` and ``group_size``. ``baseline`` is unchanged."""
    from mcviz import registry

    check_int(samples, "samples", low=1, high=1_000_000)
    keys, specs = [{"label": "baseline", "method": "fp32", "weight_bits": 32, "group_size": "-"}], [""]
    for spec in methods:
        (config,) = registry.parse(spec)[-1:]
        fields = {f.name for f in dataclasses.fields(config)}
        for b in bits if "bits" in fields else [None]:
            for g in group_sizes if "group_size" in fields else [None]:
                options = [f"bits={b}"] * (b is not None) + [f"group_size={g}"] * (g is not None)
                options += [f"samples={samples}"] * ("samples" in fields)
                text = spec + ("," if ":" in spec else ":") + ",".join(options) if options else spec
                if text in specs:
                    continue
                specs.append(text)
                none = "-"
                keys.append({"label": text, "method": config.method, "weight_bits": none if b is None else b,
                             "group_size": none if g is None else g})  # fmt: skip
    labels = [k["label"] for k in keys]
    applied = run(baseline, data, specs, labels=labels, retrieval=retrieval, latency=latency)
    table = pd.DataFrame(keys).merge(applied.table.drop(columns="spec"), on="label", how="left")
    return engine.Applied(table, applied.models)


# ---------------------------------------------------------------- the metrics


@torch.no_grad()
def perplexity(model: nn.Module, data: CharCorpus, split: str = "val", *, batch_size: int = 64) -> dict:
    """Returns ``{"val_loss", "perplexity", "likelihood", "accuracy"}`` of a character model on one split:
    the mean cross-entropy per character in nats, ``exp(loss)``, ``exp(-loss)`` and the
    next-character accuracy."""
    x, y = data.split(split).tensors
    was_training = model.training
    model.eval()
    total, correct = 0.0, 0
    try:
        for i in range(0, len(x), batch_size):
            logits = model(x[i : i + batch_size]).float()
            total += F.cross_entropy(logits, y[i : i + batch_size], reduction="sum").item()
            correct += int((logits.argmax(1) == y[i : i + batch_size]).sum())
    finally:
        model.train(was_training)
    loss = total / y.numel()
    accuracy = correct / y.numel()
    return {"val_loss": loss, "perplexity": math.exp(loss), "likelihood": math.exp(-loss),
            "accuracy": accuracy}  # fmt: skip


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Returns the mean cosine similarity of the rows of ``a`` and ``b``."""
    return float(F.cosine_similarity(a.float(), b.float(), dim=1).mean())


def nn_agreement(a: torch.Tensor, reference_neighbours: torch.Tensor) -> float:
    """Returns the fraction of rows of ``a`` whose nearest other row is ``reference_neighbours``'s."""
    return float((_neighbours(a) == reference_neighbours).float().mean())


def retrieval_scores(queries: torch.Tensor, documents: torch.Tensor) -> dict:
    """Returns ``{"recall_at_1", "mrr"}`` of embedded queries against embedded documents, query
    ``i`` belonging to document ``i`` (cosine similarity; ties rank the right document last)."""
    sim = F.normalize(queries.float(), dim=1) @ F.normalize(documents.float(), dim=1).T
    right = sim.diagonal().unsqueeze(1)
    rank = (sim >= right).sum(1)  # 1 = first
    return {"recall_at_1": float((rank == 1).float().mean()), "mrr": float((1.0 / rank.float()).mean())}


def _language_model(model, data) -> dict:
    return perplexity(model, data, "val")


def _encoder(model, data, ref: Reference) -> dict:
    from mcviz.minilm import embed

    emb = embed(model, data.test.tensors[0])
    row = {"cosine": cosine(emb, ref.embeddings), "nn_agreement": nn_agreement(emb, ref.neighbours)}
    if ref.retrieval is not None:
        queries, documents = ref.retrieval
        row.update(retrieval_scores(embed(model, queries), embed(model, documents)))
    return row


def _neighbours(emb: torch.Tensor) -> torch.Tensor:
    sim = F.normalize(emb.float(), dim=1) @ F.normalize(emb.float(), dim=1).T
    sim.fill_diagonal_(-math.inf)
    return sim.argmax(1)


def _kind(data, ref) -> str:
    if isinstance(data, CharCorpus):
        return "language_model"
    if not isinstance(ref, Reference):
        raise ValueError(
            "an encoder is measured against its uncompressed model: "
            "pass reference=mcv.measure_lm.reference(...)"
            " (data is not a mcv.text.CharCorpus)"
        )
    return "encoder"
