"""Sweeps: many runs of one report template, on a local pool or a Dask cluster, resumable.

``run(template, grid=...)`` (and ``mcviz sweep NAME --grid key=v1,v2``) validates every grid point
first, runs each as one report (``mcviz.reports.run``: papermill, atomic run folders, ``-FAILED``
on failure), single-threaded, on ``workers`` spawned local processes or on a Dask cluster, and
writes the sweep folder::

    reports/sweep-compare/
        results.csv    one row per run and configuration, with the run's parameters (param_*)
        results.json   the same rows, every run's status, attempts, error and parameters, the grid
        runs/          compare-epochs=1_seed=0-1a2b3c4d/ ...: one report folder per point
        summary/       the summary report (notebooks/sweep.ipynb): front, effects, failures

A rerun into the same folder reuses every point whose results match its parameters and the
template's content (``force=True`` recomputes); a run whose kernel dies or whose worker is killed
is retried once, then recorded as failed; Ctrl-C stops cleanly and a rerun resumes. Two sweeps
into one folder never run the same point at once (a lock per point).

Modules: ``_plan`` (grid, validation, names and keys), ``_store`` (the folder, locks, atomic
files), ``_workers`` (local pool, Dask), ``_sweep`` (the run loop, results, summary) and
``_summary`` (what the summary template calls).

Example:
    >>> result = mcv.sweep_runner.run("compare", grid={"seed": [0, 1, 2]},
    ...                               fixed={"dataset": "digits"}, workers=2)  # doctest: +SKIP
"""

from __future__ import annotations

from mcviz.sweep_runner._plan import Plan, Point, content_digest, parse_grid, plan, read_points
from mcviz.sweep_runner._summary import (
    SweepData,
    configurations,
    describe,
    effect_figure,
    effects,
    failures,
    load,
    point,
    timing,
)
from mcviz.sweep_runner._sweep import SweepInterrupted, SweepResult, run
from mcviz.sweep_runner._workers import default_workers

__all__ = [
    "Plan",
    "Point",
    "SweepData",
    "SweepInterrupted",
    "SweepResult",
    "configurations",
    "content_digest",
    "default_workers",
    "describe",
    "effect_figure",
    "effects",
    "failures",
    "load",
    "parse_grid",
    "plan",
    "point",
    "read_points",
    "run",
    "timing",
]
