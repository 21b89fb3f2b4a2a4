"""Assignment 04-optimizers: its hidden checks, its notebook, its release and the real pipeline.

The fast tests run the hidden checks of ``grader/cases/optimizers.py`` in this process: each
probe's code runs as the sandbox runs it (a function body over a namespace holding the
"student's" functions, its inputs and its result passed through the codec), then the check's
``evaluate`` judges the outcomes. The slow tests drive a real kernel and the stock nbgrader CLI.
"""
import html
import os
import re
import tempfile
import time

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from grader.authoring import reference_source, sync
from grader.cases import get_case
from grader.cases import optimizers as cases
from grader.diagnostics import CATALOGUE
from grader.judge import parse_spec
from tests import pipeline
from tests.inprocess import judge, namespace

ASSIGNMENT, NOTEBOOK = "04-optimizers", "optimizers.ipynb"
SOURCE = pipeline.COURSE / "source" / ASSIGNMENT / NOTEBOOK
RULES = ("sgd", "sgd_momentum", "rmsprop", "adagrad", "adam")
FUNCTIONS = RULES + ("minibatches",)
REFERENCE = "\n\n".join(reference_source(f"optimizers.{name}") for name in FUNCTIONS)
SLOW_KINDS = {"convergence"}


# ---- running a probe as the sandbox does -------------------------------------------------------


def student(*sources, replacements=None):
    """A kernel namespace: the reference solutions (with ``replacements`` planted), then each source run over them."""
    reference = REFERENCE
    for old, new in (replacements or {}).items():
        assert reference.count(old) == 1, old
        reference = reference.replace(old, new)
    return namespace(reference, *sources)


def seeds(kind, many=25, few=4):
    return range(few if kind in SLOW_KINDS else many)


# ---- the hidden checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("function", FUNCTIONS)
def test_reference_passes_every_check_on_every_seed(function):
    namespace = student()
    for kind in get_case(function).kinds:
        for seed in seeds(kind):
            result = judge(function, kind, namespace, seed)
            assert result.passed, (seed, kind, result.message)


def test_the_kinds_on_offer():
    assert get_case("sgd").kinds == ("value", "no_mutation", "convergence")
    assert get_case("adam").kinds == ("value", "state", "first_step", "tiny_gradient", "no_mutation", "convergence")
    assert "tiny_gradient" in get_case("rmsprop").kinds
    assert get_case("minibatches").kinds == ("property", "no_mutation")


def test_reference_stays_far_inside_every_convergence_tolerance():
    for function in RULES:
        for seed in range(30):
            A, b, w0 = cases.quadratic_problem(np.random.default_rng(seed))
            config, steps, tolerance = cases.CONVERGENCE[function](A)
            w = cases.minimise(getattr(cases.ref, function), A, b, w0, config, steps)
            f_star = cases.quadratic_loss(A, b, np.linalg.solve(A, b))
            gap = (cases.quadratic_loss(A, b, w) - f_star) / (cases.quadratic_loss(A, b, w0) - f_star)
            assert gap < tolerance / 20, (function, seed, gap)


