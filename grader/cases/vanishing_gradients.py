"""Hidden checks of notebook 05 (vanishing gradients): initialisers, the gradient-norm probe,
clipping, Leaky ReLU and the residual block.

The initialisers are random, so they are judged by statistics: the probe draws a large matrix
from a generator seeded by the judge and sends back its shape, dtype and a sample of entries
chosen by the judge (never the whole matrix); the judge computes mean and standard deviation
itself. Everything else is compared with the reference on fresh inputs.
"""
import copy

import numpy as np

from solutions import vanishing_gradients as ref

from ..checks import array_problem, compare, float_problem, mutation_problem, numerical_gradient_array
from ..diagnostics import CATALOGUE, describe, diagnose
from ..sandbox.codec import Rejected
from . import register
from .base import Case, Check, CheckResult, FunctionCase, Probe, first_failure, mistakes_in, rejected_problem

STD_TOL = 0.04      # relative; the sample's own spread is below 0.7 %, so the reference passes by > 6 sigma
MEAN_SIGMAS = 6.0   # |mean| allowed, in standard errors of the sample mean
SAMPLE_SIZE = 20_000
NORM_TOL = 1e-6     # per entry, relative: a vanished first-layer norm is judged as strictly as the last


def _dims(rng, count=3, low=3, high=10):
    """Distinct sizes, so a transposed or broadcast mistake cannot pass by accident."""
    return [int(v) for v in rng.choice(np.arange(low, high), size=count, replace=False)]


def _away_from_zero(rng, shape, low=0.05, high=3.0):
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def _type_name(value):
    if isinstance(value, Rejected):
        return value.type_name
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _array_issue(value, shape):
    return rejected_problem(value) or array_problem(value, shape=shape)


# ---- initialisers -----------------------------------------------------------------------------

STATISTICS_PROBE = """\
import numpy
W = {function}(inputs['fan_in'], inputs['fan_out'], numpy.random.default_rng(inputs['seed']))
if type(W) is not numpy.ndarray:
    return {{'type': type(W).__module__ + '.' + type(W).__qualname__}}
found = {{'type': 'numpy.ndarray', 'shape': [int(n) for n in W.shape], 'dtype': str(W.dtype)}}
if W.size and W.dtype.kind in 'biuf':
    found['sample'] = W.reshape(-1)[inputs['index'] % W.size]
return found
"""

USES_RNG_PROBE = """\
import numpy
return [{function}(inputs['fan_in'], inputs['fan_out'], numpy.random.default_rng(seed)) for seed in inputs['seeds']]
"""


