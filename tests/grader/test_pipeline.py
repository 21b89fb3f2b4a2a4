"""The hardened grader through the real nbgrader CLI on a fixture assignment.

Phase 1 grades honest students (reference, blank release, planted mistakes); phase 2 grades
hostile and hazardous ones in the same course. Phase 2 must not change a byte of phase 1's
grades, must score every exploit's wrong answer 0, and must confine each hazard to its function.
"""
import sqlite3

import nbformat
import pytest

from tests import pipeline
from tests.grader import fixture

pytestmark = pytest.mark.slow
A, NB = fixture.ASSIGNMENT, fixture.NOTEBOOK
FULL = {f"test_{f}": float(sum(p.values())) for f, p in fixture.GRADED.items()}

# Ten planted mistakes, each in a function of its own within a student: (student, function, kind lost, old, new, hint).
MISTAKES = [
    ("bug_a", "affine_forward", "value", "out = x @ W + b\n    cache", "out = x @ W\n    cache", "bias"),
    ("bug_a", "relu_forward", "value", "np.maximum(z, 0)", "np.minimum(z, 0)", "wrong side of 0"),
    ("bug_a", "mse_loss", "value", "float(0.5 * np.sum((pred - y) ** 2) / N)", "float(np.sum((pred - y) ** 2) / N)", "factor 2"),
    ("bug_a", "softmax", "value", "e = np.exp(z - z.max(axis=1, keepdims=True))", "e = np.exp(z)", "subtract the row maximum"),
    ("bug_a", "sigmoid_forward", "value", None, None, "exp(-|z|)"),
    ("bug_b", "relu_forward", "no_mutation", "a = np.maximum(z, 0)", "z[z < 0] = 0\n    a = np.maximum(z, 0)", "modified in place"),
    ("bug_b", "tanh_forward", "repeat", "a = np.tanh(z)", "a = np.tanh(z) + 1e-12 * np.random.rand()", "disagree"),
    ("bug_b", "softmax_cross_entropy", "value", "float(-np.mean(log_probs[np.arange(N), y]))",
     "float(-np.sum(log_probs[np.arange(N), y]))", "factor N"),
    ("bug_b", "binary_cross_entropy", "value", "float(np.sum(np.logaddexp(0, logits) - y * logits) / N)",
     "float(-np.sum(np.logaddexp(0, logits) - y * logits) / N)", "sign is flipped"),
    ("bug_b", "affine_forward", "no_mutation", "out = x @ W + b\n    cache", "out = x @ W + b\n    x *= 2.0\n    cache", "modified in place"),
]

NAIVE_SIGMOID = "def sigmoid_forward(z):\n    a = 1.0 / (1.0 + np.exp(-z))\n    return a, (z, a)\n"

LEAK_PROBE = r'''
import os, glob
leaks = []
candidates = ["../../../gradebook.db", "../../gradebook.db", "../gradebook.db", "../../../source", "../../source",
              "../../../submitted", {course!r}, {course!r} + "/gradebook.db", {course!r} + "/source", {repo!r} + "/solutions",
              {repo!r}, "/root/.ssh", "/root/.bash_history"]
for path in candidates:
    if os.path.exists(path):
        leaks.append(path)
for folder, allowed in (("/", {{"bin", "dev", "etc", "lib", "lib32", "lib64", "proc", "sandbox", "sbin", "tmp", "usr", "bpl", "root", "opt", "home"}}),
                        ("/sandbox", {{"home", "job", "work"}}), ("/root", {{".pyenv"}})):
    if os.path.isdir(folder):
        leaks += [folder + "/" + name for name in os.listdir(folder) if name not in allowed]
try:
    import solutions
    leaks.append("import solutions")
except ImportError:
    pass
try:
    import grader.judge
    leaks.append("import grader")
except ImportError:
    pass
print("LEAKS:", leaks)
print("NETWORK:", end=" ")
import socket
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2); print("open")
except OSError as error:
    print("blocked")
'''

SQL_ATTACK = r'''
import sqlite3, glob
for path in ["../../../gradebook.db", {db!r}]:
    try:
        con = sqlite3.connect("file:" + path + "?mode=rw", uri=True)
        con.execute("UPDATE grade SET manual_score = 99")
        con.commit()
        print("SQL: wrote", path)
    except Exception as error:
        print("SQL: refused", type(error).__name__)
'''

