"""mcviz.timing: interleaved rounds keep each model's quietest round; speedup's verdict uses the spread."""

from __future__ import annotations

import dataclasses

import pytest
from torch import nn

import mcviz as mcv
from mcviz import measure, timing


def _timed(label, ms, iqr):
    return measure.Measurement(label, 1, 1, 0.0, 32.0, 4, 4, 4, 1, None, ms, iqr, 8, 1)


@pytest.mark.parametrize(
    ("ref", "other", "ratio", "verdict"),
    [((2.0, 0.1), (1.0, 0.1), 2.0, "faster"), ((1.0, 0.1), (2.0, 0.1), 0.5, "slower"),
     ((1.0, 0.3), (1.2, 0.3), 1 / 1.2, "no clear difference")],
)  # fmt: skip
def test_speedup_ratio_and_verdict(ref, other, ratio, verdict):
    s = timing.speedup(_timed("a", *ref), _timed("b", *other))
    assert s.ratio == pytest.approx(ratio) and s.verdict == verdict
    assert s.clear == (verdict != "no clear difference")
    assert str(s).endswith(f"({verdict})")


def test_speedup_needs_timed_measurements():
    untimed = dataclasses.replace(
        _timed("a", 1.0, 0.1), latency_ms=None, latency_iqr_ms=None, batch_size=None, threads=None
    )
    with pytest.raises(ValueError, match="has no latency: measure it with latency=True"):
        timing.speedup(untimed, _timed("b", 1.0, 0.1))
    with pytest.raises(TypeError, match="must be a mcv.measure.Measurement"):
        timing.speedup({"latency_ms": 1}, _timed("b", 1.0, 0.1))


def test_interleaved_keeps_each_models_quietest_round(monkeypatch):
    calls = []
    times = iter([5.0, 9.0, 3.0, 8.0, 4.0, 7.0])  # rounds: (a, b), (a, b), (a, b)

    def fake(model, data=None, *, label, **kw):
        calls.append(label)
        return _timed(label, next(times), 0.1)

    monkeypatch.setattr(measure, "model", fake)
    table = timing.interleaved({"a": nn.Linear(2, 2), "b": nn.Linear(2, 2)}, rounds=3, input_shape=(2,))
    assert calls == ["a", "b"] * 3  # interleaved, in the given order
    assert list(table["label"]) == ["a", "b"] and list(table["latency_ms"]) == [3.0, 7.0]


def test_interleaved_times_real_models(digits, digits_mlp):
    table = timing.interleaved({"fp32": digits_mlp, "fp16": mcv.quantize.fp16(digits_mlp)}, digits,
                               rounds=2, batch_size=8, repeats=3)  # fmt: skip
    assert list(table["label"]) == ["fp32", "fp16"] and (table["latency_ms"] > 0).all()
    assert (table["batch_size"] == 8).all()


@pytest.mark.parametrize("rounds", [0, 101])
def test_interleaved_bounds_the_rounds(rounds):
    with pytest.raises(ValueError, match="rounds must be an int in"):
        timing.interleaved({"a": nn.Linear(2, 2)}, rounds=rounds, input_shape=(2,))


def test_speedup_reads_table_rows_too():
    table = measure.table([_timed("a", 2.0, 0.1), _timed("b", 1.0, 0.1)])
    assert timing.speedup(table.iloc[0], table.iloc[1]).ratio == 2.0
    rows = list(table.itertuples(index=False))
    assert timing.speedup(rows[0], rows[1]).verdict == "faster"
