"""Training stays bit-identical: ``mcv.train.fit`` and ``mcv.distill.fit`` against checksums of the
weights and histories that the code produced BEFORE distillation moved onto ``train.fit``'s hooks
(two loops became one in the "reshape" issue; the checksums were computed with the two loops).

A checksum is the sha256 of every state_dict tensor's bytes (sorted by name) and of the history's
values. Float kernels differ between CPU instruction sets, so the constants are keyed by the
kernel path: ``torch.backends.cpu.get_cpu_capability()`` (ATen's kernels, set with
``ATEN_CPU_CAPABILITY``) AND the widest vector instructions the CPU itself has (MKL and oneDNN
pick their own kernels from the hardware, whatever ATEN_CPU_CAPABILITY says). The constants were
recorded on an AVX-512 machine; elsewhere the test is skipped (say so, do not guess).
"""

from __future__ import annotations

import copy
import hashlib
import platform
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import mcviz as mcv
from mcviz import distill


def checksum(model: nn.Module, history) -> str:
    h = hashlib.sha256()
    state = model.state_dict()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().contiguous().numpy().tobytes())
    h.update(",".join(history.columns).encode())
    h.update(history.to_numpy(dtype="float64").tobytes())
    return h.hexdigest()[:16]


def _mlp(data, hidden=(16,), seed=0):
    return mcv.models.build("mlp", input_shape=data.input_shape, hidden=hidden, seed=seed)


def _cnn(data, width=4, seed=0):
    return mcv.models.build("small_cnn", input_shape=data.input_shape, width=width, seed=seed)


def _teacher_mlp(data):
    """The ``digits_mlp`` fixture's recipe, built here so that this file depends on nothing shared."""
    model = _mlp(data, hidden=(32,), seed=0)
    mcv.train.fit(model, data, epochs=5, lr=1e-2, seed=0, progress=False)
    return model


def _teacher_cnn(data):
    model = _cnn(data, width=8, seed=7)
    mcv.train.fit(model, data, epochs=1, seed=0, progress=False)
    return model


def _train(build, **options):
    def run(data):
        model = build(data)
        history = mcv.train.fit(model, data, progress=False, **options)
        return model, history

    return run


def _kd(teacher, **options):
    def run(data):
        student = _cnn(data)
        history = distill.fit(student, teacher(data), data, progress=False, **options)
        return student, history

    return run


def _kd_config(data):
    net = distill.KDConfig(student="small_cnn", width=8, epochs=1).apply(_teacher_mlp(data), data)
    return net, _empty_history()


def _empty_history() -> pd.DataFrame:
    return pd.DataFrame({"none": []})


CASES = {
    "train plain": _train(_mlp, epochs=2, lr=1e-2, seed=3),
    "train cnn batch 50": _train(_cnn, epochs=1, lr=1e-2, seed=1, batch_size=50),
    "train regularizer": _train(
        _mlp, epochs=1, lr=1e-2, seed=0, regularizer=lambda m: 1e-3 * m.fc1.weight.abs().sum()
    ),
    "kd plain": _kd(_teacher_mlp, epochs=2, lr=1e-2, seed=0),
    "kd labels=0.1": _kd(_teacher_mlp, epochs=2, lr=1e-2, seed=0, alpha=0.5, labels=0.1, label_seed=3),
    "kd jitter=2": _kd(_teacher_mlp, epochs=2, lr=1e-2, seed=1, jitter=2),
    "kd hint": _kd(_teacher_cnn, epochs=2, lr=1e-2, seed=0, hint=("relu2", "relu2"), hint_weight=0.5),
    "kd alpha=0 T=2": _kd(_teacher_mlp, epochs=1, lr=1e-2, seed=2, alpha=0.0, temperature=2.0),
    "kd alpha=1 threads=2": _kd(_teacher_mlp, epochs=1, lr=1e-2, seed=0, alpha=1.0, threads=2),
    "kd everything": _kd(
        _teacher_cnn,
        epochs=2,
        lr=3e-3,
        seed=4,
        batch_size=50,
        alpha=0.7,
        temperature=2.0,
        labels=0.3,
        label_seed=1,
        jitter=1,
        hint=("conv1", "conv1"),
    ),
    "kd config": _kd_config,
}

