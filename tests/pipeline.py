"""Helpers that drive the real nbgrader pipeline on a temporary course directory.

Every command is the stock ``nbgrader`` CLI run in the course folder, so the tests exercise
exactly what an instructor runs (with the course's ``nbgrader_config.py``).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
COURSE = REPO / "course"


def make_course(root, assignments=()):
    """A fresh course folder under ``root`` with our config and the named source assignments."""
    course = Path(root) / "course"
    (course / "source").mkdir(parents=True, exist_ok=True)
    shutil.copy(COURSE / "nbgrader_config.py", course / "nbgrader_config.py")
    for assignment in assignments:
        shutil.copytree(COURSE / "source" / assignment, course / "source" / assignment,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return course


def nbgrader(course, *args, check=True, timeout=1800):
    """Run ``nbgrader ARGS`` in ``course``; returns the CompletedProcess (output merged)."""
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if check and result.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def notebook_names(course, assignment):
    return sorted(p.name for p in (Path(course) / "source" / assignment).glob("*.ipynb"))


def source_notebook(course, assignment, name):
    return nbformat.read(Path(course) / "source" / assignment / name, as_version=4)


def release_notebook(course, assignment, name):
    return nbformat.read(Path(course) / "release" / assignment / name, as_version=4)


def mutate(nb, replacements):
    """A copy of ``nb`` whose solution cells have each ``old`` replaced by ``new`` (each must occur once)."""
    nb = nbformat.from_dict(nb)
    for old, new in replacements.items():
        hits = [cell for cell in nb.cells if cell.cell_type == "code" and old in cell.source
                and cell.metadata.get("nbgrader", {}).get("solution")]
        count = sum(cell.source.count(old) for cell in hits)
        assert count == 1, f"{old!r} occurs {count} times in solution cells; make the planted mistake unambiguous"
        hits[0].source = hits[0].source.replace(old, new)
    return nb


def submit(course, student, assignment, notebooks, extra_files=None):
    """Place ``{name: notebook}`` (and ``{relative path: bytes}``) as a student's submission."""
    folder = Path(course) / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / name)
    for relative, data in (extra_files or {}).items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def submit_release(course, student, assignment):
    """Submit the untouched release (what a student who did nothing hands in)."""
    names = notebook_names(course, assignment)
    return submit(course, student, assignment, {n: release_notebook(course, assignment, n) for n in names})


def submit_reference(course, student, assignment, replacements_by_notebook=None):
    """Submit the source notebooks (the reference solutions), optionally with planted mistakes."""
    replacements_by_notebook = replacements_by_notebook or {}
    names = notebook_names(course, assignment)
    return submit(course, student, assignment,
                  {n: mutate(source_notebook(course, assignment, n), replacements_by_notebook.get(n, {})) for n in names})


def cell_scores(course, assignment, student):
    """``{grade_id: (score, max_score)}`` of every autograded grade cell, from nbgrader's gradebook."""
    from nbgrader.api import Gradebook
    db_url = "sqlite:///" + str(Path(course) / "gradebook.db")
    with Gradebook(db_url) as gb:
        submission = gb.find_submission(assignment, student)
        return {grade.name: (grade.score, grade.max_score) for nb in submission.notebooks for grade in nb.grades
                if grade.cell_type == "code" and grade.auto_score is not None}


def judge_messages(course, assignment, student, name):
    """``{grade_id: text}`` the judge wrote into the autograded notebook's grade cells."""
    nb = nbformat.read(Path(course) / "autograded" / student / assignment / name, as_version=4)
    messages = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            messages[meta["grade_id"]] = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
    return messages


def feedback_html(course, assignment, student, name):
    return (Path(course) / "feedback" / student / assignment / name.replace(".ipynb", ".html")).read_text()


def score_after_losing(points, lost_kinds):
    """A grade cell's score when the checks ``lost_kinds`` fail, with the judge's rule that a
    property check pays only when the cell's first value check passed (``points``: kind -> points,
    in declaration order)."""
    from grader.judge import PROPERTY_KINDS
    lost = set(lost_kinds)
    primary = next((kind for kind in points if kind not in PROPERTY_KINDS), None)
    if primary in lost:
        lost |= {kind for kind in points if kind in PROPERTY_KINDS}
    return float(sum(p for kind, p in points.items() if kind not in lost))


def seed_gradebook(course, assignments, students, submissions, due):
    """A gradebook written directly, no grading: ``assignments`` {name: max score} of one grade cell
    each, ``students``, ``submissions`` [(student, assignment, score, hours late = late penalty)]."""
    import datetime

    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{Path(course) / 'gradebook.db'}", "backprop-lab") as gb:
        for assignment, points in assignments.items():
            gb.add_assignment(assignment, duedate=due)
            gb.add_notebook("nb", assignment)
            gb.add_grade_cell("g", "nb", assignment, max_score=points, cell_type="code")
        for student in students:
            gb.add_student(student)
        for student, assignment, score, late in submissions:
            gb.add_submission(assignment, student, timestamp=due + datetime.timedelta(hours=late))
            gb.find_grade("g", "nb", assignment, student).auto_score = score
            gb.find_submission_notebook("nb", assignment, student).late_submission_penalty = late
        gb.db.commit()
