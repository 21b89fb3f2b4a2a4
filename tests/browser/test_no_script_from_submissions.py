"""A hostile submission runs no script in the instructor's browser, and its maths still render.

One student hands in the reference solutions plus markdown cells full of script (raw HTML,
event handlers, ``javascript:`` links, entity tricks, mutation XSS, remote resources), raw cells
holding HTML and a code cell whose outputs are HTML, JavaScript, markdown and SVG. The stock
``nbgrader autograde`` grades it with the course's config, then headless Chromium opens:

(a) formgrader's manual-grading page of the submission, at the top level;
(b) the same page inside JupyterLab's Formgrader panel (an iframe in the lab's own origin);
(c) the feedback page from ``nbgrader generate_feedback``, after hostile outputs were written
    into the autograded notebook by hand (a notebook autograded before the sanitiser existed).

Every payload, if it ran, would add its label to ``window.__xss`` (and ``top.__xss``) and fetch
``<beacon>/<label>`` from a local HTTP server; the test clicks every link in the student's cells
too. It asserts no label, no beacon hit (a remote image or style counts as one) and that the
maths in the very cells holding the payloads were typeset by MathJax. There is no network: the
formgrader page's MathJax 2.7.7 (from a CDN in nbgrader's template) is served from Debian's
``libjs-mathjax`` through a Playwright route; the feedback page needs none (its MathJax is inline).
"""
import base64
import http.server
import importlib.util
import json
import secrets
import shutil
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_raw_cell

from tests import pipeline
from tests.browser.conftest import (CHROMIUM, free_loopback_port, lab_command, stop, wait_until_serving,
                                    write_isolated_config)
from tests.grader import fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Debian's Chromium is not installed at {CHROMIUM}"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="the playwright Python package is not installed"),
]

A, NB, STUDENT = fixture.ASSIGNMENT, fixture.NOTEBOOK, "mallory"
SMALL = {NB: {"forward_pass.affine_forward": {"value": 2}, "forward_pass.relu_forward": {"value": 2}}}
MATHJAX2 = Path("/usr/share/javascript/mathjax")  # Debian's libjs-mathjax
MATHJAX2_CDN = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/"
# nbgrader's template loads the CDN's latest.js, which loads MathJax.js from the CDN with the same query.
LATEST_JS = ("var s = document.createElement('script'); s.src = '" + MATHJAX2_CDN +
             "MathJax.js?config=TeX-AMS_CHTML-full,Safe'; document.head.appendChild(s);")
TIMEOUT = 90_000          # ms for a page and its MathJax
SETTLE = 3_000            # ms given to payloads after typesetting (the meta refresh waits 1 s)
VIEWPORT = {"width": 1300, "height": 1000}
MARKERS = ["HOSTILE-HTML", "HOSTILE-MARKDOWN"]  # the two markdown cells, each with maths and payloads
pytestmark.append(pytest.mark.skipif(not (MATHJAX2 / "MathJax.js").exists(),
                                     reason=f"Debian's libjs-mathjax is not installed at {MATHJAX2}"))


class Beacon(http.server.ThreadingHTTPServer):
    """A local server that records every path a payload fetched."""

    def __init__(self):
        self.hits = []
        super().__init__(("127.0.0.1", 0), _BeaconHandler)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class _BeaconHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.hits.append(self.path)
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def beacon():
    server = Beacon()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def js(beacon, label):
    """What a payload runs: its label into the page flag (here and at the top) and a fetch of the beacon. No spaces."""
    return (f"(window.__xss=window.__xss||[]).push('{label}');try{{(top.__xss=top.__xss||[]).push('{label}')}}"
            f"catch(e){{}};fetch('{beacon.url}/{label}',{{mode:'no-cors'}})")


