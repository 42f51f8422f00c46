"""`make lab` for real: JupyterLab from this environment, opened in headless Chromium.

- a notebook with an ipywidgets slider driving a plotly FigureWidget: cells run, the slider moved,
  and the figure checked to have changed;
- a released assignment (nbgrader's generate_assignment of course/source/quantization): the
  student's answers typed into its solution cells, every cell run, the visible tests passing.

Skipped when Chromium or Playwright is missing (.ci/run installs both)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Hang guards, not timings: a loaded 2-core machine (CI beside other jobs) took over 60 s to draw
# the first figure, so every wait allows far more than a normal run (seconds) needs.
HANG_GUARD_S = 600
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)"),
]

CELLS = [
    "import ipywidgets as w\nimport plotly.graph_objects as go\nimport mcviz as mcv",
    "fig = go.FigureWidget(go.Scatter(x=[0, 1, 2], y=[0, 1, 4], name='curve'))\n"
    "slider = w.IntSlider(value=2, min=1, max=5, description='power')\n"
    "def update(change):\n"
    "    fig.data[0].y = [x ** change['new'] for x in range(3)]\n"
    "slider.observe(update, names='value')\n"
    "w.VBox([slider, fig])",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _jupyterlab(tmp_path, notebook: str):
    """Yields the URL of ``notebook`` (in ``tmp_path``) in a JupyterLab server of this environment."""
    port, token = _free_port(), "mcviz-test"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.expose_app_in_browser=True", "--allow-root"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(HANG_GUARD_S * 2):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"JupyterLab did not start within {HANG_GUARD_S} s")
        yield f"{base}/lab/tree/{notebook}?token={token}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def lab(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "widgets.ipynb")
    with _jupyterlab(tmp_path, "widgets.ipynb") as url:
        yield url


@contextlib.contextmanager
def _chromium(tmp_path, url: str):
    """Yields a Playwright page showing ``url`` once its notebook's kernel is idle."""
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(url)
            _until(page, "!!(window.jupyterapp && document.querySelector('.jp-Notebook'))")
            _until(page, "document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset?.status",
                   ok=lambda status: status == "idle")
            page.click(".jp-Notebook")  # make it the current notebook for the commands
            page.wait_for_timeout(1000)
            yield page
        finally:
            page.screenshot(path=str(tmp_path / "lab.png"))
            browser.close()


def _until(page, js: str, ok=bool, seconds: float = HANG_GUARD_S):
    """Evaluates ``js`` every 0.25 s until it is truthy; returns its value. (Playwright's own
    wait_for_function / wait_for_selector stalled on this JupyterLab page in headless Chromium.)"""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = page.evaluate(js)
        if ok(value):
            return value
        page.wait_for_timeout(250)
    pytest.fail(f"timed out after {seconds} s waiting for: {js}")


def test_widgets_and_figure_widgets_render_and_respond_in_jupyterlab(lab, tmp_path):
    with _chromium(tmp_path, lab) as page:
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        _until(page, "!!document.querySelector('.widget-slider .noUi-handle')")
        before = _until(page, "document.querySelector('.js-plotly-plot')?.data?.[0]?.y "
                              "&& Array.from(document.querySelector('.js-plotly-plot').data[0].y)")
        assert before == [0, 1, 4]
        page.click(".widget-slider .noUi-handle")
        page.keyboard.press("ArrowRight")  # power 2 -> 3: the kernel recomputes y
        _until(page, "Array.from(document.querySelector('.js-plotly-plot').data[0].y)",
               ok=lambda y: y == [0, 1, 8])
        after = page.evaluate("Array.from(document.querySelector('.js-plotly-plot').data[0].y)")
    assert after == [0, 1, 8]


# Reads and writes the open notebook through JupyterLab's own model, as the editor does.
_FILL = """(answers) => {
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
  let filled = 0;
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i), meta = cell.getMetadata('nbgrader');
    if (cell.type === 'code' && meta && meta.solution && answers[meta.grade_id] !== undefined) {
      cell.sharedModel.setSource(answers[meta.grade_id]);
      filled++;
    }
  }
  return filled;
}"""
_RUN = """(() => {
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
  const out = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type === 'code') out.push({count: cell.executionCount, outputs: cell.outputs.toJSON()});
  }
  return out;
})()"""


def test_a_released_assignment_opens_runs_and_passes_its_visible_tests_in_jupyterlab(tmp_path):
    from classroom import ASSIGNMENTS, nbgrader, new_course, source

    assignment = ASSIGNMENTS[0]
    course = new_course(tmp_path / "course")
    nbgrader(course, "generate_assignment", assignment)
    released = nbformat.read(course / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    nbformat.write(released, tmp_path / f"{assignment}.ipynb")
    answers = {c.metadata.nbgrader["grade_id"]: c.source for c in source(assignment).cells
               if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    assert answers and all("NotImplementedError" in c.source for c in released.cells
                           if c.metadata.get("nbgrader", {}).get("grade_id") in answers)
    with _jupyterlab(tmp_path, f"{assignment}.ipynb") as url, _chromium(tmp_path, url) as page:
        assert page.evaluate(_FILL, answers) == len(answers)
        for _ in range(3):  # on a busy machine the first run-all right after editing can be dropped
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and all(c["count"] is None for c in page.evaluate(_RUN)):
                page.wait_for_timeout(500)
            if any(c["count"] is not None for c in page.evaluate(_RUN)):
                break
        cells = _until(page, _RUN, ok=lambda cs: all(c["count"] is not None for c in cs))
    outputs = [o for c in cells for o in c["outputs"]]
    errors = [f"{o['ename']}: {o['evalue']}" for o in outputs if o["output_type"] == "error"]
    assert errors == []
    printed = "".join("".join(o.get("text", "")) for o in outputs if o["output_type"] == "stream")
    assert printed.count("visible tests pass") == 2 and "4-bit per-channel weights: accuracy" in printed
