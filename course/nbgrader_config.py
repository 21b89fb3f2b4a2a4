"""nbgrader configuration of the Backprop Lab course.

With this file, the stock nbgrader commands run in this folder use the hardened grader:
student code runs in a bubblewrap sandbox and every score comes from the judge, a process
that never runs student code (see grader/judge.py). Everything else is nbgrader's own.
"""
import os
import sys

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

# nbgrader creates a new gradebook by running the `alembic` command found on PATH: from a venv
# that is not activated (venv/bin/nbgrader, cron) there is none, or another Python's.
if os.path.dirname(sys.executable) not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])

c.CourseDirectory.course_id = "backprop-lab"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
# SQLite by default; PostgreSQL through the same setting, e.g.
# export BACKPROP_LAB_DB_URL=postgresql+psycopg://grader@localhost/backprop_lab
c.CourseDirectory.db_url = os.environ.get(
    "BACKPROP_LAB_DB_URL", "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db"))
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# A grade cell a student deleted is put back from the gradebook (and logged), so its function
# is still judged; edited grade cells, points and cell types nbgrader restores by default.
c.OverwriteCells.add_missing_cells = True

# nbgrader copies every other file of a submission (and autograded/ into feedback/) following
# links: links, FIFOs, sockets and devices are moved into quarantine/ first, one line each in
# the log (grader/quarantine.py). collect copies only regular files from the exchange.
# Autograde's hook also takes a snapshot of the submission's gradebook rows first: should the
# grader itself fail on it (no sandbox, no kernel), nothing is stored (grader/guard.py).
c.Autograde.pre_convert_hook = "grader.guard.before_autograde"
c.GenerateFeedback.pre_convert_hook = "grader.quarantine.set_aside_hook"
c.ExchangeFactory.collect = "grader.exchange.SafeCollect"

# Formgrader and the feedback page render the autograded notebook as HTML, in the instructor's
# browser: SanitizeStudentContent makes its markdown, raw cells, outputs and attachments inert
# before it is stored (once its cells are restored, and again once the judge added outputs) and
# again before feedback (for notebooks autograded earlier). The feedback page runs no script but
# its own MathJax, under a strict Content-Security-Policy (grader/sanitize.py, grader/feedback_html.py).
#
# Autograde: the judge replaces nbgrader's in-kernel Execute; the rest of the pipeline is
# stock, with a CheckCellMetadata that makes nbgrader's checks without re-checking the schema
# for every cell. RepairMetadata first rebuilds the cells' nbgrader metadata from the gradebook
# (forged, duplicated or re-flagged cells would otherwise fail the whole notebook).
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "grader.repair.RepairMetadata",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "grader.sanitize.SanitizeStudentContent",
    "grader.nbgrader_plugins.CheckCellMetadata",
]
c.Autograde.autograde_preprocessors = [
    "grader.nbgrader_plugins.JudgeInSandbox",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "grader.sanitize.SanitizeStudentContent",
    "nbgrader.preprocessors.SaveAutoGrades",
    "grader.late.AssignLatePenaltiesWithExtensions",
    "grader.nbgrader_plugins.CheckCellMetadata",
]
# The late policy: 10 % of a notebook's score per started day late, at most 50 %. Per-student
# extensions come from extensions.csv in this folder (backprop-lab extensions import FILE.csv).
c.AssignLatePenalties.plugin_class = "grader.late.PercentPerDay"
c.PercentPerDay.percent_per_day = 10.0
c.PercentPerDay.max_percent = 50.0
# Feedback shows the judge's messages, never a grade cell's hidden declaration; a student's own
# cell keeps its text, even when it contains the hidden-tests marker.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "grader.repair.ClearLockedHiddenTests",
    "grader.sanitize.SanitizeStudentContent",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
c.GenerateFeedback.exporter_class = "grader.feedback_html.StrictFeedbackExporter"
