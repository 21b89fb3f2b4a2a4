"""Notebook 01 (chain rule): its hidden checks, its source and release notebooks, and the real pipeline.

The fast tests feed the checks what the reference, other correct implementations and known
mistakes return (no kernel). The slow ones execute the notebooks and grade students through the
stock nbgrader CLI: one autograde run for all of them.
"""
import html
import math
import time

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from grader.authoring import BEGIN, END, sync
from grader.cases import Outcome, get_case
from grader.cases import chain_rule as cases
from grader.diagnostics import CATALOGUE
from solutions import chain_rule as ref
from tests import pipeline

A, NB = "01-chain-rule", "chain_rule.ipynb"
SOURCE = pipeline.COURSE / "source" / A
SEEDS = range(40)
KINDS = {"numerical_derivative": ("value",), "Value": ("arithmetic", "unary", "reuse", "backward_order")}
POINTS = {"test_numerical_derivative": {"value": 2}, "test_Value": {"arithmetic": 2, "unary": 2, "reuse": 2, "backward_order": 1}}


def checks(seed):
    """Every check of the notebook, as the judge builds them for one run seed."""
    rng = np.random.default_rng(seed)
    return {(function, kind): get_case(function).build(kind, rng) for function, kinds in KINDS.items() for kind in kinds}


def run(function, check, implementation):
    """The check's verdict on what ``implementation`` (a numerical_derivative or a Value class) returns."""
    inputs = check.probes[0].inputs
    if function == "numerical_derivative":
        value = cases.estimates_with(implementation, inputs["trials"])
    else:
        value = cases.run_programs(implementation, inputs["programs"])
    return check.evaluate([Outcome("ok", value)])


# ---- correct implementations written differently ----------------------------------------------------


def derivative_over_spanned_width(f, x, h=1e-5):
    upper, lower = x + h, x - h
    return np.float64((f(upper) - f(lower)) / (upper - lower))


def derivative_halved_afterwards(f, x, h=1e-5):
    return 0.5 * (f(x + h) - f(x - h)) / h


class OtherValue:
    """A correct Value written another way: direct sub/div rules, textbook formulas, recursive sort."""

    def __init__(self, data, _children=(), _op=""):
        self.data, self.grad, self._backward, self._prev, self._op = float(data), 0.0, lambda: None, tuple(_children), _op

    @staticmethod
    def wrap(other):
        return other if isinstance(other, OtherValue) else OtherValue(other)

    def _make(self, data, children, rules):
        out = OtherValue(data, children)

        def _backward():
            for node, local in rules():
                node.grad = node.grad + local * out.grad

        out._backward = _backward
        return out

    def __add__(self, other):
        other = self.wrap(other)
        return self._make(self.data + other.data, (self, other), lambda: [(self, 1.0), (other, 1.0)])

    def __sub__(self, other):
        other = self.wrap(other)
        return self._make(self.data - other.data, (self, other), lambda: [(self, 1.0), (other, -1.0)])

    def __mul__(self, other):
        other = self.wrap(other)
        return self._make(self.data * other.data, (self, other), lambda: [(self, other.data), (other, self.data)])

    def __truediv__(self, other):
        other = self.wrap(other)
        return self._make(self.data / other.data, (self, other),
                          lambda: [(self, 1 / other.data), (other, -self.data / other.data ** 2)])

    def __pow__(self, n):
        out_data = self.data ** n
        return self._make(out_data, (self,), lambda: [(self, n * out_data / self.data)])

    def __neg__(self):
        return self._make(-self.data, (self,), lambda: [(self, -1.0)])

    def __radd__(self, other):
        return self.wrap(other) + self

    def __rsub__(self, other):
        return self.wrap(other) - self

    def __rmul__(self, other):
        return self.wrap(other) * self

    def __rtruediv__(self, other):
        return self.wrap(other) / self

    def exp(self):
        e = math.exp(self.data)
        return self._make(e, (self,), lambda: [(self, e)])

    def log(self):
        return self._make(math.log(self.data), (self,), lambda: [(self, 1 / self.data)])

    def tanh(self):
        t = (math.exp(2 * self.data) - 1) / (math.exp(2 * self.data) + 1)
        return self._make(t, (self,), lambda: [(self, 1 - t * t)])

    def sigmoid(self):
        s = 1 / (1 + math.exp(-self.data))
        return self._make(s, (self,), lambda: [(self, s - s * s)])

    def relu(self):
        return self._make(self.data if self.data > 0 else 0.0, (self,), lambda: [(self, 1.0 if self.data > 0 else 0.0)])

    def backward(self):
        topo, seen = [], set()

        def visit(node):
            if node not in seen:
                seen.add(node)
                for child in node._prev:
                    visit(child)
                topo.append(node)

        visit(self)
        self.grad = 1.0
        for node in reversed(topo):
            node._backward()


