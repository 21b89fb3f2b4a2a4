"""nbgrader's autograde that grades what it can read and reports the rest, used by ``backprop-lab autograde``.

Stock nbgrader gives up on a whole submission when one of its notebooks is not valid JSON or
not UTF-8. :class:`HardenedAutograde` leaves such a notebook out, scores its grade cells 0 (as
nbgrader does for a missing notebook) and grades the other notebooks; the reason is logged on
one line. Everything else is nbgrader's own converter with the course's configuration.
"""
import sys

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps.autogradeapp import AutogradeApp
from nbgrader.converters.autograde import Autograde
from nbgrader.converters.base import NbGraderException

from .intake import read_problem


class HardenedAutograde(Autograde):
    def init_assignment(self, assignment_id, student_id):
        super().init_assignment(assignment_id, student_id)
        readable = []
        for path in self.notebooks:
            problem = read_problem(path)
            if not problem:
                readable.append(path)
                continue
            name = path.rsplit("/", 1)[-1]
            self.log.error("%s %s; it scores 0, the rest is graded", name, problem)
            self._score_zero(name[: -len(".ipynb")], assignment_id, student_id)
        if not readable:
            raise NbGraderException("no notebook of this submission can be read")
        self.notebooks = readable

    def _score_zero(self, notebook, assignment_id, student_id):
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                submitted = gb.find_submission_notebook(notebook, assignment_id, student_id)
            except MissingEntry:
                return
            for grade in submitted.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
            gb.db.commit()


class HardenedAutogradeApp(AutogradeApp):
    """``nbgrader autograde`` with :class:`HardenedAutograde` as its converter."""

    def start(self):
        super(AutogradeApp, self).start()
        if len(self.extra_args) != 1:
            self.fail("Exactly one argument (the assignment id) must be given")
        self.coursedir.assignment_id = self.extra_args[0]
        converter = HardenedAutograde(coursedir=self.coursedir, parent=self)
        try:
            converter.start()
        except NbGraderException:
            sys.exit(1)
