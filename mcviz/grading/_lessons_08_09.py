"""Questions of lessons 08 (Deep Compression) and 09 (interpretability and deployment).

Graded on small hand-made and seeded random inputs against mcviz's own functions (``mcv.encode``,
``mcv.stats``, ``mcv.explain``), never on trained models, so grading is instant."""

from __future__ import annotations

import numpy as np
import torch

from mcviz.grading._core import Wrong, _call, _number, question

# ---- lesson 08: Deep Compression ---------------------------------------------------------------


def _histograms() -> list[tuple[str, list[int]]]:
    rng = np.random.default_rng(8)
    cases = [
        ("the lesson's histogram [5, 1, 1, 2]", [5, 1, 1, 2]),
        ("a uniform histogram of 8 symbols", [3] * 8),
        ("a skewed histogram", [90, 5, 3, 1, 1]),
        ("a histogram with unused symbols", [0, 7, 0, 7, 2, 0, 1]),
    ]
    cases += [(f"random histogram {i + 1}", [int(c) for c in rng.integers(0, 50, 12)]) for i in range(4)]
    return cases


@question(
    "08.huffman_length",
    "Write huffman_average_length(counts) that builds a Huffman code for a histogram (counts[s] = "
    "how often symbol s occurs) and returns its average codeword length in bits per symbol.",
    hint="keep a heap of (count, group of symbols); pop the two smallest, add 1 to the length of "
    "every symbol in both, push their merge; then average length = sum(count * length) / sum(count). "
    "A histogram with one used symbol still needs 1 bit per symbol.",
)
def _huffman_length(answer) -> bool:
    from mcviz.encode import huffman

    for name, counts in _histograms():
        got = _number(_call(answer, list(counts), what="huffman_average_length"), "the average length")
        lengths = huffman.code_lengths(counts)
        expected = huffman.coded_bits(counts, lengths) / sum(counts)
        if abs(got - expected) > 1e-9:
            bound = huffman.entropy(counts)
            raise Wrong(f"{got:.4f} bits per symbol for {name}; a Huffman code needs between {bound:.4f} "
                        f"(the entropy) and {bound + 1:.4f}, and exactly the optimum")  # fmt: skip
    return True


def _masks() -> list[tuple[str, np.ndarray, int]]:
    rng = np.random.default_rng(9)
    example = np.zeros(16, dtype=bool)
    example[[1, 4, 15]] = True
    cases = [("the paper's example with 3-bit indices", example, 3)]
    cases += [(f"a random mask of density {d} with {b}-bit indices", rng.random(300) < d, b)
              for d, b in ((0.05, 3), (0.1, 5), (0.02, 4), (0.5, 2))]  # fmt: skip
    cases.append(("an empty mask", np.zeros(20, dtype=bool), 3))
    return cases


@question(
    "08.relative_indices",
    "Write relative_entries(mask, index_bits) returning the list of relative-index entries of the "
    "True positions of a 1-D bool mask: each kept weight's gap (zeros skipped since the previous "
    "kept one), with a filler entry 2**index_bits - 1 (skip that many, no weight) before a gap that "
    "does not fit.",
    hint="walk the kept positions; gap = position - previous - 1 (previous starts at -1); while "
    "gap >= F (F = 2**index_bits - 1) emit F and subtract F; then emit the gap.",
)
def _relative_indices(answer) -> bool:
    from mcviz.encode import sparse

    for name, mask, bits in _masks():
        got = _call(answer, mask.copy(), bits, what="relative_entries")
        try:
            entries = [int(v) for v in got]
        except (TypeError, ValueError):
            raise Wrong(f"relative_entries must return a list of ints, got {type(got).__name__}") from None
        expected = sparse.relative_indices(mask, bits).tolist()
        if entries != expected:
            raise Wrong(
                f"the entries for {name} are not right (you gave {len(entries)}, expected {len(expected)})"
            )
    return True


# ---- lesson 09: interpretability and deployment -------------------------------------------------


def _pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(10)
    a = rng.random(1000) < 0.92
    b = a.copy()
    b[:40] = ~b[:40]
    c = a.copy()
    c[rng.choice(1000, 5, replace=False)] = True
    return [
        ("two models that differ on 40 images", a, b),
        ("a model and itself", a, a.copy()),
        ("a model that fixes a few images", a, c),
        ("a tiny case", np.array([True, True, False, True]), np.array([True, False, False, False])),
    ]


@question(
    "09.mcnemar",
    "Write mcnemar_p(correct_a, correct_b): the two-sided p-value of McNemar's exact test for two "
    "models' correctness (bool arrays) on the same test images.",
    hint="count b = images only A gets right and c = only B; under 'same accuracy' each of the "
    "n = b + c is a fair coin, so p = min(1, 2 * P(X <= min(b, c))) with X ~ Binomial(n, 1/2) "
    "(math.comb); p = 1 when n = 0.",
)
def _mcnemar(answer) -> bool:
    from mcviz import stats

    for name, a, b in _pairs():
        got = _number(_call(answer, a.copy(), b.copy(), what="mcnemar_p"), "the p-value")
        expected = stats.mcnemar(a, b).p_value
        if abs(got - expected) > 1e-9 * max(1.0, expected):
            raise Wrong(f"p = {got:.6g} for {name} is not it")
    return True


@question(
    "09.concentration",
    "Write top_share(attribution, top) that returns, for each image (rows of an (N, pixels) tensor), "
    "the share of its total |attribution| held by its ceil(top * pixels) largest |values|.",
    hint="take abs, sort each row in descending order (or torch.topk), sum the first k and divide by "
    "the row's total.",
)
def _concentration(answer) -> bool:
    from mcviz import explain

    g = torch.Generator().manual_seed(11)
    cases = [("random attributions", torch.randn(6, 784, generator=g), 0.1),
             ("a few peaked images", torch.randn(3, 64, generator=g) ** 5, 0.05),
             ("the top half", torch.randn(4, 10, generator=g), 0.5)]  # fmt: skip
    for name, attribution, top in cases:
        got = torch.as_tensor(_call(answer, attribution.clone(), top, what="top_share"), dtype=torch.float32)
        expected = explain.concentration(attribution, top)
        if got.shape != expected.shape or not torch.allclose(got, expected, atol=1e-5):
            raise Wrong(f"the shares for {name} are not right (one per image, each in [top, 1])")
    return True
