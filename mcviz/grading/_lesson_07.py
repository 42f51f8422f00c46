"""Questions of lesson 07 (the optimization view): the Pareto front and the best row under a budget.

Both are graded on hand-made tables (ties of every kind) and on seeded random tables with many
ties, never on trained models, so grading is instant and deterministic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mcviz import tradeoff
from mcviz.grading._core import Wrong, _call, _short, question


def _frame(rows, cost: str = "size_bytes", metric: str = "accuracy") -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["label", cost, metric])


def _random_tables(seed: int = 7, count: int = 6) -> list[tuple[str, pd.DataFrame]]:
    """Tables whose costs and accuracies come from small grids, so equal values are common."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        n = int(rng.integers(6, 30))
        df = pd.DataFrame(
            {
                "label": [f"config {k}.{i}" for i in range(n)],
                "size_bytes": rng.integers(1, 12, n) * 1000,
                "accuracy": rng.integers(80, 96, n) / 100,
            }
        )
        out.append((f"random table {k + 1} ({n} rows)", df))
    return out


def _pareto_cases() -> list[tuple[str, pd.DataFrame, str, str]]:
    """(name, table, cost, metric): the tables the Pareto front is graded on."""
    lesson = _frame(
        [
            ("baseline", 10_240, 0.95),
            ("fp16", 5_120, 0.95),  # the baseline's accuracy for half its bytes
            ("int8", 2_560, 0.94),
            ("int4", 1_280, 0.90),
            ("bad", 4_000, 0.80),  # dominated by int8
            ("sparse", 2_560, 0.93),  # int8's bytes, less accurate
        ]
    )
    duplicates = _frame([("a", 10, 0.5), ("b", 10, 0.5), ("c", 20, 0.9), ("d", 30, 0.9), ("e", 5, 0.4)])
    staircase = _frame([(f"s{i}", 100 * (i + 1), 0.5 + 0.05 * i) for i in range(6)])
    one_winner = _frame([("big", 900, 0.80), ("tiny", 100, 0.99), ("mid", 400, 0.90)])
    macs = _frame(
        [
            ("dense", 266_200, 0.91),
            ("channels", 125_600, 0.92),
            ("student", 25_408, 0.89),
            ("kd2", 25_408, 0.85),
        ],
        cost="macs",
    )
    shuffled = lesson.sample(frac=1.0, random_state=3)  # rows in no order, index not 0..n-1
    cases = [
        ("a table like the lesson's", lesson, "size_bytes", "accuracy"),
        ("a table with exact duplicates", duplicates, "size_bytes", "accuracy"),
        ("a table where every row is on the front", staircase, "size_bytes", "accuracy"),
        ("a table where the cheapest row is also the best", one_winner, "size_bytes", "accuracy"),
        ("a table with cost 'macs'", macs, "macs", "accuracy"),
        ("the lesson's table with its rows shuffled", shuffled, "size_bytes", "accuracy"),
        ("a one-row table", lesson.iloc[:1], "size_bytes", "accuracy"),
    ]
    cases += [(name, df, "size_bytes", "accuracy") for name, df in _random_tables()]
    return cases


@question(
    "07.pareto",
    "Write pareto_labels(df, cost, metric) that returns the set of labels of the rows no other row "
    "dominates (cost <= and metric >= with at least one strict); of rows equal in both, only the "
    "first is kept, as mcv.tradeoff.pareto does.",
    hint="sort the rows by cost (cheapest first) and, among equal costs, by metric (best first), "
    "keeping the table's order otherwise; walk down the sorted rows and keep a row only when its "
    "metric beats every row kept so far.",
)
def _pareto(answer) -> bool:
    for name, df, cost, metric in _pareto_cases():
        got = _call(answer, df.copy(), cost, metric, what="pareto_labels")
        if isinstance(got, (str, bytes)) or not isinstance(got, (set, frozenset, list, tuple, pd.Series)):
            raise Wrong(f"pareto_labels must return a set of labels, got {type(got).__name__}")
        got = set(got)
        front = tradeoff.pareto(df, cost=cost, metric=metric)
        expected = set(front["label"])
        if got == expected:
            continue
        unknown = got - set(df["label"])
        if unknown:
            raise Wrong(f"pareto_labels returns {_short(sorted(map(str, unknown)))}, not labels of {name}")
        missing, extra = sorted(expected - got), sorted(got - expected)
        for label in extra:
            row = df[df["label"] == label].iloc[0]
            equal = set(df["label"][(df[cost] == row[cost]) & (df[metric] == row[metric])]) - {label}
            if equal & expected:
                raise Wrong(
                    f"pareto_labels keeps {label!r}, equal in {cost} and {metric} to an earlier row, "
                    f"for {name}; of equal rows keep only the first"
                )
        if missing:
            raise Wrong(f"pareto_labels leaves out {missing[0]!r}, which no row dominates, for {name}")
        raise Wrong(f"pareto_labels keeps {extra[0]!r}, which another row dominates, for {name}")
    return True


def _select_cases() -> list[tuple[str, pd.DataFrame, str, float]]:
    """(name, table, cost, budget): every budget admits at least one row."""
    lesson = _pareto_cases()[0][1]
    ties = _frame([("first", 300, 0.90), ("cheaper", 200, 0.90), ("same", 200, 0.90), ("worse", 100, 0.85)])
    cases = [
        ("the lesson-like table, budget 5,000", lesson, "size_bytes", 5_000),
        ("the lesson-like table, budget 5,120 (a row costs exactly that)", lesson, "size_bytes", 5_120),
        ("the lesson-like table, budget 1,280", lesson, "size_bytes", 1_280),
        ("the lesson-like table, budget 1e9", lesson, "size_bytes", 1e9),
        ("a table with ties in accuracy, budget 300", ties, "size_bytes", 300),
        ("a table with ties in accuracy, budget 150", ties, "size_bytes", 150),
        ("a table with cost 'macs', budget 130,000", _pareto_cases()[4][1], "macs", 130_000),
    ]
    for name, df in _random_tables(seed=11, count=5):
        for q in (0.0, 0.3, 0.7):
            cases.append((f"{name}, budget {df['size_bytes'].quantile(q):g}", df, "size_bytes",
                          float(df["size_bytes"].quantile(q))))  # fmt: skip
    return cases


@question(
    "07.select",
    "Write best_under(df, cost, budget) that returns the label of the most accurate row whose cost "
    "is <= budget; ties go to the cheaper row, then to the first, as mcv.tradeoff.select does.",
    hint="keep only the rows with cost <= budget (the budget itself fits); among them find the highest "
    "accuracy; of the rows that reach it take the lowest cost, and of those the earliest row.",
)
def _select(answer) -> bool:
    for name, df, cost, budget in _select_cases():
        got = _call(answer, df.copy(), cost, budget, what="best_under")
        if not isinstance(got, str) or not (df["label"] == got).any():
            raise Wrong(f"best_under returns {_short(got)}, not a label of {name}")
        expected = tradeoff.select(df, cost=cost, budget=budget)
        if got == expected["label"]:
            continue
        row = df[df["label"] == got].iloc[0]
        if row[cost] > budget:
            raise Wrong(f"best_under picks {got!r}, whose {cost} is over the budget, for {name}")
        if row["accuracy"] < expected["accuracy"]:
            raise Wrong(f"best_under picks {got!r}, but a row within the budget is more accurate, for {name}")
        raise Wrong(f"best_under picks {got!r} from rows of equal accuracy, for {name}; break the tie")
    return True
