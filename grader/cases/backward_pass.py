"""Hidden checks of notebook 03 (backward pass): layer and loss gradients, the MLP's backward
pass, the gradient-check tools and the training loop.

* Layer and loss backward functions receive the cache that the REFERENCE forward built (its
  layout is stated in the notebook), so a forward-pass bug cannot fail them. ``gradient``
  compares with the reference backward, itself confirmed by central differences, and
  ``no_mutation`` asks that ``dout`` and the cache come back untouched.
* ``mlp_backward`` runs on caches of 1 to 3 layer networks built here layer by layer, every
  layer with its own activation; across the trials each activation appears in a hidden layer.
  It calls the student's layer functions, so a layer mistake shows here too: the variants name
  it, and the message says to fix the layer first.
* ``eval_numerical_gradient`` and ``eval_numerical_gradient_array`` take a function, which
  cannot travel as data: the judge sends arrays and the probe builds f from them with code the
  judge also runs on the reference (one source, two places). The probe returns the estimate
  and x after the call, so a perturbation left in x is seen (``restores_input``).
* ``train_mlp`` trains in the student's kernel on the judge's data (two spirals, two moons)
  from the judge's initial parameters; the JUDGE then scores the returned parameters with the
  reference forward pass on held-out points of its own (``convergence``).
"""
import copy
import functools

import numpy as np

from solutions import backward_pass as ref
from solutions import forward_pass as fwd

from ..checks import array_problem, compare, mutation_problem, norm_error, numerical_gradient, numerical_gradient_array
from ..diagnostics import CATALOGUE, describe
from . import register
from .base import Case, Check, CheckResult, FunctionCase, InternalCheckError, Probe, bad_return, first_failure, \
    mistakes_in, rejected_problem

ACTIVATION_FORWARD = {"relu": fwd.relu_forward, "sigmoid": fwd.sigmoid_forward, "tanh": fwd.tanh_forward}
KINK_MARGIN = 1e-3      # ReLU inputs stay this far from 0, so a nudge of 1e-5 never crosses the kink


def _dims(rng, count=3, low=3, high=9):
    """Distinct sizes, so a transposed or broadcast mistake cannot pass by accident."""
    return [int(v) for v in rng.choice(np.arange(low, high), size=count, replace=False)]


def _away_from_zero(rng, shape, low=0.1, high=3.0):
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def _array_issue(value, shape):
    return rejected_problem(value) or array_problem(value, shape=shape)


# ---- affine and activation layers ---------------------------------------------------------------

def affine_inputs(rng):
    n, d, m = _dims(rng)
    x, W, b = rng.normal(size=(n, d)), rng.normal(size=(d, m)), rng.normal(size=m)
    return {"dout": rng.normal(size=(n, m)), "cache": fwd.affine_forward(x, W, b)[1]}


def affine_numeric(dout, cache):
    x, W, b = (a.copy() for a in cache)
    return [numerical_gradient_array(lambda: fwd.affine_forward(x, W, b)[0], v, dout) for v in (x, W, b)]


def affine_variants(dout, cache):
    x, W, b = cache
    dx, dW, db = ref.affine_backward(dout, cache)
    return {"transposed": [dx, dout.T @ x, db], "bias_not_summed": [dx, dW, dout.copy()]}


def activation_inputs(name):
    def make(rng):
        n, h = _dims(rng, 2)
        # Away from 0: the ReLU kink, and the point where z (1 - z) and a (1 - a) are hard to tell apart.
        _, cache = ACTIVATION_FORWARD[name](_away_from_zero(rng, (n, h)))
        return {"dout": rng.normal(size=(n, h)), "cache": cache}
    return make


def activation_numeric(name):
    def numeric(dout, cache):
        z = cache[0].copy()
        return [numerical_gradient_array(lambda: ACTIVATION_FORWARD[name](z)[0], z, dout)]
    return numeric


def large_affine_inputs(rng):
    """Big enough that finite differences (65,536 entries, two 4-MFLOP forward passes each) need minutes,
    while a row-by-row Python loop stays within seconds and the reference within milliseconds."""
    x, W, b = rng.normal(size=(128, 256)), rng.normal(size=(256, 128)), rng.normal(size=128)
    return {"dout": rng.normal(size=(128, 128)), "cache": fwd.affine_forward(x, W, b)[1]}


register(FunctionCase(
    "affine_backward", ref.affine_backward, affine_inputs, outputs=("dx", "dW", "db"), returns="tuple",
    kinds=("gradient", "no_mutation"), variants=affine_variants, numeric=affine_numeric,
    budget=(large_affine_inputs, 20),
))
register(FunctionCase(
    "sigmoid_backward", ref.sigmoid_backward, activation_inputs("sigmoid"), outputs=("dz",),
    kinds=("gradient", "no_mutation"), numeric=activation_numeric("sigmoid"),
    variants=lambda dout, cache: {"sigmoid_at_z": [dout * cache[0] * (1 - cache[0])]},
))
register(FunctionCase(
    "tanh_backward", ref.tanh_backward, activation_inputs("tanh"), outputs=("dz",),
    kinds=("gradient", "no_mutation"), numeric=activation_numeric("tanh"),
    variants=lambda dout, cache: {"tanh_at_z": [dout * (1 - cache[0] ** 2)]},
))
register(FunctionCase(
    "relu_backward", ref.relu_backward, activation_inputs("relu"), outputs=("dz",),
    kinds=("gradient", "no_mutation"), numeric=activation_numeric("relu"),
    variants=lambda dout, cache: {"relu_mask_flipped": [dout * (cache[0] < 0)]},
))


