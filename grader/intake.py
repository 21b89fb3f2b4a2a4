"""Look at a submission folder before grading it: what can be graded, and one clear line per problem.

nbgrader stops a whole submission at the first notebook it cannot read, and reports a renamed
notebook only as "Skipping unknown notebook". :func:`inspect_submission` finds each problem
without changing a file: unreadable notebooks (not UTF-8, not JSON, not a notebook, too old a
format, too large), expected notebooks that are missing (and which unknown file looks like one
of them renamed), notebooks that are not part of the assignment, very large files, an empty
folder. The hardened autograde (``grader.autograde``) grades everything readable and scores
each unreadable notebook 0, as nbgrader does for a missing one.

A submission is read as untrusted data, through ``grader.safe_io``: a notebook is opened only
when ``lstat`` says it is a regular file with a single name, without following a link and
without blocking, and read up to a size cap; links and special files are never opened here
(``grader.quarantine`` moves them out of the folder before nbgrader sees it). What was done to
the cells themselves (deleted, edited or forged nbgrader cells) is repaired and reported by
``grader.repair.RepairMetadata`` while grading.
"""
import dataclasses
import json
import os
import re

import nbformat

from . import safe_io

LARGE_BYTES = 50 * 2**20
MAX_NOTEBOOK_BYTES = 512 * 2**20   # read no further: nbformat would need several times this in memory
PROBLEM_MARK = "[backprop-lab] problem:"   # how workers mark these lines in their logs
# A student id becomes a folder name, a log file name, a gradebook key, and text in formgrader's
# pages and URLs, which nbgrader writes there without escaping; from the exchange it is whatever
# the student named their inbound folder (nbgrader takes it from the name), so it is checked.
STUDENT_ID = re.compile(r"[A-Za-z0-9_@-][A-Za-z0-9_.@-]{0,99}")


@dataclasses.dataclass
class Problem:
    notebook: str      # file name, or "" for the folder as a whole
    message: str
    graded: bool       # whether grading goes ahead for this notebook (a note) or it scores 0

    def line(self):
        return f"{self.notebook + ': ' if self.notebook else ''}{self.message}"


def student_id_problem(student_id):
    """Why ``student_id`` is refused (one line, safe to print), or ``""`` for a plain id."""
    if STUDENT_ID.fullmatch(student_id):
        return ""
    return (f"the student id {safe_io.shown(student_id)!r} is not a plain name (letters, digits and _ . @ -, at most 100, "
            "not starting with a dot); refused, as formgrader would put it unescaped into the instructor's pages")


def grade_ids(nb):
    """The grade ids of a (version 4) notebook's nbgrader cells."""
    ids = set()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str):
            ids.add(meta["grade_id"])
    return ids


def _parse(path):
    """``(raw bytes, JSON data, notebook, "")`` of a notebook nbformat can read as version 4, else ``(raw, None, None, why not)``."""
    try:
        raw = safe_io.read_regular(path, MAX_NOTEBOOK_BYTES)
    except safe_io.UnsafeFileError as error:
        return b"", None, None, f"{error.strerror}; it is not read"
    except OSError as error:
        return b"", None, None, f"cannot be read ({error.strerror})"
    if not raw.strip():
        return raw, None, None, "is an empty file"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return raw, None, None, (f"is not UTF-8 text (byte {error.start} is 0x{raw[error.start]:02x}); Jupyter always saves UTF-8, "
                           "so the file was damaged or is not a notebook")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return raw, None, None, f"is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); the file was cut short or edited by hand"
    except RecursionError:
        return raw, None, None, "is JSON nested too deeply to be a notebook"
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        return raw, None, None, "is JSON but not a Jupyter notebook (no cells)"
    major = data.get("nbformat")
    if not isinstance(major, int) or major < 3:
        return raw, None, None, f"is in notebook format {major!r}, too old to convert; open and save it in Jupyter first"
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat's own reasons: unknown cell type, a schema it cannot repair
        return raw, None, None, f"cannot be converted to notebook format 4 ({type(error).__name__}: {str(error)[:200]})"
    return raw, data, nb, ""


def read_problem(path):
    """Why the notebook at ``path`` cannot be graded, or "" when nbformat can read it as version 4."""
    return _parse(path)[3]


def _raw_ids(data):
    cells = data.get("cells", [])
    return [cell.get("id") for cell in cells if isinstance(cell, dict) and cell.get("id")] if isinstance(cells, list) else []


def _regular_names(folder):
    with os.scandir(folder) as entries:
        return sorted(entry.name for entry in entries if entry.is_file(follow_symlinks=False))


def inspect_submission(folder, expected):
    """Problems of the submission in ``folder``.

    ``expected``: ``{notebook name without .ipynb: its grade ids}`` for the assignment's
    notebooks (the ids recognise a renamed notebook; an empty set compares names only).
    """
    if not os.path.isdir(folder) or os.path.islink(folder):
        return [Problem("", "the submission folder does not exist", False)]
    files = _regular_names(folder)
    names = [name for name in files if name.endswith(".ipynb")]
    if not names:
        others = [safe_io.shown(name, 40) for name in files if not name.startswith(".")]
        what = f"only {', '.join(others[:5])}" if others else "nothing"
        return [Problem("", f"the submission folder holds no notebook ({what}); there is nothing to grade", False)]
    problems = []
    present = {name[: -len(".ipynb")] for name in names}
    readable = {}
    for name in names:
        stem = name[: -len(".ipynb")]
        raw, data, nb, problem = _parse(os.path.join(folder, name))
        if problem:
            problems.append(Problem(name, problem + ("; it scores 0, the rest is graded" if stem in expected else ""), False))
            continue
        readable[stem] = nb
        if stem not in expected:
            continue
        if len(raw) > LARGE_BYTES:
            problems.append(Problem(name, f"is {len(raw) / 2**20:.0f} MB (mostly saved outputs); graded, its outputs are cleared first", True))
        if data.get("nbformat") == 3:
            problems.append(Problem(name, "is in the old notebook format 3; converted to format 4 and graded", True))
        ids = _raw_ids(data)  # nbformat repairs duplicates as it reads, so look at the raw file
        if len(ids) != len(set(ids)):
            problems.append(Problem(name, "has duplicated cell ids; they are made unique before grading", True))
    missing = [stem for stem in expected if stem not in present]
    unknown = [stem for stem in sorted(present) if stem not in expected]
    for stem in missing:
        hint = ""
        wanted = expected[stem]
        for other in unknown:
            if wanted and other in readable and grade_ids(readable[other]) & wanted:
                hint = f"; {other}.ipynb holds its cells, so it looks renamed: rename it to {stem}.ipynb and grade again"
                break
        problems.append(Problem(f"{stem}.ipynb", f"is missing from the submission; it scores 0{hint}", False))
    for stem in unknown:
        problems.append(Problem(f"{stem}.ipynb", "is not a notebook of this assignment; ignored", True))
    return problems
