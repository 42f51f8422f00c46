"""A tiny causal character-level transformer (GPT-style, after minGPT / nanoGPT), and its checkpoint.

:class:`TinyGPT` maps ``(batch, context)`` character ids to ``(batch, vocab, context)`` logits:
the class dimension second, as ``F.cross_entropy`` and every mcviz classifier expect, so
``mcv.train.fit`` trains it with plain cross-entropy against the next characters (``mcv.text``'s
targets) and ``mcv.train.evaluate`` reports next-character accuracy. Every weight matrix except
the two embedding tables is an ``nn.Linear`` (query/key/value, attention output, the two MLP
layers of each block, the output head), so every mcviz method that works on Linear layers works
on it. ``mcv.models.build("tiny_gpt", input_shape=(context,), num_classes=vocab_size)`` builds
one; ``mcv.train.baseline("tiny_gpt", corpus, ...)`` trains and caches it like any baseline.

:func:`pretrained` loads the checkpoint shipped inside the package (``mcviz/assets``), trained
on Shakespeare's plays by ``scripts/tiny_gpt_checkpoint.py`` (which reproduces it), with
``weights_only=True``.
"""

from __future__ import annotations

import math
from importlib import resources

import torch
from torch import nn
from torch.nn import functional as F

from mcviz._checks import check_int

CHECKPOINT = "tiny_gpt_shakespeare.pt"
DEFAULTS = {"layers": 4, "dim": 128, "heads": 4}


class Block(nn.Module):
    """One transformer block: LayerNorm -> causal self-attention -> residual, LayerNorm -> MLP
    (dim -> 4 dim -> GELU -> dim) -> residual."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 4 * dim)
        self.out = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TinyGPT(nn.Module):
    """A GPT-style character model: token + position embeddings, ``layers`` blocks, a final
    LayerNorm and a Linear head; ``(batch, context)`` ids in, ``(batch, vocab, context)`` logits out.

    Ids may arrive as floats (``mcv.measure`` counts MACs with a zero tensor): they are rounded
    to int64. Sequences shorter than ``context`` are fine; longer ones are refused.
    """

    def __init__(self, vocab_size: int, context: int, *, layers: int = 4, dim: int = 128, heads: int = 4):
        super().__init__()
        vocab_size = check_int(vocab_size, "vocab_size", low=2, high=1_000_000)
        self.context = check_int(context, "context", low=1, high=4096)
        layers = check_int(layers, "layers", low=1, high=64)
        dim = check_int(dim, "dim", low=1, high=8192)
        heads = check_int(heads, "heads", low=1, high=dim)
        if dim % heads:
            raise ValueError(f"dim must be a multiple of heads, got dim={dim} and heads={heads}")
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(self.context, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)
        self.apply(_init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith(("proj.weight", "out.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * layers))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.is_floating_point():
            ids = ids.round().long()
        if ids.dim() != 2 or ids.shape[1] > self.context:
            raise ValueError(
                f"ids must be (batch, length) with length <= context {self.context}, got {tuple(ids.shape)}"
            )
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x)).transpose(1, 2)


def build(shape, num_classes, **options) -> TinyGPT:
    """Returns a fresh TinyGPT for ``mcv.models.build("tiny_gpt", input_shape=(context,),
    num_classes=vocab_size, layers=4, dim=128, heads=4)``."""
    if len(shape) != 1:
        raise ValueError(f"model 'tiny_gpt' needs input_shape (context,), got {tuple(shape)}")
    return TinyGPT(num_classes, shape[0], **{**DEFAULTS, **options})


@torch.no_grad()
def generate(model: nn.Module, prompt: torch.Tensor, length: int, *, seed: int = 0,
             temperature: float = 1.0) -> torch.Tensor:  # fmt: skip
    """Returns ``prompt`` (1-D ids) followed by ``length`` sampled ids; the model and the global RNG
    are left unchanged (sampling draws from a private generator seeded with ``seed``)."""
    length = check_int(length, "length", low=0, high=100_000)
    if not isinstance(prompt, torch.Tensor) or prompt.dim() != 1 or not len(prompt):
        raise ValueError(f"prompt must be a non-empty 1-D tensor of ids, got {prompt!r:.60}")
    if not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    context = getattr(model, "context", None) or len(prompt)
    generator = torch.Generator().manual_seed(check_int(seed, "seed", low=0))
    was_training = model.training
    model.eval()
    ids = prompt.long().clone()
    for _ in range(length):
        logits = model(ids[-context:][None])[0, :, -1] / temperature
        nxt = torch.multinomial(F.softmax(logits.float(), dim=0), 1, generator=generator)
        ids = torch.cat([ids, nxt])
    model.train(was_training)
    return ids


def pretrained() -> tuple[TinyGPT, dict]:
    """Returns the tiny GPT trained on Shakespeare that ships with mcviz, in eval mode, and its
    metadata (vocab, context, sizes, training settings, the validation loss it reached).

    The checkpoint (under 5 MB) is loaded with ``weights_only=True``; ``scripts/
    tiny_gpt_checkpoint.py`` reproduces it with ``mcv.train.baseline``. Load the matching corpus
    with ``mcv.text.load("shakespeare", context=meta["context"], vocab=meta["vocab"])``.
    """
    with resources.as_file(resources.files("mcviz") / "assets" / CHECKPOINT) as path:
        if not path.is_file():
            raise FileNotFoundError(f"the tiny GPT checkpoint is missing: {path}; reinstall mcviz")
        entry = torch.load(path, weights_only=True)
    meta = entry["meta"]
    model = TinyGPT(len(meta["vocab"]), meta["context"], **meta["options"])
    model.load_state_dict(entry["state_dict"])
    model.input_shape = (meta["context"],)
    return model.eval(), meta


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, std=0.02)
