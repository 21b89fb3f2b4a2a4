"""The course's late policy and per-student extensions, through stock ``nbgrader autograde``, export and feedback."""
import csv
import subprocess
import sys

import pytest
from nbgrader.api import Gradebook

from grader.late import PercentPerDay
from tests import pipeline
from tests.grader import fixture

pytestmark = pytest.mark.slow
A, NB = fixture.ASSIGNMENT, fixture.NOTEBOOK
SMALL = {NB: {"forward_pass.affine_forward": {"value": 2, "no_mutation": 1}, "forward_pass.relu_forward": {"value": 2}}}
DUE = "2026-01-10 12:00:00 UTC"
STAMPS = {"ann": "2026-01-10 11:00:00.000000 UTC",      # on time
          "ben": "2026-01-12 18:00:00.000000 UTC",      # 2.25 days late: 3 started days, 30 %
          "cat": "2026-01-12 18:00:00.000000 UTC",      # as late, with a 3-day extension: on time
          "dan": "2026-01-20 12:00:00.000000 UTC"}      # 10 days late: capped at 50 %


def _cli(course, *args):
    return subprocess.run([sys.executable, "-m", "grader.instructor.cli", "--course-dir", str(course), *args],
                          capture_output=True, text=True, timeout=900)


def test_a_late_submission_loses_the_policys_penalty_and_an_extension_cancels_it_in_gradebook_export_and_feedback(tmp_path):
    course = pipeline.make_course(tmp_path)
    fixture.build(course, notebooks=SMALL)
    pipeline.nbgrader(course, "db", "assignment", "add", A, f"--duedate={DUE}")
    pipeline.nbgrader(course, "generate_assignment", A, "--force")
    for student, stamp in STAMPS.items():
        pipeline.submit_reference(course, student, A)
        (course / "submitted" / student / A / "timestamp.txt").write_text(stamp)
    (course / "extensions.csv").write_text("student_id,assignment,days\ncat,fixture,3\n")
    pipeline.nbgrader(course, "autograde", A)                           # stock nbgrader, the course's config

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "backprop-lab") as gb:
        got = {s: (gb.find_submission(A, s).score, gb.find_submission(A, s).late_submission_penalty) for s in STAMPS}
    full = got["ann"][0]
    assert full == 5 and got["ann"][1] == 0
    assert got["ben"] == (full, pytest.approx(0.3 * full))
    assert got["cat"] == (full, 0)
    assert got["dan"] == (full, pytest.approx(0.5 * full))

    # An extension granted after grading: imported, the penalty is recomputed without regrading.
    (tmp_path / "more.csv").write_text("student_id,assignment,days\nben,fixture,2\nzed,fixture,1\nben,nope,1\n")
    result = _cli(course, "extensions", "import", str(tmp_path / "more.csv"))
    assert result.returncode == 1                                        # the unknown assignment is refused
    assert "ben/nope: no such assignment; row skipped" in result.stdout
    assert "✓ ben/fixture: extension 2 day(s); still 6.0 h late, penalty 0.5" in result.stdout
    assert "! zed/fixture: not graded yet" in result.stdout
    assert (course / "extensions.csv").read_text().splitlines()[1:] == ["ben,fixture,2", "cat,fixture,3", "zed,fixture,1"]

    assert _cli(course, "export").returncode == 0
    rows = {r["student_id"]: r for r in csv.DictReader((course / "grades.csv").open())}
    assert rows["ann"][A] == "5" and rows["cat"][A] == "5" and rows["ben"][A] == "4.5" and rows["dan"][A] == "2.5"
    assert rows["cat"]["late_and_extensions"] == "fixture: extension 3 d"
    assert rows["ben"]["late_and_extensions"] == "fixture: extension 2 d; fixture: 6.0 h late, -0.5 points"

    pipeline.nbgrader(course, "generate_feedback", A)
    cat = pipeline.feedback_html(course, A, "cat", NB)
    assert "Extension granted: 3 day(s); due 2026-01-13 12:00 UTC" in cat and "Late submission penalty" not in cat
    dan = pipeline.feedback_html(course, A, "dan", NB)
    assert "Late submission penalty (Score: -2.5)" in dan and "Extension granted" not in dan


def test_the_policy_counts_started_days_after_the_grace_period_and_is_capped():
    policy = PercentPerDay(percent_per_day=10, max_percent=50, grace_minutes=5)
    assert policy.late_submission_penalty("s", 10.0, 4 * 60) is None                 # inside the grace period
    assert policy.late_submission_penalty("s", 10.0, 6 * 60) == pytest.approx(1.0)   # first started day
    assert policy.late_submission_penalty("s", 10.0, 86400 + 301) == pytest.approx(2.0)
    assert policy.late_submission_penalty("s", 10.0, 30 * 86400) == pytest.approx(5.0)
    assert policy.late_submission_penalty("s", 0.0, 3 * 86400) is None
