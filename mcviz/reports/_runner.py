"""Running a report: execute a template with papermill in a fresh kernel, export it, and write the
run folder atomically (a temporary folder, renamed when everything succeeded; a failure is left
only as ``<name>-FAILED``).

What a run leaves behind, by how it ends:

- success: the run folder; a bad parameter (found before the run, or by a cell raising an error
  named in :data:`PARAMETER_ERRORS`) or an error while setting up (an output folder that cannot
  be written...): nothing at all;
- a failing cell, a dead kernel, a timeout: ``<name>-FAILED`` with the partial notebook;
- Ctrl-C (SIGINT), SIGTERM (``kill``, ``timeout``, CI cancellations) or SIGHUP: the same
  ``-FAILED`` folder (or nothing, before the kernel started), then :class:`Interrupted`.
  The kernel is shut down and its folder, which holds the connection file and its key, removed.
  Only SIGKILL, which no process can catch, leaves the hidden ``.*.partial`` folder and a private
  ``mcviz-kernel-*`` folder in the temporary directory.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mcviz import _paths
from mcviz._checks import PATH_LIMIT, Range, check_bool, check_number, shorten
from mcviz._params import ParameterError
from mcviz.reports._environment import KERNEL_ENV, environment
from mcviz.reports._signals import Interrupted, stopping_on_signals
from mcviz.reports._templates import Template, load, parameters_cell
from mcviz.reports._text import KERNEL_FILE, RESULTS_ENV, ROWS_FILE

# Seconds allowed per cell: more than 0 and at most a day (no report cell on a laptop needs more;
# None means no limit)
TIMEOUT = Range(0, 86_400, low_open=True)

# A template cell raising one of these (by class name) failed on its parameters, which only the
# run could tell (e.g. no configuration fits the budget): a bad parameter, not a failed run.
PARAMETER_ERRORS = frozenset({"NothingFits", "ParameterError"})


class ReportError(RuntimeError):
    """A report failed while running; ``folder`` holds the partial output (named ``*-FAILED``).

    Attributes:
        folder: the failed run folder.
        cell: index (from 0, markdown cells included) of the failing cell, or None when the
            failure happened outside a cell (e.g. while exporting).
        where: ``"cell 6 (In [5])"``: the cell as a notebook viewer shows it, or ``"the run"``.
        error: one line ``ErrorName: message``.
    """

    def __init__(self, message: str, *, folder: Path, cell: int | None, where: str, error: str):
        super().__init__(message)
        self.folder = folder
        self.cell = cell
        self.where = where
        self.error = error


def _destination(name: str, out_dir: str | os.PathLike | None, started: _dt.datetime) -> Path:
    if out_dir is not None:
        return _paths.output_folder(out_dir, "out_dir")
    try:
        cwd = Path.cwd()
    except OSError as exc:  # the current directory was removed
        why = _reason(exc)
        raise FileNotFoundError(f"the current directory cannot be used ({why}); give out_dir") from None
    default = cwd / "reports" / f"{name}-{started:%Y%m%d-%H%M%S}"
    return _paths.output_folder(default, "the run folder (reports/ in the current directory)")


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def _create(final: Path) -> tuple[Path, list[Path]]:
    """Create the hidden work folder next to ``final`` (and the folders above it); return it and
    the folders created, deepest first. On an error nothing is left and the OSError says which
    folder could not be written, in one line."""
    created = [d for d in (final.parent, *final.parent.parents) if not d.exists()]
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
        work.chmod(0o755)  # mkdtemp makes it private; a report folder is meant to be shared
    except OSError as exc:
        _remove(None, created)
        where = next((d for d in (final.parent, *final.parent.parents) if d.exists()), final.parent)
        raise type(exc)(
            f"cannot write the run folder {shorten(str(final), PATH_LIMIT)}: {_reason(exc)} in {shorten(str(where), PATH_LIMIT)}; "
            "choose a writable output folder"
        ) from None
    return work, created


def _kernel_folder() -> Path:
    """Create the private temporary folder of the kernel's spec and connection file."""
    try:
        return Path(tempfile.mkdtemp(prefix="mcviz-kernel-"))
    except OSError as exc:
        where = shorten(tempfile.gettempdir(), PATH_LIMIT)
        raise type(exc)(
            f"cannot create the kernel's temporary folder in {where}: {_reason(exc)}; set TMPDIR to a "
            "writable folder"
        ) from None


