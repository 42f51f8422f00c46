"""The parameters-cell grammar, its parser, and validation of values (mcviz._params)."""

from __future__ import annotations

import ast
import math

import pytest

from mcviz import _params
from mcviz._params import Param, ParameterError, ParameterTypeError, check, from_text, parse_cell, validate

CELL = """dataset = "mnist5k"  # {digits, mnist5k, idx} data set to load
root = None  # path, required if dataset is "idx": folder of IDX files
epochs = 3  # [1, 200] training epochs
lr = 0.001  # (0, 1] learning rate
seed = 0  # [0, ] seed
methods = ["fp16"]  # spec: compression configurations
tags = []  # {a, b} extra tags
name = "x"  # a free-form label
latency = True  # time inference
"""


@pytest.fixture(scope="module")
def params() -> dict[str, Param]:
    return {p.name: p for p in parse_cell(CELL)}


def test_types_come_from_the_literals(params):
    types = {name: p.type for name, p in params.items()}
    assert types == {
        "dataset": "str",
        "root": "path",
        "epochs": "int",
        "lr": "float",
        "seed": "int",
        "methods": "list",
        "tags": "list",
        "name": "str",
        "latency": "bool",
    }


def test_constraints_and_help_are_parsed(params):
    assert params["dataset"].choices == ("digits", "mnist5k", "idx")
    assert params["dataset"].help == "data set to load"
    assert params["root"].required_if == ("dataset", "idx")
    assert params["root"].help == "folder of IDX files"
    assert (params["epochs"].low, params["epochs"].high) == (1, 200)
    assert params["lr"].low_open and not params["lr"].high_open
    assert params["seed"].high == 2**32 - 1  # "[0, ]" tightened to the shared seed bounds
    assert params["methods"].spec and params["methods"].default == ["fp16"]
    assert params["name"].help == "a free-form label" and params["name"].choices is None


