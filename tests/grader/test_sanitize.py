"""grader.sanitize and grader.feedback_html: student content comes out inert, maths and images stay.

Every vector is sanitised, then rendered the way formgrader and the feedback page render it
(nbconvert's markdown renderer, or the whole HTML exporter), and the result is searched for
anything that could run or fetch: script elements, ``on*`` handlers, ``javascript:`` (and other
non-allowlisted) URLs, frames, objects, styles, forms, meta and base elements. Hypothesis mixes
the vectors' pieces into random markdown for the same checks and for idempotence.
"""
import base64
import hashlib
import re
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup
from hypothesis import given, settings
from hypothesis import strategies as st
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from grader import feedback_html, sanitize

REPO = Path(__file__).resolve().parents[2]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 16).decode()
X = "alert(document.cookie)"

VECTORS = {
    "script": f"<script>{X}</script>",
    "script, uppercase and split": f"<SCRIPT>{X}</SCRIPT ><scr<script>ipt>{X}</script>",
    "img onerror": f"<img src=x onerror={X}>",
    "details ontoggle": f"<details open ontoggle={X}><summary>s</summary></details>",
    "svg onload": f"<svg onload={X}><circle r=1 /></svg>",
    "svg use": "<svg><use href='data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=#x'/></svg>",
    "body onload": f"<body onload={X}>",
    "input autofocus": f"<input autofocus onfocus={X}>",
    "video source onerror": f"<video><source onerror={X}></video>",
    "html javascript link": f"<a href='javascript:{X}'>x</a>",
    "html javascript link, tab inside": f"<a href='java&#x09;script:{X}'>x</a>",
    "html javascript link, entities": f"<a href='&#106;&#97;vascript&colon;{X}'>x</a>",
    "html vbscript and data links": "<a href='vbscript:msgbox(1)'>v</a><a href='data:text/html,<script>1</script>'>d</a>",
    "markdown javascript link": f"[x](javascript:{X})",
    "markdown javascript link, mixed case": f"[x](JaVaScRiPt:{X})",
    "markdown javascript link, entity colon": f"[x](javascript&#58;{X})",
    "markdown javascript link, tab entity": f"[x](java&#9;script:{X})",
    "markdown javascript image": f"![x](javascript:{X})",
    "markdown reference link": f"[x][r]\n\n[r]: javascript:{X}",
    "autolink": f"<javascript:{X}>",
    "iframe srcdoc": f"<iframe srcdoc='<script>{X}</script>'></iframe>",
    "iframe src": f"<iframe src='javascript:{X}'></iframe>",
    "object and embed": f"<object data='javascript:{X}'></object><embed src='javascript:{X}'>",
    "meta refresh": f"<meta http-equiv='refresh' content='0;url=javascript:{X}'>",
    "base": "<base href='https://evil.example/'>",
    "style with expression": f"<style>body {{ background: expression({X}) }}</style><p style='width: expression({X})'>p</p>",
    "style import": "<style>@import 'https://evil.example/x.css';</style>",
    "form": f"<form action='javascript:{X}'><button formaction='javascript:{X}'>go</button></form>",
    "link stylesheet": "<link rel=stylesheet href='https://evil.example/x.css'>",
    "remote image": "<img src='https://evil.example/pixel.png'>",
    "markdown remote image": "![x](https://evil.example/pixel.png)",
    "relative image (a GET as the instructor)": "<img src='/logout'>",
    "mutation xss through math": f"<math><mtext><table><mglyph><style><img src=x onerror={X}></style></mglyph></table></mtext></math>",
    "mutation xss through noscript": f"<noscript><p title=\"</noscript><img src=x onerror={X}>\">",
    "comment breakout": f"<!--><img src=x onerror={X}>-->",
    "unclosed attribute": f"<img src=\"x\" alt=\"<img src=x onerror={X}>",
    "template": f"<template><img src=x onerror={X}></template>",
    "mermaid code block": f"```mermaid\ngraph TD; A-->B; click A callback \"{X}\"\n```",
    "borrowed page classes": "<div class='navbar-fixed-top modal in hidden'>x</div>",
    "missing attachment": "![x](attachment:nowhere.png)",
}
FORBIDDEN_TAGS = {"script", "iframe", "object", "embed", "style", "form", "meta", "base", "link", "svg", "math",
                  "frame", "frameset", "template", "noscript", "button", "textarea", "select", "video", "source",
                  "audio"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "data", "srcdoc", "xlink:href", "background", "poster", "srcset"}