def _remove(work: Path | None, created: list[Path]) -> None:
    """Remove ``work`` and the folders in ``created`` (deepest first) that the run left empty."""
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    for folder in created:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _publish(work: Path, target: Path) -> Path:
    """Rename ``work`` to ``target`` (or ``target-2``, ``-3``... when taken) and return it."""
    for i in range(1, 1000):
        candidate = target if i == 1 else target.with_name(f"{target.name}-{i}")
        try:
            os.rename(work, candidate)  # atomic; fails on a non-empty existing folder
            return candidate
        except OSError:
            if not candidate.exists():
                raise
    raise FileExistsError(f"no free folder name next to {target}")


def _inject(nb, values: dict[str, Any]):
    """Insert the ``injected-parameters`` cell after the parameters cell, as papermill does.

    Values are written with ``repr`` (papermill's own translator does not escape backslashes),
    so a string parameter is always a string literal and never code.
    """
    import nbformat

    cell = parameters_cell(nb, "template")
    lines = ["# Parameters"] + [f"{k} = {v!r}" for k, v in values.items()]
    new = nbformat.v4.new_code_cell("\n".join(lines) + "\n")
    new.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(nb.cells.index(cell) + 1, new)
    nb.metadata.setdefault("papermill", {})["parameters"] = values
    return nb


def _kernel_manager(spec_dir: Path, results: Path):
    """Return a kernel manager whose ``python3`` is this interpreter, with the report env."""
    from ipykernel.kernelspec import get_kernel_dict
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    (spec_dir / "python3").mkdir(parents=True)
    spec = get_kernel_dict()  # the native spec (encryption, debugger metadata) ...
    spec["argv"][0] = sys.executable  # ... pinned to this interpreter, whatever is on PATH
    spec["env"] = {**KERNEL_ENV, RESULTS_ENV: str(results)}
    (spec_dir / "python3" / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(spec_dir)], ensure_native_kernel=False)
    # "auto": CurveZMQ-encrypted channels, since the native spec declares support for them; the
    # connection file (it holds the key) goes in the private kernel folder, removed after the run
    return AsyncKernelManager(
        kernel_name="python3",
        kernel_spec_manager=ksm,
        transport_encryption="auto",
        connection_file=str(spec_dir / "connection.json"),
    )


def _shutdown(km) -> None:
    from jupyter_core.utils import run_sync

    if km.has_kernel:
        run_sync(km.shutdown_kernel)(now=True)  # also removes the connection file


