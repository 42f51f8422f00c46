"""The compression registry: configs by method name, and ``compress`` that applies them in order.

A config is a frozen dataclass that validates itself in ``__post_init__`` and has

- ``method``: a short name that reports use (``"fp16"``),
- ``apply(self, model, data)``: returns a NEW model and leaves ``model`` unchanged,
- ``needs_data``: True when ``apply`` needs a DataBundle (calibration, fine-tuning).

Technique modules register their configs with ``@register``; reports find them here, so a new
method needs no change to the report code.

In a report's ``methods`` parameter each string is one configuration: methods joined by ``+``
are applied left to right; a method is ``name`` or ``name:key=value,key=value`` with values
read as YAML scalars. Examples: ``"fp16"``, ``"magnitude:sparsity=0.9,scope=global + int8"``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

import yaml
from torch import nn

METHODS: dict[str, type] = {}
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def register(cls: type) -> type:
    """Registers a config class under ``cls.method``; returns the class (use as a decorator)."""
    name = getattr(cls, "method", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(
            f"config class {cls.__name__} needs a class attribute 'method' that is "
            f"an identifier, got {name!r}"
        )
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:
        raise ValueError(f"config class {cls.__name__} must be a frozen dataclass")
    if name in METHODS and METHODS[name] is not cls:
        raise ValueError(f"method {name!r} is already registered by {METHODS[name].__name__}")
    METHODS[name] = cls
    return cls


def compress(model: nn.Module, *configs, data=None) -> nn.Module:
    """Returns a new model with each config applied in order; ``model`` is never modified.

    Args:
        model: the network to compress.
        configs: registered config instances (e.g. ``mcv.quantize.FP16Config()``).
        data: a DataBundle, required by configs whose ``needs_data`` is true.

    Example:
        >>> small = compress(model, mcv.quantize.FP16Config())  # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    out = model
    for config in configs:
        if type(config) not in METHODS.values():
            allowed = ", ".join(sorted(METHODS))
            raise ValueError(
                f"{config!r} is not a registered compression config; registered methods: {allowed}"
            )
        if config.needs_data and data is None:
            raise ValueError(f"method {config.method!r} needs data=, a DataBundle")
        out = config.apply(out, data)
    if out is model:  # no configs: still hand back a new model
        out = copy.deepcopy(model)
    return out


def parse(spec: str) -> tuple[Any, ...]:
    """Returns the configs a method spec string names, e.g. ``"fp16"`` -> ``(FP16Config(),)``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a method spec must be a non-empty string such as 'fp16', got {spec!r}")
    # "+" joins methods, except inside a number such as 1e+3
    return tuple(_parse_one(part.strip(), spec) for part in re.split(r"\+(?!\d)", spec))


def describe() -> list[str]:
    """Returns one line per registered method: its name, options with defaults, and summary."""
    lines = []
    for name in sorted(METHODS):
        cls = METHODS[name]
        opts = ", ".join(
            f.name if f.default is dataclasses.MISSING else f"{f.name}={f.default!r}"
            for f in dataclasses.fields(cls)
        )
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        lines.append(f"{name}" + (f" (options: {opts})" if opts else "") + (f": {doc}" if doc else ""))
    return lines


def label(configs) -> str:
    """Returns a short, stable label for a sequence of configs, e.g. ``"fp16"``."""
    parts = []
    for c in configs:
        opts = [
            f"{f.name}={getattr(c, f.name)}" for f in dataclasses.fields(c) if getattr(c, f.name) != f.default
        ]
        parts.append(c.method + (":" + ",".join(opts) if opts else ""))
    return " + ".join(parts)


def _parse_one(part: str, spec: str):
    name, _, rest = part.partition(":")
    name = name.strip()
    if name not in METHODS:
        allowed = ", ".join(sorted(METHODS))
        raise ValueError(f"unknown method {name!r} in {spec!r}; registered methods: {allowed}")
    cls = METHODS[name]
    names = [f.name for f in dataclasses.fields(cls)]
    options: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in names:
            allowed = ", ".join(names) or "none"
            raise ValueError(f"method {name!r} has no option {key!r} (in {spec!r}); its options: {allowed}")
        try:
            options[key] = yaml.safe_load(value.strip())
        except yaml.YAMLError:
            raise ValueError(f"option {key}={value.strip()!r} of {name!r} is not a plain value") from None
        if _EXPONENT.fullmatch(value.strip()):
            options[key] = float(value)  # YAML 1.1 reads 1e-3 as a string
        if isinstance(options[key], (dict, list)) or options[key] is None and value.strip() == "":
            raise ValueError(f"option {key} of {name!r} needs a plain value, got {value.strip()!r}")
    return cls(**options)
