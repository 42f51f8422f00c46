"""Weight sharing by k-means: the "trained quantization" of Deep Compression (Han, Mao and Dally,
ICLR 2016, section 3).

Each layer's weights are clustered into ``2**bits`` groups; the layer then stores one small
integer per weight (the index of its cluster, ``bits`` bits) and a codebook of ``2**bits`` fp32
centroids, and computes with ``weight = codebook[indices]``.

- Clustering is 1-D k-means (Lloyd's algorithm) with LINEAR initialization: the centroids start
  evenly spaced between the smallest and largest weight. Deep Compression found it better than
  random or density-based starts, because it keeps centroids on the rare large weights that
  matter most. Nothing is random: the same weights give the same codebook.
- Fine-tuning trains the shared centroids, with the indices fixed. The gradient of a centroid is
  the sum of the gradients of the weights that share it. Autograd does that sum by itself: the
  forward pass gathers ``codebook[indices]`` from a codebook that is an ``nn.Parameter``, and the
  backward pass of a gather adds up the gradients that land on each entry.

A pruned model keeps its zeros (Deep Compression prunes first, then shares): a layer made from a
pruned layer (a bool or 0/1 ``mask`` buffer shaped like its weight, as ``mcv.prune`` makes)
clusters only its KEPT weights into the ``2**bits`` centroids, keeps the mask as a persistent bool
buffer, and computes with ``weight = where(mask, codebook[indices], 0)``: the pruned weights are
exactly zero, and stay zero through fine-tuning (they pass no gradient to any centroid). It stores
a 1-bit mask per weight plus ``bits``-bit indices of the kept weights only.

Three levels: ``kmeans_codebook(w, bits)`` (tensor), ``kmeans(model, bits)`` (a new model of
:class:`KMeansLinear` / :class:`KMeansConv2d` layers) and ``KMeansConfig`` (registry).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from mcviz import _layers, train
from mcviz._checks import check_data, check_int, check_model, check_option, check_seed
from mcviz.data import DataBundle
from mcviz.measure import StorageRow
from mcviz.quantize.layers import _check_weight, _copy_into, _expect_mask, _sparse_rows  # shared with Quant*
from mcviz.registry import register

MAX_ITERATIONS = 1000  # Lloyd iterations per layer at most (each costs O(2**bits log n))


def kmeans_codebook(w: torch.Tensor, bits: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``(codebook, indices)``: 1-D k-means of the values of ``w`` into ``2**bits``
    clusters, so that ``codebook[indices]`` approximates ``w``; ``w`` is left unchanged.

    The centroids start evenly spaced between ``w.min()`` and ``w.max()`` (linear
    initialization) and Lloyd iterations run until no value changes cluster (at most
    ``MAX_ITERATIONS``). A cluster that loses all its values keeps its centroid. The arithmetic is
    float64 and deterministic; the codebook comes back sorted.

    Args:
        w: a floating-point tensor with finite values.
        bits: index width, an int in [2, 8] (``2**bits`` centroids).

    Returns:
        ``codebook``: float32, shape ``(2**bits,)``, ascending. ``indices``: uint8, shaped like
        ``w``, each value's cluster.

    Example:
        >>> codebook, indices = kmeans_codebook(torch.tensor([0.0, 0.1, 0.9, 1.0, 2.0, 3.0]), bits=2)
        >>> codebook.tolist(), indices.tolist()
        ([0.05000000074505806, 0.949999988079071, 2.0, 3.0], [0, 0, 1, 1, 2, 3])
    """
    check_int(bits, "bits")
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"w must be a floating-point torch.Tensor, got {type(w).__name__}")
    if not w.is_floating_point():
        raise ValueError(f"w must be a floating-point torch.Tensor, got {w.dtype}")
    if w.numel() == 0:
        raise ValueError(f"w must hold at least one value, got shape {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()):
        raise ValueError("w must hold finite values only, got NaN or infinite values")
    x = w.detach().reshape(-1).double()
    k = 2**bits
    # 1-D k-means on sorted values: every cluster is a run of them, so one iteration needs only
    # the k - 1 run ends (a binary search each) and prefix sums, whatever the number of weights
    xs = x.sort().values
    prefix = torch.cat([xs.new_zeros(1), xs.cumsum(0)])
    centroids = torch.linspace(float(xs[0]), float(xs[-1]), k, dtype=torch.float64)
    ends = None
    for _ in range(MAX_ITERATIONS):
        centroids = centroids.sort(stable=True).values
        # nearest centroid: each sorted centroid owns the values between the midpoints to its
        # neighbours; a value exactly on a midpoint goes to the lower centroid
        new = torch.searchsorted(xs, (centroids[1:] + centroids[:-1]) / 2, right=True)
        if ends is not None and torch.equal(new, ends):
            break  # no value changed cluster
        ends = new
        bounds = torch.cat([ends.new_zeros(1), ends, ends.new_full((1,), len(xs))])
        counts = bounds[1:] - bounds[:-1]
        sums = prefix[bounds[1:]] - prefix[bounds[:-1]]
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
    centroids = centroids.sort(stable=True).values  # (a no-op unless MAX_ITERATIONS ran out)
    assign = torch.bucketize(x, (centroids[1:] + centroids[:-1]) / 2)
    codebook = centroids.float()
    # the float32 rounding cannot reorder the sorted centroids, so the indices still point right
    return codebook, assign.to(torch.uint8).reshape(w.shape)


class _Shared:
    """What KMeansLinear and KMeansConv2d share: codebook, indices, weight, storage.

    The constructor takes the arguments of ``nn.Linear`` / ``nn.Conv2d`` (without ``device`` and
    ``dtype``: the codebook and bias are float32) and the keyword ``bits``.
    """

    bits: int

    def __init__(self, *args, bits: int = 4, **kwargs) -> None:
        # the parent's weights go on the meta device: no memory, and no draw from the global RNG
        super().__init__(*args, **kwargs, device="meta")
        self.bits = check_int(bits, "bits")
        shape = self._parameters.pop("weight").shape  # the parent's meta Parameter; now a property
        has_bias = self.bias is not None
        self.codebook = nn.Parameter(torch.zeros(2**bits))
        self.register_buffer("indices", torch.zeros(shape, dtype=torch.uint8))
        self.register_buffer("mask", None)  # a bool tensor shaped like the weight when pruned
        self.bias = nn.Parameter(torch.zeros(shape[0])) if has_bias else None

    @classmethod
    def from_float(cls, module: nn.Module, bits: int = 4) -> _Shared:
        """Returns a shared-weight layer holding ``module``'s weight (the one it computes with)
        clustered, its bias copied, its mask (if pruned) and its train/eval mode; ``module`` is
        left unchanged.

        ``module`` must be an ``nn.Linear`` for KMeansLinear, an ``nn.Conv2d`` for KMeansConv2d.
        """
        check_model(module, "module")
        return _copy_into(_layers.new_like(cls, module, bits=bits), module)

    @property
    def weight(self) -> torch.Tensor:
        """The weight every forward pass uses, ``codebook[indices]`` (0 where the ``mask``
        prunes): differentiable with respect to the codebook, so training moves the shared
        centroids and nothing else."""
        # (while the parent constructor runs there is no codebook yet: the AttributeError sends
        # nn.Module to its own lookup, which finds the parent's weight Parameter)
        shared = self.codebook[self.indices.long()]
        return shared if self.mask is None else torch.where(self.mask, shared, 0.0)

    def reset_parameters(self) -> None:
        """Does nothing: the values come from :meth:`set_weight` (the parent would draw from the
        global RNG)."""

    def set_weight(self, weight: torch.Tensor) -> None:
        """Clusters ``weight`` (shaped like the layer's) with :func:`kmeans_codebook` and stores
        the codebook and indices; with a ``mask``, only the kept entries are clustered (the
        pruned ones get index 0, never read)."""
        _check_weight(weight, self.indices.shape)
        w = weight.detach().float()
        if self.mask is None:
            codebook, indices = kmeans_codebook(w, self.bits)
        elif not bool(self.mask.any()):  # a fully pruned layer: nothing to cluster
            codebook, indices = torch.zeros(2**self.bits), torch.zeros_like(self.indices)
        else:
            codebook, kept = kmeans_codebook(w[self.mask], self.bits)
            indices = torch.zeros_like(self.indices).masked_scatter(self.mask, kept)
        with torch.no_grad():
            self.codebook.copy_(codebook)
            self.indices.copy_(indices)

    def mcviz_storage(self) -> list[StorageRow]:
        """Returns the stored tensors: indices at ``bits`` bits per weight, the codebook as
        32-bit "other" rows, and the fp32 bias.

        With a ``mask`` the indices are those of the kept weights only, after a 1-bit mask per
        weight ("other"): the bitmask sparse format of ``mcv.prune``'s layers.
        """
        rows = _sparse_rows(self.mask, "indices", self.indices.numel(), self.bits) + [
            StorageRow("", "codebook", "other", self.codebook.numel(), 32),
        ]
        if self.bias is not None:
            rows.append(StorageRow("", "bias", "bias", self.bias.numel(), 32))
        return rows

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        _expect_mask(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}"


class KMeansLinear(_Shared, nn.Linear):
    """A Linear layer whose weights share ``2**bits`` values: ``weight = codebook[indices]``.

    Takes ``nn.Linear``'s arguments (``in_features, out_features, bias=True``) and the keyword
    ``bits=4``.

    Example:
        >>> layer = KMeansLinear.from_float(nn.Linear(16, 4), bits=2)
        >>> len(layer.weight.unique()) <= 4, layer.indices.dtype
        (True, torch.uint8)
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class KMeansConv2d(_Shared, nn.Conv2d):
    """A Conv2d layer whose weights share ``2**bits`` values: ``weight = codebook[indices]``.

    Takes ``nn.Conv2d``'s arguments (``in_channels, out_channels, kernel_size, stride=1,
    padding=0, dilation=1, groups=1, bias=True, padding_mode="zeros"``) and the keyword ``bits=4``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight, self.bias)


