"""The graded assignments (``course/``) and their helpers (``mcviz.course``).

Fast: the source notebooks' nbgrader structure; ``forbid``; the budget gate's data, held-out
split and verdict, with bad inputs. Slow: nbgrader's whole flow in a temporary course folder
(generate_assignment, submissions collected into ``submitted/``, autograde, generate_feedback):
every source scores full marks, every blank release runs to its end and scores 0, and each
known-wrong submission (``classroom.WRONG``) scores exactly the points below.
"""

from __future__ import annotations

import re

import nbformat
import numpy as np
import pytest
import torch
from classroom import ASSIGNMENTS, WRONG, nbgrader, new_course, scores, source, submit, wrong
from torch import nn

import mcviz as mcv
from mcviz import course

# autograded points of each known-wrong submission, by test cell (the others score 0)
WRONG_POINTS = {
    # symmetric_scale fails both its tests; tasks 2 and 3 are right
    "quantization": {"test_fake_quantize_rows": 1, "test_fake_quantize_rows_hidden": 2,
                     "test_quantize_weights": 1, "test_quantize_weights_hidden": 2},
    # the layerwise mask fails every mask test; prune_global still returns a new model
    "pruning": {"test_prune_global": 1},
    # right at T = 1 (the visible test), wrong at every other T; the student still learns
    "distillation": {"test_kd_loss": 1, "test_train_student": 1, "test_train_student_hidden": 1},
    # within the accuracy limit but over the size limit
    "budget_gate": {"test_submission": 1, "test_gate_accuracy": 2},
}


def _grade_cells(nb):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]


# ---- the source notebooks ---------------------------------------------------------------------


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebooks_follow_nbgraders_format(assignment):
    nb = source(assignment)
    assert nb.metadata.kernelspec.name == "python3"
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), "grade ids must be unique"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "commit without outputs"
    tests = [c for c in _grade_cells(nb) if c.cell_type == "code"]
    assert tests and all(c.metadata.nbgrader["locked"] and c.metadata.nbgrader["points"] > 0 for c in tests)
    assert any("### BEGIN HIDDEN TESTS" in c.source for c in tests), "each assignment has hidden tests"
    solutions = [c for c in code if c.metadata.get("nbgrader", {}).get("solution")]
    assert solutions and all("### BEGIN SOLUTION" in c.source for c in solutions)
    manual = [c for c in _grade_cells(nb) if c.cell_type == "markdown"]
    assert manual, "each assignment has a free-response answer graded by hand"
    assert all("Rubric" in c.source and "### BEGIN SOLUTION" in c.source for c in manual)
    assert not re.search(r"/(home|root|work|tmp)/", "".join(c.source for c in nb.cells)), "no absolute paths"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_each_known_mistake_edits_its_source_once(assignment):
    assert wrong(assignment).cells != source(assignment).cells


# ---- forbid -------------------------------------------------------------------------------------


def test_forbid_catches_every_reference_and_restores_the_function():
    from mcviz.prune.masks import magnitude_mask  # bound before the block: still caught

    def wrapper(w, s, mask=magnitude_mask):  # and so is a reference kept in a default argument
        return mask(w, s)

    w = torch.tensor([0.3, -2.0, 0.1, 1.0])
    with course.forbid(mcv.prune.magnitude_mask):
        with pytest.raises(RuntimeError, match=r"mcviz\.prune\.masks\.magnitude_mask may not be used"):
            magnitude_mask(w, 0.5)
        with pytest.raises(RuntimeError, match="may not be used"):
            wrapper(w, 0.5)
        assert mcv.prune.random_mask(w, 0.5, seed=0).sum() == 2  # other functions still work
    assert wrapper(w, 0.5).tolist() == [False, True, False, True]


def test_forbid_restores_the_function_when_the_block_raises():
    with pytest.raises(KeyError), course.forbid(mcv.distill.kd_loss):
        raise KeyError("student code failed")
    s = torch.zeros(2, 3)
    assert float(mcv.distill.kd_loss(s, s, torch.tensor([0, 1]), temperature=2.0, alpha=1.0)) == 0.0


def test_forbid_refuses_what_it_cannot_replace():
    with pytest.raises(TypeError, match="plain Python functions"), course.forbid(torch.relu):
        pass
    x = 1

    def closure():
        return x

    with pytest.raises(TypeError, match="closure"), course.forbid(closure):
        pass


# ---- the budget gate's data and verdict ----------------------------------------------------------


def test_heldout_images_are_never_in_the_students_data():
    student, held = course.gate_data(), course.heldout_data()
    assert len(held.test) == course.HELDOUT and len(student) == 1797 - course.HELDOUT
    parts = (student.train, student.val, student.test)
    seen = {x.numpy().tobytes() for part in parts for x in part.tensors[0]}
    # digits has a few exact duplicate images; none of the held-out images may be among the student's
    # unless an identical copy is itself in the student's part of the set
    held_images = [x.numpy().tobytes() for x in held.test.tensors[0]]
    overlap = sum(h in seen for h in held_images)
    assert overlap <= 2, overlap
    assert np.bincount(held.test.tensors[1].numpy(), minlength=10).min() >= 25  # stratified
    assert torch.equal(held.train.tensors[0], student.train.tensors[0])
    assert held.fingerprint != student.fingerprint


