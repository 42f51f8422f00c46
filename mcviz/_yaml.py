"""Strict reading of the YAML a user types: parameter files, ``-p`` values and method-spec options.

PyYAML implements YAML 1.1, whose implicit typing surprises people: ``no`` and ``off`` are False,
``010`` is 8 (octal), ``1:30`` is 90 (base 60), ``1e-3`` (no dot) is a string, ``2024-01-01`` a
date; a repeated key silently wins; aliases expand a 350-byte file into hundreds of megabytes.
mcviz reads user YAML in two steps instead, in this one module (parameter files, ``-p`` values and
method specs all go through it):

1. :func:`load` turns the text into plain Python values WITHOUT typing any scalar: an unquoted
   scalar comes back as :class:`Plain` text, a quoted one as ``str``, sequences as lists, mappings
   as dicts. Anchors, aliases, tags, repeated keys, several documents, nesting deeper than
   :data:`MAX_DEPTH` and text longer than the cap are refused with one line.
2. :func:`scalar` types an unquoted scalar once its reader knows it wants a number or a bool, by
   YAML 1.2's core schema (what JSON, YAML 1.2 parsers and most people expect): ``true``/``false``
   are the booleans (``yes``, ``no``, ``on``, ``off`` stay strings), ``null``/``~``/nothing is
   None, ints and floats are decimal (``1e-3`` is a float; ``1_000`` is 1000, as in Python),
   ``.inf``/``.nan`` are the special floats (which every number check then refuses). Forms that
   YAML 1.1 reads differently are refused rather than guessed: a leading zero (``010``, octal 8
   in YAML 1.1) and other bases (``0x1F``, ``0o17``, ``0b101``). Base-60 ``1:30`` and dates stay
   strings.

:func:`read_text` reads a file under a size cap as UTF-8 (a UTF-8 byte-order mark is dropped;
UTF-16 and UTF-32 files with a byte-order mark are decoded; anything else that is not UTF-8 is
refused).
"""

from __future__ import annotations

import codecs
import math
import re
from pathlib import Path

import yaml

from mcviz._checks import shorten

MAX_TEXT_CHARS = 10_000  # a -p value, a method spec, one option value
MAX_FILE_BYTES = 65_536  # a parameters file: a dozen lines are typical
MAX_DEPTH = 4  # a parameters file is a mapping of scalars and flat lists

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # events only: nothing is constructed
_INT = re.compile(r"[-+]?(0|[1-9](_?[0-9])*)")
_LEADING_ZERO = re.compile(r"[-+]?0(_?[0-9])+")
_OTHER_BASE = re.compile(r"[-+]?0([xX][0-9a-fA-F_]+|[oO][0-7_]+|[bB][01_]+)")
_FLOAT = re.compile(r"[-+]?(([0-9](_?[0-9])*)?\.[0-9](_?[0-9])*|[0-9](_?[0-9])*\.?)([eE][-+]?[0-9]+)?")
_SPECIAL = {"inf": math.inf, "infinity": math.inf, "nan": math.nan}
_NULLS = ("", "~", "null")
_BOMS = (  # longest first: the UTF-32-LE mark starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class Plain(str):
    """The text of an unquoted YAML scalar, not typed yet (:func:`scalar` types it)."""

    __slots__ = ()


def scalar(text: str, name: str):
    """Returns an unquoted scalar typed by YAML 1.2's core schema: bool, None, int, float or str.

    ``text`` is not changed; surrounding whitespace is ignored.

    Raises:
        ValueError: a number written with a leading zero or in another base (one line naming
            ``name``, the text, and the decimal to write instead).
    """
    word = str(text).strip()
    low = word.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in _NULLS:
        return None
    if _INT.fullmatch(word):
        return int(word)
    if _LEADING_ZERO.fullmatch(word):
        digits = word.replace("_", "")
        octal = f"the string {word!r}" if re.search("[89]", word) else f"octal {int(digits, 8)}"
        raise ValueError(
            f"{name} must be a decimal number without a leading zero, got {shorten(word)} "
            f"(YAML 1.1 reads it as {octal}); write {int(digits)}"
        )
    if _OTHER_BASE.fullmatch(word):
        raise ValueError(f"{name} must be a decimal number, got {shorten(word)}; write {int(word, 0)}")
    if _FLOAT.fullmatch(word) and any(c in "0123456789" for c in word):
        return float(word)
    sign, body = (-1.0, low[1:]) if low[:1] == "-" else (1.0, low.lstrip("+"))
    special = _SPECIAL.get(body.removeprefix("."))
    if special is not None:
        return sign * special if not math.isnan(special) else special
    return str(word)


def load(text: str, what: str, *, max_chars: int = MAX_TEXT_CHARS):
    """Returns the YAML ``text`` as Python values whose scalars are not typed (:class:`Plain` or
    ``str``); ``text`` is not changed. An empty text is None.

    Raises:
        TypeError: ``text`` is not a str. ValueError: too long, not valid YAML, or using an anchor,
            alias, tag, repeated key, several documents or deep nesting (one line naming ``what``).
    """
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {shorten(text)}")
    if len(text) > max_chars:
        raise ValueError(f"{what} must be at most {max_chars:,} characters, got {len(text):,}")
    builder = _Builder(what, lines="\n" in text)
    try:
        for event in yaml.parse(text, Loader=_LOADER):
            builder.feed(event)
    except yaml.MarkedYAMLError as exc:
        raise ValueError(f"{what} is not valid YAML: {_problem(exc, text)}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{what} is not valid YAML: {' '.join(str(exc).split())[:200]}") from None
    return builder.root


def read_text(path: Path, what: str, *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """Returns the text of ``path`` decoded as UTF-8 (or UTF-16/32 with a byte-order mark); the
    file is not changed.

    Raises:
        ValueError: larger than ``max_bytes`` or not text in those encodings. OSError: unreadable.
    """
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{what} must be at most {max_bytes:,} bytes, got more")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise ValueError(f"{what} is not valid {encoding.upper()} text ({exc.reason})") from None
    if b"\x00" in data:
        raise ValueError(
            f"{what} holds NUL bytes (UTF-16 without a byte-order mark, or binary); save it as UTF-8"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02X} at offset {exc.start}); save it as UTF-8"
        ) from None


