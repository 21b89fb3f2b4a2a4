"""Hidden checks of notebook 02 (forward pass): layers, activations, softmax, losses, the MLP.

Every value check of a function that can overflow feeds it entries at +-750..1000, where a
naive formula returns NaN or inf (or, for the sigmoid, the right number after an overflow).
The value probes run each call with NumPy's overflow turned into an error, then again without,
so the judge learns both what came back and whether computing it overflowed.
"""
import copy
import textwrap

import numpy as np

from solutions import forward_pass as ref

from . import register
from .base import Check, CheckResult, FunctionCase, Outcome, Probe, compare_outputs, first_failure
from ..diagnostics import describe

ACTIVATIONS = ("relu", "tanh", "sigmoid")
LAYERS = ("affine_forward", "relu_forward", "sigmoid_forward", "tanh_forward")

# The call runs once with over/invalid/divide raised (on a copy of the inputs, in case it writes
# into them), and again as the student wrote it when that raised.
WATCHED_CALL = """\
import copy as __bpl_copy
import numpy as __bpl_np
__bpl_overflow = ""
__bpl_given = inputs
inputs = __bpl_copy.deepcopy(__bpl_given)
try:
    with __bpl_np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
{strict_call}except FloatingPointError as __bpl_error:
    __bpl_overflow = str(__bpl_error) or "a floating-point error"
    inputs = __bpl_given
{call}"""

# The reference layers stand in for the student's under their names while the probe runs, so a
# mistake in relu_forward is not charged to mlp_forward as well; the student's own come back after.
def _indent(code, levels):
    return textwrap.indent(code, "    " * levels)


def _scalar(value):
    """A loss variant as a 0-d array: ``diagnose`` matches a float result only against arrays."""
    return np.array(float(value))


def _nonfinite_match(got, produced, tol=1e-6):
    """True when ``got`` has NaN and inf exactly where ``produced`` has them and agrees elsewhere."""
    got, produced = np.asarray(got), np.asarray(produced)
    if got.shape != produced.shape or got.dtype.kind not in "biuf" or np.all(np.isfinite(produced)):
        return False
    got = got.astype(float)
    for mask in (np.isnan, np.isposinf, np.isneginf):
        if not np.array_equal(mask(got), mask(produced)):
            return False
    finite = np.isfinite(produced)
    scale = max(float(np.max(np.abs(produced[finite]), initial=0.0)), 1e-12)
    return float(np.max(np.abs(got[finite] - produced[finite]), initial=0.0)) <= tol * scale


def _has_nonfinite(value):
    value = np.asarray(value)
    return value.dtype.kind in "biuf" and not np.all(np.isfinite(value))


