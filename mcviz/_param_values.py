"""Report parameters: one declared parameter (:class:`Param`, made by ``mcviz._params.parse_cell``
from a template's parameters cell), and its values: read from the command line or a parameters
file, checked against the declaration, validated together.

Every value a user types goes through :func:`from_yaml` (:func:`from_text` for a ``-p`` string):
the text is read by ``mcviz._yaml`` (YAML 1.2 scalars; anchors, aliases, tags and repeated keys
refused), then typed for its parameter; :func:`check` then applies the parameter's rule and
:func:`validate` the rules between parameters. Every error is one line naming the parameter, the
value (shortened by ``mcviz._checks.shorten``) and what is allowed: a ``ParameterTypeError``
(also a ``TypeError``) for a value of the wrong type, a ``ParameterError`` (a ``ValueError``)
for a wrong value.
"""

from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcviz import _paths, _yaml
from mcviz._checks import Range, shorten

__all__ = [
    "MAX_ITEMS",
    "Param",
    "ParameterError",
    "ParameterTypeError",
    "check",
    "from_text",
    "from_yaml",
    "validate",
]

MAX_ITEMS = 100  # items of one list parameter: each is a configuration or a sweep point to run
_NONE_WORDS = ("", "none", "null", "~")
_YAML11_BOOLS = ("yes", "no", "on", "off", "y", "n")
PATH_KINDS = {
    "folder": "an existing folder",
    "file": "an existing file",
    "path": "an existing file or folder",
}


class ParameterError(ValueError):
    """A report parameter (or a template's parameters cell) is invalid; the message is one line."""


class ParameterTypeError(ParameterError, TypeError):
    """A report parameter has the wrong type (a str for an int...): both a ParameterError and a
    TypeError, so code catching either sees it."""


@dataclass(frozen=True)
class Param:
    """One declared report parameter.

    Attributes:
        name: Python identifier assigned in the parameters cell.
        type: one of ``int, float, str, bool, list, path``.
        default: the literal value in the cell.
        help: the help text of the comment (without the constraint).
        choices: allowed values (str, or each element of a list), or None.
        low, high: numeric bounds (None = unbounded); ``low_open``/``high_open`` exclude them.
        spec: values are ``mcv.registry`` method specs.
        item: the element type of a ``list``: ``"str"``, ``"int"`` or ``"float"`` (a list of
            int or float has a range, or int choices).
        required_if: ``(other_param, value)``: a path that must be given when other == value.
        optional: None is allowed besides the typed values (an optional number, or one of an
            exclusive pair).
        excludes: the other parameter of an exclusive pair (at most one of the two is set).
        kind: what a ``path`` must name: ``"folder"``, ``"file"`` or ``"path"`` (either).
    """

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    spec: bool = False
    required_if: tuple[str, str] | None = None
    item: str = "str"
    optional: bool = False
    excludes: str | None = None
    kind: str = "path"

    @property
    def range(self) -> Range:
        """Return the numeric bounds as a ``mcviz._checks.Range`` (unbounded sides are None)."""
        return Range(self.low, self.high, low_open=self.low_open, high_open=self.high_open)

    @property
    def allowed(self) -> str:
        """Return a short phrase saying what values are allowed, e.g. ``an int in [1, 200]``."""
        if self.type == "path":
            text = f"{PATH_KINDS[self.kind]} or None"
            if self.required_if:
                other, value = self.required_if
                text += f' (required if {other} is "{value}")'
            return text + self._excluding
        return self._typed + (" or None" if self.optional else "") + self._excluding

    @property
    def _excluding(self) -> str:
        return f" (not with {self.excludes})" if self.excludes else ""

    @property
    def _typed(self) -> str:
        base = {"int": "an int", "float": "a float", "str": "a str", "bool": "a bool"}.get(
            self.type, f"a list of {self.item}"
        )
        if self.choices is not None:
            each = " each" if self.type == "list" else ""
            return f"{base},{each} one of {{{', '.join(self.choices)}}}"
        if self.spec:
            what = "a list of method specs" if self.type == "list" else "a method spec"
            return f"{what} (see mcv.registry.describe())"
        bounds = self.range.text()
        if not bounds:
            return base
        return f"{base}{', each' if self.type == 'list' else ''} {bounds}"