# ---- loss gradients ---------------------------------------------------------------------------------

def mse_inputs(rng):
    n, m = _dims(rng, 2)
    shape = (n, m) if rng.random() < 0.7 else (n,)
    return {"pred": rng.normal(size=shape), "y": rng.normal(size=shape)}


def binary_inputs(rng):
    n = int(rng.integers(5, 12))
    shape = (n,) if rng.random() < 0.5 else (n, 1)
    logits = rng.normal(scale=3.0, size=shape)
    return {"logits": logits, "y": rng.integers(0, 2, size=shape).astype(float)}


def categorical_inputs(rng):
    n, c = _dims(rng, 2)
    return {"logits": rng.normal(scale=3.0, size=(n, c)), "y": rng.integers(0, c, size=n)}


def loss_numeric(loss, argument):
    def numeric(**inputs):
        inputs = copy.deepcopy(inputs)
        return [numerical_gradient(lambda: loss(**inputs), inputs[argument])]
    return numeric


def mse_variants(pred, y):
    variants = {"factor_two": [2 * (pred - y) / pred.shape[0]]}
    if pred.ndim == 2 and pred.shape[1] > 1:
        variants["mse_mean_over_outputs"] = [(pred - y) / pred.size]
    return variants


def binary_variants(logits, y):
    p, _ = fwd.sigmoid_forward(logits)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"bce_grad_wrt_probability": [(p - y) / (p * (1 - p)) / logits.shape[0]]}


def categorical_variants(logits, y):
    return {"ce_missing_one_hot": [fwd.softmax(logits) / logits.shape[0]]}


register(FunctionCase(
    "mse_loss_backward", ref.mse_loss_backward, mse_inputs, outputs=("dpred",), kinds=("gradient", "no_mutation"),
    numeric=loss_numeric(fwd.mse_loss, "pred"), variants=mse_variants,
))
register(FunctionCase(
    "binary_cross_entropy_backward", ref.binary_cross_entropy_backward, binary_inputs, outputs=("dlogits",),
    kinds=("gradient", "no_mutation"), numeric=loss_numeric(fwd.binary_cross_entropy, "logits"),
    variants=binary_variants,
))
register(FunctionCase(
    "softmax_cross_entropy_backward", ref.softmax_cross_entropy_backward, categorical_inputs, outputs=("dlogits",),
    kinds=("gradient", "no_mutation"), numeric=loss_numeric(fwd.softmax_cross_entropy, "logits"),
    variants=categorical_variants,
))


# ---- mlp_backward -----------------------------------------------------------------------------------

def mixed_mlp_forward(X, params, activations):
    """mlp_forward with one activation per layer (None for none); returns (out, caches)."""
    out, caches = X, []
    for layer, activation in enumerate(activations, start=1):
        out, affine_cache = fwd.affine_forward(out, params[f"W{layer}"], params[f"b{layer}"])
        activation_cache = None
        if activation is not None:
            out, activation_cache = ACTIVATION_FORWARD[activation](out)
        caches.append((affine_cache, activation, activation_cache))
    return out, caches