class InitialiserCase(Case):
    """A weight initialiser ``f(fan_in, fan_out, rng) -> W (fan_in, fan_out)``.

    ``statistics``: on two fresh shapes with a lopsided fan ratio (so formulas of one fan are
    told apart from formulas of both), the standard deviation of the judge's sample is within
    ``STD_TOL`` of ``std(fan_in, fan_out)`` and the mean is 0 within ``MEAN_SIGMAS`` standard
    errors; shape (fan_in, fan_out), float64, finite. ``uses_rng``: the same seed gives the same
    matrix twice and another seed a different one (the judge compares the small matrices).
    ``variants`` maps mistake ids to the standard deviations (functions of the fans) they produce.
    """

    kinds = ("statistics", "uses_rng")

    def __init__(self, function, std, formula, variants):
        self.function = function
        self.std = std
        self.formula = formula
        self.variants = variants

    @staticmethod
    def _fans(rng):
        fan_in = int(rng.integers(200, 501))
        ratio = rng.uniform(0.3, 0.6) if rng.random() < 0.5 else rng.uniform(1.6, 3.0)
        return fan_in, max(2, int(round(fan_in * ratio)))

    def build(self, kind, rng):
        if kind == "statistics":
            trials = []
            for _ in range(2):
                fan_in, fan_out = self._fans(rng)
                size = fan_in * fan_out
                trials.append({"fan_in": fan_in, "fan_out": fan_out, "seed": int(rng.integers(2**62)),
                               "index": rng.choice(size, size=min(size, SAMPLE_SIZE), replace=False)})
            probes = [Probe(STATISTICS_PROBE.format(function=self.function), t) for t in trials]
            return Check(kind, probes, lambda outcomes: self._judge_statistics(trials, outcomes))
        if kind == "uses_rng":
            fan_in, fan_out = _dims(rng, 2, 3, 9)
            first, second = (int(s) for s in rng.choice(2**62, size=2, replace=False))
            inputs = {"fan_in": fan_in, "fan_out": fan_out, "seeds": [first, first, second]}
            probe = Probe(USES_RNG_PROBE.format(function=self.function), inputs)
            return Check(kind, [probe], lambda outcomes: self._judge_uses_rng(inputs, outcomes))
        raise KeyError(f"{self.function} has no {kind!r} check; it offers {', '.join(self.kinds)}")

    def _judge_statistics(self, trials, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        for trial, outcome in zip(trials, outcomes):
            fan_in, fan_out = trial["fan_in"], trial["fan_out"]
            call = f"{self.function}({fan_in}, {fan_out}, rng)"
            found = outcome.value
            if type(found) is not dict or found.get("type") != "numpy.ndarray":
                kind = found.get("type") if type(found) is dict else _type_name(found)
                return CheckResult(False, f"{call} returned {kind}, expected a numpy.ndarray.")
            shape = tuple(found["shape"])
            if shape != (fan_in, fan_out):
                mistakes = ["transposed"] if shape == (fan_out, fan_in) else ["wrong_shape"]
                return CheckResult(False, f"{call} has shape {shape}, expected ({fan_in}, {fan_out}): W has one row per "
                                          "input of the layer (fan_in) and one column per output (fan_out).", mistakes)
            if found["dtype"] != "float64":
                return CheckResult(False, f"{call} has dtype {found['dtype']}, expected float64.")
            sample = found.get("sample")
            problem = _array_issue(sample, trial["index"].shape)
            if problem:
                return CheckResult(False, f"{call}: the sample of its entries {problem}.")
            expected = self.std(fan_in, fan_out)
            spread, mean = float(sample.std()), float(sample.mean())
            if abs(spread / expected - 1) > STD_TOL:
                mistakes = [m for m, stds in self.variants.items()
                            if any(abs(spread / std(fan_in, fan_out) - 1) <= STD_TOL for std in stds)]
                return CheckResult(False, f"{call}: the entries have standard deviation {spread:.4g}, expected "
                                          f"{self.formula} = {expected:.4g} (ratio {spread / expected:.3f}).{describe(mistakes)}",
                                   mistakes)
            allowed = MEAN_SIGMAS * expected / np.sqrt(sample.size)
            if abs(mean) > allowed:
                return CheckResult(False, f"{call}: the entries have mean {mean:.3g}, expected 0 (within {allowed:.2g}); "
                                          "the weights are drawn around 0.")
        return CheckResult(True, f"standard deviation within {STD_TOL:.0%} of {self.formula} and mean 0 "
                                 f"on {len(trials)} fresh shapes")

    def _judge_uses_rng(self, inputs, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        draws = outcomes[0].value
        shape = (inputs["fan_in"], inputs["fan_out"])
        call = f"{self.function}({shape[0]}, {shape[1]}, rng)"
        if type(draws) is not list or len(draws) != 3:
            return CheckResult(False, f"{call} could not be called three times.")
        for draw in draws:
            problem = _array_issue(draw, shape)
            if problem:
                return CheckResult(False, f"{call} {problem}.")
        if not np.array_equal(draws[0], draws[1]):
            return CheckResult(False, f"{call}: two generators made with the same seed gave different matrices. "
                                      f"{CATALOGUE['init_ignores_rng']}", ["init_ignores_rng"])
        if np.array_equal(draws[0], draws[2]):
            return CheckResult(False, f"{call}: generators with different seeds gave the same matrix. "
                                      f"{CATALOGUE['init_ignores_rng']}", ["init_ignores_rng"])
        return CheckResult(True, "draws only from the rng it is given")


register(InitialiserCase(
    "xavier_init", lambda fan_in, fan_out: np.sqrt(2.0 / (fan_in + fan_out)), "sqrt(2 / (fan_in + fan_out))",
    {"xavier_fan_in_only": [lambda fan_in, fan_out: np.sqrt(1.0 / fan_in),
                            lambda fan_in, fan_out: np.sqrt(2.0 / fan_in)]},
))
register(InitialiserCase(
    "he_init", lambda fan_in, fan_out: np.sqrt(2.0 / fan_in), "sqrt(2 / fan_in)",
    {"he_missing_two": [lambda fan_in, fan_out: np.sqrt(1.0 / fan_in)]},
))


# ---- layer_gradient_norms ---------------------------------------------------------------------

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
# layer_gradient_norms calls the student's Leaky ReLU; a mistake there costs points here too,
# and the judge's message points at it (the reference is never sent into the sandbox).
LEAKY = ("leaky_relu_forward", "leaky_relu_backward")


def norms_inputs(rng, activation):
    n, d, c = _dims(rng, 3, 5, 13)
    sizes = [d] + [int(h) for h in rng.integers(3, 10, size=int(rng.integers(2, 7)))] + [c]
    gain = 1.5 if activation == "sigmoid" else 1.0  # keeps a deep sigmoid net's norms far above round-off
    params = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{layer}"] = rng.normal(0.0, gain * np.sqrt(2.0 / fan_in), (fan_in, fan_out))
        params[f"b{layer}"] = rng.normal(0.0, 0.1, fan_out)
    return {"X": rng.normal(size=(n, d)), "y": rng.integers(0, c, size=n), "params": params, "activation": activation}


class GradientNormsCase(Case):
    """``layer_gradient_norms``: a list of floats, one per hidden layer, first to last.

    ``value``: one fresh network per activation (2 to 6 hidden layers, distinct widths), each
    norm within ``NORM_TOL`` of the reference relative to itself. ``no_mutation``: X, y and
    params unchanged. A list, a tuple or a 1-D float64 array of floats is accepted.
    """

    function = "layer_gradient_norms"
    kinds = ("value", "no_mutation")
    depends = LEAKY

    def _probe(self, inputs, body):
        args = [inputs["X"], inputs["y"], inputs["params"], inputs["activation"]]
        return Probe("ret = layer_gradient_norms(*inputs['args'])\n" + body, {"args": args})

    def build(self, kind, rng):
        if kind == "value":
            trials = [norms_inputs(rng, str(a)) for a in rng.permutation(ACTIVATIONS)]
            probes = [self._probe(t, "return ret") for t in trials]
            return Check(kind, probes, lambda outcomes: self._judge_values(trials, outcomes))
        if kind == "no_mutation":
            trial = norms_inputs(rng, str(rng.choice(ACTIVATIONS)))
            probe = self._probe(trial, "return {'out': ret, 'args': inputs['args']}")
            return Check(kind, [probe], lambda outcomes: self._judge_mutation(trial, outcomes))
        raise KeyError(f"{self.function} has no {kind!r} check; it offers {', '.join(self.kinds)}")

    @staticmethod
    def expected(inputs):
        return np.array(ref.layer_gradient_norms(**copy.deepcopy(inputs)))

    def _as_array(self, got, count):
        """(norms as a float64 array, '') or (None, what is wrong with the returned value)."""
        if type(got) is np.ndarray:
            problem = array_problem(got, shape=(count,))
            return (None, problem) if problem else (got, "")
        if type(got) not in (list, tuple):
            return None, f"returned {_type_name(got)}, expected a list of floats"
        if len(got) != count:
            return None, (f"returned {len(got)} norms for a network with {count} hidden layers; expected one per "
                          "hidden layer (not the input, not the output scores)")
        for position, norm in enumerate(got):
            problem = float_problem(norm)
            if problem:
                return None, f"norms[{position}] {problem}"
        return np.array(got, dtype=float), ""

    def _judge_values(self, trials, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        for inputs, outcome in zip(trials, outcomes):
            expected = self.expected(inputs)
            got, problem = self._as_array(outcome.value, expected.size)
            where = f" ({inputs['activation']} network with {expected.size} hidden layers)"
            if problem:
                return CheckResult(False, f"{self.function}: {problem}{where}.")
            scale = np.maximum(np.abs(expected), 1e-12 * np.max(np.abs(expected)))
            errors = np.abs(got - expected) / scale
            if np.max(errors) > NORM_TOL:
                worst = int(np.argmax(errors))
                hint = describe(diagnose(got, expected, {"N": inputs["X"].shape[0]},
                                         {"norms_reversed": expected[::-1].copy()}))
                message = (f"{self.function}: norms[{worst}] (hidden layer {worst + 1}) is {got[worst]:.6g}, expected "
                           f"{expected[worst]:.6g} (relative error {errors[worst]:.1e}){where}.{hint}")
                return CheckResult(False, message, mistakes_in(message))
        return CheckResult(True, f"matches the reference on {len(trials)} fresh networks "
                                 f"({', '.join(t['activation'] for t in trials)})")

    def _judge_mutation(self, inputs, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        value = outcomes[0].value
        _, problem = self._as_array(value["out"], self.expected(inputs).size)
        if problem:
            return CheckResult(False, f"{self.function}: {problem} (the no-mutation check needs a well-formed result).")
        before = [inputs["X"], inputs["y"], inputs["params"], inputs["activation"]]
        message = mutation_problem(before, list(value["args"]), "argument")
        if message:
            for position, name in enumerate(("X", "y", "params", "activation")):
                message = message.replace(f"argument[{position}]", name)
            return CheckResult(False, f"{self.function}: {message}. {CATALOGUE['mutation']}", ["mutation"])
        return CheckResult(True, "leaves its arguments unchanged")


register(GradientNormsCase())


# ---- clipping ---------------------------------------------------------------------------------


def _grads(rng, threshold):
    """2 to 4 gradient arrays (weights and biases of distinct sizes), each with an entry beyond threshold."""
    count = int(rng.integers(2, 5))
    d, m, k = _dims(rng, 3, 2, 9)
    shapes = [(d, m), (m,), (m, k), (k,)][:count]
    grads = {}
    for name, shape in zip(["W1", "b1", "W2", "b2"], shapes):
        grad = rng.normal(0.0, rng.uniform(0.3, 1.5), shape)
        grad.flat[int(rng.integers(grad.size))] = threshold * rng.uniform(1.5, 3.0) * rng.choice([-1.0, 1.0])
        grads[name] = grad
    return grads


def clip_value_inputs(rng):
    clip_value = float(rng.uniform(0.5, 1.5))
    return {"grads": _grads(rng, clip_value), "clip_value": clip_value}


def clip_norm_inputs(rng, clipping=True):
    max_norm = float(rng.uniform(2.0, 5.0))
    grads = _grads(rng, max_norm)
    if not clipping:
        total = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
        max_norm = total * float(rng.uniform(1.2, 3.0))
    return {"grads": grads, "max_norm": max_norm}


def _clip_norm_variants(grads, max_norm):
    per_parameter = {k: g * min(1.0, max_norm / (np.linalg.norm(g) + 1e-6)) for k, g in grads.items()}
    per_element = {k: np.clip(g, -max_norm, max_norm) for k, g in grads.items()}
    return {"clip_per_parameter": per_parameter, "clip_per_element": per_element}


class ClipCase(Case):
    """A clipping function of ``(grads, threshold)`` that returns a new dict (and, optionally, a float).

    ``value``: every array of the returned dict against the reference on fresh gradients (for
    ``clip_by_global_norm`` one of the input sets has a norm below max_norm: nothing to clip),
    then the total norm. ``no_mutation``: grads unchanged, on an input that needs clipping.
    """

    kinds = ("value", "no_mutation")

    def __init__(self, function, reference, make_inputs, *, threshold, with_norm, variants=None):
        self.function = function
        self.reference = reference
        self.make_inputs = make_inputs
        self.threshold = threshold
        self.with_norm = with_norm
        self.variants = variants or (lambda grads, threshold: {})

    def _probe(self, inputs, body):
        call = f"ret = {self.function}(inputs['grads'], inputs[{self.threshold!r}])\n"
        return Probe(call + body, inputs)

    def _select(self):
        return "select(ret, 'tuple', 2)" if self.with_norm else "select(ret, 'single', 1)"

    def build(self, kind, rng):
        if kind == "value":
            trials = self.make_inputs(rng)
            probes = [self._probe(t, f"return {self._select()}") for t in trials]
            return Check(kind, probes, lambda outcomes: self._judge_values(trials, outcomes))
        if kind == "no_mutation":
            trial = self.make_inputs(rng)[0]
            probe = self._probe(trial, f"return {{'out': {self._select()}, 'grads': inputs['grads']}}")
            return Check(kind, [probe], lambda outcomes: self._judge_mutation(trial, outcomes))
        raise KeyError(f"{self.function} has no {kind!r} check; it offers {', '.join(self.kinds)}")

    def expected(self, inputs):
        ret = self.reference(copy.deepcopy(inputs["grads"]), inputs[self.threshold])
        return list(ret) if self.with_norm else [ret]

    def _compare(self, inputs, got, tol=1e-6):
        """'' when ``got`` (the selected outputs) matches the reference, else a message."""
        expected = self.expected(inputs)
        clipped, reference = got[0], expected[0]
        if type(clipped) is not dict:
            return f"{self.function}: the clipped gradients are a {_type_name(clipped)}, expected a dict with the keys of grads."
        if set(clipped) != set(reference):
            return (f"{self.function}: the clipped gradients have keys {sorted(clipped)}, expected {sorted(reference)} "
                    "(one entry per entry of grads).")
        variants = self.variants(copy.deepcopy(inputs["grads"]), inputs[self.threshold])
        for key in reference:
            message = compare(self.function, f"clipped[{key!r}]", clipped[key], reference[key], tol=tol,
                              variants={mistake: produced[key] for mistake, produced in variants.items()})
            if message:
                return message
        if self.with_norm:
            problem = rejected_problem(got[1])
            return f"{self.function}: total_norm {problem}." if problem else \
                compare(self.function, "total_norm", got[1], expected[1], tol=tol)
        return ""

    def _judge_values(self, trials, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        for inputs, outcome in zip(trials, outcomes):
            message = self._compare(inputs, list(outcome.value))
            if message:
                return CheckResult(False, message, mistakes_in(message))
        return CheckResult(True, f"matches the reference on {len(trials)} fresh sets of gradients")

    def _judge_mutation(self, inputs, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        value = outcomes[0].value
        # With an infinite tolerance only structure, types, shapes and finiteness are judged: the
        # values are the value check's business.
        shapes = self._compare(inputs, list(value["out"]), tol=np.inf)
        if shapes:
            return CheckResult(False, f"{shapes} (the no-mutation check needs a well-formed result).")
        message = mutation_problem(inputs["grads"], value["grads"], "grads")
        if message:
            return CheckResult(False, f"{self.function}: {message}. {CATALOGUE['mutation']}", ["mutation"])
        return CheckResult(True, "leaves grads unchanged")


register(ClipCase(
    "clip_by_value", ref.clip_by_value, lambda rng: [clip_value_inputs(rng) for _ in range(3)],
    threshold="clip_value", with_norm=False,
))
register(ClipCase(
    "clip_by_global_norm", ref.clip_by_global_norm,
    lambda rng: [clip_norm_inputs(rng), clip_norm_inputs(rng, clipping=False), clip_norm_inputs(rng)],
    threshold="max_norm", with_norm=True, variants=_clip_norm_variants,
))


# ---- Leaky ReLU -------------------------------------------------------------------------------


def leaky_forward_inputs(rng):
    n, d, _ = _dims(rng)
    inputs = {"z": _away_from_zero(rng, (n, d))}
    if rng.random() < 0.5:  # otherwise the default slope 0.01 is judged
        inputs["alpha"] = float(rng.uniform(0.05, 0.3))
    return inputs


def leaky_backward_inputs(rng):
    n, d, _ = _dims(rng)
    z = _away_from_zero(rng, (n, d))
    return {"dout": rng.normal(size=(n, d)), "cache": (z, float(rng.uniform(0.05, 0.3)))}


def _leaky_numeric(dout, cache):
    z, alpha = cache
    z = z.copy()
    return [numerical_gradient_array(lambda: ref.leaky_relu_forward(z, alpha)[0], z, dout)]


register(FunctionCase(
    "leaky_relu_forward", ref.leaky_relu_forward, leaky_forward_inputs, outputs=("a",), returns="pair",
    keywords=("alpha",), kinds=("value", "no_mutation"),
    variants=lambda z, alpha=0.01: {"leaky_slope_flipped": [np.where(z > 0, alpha * z, z)]},
))
register(FunctionCase(
    "leaky_relu_backward", ref.leaky_relu_backward, leaky_backward_inputs, outputs=("dz",), returns="single",
    kinds=("gradient", "no_mutation"), numeric=_leaky_numeric,
    variants=lambda dout, cache: {"leaky_slope_flipped": [np.where(cache[0] > 0, cache[1] * dout, dout)]},
))


# ---- residual block ---------------------------------------------------------------------------


def residual_inputs(rng):
    """x (N, D), W (D, D), b (D,) with N != D and every pre-activation at least 0.05 from the kink."""
    n, d, _ = _dims(rng)
    while True:
        x = rng.normal(size=(n, d))
        W = rng.normal(0.0, 1.0 / np.sqrt(d), (d, d))
        b = rng.normal(0.0, 0.5, d)
        if np.abs(x @ W + b).min() > 0.05:
            return {"x": x, "W": W, "b": b}


def residual_backward_inputs(rng):
    inputs = residual_inputs(rng)
    _, cache = ref.residual_forward(**inputs)
    return {"dout": rng.normal(size=inputs["x"].shape), "cache": cache}


def _residual_forward_variants(x, W, b):
    z = x @ W + b
    return {"residual_identity_missing": [np.maximum(z, 0)], "relu_mask_flipped": [x + np.minimum(z, 0)]}


def _residual_backward_variants(dout, cache):
    x, W, b, z = cache
    dz = dout * (z > 0)
    flipped = dout * (z <= 0)
    return {
        "residual_identity_missing": [dz @ W.T, x.T @ dz, dz.sum(axis=0)],
        "relu_mask_flipped": [dout + flipped @ W.T, x.T @ flipped, flipped.sum(axis=0)],
        "transposed": [dout + dz @ W, dz.T @ x, dz.sum(axis=0)],
        "bias_not_summed": [dout + dz @ W.T, x.T @ dz, dz],
    }


def _residual_numeric(dout, cache):
    x, W, b, _ = (a.copy() for a in cache)

    def out():
        return ref.residual_forward(x, W, b)[0]

    return [numerical_gradient_array(out, x, dout), numerical_gradient_array(out, W, dout),
            numerical_gradient_array(out, b, dout)]


register(FunctionCase(
    "residual_forward", ref.residual_forward, residual_inputs, outputs=("out",), returns="pair",
    kinds=("value", "no_mutation"), variants=_residual_forward_variants,
))
register(FunctionCase(
    "residual_backward", ref.residual_backward, residual_backward_inputs, outputs=("dx", "dW", "db"),
    returns="tuple", kinds=("gradient", "no_mutation"), numeric=_residual_numeric,
    variants=_residual_backward_variants,
))