class _Builder:
    """Builds values from parser events, refusing what a user's YAML never needs."""

    _END = object()

    def __init__(self, what: str, lines: bool):
        self.what, self.lines = what, lines  # lines: say where, in a text of several lines
        self.root = None
        self.stack: list = []  # [list] or [dict, pending key or _END, {key: line}]
        self.documents = 0

    def refuse(self, problem: str, event) -> ValueError:
        mark = event.start_mark
        where = f" (line {mark.line + 1})" if self.lines and mark is not None else ""
        return ValueError(f"{self.what} {problem}{where}")

    def feed(self, event) -> None:
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self.refuse("holds several YAML documents ('---'); give one mapping", event)
            return
        if isinstance(event, yaml.AliasEvent):
            raise self.refuse(f"uses an alias (*{event.anchor}); anchors and aliases are not allowed", event)
        if getattr(event, "anchor", None) is not None:
            raise self.refuse(f"uses an anchor (&{event.anchor}); anchors and aliases are not allowed", event)
        tag = getattr(event, "tag", None)
        if tag not in (None, "!"):
            raise self.refuse(f"uses a tag ({shorten(tag)}); tags are not allowed", event)
        if isinstance(event, yaml.ScalarEvent):
            self.add(Plain(event.value) if not event.style else str(event.value), event)  # style: quotes
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            if len(self.stack) >= MAX_DEPTH:
                raise self.refuse(f"nests values more than {MAX_DEPTH} levels deep", event)
            self.stack.append([[]] if isinstance(event, yaml.SequenceStartEvent) else [{}, self._END, {}])
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            self.add(self.stack.pop()[0], event)

    def add(self, value, event) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        if isinstance(top[0], list):
            top[0].append(value)
        elif top[1] is self._END:  # a key
            if not isinstance(value, str):
                raise self.refuse(f"has a key that is not a name: {shorten(value)}", event)
            key = str(value)
            if key in top[2]:
                raise ValueError(
                    f"{self.what} gives {shorten(key)} twice (lines {top[2][key]} and "
                    f"{event.start_mark.line + 1}); give each key once"
                )
            top[1], top[2][key] = key, event.start_mark.line + 1
        else:
            top[0][top[1]], top[1] = value, self._END


def _problem(exc: yaml.MarkedYAMLError, text: str) -> str:
    problem = " ".join(str(exc.problem or exc.context or "syntax error").split())[:200]
    mark = exc.problem_mark or exc.context_mark
    lines = text.splitlines()
    line = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
    if "\t" in line[: len(line) - len(line.lstrip())] or "'\\t'" in problem:
        problem = "a tab where YAML needs spaces (indent with spaces, not tabs)"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return problem + where
