"""A wide CSV through nbgrader's exporter plugin interface: one row per student.

Use with ``nbgrader export --exporter=grader.instructor.export.WideCsvExportPlugin --to grades.csv``.
Columns: student id, names, email, one score column per assignment, total, max total, and the
extensions and late penalties behind the scores.
A score is nbgrader's after its late penalty (``max(0, score - late_submission_penalty)``, as
nbgrader's own CSV export computes it); an assignment the student never handed in is empty,
not 0, so that "missing" and "scored nothing" stay apart.
"""
import csv

from nbgrader.api import MissingEntry
from nbgrader.plugins import ExportPlugin


def final_score(submission):
    """A submission's score after nbgrader's late penalty."""
    return max(0.0, (submission.score or 0.0) - (submission.late_submission_penalty or 0.0))


class WideCsvExportPlugin(ExportPlugin):
    def export(self, gradebook):
        path = self.to or "grades.csv"
        assignments = sorted(a.name for a in gradebook.assignments)
        maximum = {a.name: a.max_score for a in gradebook.assignments}
        self.log.info("Exporting %d students x %d assignments to %s", len(gradebook.students), len(assignments), path)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["student_id", "last_name", "first_name", "email", *assignments, "total", "max_total",
                             "late_and_extensions"])
            for student in sorted(gradebook.students, key=lambda s: s.id):
                scores, notes = [], []
                for assignment in assignments:
                    try:
                        submission = gradebook.find_submission(assignment, student.id)
                    except MissingEntry:
                        scores.append(None)
                        continue
                    scores.append(final_score(submission))
                    notes += _notes(assignment, submission)
                writer.writerow([csv_safe(student.id), csv_safe(student.last_name), csv_safe(student.first_name),
                                 csv_safe(student.email),
                                 *["" if s is None else f"{s:g}" for s in scores],
                                 f"{sum(s for s in scores if s is not None):g}", f"{sum(maximum.values()):g}",
                                 "; ".join(notes)])


def _notes(assignment, submission):
    """What moved a submission's score or due date: its extension and its late penalty."""
    notes = []
    if submission.extension:
        notes.append(f"{assignment}: extension {submission.extension.total_seconds() / 86400:g} d")
    if submission.late_submission_penalty:
        notes.append(f"{assignment}: {submission.total_seconds_late / 3600:.1f} h late, "
                     f"-{submission.late_submission_penalty:g} points")
    return notes


def csv_safe(text):
    """``text`` as a CSV cell that no spreadsheet runs as a formula (a leading = + - @ gets a quote)."""
    text = "" if text is None else str(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
