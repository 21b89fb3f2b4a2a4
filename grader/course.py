"""The course folder as the grader finds it: where it is, its nbgrader config, its gradebook, its submissions.

Below the instructor's commands (``grader.instructor``) and the batch executors, which all read the
course through these functions; nothing here prints or parses arguments.
"""
import os
import subprocess
import sys
from pathlib import Path

REPO_COURSE = Path(__file__).resolve().parents[1] / "course"
ASSIGNMENTS = ("01-chain-rule", "02-forward-pass", "03-backward-pass", "04-optimizers", "05-vanishing-gradients", "06-bptt")


def resolve_course(course_dir=None, cwd=None):
    """``(course folder, why)``: ``--course-dir``, else ``$BACKPROP_LAB_COURSE``, else the current folder
    when it holds an ``nbgrader_config.py`` (as nbgrader itself assumes), else the repository's ``course/``."""
    cwd = Path(cwd or os.getcwd())
    if course_dir:
        return Path(course_dir).resolve(), "--course-dir"
    if os.environ.get("BACKPROP_LAB_COURSE"):
        return Path(os.environ["BACKPROP_LAB_COURSE"]).resolve(), "$BACKPROP_LAB_COURSE"
    if (cwd / "nbgrader_config.py").is_file():
        return cwd.resolve(), "the current folder"
    return REPO_COURSE.resolve(), "the repository's course/; pass --course-dir or run in your course folder for another"


def run_nbgrader(course, *args, timeout=None):
    """Run nbgrader's CLI in ``course`` (see ``grader.nbgrader_main``); returns the CompletedProcess (output captured)."""
    return subprocess.run([sys.executable, "-m", "grader.nbgrader_main", *args], cwd=course, capture_output=True,
                          text=True, timeout=timeout)


def submissions(course, assignments, students=None, refused=None):
    """``[(assignment, student)]`` under ``submitted/``; a folder whose name is no plain student id
    (``grader.intake.student_id_problem``) is left out, and with ``refused`` (a list) added to it as
    ``(assignment, shown name, reason)``."""
    from .intake import student_id_problem
    from .safe_io import shown
    found = []
    submitted = course / "submitted"
    if not submitted.is_dir():
        return found
    for student_dir in sorted(submitted.iterdir()):
        if not student_dir.is_dir() or (students and student_dir.name not in students):
            continue
        problem = student_id_problem(student_dir.name)
        for assignment in assignments:
            if not (student_dir / assignment).is_dir():
                continue
            if not problem:
                found.append((assignment, student_dir.name))
            elif refused is not None:
                refused.append((assignment, shown(student_dir.name), problem))
    return found


def prepare_database(course):
    """Create the gradebook's tables and rows and the judge's records table before the workers start.

    On a new database, workers that use it first at once race to create the same tables (nbgrader's
    ``Gradebook`` and ``records`` both check, then create; on PostgreSQL the loser fails with
    DuplicateTable or a unique violation) and to insert the same course row; created here, once, they are found.
    """
    from nbgrader.api import Gradebook

    from . import records
    config = course_config(course)
    with gradebook(course, config):
        pass
    with Gradebook(db_url(course, config)):  # nbgrader's preprocessors open it under its "default_course"
        pass
    records.ensure_schema(db_url(course, config))


def register_students(course, students):
    """Create the gradebook's missing students before the workers start.

    nbgrader's autograde creates its student itself, but two workers grading the same student's
    assignments at once would both insert the row and one would fail on the unique key. Honours
    ``Autograde.create_student = False`` (then an unknown student fails in its worker, as in nbgrader).
    """
    config = course_config(course)
    if not config.get("Autograde", {}).get("create_student", True) or not students:
        return
    with gradebook(course, config) as gb:
        known = {student.id for student in gb.students}
        for student in students:
            if student not in known:
                gb.add_student(student)


def course_config(course):
    from traitlets.config import Config, PyFileConfigLoader
    if not (course / "nbgrader_config.py").exists():
        return Config()
    return PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()


def gradebook(course, config=None):
    """nbgrader's gradebook for the course, at its configured ``db_url`` and ``course_id``."""
    from nbgrader.api import Gradebook
    config = config if config is not None else course_config(course)
    course_id = config.get("CourseDirectory", {}).get("course_id", "default_course")
    return Gradebook(db_url(course, config), course_id)


def db_url(course, config=None):
    config = config if config is not None else course_config(course)
    url = config.get("CourseDirectory", {}).get("db_url")
    return url or f"sqlite:///{course / 'gradebook.db'}"


def was_skipped(course, assignment, student):
    """True when nbgrader's autograde skipped the submission as already graded (no ``--force``, nothing newer)."""
    try:
        return "Skipping existing assignment" in (course / "logs" / assignment / f"{student}.log").read_text(errors="replace")
    except OSError:
        return False