# Correct work written differently.
ALTERNATIVES = [
    ("sgd", """
def sgd(w, dw, config=None):
    config = {**{"lr": 1e-3, "weight_decay": 0.0}, **(config or {})}
    return np.subtract(w, config["lr"] * (dw + config["weight_decay"] * w)), config
"""),
    ("sgd_momentum", """
def sgd_momentum(w, dw, config=None):
    config = {"lr": 1e-3, "momentum": 0.9, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0, **(config or {})}
    g = dw + config["weight_decay"] * w
    if config.get("velocity") is None:
        v = np.array(g, copy=True)
    else:
        v = config["momentum"] * config["velocity"] + (1.0 - config["dampening"]) * g
    config["velocity"] = v
    if config["nesterov"]:
        return w - config["lr"] * g - config["lr"] * config["momentum"] * v, config
    return w - config["lr"] * v, config
"""),
    ("rmsprop", """
def rmsprop(w, dw, config=None):
    config = dict(config or {})
    lr, alpha, eps = config.setdefault("lr", 1e-2), config.setdefault("alpha", 0.99), config.setdefault("eps", 1e-8)
    g = dw + config.setdefault("weight_decay", 0.0) * w
    cache = config.get("square_avg", np.zeros(w.shape))
    cache = alpha * cache + (1 - alpha) * g * g
    config["square_avg"] = cache
    return w - np.divide(lr * g, np.sqrt(cache) + eps), config
"""),
    ("adagrad", """
def adagrad(w, dw, config=None):
    config = dict(config) if config is not None else {}
    for key, value in [("lr", 1e-2), ("lr_decay", 0.0), ("weight_decay", 0.0), ("initial_accumulator_value", 0.0),
                       ("eps", 1e-10), ("t", 0)]:
        config.setdefault(key, value)
    config["t"] = config["t"] + 1
    g = dw + config["weight_decay"] * w
    total = config.get("sum", config["initial_accumulator_value"] * np.ones_like(w)) + g ** 2
    config["sum"] = total
    clr = config["lr"] / (1.0 + (config["t"] - 1.0) * config["lr_decay"])
    next_w = np.empty_like(w)
    for index in np.ndindex(w.shape):
        next_w[index] = w[index] - clr * g[index] / (np.sqrt(total[index]) + config["eps"])
    return next_w, config
"""),
    ("adam", """
def adam(w, dw, config=None):
    if config is None:
        config = {}
    config = config.copy()
    config.setdefault("lr", 1e-3); config.setdefault("betas", (0.9, 0.999)); config.setdefault("eps", 1e-8)
    config.setdefault("weight_decay", 0.0)
    b1, b2 = config["betas"]
    t = config.get("t", 0) + 1
    g = dw + config["weight_decay"] * w
    m = b1 * config.get("m", 0 * w) + (1 - b1) * g
    v = b2 * config.get("v", 0 * w) + (1 - b2) * g ** 2
    m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
    config.update(m=m, v=v, t=t)
    return w - config["lr"] * m_hat / (np.sqrt(v_hat) + config["eps"]), config
"""),
    ("minibatches", """
def minibatches(X, y, batch_size, rng):
    indices = list(range(len(X)))
    rng.shuffle(indices)
    start = 0
    while start < len(indices):
        chosen = indices[start:start + batch_size]
        yield X[chosen], y[chosen]
        start += batch_size
"""),
    ("minibatches", """
def minibatches(X, y, batch_size, rng):
    order = rng.choice(X.shape[0], size=X.shape[0], replace=False)
    for chunk in np.array_split(order, np.arange(batch_size, X.shape[0], batch_size)):
        yield X[chunk], y[chunk]
"""),
]


@pytest.mark.parametrize("function,source", ALTERNATIVES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(ALTERNATIVES)])
def test_correct_work_written_differently_passes(function, source):
    namespace = student(source)
    for kind in get_case(function).kinds:
        for seed in seeds(kind, many=10, few=2):
            result = judge(function, kind, namespace, seed)
            assert result.passed, (seed, kind, result.message)


