"""Assignment 02-forward-pass: its hidden checks, its notebook, its release and the real pipeline.

The fast tests run the hidden checks of ``grader/cases/forward_pass.py`` in this process: each
probe's code runs exactly as the sandbox runs it (as a function body over a namespace holding
the "student's" functions, its inputs and result passed through the codec), then the check's
``evaluate`` judges the outcomes. The slow tests drive a real kernel and the stock nbgrader CLI.
"""
import copy
import re
import time

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from grader.authoring import reference_source, sync
from grader.cases import get_case
from grader.diagnostics import CATALOGUE
from grader.judge import parse_spec
from tests import pipeline
from tests.inprocess import judge, namespace

ASSIGNMENT, NOTEBOOK = "02-forward-pass", "forward_pass.ipynb"
SOURCE = pipeline.COURSE / "source" / ASSIGNMENT / NOTEBOOK
FUNCTIONS = ("affine_forward", "sigmoid_forward", "tanh_forward", "relu_forward", "softmax", "mse_loss",
             "binary_cross_entropy", "softmax_cross_entropy", "mlp_forward")
REFERENCE = "\n\n".join(reference_source(f"forward_pass.{name}") for name in FUNCTIONS)
SEEDS = range(30)


# ---- running a probe as the sandbox does -------------------------------------------------------


def student(*sources):
    """A kernel namespace: the reference solutions, then each source (a student's cell) run over them."""
    return namespace(REFERENCE, *sources)


# ---- the hidden checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("function", FUNCTIONS)
def test_reference_passes_every_check_on_every_seed(function):
    case = get_case(function)
    assert set(case.kinds) >= {"value", "no_mutation", "repeat"}
    namespace = student()
    for seed in SEEDS:
        for kind in case.kinds:
            result = judge(function, kind, namespace, seed)
            assert result.passed, (seed, kind, result.message)


# Correct work written differently: loops, einsum, other stable formulas.
ALTERNATIVES = [
    ("affine_forward", """
def affine_forward(x, W, b):
    out = np.zeros((x.shape[0], W.shape[1]))
    for n in range(x.shape[0]):
        for m in range(W.shape[1]):
            out[n, m] = sum(x[n, d] * W[d, m] for d in range(x.shape[1])) + b[m]
    return out, (x, W, b)
"""),
    ("affine_forward", "def affine_forward(x, W, b):\n    return np.einsum('nd,dm->nm', x, W) + b, (x, W, b)\n"),
    ("sigmoid_forward", "def sigmoid_forward(z):\n    a = np.exp(-np.logaddexp(0, -z))\n    return a, (z, a)\n"),
    ("sigmoid_forward", "def sigmoid_forward(z):\n    a = 0.5 * (1 + np.tanh(z / 2))\n    return a, (z, a)\n"),
    ("sigmoid_forward", """
def sigmoid_forward(z):
    a = np.empty_like(z)
    positive = z >= 0
    a[positive] = 1 / (1 + np.exp(-z[positive]))
    a[~positive] = np.exp(z[~positive]) / (1 + np.exp(z[~positive]))
    return a, (z, a)
"""),
    ("tanh_forward", """
def tanh_forward(z):
    e = np.exp(-2 * np.abs(z))
    a = np.sign(z) * (1 - e) / (1 + e)
    return a, (z, a)
"""),
    ("relu_forward", "def relu_forward(z):\n    a = z * (z > 0)\n    return a, (z, a)\n"),
    ("relu_forward", "def relu_forward(z):\n    a = np.where(z > 0, z, 0.0)\n    return a, (z, a)\n"),
    ("softmax", """
def softmax(z):
    p = np.empty_like(z)
    for i, row in enumerate(z):
        m = max(row)
        total = sum(np.exp(v - m) for v in row)
        p[i] = [np.exp(v - m) / total for v in row]
    return p
"""),
    ("softmax", """
def softmax(z):
    m = z.max(axis=1, keepdims=True)
    return np.exp(z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True)))
"""),
    ("mse_loss", "def mse_loss(pred, y):\n    return ((pred - y) ** 2).sum() / (2 * len(pred))\n"),
    ("binary_cross_entropy", "def binary_cross_entropy(logits, y):\n    return np.mean(np.logaddexp(0, logits) - y * logits)\n"),
    ("binary_cross_entropy", """
def binary_cross_entropy(logits, y):
    loss = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
    return float(loss.sum() / logits.shape[0])
"""),
    ("binary_cross_entropy", """
def binary_cross_entropy(logits, y):
    log_p, log_not_p = -np.logaddexp(0, -logits), -np.logaddexp(0, logits)
    return float(-np.mean(y * log_p + (1 - y) * log_not_p))
"""),
    ("softmax_cross_entropy", """
def softmax_cross_entropy(logits, y):
    N, C = logits.shape
    total = 0.0
    for i in range(N):
        m = logits[i].max()
        total += m + np.log(np.sum(np.exp(logits[i] - m))) - logits[i, y[i]]
    return total / N
"""),
    ("softmax_cross_entropy", """
def softmax_cross_entropy(logits, y):
    one_hot = np.eye(logits.shape[1])[y]
    m = logits.max(axis=1, keepdims=True)
    log_probs = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    return float(-np.sum(one_hot * log_probs) / len(y))
"""),
    ("mlp_forward", """
def mlp_forward(X, params, hidden_activation="relu", output_activation=None):
    forward = {"relu": relu_forward, "tanh": tanh_forward, "sigmoid": sigmoid_forward, None: None}
    caches, out, layer = [], X, 1
    while f"W{layer}" in params:
        last = f"W{layer + 1}" not in params
        out, affine_cache = affine_forward(out, params[f"W{layer}"], params[f"b{layer}"])
        activation = output_activation if last else hidden_activation
        activation_cache = None
        if activation:
            out, activation_cache = forward[activation](out)
        caches.append((affine_cache, activation, activation_cache))
        layer += 1
    return out, caches
"""),
]


