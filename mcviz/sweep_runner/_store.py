"""The sweep folder on disk: which runs are done, per-point locks, and the sweep's results files.

    DIR/results.csv    one row per run and configuration (a failed run: one row with its error)
    DIR/results.json   the same rows, every run's status and parameters, the grid, the template
    DIR/runs/NAME/     each run's report folder, written by ``mcviz.reports.run`` (NAME-FAILED if it failed)
    DIR/summary/       the summary report (notebooks/sweep.ipynb)
    DIR/.locks/        one lock file per point (two sweeps into DIR never run the same point at once)

Every file is written to a temporary name and renamed, so none is ever half-written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

from mcviz.sweep_runner._plan import Plan, Point, canonical, content_digest

RUNS, SUMMARY, LOCKS = "runs", "summary", ".locks"


def done_folder(root: Path, plan: Plan, point: Point) -> Path | None:
    """Return the run folder holding valid results of ``point``, or None.

    Valid: ``results.json`` names the template and records exactly the point's parameters, and the
    executed notebook's cells are the template's (same content digest).
    """
    import nbformat

    for folder in sorted((root / RUNS).glob(f"*-{point.key[:8]}")):
        results, notebook = folder / "results.json", folder / f"{plan.template.name}.ipynb"
        try:
            data = json.loads(results.read_text())
            if data.get("template") != plan.template.name:
                continue
            if data.get("parameters") != canonical(point.values):
                continue
            if content_digest(nbformat.read(notebook, as_version=4)) == plan.digest:
                return folder
        except (OSError, ValueError, AttributeError, KeyError):
            continue  # missing or unreadable: not a result
    return None


def clear(root: Path, point: Point, *, keep: Path | None = None) -> None:
    """Remove what earlier attempts of ``point`` left: ``-FAILED`` and partial folders (a killed
    worker leaves one) and, unless it is ``keep``, its run folder; ``keep`` always stays.

    Call it only while holding the point's lock (:func:`claim`).
    """
    runs = root / RUNS
    leftovers = [*runs.glob(f"{point.name}-FAILED*"), *runs.glob(f".{point.name}.*.partial")]
    for path in [runs / point.name, *leftovers]:
        if path.is_dir() and (keep is None or path.resolve() != keep.resolve()):
            shutil.rmtree(path, ignore_errors=True)


def claim(root: Path, point: Point, *, wait: bool = False):
    """Return an open lock file of ``point`` (keep it open while the point runs), or None if
    another sweep holds it (``wait=False``). The lock goes with the process, even when it is killed."""
    folder = root / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / f"{point.key[:16]}.lock", "a")  # noqa: SIM115 - held until release()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError as exc:
        handle.close()
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    return handle


def release(handle) -> None:
    """Release a lock returned by :func:`claim`."""
    if handle is not None and not handle.closed:
        with contextlib.suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@contextlib.contextmanager
def locked(root: Path, name: str):
    """Hold the sweep-wide lock ``name`` (e.g. while writing the results files)."""
    folder = root / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def run_rows(folder: Path) -> tuple[list[dict], dict]:
    """Return (metric rows, results.json) of a finished run folder."""
    data = json.loads((folder / "results.json").read_text())
    return list(data.get("rows") or []), data