CORRECT = {"numerical_derivative": [ref.numerical_derivative, derivative_over_spanned_width, derivative_halved_afterwards],
           "Value": [ref.Value, OtherValue, cases.faulty_value_class((), "recursive")]}


@pytest.mark.parametrize("seed", SEEDS)
def test_correct_implementations_pass_every_check(seed):
    for (function, kind), check in checks(seed).items():
        for implementation in CORRECT[function]:
            result = run(function, check, implementation)
            assert result.passed, (function, kind, getattr(implementation, "__name__", implementation), result.message)


# ---- known mistakes: each breaks exactly the kinds it should, and is named ----------------------------

def _nd(mistake, implementation):
    return ("numerical_derivative", implementation, {"value"}, mistake)


def _value(mistake, faults, kinds, order="topological"):
    return ("Value", cases.faulty_value_class(faults, order), kinds, mistake)


MISTAKES = {
    "one-sided forward": _nd("one_sided_difference", lambda f, x, h=1e-5: (f(x + h) - f(x)) / h),
    "one-sided backward": _nd("one_sided_difference", lambda f, x, h=1e-5: (f(x) - f(x - h)) / h),
    "divided by h": _nd("difference_not_halved", lambda f, x, h=1e-5: (f(x + h) - f(x - h)) / h),
    "h ignored": _nd("h_ignored", lambda f, x, h=1e-5: (f(x + 1e-5) - f(x - 1e-5)) / 2e-5),
    "add overwrites": _value("overwrite_not_accumulate", ["overwrite_add"], {"reuse"}),
    "mul overwrites": _value("overwrite_not_accumulate", ["overwrite_mul"], {"reuse"}),
    "mul overwrites, recursive sort": _value("overwrite_not_accumulate", ["overwrite_mul"], {"reuse"}, "recursive"),
    "tanh at z": _value("tanh_at_z", ["tanh_at_z"], {"unary"}),
    "sigmoid at z": _value("sigmoid_at_z", ["sigmoid_at_z"], {"unary"}),
    "log at the output": _value("log_derivative_wrong", ["log_at_output"], {"unary"}),
    "log times x": _value("log_derivative_wrong", ["log_times_input"], {"unary"}),
    "pow without n": _value("pow_missing_exponent", ["pow_no_exponent"], {"arithmetic"}),
    "rsub swapped": _value("reflected_operands_swapped", ["rsub_swapped"], {"arithmetic"}),
    "rtruediv swapped": _value("reflected_operands_swapped", ["rtruediv_swapped"], {"arithmetic"}),
    "shallow backward": _value("backward_not_topological", [], {"backward_order"}, "shallow"),
    "breadth-first backward": _value("backward_not_topological", [], {"backward_order"}, "bfs"),
    "backward per path": _value("backward_not_topological", [], {"backward_order"}, "recursive_no_sort"),
}


@pytest.mark.parametrize("seed", SEEDS)
def test_each_known_mistake_fails_only_its_kinds_and_is_named(seed):
    built = checks(seed)
    for name, (function, implementation, broken, mistake) in MISTAKES.items():
        for (checked, kind), check in built.items():
            if checked != function:
                continue
            result = run(function, check, implementation)
            if kind in broken:
                assert not result.passed, (name, kind)
                assert mistake in result.mistakes, (name, kind, result.message)
                assert CATALOGUE[mistake] in result.message
            else:
                assert result.passed, (name, kind, result.message)


def test_the_faultless_engine_is_the_reference():
    for seed in range(10):
        for (function, kind), check in checks(seed).items():
            if function == "Value":
                programs = check.probes[0].inputs["programs"]
                faultless = cases.run_programs(cases.faulty_value_class(), programs)
                for got, expected in zip(faultless, cases.run_programs(ref.Value, programs)):
                    assert np.allclose(got, expected, rtol=1e-13, atol=0), (got, expected)


def test_a_failure_shows_the_graph_and_the_numbers():
    check = checks(3)[("Value", "arithmetic")]
    message = run("Value", check, cases.faulty_value_class(["rsub_swapped"])).message
    assert message.startswith("Value: for out = ") and " - a with a = " in message
    assert "expected" in message and CATALOGUE["reflected_operands_swapped"] in message
    long = cases.render_program(checks(3)[("Value", "backward_order")].probes[0].inputs["programs"][0])
    assert len(long) < 200


