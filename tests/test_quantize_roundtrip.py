"""A saved quantized model (weight codes, scales, codebooks) reloads in a fresh process and gives
identical outputs; file_bytes is the size of exactly that saved state_dict. (int8 has its own
fresh-process test in test_quantize_int8.py.)"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import mcviz as mcv

SPECS = ["weights:bits=4", "weights:bits=8,granularity=per_tensor", "ptq:bits=8",
         "kmeans:bits=2", "fp16",
         "magnitude:sparsity=0.8,scope=global + kmeans:bits=3",
         "magnitude:sparsity=0.8 + weights:bits=4,symmetric=false"]

RELOAD = """
import sys, torch, mcviz as mcv
spec, state_path, x_path, out_path = sys.argv[1:]
data = mcv.data.load("digits")
arch = mcv.models.build("mlp", input_shape=data.input_shape, hidden=(32,), seed=123)
model = mcv.compress(arch, *mcv.registry.parse(spec), data=data)  # same structure, other values
model.load_state_dict(torch.load(state_path, weights_only=True))
model.eval()
with torch.no_grad():
    torch.save(model(torch.load(x_path, weights_only=True)), out_path)
"""


@pytest.mark.parametrize("spec", SPECS)
def test_saved_quantized_model_reloads_in_a_fresh_process_with_identical_outputs(spec, digits, tmp_path):
    base = mcv.models.build("mlp", input_shape=digits.input_shape, hidden=(32,), seed=0)
    mcv.train.fit(base, digits, epochs=1, progress=False)
    model = mcv.compress(base, *mcv.registry.parse(spec), data=digits).eval()
    x = digits.test.tensors[0][:50]
    with torch.no_grad():
        expected = model(x)
    torch.save(model.state_dict(), tmp_path / "state.pt")
    torch.save(x, tmp_path / "x.pt")
    assert mcv.measure.model(model).file_bytes == len(mcv.measure.serialized(model))
    subprocess.run([sys.executable, "-c", RELOAD, spec, str(tmp_path / "state.pt"),
                    str(tmp_path / "x.pt"), str(tmp_path / "out.pt")], check=True)
    assert torch.equal(torch.load(tmp_path / "out.pt", weights_only=True), expected)