# Planted mistakes: (student, function, {old: new} in the solution cells, catalogue id the feedback must name,
# the kinds that must fail, the kinds that may fail too). Replacements are exact text of solutions/optimizers.py,
# so a drift there shows up here.
PLANTED = [
    ("bug_a", "adam", {'step_size = config["lr"] / (1 - beta1**t)': 'step_size = config["lr"]',
                       'denom = np.sqrt(v) / np.sqrt(1 - beta2**t) + config["eps"]': 'denom = np.sqrt(v) + config["eps"]'},
     "adam_no_bias_correction", {"value", "state", "first_step", "tiny_gradient"}, set()),
    ("bug_a", "sgd_momentum", {
        'velocity = config["momentum"] * config["velocity"] + (1 - config["dampening"]) * grad':
            'velocity = config["momentum"] * config["velocity"] - config["lr"] * (1 - config["dampening"]) * grad',
        'velocity = grad.copy()': 'velocity = -config["lr"] * grad',
        'step = grad + config["momentum"] * velocity if config["nesterov"] else velocity\n    next_w = w - config["lr"] * step':
            'step = config["momentum"] * velocity - config["lr"] * grad if config["nesterov"] else velocity\n'
            '    next_w = w + step'},
     "momentum_flipped", {"value", "state"}, set()),
    ("bug_a", "adagrad", {'grad_sum = config["sum"] + grad**2': 'grad_sum = config["sum"] + grad'},
     "adagrad_not_squared", {"value", "state", "convergence"}, set()),
    ("bug_b", "adam", {'config.setdefault("t", 0)\n\n    beta1': 'config.setdefault("t", 1)\n\n    beta1',
                       'beta1, beta2 = config["betas"]\n    t = config["t"] + 1': 'beta1, beta2 = config["betas"]\n    t = config["t"]',
                       'config["v"] = v\n    config["t"] = t': 'config["v"] = v\n    config["t"] = t + 1'},
     "adam_t_off_by_one", {"state"}, set()),
    ("bug_b", "rmsprop", {'np.sqrt(square_avg) + config["eps"]': 'np.sqrt(square_avg + config["eps"])'},
     "eps_inside_root", {"tiny_gradient"}, {"value", "state"}),  # a large random eps exposes it there too
    ("bug_b", "minibatches", {'for start in range(0, X.shape[0], batch_size):':
                              'for start in range(0, X.shape[0] - batch_size + 1, batch_size):'},
     "minibatch_last_dropped", {"property"}, set()),
    ("bug_c", "sgd_momentum", {'    config["velocity"] = velocity\n': ''}, "state_not_written_back", {"value", "state"}, {"convergence"}),
    ("bug_c", "adam", {'denom = np.sqrt(v) / np.sqrt(1 - beta2**t) + config["eps"]':
                       'denom = np.sqrt(v / (1 - beta2**t) + config["eps"])'},
     "eps_inside_root", {"tiny_gradient"}, {"value", "state", "first_step"}),
    ("bug_c", "sgd", {'next_w = w - config["lr"] * grad\n    return': 'next_w = w + config["lr"] * grad\n    return'},
     "negated", {"value", "convergence"}, set()),
]


@pytest.mark.parametrize("name,function,replacements,mistake,failing,may_fail", PLANTED,
                         ids=[f"{p[0]}-{p[1]}-{p[3]}" for p in PLANTED])
def test_each_planted_mistake_fails_its_checks_and_is_named(name, function, replacements, mistake, failing, may_fail):
    namespace = student(replacements=replacements)
    for kind in get_case(function).kinds:
        for seed in seeds(kind, many=8, few=2):
            result = judge(function, kind, namespace, seed)
            if kind in failing:
                assert not result.passed, (kind, seed)
                if kind != "convergence":
                    assert mistake in result.mistakes, (kind, seed, result.message)
                    assert CATALOGUE[mistake] in result.message
            elif kind not in may_fail:
                assert result.passed, (kind, seed, result.message)


def _variant_student(function, run):
    """A namespace whose ``function`` replays a judge-side variant (per-step rule)."""
    namespace = student()
    namespace[function] = run
    return namespace


@pytest.mark.parametrize("function,rule,mistake", [
    ("sgd_momentum", cases.momentum_first_step_damped, "momentum_first_step_damped"),
    ("adam", cases.adam_variant(eps_form="before_correction"), "adam_eps_before_correction"),
    ("adam", cases.adam_variant(eps_form="inside_raw"), "eps_inside_root"),
    ("adam", cases.adam_variant(t_start=0), "adam_t_off_by_one"),
    ("adagrad", cases.adagrad_t_off_by_one(1), "adam_t_off_by_one"),
    ("rmsprop", cases.negated(cases.ref.rmsprop), "negated"),
])
def test_other_known_mistakes_are_named(function, rule, mistake):
    namespace = _variant_student(function, rule)
    named = set()
    for kind in ("value", "state", "tiny_gradient", "first_step"):
        if kind in get_case(function).kinds:
            for seed in range(6):
                result = judge(function, kind, namespace, seed)
                named.update(result.mistakes)
                assert result.passed or result.mistakes, (kind, seed, result.message)
    assert mistake in named


