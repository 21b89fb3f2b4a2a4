"""Assignment 05-vanishing-gradients: its hidden checks, its notebook, its release and the real pipeline.

The fast tests run the hidden checks of ``grader/cases/vanishing_gradients.py`` in this process:
each probe's code runs as the sandbox runs it (a function body over a namespace holding the
"student's" functions, with its inputs and its result passed through the codec), then the check's
``evaluate`` judges the outcomes. The slow tests drive a real kernel and the stock nbgrader CLI.
"""
import base64
import copy
import html
import tempfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from grader.authoring import reference_source, sync
from grader.cases import get_case
from grader.cases.vanishing_gradients import SAMPLE_SIZE
from grader.diagnostics import CATALOGUE
from tests import pipeline
from tests.inprocess import judge, namespace, run_probe

ASSIGNMENT, NOTEBOOK = "05-vanishing-gradients", "vanishing_gradients.ipynb"
SOURCE = pipeline.COURSE / "source" / ASSIGNMENT / NOTEBOOK
FUNCTIONS = ("xavier_init", "he_init", "layer_gradient_norms", "clip_by_value", "clip_by_global_norm",
             "leaky_relu_forward", "leaky_relu_backward", "residual_forward", "residual_backward")
GIVEN = [f"forward_pass.{name}" for name in ("affine_forward", "sigmoid_forward", "tanh_forward", "relu_forward",
                                             "softmax", "softmax_cross_entropy", "mlp_forward")] + \
        [f"backward_pass.{name}" for name in ("affine_backward", "sigmoid_backward", "tanh_backward", "relu_backward",
                                              "softmax_cross_entropy_backward", "mlp_backward")]
REFERENCE = "\n\n".join([reference_source(name) for name in GIVEN] +
                        [reference_source(f"vanishing_gradients.{name}") for name in FUNCTIONS])
SEEDS = range(30)
POINTS = {"xavier_init": {"statistics": 2, "uses_rng": 1}, "he_init": {"statistics": 2, "uses_rng": 1},
          "layer_gradient_norms": {"value": 3, "no_mutation": 1}, "clip_by_value": {"value": 2, "no_mutation": 1},
          "clip_by_global_norm": {"value": 3, "no_mutation": 1}, "leaky_relu_forward": {"value": 1, "no_mutation": 1},
          "leaky_relu_backward": {"gradient": 2, "no_mutation": 1}, "residual_forward": {"value": 1, "no_mutation": 1},
          "residual_backward": {"gradient": 3, "no_mutation": 1}}


# ---- running a probe as the sandbox does -------------------------------------------------------


def student(*sources):
    """A kernel namespace: the given code and the reference solutions, then each source (a student's cell)."""
    return namespace(REFERENCE, *sources)


# ---- the hidden checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("function", FUNCTIONS)
def test_reference_passes_every_check_on_every_seed(function):
    case = get_case(function)
    assert set(case.kinds) == set(POINTS[function])
    namespace = student()
    for seed in SEEDS:
        for kind in case.kinds:
            result = judge(function, kind, namespace, seed)
            assert result.passed, (seed, kind, result.message)


