"""mcviz._yaml: the strict reader of the YAML a user types (parameter files, -p values, spec options)."""

from __future__ import annotations

import codecs
import math
import time

import pytest
from helpers import one_line

from mcviz import _yaml
from mcviz._yaml import Plain

# ---------------------------------------------------------------- scalar(): YAML 1.2, no guessing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("-3", -3),
        ("+3", 3),
        ("0", 0),
        (" 42 ", 42),
        ("1_000", 1000),  # Python's digit groups, as in the templates' parameters cells
        ("1e-3", 0.001),  # YAML 1.1 reads this as a str
        ("1E+2", 100.0),
        ("2.5", 2.5),
        (".5", 0.5),
        ("1.", 1.0),
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("null", None),
        ("~", None),
        ("", None),
        ("yes", "yes"),  # YAML 1.1's booleans stay strings: a bool parameter then refuses them
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("1:30", "1:30"),  # YAML 1.1 reads base 60: 90
        ("2024-01-01", "2024-01-01"),  # YAML 1.1 reads a date
        ("fp16", "fp16"),
    ],
)
def test_scalar_follows_yaml_1_2(text, expected):
    value = _yaml.scalar(Plain(text), "x")
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(("text", "sign"), [(".inf", 1), ("-.inf", -1), ("inf", 1), ("+.Inf", 1)])
def test_scalar_infinities_are_floats_that_number_checks_refuse(text, sign):
    assert _yaml.scalar(text, "x") == sign * math.inf


def test_scalar_nan():
    assert math.isnan(_yaml.scalar(".nan", "x")) and math.isnan(_yaml.scalar("NaN", "x"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "010",
            "x must be a decimal number without a leading zero, got '010' (YAML 1.1 reads it as octal 8); "
            "write 10",
        ),
        ("007", "(YAML 1.1 reads it as octal 7); write 7"),
        ("08", "(YAML 1.1 reads it as the string '08'); write 8"),
        ("0x1F", "x must be a decimal number, got '0x1F'; write 31"),
        ("0o17", "x must be a decimal number, got '0o17'; write 15"),
        ("0b101", "write 5"),
        ("-0x10", "write -16"),
    ],
)
def test_scalar_refuses_numbers_yaml_1_1_reads_otherwise(text, message):
    with pytest.raises(ValueError) as info:
        _yaml.scalar(text, "x")
    assert message in one_line(info)


# ---------------------------------------------------------------- load(): values, untyped


def test_load_keeps_scalars_untyped_and_marks_quoted_ones():
    value = _yaml.load("a: 1\nb: [x, 'y', 3]\nc:\nd: \"q\"\ne: |\n  block\n", "f")
    assert value == {"a": "1", "b": ["x", "y", "3"], "c": "", "d": "q", "e": "block\n"}
    assert type(value["a"]) is Plain and type(value["b"][0]) is Plain and type(value["b"][1]) is str
    assert type(value["d"]) is str and type(value["c"]) is Plain


@pytest.mark.parametrize("text", ["", "# only a comment\n", "   \n"])
def test_load_of_nothing_is_none(text):
    assert _yaml.load(text, "f") is None


# a 350-byte "billion laughs" file: expanded, this was a 254 MB line printed after 32 s
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (LAUGHS, "f uses an anchor (&a); anchors and aliases are not allowed (line 1)"),
        ("a: *b\n", "f uses an alias (*b); anchors and aliases are not allowed"),
        ("a: !!int '3'\n", "f uses a tag ('tag:yaml.org,2002:int'); tags are not allowed"),
        ("a: !!python/object:os.system x\n", "tags are not allowed"),
        ("a: 1\nb: 2\na: 3\n", "f gives 'a' twice (lines 1 and 3); give each key once"),
        ("a: 1\n---\nb: 2\n", "f holds several YAML documents ('---'); give one mapping (line 2)"),
        (
            "a:\n\t- 1\n",
            "f is not valid YAML: a tab where YAML needs spaces (indent with spaces, not tabs) at line 2",
        ),
        ("a: [1, 2\n", "f is not valid YAML: did not find expected ',' or ']'"),
        ("a: b: c\n", "f is not valid YAML: mapping values are not allowed"),
        ("[[[[[1]]]]]", "f nests values more than 4 levels deep"),
        ("{[a]: 1}", "f has a key that is not a name: ['a']"),
        ("a: \x07\n", "f is not valid YAML"),
    ],
)
def test_load_refuses_what_a_user_never_needs(text, message):
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as info:
        _yaml.load(text, "f")
    text = one_line(info)
    assert message in text and len(text) < 300
    assert time.perf_counter() - t0 < 10  # a hang guard: the aliases are never expanded


def test_load_caps_the_text():
    with pytest.raises(ValueError, match=r"f must be at most 10,000 characters, got 10,001") as info:
        _yaml.load("x" * 10_001, "f")
    one_line(info)
    with pytest.raises(TypeError, match="f must be a str, got b'x'"):
        _yaml.load(b"x", "f")


# ---------------------------------------------------------------- read_text(): encodings, size


@pytest.mark.parametrize(
    "data",
    [
        "epochs: 3\nname: é\n".encode(),
        codecs.BOM_UTF8 + "epochs: 3\nname: é\n".encode(),
        "epochs: 3\nname: é\n".encode("utf-16"),  # with its byte-order mark (PowerShell's > writes this)
        "epochs: 3\nname: é\n".encode("utf-32"),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16-bom", "utf-32-bom"],
)
def test_read_text_normalizes_encodings_with_a_mark(tmp_path, data):
    (tmp_path / "p.yaml").write_bytes(data)
    assert _yaml.read_text(tmp_path / "p.yaml", "f") == "epochs: 3\nname: é\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("name: é\n".encode("latin-1"), "f is not UTF-8 text (byte 0xE9 at offset 6); save it as UTF-8"),
        (
            "epochs: 3\n".encode("utf-16-le"),
            "f holds NUL bytes (UTF-16 without a byte-order mark, or binary)",
        ),
        (b"x" * 65_537, "f must be at most 65,536 bytes, got more"),
    ],
    ids=["latin-1", "utf-16-no-bom", "too-large"],
)
def test_read_text_refuses_other_bytes(tmp_path, data, message):
    (tmp_path / "p.yaml").write_bytes(data)
    with pytest.raises(ValueError) as info:
        _yaml.read_text(tmp_path / "p.yaml", "f")
    assert message in one_line(info)
