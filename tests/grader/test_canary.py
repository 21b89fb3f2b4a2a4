"""A broken grader never records a grade: the canary stops a batch, nbgrader's failure path stores nothing.

The sandbox is broken on purpose with ``JudgeInSandbox.sandbox_python`` pointing at a Python
that cannot import nbformat (a plain venv without packages, the very failure of a sandbox
running the wrong interpreter).
"""
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from grader import guard
from grader.canary import GRADER_BROKEN
from tests import pipeline
from tests.grader import fixture

pytestmark = pytest.mark.slow
A, NB = fixture.ASSIGNMENT, fixture.NOTEBOOK
SMALL = {NB: {"forward_pass.affine_forward": {"value": 2, "no_mutation": 1}, "forward_pass.relu_forward": {"value": 2}}}


@pytest.fixture(scope="module")
def broken_python(tmp_path_factory):
    folder = tmp_path_factory.mktemp("broken") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    return folder / "bin" / "python"


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory):
    """ann graded once by a healthy grader (with a manual comment since); bob handed in, never graded."""
    course = pipeline.make_course(tmp_path_factory.mktemp("canary"))
    fixture.build(course, notebooks=SMALL)
    pipeline.nbgrader(course, "generate_assignment", A, "--force")
    pipeline.submit_reference(course, "ann", A)
    (course / "submitted" / "ann" / A / "timestamp.txt").write_text("2026-01-10 10:00:00.000000 UTC")
    pipeline.nbgrader(course, "autograde", A)
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "backprop-lab") as gb:
        grade = gb.find_grade("test_relu_forward", "layers", A, "ann")
        grade.manual_score = 1.5
        gb.db.commit()
    pipeline.submit_reference(course, "bob", A)
    return course


def dump(course):
    """Every row of every table of the gradebook, in a stable order."""
    with sqlite3.connect(course / "gradebook.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {table: sorted(map(repr, db.execute(f"SELECT * FROM {table}"))) for table in tables}


def _copy(course, root, config_line):
    copy = root / "course"
    shutil.copytree(course, copy)
    with open(copy / "nbgrader_config.py", "a") as handle:
        handle.write(f"\n{config_line}\n")
    return copy


def test_stock_nbgrader_with_a_broken_sandbox_fails_loudly_and_stores_nothing(graded_course, broken_python, tmp_path):
    course = _copy(graded_course, tmp_path, "")
    before = dump(course)
    assert pipeline.cell_scores(course, A, "ann") == {"test_affine_forward": (3.0, 3.0), "test_relu_forward": (1.5, 2.0)}
    result = pipeline.nbgrader(course, "autograde", A, "--force", f"--JudgeInSandbox.sandbox_python={broken_python}",
                               check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "No module named 'nbformat'" in out
    assert "ann/fixture: NOT GRADED, the grader is broken; nothing was stored (its earlier grades are kept)" in out
    assert "bob/fixture: NOT GRADED, the grader is broken; nothing was stored (no submission is recorded)" in out
    assert "an earlier notebook of this run found the grader broken" in out  # the second submission fails fast
    assert "There was an error processing assignment 'fixture' for student 'bob'" in out  # nbgrader's own path
    assert dump(course) == before
    assert not (course / "autograded" / "bob" / A).exists()


def test_backprop_lab_autograde_with_a_broken_sandbox_grades_nobody(graded_course, broken_python, tmp_path):
    course = _copy(graded_course, tmp_path, f"c.JudgeInSandbox.sandbox_python = {str(broken_python)!r}")
    before = dump(course)
    result = subprocess.run([sys.executable, "-m", "grader.instructor.cli", "--course-dir", str(course), "autograde", "--force",
                             "--jobs", "2"], capture_output=True, text=True, timeout=600)
    assert result.returncode == GRADER_BROKEN, result.stdout + result.stderr
    err = result.stderr
    assert "the grader is broken, so nobody was graded" in err
    assert f"✗ {A}: the sandbox's kernel never started" in err and "No module named 'nbformat'" in err
    assert f"✗ {'sandbox Python':<16}{broken_python} (Python" in err and "cannot import nbformat" in err
    assert f"fix: {broken_python} -m pip install" in err
    assert "Grading 2 submission(s)" in result.stdout and "ann" not in result.stdout  # no score table
    assert dump(course) == before
    assert not (course / "logs").exists()  # no worker started for a student
    kept = err.split("canary course and its logs kept in ")[1].split()[0]
    shutil.rmtree(kept.rsplit("/", 1)[0], ignore_errors=True)


def test_a_healthy_canary_grades_in_a_course_of_its_own(graded_course, tmp_path, monkeypatch):
    """The canary's nbgrader is pointed at its own folder and gradebook, whatever the environment says."""
    course = _copy(graded_course, tmp_path, "")
    elsewhere = tmp_path / "elsewhere.db"
    before = dump(course)
    result = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from grader import canary\n"
                             "if __name__ == '__main__':\n"
                             f"    r = canary.run_canary(Path({str(course)!r}), [{A!r}], jobs=1)\n"
                             "    print(r.message()); sys.exit(0 if r.ok else 1)"],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "BACKPROP_LAB_DB_URL": f"sqlite:///{elsewhere}"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"canary: reference work of {A} earned full marks" in result.stdout
    assert not elsewhere.exists()
    assert dump(course) == before


def test_undo_without_a_snapshot_says_so(caplog):
    import logging
    log = logging.getLogger("test")
    with caplog.at_level(logging.ERROR):
        assert guard.undo("fixture", "nobody", log) is False
    assert "could not be undone: no snapshot was taken" in caplog.text
