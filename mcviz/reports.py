"""Parameterized reports: validate parameters, execute a template with papermill, export results.

A report template is a notebook in ``mcviz.notebooks`` (the repository's ``notebooks/`` folder)
or any ``.ipynb`` path. Its cell tagged ``parameters`` declares every parameter (see
``mcviz._params`` for the grammar). :func:`run` validates the values before anything runs,
executes the notebook with the kernel of the running interpreter in the template's folder and
writes a run folder atomically::

    reports/compare-20250101-120000/
        compare.ipynb   executed notebook
        index.html      offline page: every figure renders with no network
        results.csv     the metric rows the template passed to record()
        results.json    rows + parameters + environment (versions, CPU, threads, seed, timing)

Example:
    >>> folder = mcv.reports.run("compare", {"dataset": "digits", "epochs": 1})  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import importlib.resources
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._params import Param, ParameterError, from_text, parse_cell
from ._params import validate as _validate

__all__ = [
    "Param",
    "ParameterError",
    "ReportError",
    "templates",
    "template_path",
    "parameters",
    "validate",
    "from_text",
    "record",
    "summary",
    "budget_summary",
    "environment",
    "run",
    "RESULTS_ENV",
    "PARAMETER_ERRORS",
]

RESULTS_ENV = "MCVIZ_RESULTS_DIR"
# A template cell raising one of these (by class name) failed on its parameters, which only the
# run could tell (e.g. no configuration fits the budget): a bad parameter, not a failed run.
PARAMETER_ERRORS = frozenset({"NothingFits", "ParameterError"})
_ROWS_FILE = "_rows.json"
_KERNEL_FILE = "_kernel.json"
_KERNEL_ENV = {
    "PLOTLY_RENDERER": "plotly_mimetype",  # exported to HTML by mcviz._html
    "OMP_NUM_THREADS": "1",  # single-threaded, deterministic, like mcv.train
    "MKL_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "TQDM_DISABLE": "1",
}


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


# ---------------------------------------------------------------- templates and parameters


def templates() -> dict[str, Path]:
    """Return the packaged templates, name -> notebook path (works from a wheel too)."""
    root = importlib.resources.files("mcviz.notebooks")
    return {
        entry.name[: -len(".ipynb")]: Path(str(entry))
        for entry in sorted(root.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".ipynb") and not entry.name.startswith(".")
    }


def template_path(template: str | os.PathLike) -> Path:
    """Return the notebook path of a template given by name or by ``.ipynb`` path.

    Raises:
        FileNotFoundError: no such template; the message lists the packaged ones.
    """
    text = os.fspath(template)
    if text.endswith(".ipynb"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"template notebook {text!r} not found")
        return path.resolve()
    found = templates()
    if text not in found:
        raise FileNotFoundError(f"unknown template {text!r}; available: {', '.join(found) or 'none'}")
    return found[text]


def _read(template: str | os.PathLike):
    import nbformat

    return nbformat.read(template_path(template), as_version=4)


def _parameters_cell(nb, name: str):
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"template {name} needs exactly one cell tagged 'parameters'")
    return cells[0]


def _name(template: str | os.PathLike) -> str:
    text = os.fspath(template)
    return Path(text).stem if text.endswith(".ipynb") else text


def parameters(template: str | os.PathLike) -> list[Param]:
    """Return the parameters the template declares, in cell order; the template is not run."""
    name = _name(template)
    cell = _parameters_cell(_read(template), name)
    return parse_cell(cell.source, where=f"template {name}")


def description(template: str | os.PathLike) -> str:
    """Return the first line of the template's first markdown cell, without ``#`` marks."""
    for cell in _read(template).cells:
        if cell.cell_type == "markdown" and cell.source.strip():
            return cell.source.strip().splitlines()[0].lstrip("#").strip()
    return ""


def validate(template: str | os.PathLike, params: dict[str, Any] | None = None) -> dict:
    """Return every parameter value of ``template`` (defaults filled in), checked and normalized.

    Path parameters come back absolute (the kernel runs in the template's folder). ``params``
    is not modified.

    Raises:
        ParameterError: (a ValueError) one line naming the parameter and what is allowed.
    """
    return _validate(parameters(template), dict(params or {}), template=_name(template))


# ---------------------------------------------------------------- used inside templates