def test_gate_measures_size_and_accuracy_against_the_baseline():
    base = course.gate_baseline()
    itself = course.gate(base, max_fraction=1.0, max_drop_points=0.0, split="heldout")
    assert itself.fraction == 1.0 and itself.drop_points == 0.0 and itself.passed
    half = mcv.compress(base, mcv.quantize.FP16Config())
    verdict = course.gate(half, max_fraction=0.4, max_drop_points=5.0)
    assert verdict.split == "val" and not verdict.size_ok and verdict.accuracy_ok and not verdict.passed
    assert verdict.size_bytes == mcv.measure.model(half).size_bytes
    assert "OVER" in str(verdict) and "of the baseline's" in str(verdict)
    blank = mcv.models.build("mlp", input_shape=(1, 8, 8), seed=3)  # untrained: tiny drop is impossible
    assert not course.gate(blank, max_fraction=1.0, max_drop_points=10.0).accuracy_ok


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"max_fraction": 0.0, "max_drop_points": 1.0}, ValueError, "max_fraction"),
        ({"max_fraction": 1.5, "max_drop_points": 1.0}, ValueError, "max_fraction"),
        ({"max_fraction": "10%", "max_drop_points": 1.0}, TypeError, "max_fraction"),
        ({"max_fraction": 0.1, "max_drop_points": -1.0}, ValueError, "max_drop_points"),
        ({"max_fraction": 0.1, "max_drop_points": 1.0, "split": "test"}, ValueError, "split"),
    ],
)
def test_gate_refuses_bad_thresholds(kwargs, error, match):
    with pytest.raises(error, match=match):
        course.gate(nn.Linear(64, 10), **kwargs)


def test_gate_refuses_a_non_model():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        course.gate("model.pt", max_fraction=0.1, max_drop_points=1.0)


def test_layer_masks_reads_pruned_and_plain_layers():
    model = mcv.models.build("mlp", input_shape=(1, 8, 8), hidden=(16,), seed=0)
    pruned = mcv.prune.magnitude(model, 0.5, scope="global")
    masks = course.layer_masks(pruned)
    assert set(masks) == {"fc1", "fc2"}
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.5 * (64 * 16 + 160))
    plain = course.layer_masks(model)
    assert all(m.all() for m in plain.values())


# ---- nbgrader's flow ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A course folder after generate_assignment, three students' submissions, autograde and
    generate_feedback for every assignment."""
    root = new_course(tmp_path_factory.mktemp("course"))
    nbgrader(root, "generate_assignment", "*")  # "*": every assignment in source/, one process
    for a in ASSIGNMENTS:
        submit(root, "solutions", a, source(a))
        submit(root, "blank", a, nbformat.read(root / "release" / a / f"{a}.ipynb", as_version=4))
        submit(root, "mistakes", a, wrong(a))
    nbgrader(root, "autograde", "*")
    nbgrader(root, "generate_feedback", "*")
    return root


@pytest.mark.slow
@pytest.mark.xdist_group("nbgrader-flow")  # one worker builds the course folder once
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_released_notebooks_hold_no_solutions_and_no_hidden_tests(graded, assignment):
    released = nbformat.read(graded / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    text = "\n".join(c.source for c in released.cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "Rubric"):
        assert marker not in text
    original = source(assignment)
    for cell in original.cells:
        for region in re.findall(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", cell.source, re.S):
            for line in region[1].splitlines():
                if len(line.strip()) > 12:  # every real line of a solution or a hidden test is gone
                    assert line.strip() not in text, line
    grade_cells = _grade_cells(released)
    assert len(grade_cells) == len(_grade_cells(original))
    assert all(c.metadata.nbgrader["locked"] for c in grade_cells if c.cell_type == "code")


@pytest.mark.slow
@pytest.mark.xdist_group("nbgrader-flow")  # one worker builds the course folder once
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_sources_score_full_marks(graded, assignment):
    got = scores(graded, assignment, "solutions")
    points = {c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader["points"]
              for c in _grade_cells(source(assignment)) if c.cell_type == "code"}
    assert got == points


@pytest.mark.slow
@pytest.mark.xdist_group("nbgrader-flow")  # one worker builds the course folder once
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_blank_releases_run_to_the_end_and_score_zero(graded, assignment):
    got = scores(graded, assignment, "blank")
    assert got and set(got.values()) == {0.0}
    done = nbformat.read(graded / "autograded" / "blank" / assignment / f"{assignment}.ipynb", as_version=4)
    code = [c for c in done.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "the kernel stopped before the last cell"
    errors = [o.ename for c in code for o in c.outputs if o.output_type == "error"]
    assert errors and set(errors) <= {"NotImplementedError", "NameError"}, errors


@pytest.mark.slow
@pytest.mark.xdist_group("nbgrader-flow")  # one worker builds the course folder once
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_known_wrong_submissions_score_exactly_their_points(graded, assignment):
    got = {k: v for k, v in scores(graded, assignment, "mistakes").items() if v}
    assert got == WRONG_POINTS[assignment], WRONG[assignment][0]


@pytest.mark.slow
@pytest.mark.xdist_group("nbgrader-flow")  # one worker builds the course folder once
def test_feedback_is_written_for_every_submission(graded):
    for student in ("solutions", "blank", "mistakes"):
        for a in ASSIGNMENTS:
            page = (graded / "feedback" / student / a / f"{a}.html").read_text(encoding="utf-8")
            assert "Score:" in page or "score" in page.lower()