def hostile_cells(beacon):
    def run(label):
        return js(beacon, label)

    srcdoc = f"<script>{run('md-iframe-srcdoc')}</script>".replace('"', "&quot;")
    object_html = base64.b64encode(f"<script>{run('md-object-data')}</script>".encode()).decode()
    html = new_markdown_cell("\n\n".join([
        r"HOSTILE-HTML: the gradient is $\frac{\partial L}{\partial W} = x^\top \delta$, summed:",
        r"$$\sum_{t=1}^{T} \frac{\partial L_t}{\partial h_t}$$",
        f"<script>{run('md-script')}</script>",
        f'<img src="x" onerror="{run("md-img-onerror")}">',
        f'<details open ontoggle="{run("md-details-ontoggle")}"><summary>s</summary>d</details>',
        f'<svg onload="{run("md-svg-onload")}"><circle r="1"></circle></svg>',
        f'<iframe srcdoc="{srcdoc}"></iframe>',
        f'<object data="data:text/html;base64,{object_html}"></object>',
        f'<meta http-equiv="refresh" content="1;url={beacon.url}/md-meta-refresh">',
        f"<style>@import url({beacon.url}/md-style-import);</style>",
        f'<div style="background-image:url({beacon.url}/md-style-attribute)">styled</div>',
        f'<img src="{beacon.url}/md-remote-image">',
        f'<math><mtext><table><mglyph><style><img src=x onerror="{run("md-mutation-xss")}">'
        "</style></mglyph></table></mtext></math>",
        f'<input autofocus onfocus="{run("md-autofocus")}">',
        f'<a href="&#106;avascript:{run("md-entity-link")}">entity link</a>',
        f'<video><source onerror="{run("md-video-source")}"></video>',
    ]), id="hostile-html")
    markdown = new_markdown_cell("\n\n".join([
        r"HOSTILE-MARKDOWN: and $e^{i\pi} + 1 = 0$ holds.",
        f"[a link](javascript:{run('md-javascript-link')})",
        f"[an entity link](javascript&#58;{run('md-entity-markdown-link')})",
        f"[a tab link](java&#9;script:{run('md-tab-link')})",
        f"<javascript:{run('md-autolink')}>",
        f"![an image]({beacon.url}/md-markdown-image)",
    ]), id="hostile-markdown")
    raw_html = new_raw_cell(f'<img src="x" onerror="{run("raw-html")}"><script>{run("raw-html-script")}</script>',
                            id="hostile-raw-html", metadata={"raw_mimetype": "text/html"})
    raw_plain = new_raw_cell(f'<img src="x" onerror="{run("raw-plain")}">', id="hostile-raw-plain")
    outputs = new_code_cell("\n".join([
        "from IPython.display import HTML, SVG, Javascript, Markdown, display",
        f"display(HTML({json.dumps('<img src=x onerror=' + chr(34) + run('out-html') + chr(34) + '>')}))",
        f"display(Javascript({json.dumps(run('out-javascript'))}))",
        f"display(Markdown({json.dumps('<img src=x onerror=' + chr(34) + run('out-markdown') + chr(34) + '>')}))",
        "display(SVG(" + json.dumps('<svg xmlns="http://www.w3.org/2000/svg" onload="' + run("out-svg") + '"/>') + "))",
        "display({'text/html': " + json.dumps(f"<script>{run('out-raw-html')}</script>") +
        ", 'text/plain': 'HOSTILE-OUTPUTS plain text'}, raw=True)",
        "print('<script>printed, not HTML</script>')",
    ]), id="hostile-outputs")
    return [html, markdown, raw_html, raw_plain, outputs]


def injected_outputs(beacon):
    """Outputs as an autograded notebook of an unsanitised grader would hold them."""
    def run(label):
        return js(beacon, label)

    return [
        nbformat.v4.new_output("display_data", data={"text/html": f'<img src=x onerror="{run("fb-html")}">'}),
        nbformat.v4.new_output("display_data", data={"application/javascript": run("fb-javascript")}),
        nbformat.v4.new_output("display_data", data={"text/markdown": f'<img src=x onerror="{run("fb-markdown")}">'}),
        nbformat.v4.new_output("display_data", data={
            "image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg" onload="{run("fb-svg")}"/>'}),
    ]


@pytest.fixture(scope="module")
def graded(tmp_path_factory, beacon):
    """The course after ``nbgrader autograde`` of the hostile submission: ``(course, submission id)``."""
    course = pipeline.make_course(tmp_path_factory.mktemp("xss"))
    fixture.build(course, notebooks=SMALL)
    pipeline.nbgrader(course, "generate_assignment", A, "--force")
    nb = pipeline.source_notebook(course, A, NB)
    nb.cells.extend(hostile_cells(beacon))
    pipeline.submit(course, STUDENT, A, {NB: nb})
    pipeline.nbgrader(course, "autograde", A)
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "backprop-lab") as gb:
        submission_id = gb.find_submission_notebook(NB.removesuffix(".ipynb"), A, STUDENT).id
    return course, submission_id


@pytest.fixture(scope="module")
def formgrader(graded, tmp_path_factory):
    """JupyterLab with nbgrader's formgrader, serving the graded course; yields its base URL and token."""
    course, _ = graded
    home = tmp_path_factory.mktemp("formgrader-home")
    env = write_isolated_config(home)
    (home / "config" / "jupyter_server_config.json").write_text(json.dumps({"ServerApp": {"jpserver_extensions": {
        "jupyter_lsp": False, "nbgrader.server_extensions.formgrader": True}}}))
    port, token = free_loopback_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    log = home / "jupyterlab.log"
    command = lab_command(port, token, course, "--LabApp.expose_app_in_browser=True")
    with log.open("wb") as log_file:
        server = subprocess.Popen(command, cwd=course, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until_serving(server, url, token, log)
        yield url, token
    finally:
        stop(server)


def _route(route):
    """No network: the CDN's MathJax 2.7.7 from Debian's copy, local requests as they are, the rest refused."""
    url = route.request.url
    if url.startswith(MATHJAX2_CDN):
        relative = urllib.parse.urlsplit(url).path[len(urllib.parse.urlsplit(MATHJAX2_CDN).path):]
        if relative == "latest.js":
            return route.fulfill(body=LATEST_JS, content_type="application/javascript")
        path = (MATHJAX2 / relative).resolve()
        if path.is_file() and MATHJAX2 in path.parents:
            return route.fulfill(path=str(path))
        return route.fulfill(status=404)
    if urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "localhost") or url.startswith(("file:", "data:")):
        return route.continue_()
    return route.abort()


@pytest.fixture
def page(chromium, artifacts, request):
    context = chromium.new_context(viewport=VIEWPORT)
    context.route("**/*", _route)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.dismiss())  # an alert() would show as a label anyway
    yield page
    page.screenshot(path=artifacts / f"xss-{request.node.name}.png", full_page=True)
    context.close()