MUTATIONS = [
    ("sgd", "def sgd(w, dw, config=None):\n    config = config if config is not None else {}\n"
            "    config.setdefault('lr', 1e-3)\n    config.setdefault('weight_decay', 0.0)\n"
            "    return w - config['lr'] * (dw + config['weight_decay'] * w), config\n"),
    ("sgd", "def sgd(w, dw, config=None):\n    lr = (config or {}).get('lr', 1e-3)\n    w -= lr * dw\n    return w, dict(config or {})\n"),
    ("rmsprop", """
def rmsprop(w, dw, config=None):
    config = dict(config or {})
    lr, alpha, eps = config.get("lr", 1e-2), config.get("alpha", 0.99), config.get("eps", 1e-8)
    g = dw + config.get("weight_decay", 0.0) * w
    if "square_avg" not in config:
        config["square_avg"] = np.zeros_like(w)
    config["square_avg"] *= alpha
    config["square_avg"] += (1 - alpha) * g ** 2
    return w - lr * g / (np.sqrt(config["square_avg"]) + eps), config
"""),
    ("adam", """
def adam(w, dw, config=None):
    config = dict(config or {})
    lr, (b1, b2), eps = config.get("lr", 1e-3), config.get("betas", (0.9, 0.999)), config.get("eps", 1e-8)
    g = dw + config.get("weight_decay", 0.0) * w
    m, v = config.setdefault("m", np.zeros_like(w)), config.setdefault("v", np.zeros_like(w))
    t = config["t"] = config.get("t", 0) + 1
    m *= b1; m += (1 - b1) * g
    v *= b2; v += (1 - b2) * g ** 2
    return w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps), config
"""),
    ("minibatches", "def minibatches(X, y, batch_size, rng):\n    order = rng.permutation(len(X))\n    X[:] = X[order]\n"
                    "    y[:] = y[order]\n    for s in range(0, len(X), batch_size):\n        yield X[s:s + batch_size], y[s:s + batch_size]\n"),
]


@pytest.mark.parametrize("function,source", MUTATIONS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(MUTATIONS)])
def test_mutating_an_input_loses_the_no_mutation_point(function, source):
    namespace = student(source)
    for seed in range(6):
        result = judge(function, "no_mutation", namespace, seed)
        assert not result.passed and "mutation" in result.mistakes, (seed, result.message)


def test_minibatch_properties_are_each_enforced():
    broken = {
        "not a generator": "def minibatches(X, y, batch_size, rng):\n    order = rng.permutation(len(X))\n"
                           "    return [(X[order[s:s + batch_size]], y[order[s:s + batch_size]]) for s in range(0, len(X), batch_size)]\n",
        "not shuffled": "def minibatches(X, y, batch_size, rng):\n    for s in range(0, len(X), batch_size):\n"
                        "        yield X[s:s + batch_size], y[s:s + batch_size]\n",
        "not from rng": "def minibatches(X, y, batch_size, rng):\n    order = np.random.permutation(len(X))\n"
                        "    for s in range(0, len(X), batch_size):\n        yield X[order[s:s + batch_size]], y[order[s:s + batch_size]]\n",
        "unpaired": "def minibatches(X, y, batch_size, rng):\n    a, b = rng.permutation(len(X)), rng.permutation(len(X))\n"
                    "    for s in range(0, len(X), batch_size):\n        yield X[a[s:s + batch_size]], y[b[s:s + batch_size]]\n",
        "with replacement": "def minibatches(X, y, batch_size, rng):\n    order = rng.integers(0, len(X), size=len(X))\n"
                            "    for s in range(0, len(X), batch_size):\n        yield X[order[s:s + batch_size]], y[order[s:s + batch_size]]\n",
        "endless": "def minibatches(X, y, batch_size, rng):\n    while True:\n        order = rng.permutation(len(X))[:batch_size]\n"
                   "        yield X[order], y[order]\n",
    }
    expected = {"not a generator": "not return a generator", "not shuffled": "not shuffled", "not from rng": "equally seeded",
                "unpaired": "no longer paired", "with replacement": "never appeared", "endless": "does not stop"}
    for label, source in broken.items():
        for seed in range(4):
            result = judge("minibatches", "property", student(source), seed)
            assert not result.passed and expected[label] in result.message, (label, seed, result.message)


def test_blank_stubs_are_reported_as_not_implemented():
    stubs = "\n".join(f"def {name}(*args, **kwargs):\n    raise NotImplementedError()\n" for name in FUNCTIONS)
    namespace = student(stubs)
    for function in FUNCTIONS:
        for kind in get_case(function).kinds:
            result = judge(function, kind, namespace, 0)
            assert not result.passed and "not implemented yet" in result.message


