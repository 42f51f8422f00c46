"""The committed example reports, and a lesson with its solutions, reproduce under every CPU kernel
path this machine has: the closest stand-in, on one machine, for a reader's different CPU.

PyTorch picks its CPU kernels by instruction set; ``ATEN_CPU_CAPABILITY=default|avx2|avx512``
forces one. The main nbval run (``make test``) re-executes the examples with this machine's own
kernels; here each OTHER capability the CPU supports re-executes them in a fresh process with an
empty baseline cache (so every model is retrained with those kernels), compared by nbval with the
tolerances of ``mcviz.reproduce`` (loaded by the repository's conftest.py). The tolerance checks
themselves are tested in tests/test_reproduce_tolerances.py.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
LESSON = "tests/test_lessons.py::test_lesson_runs_as_committed_and_with_solutions[02_quantization]"
HANG_GUARD_S = 1800  # ten times a normal run of this test


def supported_capabilities() -> list[str]:
    """Returns the values of ATEN_CPU_CAPABILITY this CPU can run, lowest first."""
    caps = ["default"]
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return caps
    try:
        flags = next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
        ).split()
    except (OSError, StopIteration):
        return caps
    if "avx2" in flags:
        caps.append("avx2")
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= set(flags):
        caps.append("avx512")
    return caps


NATIVE = torch.backends.cpu.get_cpu_capability().lower()
OTHERS = [c for c in supported_capabilities() if c != NATIVE]


def test_this_machine_runs_at_least_two_kernel_paths():
    # every x86-64 CPU since 2013 has AVX2; on an ARM laptop only "default" is testable here
    if platform.machine() in ("x86_64", "AMD64"):
        assert len(supported_capabilities()) >= 2
    assert NATIVE in [c.lower() for c in supported_capabilities()] or NATIVE not in ("avx2", "avx512")


@pytest.mark.slow
@pytest.mark.parametrize("capability", OTHERS)
def test_examples_and_a_lesson_reproduce_with_other_kernels(capability, tmp_path):
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "MCVIZ_CACHE_DIR": str(tmp_path / "cache")}
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
        env=env, capture_output=True, text=True, check=True,
    )
    assert probe.stdout.strip().lower() == capability  # the override took effect
    cmd = [
        sys.executable, "-m", "pytest", "reports/examples", LESSON,
        "--nbval", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
        "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
    ]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    tail = "\n".join((res.stdout + res.stderr).splitlines()[-60:])
    assert res.returncode == 0, f"with ATEN_CPU_CAPABILITY={capability}:\n{tail}"
    assert " passed" in tail and "no tests ran" not in tail
