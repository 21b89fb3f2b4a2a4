"""The gradebook and the judge's records on a real PostgreSQL server (tests/pg.py starts a throw-away one).

The same cohort (reference work, an untouched release, one planted mistake) on two assignments,
so that two workers grade one student at once, is graded three times: on SQLite, on PostgreSQL
with one worker and on PostgreSQL with two. The scores must agree; every grade row must be
there; regrade, export, report and the demo must work on PostgreSQL as on SQLite.
"""
import csv
import os
import subprocess
import sys
import threading
import types

import pytest

from tests import pipeline
from tests.grader import fixture
from tests.pg import PASSWORD, postgres  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow
A, B, NB = fixture.ASSIGNMENT, "fixture-b", fixture.NOTEBOOK
STUDENTS = ("reference", "blank", "bug")
PLANTED = {"np.maximum(z, 0)": "np.minimum(z, 0)"}  # relu_forward on the wrong side of 0
GRADE_CELLS = len(fixture.GRADED)


def _env(db_url):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if db_url:
        env["BACKPROP_LAB_DB_URL"] = db_url
    else:
        env.pop("BACKPROP_LAB_DB_URL", None)
    return env


def _nbgrader(course, db_url, *args):
    """``nbgrader ARGS`` (through grader.nbgrader_main, which starts it seconds faster)."""
    result = subprocess.run([sys.executable, "-m", "grader.nbgrader_main", *args], cwd=course, capture_output=True, text=True,
                            timeout=600, env=_env(db_url))
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _cli(course, db_url, *args):
    """``backprop-lab ARGS`` on ``course``, its gradebook at ``db_url`` (README: ``$BACKPROP_LAB_DB_URL``; None: SQLite)."""
    result = subprocess.run([sys.executable, "-m", "grader.instructor.cli", "--course-dir", str(course), *args],
                            capture_output=True, text=True, timeout=1200, env=_env(db_url))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def _course(root, db_url):
    """The fixture released as two assignments, the cohort's work handed in for both, nothing graded."""
    course = pipeline.make_course(root)
    for assignment in (A, B):
        fixture.build(course, assignment)
    _nbgrader(course, db_url, "generate_assignment", "fixture*", "--force")  # both, in one start of nbgrader
    for assignment in (A, B):
        pipeline.submit_reference(course, "reference", assignment)
        pipeline.submit_release(course, "blank", assignment)
        pipeline.submit_reference(course, "bug", assignment, {NB: PLANTED})
    return course


def _grades(course, db_url):
    """{(assignment, student): {grade_id: auto_score}} for every grade cell nbgrader holds."""
    from nbgrader.api import Gradebook
    with Gradebook(db_url or f"sqlite:///{course / 'gradebook.db'}", "backprop-lab") as gb:
        return {(assignment, student): {grade.name: grade.auto_score for nb in gb.find_submission(assignment, student).notebooks
                                        for grade in nb.grades if grade.cell_type == "code"}
                for assignment in (A, B) for student in STUDENTS}


