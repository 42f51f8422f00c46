"""Run a sweep: every point of a plan as one report, on a local pool or a Dask cluster, reusing the
runs already done, retrying a lost run once, then the sweep's results files and summary report."""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcviz.sweep_runner import _store
from mcviz.sweep_runner._plan import Plan, Point, canonical, plan
from mcviz.sweep_runner._workers import DaskPool, LocalPool, default_workers

SUMMARY_TEMPLATE = "sweep"
ATTEMPTS = 2  # a run whose kernel died or whose worker was killed is retried once
POLL_S = 0.5


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, SIGHUP) stopped the sweep; finished runs are kept and a rerun of the same
    sweep resumes.

    Attributes:
        folder: the sweep folder. done: points with results. total: points in the sweep.
        signum: the signal that stopped it (a command exits with 128 + signum).
    """

    def __init__(self, folder: Path, done: int, total: int, signum: int = signal.SIGINT):
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        super().__init__(
            f"interrupted by {name}: {done} of {total} runs have results in {folder}; rerun to resume"
        )
        self.folder, self.done, self.total, self.signum = folder, done, total, signum


@dataclass
class SweepResult:
    """What a sweep did.

    Attributes:
        folder: the sweep folder (``results.csv``, ``results.json``, ``runs/``, ``summary/``).
        runs: one dict per point, in grid order: run, status ("done"/"failed"), reused, attempts,
            folder, error, where, parameters.
        summary: the summary report's folder (None if not made); ``summary_error`` why it failed.
    """

    folder: Path
    runs: list[dict]
    summary: Path | None = None
    summary_error: str | None = None
    plan: Plan | None = field(default=None, repr=False)

    @property
    def failed(self) -> list[dict]:
        """Return the runs that failed."""
        return [r for r in self.runs if r["status"] == "failed"]

    def __str__(self) -> str:
        reused = sum(r["reused"] for r in self.runs)
        ran = len(self.runs) - reused - len(self.failed)
        return f"{len(self.runs)} runs: {ran} ran, {reused} reused, {len(self.failed)} failed"


def run(
    template,
    grid: dict[str, list] | None = None,
    fixed: dict[str, Any] | None = None,
    points: list[dict] | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    workers: int | None = None,
    scheduler=None,
    force: bool = False,
    timeout: float | None = None,
    progress: bool = False,
    summary: bool = True,
) -> SweepResult:
    """Return what the sweep of ``template`` over ``grid`` did; the template is unchanged.

    Every point is validated first (nothing runs or is written on a bad value: see :func:`plan`),
    then run as one report (``mcviz.reports.run``: papermill, its own folder under
    ``out_dir/runs/``, the same atomic and ``-FAILED`` rules), single-threaded. A point whose folder
    already holds results of the same parameters and template content is reused, unless
    ``force``. A run whose kernel dies or whose worker is killed is retried once, then recorded
    as failed with its error; the other runs go on. Then ``results.csv``/``results.json`` and the
    summary report (``summary/``, template ``sweep``) are written.

    Args:
        template: a packaged template name, an ``.ipynb`` path or a loaded ``mcviz.reports.Template``.
        grid: ``{parameter: [values]}``; the sweep runs their product.
        fixed: values shared by every point.
        points: mappings of values, one run each (combined with every grid point).
        out_dir: the sweep folder (default ``reports/sweep-<template>``); a rerun into the same
            folder resumes.
        workers: local worker processes (default: one per core); not with ``scheduler``.
        scheduler: a Dask scheduler address (``tcp://host:8786``) or a ``distributed.Client``.
        force: rerun points that have results.
        timeout: seconds allowed per cell of a run.
        progress: show a progress bar over runs (tqdm) on stderr.
        summary: run the summary report at the end.

    Raises:
        ParameterError: (a ValueError) a bad grid, parameter or value; nothing was written.
        ValueError: bad ``workers``, both ``workers`` and ``scheduler``, or an unreachable scheduler.
        SweepInterrupted: Ctrl-C; finished runs are kept.
    """
    from mcviz import _checks

    the_plan = plan(template, grid, fixed, points)
    if scheduler is not None and workers is not None:
        raise ValueError("give workers (a local pool) or scheduler (a Dask cluster), not both")
    if scheduler is None:
        workers = default_workers() if workers is None else _checks.check_int(workers, "workers", low=1)
    if timeout is not None:
        from mcviz.reports import TIMEOUT

        timeout = _checks.check_number(timeout, "timeout", bounds=TIMEOUT)
    root = Path(out_dir or Path("reports") / f"sweep-{the_plan.template.name}").expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"sweep folder {os.fspath(out_dir)!r} is a file")
    pool = LocalPool(workers) if scheduler is None else DaskPool(scheduler)
    if scheduler is None:
        backend = f"local pool of {workers} workers"
    else:
        backend = f"Dask scheduler {pool.client.scheduler.address}"
    started, t0 = _dt.datetime.now().astimezone(), time.perf_counter()
    (root / _store.RUNS).mkdir(parents=True, exist_ok=True)
    runs = _execute(root, the_plan, pool, force=force, timeout=timeout, progress=progress)
    with _store.locked(root, "results"):
        _write_results(root, the_plan, runs, backend, started, time.perf_counter() - t0)
    result = SweepResult(root, [runs[p.key] for p in the_plan.points], plan=the_plan)
    if summary:
        result.summary, result.summary_error = _summarize(root, timeout)
    return result


def _execute(root: Path, the_plan: Plan, pool, *, force: bool, timeout, progress: bool) -> dict[str, dict]:
    """Return {point key: run record} once every point has results or has failed."""
    from tqdm.auto import tqdm

    runs: dict[str, dict] = {}
    pending: deque[tuple[Point, int]] = deque((p, 1) for p in the_plan.points)
    deferred: list[Point] = []
    inflight: dict[Any, tuple[Point, int, Any]] = {}
    bar = tqdm(total=len(the_plan.points), desc=f"sweep {the_plan.template.name}", unit="run",
               disable=not progress, leave=True)
    locks: dict[str, Any] = {}
    restore = _stop_on_sigterm()

    def finish(point: Point, record: dict) -> None:
        runs[point.key] = _record(root, point, **record)
        _store.release(locks.pop(point.key, None))
        bar.update(1)
        bar.set_postfix(failed=sum(r["status"] == "failed" for r in runs.values()), refresh=False)

    def start(point: Point, attempt: int, *, reuse: bool) -> None:
        if reuse:
            folder = _store.done_folder(root, the_plan, point)
            if folder is not None:
                finish(point, {"status": "done", "reused": True, "attempts": 0, "folder": folder})
                return
        _store.clear(root, point)
        handle = pool.submit(the_plan.template, point.values, str(root / _store.RUNS / point.name), timeout)
        inflight[handle] = (point, attempt, time.perf_counter())

    try:
        while pending or inflight or deferred:
            while pending and len(inflight) < pool.capacity:
                point, attempt = pending.popleft()
                if attempt == 1:
                    lock = _store.claim(root, point)
                    if lock is None:  # another sweep into this folder runs it now
                        deferred.append(point)
                        continue
                    locks[point.key] = lock
                start(point, attempt, reuse=attempt == 1 and not force)
            if inflight:
                for handle in pool.wait(inflight, POLL_S):
                    point, attempt, _ = inflight.pop(handle)
                    out = pool.outcome(handle)
                    if out["status"] == "failed" and out.get("lost") and attempt < ATTEMPTS:
                        pending.appendleft((point, attempt + 1))
                        continue
                    folder = Path(out["folder"]) if out.get("folder") else None
                    if folder is not None:  # e.g. a Dask worker killed and its run redone by Dask
                        _store.clear(root, point, keep=folder)
                    finish(point, {**out, "reused": False, "attempts": attempt, "folder": folder})
            elif deferred:  # wait for the other sweep to release a point, then reuse or run it
                for point in list(deferred):
                    lock = _store.claim(root, point)
                    if lock is not None:
                        deferred.remove(point)
                        locks[point.key] = lock
                        start(point, 1, reuse=True)
                if deferred and not inflight:
                    time.sleep(POLL_S)
    except KeyboardInterrupt as exc:
        pool.close(now=True)
        for lock in locks.values():
            _store.release(lock)
        bar.close()
        done = sum(r["status"] == "done" for r in runs.values())
        signum = getattr(exc, "signum", signal.SIGINT)
        raise SweepInterrupted(root, done, len(the_plan.points), signum) from None
    finally:
        restore()
    pool.close()
    bar.close()
    return runs


def _stop_on_sigterm():
    """Make SIGTERM and SIGHUP stop the sweep as Ctrl-C does (workers stopped, locks released; the
    exception carries the signal, as ``mcviz.reports.Interrupted`` does); return the function that
    restores the previous handlers (nothing to do off the main thread)."""
    from mcviz.reports import Interrupted

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum, frame):
        raise Interrupted(signum)

    signals = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {s: signal.signal(s, stop) for s in signals}

    def restore():
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)

    return restore


def _record(root: Path, point: Point, *, status: str, reused: bool, attempts: int, folder: Path | None,
            error: str | None = None, where: str | None = None, **_) -> dict:  # fmt: skip
    return {
        "run": point.name,
        "status": status,
        "reused": reused,
        "attempts": attempts,
        "folder": os.path.relpath(folder, root) if folder is not None else None,
        "error": error,
        "where": where,
        "parameters": canonical(point.values),
    }


def _cell(value):
    """A parameter value as a table cell: a list becomes its JSON text."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _write_results(root: Path, the_plan: Plan, runs: dict, backend: str, started, duration: float) -> None:
    import pandas as pd

    from mcviz import reports

    rows, records = [], []
    for point in the_plan.points:
        record = dict(runs[point.key])
        params = {f"param_{k}": _cell(v) for k, v in point.values.items()}
        base = {"run": point.name, "status": record["status"]}
        if record["status"] == "done":
            metric_rows, data = _store.run_rows(root / record["folder"])
            record.update(duration_s=data.get("duration_s"), started=data.get("started"))
            rows += [{**base, **params, **row} for row in metric_rows] or [{**base, **params}]
        else:
            rows.append({**base, **params, "error": record["error"]})
        records.append(record)
    table = pd.DataFrame(rows).convert_dtypes()  # a failed run's empty metrics keep int columns int
    if "error" in table.columns:  # last: a failed run's row has its error and no metrics
        table = table[[c for c in table.columns if c != "error"] + ["error"]]
    results = {
        "template": the_plan.template.name,
        "template_digest": the_plan.digest,
        "grid": canonical(the_plan.grid),
        "fixed": canonical(the_plan.fixed),
        "varying": list(the_plan.varying),
        "runs": records,
        "rows": json.loads(table.to_json(orient="records", double_precision=15)),
        "backend": backend,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(duration, 3),
        "environment": reports.environment(),
    }
    _store.write_atomic(root / "results.csv", table.to_csv(index=False))
    _store.write_atomic(root / "results.json", json.dumps(results, indent=1) + "\n")


def _summarize(root: Path, timeout) -> tuple[Path | None, str | None]:
    """Return (summary folder, None), or (None, the error) when the summary report failed."""
    from mcviz import reports

    with _store.locked(root, "summary"):
        for old in [root / _store.SUMMARY, *root.glob(f"{_store.SUMMARY}-FAILED*")]:
            if old.is_dir():
                shutil.rmtree(old)
        try:
            return reports.run(SUMMARY_TEMPLATE, {}, root / _store.SUMMARY, timeout=timeout), None
        except reports.ReportError as exc:
            return None, f"{exc.error} in {exc.where} (partial output: {exc.folder})"
        except reports.ParameterError as exc:
            return None, str(exc)