def record(table):
    """Return ``table`` unchanged; inside :func:`run` also save its rows as the report results.

    Outside a run (``$MCVIZ_RESULTS_DIR`` unset: nbval, an interactive session) nothing is
    written. Call it once per report with the metric table (a DataFrame).
    """
    folder = os.environ.get(RESULTS_ENV)
    if not folder:
        return table
    folder = Path(folder)
    table.to_csv(folder / "results.csv", index=False)
    rows = json.loads(table.to_json(orient="records", double_precision=15))
    (folder / _ROWS_FILE).write_text(json.dumps(rows, indent=1))
    kernel = {"threads": None, "cpu_capability": None}
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        kernel["threads"] = torch.get_num_threads()
        kernel["cpu_capability"] = torch.backends.cpu.get_cpu_capability()  # kernels' instruction set
    (folder / _KERNEL_FILE).write_text(json.dumps(kernel))
    return table


def summary(table, *, baseline: str = "baseline", cost: str = "size_bytes") -> str:
    """Return one sentence per compressed row comparing its ``cost`` and accuracy to baseline.

    Example: ``"fp16 is 2.00x smaller than the baseline at +0.0000 accuracy."``. The table
    (``mcv.measure.table`` output with a ``label`` column) is not modified.

    Raises:
        ValueError: no row is labelled ``baseline``.
    """
    import pandas as pd

    rows = table.set_index("label")
    if baseline not in rows.index:
        raise ValueError(f"summary needs a row labelled {baseline!r}, got {list(rows.index)}")
    base = rows.loc[baseline]
    sentences = []
    for label, row in rows.iterrows():
        if label == baseline:
            continue
        ratio = base[cost] / row[cost] if row[cost] else float("inf")
        if ratio >= 1:
            size = f"{ratio:.2f}x smaller than"
        else:
            size = f"{1 / ratio:.2f}x larger than"
        text = f"{label} is {size} the {baseline}"
        if pd.notna(row.get("accuracy")) and pd.notna(base.get("accuracy")):
            text += f" at {row['accuracy'] - base['accuracy']:+.4f} accuracy"
        sentences.append(text + ".")
    return " ".join(sentences) or f"Only the {baseline} was measured."


def budget_summary(
    table,
    *,
    cost: str = "size_bytes",
    metric: str = "accuracy",
    budget: float | None = None,
    fraction: float | None = None,
    baseline: str = "baseline",
) -> str:
    """Return the sentence that states the best row of ``table`` under the limit, or the front.

    With ``budget`` (an absolute ``cost`` limit) or ``fraction`` (of the ``baseline`` row's
    cost), the row is ``mcv.tradeoff.decide``'s choice: "Under a size_bytes budget of 65,292 bytes
    (fraction 0.3 of the baseline's 217,640), 2 of 4 configurations fit; the most accurate is
    'int8': accuracy 0.9640 (baseline 0.9650), size_bytes 55,000 (3.96x smaller than the
    baseline)." With neither, it names the Pareto front and says how to set a limit. The table
    (``mcv.measure.table`` rows with a ``label`` column) is not modified.

    Raises:
        ValueError: bad arguments (see ``mcv.tradeoff.limit``), or no row fits the limit (the
            error ``mcv.tradeoff.decide`` raises).
    """
    import pandas as pd

    from . import measure, tradeoff

    unit = measure.COSTS[cost].unit if cost in measure.COSTS else ""
    limits = {"cost": cost, "budget": budget, "fraction": fraction, "baseline": baseline}
    decision = tradeoff.decide(table, metric=metric, **limits)
    if decision.limit is None:
        front = decision.front
        names = ", ".join(repr(label) for label in front["label"])
        return (
            f"No budget was given: {len(front)} of {len(table)} configurations are on the Pareto front "
            f"(no other is both cheaper in {cost} and better in {metric}): {names}. "
            f"Set a limit with `-p budget N` ({unit or cost}) or `-p fraction F` (of the {baseline}'s "
            f"{cost}) to select the best configuration under it."
        )
    lim, row = decision.limit, decision.choice
    rows = table.set_index("label")
    if baseline not in rows.index:
        raise ValueError(f"budget_summary needs a row labelled {baseline!r}, got {list(rows.index)}")
    base = rows.loc[baseline]
    costs = pd.to_numeric(table[cost], errors="coerce")
    fits = int(((costs <= lim) & table[metric].notna()).sum())
    fmt = tradeoff._fmt
    given = f" (fraction {fraction:g} of the {baseline}'s {fmt(base[cost])})" if budget is None else ""
    text = (
        f"Under a {cost} budget of {fmt(lim)}{' ' + unit if unit else ''}{given}, {fits} of "
        f"{len(table)} configurations fit; the most accurate is {row['label']!r}: {metric} "
        f"{row[metric]:.4f} ({baseline} {base[metric]:.4f}), {cost} {fmt(row[cost])}"
    )
    if row["label"] == baseline:
        return text + " (the baseline itself)."
    ratio = base[cost] / row[cost] if row[cost] else float("inf")
    size = f"{ratio:.2f}x smaller than" if ratio >= 1 else f"{1 / ratio:.2f}x larger than"
    return text + f" ({size} the {baseline})."


