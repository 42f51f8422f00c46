"""nbgrader's configuration for the mcviz course (docs/instructor.md explains every step).

Run nbgrader from this folder (``cd course``); it finds this file there. The source notebooks
live in ``source/<assignment>/``; nbgrader writes ``release/``, ``submitted/``, ``autograded/``,
``feedback/`` and ``gradebook.db`` next to them (all git-ignored).
"""

from pathlib import Path

c = get_config()  # noqa: F821 - nbgrader provides get_config when it loads this file

c.CourseDirectory.root = str(Path(__file__).resolve().parent)
c.CourseDirectory.course_id = "mcviz"


# A cell may train a small model; on a 2-core laptop no cell of the solutions needs more than a
# few seconds (nbgrader's default is 30 s per cell). A student's slow or stuck cell is stopped
# after this many seconds and scores 0.
c.Execute.timeout = 120
