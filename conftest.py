"""Repository-wide pytest set-up.

- nbval compares the example reports with mcviz's tolerances: ``mcviz._nbval`` (see
  ``mcviz.reproduce``) lets a value that a float at a decision boundary can move on another CPU
  (an accuracy by one test image, a gzip size by a few bytes) differ within its stated
  tolerance; everything else is compared exactly, as nbval does. It also keeps each notebook's
  cells on one pytest-xdist worker.
- The longest tests are collected first, so that ``pytest -n 2`` (``make test``) starts them
  early and both workers finish at about the same time.
- One thread per process: ``make test`` runs one xdist worker per core, and each worker and every
  kernel it starts (lessons, nbval, papermill) inherits ``OMP_NUM_THREADS=1`` unless the caller set
  it. With torch's default (one thread per core) in every process, two workers oversubscribe the
  cores and OpenMP's spinning threads slow both: four lessons took 56 s on 2 workers that way and
  33 s with one thread each. Report kernels are single-threaded anyway (``mcviz.reports``).
"""

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before anything imports torch (the nbval plugin does)

pytest_plugins = ["mcviz._nbval"]

# the slow tests to start first, longest first; then the example notebooks, other slow tests, the rest
_FIRST = ("test_reproducible.py", "test_lessons.py", "test_lab_browser.py", "test_course.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name, slow = item.path.name, item.get_closest_marker("slow") is not None
        if slow and name in _FIRST:
            return _FIRST.index(name)
        if name.endswith(".ipynb"):
            return len(_FIRST)
        return len(_FIRST) + (1 if slow else 2)

    items.sort(key=rank)  # stable: the order within a rank is kept
