"""Measurements of a model: parameters, zeros, stored bits and bytes, file size, MACs, accuracy, latency.

Sizes are reported three ways: ``bits`` (mean stored bits per weight), ``size_bytes`` (bytes at
the stored bit widths, including scales, codebooks and indices: the default cost everywhere)
and ``file_bytes`` / ``gzip_bytes`` (the saved state_dict, raw and gzipped).

Stored widths come from the tensors' dtypes, unless a module describes its own storage with a
method ``mcviz_storage(self) -> list[StorageRow]`` (quantized or sparse layers do, in the
technique modules), so new formats plug in without changing this module.

MACs and sparsity count the Linear / Conv2d layers (and layers that describe themselves): a model
with other weight layers (Conv1d, Embedding...) gets one warning naming them, and
:func:`layers` lists them with their parameters and no MACs, so a table never undercounts silently.
Every :class:`Measurement` checks its own fields (types, ranges, finite), so a row read back from
a cache is held to the same rules as a fresh one.
"""

from __future__ import annotations

import gzip
import io
import math
import numbers
import time
import warnings
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from mcviz._checks import (
    BOUNDS,
    Range,
    check_bool,
    check_data,
    check_int,
    check_model,
    check_number,
    check_option,
    shorten,
)
from mcviz._layers import unsupported
from mcviz.stats import paired  # noqa: F401  (re-exported: mcv.measure.paired, paired statistics)

TIMING_FIELDS = ("latency_ms", "latency_iqr_ms")
# gzip's own default level, as `gzip file` and zip tools use: level 9 took 0.7 s per pruned
# LeNet-300-100 (15x longer) for 9% fewer bytes, and every sweep measures dozens of models
GZIP_LEVEL = 6


@dataclass(frozen=True)
class Measurement:
    """One row of measurements of one model configuration (``label`` names the row)."""

    label: str
    params: int
    nonzero_params: int
    sparsity: float
    bits: float
    size_bytes: int
    file_bytes: int | None
    gzip_bytes: int | None
    macs: int | None
    accuracy: float | None
    latency_ms: float | None
    latency_iqr_ms: float | None
    batch_size: int | None
    threads: int | None

    def __post_init__(self):
        """Checks every field (a wrong type: TypeError, out of range: ValueError) and stores ints
        and floats as Python ``int`` and ``float``."""
        if not isinstance(self.label, str):
            raise TypeError(f"label must be a str, got {shorten(self.label)}")
        ints, floats = _COUNTS, _RATIOS
        for name, value in ((f, getattr(self, f)) for f in FIELDS[1:]):
            if value is None and name in _OPTIONAL:
                continue
            if name in ints:
                value = check_int(value, name, bounds=ints[name])
            else:
                value = check_number(value, name, bounds=floats[name])
            object.__setattr__(self, name, value)
        if self.nonzero_params > self.params:
            raise ValueError(f"nonzero_params must be <= params ({self.params}), got {self.nonzero_params}")
        timed = [getattr(self, f) is not None for f in (*TIMING_FIELDS, "batch_size", "threads")]
        if any(timed) and not all(timed):
            raise ValueError("latency_ms, latency_iqr_ms, batch_size and threads must be all set or all None")


FIELDS = tuple(f.name for f in fields(Measurement))
_COUNTS = {  # int fields and their ranges
    **dict.fromkeys(("params", "nonzero_params", "size_bytes", "file_bytes", "gzip_bytes", "macs"), Range(0)),
    "batch_size": BOUNDS["batch_size"],
    "threads": BOUNDS["threads"],
}
_RATIOS = {  # float fields and their ranges
    "sparsity": Range(0, 1), "bits": Range(0, 64), "accuracy": Range(0, 1), "latency_ms": Range(0),
    "latency_iqr_ms": Range(0),
}  # fmt: skip
_OPTIONAL = {
    "file_bytes", "gzip_bytes", "macs", "accuracy", "latency_ms", "latency_iqr_ms", "batch_size", "threads"
}  # fmt: skip