def render_markdown(source, attachments=None):
    """The markdown as formgrader's and the feedback page's exporter renders it."""
    return MarkdownWithMath(renderer=IPythonRenderer(escape=False, attachments=attachments or {})).render(source)


def hazards(html, classes=True):
    """Everything in ``html`` that could run script, fetch something, or (``classes``) borrow the page's own classes."""
    found = []
    for element in BeautifulSoup(html, "html5lib").find_all(True):  # parsed as a browser parses it
        if element.name in FORBIDDEN_TAGS:
            found.append(f"<{element.name}>")
        for name, value in element.attrs.items():
            value = " ".join(value) if isinstance(value, list) else value
            if name.startswith("on") or name == "style" and not re.fullmatch(r"text-align:\s*(left|center|right);?", value):
                found.append(f"{element.name}[{name}]")
            if name in URL_ATTRIBUTES:
                if element.name == "img" and name == "src":
                    if not re.match(r"data:image/(png|jpeg|gif);base64,", value):
                        found.append(f"img[src={value[:40]}]")
                elif not re.match(r"(https?://|mailto:|#)", value):
                    found.append(f"{element.name}[{name}={value[:40]}]")
            if classes and name == "class" and element.name == "div" and value not in ("", "highlight"):
                found.append(f"div[class={value}]")
    return found


@pytest.mark.parametrize("vector", VECTORS, ids=list(VECTORS))
def test_markdown_vector_renders_inert(vector):
    source = VECTORS[vector] + "\n\nand the maths stay: $a<b$ and $$\\sum_i x_i$$"
    safe = sanitize.safe_markdown(source)
    html = render_markdown(safe)
    assert hazards(html) == []
    assert "$a&lt;b$" in html and "$$\\sum_i x_i$$" in html


@pytest.mark.parametrize("vector", VECTORS, ids=list(VECTORS))
def test_sanitising_twice_changes_nothing(vector):
    once = sanitize.safe_markdown(VECTORS[vector])
    assert sanitize.safe_markdown(once) == once


def test_the_vectors_are_live_without_the_sanitiser():
    """The check above would see them: rendered as they are, most vectors are hazards."""
    harmless = [name for name, source in VECTORS.items() if not hazards(render_markdown(source.replace("attachment:", "")))]
    assert harmless == []


def test_ordinary_markdown_keeps_its_text():
    source = ("# Backward pass\n\nThe *gradient* is $\\frac{\\partial L}{\\partial W} = x^\\top \\delta$, **summed**:\n\n"
              "$$\\sum_{t=1}^{T} \\frac{\\partial L_t}{\\partial h_t}$$\n\n| shape | meaning |\n|:--|--:|\n| (N, D) | batch |\n\n"
              "- [x] forward\n- [ ] backward\n\n> a quote\n\n```python\nx = np.zeros((2, 3))\n```\n\n"
              "See [the notes](https://cs231n.github.io/) or mail <mailto:ta@example.org>.\n\n"
              f"![a plot](data:image/png;base64,{PNG}) ![attached](attachment:plot.png)")
    attachments = {"plot.png": {"image/png": PNG}}
    assert sanitize.safe_markdown(source, attachments) == source
    html = render_markdown(source, attachments)
    assert hazards(html) == [] and "<table>" in html and html.count("data:image/png;base64,") == 2


