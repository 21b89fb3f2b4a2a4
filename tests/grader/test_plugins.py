"""Our nbgrader preprocessors that replace stock ones must behave exactly like them."""
import copy

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.nbgraderformat.common import BaseMetadataValidator, SchemaTooNewError, SchemaTooOldError
from nbgrader.preprocessors import CheckCellMetadata as StockCheck

from grader.nbgrader_plugins import CheckCellMetadata, _CachedMetadataValidator, _SchemaCheckedOnce


def _cell(**meta):
    base = {"grade": True, "grade_id": "g", "locked": False, "points": 2, "schema_version": 3, "solution": False, "task": False}
    base.update(meta)
    return new_code_cell("x = 1", metadata={"nbgrader": {k: v for k, v in base.items() if v is not ...}})


CELLS = {
    "valid": _cell(),
    "no nbgrader metadata": new_code_cell("x = 1"),
    "points not a number": _cell(points="two"),
    "grade_id missing": _cell(grade_id=...),
    "grade not a bool": _cell(grade="yes"),
    "schema too old": _cell(schema_version=1),
    "schema too new": _cell(schema_version=99),
}


def _outcome(validator, cell):
    try:
        validator.validate_cell(copy.deepcopy(cell))
    except (ValidationError, SchemaTooOldError, SchemaTooNewError) as error:
        return type(error).__name__, str(error)
    return None


def test_cached_validator_checks_the_schema_in_nbgraders_place():
    mro = _CachedMetadataValidator.__mro__
    assert mro.index(MetadataValidator) < mro.index(_SchemaCheckedOnce) < mro.index(BaseMetadataValidator)


@pytest.mark.parametrize("name", CELLS)
def test_cached_validator_gives_nbgraders_verdict_for_every_cell(name):
    expected = _outcome(MetadataValidator(), CELLS[name])
    assert _outcome(_CachedMetadataValidator(), CELLS[name]) == expected
    assert _outcome(_CachedMetadataValidator(), CELLS[name]) == expected  # and again, from the cache
    if name != "valid" and name != "no nbgrader metadata":
        assert expected is not None


@pytest.mark.parametrize("name", ["valid", "points not a number"])
def test_check_cell_metadata_preprocessor_matches_stock(name):
    nb = new_notebook(cells=[_cell(grade_id="first"), CELLS[name]])
    outcomes = []
    for preprocessor in (StockCheck(), CheckCellMetadata()):
        try:
            preprocessor.preprocess(nbformat.from_dict(copy.deepcopy(nb)), {})
            outcomes.append(None)
        except ValidationError as error:
            outcomes.append(str(error))
    assert outcomes[0] == outcomes[1]
    assert (outcomes[0] is None) == (name == "valid")
