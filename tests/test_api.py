"""Unit tests of the top-level API: names, the version, global RNG state, import weight and
the one-way import direction."""

from __future__ import annotations

import ast
import importlib.metadata
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mcviz as mcv

PACKAGE = Path(mcv.__file__).parent
LOW = ("data", "models", "train", "measure", "registry", "quantize", "_seed")
HIGH = ("plots", "widgets", "reports", "cli", "grading", "_html", "_params")


@pytest.mark.parametrize(
    "name",
    [
        "seed",
        "compress",
        "check",
        "data",
        "models",
        "train",
        "measure",
        "registry",
        "quantize",
        "plots",
        "grading",
    ],
)
def test_exposes(name):
    assert hasattr(mcv, name)


def test_compress_is_the_registry_function():
    assert mcv.compress is mcv.registry.compress


def test_check_is_the_grading_function():
    assert mcv.check is mcv.grading.check


def test_version_matches_package_metadata():
    assert mcv.__version__ == importlib.metadata.version("mcviz")


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        mcv.nonsense  # noqa: B018


# ---------------------------------------------------------------- global random state


def rng_state():
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def assert_rng_unchanged(before):
    after = rng_state()
    assert torch.equal(before[0], after[0]), "torch global RNG changed"
    assert np.array_equal(before[1], after[1]), "numpy global RNG changed"
    assert before[2] == after[2], "random global RNG changed"


def test_seed_sets_every_global_generator():
    mcv.seed(123)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    mcv.seed(123)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


@pytest.mark.parametrize(
    ("bad", "error"),
    [(-1, ValueError), (2**32, ValueError), (1180591620717411303424, ValueError), (1.5, TypeError),
     ("1", TypeError), (None, TypeError), (True, TypeError)],
)  # fmt: skip
def test_seed_rejects_bad_values(bad, error):
    with pytest.raises(error, match=f"seed must be an int in \\[0, 4,294,967,295\\], got {bad!r}"):
        mcv.seed(bad)


def test_load_leaves_global_rng_alone():
    before = rng_state()
    mcv.data.load("digits", split_seed=4)
    assert_rng_unchanged(before)


def test_from_arrays_leaves_global_rng_alone():
    X = np.arange(300, dtype=np.float32).reshape(30, 10)
    before = rng_state()
    mcv.data.from_arrays(X, np.arange(30) % 3, split_seed=2)
    assert_rng_unchanged(before)


def test_seeded_loader_leaves_global_rng_alone(digits):
    before = rng_state()
    list(digits.loader("val", shuffle=True, seed=1))
    assert_rng_unchanged(before)


def test_build_leaves_global_rng_alone():
    before = rng_state()
    mcv.models.build("seed_cnn", input_shape=(1, 8, 8), seed=1)
    assert_rng_unchanged(before)


def test_fit_leaves_global_rng_alone(digits):
    model = mcv.models.build("mlp", input_shape=digits.input_shape, hidden=(8,), seed=1)
    before = rng_state()
    mcv.train.fit(model, digits, epochs=1, progress=False)
    assert_rng_unchanged(before)


def test_measure_leaves_global_rng_alone(digits_mlp, digits):
    before = rng_state()
    mcv.measure.model(digits_mlp, latency=True, batch_size=4, repeats=3, warmup=0)
    mcv.measure.model(digits_mlp, digits, latency=True, batch_size=4, repeats=3, warmup=0)
    assert_rng_unchanged(before)


def test_compress_leaves_global_rng_alone(digits_mlp):
    before = rng_state()
    mcv.compress(digits_mlp, mcv.quantize.FP16Config())
    assert_rng_unchanged(before)


# ---------------------------------------------------------------- imports


def test_import_is_light():
    code = (
        "import sys, mcviz; heavy = ('papermill', 'nbconvert', 'nbclient', 'ipywidgets', "
        "'anywidget', 'mcviz.reports', 'mcviz.widgets', 'mcviz.cli'); "
        "print(' '.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_reading_a_notebook_compiles_no_grammars():
    # every `mcviz report`, papermill, nbval and nbgrader process imports nbformat, which imports
    # jsonschema; from jsonschema 4.24 that imports rfc3987-syntax, which builds 38 lark parsers
    # (about 2 s per process; requirements.txt pins jsonschema 4.23.0 for this)
    code = (
        "import sys, nbformat, mcviz.cli; "
        "print(' '.join(m for m in ('lark', 'rfc3987_syntax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def imported_mcviz_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "mcviz":
                names |= {f"mcviz.{a.name}" for a in node.names}
    return {n.split(".")[1] for n in names if n.startswith("mcviz.")}


def module_files(module: str) -> list[Path]:
    """The file of a module, or every file of a package (``quantize`` is one)."""
    package = PACKAGE / module
    return sorted(package.glob("*.py")) if package.is_dir() else [PACKAGE / f"{module}.py"]


@pytest.mark.parametrize("module", LOW)
def test_low_modules_import_nothing_high(module):
    files = module_files(module)
    assert files and all(f.exists() for f in files)
    for path in files:
        assert imported_mcviz_modules(path) & set(HIGH) == set(), path.name


def test_plots_import_no_reports_or_widgets():
    assert imported_mcviz_modules(PACKAGE / "plots.py") & {"reports", "cli", "widgets"} == set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Returns {module: the mcviz modules it imports}, over every file of the package, counting
    imports inside functions too (a deferred import still makes a cycle: it works only by order)."""
    graph: dict[str, set[str]] = {}
    modules = [_module_name(p) for p in PACKAGE.rglob("*.py")]
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = name if parts[-1] == "__init__" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from . import x / from .y import z
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # "from mcviz import data" imports the module mcviz.data (its package is
                # already loading); "from mcviz.train import fit" imports mcviz.train
                subs = {f"{base}.{a.name}" for a in node.names}
                edges |= subs if subs & set(modules) else {base}
        graph[name] = edges
    known = set(graph)
    return {m: {e for e in edges if e in known and e != m} for m, edges in graph.items()}


def test_import_graph_has_no_cycle():
    graph = import_graph()
    assert {"mcviz.widgets", "mcviz._explorer", "mcviz.grading", "mcviz.grading._core"} <= set(graph)
    state: dict[str, str] = {}

    def visit(module, path):
        state[module] = "open"
        for nxt in sorted(graph[module]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [module, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_cycle_check_finds_a_cycle(monkeypatch):
    real = import_graph()
    cyclic = {**real, "mcviz.data": real["mcviz.data"] | {"mcviz.reports"}, "mcviz.reports": {"mcviz.data"}}
    monkeypatch.setattr(sys.modules[__name__], "import_graph", lambda: cyclic)
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_import_graph_has_no_cycle()