# Correct work written differently: other draws with the same law, loops, einsum, other formulas.
ALTERNATIVES = [
    ("xavier_init", "def xavier_init(fan_in, fan_out, rng):\n"
                    "    return rng.standard_normal((fan_in, fan_out)) * (2 / (fan_in + fan_out)) ** 0.5\n"),
    ("xavier_init", """
def xavier_init(fan_in, fan_out, rng):
    limit = np.sqrt(6.0 / (fan_in + fan_out))   # Glorot uniform: the same standard deviation
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))
"""),
    ("he_init", "def he_init(fan_in, fan_out, rng):\n"
                "    return np.sqrt(2 / fan_in) * rng.normal(size=(fan_out, fan_in)).T.copy()\n"),
    ("layer_gradient_norms", """
def layer_gradient_norms(X, y, params, activation):
    L = len(params) // 2
    hs, zs = [X], []
    for l in range(1, L):
        z = hs[-1] @ params[f"W{l}"] + params[f"b{l}"]
        zs.append(z)
        if activation == "sigmoid":
            hs.append(1 / (1 + np.exp(-z)))
        elif activation == "tanh":
            hs.append(np.tanh(z))
        elif activation == "relu":
            hs.append(np.maximum(z, 0))
        else:
            hs.append(np.where(z > 0, z, 0.01 * z))
    scores = hs[-1] @ params[f"W{L}"] + params[f"b{L}"]
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    dh = p / len(y) @ params[f"W{L}"].T
    norms = [0.0] * (L - 1)
    for l in range(L - 1, 0, -1):
        norms[l - 1] = float(np.sqrt(np.sum(dh ** 2)))
        z, h = zs[l - 1], hs[l]
        slope = {"sigmoid": h * (1 - h), "tanh": 1 - h ** 2, "relu": (z > 0) * 1.0,
                 "leaky_relu": np.where(z > 0, 1.0, 0.01)}[activation]
        dh = (dh * slope) @ params[f"W{l}"].T
    return norms
"""),
    ("layer_gradient_norms", """
def layer_gradient_norms(X, y, params, activation):
    forward = {"sigmoid": sigmoid_forward, "tanh": tanh_forward, "relu": relu_forward}
    backward = {"sigmoid": sigmoid_backward, "tanh": tanh_backward, "relu": relu_backward}
    L = len(params) // 2
    h, caches = X, []
    for l in range(1, L):
        z, affine_cache = affine_forward(h, params[f"W{l}"], params[f"b{l}"])
        if activation == "leaky_relu":
            h, act_cache = leaky_relu_forward(z)
        else:
            h, act_cache = forward[activation](z)
        caches.append((affine_cache, act_cache))
    scores, cache = affine_forward(h, params[f"W{L}"], params[f"b{L}"])
    dh = affine_backward(softmax_cross_entropy_backward(scores, y), cache)[0]
    norms = np.zeros(L - 1)
    for l in reversed(range(L - 1)):
        norms[l] = np.linalg.norm(dh)
        affine_cache, act_cache = caches[l]
        dz = leaky_relu_backward(dh, act_cache) if activation == "leaky_relu" else backward[activation](dh, act_cache)
        dh = affine_backward(dz, affine_cache)[0]
    return tuple(norms)
"""),
    ("clip_by_value", """
def clip_by_value(grads, clip_value):
    clipped = {}
    for name, grad in grads.items():
        grad = grad.copy()
        grad[grad > clip_value] = clip_value
        grad[grad < -clip_value] = -clip_value
        clipped[name] = grad
    return clipped
"""),
    ("clip_by_global_norm", """
def clip_by_global_norm(grads, max_norm):
    total_norm = np.sqrt(sum(np.sum(grad ** 2) for grad in grads.values()))
    if total_norm > max_norm:
        return {name: grad * (max_norm / total_norm) for name, grad in grads.items()}, total_norm
    return {name: grad.copy() for name, grad in grads.items()}, total_norm
"""),
    ("clip_by_global_norm", """
def clip_by_global_norm(grads, max_norm):
    flat = np.concatenate([grad.ravel() for grad in grads.values()])
    total_norm = float(np.linalg.norm(flat))
    scale = min(1.0, max_norm / (total_norm + 1e-6))
    return {name: scale * grad for name, grad in grads.items()}, total_norm
"""),
    ("leaky_relu_forward", "def leaky_relu_forward(z, alpha=0.01):\n    return np.maximum(z, alpha * z), (z, alpha)\n"),
    ("leaky_relu_backward", """
def leaky_relu_backward(dout, cache):
    z, alpha = cache
    dz = dout.copy()
    dz[z <= 0] *= alpha
    return dz
"""),
    ("residual_forward", "def residual_forward(x, W, b):\n"
                         "    z = np.einsum('nd,dm->nm', x, W) + b\n    return x + z * (z > 0), (x, W, b, z)\n"),
    ("residual_backward", """
def residual_backward(dout, cache):
    x, W, b, z = cache
    dz = np.where(z > 0, dout, 0.0)
    return dout + np.einsum('nm,dm->nd', dz, W), np.einsum('nd,nm->dm', x, dz), np.einsum('nm->m', dz)
"""),
]