def from_text(param: Param, text: str) -> Any:
    """Return a command-line value converted for ``param``; ``text`` is not changed.

    ``int``/``float``/``bool`` values are typed as YAML 1.2 scalars (``-p epochs 3`` is 3, ``1e-3``
    a float, ``true`` a bool; ``010`` and ``0x1F`` are refused); a ``str`` stays exactly what was
    typed (``001`` stays ``"001"``); a ``list`` accepts a YAML flow sequence (``[fp16, int8]``) or
    a single item; a path, and an optional number, take ``none``/``null`` for None. The result
    still has to pass :func:`check`.

    Raises:
        ParameterError: the text is longer than ``mcviz._yaml.MAX_TEXT_CHARS``, an ambiguous
            number, or a malformed list.
    """
    if not isinstance(text, str):
        raise ParameterTypeError(f"{param.name} must be given as text, got {shorten(text)}")
    if len(text) > _yaml.MAX_TEXT_CHARS:
        raise ParameterError(
            f"{param.name} must be at most {_yaml.MAX_TEXT_CHARS:,} characters, got {len(text):,}"
        )
    if not _paths.utf8(text):  # bytes that are not UTF-8 on the command line
        raise ParameterError(f"{param.name} must be {param.allowed}, got {shorten(text)} (not UTF-8 text)")
    return from_yaml(param, _yaml.Plain(text))


def from_yaml(param: Param, raw: Any) -> Any:
    """Return a value read by ``mcviz._yaml.load`` (a parameters file's entry) converted for
    ``param``, as :func:`from_text` does; ``raw`` is not changed.

    An unquoted scalar (``_yaml.Plain``) is typed for the parameter; a quoted one stays a str
    (``epochs: "3"`` is the string "3", which :func:`check` refuses); a list is read item by item;
    a mapping, or a list inside a list, is refused.

    Raises:
        ParameterError: a nested value, an ambiguous number or a malformed list.
    """
    name = param.name
    if isinstance(raw, dict):
        raise ParameterTypeError(f"{name} must be {param.allowed}, got a mapping {shorten(raw)}")
    if isinstance(raw, list):
        if param.type != "list":
            raise ParameterTypeError(f"{name} must be {param.allowed}, got a list {shorten(raw)}")
        return [_item(param, x) for x in raw]
    if not isinstance(raw, _yaml.Plain):
        return raw  # a quoted str (or a Python value given directly) is kept as it is
    text = str(raw)
    if (param.optional or param.type == "path") and text.strip().lower() in _NONE_WORDS:
        return None
    if param.type in ("str", "path"):
        return text
    if param.type == "list":
        if not text.strip().startswith("["):
            return [_item(param, raw)]
        try:
            value = _yaml.load(text.strip(), f"{name} (a YAML list)")
        except ValueError as exc:
            raise ParameterError(
                f"{name} must be {param.allowed}, got {shorten(text)} (not a YAML list: {exc})"
            ) from None
        if not isinstance(value, list):
            raise ParameterTypeError(f"{name} must be {param.allowed}, got {shorten(text)} (not a YAML list)")
        return [_item(param, x) for x in value]
    return _scalar(param, raw)


def _item(param: Param, raw: Any) -> Any:
    if isinstance(raw, (list, dict)):
        raise ParameterTypeError(f"{param.name} must be {param.allowed}, got a nested value {shorten(raw)}")
    if param.item == "str":
        return str(raw) if raw is not None else raw
    return _scalar(param, raw) if isinstance(raw, _yaml.Plain) else raw


def _scalar(param: Param, raw: _yaml.Plain) -> Any:
    try:
        return _yaml.scalar(raw, param.name)
    except ValueError as exc:
        raise ParameterError(str(exc)) from None


