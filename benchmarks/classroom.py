"""Autograding a class: how long nbgrader takes for every assignment of ``course/`` and N students.

A temporary course folder gets the released assignments and N submissions per assignment (a third
the instructor's solutions, a third blank releases, a third the known-wrong submissions of
``tests/classroom.py``), then ``nbgrader autograde`` runs per assignment, one notebook at a time
as nbgrader does. Prints a markdown table: the student time each assignment is written for, the
wall time and the CPU time (nbgrader and its kernels) for the class, per submission, and the
goal (a class of 30 autograded in under 15 minutes per assignment on a 2-core laptop).

    .venv/bin/python benchmarks/classroom.py            # 30 students
    .venv/bin/python benchmarks/classroom.py --students 6
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from classroom import ASSIGNMENTS, nbgrader, new_course, source, submit, wrong  # noqa: E402

STUDENT_MINUTES = {"quantization": 45, "pruning": 45, "distillation": 40, "budget_gate": 60}
GOAL_MINUTES = 15


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=30)
    args = parser.parse_args()
    if args.students < 1:
        parser.error(f"--students must be >= 1, got {args.students}")
    with tempfile.TemporaryDirectory(prefix="mcviz-class-") as tmp:
        os.environ.setdefault("MCVIZ_CACHE_DIR", str(Path(tmp) / "cache"))
        # the gate's baseline is trained once per machine (cached), as on an instructor's laptop
        # after one run; untimed, so the table is the class's grading and one slow cold training
        # (over the 120 s cell limit on a loaded machine) cannot fail the first submissions
        from mcviz import course

        course.gate_baseline()
        root = new_course(Path(tmp) / "course")
        nbgrader(root, "generate_assignment", "*")
        kinds = {"solution": source, "blank": None, "mistake": wrong}
        rows = []
        for a in ASSIGNMENTS:
            blank = nbformat.read(root / "release" / a / f"{a}.ipynb", as_version=4)
            for i in range(args.students):
                kind = list(kinds)[i % 3]
                submit(root, f"student{i:02d}", a, blank if kinds[kind] is None else kinds[kind](a))
            cpu0, t0 = _children_cpu(), time.perf_counter()
            nbgrader(root, "autograde", a, timeout=3600)
            wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
            rows.append((a, wall, cpu))
    load = os.getloadavg()[0]
    print(f"nbgrader autograde, {args.students} submissions per assignment, {os.cpu_count()} cores "
          f"(load average {load:.1f} at the end: wall times grow with other work on the machine)\n")
    print("| assignment | student time | wall (class) | CPU (class) | wall / submission | "
          f"goal: class in < {GOAL_MINUTES} min | met? |")
    print("|---|---|---|---|---|---|---|")
    for a, wall, cpu in rows:
        print(f"| {a} | {STUDENT_MINUTES[a]} min | {wall / 60:.1f} min | {cpu / 60:.1f} min | "
              f"{wall / args.students:.1f} s | {GOAL_MINUTES} min | "
              f"{'yes' if wall < GOAL_MINUTES * 60 else 'no'} |")
    total_wall, total_cpu = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"| all four | {sum(STUDENT_MINUTES.values())} min | {total_wall / 60:.1f} min | "
          f"{total_cpu / 60:.1f} min | {total_wall / args.students / len(rows):.1f} s | | |")


if __name__ == "__main__":
    main()
