"""Deployment: a compressed model leaves PyTorch as an ONNX file and runs in ONNX Runtime on the CPU.

- ``finalize(model)``: a plain float32 copy that computes exactly what ``model`` computes: pruning
  masks applied, shared (k-means) and fake-quantized weights materialized as ordinary weights.
- ``to_onnx(model, path=None)``: the ONNX bytes of the finalized model (batch size free), exported
  offline by PyTorch's TorchScript-based exporter; with ``path`` written atomically. A model ONNX
  cannot express (torch.ao int8 kernels, a module the exporter does not know) raises one line and
  writes nothing.
- ``OnnxModel``: an ``nn.Module`` that runs ONNX bytes in ONNX Runtime (CPU, as many threads as
  torch uses), so ``mcv.measure``, ``mcv.train.evaluate`` and every report take it like any model.
  ``size_bytes`` counts the graph's stored tensors (initializers) at their widths; parameters and
  MACs inside an ONNX graph are not counted (they read 0).
- ``ort_int8(model, data, mode=...)``: ONNX Runtime's own int8 quantization (``dynamic``: int8
  weights, activations quantized per batch; ``static``: activations calibrated on the training
  split, QDQ format), registered as the method ``ort_int8``; ``onnx`` (registered too) is the
  float32 model in ONNX Runtime.
- ``agreement(model, other, data)``: do two models predict the same class on every test image,
  and how far apart are their logits.
- ``predict_in_subprocess(path, x)``: logits from a fresh Python process that imports only
  onnxruntime and numpy (no torch, no mcviz): what a deployment runs.

onnx and onnxruntime are imported when first used, so ``import mcviz`` stays light.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from mcviz import _layers
from mcviz._checks import check_choice, check_data, check_int, check_model
from mcviz.encode.pack import write_atomic
from mcviz.measure import StorageRow
from mcviz.registry import register

OPSET = 17
MODES = ("dynamic", "static")
LOGIT_TOLERANCE = 1e-4  # |ONNX Runtime logit - PyTorch logit| allowed (float32 kernels sum in other orders)
CALIBRATION_BATCH_SIZE = 64


class Agreement(NamedTuple):
    """How two models compare on one split: ``images``, ``same_class`` (images where both predict
    the same class), ``max_abs_diff`` (largest logit difference), ``tolerance`` and ``identical``
    (every class the same and every logit within the tolerance)."""

    images: int
    same_class: int
    max_abs_diff: float
    tolerance: float
    identical: bool


def finalize(model: nn.Module) -> nn.Module:
    """Returns a plain float32 copy of ``model``: every Linear / Conv2d (pruned, k-means, quantized,
    encoded) becomes an ``nn.Linear`` / ``nn.Conv2d`` holding the weight it computes with; ``model``
    is left unchanged.

    Raises:
        ValueError: a layer whose computation a plain layer cannot hold (a quantized layer that rounds
            its input, torch.ao int8 kernels).
    """
    check_model(model, dtypes=("float32",))
    out = copy.deepcopy(model).eval()
    for name, m in list(out.named_modules()):
        if getattr(m, "mcviz_layer", False):
            raise ValueError(
                f"layer {name!r} runs torch.ao int8 kernels, which the ONNX export does not take; "
                "export the float model and quantize it with 'ort_int8'"
            )
        if not isinstance(m, _layers.KINDS) or type(m) in _layers.KINDS:
            continue
        if getattr(m, "act_scale", None) is not None:
            raise ValueError(
                f"layer {name!r} rounds its input to {m.act_bits} bits (fake activation quantization), which "
                "a plain layer cannot hold; export the model before 'ptq', or use 'ort_int8' mode=static"
            )
        weight = _layers.weight(m).detach().float()
        bias = m.bias.detach().float() if m.bias is not None else None
        out = _layers.replace(out, name, _layers.plain_like(m, weight, bias).eval())
    return out


def to_onnx(
    model: nn.Module, path: str | os.PathLike | None = None, *, input_shape: tuple[int, ...] | None = None
) -> bytes:
    """Returns the ONNX bytes of ``finalize(model)`` (input ``"input"``, output ``"logits"``, any batch
    size; opset 17); with ``path``, also writes them there atomically. ``model`` is left unchanged.

    Args:
        model: a float32 network (plain or compressed by mcviz).
        path: where to write the file, or None.
        input_shape: one example's shape; defaults to ``model.input_shape``.

    Raises:
        ValueError: no input shape, or a model ONNX cannot express (the first line of the
            exporter's error); nothing is written.
    """
    shape = input_shape or getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError("to_onnx needs input_shape=, the shape of one example (the model records none)")
    plain = finalize(model)
    buffer = io.BytesIO()
    try:
        with _silenced():
            torch.onnx.export(
                plain, (torch.zeros((1, *shape)),), buffer, dynamo=False, opset_version=OPSET,
                input_names=["input"], output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )  # fmt: skip
    except Exception as e:  # noqa: BLE001 - any exporter failure means ONNX cannot express the model
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"ONNX cannot express {type(model).__name__}: {first}") from None
    data = buffer.getvalue()
    if path is not None:
        write_atomic(Path(path), data)
    return data


class OnnxModel(nn.Module):
    """Runs an ONNX model in ONNX Runtime on the CPU: float32 tensors in, float32 logits out.

    The ONNX bytes are a persistent uint8 buffer (``onnx``), so the state_dict (``file_bytes``)
    holds the whole file. The session is made at the first forward pass with as many threads as
    torch uses then (``torch.get_num_threads()``), and remade when that number changes.

    Example:
        >>> deployed = OnnxModel(to_onnx(model))  # doctest: +SKIP
        >>> mcv.train.evaluate(deployed, data)  # doctest: +SKIP
    """

    def __init__(self, data: bytes, *, input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise TypeError(f"data must be the bytes of an ONNX model, got {type(data).__name__}")
        self.register_buffer("onnx", torch.frombuffer(bytearray(data), dtype=torch.uint8))
        self._session = None
        self._threads = None
        if input_shape is not None:
            self.input_shape = tuple(input_shape)
        self.session()  # a bad file fails here, not at the first forward pass

    def session(self):
        """Returns the ONNX Runtime session (made or remade for the current torch thread count)."""
        threads = torch.get_num_threads()
        if self._session is None or self._threads != threads:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            try:
                self._session = ort.InferenceSession(
                    self.onnx.numpy().tobytes(), options, providers=["CPUExecutionProvider"]
                )
            except Exception as e:  # noqa: BLE001 - ONNX Runtime raises its own error types
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise ValueError(f"ONNX Runtime cannot load this model: {first}") from None
            self._threads = threads
        return self._session

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        session = self.session()
        name = session.get_inputs()[0].name
        out = session.run(None, {name: x.detach().float().contiguous().numpy()})[0]
        return torch.from_numpy(np.ascontiguousarray(out))

    def mcviz_storage(self) -> list[StorageRow]:
        """Returns one row per stored tensor of the graph (initializer) at its element width: int8
        and float32 weight matrices as "weight", 1-D float vectors as "bias", the rest (scales, zero
        points, shapes) as "other"."""
        import onnx
        from onnx import numpy_helper

        rows = []
        for t in onnx.load_from_string(self.onnx.numpy().tobytes()).graph.initializer:
            a = numpy_helper.to_array(t)
            role = (
                "weight"
                if a.ndim >= 2
                else "bias"
                if a.ndim == 1 and a.dtype.kind == "f" and a.size > 1
                else "other"
            )
            rows.append(StorageRow("", t.name, role, int(a.size), 8 * a.dtype.itemsize))
        return rows

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_session"], state["_threads"] = None, None  # a session cannot be copied; it is remade
        return state


def ort_int8(
    model: nn.Module, data=None, *, mode: str = "dynamic", calibration_batches: int = 8
) -> OnnxModel:
    """Returns an :class:`OnnxModel` of ``model`` quantized to int8 by ONNX Runtime; ``model`` is left
    unchanged.

    ``"dynamic"``: int8 weights (one scale per tensor), activations quantized per batch from their
    own range (MatMulInteger / ConvInteger kernels); needs no data. ``"static"``: int8 weights per
    channel and int8 activations whose ranges are calibrated on the first ``calibration_batches``
    batches of 64 training images, in order (deterministic), stored as QuantizeLinear /
    DequantizeLinear pairs that ONNX Runtime fuses into integer kernels.
    """
    check_choice(mode, "mode", MODES)
    check_int(calibration_batches, "calibration_batches", low=1, high=1000)
    if data is not None:
        check_data(data)
    elif mode == "static":
        raise ValueError("ort_int8 mode='static' needs data=, a DataBundle whose training split calibrates")
    shape = getattr(model, "input_shape", None) or (tuple(data.input_shape) if data is not None else None)
    source = to_onnx(model, input_shape=shape)
    from onnxruntime import quantization as q

    with tempfile.TemporaryDirectory(prefix="mcviz-ort-") as folder, _quiet_logs():
        src, dst = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        src.write_bytes(source)
        if mode == "dynamic":
            q.quantize_dynamic(src, dst, weight_type=q.QuantType.QInt8)
        else:
            X = data.train.tensors[0].float()
            batches = [
                X[i : i + CALIBRATION_BATCH_SIZE].numpy() for i in range(0, len(X), CALIBRATION_BATCH_SIZE)
            ]
            q.quantize_static(
                src, dst, _Batches(batches[:calibration_batches]), quant_format=q.QuantFormat.QDQ,
                per_channel=True, activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
            )  # fmt: skip
        return OnnxModel(dst.read_bytes(), input_shape=shape)


@register
@dataclass(frozen=True)
class OrtInt8Config:
    """ONNX Runtime's int8 quantization, run in ONNX Runtime: mode 'dynamic' or 'static' (calibrated)."""

    method: ClassVar[str] = "ort_int8"
    needs_data: ClassVar[bool] = False  # "dynamic" needs none; ort_int8() asks for data in "static"
    mode: str = "dynamic"
    calibration_batches: int = 8

    def __post_init__(self):
        check_choice(self.mode, "mode", MODES)
        check_int(self.calibration_batches, "calibration_batches", low=1, high=1000)

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        return ort_int8(model, data, mode=self.mode, calibration_batches=self.calibration_batches)


@register
@dataclass(frozen=True)
class OnnxConfig:
    """The float32 model exported to ONNX and run in ONNX Runtime (masks and shared weights materialized)."""

    method: ClassVar[str] = "onnx"
    needs_data: ClassVar[bool] = False

    def apply(self, model: nn.Module, data=None) -> nn.Module:
        shape = getattr(model, "input_shape", None) or (tuple(data.input_shape) if data is not None else None)
        return OnnxModel(to_onnx(model, input_shape=shape), input_shape=shape)


@torch.no_grad()
def agreement(model: nn.Module, other: nn.Module, data, *, split: str = "test",
              tolerance: float = LOGIT_TOLERANCE) -> Agreement:  # fmt: skip
    """Returns how ``other`` (e.g. the ONNX Runtime model) agrees with ``model`` on every image of a
    split: same predicted class, largest logit difference; both models are left unchanged."""
    check_data(data)
    X = data.split(split).tensors[0]
    a = torch.cat([model.eval()(X[i : i + 1000]) for i in range(0, len(X), 1000)])
    b = torch.cat([other.eval()(X[i : i + 1000]) for i in range(0, len(X), 1000)])
    same = int((a.argmax(1) == b.argmax(1)).sum())
    diff = float((a - b).abs().max())
    return Agreement(len(X), same, diff, tolerance, same == len(X) and diff <= tolerance)


_SUBPROCESS = """
import sys, numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
np.save(sys.argv[3], session.run(None, {session.get_inputs()[0].name: x})[0])
print(" ".join(sorted(m for m in ("torch", "mcviz") if m in sys.modules)) or "neither")
"""


def predict_in_subprocess(
    path: str | os.PathLike, x: torch.Tensor, *, timeout: float = 120
) -> tuple[torch.Tensor, str]:
    """Returns ``(logits, imported)``: the ONNX file at ``path`` run on ``x`` in a fresh Python process
    that imports only onnxruntime and numpy, and which of torch / mcviz that process had loaded
    ("neither" is what a deployment needs)."""
    with tempfile.TemporaryDirectory(prefix="mcviz-deploy-") as folder:
        inputs, outputs = Path(folder) / "x.npy", Path(folder) / "logits.npy"
        np.save(inputs, x.detach().float().numpy())
        done = subprocess.run(
            [sys.executable, "-c", _SUBPROCESS, os.fspath(path), os.fspath(inputs), os.fspath(outputs)],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"the fresh process failed: {last}")
        return torch.from_numpy(np.load(outputs)), done.stdout.strip()


class _Batches:
    """ONNX Runtime's calibration reader over a list of input batches."""

    def __init__(self, batches):
        self._batches = iter(batches)

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {"input": batch}

    def rewind(self):  # pragma: no cover - ONNX Runtime may call it; the list is used once
        pass


@contextlib.contextmanager
def _silenced():
    """Silences the exporter for this block: its warnings, and the graph dump it writes to the
    process's own stdout / stderr (file descriptors 1 and 2, below Python) when it fails."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


@contextlib.contextmanager
def _quiet_logs():
    """Silences ONNX Runtime's quantization advice (printed through logging) for this block."""
    import logging

    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
