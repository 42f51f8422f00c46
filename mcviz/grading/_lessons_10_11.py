"""Questions of lessons 10 (quantizing language models) and 11 (compressing the pretrained MiniLM)."""

from __future__ import annotations

import math

import torch

from mcviz.grading._core import Wrong, _call, _short, question


def _weights():
    g = torch.Generator().manual_seed(10)
    return [
        ("a 4 x 16 weight at 4 bits, groups of 8", torch.randn(4, 16, generator=g), 4, 8),
        ("a 3 x 12 weight at 3 bits, groups of 4", torch.randn(3, 12, generator=g) * 0.05, 3, 4),
        ("a 2 x 8 weight at 2 bits, one group per row", torch.randn(2, 8, generator=g), 2, 8),
    ]


@question(
    "10.group_scale",
    "Write group_scales(w, bits, group_size) that returns the symmetric scale of every group of "
    "group_size consecutive columns of each row of w, as a tensor of shape (rows, groups).",
    hint="reshape w to (rows, groups, group_size), take the largest |w| of each group and divide by "
    "the largest code of a signed bits-bit grid (2**(bits-1) - 1).",
)
def _group_scale(answer) -> bool:
    for name, w, bits, g in _weights():
        got = _call(answer, w.clone(), bits, g, what="group_scales")
        if not torch.is_tensor(got):
            raise Wrong(f"group_scales must return a tensor, got {_short(got)}")
        expected = w.abs().reshape(w.shape[0], -1, g).amax(2) / (2 ** (bits - 1) - 1)
        if tuple(got.shape) != tuple(expected.shape):
            raise Wrong(f"the shape is {tuple(got.shape)} for {name}; expected {tuple(expected.shape)}")
        if not torch.allclose(got.float(), expected, rtol=1e-3, atol=1e-7):
            raise Wrong(f"the scales are off for {name}")
    return True


def _gptq_cases():
    g = torch.Generator().manual_seed(11)
    cases = []
    for out_f, in_f, j in ((3, 5, 0), (4, 6, 2), (2, 4, 3)):
        x = torch.randn(64, in_f, generator=g, dtype=torch.float64)
        h = 2 * x.T @ x / 64 + 0.01 * torch.eye(in_f, dtype=torch.float64)
        w = torch.randn(out_f, in_f, generator=g, dtype=torch.float64)
        q = torch.round(w[:, j] * 4) / 4
        cases.append((w, torch.linalg.inv(h), j, q))
    return cases


@question(
    "10.gptq_column",
    "Write gptq_update(W, Hinv, j, q): column j of W is quantized to q; return a new W whose "
    "column j is q and whose columns after j absorb the error as GPTQ (Optimal Brain Surgeon) does.",
    hint="the error of column j is e = (W[:, j] - q) / Hinv[j, j]; every later column k moves by "
    "-e * Hinv[j, k]. Columns before j do not change. Do not modify W in place.",
)
def _gptq_column(answer) -> bool:
    for w, hinv, j, q in _gptq_cases():
        before = w.clone()
        got = _call(answer, w, hinv, j, q, what="gptq_update")
        if not torch.equal(w, before):
            raise Wrong("gptq_update changed W in place; return a new tensor")
        if not torch.is_tensor(got) or tuple(got.shape) != tuple(w.shape):
            raise Wrong(f"gptq_update must return a tensor shaped like W, got {_short(got)}")
        expected = w.clone()
        err = (w[:, j] - q) / hinv[j, j]
        expected[:, j + 1 :] -= err[:, None] * hinv[j, j + 1 :][None, :]
        expected[:, j] = q
        if not torch.allclose(got.double(), expected, atol=1e-8):
            wrong = "column j" if not torch.allclose(got[:, j].double(), q) else "the later columns"
            raise Wrong(f"{wrong} differ(s) for a {tuple(w.shape)} weight with j = {j}")
    return True


@question(
    "11.two_four_bytes",
    "Write two_four_bytes(out_features, in_features) that returns the stored bytes of a 2:4-sparse "
    "fp32 Linear layer with a bias: the kept values, a 2-bit position index per kept value, the bias.",
    hint="half of the weights are kept, each 4 bytes; each kept weight also needs 2 bits (which of "
    "its 4 positions); round the index bytes up; the bias stays fp32.",
)
def _two_four_bytes(answer) -> bool:
    from torch import nn

    from mcviz.prune.semistructured import semistructured

    for out_f, in_f in ((8, 16), (384, 1536), (3, 4)):
        got = _call(answer, out_f, in_f, what="two_four_bytes")
        layer = semistructured(nn.Sequential(nn.Linear(in_f, out_f, device="meta").to_empty(device="cpu")))[0]
        expected = sum(r.nbytes for r in layer.mcviz_storage())
        if got != expected:
            raise Wrong(f"for a {out_f} x {in_f} layer got {_short(got)}, not what the layer stores")
    return True


@question(
    "11.nn_agreement",
    "Write nn_agreement(a, b): the fraction of rows i whose nearest other row (by cosine similarity) "
    "is the same under embeddings a and under embeddings b.",
    hint="normalize the rows, take the matrix of dot products, exclude each row itself (set the "
    "diagonal to -inf), argmax per row for a and for b, and count the rows where they agree.",
)
def _nn_agreement(answer) -> bool:
    from mcviz.measure_lm import _neighbours, nn_agreement  # measure_lm sits beside measure

    g = torch.Generator().manual_seed(12)
    for n, noise in ((20, 0.05), (30, 0.5), (12, 2.0)):
        a = torch.randn(n, 8, generator=g)
        b = a + noise * torch.randn(n, 8, generator=g)
        got = _call(answer, a.clone(), b.clone(), what="nn_agreement")
        expected = nn_agreement(b, _neighbours(a))
        try:
            value = float(got)
        except (TypeError, ValueError):
            raise Wrong(f"nn_agreement must return a number, got {_short(got)}") from None
        if not math.isclose(value, expected, abs_tol=1e-9):
            raise Wrong(f"got {value:.4f} for {n} rows; the neighbours were compared differently")
    return True