@pytest.mark.parametrize("function,source", ALTERNATIVES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(ALTERNATIVES)])
def test_correct_work_written_differently_passes(function, source):
    namespace = student(source)
    for seed in range(12):
        for kind in get_case(function).kinds:
            result = judge(function, kind, namespace, seed)
            assert result.passed, (seed, kind, result.message)


# Known mistakes: each must fail its value check and be named.
MISTAKES = [
    ("affine_forward", "bias_missing", "def affine_forward(x, W, b):\n    return x @ W, (x, W, b)\n"),
    ("affine_forward", "affine_transposed", "def affine_forward(x, W, b):\n    return (x @ W + b).T, (x, W, b)\n"),
    ("sigmoid_forward", "unstable_sigmoid", "def sigmoid_forward(z):\n    a = 1 / (1 + np.exp(-z))\n    return a, (z, a)\n"),
    ("sigmoid_forward", "unstable_sigmoid", "def sigmoid_forward(z):\n    a = np.exp(z) / (1 + np.exp(z))\n    return a, (z, a)\n"),
    ("sigmoid_forward", "unstable_sigmoid",  # np.where evaluates both branches on every entry
     "def sigmoid_forward(z):\n    a = np.where(z >= 0, 1 / (1 + np.exp(-z)), np.exp(z) / (1 + np.exp(z)))\n    return a, (z, a)\n"),
    ("tanh_forward", "unstable_tanh",
     "def tanh_forward(z):\n    a = (np.exp(z) - np.exp(-z)) / (np.exp(z) + np.exp(-z))\n    return a, (z, a)\n"),
    ("relu_forward", "relu_minimum", "def relu_forward(z):\n    a = np.minimum(z, 0)\n    return a, (z, a)\n"),
    ("softmax", "softmax_no_shift", "def softmax(z):\n    e = np.exp(z)\n    return e / e.sum(axis=1, keepdims=True)\n"),
    ("softmax", "softmax_global_max", "def softmax(z):\n    e = np.exp(z - z.max())\n    return e / e.sum(axis=1, keepdims=True)\n"),
    ("softmax", "softmax_wrong_axis",
     "def softmax(z):\n    e = np.exp(z - z.max(axis=0, keepdims=True))\n    return e / e.sum(axis=0, keepdims=True)\n"),
    ("mse_loss", "factor_two", "def mse_loss(pred, y):\n    return float(np.sum((pred - y) ** 2) / pred.shape[0])\n"),
    ("mse_loss", "missing_mean", "def mse_loss(pred, y):\n    return float(0.5 * np.sum((pred - y) ** 2))\n"),
    ("mse_loss", "mse_mean_over_outputs", "def mse_loss(pred, y):\n    return float(np.mean((y - pred) ** 2))\n"),
    ("binary_cross_entropy", "bce_unstable", """
def binary_cross_entropy(logits, y):
    p = 1 / (1 + np.exp(-logits))
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
"""),
    ("binary_cross_entropy", "bce_unstable", """
def binary_cross_entropy(logits, y):
    p = sigmoid_forward(logits)[0]
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
"""),
    ("binary_cross_entropy", "bce_unstable",
     "def binary_cross_entropy(logits, y):\n    return float(np.mean(np.log(1 + np.exp(logits)) - y * logits))\n"),
    ("binary_cross_entropy", "missing_mean",
     "def binary_cross_entropy(logits, y):\n    return float(np.sum(np.logaddexp(0, logits) - y * logits))\n"),
    ("softmax_cross_entropy", "softmax_no_shift", """
def softmax_cross_entropy(logits, y):
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))
"""),
    ("softmax_cross_entropy", "ce_log_of_softmax", """
def softmax_cross_entropy(logits, y):
    return float(-np.mean(np.log(softmax(logits)[np.arange(len(y)), y])))
"""),
    ("softmax_cross_entropy", "ce_label_indexing", """
def softmax_cross_entropy(logits, y):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probs[:, y]))
"""),
    ("softmax_cross_entropy", "missing_mean", """
def softmax_cross_entropy(logits, y):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.sum(log_probs[np.arange(len(y)), y]))
"""),
    ("mlp_forward", "mlp_output_activation", """
def mlp_forward(X, params, hidden_activation="relu", output_activation=None):
    forward = {"relu": relu_forward, "tanh": tanh_forward, "sigmoid": sigmoid_forward}
    out, caches = X, []
    for layer in range(1, len(params) // 2 + 1):
        out, affine_cache = affine_forward(out, params[f"W{layer}"], params[f"b{layer}"])
        out, activation_cache = forward[hidden_activation](out)
        caches.append((affine_cache, hidden_activation, activation_cache))
    if output_activation is not None:
        out, _ = forward[output_activation](out)
    return out, caches
"""),
    ("mlp_forward", "mlp_no_hidden_activation", """
def mlp_forward(X, params, hidden_activation="relu", output_activation=None):
    out = X
    for layer in range(1, len(params) // 2 + 1):
        out, _ = affine_forward(out, params[f"W{layer}"], params[f"b{layer}"])
    if output_activation == "sigmoid":
        out, _ = sigmoid_forward(out)
    return out, []
"""),
    ("mlp_forward", "mlp_activation_ignored", """
def mlp_forward(X, params, hidden_activation="relu", output_activation=None):
    L = len(params) // 2
    out = X
    for layer in range(1, L + 1):
        out, _ = affine_forward(out, params[f"W{layer}"], params[f"b{layer}"])
        if layer < L:
            out, _ = relu_forward(out)
    if output_activation == "sigmoid":
        out, _ = sigmoid_forward(out)
    return out, []
"""),
]


