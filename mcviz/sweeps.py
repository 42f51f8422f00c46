"""Parameter sweeps for the quantization and pruning reports: spec generators, key columns, summaries.

A sweep is a list of ``(row, configs)``: ``row`` holds the sweep's key columns (label, method and
the swept values), ``configs`` the registered configs that make the model. :func:`run` applies a
sweep to a baseline with ``mcv.engine.run`` and puts the key columns first.

- quantization: :func:`quantization_specs` (method spec x granularity x bit width),
  :func:`quantization`, :func:`layer_errors` (``||w - w_q|| / ||w||`` per layer) and
  :func:`quantization_summary`;
- pruning: :func:`pruning_specs` (method x scope x sparsity, then ``finetune`` when asked),
  :func:`pruning`, :func:`layer_sparsity` and :func:`pruning_summary`.

Both summaries are one algorithm (``_summary``) in two vocabularies.

Example:
    >>> table, models = mcv.sweeps.pruning(model, data, [0.5, 0.9], ["random"], [])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
from torch import nn

from mcviz import engine, measure, registry, train
from mcviz._checks import (
    BOUNDS,
    check_bool,
    check_int,
    check_list,
    check_model,
    check_number,
    check_seed,
    shorten,
)

__all__ = [
    "NONE",
    "PRUNING_COLUMNS",
    "QUANTIZATION_COLUMNS",
    "layer_errors",
    "layer_sparsity",
    "pruning",
    "pruning_specs",
    "pruning_summary",
    "quantization",
    "quantization_specs",
    "quantization_summary",
    "run",
]

QUANTIZATION_COLUMNS = ("label", "method", "granularity", "weight_bits")
PRUNING_COLUMNS = ("label", "method", "scope", "target_sparsity", "fine_tune_epochs")
NONE = "-"  # the value of a key column whose option the method does not have


def run(baseline: nn.Module, data, plan, baseline_row: dict[str, Any], *, latency: bool = False):
    """Returns ``(table, models)``: the baseline and every ``(row, configs)`` of ``plan`` measured.

    ``baseline`` is left unchanged. ``table`` has the keys of ``baseline_row`` (label first) and
    then the ``mcv.measure.FIELDS``; its first row is the baseline's, labelled ``baseline_row
    ["label"]``, then one per distinct label of ``plan``, in order (a row given twice is measured
    once). ``models`` maps label -> model; the baseline's is ``baseline`` itself.
    """
    if not isinstance(baseline_row, dict) or not isinstance(baseline_row.get("label"), str):
        raise TypeError(f"baseline_row must be a dict with a str 'label', got {shorten(baseline_row)}")
    plan = check_list(plan, "plan", what="(row, configs) pairs", empty=True)
    check_bool(latency, "latency")
    rows = {baseline_row["label"]: (baseline_row, ())}
    for row, configs in plan:
        rows.setdefault(row["label"], (row, tuple(configs)))
    applied = engine.run(baseline, data, [c for _, c in rows.values()], labels=list(rows), latency=latency)
    keys = pd.DataFrame([row for row, _ in rows.values()])
    table = keys.merge(applied.table.drop(columns="spec"), on="label", how="left", validate="one_to_one")
    return table, applied.models


# ---------------------------------------------------------------- quantization


def quantization_specs(methods, bits, granularities) -> list[tuple[dict[str, Any], tuple]]:
    """Returns one ``(row, configs)`` per method spec x granularity x bit width, in that order.

    Each spec (``"weights"``, ``"ptq:observer=percentile"``, a ``+`` chain) is parsed with
    ``mcv.registry.parse``; every config in it with a ``bits`` option gets each bit width, and
    each one with a ``granularity`` option gets each granularity (a method without one is swept
    over bits only, granularity ``"-"``). ``row`` holds :data:`QUANTIZATION_COLUMNS`. Nothing is
    computed.

    Raises:
        ValueError: a spec has no method taking ``bits``, or a value is rejected by its config.
    """
    methods = check_list(methods, "methods", what="method specs such as 'weights'")
    bits = check_list(bits, "bits", check_int, what="bit widths")
    granularities = check_list(granularities, "granularities", what="granularities such as 'per_channel'")
    out = []
    for spec in methods:
        configs = registry.parse(spec)
        fields = [{f.name for f in dataclasses.fields(c)} for c in configs]
        if not any("bits" in f for f in fields):
            raise ValueError(f"method spec {spec!r} has no bits option; sweep needs a method that takes bits")
        grans = granularities if any("granularity" in f for f in fields) else [NONE]
        for gran in grans:
            for b in bits:
                new = []
                for config, names in zip(configs, fields, strict=True):
                    changes = {k: v for k, v in (("bits", b), ("granularity", gran)) if k in names}
                    new.append(dataclasses.replace(config, **changes) if changes else config)
                label = f"{spec} {b}b" + ("" if gran == NONE else f" {gran}")
                row = {"label": label, "method": spec, "granularity": gran, "weight_bits": int(b)}
                out.append((row, tuple(new)))
    return out


def quantization(baseline: nn.Module, data, methods, bits, granularities, *, latency: bool = False):
    """Returns ``(table, models)``: every method x granularity x bits applied to ``baseline``.

    ``baseline`` is left unchanged; ``models`` maps label -> model, starting with ``"baseline"``
    (the fp32 model itself). ``table`` holds every model measured on ``data``, the columns of
    :data:`QUANTIZATION_COLUMNS` first (the baseline row: method ``"fp32"``, weight_bits 32).

    Example:
        >>> table, models = quantization(model, data, ["weights"], [8, 4], ["per_channel"])  # doctest: +SKIP
    """
    plan = quantization_specs(methods, bits, granularities)
    base = {"label": "baseline", "method": "fp32", "granularity": NONE, "weight_bits": 32}
    return run(baseline, data, plan, base, latency=latency)


def layer_errors(reference: nn.Module, models: dict[str, nn.Module]) -> pd.DataFrame:
    """Returns the relative weight error of every layer of every model against ``reference``.

    The models are left unchanged. One row per (label, layer): ``rel_error = ||w - w_ref|| /
    ||w_ref||`` (Frobenius norms of the weight as the model computes with it, i.e. dequantized).
    Layers are the reference's Linear / Conv2d modules, matched by name; a model that lacks the
    layer or changed its shape is skipped, as is ``reference`` itself if it is in ``models``.
    """
    from mcviz.measure import _dense

    check_model(reference, "reference")
    if not isinstance(models, dict):
        raise TypeError(f"models must be a dict of label -> model, got {type(models).__name__}")
    ref_layers = [(n, m) for n, m in reference.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    out = []
    for label, model in models.items():
        if model is reference:
            continue
        modules = dict(model.named_modules())
        for name, ref in ref_layers:
            other = modules.get(name)
            if other is None or getattr(other, "weight", None) is None:
                continue
            w_ref, w = _dense(ref.weight), _dense(other.weight)
            if w.shape != w_ref.shape:
                continue
            norm = float(torch.linalg.vector_norm(w_ref))
            err = float(torch.linalg.vector_norm(w - w_ref)) / norm if norm else float("nan")
            out.append({"label": label, "layer": name, "rel_error": err})
    return pd.DataFrame(out, columns=["label", "layer", "rel_error"])


# ---------------------------------------------------------------- pruning


def pruning_specs(sparsities, methods, scopes, *, seed: int = 0,
                  fine_tune_epochs: int = 0) -> list[tuple[dict[str, Any], tuple]]:  # fmt: skip
    """Returns one ``(row, configs)`` per method x scope x sparsity, in that order.

    ``methods`` are names of registered methods that take a ``sparsity`` option ("magnitude",
    "random", "channels"); a method with a ``scope`` option gets each scope, one without is swept
    over sparsities only (scope ``"-"``); a ``seed`` option (random pruning) gets ``seed``. With
    ``fine_tune_epochs`` > 0 each chain ends with ``finetune:epochs=fine_tune_epochs,seed=seed``
    (pruned weights stay zero while training). ``row`` holds :data:`PRUNING_COLUMNS`
    (label ``"magnitude global 0.9"``, ``"random 0.5"``). Nothing is computed.

    Raises:
        ValueError: an unknown method, one without a sparsity option, or a value its config rejects.
    """
    check_int(fine_tune_epochs, "fine_tune_epochs", bounds=BOUNDS["fine_tune_epochs"])
    check_seed(seed)
    sparsities = check_list(sparsities, "sparsities", lambda v, n: check_number(v, n, low=0, high=1),
                            what="numbers in [0, 1]")  # fmt: skip
    methods = check_list(methods, "methods", what="method names such as 'magnitude'")
    scopes = check_list(scopes, "scopes", what="scopes ('layer', 'global')", empty=True)
    tune = (train.FineTuneConfig(epochs=fine_tune_epochs, seed=seed),) if fine_tune_epochs else ()
    out = []
    for name in methods:
        if not isinstance(name, str):
            raise TypeError(f"methods must hold method names, got {shorten(name)}")
        if name not in registry.METHODS:
            allowed = ", ".join(sorted(registry.METHODS))
            raise ValueError(f"unknown method {shorten(name)}; allowed: {allowed}")
        cls = registry.METHODS[name]
        fields = {f.name for f in dataclasses.fields(cls)}
        if "sparsity" not in fields:
            raise ValueError(f"method {name!r} has no sparsity option; a pruning sweep needs one")
        for scope in scopes if "scope" in fields else [NONE]:
            for s in sparsities:
                options = {"sparsity": s}
                if scope != NONE:
                    options["scope"] = scope
                if "seed" in fields:
                    options["seed"] = seed
                label = f"{name} {s:g}" if scope == NONE else f"{name} {scope} {s:g}"
                row = {"label": label, "method": name, "scope": scope, "target_sparsity": float(s),
                       "fine_tune_epochs": fine_tune_epochs}  # fmt: skip
                out.append((row, (cls(**options), *tune)))
    return out


def pruning(baseline: nn.Module, data, sparsities, methods, scopes, *, fine_tune_epochs: int = 0,
            seed: int = 0, latency: bool = False):  # fmt: skip
    """Returns ``(table, models)``: every method x scope x sparsity applied to ``baseline``.

    ``baseline`` is left unchanged. With ``fine_tune_epochs`` > 0 each pruned model is then
    trained that many epochs (``mcv.train.fine_tune(..., seed=seed)``, the ``finetune`` step);
    pruned layers keep their zeros while training. ``models`` maps label -> model, starting with
    ``"baseline"`` (the dense model itself); ``table`` holds every model measured on ``data``,
    the columns of :data:`PRUNING_COLUMNS` first (the baseline row: method ``"dense"``,
    target_sparsity 0).

    Example:
        >>> table, models = pruning(model, data, [0.5, 0.9], ["random"], [])  # doctest: +SKIP
    """
    plan = pruning_specs(sparsities, methods, scopes, seed=seed, fine_tune_epochs=fine_tune_epochs)
    base = {"label": "baseline", "method": "dense", "scope": NONE, "target_sparsity": 0.0,
            "fine_tune_epochs": 0}  # fmt: skip
    return run(baseline, data, plan, base, latency=latency)


def layer_sparsity(models: dict[str, nn.Module]) -> pd.DataFrame:
    """Returns the measured sparsity of every Linear / Conv2d layer of every model.

    The models are left unchanged. One row per (label, layer) with columns label, layer, params,
    nonzero_params, sparsity (from ``mcv.measure.layers``).
    """
    cols = ["label", "layer", "params", "nonzero_params", "sparsity"]
    if not isinstance(models, dict):
        raise TypeError(f"models must be a dict of label -> model, got {type(models).__name__}")
    frames = []
    for label, model in models.items():
        df = measure.layers(model)
        df.insert(0, "label", label)
        frames.append(df[cols])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


# ---------------------------------------------------------------- summaries


def quantization_summary(table: pd.DataFrame, *, baseline: str = "baseline", tolerance: float = 1.0) -> str:
    """Returns summary sentences of a :func:`quantization` table, computed from its numbers.

    The table is left unchanged. For each method and granularity: the lowest bit width whose
    test accuracy stays within ``tolerance`` percentage points of the baseline, its size as a
    percentage of the baseline's ``size_bytes``, and what the lowest bit width swept loses. A
    first sentence names the smallest model within the tolerance.

    Raises:
        ValueError: a needed column is missing, no row is labelled ``baseline``, an accuracy is
            missing, or ``tolerance`` is not a number >= 0.
    """
    return _summary(table, _QUANTIZATION, baseline=baseline, tolerance=tolerance)


def pruning_summary(table: pd.DataFrame, *, baseline: str = "baseline", tolerance: float = 1.0) -> str:
    """Returns summary sentences of a :func:`pruning` table, computed from its numbers.

    The table is left unchanged. A first sentence names the sparsest model within ``tolerance``
    percentage points of the dense accuracy; then, for each method and scope, the highest
    sparsity swept that stays within the tolerance and what the highest sparsity swept loses.

    Raises:
        ValueError: a needed column is missing, no row is labelled ``baseline``, an accuracy is
            missing, or ``tolerance`` is not a number >= 0.
    """
    return _summary(table, _PRUNING, baseline=baseline, tolerance=tolerance)


@dataclasses.dataclass(frozen=True)
class _Words:
    """How one kind of sweep is summarized: its columns and the phrases of its sentences."""

    name: str  # the public function, for error messages
    need: tuple[str, ...]  # columns, in the order they are checked
    by: tuple[str, str]  # one sentence per group: method and granularity / scope
    x: str  # the swept column
    x_grows: bool  # a larger x compresses more (sparsity) or less (bits)
    reference: str  # "fp32" / "dense"
    nothing: str  # what "No ... stays within" names
    superlative: str  # "smallest" / "sparsest": the first sentence's model
    best_by: tuple[list[str], list[bool]]  # sort of the rows within the tolerance: best first
    best: Callable[[pd.Series, pd.Series], str]  # (row, baseline row) -> the rest of the first sentence
    group: Callable[[str, str], str]  # (method, granularity / scope) -> a group's name
    swept: str  # "bit width" / "sparsity"
    at: Callable[[float], str]  # x -> "4-bit" / "0.9"
    within: Callable[[pd.Series, pd.Series], str]  # (row, baseline row) -> "down to 4 bits (...)"


def _size_pct(row, base) -> float:
    return 100 * float(row["size_bytes"]) / float(base["size_bytes"])


def _fewer_nonzeros(row, base) -> float:
    return float(base["nonzero_params"]) / row["nonzero_params"] if row["nonzero_params"] else float("inf")


_QUANTIZATION = _Words(
    name="quantization_summary",
    need=("label", "method", "granularity", "weight_bits", "accuracy", "size_bytes"),
    by=("method", "granularity"),
    x="weight_bits",
    x_grows=False,
    reference="fp32",
    nothing="configuration",
    superlative="smallest",
    best_by=(["size_bytes", "change"], [True, False]),
    best=lambda r, base: (
        f"at {_size_pct(r, base):.1f}% of the fp32 size "
        f"({float(base['size_bytes']) / r['size_bytes']:.1f}x smaller)"
    ),
    group=lambda method, gran: method if gran == NONE else f"{gran.replace('_', '-')} {method}",
    swept="bit width",
    at=lambda bits: f"{int(bits)}-bit",
    within=lambda r, base: (
        f"down to {int(r['weight_bits'])} bits ({100 * r['accuracy']:.2f}%, "
        f"{_size_pct(r, base):.1f}% of the fp32 size)"
    ),
)

_PRUNING = _Words(
    name="pruning_summary",
    need=("label", "method", "scope", "target_sparsity", "accuracy", "sparsity", "nonzero_params"),
    by=("method", "scope"),
    x="target_sparsity",
    x_grows=True,
    reference="dense",
    nothing="pruned model",
    superlative="sparsest",
    best_by=(["sparsity", "change"], [False, False]),
    best=lambda r, base: (
        f"with {100 * r['sparsity']:.1f}% of its weights zero "
        f"({_fewer_nonzeros(r, base):.1f}x fewer nonzero parameters)"
    ),
    group=lambda method, scope: method if scope == NONE else f"{method} ({scope})",
    swept="sparsity",
    at=lambda s: f"{s:g}",
    within=lambda r, base: f"up to sparsity {r['target_sparsity']:g} ({100 * r['accuracy']:.2f}%)",
)


def _points(change: float) -> str:
    if change < 0:
        return f"loses {-change:.2f} points"
    if change > 0:
        return f"gains {change:.2f} points"
    return "loses no accuracy"


def _summary(table: pd.DataFrame, words: _Words, *, baseline: str, tolerance: float) -> str:
    """Returns the tolerance sentences of a sweep table: the best model within ``tolerance``
    points of the baseline, then one sentence per group on how far it stays within."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{words.name} takes a pandas DataFrame, got {type(table).__name__}")
    check_number(tolerance, "tolerance", low=0)  # percentage points
    missing = [c for c in words.need if c not in table.columns]
    if missing:
        raise ValueError(f"{words.name} needs column {missing[0]!r}, got {list(table.columns)}")
    if table["accuracy"].isna().any():
        raise ValueError(f"{words.name} needs accuracy on every row (measure with data)")
    base_rows = table[table["label"] == baseline]
    if base_rows.empty:
        raise ValueError(f"{words.name} needs a row labelled {baseline!r}, got {list(table['label'])}")
    base = base_rows.iloc[0]
    base_acc = 100 * float(base["accuracy"])
    rows = table[table["label"] != baseline].copy()
    if rows.empty:
        return f"Only the {baseline} was measured."
    rows["change"] = (100 * rows["accuracy"].astype(float) - base_acc).round(6)  # points, no float noise
    tol = f"{tolerance:g} point" + ("" if tolerance == 1 else "s")
    of = f"of the {words.reference} accuracy ({base_acc:.2f}%)"
    ok = rows[rows["change"] >= -tolerance]
    if ok.empty:
        sentences = [f"No {words.nothing} stays within {tol} {of}."]
    else:
        best = ok.sort_values(words.best_by[0], ascending=words.best_by[1], kind="stable").iloc[0]
        sentences = [
            f"The {words.superlative} model within {tol} {of} is {best['label']}: "
            f"{100 * best['accuracy']:.2f}% {words.best(best, base)}."
        ]
    for key, group in rows.groupby(list(words.by), sort=False):
        name = words.group(*key)
        name = name[0].upper() + name[1:]
        group = group.sort_values(words.x, ascending=words.x_grows, kind="stable")  # least compressed first
        within = group[group["change"] >= -tolerance]
        last = group.iloc[-1]
        if within.empty:
            first = group.iloc[0]
            text = (f"{name}: more than {tol} lost at every {words.swept} swept "
                    f"({words.at(first[words.x])} {_points(first['change'])})")  # fmt: skip
        else:
            r = within.iloc[-1]
            text = f"{name}: within {tol} {words.within(r, base)}"
            if last[words.x] > r[words.x] if words.x_grows else last[words.x] < r[words.x]:  # swept further
                text += f"; {words.at(last[words.x])} {_points(last['change'])}"
        sentences.append(text + ".")
    return " ".join(sentences)
