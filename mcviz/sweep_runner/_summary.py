"""What the summary report (``notebooks/sweep.ipynb``) calls: read a sweep's results, the
configurations of every run, per-parameter effects with their seed spread, the failures.

Nothing here runs a report: the functions read ``results.json`` as :func:`run` wrote it and
return DataFrames, sentences and figures.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mcviz.reports import RESULTS_ENV
from mcviz.sweep_runner._plan import SEEDS


@dataclass(frozen=True, eq=False)
class SweepData:
    """A sweep's results, read from its ``results.json``.

    Attributes:
        folder: the sweep folder.
        template: the template every run executed.
        varying: parameters whose value differs between runs, in template order.
        runs: one row per run: run, status, reused, attempts, error, where, folder, duration_s and
            ``param_<name>`` for each varying parameter.
        rows: one row per configuration of every run that finished: run, ``param_<name>`` for
            every parameter, and the run's metric columns (label, accuracy, size_bytes...).
        results: the whole ``results.json``.
    """

    folder: Path
    template: str
    varying: tuple[str, ...]
    runs: pd.DataFrame
    rows: pd.DataFrame
    results: dict

    @property
    def seeds(self) -> list[str]:
        """Return the varying replicate parameters (``seed``, ``*_seed``): their spread is noise."""
        return [p for p in self.varying if SEEDS.match(p)]

    @property
    def effect_parameters(self) -> list[str]:
        """Return the varying parameters that are not seeds."""
        return [p for p in self.varying if not SEEDS.match(p)]


def load(sweep: str | os.PathLike = "..") -> SweepData:
    """Return the results of the sweep in folder ``sweep``; nothing is changed.

    A relative ``sweep`` is relative to the report's own folder while a report runs (the summary
    report is written in ``<sweep folder>/summary``, so ``".."`` is its sweep), else to the
    working directory (a notebook's own folder in Jupyter and nbval).

    Raises:
        FileNotFoundError: the folder has no ``results.json`` of a sweep.
    """
    folder = Path(sweep).expanduser()
    if not folder.is_absolute():
        folder = Path(os.environ.get(RESULTS_ENV) or Path.cwd()) / folder
    folder = folder.resolve()
    path = folder / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        raise FileNotFoundError(
            f"no sweep results in {folder} (results.json): run `mcviz sweep` first"
        ) from None
    if not isinstance(results, dict) or "runs" not in results:
        raise FileNotFoundError(f"{path} is not the results of `mcviz sweep`")
    varying = tuple(results.get("varying", []))
    runs = pd.DataFrame(results["runs"])
    for name in varying:
        runs[f"param_{name}"] = [_cell(r["parameters"].get(name)) for r in results["runs"]]
    runs = runs.drop(columns="parameters")
    rows = pd.DataFrame(results.get("rows", []))
    if "status" in rows.columns:
        rows = rows[rows["status"] == "done"].drop(columns=["status", "error"], errors="ignore")
    for column in rows.columns:  # JSON nulls of failed runs made int columns float: make them int again
        values = rows[column]
        if values.dtype.kind == "f" and len(values) and values.notna().all() and (values % 1 == 0).all():
            rows[column] = values.astype("int64")
    return SweepData(folder, results["template"], varying, runs.reset_index(drop=True),
                     rows.reset_index(drop=True), results)  # fmt: skip


def _cell(value):
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def point(data: SweepData, run: str) -> str:
    """Return the varying parameters of ``run`` as text, e.g. ``"epochs=3, seed=1"``."""
    row = data.runs.set_index("run").loc[run]
    return ", ".join(f"{p}={row[f'param_{p}']}" for p in data.varying) or run


def describe(data: SweepData) -> str:
    """Return one paragraph: how many runs over which grid, how many finished, were reused, failed."""
    runs = data.runs
    sizes = " x ".join(f"{p} ({runs[f'param_{p}'].nunique()} values)" for p in data.varying)
    failed = int((runs["status"] == "failed").sum())
    reused = int(runs["reused"].sum())
    text = (
        f"{len(runs)} runs of the {data.template} template"
        + (f" over {sizes}" if sizes else "")
        + f": {len(runs) - failed} finished ({reused} reused from an earlier sweep into the same folder), "
        f"{failed} failed; {len(data.rows)} configurations measured."
    )
    if data.seeds:
        text += (
            f" {', '.join(data.seeds)} {'is a replicate' if len(data.seeds) == 1 else 'are replicates'}: "
            "the spread over them is the noise against which an effect is judged."
        )
    else:
        text += " No seed varies, so no spread between repeated runs is measured."
    return text


def configurations(data: SweepData) -> pd.DataFrame:
    """Return every measured configuration of every finished run, labelled ``"<label> @ <point>"``
    (the run's own label is kept as ``configuration``), for one accuracy-vs-cost front."""
    rows = data.rows.copy()
    if "label" not in rows.columns:
        raise ValueError(f"the runs of {data.template} recorded no 'label' column; nothing to compare")
    points = {run: point(data, run) for run in data.runs["run"]}
    rows.insert(0, "configuration", rows["label"])
    pairs = zip(rows["label"], rows["run"], strict=True)
    rows["label"] = [f"{label} @ {points[run]}" for label, run in pairs]
    return rows


def effects(data: SweepData, parameter: str, *, metric: str = "accuracy") -> pd.DataFrame:
    """Return the effect of ``parameter`` on ``metric``, per configuration, with the seed spread.

    One row per (configuration, value): ``mean`` of the metric over every run with that value
    (first averaged over the seeds at each setting of the other parameters, then over those
    settings), ``seed_std`` the standard deviation between seeds pooled over the settings (the
    root of the mean variance; NaN with a single seed), ``seeds`` the runs per setting and
    ``settings`` how many settings of the other parameters were averaged. ``data`` is unchanged.
    """
    column = f"param_{parameter}"
    rows = data.rows
    for need in (column, "label", metric):
        if need not in rows.columns:
            have = ", ".join(rows.columns)
            raise ValueError(f"effects needs column {need!r}; the sweep's rows have {have}")
    others = [f"param_{p}" for p in data.effect_parameters if p != parameter]
    values = rows.assign(_v=pd.to_numeric(rows[metric], errors="coerce")).dropna(subset=["_v"])
    groups = values.groupby(["label", column, *others], sort=False, dropna=False)
    cells = groups["_v"].agg(["mean", "var", "count"])
    out = cells.groupby(level=["label", column], sort=False).agg(
        mean=("mean", "mean"), seed_var=("var", "mean"), seeds=("count", "min"), settings=("mean", "size")
    )
    out["seed_std"] = [math.sqrt(v) if pd.notna(v) else math.nan for v in out.pop("seed_var")]
    out = out.reset_index().rename(columns={"label": "configuration", column: parameter})
    out = out[["configuration", parameter, "mean", "seed_std", "seeds", "settings"]]
    return out.sort_values(["configuration", parameter], kind="stable").reset_index(drop=True)


def effect_figure(table: pd.DataFrame, parameter: str, *, metric: str = "accuracy"):
    """Return ``metric`` (mean) against ``parameter``, one line per configuration, with error bars
    of one seed standard deviation (from :func:`effects`)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, group in table.groupby("configuration", sort=False):
        spread = group["seed_std"].fillna(0).tolist()
        fig.add_trace(go.Scatter(
            x=[str(v) for v in group[parameter]], y=group["mean"], mode="lines+markers", name=str(name),
            error_y={"type": "data", "array": spread, "visible": bool(any(spread))},
            hovertemplate=f"{name}<br>{parameter}=%{{x}}<br>{metric}=%{{y:.4f}}<extra></extra>",
        ))  # fmt: skip
    fig.update_layout(title=f"{metric} against {parameter} (mean over seeds, bars: one seed std)",
                      height=400, xaxis_title=parameter, yaxis_title=metric)  # fmt: skip
    fig.update_xaxes(type="category")
    return fig


def failures(data: SweepData) -> pd.DataFrame:
    """Return the failed runs: run, the varying parameters, error, where it failed and the folder
    holding the partial output (empty, with these columns, when nothing failed)."""
    columns = ["run", *[f"param_{p}" for p in data.varying], "error", "where", "folder", "attempts"]
    failed = data.runs[data.runs["status"] == "failed"]
    return failed.reindex(columns=columns).reset_index(drop=True)


def timing(data: SweepData) -> pd.DataFrame:
    """Return each run's wall time and attempts (machine-dependent: not compared on a rerun)."""
    return data.runs.reindex(columns=["run", "status", "reused", "attempts", "duration_s"])
