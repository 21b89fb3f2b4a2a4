"""backprop-lab's CLI: parallel autograde against the stock serial nbgrader, a killed worker, LMS zips, course folders, export, feedback."""
import os
import re
import shutil
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
    return subprocess.run([sys.executable, "-m", "grader.instructor.cli", "--course-dir", str(course), *args],
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
    process = subprocess.Popen([sys.executable, "-m", "grader.instructor.cli", "--course-dir", str(course), "autograde", "--jobs", "2"],
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


def test_zip_collect_reports_odd_names_and_extra_files_loses_nothing_and_exits_1(tmp_path):
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
        bundle.writestr(f"__MACOSX/._eve_{NB}", b"resource fork")
    result = _cli(course, "collect", A, "--zip", str(archive), timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    for name in ("Final version (2) FINAL.ipynb", "fay_notes.txt", "gus_other.ipynb"):
        assert f"✗ {name!r}: not a notebook of this assignment ({NB}); skipped, kept in downloaded/{A}/archive" in out, out
    assert "! ignored 1 file(s) of the zipping computer's own" in out
    assert f"✓ eve: {NB}" in out and f"✓ fay: {NB}" in out
    assert "3 file(s) skipped" in out
    assert sorted(p.name for p in (course / "submitted").iterdir()) == ["eve", "fay"]
    for student in ("eve", "fay"):
        assert (course / "submitted" / student / A / NB).read_bytes() == release
    kept = {p.name for p in (course / "downloaded" / A / "archive").iterdir()}
    assert {"fay_notes.txt", "Final version (2) FINAL.ipynb", "gus_other.ipynb"} <= kept
    assert archive.exists()


def _lms_zip(path, release):
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr(f"doejane_123456_7890123_{NB}", b"first upload")
        bundle.writestr(f"doejane_late_123456_7890124_{NB[:-6]}-1.ipynb", release)   # Canvas: late re-upload
        bundle.writestr(f"mary_ann_{NB}", release)                                  # an id with an underscore
        bundle.writestr(f"Zoe Roe_4711_assignsubmission_file_/{NB}", release)       # Moodle, a folder per student
        bundle.writestr(f"j_smith_{NB}", release)                                   # nobody of the course
        bundle.writestr(f"late_bob_{NB}", release)
        bundle.writestr(f"eve_{NB}", release)                                       # plain <student>_<notebook>
    return path


def test_zip_collect_creates_no_ghost_students_from_canvas_and_moodle_names(tmp_path):
    from nbgrader.api import Gradebook
    course = pipeline.make_course(tmp_path)
    fixture.build(course)
    pipeline.nbgrader(course, "generate_assignment", A, "--force")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "backprop-lab") as gb:
        gb.add_student("jdoe", first_name="Jane", last_name="Doe")
        gb.add_student("mary_ann")
        gb.add_student("mary")
        gb.add_student("zoe", first_name="Zoe", last_name="Roe")
    release = (course / "release" / A / NB).read_bytes()
    archive = _lms_zip(tmp_path / "canvas.zip", release)
    result = _cli(course, "collect", A, "--zip", str(archive), timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert sorted(p.name for p in (course / "submitted").iterdir()) == ["eve", "jdoe", "mary_ann", "zoe"], out
    assert (course / "submitted" / "jdoe" / A / NB).read_bytes() == release  # the re-upload, not the first one
    assert f"✗ 'doejane_123456_7890123_{NB}': an earlier copy of jdoe's {NB} than" in out
    for ghost in ("j_smith", "late_bob"):
        assert f"✗ '{ghost}_{NB}': names no student in the gradebook" in out
    assert "3 file(s) skipped" in out

    roster = tmp_path / "roster.csv"
    roster.write_text("id,first_name,last_name,email\njdoe,Jane,Doe,\nmary_ann,,,\n")
    fresh = pipeline.make_course(tmp_path / "with-roster")
    fixture.build(fresh)
    pipeline.nbgrader(fresh, "generate_assignment", A, "--force")
    result = _cli(fresh, "collect", A, "--zip", str(archive), "--roster", str(roster), timeout=600)
    assert result.returncode == 1
    assert sorted(p.name for p in (fresh / "submitted").iterdir()) == ["jdoe", "mary_ann"], result.stdout
    assert f"✗ 'eve_{NB}': names no student in the roster" in result.stdout


def test_zip_names_are_read_the_way_lms_write_them():
    from grader.instructor.zip_collect import _student, identify
    students = [_student("jdoe", "Jane", "Doe"), _student("mary_ann"), _student("mary"), _student("bob")]
    expected = {"forward_pass.ipynb", "forward_pass_extra.ipynb"}
    cases = {
        "doejane_123456_7890123_forward_pass.ipynb": ("jdoe", "forward_pass.ipynb", 0),
        "doejane_LATE_123456_7890123_forward_pass-2.ipynb": ("jdoe", "forward_pass.ipynb", 2),
        "doejane_123456_7890123_forward_pass_extra.ipynb": ("jdoe", "forward_pass_extra.ipynb", 0),
        "Jane Doe_99_assignsubmission_file_/forward_pass.ipynb": ("jdoe", "forward_pass.ipynb", 0),
        "Jane Doe_99_assignsubmission_file_forward_pass.ipynb": ("jdoe", "forward_pass.ipynb", 0),
        "mary_ann_forward_pass.ipynb": ("mary_ann", "forward_pass.ipynb", 0),
        "mary_forward_pass.ipynb": ("mary", "forward_pass.ipynb", 0),
        "zed_forward_pass.ipynb": ("zed", "forward_pass.ipynb", 0),
    }
    for name, wanted in cases.items():
        assert identify(name, expected, students, roster_given=False) == wanted, name
    for name, roster_given, reason in (("mary_bob_forward_pass.ipynb", False, "could be any of bob, mary"),
                                       ("zed_forward_pass.ipynb", True, "names no student in the roster"),
                                       ("late_zed_forward_pass.ipynb", False, "names no student in the gradebook"),
                                       ("x/zed_forward_pass.ipynb", False, "names no student in the gradebook"),
                                       ("zed_forward_pass-1.ipynb", False, "names no student in the gradebook"),
                                       ("forward_pass.ipynb", False, "carries no student name"),
                                       ("zed_backward_pass.ipynb", False, "not a notebook of this assignment")):
        student, why, _ = identify(name, expected, students, roster_given)
        assert student is None and why.startswith(reason), (name, why)


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
    from grader.instructor.commands import Progress
    progress = Progress(30)
    for number in range(30):
        progress.step(ok=number != 1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10
    assert "\r" not in "".join(lines)
    assert lines[0].startswith("[###") and " 3/30 graded, 1 failed" in lines[0]
    assert "30/30 graded, 1 failed" in lines[-1] and "ETA    0 s" in lines[-1]


def test_progress_counts_submissions_nbgrader_skipped_apart_from_graded(capsys):
    from grader.instructor.commands import Progress
    progress = Progress(4)
    for number in range(4):
        progress.step(ok=True, skipped=number < 3)
    assert capsys.readouterr().err.splitlines()[-1].split("] ")[1].startswith(
        "1/4 graded, 0 failed, 3 skipped (already graded),")


def test_the_course_is_the_current_folder_when_it_holds_a_config_and_course_dir_goes_anywhere(tmp_path):
    course = pipeline.make_course(tmp_path / "elsewhere")
    fixture.build(course)
    env = {k: v for k, v in os.environ.items() if k != "BACKPROP_LAB_COURSE"}
    here = subprocess.run([sys.executable, "-m", "grader.instructor.cli", "export"], cwd=course, env=env, capture_output=True,
                          text=True, timeout=600)
    assert here.returncode == 0, here.stderr
    assert f"backprop-lab: course {course} (the current folder)" in here.stderr
    assert (course / "grades.csv").read_text().startswith("student_id,")
    after = subprocess.run([sys.executable, "-m", "grader.instructor.cli", "export", "--course-dir", str(course), "--to",
                            str(tmp_path / "after.csv")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert after.returncode == 0, after.stderr
    assert f"backprop-lab: course {course} (--course-dir)" in after.stderr and (tmp_path / "after.csv").exists()
    outside = subprocess.run([sys.executable, "-m", "grader.instructor.cli", "sync", "--check"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
    assert "(the repository's course/; pass --course-dir or run in your course folder for another)" in outside.stderr


@pytest.mark.filterwarnings("ignore:Object of type <Submitted")  # nbgrader 0.9 on SQLAlchemy 2, benign
def test_export_and_the_summary_take_the_score_after_the_late_penalty_and_leave_missing_work_empty(tmp_path, capsys):
    import csv
    import datetime

    from grader.instructor import commands as cli
    course = pipeline.make_course(tmp_path)
    due = datetime.datetime(2026, 3, 1, 12, 0)
    pipeline.seed_gradebook(course, {"a1": 10, "a2": 10}, ("ann", "ben", "cat"),
                            (("ann", "a1", 7, 0), ("ben", "a1", 9, 9), ("ann", "a2", 4, 0), ("ben", "a2", 6, 2)), due)
    stock = course / "stock.csv"
    pipeline.nbgrader(course, "export", f"--to={stock}")
    stock_scores = {(row["student_id"], row["assignment"]): float(row["score"]) for row in csv.DictReader(stock.open())}
    result = subprocess.run([sys.executable, "-m", "grader.instructor.cli", "--course-dir", str(course), "export"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    wide = {row["student_id"]: row for row in csv.DictReader((course / "grades.csv").open())}
    assert (wide["ann"]["a1"], wide["ann"]["a2"], wide["ann"]["total"]) == ("7", "4", "11")
    assert (wide["ben"]["a1"], wide["ben"]["a2"], wide["ben"]["total"]) == ("0", "4", "4")  # a "zero" penalty, then 2 off
    assert (wide["cat"]["a1"], wide["cat"]["a2"], wide["cat"]["total"]) == ("", "", "0")    # handed in nothing
    for (student, assignment), score in stock_scores.items():
        if student != "cat":
            assert float(wide[student][assignment]) == score, (student, assignment)
    table = cli.print_scores(course, ["a1", "a2"])
    assert table["ben"]["a1"][0] == 0 and table["ben"]["a2"][0] == 4
    out = capsys.readouterr().out
    assert "ben/a1: late, 9 point(s) taken off by nbgrader's late penalty" in out
    assert "ann/a1: late" not in out


def test_feedback_skips_what_is_not_autograded_and_a_rerun_counts_skipped_work_apart(courses, tmp_path):
    serial, _ = courses
    course = tmp_path / "course"
    shutil.copytree(serial, course, ignore=shutil.ignore_patterns("feedback"))
    fixture.build(course, "fixture-b")
    pipeline.nbgrader(course, "generate_assignment", "fixture-b", "--force")
    result = _cli(course, "feedback", timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"✓ {A}: feedback for {len(STUDENTS)} student(s) in feedback/<student>/{A}/" in result.stdout
    assert "- fixture-b: skipped, nothing autograded yet (backprop-lab autograde fixture-b first)" in result.stdout
    for student in STUDENTS:
        assert list((course / "feedback" / student / A).glob("*.html"))
    named = _cli(course, "feedback", "fixture-b", timeout=900)
    assert named.returncode == 1 and "- fixture-b: skipped, nothing autograded yet" in named.stdout

    rerun = _cli(course, "autograde", A, "--jobs", "2", timeout=1200)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"0/{len(STUDENTS)} graded, 0 failed, {len(STUDENTS)} skipped (already graded)" in rerun.stderr
    assert f"{len(STUDENTS)} submission(s) were already graded and skipped" in rerun.stdout
    assert _all_scores(course) == _all_scores(serial)
