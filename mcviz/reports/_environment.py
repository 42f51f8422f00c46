"""The environment a report records in ``results.json``: versions, CPU, threads, kernel path.

Nothing heavy is imported here: torch's kernel path is read only if torch is already loaded (the
report's kernel records its own through ``record``).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any

KERNEL_ENV = {
    "PLOTLY_RENDERER": "plotly_mimetype",  # exported to HTML by mcviz._html
    "OMP_NUM_THREADS": "1",  # single-threaded, deterministic, like mcv.train
    "MKL_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
    "TQDM_DISABLE": "1",
}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Return the versions and machine facts a report records (nothing heavy is imported)."""
    mcviz_version = _version("mcviz")
    if mcviz_version is None:
        mcviz_version = getattr(sys.modules.get("mcviz"), "__version__", None)
    return {
        "mcviz": mcviz_version,
        "torch": _version("torch"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": int(KERNEL_ENV["OMP_NUM_THREADS"]),
        # the kernels torch picked for this CPU (AVX512, AVX2, DEFAULT...): trained weights differ
        # in their last bits between them (see mcviz.reproduce); a report's kernel records its own
        "cpu_capability": _cpu_capability(),
    }


def _cpu_capability() -> str | None:
    torch = sys.modules.get("torch")  # not imported here just for this: it is heavy
    return torch.backends.cpu.get_cpu_capability() if torch is not None else None