@pytest.mark.parametrize("function,source", ALTERNATIVES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(ALTERNATIVES)])
def test_correct_work_written_differently_passes(function, source):
    namespace = student(source)
    for seed in range(10):
        for kind in get_case(function).kinds:
            result = judge(function, kind, namespace, seed)
            assert result.passed, (seed, kind, result.message)


# Known mistakes: each must fail the named check kind and be named in the message.
MISTAKES = [
    ("he_init", "statistics", "he_missing_two",
     "def he_init(fan_in, fan_out, rng):\n    return rng.normal(0.0, np.sqrt(1.0 / fan_in), (fan_in, fan_out))\n"),
    ("xavier_init", "statistics", "xavier_fan_in_only",
     "def xavier_init(fan_in, fan_out, rng):\n    return rng.normal(0.0, np.sqrt(1.0 / fan_in), (fan_in, fan_out))\n"),
    ("xavier_init", "statistics", "xavier_fan_in_only",
     "def xavier_init(fan_in, fan_out, rng):\n    return rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out))\n"),
    ("xavier_init", "statistics", "transposed",
     "def xavier_init(fan_in, fan_out, rng):\n"
     "    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), (fan_out, fan_in))\n"),
    ("xavier_init", "uses_rng", "init_ignores_rng",
     "def xavier_init(fan_in, fan_out, rng):\n"
     "    return np.random.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), (fan_in, fan_out))\n"),
    ("he_init", "uses_rng", "init_ignores_rng",
     "def he_init(fan_in, fan_out, rng):\n"
     "    return np.random.default_rng(0).normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out))\n"),
    ("layer_gradient_norms", "value", "norms_reversed",
     "_reference_norms = layer_gradient_norms\n"
     "def layer_gradient_norms(X, y, params, activation):\n"
     "    return _reference_norms(X, y, params, activation)[::-1]\n"),
    ("clip_by_global_norm", "value", "clip_per_parameter", """
def clip_by_global_norm(grads, max_norm):
    total_norm = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
    return {k: g * min(1.0, max_norm / (np.linalg.norm(g) + 1e-6)) for k, g in grads.items()}, total_norm
"""),
    ("clip_by_global_norm", "value", "clip_per_element", """
def clip_by_global_norm(grads, max_norm):
    total_norm = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
    return {k: np.clip(g, -max_norm, max_norm) for k, g in grads.items()}, total_norm
"""),
    ("clip_by_global_norm", "no_mutation", "mutation", """
def clip_by_global_norm(grads, max_norm):
    total_norm = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
    for g in grads.values():
        g *= min(1.0, max_norm / (total_norm + 1e-6))
    return dict(grads), total_norm
"""),
    ("clip_by_value", "no_mutation", "mutation", """
def clip_by_value(grads, clip_value):
    for g in grads.values():
        np.clip(g, -clip_value, clip_value, out=g)
    return grads
"""),
    ("leaky_relu_forward", "value", "leaky_slope_flipped",
     "def leaky_relu_forward(z, alpha=0.01):\n    return np.where(z > 0, alpha * z, z), (z, alpha)\n"),
    ("leaky_relu_backward", "gradient", "leaky_slope_flipped",
     "def leaky_relu_backward(dout, cache):\n    z, alpha = cache\n    return np.where(z > 0, alpha * dout, dout)\n"),
    ("leaky_relu_backward", "no_mutation", "mutation",
     "def leaky_relu_backward(dout, cache):\n    z, alpha = cache\n    dout[z <= 0] *= alpha\n    return dout\n"),
    ("residual_forward", "value", "residual_identity_missing",
     "def residual_forward(x, W, b):\n    z = x @ W + b\n    return np.maximum(z, 0), (x, W, b, z)\n"),
    ("residual_backward", "gradient", "residual_identity_missing", """
def residual_backward(dout, cache):
    x, W, b, z = cache
    dz = dout * (z > 0)
    return dz @ W.T, x.T @ dz, dz.sum(axis=0)
"""),
    ("residual_backward", "gradient", "relu_mask_flipped", """
def residual_backward(dout, cache):
    x, W, b, z = cache
    dz = dout * (z < 0)
    return dout + dz @ W.T, x.T @ dz, dz.sum(axis=0)
"""),
    ("residual_backward", "gradient", "transposed", """
def residual_backward(dout, cache):
    x, W, b, z = cache
    dz = dout * (z > 0)
    return dout + dz @ W.T, dz.T @ x, dz.sum(axis=0)
"""),
    ("residual_backward", "gradient", "bias_not_summed", """
def residual_backward(dout, cache):
    x, W, b, z = cache
    dz = dout * (z > 0)
    return dout + dz @ W.T, x.T @ dz, dz
"""),
]