class Cost(NamedTuple):
    """A column of :class:`Measurement` that a budget can limit: its unit (in sentences) and its
    axis title (in figures)."""

    name: str
    unit: str
    title: str


# The one vocabulary of cost columns: tradeoff checks against it, reports write its units, plots
# its titles. Lower is better for every one.
COSTS: dict[str, Cost] = {
    c.name: c
    for c in (
        Cost("size_bytes", "bytes", "size (bytes at stored bit widths)"),
        Cost("file_bytes", "bytes", "file bytes"),
        Cost("gzip_bytes", "bytes", "gzipped file bytes"),
        Cost("params", "parameters", "parameters"),
        Cost("nonzero_params", "nonzero parameters", "nonzero parameters"),
        Cost("macs", "MACs", "MACs per example"),
        Cost("latency_ms", "ms", "latency (ms)"),
        Cost("bits", "bits per weight", "mean bits per weight"),
    )
}


class StorageRow(NamedTuple):
    """How one stored tensor is kept: ``role`` is "weight", "bias" or "other" (scales, indices)."""

    layer: str
    tensor: str
    role: str
    numel: int
    bits: float

    @property
    def nbytes(self) -> int:
        return math.ceil(self.numel * self.bits / 8)


def model(
    model: nn.Module,
    data=None,
    *,
    label: str = "",
    latency: bool = False,
    batch_size: int = 256,
    repeats: int = 20,
    warmup: int = 3,
    input_shape: tuple[int, ...] | None = None,
    files: bool = True,
) -> Measurement:
    """Returns a Measurement of ``model``; the model's weights are left unchanged.

    Args:
        model: a network made of Linear / Conv2d layers (or layers that describe their storage).
        data: a DataBundle; gives accuracy on its test split, the input shape, and latency inputs.
        label: names the row.
        latency: time ``repeats`` forward passes of ``batch_size`` examples after ``warmup``
            passes, with the current torch thread count; reports median and interquartile range.
        input_shape: shape of one example, when neither ``data`` nor ``model.input_shape`` give it.
        files: also measure ``file_bytes`` and ``gzip_bytes`` (the saved file, raw and gzipped);
            False leaves both None. Gzip reads about 30 MB/s: 3 s for a 90 MB model.

    MACs and sparsity count the Linear / Conv2d layers; other weight layers get one warning
    naming them (see :func:`layers`).

    Raises:
        TypeError, ValueError: a bad argument (a float64 or meta-device model too), before
            anything is measured.
    """
    from mcviz import train  # train imports nothing from here; deferred to keep imports light

    check_model(model)
    if data is not None:
        check_data(data)
    if not isinstance(label, str):
        raise TypeError(f"label must be a str, got {shorten(label)}")
    check_bool(latency, "latency")
    check_bool(files, "files")
    for name, value in (("batch_size", batch_size), ("repeats", repeats), ("warmup", warmup)):
        check_option(name, value)
    shape = _input_shape(model, data, input_shape)
    _warn_uncounted(model)
    weights = [w for _, m in _layers(model) for w in [_dense(m.weight)]]
    n_weights = sum(w.numel() for w in weights)
    zero_weights = sum(int((w == 0).sum()) for w in weights)
    params, nonzero = _count_params(model)
    rows = storage(model)
    weight_rows = [r for r in rows if r.role == "weight"]
    weight_numel = sum(r.numel for r in weight_rows)
    raw = serialized(model) if files else None
    was_training = model.training
    accuracy = train.evaluate(model, data, "test") if data is not None else None
    model.train(was_training)  # evaluate leaves eval mode; measuring changes nothing
    lat = iqr = None
    if latency:
        lat, iqr = _latency(model, data, shape, batch_size, repeats, warmup)
    return Measurement(
        label=label,
        params=params,
        nonzero_params=nonzero,
        sparsity=zero_weights / n_weights if n_weights else 0.0,
        bits=sum(r.bits * r.numel for r in weight_rows) / weight_numel if weight_numel else 0.0,
        size_bytes=sum(r.nbytes for r in rows),
        file_bytes=len(raw) if files else None,
        gzip_bytes=len(gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)) if files else None,
        macs=sum(_layer_macs(model, shape).values()) if shape is not None else None,
        accuracy=accuracy,
        latency_ms=lat,
        latency_iqr_ms=iqr,
        batch_size=batch_size if latency else None,
        threads=torch.get_num_threads() if latency else None,
    )


