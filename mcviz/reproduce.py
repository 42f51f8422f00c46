"""What a rerun on another machine reproduces exactly, and what only within a tolerance.

PyTorch picks CPU kernels per instruction set (``torch.backends.cpu.get_cpu_capability()``;
``ATEN_CPU_CAPABILITY=default|avx2|avx512`` overrides it), so the same seed trains weights that
differ in their last bits from one CPU to another. What follows from that:

- **exact on every machine**: every configuration and label, parameter counts, MACs, stored bit
  widths of dense models, serialized ``file_bytes`` (the file's layout does not depend on the
  values);
- **within a tolerance** (:data:`TOLERANCES`): values that a float at a decision boundary can
  move. An accuracy moves by one test image when an image's two largest logits are within the
  weights' last-bit noise (seen: 0.911 vs 0.910 on 1,000 test images); global magnitude pruning
  moves one weight from one layer to another when two weights of different layers tie at the
  threshold (the total stays; a layer's stored bytes move by one); gzip of float weights moves by
  a few hundred bytes; training losses move in their fourth digit;
- **never compared**: latency (see ``mcv.measure``), which is machine-dependent by nature.

:func:`compare_tables` applies the tolerances column by column; the committed example reports
are checked with it (``mcviz._nbval`` plugs it into nbval), so a reader's rerun on another CPU
passes while a real change of a number fails.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from html.parser import HTMLParser

__all__ = ["TOLERANCES", "Tolerance", "close", "compare_tables", "parse_html_table"]


@dataclass(frozen=True)
class Tolerance:
    """Two numbers ``a`` and ``b`` agree when ``|a - b| <= abs + rel * max(|a|, |b|)``."""

    abs: float = 0.0
    rel: float = 0.0
    why: str = ""

    def allows(self, a: float, b: float) -> bool:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= self.abs + self.rel * max(abs(a), abs(b)) + 1e-12


_IMAGE = "a test image whose two largest logits are within the weights' last-bit noise"
_THRESHOLD = "a weight at a pruning threshold or a rounding boundary"
# Columns not named here are compared exactly.
TOLERANCES: dict[str, Tolerance] = {
    "accuracy": Tolerance(abs=0.0021, why=f"2 of 1,000 test images: {_IMAGE}"),
    "val_accuracy": Tolerance(abs=0.0021, why=f"1 of 500 validation images: {_IMAGE}"),
    "train_accuracy": Tolerance(abs=0.0021, why="a few of 3,500 training images during training"),
    "loss": Tolerance(rel=1e-3, why="training losses carry the weights' last-bit noise"),
    "size_bytes": Tolerance(rel=1e-3, why=f"{_THRESHOLD} moves a stored code"),
    "nonzero_params": Tolerance(rel=1e-3, why=f"{_THRESHOLD} moves a zero"),
    "sparsity": Tolerance(abs=1e-3, why=f"{_THRESHOLD} moves a zero"),
    "bits": Tolerance(abs=1e-3, why="mean stored bits of a sparse layer count its kept weights"),
    "gzip_bytes": Tolerance(rel=1e-2, why="gzip of float weights depends on their last bits"),
    "rel_error": Tolerance(rel=1e-3, abs=1e-6, why="a relative weight error of float weights"),
    # Deep Compression's tables (mcv.deep_compression, mcv.encode.streams): Huffman code lengths follow
    # the counts of codes and index gaps, which a weight at a pruning threshold or a cluster boundary moves
    "bytes": Tolerance(rel=1e-2, why=f"{_THRESHOLD} changes a Huffman-coded stream"),
    "ratio": Tolerance(rel=1e-2, why=f"{_THRESHOLD} changes a Huffman-coded stream"),
    "change_points": Tolerance(abs=0.42, why=f"two accuracies, each within 2 of 1,000 test images: {_IMAGE}"),
    "error_pct": Tolerance(abs=0.21, why=f"2 of 1,000 test images: {_IMAGE}"),
    "kept": Tolerance(abs=2e-3, why=f"{_THRESHOLD} moves a zero (one of a 1,000-weight layer)"),
    "bits_pqh": Tolerance(rel=1e-2, why=f"{_THRESHOLD} changes a Huffman-coded stream"),
    "index_bits_pq": Tolerance(rel=1e-2, why=f"{_THRESHOLD} moves a zero"),
    "index_bits_pqh": Tolerance(rel=1e-2, why=f"{_THRESHOLD} changes a Huffman-coded stream"),
    "codes_over_bound": Tolerance(abs=5e-3, why=f"{_THRESHOLD} changes a Huffman-coded stream"),
    "index_over_bound": Tolerance(abs=5e-3, why=f"{_THRESHOLD} changes a Huffman-coded stream"),
    "symbols": Tolerance(abs=2, rel=1e-3, why=f"{_THRESHOLD} moves a kept weight between layers"),
    "coded_bits": Tolerance(abs=32, rel=1e-2, why=f"{_THRESHOLD} changes a Huffman-coded stream"),
    "fixed_bits": Tolerance(abs=16, rel=1e-3, why=f"{_THRESHOLD} moves a kept weight between layers"),
    "entropy_bits": Tolerance(abs=32, rel=1e-2, why=f"{_THRESHOLD} changes a stream's distribution"),
    "bits_per_symbol": Tolerance(rel=1e-2, why=f"{_THRESHOLD} changes a Huffman-coded stream"),
    "over_bound": Tolerance(abs=5e-3, why=f"{_THRESHOLD} changes a Huffman-coded stream"),
    # language models (mcv.measure_lm): the weights are loaded, not trained, but a GPTQ code at a
    # rounding boundary flips on another kernel path and the error feedback carries the change
    # through the later columns (seen: 3-bit GPTQ's validation loss 1.9259 vs 1.9322 under AVX2)
    "val_loss": Tolerance(rel=1e-2, why="a flipped GPTQ code moves the later columns' codes"),
    "perplexity": Tolerance(rel=2e-2, why="exp(val_loss): a flipped GPTQ code moves the later columns"),
    "likelihood": Tolerance(rel=2e-2, why="exp(-val_loss): a flipped GPTQ code moves the later columns"),
    "cosine": Tolerance(abs=1e-3, why="embeddings carry the kernels' last-bit noise through 6 layers"),
    "nn_agreement": Tolerance(abs=0.02, why="a paragraph whose two nearest neighbours almost tie"),
    "recall_at_1": Tolerance(abs=0.01, why="a query whose two best documents almost tie"),
    "mrr": Tolerance(abs=0.01, why="a query whose two best documents almost tie"),
    # the paired statistics of the compare report (mcv.measure.paired): two models' accuracies
    # each move by up to 2 images, so the counts of disagreeing images by up to 4
    "difference": Tolerance(abs=0.41, why=f"4 of 1,000 test images (points): {_IMAGE}, in either model"),
    "only_reference": Tolerance(abs=4, why=f"{_IMAGE}, in either model"),
    "only_this": Tolerance(abs=4, why=f"{_IMAGE}, in either model"),
    "mcnemar_p": Tolerance(abs=0.05, rel=0.5, why="a p-value of counts that may move by a few images"),
    "ci_low": Tolerance(abs=0.5, why="a bootstrap bound of a difference that may move by 4 images"),
    "ci_high": Tolerance(abs=0.5, why="a bootstrap bound of a difference that may move by 4 images"),
}
_NUMBER = re.compile(r"^[-+]?(\d[\d,]*\.?\d*|\.\d+)([eE][-+]?\d+)?%?$")


def close(column: str, a, b) -> bool:
    """Returns whether two cell values of ``column`` agree under :data:`TOLERANCES` (strings and
    numbers; a column not listed must match exactly)."""
    if a == b:
        return True
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return False
    return TOLERANCES.get(column, Tolerance()).allows(x, y)


def compare_tables(expected, actual) -> list[str]:
    """Returns the differences of two tables beyond :data:`TOLERANCES`, one line each (empty:
    they agree).

    A table is ``(columns, rows)`` as :func:`parse_html_table` returns it: each row is its index
    followed by one string per column. Columns, row count and index must match exactly.
    """
    (cols_e, rows_e), (cols_a, rows_a) = expected, actual
    if cols_e != cols_a:
        return [f"columns differ: expected {cols_e}, got {cols_a}"]
    if len(rows_e) != len(rows_a):
        return [f"expected {len(rows_e)} rows, got {len(rows_a)}"]
    problems = []
    for row_e, row_a in zip(rows_e, rows_a, strict=True):
        if row_e[0] != row_a[0]:
            problems.append(f"row {row_e[0]!r} is {row_a[0]!r}")
            continue
        for column, a, b in zip(cols_e, row_e[1:], row_a[1:], strict=True):
            if not close(column, a, b):
                tol = TOLERANCES.get(column)
                allowed = f"allowed: {_describe(tol)}" if tol else "must match exactly"
                problems.append(f"row {row_e[0]}, {column}: expected {a}, got {b} ({allowed})")
    return problems


def parse_html_table(html: str):
    """Returns ``(columns, rows)`` of the first pandas ``DataFrame`` table in ``html``, or None.

    ``columns`` are the header names after the index; each row is the index cell followed by the
    cell texts. The text around the table (a "2 rows x 3 columns" note) is not part of it.
    """
    if 'class="dataframe"' not in html:
        return None
    parser = _TableParser()
    parser.feed(html)
    if not parser.head:
        return None
    columns = [c for c in parser.head[0][1:]]
    return columns, parser.body


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        text = value.strip().replace(",", "").rstrip("%")
        return float(text)
    if isinstance(value, str) and value.strip().lower() in ("nan", "none", "<na>"):
        return float("nan")
    return None


def _describe(tol: Tolerance) -> str:
    parts = [f"±{tol.abs:g}"] if tol.abs else []
    parts += [f"±{tol.rel:.1%} relative"] if tol.rel else []
    return " + ".join(parts) + (f", {tol.why}" if tol.why else "")


class _TableParser(HTMLParser):
    """Reads a pandas DataFrame table: the header rows and the body rows, as cell texts."""

    def __init__(self):
        super().__init__()
        self.head: list[list[str]] = []
        self.body: list[list[str]] = []
        self._section = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._done = False

    def handle_starttag(self, tag, attrs):
        if self._done:
            return
        if tag in ("thead", "tbody"):
            self._section = tag
        elif tag == "tr":
            self._row = []
        elif tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag):
        if self._done:
            return
        if tag in ("th", "td") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            (self.head if self._section == "thead" else self.body).append(self._row)
            self._row = None
        elif tag == "table":
            self._done = True

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
