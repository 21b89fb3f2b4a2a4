"""Release hygiene: which release gives away which assignment's solutions, the due-date gate, undeclared grade cells."""
import datetime
import shutil
import subprocess
import sys

import nbformat
import pytest

from grader.reveals import graded_definitions, revealed_solutions
from tests import pipeline
from tests.grader import fixture

COURSE = pipeline.COURSE
ASSIGNMENTS = sorted(p.name for p in (COURSE / "source").iterdir() if p.is_dir())


def _cli(course, *args):
    return subprocess.run([sys.executable, "-m", "grader.instructor.cli", *args, "--course-dir", str(course)],
                          capture_output=True, text=True, timeout=600)


def _graded_by(assignment):
    names = set()
    for path in (COURSE / "source" / assignment).glob("*.ipynb"):
        names |= set(graded_definitions(nbformat.read(path, as_version=4)))
    return names


def _provided(assignment):
    """What the authoring metadata says a notebook hands out (``backprop_lab.provides``): a cross-check only."""
    names = set()
    for path in (COURSE / "source" / assignment).glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            names |= {dotted.rsplit(".", 1)[1] for dotted in cell.metadata.get("backprop_lab", {}).get("provides", [])}
    return names


def test_later_releases_give_away_earlier_solutions_as_found_in_the_code():
    revealed = {a: {r.assignment: set(r.functions) for r in revealed_solutions(COURSE, a)} for a in ASSIGNMENTS}
    assert revealed["01-chain-rule"] == {} and revealed["02-forward-pass"] == {}
    assert revealed["03-backward-pass"] == {"02-forward-pass": _graded_by("02-forward-pass")}
    backward = {"affine_backward", "sigmoid_backward", "tanh_backward", "relu_backward", "softmax_cross_entropy_backward",
                "mlp_backward"}
    assert backward <= revealed["05-vanishing-gradients"]["03-backward-pass"]
    assert revealed["06-bptt"] == {"05-vanishing-gradients": {"clip_by_global_norm"}}
    # Whatever a notebook's metadata says it provides of another assignment's graded functions is found.
    for assignment in ASSIGNMENTS:
        for other in ASSIGNMENTS:
            if other != assignment:
                assert _provided(assignment) & _graded_by(other) <= revealed[assignment].get(other, set()), (assignment, other)


def _course_with_given_cell(tmp_path, source):
    course = pipeline.make_course(tmp_path, ["02-forward-pass"])
    fixture.build(course, "later", {"later.ipynb": {"backward_pass.relu_backward": {"value": 2}}})
    path = course / "source" / "later" / "later.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell(source, id="given"))
    nbformat.write(nb, path)
    return course


def test_a_renamed_copy_of_a_solution_is_found_and_a_stub_of_one_is_not(tmp_path):
    affine = pipeline.source_notebook(COURSE, "02-forward-pass", "forward_pass.ipynb")
    body = next(c.source for c in affine.cells if c.get("id") == "affine_forward")
    renamed = "\n".join(line for line in body.splitlines() if "SOLUTION" not in line).replace("def affine_forward", "def layer")
    course = _course_with_given_cell(tmp_path / "a", renamed + "\n\ndef softmax(z):\n    raise NotImplementedError()\n")
    assert [(r.assignment, r.functions) for r in revealed_solutions(course, "later")] == [("02-forward-pass", ["affine_forward"])]
    course = _course_with_given_cell(tmp_path / "b", "def sigmoid_forward(z):\n    '''given later'''\n    ...\n")
    assert revealed_solutions(course, "later") == []


def _set_due(course, assignment, due, extension_for=None):
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "backprop-lab") as gb:
        gb.update_or_create_assignment(assignment, duedate=due)
        if extension_for:
            gb.update_or_create_student(extension_for[0])
            gb.add_submission(assignment, extension_for[0], extension=extension_for[1])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Object of type <Submitted")  # nbgrader 0.9 on SQLAlchemy 2, benign (see grader/workers.py)