def test_allowed_phrases(params):
    assert params["epochs"].allowed == "an int in [1, 200]"
    assert params["lr"].allowed == "a float in (0, 1]"
    assert params["seed"].allowed == "an int in [0, 4,294,967,295]"
    assert params["dataset"].allowed == "a str, one of {digits, mnist5k, idx}"
    assert params["tags"].allowed == "a list of str, each one of {a, b}"
    assert params["root"].allowed.startswith("an existing file or folder or None")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = foo()  # help", "plain literal"),
        ("x = 1", "needs a `# help` comment"),
        ("x = 1  # [1, 5]", "needs a `# help` comment"),
        ("x = None  # help", "only allowed for a `folder:`, `file:` or `path:`"),
        ("a = b = 1  # help", "expected `name = literal"),
        ("import os", "expected `name = literal"),
        ("x = 1  # help\nx = 2  # again", "declared twice"),
        ("x = (1, 2)  # help", "default must be"),
        ("x = [1, 2]  # help", "default must be"),
        ("x = 'a'  # [1, 5] help", "range on x needs an int or float"),
        ("x = 1  # {a, b} help", "{choices} on x need a str or list"),
        ("x = 0  # [1, 5] help", "must be an int in [1, 5], got 0"),
        ("x = 'c'  # {a, b} help", "one of {a, b}, got 'c'"),
        ("x = [\n 'a']  # help", "fit on one line"),
        ("x = 1  # [one, 5] help", "range bound must be a number"),
        ("x = 'p'  # path: help", "must default to None"),
        ("x = (", "not valid Python"),
    ],
)
def test_malformed_cells_are_rejected_with_one_line(source, message):
    with pytest.raises(ParameterError, match=None) as info:
        parse_cell(source)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_parsing_does_not_execute_the_cell(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(ParameterError):
        parse_cell(f"x = open({str(marker)!r}, 'w')  # help")
    assert not marker.exists()


# ---------------------------------------------------------------- check()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("epochs", 3, 3),
        ("epochs", 200, 200),
        ("lr", 1, 1.0),  # an int is a fine float
        ("lr", 0.5, 0.5),
        ("latency", False, False),
        ("dataset", "digits", "digits"),
        ("methods", "fp16", ["fp16"]),  # a scalar is a one-element list
        ("methods", ("fp16",), ["fp16"]),
        ("tags", [], []),
        ("name", "001", "001"),
        ("root", None, None),
    ],
)
def test_check_accepts_and_normalizes(params, name, value, expected):
    out = check(params[name], value)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("epochs", 0, "epochs must be an int in [1, 200], got 0"),
        ("epochs", 201, "got 201"),
        ("epochs", 3.0, "got 3.0"),
        ("epochs", True, "got True"),
        ("epochs", "3", "got '3'"),
        ("lr", 0, "lr must be a float in (0, 1], got 0"),
        ("lr", 1.5, "got 1.5"),
        ("lr", math.nan, "got nan"),
        ("lr", math.inf, "got inf"),
        ("seed", -1, "seed must be an int in [0, 4,294,967,295], got -1"),
        ("seed", 2**32, "seed must be an int in [0, 4,294,967,295], got 4294967296"),
        ("latency", "yes", "latency must be a bool, got 'yes'"),
        ("latency", 1, "got 1"),
        ("dataset", "cifar", "dataset must be a str, one of {digits, mnist5k, idx}, got 'cifar'"),
        ("dataset", 1, "got 1"),
        ("name", 1, "name must be a str, got 1"),
        ("tags", ["a", "c"], "each one of {a, b}"),
        ("tags", [1], "got [1]"),
        ("root", 3, "root must be an existing file or folder or None"),
    ],
)
def test_check_rejects_with_one_line(params, name, value, message):
    with pytest.raises(ParameterError) as info:
        check(params[name], value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_numpy_scalars_become_plain_numbers(params):
    np = pytest.importorskip("numpy")
    out = check(params["epochs"], np.int64(7))
    assert out == 7 and type(out) is int
    out = check(params["lr"], np.float32(0.5))
    assert out == 0.5 and type(out) is float
    with pytest.raises(ParameterError, match="epochs must be an int"):
        check(params["epochs"], np.float64(7.0))


def test_path_must_exist_and_comes_back_absolute(params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    assert check(params["root"], "data") == str(tmp_path / "data")
    assert check(params["root"], tmp_path / "data") == str(tmp_path / "data")
    with pytest.raises(ParameterError, match=r"root must be .*got 'nope' \(not found\)"):
        check(params["root"], "nope")


def test_method_specs_are_checked_by_the_registry(params):
    assert check(params["methods"], ["fp16", "fp16 + fp16"]) == ["fp16", "fp16 + fp16"]
    with pytest.raises(ParameterError, match=r"methods: bad method spec 'bogus': unknown method"):
        check(params["methods"], ["fp16", "bogus"])
    with pytest.raises(ParameterError, match=r"bad method spec 'fp16:bits=4'.*no option 'bits'"):
        check(params["methods"], "fp16:bits=4")


# ---------------------------------------------------------------- from_text()


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("epochs", "3", 3),
        ("lr", "1e-3", 0.001),  # YAML 1.1 alone would read this as a str
        ("lr", "fast", "fast"),  # check() then rejects it
        ("lr", "0.01", 0.01),
        ("latency", "false", False),
        ("latency", "True", True),
        ("name", "001", "001"),  # a str parameter keeps what was typed
        ("name", "True", "True"),
        ("name", "[a, b]", "[a, b]"),
        ("dataset", "mnist5k", "mnist5k"),
        ("methods", "fp16", ["fp16"]),
        ("methods", "magnitude:sparsity=0.9,scope=global", ["magnitude:sparsity=0.9,scope=global"]),
        ("methods", "[fp16, 'a:b=1,c=2', 001]", ["fp16", "a:b=1,c=2", "001"]),
        ("root", "none", None),
        ("root", "null", None),
        ("root", "data/x", "data/x"),
    ],
)
def test_from_text(params, name, text, expected):
    assert from_text(params[name], text) == expected


def test_from_text_bad_yaml_list(params):
    with pytest.raises(ParameterError, match="not a YAML list"):
        from_text(params["methods"], "[fp16")


# ---------------------------------------------------------------- validate()