def test_malformed_returns_are_judged_without_crashing():
    shapes = {
        "def sgd(w, dw, config=None):\n    return w - 1e-3 * dw\n": "expected a tuple",
        "def sgd(w, dw, config=None):\n    return (w - 1e-3 * dw).tolist(), {}\n": "numpy.ndarray",
        "def sgd(w, dw, config=None):\n    return (w - 1e-3 * dw).astype(np.float32), {}\n": "float64",
        "def sgd(w, dw, config=None):\n    return w - 1e-3 * dw, None\n": "expected a dict",
    }
    for source, phrase in shapes.items():
        result = judge("sgd", "value", student(source), 0)
        assert not result.passed and phrase in result.message, (source, result.message)
    missing = student("def adam(w, dw, config=None):\n    c = dict(config or {})\n    if 'mean' in c:\n        c['m'] = c.pop('mean')\n"
                      "    next_w, new = adam_ref(w, dw, c)\n    new['mean'] = new.pop('m')\n    return next_w, new\n")
    missing["adam_ref"] = student()["adam"]
    result = judge("adam", "state", missing, 0)
    assert not result.passed and "has no 'm'" in result.message


def test_lr_schedule_and_non_default_hyper_parameters_are_exercised():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        trials = [p.inputs for p in get_case("sgd_momentum").build("value", rng).probes]
        assert trials[0]["config"] is None and trials[0]["lrs"] is None
        assert trials[1]["config"]["dampening"] > 0 and not trials[1]["config"]["nesterov"]
        assert trials[2]["config"]["nesterov"] and trials[2]["lrs"] is not None and len(set(trials[2]["lrs"])) > 1
        assert all(5 <= len(t["grads"]) <= 8 for t in trials)
        state = [p.inputs for p in get_case("adam").build("state", np.random.default_rng(seed)).probes]
        assert state[1]["config"]["t"] >= 3 and state[1]["config"]["m"].shape == state[1]["w"].shape
        tiny = [p.inputs for p in get_case("rmsprop").build("tiny_gradient", np.random.default_rng(seed)).probes]
        assert all(np.max(np.abs(g)) < 1e-5 for t in tiny for g in t["grads"])


def test_inputs_come_from_the_seed_alone():
    for function in FUNCTIONS:
        for kind in get_case(function).kinds:
            first, second = (get_case(function).build(kind, np.random.default_rng(3)).probes for _ in range(2))
            for a, b in zip(first, second):
                assert a.code == b.code and repr(a.inputs) == repr(b.inputs)


def test_every_named_mistake_is_catalogued():
    for function in RULES:
        assert set(cases.variant_runs(function)) <= set(CATALOGUE)
    assert {"adagrad_not_squared", "minibatch_last_dropped", "adam_eps_before_correction",
            "momentum_first_step_damped"} <= set(CATALOGUE)


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
            assert re.match(r"^(setup|selfcheck-|experiment-|given-)", meta["grade_id"]), meta["grade_id"]
    for function in FUNCTIONS:
        at = ids.index(function)
        solution, selfcheck, grade = nb.cells[at:at + 3]
        assert _nbgrader(solution).get("solution") and solution.metadata["backprop_lab"] == {"reference": f"optimizers.{function}"}
        assert selfcheck.id == f"selfcheck-{function}" and _nbgrader(selfcheck).get("locked")
        meta = _nbgrader(grade)
        assert grade.id == f"test_{function}" and meta.get("grade") and meta.get("locked") and not meta.get("solution")
        spec = parse_spec(grade.source)
        assert spec.function == function and list(spec.points) == list(get_case(function).kinds)
        assert meta["points"] == sum(spec.points.values())
        assert grade.source.startswith(f"# Hidden checks of {function} run when the notebook is autograded.\n### BEGIN HIDDEN TESTS\n")
    explorer = nb.cells[ids.index("experiment-lr-explorer")].source
    for widget in ("FloatLogSlider", "Dropdown", "IntSlider", "interactive_output", "def draw_explorer"):
        assert widget in explorer


def test_generated_cells_and_labcheck_are_in_sync():
    with tempfile.TemporaryDirectory() as view:  # this assignment alone: others may be mid-edit
        os.makedirs(os.path.join(view, "source"))
        os.symlink(SOURCE.parent, os.path.join(view, "source", ASSIGNMENT))
        assert sync(view, check=True) == [], "run grader.authoring.sync"


