"""The three explorers, used as a student uses them: in JupyterLab, in a real browser.

For each notebook (filled with the reference solutions, as the sources are) the test opens it in
JupyterLab, runs all cells from the Run menu, moves the explorer's main slider with the keyboard
and checks that the plot was redrawn (its PNG changed) and that no output anywhere, the explorer's
included, shows an error or anything else on stderr (a warning in a reference notebook is a defect).
Screenshots of the explorer before and after the move go to ``test-artifacts/browser/``.
"""
import importlib.util
import json
import re
import time
from dataclasses import dataclass

import pytest

from tests.browser.conftest import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Debian's Chromium is not installed at {CHROMIUM}"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="the playwright Python package is not installed"),
]

OPEN_TIMEOUT = 120    # seconds until the notebook shows and its kernel is idle
RUN_TIMEOUT = 180     # seconds for Run All Cells (each notebook needs 20-45 s here)
REDRAW_TIMEOUT = 60   # seconds for the explorer to redraw after the slider moved
VIEWPORT = {"width": 1400, "height": 1000}


@dataclass(frozen=True)
class Explorer:
    """Where an explorer lives, which slider is its main control (by its label) and how far to move it."""

    assignment: str
    notebook: str
    control: str
    key: str

    @property
    def path(self):
        return f"{self.assignment}/{self.notebook}"

    @property
    def name(self):
        return self.notebook.removesuffix(".ipynb")


# One key press, so one redraw: noUiSlider (the slider of ipywidgets 8) moves five steps per PageUp
# and to its maximum on End.
EXPLORERS = [
    Explorer("04-optimizers", "optimizers.ipynb", "learning rate", "End"),  # lr 0.01 -> 10^0.5: diverges
    Explorer("05-vanishing-gradients", "vanishing_gradients.ipynb", "depth", "PageUp"),  # 10 -> 15 layers
    Explorer("06-bptt", "bptt.ipynb", "spectral radius", "PageUp"),  # 0.90 -> 1.15: explodes
]

# Every code cell's prompt reads "[n]:" once it ran; "[*]:" while queued or running.
PROMPTS_JS = "els => els.map(e => e.textContent.trim())"
# What an output area shows: stderr (warnings and tracebacks alike) and ipywidgets' own failures.
OUTPUT_PROBLEMS_JS = """notebook => [
  ...[...notebook.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
      .map(e => e.textContent),
  ...[...notebook.querySelectorAll('.jp-OutputArea-output')]
      .map(e => e.textContent).filter(t => t.includes('Error displaying widget')),
]"""
RAN = re.compile(r"\[\d+\]:")

# Scrolls an element to the bottom of the notebook. Cells coming into view are laid out only
# then and grow, pushing the element down again: scroll until it stays put.
SCROLL_TO_BOTTOM_JS = """async area => {
  for (let pass = 0; pass < 10; pass++) {
    const top = area.getBoundingClientRect().top;
    area.scrollIntoView({block: 'end', behavior: 'instant'});
    await new Promise(requestAnimationFrame);
    await new Promise(requestAnimationFrame);
    if (area.getBoundingClientRect().top === top) return;
  }
}"""


def wait_for(condition, timeout, what, interval=0.25):
    """Poll ``condition`` until it returns something truthy; fail saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"{what} within {timeout} s")


def kernel_idle(page):
    return page.locator('.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status="idle"]')


def open_notebook(page, jupyter_lab, explorer):
    """Open the notebook and wait until all its cells show and its kernel has started and is idle."""
    cells = len(json.loads((jupyter_lab.root / explorer.path).read_text())["cells"])
    page.goto(jupyter_lab.notebook_url(explorer.path, workspace=explorer.name), timeout=OPEN_TIMEOUT * 1000)
    kernel_name = page.locator('.jp-NotebookPanel-toolbar [data-jp-item-name="kernelName"]')

    def ready():
        # Before the session exists the indicator already says "idle", next to "No Kernel".
        return (page.locator(".jp-Notebook .jp-Cell").count() == cells and kernel_idle(page).count() == 1
                and kernel_name.count() == 1 and kernel_name.inner_text().strip() not in ("", "No Kernel"))

    wait_for(ready, OPEN_TIMEOUT, f"{explorer.path}: the notebook did not show its {cells} cells and an idle kernel")


def output_problems(page):
    return page.locator(".jp-Notebook").evaluate(OUTPUT_PROBLEMS_JS)


def run_all_cells(page, explorer):
    """Run > Run All Cells, then wait until every code cell ran (or an error stopped the run)."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt")
    wait_for(lambda: prompts.evaluate_all(PROMPTS_JS) != ["[ ]:"] * prompts.count(), 30,
             f"{explorer.path}: Run All Cells started no cell")

    def finished():
        shown = prompts.evaluate_all(PROMPTS_JS)
        return all(RAN.fullmatch(prompt) for prompt in shown) or ("[*]:" not in shown and output_problems(page))

    wait_for(finished, RUN_TIMEOUT, f"{explorer.path}: Run All Cells did not finish")
    kernel_idle(page).wait_for(timeout=REDRAW_TIMEOUT * 1000)


