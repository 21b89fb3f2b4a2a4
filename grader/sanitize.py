"""Everything a student controls made inert before formgrader or feedback shows it.

Formgrader's manual-grading page and the feedback HTML are nbconvert renderings of the
autograded notebook, and nbconvert trusts it: raw HTML in markdown passes through, links keep
``javascript:`` URLs, ``text/html`` and ``application/javascript`` outputs are pasted in. Both
pages are opened by the instructor, logged in to Jupyter, so a script there could act as them.
:class:`SanitizeStudentContent` rewrites the notebook itself, so the stock pages show it inert:

- **Markdown** is rendered with nbconvert's own renderer (the one those pages use) and the
  result cleaned with ``nh3`` (an allowlist: formatting, tables, code, headings' anchors,
  ``https``/``mailto``/``#`` links, images only as PNG/JPEG/GIF data). A cell whose rendering
  the cleaner leaves alone, and which holds no raw HTML, keeps its text; any other cell is
  replaced by its cleaned rendering, on one line inside a ``<div>``, which markdown passes
  through unchanged (checked by rendering it again). Maths stays text (``$...$``) for MathJax.
- **Outputs** keep text, PNG and JPEG (checked base64 and magic bytes), error tracebacks and
  stream text; anything else is dropped and a short note says which types were.
- **Raw cells** are marked ``text/plain``: nbconvert's HTML exporters render only raw cells
  marked as HTML or markdown (or unmarked).
- **Attachments** keep PNG/JPEG/GIF images only; widget state in the notebook's metadata goes.

Grades are unaffected: error outputs stay errors and an ``execute_result``'s ``text/plain``
(a partial score, for nbgrader's ``determine_grade``) is kept as it was.
"""
import base64
import binascii
import re
from functools import lru_cache
from html import escape
from html.parser import HTMLParser

import nh3
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbformat.v4 import new_output
from nbgrader.preprocessors import NbGraderPreprocessor
from pygments.token import STANDARD_TYPES

# What a PNG, JPEG or GIF starts with; other image types (SVG among them) are not shown.
IMAGE_MAGIC = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",),
               "image/gif": (b"GIF87a", b"GIF89a")}
OUTPUT_IMAGE_TYPES = ("image/png", "image/jpeg")
MAX_TAGS = 50_000   # nh3's time grows faster than linearly with nesting depth: bound both
MAX_DEPTH = 200
# Every student's copy of the instructor's cells is the same text: sanitised once per process.
CACHED_LENGTH = 65_536
UNSHOWABLE = "<div><p>[This cell could not be shown safely.]</p></div>"

_TAGS = (nh3.ALLOWED_TAGS - {"map", "area"}) | {"input"}
# Tags whose content is dropped with them, not kept as text.
_DROPPED_WITH_CONTENT = {"script", "style", "template", "noscript", "iframe", "object", "embed", "svg", "math",
                         "textarea", "select", "title", "xmp", "noembed", "noframes", "plaintext", "head"}
_HEADINGS = {f"h{level}" for level in range(1, 7)}
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "th": {"style", "colspan", "rowspan", "align"},
    "td": {"style", "colspan", "rowspan", "align"},
    "input": {"checked"},
    "ol": {"start"},
    **{heading: {"id"} for heading in _HEADINGS},
}
# The classes nbconvert's markdown rendering uses (pygments' token classes among them); no
# others, so a student cannot borrow the page's own (say, to hide text or fake its controls).
_CLASSES = {
    "a": {"anchor-link"},
    "li": {"task-list-item"},
    "input": {"task-list-item-checkbox"},
    "div": {"highlight"},
    "span": set(STANDARD_TYPES.values()) - {""},
}
_SAFE_LINK = re.compile(r"(?i)^(https?://|mailto:|#)")
_DATA_IMAGE = re.compile(r"(?i)^data:(image/(?:png|jpeg|gif));base64,([A-Za-z0-9+/=\s]*)$")


def is_image(mime_type, data):
    """Whether ``data`` is base64 that decodes to an image of ``mime_type`` (PNG, JPEG or GIF)."""
    if mime_type not in IMAGE_MAGIC or not isinstance(data, str):
        return False
    try:
        decoded = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return decoded.startswith(IMAGE_MAGIC[mime_type])


def _attribute_filter(tag, attribute, value):
    if attribute == "href":
        return value if _SAFE_LINK.match(value) else None
    if attribute == "src":
        match = _DATA_IMAGE.match(value)
        return value if match and is_image(match.group(1).lower(), match.group(2)) else None
    return value