# ---- a real kernel and the real nbgrader pipeline ------------------------------------------------------

# Times every explorer redraw three times: the best of three is the redraw's cost, the worst shows what a busy
# machine added. CPU time is reported too (what the kernel itself spent).
EXPLORER_PROBE = """\
import time as _time


def _timed(action):
    wall, cpu = [], []
    for _ in range(3):
        started, started_cpu = _time.perf_counter(), _time.process_time()
        action()
        wall.append(_time.perf_counter() - started)
        cpu.append(_time.process_time() - started_cpu)
    return min(wall), max(wall), min(cpu)


_results = [_timed(lambda: draw_explorer(*_setting)) for _setting in [
    ("sgd", 0.01, 150, "ill-conditioned quadratic"), ("sgd", 0.05, 150, "ill-conditioned quadratic"),
    ("adam", 0.05, 1000, "Rosenbrock"), ("rmsprop", 0.3, 1000, "Rosenbrock")]]
_values = iter([0.05, 0.02, 0.3])
_results.append(_timed(lambda: setattr(lr_slider, "value", next(_values))))  # moving the slider redraws the widget
print("REDRAW SECONDS best %.4f worst %.4f cpu %.4f" % tuple(max(r[k] for r in _results) for k in range(3)))
"""


def _execute(nb, cwd, allow_errors=False):
    started = time.monotonic()
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=allow_errors,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return time.monotonic() - started


def _cell_seconds(cells):
    """Wall time from the first cell's start to the last cell's end, from nbclient's timing metadata (no kernel start)."""
    stamps = [cell.metadata.get("execution", {}) for cell in cells if cell.cell_type == "code"]
    parse = lambda text: time.mktime(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + text[19:-1])  # noqa: E731
    return parse(stamps[-1]["iopub.status.idle"]) - parse(stamps[0]["iopub.execute_input"])


def _errors(nb):
    return [(cell.id, out.ename) for cell in nb.cells if cell.cell_type == "code"
            for out in cell.outputs if out.output_type == "error"]


def _images(cell):
    return [out["data"]["image/png"] for out in cell.outputs if "image/png" in out.get("data", {})]