def table(records) -> pd.DataFrame:
    """Returns a DataFrame with one row per Measurement and one column per field."""
    records = list(records)
    for r in records:
        if not isinstance(r, Measurement):
            raise TypeError(f"table takes Measurement records, got {type(r).__name__}")
    return pd.DataFrame([asdict(r) for r in records], columns=list(FIELDS))


def layers(model: nn.Module, *, input_shape: tuple[int, ...] | None = None) -> pd.DataFrame:
    """Returns one row per weight layer, in the model's order: layer, kind, params, nonzero_params,
    sparsity, bits, size_bytes and macs; the model is left unchanged.

    The Linear / Conv2d layers have their MACs (None without an input shape); the weight layers
    mcviz does not count (Conv1d, Embedding...: ``mcviz._layers.unsupported``) are listed too,
    with macs None, so a sum over the table shows what it leaves out.
    """
    check_model(model)
    shape = _input_shape(model, None, input_shape)
    per_layer = _layer_macs(model, shape) if shape is not None else {}
    rows_by_layer: dict[str, list[StorageRow]] = {}
    for r in storage(model):
        rows_by_layer.setdefault(r.layer, []).append(r)
    counted, other = dict(_layers(model)), set(_uncounted(model))
    out = []
    for name, m in model.named_modules():
        if name not in counted and name not in other:
            continue
        bias = getattr(m, "bias", None)
        tensors = [_dense(m.weight)] + ([_dense(bias)] if isinstance(bias, torch.Tensor) else [])
        w = tensors[0]
        rows = rows_by_layer.get(name, [])
        wrows = [r for r in rows if r.role == "weight"]
        out.append(
            {
                "layer": name,
                "kind": type(m).__name__,
                "params": sum(t.numel() for t in tensors),
                "nonzero_params": sum(int(t.count_nonzero()) for t in tensors),
                "sparsity": float((w == 0).sum()) / w.numel(),
                "bits": sum(r.bits * r.numel for r in wrows) / max(1, sum(r.numel for r in wrows)),
                "size_bytes": sum(r.nbytes for r in rows),
                "macs": per_layer.get(name),
            }
        )
    return pd.DataFrame(
        out, columns=["layer", "kind", "params", "nonzero_params", "sparsity", "bits", "size_bytes", "macs"]
    )


def storage(model: nn.Module) -> list[StorageRow]:
    """Returns how every stored tensor of ``model`` is kept: one StorageRow per tensor."""
    rows: list[StorageRow] = []
    for name, m in model.named_modules():
        if hasattr(m, "mcviz_storage"):
            rows.extend(r._replace(layer=name) for r in m.mcviz_storage())
            continue
        if any(name.startswith(p + ".") or (not p and name) for p in _custom_prefixes(model)):
            continue
        persistent = [
            (n, b)
            for n, b in m.named_buffers(recurse=False)
            if n not in getattr(m, "_non_persistent_buffers_set", set())
        ]
        for tname, t in list(m.named_parameters(recurse=False)) + persistent:
            if t is None:
                continue
            role = (
                "weight"
                if tname in ("weight", "weight_orig")
                else "bias"
                if tname in ("bias", "bias_orig")
                else "other"
            )
            rows.append(StorageRow(name, tname, role, t.numel(), t.element_size() * 8))
    return rows