@pytest.mark.parametrize("function,mistake,source", MISTAKES, ids=[f"{f}-{m}-{i}" for i, (f, m, _) in enumerate(MISTAKES)])
def test_each_known_mistake_fails_its_value_check_and_is_named(function, mistake, source):
    namespace = student(source)
    for seed in range(12):
        result = judge(function, "value", namespace, seed)
        assert not result.passed, seed
        assert mistake in result.mistakes, (seed, result.message)
        assert CATALOGUE[mistake] in result.message


def test_an_unstable_formula_keeps_its_property_points():
    namespace = student(MISTAKES[7][2])  # softmax without the shift: NaN on the +1000 row
    for seed in range(5):
        assert judge("softmax", "no_mutation", namespace, seed).passed
        assert judge("softmax", "repeat", namespace, seed).passed


@pytest.mark.parametrize("returned", ["np.array(loss)", "np.array([loss])", "np.float32(loss)"])
def test_a_loss_must_be_a_float(returned):
    namespace = student(f"def mse_loss(pred, y):\n    loss = 0.5 * np.sum((pred - y) ** 2) / len(pred)\n    return {returned}\n")
    result = judge("mse_loss", "value", namespace, 0)
    assert not result.passed
    assert "not a float" in result.message or "expected a float" in result.message
    assert "float(" in result.message
    if returned.startswith("np.array"):
        assert "shape" in result.message