def _failure(exc: BaseException, notebook: Path, executing: bool):
    """Return (failing cell index or None, where, one-line error) for a failed run."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        value = (str(exc.evalue).strip().splitlines() or [""])[0]
        where = f"cell {exc.cell_index}" + (f" (In [{exc.exec_count}])" if exc.exec_count else "")
        return exc.cell_index, where, f"{exc.ename}: {value}".rstrip(": ")
    text = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, RuntimeError) and "Kernel died" in text:
        text = "the kernel died (crashed, killed or out of memory)"
    cell = None
    if executing:  # a dead kernel or a timeout: blame the last cell that started
        try:
            import nbformat

            nb = nbformat.read(notebook, as_version=4)
            started = [
                i
                for i, c in enumerate(nb.cells)
                if c.get("metadata", {}).get("papermill", {}).get("start_time")
            ]
            cell = started[-1] if started else None
        except Exception:  # noqa: BLE001 - the notebook may not have been written yet
            pass
    where = "the run" if cell is None else f"cell {cell}"
    return cell, where, f"{type(exc).__name__}: {text}".rstrip(": ")


def _parameter_error(exc: BaseException) -> str | None:
    """Return the one-line message of a cell error named in PARAMETER_ERRORS, else None."""
    from papermill.exceptions import PapermillExecutionError

    if not isinstance(exc, PapermillExecutionError) or exc.ename not in PARAMETER_ERRORS:
        return None
    return " ".join(str(exc.evalue).split()) or exc.ename


def _write_results(work: Path, name: str, values: dict, started, duration: float) -> None:
    rows, env = [], environment()
    if (work / ROWS_FILE).exists():
        rows = json.loads((work / ROWS_FILE).read_text())
        (work / ROWS_FILE).unlink()
    if (work / KERNEL_FILE).exists():
        kernel = json.loads((work / KERNEL_FILE).read_text())
        (work / KERNEL_FILE).unlink()
        for key in ("threads", "cpu_capability"):
            if kernel.get(key) is not None:
                env[key] = kernel[key]
    if not (work / "results.csv").exists():
        (work / "results.csv").write_text("")
    results = {
        "template": name,
        "rows": rows,
        "parameters": values,
        "seed": values.get("seed"),
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(duration, 3),
        "environment": env,
    }
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def run(
    template: str | os.PathLike | Template,
    params: dict[str, Any] | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    progress: bool = False,
    timeout: float | None = None,
) -> Path:
    """Return the run folder of ``template`` executed with ``params``; the template is unchanged.

    Parameters are validated first (nothing runs or is written on a bad value). The notebook
    runs with this interpreter's kernel, single-threaded, with the template's folder as working
    directory; output goes to a hidden temporary folder renamed on success to ``out_dir`` or
    ``reports/<template>-<timestamp>`` (suffix ``-2``, ``-3``... if taken). papermill changes
    the process's working directory while it runs: run reports in parallel as subprocesses
    (``python -m mcviz report ...``), not threads.

    Args:
        template: a packaged template name (see :func:`templates`), an ``.ipynb`` path, or a
            :class:`Template` already loaded (``load``): the notebook is read once per run.
        params: parameter values (Python values; see :func:`from_text` for CLI strings).
        out_dir: the run folder to create; must not exist or be empty.
        progress: show papermill's cell progress bar on stderr.
        timeout: seconds allowed per cell, a number in (0, 86400] (None: no limit).

    Raises:
        ParameterError: a bad parameter (ValueError), found before the run or by a cell raising
            an error named in :data:`PARAMETER_ERRORS` (e.g. ``NothingFits``: no configuration
            fits the budget); then nothing is left behind, not even a ``*-FAILED`` folder.
            ``ParameterTypeError`` (also a TypeError) for a value of the wrong type.
        TypeError, ValueError: a bad ``template``, ``out_dir``, ``progress`` or ``timeout``.
        FileNotFoundError: unknown template. FileExistsError: ``out_dir`` is not empty.
        OSError: the run folder (or the kernel's temporary folder) cannot be written; nothing
            is left behind.
        ReportError: a cell failed or the kernel died; the partial output is in ``*-FAILED``.
        Interrupted: Ctrl-C, SIGTERM or SIGHUP stopped the run (a KeyboardInterrupt); the
            kernel is shut down and the partial output is in ``*-FAILED`` (or nothing is left).
    """
    if not isinstance(template, (str, os.PathLike, Template)):
        raise TypeError(f"template must be a name, an .ipynb path or a Template, got {shorten(template)}")
    check_bool(progress, "progress")
    if timeout is not None:
        timeout = check_number(timeout, "timeout", bounds=TIMEOUT)
    tpl = load(template)
    values = tpl.validate(params)
    started = _dt.datetime.now().astimezone()
    final = _destination(tpl.name, out_dir, started)
    with stopping_on_signals():
        work = spec_dir = None
        created: list[Path] = []
        try:  # set-up: an error here leaves nothing behind
            work, created = _create(final)
            spec_dir = _kernel_folder()
            km = _kernel_manager(spec_dir, work)
            nb = _inject(copy.deepcopy(tpl.notebook), values)
        except BaseException as exc:
            _remove(work, created)
            if spec_dir is not None:
                shutil.rmtree(spec_dir, ignore_errors=True)
            if isinstance(exc, KeyboardInterrupt):
                raise Interrupted(getattr(exc, "signum", signal.SIGINT)) from None
            raise
        return _execute(tpl, values, nb, km, spec_dir, work, created, final, started, progress, timeout)


def _execute(tpl, values, nb, km, spec_dir, work, created, final, started, progress, timeout) -> Path:
    """Run the notebook in ``work`` and publish it as ``final`` (see :func:`run`)."""
    import nbformat
    import papermill

    from mcviz import _html

    name, path = tpl.name, tpl.path
    notebook = work / f"{name}.ipynb"
    t0 = time.perf_counter()
    executing = True
    try:
        try:
            nb = papermill.execute_notebook(
                nb,
                str(notebook),
                kernel_name="python3",
                cwd=str(path.parent),
                progress_bar=progress,
                execution_timeout=timeout,
                km=km,
            )
        finally:  # nbclient only shuts down kernels it created itself
            try:
                _shutdown(km)
            finally:
                shutil.rmtree(spec_dir, ignore_errors=True)  # the kernel spec and connection file
        executing = False
        nb.metadata["papermill"].update(input_path=path.name, output_path=notebook.name)
        nbformat.write(nb, notebook)
        _html.export(nb, work / "index.html", title=tpl.description or name)
        _write_results(work, name, values, started, time.perf_counter() - t0)
    except BaseException as exc:
        late = _parameter_error(exc)
        if late is not None:  # a bad parameter the run found: remove everything it wrote
            _remove(work, created)
            raise ParameterError(late) from exc
        for leftover in (ROWS_FILE, KERNEL_FILE, "results.csv", "results.json", "index.html"):
            with contextlib.suppress(OSError):
                (work / leftover).unlink(missing_ok=True)  # keep no result that looks valid
        if isinstance(exc, KeyboardInterrupt) and not any(work.iterdir()):  # stopped before any output
            _remove(work, created)
            raise Interrupted(getattr(exc, "signum", signal.SIGINT)) from None
        failed = _publish(work, final.with_name(final.name + "-FAILED"))
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(getattr(exc, "signum", signal.SIGINT), failed) from None
        if not isinstance(exc, Exception):
            raise
        cell, where, error = _failure(exc, failed / notebook.name, executing)
        raise ReportError(
            f"report {name} failed in {where}: {error} (partial output: {failed})",
            folder=failed,
            cell=cell,
            where=where,
            error=error,
        ) from exc
    return _publish(work, final)


_WARNING = re.compile(r"^(?:.*?:\d+: )?([A-Z]\w*Warning): (.+)$")


def emitted_warnings(folder: str | os.PathLike, limit: int = 5) -> list[str]:
    """Returns the warnings a finished run printed (``"cell 4: UserWarning: ..."``), each once and
    at most ``limit`` of them, read from the executed notebook in ``folder``; nothing is changed.

    A warning (a cache that could not be written, a layer left unchanged...) is in the notebook's
    output, where a command-line user does not look; the ``mcviz`` command prints these lines.
    """
    import nbformat

    seen: dict[str, int] = {}  # warning -> the first cell that printed it
    for nb_path in sorted(Path(folder).glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        for i, cell in enumerate(nb.cells):
            for out in cell.get("outputs", []):
                if out.get("output_type") != "stream" or out.get("name") != "stderr":
                    continue
                for line in str(out.get("text", "")).splitlines():
                    if m := _WARNING.match(line.strip()):
                        seen.setdefault(f"{m[1]}: {m[2][:300]}", i)
    return [f"cell {i}: {text}" for text, i in list(seen.items())[:limit]]
