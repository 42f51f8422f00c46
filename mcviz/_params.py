"""Report parameters: parse a template's ``parameters`` cell and validate values against it.

The parameters cell of a report template is the one place that declares each parameter.
Every line is a plain literal assignment followed by a ``# help`` comment::

    epochs = 3  # [1, 200] training epochs
    lr = 0.001  # (0, 1] learning rate
    model = "seed_cnn"  # {seed_cnn, lenet300, lenet5, mlp} network to train
    methods = ["fp16"]  # spec: compression configurations, e.g. "magnitude:sparsity=0.9 + int8"
    root = None  # path, required if dataset is "idx": folder of MNIST-format IDX files
    latency = True  # measure CPU latency (machine-dependent)
    bits = [32, 8]  # {2, 4, 8, 32} bit widths, 32 = not quantized
    budget = None  # (0, ) not with fraction: absolute cost limit (None: no limit)
    fraction = None  # (0, ) limit relative to the baseline's cost

Grammar of the comment (``help`` is free text and must not be empty)::

    comment    := constraint? exclusion? help
    constraint := range | choices | kind
    range      := ("[" | "(") number? "," number? ("]" | ")")    # int/float/each int; empty = unbounded
    choices    := "{" word ("," word)* "}"                         # str/int, or each list element
    kind       := "spec:"                                          # str/list: mcv.registry specs
                | "path" (", required if" NAME "is" '"' value '"')? ":"   # None-able folder/file
    exclusion  := "not with" NAME ":"                              # at most one of the two is set

The type comes from the literal: ``int``, ``float``, ``str``, ``bool``, ``list`` (of str, or of
int when a range or int choices bound each element: ``bits = [8, 4]  # [2, 8] bit widths``, or
of float, each written with a dot, when a range bounds each element: ``sparsities = [0.5, 0.9]
# [0, 1] ...``; an int element of a list of float is rejected, never read as a float). ``None``
is allowed for a ``path`` (which then accepts a str or None) and for an optional number: a
``None`` literal with a range is a ``float`` (an int is accepted as a number) that may also be
None (``none``/``null`` on the command line). Choices whose words are all ints apply to an int
or to each element of a list of int.

An exclusion makes two parameters mutually exclusive (declared on either one; both become
None-able and at most one may default to a value): giving both is an error naming both values,
and giving one explicitly sets the other, if it was left at its default, to None.
"""

from __future__ import annotations

import ast
import difflib
import io
import math
import numbers
import re
import tokenize
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Param", "ParameterError", "parse_cell", "check", "from_text", "validate"]

TYPES = ("int", "float", "str", "bool", "list", "path")

_RANGE = re.compile(r"^([\[(])\s*([^,\s]*)\s*,\s*([^\]\)\s]*)\s*([\])])\s*(.*)$")
_CHOICES = re.compile(r"^\{([^}]*)\}\s*(.*)$")
_SPEC = re.compile(r"^spec:\s*(.*)$")
_PATH = re.compile(r'^path(?:\s*,\s*required if\s+(\w+)\s+is\s+"([^"]*)")?\s*:\s*(.*)$')
_NOT_WITH = re.compile(r"^not with\s+(\w+)\s*:\s*(.*)$")
_INT_WORD = re.compile(r"^[+-]?\d+$")
_NONE_WORDS = ("", "none", "null", "~")


class ParameterError(ValueError):
    """A report parameter (or a template's parameters cell) is invalid; the message is one line."""


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

    @property
    def allowed(self) -> str:
        """Return a short phrase saying what values are allowed, e.g. ``an int in [1, 200]``."""
        if self.type == "path":
            text = "an existing path or None"
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
        lo, hi = self.low, self.high
        if self.type == "list" and (lo is not None or hi is not None):
            base += ", each"
        if lo is not None and hi is not None:
            lb, hb = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{base} in {lb}{_num(lo)}, {_num(hi)}{hb}"
        if lo is not None:
            return f"{base} {'>' if self.low_open else '>='} {_num(lo)}"
        if hi is not None:
            return f"{base} {'<' if self.high_open else '<='} {_num(hi)}"
        return base


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _bound(text: str, where: str) -> float | None:
    if text in ("", "inf", "-inf"):
        return None
    try:
        return float(text)
    except ValueError:
        raise ParameterError(f"{where}: range bound must be a number, got {text!r}") from None


