"""The quantization issue's targets, measured: accuracy drops and sizes of PTQ, QAT and k-means
weight sharing on mnist5k (its 1,000-image test split), mean of 3 training seeds. Prints a
markdown table with each goal beside the measurement.

    .venv/bin/python benchmarks/quantization.py            # 3 seeds, 5 baseline epochs
    .venv/bin/python benchmarks/quantization.py --seeds 1  # quicker look
"""

from __future__ import annotations

import argparse
import statistics
import time

import mcviz as mcv

GOALS = {
    "int8 per-channel PTQ (weights + activations): drop": ("<= 0.5 points", lambda v: v <= 0.5),
    "int8 per-channel weight-only PTQ: drop": ("<= 0.5 points", lambda v: v <= 0.5),
    "int8 size_bytes / fp32": ("<= 25.5%", lambda v: v <= 25.5),
    "4-bit per-channel PTQ: drop": ("<= 2 points", lambda v: v <= 2),
    "4-bit QAT: drop": ("<= 0.5 points", lambda v: v <= 0.5),
    "2-bit k-means + fine-tuning: drop": ("<= 2 points", lambda v: v <= 2),
}


def measure_model(name: str, data, seed: int, epochs: int) -> dict[str, float]:
    base = mcv.train.baseline(name, data, epochs=epochs, seed=seed, progress=False)
    acc = mcv.train.evaluate(base, data)
    size = mcv.measure.model(base).size_bytes

    def drop(model) -> float:
        return 100 * (acc - mcv.train.evaluate(model, data))

    w8 = mcv.quantize.weights(base, 8, granularity="per_channel")
    return {
        "fp32 accuracy": 100 * acc,
        "int8 per-channel PTQ (weights + activations): drop": drop(
            mcv.quantize.ptq(base, data, 8, granularity="per_channel")),
        "int8 per-channel weight-only PTQ: drop": drop(w8),
        "int8 size_bytes / fp32": 100 * mcv.measure.model(w8).size_bytes / size,
        "4-bit per-channel PTQ: drop": drop(mcv.quantize.weights(base, 4, granularity="per_channel")),
        "4-bit QAT: drop": drop(mcv.quantize.qat(base, data, 4, epochs=2, seed=seed)),
        "2-bit k-means + fine-tuning: drop": drop(
            mcv.quantize.kmeans(base, 2, fine_tune_epochs=2, data=data, seed=seed)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5, help="baseline training epochs")
    parser.add_argument("--models", nargs="+", default=["lenet300", "lenet5"])
    args = parser.parse_args()
    data = mcv.data.load("mnist5k")
    start = time.perf_counter()
    results = {}
    for name in args.models:
        runs = [measure_model(name, data, seed, args.epochs) for seed in range(args.seeds)]
        results[name] = {k: statistics.mean(r[k] for r in runs) for k in runs[0]}
    print(f"mnist5k, test split of {len(data.test)} images, mean of {args.seeds} seeds, "
          f"baselines trained {args.epochs} epochs; {time.perf_counter() - start:.0f} s\n")
    header = ["measure", *args.models, "goal", "met?"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for key in results[args.models[0]]:
        goal, ok = GOALS.get(key, ("", None))
        values = [results[m][key] for m in args.models]
        met = "" if ok is None else ("yes" if all(ok(v) for v in values) else "NO")
        print("| " + " | ".join([key, *(f"{v:.2f}" for v in values), goal, met]) + " |")


if __name__ == "__main__":
    main()
