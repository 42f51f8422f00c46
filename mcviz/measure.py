"""Measurements of a model: parameters, zeros, stored bits and bytes, file size, MACs, accuracy, latency.

Sizes are reported three ways: ``bits`` (mean stored bits per weight), ``size_bytes`` (bytes at
the stored bit widths, including scales, codebooks and indices: the default cost everywhere)
and ``file_bytes`` / ``gzip_bytes`` (the saved state_dict, raw and gzipped).

Stored widths come from the tensors' dtypes, unless a module describes its own storage with a
method ``mcviz_storage(self) -> list[StorageRow]`` (quantized or sparse layers do, in the
technique modules), so new formats plug in without changing this module.
"""

from __future__ import annotations

import gzip
import io
import math
import time
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

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
    file_bytes: int
    gzip_bytes: int
    macs: int | None
    accuracy: float | None
    latency_ms: float | None
    latency_iqr_ms: float | None
    batch_size: int | None
    threads: int | None


FIELDS = tuple(f.name for f in fields(Measurement))


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
) -> Measurement:
    """Returns a Measurement of ``model``; the model's weights are left unchanged.

    Args:
        model: a network made of Linear / Conv2d layers (or layers that describe their storage).
        data: a DataBundle; gives accuracy on its test split, the input shape, and latency inputs.
        label: names the row.
        latency: time ``repeats`` forward passes of ``batch_size`` examples after ``warmup``
            passes, with the current torch thread count; reports median and interquartile range.
        input_shape: shape of one example, when neither ``data`` nor ``model.input_shape`` give it.
    """
    from mcviz import train  # train imports nothing from here; deferred to keep imports light

    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(label, str):
        raise ValueError(f"label must be a str, got {label!r}")
    for name, value, low in (("batch_size", batch_size, 1), ("repeats", repeats, 3), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    shape = _input_shape(model, data, input_shape)
    weights = [w for _, m in _layers(model) for w in [_dense(m.weight)]]
    n_weights = sum(w.numel() for w in weights)
    zero_weights = sum(int((w == 0).sum()) for w in weights)
    params, nonzero = _count_params(model)
    rows = storage(model)
    weight_rows = [r for r in rows if r.role == "weight"]
    weight_numel = sum(r.numel for r in weight_rows)
    raw = serialized(model)
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
        file_bytes=len(raw),
        gzip_bytes=len(gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)),
        macs=macs(model, shape) if shape is not None else None,
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
            raise ValueError(f"table takes Measurement records, got {type(r).__name__}")
    return pd.DataFrame([asdict(r) for r in records], columns=list(FIELDS))


def layers(model: nn.Module, *, input_shape: tuple[int, ...] | None = None) -> pd.DataFrame:
    """Returns one row per Linear / Conv2d layer: layer, kind, params, nonzero_params, sparsity,
    bits, size_bytes and macs (None without an input shape)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    shape = _input_shape(model, None, input_shape)
    per_layer = _layer_macs(model, shape) if shape is not None else {}
    rows_by_layer: dict[str, list[StorageRow]] = {}
    for r in storage(model):
        rows_by_layer.setdefault(r.layer, []).append(r)
    out = []
    for name, m in _layers(model):
        tensors = [_dense(m.weight)] + ([_dense(m.bias)] if m.bias is not None else [])
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
    Conv2d layers (exact; activations, pooling and biases are not counted)."""
    return sum(v for v in _layer_macs(model, tuple(input_shape)).values())


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
        return tuple(input_shape)
    if data is not None:
        return tuple(data.input_shape)
    shape = getattr(model, "input_shape", None)
    return tuple(shape) if shape is not None else None
