"""nbgrader preprocessors that undo what a student did to nbgrader's own markup, so the work is still graded.

nbgrader trusts the nbgrader metadata of a submitted notebook: a grade id that is not in the
source, a grade id used twice, a markdown cell flagged as a task, a grade cell also flagged as a
solution or a solution cell flagged as graded each make its sanitising step raise (``KeyError``,
``MissingEntry``, "Inconsistent checksums") and the whole notebook goes ungraded, grades NULL.
:class:`RepairMetadata` runs first in ``Autograde.sanitize_preprocessors`` and rebuilds every
cell's nbgrader metadata from the gradebook's copy of the source notebook (its source cells,
grade cells, solution cells and task cells): a cell whose grade id the source does not have
loses its nbgrader metadata and stays as a plain cell; of several cells claiming one grade id,
the one that matches the source's cell type and place keeps it; flags, points and cell type are
the source's; a deleted grade cell is put back in its source place. nbgrader's own
``OverwriteCells`` then restores locked sources as usual. Each repair is one problem line in
the log; nothing is gained by the trick and nothing else is lost.

:class:`ClearLockedHiddenTests` is ``GenerateFeedback``'s ``ClearHiddenTests`` for locked
cells only (the instructor's text): a student's own cell that contains the marker text keeps
its text, instead of stopping that student's feedback.
"""
import dataclasses

import nbformat
from nbformat.notebooknode import NotebookNode
from nbformat.v4.nbbase import random_cell_id
from nbgrader.api import Gradebook
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor, OverwriteCells
from nbgrader.utils import is_locked

from .intake import PROBLEM_MARK
from .safe_io import shown

FLAGS = ("grade", "solution", "task", "locked")


@dataclasses.dataclass
class SourceCell:
    name: str
    position: int          # its index among the source's nbgrader cells
    cell_type: str
    locked: bool
    source: str
    checksum: str
    flags: dict            # grade / solution / task / locked, as in the source
    points: float = None   # max score of a grade or task cell


def source_cells(gradebook, notebook, assignment):
    """``{grade_id: SourceCell}`` of the source notebook, as ``generate_assignment`` stored it."""
    stored = gradebook.find_notebook(notebook, assignment)
    grades = {cell.name: float(cell.max_score) for cell in stored.grade_cells}
    tasks = {cell.name: float(cell.max_score) for cell in stored.task_cells}
    solutions = {cell.name for cell in stored.solution_cells}
    cells = {}
    for position, cell in enumerate(stored.source_cells):
        flags = {"grade": cell.name in grades, "solution": cell.name in solutions, "task": cell.name in tasks,
                 "locked": bool(cell.locked)}
        cells[cell.name] = SourceCell(cell.name, position, cell.cell_type, bool(cell.locked), cell.source or "",
                                      cell.checksum, flags, grades.get(cell.name, tasks.get(cell.name)))
    return cells


def _released_text(source):
    """The locked cell's text as the release shows it: the source without its hidden tests."""
    cell = NotebookNode(cell_type="code", source=source, metadata={})
    try:
        ClearHiddenTests()._remove_hidden_test_region(cell)
    except RuntimeError:
        return source
    return cell.source


