"""Sweeps that run reports: the local pool and a Dask LocalCluster, a killed worker and a dead
kernel, resuming after Ctrl-C, two sweeps into one folder, and the compare template with its
summary on a small IDX data set. Most use a light template (no torch in its kernel) to stay cheap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from conftest_reports import run_cli, write_template

import mcviz as mcv
from mcviz import sweep_runner

HANG_GUARD_S = 600  # far above any normal run of these tests

# The light template logs every execution (its n and the kernel's thread setting) and can kill its
# worker or its kernel, or sleep, on the first attempt of a point (a marker file remembers it).
LIGHT_PARAMETERS = """n = 1  # [1, 100] the point
action = "none"  # {none, kill_worker_once, kill_kernel_once, kill_kernel, sleep_once} what the run does
state = ""  # folder of the execution log and the once-only markers"""
LIGHT_CELLS = [
    "import os, pathlib, signal, time\n"
    "folder = pathlib.Path(state)\n"
    "with open(folder / 'log', 'a') as f:\n"
    "    f.write(f\"{n} {os.environ.get('OMP_NUM_THREADS')}\\n\")\n"
    "first = not (folder / f'marker-{n}').exists()\n"
    "(folder / f'marker-{n}').touch()",
    "if action == 'kill_worker_once' and first:\n"
    "    os.kill(os.getppid(), signal.SIGKILL)\n"
    "    os._exit(1)\n"
    "if action == 'kill_kernel' or (action == 'kill_kernel_once' and first):\n"
    "    os._exit(1)\n"
    "if action == 'sleep_once' and first:\n"
    "    time.sleep(300)",
]


@pytest.fixture
def light(tmp_path) -> tuple[Path, Path]:
    """(the light template, its state folder)."""
    (tmp_path / "tpl").mkdir()
    (tmp_path / "state").mkdir()
    return write_template(
        tmp_path / "tpl", "light", parameters=LIGHT_PARAMETERS, cells=LIGHT_CELLS
    ), tmp_path / "state"


def _log(state: Path) -> Counter:
    lines = (state / "log").read_text().split() if (state / "log").exists() else []
    return Counter(int(n) for n in lines[::2])


def _threads(state: Path) -> set[str]:
    return set((state / "log").read_text().split()[1::2])


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "runs").iterdir() if p.name.startswith(".") or "FAILED" in p.name)


@pytest.mark.slow
def test_a_killed_worker_and_a_dead_kernel_are_retried_once_and_the_rest_completes(light, tmp_path):
    template, state = light
    points = [
        {"n": 1},
        {"n": 2, "action": "kill_worker_once"},
        {"n": 3, "action": "kill_kernel_once"},
        {"n": 4, "action": "kill_kernel"},
    ]
    fixed = {"state": str(state)}
    result = sweep_runner.run(template, fixed=fixed, points=points, out_dir=tmp_path / "sweep", workers=2,
                              summary=False)  # fmt: skip
    runs = {r["parameters"]["n"]: r for r in result.runs}
    assert [runs[n]["status"] for n in (1, 2, 3, 4)] == ["done", "done", "done", "failed"]
    assert [runs[n]["attempts"] for n in (1, 2, 3, 4)] == [1, 2, 2, 2]
    assert _log(state) == {1: 1, 2: 2, 3: 2, 4: 2}  # each lost run ran again once; nothing else did
    assert runs[4]["error"] == "DeadKernelError: the kernel died (crashed, killed or out of memory)"
    # the failure keeps its partial output; nothing half-written or stale is left beside the runs
    assert _leftovers(result.folder) == [Path(runs[4]["folder"]).name]
    for n in (1, 2, 3):
        assert (
            json.loads((result.folder / runs[n]["folder"] / "results.json").read_text())["parameters"]["n"]
            == n
        )
    table = pd.read_csv(result.folder / "results.csv")
    assert list(table["status"]) == ["done", "done", "done", "failed"] and table["error"].notna().sum() == 1
    assert str(result) == "4 runs: 3 ran, 0 reused, 1 failed"


@pytest.mark.slow
def test_a_sweep_on_a_dask_local_cluster_survives_a_killed_worker(light, tmp_path, capsys, monkeypatch):
    distributed = pytest.importorskip("distributed")
    template, state = light
    points = [{"n": 1}, {"n": 2, "action": "kill_worker_once"}, {"n": 3}, {"n": 4}]
    (tmp_path / "points.yaml").write_text(yaml.safe_dump(points))
    monkeypatch.chdir(tmp_path)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:  # fmt: skip
        code, out, err = run_cli(
            ["sweep", str(template), "-f", "points.yaml", "-p", "state", str(state), "--scheduler",
             cluster.scheduler_address, "--no-summary", "-o", "sweep"], capsys,
        )  # fmt: skip
    assert code == 0, err
    assert out.strip() == "sweep (4 runs: 4 ran, 0 reused, 0 failed)"
    assert _log(state) == {1: 1, 2: 2, 3: 1, 4: 1}
    assert _threads(state) == {"1"}  # every run single-threaded
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert results["backend"].startswith("Dask scheduler tcp://127.0.0.1:")
    assert [r["status"] for r in results["runs"]] == ["done"] * 4
    assert _leftovers(tmp_path / "sweep") == []


