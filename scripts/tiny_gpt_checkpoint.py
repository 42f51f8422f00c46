"""Reproduces the tiny-GPT checkpoint that ships in mcviz/assets (what ``mcv.gpt.pretrained`` loads).

    .venv/bin/python scripts/tiny_gpt_checkpoint.py [OUT.pt]

It trains ``mcv.models.build("tiny_gpt")`` (4 layers, 128 dims, 4 heads: 0.82M parameters) on
Shakespeare's plays (``mcv.text.load("shakespeare", context=64)``: 70,128 training windows of
64 characters) with ``mcv.train.baseline`` (``mcv.train.fit``: Adam, single-threaded, seeded; the
result lands in the mcviz cache too), then saves the fp32 state_dict with the vocabulary, the
settings and the validation loss it reached. Same torch build and CPU: the same bytes.
It takes 15-30 minutes on one core (1,096 steps of 64 windows).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

import mcviz as mcv

SETTINGS = {"epochs": 1, "lr": 3e-3, "batch_size": 64, "seed": 0}
CORPUS = {"name": "shakespeare", "context": 64}
OUT = Path(__file__).resolve().parent.parent / "mcviz" / "assets" / mcv.gpt.CHECKPOINT


@torch.no_grad()
def val_loss(model, corpus) -> float:
    x, y = corpus.val.tensors
    total = sum(
        F.cross_entropy(model(x[i : i + 256]), y[i : i + 256], reduction="sum").item()
        for i in range(0, len(x), 256)
    )
    return total / y.numel()


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    corpus = mcv.text.load(CORPUS["name"], context=CORPUS["context"])
    start = time.perf_counter()
    model, history = mcv.train.baseline("tiny_gpt", corpus, progress=True, return_history=True, **SETTINGS)
    seconds = time.perf_counter() - start
    loss = val_loss(model, corpus)
    meta = {
        "vocab": corpus.vocab,
        "context": corpus.context,
        "options": dict(mcv.gpt.DEFAULTS),
        "corpus": dict(CORPUS),
        "training": dict(SETTINGS),
        "val_loss": loss,
        "history": history.to_dict(orient="list"),
        "torch": str(torch.__version__),  # a plain str: weights_only=True loads no TorchVersion
        "train_seconds": round(seconds, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "meta": meta}, out)
    print(f"wrote {out} ({out.stat().st_size:,} bytes): val loss {loss:.4f} nats/char in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
