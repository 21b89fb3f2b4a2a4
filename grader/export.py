"""A wide CSV through nbgrader's exporter plugin interface: one row per student.

Use with ``nbgrader export --exporter=grader.export.WideCsvExportPlugin --to grades.csv``.
Columns: student id, names, email, one score column per assignment, total, and max total.
"""
import csv

from nbgrader.api import MissingEntry
from nbgrader.plugins import ExportPlugin


class WideCsvExportPlugin(ExportPlugin):
    def export(self, gradebook):
        path = self.to or "grades.csv"
        assignments = sorted(a.name for a in gradebook.assignments)
        maximum = {a.name: a.max_score for a in gradebook.assignments}
        self.log.info("Exporting %d students x %d assignments to %s", len(gradebook.students), len(assignments), path)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["student_id", "last_name", "first_name", "email", *assignments, "total", "max_total"])
            for student in sorted(gradebook.students, key=lambda s: s.id):
                scores = []
                for assignment in assignments:
                    try:
                        scores.append(gradebook.find_submission(assignment, student.id).score)
                    except MissingEntry:
                        scores.append(0.0)
                writer.writerow([student.id, student.last_name or "", student.first_name or "", student.email or "",
                                 *[f"{s:g}" for s in scores], f"{sum(scores):g}", f"{sum(maximum.values()):g}"])
