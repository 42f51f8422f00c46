"""Bit-width sweeps for report templates (re-exported as ``mcv.reports.sweep`` etc.).

Templates define no functions: the quantization report's logic lives here, tested on its own.

- :func:`sweep_configs` expands method specs over bit widths and granularities,
- :func:`sweep` applies every configuration to a baseline and measures each model,
- :func:`layer_errors` gives the relative weight error ``||w - w_q|| / ||w||`` per layer,
- :func:`quantization_summary` writes the report's summary sentences from the numbers.

The pruning report's: :func:`pruning_configs`, :func:`pruning_sweep` (method x scope x sparsity,
optionally fine-tuned), :func:`layer_sparsity` and :func:`pruning_summary`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import torch
from torch import nn

__all__ = ["SWEEP_COLUMNS", "sweep_configs", "sweep", "layer_errors", "quantization_summary",
           "PRUNING_COLUMNS", "pruning_configs", "pruning_sweep", "layer_sparsity", "pruning_summary"]

SWEEP_COLUMNS = ("label", "method", "granularity", "weight_bits")
NO_GRANULARITY = "-"


def sweep_configs(methods, bits, granularities) -> list[tuple[dict[str, Any], tuple]]:
    """Return one ``(row, configs)`` per method spec x granularity x bit width, in that order.

    Each spec (``"weights"``, ``"ptq:observer=percentile"``, a ``+`` chain) is parsed with
    ``mcv.registry.parse``; every config in it with a ``bits`` option gets each bit width, and
    each one with a ``granularity`` option gets each granularity (a method without one is swept
    over bits only, granularity ``"-"``). ``row`` holds label, method, granularity, weight_bits.

    Raises:
        ValueError: a spec has no method taking ``bits``, or a value is rejected by its config.
    """
    from . import registry

    out = []
    for spec in methods:
        configs = registry.parse(spec)
        fields = [{f.name for f in dataclasses.fields(c)} for c in configs]
        if not any("bits" in f for f in fields):
            raise ValueError(f"method spec {spec!r} has no bits option; sweep needs a method that takes bits")
        grans = granularities if any("granularity" in f for f in fields) else [NO_GRANULARITY]
        for gran in grans:
            for b in bits:
                new = []
                for config, names in zip(configs, fields, strict=True):
                    changes = {k: v for k, v in (("bits", b), ("granularity", gran)) if k in names}
                    new.append(dataclasses.replace(config, **changes) if changes else config)
                label = f"{spec} {b}b" + ("" if gran == NO_GRANULARITY else f" {gran}")
                row = {"label": label, "method": spec, "granularity": gran, "weight_bits": int(b)}
                out.append((row, tuple(new)))
    return out


def sweep(baseline: nn.Module, data, methods, bits, granularities, *, latency: bool = False):
    """Return ``(table, models)``: every method x granularity x bits applied to ``baseline``.

    ``models`` maps label -> model, starting with ``"baseline"`` (the fp32 model itself, left
    unchanged). ``table`` is ``mcv.measure.table`` of every model measured on ``data`` with the
    columns of :data:`SWEEP_COLUMNS` first (the baseline row: method ``"fp32"``, weight_bits 32).

    Example:
        >>> table, models = sweep(model, data, ["weights"], [8, 4], ["per_channel"])  # doctest: +SKIP
    """
    from . import measure, registry

    plan = sweep_configs(methods, bits, granularities)
    rows = [{"label": "baseline", "method": "fp32", "granularity": NO_GRANULARITY, "weight_bits": 32}]
    models = {"baseline": baseline}
    for row, configs in plan:
        if row["label"] in models:
            continue  # a spec given twice
        models[row["label"]] = registry.compress(baseline, *configs, data=data)
        rows.append(row)
    records = [measure.model(m, data, label=label, latency=latency) for label, m in models.items()]
    table = measure.table(records)
    keys = pd.DataFrame(rows)
    table = keys.merge(table, on="label", how="left", validate="one_to_one")
    return table, models


def layer_errors(reference: nn.Module, models: dict[str, nn.Module]) -> pd.DataFrame:
    """Return the relative weight error of every layer of every model against ``reference``.

    One row per (label, layer): ``rel_error = ||w - w_ref|| / ||w_ref||`` (Frobenius norms of
    the weight as the model computes with it, i.e. dequantized). Layers are the reference's
    Linear / Conv2d modules, matched by name; a model that lacks the layer or changed its
    shape is skipped, as is ``reference`` itself if it is in ``models``.
    """
    from .measure import _dense

    if not isinstance(reference, nn.Module):
        raise ValueError(f"reference must be a torch.nn.Module, got {type(reference).__name__}")
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


def _points(change: float) -> str:
    if change < 0:
        return f"loses {-change:.2f} points"
    if change > 0:
        return f"gains {change:.2f} points"
    return "loses no accuracy"


def _check_tolerance(tolerance) -> None:
    # one check for both summaries (they had drifted: True passed as a tolerance of 1 in one of them)
    if isinstance(tolerance, bool) or not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise ValueError(f"tolerance must be a number >= 0 (percentage points), got {tolerance!r}")


def quantization_summary(table: pd.DataFrame, *, baseline: str = "baseline", tolerance: float = 1.0) -> str:
    """Return summary sentences of a :func:`sweep` table, computed from its numbers.

    For each method and granularity: the lowest bit width whose test accuracy stays within
    ``tolerance`` percentage points of the baseline, its size as a percentage of the
    baseline's ``size_bytes``, and what the lowest bit width swept loses. A first sentence
    names the smallest model within the tolerance.

    Raises:
        ValueError: a needed column is missing, no row is labelled ``baseline``, or an
            accuracy is missing.
    """
    need = ["label", "method", "granularity", "weight_bits", "accuracy", "size_bytes"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"quantization_summary needs column {missing[0]!r}, got {list(table.columns)}")
    _check_tolerance(tolerance)
    if table["accuracy"].isna().any():
        raise ValueError("quantization_summary needs accuracy on every row (measure with data)")
    base_rows = table[table["label"] == baseline]
    if base_rows.empty:
        labels = list(table["label"])
        raise ValueError(f"quantization_summary needs a row labelled {baseline!r}, got {labels}")
    base = base_rows.iloc[0]
    base_acc, base_size = 100 * float(base["accuracy"]), float(base["size_bytes"])
    rows = table[table["label"] != baseline].copy()
    if rows.empty:
        return f"Only the {baseline} was measured."
    rows["change"] = (100 * rows["accuracy"].astype(float) - base_acc).round(6)  # points, no float noise
    rows["size_pct"] = 100 * rows["size_bytes"].astype(float) / base_size
    tol = f"{tolerance:g} point" + ("" if tolerance == 1 else "s")
    ok = rows[rows["change"] >= -tolerance]
    if ok.empty:
        sentences = [f"No configuration stays within {tol} of the fp32 accuracy ({base_acc:.2f}%)."]
    else:
        best = ok.sort_values(["size_bytes", "change"], ascending=[True, False], kind="stable").iloc[0]
        sentences = [
            f"The smallest model within {tol} of the fp32 accuracy ({base_acc:.2f}%) is "
            f"{best['label']}: {100 * best['accuracy']:.2f}% at {best['size_pct']:.1f}% of the fp32 "
            f"size ({base_size / best['size_bytes']:.1f}x smaller)."
        ]
    for (method, gran), group in rows.groupby(["method", "granularity"], sort=False):
        name = method if gran == NO_GRANULARITY else f"{gran.replace('_', '-')} {method}"
        group = group.sort_values("weight_bits", ascending=False, kind="stable")
        within = group[group["change"] >= -tolerance]
        lowest = group.iloc[-1]
        if within.empty:
            top = group.iloc[0]
            text = (
                f"{name[0].upper() + name[1:]}: more than {tol} lost at every bit width swept "
                f"({int(top['weight_bits'])}-bit {_points(top['change'])})"
            )
        else:
            r = within.iloc[-1]
            text = (
                f"{name[0].upper() + name[1:]}: within {tol} down to {int(r['weight_bits'])} bits "
                f"({100 * r['accuracy']:.2f}%, {r['size_pct']:.1f}% of the fp32 size)"
            )
            if lowest["weight_bits"] < r["weight_bits"]:
                text += f"; {int(lowest['weight_bits'])}-bit {_points(lowest['change'])}"
        sentences.append(text + ".")
    return " ".join(sentences)


# ---------------------------------------------------------------- pruning sweeps

PRUNING_COLUMNS = ("label", "method", "scope", "target_sparsity", "fine_tune_epochs")
NO_SCOPE = "-"


def pruning_configs(sparsities, methods, scopes, *, seed: int = 0) -> list[tuple[dict[str, Any], Any]]:
    """Return one ``(row, config)`` per method x scope x sparsity, in that order.

    ``methods`` are names of registered methods that take a ``sparsity`` option ("magnitude",
    "random", "channels"); a method with a ``scope`` option gets each scope, one without is swept
    over sparsities only (scope ``"-"``); a ``seed`` option (random pruning) gets ``seed``.
    ``row`` holds label (``"magnitude global 0.9"``, ``"random 0.5"``), method, scope and
    target_sparsity.

    Raises:
        ValueError: an unknown method, one without a sparsity option, or a value its config rejects.
    """
    from . import registry

    out = []
    for name in methods:
        if name not in registry.METHODS:
            raise ValueError(f"unknown method {name!r}; allowed: {', '.join(sorted(registry.METHODS))}")
        cls = registry.METHODS[name]
        fields = {f.name for f in dataclasses.fields(cls)}
        if "sparsity" not in fields:
            raise ValueError(f"method {name!r} has no sparsity option; a pruning sweep needs one")
        for scope in scopes if "scope" in fields else [NO_SCOPE]:
            for s in sparsities:
                options = {"sparsity": s}
                if scope != NO_SCOPE:
                    options["scope"] = scope
                if "seed" in fields:
                    options["seed"] = seed
                label = f"{name} {s:g}" if scope == NO_SCOPE else f"{name} {scope} {s:g}"
                row = {"label": label, "method": name, "scope": scope, "target_sparsity": float(s)}
                out.append((row, cls(**options)))
    return out


def pruning_sweep(baseline: nn.Module, data, sparsities, methods, scopes, *, fine_tune_epochs: int = 0,
                  seed: int = 0, latency: bool = False):
    """Return ``(table, models)``: every method x scope x sparsity applied to ``baseline``.

    With ``fine_tune_epochs`` > 0 each pruned model is then trained that many epochs with
    ``mcv.train.fit(..., seed=seed)``; pruned layers keep their zeros while training. ``models``
    maps label -> model, starting with ``"baseline"`` (the dense model itself, left unchanged);
    ``table`` is ``mcv.measure.table`` of every model measured on ``data`` with the columns of
    :data:`PRUNING_COLUMNS` first (the baseline row: method ``"dense"``, target_sparsity 0).

    Example:
        >>> table, models = pruning_sweep(model, data, [0.5, 0.9], ["random"], [])  # doctest: +SKIP
    """
    from . import measure, registry, train

    if isinstance(fine_tune_epochs, bool) or not isinstance(fine_tune_epochs, int) or fine_tune_epochs < 0:
        raise ValueError(f"fine_tune_epochs must be an int >= 0, got {fine_tune_epochs!r}")
    plan = pruning_configs(sparsities, methods, scopes, seed=seed)
    rows = [{"label": "baseline", "method": "dense", "scope": NO_SCOPE, "target_sparsity": 0.0,
             "fine_tune_epochs": 0}]
    models = {"baseline": baseline}
    for row, config in plan:
        if row["label"] in models:
            continue  # a value given twice
        model = registry.compress(baseline, config, data=data)
        if fine_tune_epochs:
            train.fit(model, data, epochs=fine_tune_epochs, seed=seed, progress=False)
        models[row["label"]] = model
        rows.append({**row, "fine_tune_epochs": fine_tune_epochs})
    records = [measure.model(m, data, label=label, latency=latency) for label, m in models.items()]
    table = pd.DataFrame(rows).merge(measure.table(records), on="label", how="left", validate="one_to_one")
    return table, models


def layer_sparsity(models: dict[str, nn.Module]) -> pd.DataFrame:
    """Return the measured sparsity of every Linear / Conv2d layer of every model.

    One row per (label, layer) with columns label, layer, params, nonzero_params, sparsity
    (from ``mcv.measure.layers``).
    """
    from . import measure

    cols = ["label", "layer", "params", "nonzero_params", "sparsity"]
    frames = []
    for label, model in models.items():
        df = measure.layers(model)
        df.insert(0, "label", label)
        frames.append(df[cols])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def pruning_summary(table: pd.DataFrame, *, baseline: str = "baseline", tolerance: float = 1.0) -> str:
    """Return summary sentences of a :func:`pruning_sweep` table, computed from its numbers.

    A first sentence names the sparsest model within ``tolerance`` percentage points of the
    dense accuracy; then, for each method and scope, the highest sparsity swept that stays
    within the tolerance and what the highest sparsity swept loses.

    Raises:
        ValueError: a needed column is missing, no row is labelled ``baseline``, an accuracy is
            missing, or ``tolerance`` is not a number >= 0.
    """
    need = ["label", "method", "scope", "target_sparsity", "accuracy", "sparsity", "nonzero_params"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"pruning_summary needs column {missing[0]!r}, got {list(table.columns)}")
    _check_tolerance(tolerance)
    if table["accuracy"].isna().any():
        raise ValueError("pruning_summary needs accuracy on every row (measure with data)")
    base_rows = table[table["label"] == baseline]
    if base_rows.empty:
        raise ValueError(f"pruning_summary needs a row labelled {baseline!r}, got {list(table['label'])}")
    base = base_rows.iloc[0]
    base_acc, base_nz = 100 * float(base["accuracy"]), float(base["nonzero_params"])
    rows = table[table["label"] != baseline].copy()
    if rows.empty:
        return f"Only the {baseline} was measured."
    rows["change"] = (100 * rows["accuracy"].astype(float) - base_acc).round(6)  # points, no float noise
    tol = f"{tolerance:g} point" + ("" if tolerance == 1 else "s")
    ok = rows[rows["change"] >= -tolerance]
    if ok.empty:
        sentences = [f"No pruned model stays within {tol} of the dense accuracy ({base_acc:.2f}%)."]
    else:
        best = ok.sort_values(["sparsity", "change"], ascending=[False, False], kind="stable").iloc[0]
        ratio = base_nz / best["nonzero_params"] if best["nonzero_params"] else float("inf")
        sentences = [
            f"The sparsest model within {tol} of the dense accuracy ({base_acc:.2f}%) is "
            f"{best['label']}: {100 * best['accuracy']:.2f}% with {100 * best['sparsity']:.1f}% of its "
            f"weights zero ({ratio:.1f}x fewer nonzero parameters)."
        ]
    for (method, scope), group in rows.groupby(["method", "scope"], sort=False):
        name = method if scope == NO_SCOPE else f"{method} ({scope})"
        name = name[0].upper() + name[1:]
        group = group.sort_values("target_sparsity", kind="stable")
        within = group[group["change"] >= -tolerance]
        top = group.iloc[-1]
        if within.empty:
            low = group.iloc[0]
            text = (f"{name}: more than {tol} lost at every sparsity swept "
                    f"({low['target_sparsity']:g} {_points(low['change'])})")
        else:
            r = within.iloc[-1]
            text = (f"{name}: within {tol} up to sparsity {r['target_sparsity']:g} "
                    f"({100 * r['accuracy']:.2f}%)")
            if top["target_sparsity"] > r["target_sparsity"]:
                text += f"; {top['target_sparsity']:g} {_points(top['change'])}"
        sentences.append(text + ".")
    return " ".join(sentences)