def kmeans(
    model: nn.Module,
    bits: int = 4,
    *,
    fine_tune_epochs: int = 0,
    data: DataBundle | None = None,
    lr: float = 1e-3,
    seed: int = 0,
) -> nn.Module:
    """Returns a copy of ``model`` whose Linear / Conv2d layers share ``2**bits`` weight values
    each (k-means weight sharing, optionally with the centroids fine-tuned); ``model`` is left
    unchanged.

    Every Linear / Conv2d becomes a :class:`KMeansLinear` / :class:`KMeansConv2d` clustered by
    :func:`kmeans_codebook`; a pruned layer clusters only its kept weights and keeps its zeros
    (see the module doc). With ``fine_tune_epochs > 0`` the copy is then trained with
    ``mcv.train.fit`` (Adam, one thread, deterministic): the centroids, biases and any other
    parameters move; the indices do not, so every weight stays on its layer's codebook.

    Args:
        model: a trained network. Other weight layers than Linear / Conv2d (Conv1d, Embedding...)
            stay fp32, with one warning naming them.
        bits: index width, an int in [2, 8]: ``2**bits`` shared values per layer.
        fine_tune_epochs: epochs of centroid fine-tuning on ``data``, an int in [0, 200].
        data: a DataBundle, required when ``fine_tune_epochs > 0``.
        lr: Adam learning rate of the fine-tuning, in (0, 10].
        seed: fixes the fine-tuning's shuffling order (the clustering has no randomness), an int
            in [0, 2**32 - 1].

    Example:
        >>> shared = kmeans(model, bits=4)  # doctest: +SKIP
        >>> mcv.measure.model(shared).bits  # doctest: +SKIP
        4.0
    """
    check_model(model)
    _check_options(bits, fine_tune_epochs, lr, seed)
    if data is not None:
        check_data(data)
    elif fine_tune_epochs > 0:
        raise ValueError(f"fine_tune_epochs={fine_tune_epochs} needs data=, a DataBundle (got None)")
    names = [n for n, _ in _layers.transformable(model, "kmeans", action="clusters", rest="stay float32")]
    out = copy.deepcopy(model)
    for name in names:
        layer = out.get_submodule(name)
        cls = KMeansConv2d if isinstance(layer, nn.Conv2d) else KMeansLinear
        out = _layers.replace(out, name, cls.from_float(layer, bits))  # name "": the model is one layer
    if fine_tune_epochs > 0:
        train.fit(out, data, epochs=fine_tune_epochs, lr=lr, seed=seed, progress=False)
    out.train(model.training)
    return out


@register
@dataclass(frozen=True)
class KMeansConfig:
    """k-means weight sharing (Deep Compression): 2**bits shared values per layer, optionally fine-tuned."""

    method: ClassVar[str] = "kmeans"
    # the class says False because only fine-tuning needs data; kmeans() asks for it then
    needs_data: ClassVar[bool] = False
    bits: int = 4
    fine_tune_epochs: int = 0
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        _check_options(self.bits, self.fine_tune_epochs, self.lr, self.seed)

    def apply(self, model: nn.Module, data: DataBundle | None = None) -> nn.Module:
        return kmeans(
            model, self.bits, fine_tune_epochs=self.fine_tune_epochs, data=data, lr=self.lr, seed=self.seed
        )


def _check_options(bits, fine_tune_epochs, lr, seed) -> None:
    check_option("bits", bits)
    check_option("fine_tune_epochs", fine_tune_epochs)
    check_option("lr", lr)
    check_seed(seed)