TRANSFORMER = r'''
ip = get_ipython()
def drop_asserts(lines):
    return [l for l in lines if not l.lstrip().startswith("assert")]
ip.input_transformers_cleanup.append(drop_asserts)
'''


def _append_cell(nb, source):
    nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb


def _set_function(nb, function, source):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == function:
            cell.source = source
            return nb
    raise KeyError(function)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("grader-pipeline")
    course = pipeline.make_course(root)
    fixture.build(course)
    pipeline.nbgrader(course, "generate_assignment", A, "--force")
    source = pipeline.source_notebook(course, A, NB)

    pipeline.submit_reference(course, "reference", A)
    pipeline.submit_release(course, "blank", A)
    for student in ("bug_a", "bug_b"):
        replacements = {old: new for s, _, _, old, new, _ in MISTAKES if s == student and old}
        nb = pipeline.mutate(source, replacements)
        if student == "bug_a":
            _set_function(nb, "sigmoid_forward", NAIVE_SIGMOID)
        pipeline.submit(course, student, A, {NB: nb})
    phase1 = pipeline.nbgrader(course, "autograde", A)

    before = _grade_rows(course)
    db = str(course / "gradebook.db")
    wrong = pipeline.mutate(source, {"out = x @ W + b\n    cache": "out = x @ W\n    cache"})
    pipeline.submit(course, "exploit_allclose", A, {NB: _append_cell(
        nbformat.from_dict(wrong), "import numpy as np\nnp.allclose = lambda *a, **k: True\nnp.isclose = lambda *a, **k: True")})
    pipeline.submit(course, "exploit_transformer", A, {NB: _append_cell(pipeline.release_notebook(course, A, NB), TRANSFORMER)})
    pipeline.submit(course, "exploit_read", A, {NB: _append_cell(
        pipeline.release_notebook(course, A, NB), LEAK_PROBE.format(course=str(course), repo=str(pipeline.REPO)))})
    pipeline.submit(course, "exploit_sql", A, {NB: _append_cell(pipeline.release_notebook(course, A, NB), SQL_ATTACK.format(db=db))})
    hazards = nbformat.from_dict(source)
    _set_function(hazards, "affine_forward", "def affine_forward(x, W, b):\n    import sys\n    sys.exit(1)\n")
    _set_function(hazards, "relu_forward", "def relu_forward(z):\n    import os\n    os._exit(0)\n")
    _set_function(hazards, "tanh_forward", "def tanh_forward(z):\n    while True:\n        pass\n")
    _set_function(hazards, "sigmoid_forward", "def sigmoid_forward(z):\n    big = np.ones(50 * 2**30 // 8)\n    return big, None\n")
    _set_function(hazards, "softmax", "def softmax(z):\n    import os\n    while True:\n        os.fork()\n")
    pipeline.submit(course, "hazards", A, {NB: hazards})
    phase2 = pipeline.nbgrader(course, "autograde", A, "--JudgeInSandbox.probe_timeout=5")
    pipeline.nbgrader(course, "generate_feedback", A)
    return {"course": course, "before": before, "after": _grade_rows(course), "log": phase1.stdout + phase1.stderr
            + phase2.stdout + phase2.stderr}


def _grade_rows(course):
    with sqlite3.connect(course / "gradebook.db") as con:
        return sorted(con.execute(
            "SELECT student.id, base_cell.name, grade.auto_score, grade.manual_score, grade.extra_credit "
            "FROM grade JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
            "JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id "
            "JOIN student ON submitted_assignment.student_id = student.id "
            "JOIN base_cell ON grade.cell_id = base_cell.id").fetchall())


def _scores(course, student):
    return {k: v[0] for k, v in pipeline.cell_scores(course, A, student).items()}


def test_reference_scores_full_marks(course):
    assert _scores(course["course"], "reference") == FULL


def test_untouched_release_scores_zero_everywhere(course):
    assert set(_scores(course["course"], "blank").values()) == {0.0}
    messages = pipeline.judge_messages(course["course"], A, "blank", NB)
    assert all("not implemented yet" in text for text in messages.values())