def test_blank_stubs_are_reported_as_not_implemented():
    stubs = "\n".join(f"def {name}(*args, **kwargs):\n    raise NotImplementedError()\n" for name in FUNCTIONS)
    namespace = student(stubs)
    for function in FUNCTIONS:
        for kind in get_case(function).kinds:
            result = judge(function, kind, namespace, 0)
            assert not result.passed and "not implemented yet" in result.message


def test_mutation_and_hidden_state_are_caught():
    mutating = student("def relu_forward(z):\n    z[z < 0] = 0\n    return z, (z, z)\n")
    assert "mutation" in judge("relu_forward", "no_mutation", mutating, 0).mistakes
    noisy = student("def softmax(z):\n    e = np.exp(z - z.max(axis=1, keepdims=True)) * (1 + 1e-9 * np.random.rand())\n"
                    "    return e / e.sum(axis=1, keepdims=True)\n")
    assert "not_deterministic" in judge("softmax", "repeat", noisy, 0).mistakes


def test_value_inputs_reach_the_extremes_and_have_distinct_sizes():
    for seed in range(20):
        for function, extreme in [("sigmoid_forward", 1000), ("tanh_forward", 1000), ("softmax", 990),
                                  ("binary_cross_entropy", 900), ("softmax_cross_entropy", 990)]:
            check = get_case(function).build("value", np.random.default_rng(seed))
            for probe in check.probes:
                assert np.max(np.abs(probe.inputs["args"][0])) >= extreme
        shapes = [p.inputs["args"][0].shape + p.inputs["args"][1].shape
                  for p in get_case("affine_forward").build("value", np.random.default_rng(seed)).probes]
        assert all(len(set(s[:2] + s[3:])) == 3 for s in shapes)
        mlp = get_case("mlp_forward").build("value", np.random.default_rng(seed)).probes
        assert [p.inputs["kwargs"]["hidden_activation"] for p in mlp[:3]] == ["relu", "tanh", "sigmoid"]
        assert len(mlp[3].inputs["args"][1]) == 2 and mlp[3].inputs["kwargs"]["output_activation"] == "sigmoid"


def test_inputs_come_from_the_seed_alone():
    for function in FUNCTIONS:
        first, second = (get_case(function).build("value", np.random.default_rng(7)).probes for _ in range(2))
        for a, b in zip(first, second):
            assert a.code == b.code
            assert repr(a.inputs) == repr(b.inputs)


def test_every_named_mistake_is_catalogued():
    for function in FUNCTIONS:
        case = get_case(function)
        inputs = case.trial_inputs(np.random.default_rng(0), 0)
        assert set(case.variants(**copy.deepcopy(inputs))) <= set(CATALOGUE)
        assert case.stability is None or case.stability in CATALOGUE


# ---- the notebook's structure (no kernel) ------------------------------------------------------------

def _nbgrader(cell):
    return cell.metadata.get("nbgrader", {})


def test_notebook_follows_the_authoring_conventions():
    nb = nbformat.read(SOURCE, as_version=4)
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert nb.metadata.kernelspec.name == "python3"
    ids = [cell.id for cell in nb.cells]
    assert len(set(ids)) == len(ids)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "commit the notebook without outputs"
    assert _nbgrader(code[0]).get("grade_id") == "setup" and _nbgrader(code[0]).get("locked")
    assert "%matplotlib inline" in code[0].source and "from labcheck import" in code[0].source
    for cell in code:
        meta = _nbgrader(cell)
        assert cell.id == meta["grade_id"], cell.id
        assert meta.get("solution") or meta.get("locked"), f"{cell.id} is neither a solution nor locked"
        if not meta.get("solution") and not meta.get("grade"):
            assert re.match(r"^(setup|selfcheck-|experiment-)", meta["grade_id"]), meta["grade_id"]
    for function in FUNCTIONS:
        at = ids.index(function)
        solution, selfcheck, grade = nb.cells[at:at + 3]
        assert _nbgrader(solution).get("solution") and solution.metadata["backprop_lab"] == {"reference": f"forward_pass.{function}"}
        assert selfcheck.id == f"selfcheck-{function}" and _nbgrader(selfcheck).get("locked")
        meta = _nbgrader(grade)
        assert grade.id == f"test_{function}" and meta.get("grade") and meta.get("locked") and not meta.get("solution")
        spec = parse_spec(grade.source)
        assert spec.function == function and set(spec.points) <= set(get_case(function).kinds)
        assert {"value", "no_mutation", "repeat"} <= set(spec.points)
        assert meta["points"] == sum(spec.points.values())
        assert grade.source.startswith(f"# Hidden checks of {function} run when the notebook is autograded.\n### BEGIN HIDDEN TESTS\n")


