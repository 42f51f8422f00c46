"""Quantization: ``mcv.quantize``.

- ``integer``: integer-only Linear arithmetic by hand (``integer_linear``, fixed-point
  requantization) and BatchNorm folding (``fold_batchnorm``).
- ``tensor``: linear quantization math (``qrange``, ``qparams``, ``quantize``, ``dequantize``,
  ``fake_quantize``) and half-precision storage (``fp16``, ``FP16Config``).
- for language models (any model of Linear layers): ``groupwise`` (group-wise RTN, the storage of
  4-bit LLM checkpoints), ``gptq``, ``awq``, ``smoothquant`` (W8A8 on int8 kernels), ``embeddings``
  (row-wise tables) and ``calibration`` (what a layer's inputs look like; outlier channels).

Where a module and its model-level function share a name (``int8``, ``groupwise``, ``gptq``,
``awq``, ``smoothquant``, ``embeddings``), ``mcv.quantize.<name>`` is the function; the tensor-level
primitives are exported beside it (``gptq_weight``, ``hessian``, ``awq_search``, ``smooth_scales``).

Model-level methods (weight-only and full post-training quantization, QAT, k-means weight
sharing, real int8 execution) live in sibling modules and are re-exported here, so lessons call
``mcv.quantize.<name>`` whatever file a function is in.
"""

from mcviz.quantize import calibration
from mcviz.quantize.awq import AWQConfig, awq
from mcviz.quantize.awq import search as awq_search
from mcviz.quantize.embeddings import EmbeddingsConfig, QuantEmbedding, embeddings
from mcviz.quantize.gptq import GPTQConfig, gptq, hessian
from mcviz.quantize.gptq import quantize_weight as gptq_weight
from mcviz.quantize.groupwise import (
    GroupQuantLinear,
    GroupwiseConfig,
    group_dequantize,
    group_fake_quantize,
    group_qparams,
    group_quantize,
    groupwise,
)
from mcviz.quantize.int8 import Int8Config, int8
from mcviz.quantize.integer import fixed_point_multiplier, fold_batchnorm, integer_linear, torch_int8_linear
from mcviz.quantize.kmeans import KMeansConfig, KMeansConv2d, KMeansLinear, kmeans, kmeans_codebook
from mcviz.quantize.layers import QuantConv2d, QuantLinear
from mcviz.quantize.observers import OBSERVERS
from mcviz.quantize.ptq import PTQConfig, WeightsConfig, ptq, weights
from mcviz.quantize.qat import QATConfig, qat, ste_fake_quantize
from mcviz.quantize.smoothquant import SmoothQuantConfig, smooth, smooth_scales, smoothquant
from mcviz.quantize.tensor import (
    FP16Config,
    dequantize,
    fake_quantize,
    fp16,
    qparams,
    qrange,
    quantize,
)

__all__ = [
    "AWQConfig",
    "EmbeddingsConfig",
    "FP16Config",
    "GPTQConfig",
    "GroupQuantLinear",
    "GroupwiseConfig",
    "QuantEmbedding",
    "SmoothQuantConfig",
    "awq",
    "awq_search",
    "calibration",
    "embeddings",
    "gptq",
    "gptq_weight",
    "group_dequantize",
    "group_fake_quantize",
    "group_qparams",
    "group_quantize",
    "groupwise",
    "hessian",
    "smooth",
    "smooth_scales",
    "smoothquant",
    "Int8Config",
    "KMeansConfig",
    "KMeansConv2d",
    "KMeansLinear",
    "OBSERVERS",
    "PTQConfig",
    "QATConfig",
    "QuantConv2d",
    "QuantLinear",
    "WeightsConfig",
    "dequantize",
    "fake_quantize",
    "fixed_point_multiplier",
    "fold_batchnorm",
    "fp16",
    "int8",
    "integer_linear",
    "kmeans",
    "kmeans_codebook",
    "ptq",
    "qat",
    "qparams",
    "qrange",
    "quantize",
    "ste_fake_quantize",
    "torch_int8_linear",
    "weights",
]