class ForwardCase(FunctionCase):
    """A FunctionCase whose value trials differ by design and whose failures at extreme inputs are named.

    ``make_inputs(rng, trial)`` gets the index of the value trial (so every check covers, e.g.,
    a 1-D input or all three activations), or None for a property check, which gets ordinary
    values only: a NaN from an unstable formula costs the value check, not the properties.
    ``stability`` is the catalogue id named when the result is not finite where the reference's
    is, or when computing it overflowed; with ``strict`` an overflow fails the value check even
    when the values are right (the sigmoid 1 / (1 + exp(-z)) reaches 0 at z = -1000 through
    exp(1000) = inf).
    """

    def __init__(self, function, reference, make_inputs, *, stability=None, strict=False, **kwargs):
        super().__init__(function, reference, lambda rng: make_inputs(rng, None), **kwargs)
        self.trial_inputs = make_inputs
        self.stability = stability
        self.strict = strict

    def build(self, kind, rng):
        if kind != "value":
            return super().build(kind, rng)
        trials = [self.trial_inputs(rng, trial) for trial in range(self.trials)]
        call = self._call_code()
        code = WATCHED_CALL.format(strict_call=_indent(call, 2), call=_indent(call, 1)) + \
            f"return {{'out': {self._select_code()}, 'overflow': __bpl_overflow}}"
        probes = [Probe(code, dict(zip(("args", "kwargs"), self._split(t))), self.timeout)
                  for t in trials]
        return Check(kind, probes, lambda outcomes: self._judge_values(kind, trials, outcomes))

    def _judge_values(self, kind, trials, outcomes):
        unwrapped = [(Outcome("ok", o.value["out"]), str(o.value["overflow"])) if o.ok else (o, "") for o in outcomes]
        failure = first_failure(self.function, [outcome for outcome, _ in unwrapped])
        if failure:
            return failure
        for inputs, (outcome, overflow) in zip(trials, unwrapped):
            got, expected = list(outcome.value), self.expected(inputs)
            variants = self.variants(**copy.deepcopy(inputs))
            result = self._float_form(got, expected) or compare_outputs(
                self.function, self.outputs, got, expected, tol=self.tol, context=self.context(**inputs), variants=variants)
            if not result.passed and not result.mistakes:
                result = self._explain_extremes(result, got, overflow, variants)
            elif result.passed and overflow and self.strict:
                result = CheckResult(False, f"{self.function} returns the right values, but computing them overflowed "
                                            f"('{overflow}') on inputs that reach ±1000: they come out right only because "
                                            f"NumPy turned the overflow into inf. A stable formula never overflows."
                                            f"{describe([self.stability])}",
                                     [self.stability])
            if not result.passed:
                return result
        extremes = ", inputs in the hundreds (up to ±1000) included" if self.stability else ""
        return CheckResult(True, f"matches the reference on {len(trials)} fresh input sets{extremes}")

    def _float_form(self, got, expected):
        """A clear failure when a loss comes back as an array (0-d or (1,)) instead of a float."""
        if len(got) != len(expected):
            return None
        for name, g, e in zip(self.outputs, got, expected):
            if not isinstance(e, np.ndarray) and type(g) is np.ndarray:
                return CheckResult(False, f"{self.function}: {name} is a numpy.ndarray of shape {g.shape}, not a float. "
                                          "A loss is a single number: return float(...) of it (a 0-d or shape-(1,) "
                                          "array is still an array).")
        return None

    def _explain_extremes(self, result, got, overflow, variants):
        """Name the stability mistake behind a NaN/inf result (``compare`` only matches finite outputs)."""
        if not self.stability or not (overflow or any(_has_nonfinite(g) for g in got if not isinstance(g, (str, dict)))):
            return result
        found = [mistake for mistake, produced in variants.items()
                 if all(_nonfinite_match(g, p) for g, p in zip(got, produced))]
        mistake = found[0] if found else self.stability
        where = f"; computing it hit '{overflow}'" if overflow else ""
        return CheckResult(False, f"{result.message.rstrip('.')}{where}.{describe([mistake])}", [mistake])


def _dims(rng):
    """Distinct, non-square sizes so a transposed or broadcast mistake cannot pass by accident."""
    n, d, m = rng.choice(np.arange(3, 9), size=3, replace=False)
    return int(n), int(d), int(m)


def _quiet(function, *args):
    with np.errstate(all="ignore"):
        return function(*args)


# ---- affine and activations ------------------------------------------------------------------

def affine_inputs(rng, trial=None):
    n, d, m = _dims(rng)
    return {"x": rng.normal(size=(n, d)), "W": rng.normal(size=(d, m)), "b": rng.normal(size=m)}


def activation_inputs(rng, trial=None):
    """(N, H) with entries at +-750 and +-1000 (value trials); trial 2 is 1-D (activations take any shape)."""
    n, d, _ = _dims(rng)
    z = rng.normal(scale=3.0, size=(n, d))
    if trial is not None:
        z[0, 0], z[-1, -1], z[0, -1], z[-1, 0] = 1000.0, -1000.0, -750.0, 750.0
    return {"z": z.ravel() if trial == 2 else z}


