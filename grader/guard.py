"""A broken grader never records a grade: what nbgrader's autograde wrote is undone when the grader fails.

nbgrader's ``Autograde`` writes to the gradebook before any notebook is judged:
``init_assignment`` creates the student, creates the submission with a grade and a comment row
for every cell (scores NULL, which nbgrader's totals and exports count as 0) or, on a regrade,
updates its timestamp; it scores a missing notebook 0. Then each notebook's ``SaveAutoGrades``
and the judge's records store scores, one notebook after the other. When the grader itself
fails on a notebook (the sandbox cannot be built, the runner or the kernel cannot start, a
hidden check is broken), nbgrader's own error path fails the submission, but those rows stay.

So :func:`before_autograde`, nbgrader's ``Autograde.pre_convert_hook``, takes a snapshot of the
submission's rows (and of the judge's records) just before ``init_assignment``, and
:class:`grader.nbgrader_plugins.JudgeInSandbox` calls :func:`undo` when judging raises: a new
submission is removed again (and a student created for it), an existing one gets back every
value it had, and the judge's records of this run are deleted. The exception then goes on into
nbgrader's error path. After an :class:`~grader.sandbox.launch.InfrastructureError` the rest of
the run fails fast with the same reason instead of starting a broken sandbox once per student.
"""
import dataclasses
import os
import re

from nbgrader.api import Gradebook, MissingEntry
from traitlets.config import Application
from traitlets.log import get_logger

from . import quarantine, records

_snapshots = {}          # (assignment, student) -> Snapshot, in this nbgrader process
_broken = ""             # the first InfrastructureError's text, once one happened in this process


@dataclasses.dataclass
class Snapshot:
    """A submission's gradebook rows and judge records as they were before nbgrader touched them."""

    db_url: str
    course_id: str
    assignment: str
    student: str
    student_existed: bool
    rows: list                 # [(model, {column: value})]; empty when there was no submission
    last_record: int

    @property
    def submission_existed(self):
        return bool(self.rows)

    @classmethod
    def take(cls, db_url, course_id, assignment, student):
        with Gradebook(db_url, course_id) as gb:
            try:
                gb.find_student(student)
                student_existed = True
            except MissingEntry:
                student_existed = False
            try:
                rows = [(type(row), _values(row)) for row in _submission_rows(gb.find_submission(assignment, student))]
            except MissingEntry:
                rows = []
        return cls(db_url, course_id, assignment, student, student_existed, rows,
                   records.last_id(db_url, assignment, student))

    def restore(self):
        with Gradebook(self.db_url, self.course_id) as gb:
            try:
                submission = gb.find_submission(self.assignment, self.student)
            except MissingEntry:
                submission = None
            if not self.submission_existed:
                if submission is not None:
                    gb.remove_submission(self.assignment, self.student)
            else:
                kept = {values["id"] for _, values in self.rows}
                for row in reversed(_submission_rows(submission) if submission is not None else []):
                    if row.id not in kept:  # children first: created during this run
                        gb.db.delete(row)
                gb.db.flush()
                for model, values in self.rows:
                    row = gb.db.get(model, values["id"])
                    if row is None:
                        gb.db.add(model(**values))
                    else:
                        for column, value in values.items():
                            setattr(row, column, value)
                gb.db.commit()
            if not self.student_existed:
                try:
                    if not gb.find_student(self.student).submissions:
                        gb.remove_student(self.student)
                except MissingEntry:
                    pass
        records.discard_after(self.db_url, self.assignment, self.student, self.last_record)


def _submission_rows(submission):
    """The submission, then its notebooks, each followed by its grades and comments (parents before children)."""
    rows = [submission]
    for notebook in submission.notebooks:
        rows.append(notebook)
        rows += list(notebook.grades) + list(notebook.comments)
    return rows


def _values(row):
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}



def _running_coursedir():
    """The ``CourseDirectory`` of the nbgrader application running this hook (nbgrader passes none to hooks)."""
    if not Application.initialized():
        return None
    return getattr(Application.instance(), "coursedir", None)


def _submission_of(coursedir, notebook_path):
    """(assignment, student) of a submitted notebook's path, read as nbgrader reads it."""
    pattern = coursedir.format_path(coursedir.submitted_directory, "(?P<student_id>[^/]+)", "(?P<assignment_id>[^/]+)",
                                    escape=True)
    found = re.match(pattern + re.escape(os.sep), os.path.abspath(notebook_path))
    return (found["assignment_id"], found["student_id"]) if found else None


def before_autograde(assignment, student, notebooks):
    """nbgrader's ``Autograde.pre_convert_hook``: the snapshot for :func:`undo`, then the quarantine hook.

    ``assignment`` and ``student`` are nbgrader's command-line patterns (``*`` for everyone);
    the submission is read from its notebooks' paths.
    """
    log = get_logger()
    try:
        coursedir = _running_coursedir()
        submission = _submission_of(coursedir, notebooks[0]) if coursedir is not None and notebooks else None
        if submission is None:
            log.error("grader.guard: cannot tell which submission is graded (%s); should the grader fail on it, "
                      "what nbgrader stored for it stays in the gradebook", notebooks[:1])
        else:
            _snapshots[submission] = Snapshot.take(coursedir.db_url, coursedir.course_id, *submission)
    except Exception as error:  # nbgrader would log a failing hook at INFO level only
        log.error("grader.guard: no snapshot of the gradebook before grading (%s: %s); should the grader fail, "
                  "what nbgrader stored for this submission stays", type(error).__name__, error)
    quarantine.set_aside_hook(assignment=assignment, student=student, notebooks=notebooks)


def broken_reason():
    """Why an earlier notebook of this process found the grader broken ('' if none did)."""
    return _broken


def mark_broken(reason):
    global _broken
    _broken = _broken or reason


def undo(assignment, student, log):
    """Put the gradebook back as it was before nbgrader began grading this submission."""
    snapshot = _snapshots.pop((assignment, student), None)
    if snapshot is None:
        log.error("%s/%s: the grader failed and what nbgrader stored for this submission could not be undone: no "
                  "snapshot was taken (is Autograde.pre_convert_hook 'grader.guard.before_autograde'?)", student, assignment)
        return False
    snapshot.restore()
    what = "its earlier grades are kept" if snapshot.submission_existed else "no submission is recorded"
    log.error("%s/%s: NOT GRADED, the grader is broken; nothing was stored (%s). Run `backprop-lab doctor`, fix "
              "the grader and grade again.", student, assignment, what)
    return True