@pytest.mark.parametrize("function,kind,mistake,source", MISTAKES,
                         ids=[f"{f}-{m}-{i}" for i, (f, _, m, _) in enumerate(MISTAKES)])
def test_each_known_mistake_fails_its_check_and_is_named(function, kind, mistake, source):
    namespace = student(source)
    for seed in range(10):
        result = judge(function, kind, namespace, seed)
        assert not result.passed, seed
        assert mistake in result.mistakes, (seed, result.message)
        assert CATALOGUE[mistake] in result.message or mistake == "transposed"


def test_a_mistake_costs_only_its_own_check():
    namespace = student(MISTAKES[9][3])   # clip_by_global_norm that scales grads in place: right values
    for seed in range(5):
        assert judge("clip_by_global_norm", "value", namespace, seed).passed
    namespace = student(MISTAKES[7][3])   # clipped per parameter: wrong values, grads left alone
    for seed in range(5):
        assert judge("clip_by_global_norm", "no_mutation", namespace, seed).passed


def test_every_value_check_covers_leaky_relu_networks_of_two_to_six_hidden_layers():
    depths = set()
    for seed in range(30):
        probes = get_case("layer_gradient_norms").build("value", np.random.default_rng(seed)).probes
        assert sorted(p.inputs["args"][3] for p in probes) == ["leaky_relu", "relu", "sigmoid", "tanh"]
        depths |= {len(p.inputs["args"][2]) // 2 - 1 for p in probes}
    assert depths == {2, 3, 4, 5, 6}


@pytest.mark.parametrize("returned,expected", [
    ("np.array(norms, dtype=np.float32)", "dtype float32"),
    ("norms[:-1]", "one per hidden layer"),
    ("[np.float32(n) for n in norms]", "expected a float"),
    ("{'norms': norms}", "expected a list of floats"),
])
def test_gradient_norms_must_be_a_list_of_floats_of_the_right_length(returned, expected):
    namespace = student("_reference_norms = layer_gradient_norms\n"
                        "def layer_gradient_norms(X, y, params, activation):\n"
                        "    norms = _reference_norms(X, y, params, activation)\n"
                        f"    return {returned}\n")
    result = judge("layer_gradient_norms", "value", namespace, 0)
    assert not result.passed and expected in result.message, result.message
    assert not judge("layer_gradient_norms", "no_mutation", namespace, 0).passed


def test_clipping_without_anything_to_clip_is_judged():
    for seed in range(10):
        check = get_case("clip_by_global_norm").build("value", np.random.default_rng(seed))
        below = [p for p in check.probes
                 if np.sqrt(sum(np.sum(g * g) for g in p.inputs["grads"].values())) < p.inputs["max_norm"]]
        assert len(below) == 1
    always_clips = student("""
def clip_by_global_norm(grads, max_norm):
    total_norm = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
    return {k: g * max_norm / total_norm for k, g in grads.items()}, total_norm
""")
    assert not any(judge("clip_by_global_norm", "value", always_clips, seed).passed for seed in range(5))


def test_initialisers_send_back_a_sample_never_the_whole_matrix():
    for function in ("xavier_init", "he_init"):
        for seed in range(10):
            check = get_case(function).build("statistics", np.random.default_rng(seed))
            for probe in check.probes:
                fan_in, fan_out = probe.inputs["fan_in"], probe.inputs["fan_out"]
                ratio = fan_out / fan_in
                assert 200 <= fan_in <= 500 and (0.29 <= ratio <= 0.61 or 1.59 <= ratio <= 3.01)
                index = probe.inputs["index"]
                assert index.size == min(SAMPLE_SIZE, fan_in * fan_out) == np.unique(index).size
                outcome = run_probe(probe, student())
                assert set(outcome.value) == {"type", "shape", "dtype", "sample"}
                assert outcome.value["sample"].shape == index.shape


def test_blank_stubs_are_reported_as_not_implemented():
    stubs = "\n".join(f"def {name}(*args, **kwargs):\n    raise NotImplementedError()\n" for name in FUNCTIONS)
    namespace = student(stubs)
    for function in FUNCTIONS:
        for kind in get_case(function).kinds:
            result = judge(function, kind, namespace, 0)
            assert not result.passed and "not implemented yet" in result.message


def test_inputs_come_from_the_seed_alone():
    for function in FUNCTIONS:
        for kind in get_case(function).kinds:
            first, second = (get_case(function).build(kind, np.random.default_rng(7)).probes for _ in range(2))
            for a, b in zip(first, second):
                assert a.code == b.code
                assert repr(a.inputs) == repr(b.inputs)


def test_backward_inputs_are_away_from_the_kink_and_non_square():
    for seed in range(20):
        for function in ("leaky_relu_backward", "residual_backward"):
            for probe in get_case(function).build("gradient", np.random.default_rng(seed)).probes:
                dout, cache = probe.inputs["args"]
                z = cache[0] if function == "leaky_relu_backward" else cache[3]
                assert np.min(np.abs(z)) >= 0.05 and dout.shape[0] != dout.shape[1]


def test_every_named_mistake_is_catalogued():
    ids = {mistake for _, _, mistake, _ in MISTAKES}
    assert ids <= set(CATALOGUE)
    rng = np.random.default_rng(0)
    from grader.cases import vanishing_gradients as cases
    produced = set(cases._residual_backward_variants(**cases.residual_backward_inputs(rng)))
    produced |= set(cases._residual_forward_variants(**cases.residual_inputs(rng)))
    produced |= set(cases._clip_norm_variants(**cases.clip_norm_inputs(rng)))
    assert produced <= set(CATALOGUE)


# ---- the notebook, its release and the pipeline --------------------------------------------------

def _execute(nb, folder, extra_cells=()):
    """Run ``nb`` and then ``extra_cells`` in one kernel; returns it with the kernel's CPU seconds for ``nb``.

    CPU time, not wall time: the machine is shared, and waiting for a core is not the notebook's cost.
    """
    nb = copy.deepcopy(nb)
    cpu_cell = "import resource as __r\n__u = __r.getrusage(__r.RUSAGE_SELF)\nprint(__u.ru_utime + __u.ru_stime)"
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in (cpu_cell, *extra_cells))
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(folder)}})
    client.execute()
    cpu = nb.cells.pop(len(nb.cells) - len(extra_cells) - 1)
    return nb, float(_stdout(cpu))


