"""Wall time of each lesson (cold and warm baseline cache), of the default report, and of
papermill's own per-report overhead. Prints a markdown table.

Goals on 2 cores: each lesson <= 60 s cold (an empty baseline cache: what a learner's first run
costs); the default report <= 90 s after set-up. Timings are noisy: rerun before reading much
into a few seconds, and read them with the load average printed above the table.

    .venv/bin/python benchmarks/foundation.py            # everything
    .venv/bin/python benchmarks/foundation.py --lessons  # lessons only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(path: Path, cache: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    os.environ["MCVIZ_CACHE_DIR"] = str(cache)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - start


def run_cli(args: list[str], cache: Path) -> float:
    env = {**os.environ, "MCVIZ_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mcviz", *args], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def papermill_overhead(tmp: Path) -> tuple[float, float]:
    """Returns (papermill run of a one-cell `import mcviz` notebook, the same import in python)."""
    import papermill as pm

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import mcviz")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp / "import_only.ipynb"
    nbformat.write(nb, src)
    start = time.perf_counter()
    pm.execute_notebook(str(src), str(tmp / "out.ipynb"), kernel_name="python3", progress_bar=False)
    pm_time = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mcviz"], check=True)
    return pm_time, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lessons", action="store_true", help="time the lessons only")
    args = parser.parse_args()
    rows = [("what", "cold cache (s)", "warm cache (s)", "goal", "met?")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for lesson in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb")):
            cache = tmp / f"cache-{lesson.stem}"
            cold = run_notebook(lesson, cache)
            warm = run_notebook(lesson, cache)
            rows.append((f"lesson {lesson.stem}", f"{cold:.1f}", f"{warm:.1f}", "<= 60 cold",
                         "yes" if cold <= 60 else "NO"))
        if not args.lessons:
            cache = tmp / "cache-report"
            cold = run_cli(["report", "compare", "-o", str(tmp / "r1")], cache)
            warm = run_cli(["report", "compare", "-o", str(tmp / "r2")], cache)
            rows.append(("mcviz report compare (defaults)", f"{cold:.1f}", f"{warm:.1f}", "<= 90",
                         "yes" if cold <= 90 else "NO"))
            pm_time, py_time = papermill_overhead(tmp)
            rows.append(("papermill: one-cell `import mcviz` notebook", f"{pm_time:.1f}", "", "", ""))
            rows.append(("python -c 'import mcviz'", f"{py_time:.1f}", "", "", ""))
            rows.append(("=> papermill per-report overhead", f"{pm_time - py_time:.1f}", "", "", ""))
    import torch

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()} kernels), "
          f"{os.cpu_count()} CPUs, load average after the runs {load}\n")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


if __name__ == "__main__":
    main()