def test_validate_fills_defaults_and_keeps_input(params):
    given = {"epochs": 5}
    out = validate(list(params.values()), given)
    assert out["epochs"] == 5 and out["dataset"] == "mnist5k" and out["methods"] == ["fp16"]
    assert list(out) == list(params)
    assert given == {"epochs": 5}


def test_validate_unknown_name_suggests(params):
    with pytest.raises(ParameterError) as info:
        validate(list(params.values()), {"epoch": 5}, template="compare")
    text = str(info.value)
    assert text.startswith("unknown parameter 'epoch' for compare (did you mean epochs?)")
    assert "allowed: dataset, root, epochs" in text


def test_validate_required_path(params, tmp_path):
    ps = list(params.values())
    with pytest.raises(ParameterError, match=r'root is required when dataset is "idx"'):
        validate(ps, {"dataset": "idx"})
    with pytest.raises(ParameterError, match=r"not found"):
        validate(ps, {"dataset": "idx", "root": str(tmp_path / "missing")})
    assert validate(ps, {"dataset": "idx", "root": str(tmp_path)})["root"] == str(tmp_path)


@pytest.mark.parametrize(
    "value",
    [
        'a"b',
        "a'b",
        "back\\slash\\",
        'x" + __import__("os").system("echo hi") + "',
        "line\nbreak",
        '\\"',
        "{value}",
        "é ü 字",
    ],
)
def test_injected_values_are_literals_never_code(value):
    import nbformat

    from mcviz.reports._runner import _inject

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell('name = "x"  # help')
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    _inject(nb, {"name": value, "items": [value], "n": 3, "flag": True, "root": None})
    injected = nb.cells[1]
    assert injected.metadata["tags"] == ["injected-parameters"]
    tree = ast.parse(injected.source)
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body}
    assert values == {"name": value, "items": [value], "n": 3, "flag": True, "root": None}


def test_module_docstring_states_the_whole_grammar():
    # the docstring is the grammar's only reference: every constraint kind the parser knows is in it
    for keyword in ("range", "choices", "spec:", "path", "not with", "None"):
        assert keyword in _params.__doc__, keyword


# ---------------------------------------------------------------- optional numbers, int choices, pairs

LIMITS = """budget = None  # (0, ) not with fraction: absolute cost limit
fraction = 0.05  # (0, ) limit relative to the baseline's cost
bits = [32, 8]  # {2, 4, 8, 32} bit widths, 32 = not quantized
width = 8  # {8, 16} width
"""


@pytest.fixture(scope="module")
def limits() -> dict[str, Param]:
    return {p.name: p for p in parse_cell(LIMITS)}


def test_a_none_literal_with_a_range_is_an_optional_float(limits):
    budget = limits["budget"]
    assert (budget.type, budget.default, budget.optional) == ("float", None, True)
    assert (budget.low, budget.low_open, budget.high) == (0, True, None)
    assert budget.allowed == "a float > 0 or None (not with fraction)"
    assert check(budget, None) is None
    out = check(budget, 1000)  # an int is a fine number
    assert out == 1000.0 and type(out) is float
    (alone,) = parse_cell("budget = None  # (0, 10] limit")
    assert alone.optional and alone.excludes is None and alone.allowed == "a float in (0, 10] or None"
    for bad in (0, -1.5, 11, "1000", True, math.nan):
        with pytest.raises(ParameterError, match=r"budget must be a float in \(0, 10\] or None, got") as info:
            check(alone, bad)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"), [("none", None), ("null", None), ("1000", 1000), ("2.5e3", 2500.0)]
)
def test_optional_numbers_from_the_command_line(limits, text, expected):
    assert from_text(limits["budget"], text) == expected
    assert from_text(limits["fraction"], text) == expected


