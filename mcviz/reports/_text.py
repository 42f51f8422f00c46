"""What report templates call: ``record`` (the results of a run) and the computed sentences
(``summary``, ``budget_summary``). Templates define no functions; their logic lives here."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from mcviz._checks import check_frame, shorten

RESULTS_ENV = "MCVIZ_RESULTS_DIR"
ROWS_FILE = "_rows.json"
KERNEL_FILE = "_kernel.json"


def record(table):
    """Return ``table`` unchanged; inside :func:`run` also save its rows as the report results.

    Outside a run (``$MCVIZ_RESULTS_DIR`` unset: nbval, an interactive session) nothing is
    written. Call it once per report with the metric table (a DataFrame).
    """
    check_frame(table, "table")
    folder = os.environ.get(RESULTS_ENV)
    if not folder:
        return table
    folder = Path(folder)
    table.to_csv(folder / "results.csv", index=False)
    rows = json.loads(table.to_json(orient="records", double_precision=15))
    (folder / ROWS_FILE).write_text(json.dumps(rows, indent=1))
    kernel = {"threads": None, "cpu_capability": None}
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        kernel["threads"] = torch.get_num_threads()
        kernel["cpu_capability"] = torch.backends.cpu.get_cpu_capability()  # kernels' instruction set
    (folder / KERNEL_FILE).write_text(json.dumps(kernel))
    return table


def summary(table, *, baseline: str = "baseline", cost: str = "size_bytes") -> str:
    """Return one sentence per compressed row comparing its ``cost`` and accuracy to baseline.

    Example: ``"fp16 is 2.00x smaller than the baseline at +0.0000 accuracy."``. The table
    (``mcv.measure.table`` output with a ``label`` column) is not modified.

    Raises:
        ValueError: no row is labelled ``baseline``.
    """
    import pandas as pd

    check_frame(table, "table", ["label", cost])
    rows = table.set_index("label")
    if baseline not in rows.index:
        raise ValueError(f"summary needs a row labelled {baseline!r}, got {shorten(list(rows.index))}")
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

    from mcviz import measure, tradeoff

    check_frame(table, "table", ["label"])
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
        raise ValueError(f"budget_summary needs a row labelled {baseline!r}, got {shorten(list(rows.index))}")
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
