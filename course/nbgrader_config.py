"""nbgrader configuration of the Backprop Lab course.

With this file, the stock nbgrader commands run in this folder use the hardened grader:
student code runs in a bubblewrap sandbox and every score comes from the judge, a process
that never runs student code (see grader/judge.py). Everything else is nbgrader's own.
"""
import os

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

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

# Autograde: the judge replaces nbgrader's in-kernel Execute; the rest of the pipeline is
# stock, with a CheckCellMetadata that makes nbgrader's checks without re-checking the schema
# for every cell.
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "grader.nbgrader_plugins.CheckCellMetadata",
]
c.Autograde.autograde_preprocessors = [
    "grader.nbgrader_plugins.JudgeInSandbox",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "grader.nbgrader_plugins.CheckCellMetadata",
]
# Feedback shows the judge's messages, never a grade cell's hidden declaration.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
