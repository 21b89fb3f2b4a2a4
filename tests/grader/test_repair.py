"""Forged nbgrader metadata is rebuilt from the source; a student's own marker text survives feedback."""
import copy

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.nbgraderformat import MetadataValidator
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells
from nbgrader.utils import compute_checksum

from grader.repair import ClearLockedHiddenTests, SourceCell, repair

HIDDEN = "# checks\n### BEGIN HIDDEN TESTS\njudge(\"f\", value=2)\n### END HIDDEN TESTS"


def _meta(grade_id, **flags):
    return {"nbgrader": {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": 3, "solution": False,
                         "task": False, **flags}}


def _source_notebook():
    return new_notebook(cells=[
        new_code_cell("import numpy as np", id="setup", metadata=_meta("setup", locked=True)),
        new_code_cell("def f(x):\n    return x", id="f", metadata=_meta("f", solution=True)),
        new_code_cell(HIDDEN, id="test_f", metadata=_meta("test_f", grade=True, locked=True, points=2)),
        new_code_cell("def g(x):\n    return x", id="g", metadata=_meta("g", solution=True)),
        new_code_cell(HIDDEN.replace('"f"', '"g"'), id="test_g", metadata=_meta("test_g", grade=True, locked=True, points=3)),
    ])


def _source(nb):
    """What generate_assignment stores for ``nb`` (see grader.repair.source_cells)."""
    cells = {}
    for position, cell in enumerate(nb.cells):
        meta = cell.metadata.nbgrader
        flags = {flag: bool(meta.get(flag)) for flag in ("grade", "solution", "task", "locked")}
        cells[meta["grade_id"]] = SourceCell(meta["grade_id"], position, cell.cell_type, flags["locked"], cell.source,
                                             compute_checksum(cell), flags, float(meta["points"]) if flags["grade"] else None)
    return cells


def _submitted():
    nb = _source_notebook()
    for cell in nb.cells:
        ClearHiddenTests()._remove_hidden_test_region(cell)  # what the release shows
    return nb


def _ids(nb):
    return [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in nb.cells]


def test_an_untouched_submission_needs_no_repair_and_validates():
    nb = _submitted()
    assert repair(nb, _source(_source_notebook())) == []
    MetadataValidator().validate_nb(nb)


def test_foreign_cells_lose_their_metadata_and_stay_as_plain_cells():
    nb = _submitted()
    nb.cells.append(new_code_cell("print('free')", metadata=_meta("free", grade=True, locked=True, points=100)))
    nb.cells.append(new_markdown_cell("done", metadata=_meta("task_1", task=True, points=50)))
    nb.cells.append(new_code_cell("x = 1", metadata={"nbgrader": "not a mapping"}))
    nb.cells.append(new_code_cell("y = 1", metadata={"nbgrader": {}}))
    lines = repair(nb, _source(_source_notebook()))
    assert lines == [
        "cell free is not a cell of the source notebook; its nbgrader metadata was removed, the cell is kept as a plain cell and earns nothing",
        "cell task_1 is not a cell of the source notebook; its nbgrader metadata was removed, the cell is kept as a plain cell and earns nothing",
        "cell 8 had nbgrader metadata that is not a mapping; removed, the cell is kept as a plain cell"]
    assert _ids(nb) == ["setup", "f", "test_f", "g", "test_g", None, None, None, None]
    assert [cell.source for cell in nb.cells[5:]] == ["print('free')", "done", "x = 1", "y = 1"]
    MetadataValidator().validate_nb(nb)


def test_of_duplicated_ids_the_one_in_the_source_s_place_keeps_it():
    nb = _submitted()
    impostor = copy.deepcopy(nb.cells[2])
    impostor.source = "print('mine')"
    nb.cells.insert(0, impostor)
    nb.cells.append(new_markdown_cell("me too", metadata=_meta("test_g", grade=True, solution=True, points=3)))
    lines = repair(nb, _source(_source_notebook()))
    assert lines == ["cell test_f appears 2 times; the one in the source's place keeps it, the other became plain cells",
                     "cell test_g appears 2 times; the one in the source's place keeps it, the other became plain cells"]
    assert _ids(nb) == [None, "setup", "f", "test_f", "g", "test_g", None]
    MetadataValidator().validate_nb(nb)


def test_flags_points_and_type_are_the_source_s():
    nb = _submitted()
    nb.cells[2].metadata.nbgrader.update(solution=True, points=100)
    nb.cells[1].metadata.nbgrader.update(grade=True, points=10)
    nb.cells[4] = new_markdown_cell(nb.cells[4].source, metadata=nb.cells[4].metadata)
    nb.cells[4].metadata.nbgrader["points"] = "lots"
    lines = repair(nb, _source(_source_notebook()))
    assert lines == ["cell f: its flags (grade on) changed; the source's version is used",
                     "cell test_f: its flags (solution on) and its points (2 → 100) changed; the source's version is used",
                     "cell test_g: its type (code → markdown) and its points (3 → 'lots') changed; the source's version is used"]
    assert nb.cells[1].metadata.nbgrader == {"grade_id": "f", "cell_type": "code", "checksum": compute_checksum(_source_notebook().cells[1]),
                                             "schema_version": 3, "grade": False, "solution": True, "task": False, "locked": False}
    assert nb.cells[2].metadata.nbgrader["points"] == 2.0 and not nb.cells[2].metadata.nbgrader["solution"]
    assert nb.cells[4].cell_type == "code" and nb.cells[4].outputs == []
    MetadataValidator().validate_nb(nb)


def test_deleted_grade_cells_and_edited_locked_sources_are_reported():
    nb = _submitted()
    nb.cells[2].source = "print('all good')"
    del nb.cells[4]
    assert repair(nb, _source(_source_notebook())) == [
        "cell test_f: its locked source changed; the source's version is used",
        "grade cell(s) test_g were deleted; they are not graded"]


def test_a_deleted_grade_cell_goes_back_in_its_place_even_without_its_solution_cell():
    nb = _submitted()
    del nb.cells[1:3]  # f and its grade cell: nbgrader's own put-back raises KeyError here
    lines = repair(nb, _source(_source_notebook()), OverwriteCells(add_missing_cells=True))
    assert lines == ["grade cell(s) test_f were deleted; put back from the source and graded"]
    assert _ids(nb) == ["setup", "test_f", "g", "test_g"]
    assert nb.cells[1].metadata.nbgrader["points"] == 2.0 and nb.cells[1].metadata.nbgrader["locked"]
    MetadataValidator().validate_nb(nb)


def test_feedback_strips_hidden_tests_from_locked_cells_only():
    nb = _source_notebook()
    nb.cells[1].source += "\n### BEGIN HIDDEN TESTS\nassert f(1) == 1\n### END HIDDEN TESTS"
    nb.cells.append(new_markdown_cell("my notes: ### BEGIN HIDDEN TESTS, no end"))
    nb.cells.append(new_code_cell("### BEGIN HIDDEN TESTS\n"))
    out, _ = ClearLockedHiddenTests().preprocess(nb, {})
    assert "judge(" not in out.cells[2].source and "judge(" not in out.cells[4].source
    assert out.cells[1].source.endswith("### BEGIN HIDDEN TESTS\nassert f(1) == 1\n### END HIDDEN TESTS")
    assert out.cells[5].source == "my notes: ### BEGIN HIDDEN TESTS, no end" and out.cells[6].source == "### BEGIN HIDDEN TESTS\n"