register(ForwardCase(
    "affine_forward", ref.affine_forward, affine_inputs, outputs=("out",), returns="pair",
    variants=lambda x, W, b: {"bias_missing": [x @ W], "affine_transposed": [(x @ W + b).T]},
))
register(ForwardCase(
    "sigmoid_forward", ref.sigmoid_forward, activation_inputs, outputs=("a",), returns="pair",
    stability="unstable_sigmoid", strict=True,
    variants=lambda z: {"unstable_sigmoid": [_quiet(lambda v: np.exp(v) / (1 + np.exp(v)), z)]},
))
register(ForwardCase(
    "tanh_forward", ref.tanh_forward, activation_inputs, outputs=("a",), returns="pair", stability="unstable_tanh",
    variants=lambda z: {"unstable_tanh": [_quiet(lambda v: (np.exp(v) - np.exp(-v)) / (np.exp(v) + np.exp(-v)), z)]},
))
register(ForwardCase(
    "relu_forward", ref.relu_forward, activation_inputs, outputs=("a",), returns="pair",
    variants=lambda z: {"relu_minimum": [np.minimum(z, 0)]},
))


# ---- softmax -------------------------------------------------------------------------------------

def softmax_inputs(rng, trial=None):
    """(N, C) scores; row 0 is shifted by +1000, so exp overflows unless each row's maximum is taken out."""
    n, c, _ = _dims(rng)
    z = rng.normal(scale=4.0, size=(n, c))
    if trial is not None:
        z[0] += 1000.0
    return {"z": z}


def _softmax_variants(z):
    def normalised(e, axis):
        return e / e.sum(axis=axis, keepdims=True)
    return {
        "softmax_no_shift": [_quiet(lambda v: normalised(np.exp(v), 1), z)],
        "softmax_global_max": [_quiet(lambda v: normalised(np.exp(v - v.max()), 1), z)],
        "softmax_wrong_axis": [_quiet(lambda v: normalised(np.exp(v - v.max(axis=0, keepdims=True)), 0), z)],
    }


register(ForwardCase("softmax", ref.softmax, softmax_inputs, outputs=("p",), stability="softmax_no_shift",
                     variants=_softmax_variants))


# ---- losses --------------------------------------------------------------------------------------

def regression_inputs(rng, trial=None):
    """(N, M) predictions and targets; trial 2 is one output per example, shape (N,)."""
    n, m, _ = _dims(rng)
    shape = (n,) if trial == 2 else (n, m)
    return {"pred": rng.normal(size=shape), "y": rng.normal(size=shape)}


def _mse_variants(pred, y):
    squared = (pred - y) ** 2
    return {"factor_two": [_scalar(np.sum(squared) / len(pred))],
            "missing_mean": [_scalar(0.5 * np.sum(squared))],
            "mse_mean_over_outputs": [_scalar(np.mean(squared))]}


def binary_inputs(rng, trial=None):
    """Logits with +-900 entries: confidently right in every trial, confidently wrong in trials 0 and 2.

    Trial 1 keeps the loss of the ordinary entries from being swamped by the +-900 ones; trial 2
    has shape (N, 1).
    """
    n = int(rng.integers(6, 13))
    logits = rng.normal(scale=3.0, size=n)
    y = rng.integers(0, 2, size=n).astype(float)
    if trial is None:
        return {"logits": logits, "y": y}
    logits[:2], y[:2] = (900.0, -900.0), (1.0, 0.0)
    if trial != 1:
        logits[2:4], y[2:4] = (900.0, -900.0), (0.0, 1.0)
    if trial == 2:
        return {"logits": logits[:, None], "y": y[:, None]}
    return {"logits": logits, "y": y}


def _bce_variants(logits, y):
    def naive(s):
        p = 1.0 / (1.0 + np.exp(-s))
        return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return {"bce_unstable": [_scalar(_quiet(naive, logits))]}