def test_int_choices_bound_an_int_and_each_element_of_a_list_of_int(limits):
    bits, width = limits["bits"], limits["width"]
    assert (bits.type, bits.item, bits.choices) == ("list", "int", ("2", "4", "8", "32"))
    assert bits.allowed == "a list of int, each one of {2, 4, 8, 32}"
    assert check(bits, [4, 32]) == [4, 32] and check(bits, 8) == [8]
    assert from_text(bits, "[8, 32]") == [8, 32]
    assert (width.type, width.allowed) == ("int", "an int, one of {8, 16}")
    assert check(width, 16) == 16
    for bad in ([16], [8, 3], ["8"], [8.0], [True]):
        with pytest.raises(ParameterError, match=r"bits must be a list of int, each one of \{2, 4, 8, 32\}"):
            check(bits, bad)
    with pytest.raises(ParameterError, match=r"width must be an int, one of \{8, 16\}, got 12"):
        check(width, 12)
    with pytest.raises(ParameterError, match=r"must be a list of int, each one of \{2, 4\}, got \[8\]"):
        parse_cell("bits = [8]  # {2, 4} bit widths")  # the default obeys its own rule


def test_an_exclusive_pair_is_symmetric_and_both_become_optional(limits):
    budget, fraction = limits["budget"], limits["fraction"]
    assert (budget.excludes, fraction.excludes) == ("fraction", "budget")
    assert fraction.optional and fraction.default == 0.05
    assert fraction.allowed == "a float > 0 or None (not with budget)"
    assert check(fraction, None) is None