# ---------------------------------------------------------------- environment


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Return the versions and machine facts a report records (nothing heavy is imported)."""
    mcviz_version = _version("mcviz")
    if mcviz_version is None:
        mcviz_version = getattr(sys.modules.get("mcviz"), "__version__", None)
    return {
        "mcviz": mcviz_version,
        "torch": _version("torch"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": int(_KERNEL_ENV["OMP_NUM_THREADS"]),
        # the kernels torch picked for this CPU (AVX512, AVX2, DEFAULT...): trained weights differ
        # in their last bits between them (see mcviz.reproduce); a report's kernel records its own
        "cpu_capability": _cpu_capability(),
    }


def _cpu_capability() -> str | None:
    torch = sys.modules.get("torch")  # not imported here just for this: it is heavy
    return torch.backends.cpu.get_cpu_capability() if torch is not None else None


# ---------------------------------------------------------------- running


def _destination(name: str, out_dir: str | os.PathLike | None, started: _dt.datetime) -> Path:
    if out_dir is None:
        return Path.cwd() / "reports" / f"{name}-{started:%Y%m%d-%H%M%S}"
    final = Path(out_dir).expanduser().resolve()
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise FileExistsError(f"output folder {os.fspath(out_dir)!r} exists and is not empty")
    return final


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

    cell = _parameters_cell(nb, "template")
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
    spec["env"] = {**_KERNEL_ENV, RESULTS_ENV: str(results)}
    (spec_dir / "python3" / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(spec_dir)], ensure_native_kernel=False)
    # "auto": CurveZMQ-encrypted channels, since the native spec declares support for them
    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ksm, transport_encryption="auto")


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
    if (work / _ROWS_FILE).exists():
        rows = json.loads((work / _ROWS_FILE).read_text())
        (work / _ROWS_FILE).unlink()
    if (work / _KERNEL_FILE).exists():
        kernel = json.loads((work / _KERNEL_FILE).read_text())
        (work / _KERNEL_FILE).unlink()
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
    template: str | os.PathLike,
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
        template: a packaged template name (see :func:`templates`) or an ``.ipynb`` path.
        params: parameter values (Python values; see :func:`from_text` for CLI strings).
        out_dir: the run folder to create; must not exist or be empty.
        progress: show papermill's cell progress bar on stderr.
        timeout: seconds allowed per cell (None: no limit).

    Raises:
        ParameterError: a bad parameter (ValueError), found before the run or by a cell raising
            an error named in :data:`PARAMETER_ERRORS` (e.g. ``NothingFits``: no configuration
            fits the budget); then nothing is left behind, not even a ``*-FAILED`` folder.
        FileNotFoundError: unknown template. FileExistsError: ``out_dir`` is not empty.
        ReportError: a cell failed or the kernel died; the partial output is in ``*-FAILED``.
    """
    import nbformat
    import papermill

    from . import _html

    name = _name(template)
    path = template_path(template)
    values = validate(template, params)
    started = _dt.datetime.now().astimezone()
    final = _destination(name, out_dir, started)
    created = [d for d in (final.parent, *final.parent.parents) if not d.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    work.chmod(0o755)  # mkdtemp makes it private; a report folder is meant to be shared
    notebook = work / f"{name}.ipynb"
    t0 = time.perf_counter()
    executing = True
    try:
        with tempfile.TemporaryDirectory(prefix="mcviz-kernel-") as spec_dir:
            km = _kernel_manager(Path(spec_dir), work)
            nb = _inject(nbformat.read(path, as_version=4), values)
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
                _shutdown(km)
        executing = False
        nb.metadata["papermill"].update(input_path=path.name, output_path=notebook.name)
        nbformat.write(nb, notebook)
        _html.export(nb, work / "index.html", title=description(path) or name)
        _write_results(work, name, values, started, time.perf_counter() - t0)
    except BaseException as exc:
        late = _parameter_error(exc)
        if late is not None:  # a bad parameter the run found: remove everything it wrote
            shutil.rmtree(work, ignore_errors=True)
            for folder in created:  # deepest first; only folders the run made and left empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise ParameterError(late) from exc
        for leftover in (_ROWS_FILE, _KERNEL_FILE, "results.csv", "results.json", "index.html"):
            (work / leftover).unlink(missing_ok=True)  # keep no result that looks valid
        failed = _publish(work, final.with_name(final.name + "-FAILED"))
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