_CLEANER = nh3.Cleaner(
    tags=_TAGS, clean_content_tags=_DROPPED_WITH_CONTENT, attributes=_ATTRIBUTES, allowed_classes=_CLASSES,
    attribute_filter=_attribute_filter, url_schemes={"http", "https", "mailto", "data"}, link_rel=None,
    strip_comments=True, filter_style_properties={"text-align"},
    set_tag_attribute_values={"input": {"type": "checkbox", "disabled": ""}})


def clean_html(fragment):
    """``fragment`` with everything outside the allowlist removed."""
    return _CLEANER.clean(fragment)


class _Shape(HTMLParser):
    """A fragment's elements, sorted attributes and text, to compare two fragments by; and its size."""

    _VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, fragment):
        super().__init__(convert_charrefs=True)
        self.items, self.open, self.depth, self.roots = [], [], 0, 0
        self.feed(fragment)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.handle_startendtag(tag, attrs)
        if tag not in self._VOID:
            self.open.append(tag)
            self.depth = max(self.depth, len(self.open))

    def handle_startendtag(self, tag, attrs):
        self.roots += not self.open
        self.items.append(("<", tag, tuple(sorted((name, value or "") for name, value in attrs))))

    def handle_endtag(self, tag):
        self.items.append((">", tag))
        if tag in self.open:
            del self.open[len(self.open) - 1 - self.open[::-1].index(tag):]

    def handle_data(self, data):
        self.roots += not self.open and not data.isspace()
        if self.items and self.items[-1][0] == "text":
            self.items[-1] = ("text", self.items[-1][1] + data)
        else:
            self.items.append(("text", data))

    def _other(self, data):
        self.items.append(("!", data))

    handle_comment = handle_decl = handle_pi = unknown_decl = _other


class _Renderer(IPythonRenderer):
    """nbconvert's markdown renderer, noting what keeps a cell from staying as it is: raw HTML, a missing attachment."""

    def __init__(self, attachments):
        super().__init__(escape=False, attachments=attachments)
        self.needs_rewrite = False

    def block_html(self, html):
        self.needs_rewrite = True
        return super().block_html(html)

    def inline_html(self, html):
        self.needs_rewrite = True
        return super().inline_html(html)

    def _embed_image_or_attachment(self, src):
        if src.startswith("attachment:") and src[len("attachment:"):] not in self.attachments:
            self.needs_rewrite = True  # as it is, nbconvert would fail on the whole notebook
            return ""
        return super()._embed_image_or_attachment(src)


def _render(source, attachments):
    """``(html, needs rewriting)`` as nbconvert renders ``source``, or ``(None, True)`` if it cannot."""
    renderer = _Renderer(attachments)
    try:
        return MarkdownWithMath(renderer=renderer).render(source), renderer.needs_rewrite
    except Exception:  # noqa: BLE001  (whatever the renderer chokes on, the cell is shown as text)
        return None, True


def _one_block(fragment):
    """``fragment`` as one line of block HTML in a ``<div>``, or None if markdown would not pass it through unchanged."""
    fragment = fragment.strip()
    shape = _Shape(fragment)
    if shape.roots == 1 and shape.items and shape.items[0] == ("<", "div", ()) and shape.items[-1] == (">", "div"):
        fragment = fragment[len("<div>"):-len("</div>")]  # already one div (this cell was sanitised before)
    # A parser drops the line feed that opens a <pre>, the cleaner's serialiser does not add one back.
    fragment = fragment.replace("<pre>\n", "<pre>\n\n")
    block = "<div>" + fragment.replace("\r", "&#13;").replace("\n", "&#10;") + "</div>"
    rendered, _ = _render(block, {})
    return block if rendered is not None and rendered.strip() == block else None


def safe_markdown(source, attachments=None):
    """Markdown that renders, in nbconvert, to what ``source`` renders to, minus anything unsafe."""
    if not attachments and len(source) <= CACHED_LENGTH:
        return _safe_markdown_cached(source)
    return _safe_markdown(source, attachments or {})


@lru_cache(maxsize=4096)
def _safe_markdown_cached(source):
    return _safe_markdown(source, {})


