"""backprop-lab's parallel autograde against the stock serial nbgrader, a killed worker, zip collection."""
import os
import re
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from tests import pipeline
from tests.grader import fixture

pytestmark = pytest.mark.slow
A, NB = fixture.ASSIGNMENT, fixture.NOTEBOOK
STUDENTS = {
    "ann": {},
    "ben": {"np.maximum(z, 0)": "np.minimum(z, 0)"},
    "cat": {"float(0.5 * np.sum((pred - y) ** 2) / N)": "float(np.sum((pred - y) ** 2) / N)"},
    "dan": {"e = np.exp(z - z.max(axis=1, keepdims=True))": "e = np.exp(z)"},
}


def _cli(course, *args, **kwargs):
    return subprocess.run([sys.executable, "-m", "grader.cli", "--course-dir", str(course), *args],
                          capture_output=True, text=True, **kwargs)


def _fresh_course(root):
    """A course with the fixture released and every student's work handed in, nothing graded yet."""
    course = pipeline.make_course(root)
    fixture.build(course)
    pipeline.nbgrader(course, "generate_assignment", A, "--force")
    source = pipeline.source_notebook(course, A, NB)
    for student, edits in STUDENTS.items():
        pipeline.submit(course, student, A, {NB: pipeline.mutate(source, edits)})
    return course


@pytest.fixture(scope="module")
def courses(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    serial = _fresh_course(root / "serial")
    parallel = _fresh_course(root / "parallel")
    pipeline.nbgrader(serial, "autograde", A)
    return serial, parallel


def _all_scores(course):
    return {s: pipeline.cell_scores(course, A, s) for s in STUDENTS}


def test_parallel_autograde_gives_the_stock_serial_grades_and_a_summary(courses):
    serial, parallel = courses
    result = _cli(parallel, "autograde", "--jobs", "2", timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _all_scores(parallel) == _all_scores(serial)
    for student in STUDENTS:
        assert student in result.stdout
    assert "4/4 graded, 0 failed" in result.stderr


def test_a_killed_worker_loses_only_its_submission_and_a_rerun_completes_it(courses, tmp_path):
    serial, _ = courses
    course = _fresh_course(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "grader.cli", "--course-dir", str(course), "autograde", "--jobs", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    log = course / "logs" / A / "ben.log"
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline:
        # Each worker's live log opens with "[backprop-lab] worker PID: nbgrader autograde ... --student ben";
        # nbgrader logs "Autograding <notebook>" as the sandboxed run (over a second) begins: kill it there.
        text = log.read_text() if log.exists() else ""
        match = re.match(r"\[backprop-lab\] worker (\d+): nbgrader autograde .*--student ben\b", text)
        if match and "Autograding " in text:
            victim = int(match.group(1))
        else:
            time.sleep(0.02)
    assert victim, "the worker grading ben never started"
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=1200)
    assert process.returncode == 1
    assert "✗ ben/fixture: the worker was killed by SIGKILL" in stdout
    graded = {s for s in STUDENTS if s != "ben"}
    for student in graded:
        assert pipeline.cell_scores(course, A, student) == pipeline.cell_scores(serial, A, student)
    rerun = _cli(course, "autograde", "--jobs", "2", timeout=1200)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert _all_scores(course) == _all_scores(serial)


def test_one_students_assignments_graded_at_the_same_time_both_land(courses, tmp_path):
    """Two workers start on the same new student at once: neither may lose its grades to the
    other's insert of the student row (seen once in the demo before students were registered first)."""
    serial, _ = courses
    course = pipeline.make_course(tmp_path)
    fixture.build(course)
    fixture.build(course, "fixture-b")
    for assignment in (A, "fixture-b"):
        pipeline.nbgrader(course, "generate_assignment", assignment, "--force")
    source = pipeline.source_notebook(course, A, NB)
    for student in ("ann", "ben"):
        for assignment in (A, "fixture-b"):
            pipeline.submit(course, student, assignment, {NB: pipeline.mutate(source, STUDENTS[student])})
    # submissions are taken student by student, so both of ann's start together, then both of ben's
    result = _cli(course, "autograde", "--jobs", "2", timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4/4 graded, 0 failed" in result.stderr
    for student in ("ann", "ben"):
        for assignment in (A, "fixture-b"):
            assert pipeline.cell_scores(course, assignment, student) == pipeline.cell_scores(serial, A, student)


def test_zip_collect_reports_odd_names_missing_and_extra_files_and_loses_nothing(courses, tmp_path):
    serial, _ = courses
    course = pipeline.make_course(tmp_path)
    fixture.build(course)
    pipeline.nbgrader(course, "generate_assignment", A, "--force")
    release = (course / "release" / A / NB).read_bytes()
    archive = tmp_path / "lms.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(f"eve_{NB}", release)
        bundle.writestr(f"fay_{NB}", release)
        bundle.writestr("fay_notes.txt", b"extra file")
        bundle.writestr("Final version (2) FINAL.ipynb", release)
        bundle.writestr("gus_other.ipynb", release)
    result = _cli(course, "collect", A, "--zip", str(archive), timeout=600)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "'Final version (2) FINAL.ipynb': not named <student>_<notebook>.ipynb" in out
    assert "'fay_notes.txt': not named" in out
    assert "other.ipynb is not a notebook of fixture" in out
    assert f"! gus: {NB} missing from the zip" in out
    assert f"✓ eve: {NB}" in out and f"✓ fay: {NB}" in out
    for student in ("eve", "fay"):
        assert (course / "submitted" / student / A / NB).read_bytes() == release
    kept = {p.name for p in (course / "downloaded" / A / "archive").iterdir()}
    assert {"fay_notes.txt", "Final version (2) FINAL.ipynb", "gus_other.ipynb"} <= kept
    assert archive.exists()


def test_a_failed_workers_reason_is_the_exception_not_nbgraders_closing_words(tmp_path):
    from grader.workers import _failure_reason
    log = tmp_path / "ann.log"
    log.write_text("[backprop-lab] worker 1: nbgrader autograde fixture --student ann\n"
                   "Traceback (most recent call last):\n"
                   "  File \"api.py\", line 1397, in add_student\n"
                   "nbgrader.api.InvalidEntry: (sqlite3.IntegrityError) UNIQUE constraint failed: student.id\n"
                   "[HardenedAutogradeApp | ERROR] There was an error processing assignment 'fixture' for student 'ann'\n"
                   "[HardenedAutogradeApp | ERROR] Please see the the above traceback for details.\n")
    assert _failure_reason(1, log) == "nbgrader.api.InvalidEntry: (sqlite3.IntegrityError) UNIQUE constraint failed: student.id"
    log.write_text("[HardenedAutogradeApp | ERROR] No notebooks were found in submitted/ann/fixture\n"
                   "[HardenedAutogradeApp | ERROR] Please see the the above traceback for details.\n")
    assert _failure_reason(1, log) == "[HardenedAutogradeApp | ERROR] No notebooks were found in submitted/ann/fixture"
    log.write_text("")
    assert _failure_reason(2, log) == "nbgrader exited with 2"


def test_progress_in_a_log_file_is_a_line_per_tenth_not_one_endless_line(capsys):
    from grader.cli import Progress
    progress = Progress(30)
    for number in range(30):
        progress.step(ok=number != 1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10
    assert "\r" not in "".join(lines)
    assert lines[0].startswith("[###") and " 3/30 graded, 1 failed" in lines[0]
    assert "30/30 graded, 1 failed" in lines[-1] and "ETA    0 s" in lines[-1]