@pytest.fixture(scope="module")
def graded(postgres, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("postgres")
    urls = {"sqlite": None, "serial": postgres.new_database("serial"), "parallel": postgres.new_database("parallel")}
    courses = {name: _course(root / name, url) for name, url in urls.items()}
    runs = {name: _cli(courses[name], urls[name], "autograde", "--jobs", "1" if name == "serial" else "2") for name in urls}
    return {"courses": courses, "urls": urls, "runs": runs}


def test_parallel_and_serial_grading_on_postgres_give_the_sqlite_scores(graded):
    sqlite = _grades(graded["courses"]["sqlite"], None)
    full = {f"test_{function}": float(sum(points.values())) for function, points in fixture.GRADED.items()}
    for assignment in (A, B):
        assert sqlite[assignment, "reference"] == full
        assert set(sqlite[assignment, "blank"].values()) == {0.0}
        assert sqlite[assignment, "bug"] == {**full, "test_relu_forward": 0.0}  # points follow a correct value
    for name in ("serial", "parallel"):
        assert _grades(graded["courses"][name], graded["urls"][name]) == sqlite, name
        assert "6/6 graded, 0 failed" in graded["runs"][name].stderr


def test_no_write_is_lost_under_parallel_workers(graded):
    from grader import records
    url = graded["urls"]["parallel"]
    grades = _grades(graded["courses"]["parallel"], url)
    assert len(grades) == 6
    for submission, scores in grades.items():
        assert len(scores) == GRADE_CELLS and None not in scores.values(), submission
    judged = records.latest(url)
    assert sorted((row["assignment"], row["student"]) for row in judged) == sorted(grades)
    assert all(row["score"] == sum(grades[row["assignment"], row["student"]].values()) for row in judged)


def test_regrade_on_postgres_reuses_the_recorded_seeds(graded):
    from grader import records
    course, url = graded["courses"]["parallel"], graded["urls"]["parallel"]
    before = {(r["assignment"], r["student"]): r for r in records.latest(url)}
    _cli(course, url, "regrade", A, "--jobs", "2")
    after = {(r["assignment"], r["student"]): r for r in records.latest(url)}
    assert after.keys() == before.keys()
    for key, row in after.items():
        if key[0] == B:
            assert row == before[key], key
            continue
        assert row["id"] > before[key]["id"], key
        assert row["seed"] == before[key]["seed"], key
        assert row["checks"] == before[key]["checks"], key
    assert _grades(course, url) == _grades(graded["courses"]["sqlite"], None)


def test_export_and_report_on_postgres_match_sqlite(graded, tmp_path):
    outputs = {}
    for name in ("sqlite", "parallel"):
        course, url = graded["courses"][name], graded["urls"][name]
        _cli(course, url, "export", "--to", str(tmp_path / f"{name}.csv"))
        report = _cli(course, url, "report", "--out", str(tmp_path / name))
        outputs[name] = (list(csv.reader((tmp_path / f"{name}.csv").open())), (tmp_path / name / "report.txt").read_text())
        assert (tmp_path / name / "report.png").stat().st_size > 10_000
        assert "report written" in report.stdout
    assert outputs["parallel"] == outputs["sqlite"]
    rows, report = outputs["parallel"]
    assert [row[0] for row in rows] == ["student_id", "blank", "bug", "reference"]
    assert f"{A}: 3 students" in report and f"{B}: 3 students" in report


def test_a_grader_creating_the_records_table_while_another_does_waits_and_then_writes(postgres):  # noqa: F811
    """Stock `nbgrader autograde` twice at once on a new database (no `prepare_database` first).

    One grader is half-way through creating the table (its transaction open); the other, which
    found no table, used to run CREATE TABLE too and fail with DuplicateTable when the first committed.
    """
    from sqlalchemy import create_engine, text

    from grader import records
    db_url = postgres.new_database("first_use")
    check = {"function": "relu_forward", "kind": "value", "points": 2.0, "earned": 2.0, "message": "", "mistakes": []}
    verdict = types.SimpleNamespace(seed=7, sandbox="bubblewrap", score=2.0, max_score=2.0, notes=[], as_record=lambda: [check])
    outcome = []

    def second_grader():
        try:
            records.save(db_url, A, "ann", "layers", verdict)
            outcome.append("saved")
        except Exception as error:  # named in the assertion
            outcome.append(f"{type(error).__name__}: {error}")

    engine = create_engine(db_url)
    try:
        with engine.begin() as first_grader:
            first_grader.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": records.SCHEMA_LOCK})
            records.metadata.create_all(first_grader)
            thread = threading.Thread(target=second_grader)
            thread.start()
            thread.join(1.0)
            assert thread.is_alive(), f"the second grader did not wait for the first: {outcome}"
        thread.join(60)
    finally:
        engine.dispose()
    assert outcome == ["saved"]
    assert [row["student"] for row in records.latest(db_url)] == ["ann"]


def test_prepare_database_creates_what_parallel_workers_would_race_to_create(postgres, tmp_path):  # noqa: F811
    from sqlalchemy import create_engine, inspect, text

    from grader.instructor import commands as cli
    db_url = postgres.new_database("prepared")
    course = pipeline.make_course(tmp_path)
    with (course / "nbgrader_config.py").open("a") as config:
        config.write(f"\nc.CourseDirectory.db_url = {db_url!r}\n")
    cli.prepare_database(course)
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            courses = {row[0] for row in connection.execute(text("SELECT id FROM course"))}
    finally:
        engine.dispose()
    assert {"backprop_lab_judgement", "grade", "submitted_notebook", "student", "alembic_version"} <= tables
    assert courses == {"backprop-lab", "default_course"}


def test_demo_with_db_url_grades_into_postgres_and_says_so(postgres, tmp_path):  # noqa: F811
    from nbgrader.api import Gradebook
    db_url = postgres.new_database("demo")
    # One assignment: what is new here is where the grades go; tests/grader/test_demo.py runs more on SQLite.
    result = _cli(tmp_path / "course", None, "demo", "--db-url", db_url, "--jobs", "2", "--assignments", "01-chain-rule")
    out = result.stdout
    assert "✓ Every student scored as expected" in out
    shown = db_url.replace(PASSWORD, "***")
    assert f"gradebook     : {shown}" in out
    assert PASSWORD not in out + result.stderr
    assert not (tmp_path / "course" / "gradebook.db").exists()
    assert (tmp_path / "course" / "nbgrader_config.py").stat().st_mode & 0o077 == 0, "the password is readable by others"
    with Gradebook(db_url, "backprop-lab") as gb:
        assert {s.id for s in gb.students} == {"ada", "blank", "brook", "cyril", "mallory"}
        assert all(gb.find_submission("01-chain-rule", s.id).score is not None for s in gb.students)