@pytest.mark.parametrize("student,function,kind,old,new,hint", MISTAKES, ids=[f"{m[0]}-{m[1]}-{m[2]}" for m in MISTAKES])
def test_each_planted_mistake_costs_exactly_its_check(course, student, function, kind, old, new, hint):
    scores = _scores(course["course"], student)
    broken = {f for s, f, *_ in MISTAKES if s == student}
    for grade_id, full in FULL.items():
        if grade_id[len("test_"):] not in broken:
            assert scores[grade_id] == full, f"{grade_id} lost points though {student} did not break it"
    lost = fixture.GRADED[function][kind]
    kinds_broken = {k for s, f, k, *_ in MISTAKES if s == student and f == function}
    if kinds_broken & {"value"}:  # properties are paid only with a right value
        kinds_broken |= set(fixture.GRADED[function]) & {"no_mutation", "repeat"}
    assert scores[f"test_{function}"] == FULL[f"test_{function}"] - sum(fixture.GRADED[function][k] for k in kinds_broken)
    assert lost > 0
    message = pipeline.judge_messages(course["course"], A, student, NB)[f"test_{function}"]
    assert hint in message, message
    assert hint in pipeline.feedback_html(course["course"], A, student, NB)


def test_feedback_never_shows_the_hidden_declaration(course):
    for student in ("reference", "blank", "bug_a"):
        html = pipeline.feedback_html(course["course"], A, student, NB)
        assert "judge(" not in html and "BEGIN HIDDEN TESTS" not in html
        assert "Judged outside your kernel" in html


def test_phase_two_leaves_earlier_grades_byte_for_byte_unchanged(course):
    earlier = {row[0] for row in course["before"]}
    assert [r for r in course["after"] if r[0] in earlier] == course["before"]
    assert all(row[3] is None for row in course["after"]), "a manual score was written"


@pytest.mark.parametrize("student", ["exploit_allclose", "exploit_transformer", "exploit_read", "exploit_sql"])
def test_exploits_earn_nothing_for_wrong_work(course, student):
    scores = _scores(course["course"], student)
    if student == "exploit_allclose":
        assert scores["test_affine_forward"] == 0  # value lost, and the properties are paid only with it
        assert "bias" in pipeline.judge_messages(course["course"], A, student, NB)["test_affine_forward"]
    else:
        assert set(scores.values()) == {0.0}


def test_sandbox_hides_the_course_and_the_network(course):
    nb = nbformat.read(course["course"] / "autograded" / "exploit_read" / A / NB, as_version=4)
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "LEAKS: []" in text, text
    assert "NETWORK: blocked" in text, text
    nb = nbformat.read(course["course"] / "autograded" / "exploit_sql" / A / NB, as_version=4)
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "SQL: wrote" not in text and text.count("SQL: refused") == 2, text


def test_each_hazard_costs_only_its_function(course):
    scores = _scores(course["course"], "hazards")
    for function in ("affine_forward", "relu_forward", "tanh_forward", "sigmoid_forward", "softmax"):
        assert scores[f"test_{function}"] == 0.0, function
    for function in ("mse_loss", "softmax_cross_entropy", "binary_cross_entropy"):
        assert scores[f"test_{function}"] == FULL[f"test_{function}"], function
    messages = pipeline.judge_messages(course["course"], A, "hazards", NB)
    assert "SystemExit" in messages["test_affine_forward"]
    assert "kernel died" in messages["test_relu_forward"]
    assert "did not finish" in messages["test_tanh_forward"]
    assert "MemoryError" in messages["test_sigmoid_forward"]


def test_the_submitted_files_are_untouched(course):
    for folder in (course["course"] / "submitted").iterdir():
        nb = nbformat.read(folder / A / NB, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_a_regrade_with_the_recorded_seed_reproduces_the_scores(course):
    from grader import records
    db_url = f"sqlite:///{course['course'] / 'gradebook.db'}"
    first = records.latest(db_url, A, "bug_a")[0]
    pipeline.nbgrader(course["course"], "autograde", A, "--student", "bug_a", "--force", "--JudgeInSandbox.reuse_recorded_seed=True")
    second = records.latest(db_url, A, "bug_a")[0]
    assert second["id"] != first["id"] and second["seed"] == first["seed"]
    assert second["checks"] == first["checks"]
    pipeline.nbgrader(course["course"], "autograde", A, "--student", "bug_a", "--force")
    third = records.latest(db_url, A, "bug_a")[0]
    assert third["seed"] != first["seed"]
    assert [c["earned"] for c in third["checks"]] == [c["earned"] for c in first["checks"]]
