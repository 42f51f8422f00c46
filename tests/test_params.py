"""The parameters-cell grammar, its parser, and validation of values (mcviz._params)."""

from __future__ import annotations

import ast
import math

import pytest

from mcviz import _params
from mcviz._params import Param, ParameterError, check, from_text, parse_cell, validate

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
    assert params["seed"].high is None
    assert params["methods"].spec and params["methods"].default == ["fp16"]
    assert params["name"].help == "a free-form label" and params["name"].choices is None


def test_allowed_phrases(params):
    assert params["epochs"].allowed == "an int in [1, 200]"
    assert params["lr"].allowed == "a float in (0, 1]"
    assert params["seed"].allowed == "an int >= 0"
    assert params["dataset"].allowed == "a str, one of {digits, mnist5k, idx}"
    assert params["tags"].allowed == "a list of str, each one of {a, b}"
    assert params["root"].allowed.startswith("an existing path or None")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = foo()  # help", "plain literal"),
        ("x = 1", "needs a `# help` comment"),
        ("x = 1  # [1, 5]", "needs a `# help` comment"),
        ("x = None  # help", "only allowed for a `path:`"),
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
        ("seed", -1, "seed must be an int >= 0, got -1"),
        ("latency", "yes", "latency must be a bool, got 'yes'"),
        ("latency", 1, "got 1"),
        ("dataset", "cifar", "dataset must be a str, one of {digits, mnist5k, idx}, got 'cifar'"),
        ("dataset", 1, "got 1"),
        ("name", 1, "name must be a str, got 1"),
        ("tags", ["a", "c"], "each one of {a, b}"),
        ("tags", [1], "got [1]"),
        ("root", 3, "root must be an existing path or None"),
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
        ("epochs", "001", 1),
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

    from mcviz.reports import _inject

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


def test_module_is_documented():
    assert "constraint" in _params.__doc__
