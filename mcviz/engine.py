"""The apply-and-measure engine: compression specs applied to one baseline, each result measured.

Every sweep, search and report template goes through :func:`run`: a baseline, the data and a list
of specs in; one ``mcv.measure.Measurement`` row per spec (plus its ``spec``) and the models it
computed out. Two things make it cheap to call again:

- chains that start alike compute their common prefix once: ``"kd + magnitude:sparsity=0.9 +
  kmeans:bits=8"`` and ``"... + kmeans:bits=4"`` distill and prune once. Every step is
  deterministic and returns a new model, so a reused prefix gives exactly the model a fresh
  chain would;
- with ``cache=`` (what names the baseline), every measured row is kept as a JSON file in
  ``mcv.train.cache_dir()`` under the sha256 of everything that decides it. When every row is
  cached the baseline is not even loaded. Files are written atomically. A row is trusted only
  when its file holds its own key and format and every field passes the checks a fresh
  ``Measurement`` passes (types, ranges, finite values); any other file is recomputed with a
  warning and overwritten. A cache folder that cannot be written degrades to no cache, with one
  warning (``mcviz._cache``).

Example:
    >>> table, models = run(model, data, ["", "fp16", "magnitude:sparsity=0.9 + int8"])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import torch
from torch import nn

from mcviz import _cache, measure, registry, train
from mcviz._checks import check_bool, check_data, check_model, shorten
from mcviz.data import DataBundle

__all__ = ["CACHE_FORMAT", "Applied", "cache_key", "cache_path", "run"]

CACHE_FORMAT = 3  # bump when compressing or measuring changes what a cached row means (3: gzip level 6)
# 2: rows are keyed by the configs a spec names (not its text) and by what names the baseline
ROW_LIMIT = 2**20  # bytes: a row file is under 1 KB; a larger one is refused unread


class Applied(NamedTuple):
    """What :func:`run` returns: unpack it as ``table, models = run(...)``."""

    table: pd.DataFrame
    """One row per distinct label, in the order given: the ``mcv.measure.FIELDS`` and ``spec``."""
    models: dict[str, nn.Module]
    """label -> model, for the rows computed in this call (a cached row has none); the empty
    spec's model is the baseline itself."""


def run(
    baseline: nn.Module | Callable[[], nn.Module],
    data: DataBundle,
    specs,
    *,
    labels=None,
    cache: dict[str, Any] | None = None,
    latency: bool = False,
    progress: bool = False,
) -> Applied:
    """Returns every spec applied to ``baseline`` and measured on ``data``, and the models computed.

    ``baseline`` and ``data`` are left unchanged: each step returns a new model. Rows keep the
    order of ``specs``; a spec given twice with the same label is measured once.

    Args:
        baseline: the model every spec starts from, or a function of no arguments returning it
            (called at most once, and only if some row is not cached).
        data: a DataBundle: calibration and fine-tuning data, and the test split measured.
        specs: a list; each item is a method spec string (``"fp16"``, ``"a + b"``), a tuple of
            registered config objects (``(mcv.prune.MagnitudeConfig(0.9), mcv.quantize.
            FP16Config())``), or the empty spec ``""`` / ``()``: the baseline itself.
        labels: one row label per spec, or None: the spec string, ``mcv.registry.label`` of a
            config tuple, and ``"baseline"`` for the empty spec.
        cache: None (nothing is cached), or a dict of JSON values that names the baseline, such
            as ``{"model": "lenet300", "epochs": 5, "seed": 0}``: a cached row is reused only
            when this dict, the data fingerprint, the configs, the torch version and the cache
            formats all match.
        latency: also time every model (``mcv.measure.model(latency=True)``); timings are not
            reproducible, so this bypasses the cache: every row is computed and nothing stored.
        progress: show a progress bar over the rows computed.

    Returns:
        ``(table, models)`` as an :class:`Applied`.

    Raises:
        TypeError, ValueError: a bad argument (a spec that does not parse, a label naming two
            specs, a float64 model...), before anything is computed.
    """
    if isinstance(baseline, nn.Module):
        check_model(baseline, "baseline")
    elif not callable(baseline):
        raise TypeError(
            f"baseline must be a torch.nn.Module or a function returning one, got {type(baseline).__name__}"
        )
    check_data(data)
    chains, texts = _chains(specs)
    labels = _labels(labels, chains, texts)
    _check_cache(cache)
    check_bool(latency, "latency")
    check_bool(progress, "progress")
    rows_of: dict[str, tuple] = {}  # label -> (chain, spec text), first occurrence
    for label, chain, text in zip(labels, chains, texts, strict=True):
        if label in rows_of and _key(rows_of[label][0]) != _key(chain):
            raise ValueError(
                f"label {label!r} names two different specs: {rows_of[label][1]!r} and {text!r}"
            )
        rows_of.setdefault(label, (chain, text))

    use_cache = cache is not None and not latency
    keys: dict[str, str] = {}
    rows: dict[str, measure.Measurement] = {}
    if use_cache:
        keys = {label: _cache_key(cache, data, chain) for label, (chain, _) in rows_of.items()}
        rows = {label: r for label in rows_of if (r := _load(keys[label], label)) is not None}
    models: dict[str, nn.Module] = {}
    todo = [label for label in rows_of if label not in rows]
    if todo:
        base = baseline if isinstance(baseline, nn.Module) else _call(baseline)
        # a method that cannot apply to the baseline is refused before any row is computed
        registry.check_applies([rows_of[label][0] for label in todo], base)
        bar = train._progress_bar(len(todo), progress)
        prefixes: dict[tuple, nn.Module] = {(): base}
        for label in todo:
            models[label] = model = _apply(prefixes, rows_of[label][0], data)
            rows[label] = measure.model(model, data, label=label, latency=latency)
            if use_cache:
                _store(keys[label], rows[label])
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    table = measure.table(rows[label] for label in rows_of)
    table["spec"] = [text for _, text in rows_of.values()]
    return Applied(table, models)


