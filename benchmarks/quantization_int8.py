"""Real int8 execution (``mcv.quantize.int8``) against fp32 on mnist5k: accuracy, size and speed.

For LeNet-300-100, LeNet-5 and seed_cnn (baselines trained 3 epochs, seeds 0, 1, 2): accuracy
(mean over the seeds), size_bytes and file_bytes as fp32 / int8 (how many times smaller), and
latency as fp32 time / int8 time (> 1: int8 is faster) at batch 256 and batch 1, with 2 threads
and 1 thread, measured in the same run, rounds interleaved, median of the rounds' medians.
Prints a markdown table. Takes a few minutes on 2 cores (most of it training, cached after).

    .venv/bin/python benchmarks/quantization_int8.py
"""

from __future__ import annotations

import os
import statistics

import torch

import mcviz as mcv

MODELS = ("lenet300", "lenet5", "seed_cnn")
SEEDS = (0, 1, 2)
METHODS = ("fp32", "int8 dynamic", "int8 static")
SETTINGS = [(256, 2), (256, 1), (1, 2), (1, 1)]  # (batch size, threads)
ROUNDS = 5


def variants(model, data):
    return {
        "fp32": model,
        "int8 dynamic": mcv.quantize.int8(model, data, mode="dynamic"),
        "int8 static": mcv.quantize.int8(model, data, mode="static"),
    }


def latencies(models, data) -> dict[tuple[str, int, int], float]:
    """Returns median latency (ms) per (method, batch size, threads); rounds interleave methods."""
    out = {}
    start_threads = torch.get_num_threads()
    try:
        for batch, threads in SETTINGS:
            torch.set_num_threads(threads)
            repeats = 30 if batch > 1 else 200
            rounds = {name: [] for name in models}
            for _ in range(ROUNDS):
                for name, m in models.items():
                    r = mcv.measure.model(
                        m,
                        input_shape=data.input_shape,
                        latency=True,
                        batch_size=batch,
                        repeats=repeats,
                        warmup=5,
                    )
                    rounds[name].append(r.latency_ms)
            for name, values in rounds.items():
                out[(name, batch, threads)] = statistics.median(values)
    finally:
        torch.set_num_threads(start_threads)
    return out


def main() -> None:
    data = mcv.data.load("mnist5k")
    header = ["model", "method", "accuracy (mean of 3 seeds)", "size_bytes fp32/int8", "file_bytes fp32/int8"]
    header += [f"speed-up b{b} t{t}" for b, t in SETTINGS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    times = []
    for name in MODELS:
        acc = {method: [] for method in METHODS}
        for seed in SEEDS:
            model = mcv.train.baseline(name, data, epochs=3, seed=seed, progress=False)
            models = variants(model, data)
            for method, m in models.items():
                acc[method].append(mcv.train.evaluate(m, data))
            if seed == 0:
                sizes = {method: mcv.measure.model(m) for method, m in models.items()}
                lat = latencies(models, data)
        for method in METHODS:
            fp, me = sizes["fp32"], sizes[method]
            mean, sd = statistics.mean(acc[method]), statistics.stdev(acc[method])
            row = [name, method, f"{100 * mean:.2f} ± {100 * sd:.2f}"]
            row += [f"{fp.size_bytes / me.size_bytes:.2f}x", f"{fp.file_bytes / me.file_bytes:.2f}x"]
            row += [f"{lat[('fp32', b, t)] / lat[(method, b, t)]:.2f}x" for b, t in SETTINGS]
            lines.append("| " + " | ".join(row) + " |")
        times.append(
            f"{name} fp32 ms: "
            + ", ".join(f"b{b} t{t} {lat[('fp32', b, t)]:.3f}" for b, t in SETTINGS)
            + "; int8 static ms: "
            + ", ".join(f"b{b} t{t} {lat[('int8 static', b, t)]:.3f}" for b, t in SETTINGS)
            + "; int8 dynamic ms: "
            + ", ".join(f"b{b} t{t} {lat[('int8 dynamic', b, t)]:.3f}" for b, t in SETTINGS)
        )
    engine = torch.backends.quantized.engine
    print(f"torch {torch.__version__}, engine {engine}; tN = N torch threads, bN = batch of N")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at the end (1, 5, 15 min): {load}; above ~0.5 other work shares the cores")
    print("speed-up = fp32 latency / int8 latency (> 1: int8 faster), median of rounds; seed 0 models")
    print()
    print("\n".join(lines))
    print()
    print("\n".join(times))


if __name__ == "__main__":
    main()