def _errors(cell):
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def _stdout(cell):
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _pngs(cell):
    return [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]


EXPLORER_PROBE = """\
for settings in [(10, "tanh", "xavier"), (24, "relu", "he"), (10, "tanh", "xavier")]:
    show_gradient_norms(*settings)
print(type(plot_gradient_norms(6, "leaky_relu", "small-normal")).__name__)
"""


def test_notebook_structure_and_generated_cells_are_in_sync():
    with tempfile.TemporaryDirectory() as root:   # this assignment only: the others have their own tests
        (Path(root) / "source").mkdir()
        (Path(root) / "source" / ASSIGNMENT).symlink_to(SOURCE.parent)
        assert sync(root, check=True) == []
    nb = nbformat.read(SOURCE, as_version=4)
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    ids = [cell.id for cell in nb.cells]
    assert len(set(ids)) == len(ids)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")
    grade_ids = [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in nb.cells]
    assert grade_ids[[i for i, c in enumerate(nb.cells) if c.cell_type == "code"][0]] == "setup"
    for function in FUNCTIONS:
        position = grade_ids.index(function)
        assert grade_ids[position + 1:position + 3] == [f"selfcheck-{function}", f"test_{function}"]
        cell = nb.cells[position + 2]
        assert cell.metadata.nbgrader["points"] == sum(POINTS[function].values())
        spec = ", ".join(f"{kind}={value}" for kind, value in POINTS[function].items())
        assert f'judge("{function}", {spec})' in cell.source
        assert nb.cells[position].metadata.backprop_lab == {"reference": f"vanishing_gradients.{function}"}
    assert "experiment-depth-explorer" in grade_ids


