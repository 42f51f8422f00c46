"""Issue #5's targets: knowledge distillation and the best combined prune + quantize model.

mnist5k (3,500 train / 500 val / 1,000 test), mean of 3 training seeds. Prints markdown tables.

Distillation: a LeNet-5 teacher (trained once, seed 0) -> a small_cnn student with >= 10x fewer
parameters, against the same student trained alone on the same labels. The KD settings (T, alpha)
are chosen by mean VALIDATION accuracy over the seeds; the tables report TEST accuracy. With 10% of
the labels, the student alone trains on those 350 images (its epochs also chosen on validation),
while the KD student sees the teacher's soft targets on all 3,500 and the 350 labels.

Combined: LeNet-300-100 baselines (5 epochs, seeds 0-2) compressed by one chain fixed in advance
(global magnitude pruning, fine-tuning, 4-bit k-means with the mask kept), size_bytes vs fp32.

    .venv/bin/python benchmarks/distill_tradeoff.py
    .venv/bin/python benchmarks/distill_tradeoff.py --seeds 1 --student-epochs 10   # quick look
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

import mcviz as mcv

CHAIN = (
    "magnitude:sparsity=0.92,scope=global + finetune:epochs=3,seed={seed}"
    " + kmeans:bits=4,fine_tune_epochs=1,seed={seed}"
)


def student(args, data, seed):
    return mcv.models.build(
        "small_cnn", input_shape=data.input_shape, num_classes=data.num_classes, width=args.width, seed=seed
    )


def alone(args, data, train_data, seed, epochs):
    net = student(args, data, seed)
    mcv.train.fit(net, train_data, epochs=epochs, seed=seed, progress=False)
    return mcv.train.evaluate(net, data, "val"), mcv.train.evaluate(net, data, "test")


def kd(args, data, teacher, seed, temperature, alpha, labels):
    net = student(args, data, seed)
    mcv.distill.fit(
        net, teacher, data, temperature=temperature, alpha=alpha, epochs=args.student_epochs,
        seed=seed, labels=labels, progress=False,
    )  # fmt: skip
    return mcv.train.evaluate(net, data, "val"), mcv.train.evaluate(net, data, "test")


def best(runs: dict) -> tuple:
    """Returns (setting, test accuracies) of the setting with the best mean validation accuracy."""
    key = max(runs, key=lambda k: np.mean([v for v, _ in runs[k]]))
    return key, [t for _, t in runs[key]]


def pts(x) -> str:
    return f"{100 * np.mean(x):.2f} ± {100 * np.std(x):.2f}"


def distillation(args, data) -> list[tuple]:
    teacher = mcv.train.baseline("lenet5", data, epochs=args.teacher_epochs, seed=0, progress=False)
    t_acc = mcv.train.evaluate(teacher, data)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    ratio = count(teacher) / count(student(args, data, 0))
    seeds = range(args.seeds)
    grid = list(itertools.product(args.temperatures, args.alphas))
    rows = []
    for labels in (1.0, 0.1):
        train_data = mcv.data.subset(data, labels) if labels < 1 else data
        solo_epochs = [args.student_epochs] + ([10 * args.student_epochs] if labels < 1 else [])
        solo = {e: [alone(args, data, train_data, s, e) for s in seeds] for e in solo_epochs}
        taught = {(t, a): [kd(args, data, teacher, s, t, a, labels) for s in seeds] for t, a in grid}
        solo_key, solo_test = best(solo)
        kd_key, kd_test = best(taught)
        gain = 100 * (np.mean(kd_test) - np.mean(solo_test))
        noise = 100 * np.std(np.array(kd_test) - np.array(solo_test))
        rows.append((labels, solo_key, solo_test, kd_key, kd_test, gain, noise))
        means = {k: 100 * np.mean(np.array(r), axis=0) for k, r in taught.items()}  # (val, test)
        shown = ", ".join(f"T{t} a{a}: {v:.2f}/{x:.2f}" for (t, a), (v, x) in means.items())
        print(f"labels {labels:g}: every KD setting (val / test mean, %): {shown}", flush=True)
    print(f"\nteacher LeNet-5 ({args.teacher_epochs} epochs, seed 0): test {100 * t_acc:.2f}%; "
          f"student small_cnn width {args.width}: {ratio:.1f}x fewer parameters; "
          f"{args.student_epochs} student epochs, mean ± std of {args.seeds} seeds\n")  # fmt: skip
    print("| labels seen | alone (epochs chosen on val) | KD (T, alpha chosen on val) | KD - alone (points) "
          "| std of the paired difference |")
    print("|---|---|---|---|---|")
    for labels, solo_key, solo_test, (t, a), kd_test, gain, noise in rows:
        print(f"| {labels:.0%} | {pts(solo_test)} ({solo_key} ep) | {pts(kd_test)} (T={t}, alpha={a}) "
              f"| {gain:+.2f} | {noise:.2f} |")  # fmt: skip
    full = rows[0]
    print(f"\nKD student (full labels) vs teacher: {100 * (np.mean(full[4]) - t_acc):+.2f} points")
    return rows


def combined(args, data) -> None:
    print(f"\nLeNet-300-100, 5-epoch baselines, chain: {CHAIN.format(seed='S')}\n")
    print("| seed | fp32 size_bytes | fp32 accuracy | compressed size_bytes | smaller | accuracy "
          "| drop (points) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    ratios, drops = [], []
    for seed in range(args.seeds):
        base = mcv.train.baseline("lenet300", data, epochs=5, seed=seed, progress=False)
        small = mcv.compress(base, *mcv.registry.parse(CHAIN.format(seed=seed)), data=data)
        b, c = mcv.measure.model(base, data), mcv.measure.model(small, data)
        ratios.append(b.size_bytes / c.size_bytes)
        drops.append(100 * (b.accuracy - c.accuracy))
        print(f"| {seed} | {b.size_bytes:,} | {100 * b.accuracy:.2f} | {c.size_bytes:,} | {ratios[-1]:.1f}x "
              f"| {100 * c.accuracy:.2f} | {drops[-1]:+.2f} |")  # fmt: skip
    print(f"| mean | | | | {np.mean(ratios):.1f}x | | {np.mean(drops):+.2f} |")
    met = np.mean(ratios) >= 20 and np.mean(drops) <= 1
    print(f"\n>= 20x smaller at <= 1 point drop: {'yes' if met else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--student-epochs", type=int, default=30)
    parser.add_argument("--width", type=int, default=16, help="small_cnn student width")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[2.0, 4.0])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 0.9])
    parser.add_argument("--skip-kd", action="store_true")
    args = parser.parse_args()
    data = mcv.data.load("mnist5k")
    start = time.perf_counter()
    if not args.skip_kd:
        distillation(args, data)
    combined(args, data)
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
