"""Sweeps at scale: the goals of the sweep issue, measured on this machine.

1. An 8-point sweep of the compare report (digits, seed_cnn, 3 epochs; grid seed=0..7), on 1
   worker and on 2 workers, measured back to back in interleaved rounds, each sweep from an empty
   baseline cache so that every run trains: the wall-time ratio 1 worker / 2 workers.
2. The overhead of a run on a warm worker: a light template that imports what a report imports
   (pandas, plotly, mcviz), records one row and exports, swept over 6 points on 1 worker; the
   median wall time of runs 2-6 (kernel start + imports + papermill + export).
3. The compare report (default parameters: seed_cnn, 3 epochs, fp16, static int8, kd, latency)
   on synthetic MNIST-format IDX sets made from the bundled digits (``mcv.synthetic.digits_idx``),
   of 15,000, 30,000 and 60,000 training images (and a sixth as many test images), each from an
   empty cache: wall time and the peak memory of the largest process (the report's kernel), so
   the README can say how the cost grows with the number of images.

Prints the load average and a markdown table (goal, measured, met?). Takes about 20 minutes on
an idle 2-core machine; ``--parts overhead idx`` runs only those parts, ``--sizes 60000`` only the
full set. Wall times depend on the machine's load: part 2 also gives the CPU time per run.

    .venv/bin/python benchmarks/sweep.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

import mcviz as mcv
from mcviz import sweep_runner

PARTS = ("speedup", "overhead", "idx")
ROUNDS = 2
POINTS = 8
COMPARE_8 = {"dataset": "digits", "model": "seed_cnn", "epochs": 3, "methods": ["fp16"], "latency": False}
LIGHT_CELLS = [
    "import pandas as pd\nimport plotly.graph_objects as go\nimport mcviz as mcv",
    "mcv.reports.record(pd.DataFrame({'label': ['x'], 'n': [n]}))",
]


def speedup(tmp: Path) -> tuple[float, float]:
    """Return (median wall s on 1 worker, on 2 workers) of the 8-point compare sweep."""
    times: dict[int, list[float]] = {1: [], 2: []}
    grid = {"seed": list(range(POINTS))}
    for r in range(ROUNDS):
        for workers in (1, 2):
            os.environ["MCVIZ_CACHE_DIR"] = str(tmp / f"cache-{r}-{workers}")  # every run trains
            t0 = time.perf_counter()
            result = sweep_runner.run("compare", grid, COMPARE_8, out_dir=tmp / f"s-{r}-{workers}",
                                      workers=workers, summary=False)  # fmt: skip
            times[workers].append(time.perf_counter() - t0)
            for run in result.failed:  # a failed run would make its sweep look faster: say so
                print(f"round {r}, {workers} workers: {run['run']} failed: {run['error']}", file=sys.stderr)
    return statistics.median(times[1]), statistics.median(times[2])


def overhead(tmp: Path) -> tuple[float, float, float]:
    """Return (the first run's wall s on a cold worker, median wall s of the warm runs, CPU s per
    run: worker and kernel, the worker's start-up included) of a light template."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("n = 1  # [1, 100] the point")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# light"), params]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in LIGHT_CELLS]
    nbformat.write(nb, tmp / "light.ipynb")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = sweep_runner.run(tmp / "light.ipynb", {"n": [1, 2, 3, 4, 5, 6]}, out_dir=tmp / "light",
                              workers=1, summary=False)  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the worker (and its kernels) was waited for
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / len(result.runs)
    durations = [json.loads((tmp / "light" / r["folder"] / "results.json").read_text())["duration_s"]
                 for r in result.runs]  # fmt: skip
    return durations[0], statistics.median(durations[1:]), cpu


def compare_on_idx(tmp: Path, n_train: int) -> tuple[float, float]:
    """Return (wall s, peak MB of the largest process) of the default compare report on n_train images."""
    root = mcv.synthetic.digits_idx(tmp / f"idx-{n_train}", n_train=n_train, n_test=max(10, n_train // 6))
    env = {**os.environ, "MCVIZ_CACHE_DIR": str(tmp / f"cache-idx-{n_train}")}
    cmd = [sys.executable, "-m", "mcviz", "report", "compare", "-q", "-p", "dataset", "idx", "-p", "root",
           str(root), "-o", str(tmp / f"report-{n_train}")]  # fmt: skip
    # a fresh parent per report, whose RUSAGE_CHILDREN peak is this report's largest process (its kernel)
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")  # fmt: skip
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe, *cmd], env=env, check=True, capture_output=True,
                         text=True)  # fmt: skip
    wall = time.perf_counter() - t0
    return wall, int(out.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure")
    parser.add_argument("--sizes", type=int, nargs="+", default=[15_000, 30_000, 60_000])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mcviz-bench-sweep-") as tmp:
        tmp = Path(tmp)
        if "speedup" in args.parts:
            one, two = speedup(tmp)
            rows.append((f"{POINTS}-point compare sweep, 2 workers vs 1 (wall-time ratio)", ">= 1.7x",
                         f"{one / two:.2f}x ({one:.0f} s / {two:.0f} s)", one / two >= 1.7))  # fmt: skip
        if "overhead" in args.parts:
            cold, warm, cpu = overhead(tmp)
            what = "overhead per run on a warm worker (kernel start + imports + papermill + export)"
            measured = f"{warm:.1f} s wall, {cpu:.1f} s CPU (first, cold worker: {cold:.1f} s wall)"
            rows.append((what, "<= 5 s", measured, warm <= 5))
        if "idx" in args.parts:
            for n in sorted(args.sizes):
                wall, peak = compare_on_idx(tmp, n)
                goal = "<= 10 min; peak memory" if n == 60_000 else "(how cost grows)"
                met = wall <= 600 if n == 60_000 else "-"
                rows.append((f"compare report on {n:,} IDX images (+ {max(10, n // 6):,} test)", goal,
                             f"{wall / 60:.1f} min, peak {peak:,.0f} MB", met))  # fmt: skip
    load = os.getloadavg()
    print(f"mcviz {mcv.__version__}, {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f}; runs single-threaded (OMP_NUM_THREADS=1)")  # fmt: skip
    print("| measure | goal | measured | met? |\n|---|---|---|---|")
    for measure, goal, measured, met in rows:
        verdict = met if isinstance(met, str) else "yes" if met else "NO"
        print(f"| {measure} | {goal} | {measured} | {verdict} |")


if __name__ == "__main__":
    main()