def check(param: Param, value: Any, *, where: str | None = None) -> Any:
    """Return ``value`` normalized for ``param`` (float for int input, list for a scalar item,
    absolute str for a path); ``value`` is not changed.

    Raises:
        ParameterTypeError: (a ParameterError and a TypeError) a value of the wrong type.
        ParameterError: a wrong value: out of range, not a choice, a bad spec, a missing path.
    """
    name = f"{where}: {param.name}" if where else param.name
    given = value  # messages show the value as given, before any normalization

    def bad(cls: type[ParameterError] = ParameterError, hint: str = "") -> ParameterError:
        return cls(f"{name} must be {param.allowed}, got {shorten(given)}{hint}")

    t = param.type
    if value is None and param.optional:
        return None
    if t == "bool":
        if not isinstance(value, bool):
            yaml11 = isinstance(value, str) and value.strip().lower() in _YAML11_BOOLS
            hint = " (yes/no/on/off are not booleans here: write true or false)" if yaml11 else ""
            raise bad(ParameterTypeError, hint)
        return value
    if t in ("int", "float"):
        # numbers.* also admits numpy scalars, which become plain int / float (papermill would
        # inject them as strings)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise bad(ParameterTypeError)
        if t == "int":
            if not isinstance(value, numbers.Integral):
                raise bad(ParameterTypeError)
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise bad()
        if value not in param.range or not _in_choices(param, value):
            raise bad()
        return value
    if t == "path":
        if value is None:
            return None
        if isinstance(value, Path):
            value = str(value)
        try:
            return str(_paths.check_path(value, name, kind=_KIND[param.kind], allowed=param.allowed))
        except TypeError as exc:
            raise ParameterTypeError(str(exc)) from None
        except ValueError as exc:
            raise ParameterError(str(exc)) from None
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list) and len(value) > MAX_ITEMS:
        raise ParameterError(
            f"{name} must be {param.allowed}, with at most {MAX_ITEMS} items, got {len(value):,} items"
        )
    if value == [] and param.default:  # the template needs items: an empty sweep fails mid-run
        raise ParameterError(f"{name} must be {param.allowed}, with at least one item, got []")
    if t == "list" and param.item == "int":  # a single int is a one-element list
        value = [value] if _is_int(value) else value
        if not isinstance(value, list) or not all(_is_int(v) for v in value):
            raise bad(ParameterTypeError)
        if not all(v in param.range and _in_choices(param, v) for v in value):
            raise bad()
        return [int(v) for v in value]
    if t == "list" and param.item == "float":  # floats only: an int is not read as a float here
        value = [value] if isinstance(value, float) else value
        if not isinstance(value, list) or not all(isinstance(v, float) for v in value):
            raise bad(ParameterTypeError)
        if not all(math.isfinite(v) and v in param.range for v in value):
            raise bad()
        return [float(v) for v in value]
    if t == "str":
        if not isinstance(value, str):
            raise bad(ParameterTypeError)
        items = [value]
    else:  # list of str; a single str is a one-element list
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(ParameterTypeError)
        items = value
    for item in items:
        if not _paths.utf8(item):
            raise bad(hint=" (not UTF-8 text)")
        if param.choices is not None and item not in param.choices:
            raise bad()
        if param.spec:
            _check_spec(name, item)
    return [str(v) for v in value] if t == "list" else str(value)


_KIND = {"folder": "folder", "file": "file", "path": "any"}


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _in_choices(param: Param, value) -> bool:
    """Return whether a number is one of the int choices (always true without choices)."""
    return param.choices is None or str(value) in param.choices


def _check_spec(name: str, spec: str) -> None:
    from mcviz import registry  # lazy: reports sit above the registry

    try:
        registry.parse(spec)
    except (ValueError, TypeError) as exc:
        msg = " ".join(str(exc).split())
        cls = ParameterTypeError if isinstance(exc, TypeError) else ParameterError
        raise cls(f"{name}: bad method spec {shorten(spec)}: {msg}") from None


def validate(params: list[Param], values: dict[str, Any], template: str = "template") -> dict:
    """Return every parameter's value (defaults filled in), checked and normalized; ``values`` is
    not changed.

    A parameter of an exclusive pair given explicitly (not None) sets the other one to None
    when that one was left at its default.

    Raises:
        ParameterTypeError: ``values`` is not a dict, or a value has the wrong type.
        ParameterError: unknown name, out of range, bad spec, missing path, or both parameters of
            an exclusive pair given.
    """
    if not isinstance(values, dict):
        raise ParameterTypeError(f"parameters must be a dict of name: value, got {shorten(values)}")
    declared = {p.name: p for p in params}
    for key in values:
        if key not in declared:
            close = difflib.get_close_matches(str(key), declared, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ParameterError(
                f"unknown parameter {shorten(key)} for {template}{hint}; allowed: {', '.join(declared)}"
            )
    out = {}
    for p in params:
        out[p.name] = check(p, values[p.name]) if p.name in values else p.default
    for p in params:
        other = p.excludes
        if not other or p.name > other or out[p.name] is None or out[other] is None:
            continue  # each pair once; nothing to do unless both are set
        if p.name in values and other in values:
            raise ParameterError(
                f"give {p.name} or {other}, not both: got {p.name}={shorten(values[p.name])} and "
                f"{other}={shorten(values[other])}"
            )
        out[other if p.name in values else p.name] = None  # the one given wins over a default
    for p in params:
        if p.required_if and out[p.name] is None:
            other, want = p.required_if
            if str(out.get(other)) == want:
                raise ParameterError(f'{p.name} is required when {other} is "{want}" ({p.help}), got None')
    return out
