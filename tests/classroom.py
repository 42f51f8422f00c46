"""nbgrader's flow on a temporary copy of ``course/``, shared by ``test_course.py`` and
``benchmarks/classroom.py`` (imported by name, like ``helpers``).

Every step is nbgrader's own command run in a subprocess from the course folder, as the
instructor guide (docs/instructor.md) runs it; only "collect" is a copy into ``submitted/``,
which is what ``nbgrader collect`` and ``zip_collect`` produce.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
COURSE = REPO / "course"
ASSIGNMENTS = ("quantization", "pruning", "distillation", "budget_gate")

# Known-wrong submissions: the source notebook with one solution edited (text replaced exactly
# once), and the autograded points each must score. Each is a misconception the guide lists.
WRONG = {
    "quantization": (
        "an off-by-one scale: max|x| / 2^(bits-1) instead of / (2^(bits-1) - 1)",
        "    qmax = 2 ** (bits - 1) - 1\n    largest = float(",
        "    qmax = 2 ** (bits - 1)\n    largest = float(",
    ),
    "pruning": (
        "a layerwise mask where a global one is asked",
        "    flat = torch.cat([w.detach().abs().reshape(-1) for w in weights.values()])\n"
        "    k = round(sparsity * flat.numel())\n"
        "    keep = torch.ones(flat.numel(), dtype=torch.bool)\n"
        "    keep[torch.argsort(flat, stable=True)[:k]] = False\n"
        "    masks, start = {}, 0\n"
        "    for name, w in weights.items():\n"
        "        masks[name] = keep[start:start + w.numel()].reshape(w.shape)\n"
        "        start += w.numel()\n",
        "    masks = {}\n"
        "    for name, w in weights.items():\n"
        "        keep = torch.ones(w.numel(), dtype=torch.bool)\n"
        "        order = torch.argsort(w.detach().abs().reshape(-1), stable=True)\n"
        "        keep[order[:round(sparsity * w.numel())]] = False\n"
        "        masks[name] = keep.reshape(w.shape)\n",
    ),
    "distillation": (
        "a KD loss missing the T^2 factor",
        'reduction="batchmean") * T * T',
        'reduction="batchmean")',
    ),
    "budget_gate": (
        "a model over budget: 4-bit weights alone (about 14% of the bytes; the gate is 10%)",
        '"magnitude:sparsity=0.8,scope=global + finetune:epochs=5 + weights:bits=4"',
        '"weights:bits=4"',
    ),
}


def new_course(root: Path) -> Path:
    """Returns ``root`` holding a copy of ``course/source`` and ``course/nbgrader_config.py``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(COURSE / "source", root / "source")
    shutil.copy2(COURSE / "nbgrader_config.py", root / "nbgrader_config.py")
    return root


def nbgrader(root: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Runs ``nbgrader ARGS`` in ``root`` with this environment first on PATH (nbgrader calls the
    ``alembic`` command); raises with its output when it fails."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env, timeout=timeout,
                          capture_output=True, text=True)
    if done.returncode != 0 or "[ERROR]" in done.stderr:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done


def source(assignment: str) -> nbformat.NotebookNode:
    """Returns the instructor's source notebook of ``assignment``."""
    return nbformat.read(COURSE / "source" / assignment / f"{assignment}.ipynb", as_version=4)


def wrong(assignment: str) -> nbformat.NotebookNode:
    """Returns the source of ``assignment`` with its known mistake (``WRONG``) put in."""
    _, old, new = WRONG[assignment]
    nb = source(assignment)
    hits = [c for c in nb.cells if old in c.source]
    if len(hits) != 1 or hits[0].source.count(old) != 1:
        raise ValueError(f"{assignment}: the text to replace occurs {len(hits)} times, not once")
    hits[0].source = hits[0].source.replace(old, new)
    return nb


def submit(root: Path, student: str, assignment: str, nb: nbformat.NotebookNode) -> Path:
    """Puts ``nb`` where ``nbgrader collect`` would: ``submitted/<student>/<assignment>/``."""
    folder = root / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{assignment}.ipynb"
    nbformat.write(nb, path)
    return path


def scores(root: Path, assignment: str, student: str) -> dict[str, float]:
    """Returns ``{grade cell id: points}`` of the autograded cells of one submission."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(assignment, assignment, student)
        return {g.name: g.score for g in nb.grades if g.auto_score is not None}
