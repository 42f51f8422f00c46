"""Deep Compression on mnist5k: total compression and accuracy of LeNet-300-100 and LeNet-5, Huffman
coding against the entropy bound (per stream; a small stream whose most frequent gap has
probability above 1/2 cannot get within 2%: any prefix code spends a whole bit on it, which the
lines for large streams and for all bits together show), the lossless round trip, ONNX Runtime
against PyTorch, and ONNX Runtime's int8 against torch.ao's int8.

Baselines: ``mcv.train.baseline(name, data, epochs=10, seed=s)`` for training seeds 0, 1, 2; each
is compressed by ``mcv.deep_compression.deep_compression`` with the settings below (global magnitude
pruning, fine-tuning, k-means, centroid training, relative indices + Huffman). Compression is
fp32 bytes (4 per parameter) over the bytes of the packed file (``mcv.encode.pack``, header and
architecture included); every number is the mean over the 3 seeds (the spread, max - min, in
brackets). A control row trains each dense baseline the same extra epochs without compressing: the
pipeline's fine-tuning is also extra training.

The int8 table (seed 0) times each model at batch 1 and 256 in interleaved rounds, with the thread
count recorded; compare latencies only as ratios within this run.

    .venv/bin/python benchmarks/deep_compression.py        # ~5 minutes on an idle 2-core machine
"""

from __future__ import annotations

import copy
import statistics

import pandas as pd
import torch

import mcviz as mcv

SEEDS = (0, 1, 2)
EPOCHS = 10
SETTINGS = {
    "lenet300": {"sparsity": 0.95, "bits": 4, "prune_epochs": 8, "centroid_epochs": 2},
    "lenet5": {"sparsity": 0.96, "bits": None, "prune_epochs": 6, "centroid_epochs": 2},  # 8 conv / 5 fc
}
GOALS = {"lenet300": (50.0, 0.5), "lenet5": (45.0, 0.5)}  # (compression >=, accuracy drop <= points)
PAPER = {"lenet300": 40.0, "lenet5": 39.0}
STREAM_GOAL = 0.02
ROUNDS = 5


def _mean(values) -> str:
    values = list(values)
    return f"{statistics.mean(values):.2f} (±{(max(values) - min(values)) / 2:.2f})"


