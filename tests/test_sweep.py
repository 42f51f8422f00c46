"""mcviz sweep without running a report: the plan (grid, names, keys, validation), the command's bad
input (exit 2, one line, nothing written), the summary functions on a results.json, and the
synthetic IDX data set. The sweeps that run reports are in tests/test_sweep_runs.py."""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest_reports import listing, run_cli, write_template

import mcviz as mcv
from mcviz import sweep_runner
from mcviz._params import ParameterError


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_template(_folder(tmp_path / "templates"))


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


# ---------------------------------------------------------------- the plan


def test_plan_is_the_product_of_the_grid_in_order(tiny):
    plan = sweep_runner.plan(tiny, {"n": [1, 2, 3], "name": ["a", "b"]}, {"items": ["x", "y"]})
    assert [(p.values["n"], p.values["name"]) for p in plan.points] == [
        (1, "a"), (1, "b"), (2, "a"), (2, "b"), (3, "a"), (3, "b")
    ]  # fmt: skip
    assert all(p.values["items"] == ["x", "y"] and p.values["fail"] is False for p in plan.points)
    assert plan.varying == ("n", "name")
    first = plan.points[0]
    assert first.name == f"tiny-n=1_name=a-{first.key[:8]}"
    assert len({p.key for p in plan.points}) == len({p.name for p in plan.points}) == 6
    # the key depends on every value and on the template's content, nothing else
    again = sweep_runner.plan(tiny, {"name": ["a"], "n": [1]}, {"items": ["x", "y"]})
    assert again.points[0].key == first.key
    other = sweep_runner.plan(tiny, {"n": [1], "name": ["a"]}, {"items": ["x"]})
    assert other.points[0].key != first.key


def test_the_key_changes_with_the_template_content(tmp_path):
    a = write_template(_folder(tmp_path / "a"))
    b = write_template(_folder(tmp_path / "b"), cells=["1 + 1"])
    ka = sweep_runner.plan(a, {"n": [1, 2]}).points[0].key
    kb = sweep_runner.plan(b, {"n": [1, 2]}).points[0].key
    assert ka != kb


def test_points_are_combined_with_the_grid(tiny):
    plan = sweep_runner.plan(tiny, {"n": [1, 2]}, points=[{"name": "ann"}, {"name": "bob", "fail": True}])
    assert [(p.values["n"], p.values["name"], p.values["fail"]) for p in plan.points] == [
        (1, "ann", False), (1, "bob", True), (2, "ann", False), (2, "bob", True)
    ]  # fmt: skip
    assert plan.varying == ("n", "name", "fail")


def test_names_are_safe_folder_names(tiny):
    plan = sweep_runner.plan(tiny, {"name": ["a/b c", "x" * 200]})
    for p in plan.points:
        assert "/" not in p.name and " " not in p.name and len(p.name) < 110


def test_content_digest_ignores_injected_parameters_and_outputs(tiny):
    import nbformat

    nb = nbformat.read(tiny, as_version=4)
    digest = sweep_runner.content_digest(nb)
    cell = nbformat.v4.new_code_cell("n = 5")
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(2, cell)
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", text="hello")]
    assert sweep_runner.content_digest(nb) == digest
    nb.cells[3].source += "\n# changed"
    assert sweep_runner.content_digest(nb) != digest


PLAN_ERRORS = [
    ({}, {}, None, "nothing to sweep: give --grid NAME=V1,V2,..."),
    ({"n": []}, {}, None, "grid parameter n has no values"),
    ({"nope": [1, 2]}, {}, None, "unknown parameter 'nope' for tiny"),
    ({"n": [1, 2]}, {"nme": "x"}, None, "unknown parameter 'nme' for tiny (did you mean name?)"),
    ({"n": [1, 20]}, {}, None, "grid point 2 of 2 (n=20): n must be an int in [1, 10], got 20"),
    ({"n": [1, 2]}, {"n": 3}, None, "n is both fixed (3) and varied by the sweep: give it once"),
    ({"n": [1, 1]}, {}, None, "grid points 1 and 2 are the same run (n=1)"),
    ({"n": [1]}, {}, [{"n": 2}], "n is both gridded and set by a point"),
    ({}, {}, [{"name": 3}], "grid point 1 of 1 (name=3): name must be a str, got 3"),
]


