"""Late penalties as a course policy, and per-student extensions, through nbgrader's own hooks.

* :class:`PercentPerDay` is a ``LateSubmissionPlugin``: each started day late (after a grace
  period) costs ``percent_per_day`` of the notebook's score, at most ``max_percent``.
  Configured in ``nbgrader_config.py`` (``c.AssignLatePenalties.plugin_class``).
* Extensions live in the course's ``extensions.csv`` (``student_id,assignment,days``; imported
  with ``backprop-lab extensions import FILE.csv``). nbgrader already has the notion: a
  submission's ``extension`` moves its due date, and ``total_seconds_late`` counts from there.
  :class:`AssignLatePenaltiesWithExtensions` writes the file's extension onto the submission
  just before nbgrader's ``AssignLatePenalties`` computes the penalty, so ``nbgrader autograde``
  typed by hand honours it too; importing recomputes the penalties of work already graded.
"""
import csv
import datetime
import math
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import LateSubmissionPlugin
from nbgrader.preprocessors import AssignLatePenalties
from traitlets import Float
from traitlets.config import Application

from .intake import student_id_problem

EXTENSIONS_FILE = "extensions.csv"


class PercentPerDay(LateSubmissionPlugin):
    """``percent_per_day`` of the score per started day late, capped at ``max_percent``."""

    percent_per_day = Float(10.0, help="percent of the notebook's score taken per started day late").tag(config=True)
    max_percent = Float(50.0, help="the most the penalty takes, in percent of the score").tag(config=True)
    grace_minutes = Float(0.0, help="lateness forgiven (clock skew, a slow upload)").tag(config=True)

    def late_submission_penalty(self, student_id, score, total_seconds_late):
        late = total_seconds_late - 60 * self.grace_minutes
        if late <= 0 or not score:
            return None
        days = math.ceil(late / 86400)
        return score * min(self.max_percent, self.percent_per_day * days) / 100.0


def read_extensions(path):
    """``({(student, assignment): timedelta}, [problem line])`` of an extensions CSV."""
    found, problems = {}, []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        reader.fieldnames = fields
        if {"student_id", "assignment"} - set(fields) or not {"days", "hours"} & set(fields):
            raise ValueError(f"{path}: needs columns student_id, assignment and days (or hours); found {', '.join(fields)}")
        for line, row in enumerate(reader, 2):
            student, assignment = (row.get("student_id") or "").strip(), (row.get("assignment") or "").strip()
            problem = student_id_problem(student) if student else "no student id"
            if problem or not assignment:
                problems.append(f"{path}:{line}: {problem or 'no assignment'}; row skipped")
                continue
            try:
                days = float(row.get("days") or 0) + float(row.get("hours") or 0) / 24
            except ValueError:
                problems.append(f"{path}:{line}: days/hours {row.get('days')!r}/{row.get('hours')!r} are not numbers; row skipped")
                continue
            if not 0 <= days <= 366:
                problems.append(f"{path}:{line}: an extension of {days:g} days; row skipped")
                continue
            found[(student, assignment)] = datetime.timedelta(days=days)
    return found, problems


def course_extensions(course_root):
    path = Path(course_root) / EXTENSIONS_FILE
    return read_extensions(path)[0] if path.exists() else {}


def write_extensions(path, extensions):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", "assignment", "days"])
        for (student, assignment), delta in sorted(extensions.items()):
            writer.writerow([student, assignment, f"{delta.total_seconds() / 86400:g}"])


class AssignLatePenaltiesWithExtensions(AssignLatePenalties):
    """nbgrader's ``AssignLatePenalties``, after writing the course file's extension onto the submission."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        app = Application.instance() if Application.initialized() else None
        root = getattr(getattr(app, "coursedir", None), "root", None) or "."
        extension = course_extensions(root).get((info["student"], info["assignment"]))
        if extension is not None:
            with Gradebook(info["db_url"]) as gb:
                submission = gb.find_submission(info["assignment"], info["student"])
                submission.extension = extension or None
                gb.db.commit()
        return super().preprocess(nb, resources)


def apply(course_root, db_url, course_id, extensions, plugin):
    """Write ``extensions`` onto the graded submissions and recompute their notebooks' penalties; report lines."""
    lines = []
    with Gradebook(db_url, course_id) as gb:
        for (student, assignment), delta in sorted(extensions.items()):
            try:
                submission = gb.find_submission(assignment, student)
            except MissingEntry:
                lines.append(f"! {student}/{assignment}: not graded yet; the extension applies when it is")
                continue
            submission.extension = delta or None
            seconds = submission.total_seconds_late
            for notebook in submission.notebooks:
                notebook.late_submission_penalty = (plugin.late_submission_penalty(student, notebook.score, seconds)
                                                    if seconds > 0 else None)
            penalty = sum(n.late_submission_penalty or 0 for n in submission.notebooks)
            lines.append(f"✓ {student}/{assignment}: extension {delta.total_seconds() / 86400:g} day(s); "
                         + (f"still {seconds / 3600:.1f} h late, penalty {penalty:g}" if seconds > 0 else "on time, no penalty"))
        gb.db.commit()
    return lines
