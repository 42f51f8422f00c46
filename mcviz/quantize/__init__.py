"""Quantization: ``mcv.quantize``.

- ``integer``: integer-only Linear arithmetic by hand (``integer_linear``, fixed-point
  requantization) and BatchNorm folding (``fold_batchnorm``).
- ``tensor``: linear quantization math (``qrange``, ``qparams``, ``quantize``, ``dequantize``,
  ``fake_quantize``) and half-precision storage (``fp16``, ``FP16Config``).

Model-level methods (weight-only and full post-training quantization, QAT, k-means weight
sharing, real int8 execution) live in sibling modules and are re-exported here, so lessons call
``mcv.quantize.<name>`` whatever file a function is in.
"""

from mcviz.quantize.int8 import Int8Config, int8
from mcviz.quantize.integer import fixed_point_multiplier, fold_batchnorm, integer_linear, torch_int8_linear
from mcviz.quantize.kmeans import KMeansConfig, KMeansConv2d, KMeansLinear, kmeans, kmeans_codebook
from mcviz.quantize.layers import QuantConv2d, QuantLinear
from mcviz.quantize.observers import OBSERVERS
from mcviz.quantize.ptq import PTQConfig, WeightsConfig, ptq, weights
from mcviz.quantize.qat import QATConfig, qat, ste_fake_quantize
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
    "FP16Config",
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
