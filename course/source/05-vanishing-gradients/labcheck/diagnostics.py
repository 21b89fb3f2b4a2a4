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
    "factor_two": "Off by a factor 2: the loss (1/2)(p - y)^2 keeps its 1/2, and its derivative is (p - y), without the 2.",
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
    "finite_differences": ("Backpropagation costs about as much as one forward pass; finite differences cost two forward "
                           "passes per input entry. Use the chain rule (e.g. dW = x.T @ dout), not perturbed forward calls."),
    "input_not_restored": "The perturbed entry of x was not restored after the difference, so later entries see a shifted x.",
    "time_not_summed": "The weight gradients were not summed over time: every step uses the same weights, so every step contributes.",
    "dh_not_carried": "The gradient carried back from the next step (dh_prev) was dropped: each step receives dh[:, t] plus what flows back from t+1.",
    "only_carried": "The upstream gradient of the step, dh[:, t], was not added to the gradient carried back from step t+1.",
    "cache_off_by_one": "dWh used h[t] where it needs the previous state h[t-1] (h0 at t = 0).",
    "truncation_wrong": "The truncation window is off: the gradient of each loss term reaches back exactly k steps.",
    "adam_no_bias_correction": "Adam without bias correction: divide m by (1 - beta1**t) and v by (1 - beta2**t); otherwise the early steps are off by (1 - beta1**t) / sqrt(1 - beta2**t), about 3x too large at t = 1 with the default betas.",
    "adam_t_off_by_one": "The step count is off by one: increment t before using it, so the first step uses t = 1.",
    "eps_inside_root": "eps is inside the square root: the update divides by (sqrt(v) + eps), as torch.optim does.",
    "momentum_flipped": "The momentum convention is flipped: torch keeps v = momentum * v + dw and steps w - lr * v.",
    "state_not_written_back": "The optimizer state was not written back into config, so every step starts from scratch.",
    "clip_per_element": "Clipped element by element instead of by the global norm: scale every array by max_norm / total_norm.",
    "clip_per_parameter": "Each array was clipped by its own norm: the global norm is taken over all arrays together.",
    "mutation": "An argument was modified in place: work on copies so the caller's arrays stay as they were.",
    "not_deterministic": "Two calls with the same inputs disagree: hidden state or randomness leaks between calls.",
    # 05-vanishing-gradients
    "xavier_fan_in_only": "The spread uses fan_in alone: Xavier (Glorot) initialisation averages both sides, std = sqrt(2 / (fan_in + fan_out)).",
    "he_missing_two": "The spread is too small by a factor sqrt(2): He initialisation uses std = sqrt(2 / fan_in); the 2 makes up for ReLU zeroing about half of its inputs.",
    "init_ignores_rng": "The draws do not come from the rng argument alone: draw with rng.normal(...) (no np.random.* functions, no fixed seed), so one seed always gives the same matrix and different seeds give different ones.",
    "norms_reversed": "The norms are in reverse order: the backward pass meets the last hidden layer first, so reverse the list to put the first hidden layer first.",
    "leaky_slope_flipped": "The Leaky ReLU slope is on the wrong side of 0: the gradient passes unchanged where z > 0 and is multiplied by alpha where z <= 0.",
    "residual_identity_missing": "The identity path is missing: out = x + relu(x @ W + b), so dx = dout + (dout * (z > 0)) @ W.T; the identity hands dout to x unchanged.",
    # 02-forward-pass
    "bias_missing": "The bias is missing: an affine layer adds b (shape (M,)) to every row, out = x @ W + b.",
    "affine_transposed": "The output is transposed: out = x @ W + b has one row per example, shape (N, M). (The seed article's W is (out, in) and acts on a column; ours is its transpose.)",
    "unstable_tanh": "Overflow at large |z|: (exp(z) - exp(-z)) / (exp(z) + exp(-z)) becomes inf / inf. Use np.tanh, which is exact for every z.",
    "relu_minimum": "np.minimum(z, 0) keeps the wrong side of 0: ReLU is np.maximum(z, 0), z where z > 0 and 0 elsewhere.",
    "softmax_wrong_axis": "Normalised over the wrong axis: each row is one example and must sum to 1, so take the max and the sum over axis=1 (keepdims=True).",
    "softmax_global_max": "Shifted by the maximum of the whole array: a row far below it underflows to 0 / 0. Subtract each row's own maximum, z.max(axis=1, keepdims=True).",
    "mse_mean_over_outputs": "Averaged over the M outputs as well: L = (1/2N) sum_i ||pred_i - y_i||^2 sums the squared errors of one example and averages over the N examples only (np.mean of every entry divides by N*M).",
    "bce_unstable": "Not stable at large |s|: sigmoid(s) rounds to exactly 0 or 1, so its log is -inf (and 0 * -inf is NaN), and exp(s) overflows. Work with the logits: loss_i = logaddexp(0, s_i) - y_i * s_i.",
    "ce_log_of_softmax": "The log of a probability that rounded to 0 (or of inf / inf): compute the log-probabilities directly with log-sum-exp, z - m - log(sum(exp(z - m))) with m the row maximum.",
    "ce_label_indexing": "log_probs[:, y] picks an (N, N) block: take one entry per example, log_probs[np.arange(N), y].",
    "mlp_output_activation": "The hidden activation was applied after the last layer too: the last layer uses output_activation only (None means raw scores).",
    "mlp_no_hidden_activation": "No activation between the layers: apply hidden_activation after every layer but the last (without it the whole network is one affine map).",
    "mlp_activation_ignored": "hidden_activation was ignored (ReLU everywhere): choose the activation by its name, e.g. from a dict {\"relu\": relu_forward, ...}.",
    # 01-chain-rule
    "h_ignored": "The step h passed in was not used: estimate with the h you are given (1e-5 is only its default).",
    "difference_not_halved": "The central difference spans 2h, from x - h to x + h: divide by 2 * h, not by h.",
    "reflected_operands_swapped": "A reflected operator has its operands swapped: 2 - v calls v.__rsub__(2), which must return other - self (2 - v), not self - other; likewise __rtruediv__ returns other / self.",
    "pow_missing_exponent": "The derivative of x**n is n * x**(n - 1): the factor n is missing (division a / b = a * b**-1 inherits the mistake).",
    "log_derivative_wrong": "The derivative of log(x) is 1 / x, taken at the input x: self.grad += out.grad / self.data.",
    "backward_not_topological": "backward() did not visit the whole graph in reverse topological order: sort every node (depth-first, a node after all of its inputs), then call _backward from the output back to the leaves, once per node, so each node passes its gradient on only when it is complete.",
    # 06-bptt
    "state_not_fed_back": "The hidden state is not fed back: step t starts from the state the step before produced (h[:, t-1]; h0 only at t = 0), not from h0 at every step.",
    "tanh_applied_twice": "tanh was applied twice: the cache holds the activation h = tanh(z) already, so tanh'(z) = 1 - h**2, not 1 - tanh(h)**2.",
    "clip_not_applied": "The update used the raw gradients instead of the clipped ones: move every parameter along the dict that clip_by_global_norm returns.",
    # 04-optimizers
    "adagrad_not_squared": "Adagrad's sum accumulates the squared gradient, sum + dw**2; a sum of raw gradients can turn negative and its root NaN.",
    "adam_eps_before_correction": "eps was added before the bias correction of v: torch divides by sqrt(v) / sqrt(1 - beta2**t) + eps, so eps is not rescaled.",
    "momentum_first_step_damped": "The first gradient was damped: torch sets the velocity to the gradient itself on the first step; dampening applies from the second step on.",
    "minibatch_last_dropped": "The last, smaller batch was dropped: when N is not a multiple of batch_size the final batch holds the N % batch_size remaining rows.",
    # 03-backward-pass
    "ce_missing_one_hot": "The one-hot of the correct class was not subtracted: dL/dlogits = (softmax(logits) - one_hot(y)) / N, so each row's correct class loses 1/N.",
    "bce_grad_wrt_probability": "This is the gradient for the probability p = sigmoid(s), not for the logit s: the chain rule through the sigmoid multiplies by p(1 - p), which cancels the denominator and leaves (p - y) / N.",
    "output_not_copied": "f returned a view of x, and that earlier output changed when x was nudged again: copy it (f(x).copy()) before the next nudge, or reduce it to a number at once.",
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


def _numeric(value):
    return isinstance(value, np.ndarray) or (np.isscalar(value) and not isinstance(value, (str, bytes)))


def _near(value, target, tol=1e-6):
    return abs(value - target) <= tol * max(abs(target), 1.0)


def diagnose(got, expected, context=None, variants=None):
    """Ids of catalogued mistakes that explain ``got`` where ``expected`` was right."""
    context = context or {}
    found = []
    for mistake, produced in (variants or {}).items():
        if _numeric(produced) and _numeric(got) and _close(got, produced):
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
