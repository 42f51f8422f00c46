"""The lessons: committed clean (no outputs, kernelspec python3, no absolute paths), every exercise
graded and solved, and each notebook runs top to bottom as committed (exercises answer "not
answered yet") and with the reference solutions (every check passes), in one execution.

The executing tests are marked slow; each starts from an empty baseline cache (cold).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from lesson_solutions import SOLUTIONS, exercise_question, solve

import mcviz as mcv

LESSONS_DIR = Path(__file__).resolve().parent.parent / "lessons"
LESSONS = sorted(LESSONS_DIR.glob("[0-9][0-9]_*.ipynb"))
IDS = [p.stem for p in LESSONS]
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
#
# Each lesson is executed once, in one kernel, from an empty baseline cache (cold). Right after
# every exercise's check, the run inserts the reference solution and the same check again: the
# first check must say "not answered yet" (the lesson as committed), the second "correct" (the
# reference solution passes its grader). Exercises come last in every lesson, after everything
# they use, so one run checks both what two separate runs used to.
#
# No wall-clock assertion: how fast a lesson runs is a benchmark (benchmarks/foundation.py, goal
# 60 s cold on 2 cores); here only nbclient's per-cell timeout guards against a hang.
HANG_GUARD_S = 600  # per cell: ten times the whole lesson's goal


def with_solutions_after_checks(nb):
    """Returns a copy of ``nb`` where each exercise's check is followed by the reference solution
    (tagged ``solution``) and the check again (tagged ``solution-check``)."""
    out = nbformat.reads(nbformat.writes(nb), as_version=4)
    cells = []
    pending = None
    for cell in out.cells:
        cells.append(cell)
        name = exercise_question(cell)
        if name is not None:
            pending = name
        elif pending is not None and cell.cell_type == "code" and f'mcv.check("{pending}"' in cell.source:
            solution = nbformat.v4.new_code_cell(SOLUTIONS[pending])
            solution.metadata["tags"] = ["solution"]
            again = nbformat.v4.new_code_cell(cell.source)
            again.metadata["tags"] = ["solution-check"]
            cells += [solution, again]
            pending = None
    out.cells = cells
    return out


def _execute(nb, cache: Path) -> None:
    from nbclient import NotebookClient

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MCVIZ_CACHE_DIR", str(cache))  # the kernel inherits the environment
        mp.delenv("MPLBACKEND", raising=False)
        NotebookClient(
            nb, timeout=HANG_GUARD_S, kernel_name="python3",
            resources={"metadata": {"path": str(LESSONS_DIR)}},
        ).execute()


def _outputs(nb):
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            yield cell, out


def _check_lines(nb, tag: str | None) -> list[str]:
    """Returns the printed lines of the check cells: the committed ones (tag None) or the tagged."""
    lines = []
    for cell, out in _outputs(nb):
        tags = cell.metadata.get("tags", [])
        mine = tag in tags if tag else "solution-check" not in tags
        if mine and "mcv.check(" in cell.source and out.output_type == "stream":
            lines += [ln for ln in out.text.splitlines() if ln.strip()]
    return lines


def _assert_clean_run(nb):
    for cell, out in _outputs(nb):
        assert out.output_type != "error", f"error in: {cell.source[:80]!r}"
        if out.output_type == "stream":
            assert out.name == "stdout", f"stderr in {cell.source[:60]!r}: {out.text[:300]}"


def test_solutions_are_inserted_after_each_check():
    nb = with_solutions_after_checks(_read(LESSONS[1]))
    names = _exercises(_read(LESSONS[1]))
    tagged = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    assert [c.source for c in tagged] == [SOLUTIONS[n] for n in names]
    for i, cell in enumerate(nb.cells):
        if "solution" in cell.metadata.get("tags", []):
            assert nb.cells[i - 1].source == nb.cells[i + 1].source  # the check, then again
            assert "solution-check" in nb.cells[i + 1].metadata["tags"]


@pytest.mark.slow
@pytest.mark.parametrize("path", LESSONS, ids=IDS)
def test_lesson_runs_as_committed_and_with_solutions(path, tmp_path):
    nb = with_solutions_after_checks(_read(path))
    _execute(nb, tmp_path / "cache")  # cold: the cache is empty
    _assert_clean_run(nb)
    names = _exercises(nb)
    committed = _check_lines(nb, None)
    assert len(committed) == len(names), committed
    for name, line in zip(names, committed, strict=True):
        assert line.startswith(f"… {name}: not answered yet"), line
    assert _check_lines(nb, "solution-check") == [f"✓ {name}: correct" for name in names]