def test_unusable_results_cost_the_check_without_crashing_the_judge():
    built = checks(0)
    nd, arithmetic = built[("numerical_derivative", "value")], built[("Value", "arithmetic")]
    missing = Outcome(status="error", error_type="NotImplementedError", message="")
    assert "not implemented yet" in nd.evaluate([missing]).message
    assert "not implemented yet" in arithmetic.evaluate([missing]).message
    array = nd.evaluate([Outcome("ok", [np.array(1.0)] * 6)])
    assert not array.passed and "expected a float" in array.message
    assert not nd.evaluate([Outcome("ok", [1.0])]).passed
    assert not arithmetic.evaluate([Outcome("ok", [[1.0]])]).passed
    programs = arithmetic.probes[0].inputs["programs"]
    nan = [[float("nan")] * (1 + len(p["leaves"])) for p in programs]
    assert not arithmetic.evaluate([Outcome("ok", nan)]).passed


def test_hidden_inputs_are_fresh_per_seed():
    first, second = checks(0), checks(1)
    for key in first:
        assert first[key].probes[0].inputs != second[key].probes[0].inputs


# ---- the source notebook ------------------------------------------------------------------------------


def test_notebook_is_in_sync_with_solutions_and_labcheck():
    drift = [entry for entry in sync(str(pipeline.COURSE), check=True) if entry.startswith(f"source/{A}/")]
    assert drift == []


def test_notebook_cells_follow_the_conventions():
    nb = nbformat.read(SOURCE / NB, as_version=4)
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5) and nb.metadata.kernelspec.name == "python3"
    ids = [cell.id for cell in nb.cells]
    assert len(set(ids)) == len(ids)
    assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in nb.cells if cell.cell_type == "code")
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code[0].metadata.nbgrader["grade_id"] == "setup" and "from labcheck import" in code[0].source
    grades = {cell.metadata.nbgrader["grade_id"]: cell for cell in code if cell.metadata.nbgrader.get("grade")}
    assert set(grades) == set(POINTS)
    for grade_id, cell in grades.items():
        assert cell.metadata.nbgrader["points"] == sum(POINTS[grade_id].values()) and cell.metadata.nbgrader["locked"]
    solutions = [cell.metadata.nbgrader["grade_id"] for cell in code if cell.metadata.nbgrader.get("solution")]
    assert solutions == ["numerical_derivative", "Value"]
    for cell in code:
        grade_id = cell.metadata.nbgrader["grade_id"]
        assert cell.id == grade_id
        if not cell.metadata.nbgrader.get("solution"):
            assert cell.metadata.nbgrader["locked"]
            assert grade_id in ("setup",) or grade_id.startswith(("selfcheck-", "experiment-", "test_"))


def _errors(nb):
    return [(cell.id, out.ename, out.evalue) for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if out.output_type == "error"]


@pytest.mark.slow
def test_source_notebook_runs_top_to_bottom_in_under_30_seconds():
    nb = nbformat.read(SOURCE / NB, as_version=4)
    started = time.monotonic()
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(SOURCE)}}).execute()
    assert time.monotonic() - started < 30
    assert _errors(nb) == []
    outputs = "".join(out.get("text", "") for cell in nb.cells if cell.id.startswith("selfcheck-") for out in cell.outputs)
    assert outputs.count("✓") >= 9


# ---- the release and the pipeline ----------------------------------------------------------------------