def main() -> None:
    data = mcv.data.load("mnist5k")
    x, y = data.test.tensors
    targets, streams, details = [], [], []
    for name, settings in SETTINGS.items():
        ratios, drops, control_drops, lossless, onnx_same, onnx_diff = [], [], [], [], [], []
        for s in SEEDS:
            dense = mcv.train.baseline(name, data, epochs=EPOCHS, seed=s, progress=False)
            run = mcv.deep_compression.deep_compression(dense, data, seed=s, **settings)
            final = run.stages.iloc[-1]
            ratios.append(final.ratio)
            drops.append(-final.change_points)
            control = copy.deepcopy(dense)
            extra = settings["prune_epochs"] + settings["centroid_epochs"]
            mcv.train.fit(control, data, epochs=extra, seed=s, progress=False)
            control_drops.append(100 * (mcv.train.evaluate(control, data) - final.accuracy))
            back = mcv.encode.unpack(mcv.encode.pack(run.model))
            with torch.no_grad():
                lossless.append(torch.equal(back(x), run.model(x)))
            deployed = mcv.export.OnnxModel(mcv.export.to_onnx(run.model))
            agreement = mcv.export.agreement(run.model, deployed, data)
            onnx_same.append(agreement.same_class == agreement.images)
            onnx_diff.append(agreement.max_abs_diff)
            table = mcv.encode.streams(run.model).assign(model=name, seed=s)
            streams.append(table)
            details.append(run.layers.assign(model=name, seed=s))
        goal_ratio, goal_drop = GOALS[name]
        mean_ratio, mean_drop = statistics.mean(ratios), statistics.mean(drops)
        targets += [
            (f"{name}: total compression (fp32 bytes / packed bytes)", f"{PAPER[name]:.0f}x",
             f">= {goal_ratio:.0f}x", f"{_mean(ratios)}x", mean_ratio >= goal_ratio),
            (f"{name}: accuracy drop (points; negative = gain)", "none", f"<= {goal_drop}",
             _mean(drops), mean_drop <= goal_drop),
            (f"{name}: accuracy drop against the control (dense + same extra epochs)", "-", "(shown)",
             _mean(control_drops), True),
            (f"{name}: pack -> unpack", "-", "identical outputs",
             f"{sum(lossless)} of {len(SEEDS)} identical", all(lossless)),
            (f"{name}: ONNX Runtime vs PyTorch classes (1,000 test images)", "-", "identical on every image",
             f"{sum(onnx_same)} of {len(SEEDS)} identical; max |logit diff| {max(onnx_diff):.1e}",
             all(onnx_same)),
        ]  # fmt: skip
    every = pd.concat(streams, ignore_index=True)
    worst = every.over_bound.max()
    within = int((every.over_bound <= STREAM_GOAL).sum())
    large = every[every.symbols >= 1000]
    total = every.coded_bits.sum() / every.entropy_bits.sum() - 1
    targets += [
        ("Huffman-coded bits vs the entropy bound, per stream", "-", f"within {STREAM_GOAL:.0%}",
         f"{within} of {len(every)} streams within; worst +{worst:.1%}", worst <= STREAM_GOAL),
        ("  the same, streams of >= 1,000 symbols", "-", f"within {STREAM_GOAL:.0%}",
         f"{int((large.over_bound <= STREAM_GOAL).sum())} of {len(large)} within; worst "
         f"+{large.over_bound.max():.1%}", bool((large.over_bound <= STREAM_GOAL).all())),
        ("  the same, all streams' bits together", "-", f"within {STREAM_GOAL:.0%}", f"+{total:.2%}",
         total <= STREAM_GOAL),
    ]  # fmt: skip
    print("## Targets (mnist5k, mean of 3 seeds)\n")
    print(
        pd.DataFrame(targets, columns=["measure", "paper", "goal", "measured", "met"]).to_string(
            index=False
        )
    )
    print("\n## Streams (bits over the entropy bound)\n")
    summary = every.groupby(["model", "layer", "stream"], sort=False).agg(
        symbols=("symbols", "mean"), bits_per_symbol=("bits_per_symbol", "mean"),
        over_bound_mean=("over_bound", "mean"), over_bound_max=("over_bound", "max"),
    )  # fmt: skip
    print(summary.round(4).to_string())
    print("\n## Layers (seed 0, the paper's Table 2-3 form)\n")
    print(pd.concat(details).query("seed == 0").drop(columns="seed").round(3).to_string(index=False))
    print("\n## int8 backends (seed 0): torch.ao against ONNX Runtime\n")
    print(int8_table(data).to_string(index=False))


def int8_table(data) -> pd.DataFrame:
    """Returns size, accuracy and latency at batch 1 and 256 of fp32 and int8 backends, timed in
    interleaved rounds (the median of ROUNDS medians)."""
    rows = []
    for name in SETTINGS:
        dense = mcv.train.baseline(name, data, epochs=EPOCHS, seed=0, progress=False)
        models = {
            "torch fp32": dense,
            "ONNX Runtime fp32": mcv.compress(dense, *mcv.registry.parse("onnx")),
            "torch.ao int8 dynamic": mcv.compress(dense, *mcv.registry.parse("int8:mode=dynamic")),
            "torch.ao int8 static": mcv.compress(dense, *mcv.registry.parse("int8:mode=static"), data=data),
            "ONNX Runtime int8 dynamic": mcv.compress(dense, *mcv.registry.parse("ort_int8:mode=dynamic")),
            "ONNX Runtime int8 static": mcv.compress(
                dense, *mcv.registry.parse("ort_int8:mode=static"), data=data
            ),
        }
        if name == "lenet300":
            del models["torch.ao int8 dynamic"]  # keep the table short: dynamic and static match for an MLP
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(ROUNDS):
            for batch in (1, 256):
                for label, m in models.items():
                    row = mcv.measure.model(m, data, label=label, latency=True, batch_size=batch, repeats=20)
                    times.setdefault((label, batch), []).append(row.latency_ms)
        for label, m in models.items():
            row = mcv.measure.model(m, data, label=label)
            rows.append({
                "model": name, "backend": label, "size_bytes": row.size_bytes, "file_bytes": row.file_bytes,
                "accuracy": row.accuracy,
                "latency_ms_b1": statistics.median(times[label, 1]),
                "latency_ms_b256": statistics.median(times[label, 256]),
                "threads": torch.get_num_threads(),
            })  # fmt: skip
    table = pd.DataFrame(rows)
    for batch in ("b1", "b256"):
        fp32 = table.groupby("model")[f"latency_ms_{batch}"].transform("first")
        table[f"speedup_{batch}"] = fp32 / table[f"latency_ms_{batch}"]
    return table.round(4)


if __name__ == "__main__":
    main()
