"""Roster import and the grade files Canvas and Moodle import, checked against fixtures written from their docs."""
import csv
import datetime
import subprocess
import sys

from nbgrader.api import Gradebook

from grader.instructor.zip_collect import _student, identify
from tests import pipeline

DUE = datetime.datetime(2026, 3, 1, 12, 0)

# Canvas's gradebook export (which its import reads back): the identity columns, one column per
# assignment, and a "Points Possible" row under the header. Written from Canvas's documentation.
CANVAS = """Student,ID,SIS User ID,SIS Login ID,Section,a1,a2
    Points Possible,,,,,10,20
"Doe, Jane",4101,S-001,jdoe,Lab A,7,15
"Ng, Ben",4102,S-002,bng,Lab B,0,
"""
# Moodle's "Import grades from CSV": a user-identifying column (mapped to idnumber at import) and
# one column per grade item; UTF-8, commas.
MOODLE = """ID number,Email address,First name,Last name,a1 (out of 10),a2 (out of 20)
S-001,jane@uni.example,Jane,Doe,7,15
S-002,ben@uni.example,Ben,Ng,0,
"""


def _course(tmp_path):
    course = pipeline.make_course(tmp_path)
    pipeline.seed_gradebook(course, {"a1": 10, "a2": 20}, ("jdoe", "bng", "zed"),
                            (("jdoe", "a1", 7, 0), ("jdoe", "a2", 15, 0), ("bng", "a1", 9, 9), ("zed", "a1", 5, 0)), DUE)
    return course


def _cli(course, *args):
    return subprocess.run([sys.executable, "-m", "grader.instructor.cli", "--course-dir", str(course), *args],
                          capture_output=True, text=True, timeout=300)


def test_roster_import_then_canvas_and_moodle_files_match_the_documented_layouts_and_report_who_is_missing(tmp_path):
    course = _course(tmp_path)
    roster = tmp_path / "roster.csv"
    roster.write_text("\ufeffid,first_name,last_name,email,lms_id,sis_user_id,sis_login_id,section\n"   # Excel's BOM
                      "jdoe,Jane,Doe,jane@uni.example,4101,S-001,jdoe,Lab A\n"
                      "bng,Ben,Ng,ben@uni.example,4102,S-002,bng,Lab B\n"
                      "amy,Amy,Lo,amy@uni.example,4103,S-003,alo,Lab A\n"
                      "<b>x</b>,Evil,Row,,4104,,,\n", encoding="utf-8")
    result = _cli(course, "roster", "import", str(roster))
    assert result.returncode == 1, result.stdout + result.stderr          # one row refused, with its line number
    assert "roster.csv:5: the student id '<b>x</b>' is not a plain name" in result.stdout
    assert "✓ 3 students in the gradebook" in result.stdout
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "backprop-lab") as gb:
        jane = gb.find_student("jdoe")
        assert (jane.first_name, jane.last_name, jane.email, jane.lms_user_id) == ("Jane", "Doe", "jane@uni.example", "4101")

    # Canvas's user ids (moodle ID numbers are the SIS ids here) stand in the shared moodle column
    moodle_roster = tmp_path / "moodle-roster.csv"
    for fmt, expected in (("canvas", CANVAS), ("moodle", MOODLE)):
        if fmt == "moodle":
            moodle_roster.write_text(roster.read_text(encoding="utf-8").replace(",4101,", ",S-001,").replace(",4102,", ",S-002,")
                                     .replace(",4103,", ",S-003,"), encoding="utf-8")
            _cli(course, "roster", "import", str(moodle_roster))
        out = tmp_path / f"{fmt}.csv"
        result = _cli(course, "export", "--format", fmt, "--to", str(out))
        assert result.returncode == 1, result.stdout + result.stderr      # zed has grades and no roster row
        assert "✗ zed: in the gradebook with grades but not on the roster; not in the file" in result.stdout
        assert "! amy: on the roster but unknown to the gradebook" not in result.stdout  # amy is in the gradebook now
        assert "1 graded student(s) are not in" in result.stdout
        got = list(csv.reader(out.open(encoding="utf-8", newline="")))
        want = list(csv.reader(expected.splitlines()))
        assert got[0] == want[0], fmt
        rows = {tuple(r[:2]): r for r in got[1:]}
        for row in want[1:]:
            assert rows[tuple(row[:2])] == row, (fmt, row)
        assert [r[0] for r in got if "Lo" in ",".join(r)] != [], "amy (no submissions) is in the file, with empty cells"
        raw = out.read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf") and raw.decode("utf-8")


def test_missing_as_zero_and_a_roster_without_lms_ids_is_reported(tmp_path):
    course = _course(tmp_path)
    roster = tmp_path / "roster.csv"
    roster.write_text("id,first_name,last_name,lms_id\njdoe,Jane,Doe,4101\nbng,Ben,Ng,\nzed,Zed,=cmd|' /C calc'!A0,4109\n")
    assert _cli(course, "roster", "import", str(roster)).returncode == 0
    out = tmp_path / "canvas.csv"
    result = _cli(course, "export", "--format", "canvas", "--to", str(out), "--missing-as-zero")
    assert "✗ bng: no LMS id on the roster; not in the file" in result.stdout and result.returncode == 1
    rows = {r[1]: r for r in csv.reader(out.open(newline=""))}
    assert rows["4101"][5:] == ["7", "15"] and rows["4109"][5:] == ["5", "0"]
    assert rows["4109"][0].startswith("'=cmd")        # a name a spreadsheet would run as a formula is quoted


def test_canvas_file_names_name_the_student_through_the_rosters_lms_id():
    students = [_student("jdoe", "Jane", "Doe", "4101"), _student("jd2", "Jane", "Doe", "4177")]
    expected = {"forward_pass.ipynb"}
    # two Jane Does: the name alone is ambiguous, Canvas's user id in the file name is not
    assert identify("doejane_4177_998877_forward_pass.ipynb", expected, students, True) == ("jd2", "forward_pass.ipynb", 0)
    assert identify("doejane_late_4101_998878_forward_pass-1.ipynb", expected, students, True) == ("jdoe", "forward_pass.ipynb", 1)
