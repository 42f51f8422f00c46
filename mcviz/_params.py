"""Report parameters: the grammar of a template's ``parameters`` cell, and its parser.

The parameters cell of a report template is the one place that declares each parameter.
Every line is a plain literal assignment followed by a ``# help`` comment::

    epochs = 3  # [1, 200] training epochs
    lr = 0.001  # (0, 1] learning rate
    model = "seed_cnn"  # {seed_cnn, lenet300, lenet5, mlp} network to train
    methods = ["fp16"]  # spec: compression configurations, e.g. "magnitude:sparsity=0.9 + int8"
    root = None  # folder, required if dataset is "idx": folder of MNIST-format IDX files
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
                | ("folder" | "file" | "path") (", required if" NAME "is" '"' value '"')? ":"
                                                                   # None-able existing folder/file/either
    exclusion  := "not with" NAME ":"                              # at most one of the two is set

The type comes from the literal: ``int``, ``float``, ``str``, ``bool``, ``list`` (of str, or of
int when a range or int choices bound each element: ``bits = [8, 4]  # [2, 8] bit widths``, or
of float, each written with a dot, when a range bounds each element: ``sparsities = [0.5, 0.9]
# [0, 1] ...``; an int element of a list of float is rejected, never read as a float). ``None``
is allowed for a ``folder``, ``file`` or ``path`` (which then accept an existing, readable folder,
regular file, or either, or None) and for an optional number: a ``None`` literal with a range is
a ``float`` (an int is accepted as a number) that may also be None (``none``/``null`` on the
command line). Choices whose words are all ints apply to an int or to each element of a list of
int. A list holds at most 100 items (``MAX_ITEMS``), and at least one when its default is not
empty (an empty sweep would only fail mid-run).

Shared bounds: a declared range of a parameter named like an option with shared bounds
(``mcviz._checks.BOUNDS``: ``epochs``, ``batch_size``, ``lr``...) is tightened to them, and an
int parameter named ``seed`` or ``*_seed`` always gets the seed bounds ([0, 2**32 - 1], what
numpy, scikit-learn and torch all accept), so a value the library would refuse mid-run is refused
before the run: ``seed = 0  # [0, ] seed`` allows [0, 4294967295].

An exclusion makes two parameters mutually exclusive (declared on either one; both become
None-able and at most one may default to a value): giving both is an error naming both values,
and giving one explicitly sets the other, if it was left at its default, to None.

One parameter (:class:`Param`) and its values (``from_text``, ``check``, ``validate``) live in
``mcviz._param_values``; this module parses the cell into them and re-exports them.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import replace
from typing import Any

from mcviz._checks import BOUNDS, Range
from mcviz._param_values import (  # re-exported: this module is the parameters' public face
    MAX_ITEMS,
    PATH_KINDS,
    Param,
    ParameterError,
    ParameterTypeError,
    _is_int,
    check,
    from_text,
    from_yaml,
    validate,
)

__all__ = [  # the value side's names, re-exported, and the parser
    "MAX_ITEMS",
    "PATH_KINDS",
    "Param",
    "ParameterError",
    "ParameterTypeError",
    "check",
    "from_text",
    "from_yaml",
    "parse_cell",
    "validate",
]

TYPES = ("int", "float", "str", "bool", "list", "path")
_RANGE = re.compile(r"^([\[(])\s*([^,\s]*)\s*,\s*([^\]\)\s]*)\s*([\])])\s*(.*)$")
_CHOICES = re.compile(r"^\{([^}]*)\}\s*(.*)$")
_SPEC = re.compile(r"^spec:\s*(.*)$")
_PATH = re.compile(r'^(folder|file|path)(?:\s*,\s*required if\s+(\w+)\s+is\s+"([^"]*)")?\s*:\s*(.*)$')
_NOT_WITH = re.compile(r"^not with\s+(\w+)\s*:\s*(.*)$")
_INT_WORD = re.compile(r"^[+-]?\d+$")


def _shared(name: str, ptype: str, item: str) -> Range | None:
    """Return the shared bounds (``_checks.BOUNDS``) a numeric parameter called ``name`` obeys."""
    if ptype not in ("int", "float") and item not in ("int", "float"):
        return None
    if name == "seed" or name.endswith("_seed"):
        return BOUNDS["seed"]
    return BOUNDS.get(name)


def _tighten(kw: dict, shared: Range) -> None:
    """Narrow the range in ``kw`` (low, high, low_open, high_open) to ``shared`` where it is tighter."""
    lo, hi = kw.get("low"), kw.get("high")
    if shared.low is not None and (lo is None or shared.low > lo):
        kw["low"], kw["low_open"] = shared.low, shared.low_open
    elif shared.low is not None and shared.low == lo:
        kw["low_open"] = kw.get("low_open", False) or shared.low_open
    if shared.high is not None and (hi is None or shared.high < hi):
        kw["high"], kw["high_open"] = shared.high, shared.high_open
    elif shared.high is not None and shared.high == hi:
        kw["high_open"] = kw.get("high_open", False) or shared.high_open


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
        kw["kind"] = m[1]
        if m[2]:
            kw["required_if"] = (m[2], m[3])
        text = m[4]
    else:
        text = comment
    if m := _NOT_WITH.match(text):
        kw["excludes"] = m[1]
        text = m[2]
    if not text.strip():
        raise ParameterError(f"{where}: {name} needs a `# help` comment after its constraint")
    if ptype == "path":
        if default is not None:
            raise ParameterError(f"{where}: {kw['kind']} parameter {name} must default to None")
    elif default is None and "low" in kw:
        ptype = "float"  # an optional number: None, or a number in the range
        kw["optional"] = True
    elif default is None:
        raise ParameterError(
            f"{where}: {name} = None is only allowed for a `folder:`, `file:` or `path:` parameter "
            "or a number with a range"
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
    shared = _shared(name, ptype, kw.get("item", "str"))
    if shared is not None and ("low" in kw or shared is BOUNDS["seed"]):
        _tighten(kw, shared)  # e.g. seed = 0  # [0, ] -> [0, 2**32 - 1]
    param = Param(name=name, type=ptype, default=default, help=text.strip(), **kw)
    if ptype != "path" and not kw.get("spec") and default is not None:
        check(param, default, where=where)  # the declared default must satisfy its own rule
    return param