@pytest.mark.slow
def test_source_notebook_runs_top_to_bottom_and_the_explorer_redraws():
    nb = nbformat.read(SOURCE, as_version=4)
    executed, cpu_seconds = _execute(nb, SOURCE.parent, [EXPLORER_PROBE])
    for cell in executed.cells:
        assert not _errors(cell), (cell.id, _errors(cell))
    assert cpu_seconds < 30, cpu_seconds
    by_id = {cell.id: cell for cell in executed.cells}
    for function in FUNCTIONS:
        assert "✓" in _stdout(by_id[f"selfcheck-{function}"])
    for cell_id in ("experiment-derivative-products", "experiment-gradient-norms", "experiment-dead-relus",
                    "experiment-leaky-revival", "experiment-input-scale", "experiment-residual-depth",
                    "experiment-clipping-arrows"):
        assert _pngs(by_id[cell_id]), cell_id
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for o in by_id["experiment-depth-explorer"].outputs)
    first, second, again = (base64.b64decode(png) for png in _pngs(executed.cells[-1]))
    assert first.startswith(b"\x89PNG") and first != second and first == again
    assert _stdout(executed.cells[-1]).strip() == "Figure"


@pytest.fixture(scope="module")
def course():
    with tempfile.TemporaryDirectory() as root:
        course = pipeline.make_course(root, [ASSIGNMENT])
        pipeline.nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
        yield course


@pytest.mark.slow
def test_release_has_no_solution_and_runs_with_only_not_implemented_errors(course):
    source = pipeline.source_notebook(course, ASSIGNMENT, NOTEBOOK)
    release = pipeline.release_notebook(course, ASSIGNMENT, NOTEBOOK)
    released_text = "\n".join(cell.source for cell in release.cells)
    released_lines = {line.strip() for cell in release.cells if cell.cell_type == "code" for line in cell.source.splitlines()}
    # A line may legitimately appear elsewhere too (relu_backward's `dz = dout * (z > 0)` is given code).
    elsewhere = {line.strip() for cell in source.cells if not cell.metadata.get("nbgrader", {}).get("solution")
                 for line in cell.source.splitlines()}
    solution_lines = set()
    for cell in source.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            for body in cell.source.split("### BEGIN SOLUTION")[1:]:
                solution_lines |= {line.strip() for line in body.split("### END SOLUTION")[0].splitlines()}
    solution_lines = {line for line in solution_lines if len(line) > 3 and not line.startswith("#")}
    assert len(solution_lines) > 40
    leaked = (solution_lines - elsewhere) & released_lines
    assert not leaked, leaked
    assert "BEGIN HIDDEN TESTS" not in released_text and "judge(" not in released_text
    assert (course / "release" / ASSIGNMENT / "labcheck" / "diagnostics.py").exists()

    executed, _ = _execute(release, course / "release" / ASSIGNMENT, [EXPLORER_PROBE.replace("print(type", "(type")])
    errors = [(cell.id, o["ename"]) for cell in executed.cells for o in _errors(cell)]
    assert errors and {name for _, name in errors} == {"NotImplementedError"}, errors
    by_id = {cell.id: cell for cell in executed.cells}
    assert not _errors(by_id["experiment-depth-explorer"])
    note = _stdout(executed.cells[-1])
    assert "Nothing to draw yet: xavier_init is not implemented" in note
    assert "Nothing to draw yet: layer_gradient_norms is not implemented" in note
    assert not _errors(executed.cells[-1]) and not _pngs(executed.cells[-1])


