"""Look at a submission folder before grading it: what can be graded, and one clear line per problem.

nbgrader stops a whole submission at the first notebook it cannot read, and reports a renamed
notebook only as "Skipping unknown notebook". :func:`inspect_submission` finds each problem
without changing a file: unreadable notebooks (not UTF-8, not JSON, not a notebook, too old a
format), expected notebooks that are missing (and which unknown file looks like one of them
renamed), notebooks that are not part of the assignment, very large files, an empty folder.
The hardened autograde (``grader.autograde``) grades everything readable and scores each
unreadable notebook 0, as nbgrader does for a missing one.
"""
import dataclasses
import json
import os

import nbformat

LARGE_BYTES = 50 * 2**20
PROBLEM_MARK = "[backprop-lab] problem:"   # how workers mark these lines in their logs


@dataclasses.dataclass
class Problem:
    notebook: str      # file name, or "" for the folder as a whole
    message: str
    graded: bool       # whether grading goes ahead for this notebook (a note) or it scores 0

    def line(self):
        return f"{self.notebook + ': ' if self.notebook else ''}{self.message}"


def _grade_ids(nb):
    return {cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") for cell in nb.get("cells", [])} - {None}


def read_problem(path):
    """Why the notebook at ``path`` cannot be graded, or "" when nbformat can read it as version 4."""
    try:
        raw = open(path, "rb").read()
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if not raw.strip():
        return "is an empty file"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"is not UTF-8 text (byte {error.start} is 0x{raw[error.start]:02x}); Jupyter always saves UTF-8, so the file was damaged or is not a notebook"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return f"is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); the file was cut short or edited by hand"
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        return "is JSON but not a Jupyter notebook (no cells)"
    major = data.get("nbformat")
    if not isinstance(major, int) or major < 3:
        return f"is in notebook format {major!r}, too old to convert; open and save it in Jupyter first"
    try:
        nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat's own reasons: unknown cell type, a schema it cannot repair
        return f"cannot be converted to notebook format 4 ({type(error).__name__}: {str(error)[:200]})"
    return ""


def expected_cells(release_nb, source_nb=None):
    """``{grade_id: (cell, accepted sources)}`` of a release notebook's nbgrader cells.

    A locked cell may read as in the release or as in the source notebook (with its hidden
    part); anything else is an edit, which nbgrader undoes.
    """
    sources = {}
    for nb in (release_nb, source_nb):
        for cell in (nb.cells if nb is not None else []):
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid:
                sources.setdefault(gid, set()).add(cell.source)
    return {cell.metadata.nbgrader["grade_id"]: (cell, sources[cell.metadata.nbgrader["grade_id"]])
            for cell in release_nb.cells if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")}


def _points(cell):
    try:
        return float(cell.metadata.nbgrader.get("points", 0) or 0)
    except (TypeError, ValueError):
        return float("nan")


def _cell_changes(name, nb, wanted):
    """Deleted or altered nbgrader cells of a readable notebook; nbgrader restores each from the gradebook."""
    found = {cell.metadata.nbgrader["grade_id"]: cell for cell in nb.cells
             if isinstance(cell.get("metadata", {}).get("nbgrader"), dict) and cell.metadata.nbgrader.get("grade_id")}
    problems = []
    deleted = [gid for gid, (cell, _) in wanted.items() if gid not in found and cell.metadata.nbgrader.get("grade")]
    if deleted:
        problems.append(Problem(name, f"grade cell(s) {', '.join(deleted)} were deleted; put back from the source and graded", True))
    for gid, (cell, accepted) in wanted.items():
        mine = found.get(gid)
        if mine is None:
            continue
        meta = cell.metadata.nbgrader
        changes = []
        if mine.cell_type != cell.cell_type:
            changes.append(f"its type ({cell.cell_type} → {mine.cell_type})")
        if meta.get("grade") and _points(mine) != _points(cell):
            changes.append(f"its points ({meta.get('points')} → {mine.metadata.nbgrader.get('points')})")
        if meta.get("locked") and not meta.get("solution") and mine.source not in accepted:
            changes.append("its locked source")
        if changes:
            problems.append(Problem(name, f"cell {gid}: {' and '.join(changes)} changed; the source's version is used", True))
    return problems


def _raw_ids(path):
    try:
        with open(path, encoding="utf-8") as handle:
            cells = json.load(handle).get("cells", [])
        return [cell.get("id") for cell in cells if isinstance(cell, dict) and cell.get("id")]
    except (OSError, ValueError, AttributeError):
        return []


def inspect_submission(folder, expected, cells=None):
    """Problems of the submission in ``folder``.

    ``expected``: the notebook names (without ``.ipynb``) of the assignment;
    ``cells``: ``{name: expected_cells(release, source)}``, to recognise a renamed notebook and
    report deleted or altered grade cells.
    """
    cells = cells or {}
    problems = []
    if not os.path.isdir(folder):
        return [Problem("", "the submission folder does not exist", False)]
    names = sorted(entry for entry in os.listdir(folder) if entry.endswith(".ipynb") and os.path.isfile(os.path.join(folder, entry)))
    if not names:
        others = [entry for entry in os.listdir(folder) if not entry.startswith(".")]
        what = f"only {', '.join(sorted(others)[:5])}" if others else "nothing"
        return [Problem("", f"the submission folder holds no notebook ({what}); there is nothing to grade", False)]
    present = {name[: -len(".ipynb")] for name in names}
    readable = {}
    for name in names:
        path = os.path.join(folder, name)
        problem = read_problem(path)
        stem = name[: -len(".ipynb")]
        if problem:
            problems.append(Problem(name, problem + ("; it scores 0, the rest is graded" if stem in expected else ""), False))
            continue
        size = os.path.getsize(path)
        if stem in expected and size > LARGE_BYTES:
            problems.append(Problem(name, f"is {size / 2**20:.0f} MB (mostly saved outputs); graded, its outputs are cleared first", True))
        if stem in expected:
            with open(path, encoding="utf-8") as handle:
                major = json.load(handle).get("nbformat")
            if major == 3:
                problems.append(Problem(name, "is in the old notebook format 3; converted to format 4 and graded", True))
            if stem in cells:
                problems += _cell_changes(name, nbformat.read(path, as_version=4), cells[stem])
                raw = _raw_ids(path)  # nbformat repairs duplicates as it reads, so look at the raw file
                if len(raw) != len(set(raw)):
                    problems.append(Problem(name, "has duplicated cell ids; they are made unique before grading", True))
        readable[stem] = path
    missing = [stem for stem in expected if stem not in present]
    unknown = [stem for stem in present if stem not in expected]
    for stem in missing:
        hint = ""
        wanted = set(cells.get(stem, {}))
        for other in unknown:
            if wanted and other in readable:
                try:
                    ids = _grade_ids(nbformat.read(readable[other], as_version=4))
                except Exception:
                    continue
                if ids & wanted:
                    hint = f"; {other}.ipynb holds its cells, so it looks renamed: rename it to {stem}.ipynb and grade again"
                    break
        problems.append(Problem(f"{stem}.ipynb", f"is missing from the submission; it scores 0{hint}", False))
    for stem in unknown:
        problems.append(Problem(f"{stem}.ipynb", "is not a notebook of this assignment; ignored", True))
    return problems
