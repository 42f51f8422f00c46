"""The compression registry: configs by method name, and ``compress`` that applies them in order.

A config is a frozen dataclass that validates itself in ``__post_init__`` and has

- ``method``: a short name that reports use (``"fp16"``),
- ``apply(self, model, data)``: returns a NEW model and leaves ``model`` unchanged,
- ``needs_data``: True when ``apply`` needs a DataBundle (calibration, fine-tuning),
- optionally ``check_applies(self, model)``: raises ValueError (one line) when the method cannot
  apply to ``model`` at all (``embeddings`` on a model without embedding tables); engines call
  :func:`check_applies` on every spec before they compute anything.

Technique modules register their configs with ``@register``; reports find them here, so a new
method needs no change to the report code.

In a report's ``methods`` parameter each string is one configuration (a method spec)::

    spec    := method ("+" method)*            # applied left to right
    method  := NAME (":" option ("," option)*)?
    option  := KEY "=" VALUE                   # VALUE: a YAML 1.2 scalar (mcviz._yaml), quotes allowed

Examples: ``"fp16"``, ``"magnitude:sparsity=0.9,scope=global + int8"``. Whitespace around names,
keys, values and separators is ignored (tabs and newlines too); names and keys are exact (lower
case). Refused, each with one line: an empty spec, an empty method (``"fp16 +"``, ``"+ fp16"``,
``"fp16 ++ int8"``), ``"weights:"`` with no option, an empty option (``"weights:bits=4,,"``), an
option without a name (``"weights:=4"``) or without a value (``"weights:bits"``,
``"weights:bits="``), an option given twice, a value that is a list or a mapping, and a spec
longer than :data:`MAX_SPEC_CHARS`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
from typing import Any

from torch import nn

from mcviz import _yaml
from mcviz._checks import check_data, check_model, shorten

METHODS: dict[str, type] = {}
MAX_SPEC_CHARS = 1_000  # the longest spec in the README is 90 characters


def register(cls: type) -> type:
    """Registers a config class under ``cls.method``; returns the class (use as a decorator).

    Raises:
        TypeError: ``cls`` is not a frozen dataclass, or its ``method`` is not a str.
        ValueError: ``method`` is not an identifier, or is registered by another class.
    """
    name = getattr(cls, "method", None)
    what = getattr(cls, "__name__", shorten(cls))
    if not isinstance(name, str) or not name.isidentifier():
        error = TypeError if not isinstance(name, str) else ValueError
        raise error(
            f"config class {what} needs a class attribute 'method' that is an identifier, got {shorten(name)}"
        )
    if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:
        raise TypeError(f"config class {what} must be a frozen dataclass")
    if name in METHODS and METHODS[name] is not cls:
        raise ValueError(f"method {name!r} is already registered by {METHODS[name].__name__}")
    METHODS[name] = cls
    return cls


def check_applies(chains, model: nn.Module) -> None:
    """Raises the ValueError of the first config, in any chain of configs, that declares it cannot
    apply to ``model`` (its ``check_applies``); configs without the method apply to any model."""
    for chain in chains:
        for config in chain:
            check = getattr(config, "check_applies", None)
            if check is not None:
                check(model)


def compress(model: nn.Module, *configs, data=None) -> nn.Module:
    """Returns a new model with each config applied in order; ``model`` is never modified.

    Args:
        model: the network to compress.
        configs: registered config instances (e.g. ``mcv.quantize.FP16Config()``).
        data: a DataBundle, required by configs whose ``needs_data`` is true (anything but
            None or a DataBundle is refused, even where no config reads it).

    Example:
        >>> small = compress(model, mcv.quantize.FP16Config())  # doctest: +SKIP
    """
    check_model(model)
    if data is not None:
        check_data(data)
    out = model
    for config in configs:
        if type(config) not in METHODS.values():
            allowed = ", ".join(sorted(METHODS))
            raise TypeError(
                f"{shorten(config)} is not a registered compression config; registered methods: {allowed}"
            )
        if config.needs_data and data is None:
            raise ValueError(f"method {config.method!r} needs data=, a DataBundle")
        out = config.apply(out, data)
    if out is model:  # no configs: still hand back a new model
        out = copy.deepcopy(model)
    return out


def parse(spec: str) -> tuple[Any, ...]:
    """Returns the configs a method spec string names, e.g. ``"fp16"`` -> ``(FP16Config(),)``.

    Raises:
        TypeError: ``spec`` is not a str (or a config refuses an option's type).
        ValueError: the spec does not follow the grammar above (one line naming what is wrong),
            names an unknown method or option, or a config refuses a value.
    """
    if not isinstance(spec, str):
        raise TypeError(f"a method spec must be a str such as 'fp16', got {shorten(spec)}")
    if len(spec) > MAX_SPEC_CHARS:
        raise ValueError(f"a method spec must be at most {MAX_SPEC_CHARS:,} characters, got {len(spec):,}")
    text = " ".join(spec.split())  # tabs and newlines are spaces
    if not text:
        raise ValueError(f"a method spec must name a method such as 'fp16', got {spec!r}")
    # "+" joins methods, except inside a number such as 1e+3
    parts = [part.strip() for part in re.split(r"\+(?!\d)", text)]
    for i, part in enumerate(parts):
        if not part:
            at = "before the first" if i == 0 else "after the last" if i == len(parts) - 1 else "between two"
            raise ValueError(
                f"method spec {shorten(spec)} has an empty method {at} '+'; join methods as 'a + b'"
            )
    return tuple(_parse_one(part, spec) for part in parts)


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
    name, colon, rest = (x.strip() for x in part.partition(":"))
    where = f"in {shorten(spec)}"
    if not name:
        raise ValueError(f"a method name is missing before ':' {where}")
    if name not in METHODS:
        raise ValueError(
            f"unknown method {shorten(name)} {where}{_did_you_mean(name, METHODS)}; "
            f"registered methods: {', '.join(sorted(METHODS))}"
        )
    cls = METHODS[name]
    names = [f.name for f in dataclasses.fields(cls)]
    allowed = ", ".join(names) or "none"
    if colon and not rest:
        raise ValueError(f"method {name!r} has ':' but no option {where}; write {name!r} or {name}:KEY=VALUE")
    options: dict[str, Any] = {}
    for item in (s.strip() for s in rest.split(",")) if colon else ():
        key, eq, value = (x.strip() for x in item.partition("="))
        if not item:
            raise ValueError(f"method {name!r} has an empty option (a stray ',') {where}")
        if not key:
            raise ValueError(f"an option of {name!r} has no name before '=' {where}; its options: {allowed}")
        if key not in names:
            raise ValueError(
                f"method {name!r} has no option {shorten(key)} {where}{_did_you_mean(key, names)}; "
                f"its options: {allowed}"
            )
        if not eq or not value:
            raise ValueError(
                f"option {key!r} of {name!r} needs a plain value: {key}=VALUE, got {value!r} ({where})"
            )
        if key in options:
            raise ValueError(f"option {key!r} of {name!r} is given twice {where}; give it once")
        options[key] = _value(value, f"option {key!r} of {name!r}")
    return cls(**options)


def _value(text: str, what: str):
    """Returns an option value: a quoted str, or an unquoted YAML 1.2 scalar typed."""
    try:
        value = _yaml.load(text, "it")
    except ValueError as exc:
        raise ValueError(f"{what} needs a plain value, got {shorten(text)} ({exc})") from None
    if isinstance(value, (list, dict)) or value is None:
        raise ValueError(f"{what} needs a plain value, got {shorten(text)}")
    return _yaml.scalar(value, what) if isinstance(value, _yaml.Plain) else value


def _did_you_mean(word: str, known) -> str:
    close = [k for k in known if k.lower() == word.lower()]
    close = close or difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