def test_release_refuses_before_the_revealed_assignment_is_due_and_force_warns(tmp_path):
    course = pipeline.make_course(tmp_path, ["02-forward-pass", "03-backward-pass"])
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)

    undated = _cli(course, "release", "--no-execute")
    assert undated.returncode == 0, undated.stdout + undated.stderr
    assert "! 03-backward-pass: gives away the solutions of 02-forward-pass (affine_forward, " in undated.stdout
    assert "which has no due date" in undated.stdout and "✓ 03-backward-pass" in undated.stdout
    shutil.rmtree(course / "release" / "03-backward-pass")

    _set_due(course, "02-forward-pass", now + datetime.timedelta(days=7))
    refused = _cli(course, "release", "03-backward-pass", "--no-execute")
    assert refused.returncode == 1
    due = (now + datetime.timedelta(days=7)).strftime("%Y-%m-%d %H:%M UTC")
    assert ("✗ 03-backward-pass: not released: it gives away the solutions of assignments not yet due: "
            "02-forward-pass (affine_forward, ") in refused.stdout
    assert f"due {due}" in refused.stdout and "--force" in refused.stdout
    assert "✓ 03-backward-pass" not in refused.stdout and not (course / "release" / "03-backward-pass").exists()

    forced = _cli(course, "release", "03-backward-pass", "--no-execute", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "! 03-backward-pass: released before its solutions are due (--force): 02-forward-pass" in forced.stdout
    assert "✓ 03-backward-pass" in forced.stdout
    assert (course / "release" / "03-backward-pass" / "backward_pass.ipynb").is_file()

    _set_due(course, "02-forward-pass", now - datetime.timedelta(days=1))
    after = _cli(course, "release", "03-backward-pass", "--no-execute")
    assert after.returncode == 0 and "gives away" not in after.stdout, after.stdout

    # A student with an extension is still working on 02: its solutions stay closed until then.
    _set_due(course, "02-forward-pass", now - datetime.timedelta(days=1), extension_for=("ann", datetime.timedelta(days=3)))
    extended = _cli(course, "release", "03-backward-pass", "--no-execute")
    assert extended.returncode == 1 and "not released" in extended.stdout, extended.stdout
    both = _cli(course, "release", "--no-execute")
    assert both.returncode == 1 and "✓ 02-forward-pass" in both.stdout and "✗ 03-backward-pass: not released" in both.stdout


def test_a_plain_assert_grade_cell_is_rejected_with_the_reason(tmp_path):
    from grader.release_check import declaration_problems
    course = pipeline.make_course(tmp_path)
    fixture.build(course)
    path = course / "source" / fixture.ASSIGNMENT / fixture.NOTEBOOK
    nb = nbformat.read(path, as_version=4)
    cells = {cell.get("id"): cell for cell in nb.cells}
    cells["test_relu_forward"].source = ("### BEGIN HIDDEN TESTS\nassert relu_forward(np.array([[-1.0]]))[0][0, 0] == 0\n"
                                         "### END HIDDEN TESTS")
    cells["test_softmax"].source = 'judge("softmax", value=2, speed=1)'
    cells["test_mse_loss"].source = 'judge("mse_los", value=2)'
    problems = declaration_problems(nb, fixture.NOTEBOOK)
    assert len(problems) == 3, problems
    assert problems[0].startswith("layers.ipynb grade cell 'test_relu_forward': no judge(...) declaration")
    assert "every student would score 0" in problems[0]
    assert "no check of kind speed" in problems[1] and "no hidden checks exist for 'mse_los'" in problems[2]
    untouched = nbformat.read(path, as_version=4)
    assert declaration_problems(untouched, fixture.NOTEBOOK) == []
    for assignment in ASSIGNMENTS:
        for source in (COURSE / "source" / assignment).glob("*.ipynb"):
            assert declaration_problems(nbformat.read(source, as_version=4), source.name) == []


@pytest.mark.slow
def test_release_fails_on_a_grade_cell_without_a_declaration(tmp_path):
    course = pipeline.make_course(tmp_path)
    fixture.build(course)
    path = course / "source" / fixture.ASSIGNMENT / fixture.NOTEBOOK
    nb = nbformat.read(path, as_version=4)
    next(c for c in nb.cells if c.get("id") == "test_relu_forward").source = (
        "### BEGIN HIDDEN TESTS\nassert relu_forward(np.array([[-1.0]]))[0][0, 0] == 0\n### END HIDDEN TESTS")
    nbformat.write(nb, path)
    result = _cli(course, "release", "--no-execute")
    assert result.returncode == 1
    assert "✗ fixture: release generated but not clean:" in result.stdout
    assert "grade cell 'test_relu_forward': no judge(...) declaration" in result.stdout
