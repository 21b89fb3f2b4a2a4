"""Imported once by the autograde fork server (see ``grader.workers``), so workers start warm."""
from .nbgrader_main import skip_unused_grammar

skip_unused_grammar()

import numpy  # noqa: E402,F401
import nbgrader.apps.nbgraderapp  # noqa: E402,F401
import nbgrader.apps.autogradeapp  # noqa: E402,F401
import nbgrader.converters.autograde  # noqa: E402,F401

from . import cases, judge, nbgrader_plugins, records  # noqa: E402,F401

cases.all_cases()