@pytest.mark.parametrize(
    ("grid", "fixed", "points", "message"), PLAN_ERRORS, ids=[m for *_, m in PLAN_ERRORS]
)
def test_plan_refuses_bad_sweeps_in_one_line(tiny, grid, fixed, points, message):
    with pytest.raises(ParameterError) as info:
        sweep_runner.plan(tiny, grid, fixed, points)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_parse_grid_types_values_like_dash_p(tiny):
    grid = sweep_runner.parse_grid(tiny, ["n=1, 2", "name=001,'a,b'", "items=[a, b],c", "n=3"])
    assert grid == {"n": [1, 2, 3], "name": ["001", "a,b"], "items": [["a", "b"], ["c"]]}
    with pytest.raises(ParameterError, match="must be NAME=V1,V2"):
        sweep_runner.parse_grid(tiny, ["n"])
    with pytest.raises(ParameterError, match="has no values"):
        sweep_runner.parse_grid(tiny, ["n="])
    with pytest.raises(ParameterError, match="has an empty value"):
        sweep_runner.parse_grid(tiny, ["n=1,,2"])


def test_read_points_reads_a_mapping_or_a_list(tiny, tmp_path):
    (tmp_path / "fixed.yaml").write_text("n: 3\nname: x\n")
    assert sweep_runner.read_points(tiny, tmp_path / "fixed.yaml") == {"n": 3, "name": "x"}
    (tmp_path / "students.yaml").write_text("- {name: ann, n: 2}\n- {name: bob}\n")
    assert sweep_runner.read_points(tiny, tmp_path / "students.yaml") == [
        {"name": "ann", "n": 2},
        {"name": "bob"},
    ]
    (tmp_path / "bad.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match="must hold a mapping NAME: VALUE, or a list of them"):
        sweep_runner.read_points(tiny, tmp_path / "bad.yaml")
    with pytest.raises(ValueError, match="not found"):
        sweep_runner.read_points(tiny, tmp_path / "missing.yaml")
    (tmp_path / "strict.yaml").write_text("- {n: 010}\n")  # YAML 1.1 would read octal 8
    with pytest.raises(ValueError, match="without a leading zero"):
        sweep_runner.read_points(tiny, tmp_path / "strict.yaml")


# ---------------------------------------------------------------- bad input: exit 2, one line, nothing run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BAD = [
    ([], "nothing to sweep: give --grid NAME=V1,V2,... (a parameter of tiny)"),
    (["--grid", "n="], "--grid 'n=' has no values"),
    (["--grid", "nope=1,2"], "unknown parameter 'nope' for tiny; allowed: n, name, items, fail, die"),
    (["--grid", "n=1,2", "-p", "nope", "1"], "unknown parameter 'nope' for tiny"),
    (["--grid", "n=1,2,x"], "grid point 3 of 3 (n=x): n must be an int in [1, 10], got 'x'"),
    (
        ["--grid", "n=1", "--grid", "name=a,b", "--grid", "fail=false,maybe"],
        "fail must be a bool, got 'maybe'",
    ),
    (["--grid", "n=1,2", "-p", "n", "3"], "n is both fixed (3) and varied by the sweep: give it once"),
    (["--grid", "n=1,2", "--workers", "0"], "workers must be an int >= 1, got 0"),
    (["--grid", "n=1,2", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "give workers"),
    (["--grid", "n=1,2", "--timeout", "0"], "--timeout (seconds) must be a finite number in (0, 86400]"),
    (["--grid", "n=1,2", "-o", "a", "-o", "b"], "argument -o/--output: given twice; give it once"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) or "no grid" for a, _ in BAD])
