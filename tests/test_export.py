"""mcv.export: finalized models, ONNX export run in ONNX Runtime (same classes, logits within the
stated tolerance), ONNX Runtime's int8 backend, a fresh process, and models ONNX cannot express."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import one_line
from torch import nn

import mcviz as mcv
from mcviz import export

SPECS = ["", "magnitude:sparsity=0.8", "magnitude:sparsity=0.8 + kmeans:bits=3 + huffman", "weights:bits=4"]


@pytest.mark.parametrize("spec", SPECS)
def test_finalized_and_onnx_models_compute_what_the_model_computes(spec, digits_mlp, digits):
    model = mcv.compress(digits_mlp, *(mcv.registry.parse(spec) if spec else ()))
    plain = export.finalize(model)
    assert all(type(m) in (nn.Linear, nn.Flatten, nn.ReLU, nn.Sequential) for m in plain.modules())
    x = digits.test.tensors[0]
    assert torch.equal(plain(x), model.eval()(x))
    deployed = export.OnnxModel(export.to_onnx(model, input_shape=digits.input_shape))
    result = export.agreement(model, deployed, digits)
    assert result.identical and result.same_class == result.images == len(x)
    assert result.max_abs_diff <= export.LOGIT_TOLERANCE


def test_onnx_model_is_measured_copied_and_evaluated(digits_mlp, digits):
    deployed = mcv.compress(digits_mlp, *mcv.registry.parse("onnx"), data=digits)
    row = mcv.measure.model(deployed, digits)
    assert row.accuracy == mcv.train.evaluate(digits_mlp, digits)
    assert row.size_bytes == mcv.measure.model(digits_mlp).size_bytes  # the same fp32 tensors
    assert row.file_bytes > row.size_bytes
    twin = copy.deepcopy(deployed)
    assert torch.equal(twin(digits.test.tensors[0]), deployed(digits.test.tensors[0]))


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_ort_int8_is_a_registered_backend(mode, digits_mlp, digits):
    q = mcv.compress(digits_mlp, *mcv.registry.parse(f"ort_int8:mode={mode}"), data=digits)
    row, base = mcv.measure.model(q, digits), mcv.measure.model(digits_mlp, digits)
    assert row.bits == 8 and row.size_bytes < base.size_bytes / 3
    assert abs(row.accuracy - base.accuracy) < 0.05
    assert export.agreement(digits_mlp, q, digits).same_class > 0.9 * len(digits.test.tensors[0])


def test_ort_int8_bad_options():
    with pytest.raises(ValueError, match="mode must be one of 'dynamic', 'static', got 'fast'"):
        mcv.registry.parse("ort_int8:mode=fast")
    with pytest.raises(ValueError, match=r"calibration_batches must be an int in \[1, 1000\], got 0"):
        mcv.registry.parse("ort_int8:calibration_batches=0")


def test_static_ort_int8_needs_data(digits_mlp):
    with pytest.raises(ValueError, match="ort_int8 mode='static' needs data=, a DataBundle whose"):
        export.ort_int8(digits_mlp, None, mode="static")
    with pytest.raises(TypeError, match="data must be a DataBundle .*, got str"):
        export.ort_int8(digits_mlp, "digits", mode="static")


def test_a_fresh_process_without_torch_gives_the_same_logits(tmp_path, digits_mlp, digits):
    path = tmp_path / "model.onnx"
    data = export.to_onnx(digits_mlp, path, input_shape=digits.input_shape)
    assert path.read_bytes() == data
    x = digits.test.tensors[0][:50]
    logits, imported = export.predict_in_subprocess(path, x)
    assert imported == "neither"
    assert torch.allclose(logits, digits_mlp(x), atol=export.LOGIT_TOLERANCE, rtol=0)


class _Eigen(nn.Module):
    def forward(self, x):
        return torch.linalg.eigvalsh(x.unsqueeze(1) * x.unsqueeze(2))


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda m, d: nn.Sequential(nn.Flatten(), nn.Linear(64, 10), _Eigen()),
            "ONNX cannot express Sequential",
        ),
        (lambda m, d: mcv.quantize.int8(m), "torch.ao int8 kernels"),
        (lambda m, d: mcv.quantize.ptq(m, d, bits=8), "rounds its input to 8 bits"),
        (lambda m, d: copy.deepcopy(m).double(), "must hold float32 tensors"),
    ],
)
def test_models_onnx_cannot_express_are_refused_and_nothing_is_written(
    make, message, digits_mlp, digits, tmp_path
):
    with pytest.raises(ValueError, match=message) as e:
        export.to_onnx(make(digits_mlp, digits), tmp_path / "m.onnx", input_shape=digits.input_shape)
    one_line(e)
    assert list(tmp_path.iterdir()) == []


def test_bad_onnx_bytes_and_missing_shape():
    with pytest.raises(ValueError, match="ONNX Runtime cannot load this model"):
        export.OnnxModel(b"not an onnx file")
    with pytest.raises(TypeError, match="data must be the bytes of an ONNX model"):
        export.OnnxModel("model.onnx")
    with pytest.raises(ValueError, match="needs input_shape="):
        export.to_onnx(nn.Sequential(nn.Linear(4, 2)))
