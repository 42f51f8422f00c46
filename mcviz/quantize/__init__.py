"""Quantization: ``mcv.quantize``.

- ``tensor``: linear quantization math (``qrange``, ``qparams``, ``quantize``, ``dequantize``,
  ``fake_quantize``) and half-precision storage (``fp16``, ``FP16Config``).

Model-level methods (weight-only and full post-training quantization, QAT, k-means weight
sharing, real int8 execution) live in sibling modules and are re-exported here, so lessons call
``mcv.quantize.<name>`` whatever file a function is in.
"""

from mcviz.quantize.tensor import (
    FP16Config,
    dequantize,
    fake_quantize,
    fp16,
    qparams,
    qrange,
    quantize,
)

__all__ = ["FP16Config", "dequantize", "fake_quantize", "fp16", "qparams", "qrange", "quantize"]
