"""Repository-wide pytest set-up.

- nbval compares the example reports with mcviz's tolerances: ``mcviz._nbval`` (see
  ``mcviz.reproduce``) lets a value that a float at a decision boundary can move on another CPU
  (an accuracy by one test image, a gzip size by a few bytes) differ within its stated
  tolerance; everything else is compared exactly, as nbval does. It also keeps each notebook's
  cells on one pytest-xdist worker.
- The longest tests are collected first, so that ``pytest -n 2`` (``make test``) starts them
  early and both workers finish at about the same time.
"""

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