def test_generated_cells_and_labcheck_are_in_sync():
    drift = [entry for entry in sync(str(pipeline.COURSE), check=True) if ASSIGNMENT in entry]
    assert drift == [], f"run grader.authoring.sync: {drift}"


# ---- a real kernel and the real nbgrader pipeline ------------------------------------------------------

def _execute(path, cwd, allow_errors=False):
    nb = nbformat.read(path, as_version=4)
    started = time.monotonic()
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb, time.monotonic() - started


def _errors(nb):
    return [(cell.id, out.ename) for cell in nb.cells if cell.cell_type == "code"
            for out in cell.outputs if out.output_type == "error"]


@pytest.mark.slow
def test_source_notebook_executes_without_error_in_under_30_seconds():
    nb, seconds = _execute(SOURCE, SOURCE.parent)
    assert _errors(nb) == []
    assert seconds < 30, f"the source notebook took {seconds:.1f} s"
    outputs = [(cell.id, out) for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    printed = "".join(out.get("text", "") for _, out in outputs if out.output_type == "stream")
    assert "✗" not in printed and printed.count("✓") >= 40
    figures = [cell_id for cell_id, out in outputs if "image/png" in out.get("data", {})]
    assert len(figures) >= 6, figures


# Planted mistakes: (student, function, old text, new text, catalogue id the feedback must name).
PLANTED = [
    ("bug_a", "sigmoid_forward", "    e = np.exp(-np.abs(z))\n    a = np.where(z >= 0, 1 / (1 + e), e / (1 + e))",
     "    a = 1 / (1 + np.exp(-z))", "unstable_sigmoid"),
    ("bug_a", "softmax", "e = np.exp(z - z.max(axis=1, keepdims=True))", "e = np.exp(z)", "softmax_no_shift"),
    ("bug_a", "mse_loss", "float(0.5 * np.sum((pred - y) ** 2) / N)", "float(np.sum((pred - y) ** 2) / N)", "factor_two"),
    ("bug_a", "affine_forward", "out = x @ W + b\n", "out = x @ W\n", "bias_missing"),
    ("bug_c", "mlp_forward", "activation = output_activation if layer == num_layers else hidden_activation",
     "activation = hidden_activation", "mlp_output_activation"),
    ("bug_b", "softmax", "e = np.exp(z - z.max(axis=1, keepdims=True))\n    return e / e.sum(axis=1, keepdims=True)",
     "e = np.exp(z - z.max(axis=0, keepdims=True))\n    return e / e.sum(axis=0, keepdims=True)", "softmax_wrong_axis"),
    ("bug_b", "mse_loss", "float(0.5 * np.sum((pred - y) ** 2) / N)", "float(0.5 * np.sum((pred - y) ** 2))", "missing_mean"),
    ("bug_b", "relu_forward", "a = np.maximum(z, 0)", "a = np.minimum(z, 0)", "relu_minimum"),
    ("bug_b", "binary_cross_entropy", "return float(np.sum(np.logaddexp(0, logits) - y * logits) / N)",
     "p = 1 / (1 + np.exp(-logits))\n    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))", "bce_unstable"),
]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = pipeline.make_course(tmp_path_factory.mktemp("forward-pass"), [ASSIGNMENT])
    pipeline.nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    pipeline.submit_reference(course, "reference", ASSIGNMENT)
    pipeline.submit_release(course, "blank", ASSIGNMENT)
    for name in ("bug_a", "bug_b", "bug_c"):
        pipeline.submit_reference(course, name, ASSIGNMENT,
                                  {NOTEBOOK: {old: new for who, _, old, new, _ in PLANTED if who == name}})
    started = time.monotonic()
    pipeline.nbgrader(course, "autograde", ASSIGNMENT)
    seconds = time.monotonic() - started
    pipeline.nbgrader(course, "generate_feedback", ASSIGNMENT)
    source = nbformat.read(course / "source" / ASSIGNMENT / NOTEBOOK, as_version=4)
    full = {cell.id: float(_nbgrader(cell)["points"]) for cell in source.cells if _nbgrader(cell).get("grade")}
    return {"course": course, "full": full, "autograde_seconds": seconds}


def _scores(graded, name):
    return {grade_id: score for grade_id, (score, _) in pipeline.cell_scores(graded["course"], ASSIGNMENT, name).items()}


@pytest.mark.slow
def test_release_hides_every_solution_and_hidden_test_and_ships_labcheck(graded):
    course = graded["course"]
    release = pipeline.release_notebook(course, ASSIGNMENT, NOTEBOOK)
    source = nbformat.read(SOURCE, as_version=4)
    solution_lines = set()
    for cell in source.cells:
        inside = False
        for line in cell.source.splitlines():
            if line.strip() in ("### BEGIN SOLUTION", "### END SOLUTION"):
                inside = line.strip() == "### BEGIN SOLUTION"
            elif inside and len(line.strip()) > 8:
                solution_lines.add(line.strip())
    assert len(solution_lines) >= 25
    released = {line.strip() for cell in release.cells for line in cell.source.splitlines()}
    assert not solution_lines & released, solution_lines & released
    text = "\n".join(cell.source for cell in release.cells)
    assert "BEGIN HIDDEN TESTS" not in text and "judge(" not in text and "BEGIN SOLUTION" not in text
    assert text.count("raise NotImplementedError()") == len(FUNCTIONS)
    for name in ("__init__.py", "checks.py", "diagnostics.py"):
        assert (course / "release" / ASSIGNMENT / "labcheck" / name).is_file()


@pytest.mark.slow
def test_release_executes_with_only_not_implemented_errors(graded):
    folder = graded["course"] / "release" / ASSIGNMENT
    nb, _ = _execute(folder / NOTEBOOK, folder, allow_errors=True)
    errors = _errors(nb)
    assert errors and {ename for _, ename in errors} == {"NotImplementedError"}, errors
    assert {cell_id for cell_id, _ in errors} >= {f"selfcheck-{f}" for f in FUNCTIONS}


@pytest.mark.slow
def test_reference_scores_full_marks(graded):
    assert _scores(graded, "reference") == graded["full"]
    messages = pipeline.judge_messages(graded["course"], ASSIGNMENT, "reference", NOTEBOOK)
    assert all("✗" not in text for text in messages.values())


@pytest.mark.slow
def test_untouched_release_scores_zero_on_every_grade_cell(graded):
    assert _scores(graded, "blank") == {grade_id: 0.0 for grade_id in graded["full"]}
    messages = pipeline.judge_messages(graded["course"], ASSIGNMENT, "blank", NOTEBOOK)
    assert all("not implemented yet" in text for text in messages.values())


@pytest.mark.slow
@pytest.mark.parametrize("name,function,old,new,mistake", PLANTED, ids=[f"{p[0]}-{p[1]}-{p[4]}" for p in PLANTED])
def test_each_planted_mistake_costs_points_only_on_its_function_and_is_named(graded, name, function, old, new, mistake):
    import html
    scores, full = _scores(graded, name), graded["full"]
    planted = {f for who, f, *_ in PLANTED if who == name}
    # A function that calls a broken one (mlp_forward calls the layers) may lose points too.
    callers = {f for f in FUNCTIONS if set(get_case(f).depends) & planted}
    broken = {f"test_{f}" for f in planted | callers}
    assert {g: s for g, s in scores.items() if g not in broken} == {g: s for g, s in full.items() if g not in broken}
    grade = nbformat.read(SOURCE, as_version=4).cells
    value_points = parse_spec(next(c.source for c in grade if c.id == f"test_{function}")).points["value"]
    assert scores[f"test_{function}"] <= full[f"test_{function}"] - value_points
    message = pipeline.judge_messages(graded["course"], ASSIGNMENT, name, NOTEBOOK)[f"test_{function}"]
    assert "✗ value" in message and CATALOGUE[mistake] in message, message
    feedback = html.unescape(pipeline.feedback_html(graded["course"], ASSIGNMENT, name, NOTEBOOK))
    assert CATALOGUE[mistake] in feedback


@pytest.mark.slow
def test_feedback_never_shows_the_hidden_declarations(graded):
    for name in ("reference", "blank", "bug_a", "bug_b"):
        feedback = pipeline.feedback_html(graded["course"], ASSIGNMENT, name, NOTEBOOK)
        assert "judge(" not in feedback and "BEGIN HIDDEN TESTS" not in feedback
        assert "Judged outside your kernel" in feedback