def test_validate_an_exclusive_pair(limits):
    ps = list(limits.values())
    assert validate(ps, {})["fraction"] == 0.05
    out = validate(ps, {"budget": 1000})  # the one given wins over the other's default
    assert (out["budget"], out["fraction"]) == (1000.0, None)
    out = validate(ps, {"fraction": 0.3})
    assert (out["budget"], out["fraction"]) == (None, 0.3)
    out = validate(ps, {"fraction": None})  # no limit at all
    assert (out["budget"], out["fraction"]) == (None, None)
    assert validate(ps, {"budget": 5, "fraction": None})["budget"] == 5.0
    with pytest.raises(ParameterError) as info:
        validate(ps, {"budget": 1000, "fraction": 0.5})
    assert str(info.value) == "give budget or fraction, not both: got budget=1000 and fraction=0.5"
    with pytest.raises(
        ParameterError, match=r"budget must be a float > 0 or None \(not with fraction\), got 0"
    ):
        validate(ps, {"budget": 0})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("a = None  # (0, ) not with b: help", "a is `not with b`, which is not a parameter"),
        ("a = None  # (0, ) not with a: help", "a is `not with a`, which is not a parameter"),
        ("a = 1.0  # (0, ) not with b: help\nb = 2.0  # (0, ) help", "at most one may have a default"),
        (
            "a = None  # (0, ) not with b: help\nb = True  # help",
            "`not with` on b needs a number, str or path",
        ),
        (
            "a = None  # (0, ) not with b: h\nb = None  # (0, ) not with c: h\nc = None  # (0, ) h",
            "b is already `not with c`; pairs only",
        ),
        ("a = None  # {x, y} help", "only allowed for a `folder:`, `file:` or `path:` parameter or a number"),
        (
            "a = None  # not with b: help\nb = None  # (0, ) help",
            "only allowed for a `folder:`, `file:` or `path:`",
        ),
        ("a = 1  # {1, x} help", "{choices} on a need a str or list, not int"),
        ("a = [1]  # {1, x} help", "default must be"),
        ("a = None  # (0, ) not with b:  \nb = None  # (0, ) help", "a needs a `# help` comment"),
    ],
)
def test_malformed_optional_and_exclusive_declarations(source, message):
    with pytest.raises(ParameterError) as info:
        parse_cell(source)
    assert message in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- hardening (issue #11)


def test_a_wrong_type_is_a_type_error_and_a_parameter_error(params):
    for name, value in [("epochs", "3"), ("epochs", 3.0), ("latency", 1), ("dataset", 1), ("methods", [1])]:
        with pytest.raises(ParameterTypeError) as info:
            check(params[name], value)
        assert isinstance(info.value, TypeError) and isinstance(info.value, ParameterError)
    with pytest.raises(ParameterError) as info:  # a wrong value is not a TypeError
        check(params["epochs"], 0)
    assert not isinstance(info.value, TypeError)
    with pytest.raises(ParameterTypeError, match="parameters must be a dict of name: value, got"):
        validate(list(params.values()), [("epochs", 3)])


SHARED = """seed = 0  # [0, ] seed
split_seed = 0  # seed of the split, no range declared
label_seed = 5  # [5, 10] a narrower range stays
epochs = 3  # [1, 1000] more than the shared 200
lr = 0.1  # (0, 100] learning rate
batch_size = 8  # [1, 64] narrower than the shared 4096
bits = [32, 8]  # {2, 4, 8, 32} choices are left alone
"""


def test_shared_bounds_tighten_what_a_template_declares():
    ps = {p.name: p for p in parse_cell(SHARED)}
    assert ps["seed"].allowed == ps["split_seed"].allowed == "an int in [0, 4,294,967,295]"
    assert ps["label_seed"].allowed == "an int in [5, 10]"
    assert ps["epochs"].allowed == "an int in [1, 200]"  # _checks.BOUNDS["epochs"]
    assert ps["lr"].allowed == "a float in (0, 10]"
    assert ps["batch_size"].allowed == "an int in [1, 64]"
    assert check(ps["bits"], [32]) == [32]
    for name, value in [("seed", 2**32), ("split_seed", 1180591620717411303424), ("epochs", 201), ("lr", 11)]:
        with pytest.raises(ParameterError, match=f"{name} must be") as info:
            check(ps[name], value)
        assert "\n" not in str(info.value)


PATHS = """data = None  # folder, required if use is "yes": a folder of IDX files
config = None  # file: a configuration file
anything = None  # path: a file or a folder
use = "no"  # {yes, no} whether data is needed
"""


@pytest.fixture
def paths(tmp_path, monkeypatch) -> dict[str, Param]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir").mkdir()
    (tmp_path / "f.txt").write_text("x")
    return {p.name: p for p in parse_cell(PATHS)}


def test_path_kinds(paths, tmp_path):
    assert (paths["data"].kind, paths["config"].kind, paths["anything"].kind) == ("folder", "file", "path")
    assert paths["data"].allowed == 'an existing folder or None (required if use is "yes")'
    assert paths["config"].allowed == "an existing file or None"
    assert check(paths["data"], "dir") == str(tmp_path / "dir")
    assert check(paths["config"], "f.txt") == str(tmp_path / "f.txt")
    assert check(paths["anything"], "f.txt") == str(tmp_path / "f.txt")
    assert check(paths["anything"], "dir") == str(tmp_path / "dir")


@pytest.mark.parametrize(
    ("name", "value", "error", "message"),
    [
        (
            "data",
            "f.txt",
            ParameterError,
            'data must be an existing folder or None (required if use is "yes"), '
            "got 'f.txt' (a file, not a folder)",
        ),
        (
            "config",
            "dir",
            ParameterError,
            "config must be an existing file or None, got 'dir' (a folder, not a file)",
        ),
        ("data", "missing", ParameterError, "got 'missing' (not found)"),
        ("data", "", ParameterError, "got '' (an empty path)"),
        ("data", "x\x00y", ParameterError, "(a NUL byte in a path)"),
        ("data", "d" * 5000, ParameterError, "(over 4,096 characters)"),
        ("data", 3, ParameterTypeError, "data must be an existing folder or None"),
    ],
)
def test_paths_are_refused_by_kind_with_one_line(paths, name, value, error, message):
    with pytest.raises(error) as info:
        check(paths[name], value)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert len(str(info.value)) < 300


def test_a_folder_parameter_from_the_command_line(paths):
    assert from_text(paths["data"], "none") is None
    assert validate(list(paths.values()), {"use": "yes", "data": "dir"})["data"].endswith("dir")
    with pytest.raises(ParameterError, match=r"\(a file, not a folder\)"):
        validate(list(paths.values()), {"use": "yes", "data": from_text(paths["data"], "f.txt")})


# YAML 1.1's pitfalls, typed for the parameter: refused with one line, or read as written
PITFALLS = [
    (
        "latency",
        "yes",
        ParameterTypeError,
        "latency must be a bool, got 'yes' (yes/no/on/off are not booleans here",
    ),
    ("latency", "off", ParameterTypeError, "write true or false"),
    ("latency", "1", ParameterTypeError, "latency must be a bool, got 1"),
    ("epochs", "010", ParameterError, "epochs must be a decimal number without a leading zero, got '010'"),
    ("epochs", "0x1F", ParameterError, "epochs must be a decimal number, got '0x1F'; write 31"),
    ("epochs", "0o17", ParameterError, "write 15"),
    ("epochs", "1:30", ParameterTypeError, "epochs must be an int in [1, 200], got '1:30'"),
    ("epochs", "3.0", ParameterTypeError, "epochs must be an int in [1, 200], got 3.0"),
    ("epochs", "1e3", ParameterTypeError, "got 1000.0"),
    ("epochs", "[3]", ParameterTypeError, "got '[3]'"),
    ("lr", ".inf", ParameterError, "lr must be a float in (0, 1], got inf"),
    ("lr", ".nan", ParameterError, "got nan"),
    ("lr", "2024-01-01", ParameterTypeError, "got '2024-01-01'"),
    ("seed", "1180591620717411303424", ParameterError, "seed must be an int in [0, 4,294,967,295]"),
    ("methods", "[fp16, [int8]]", ParameterTypeError, "got a nested value ['int8']"),
    ("methods", "[fp16, {a: 1}]", ParameterTypeError, "got a nested value {'a': '1'}"),
    ("methods", "[&a fp16, *a]", ParameterError, "anchors and aliases are not allowed"),
    ("methods", "[!!str fp16]", ParameterError, "tags are not allowed"),
    ("methods", "[" + "fp16, " * 101 + "fp16]", ParameterError, "with at most 100 items, got 102 items"),
    ("name", "x" * 10_001, ParameterError, "name must be at most 10,000 characters, got 10,001"),
]


@pytest.mark.parametrize(
    ("name", "text", "error", "message"), PITFALLS, ids=[f"{n}={t[:20]}" for n, t, _, _ in PITFALLS]
)
def test_yaml_pitfalls_are_refused_with_one_line(params, name, text, error, message):
    with pytest.raises(error) as info:
        check(params[name], from_text(params[name], text))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert len(str(info.value)) < 400  # the value is shortened, never echoed whole


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("epochs", "1_0", 10),  # digit groups, as in Python
        ("epochs", " 7 ", 7),
        ("lr", "1e-3", 0.001),
        ("lr", "5E-1", 0.5),
        ("latency", "FALSE", False),
        ("name", "010", "010"),  # a str parameter keeps what was typed
        ("name", "yes", "yes"),
        ("dataset", "digits", "digits"),
        ("methods", "[fp16, 'weights:bits=4']", ["fp16", "weights:bits=4"]),
    ],
)
def test_yaml_values_read_as_written(params, name, text, expected):
    value = check(params[name], from_text(params[name], text))
    assert value == expected and type(value) is type(expected)


