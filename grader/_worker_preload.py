"""Imported once by the autograde fork server (see ``grader.workers``), so workers start warm."""
from .nbgrader_main import skip_unused_grammar

skip_unused_grammar()

import numpy  # noqa: E402,F401
import nbgrader.apps.nbgraderapp  # noqa: E402,F401
import nbgrader.apps.autogradeapp  # noqa: E402,F401
import nbgrader.converters.autograde  # noqa: E402,F401

from . import cases, judge, nbgrader_plugins, records  # noqa: E402,F401

cases.all_cases()

# nbformat compiles its notebook schema on first use (0.1 s); compiled here, every worker has it.
import nbformat.validator  # noqa: E402

for minor in range(nbformat.current_nbformat_minor + 1):
    try:
        nbformat.validator.get_validator(version=4, version_minor=minor)
    except Exception:  # a schema this nbformat does not ship: compiled on demand, as before
        pass