def cell_containing(frame, marker):
    return frame.locator(".text_cell_render", has_text=marker)


# The links the browser itself takes for javascript: URLs (others would navigate away), one at a
# time: a javascript: navigation cancels the one still pending before it.
CLICK_LINKS_JS = """async cells => {
  const links = cells.flatMap(cell => [...cell.querySelectorAll('a')]).filter(a => a.protocol === 'javascript:');
  for (const a of links) {
    a.click();
    await new Promise(resolve => setTimeout(resolve, 300));
  }
}"""


def click_student_links(frame):
    """Click every script link in the student's markdown, as an instructor might."""
    for marker in MARKERS:
        cell_containing(frame, marker).evaluate_all(CLICK_LINKS_JS)


def labels(page):
    """The labels of the payloads that ran, in every frame of the page (a srcdoc frame has a window of its own)."""
    found = []
    for frame in page.frames:
        if not frame.is_detached():
            found += frame.evaluate("() => window.__xss || []")
    return found


def assert_inert_with_maths(page, frame, beacon, math_selector):
    """Once the maths of both markdown cells are typeset and their links clicked, nothing of the student's ran."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    typeset = []
    for marker in MARKERS:
        try:
            cell_containing(frame, marker).locator(math_selector).first.wait_for(state="attached", timeout=TIMEOUT)
            typeset.append(marker)
        except PlaywrightTimeout:
            pass  # said below, after what ran (which may be why)
    click_student_links(frame)
    page.wait_for_timeout(SETTLE)
    ran = sorted(set(labels(page)) | {hit.strip("/") for hit in beacon.hits})
    assert ran == [], f"student script ran or fetched: {ran}"
    assert typeset == MARKERS, f"no maths typeset in the cells marked {sorted(set(MARKERS) - set(typeset))}"


def test_the_hostile_submission_is_graded_as_its_code_deserves(graded):
    course, _ = graded
    assert pipeline.cell_scores(course, A, STUDENT) == {"test_affine_forward": (2.0, 2.0), "test_relu_forward": (2.0, 2.0)}


def test_formgrader_page_runs_no_student_script(graded, formgrader, page, beacon):
    _, submission = graded
    url, token = formgrader
    beacon.hits.clear()
    page.goto(f"{url}/formgrader/submissions/{submission}/?token={token}", timeout=TIMEOUT)
    assert_inert_with_maths(page, page.main_frame, beacon, ".MathJax_CHTML")
    assert page.locator(".output_subarea", has_text="HOSTILE-OUTPUTS plain text").count() == 1


def test_formgrader_panel_in_jupyterlab_runs_no_student_script(graded, formgrader, page, beacon):
    _, submission = graded
    url, token = formgrader
    beacon.hits.clear()
    page.goto(f"{url}/lab?token={token}", timeout=TIMEOUT)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.hasCommand('nbgrader:open-formgrader')",
                           timeout=TIMEOUT)
    page.evaluate("() => window.jupyterapp.commands.execute('nbgrader:open-formgrader')")
    panel = page.frame_locator("iframe[src*='formgrader']")
    panel.locator("body").wait_for(timeout=TIMEOUT)
    frame = next(f for f in page.frames if "/formgrader" in f.url)
    frame.evaluate("target => location.assign(target)", f"{url}/formgrader/submissions/{submission}/")
    frame.wait_for_url(f"**/formgrader/submissions/{submission}/", timeout=TIMEOUT)
    assert_inert_with_maths(page, frame, beacon, ".MathJax_CHTML")


def test_feedback_page_runs_no_student_script(graded, page, beacon, artifacts):
    course, _ = graded
    autograded = course / "autograded" / STUDENT / A / NB
    nb = nbformat.read(autograded, as_version=4)
    cell = next(c for c in nb.cells if c.get("id") == "hostile-outputs")
    cell.outputs.extend(injected_outputs(beacon))
    nbformat.write(nb, autograded)
    pipeline.nbgrader(course, "generate_feedback", A, "--force")
    feedback = course / "feedback" / STUDENT / A / NB.replace(".ipynb", ".html")
    shutil.copy(feedback, artifacts / "xss-feedback.html")
    assert 'http-equiv="Content-Security-Policy"' in feedback.read_text()
    beacon.hits.clear()
    page.goto(feedback.as_uri(), timeout=TIMEOUT)
    assert_inert_with_maths(page, page.main_frame, beacon, "mjx-container")
