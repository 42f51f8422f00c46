"""Unstructured pruning of LeNet-300-100 on mnist5k: accuracy drop against the dense baseline.

Baselines: ``mcv.train.baseline("lenet300", data, epochs=5, seed=s)`` for training seeds 0, 1, 2;
every number is the mean over the 3 seeds (the spread, max - min, in brackets).

- 90% and 95% global magnitude pruning, then 3 epochs of ``mcv.train.fit`` (the pruned layers
  keep their zeros while training; checked after): accuracy drop in points, goals <= 0.5 (90%)
  and <= 1.5 (95%). A control row trains the dense baseline the same 3 extra epochs: the
  5-epoch baselines are not converged, so part of the fine-tuned models' gain is extra training.
- 50% random vs 50% global magnitude pruning without fine-tuning: both drops and their gap.

Prints a markdown table. Takes a few minutes on 2 cores (the baselines are cached after).

    .venv/bin/python benchmarks/pruning.py
"""

from __future__ import annotations

import copy
import statistics

import mcviz as mcv

SEEDS = (0, 1, 2)
EPOCHS, FINE_TUNE = 5, 3
GOALS = {0.9: 0.5, 0.95: 1.5}


def _points(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f} (±{(max(values) - min(values)) / 2:.2f})"


def main() -> None:
    data = mcv.data.load("mnist5k")
    rows: dict[str, list[float]] = {}
    accs: dict[str, list[float]] = {}

    def add(name: str, acc: float, base: float) -> None:
        accs.setdefault(name, []).append(100 * acc)
        rows.setdefault(name, []).append(100 * (base - acc))

    for s in SEEDS:
        dense = mcv.train.baseline("lenet300", data, epochs=EPOCHS, seed=s, progress=False)
        base = mcv.train.evaluate(dense, data)
        accs.setdefault("dense", []).append(100 * base)
        control = copy.deepcopy(dense)  # the same extra training without pruning
        mcv.train.fit(control, data, epochs=FINE_TUNE, seed=s, progress=False)
        add(f"control: dense + {FINE_TUNE} ep (no pruning)", mcv.train.evaluate(control, data), base)
        for sparsity in GOALS:
            pruned = mcv.prune.magnitude(dense, sparsity, scope="global")
            add(f"magnitude global {sparsity:.0%}, no fine-tune", mcv.train.evaluate(pruned, data), base)
            mcv.train.fit(pruned, data, epochs=FINE_TUNE, seed=s, progress=False)
            measured = mcv.measure.model(pruned)
            if abs(measured.sparsity - sparsity) > 1e-3:
                raise RuntimeError(f"fine-tuning changed the sparsity to {measured.sparsity}")
            tuned = mcv.train.evaluate(pruned, data)
            add(f"magnitude global {sparsity:.0%} + {FINE_TUNE} ep fine-tune", tuned, base)
        add("magnitude global 50%, no fine-tune",
            mcv.train.evaluate(mcv.prune.magnitude(dense, 0.5, scope="global"), data), base)
        add("random 50%, no fine-tune", mcv.train.evaluate(mcv.prune.random(dense, 0.5, seed=s), data), base)

    print(f"LeNet-300-100 on mnist5k (test split, 1000 images), baselines {EPOCHS} epochs, mean of seeds "
          f"{list(SEEDS)} (± half the range)\n")
    print("| model | test accuracy (%) | drop (points) | goal |")
    print("|---|---|---|---|")
    print(f"| dense baseline | {_points(accs['dense'])} | - | - |")
    for name, drops in rows.items():
        goal = ""
        for sparsity, limit in GOALS.items():
            if name == f"magnitude global {sparsity:.0%} + {FINE_TUNE} ep fine-tune":
                met = statistics.mean(drops) <= limit
                goal = f"<= {limit} {'met' if met else 'NOT met'}"
        print(f"| {name} | {_points(accs[name])} | {_points(drops)} | {goal or '-'} |")
    gap = [r - m for r, m in zip(rows["random 50%, no fine-tune"], rows["magnitude global 50%, no fine-tune"],
                                 strict=True)]
    print(f"\nRandom minus magnitude drop at 50% sparsity, no fine-tune: {_points(gap)} points.")


if __name__ == "__main__":
    main()