def plot_sources(output):
    """The data URLs of the images in the explorer's output widget (normally exactly one)."""
    return output.locator("img").evaluate_all("imgs => imgs.map(img => img.src)")


def screenshot(page, cell, artifacts, filename):
    """The page, scrolled so that the explorer (its controls and plot) sits at the bottom of the notebook."""
    cell.locator("img").evaluate_all("imgs => Promise.all(imgs.map(img => img.decode()))")  # laid out at full height
    cell.locator(".jp-Cell-outputArea").evaluate(SCROLL_TO_BOTTOM_JS)
    page.screenshot(path=artifacts / filename)


@pytest.fixture
def lab_page(chromium):
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    # A dialog (kernel choice, build notice) would block the menu and the keys: take its default.
    page.add_locator_handler(page.locator(".jp-Dialog"),
                             lambda dialog: dialog.locator(".jp-Dialog-button.jp-mod-accept").click())
    try:
        yield page
    finally:
        context.close()


@pytest.mark.parametrize("explorer", EXPLORERS, ids=lambda explorer: explorer.assignment)
def test_explorer_redraws_when_its_slider_moves(explorer, jupyter_lab, lab_page, artifacts):
    page = lab_page
    try:
        open_notebook(page, jupyter_lab, explorer)
        run_all_cells(page, explorer)
        assert output_problems(page) == [], f"{explorer.path}: outputs show errors after Run All Cells"

        slider = page.locator(".widget-slider").filter(
            has=page.locator(".widget-label", has_text=re.compile(rf"^{re.escape(explorer.control)}$")))
        assert slider.count() == 1, f"{explorer.path}: expected one slider labelled {explorer.control!r}"
        cell = page.locator(".jp-CodeCell").filter(has=slider)
        output = cell.locator(".widget-output")
        before = wait_for(lambda: plot_sources(output), REDRAW_TIMEOUT,
                          f"{explorer.path}: the explorer drew no image")
        assert len(before) == 1, f"{explorer.path}: expected the explorer to show one image, it shows {len(before)}"
        screenshot(page, cell, artifacts, f"{explorer.name}-before.png")

        handle = slider.locator(".noUi-handle")
        value_before = handle.get_attribute("aria-valuenow")
        handle.press(explorer.key)
        assert handle.get_attribute("aria-valuenow") != value_before, f"{explorer.path}: the slider did not move"

        wait_for(lambda: plot_sources(output) not in ([], before) or output_problems(page), REDRAW_TIMEOUT,
                 f"{explorer.path}: the plot was not redrawn after {explorer.control!r} moved")
        kernel_idle(page).wait_for(timeout=REDRAW_TIMEOUT * 1000)  # the redraw is complete
        after = plot_sources(output)
        screenshot(page, cell, artifacts, f"{explorer.name}-after.png")

        assert output_problems(page) == [], f"{explorer.path}: outputs show errors after moving the slider"
        assert len(after) == 1, f"{explorer.path}: expected the explorer to show one image, it shows {len(after)}"
        assert after != before, f"{explorer.path}: the plot did not change"
    except BaseException:
        page.screenshot(path=artifacts / f"{explorer.name}-failure.png")
        raise
    finally:
        jupyter_lab.shut_down_kernel(explorer.path)