def cache_key(cache: dict[str, Any], data: DataBundle, spec) -> str:
    """Returns the sha256 hex digest naming the cached row of ``spec`` (as in :func:`run`): made of
    the baseline's ``cache`` dict, the data fingerprint, the spec's configs, the versions and formats.

    Example:
        >>> cache_path(cache_key({"model": "mlp", "epochs": 1, "seed": 0}, data, "fp16"))  # doctest: +SKIP
    """
    _check_cache(cache)
    if cache is None:
        raise TypeError("cache must be a dict naming the baseline, got None")
    (chain,), _ = _chains([spec])
    return _cache_key(cache, data, chain)


def _cache_key(cache: dict[str, Any], data: DataBundle, chain: tuple) -> str:
    blob = json.dumps(
        {
            **cache,
            "data": data.fingerprint,
            "spec": _key(chain),
            "torch": torch.__version__,
            "format": CACHE_FORMAT,
            "train_format": train.CACHE_FORMAT,  # a retrained baseline or fine-tuning must not reuse old rows
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_path(key: str) -> Path:
    """Returns the file of one cached row."""
    return train.cache_dir() / f"row-{key[:24]}.json"


# ---------------------------------------------------------------- specs and chains


def _chains(specs) -> tuple[list[tuple], list[str]]:
    """Returns the config tuple and the spec text of every spec (checked, nothing computed)."""
    if isinstance(specs, (str, bytes)) or not isinstance(specs, (list, tuple)):
        raise TypeError(f"specs must be a list of method specs such as ['', 'fp16'], got {shorten(specs)}")
    chains, texts = [], []
    for spec in specs:
        if isinstance(spec, str):
            chains.append(registry.parse(spec) if spec.strip() else ())
            texts.append(spec)
        elif isinstance(spec, (tuple, list)):
            for config in spec:
                if type(config) not in registry.METHODS.values():
                    raise TypeError(
                        f"{shorten(config)} is not a registered compression config; registered methods: "
                        f"{', '.join(sorted(registry.METHODS))}"
                    )
            chains.append(tuple(spec))
            texts.append(registry.label(spec))
        else:
            raise TypeError(
                f"a spec must be a method spec string or a tuple of registered configs, got {shorten(spec)}"
            )
    return chains, texts


def _labels(labels, chains, texts) -> list[str]:
    if labels is None:
        return [text if chain else "baseline" for chain, text in zip(chains, texts, strict=True)]
    allowed = f"labels must be None or a list of {len(chains)} str (one per spec), got {shorten(labels)}"
    if isinstance(labels, str) or not isinstance(labels, (list, tuple)):
        raise TypeError(allowed)
    if len(labels) != len(chains):
        raise ValueError(allowed)
    for label in labels:
        if not isinstance(label, str):
            raise TypeError(f"labels must hold str, got {shorten(label)}")
    return list(labels)


def _key(chain: tuple) -> str:
    # a config's repr names its class and every field: equal configs, equal text
    return " + ".join(repr(c) for c in chain)


def _apply(prefixes: dict[tuple, nn.Module], chain: tuple, data) -> nn.Module:
    """Returns the model ``chain`` makes, reusing (and adding to) the prefixes computed so far."""
    steps = tuple(repr(c) for c in chain)  # reprs, not configs: a config may hold a dict (unhashable)
    n = len(steps)
    while steps[:n] not in prefixes:
        n -= 1
    model = prefixes[steps[:n]]
    for i in range(n, len(steps)):
        model = registry.compress(model, chain[i], data=data)
        prefixes[steps[: i + 1]] = model
    return model


def _call(baseline) -> nn.Module:
    model = baseline()
    if not isinstance(model, nn.Module):
        raise TypeError(f"the baseline function must return a torch.nn.Module, got {type(model).__name__}")
    return check_model(model, "the baseline function's model")


# ---------------------------------------------------------------- the row cache


def _check_cache(cache) -> None:
    if cache is None:
        return
    if not isinstance(cache, dict) or not all(isinstance(k, str) for k in cache):
        raise TypeError(
            f"cache must be None or a dict naming the baseline such as {{'model': 'mlp'}}, "
            f"got {shorten(cache)}"
        )
    reserved = sorted({"data", "spec", "torch", "format", "train_format"} & set(cache))
    if reserved:
        raise ValueError(f"cache must not set {reserved[0]!r}; the engine adds it to every key")
    try:
        json.dumps(cache, allow_nan=False)
    except (TypeError, ValueError):
        raise TypeError(
            f"cache must hold plain JSON values (str, finite numbers, lists), got {shorten(cache)}"
        ) from None


def _load(key: str, label: str) -> measure.Measurement | None:
    """Returns the cached row for ``key`` labelled ``label``, or None when there is none or it is
    not exactly a row of ``key`` (with a warning; the caller recomputes and overwrites it)."""
    path = cache_path(key)
    try:
        raw = _cache.read(path, ROW_LIMIT)
        if raw is None:
            return None
        row = _row(json.loads(raw), key)
    except Exception as e:  # noqa: BLE001 - any entry that is not exactly right is recomputed
        warnings.warn(f"cache entry {path} is unreadable ({_cache.reason(e)}); recomputing", stacklevel=3)
        return None
    return dataclasses.replace(row, label=label)  # the label names the row, it does not decide it


def _row(entry, key: str) -> measure.Measurement:
    """Returns the Measurement a cache entry holds, checked as a fresh one is; raises otherwise."""
    if not isinstance(entry, dict) or set(entry) != {"key", "format", "row"}:
        raise _cache.Invalid("not a row entry")
    if entry["key"] != key or entry["format"] != CACHE_FORMAT:
        raise _cache.Invalid("its key or format is not the one asked for")
    fields = entry["row"]
    if not isinstance(fields, dict) or set(fields) != set(measure.FIELDS):
        raise _cache.Invalid("its fields are not a measurement's")
    row = measure.Measurement(**fields)  # checks every field's type and range
    if row.accuracy is None or row.macs is None or row.latency_ms is not None:
        raise _cache.Invalid("a cached row has accuracy and MACs and no timings")
    return row


def _store(key: str, row: measure.Measurement) -> None:
    """Writes ``row`` under ``key`` atomically; a folder that cannot be written is skipped with one
    warning (``mcviz._cache.write``)."""
    text = json.dumps({"key": key, "format": CACHE_FORMAT, "row": dataclasses.asdict(row)}, allow_nan=False)
    _cache.write(cache_path(key), lambda f: f.write(text.encode()))