def kernel_path() -> str:
    """Returns "<ATen capability>@<the CPU's widest vector ISA>", e.g. "AVX2@avx512"."""
    isa = "other"
    if platform.system() == "Linux":
        try:
            text = Path("/proc/cpuinfo").read_text()
            flags = set(next(ln for ln in text.splitlines() if ln.startswith("flags")).split())
        except (OSError, StopIteration):
            flags = set()
        isa = "avx512" if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags else (
            "avx2" if "avx2" in flags else "other")  # fmt: skip
    return f"{torch.backends.cpu.get_cpu_capability()}@{isa}"


# kernel path -> case -> checksum, recorded with the two loops of before the reshape
REFERENCE: dict[str, dict[str, str]] = {
    "DEFAULT@avx512": {
        "train plain": "79a9d1a98a891d38",
        "train cnn batch 50": "124623c3e1d29912",
        "train regularizer": "9560c9fa2b295dff",
        "kd plain": "83ad48987564596f",
        "kd labels=0.1": "00a049b6975ff62f",
        "kd jitter=2": "e1976b2af3db37a2",
        "kd hint": "b5f6858c82aafad3",
        "kd alpha=0 T=2": "da4c7fce2941e3ac",
        "kd alpha=1 threads=2": "49912af6aa8722d0",
        "kd everything": "34d8fd2dd2d00e66",
        "kd config": "87db846dbc136ad1",
    },
    "AVX2@avx512": {
        "train plain": "f6a46562f3b6aa92",
        "train cnn batch 50": "a07a3ae5c94939e9",
        "train regularizer": "dbc14ae2fd7aa5dd",
        "kd plain": "e21603d267b468b8",
        "kd labels=0.1": "b16d5af0ab508b54",
        "kd jitter=2": "b2627e1e24727bb1",
        "kd hint": "d8269422d419a406",
        "kd alpha=0 T=2": "0630cec1dbbdb6e1",
        "kd alpha=1 threads=2": "54e5ed53565a966c",
        "kd everything": "8a5da7bd450df29d",
        "kd config": "040787e712f6e059",
    },
    "AVX512@avx512": {
        "train plain": "20bec77766a7c51c",
        "train cnn batch 50": "d7df28dfac814534",
        "train regularizer": "ed1a7199b6c3f274",
        "kd plain": "d8805061cc4eecc9",
        "kd labels=0.1": "0f2ac055b9132c7c",
        "kd jitter=2": "be41c751f202bb58",
        "kd hint": "757d5ec38e508f3b",
        "kd alpha=0 T=2": "d6d475396446d0b0",
        "kd alpha=1 threads=2": "395c05230af328f3",
        "kd everything": "51c000176045b43b",
        "kd config": "d01fb33c4cfef746",
    },
}


@pytest.mark.parametrize("case", list(CASES))
def test_training_is_bit_identical_to_the_reference(digits, case):
    path = kernel_path()
    if path not in REFERENCE:
        pytest.skip(f"no reference checksums recorded for the kernel path {path!r}")
    model, history = CASES[case](digits)
    assert checksum(model, history) == REFERENCE[path][case]


def test_checksum_sees_one_changed_weight(digits):
    model = _mlp(digits)
    history = _empty_history()
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.fc1.weight[0, 0] = torch.nextafter(other.fc1.weight[0, 0], torch.tensor(1.0))
    assert checksum(model, history) != checksum(other, history)
    assert checksum(model, history) == checksum(copy.deepcopy(model), history)


if __name__ == "__main__":  # prints this capability's checksums: python tests/test_fit_reference.py
    data = mcv.data.load("digits")
    sums = {name: checksum(*run(data)) for name, run in CASES.items()}
    print(repr(kernel_path()), sums)