def test_every_course_markdown_cell_keeps_its_text():
    changed = []
    for path in sorted((REPO / "course" / "source").glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown" and sanitize.safe_markdown(cell.source, cell.get("attachments")) != cell.source:
                changed.append(f"{path.name}:{cell.get('id')}")
    assert changed == []


def test_html_that_is_safe_still_shows():
    html = render_markdown(sanitize.safe_markdown(
        "<b>bold</b> <sub>1</sub> <details><summary>hint</summary>$x^2$</details>\n\n"
        f"<table><tr><td style='text-align:center'>1</td></tr></table> <img src='data:image/png;base64,{PNG}' alt=p>"))
    soup = BeautifulSoup(html, "html.parser")
    assert [soup.find(name) is not None for name in ("b", "sub", "details", "table", "img")] == [True] * 5
    assert soup.find("td")["style"] == "text-align:center" and "$x^2$" in soup.get_text()


def test_unshowable_markdown_is_shown_as_text():
    deep = "<div>" * 5000 + "x"
    assert hazards(render_markdown(sanitize.safe_markdown(deep))) == []
    assert "&lt;div&gt;" in sanitize.safe_markdown(deep)


def test_attachments_keep_only_real_images():
    kept = sanitize.safe_attachments({
        "a.png": {"image/png": PNG, "text/html": "<script>x</script>"},
        "b.svg": {"image/svg+xml": base64.b64encode(b"<svg onload='x'/>").decode()},
        "c.png": {"image/png": JPEG},
        "d.jpg": {"image/jpeg": JPEG},
        "e.png": {"image/png": "not base64!"},
    })
    assert kept == {"a.png": {"image/png": PNG}, "d.jpg": {"image/jpeg": JPEG}}


def test_outputs_keep_text_and_real_images_only():
    outputs = [
        new_output("display_data", data={"text/html": f"<img src=x onerror={X}>", "application/javascript": X}),
        new_output("display_data", data={"text/html": "<b>x</b>", "text/plain": "<HTML object>"}),
        new_output("display_data", data={"image/png": PNG, "image/svg+xml": "<svg onload=x/>", "text/markdown": "x"},
                   metadata={"filenames": {"image/png": "javascript:x"}, "image/png": {"width": "1 onerror=x"}}),
        new_output("display_data", data={"image/png": JPEG, "image/jpeg": "!!"}),
        new_output("execute_result", data={"text/plain": "1.5", "text/html": "<i>1.5</i>"}, execution_count=3),
        new_output("error", ename="ValueError", evalue="<script>x</script>", traceback=["<b>trace</b>"]),
        new_output("stream", name="stderr", text="warning <script>"),
        {"output_type": "exploit", "data": {"text/html": "<script>x</script>"}},
    ]
    safe = [sanitize.safe_output(output) for output in outputs]
    assert safe[0].data == {"text/plain": "[application/javascript, text/html output not shown: "
                                          "the grader shows only text and PNG/JPEG images]"}
    assert safe[1].data == {"text/plain": "<HTML object>"}
    assert safe[2].data == {"image/png": PNG} | {"text/plain": safe[2].data["text/plain"]} and safe[2].metadata == {}
    assert "image/svg+xml" in safe[2].data["text/plain"] and "image/png" not in safe[3].data
    assert (safe[4].output_type, safe[4].data, safe[4].execution_count) == ("execute_result", {"text/plain": "1.5"}, 3)
    assert (safe[5].output_type, safe[5].evalue, safe[5].traceback) == ("error", "<script>x</script>", ["<b>trace</b>"])
    assert (safe[6].name, safe[6].text) == ("stderr", "warning <script>")
    assert safe[7].output_type == "stream" and "not shown" in safe[7].text
    for output in safe:
        nbformat.validate(new_notebook(cells=[new_code_cell(outputs=[output])]))


def test_a_prompt_number_is_a_number():
    cell = new_code_cell("x")
    cell.execution_count = f"<img src=x onerror={X}>"  # a notebook's JSON can say anything
    sanitize.sanitise_cell(cell)
    assert cell.execution_count is None


def hostile_notebook():
    nb = new_notebook(cells=[
        new_markdown_cell(VECTORS["img onerror"] + " with $y = Wx$", id="md"),
        new_raw_cell(f"<img src=x onerror={X}><script>{X}</script>", id="raw-html", metadata={"raw_mimetype": "text/html"}),
        new_raw_cell(f"<img src=x onerror={X}>", id="raw-plain"),
        new_code_cell("display(HTML(...))", id="code", outputs=[
            new_output("display_data", data={"text/html": f"<script>{X}</script>", "text/plain": "plain"}),
            new_output("display_data", data={"application/javascript": X}),
            new_output("display_data", data={"text/markdown": f"[x](javascript:{X})"}),
            new_output("display_data", data={"image/svg+xml": f"<svg onload='{X}'/>"})]),
    ])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"x": {"state": {"value": "<script>"}}}}}
    nb.cells[0].metadata["nbgrader"] = {"comment": f"<img src=x onerror={X}> see $z$"}
    return nb


