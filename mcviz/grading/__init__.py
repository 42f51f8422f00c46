"""Exercise self-checks: ``mcv.check(question, answer)`` prints one line and never raises.

The line is one of

- ``✓ 01.conv_macs: correct``
- ``✗ 01.conv_macs: not yet. <what was wrong>. Hint: <a hint that does not give the answer>``
- ``… 01.conv_macs: not answered yet (replace the starter value with your answer)``
- ``? unknown question '01.conv_mac'; did you mean: 01.conv_macs``

Expected answers are computed by mcviz itself (``mcv.measure``, ``mcv.models``), never typed in,
so they hold for any seed and follow the library if it changes. An answer may be a value or a
function; a function is called on several reference inputs and compared on each.

A lesson's exercise cell (tagged ``exercise``) holds the starter, usually ``...`` or a function
whose body is ``...``; the cell after it calls ``mcv.check``. Add a question with::

    @question("01.my_question", "What is ...?", hint="Think of ...")
    def _my_question(answer):
        expected = ...  # computed with mcviz
        return _close(answer, expected)
"""

from __future__ import annotations

# each lesson's questions live in their own module and register themselves on import
from mcviz.grading import (  # noqa: F401
    _lesson_06,
    _lesson_07,
    _lesson_12,
    _lessons_00_01,
    _lessons_02_03,
    _lessons_04_05,
    _lessons_08_09,
    _lessons_10_11,
)
from mcviz.grading._core import (
    QUESTIONS,
    STATUSES,
    CheckResult,
    NotAnswered,
    Question,
    Wrong,
    _close,
    check,
    prompt,
    question,
    questions,
)
from mcviz.grading._lessons_00_01 import LATENCY_CHOICES

__all__ = [
    "LATENCY_CHOICES",
    "QUESTIONS",
    "STATUSES",
    "CheckResult",
    "NotAnswered",
    "Question",
    "Wrong",
    "_close",
    "check",
    "prompt",
    "question",
    "questions",
]
