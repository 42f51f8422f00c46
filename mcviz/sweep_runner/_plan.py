"""A sweep's plan: every grid point of a template, validated before anything runs, named and keyed.

A point's key is a hash of the template's content and of every parameter value of the point, so
a run folder is found again (and reused) exactly when both match; its folder name shows the
parameters that vary across the sweep, then the first 8 hex digits of the key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcviz._params import ParameterError, from_text
from mcviz.reports import Template, load

SEEDS = re.compile(r"^(seed|\w+_seed)$")  # replicate parameters: their spread is noise, not an effect
_UNSAFE = re.compile(r"[^A-Za-z0-9.=+-]+")
_NAME_CHARS = 80


@dataclass(frozen=True)
class Point:
    """One grid point: one report run.

    Attributes:
        name: the run folder's name, ``<template>-<varying k=v>-<key[:8]>``.
        key: sha256 (hex) of the template's content and the point's parameter values.
        values: every parameter value (defaults filled in), validated.
    """

    name: str
    key: str
    values: dict


@dataclass(frozen=True, eq=False)
class Plan:
    """Every point of a sweep, in grid order, with what the points share and what varies.

    Attributes:
        template: the template, read once.
        digest: sha256 of the template's content (its cells' types and sources).
        grid: the gridded parameters and their values, as given.
        fixed: the parameters fixed for every point, as given.
        varying: names of the parameters whose value differs between points, in template order.
        points: the points, in grid order (the first grid parameter varies slowest).
    """

    template: Template
    digest: str
    grid: dict
    fixed: dict
    varying: tuple[str, ...]
    points: tuple[Point, ...]


def content_digest(nb) -> str:
    """Return the sha256 of a notebook's cells (type and source), leaving out injected parameters.

    An executed run notebook and its template give the same digest: papermill only inserts the
    ``injected-parameters`` cell and adds outputs and metadata.
    """
    cells = [
        [c.cell_type, c.source]
        for c in nb.cells
        if "injected-parameters" not in c.get("metadata", {}).get("tags", [])
    ]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def canonical(values: dict) -> dict:
    """Return ``values`` as JSON gives them back (what results.json records); ``values`` is unchanged."""
    return json.loads(json.dumps(values, sort_keys=True))


def plan(
    template: str | Path | Template,
    grid: dict[str, list] | None = None,
    fixed: dict[str, Any] | None = None,
    points: list[dict] | None = None,
) -> Plan:
    """Return the validated plan of a sweep; nothing runs and nothing is written.

    The points are the product of the ``grid`` values (in the order given), each combined with
    each mapping of ``points`` (e.g. every student's submitted parameters) and with ``fixed``.

    Raises:
        ParameterError: one line: nothing to sweep, a grid parameter without values, a parameter
            both fixed and varied, an unknown parameter, a bad value at any point (the message
            names the point), or two points that are the same run.
        FileNotFoundError: no such template.
    """
    tpl = load(template)
    grid, fixed, items = dict(grid or {}), dict(fixed or {}), list(points or [])
    if not grid and not items:
        raise ParameterError(f"nothing to sweep: give --grid NAME=V1,V2,... (a parameter of {tpl.name})")
    for key, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ParameterError(f"grid parameter {key} has no values: give --grid {key}=V1,V2,...")
    if not all(isinstance(item, dict) for item in items):
        raise ParameterError("points must be mappings NAME: VALUE (one per run)")
    varied = set(grid) | {k for item in items for k in item}
    unknown = sorted(k for k in varied | set(fixed) if k not in _names(tpl))
    if unknown:
        tpl.validate({unknown[0]: None})  # raises the one-line unknown-parameter error
    both = sorted(set(fixed) & varied)
    if both:
        name = both[0]
        raise ParameterError(f"{name} is both fixed ({fixed[name]!r}) and varied by the sweep: give it once")
    overlap = sorted(set(grid) & {k for item in items for k in item})
    if overlap:
        raise ParameterError(f"{overlap[0]} is both gridded and set by a point: give it once")
    digest = content_digest(tpl.notebook)
    combos = [dict(zip(grid, c, strict=True)) for c in itertools.product(*grid.values())]
    given = [{**item, **combo} for combo in combos for item in (items or [{}])]
    validated, seen = [], {}
    for i, values in enumerate(given):
        where = f"grid point {i + 1} of {len(given)} ({_describe(values)})"
        try:
            out = tpl.validate({**fixed, **values})
        except ParameterError as exc:
            raise ParameterError(f"{where}: {exc}") from None
        key = hashlib.sha256(
            json.dumps({"template": digest, "parameters": canonical(out)}, sort_keys=True).encode()
        ).hexdigest()
        if key in seen:
            first = seen[key] + 1
            raise ParameterError(f"grid points {first} and {i + 1} are the same run ({_describe(values)})")
        seen[key] = i
        validated.append((key, out))
    names = _names(tpl)
    varying = tuple(n for n in names if len({json.dumps(v[n], sort_keys=True) for _, v in validated}) > 1)
    pts = tuple(Point(_folder(tpl.name, varying, v, key), key, v) for key, v in validated)
    return Plan(tpl, digest, grid, fixed, varying, pts)


def parse_grid(template: str | Path | Template, texts: list[str]) -> dict[str, list]:
    """Return ``{name: [values]}`` from command-line ``NAME=V1,V2`` texts, each value typed like
    ``-p NAME V`` (commas inside quotes or brackets do not split: ``methods='[fp16, kd]',[int8]``).

    A parameter given twice gets the values of both. Raises ParameterError (one line) on a text
    without ``=``, an empty value or an unknown parameter.
    """
    tpl = load(template)
    declared = {p.name: p for p in tpl.parameters}
    grid: dict[str, list] = {}
    for text in texts:
        name, sep, rest = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParameterError(f"--grid {text!r} must be NAME=V1,V2,...")
        if name not in declared:
            tpl.validate({name: None})  # raises the one-line unknown-parameter error
        pieces = _split(rest)
        if not rest.strip():
            raise ParameterError(f"--grid {text!r} has no values: give --grid {name}=V1,V2,...")
        if any(not p for p in pieces):
            raise ParameterError(f"--grid {text!r} has an empty value")
        grid.setdefault(name, []).extend(from_text(declared[name], _unquote(p)) for p in pieces)
    return grid


def read_points(template: str | Path | Template, path: str | Path) -> dict | list[dict]:
    """Return the contents of a YAML parameters file: a mapping (fixed values) or a list of
    mappings (one run each), each value read as ``mcviz report -f`` reads it (``mcviz._yaml``'s
    strict reading, then typed for its parameter); the file is unchanged.

    Raises:
        ValueError: no such file, not valid YAML (``mcviz._yaml``'s rules), or neither a mapping
            nor a list of mappings (ParameterError), or a value that cannot be read for its
            parameter (ParameterError).
    """
    from mcviz import _param_values, _paths, _yaml
    from mcviz._checks import PATH_LIMIT, shorten

    tpl = load(template)
    file = _paths.check_path(path, "-f", kind="file", allowed="a YAML file of parameters")
    what = f"parameters file {shorten(str(path), PATH_LIMIT)}"
    loaded = _yaml.load(_yaml.read_text(file, what), what, max_chars=_yaml.MAX_FILE_BYTES)
    loaded = {} if loaded is None else loaded
    items = loaded if isinstance(loaded, list) else [loaded]
    if not items or not all(isinstance(item, dict) for item in items):
        raise ParameterError(f"{what} must hold a mapping NAME: VALUE, or a list of them (one per run)")
    declared = {p.name: p for p in tpl.parameters}
    items = [  # unknown names are left for plan() to report
        {k: _param_values.from_yaml(declared[k], v) if k in declared else v for k, v in item.items()}
        for item in items
    ]
    return items if isinstance(loaded, list) else items[0]


def _names(tpl: Template) -> list[str]:
    return [p.name for p in tpl.parameters]


def _split(text: str) -> list[str]:
    """Split on commas outside quotes and brackets."""
    out, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _short(value) -> str:
    if isinstance(value, list):
        return "+".join(_short(v) for v in value) or "none"
    return str(value)


def _describe(values: dict) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in values.items())


def _folder(template: str, varying: tuple[str, ...], values: dict, key: str) -> str:
    readable = "_".join(f"{k}={_short(values[k])}" for k in varying)
    readable = _UNSAFE.sub("_", readable).strip("_")[:_NAME_CHARS]
    return "-".join(part for part in (_UNSAFE.sub("_", template), readable, key[:8]) if part)