def serialized(model: nn.Module) -> bytes:
    """Returns the bytes of ``torch.save(model.state_dict())``, what ``file_bytes`` counts."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Returns the multiply-accumulates of one forward pass of one example through the Linear and
    Conv2d layers (exact; activations, pooling and biases are not counted); other weight layers
    get one warning naming them."""
    check_model(model)
    shape = _input_shape(model, None, input_shape)
    if shape is None:
        raise TypeError("input_shape must be a tuple of positive ints, got None")
    _warn_uncounted(model)
    return sum(_layer_macs(model, shape).values())


def _uncounted(model: nn.Module) -> dict[str, str]:
    """Returns {module name: "name (Kind)"} of the weight layers MACs and sparsity do not count."""
    return {text.rsplit(" (", 1)[0].replace("(the model)", ""): text for text in unsupported(model)}


def _warn_uncounted(model: nn.Module) -> None:
    names = list(_uncounted(model).values())
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        warnings.warn(
            f"MACs and sparsity count the Linear and Conv2d layers only; not counted: {shown} "
            "(mcv.measure.layers lists them)",
            UserWarning,
            stacklevel=3,
        )


def _layer_macs(model: nn.Module, input_shape) -> dict[str, int]:
    counts: dict[str, int] = {}
    hooks = []

    def hook(name):
        def record(m, inputs, output):
            out = output.shape[1:].numel()  # per example
            if isinstance(m, nn.Conv2d) or (hasattr(m, "kernel_size") and hasattr(m, "groups")):
                kh, kw = m.kernel_size
                per_out = (m.in_channels // m.groups) * kh * kw
            else:
                per_out = m.in_features
            counts[name] = counts.get(name, 0) + int(out) * int(per_out)

        return record

    for name, m in _layers(model):
        hooks.append(m.register_forward_hook(hook(name)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape)))
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"the model does not accept input_shape {tuple(input_shape)}: {first}") from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return counts


def _latency(model, data, shape, batch_size, repeats, warmup):
    if data is not None:
        X = data.test.tensors[0]
        reps = math.ceil(batch_size / len(X))
        x = X.repeat(reps, *([1] * (X.dim() - 1)))[:batch_size]
    elif shape is not None:
        x = torch.rand((batch_size, *shape), generator=torch.Generator().manual_seed(0))
    else:
        raise ValueError("latency needs data or an input shape (input_shape=...)")
    was_training = model.training
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    model.train(was_training)
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return float(med), float(q3 - q1)


def _layers(model: nn.Module):
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv2d)) or getattr(m, "mcviz_layer", False)
    ]


def _custom_prefixes(model):
    # "" (the root itself describing its storage) must hide every submodule, so keep it as "".
    return [n for n, m in model.named_modules() if hasattr(m, "mcviz_storage")]


def _dense(t) -> torch.Tensor:
    t = t() if callable(t) else t
    if t.is_quantized:
        t = t.dequantize()
    return t.detach().float()


def _count_params(model: nn.Module) -> tuple[int, int]:
    layer_names = {n for n, _ in _layers(model)}
    total = nonzero = 0
    for _, m in _layers(model):
        for t in (m.weight, m.bias):
            if t is not None:
                t = _dense(t)
                total += t.numel()
                nonzero += int(t.count_nonzero())
    for name, m in model.named_modules():
        if name in layer_names or any(name.startswith(p + ".") for p in layer_names if p):
            continue
        for p in m.parameters(recurse=False):
            total += p.numel()
            nonzero += int(p.count_nonzero())
    return total, nonzero


def _input_shape(model, data, input_shape):
    if input_shape is not None:
        ok = isinstance(input_shape, (tuple, list, torch.Size)) and len(input_shape) > 0
        if not ok or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) for n in input_shape):
            raise TypeError(f"input_shape must be a tuple of positive ints, got {shorten(input_shape)}")
        if min(input_shape) < 1:
            raise ValueError(f"input_shape must be a tuple of positive ints, got {shorten(input_shape)}")
        return tuple(int(n) for n in input_shape)
    if data is not None:
        return tuple(data.input_shape)
    shape = getattr(model, "input_shape", None)
    return tuple(shape) if shape is not None else None
