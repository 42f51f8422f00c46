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


def _priced(df: pd.DataFrame, cost: str) -> set[str]:
    """The labels some price λ >= 0 picks: error_i + λ cost_i <= error_j + λ cost_j for every row j."""
    error, c = 1 - df["accuracy"].to_numpy(dtype=float), df[cost].to_numpy(dtype=float)
    picked = set()
    for i in range(len(df)):
        low, high, ok = 0.0, np.inf, True
        for j in range(len(df)):
            if c[j] > c[i]:
                low = max(low, (error[i] - error[j]) / (c[j] - c[i]))
            elif c[j] < c[i]:
                high = min(high, (error[j] - error[i]) / (c[i] - c[j]))
            elif error[i] > error[j]:
                ok = False
        if ok and low <= high + 1e-12:
            picked.add(str(df["label"].iloc[i]))
    return picked


def _priced_cases() -> list[tuple[str, pd.DataFrame, str]]:
    dent = _frame([("baseline", 1000, 0.92), ("a", 500, 0.91), ("dent", 300, 0.85), ("b", 100, 0.84),
                   ("dominated", 600, 0.80)])  # fmt: skip
    cases = [("a table with one dented front point", dent, "size_bytes"),
             ("a table with cost 'macs'", _pareto_cases()[4][1], "macs")]  # fmt: skip
    cases += [(name, df, "size_bytes") for name, df in _random_tables(seed=5, count=6)]
    return cases


@question(
    "07.priced",
    "Write priced(df, cost) that returns the SET of labels some price λ >= 0 picks: rows whose "
    "(1 - accuracy) + λ * cost is no larger than every other row's for at least one λ >= 0.",
    hint="for row i, every other row j bounds λ: a costlier j gives a lower bound (error_i - error_j) / "
    "(cost_j - cost_i), a cheaper j an upper bound, and a j of equal cost must not have a lower error; "
    "row i is picked when the largest lower bound (at least 0) is <= the smallest upper bound. "
    "These are the corners of the front's lower convex hull.",
)
def _priced_question(answer) -> bool:
    for name, df, cost in _priced_cases():
        got = _call(answer, df.copy(), cost, what="priced")
        if not isinstance(got, (set, frozenset, list, tuple)):
            raise Wrong(f"priced must return a set of labels, got {_short(got)}")
        expected = _priced(df, cost)
        if set(got) != expected:
            missing, extra = sorted(expected - set(got)), sorted(set(got) - expected)
            raise Wrong(f"for {name}: " + (f"missing {missing}" if missing else f"{extra} is never picked"))
    return True
