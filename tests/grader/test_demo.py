"""`backprop-lab demo`, the README's main job, ends with exit 0 and every synthetic student scored as planned."""
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_grades_the_cohort_as_expected(tmp_path):
    # Two assignments keep CI short; they carry the reference, blank, buggy and hostile students.
    result = subprocess.run([sys.executable, "-m", "grader.instructor.cli", "--course-dir", str(tmp_path / "course"), "demo",
                             "--jobs", "2", "--assignments", "02-forward-pass", "04-optimizers"],
                            capture_output=True, text=True, timeout=1800)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    assert "✓ Every student scored as expected" in out
    for student in ("ada", "blank", "brook", "cyril", "mallory"):
        assert student in out
    for produced in ("gradebook.db", "grades.csv", "report.png"):
        assert produced in out
    csv = (tmp_path / "course" / "grades.csv").read_text().splitlines()
    assert csv[0].startswith("student_id,last_name,first_name,email,02-forward-pass,04-optimizers,total")
    assert len(csv) == 1 + 5
    assert (tmp_path / "course" / "reports" / "report.png").stat().st_size > 10_000
    assert list((tmp_path / "course" / "feedback" / "brook" / "02-forward-pass").glob("*.html"))


def test_the_cohort_hands_in_release_notebooks_with_its_work_in_the_solution_cells(tmp_path):
    import nbformat

    from grader.instructor.cohort import COHORT, build_notebook
    from tests import pipeline
    assignments = ["02-forward-pass", "04-optimizers"]
    course = pipeline.make_course(tmp_path, assignments)
    for assignment in assignments:
        pipeline.nbgrader(course, "generate_assignment", assignment, "--force")
    for student in COHORT:
        for assignment in assignments:
            for name in pipeline.notebook_names(course, assignment):
                release = pipeline.release_notebook(course, assignment, name)
                nb = build_notebook(student, assignment, pipeline.source_notebook(course, assignment, name), release)
                text = "\n".join(cell.source for cell in nb.cells)
                for secret in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "judge("):
                    assert secret not in text, (student.name, assignment, secret)
                handed_in = nb.cells[:len(release.cells)]
                assert [c.metadata for c in handed_in] == [c.metadata for c in release.cells]
                for mine, given in zip(handed_in, release.cells):
                    solution = given.cell_type == "code" and given.metadata.get("nbgrader", {}).get("solution")
                    if not solution or student.blank:
                        assert mine.source == given.source
                    else:
                        assert "NotImplementedError" not in mine.source and mine.source != given.source
                assert [c.source for c in nb.cells[len(release.cells):]] == list(student.extra_cells)
                nbformat.validate(nb)
