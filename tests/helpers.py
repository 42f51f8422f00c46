"""Small helpers shared by the test modules (imported by name, like lesson_solutions)."""

from __future__ import annotations


def one_line(excinfo) -> str:
    """Returns the message of a caught error after checking it is one line."""
    message = str(excinfo.value)
    assert "\n" not in message, f"error message spans lines: {message!r}"
    return message