# Ten planted mistakes in three students: (student, graded function, check kind lost, exact text in the
# solution cell, planted text, catalogue id). A student's mistakes in Value each break a different kind.
PLANTED = [
    ("bug_a", "numerical_derivative", "value", "return float((f(x + h) - f(x - h)) / (2 * h))",
     "return float((f(x + h) - f(x)) / h)", "one_sided_difference"),
    ("bug_a", "Value", "unary", "self.grad += (1 - out.data**2) * out.grad",
     "self.grad += (1 - self.data**2) * out.grad", "tanh_at_z"),
    ("bug_a", "Value", "reuse", "self.grad += out.grad\n            other.grad += out.grad",
     "self.grad = out.grad\n            other.grad = out.grad", "overwrite_not_accumulate"),
    ("bug_b", "numerical_derivative", "value", "return float((f(x + h) - f(x - h)) / (2 * h))",
     "return float((f(x + 1e-5) - f(x - 1e-5)) / (2 * 1e-5))", "h_ignored"),
    ("bug_b", "Value", "arithmetic", "return other + (-self)", "return self - other", "reflected_operands_swapped"),
    ("bug_b", "Value", "backward_order", "        for node in reversed(order):\n            node._backward()",
     "        self._backward()\n        for child in self._prev:\n            child._backward()", "backward_not_topological"),
    ("bug_b", "Value", "unary", "self.grad += out.grad / self.data", "self.grad += out.grad / out.data",
     "log_derivative_wrong"),
    ("bug_c", "Value", "unary", "self.grad += out.data * (1 - out.data) * out.grad",
     "self.grad += self.data * (1 - self.data) * out.grad", "sigmoid_at_z"),
    ("bug_c", "Value", "reuse", "self.grad += other.data * out.grad\n            other.grad += self.data * out.grad",
     "self.grad = other.data * out.grad\n            other.grad = self.data * out.grad", "overwrite_not_accumulate"),
    ("bug_c", "Value", "arithmetic", "self.grad += exponent * self.data ** (exponent - 1) * out.grad",
     "self.grad += self.data ** (exponent - 1) * out.grad", "pow_missing_exponent"),
]
BUGGY = sorted({student for student, *_ in PLANTED})


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One course: release generated, every student submitted, one autograde run, feedback generated."""
    course = pipeline.make_course(tmp_path_factory.mktemp("chain_rule"), [A])
    pipeline.nbgrader(course, "generate_assignment", A, "--force")
    pipeline.submit_reference(course, "reference", A)
    pipeline.submit_release(course, "blank", A)
    for student in BUGGY:
        planted = {old: new for who, _, _, old, new, _ in PLANTED if who == student}
        pipeline.submit_reference(course, student, A, {NB: planted})
    pipeline.nbgrader(course, "autograde", A)
    pipeline.nbgrader(course, "generate_feedback", A)
    return course


def _solution_lines(nb):
    lines = set()
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        inside = False
        for line in cell.source.splitlines():
            stripped = line.strip()
            if stripped == BEGIN:
                inside = True
            elif stripped == END:
                inside = False
            elif inside and len(stripped) > 12:
                lines.add(stripped)
    return lines


@pytest.mark.slow
def test_release_has_no_solutions_and_runs_with_only_not_implemented_errors(graded):
    release_dir = graded / "release" / A
    release = pipeline.release_notebook(graded, A, NB)
    text = "\n".join(cell.source for cell in release.cells)
    leaked = [line for line in _solution_lines(pipeline.source_notebook(graded, A, NB)) if line in text]
    assert leaked == []
    assert "BEGIN HIDDEN TESTS" not in text and 'judge("' not in text and "BEGIN SOLUTION" not in text
    assert (release_dir / "labcheck" / "__init__.py").exists() and (release_dir / "labcheck" / "diagnostics.py").exists()
    assert text.count("raise NotImplementedError()") >= 2
    NotebookClient(release, timeout=60, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(release_dir)}}).execute()
    errors = _errors(release)
    assert errors and {name for _, name, _ in errors} == {"NotImplementedError"}, errors


@pytest.mark.slow
def test_reference_scores_full_marks_and_the_release_scores_nothing(graded):
    full = {grade_id: (float(sum(p.values())), float(sum(p.values()))) for grade_id, p in POINTS.items()}
    assert pipeline.cell_scores(graded, A, "reference") == full
    assert pipeline.cell_scores(graded, A, "blank") == {grade_id: (0.0, score) for grade_id, (score, _) in full.items()}
    messages = pipeline.judge_messages(graded, A, "blank", NB)
    assert all("not implemented yet" in message for message in messages.values())


@pytest.mark.slow
@pytest.mark.parametrize("student", BUGGY)
def test_planted_mistakes_cost_only_their_kinds_with_the_matching_hint(graded, student):
    planted = [row for row in PLANTED if row[0] == student]
    scores = pipeline.cell_scores(graded, A, student)
    messages = pipeline.judge_messages(graded, A, student, NB)
    feedback = html.unescape(pipeline.feedback_html(graded, A, student, NB))
    for grade_id, points in POINTS.items():
        function = grade_id[len("test_"):]
        lost = {kind for _, f, kind, *_ in planted if f == function}
        assert scores[grade_id] == (float(sum(p for k, p in points.items() if k not in lost)), float(sum(points.values())))
        for kind, value in points.items():
            line = next(line for line in messages[grade_id].splitlines() if line.strip().startswith(("✓", "✗")) and f" {kind} (" in line)
            assert line.strip().startswith("✗" if kind in lost else "✓"), line
    for _, function, kind, _, _, mistake in planted:
        line = next(line for line in messages[f"test_{function}"].splitlines() if f" {kind} (" in line)
        assert CATALOGUE[mistake] in line, line
        assert CATALOGUE[mistake] in feedback
    assert 'judge("' not in feedback and "BEGIN HIDDEN TESTS" not in feedback
