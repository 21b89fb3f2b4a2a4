"""The catalogue of known mistakes and the detectors that recognise them from output alone.

``diagnose(got, expected, context, variants)`` returns the ids of the mistakes whose
signature matches what a student's function returned: generic ones found by comparing the two
arrays (a factor N, transposed, negated, not summed over the batch, ...), and specific ones
given as ``variants``, i.e. what a known wrong implementation returns on the same input (the
judge computes those; a notebook may pass its own). ``describe`` turns ids into a hint.

Imports only numpy: a copy ships with every release as ``labcheck/diagnostics.py``.
"""
import numpy as np

MATCH_TOL = 1e-6

CATALOGUE = {
    "zero": "The result is all zeros: the computation is missing, or a gradient was initialised and never accumulated.",
    "negated": "The sign is flipped: check the direction of the derivative (e.g. d(y - p)/dp = -1) or of the update (w - lr * dw).",
    "missing_mean": "Off by a factor N: the 1/N of the batch mean is missing. The loss owns the mean, so its gradient carries 1/N.",
    "double_mean": "Too small by a factor N: the batch mean was applied twice. Backward functions never divide by N again.",
    "factor_two": "Off by a factor 2: the derivative of (1/2)(p - y)^2 is (p - y), without the 2.",
    "half": "Half the expected value: a factor 2 was dropped (or a 1/2 applied twice).",
    "transposed": "The result is transposed: a gradient has the shape of what it differentiates (dW like W: x.T @ dout).",
    "bias_not_summed": "The bias gradient was not summed over the batch: db = dout.sum(axis=0) has the shape of b.",
    "wrong_shape": "The shape is wrong: every gradient has exactly the shape of the variable it belongs to.",
    "sigmoid_at_z": "The sigmoid derivative was taken at z instead of at a = sigmoid(z): use a * (1 - a).",
    "tanh_at_z": "The tanh derivative was taken at z instead of at a = tanh(z): use 1 - a**2.",
    "relu_mask_flipped": "The ReLU mask is on the wrong side of 0: the gradient passes where z > 0 and is 0 elsewhere.",
    "overwrite_not_accumulate": "A gradient was overwritten instead of accumulated: a node used twice needs grad += ..., not grad = ....",
    "softmax_no_shift": "Overflow at large inputs: subtract the row maximum before exponentiating (softmax is unchanged by the shift).",
    "unstable_sigmoid": "Overflow at large |z|: compute sigmoid with exp(-|z|) so the exponent never grows.",
    "one_sided_difference": "A one-sided difference (f(x+h) - f(x)) / h was used; the central difference (f(x+h) - f(x-h)) / 2h is accurate to O(h^2).",
    "input_not_restored": "The perturbed entry of x was not restored after the difference, so later entries see a shifted x.",
    "time_not_summed": "The weight gradients were not summed over time: every step uses the same weights, so every step contributes.",
    "dh_not_carried": "The gradient carried back from the next step (dh_prev) was dropped: each step receives dh[:, t] plus what flows back from t+1.",
    "only_carried": "The upstream gradient of the step, dh[:, t], was not added to the gradient carried back from step t+1.",
    "cache_off_by_one": "dWh used h[t] where it needs the previous state h[t-1] (h0 at t = 0).",
    "truncation_wrong": "The truncation window is off: the gradient of each loss term reaches back exactly k steps.",
    "adam_no_bias_correction": "Adam without bias correction: divide m by (1 - beta1**t) and v by (1 - beta2**t); early steps are far too small otherwise.",
    "adam_t_off_by_one": "The step count is off by one: increment t before using it, so the first step uses t = 1.",
    "eps_inside_root": "eps is inside the square root: the update divides by (sqrt(v) + eps), as torch.optim does.",
    "momentum_flipped": "The momentum convention is flipped: torch keeps v = momentum * v + dw and steps w - lr * v.",
    "state_not_written_back": "The optimizer state was not written back into config, so every step starts from scratch.",
    "clip_per_element": "Clipped element by element instead of by the global norm: scale every array by max_norm / total_norm.",
    "clip_per_parameter": "Each array was clipped by its own norm: the global norm is taken over all arrays together.",
    "mutation": "An argument was modified in place: work on copies so the caller's arrays stay as they were.",
    "not_deterministic": "Two calls with the same inputs disagree: hidden state or randomness leaks between calls.",
}


def _scale(got, expected):
    """Least-squares factor c with got ~ c * expected, and the relative residual."""
    denom = float(np.sum(expected * expected))
    if denom == 0.0:
        return None, np.inf
    c = float(np.sum(got * expected)) / denom
    residual = float(np.max(np.abs(got - c * expected))) / max(float(np.max(np.abs(expected))) * abs(c), 1e-300)
    return c, residual


def _close(a, b, tol=MATCH_TOL):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False
    return float(np.max(np.abs(a - b), initial=0.0)) <= tol * max(float(np.max(np.abs(b), initial=0.0)), 1e-12)


def _near(value, target, tol=1e-6):
    return abs(value - target) <= tol * max(abs(target), 1.0)


def diagnose(got, expected, context=None, variants=None):
    """Ids of catalogued mistakes that explain ``got`` where ``expected`` was right."""
    context = context or {}
    found = []
    for mistake, produced in (variants or {}).items():
        if isinstance(produced, np.ndarray) and isinstance(got, np.ndarray) and _close(got, produced):
            found.append(mistake)
        elif np.isscalar(produced) and np.isscalar(got) and _close(got, produced):
            found.append(mistake)
    if found:
        return found
    got = np.asarray(got, dtype=float) if np.isscalar(got) else got
    expected = np.asarray(expected, dtype=float)
    if not isinstance(got, np.ndarray) or got.dtype.kind not in "biuf":
        return found
    got = got.astype(float)
    if got.shape != expected.shape:
        if expected.ndim >= 2 and got.shape == expected.T.shape and _close(got.T, expected):
            return ["transposed"]
        if got.ndim == expected.ndim + 1 and got.shape[1:] == expected.shape:
            if _close(got.sum(axis=0), expected) or _close(got.mean(axis=0), expected):
                return ["bias_not_summed"]
        return ["wrong_shape"]
    if not np.all(np.isfinite(got)):
        return found
    if np.all(got == 0) and np.any(expected != 0):
        return ["zero"]
    c, residual = _scale(got, expected)
    if c is None or residual > 1e-5:
        return found
    n, t = context.get("N"), context.get("T")
    if _near(c, -1.0, 1e-5):
        found.append("negated")
    elif n and n > 1 and _near(c, float(n), 1e-5):
        found.append("missing_mean")
    elif n and n > 1 and _near(c, 1.0 / n, 1e-5):
        found.append("double_mean")
    elif _near(c, 2.0, 1e-5):
        found.append("factor_two")
    elif _near(c, 0.5, 1e-5):
        found.append("half")
    elif t and t > 1 and (_near(c, 1.0 / t, 1e-5) or _near(c, float(t), 1e-5)):
        found.append("time_not_summed")
    return found


def describe(mistakes):
    """A one-line 'Likely mistake' hint for the first recognised mistake, or ''."""
    for mistake in mistakes:
        if mistake in CATALOGUE:
            return f" Likely mistake: {CATALOGUE[mistake]}"
    return ""