def test_bad_input_exits_2_with_one_line_before_anything_runs(tiny, cwd, capsys, args, message):
    code, out, err = run_cli(["sweep", str(tiny), *args, "-o", "out"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("mcviz sweep: error: ") and message in err
    assert listing(cwd) == []


def test_an_unreachable_scheduler_exits_2_within_seconds(tiny, cwd, capsys):
    import time

    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.perf_counter()
    code, out, err = run_cli(
        ["sweep", str(tiny), "--grid", "n=1,2", "--scheduler", address, "-o", "out"], capsys
    )
    assert time.perf_counter() - t0 < 120  # a hang guard: the connection gives up after 5 s
    assert code == 2 and out == ""
    assert err.startswith(f"mcviz sweep: error: cannot reach the Dask scheduler at '{address}' within 5 s")
    assert len(err.strip().splitlines()) == 1, err
    assert listing(cwd) == []


def test_a_points_file_that_is_not_mappings_exits_2(tiny, cwd, capsys):
    (cwd / "points.yaml").write_text("[1, 2]\n")
    code, _, err = run_cli(["sweep", str(tiny), "-f", "points.yaml", "-o", "out"], capsys)
    assert code == 2 and "must hold a mapping NAME: VALUE, or a list of them" in err
    assert listing(cwd) == ["points.yaml"]


def test_unknown_template_exits_2(cwd, capsys):
    code, _, err = run_cli(["sweep", "nope", "--grid", "seed=0,1"], capsys)
    assert code == 2 and "unknown template 'nope'" in err
    assert listing(cwd) == []


# ---------------------------------------------------------------- the summary functions


def _results(folder: Path) -> Path:
    """A results.json as `run` writes it: model x seed, one run failed."""
    runs, rows = [], []
    accuracy = {("mlp", 0): 0.90, ("mlp", 1): 0.92, ("cnn", 0): 0.95, ("cnn", 1): 0.97}
    for model in ("mlp", "cnn", "big"):
        for seed in (0, 1):
            name = f"t-model={model}_seed={seed}-00000000"
            failed = model == "big"
            runs.append({
                "run": name, "status": "failed" if failed else "done", "reused": seed == 1,
                "attempts": 2 if failed else 1, "folder": f"runs/{name}" + ("-FAILED" if failed else ""),
                "error": "ValueError: too big" if failed else None, "where": "cell 4" if failed else None,
                "parameters": {"model": model, "seed": seed, "epochs": 1}, "duration_s": 3.0,
            })  # fmt: skip
            base = {"run": name, "status": runs[-1]["status"], "param_model": model, "param_seed": seed}
            if failed:
                rows.append({**base, "error": "ValueError: too big"})
                continue
            acc = accuracy[model, seed]
            rows.append(
                {**base, "label": "baseline", "accuracy": acc, "size_bytes": 4000 if model == "cnn" else 2000}
            )
            rows.append({**base, "label": "fp16", "accuracy": acc - 0.01, "size_bytes": 1000})
    folder.mkdir(parents=True, exist_ok=True)
    results = {"template": "t", "varying": ["model", "seed"], "runs": runs, "rows": rows}
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_load_reads_a_sweep_relative_to_the_report_folder(tmp_path, monkeypatch):
    sweep = _results(tmp_path / "sweep")
    (sweep / "summary").mkdir()
    monkeypatch.chdir(sweep / "summary")
    monkeypatch.delenv(mcv.reports.RESULTS_ENV, raising=False)
    data = sweep_runner.load("..")  # nbval and Jupyter: relative to the notebook's folder
    assert data.folder == sweep and data.template == "t"
    assert list(data.rows["run"].unique()) == [r["run"] for r in data.results["runs"][:4]]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(mcv.reports.RESULTS_ENV, str(sweep / ".summary.x.partial"))
    assert sweep_runner.load("..").folder == sweep  # inside a run: relative to the report's own folder
    with pytest.raises(FileNotFoundError, match="no sweep results in .*: run `mcviz sweep` first"):
        sweep_runner.load(tmp_path / "elsewhere")


def test_describe_configurations_failures(tmp_path):
    data = sweep_runner.load(_results(tmp_path / "sweep"))
    assert data.seeds == ["seed"] and data.effect_parameters == ["model"]
    assert sweep_runner.describe(data).startswith(
        "6 runs of the t template over model (3 values) x seed (2 values): 4 finished (3 reused from an "
        "earlier sweep into the same folder), 2 failed; 8 configurations measured. seed is a replicate"
    )
    table = sweep_runner.configurations(data)
    assert table["label"].iloc[0] == "baseline @ model=mlp, seed=0"
    assert list(table["configuration"][:2]) == ["baseline", "fp16"]
    front = mcv.tradeoff.pareto(table)
    assert list(front["label"]) == ["fp16 @ model=cnn, seed=1", "baseline @ model=cnn, seed=1"]
    failed = sweep_runner.failures(data)
    assert list(failed.columns) == [
        "run",
        "param_model",
        "param_seed",
        "error",
        "where",
        "folder",
        "attempts",
    ]
    assert list(failed["param_model"]) == ["big", "big"] and set(failed["error"]) == {"ValueError: too big"}
    assert sweep_runner.failures(sweep_runner.load(_results(tmp_path / "s2"))).shape[0] == 2


def test_effects_average_over_seeds_with_the_pooled_seed_spread(tmp_path):
    data = sweep_runner.load(_results(tmp_path / "sweep"))
    effect = sweep_runner.effects(data, "model")
    assert list(effect.columns) == ["configuration", "model", "mean", "seed_std", "seeds", "settings"]
    base = effect[effect["configuration"] == "baseline"].set_index("model")
    assert base.loc["mlp", "mean"] == pytest.approx(0.91) and base.loc["cnn", "mean"] == pytest.approx(0.96)
    assert base.loc["mlp", "seed_std"] == pytest.approx(np.std([0.90, 0.92], ddof=1))
    assert (base["seeds"] == 2).all() and (base["settings"] == 1).all()
    fig = sweep_runner.effect_figure(effect, "model")
    assert [t.name for t in fig.data] == ["baseline", "fp16"]
    assert list(fig.data[0].x) == ["cnn", "mlp"] and fig.data[0].error_y.array[0] == pytest.approx(
        0.0141421, abs=1e-6
    )


def test_effects_with_one_seed_have_no_spread(tmp_path):
    data = sweep_runner.load(_results(tmp_path / "sweep"))
    one = sweep_runner.SweepData(data.folder, data.template, ("model",), data.runs,
                                 data.rows[data.rows["param_seed"] == 0], data.results)  # fmt: skip
    effect = sweep_runner.effects(one, "model")
    assert effect["seed_std"].map(math.isnan).all() and (effect["seeds"] == 1).all()
    with pytest.raises(ValueError, match="effects needs column 'param_epochs'"):
        sweep_runner.effects(one, "epochs")


# ---------------------------------------------------------------- the synthetic IDX set


def test_write_idx_round_trips_through_read_idx(tmp_path):
    for array in (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), np.array([1.5, -2.0], dtype=np.float32),
                  np.array([[7, -9]], dtype=np.int32)):  # fmt: skip
        path = mcv.synthetic.write_idx(tmp_path / f"a-{array.dtype}", array)
        back = mcv.data.read_idx(path)
        assert back.dtype.kind == array.dtype.kind and np.array_equal(back, array)
    with pytest.raises(ValueError, match="IDX files hold .*; got an array of dtype int64"):
        mcv.synthetic.write_idx(tmp_path / "b", np.arange(3))
    with pytest.raises(ValueError, match="1 to 255 dimensions"):
        mcv.synthetic.write_idx(tmp_path / "c", np.uint8(3))


def test_digits_idx_writes_a_deterministic_mnist_format_set(tmp_path):
    root = mcv.synthetic.digits_idx(tmp_path / "a", n_train=300, n_test=100, seed=1)
    data = mcv.data.load("idx", root=root)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert (len(data.train), len(data.val), len(data.test)) == (270, 30, 100)
    again = mcv.synthetic.digits_idx(tmp_path / "b", n_train=300, n_test=100, seed=1)
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert (root / name).read_bytes() == (again / name).read_bytes()
    other = mcv.synthetic.digits_idx(tmp_path / "c", n_train=300, n_test=100, seed=2)
    assert (root / "train-images-idx3-ubyte").read_bytes() != (other / "train-images-idx3-ubyte").read_bytes()
    images = mcv.data.read_idx(root / "train-images-idx3-ubyte")
    assert images.dtype == np.uint8 and images.max() > 200 and (images == 0).mean() > 0.3
    with pytest.raises(ValueError, match="n_train must be an int >= 10"):
        mcv.synthetic.digits_idx(tmp_path / "d", n_train=5)
    assert pd.Series(mcv.data.read_idx(root / "train-labels-idx1-ubyte")).nunique() == 10


# ---------------------------------------------------------------- the committed example

EXAMPLE = Path(__file__).resolve().parents[1] / "reports" / "examples" / "sweep"


def test_example_sweep_is_complete_and_its_summary_matches_its_results():
    assert sorted(p.name for p in EXAMPLE.iterdir()) == ["results.csv", "results.json", "summary"]
    assert sorted(p.name for p in (EXAMPLE / "summary").iterdir()) == [
        "index.html",
        "results.csv",
        "results.json",
        "sweep.ipynb",
    ]
    data = sweep_runner.load(EXAMPLE)
    assert data.template == "compare" and data.varying == ("model", "seed")
    assert len(data.runs) == 9 and list(data.runs["status"]).count("failed") == 3
    assert set(sweep_runner.failures(data)["param_model"]) == {"lenet5"}  # 8x8 digits are too small for it
    table = pd.read_csv(EXAMPLE / "results.csv")
    assert len(table) == 6 * 4 + 3  # 6 runs x (baseline + 3 methods), one row per failed run
    summary = json.loads((EXAMPLE / "summary" / "results.json").read_text())
    assert summary["template"] == "sweep" and summary["parameters"]["sweep"] == ".."  # no absolute path
    import nbformat

    nb = nbformat.read(EXAMPLE / "summary" / "sweep.ipynb", as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    text = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert sweep_runner.describe(data) in text  # the sentence was computed from these results
    front = mcv.tradeoff.pareto(sweep_runner.configurations(data))
    assert list(pd.DataFrame(summary["rows"])["label"]) == list(front["label"])