def _literal_type(name: str, value: Any, ranged: bool = False, int_choices: bool = False) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "list"
    if (ranged or int_choices) and isinstance(value, list) and value and all(_is_int(v) for v in value):
        return "list"
    if ranged and isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return "list"  # a list of float: every element written as a float literal
    raise ParameterError(
        f"parameter {name}: default must be an int, float, str, bool, list of str, list of int "
        f"or of float with a [range], or None (for a path or a number with a range), got {value!r}"
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _comments(source: str) -> dict[int, str]:
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string[1:].strip()
    return out


def parse_cell(source: str, where: str = "parameters cell") -> list[Param]:
    """Return the parameters declared by a parameters cell's source; the source is not executed.

    Raises:
        ParameterError: a statement is not ``name = literal  # help``, or the comment is malformed.
    """
    try:
        tree = ast.parse(source)
        comments = _comments(source)
    except (SyntaxError, tokenize.TokenError) as exc:
        raise ParameterError(f"{where}: not valid Python ({exc})") from None
    params: dict[str, Param] = {}
    for node in tree.body:
        line = f"{where}, line {node.lineno}"
        if not (
            isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        ):
            raise ParameterError(f"{line}: expected `name = literal  # help`")
        name = node.targets[0].id
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            raise ParameterError(f"{line}: {name} must be a plain literal") from None
        if node.lineno != node.end_lineno:
            raise ParameterError(f"{line}: {name} must fit on one line")
        if name in params:
            raise ParameterError(f"{line}: {name} is declared twice")
        comment = comments.get(node.lineno, "")
        params[name] = _param(name, default, comment, line)
    return _pair_exclusions(params, where)


def _pair_exclusions(params: dict[str, Param], where: str) -> list[Param]:
    """Return the params with each ``not with`` pair made symmetric and both sides None-able."""
    out = dict(params)
    for p in params.values():
        if not p.excludes:
            continue
        other = out.get(p.excludes)
        if other is None or other.name == p.name:
            raise ParameterError(f"{where}: {p.name} is `not with {p.excludes}`, which is not a parameter")
        if other.excludes not in (None, p.name):
            raise ParameterError(f"{where}: {other.name} is already `not with {other.excludes}`; pairs only")
        if p.default is not None and other.default is not None:
            raise ParameterError(
                f"{where}: {p.name} and {other.name} exclude each other, so at most one may have a default"
            )
        for a, b in ((p, other), (other, p)):
            if a.type in ("bool", "list"):
                raise ParameterError(
                    f"{where}: `not with` on {a.name} needs a number, str or path, not {a.type}"
                )
            out[a.name] = replace(out[a.name], excludes=b.name, optional=True)
    return list(out.values())


def _param(name: str, default: Any, comment: str, where: str) -> Param:
    kw: dict[str, Any] = {}
    ptype = None
    int_choices = False
    if m := _RANGE.match(comment):
        kw.update(low=_bound(m[2], where), high=_bound(m[3], where))
        kw.update(low_open=m[1] == "(", high_open=m[4] == ")")
        text = m[5]
    elif m := _CHOICES.match(comment):
        words = m[1]
        kw["choices"] = tuple(c.strip().strip("\"'") for c in words.split(","))
        int_choices = all(_INT_WORD.match(c) for c in kw["choices"])
        if int_choices:  # "{2, 4, 8}": store the ints' canonical spelling
            kw["choices"] = tuple(str(int(c)) for c in kw["choices"])
        text = m[2]
    elif m := _SPEC.match(comment):
        kw["spec"] = True
        text = m[1]
    elif m := _PATH.match(comment):
        ptype = "path"
        if m[1]:
            kw["required_if"] = (m[1], m[2])
        text = m[3]
    else:
        text = comment
    if m := _NOT_WITH.match(text):
        kw["excludes"] = m[1]
        text = m[2]
    if not text.strip():
        raise ParameterError(f"{where}: {name} needs a `# help` comment after its constraint")
    if ptype == "path":
        if default is not None:
            raise ParameterError(f"{where}: path parameter {name} must default to None")
    elif default is None and "low" in kw:
        ptype = "float"  # an optional number: None, or a number in the range
        kw["optional"] = True
    elif default is None:
        raise ParameterError(
            f"{where}: {name} = None is only allowed for a `path:` parameter or a number with a range"
        )
    else:
        ptype = _literal_type(name, default, ranged="low" in kw, int_choices=int_choices)
        if ptype == "list" and default and _is_int(default[0]):
            kw["item"] = "int"
        elif ptype == "list" and default and isinstance(default[0], float):
            kw["item"] = "float"
    if "low" in kw and ptype not in ("int", "float") and kw.get("item") not in ("int", "float"):
        raise ParameterError(f"{where}: a range on {name} needs an int or float, not {ptype}")
    if "choices" in kw and not (ptype in ("str", "list") or (ptype == "int" and int_choices)):
        raise ParameterError(f"{where}: {{choices}} on {name} need a str or list, not {ptype}")
    if "choices" in kw and (ptype == "int" or kw.get("item") == "int") and not int_choices:
        raise ParameterError(f"{where}: {{choices}} on int {name} must all be ints, got {{{words}}}")
    if kw.get("spec") and ptype not in ("str", "list"):
        raise ParameterError(f"{where}: spec: on {name} needs a str or list, not {ptype}")
    param = Param(name=name, type=ptype, default=default, help=text.strip(), **kw)
    if ptype != "path" and not kw.get("spec") and default is not None:
        check(param, default, where=where)  # the declared default must satisfy its own rule
    return param


def from_text(param: Param, text: str) -> Any:
    """Return a command-line value converted for ``param``; strings are kept verbatim.

    ``int``/``float``/``bool`` values are read as YAML scalars (so ``-p epochs 3`` is 3); a ``str``
    stays exactly what was typed (``001`` stays ``"001"``); a ``list`` accepts a YAML flow
    sequence (``[fp16, int8]``, every element kept as a str) or a single item; a ``path`` accepts
    ``none``/``null`` for None, and so does an optional number. The result still has to pass
    :func:`check`.
    """
    if param.optional and text.strip().lower() in _NONE_WORDS:
        return None
    if param.type == "str":
        return text
    if param.type == "path":
        return None if text.strip().lower() in _NONE_WORDS else text
    if param.type == "list":
        stripped = text.strip()
        # a list of str keeps every scalar a str; a list of int reads YAML scalars (check() types them)
        loader = yaml.BaseLoader if param.item == "str" else yaml.SafeLoader
        if stripped.startswith("["):
            try:
                value = yaml.load(stripped, Loader=loader)
            except yaml.YAMLError:
                raise ParameterError(
                    f"{param.name} must be {param.allowed}, got {text!r} (not a YAML list)"
                ) from None
            return value
        if param.item != "str":
            try:
                return [yaml.safe_load(stripped)]
            except yaml.YAMLError:
                return [text]
        return [text]
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text  # check() reports it with the allowed values
    if param.type == "float" and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a str
        except ValueError:
            pass
    return value


def check(param: Param, value: Any, *, where: str | None = None) -> Any:
    """Return ``value`` normalized for ``param`` (float for int input, list for a scalar item,
    absolute str for a path), or raise ParameterError naming the parameter and what is allowed.
    """
    name = f"{where}: {param.name}" if where else param.name
    given = value  # messages show the value as given, before any normalization

    def bad() -> ParameterError:
        return ParameterError(f"{name} must be {param.allowed}, got {given!r}")

    t = param.type
    if value is None and param.optional:
        return None
    if t == "bool":
        if not isinstance(value, bool):
            raise bad()
        return value
    if t in ("int", "float"):
        # numbers.* also admits numpy scalars, which become plain int / float (papermill would
        # inject them as strings)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise bad()
        if t == "int":
            if not isinstance(value, numbers.Integral):
                raise bad()
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise bad()
        if not _in_range(param, value) or not _in_choices(param, value):
            raise bad()
        return value
    if t == "path":
        if value is None:
            return None
        if isinstance(value, Path):
            value = str(value)
        if not isinstance(value, str):
            raise bad()
        path = Path(value).expanduser()
        if not path.exists():
            raise ParameterError(f"{name} must be {param.allowed}, got {value!r} (not found)")
        return str(path.resolve())
    if t == "list" and param.item == "int":  # a single int is a one-element list
        value = [value] if _is_int(value) else list(value) if isinstance(value, tuple) else value
        if not isinstance(value, list) or not all(
            _is_int(v) and _in_range(param, v) and _in_choices(param, v) for v in value
        ):
            raise bad()
        return [int(v) for v in value]
    if t == "list" and param.item == "float":  # floats only: an int is not read as a float here
        value = [value] if isinstance(value, float) else list(value) if isinstance(value, tuple) else value
        if not isinstance(value, list) or not all(
            isinstance(v, float) and math.isfinite(v) and _in_range(param, v) for v in value
        ):
            raise bad()
        return [float(v) for v in value]
    if t == "str":
        items = [value]
        if not isinstance(value, str):
            raise bad()
    else:  # list of str; a single str is a one-element list
        if isinstance(value, str):
            value = [value]
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad()
        items = value
    for item in items:
        if param.choices is not None and item not in param.choices:
            raise bad()
        if param.spec:
            _check_spec(name, item)
    return list(value) if t == "list" else value


def _in_choices(param: Param, value) -> bool:
    """Return whether a number is one of the int choices (always true without choices)."""
    return param.choices is None or str(value) in param.choices


def _in_range(param: Param, value) -> bool:
    lo, hi = param.low, param.high
    if lo is not None and (value < lo or (param.low_open and value == lo)):
        return False
    return not (hi is not None and (value > hi or (param.high_open and value == hi)))


def _check_spec(name: str, spec: str) -> None:
    from . import registry  # lazy: reports sit above the registry

    try:
        registry.parse(spec)
    except (ValueError, TypeError) as exc:
        msg = " ".join(str(exc).split())
        raise ParameterError(f"{name}: bad method spec {spec!r}: {msg}") from None


def validate(params: list[Param], values: dict[str, Any], template: str = "template") -> dict:
    """Return every parameter's value (defaults filled in), checked and normalized.

    A parameter of an exclusive pair given explicitly (not None) sets the other one to None
    when that one was left at its default.

    Raises:
        ParameterError: unknown name, wrong type, out of range, bad spec, missing path, or both
            parameters of an exclusive pair given.
    """
    declared = {p.name: p for p in params}
    for key in values:
        if key not in declared:
            close = difflib.get_close_matches(str(key), declared, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ParameterError(
                f"unknown parameter {key!r} for {template}{hint}; allowed: {', '.join(declared)}"
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
                f"give {p.name} or {other}, not both: got {p.name}={values[p.name]!r} and "
                f"{other}={values[other]!r}"
            )
        out[other if p.name in values else p.name] = None  # the one given wins over a default
    for p in params:
        if p.required_if and out[p.name] is None:
            other, want = p.required_if
            if str(out.get(other)) == want:
                raise ParameterError(f'{p.name} is required when {other} is "{want}" ({p.help}), got None')
    return out