def categorical_inputs(rng, trial=None):
    """(N, C) logits: row 0 shifted by +1000; in trials 0 and 2 row 1 puts +1000 on a wrong class."""
    n, c, _ = _dims(rng)
    logits = rng.normal(scale=3.0, size=(n, c))
    y = rng.integers(0, c, size=n)
    if trial is None:
        return {"logits": logits, "y": y}
    logits[0] += 1000.0
    if trial != 1:
        logits[1, (y[1] + 1 + rng.integers(c - 1)) % c] += 1000.0
    return {"logits": logits, "y": y}


def _ce_variants(logits, y):
    rows = np.arange(len(y))

    def log_of(probs):
        return float(-np.mean(np.log(probs[rows, y])))
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    with np.errstate(all="ignore"):
        unshifted = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return {"softmax_no_shift": [_scalar(log_of(unshifted))],
                "ce_log_of_softmax": [_scalar(log_of(ref.softmax(logits)))],
                "ce_label_indexing": [_scalar(-np.mean(log_probs[:, y]))]}


register(ForwardCase("mse_loss", ref.mse_loss, regression_inputs, outputs=("loss",), variants=_mse_variants))
register(ForwardCase("binary_cross_entropy", ref.binary_cross_entropy, binary_inputs, outputs=("loss",),
                     stability="bce_unstable", variants=_bce_variants))
register(ForwardCase("softmax_cross_entropy", ref.softmax_cross_entropy, categorical_inputs, outputs=("loss",),
                     stability="ce_log_of_softmax", variants=_ce_variants))


# ---- the MLP -------------------------------------------------------------------------------------

def mlp_inputs(rng, trial=None):
    """Trials 0-2: 2 or 3 layers with each hidden activation once; trial 3: one layer with an output activation.

    A property check (trial None) gets 1 to 3 layers and a random hidden activation.
    """
    n, d, m = _dims(rng)
    depth = 0 if trial == 3 else int(rng.integers(0 if trial is None else 1, 3))
    hidden = [int(h) for h in rng.integers(4, 9, size=depth)]
    sizes = [d] + hidden + [m]
    params = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{layer}"] = rng.normal(scale=np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
        params[f"b{layer}"] = rng.normal(scale=0.1, size=fan_out)
    activation = ACTIVATIONS[trial] if trial in (0, 1, 2) else str(rng.choice(ACTIVATIONS))
    inputs = {"X": rng.normal(size=(n, d)), "params": params, "hidden_activation": activation}
    if trial == 3:
        inputs["output_activation"] = "sigmoid"
    return inputs


def _network(X, params, activations):
    """The reference network with one activation name (or None) per layer."""
    out = X
    for layer, activation in enumerate(activations, start=1):
        out = ref.affine_forward(out, params[f"W{layer}"], params[f"b{layer}"])[0]
        out = _activate(out, activation)
    return out


def _activate(z, activation):
    forward = {"relu": ref.relu_forward, "sigmoid": ref.sigmoid_forward, "tanh": ref.tanh_forward}
    return forward[activation](z)[0] if activation else z


def _mlp_variants(X, params, hidden_activation="relu", output_activation=None):
    hidden = [hidden_activation] * (len(params) // 2 - 1)
    with_hidden_last = _activate(_network(X, params, hidden + [hidden_activation]), output_activation)
    return {"mlp_output_activation": [with_hidden_last],
            "mlp_no_hidden_activation": [_network(X, params, [None] * len(hidden) + [output_activation])],
            "mlp_activation_ignored": [_network(X, params, ["relu"] * len(hidden) + [output_activation])]}


register(ForwardCase(
    "mlp_forward", ref.mlp_forward, mlp_inputs, outputs=("out",), returns="pair", trials=4,
    keywords=("hidden_activation", "output_activation"), variants=_mlp_variants,
    depends=LAYERS,
))