CLIP = "clipped = {name: grad * scale for name, grad in grads.items()}"
# Planted mistakes in independent functions share a student; the expected cell scores follow.
PLANTED = {
    "mistakes-a": {
        "std = np.sqrt(2.0 / fan_in)": "std = np.sqrt(1.0 / fan_in)",
        "dx = dout + dz @ W.T": "dx = dz @ W.T",
        "return norms[::-1]": "return norms",
        CLIP: "clipped = {name: grad * min(1.0, max_norm / (np.linalg.norm(grad) + 1e-6)) "
              "for name, grad in grads.items()}",
    },
    "mistakes-b": {
        "std = np.sqrt(2.0 / (fan_in + fan_out))": "std = np.sqrt(1.0 / fan_in)",
        "dz = np.where(z > 0, dout, alpha * dout)": "dz = np.where(z > 0, alpha * dout, dout)",
        CLIP: "for grad in grads.values():\n        grad *= scale\n    clipped = dict(grads)",
    },
}
EXPECTED_LOSSES = {   # student -> {grade cell: (score, catalogue id named in the message)}
    # A wrong value costs the cell's property checks too (they pay only with a right value).
    "mistakes-a": {"test_he_init": (0, "he_missing_two"), "test_residual_backward": (0, "residual_identity_missing"),
                   "test_layer_gradient_norms": (0, "norms_reversed"), "test_clip_by_global_norm": (0, "clip_per_parameter")},
    "mistakes-b": {"test_xavier_init": (0, "xavier_fan_in_only"), "test_leaky_relu_backward": (0, "leaky_slope_flipped"),
                   "test_clip_by_global_norm": (3, "mutation"),
                   # layer_gradient_norms calls the student's Leaky ReLU: its failure points at the broken piece.
                   "test_layer_gradient_norms": (0, "uses leaky_relu_backward, which failed its own checks")},
}


@pytest.mark.slow
def test_pipeline_scores_reference_release_and_planted_mistakes(course):
    pipeline.submit_reference(course, "reference", ASSIGNMENT)
    pipeline.submit_release(course, "blank", ASSIGNMENT)
    for name, replacements in PLANTED.items():
        pipeline.submit_reference(course, name, ASSIGNMENT, {NOTEBOOK: replacements})
    pipeline.nbgrader(course, "autograde", ASSIGNMENT, "--force")
    pipeline.nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")

    full = {f"test_{function}": float(sum(points.values())) for function, points in POINTS.items()}
    assert pipeline.cell_scores(course, ASSIGNMENT, "reference") == {cell: (p, p) for cell, p in full.items()}
    assert pipeline.cell_scores(course, ASSIGNMENT, "blank") == {cell: (0.0, p) for cell, p in full.items()}
    blank_messages = pipeline.judge_messages(course, ASSIGNMENT, "blank", NOTEBOOK)
    assert all("not implemented yet" in text for text in blank_messages.values())

    for name, losses in EXPECTED_LOSSES.items():
        scores = pipeline.cell_scores(course, ASSIGNMENT, name)
        messages = pipeline.judge_messages(course, ASSIGNMENT, name, NOTEBOOK)
        feedback = pipeline.feedback_html(course, ASSIGNMENT, name, NOTEBOOK)
        assert "judge(" not in feedback and "BEGIN HIDDEN TESTS" not in feedback
        for cell, points in full.items():
            if cell not in losses:
                assert scores[cell] == (points, points), (name, cell, messages[cell])
                continue
            score, mistake = losses[cell]
            assert scores[cell] == (score, points), (name, cell, messages[cell])
            text = CATALOGUE.get(mistake, mistake)
            assert text in messages[cell], (name, cell, messages[cell])
            assert html.escape(text, quote=False) in feedback, (name, mistake)
    for name in ("reference", "blank"):
        assert "judge(" not in pipeline.feedback_html(course, ASSIGNMENT, name, NOTEBOOK)