def _widget_images(nb):
    """PNGs held by Output widgets in the saved widget state."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    return [out["data"]["image/png"] for model in state.values() if model.get("model_name") == "OutputModel"
            for out in model.get("state", {}).get("outputs", []) if "image/png" in out.get("data", {})]


@pytest.mark.slow
def test_source_notebook_executes_quickly_and_the_explorer_redraws_in_under_half_a_second():
    nb = nbformat.read(SOURCE, as_version=4)
    count = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(EXPLORER_PROBE))
    total = _execute(nb, SOURCE.parent)
    assert _errors(nb) == []
    seconds = _cell_seconds(nb.cells[:count])
    print(f"source notebook: cells {seconds:.1f} s, with kernel start {total:.1f} s")
    assert seconds < 30, f"the source notebook's cells took {seconds:.1f} s"
    code = [cell for cell in nb.cells[:count] if cell.cell_type == "code"]
    printed = "".join(out.get("text", "") for cell in code for out in cell.outputs if out.output_type == "stream")
    assert "✗" not in printed and printed.count("✓") >= 25
    figures = [cell.id for cell in code for out in cell.outputs if "image/png" in out.get("data", {})]
    assert len(figures) >= 6, figures  # and the explorer draws into its widget
    probe = nb.cells[-1]
    report = re.search(r"REDRAW SECONDS best ([0-9.]+) worst ([0-9.]+) cpu ([0-9.]+)",
                       "".join(o.get("text", "") for o in probe.outputs))
    best, worst, cpu = (float(report.group(k)) for k in (1, 2, 3))
    print(f"explorer redraw: {best:.3f} s (slowest setting, best of 3), {worst:.3f} s worst single, {cpu:.3f} s CPU")
    assert best < 0.5, f"an explorer redraw took {best:.2f} s"
    frames = _images(probe)
    assert len(frames) == 12 and len(set(frames)) == 4, "every setting draws its own picture, the same one each time"
    explorer = nb.cells[[cell.id for cell in nb.cells].index("experiment-lr-explorer")]
    assert any("application/vnd.jupyter.widget-view+json" in out.get("data", {}) for out in explorer.outputs)
    # the widget keeps its latest picture: after the slider moved it is no longer the one of the starting setting
    # (sgd, lr 0.01, 150 steps on the quadratic, which is also the probe's first frame)
    widget_frames = _widget_images(nb)
    assert len(widget_frames) == 1 and widget_frames[0] != frames[0], "moving the slider redraws the widget's image"


# (student, {old: new}) for the pipeline, from PLANTED: students bug_a, bug_b, bug_c each carry mistakes in
# different functions, so one autograde run covers them all.
def _replacements(name):
    merged = {}
    for who, _, replacements, _, _, _ in PLANTED:
        if who == name:
            merged.update(replacements)
    return merged


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = pipeline.make_course(tmp_path_factory.mktemp("optimizers"), [ASSIGNMENT])
    pipeline.nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    pipeline.submit_reference(course, "reference", ASSIGNMENT)
    pipeline.submit_release(course, "blank", ASSIGNMENT)
    for name in ("bug_a", "bug_b", "bug_c"):
        pipeline.submit_reference(course, name, ASSIGNMENT, {NOTEBOOK: _replacements(name)})
    started = time.monotonic()
    pipeline.nbgrader(course, "autograde", ASSIGNMENT)
    seconds = time.monotonic() - started
    print(f"autograde of 5 submissions: {seconds:.1f} s")
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
    assert len(solution_lines) >= 40
    released = {line.strip() for cell in release.cells for line in cell.source.splitlines()}
    assert not solution_lines & released, solution_lines & released
    text = "\n".join(cell.source for cell in release.cells)
    assert "BEGIN HIDDEN TESTS" not in text and "judge(" not in text and "BEGIN SOLUTION" not in text
    assert text.count("raise NotImplementedError()") == len(FUNCTIONS)
    for name in ("__init__.py", "checks.py", "diagnostics.py"):
        assert (course / "release" / ASSIGNMENT / "labcheck" / name).is_file()


@pytest.mark.slow
def test_release_executes_with_only_not_implemented_errors_and_the_explorer_says_so(graded):
    folder = graded["course"] / "release" / ASSIGNMENT
    nb = pipeline.release_notebook(graded["course"], ASSIGNMENT, NOTEBOOK)
    nb.cells.append(nbformat.v4.new_code_cell('draw_explorer("adam", 0.01, 100, "Rosenbrock")'))
    _execute(nb, folder, allow_errors=True)
    errors = _errors(nb)
    assert errors and {ename for _, ename in errors} == {"NotImplementedError"}, errors
    assert {cell_id for cell_id, _ in errors} >= {f"selfcheck-{f}" for f in FUNCTIONS}
    note = nb.cells[-1]
    assert not _images(note) and all(out.output_type == "stream" for out in note.outputs)
    assert "adam is not implemented yet" in "".join(out.text for out in note.outputs)
    explorer = nb.cells[[cell.id for cell in nb.cells].index("experiment-lr-explorer")]
    assert not [out for out in explorer.outputs if out.output_type == "error"]


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
@pytest.mark.parametrize("name,function,replacements,mistake,failing,may_fail", PLANTED,
                         ids=[f"{p[0]}-{p[1]}-{p[3]}" for p in PLANTED])
def test_each_planted_mistake_costs_points_only_on_its_function_and_is_named(graded, name, function, replacements,
                                                                            mistake, failing, may_fail):
    scores = _scores(graded, name)
    broken = {f"test_{f}" for who, f, _, _, _, _ in PLANTED if who == name}
    assert scores[f"test_{function}"] < graded["full"][f"test_{function}"]
    for grade_id, score in scores.items():
        if grade_id not in broken:
            assert score == graded["full"][grade_id], (grade_id, score)
    message = pipeline.judge_messages(graded["course"], ASSIGNMENT, name, NOTEBOOK)[f"test_{function}"]
    assert CATALOGUE[mistake] in message, message
    feedback = html.unescape(pipeline.feedback_html(graded["course"], ASSIGNMENT, name, NOTEBOOK))
    assert CATALOGUE[mistake] in feedback
    assert "judge(" not in feedback and "BEGIN HIDDEN TESTS" not in feedback
