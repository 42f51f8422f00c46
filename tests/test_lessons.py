"""The lessons: committed clean (no outputs, kernelspec python3, no absolute paths), every exercise
graded and solved, and each notebook runs top to bottom both as committed (exercises answer
"not answered yet") and with the reference solutions (every check passes).

The executing tests are marked slow. Each lesson's first run starts from an empty baseline cache
(cold); its solution run reuses that cache (warm).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import pytest
from lesson_solutions import SOLUTIONS, exercise_question, solve

import mcviz as mcv

LESSONS_DIR = Path(__file__).resolve().parent.parent / "lessons"
LESSONS = sorted(LESSONS_DIR.glob("[0-9][0-9]_*.ipynb"))
IDS = [p.stem for p in LESSONS]
# Seconds allowed per run (the product rule is about a minute warm, two minutes cold, on 2 cores).
TIME_LIMIT = float(os.environ.get("MCVIZ_LESSON_TIME_LIMIT", "120"))
ABSOLUTE_PATH = re.compile(r"(?<![\w.])(/(home|Users|work|tmp|root|mnt|opt)/|[A-Za-z]:\\\\)")


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _exercises(nb) -> list[str]:
    return [q for q in (exercise_question(c) for c in nb.cells) if q is not None]


def test_the_first_lessons_exist():
    assert [p.name for p in LESSONS][:3] == [
        "00_start_here.ipynb",
        "01_measuring_a_model.ipynb",
        "02_quantization.ipynb",
    ]


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_lesson_is_committed_clean(path):
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"outputs committed in: {cell.source[:60]!r}"
            assert cell.execution_count is None
        assert not ABSOLUTE_PATH.search(cell.source), f"absolute path in: {cell.source[:80]!r}"
    assert "widgets" not in nb.metadata, "widget state committed"


@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_every_exercise_is_graded_solved_and_checked(path):
    nb = _read(path)
    names = _exercises(nb)
    assert len(names) >= 2, "each lesson ends with at least two exercises"
    assert len(set(names)) == len(names)
    prefix = path.stem[:2] + "."
    for name in names:
        assert name.startswith(prefix), f"{name} belongs to another lesson"
        assert name in mcv.grading.QUESTIONS, f"{name} is not a registered question"
        assert name in SOLUTIONS, f"{name} has no reference solution"
    # the check of each exercise follows it, and checks the same question
    codes = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(codes):
        name = exercise_question(cell)
        if name is not None:
            assert "mcv.check" not in cell.source, "the check belongs in the next cell"
            follower = codes[i + 1].source
            assert f'mcv.check("{name}"' in follower, f"no check of {name} after its exercise"


def test_solutions_only_answer_questions_that_exist():
    in_lessons = {n for p in LESSONS for n in _exercises(_read(p))}
    assert set(SOLUTIONS) <= set(mcv.grading.QUESTIONS)
    assert set(SOLUTIONS) == in_lessons


def test_solve_replaces_only_exercise_cells():
    nb = _read(LESSONS[1])
    solved = solve(nb)
    for before, after in zip(nb.cells, solved.cells, strict=True):
        if exercise_question(before) is None:
            assert after.source == before.source
        else:
            assert after.source == SOLUTIONS[exercise_question(before)]
    assert _read(LESSONS[1]) == nb  # the input is left unchanged


# ---- executing the lessons -------------------------------------------------------------------


@pytest.fixture(scope="module")
def lesson_caches(tmp_path_factory):
    """One baseline cache folder per lesson, created empty on first use."""
    made: dict[str, Path] = {}

    def get(stem: str) -> Path:
        if stem not in made:
            made[stem] = tmp_path_factory.mktemp(f"cache-{stem}")
        return made[stem]

    return get


def _execute(nb, cache: Path):
    from nbclient import NotebookClient

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MCVIZ_CACHE_DIR", str(cache))  # the kernel inherits the environment
        mp.delenv("MPLBACKEND", raising=False)
        start = time.perf_counter()
        NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(LESSONS_DIR)}}
        ).execute()
        return time.perf_counter() - start


def _outputs(nb):
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            yield cell, out


def _check_lines(nb) -> list[str]:
    lines = []
    for cell, out in _outputs(nb):
        if "mcv.check(" in cell.source and out.output_type == "stream":
            lines += [ln for ln in out.text.splitlines() if ln.strip()]
    return lines


def _assert_clean_run(nb):
    for cell, out in _outputs(nb):
        assert out.output_type != "error", f"error in: {cell.source[:80]!r}"
        if out.output_type == "stream":
            assert out.name == "stdout", f"stderr in {cell.source[:60]!r}: {out.text[:300]}"


@pytest.mark.slow
@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_lesson_runs_as_committed(path, lesson_caches):
    nb = _read(path)
    seconds = _execute(nb, lesson_caches(path.stem))  # cold: the cache is empty
    _assert_clean_run(nb)
    names = _exercises(nb)
    lines = _check_lines(nb)
    assert len(lines) == len(names)
    for name, line in zip(names, lines, strict=True):
        assert line.startswith(f"… {name}: not answered yet"), line
    assert seconds < TIME_LIMIT, f"{path.name} took {seconds:.0f} s cold"


@pytest.mark.slow
@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_lesson_passes_with_reference_solutions(path, lesson_caches):
    nb = solve(_read(path))
    seconds = _execute(nb, lesson_caches(path.stem))  # warm after the run above
    _assert_clean_run(nb)
    names = _exercises(nb)
    assert _check_lines(nb) == [f"✓ {name}: correct" for name in names]
    assert seconds < TIME_LIMIT, f"{path.name} took {seconds:.0f} s with solutions"
