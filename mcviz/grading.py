"""Exercise self-checks: ``mcv.check(question, answer)`` prints pass, fail with a hint, or
"not answered yet", and never raises. Expected answers are computed by mcviz itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

QUESTIONS: dict[str, Question] = {}


@dataclass(frozen=True)
class Question:
    """An exercise: ``grade(answer) -> (passed, hint)``; ``starter`` is the unanswered value."""

    name: str
    prompt: str
    grade: Callable
    starter: object = None


def question(name: str, prompt: str, *, starter=None):
    """Registers a grading function under ``name`` (use as a decorator)."""
    def wrap(fn):
        QUESTIONS[name] = Question(name, prompt, fn, starter)
        return fn
    return wrap


def check(question: str, answer) -> bool:
    """Prints one line (pass, fail with a hint, or not answered yet); returns whether it passed."""
    q = QUESTIONS.get(question)
    if q is None:
        print(f"? unknown question {question!r}; known: {', '.join(sorted(QUESTIONS))}")
        return False
    if answer is q.starter or answer is Ellipsis:
        print(f"… {question}: not answered yet")
        return False
    try:
        passed, hint = q.grade(answer)
    except Exception as e:  # noqa: BLE001 - a learner's bug must not stop the notebook
        passed, hint = False, f"your answer raised {type(e).__name__}: {e}"
    print(f"✓ {question}: correct" if passed else f"✗ {question}: not yet. Hint: {hint}")
    return bool(passed)