def mlp_trial(rng, activations):
    """dout and reference caches of a fresh network, every ReLU input away from the kink."""
    for _ in range(100):
        n, d, m = _dims(rng)
        sizes = [d] + [int(h) for h in rng.integers(3, 9, size=len(activations) - 1)] + [m]
        params = {}
        for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            params[f"W{layer}"] = rng.normal(scale=np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
            params[f"b{layer}"] = rng.normal(scale=0.5, size=fan_out)
        X = rng.normal(size=(n, d))
        out, caches = mixed_mlp_forward(X, params, activations)
        if all(np.abs(cache[2][0]).min() > KINK_MARGIN for cache in caches if cache[1] == "relu"):
            return {"dout": rng.normal(size=out.shape), "caches": caches}, X, params
    raise InternalCheckError("could not draw a network whose ReLU inputs stay away from 0")


def mlp_trials(rng):
    """Three networks (3, 2 and 1 layers); each activation appears in a hidden layer of one of them."""
    hidden = [str(a) for a in rng.permutation(["relu", "sigmoid", "tanh"])]
    outputs = [None, "sigmoid", "tanh", "relu"]
    plans = [
        [hidden[0], hidden[1], outputs[int(rng.integers(0, 3))]],
        [hidden[2], outputs[int(rng.integers(0, 3))]],
        [outputs[int(rng.integers(0, 4))]],
    ]
    return [mlp_trial(rng, plan) for plan in plans]


def mlp_backward_with(dout, caches, affine_backward=ref.affine_backward, **activation_backward):
    """The reference recursion with replaceable layer functions (to compute what a layer mistake gives)."""
    backward = {"relu": ref.relu_backward, "sigmoid": ref.sigmoid_backward, "tanh": ref.tanh_backward,
                **activation_backward}
    grads, dh = {}, dout
    for layer in range(len(caches), 0, -1):
        affine_cache, activation, activation_cache = caches[layer - 1]
        if activation is not None:
            dh = backward[activation](dh, activation_cache)
        dh, grads[f"W{layer}"], grads[f"b{layer}"] = affine_backward(dh, affine_cache)
    return grads


def _affine_transposed(dout, cache):
    dx, _, db = ref.affine_backward(dout, cache)
    return dx, dout.T @ cache[0], db


def _affine_bias_not_summed(dout, cache):
    dx, dW, _ = ref.affine_backward(dout, cache)
    return dx, dW, dout.copy()


LAYER_MISTAKES = {
    "sigmoid_at_z": {"sigmoid": lambda dout, cache: dout * cache[0] * (1 - cache[0])},
    "tanh_at_z": {"tanh": lambda dout, cache: dout * (1 - cache[0] ** 2)},
    "relu_mask_flipped": {"relu": lambda dout, cache: dout * (cache[0] < 0)},
    "transposed": {"affine_backward": _affine_transposed},
    "bias_not_summed": {"affine_backward": _affine_bias_not_summed},
}

MLP_PROBE = "ret = mlp_backward(inputs['dout'], inputs['caches'])\n"
LAYER_NOTE = (" mlp_backward calls your affine_backward and activation backward functions: if one of their "
              "checks fails, fix that one first.")


class MlpBackwardCase(Case):
    """``gradient``: every entry of grads against the reference (confirmed by central differences)
    on three mixed-activation networks; ``no_mutation``: dout and the caches come back unchanged."""

    function = "mlp_backward"
    kinds = ("gradient", "no_mutation")
    depends = ("affine_backward", "relu_backward", "sigmoid_backward", "tanh_backward")
    tol = 1e-6

    def build(self, kind, rng):
        if kind not in self.kinds:
            raise KeyError(f"{self.function} has no {kind!r} check; it offers {', '.join(self.kinds)}")
        if kind == "gradient":
            trials = mlp_trials(rng)
            probes = [Probe(MLP_PROBE + "return ret", inputs) for inputs, _, _ in trials]
            return Check(kind, probes, lambda outcomes: self._judge_gradient(trials, outcomes))
        inputs, _, _ = mlp_trial(rng, [str(rng.choice(["relu", "sigmoid", "tanh"])), "tanh"])
        probe = Probe(MLP_PROBE + "return {'out': ret, 'args': [inputs['dout'], inputs['caches']]}", inputs)
        return Check(kind, [probe], lambda outcomes: self._judge_mutation(inputs, outcomes))

    def _grads_problem(self, got, expected):
        """Why ``got`` is not a dict of well-formed arrays with the expected keys and shapes, or ''."""
        if type(got) is not dict:
            name = got.type_name if hasattr(got, "type_name") else f"{type(got).__module__}.{type(got).__qualname__}"
            return f"{self.function} returned {name}, expected a dict of gradients"
        if set(got) != set(expected):
            return (f"{self.function} returned a dict with keys {sorted(got)}, expected {sorted(expected)} "
                    "(one W and one b per layer, numbered from 1 like the parameters)")
        return ""

    def _judge_gradient(self, trials, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        for (inputs, X, params), outcome in zip(trials, outcomes):
            caches = inputs["caches"]
            expected = ref.mlp_backward(inputs["dout"], caches)
            activations = [cache[1] for cache in caches]
            nudged = copy.deepcopy(params)
            for name, value in nudged.items():
                numeric = numerical_gradient(
                    lambda: float(np.sum(inputs["dout"] * mixed_mlp_forward(X, nudged, activations)[0])), value)
                if norm_error(expected[name], numeric) > 1e-5:
                    raise InternalCheckError(f"reference mlp_backward {name} disagrees with central differences")
            problem = self._grads_problem(outcome.value, expected)
            if problem:
                return CheckResult(False, problem + ".")
            variants = {mistake: mlp_backward_with(inputs["dout"], caches, **functions)
                        for mistake, functions in LAYER_MISTAKES.items()}
            layers = ", ".join(f"{a or 'no activation'}" for a in activations)
            for name in expected:
                got = outcome.value[name]
                if rejected_problem(got):
                    return CheckResult(False, f"{self.function}: grads[{name!r}] {rejected_problem(got)}.")
                message = compare(self.function, f"grads[{name!r}]", got, expected[name], tol=self.tol,
                                  context={"N": inputs["dout"].shape[0]},
                                  variants={mistake: grads[name] for mistake, grads in variants.items()})
                if message:
                    return CheckResult(False, f"{message} (network of {len(caches)} layer(s): {layers}).{LAYER_NOTE}",
                                       mistakes_in(message))
        return CheckResult(True, f"matches the reference and central differences on {len(trials)} fresh networks "
                                 "mixing ReLU, sigmoid, tanh and no activation")

    def _judge_mutation(self, inputs, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        value = outcomes[0].value
        expected = ref.mlp_backward(inputs["dout"], inputs["caches"])
        problem = self._grads_problem(value["out"], expected)
        if not problem:
            for name in expected:
                issue = _array_issue(value["out"][name], expected[name].shape)
                if issue:
                    problem = f"{self.function}: grads[{name!r}] {issue}"
                    break
        if problem:
            return CheckResult(False, f"{problem} (the no-mutation check needs a well-formed result).")
        message = (mutation_problem(inputs["dout"], value["args"][0], "dout")
                   or mutation_problem(inputs["caches"], value["args"][1], "caches"))
        if message:
            return CheckResult(False, f"{self.function}: {message}. {CATALOGUE['mutation']}", ["mutation"])
        return CheckResult(True, "leaves dout and the caches unchanged")


register(MlpBackwardCase())


# ---- gradient checking tools --------------------------------------------------------------------------

SCALAR_PROBE = '''\
import numpy as np
W, V, x = inputs["W"], inputs["V"], inputs["x"]
original = x.copy()
calls = {"total": 0, "perturbed": 0}

def f(point):
    calls["total"] += 1
    calls["perturbed"] += int(not np.array_equal(point, original))
    return float(np.sum(W * point ** 3) + 0.5 * np.sum(V * point) ** 2)

if inputs["h"] is None:
    grad = eval_numerical_gradient(f, x)
else:
    grad = eval_numerical_gradient(f, x, inputs["h"])
return {"grad": grad, "x": x, "calls": calls["total"], "perturbed": calls["perturbed"]}
'''

ARRAY_PROBE = '''\
import numpy as np
A, B, x, dout = inputs["A"], inputs["B"], inputs["x"], inputs["dout"]
original = x.copy()
calls = {"total": 0, "perturbed": 0}

def f(point):
    calls["total"] += 1
    calls["perturbed"] += int(not np.array_equal(point, original))
    if inputs["view"]:
        return point.T
    return np.tanh(point @ A) + (point ** 2) @ B

if inputs["h"] is None:
    grad = eval_numerical_gradient_array(f, x, dout)
else:
    grad = eval_numerical_gradient_array(f, x, dout, inputs["h"])
return {"grad": grad, "x": x, "calls": calls["total"], "perturbed": calls["perturbed"]}
'''

FORMULAS = {
    "eval_numerical_gradient": "f(x) = sum(W * x**3) + (V . x)**2 / 2",
    "eval_numerical_gradient_array": "f(x) = tanh(x @ A) + x**2 @ B",
}
NUMERIC_TOL = 1e-7      # a correct estimate agrees with the judge's central difference to ~1e-10
VARIANT_GAP = 1e-6      # every known mistake lands at least this far (relative) from the right estimate
GIVEN_STEPS = (0.005, 0.01, 0.02)
DEFAULT_STEP = 1e-5


@functools.lru_cache(maxsize=None)
def _compiled(body):
    source = "def __bpl_probe(inputs, select):\n" + "".join("    " + line + "\n" for line in body.splitlines())
    return compile(source, "<backward_pass probe>", "exec")


def run_probe_body(body, inputs, **names):
    """Run a probe body in this process, the way probe_support runs it in the kernel (on a copy of inputs)."""
    scope = {}
    exec(_compiled(body), {"np": np, **names}, scope)
    return scope["__bpl_probe"](copy.deepcopy(inputs), None)


def _one_sided(f, x, h=1e-5):
    grad = np.zeros_like(x)
    for ix in np.ndindex(x.shape):
        original = x[ix]
        f_here = f(x)
        x[ix] = original + h
        f_plus = f(x)
        x[ix] = original
        grad[ix] = (f_plus - f_here) / h
    return grad


def _one_sided_backward(f, x, h=1e-5):
    grad = np.zeros_like(x)
    for ix in np.ndindex(x.shape):
        original = x[ix]
        f_here = f(x)
        x[ix] = original - h
        f_minus = f(x)
        x[ix] = original
        grad[ix] = (f_here - f_minus) / h
    return grad


def _not_restored(f, x, h=1e-5):
    grad = np.zeros_like(x)
    for ix in np.ndindex(x.shape):
        original = x[ix]
        x[ix] = original + h
        f_plus = f(x)
        x[ix] = original - h
        f_minus = f(x)
        grad[ix] = (f_plus - f_minus) / (2 * h)
    return grad


def _step_ignored(f, x, h=1e-5):
    return ref.eval_numerical_gradient(f, x)


def _not_copied(f, x, dout, h=1e-5):
    grad = np.zeros_like(x)
    for ix in np.ndindex(x.shape):
        original = x[ix]
        x[ix] = original + h
        f_plus = f(x)
        x[ix] = original - h
        f_minus = f(x)
        x[ix] = original
        grad[ix] = np.sum((f_plus - f_minus) * dout) / (2 * h)
    return grad


def _on_arrays(scalar_version):
    """The array form of a scalar-gradient mistake: the same mistake on sum(dout * f(x))."""
    def array_version(f, x, dout, h=1e-5):
        return scalar_version(lambda point: float(np.sum(f(point) * dout)), x, h)
    return array_version


SCALAR_MISTAKES = (("one_sided_difference", _one_sided), ("one_sided_difference", _one_sided_backward),
                   ("input_not_restored", _not_restored),
                   ("h_ignored", _step_ignored))
ARRAY_MISTAKES = tuple((mistake, _on_arrays(version)) for mistake, version in SCALAR_MISTAKES) + (
    ("output_not_copied", _not_copied),)


class NumericalGradientCase(Case):
    """The two central-difference estimators.

    ``value``: the estimate equals the judge's central difference (same f, same h) on three
    fresh points (2-D, 1-D, 2-D; the default h and a given h). ``restores_input``: x holds its
    original values after the call (to 1e-3 h: restoring by arithmetic, x + h - h, is fine).
    ``view_safe`` (array form only): f returns a view of x (x.T), so an output kept without a
    copy changes when x is nudged again.
    """

    def __init__(self, function, reference, body, mistakes, kinds):
        self.function = function
        self.reference = reference
        self.body = body
        self.mistakes = mistakes
        self.kinds = kinds

    # -- trials --------------------------------------------------------------------------------
    def _estimates(self, implementation, trial):
        return run_probe_body(self.body, trial, **{self.function: implementation})["grad"]

    def _draw(self, rng, shape, h, view=False):
        """A trial whose right estimate is far from every known mistake's."""
        for _ in range(100):
            trial = {"x": _away_from_zero(rng, shape, 0.3, 1.5), "h": h}
            if self.function == "eval_numerical_gradient":
                trial.update(W=rng.normal(size=shape), V=rng.normal(size=shape))
            else:
                m = int(rng.integers(3, 8))
                out_shape = shape[::-1] if view else shape[:-1] + (m,)
                trial.update(A=None if view else rng.normal(size=(shape[-1], m)),
                             B=None if view else rng.normal(size=(shape[-1], m)),
                             dout=rng.normal(size=out_shape), view=view)
            expected = self._estimates(self.reference, trial)
            wrong = [self._estimates(version, trial) for mistake, version in self._applicable(trial)]
            if all(norm_error(w, expected) > VARIANT_GAP for w in wrong):
                return trial
        raise InternalCheckError(f"could not draw a {self.function} trial far enough from the known mistakes")

    def _applicable(self, trial):
        for mistake, version in self.mistakes:
            if mistake == "h_ignored" and trial["h"] is None:
                continue
            if mistake == "output_not_copied" and not trial.get("view"):
                continue
            if mistake != "output_not_copied" and trial.get("view"):
                continue
            yield mistake, version

    def build(self, kind, rng):
        if kind not in self.kinds:
            raise KeyError(f"{self.function} has no {kind!r} check; it offers {', '.join(self.kinds)}")
        n, d, k = _dims(rng)
        if kind == "value":
            steps = [None, float(rng.choice(GIVEN_STEPS)), None]
            trials = [self._draw(rng, shape, h) for shape, h in zip([(n, d), (k,), (d, k)], steps)]
        elif kind == "restores_input":
            trials = [self._draw(rng, (n, d), None)]
        else:
            trials = [self._draw(rng, (n, d), None, view=True)]
        probes = [Probe(self.body, trial) for trial in trials]
        judge = self._judge_restored if kind == "restores_input" else self._judge_values
        return Check(kind, probes, lambda outcomes: judge(trials, outcomes))

    # -- judging -------------------------------------------------------------------------------
    def _describe(self, trial):
        where = "f(x) = x.T, a view of x" if trial.get("view") else FORMULAS[self.function]
        step = "the default h" if trial["h"] is None else f"h = {trial['h']:g}"
        return f"{where}, x of shape {trial['x'].shape}, {step}"

    def _grad_of(self, outcome):
        value = outcome.value
        if type(value) is not dict or "grad" not in value:
            return None, f"{self.function}: no usable result came back."
        return value["grad"], ""

    def _judge_values(self, trials, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        for trial, outcome in zip(trials, outcomes):
            got, problem = self._grad_of(outcome)
            if problem:
                return CheckResult(False, problem)
            if rejected_problem(got):
                return CheckResult(False, f"{self.function}: grad {rejected_problem(got)}.")
            expected = self._estimates(self.reference, trial)
            variants = self._closest_variant(got, trial)
            message = compare(self.function, "grad", got, expected, tol=NUMERIC_TOL, variants=variants)
            if message:
                return CheckResult(False, f"{message} (on {self._describe(trial)}; a correct central difference "
                                          "agrees with the judge's to about 1e-10)", mistakes_in(message))
        what = ("a function returning a view of x" if trials[0].get("view")
                else f"{len(trials)} fresh functions and points")
        return CheckResult(True, f"equals the judge's central difference on {what}")

    def _closest_variant(self, got, trial):
        """{mistake: estimate} for the single known mistake whose estimate is nearest to ``got``.

        One mistake only, so two mistakes a few 1e-6 apart cannot both be named.
        """
        if not isinstance(got, np.ndarray) or got.shape != trial["x"].shape or not np.all(np.isfinite(got)):
            return {}
        distances = []
        for mistake, version in self._applicable(trial):
            estimate = self._estimates(version, trial)
            distances.append((norm_error(got, estimate), mistake, estimate))
        if not distances:
            return {}
        _, mistake, estimate = min(distances, key=lambda item: item[0])
        return {mistake: estimate}

    def _judge_restored(self, trials, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        trial, value = trials[0], outcomes[0].value
        got, problem = self._grad_of(outcomes[0])
        if problem:
            return CheckResult(False, problem)
        issue = _array_issue(got, trial["x"].shape)
        if issue:
            return CheckResult(False, f"{self.function}: grad {issue} (this check needs a well-formed estimate).")
        if not (isinstance(value.get("perturbed"), int) and value["perturbed"] >= trial["x"].size):
            return CheckResult(False, f"{self.function} did not call f at a nudged x for every entry of x.")
        after = value.get("x")
        if rejected_problem(after) or not isinstance(after, np.ndarray) or after.shape != trial["x"].shape:
            return CheckResult(False, f"{self.function}: x came back with another type or shape.")
        drift = float(np.max(np.abs(after - trial["x"])))
        if not drift <= 1e-3 * DEFAULT_STEP:
            worst = np.unravel_index(int(np.argmax(np.abs(after - trial["x"]))), after.shape)
            return CheckResult(False, f"{self.function} left x changed after the call (entry {list(map(int, worst))} "
                                      f"moved by {drift:.2g}). {CATALOGUE['input_not_restored']}",
                               ["input_not_restored"])
        return CheckResult(True, "leaves x exactly as it found it")


register(NumericalGradientCase("eval_numerical_gradient", ref.eval_numerical_gradient, SCALAR_PROBE,
                               SCALAR_MISTAKES, ("value", "restores_input")))
register(NumericalGradientCase("eval_numerical_gradient_array", ref.eval_numerical_gradient_array, ARRAY_PROBE,
                               ARRAY_MISTAKES, ("value", "restores_input", "view_safe")))


def rel_error_inputs(rng):
    n, d = _dims(rng, 2)
    a = rng.normal(size=(n, d))
    b = a * (1 + rng.normal(scale=1e-3, size=(n, d)))
    b[int(rng.integers(n)), int(rng.integers(d))] += 0.05
    # Tiny entries, where the floor of 1e-8 in the denominator decides the error.
    a[0, 0], b[0, 0] = 3e-12, -2e-12
    return {"a": a, "b": b}


register(FunctionCase("rel_error", ref.rel_error, rel_error_inputs, outputs=("error",), kinds=("value",), tol=1e-9))


# ---- train_mlp ----------------------------------------------------------------------------------------

def two_spirals(n_per_class, rng, noise=0.2):
    """Two interleaved spiral arms of 1.5 turns in the unit disc, labels 0 and 1."""
    t = np.sqrt(rng.uniform(0, 1, n_per_class)) * 3 * np.pi
    arm = np.column_stack([t * np.cos(t), t * np.sin(t)]) / (3 * np.pi)
    X = np.concatenate([arm, -arm]) + rng.normal(0, noise / (3 * np.pi), (2 * n_per_class, 2))
    return X, np.repeat([0, 1], n_per_class)


def two_moons(n_per_class, rng, noise=0.15):
    """Two interleaved half circles, labels 0 and 1, centred near the origin."""
    t, s = rng.uniform(0, np.pi, n_per_class), rng.uniform(0, np.pi, n_per_class)
    X = np.concatenate([np.column_stack([np.cos(t), np.sin(t)]), np.column_stack([1 - np.cos(s), 0.5 - np.sin(s)])])
    X = X - [0.5, 0.25] + rng.normal(0, noise, (2 * n_per_class, 2))
    return X, np.repeat([0, 1], n_per_class)


def he_params(rng, sizes):
    params = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{layer}"] = rng.normal(scale=np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
        params[f"b{layer}"] = np.zeros(fan_out)
    return params


# (data set, generator, hidden activation, layer sizes, learning rate, epochs); over 100 seeds the
# reference reaches at least 96 % held-out accuracy on each, the check asks for ACCURACY_NEEDED.
CONVERGENCE_PROBLEMS = (
    ("two spirals", two_spirals, "relu", [2, 32, 32, 2], 0.5, 800),
    ("two moons", two_moons, "tanh", [2, 16, 16, 2], 0.5, 400),
)
ACCURACY_NEEDED = 0.9
TRAIN_PROBE = """\
ret = train_mlp(inputs['X'], inputs['y'], inputs['params'], inputs['learning_rate'], inputs['num_epochs'],
                hidden_activation=inputs['hidden_activation'])
return {'out': select(ret, 'tuple', 2), 'args': [inputs['X'], inputs['y'], inputs['params']]}
"""
TRAIN_NOTE = (" train_mlp runs mlp_forward, your mlp_backward and your softmax_cross_entropy_backward: "
              "if one of their checks fails, fix that one first.")


def convergence_trial(rng, problem):
    name, make, activation, sizes, learning_rate, epochs = problem
    X, y = make(100, rng)
    X_test, y_test = make(200, rng)
    inputs = {"X": X, "y": y, "params": he_params(rng, sizes), "learning_rate": learning_rate,
              "num_epochs": epochs, "hidden_activation": activation}
    return {"name": name, "inputs": inputs, "X_test": X_test, "y_test": y_test}


def small_trial(rng, epochs=40):
    X, y = two_moons(20, rng)
    inputs = {"X": X, "y": y, "params": he_params(rng, [2, 8, 2]), "learning_rate": 0.5,
              "num_epochs": epochs, "hidden_activation": "tanh"}
    return {"name": "two moons (40 points)", "inputs": inputs}


def loose_losses(losses):
    """The recorded losses as a float array (any length, NaN allowed), or None if they are not numbers."""
    if rejected_problem(losses) or type(losses) not in (list, tuple, np.ndarray):
        return None
    try:
        return np.array([float(v) for v in np.asarray(losses).reshape(-1)])
    except (TypeError, ValueError):
        return None


def _loss_after_step(inputs, factor):
    """The loss after one step of -factor * learning_rate * gradient from the initial parameters."""
    X, y, params = inputs["X"], inputs["y"], inputs["params"]
    activation = inputs["hidden_activation"]
    scores, caches = fwd.mlp_forward(X, params, activation)
    grads = ref.mlp_backward(ref.softmax_cross_entropy_backward(scores, y), caches)
    stepped = {name: params[name] - factor * inputs["learning_rate"] * grads[name] for name in params}
    with np.errstate(all="ignore"):
        return fwd.softmax_cross_entropy(fwd.mlp_forward(X, stepped, activation)[0], y)


def _same_loss(a, b):
    return bool(np.isfinite(a) and np.isfinite(b) and abs(a - b) <= 1e-6 * max(1.0, abs(b)))


def first_step_mistakes(inputs, losses):
    """[mistake] when the second recorded loss is the one a known mistake's first step gives, else [].

    The first step goes uphill with the update's sign flipped, and is N times too long when the
    loss gradient lacks its 1/N.
    """
    if losses is None or len(losses) < 2:
        return []
    for mistake, factor in (("negated", -1.0), ("missing_mean", float(inputs["X"].shape[0]))):
        if _same_loss(losses[1], _loss_after_step(inputs, factor)):
            return [mistake]
    return []


def accuracy(params, X, y, activation):
    return float(np.mean(fwd.mlp_forward(X, params, activation)[0].argmax(axis=1) == y))


class TrainMlpCase(Case):
    """``convergence``: the returned parameters, scored by the judge with the reference forward
    pass, classify held-out points of two spirals (ReLU) and two moons (tanh) well.
    ``losses``: one float per epoch, the first the loss of the initial parameters, falling
    overall. ``no_mutation``: X, y and the params dict (and its arrays) come back unchanged."""

    function = "train_mlp"
    kinds = ("convergence", "losses", "no_mutation")
    depends = ("mlp_backward", "softmax_cross_entropy_backward", "relu_backward", "tanh_backward", "affine_backward")

    def build(self, kind, rng):
        if kind not in self.kinds:
            raise KeyError(f"{self.function} has no {kind!r} check; it offers {', '.join(self.kinds)}")
        if kind == "convergence":
            trials = [convergence_trial(rng, problem) for problem in CONVERGENCE_PROBLEMS]
        else:
            trials = [small_trial(rng)]
        probes = [Probe(TRAIN_PROBE, trial["inputs"]) for trial in trials]
        judge = {"convergence": self._judge_convergence, "losses": self._judge_losses,
                 "no_mutation": self._judge_mutation}[kind]
        return Check(kind, probes, lambda outcomes: judge(trials, outcomes))

    # -- helpers -------------------------------------------------------------------------------
    def _unpack(self, trial, outcome):
        """(params, losses, problem, mistakes) from one run; problem is '' when params are well formed."""
        value = outcome.value
        if type(value) is not dict or "out" not in value:
            return None, None, f"{self.function}: no usable result came back.", []
        if bad_return(value["out"]):
            return None, None, f"{self.function} {bad_return(value['out'])}, expected (trained_params, losses).", []
        params, losses = value["out"]
        initial = trial["inputs"]["params"]
        if type(params) is not dict:
            name = params.type_name if hasattr(params, "type_name") else type(params).__name__
            return None, None, f"{self.function} returned {name} as the trained parameters, expected a dict.", []
        if set(params) != set(initial):
            return None, None, (f"{self.function} returned parameters with keys {sorted(params)}, "
                                f"expected {sorted(initial)}."), []
        for name in initial:
            issue = _array_issue(params[name], initial[name].shape)
            if issue:
                mistakes, hint = [], ""
                if isinstance(params[name], np.ndarray) and params[name].shape == initial[name].shape:
                    mistakes = first_step_mistakes(trial["inputs"], loose_losses(losses))
                    hint = describe(mistakes) or (
                        " The training diverged: a wrong gradient, a loss gradient without its 1/N (steps N "
                        "times too long) or an update with the wrong sign (w - lr * dw is right) can each do this.")
                return None, None, f"{self.function}: trained_params[{name!r}] {issue}.{hint}{TRAIN_NOTE}", mistakes
        return params, losses, "", []

    @staticmethod
    def _loss_list(losses, epochs):
        """The losses as a float array, or a problem description."""
        if rejected_problem(losses):
            return None, f"losses {rejected_problem(losses)}"
        values = loose_losses(losses)
        if values is None:
            return None, f"losses is {type(losses).__name__}, expected a list of floats"
        if values.shape != (epochs,):
            return None, f"losses has {values.size} entries, expected one per epoch ({epochs})"
        if not np.all(np.isfinite(values)):
            return None, "losses has non-finite entries (NaN or inf): the training diverged"
        return values, ""

    def _first_loss_problem(self, inputs, first):
        """Why losses[0] is not the loss of the initial parameters, or ''."""
        X, y, params, activation = inputs["X"], inputs["y"], inputs["params"], inputs["hidden_activation"]
        initial = fwd.softmax_cross_entropy(fwd.mlp_forward(X, params, activation)[0], y)
        if _same_loss(first, initial):
            return ""
        told = f"{self.function}: losses[0] is {first:.6g}, but the loss of the initial parameters is {initial:.6g}"
        if _same_loss(first, _loss_after_step(inputs, 1.0)):
            return f"{told}: it is the loss after the first update. Record each epoch's loss before its update."
        for other in ("relu", "sigmoid", "tanh"):
            if other != activation:
                loss = fwd.softmax_cross_entropy(fwd.mlp_forward(X, params, other)[0], y)
                if _same_loss(first, loss):
                    return (f"{told} with {activation} hidden layers; {first:.6g} is the loss with {other}: "
                            "pass hidden_activation on to mlp_forward.")
        return f"{told}: record each epoch's loss, from mlp_forward on all of X, before its update."

    # -- kinds ---------------------------------------------------------------------------------
    def _judge_convergence(self, trials, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return CheckResult(False, failure.message + TRAIN_NOTE, failure.mistakes)
        for trial, outcome in zip(trials, outcomes):
            params, losses, problem, mistakes = self._unpack(trial, outcome)
            if problem:
                return CheckResult(False, problem, mistakes)
            inputs = trial["inputs"]
            activation = inputs["hidden_activation"]
            score = accuracy(params, trial["X_test"], trial["y_test"], activation)
            if score < ACCURACY_NEEDED:
                trained, _ = ref.train_mlp(**copy.deepcopy(inputs))
                reference = accuracy(trained, trial["X_test"], trial["y_test"], activation)
                mistakes = first_step_mistakes(inputs, loose_losses(losses))
                return CheckResult(
                    False,
                    f"{self.function}: after {inputs['num_epochs']} epochs on {trial['name']} ({activation} hidden "
                    f"layers, learning rate {inputs['learning_rate']:g}), the returned parameters classify "
                    f"{score:.0%} of {len(trial['y_test'])} held-out points correctly; the check needs "
                    f"{ACCURACY_NEEDED:.0%} and the reference reaches {reference:.0%}.{describe(mistakes)}{TRAIN_NOTE}",
                    mistakes)
        return CheckResult(True, f"learns {' and '.join(t['name'] for t in trials)}: the judge's held-out points "
                                 f"are classified at least {ACCURACY_NEEDED:.0%} right")

    def _judge_losses(self, trials, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        trial, outcome = trials[0], outcomes[0]
        _, losses, problem, mistakes = self._unpack(trial, outcome)
        if problem:
            return CheckResult(False, problem, mistakes)
        inputs = trial["inputs"]
        values, problem = self._loss_list(losses, inputs["num_epochs"])
        if problem:
            return CheckResult(False, f"{self.function}: {problem}.")
        problem = self._first_loss_problem(inputs, values[0])
        if problem:
            return CheckResult(False, problem)
        head, tail = values[:5].mean(), values[-5:].mean()
        if not tail < 0.9 * head:
            mistakes = first_step_mistakes(inputs, values)
            return CheckResult(False, f"{self.function}: the loss does not fall over {inputs['num_epochs']} epochs "
                                      f"(mean of the first five {head:.4g}, of the last five {tail:.4g})."
                                      f"{describe(mistakes)}{TRAIN_NOTE}", mistakes)
        return CheckResult(True, "returns one loss per epoch, starting at the initial loss and falling")

    def _judge_mutation(self, trials, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        trial, outcome = trials[0], outcomes[0]
        _, _, problem, _ = self._unpack(trial, outcome)
        if problem:
            return CheckResult(False, f"{problem} (the no-mutation check needs a well-formed result)")
        inputs = trial["inputs"]
        message = ""
        for name, before, after in zip(("X", "y", "params"), (inputs["X"], inputs["y"], inputs["params"]),
                                       outcome.value["args"]):
            message = mutation_problem(before, after, name)
            if message:
                break
        if message:
            return CheckResult(False, f"{self.function}: {message}. {CATALOGUE['mutation']} (Copy the parameters "
                                      "before updating them: {name: value.copy() for name, value in params.items()}.)",
                               ["mutation"])
        return CheckResult(True, "leaves X, y and the initial parameters unchanged")


register(TrainMlpCase())
