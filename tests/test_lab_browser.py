"""`make lab` for real: JupyterLab from this environment, a notebook with an ipywidgets slider
driving a plotly FigureWidget, opened in headless Chromium, cells run, the slider moved, and
the figure checked to have changed. Skipped when Chromium or Playwright is missing (.ci/run
installs both)."""

from __future__ import annotations

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


@pytest.fixture
def lab(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "widgets.ipynb")
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
        yield f"{base}/lab/tree/widgets.ipynb?token={token}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# Hang guards, not timings: a loaded 2-core machine (CI beside other jobs) took over 60 s to draw
# the first figure, so every wait allows far more than a normal run (a few seconds) needs.
HANG_GUARD_S = 600


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
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(lab)
            _until(page, "!!(window.jupyterapp && document.querySelector('.jp-Notebook'))")
            _until(page, "document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset?.status",
                   ok=lambda status: status == "idle")
            page.click(".jp-Notebook")  # make it the current notebook for the command below
            page.wait_for_timeout(1000)
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
        finally:
            page.screenshot(path=str(tmp_path / "lab.png"))
            browser.close()
    assert after == [0, 1, 8]