def test_the_preprocessor_makes_a_whole_notebook_inert_in_nbconvert():
    nb = hostile_notebook()
    exporter = HTMLExporter(template_name="classic")
    unsafe, _ = exporter.from_notebook_node(nb)
    assert X in unsafe.replace("&quot;", '"')  # nbconvert on its own would show the payloads live
    nb, _ = sanitize.SanitizeStudentContent().preprocess(nb, {})
    html, _ = exporter.from_notebook_node(nb)
    assert hazards(html.split("<body", 1)[1], classes=False) == []  # the student's part of the page
    assert X not in html.replace("&quot;", '"')
    assert "$y = Wx$" in html and "widgets" not in nb.metadata
    assert [cell.metadata.get("raw_mimetype") for cell in nb.cells[1:3]] == ["text/plain", "text/plain"]
    assert hazards(render_markdown(nb.cells[0].metadata["nbgrader"]["comment"])) == []
    nbformat.validate(nb)


def test_grades_do_not_change():
    """nbgrader scores a grade cell from its outputs: errors, stderr, a partial score in an execute_result."""
    from nbgrader.utils import determine_grade
    cells = [new_code_cell(outputs=outputs, metadata={"nbgrader": {"grade": True, "grade_id": "g", "points": 3,
                                                                   "solution": False, "locked": True}})
             for outputs in ([new_output("execute_result", data={"text/plain": "1.5", "text/html": "x"}, execution_count=1)],
                             [new_output("error", ename="E", evalue="v", traceback=[])],
                             [new_output("stream", name="stderr", text="w")],
                             [new_output("stream", name="stdout", text="ok")])]
    before = [determine_grade(cell) for cell in cells]
    for cell in cells:
        sanitize.sanitise_cell(cell)
    assert [determine_grade(cell) for cell in cells] == before == [(1.5, 3.0), (0, 3.0), (0, 3.0), (3.0, 3.0)]


PIECES = st.sampled_from([
    "<", ">", "/", "\"", "'", "=", " ", "\n", "\n\n", "`", "```", "$", "$$", "[", "]", "(", ")", "!", "&", "#", ";",
    "&#58;", "&#x09;", "&lt;", "&quot;", "<!--", "-->", "javascript:", "JaVaScRiPt:", "data:text/html,", "attachment:a",
    "<script>", "</script>", "<img", " src=x", " onerror=", "<svg", "<math>", "<style>", "</style>", "<a href=",
    "<iframe", "<details", " ontoggle=", "<noscript>", "<table>", "<td>", "<pre>", "<div>", "</div>", "<p title=",
    "alert(1)", "x", "| a |\n|---|\n", "> ", "- ", "# ", "\\(", "\\)", "www.x.org", "https://x.org", "<https://x.org>",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=40).map("".join))
def test_any_mix_of_the_pieces_renders_inert_and_sanitises_once(source):
    safe = sanitize.safe_markdown(source)
    assert hazards(render_markdown(safe)) == []
    assert sanitize.safe_markdown(safe) == safe


def test_the_feedback_page_lets_only_its_mathjax_run():
    page = feedback_html.strict_page(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><script src="https://cdn.example/MathJax.js"></script>'
        '<script type="text/x-mathjax-config">MathJax.Hub.Config({})</script></head>'
        f'<body><p>$x$</p><script>{X}</script></body></html>')
    soup = BeautifulSoup(page, "html.parser")
    head = [element for element in soup.head.children if getattr(element, "name", None)]
    assert [element.name for element in head[:2]] == ["meta", "meta"] and head[0].get("charset") == "utf-8"
    policy = head[1]["content"]
    assert head[1]["http-equiv"] == "Content-Security-Policy"
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    scripts = soup.find_all("script")
    assert len(scripts) == 1 and "src" not in scripts[0].attrs
    body = page.split("<script>", 1)[1].rsplit("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in policy
    assert "MathJax" in body and "inlineMath: [['$', '$']" in body and X not in page


def test_the_feedback_exporter_renders_a_strict_page():
    html, _ = feedback_html.StrictFeedbackExporter(template_name="classic").from_notebook_node(hostile_notebook())
    assert 'http-equiv="Content-Security-Policy"' in html
    assert len(BeautifulSoup(html, "html.parser").find_all("script")) == 1