def test_from_yaml_reads_a_file_entry_as_from_text_reads_a_value(params):
    from mcviz._param_values import from_yaml
    from mcviz._yaml import Plain, load

    loaded = load("epochs: 7\nname: 010\nlr: '0.5'\nmethods: [fp16, 'fp16 + fp16']\nlatency: false\n", "f")
    values = {k: from_yaml(params[k], v) for k, v in loaded.items()}
    assert values == {
        "epochs": 7,
        "name": "010",
        "lr": "0.5",
        "methods": ["fp16", "fp16 + fp16"],
        "latency": False,
    }
    with pytest.raises(ParameterTypeError, match=r"lr must be a float in \(0, 1\], got '0.5'"):
        check(params["lr"], values["lr"])  # quoted: a str, as YAML means
    with pytest.raises(ParameterTypeError, match="epochs must be an int in \\[1, 200\\], got a list"):
        from_yaml(params["epochs"], [Plain("3")])
    with pytest.raises(ParameterTypeError, match="got a mapping"):
        from_yaml(params["methods"], {"a": Plain("1")})


def test_a_list_with_a_default_needs_an_item(params):
    with pytest.raises(
        ParameterError, match=r"methods must be a list of method specs .*, with at least one item, got \[\]"
    ):
        check(params["methods"], from_text(params["methods"], "[]"))
    assert check(params["tags"], []) == []  # its default is empty: nothing is needed