@pytest.mark.slow
def test_ctrl_c_stops_the_sweep_and_a_rerun_runs_only_the_missing_points(
    light, tmp_path, capsys, monkeypatch
):
    template, state = light
    points = [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4, "action": "sleep_once"}]
    (tmp_path / "points.yaml").write_text(yaml.safe_dump(points))
    argv = ["sweep", str(template), "-f", "points.yaml", "-p", "state", str(state), "--workers", "1",
            "--no-summary", "-o", "sweep"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "mcviz", *argv], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    t0 = time.monotonic()
    while _log(state)[4] == 0:  # the fourth point has started (the first three are done)
        assert proc.poll() is None and time.monotonic() - t0 < HANG_GUARD_S, proc.communicate()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal reaches the whole process group
    out, err = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("mcviz sweep: interrupted by Ctrl-C: 3 of 4 runs have results in "), err
    assert not (tmp_path / "sweep" / "results.json").exists()  # no results file claims a finished sweep
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert out.strip() == "sweep (4 runs: 1 ran, 3 reused, 0 failed)"
    assert _log(state) == {1: 1, 2: 1, 3: 1, 4: 2}  # only the interrupted point ran again
    assert _leftovers(tmp_path / "sweep") == []  # its -FAILED folder went when it succeeded


@pytest.mark.slow
def test_two_sweeps_into_one_folder_never_run_a_point_twice(light, tmp_path):
    template, state = light
    argv = [sys.executable, "-m", "mcviz", "sweep", str(template), "--grid", "n=1,2,3,4", "-p", "state",
            str(state), "--workers", "1", "--no-summary", "-q", "-o", str(tmp_path / "sweep")]  # fmt: skip
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=HANG_GUARD_S) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert _log(state) == {1: 1, 2: 1, 3: 1, 4: 1}
    said = [out.strip().rsplit("(", 1)[1] for out, _ in outs]  # "4 runs: 2 ran, 2 reused, 0 failed)"
    ran = [int(s.split(": ")[1].split(" ran")[0]) for s in said]
    assert sum(ran) == 4, said
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert [r["status"] for r in results["runs"]] == ["done"] * 4


@pytest.mark.slow
def test_compare_sweep_on_a_small_idx_set_with_its_summary(tmp_path, capsys, monkeypatch):
    root = mcv.synthetic.digits_idx(tmp_path / "idx", n_train=400, n_test=100)
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "compare", "--grid", "epochs=1,2", "--grid", "seed=0,1", "-p", "dataset", "idx",
            "-p", "root", str(root), "-p", "model", "mlp", "-p", "methods", "[fp16, \"weights:bits=4\"]",
            "-p", "latency", "false", "--workers", "2", "-o", "sweep"]  # fmt: skip
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert out.strip() == "sweep (4 runs: 4 ran, 0 reused, 0 failed)"
    folder = tmp_path / "sweep"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".locks",
        "results.csv",
        "results.json",
        "runs",
        "summary",
    ]
    table = pd.read_csv(folder / "results.csv")
    assert len(table) == 4 * 3  # runs x (baseline, fp16, int4)
    assert list(table["label"][:3]) == ["baseline", "fp16", "weights:bits=4"]
    pairs = zip(table["param_epochs"], table["param_seed"], strict=True)
    assert sorted(set(pairs)) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert (table["param_model"] == "mlp").all() and (table["param_dataset"] == "idx").all()
    # each run folder is an ordinary report folder; the sweep's rows are its rows
    runs = json.loads((folder / "results.json").read_text())["runs"]
    first = json.loads((folder / runs[0]["folder"] / "results.json").read_text())
    assert first["parameters"]["epochs"] == 1 and first["rows"][0]["accuracy"] == table["accuracy"][0]
    # the summary report: the front across runs, the effect of epochs with the seed spread, no failure
    assert sorted(p.name for p in (folder / "summary").iterdir()) == [
        "index.html", "results.csv", "results.json", "sweep.ipynb"
    ]  # fmt: skip
    nb = nbformat.read(folder / "summary" / "sweep.ipynb", as_version=4)
    text = "".join(
        "".join(o.get("data", {}).get("text/markdown", "")) for c in nb.cells for o in c.get("outputs", [])
    )
    assert text.startswith(
        "4 runs of the compare template over epochs (2 values) x seed (2 values): 4 finished"
    )
    assert "No run failed." in text
    data = sweep_runner.load(folder)
    effect = sweep_runner.effects(data, "epochs")
    assert (effect["seeds"] == 2).all() and list(effect["epochs"].unique()) == [1, 2]
    html = (folder / "summary" / "index.html").read_text()
    assert "accuracy against epochs" in html and "the Pareto front" in html
    # a rerun reuses every point and rewrites the results
    code, out, err = run_cli([*argv, "--no-summary"], capsys)
    assert code == 0 and out.strip() == "sweep (4 runs: 0 ran, 4 reused, 0 failed)", err
    assert pd.read_csv(folder / "results.csv").equals(table)