def _shown(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return shown(repr(value), 40)
    return f"{value:g}"


def _claimant_order(nb, claims, source):
    """How well each claimant of a duplicated grade id sits where the source has that cell.

    Counts the uniquely claimed cells on the right side of it (earlier in the source and
    earlier in the notebook, or later and later).
    """
    unique = [(index, source[gid].position) for gid, indices in claims.items() if len(indices) == 1 for index in indices]

    def agreement(index, position):
        return sum((other < index) == (other_position < position) for other, other_position in unique)
    return agreement


def _strip(cell):
    del cell.metadata["nbgrader"]


def _set_type(cell, cell_type):
    if cell_type == "code":
        cell.cell_type, cell.outputs, cell.execution_count = "code", [], None
    else:
        cell.cell_type = cell_type
        cell.pop("outputs", None)
        cell.pop("execution_count", None)


def repair(nb, source, overwrite=None):
    """Rebuild ``nb``'s nbgrader metadata from ``source`` (see :func:`source_cells`); one line per repair.

    ``overwrite``: the ``OverwriteCells`` whose ``add_missing_cells`` says whether deleted grade
    cells are put back (here, in their source place: nbgrader's own step raises ``KeyError``
    when the cell before a deleted grade cell, its solution cell say, was deleted too).
    """
    lines = []
    claims = {}
    for index, cell in enumerate(nb.cells):
        if "nbgrader" not in cell.metadata:
            continue
        meta = cell.metadata.nbgrader
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        if isinstance(grade_id, str) and grade_id in source:
            claims.setdefault(grade_id, []).append(index)
            continue
        _strip(cell)
        if not isinstance(meta, dict):
            lines.append(f"cell {index + 1} had nbgrader metadata that is not a mapping; removed, the cell is kept as a plain cell")
        elif any(meta.get(flag) for flag in FLAGS):
            name = shown(str(grade_id), 60) if grade_id is not None else "without a grade id"
            lines.append(f"cell {name} is not a cell of the source notebook; its nbgrader metadata was removed, "
                         "the cell is kept as a plain cell and earns nothing")
    agreement = _claimant_order(nb, claims, source)
    for grade_id, indices in claims.items():
        wanted = source[grade_id]
        if len(indices) > 1:
            keep = max(indices, key=lambda i: (nb.cells[i].cell_type == wanted.cell_type,
                                               agreement(i, wanted.position), -i))
            for index in indices:
                if index != keep:
                    _strip(nb.cells[index])
            lines.append(f"cell {grade_id} appears {len(indices)} times; the one in the source's place keeps it, "
                         f"the other{'s' if len(indices) > 2 else ''} became plain cells")
            indices[:] = [keep]
        lines += _reset(nb.cells[indices[0]], wanted)
    deleted = [cell for cell in sorted(source.values(), key=lambda c: c.position) if cell.flags["grade"] and cell.name not in claims]
    if deleted and overwrite is not None and overwrite.add_missing_cells:
        for cell in deleted:
            _put_back(nb, source, cell, overwrite)
        lines.append(f"grade cell(s) {', '.join(c.name for c in deleted)} were deleted; put back from the source and graded")
    elif deleted:
        lines.append(f"grade cell(s) {', '.join(c.name for c in deleted)} were deleted; they are not graded")
    return lines


def _put_back(nb, source, wanted, overwrite):
    """Insert the deleted grade cell ``wanted`` after the last cell that comes before it in the source."""
    before = [index for index, cell in enumerate(nb.cells)
              if cell.metadata.get("nbgrader", {}).get("grade_id") in source
              and source[cell.metadata.nbgrader["grade_id"]].position < wanted.position]
    restored = nbformat.from_dict(overwrite.missing_cell_transform(wanted, wanted.points, is_solution=wanted.flags["solution"]))
    restored.id = random_cell_id()
    nb.cells.insert(before[-1] + 1 if before else 0, restored)


def _reset(cell, wanted):
    """Give ``cell`` the source's flags, points and type; the changes, as one line (or none)."""
    meta = cell.metadata.nbgrader
    changes = []
    if cell.cell_type != wanted.cell_type:
        changes.append(f"its type ({wanted.cell_type} → {shown(str(cell.cell_type), 20)})")
        _set_type(cell, wanted.cell_type)
    flipped = [f"{flag} {'on' if meta.get(flag) else 'off'}" for flag in FLAGS if bool(meta.get(flag)) != wanted.flags[flag]]
    if flipped:
        changes.append(f"its flags ({', '.join(flipped)})")
    if wanted.points is not None and (wanted.flags["grade"] or wanted.flags["task"]):
        try:
            same = float(meta.get("points")) == wanted.points
        except (TypeError, ValueError):
            same = False
        if not same:
            changes.append(f"its points ({wanted.points:g} → {_shown(meta.get('points'))})")
    if wanted.locked and not wanted.flags["solution"] and cell.source not in (wanted.source, _released_text(wanted.source)):
        changes.append("its locked source")
    rebuilt = {"grade_id": wanted.name, "cell_type": wanted.cell_type, "checksum": wanted.checksum, "schema_version": 3,
               **wanted.flags}
    if wanted.points is not None and (wanted.flags["grade"] or wanted.flags["task"]):
        rebuilt["points"] = wanted.points
    cell.metadata.nbgrader = rebuilt
    if not changes:
        return []
    return [f"cell {wanted.name}: {' and '.join(changes)} changed; the source's version is used"]


class RepairMetadata(NbGraderPreprocessor):
    """Rebuild the notebook's nbgrader metadata from the gradebook's source cells; log each repair."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gradebook:
            source = source_cells(gradebook, info["notebook"], info["assignment"])
        for line in repair(nb, source, OverwriteCells(parent=self)):
            self.log.warning("%s %s.ipynb: %s", PROBLEM_MARK, info["notebook"], line)
        return nb, resources


class ClearLockedHiddenTests(ClearHiddenTests):
    """Remove hidden test regions from locked cells only: their text is the source's, put back by autograde.

    Every other cell holds the student's own text. nbgrader's version also edits a student
    cell that happens to contain the marker, or raises on it ("Hidden test region detected in a
    non-grade cell", "No end hidden tests statement found"), and that student gets no feedback.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        if is_locked(cell):
            self._remove_hidden_test_region(cell)
        return cell, resources
