"""The feedback page, with a strict Content-Security-Policy and maths that render offline.

nbgrader's feedback template loads MathJax 2.7.7 from a CDN and configures it with an inline
script: the page needs the network to show maths, and allowing its inline script would allow
a student's too. :class:`StrictFeedbackExporter` (``GenerateFeedback.exporter_class`` in
``course/nbgrader_config.py``) renders the same template, then takes every script out of the
page and puts in one of its own: MathJax 3's ``tex-svg-full`` (every TeX extension, SVG output,
so no font or extension is ever fetched) and its ``ui/safe`` filter, from the
``django-static-mathjax`` package (MathJax's own release, unmodified), inline with its
configuration. The page's policy lets only that script run, by its SHA-256: no student script,
event handler or ``javascript:`` URL can, even if one got past :mod:`grader.sanitize`. Nothing is
fetched: images only from ``data:`` URLs, no frames, forms, plugins or connections. The page
is self-contained, so it works wherever the student opens it, from a file or a server; the
cost is MathJax's 2.3 MB in every feedback file.
"""
import base64
import hashlib
import logging
import importlib.resources
from functools import lru_cache

from bs4 import BeautifulSoup
from nbconvert.exporters import HTMLExporter

MATHJAX_FILES = ("static/mathjax/es5/tex-svg-full.js", "static/mathjax/es5/ui/safe.js")
# The delimiters and numbering of nbconvert's own MathJax configuration; no menu (it would load more code).
MATHJAX_CONFIG = ("window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], "
                  "displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']], processEscapes: true, "
                  "processEnvironments: true, tags: 'ams'}, options: {enableMenu: false}, "
                  "svg: {fontCache: 'global'}};\n")
POLICY = ("default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; img-src data:; font-src data:; "
          "base-uri 'none'; form-action 'none'; frame-src 'none'; object-src 'none'")
_PLACEHOLDER = "backprop-lab-mathjax"

log = logging.getLogger("backprop_lab.feedback")


@lru_cache(maxsize=1)
def mathjax_script():
    """The page's one script (configuration and MathJax), or None if MathJax is not installed."""
    try:
        package = importlib.resources.files("mathjax")
        code = "".join((package / name).read_text(encoding="utf-8") + "\n" for name in MATHJAX_FILES)
    except (ModuleNotFoundError, FileNotFoundError) as error:
        log.warning("feedback pages will show TeX source, not maths: MathJax not found (%s); "
                    "install django-static-mathjax", error)
        return None
    if "</script" in code.lower():
        raise ValueError("MathJax's code contains '</script' and cannot be inlined")
    return MATHJAX_CONFIG + code


def policy(script):
    """The Content-Security-Policy that lets ``script`` (or no script at all) run."""
    if script is None:
        return POLICY.format(scripts="'none'")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return POLICY.format(scripts=f"'sha256-{digest}'")


def strict_page(html, notes=()):
    """``html`` without its scripts, with the policy first in its head and the MathJax script last;
    each of ``notes`` (plain text) becomes one more line in the page's list of scores."""
    soup = BeautifulSoup(html, features="html.parser")
    scores = soup.find("ol")
    for note in notes:
        item = soup.new_tag("li", attrs={"class": "extension"})
        item.string = note
        (scores or soup.body or soup).append(item)
    for script in soup.find_all("script"):
        script.decompose()
    if soup.head is None:
        (soup.html or soup).insert(0, soup.new_tag("head"))
    script = mathjax_script()
    meta = soup.new_tag("meta", attrs={"http-equiv": "Content-Security-Policy", "content": policy(script)})
    charset = soup.head.find("meta", attrs={"charset": True})
    if charset is not None:
        charset.insert_after(meta)
    else:
        soup.head.insert(0, meta)
    if script is None:
        return str(soup)
    placeholder = soup.new_tag("script")
    placeholder.string = _PLACEHOLDER
    soup.head.append(placeholder)
    # Inserted as text after serialising, so not one byte differs from what the hash covers.
    return str(soup).replace(f"<script>{_PLACEHOLDER}</script>", f"<script>{script}</script>", 1)


class StrictFeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter (nbgrader's feedback template) whose pages run no script but MathJax."""

    def from_notebook_node(self, nb, resources=None, **kw):
        html, resources = super().from_notebook_node(nb, resources, **kw)
        return strict_page(html, _extension_notes(resources)), resources


def _extension_notes(resources):
    """The student's extension for this assignment, as nbgrader's gradebook holds it (a line, or none)."""
    info = (resources or {}).get("nbgrader", {})
    if not {"db_url", "assignment", "student"} <= set(info):
        return []
    from nbgrader.api import Gradebook, MissingEntry
    try:
        with Gradebook(info["db_url"]) as gb:
            submission = gb.find_submission(info["assignment"], info["student"])
            if not submission.extension:
                return []
            days = submission.extension.total_seconds() / 86400
            due = submission.duedate
            return [f"Extension granted: {days:g} day(s); due {due:%Y-%m-%d %H:%M} UTC" if due else
                    f"Extension granted: {days:g} day(s)"]
    except MissingEntry:
        return []
