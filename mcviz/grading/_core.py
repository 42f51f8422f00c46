"""The checking core of ``mcv.check``: the question registry, ``check`` and the graders' helpers.

The lesson modules (``_lessons_00_01`` ...) import from here and register their questions;
``mcviz.grading`` imports them all and re-exports the public names.
"""


from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from mcviz import models

QUESTIONS: dict[str, Question] = {}
STATUSES = ("pass", "fail", "not_answered", "unknown")


class NotAnswered(Exception):
    """Raised by a grader when the answer is still a starter (e.g. a function returning None)."""


class Wrong(Exception):
    """Raised by a grader to fail an answer with a specific reason (shown before the hint)."""


@dataclass(frozen=True)
class Question:
    """An exercise: ``grade(answer)`` returns True / False (or raises Wrong / NotAnswered).

    Attributes:
        name: "<lesson>.<topic>", e.g. "01.conv_macs".
        prompt: the question as the lesson asks it.
        grade: the grading function.
        hint: shown on a wrong answer; it points at the idea, never at the value.
        starter: the unanswered value (``...`` and None always count as unanswered).
    """

    name: str
    prompt: str
    grade: Callable[[object], bool]
    hint: str = ""
    starter: object = ...


@dataclass(frozen=True)
class CheckResult:
    """What ``check`` returns: truthy when the answer passed. It prints its line when made, so
    in a notebook it displays nothing more."""

    question: str
    status: str
    message: str

    def __bool__(self) -> bool:
        return self.status == "pass"

    def _ipython_display_(self) -> None:  # the line was already printed
        return None


def question(name: str, prompt: str, *, hint: str = "", starter: object = ...):
    """Registers a grading function under ``name``; use as a decorator. Returns the function."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"question name must be a non-empty str, got {name!r}")

    def wrap(fn):
        QUESTIONS[name] = Question(name, prompt, fn, hint, starter)
        return fn

    return wrap


def questions(prefix: str = "") -> list[str]:
    """Returns the names of the registered questions that start with ``prefix``, sorted."""
    return sorted(n for n in QUESTIONS if n.startswith(prefix))


def prompt(name: str) -> str:
    """Returns the prompt of question ``name``."""
    if name not in QUESTIONS:
        raise ValueError(f"unknown question {name!r}; known: {', '.join(questions())}")
    return QUESTIONS[name].prompt


def check(question: str, answer) -> CheckResult:
    """Prints whether ``answer`` is right (or a hint, or "not answered yet"); never raises.

    Args:
        question: a registered name such as "01.conv_macs" (see ``questions()``).
        answer: the learner's value or function.

    Returns:
        a CheckResult, truthy when the answer passed.
    """
    try:
        result = _check(question, answer)
    except Exception as e:  # noqa: BLE001 - a checker bug must not stop the notebook either
        result = CheckResult(
            str(question),
            "fail",
            f"✗ {question}: could not be checked ({type(e).__name__}); please tell your instructor",
        )
    print(result.message)
    return result


def _check(name, answer) -> CheckResult:
    q = QUESTIONS.get(name) if isinstance(name, str) else None
    if q is None:
        close = difflib.get_close_matches(str(name), list(QUESTIONS), n=3)
        tip = f"did you mean: {', '.join(close)}" if close else f"known: {', '.join(questions())}"
        return CheckResult(str(name), "unknown", f"? unknown question {name!r}; {tip}")
    if answer is q.starter or answer is Ellipsis or answer is None:
        return _not_answered(q.name)
    try:
        passed = q.grade(answer)
        reason = ""
    except NotAnswered as e:
        return _not_answered(q.name, str(e))
    except Wrong as e:
        passed, reason = False, str(e)
    except Exception as e:  # noqa: BLE001 - the learner's code raised
        passed, reason = False, f"your answer raised {type(e).__name__}: {_short(e)}"
    if passed:
        return CheckResult(q.name, "pass", f"✓ {q.name}: correct")
    text = f"✗ {q.name}: not yet."
    if reason:
        text += f" {reason.rstrip('.')}."
    if q.hint:
        text += f" Hint: {q.hint}"
    return CheckResult(q.name, "fail", text)


def _not_answered(name: str, why: str = "") -> CheckResult:
    detail = f" ({why})" if why else " (replace the starter value with your answer)"
    return CheckResult(name, "not_answered", f"… {name}: not answered yet{detail}")


def _short(value, limit: int = 80) -> str:
    try:
        text = str(value)
    except Exception:  # noqa: BLE001
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- helpers for graders ----------------------------------------------------------------------


def _number(value, what: str = "your answer") -> float:
    """Returns ``value`` as a float (ints, floats, numpy and 0-d torch numbers); raises Wrong."""
    if isinstance(value, bool):
        raise Wrong(f"{what} is a bool ({value}); a number is expected")
    if torch.is_tensor(value):
        if value.numel() != 1:
            raise Wrong(f"{what} is a tensor of shape {tuple(value.shape)}; a single number is expected")
        value = value.item()
    try:
        return float(value)
    except (TypeError, ValueError):
        raise Wrong(f"{what} is of type {type(value).__name__}, not a number") from None


def _close(answer, expected: float, *, rel: float = 1e-6, what: str = "your answer") -> bool:
    got = _number(answer, what)
    if abs(got - expected) <= rel * max(1.0, abs(expected)):
        return True
    shown = int(got) if got.is_integer() else got
    raise Wrong(f"{what} {shown} is not it")


def _call(fn, *args, what: str):
    """Calls a learner's function; a stub (returns None or ..., or NotImplementedError) is
    "not answered yet"."""
    if not callable(fn):
        raise Wrong(f"a function is expected, got a value of type {type(fn).__name__}")
    try:
        out = fn(*args)
    except NotImplementedError:
        raise NotAnswered("your function raises NotImplementedError") from None
    if out is None or out is Ellipsis:
        raise NotAnswered("your function returns None: replace `...` with your code and `return` the result")
    return out


def _reference_models() -> list[tuple[str, nn.Module]]:
    """Small models the function exercises are graded on (weights do not matter)."""
    mnist = (1, 28, 28)
    return [
        ("seed_cnn on 28x28", models.build("seed_cnn", input_shape=mnist, seed=0)),
        (
            "seed_cnn on 8x8 with 5 classes",
            models.build("seed_cnn", input_shape=(1, 8, 8), num_classes=5, seed=0),
        ),
        ("lenet300", models.build("lenet300", input_shape=mnist, seed=0)),
        ("lenet5", models.build("lenet5", input_shape=mnist, seed=0)),
        ("mlp hidden=(32,)", models.build("mlp", input_shape=(64,), hidden=(32,), seed=0)),
        ("a Linear(20, 7, bias=False)", nn.Sequential(nn.Linear(20, 7, bias=False))),
    ]


MNIST = (1, 28, 28)
