"""Structured channel pruning (``mcv.prune.channels``) against the dense model on mnist5k.

For the seed CNN and LeNet-5 (baselines trained 3 epochs, seed 0): 50% of the channels of every
conv and hidden linear layer removed (L1 norm). Reports MACs and parameters dense / pruned,
test accuracy dense, pruned without fine-tuning and pruned after 1 epoch of ``mcv.train.fit``,
and latency at batch 256 with 2 threads, dense and pruned measured in the same run (rounds
interleaved, median of the rounds' medians). The issue's goal: dense / pruned latency >= 1.8.
Prints a markdown table. Takes about a minute on 2 cores (most of it training, cached after).

    .venv/bin/python benchmarks/pruning_structured.py
"""

from __future__ import annotations

import copy
import os
import statistics

import torch

import mcviz as mcv

MODELS = ("seed_cnn", "lenet5")
SPARSITY = 0.5
BATCH, THREADS = 256, 2
ROUNDS, REPEATS = 7, 20


def latencies(models: dict, input_shape) -> dict[str, float]:
    """Returns the median latency (ms) of each model; rounds interleave the models."""
    rounds = {name: [] for name in models}
    start_threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        for _ in range(ROUNDS):
            for name, m in models.items():
                r = mcv.measure.model(
                    m, input_shape=input_shape, latency=True, batch_size=BATCH, repeats=REPEATS, warmup=5
                )
                rounds[name].append(r.latency_ms)
    finally:
        torch.set_num_threads(start_threads)
    return {name: statistics.median(values) for name, values in rounds.items()}


def main() -> None:
    data = mcv.data.load("mnist5k")
    header = [
        "model",
        "MACs dense/pruned",
        "params dense/pruned",
        "accuracy dense",
        "pruned, no fine-tune",
        "pruned + 1 epoch",
        f"latency dense ms (b{BATCH} t{THREADS})",
        "latency pruned ms",
        "dense/pruned latency",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    shapes = []
    for name in MODELS:
        dense = mcv.train.baseline(name, data, epochs=3, seed=0, progress=False)
        pruned = mcv.prune.channels(dense, SPARSITY)
        tuned = copy.deepcopy(pruned)
        mcv.train.fit(tuned, data, epochs=1, seed=0, progress=False)
        d, p = mcv.measure.model(dense, data), mcv.measure.model(pruned, data)
        t = mcv.measure.model(tuned, data)
        lat = latencies({"dense": dense, "pruned": pruned}, data.input_shape)
        row = [
            name,
            f"{d.macs / p.macs:.2f}x",
            f"{d.params / p.params:.2f}x",
            f"{100 * d.accuracy:.1f}%",
            f"{100 * p.accuracy:.1f}%",
            f"{100 * t.accuracy:.1f}%",
            f"{lat['dense']:.3f}",
            f"{lat['pruned']:.3f}",
            f"{lat['dense'] / lat['pruned']:.2f}x",
        ]
        lines.append("| " + " | ".join(row) + " |")
        shapes.append(
            f"{name}: "
            + ", ".join(
                f"{n} {tuple(m.weight.shape)} -> {tuple(dict(pruned.named_children())[n].weight.shape)}"
                for n, m in dense.named_children()
                if hasattr(m, "weight")
            )
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}; {int(SPARSITY * 100)}% of channels removed per layer (L1 norm)")
    print(f"load average at the end (1, 5, 15 min): {load}; above ~0.5 other work shares the cores")
    print(f"latency: median of {ROUNDS} interleaved rounds of {REPEATS} batches; accuracy on the test split")
    print()
    print("\n".join(lines))
    print()
    print("\n".join(shapes))


if __name__ == "__main__":
    main()