def _safe_markdown(source, attachments):
    rendered, needs_rewrite = _render(source, attachments)
    if rendered is not None:
        shape = _Shape(rendered)
        if len(shape.items) <= MAX_TAGS and shape.depth <= MAX_DEPTH:
            cleaned = clean_html(rendered)
            if not needs_rewrite and _Shape(cleaned).items == shape.items:
                return source
            block = _one_block(cleaned)
            if block is not None:
                return block
    return _one_block("<pre>" + escape(source) + "</pre>") or UNSHOWABLE


def safe_attachments(attachments):
    """The attachments that are PNG, JPEG or GIF images, with only those representations."""
    kept = {}
    if isinstance(attachments, dict):
        for name, bundle in attachments.items():
            if isinstance(name, str) and isinstance(bundle, dict):
                images = {mime: data for mime, data in bundle.items() if is_image(mime, data)}
                if images:
                    kept[name] = images
    return kept


def _text(value):
    if isinstance(value, list):
        value = "".join(part for part in value if isinstance(part, str))
    return value if isinstance(value, str) else ""


def _removed_note(types):
    shown = ", ".join(kind[:60] for kind in types[:5]) + (", ..." if len(types) > 5 else "")
    return f"[{shown} output not shown: the grader shows only text and PNG/JPEG images]"


def safe_output(output):
    """``output`` rebuilt from its plain fields: text, PNG/JPEG images, errors."""
    kind = output.get("output_type") if isinstance(output, dict) else None
    if kind == "stream":
        return new_output("stream", name="stderr" if output.get("name") == "stderr" else "stdout",
                          text=_text(output.get("text")))
    if kind == "error":
        traceback = output.get("traceback")
        return new_output("error", ename=_text(output.get("ename")), evalue=_text(output.get("evalue")),
                          traceback=[_text(line) for line in traceback] if isinstance(traceback, list) else [])
    if kind in ("display_data", "execute_result"):
        data = output.get("data") if isinstance(output.get("data"), dict) else {}
        kept = {mime: data[mime] for mime in OUTPUT_IMAGE_TYPES if is_image(mime, data.get(mime))}
        if isinstance(data.get("text/plain"), (str, list)):
            kept["text/plain"] = _text(data["text/plain"])
        dropped = sorted(str(mime) for mime in data if mime not in kept)
        if dropped and "text/plain" not in kept:
            kept["text/plain"] = _removed_note(dropped)
        if kind == "display_data":
            return new_output("display_data", data=kept)
        count = output.get("execution_count")
        return new_output("execute_result", data=kept,
                          execution_count=count if type(count) is int else None)
    return new_output("stream", name="stdout", text=f"[an output of type {str(kind)[:40]!r} not shown]\n")


def sanitise_cell(cell):
    """Make ``cell`` inert in place; returns whether its markdown or raw content changed."""
    changed = False
    if "attachments" in cell:
        cell.attachments = safe_attachments(cell.attachments)
    if cell.cell_type == "markdown":
        source = safe_markdown(cell.source, cell.get("attachments"))
        changed, cell.source = source != cell.source, source
    elif cell.cell_type == "code":
        outputs = cell.get("outputs")
        cell.outputs = [safe_output(output) for output in outputs] if isinstance(outputs, list) else []
        if type(cell.get("execution_count")) is not int:
            cell.execution_count = None  # nbconvert's prompt shows it unescaped
    else:
        changed = cell.cell_type != "raw" or cell.metadata.get("raw_mimetype") != "text/plain"
        cell.cell_type = "raw"
        cell.metadata["raw_mimetype"] = "text/plain"
        cell.metadata.pop("format", None)
        for key in ("outputs", "execution_count"):
            cell.pop(key, None)
    nbgrader = cell.metadata.get("nbgrader")
    if isinstance(nbgrader, dict) and isinstance(nbgrader.get("comment"), str):
        nbgrader["comment"] = safe_markdown(nbgrader["comment"])
    return changed


class SanitizeStudentContent(NbGraderPreprocessor):
    """Make every cell, output and attachment inert for formgrader and the feedback page."""

    def preprocess(self, nb, resources):
        nb.metadata.pop("widgets", None)  # widget state: rendered by the widget manager, as HTML
        changed = [cell.get("id") or str(index) for index, cell in enumerate(nb.cells) if sanitise_cell(cell)]
        if changed:
            info = resources.get("nbgrader", {})
            self.log.warning("%s/%s/%s: %d cells made inert (raw HTML, unsafe links or raw cells): %s",
                             info.get("assignment"), info.get("student"), info.get("notebook"),
                             len(changed), ", ".join(changed[:10]) + (" ..." if len(changed) > 10 else ""))
        return nb, resources
