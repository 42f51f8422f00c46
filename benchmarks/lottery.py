"""The pruning issue's lottery-ticket target: on mnist5k, LeNet-300-100, iterative magnitude
pruning with rewinding to the initial weights, down to <= 20% of the weights remaining; the
winning ticket vs a random re-initialization of the same mask, mean of 3 seeds. Prints a
markdown table.

    .venv/bin/python benchmarks/lottery.py                 # 8 rounds of 20%: 16.8% remaining
    .venv/bin/python benchmarks/lottery.py --seeds 1 --epochs 3
"""

from __future__ import annotations

import argparse
import time

import mcviz as mcv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    data = mcv.data.load("mnist5k")
    start = time.perf_counter()
    tables = [mcv.prune.lottery_ticket("lenet300", data, rounds=args.rounds, rate=args.rate,
                                       epochs=args.epochs, seed=s) for s in range(args.seeds)]
    mean = sum(t[["remaining", "ticket_accuracy", "random_accuracy"]] for t in tables) / len(tables)
    print(f"mnist5k, LeNet-300-100, rate {args.rate} per round, {args.epochs} epochs per training, "
          f"rewind to init, mean of {args.seeds} seeds; {time.perf_counter() - start:.0f} s\n")
    print("| round | remaining | ticket accuracy | random re-init accuracy | ticket - random (points) |")
    print("|---|---|---|---|---|")
    for r, row in mean.iterrows():
        gap = 100 * (row.ticket_accuracy - row.random_accuracy)
        print(f"| {r} | {row.remaining:.3f} | {row.ticket_accuracy:.4f} | {row.random_accuracy:.4f} | "
              f"{gap:+.2f} |")
    last = mean.iloc[-1]
    verdict = "yes" if last.ticket_accuracy > last.random_accuracy else "NO"
    print(f"\nAt {last.remaining:.1%} remaining the winning ticket beats random re-init: {verdict}")


if __name__ == "__main__":
    main()
