"""Hidden checks of notebook 04 (optimizers): the update rules and mini-batching.

An update rule is judged by the path it takes: a probe threads ``config`` through several
calls of the student's rule with gradients the judge chose (sometimes changing ``config["lr"]``
between calls, as a learning-rate schedule would), and brings back every ``w`` and the final
state. The judge replays the same calls with the reference and with known wrong rules, so a
mismatch names its likely cause. Displacements ``w_k - w_0`` are compared, not ``w_k``, so a
wrong step is not hidden behind the size of ``w``.

Kinds: ``value`` (paths from defaults, from random hyper-parameters, under an lr schedule),
``state`` (the state in the returned config, and resuming from a given state),
``no_mutation`` (``w``, ``dw`` and the passed config, arrays included, unchanged),
``first_step`` (Adam from zero state moves by exactly ``-lr * sign(dw)``),
``tiny_gradient`` (gradients near 1e-6 tell where eps sits), ``convergence`` (the student's
rule minimises ill-conditioned quadratics the judge drew; the judge evaluates the loss), and
for ``minibatches`` ``property`` and ``no_mutation``.
"""
import math

import numpy as np

from solutions import optimizers as ref

from ..checks import compare, mutation_problem
from ..diagnostics import CATALOGUE, MATCH_TOL, describe
from . import register
from .base import Case, Check, CheckResult, Probe, first_failure, mistakes_in, rejected_problem

STATE_KEYS = {
    "sgd": (),
    "sgd_momentum": ("velocity",),
    "rmsprop": ("square_avg",),
    "adagrad": ("sum", "t"),
    "adam": ("m", "v", "t"),
}

# ---- running a rule the way the probe does --------------------------------------------------

RUN_PROBE = """\
w = inputs['w']
config = inputs['config']
lrs = inputs['lrs']
trajectory = []
for step, dw in enumerate(inputs['grads']):
    if lrs is not None:
        config = dict(config or {{}})
        config['lr'] = lrs[step]
    ret = select({function}(w, dw, config), 'tuple', 2)
    if type(ret) is dict:
        return ret
    w, config = ret
    if type(config) is not dict:
        return {{'__bad_return__': 'returned a config of type ' + type(config).__name__ + ', expected a dict'}}
    trajectory.append(w.copy() if type(w).__name__ == 'ndarray' and type(w).__module__ == 'numpy' else w)
return {{'trajectory': trajectory, 'state': {{key: config[key] for key in {keys!r} if key in config}}}}
"""

MUTATION_PROBE = """\
w, dw, config = inputs['w'], inputs['dw'], inputs['config']
ret = select({function}(w, dw, config), 'tuple', 2)
if type(ret) is dict:
    return ret
return {{'out': ret[0], 'w': w, 'dw': dw, 'config': config}}
"""

CONVERGENCE_PROBE = """\
A, b, w = inputs['A'], inputs['b'], inputs['w0']
config = inputs['config']
for _ in range(inputs['steps']):
    ret = select({function}(w, A @ w - b, config), 'tuple', 2)
    if type(ret) is dict:
        return ret
    w, config = ret
    if type(config) is not dict:
        return {{'__bad_return__': 'returned a config of type ' + type(config).__name__ + ', expected a dict'}}
return [w]
"""


def run_rule(rule, w, grads, config, lrs=None):
    """Thread ``config`` through ``rule`` exactly as the probe does; returns (weights after each step, final config)."""
    trajectory = []
    for step, dw in enumerate(grads):
        if lrs is not None:
            config = dict(config or {})
            config["lr"] = lrs[step]
        w, config = rule(w, dw, config)
        trajectory.append(w)
    return trajectory, config


def runner(rule):
    """A run function ``(w, grads, config, lrs) -> (trajectory, config)`` for a per-step rule."""
    return lambda w, grads, config, lrs=None: run_rule(rule, w, grads, config, lrs)


# ---- known wrong rules (what a student's mistake would produce) -----------------------------

def negated(rule):
    """The same rule stepping uphill: w + step instead of w - step."""
    def wrong(w, dw, config=None):
        next_w, config = rule(w, dw, config)
        return w - (next_w - w), config
    return wrong


def not_written_back(rule):
    """Every call sees the config it was first given: new state is computed but never stored."""
    def run(w, grads, config, lrs=None):
        trajectory, current = [], dict(config or {})
        for step, dw in enumerate(grads):
            if lrs is not None:
                current["lr"] = lrs[step]
            w, _ = rule(w, dw, dict(current))
            trajectory.append(w)
        return trajectory, current
    return run


def _grad(w, dw, config):
    return dw + config.get("weight_decay", 0.0) * w


def momentum_flipped(w, dw, config=None):
    """The other momentum convention: lr inside the velocity (v = mu v - lr g, w + v)."""
    config = dict(config) if config else {}
    lr, mu = config.get("lr", 1e-3), config.get("momentum", 0.9)
    dampening, nesterov = config.get("dampening", 0.0), config.get("nesterov", False)
    g = _grad(w, dw, config)
    v = mu * config["velocity"] - lr * (1 - dampening) * g if "velocity" in config else -lr * g
    next_w = w + (mu * v - lr * g if nesterov else v)
    config["velocity"] = v
    return next_w, config


def momentum_first_step_damped(w, dw, config=None):
    """Velocity started at zeros, so the first gradient is damped too."""
    config = dict(config) if config else {}
    mu, dampening = config.get("momentum", 0.9), config.get("dampening", 0.0)
    g = _grad(w, dw, config)
    velocity = mu * config.get("velocity", np.zeros_like(w)) + (1 - dampening) * g
    step = g + mu * velocity if config.get("nesterov", False) else velocity
    config["velocity"] = velocity
    return w - config.get("lr", 1e-3) * step, config


def rmsprop_eps_inside(w, dw, config=None):
    config = dict(config) if config else {}
    lr, alpha, eps = config.get("lr", 1e-2), config.get("alpha", 0.99), config.get("eps", 1e-8)
    g = _grad(w, dw, config)
    square_avg = alpha * config.get("square_avg", np.zeros_like(w)) + (1 - alpha) * g**2
    config["square_avg"] = square_avg
    return w - lr * g / np.sqrt(square_avg + eps), config


def adagrad_not_squared(w, dw, config=None):
    config = dict(config) if config else {}
    lr, lr_decay, eps = config.get("lr", 1e-2), config.get("lr_decay", 0.0), config.get("eps", 1e-10)
    t = config.get("t", 0) + 1
    g = _grad(w, dw, config)
    grad_sum = config.get("sum", np.full_like(w, config.get("initial_accumulator_value", 0.0))) + g
    with np.errstate(invalid="ignore"):
        next_w = w - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(grad_sum) + eps)
    config["sum"], config["t"] = grad_sum, t
    return next_w, config


def adagrad_t_off_by_one(start):
    """Adagrad whose step count is used before it is incremented (t starts at ``start``)."""
    def wrong(w, dw, config=None):
        config = dict(config) if config else {}
        lr, lr_decay, eps = config.get("lr", 1e-2), config.get("lr_decay", 0.0), config.get("eps", 1e-10)
        t = config.get("t", start)
        g = _grad(w, dw, config)
        grad_sum = config.get("sum", np.full_like(w, config.get("initial_accumulator_value", 0.0))) + g**2
        next_w = w - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(grad_sum) + eps)
        config["sum"], config["t"] = grad_sum, t + 1
        return next_w, config
    return wrong


def adam_variant(*, bias_correction=True, t_start=None, eps_form="outside"):
    """Adam with one known mistake.

    ``t_start``: the step count is used before it is incremented, starting at that value (0 gives a
    division by zero on the first step, 1 the right steps but a stored count one too high).
    ``eps_form``: "outside" (torch), "inside" (sqrt(v_hat + eps)), "inside_raw" (sqrt(v + eps)
    before the bias correction) or "before_correction" (sqrt(v) + eps, then the correction).
    """
    def wrong(w, dw, config=None):
        config = dict(config) if config else {}
        lr, (beta1, beta2), eps = config.get("lr", 1e-3), config.get("betas", (0.9, 0.999)), config.get("eps", 1e-8)
        if t_start is None:
            t = config.get("t", 0) + 1
            stored = t
        else:
            t = config.get("t", t_start)
            stored = t + 1
        g = _grad(w, dw, config)
        m = beta1 * config.get("m", np.zeros_like(w)) + (1 - beta1) * g
        v = beta2 * config.get("v", np.zeros_like(w)) + (1 - beta2) * g**2
        with np.errstate(divide="ignore", invalid="ignore"):
            c1, c2 = (1 - beta1**t, 1 - beta2**t) if bias_correction else (1.0, 1.0)
            if eps_form == "outside":
                step = (m / c1) / (np.sqrt(v / c2) + eps)
            elif eps_form == "inside":
                step = (m / c1) / np.sqrt(v / c2 + eps)
            elif eps_form == "inside_raw":
                step = (m / c1) / (np.sqrt(v + eps) / np.sqrt(c2))
            else:
                step = (m / c1) / ((np.sqrt(v) + eps) / np.sqrt(c2))
        config["m"], config["v"], config["t"] = m, v, stored
        return w - lr * step, config
    return wrong


def variant_runs(function):
    """{mistake id: [run functions]} of the known mistakes of ``function``."""
    rule = getattr(ref, function)
    variants = {"negated": [runner(negated(rule))]}
    if STATE_KEYS[function]:
        variants["state_not_written_back"] = [not_written_back(rule)]
    if function == "sgd_momentum":
        variants["momentum_flipped"] = [runner(momentum_flipped)]
        variants["momentum_first_step_damped"] = [runner(momentum_first_step_damped)]
    elif function == "rmsprop":
        variants["eps_inside_root"] = [runner(rmsprop_eps_inside)]
    elif function == "adagrad":
        variants["adagrad_not_squared"] = [runner(adagrad_not_squared)]
        variants["adam_t_off_by_one"] = [runner(adagrad_t_off_by_one(0)), runner(adagrad_t_off_by_one(1))]
    elif function == "adam":
        variants["adam_no_bias_correction"] = [runner(adam_variant(bias_correction=False)),
                                               runner(adam_variant(bias_correction=False, eps_form="inside"))]
        variants["adam_t_off_by_one"] = [runner(adam_variant(t_start=0)), runner(adam_variant(t_start=1))]
        variants["eps_inside_root"] = [runner(adam_variant(eps_form="inside")), runner(adam_variant(eps_form="inside_raw"))]
        variants["adam_eps_before_correction"] = [runner(adam_variant(eps_form="before_correction"))]
    return variants


# ---- drawing inputs --------------------------------------------------------------------------

def _shape(rng):
    if rng.random() < 0.3:
        return (int(rng.integers(3, 9)),)
    n, m = rng.choice(np.arange(2, 7), size=2, replace=False)
    return (int(n), int(m))


def _gradients(rng, shape, steps, scale=None):
    """Gradients of mixed signs and sizes (one size per entry), none near zero."""
    size = 10 ** rng.uniform(-1, 1, size=shape) if scale is None else scale
    return [rng.choice([-1.0, 1.0], size=shape) * size * rng.uniform(0.3, 1.7, size=shape) for _ in range(steps)]


def _log_uniform(rng, low, high):
    return float(10 ** rng.uniform(math.log10(low), math.log10(high)))


def hyper_parameters(function, rng, variant=0):
    """Random non-default hyper-parameters of ``function``; ``variant`` picks the flavour (0 or 1)."""
    weight_decay = 0.0 if rng.random() < 0.4 else float(rng.uniform(0.01, 0.3))
    if function == "sgd":
        return {"lr": _log_uniform(rng, 0.01, 0.3), "weight_decay": weight_decay}
    if function == "sgd_momentum":
        config = {"lr": _log_uniform(rng, 0.01, 0.3), "momentum": float(rng.uniform(0.5, 0.95)),
                  "weight_decay": weight_decay}
        if variant == 0:
            config.update(dampening=float(rng.uniform(0.1, 0.6)), nesterov=False)
        else:
            config.update(dampening=0.0, nesterov=True)
        return config
    if function == "rmsprop":
        return {"lr": _log_uniform(rng, 1e-3, 0.1), "alpha": float(rng.uniform(0.8, 0.99)),
                "eps": _log_uniform(rng, 1e-8, 1e-3), "weight_decay": weight_decay}
    if function == "adagrad":
        return {"lr": _log_uniform(rng, 3e-3, 0.3), "lr_decay": float(rng.uniform(0.01, 0.3)),
                "initial_accumulator_value": float(rng.uniform(0.0, 0.5)), "eps": _log_uniform(rng, 1e-10, 1e-4),
                "weight_decay": weight_decay}
    if function == "adam":
        betas = (float(rng.uniform(0.6, 0.95)), float(rng.uniform(0.9, 0.9999)))
        return {"lr": _log_uniform(rng, 1e-3, 0.1), "betas": betas, "eps": _log_uniform(rng, 1e-8, 1e-3),
                "weight_decay": weight_decay}
    raise KeyError(function)


def _partial(config, rng):
    """A random subset of the keys (lr, and nesterov when it is on, always stay); the rule fills in the defaults."""
    return {k: v for k, v in config.items() if k == "lr" or (k == "nesterov" and v) or rng.random() < 0.5}


def _without_one(config, rng):
    """The config without one of its optional keys, so that a rule filling in defaults must add it."""
    dropped = str(rng.choice([k for k in config if k != "lr" and not (k == "nesterov" and config[k])]))
    return {k: v for k, v in _partial(config, rng).items() if k != dropped}


def _schedule(rng, lr, steps):
    return [float(lr * 10 ** rng.uniform(-0.7, 0.3)) for _ in range(steps)]


def prior_state(function, rng, shape, config):
    """A realistic state: the reference's config after a few steps on other gradients."""
    steps = int(rng.integers(3, 10))
    _, final = run_rule(getattr(ref, function), rng.normal(size=shape), _gradients(rng, shape, steps), dict(config))
    return {key: final[key] for key in STATE_KEYS[function]}


def describe_run(trial):
    config = trial["config"]
    shown = "None (all defaults)" if config is None else "{" + ", ".join(
        f"{k!r}: {_short(v)}" for k, v in config.items() if k not in ("velocity", "square_avg", "sum", "m", "v")) + "}"
    extra = []
    given = [k for k in ("velocity", "square_avg", "sum", "m", "v") if config and k in config]
    if given:
        extra.append("state " + ", ".join(given) + " given")
    if trial["lrs"] is not None:
        extra.append("config['lr'] changed before every call, as a schedule would")
    steps = len(trial["grads"])
    return f"{steps} step{'s' if steps > 1 else ''} from config {shown}" + (f" ({'; '.join(extra)})" if extra else "")


def _short(value):
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return repr(value)


# ---- judging trajectories and states ---------------------------------------------------------

def _nan_close(got, candidate):
    """Close within MATCH_TOL where finite, non-finite in the same places."""
    got, candidate = np.asarray(got, dtype=float), np.asarray(candidate, dtype=float)
    if got.shape != candidate.shape:
        return False
    finite = np.isfinite(got)
    if not np.array_equal(finite, np.isfinite(candidate)):
        return False
    if not finite.any():
        return True
    scale = max(float(np.max(np.abs(candidate[finite]))), 1e-300)
    return float(np.max(np.abs(got[finite] - candidate[finite]))) <= MATCH_TOL * scale


def matching(got, candidates):
    """{mistake id: the candidate output that matches ``got``}."""
    found = {}
    for mistake, outputs in candidates.items():
        for output in outputs:
            if output is not None and _nan_close(got, output):
                found[mistake] = output
                break
    return found


def compare_with_variants(function, name, got, expected, candidates, context=None):
    """'' when ``got`` matches ``expected``, else a message naming the likely mistake."""
    matched = matching(got, candidates) if type(got) is np.ndarray and got.dtype.kind == "f" else {}
    if type(got) is np.ndarray and got.shape == np.shape(expected) and not np.all(np.isfinite(got)):
        bad = int(got.size - np.count_nonzero(np.isfinite(got)))
        message = f"{function}: {name} has {bad} non-finite entr{'y' if bad == 1 else 'ies'} (NaN or inf)."
        return message + describe(list(matched))
    finite = {k: v for k, v in matched.items() if np.all(np.isfinite(v))}
    return compare(function, name, got, expected, context=context, variants=finite)


def _stack(function, items, shape, what):
    """(array of the items stacked, '') or (None, message) when an item has the wrong form."""
    for k, item in enumerate(items, start=1):
        problem = rejected_problem(item)
        if not problem:
            if type(item) is not np.ndarray:
                kind = type(item)
                problem = f"returned {kind.__module__}.{kind.__qualname__}, expected a plain numpy.ndarray"
            elif item.dtype != np.float64:
                problem = f"has dtype {item.dtype}, expected float64"
            elif item.shape != tuple(shape):
                problem = f"has shape {item.shape}, expected {tuple(shape)} (the shape of w)"
        if problem:
            return None, f"{function}: {what} {k} {problem}."
    return np.stack(items) if items else np.zeros((0,) + tuple(shape)), ""


def _moves(path, w0):
    """w_k - w_0 for every step, stacked; a single step as next_w - w without the step axis."""
    moves = np.stack(path) - w0
    return moves[0] if len(moves) == 1 else moves


def _state_value(value):
    return value if type(value) is np.ndarray else None


class UpdateRuleCase(Case):
    """The hidden checks of one update rule ``rule(w, dw, config=None) -> (next_w, config)``."""

    def __init__(self, function, kinds, convergence):
        self.function = function
        self.reference = getattr(ref, function)
        self.kinds = tuple(kinds)
        self.state_keys = STATE_KEYS[function]
        self.convergence = convergence

    # -- probes ----------------------------------------------------------------------------
    def _run_probe(self, trial):
        code = RUN_PROBE.format(function=self.function, keys=self.state_keys)
        return Probe(code, {"w": trial["w"], "grads": trial["grads"], "config": trial["config"], "lrs": trial["lrs"]})

    def _trial(self, rng, config, steps=None, lrs=False, state=False, scale=None):
        shape = _shape(rng)
        steps = steps or int(rng.integers(5, 9))
        if state:
            config = {**(config or {}), **prior_state(self.function, rng, shape, config or {})}
        return {"w": rng.normal(size=shape), "grads": _gradients(rng, shape, steps, scale), "config": config,
                "lrs": _schedule(rng, (config or {}).get("lr", 1e-2), steps) if lrs else None}

    def build(self, kind, rng):
        if kind not in self.kinds:
            raise KeyError(f"{self.function} has no {kind!r} check; it offers {', '.join(self.kinds)}")
        if kind == "value":
            full = hyper_parameters(self.function, rng, 0)
            other = hyper_parameters(self.function, rng, 1)
            trials = [self._trial(rng, None), self._trial(rng, full), self._trial(rng, _partial(other, rng), lrs=True)]
            return self._path_check(kind, trials, check_state=False)
        if kind == "state":
            trials = [self._trial(rng, hyper_parameters(self.function, rng, 0)),
                      self._trial(rng, hyper_parameters(self.function, rng, 1), steps=int(rng.integers(2, 4)), state=True)]
            return self._path_check(kind, trials, check_state=True)
        if kind == "first_step":
            config = {k: v for k, v in hyper_parameters(self.function, rng).items() if k in ("lr", "betas")}
            trials = [self._trial(rng, None, steps=1), self._trial(rng, config, steps=1)]
            for trial in trials:
                trial["note"] = ("From zero state Adam's first step is exactly -lr * sign(dw), whatever the size of dw: "
                                 "the bias-corrected m / sqrt(v) is g / |g| on step 1.")
            return self._path_check(kind, trials, check_state=False)
        if kind == "tiny_gradient":
            trials = [self._trial(rng, None, steps=3, scale=1e-6),
                      self._trial(rng, {"lr": _log_uniform(rng, 1e-3, 1e-1)}, steps=3, scale=2e-6)]
            return self._path_check(kind, trials, check_state=False)
        if kind == "no_mutation":
            return self._build_mutation(rng)
        if kind == "convergence":
            return self._build_convergence(rng)
        raise KeyError(kind)

    # -- value, state, first_step, tiny_gradient -------------------------------------------
    def _path_check(self, kind, trials, check_state):
        probes = [self._run_probe(trial) for trial in trials]
        return Check(kind, probes, lambda outcomes: self._judge_paths(trials, outcomes, check_state))

    def _judge_paths(self, trials, outcomes, check_state):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        variants = variant_runs(self.function)
        for trial, outcome in zip(trials, outcomes):
            value = outcome.value
            if type(value) is not dict or type(value.get("trajectory")) is not list or type(value.get("state")) is not dict:
                return CheckResult(False, f"{self.function}: no usable result came back.")
            result = self._judge_path(trial, value, variants, check_state)
            if not result.passed:
                return result
        if check_state:
            keys = " and ".join(f"config[{k!r}]" for k in self.state_keys)
            return CheckResult(True, f"keeps its state in {keys}, written back and read again on the next call")
        return CheckResult(True, f"follows the reference's path on {len(trials)} fresh runs "
                                 f"({', '.join(str(len(t['grads'])) for t in trials)} steps)")

    def _replay(self, run, trial):
        try:
            with np.errstate(all="ignore"):
                grads = [g.copy() for g in trial["grads"]]
                return run(trial["w"].copy(), grads, _copy_config(trial["config"]), trial["lrs"])
        except (ValueError, ZeroDivisionError, KeyError):
            return None, None

    def _judge_path(self, trial, value, variants, check_state):
        function, steps = self.function, len(trial["grads"])
        run_text = describe_run(trial)
        expected_path, expected_config = self._replay(runner(self.reference), trial)
        replays = {mistake: [self._replay(run, trial) for run in runs] for mistake, runs in variants.items()}
        got_path = value["trajectory"]
        if len(got_path) != steps:
            return CheckResult(False, f"{function}: the run of {steps} calls returned {len(got_path)} weights.")
        stacked, problem = _stack(function, got_path, trial["w"].shape, "next_w of call")
        if problem:
            return CheckResult(False, f"{problem} (Run: {run_text}.)")
        w0 = trial["w"]
        name = f"w_k - w_0 after each call k = 1..{steps} (first index k - 1)" if steps > 1 else "next_w - w"
        candidates = {mistake: [_moves(path, w0) if path is not None else None for path, _ in runs]
                      for mistake, runs in replays.items()}
        message = compare_with_variants(function, name, _moves(stacked, w0), _moves(expected_path, w0), candidates)
        if message:
            if trial.get("note"):
                message += " " + trial["note"]
            return CheckResult(False, f"{message} (Run: {run_text}.)", mistakes_in(message))
        if not check_state:
            return CheckResult(True)
        for key in self.state_keys:
            message = self._judge_state_entry(key, value["state"], expected_config, replays, steps)
            if message:
                return CheckResult(False, f"{message} (Run: {run_text}.)", mistakes_in(message))
        return CheckResult(True)

    def _judge_state_entry(self, key, state, expected_config, replays, steps):
        function = self.function
        label = f"config[{key!r}] returned by call {steps}"
        if key not in state:
            return (f"{function}: the config returned by call {steps} has no {key!r}; keep the state under exactly that "
                    f"name. {CATALOGUE['state_not_written_back']}")
        got, expected = state[key], expected_config[key]
        if key == "t":
            if type(got) not in (int, float) and not isinstance(got, (np.integer, np.floating)):
                kind = type(got)
                return f"{function}: {label} is a {kind.__module__}.{kind.__qualname__}, expected an int."
            if got == expected:
                return ""
            hint = describe(["adam_t_off_by_one"]) if abs(float(got) - expected) == 1 else ""
            return f"{function}: {label} is {got!r}, expected {expected} (the number of steps taken so far).{hint}"
        candidates = {mistake: [_state_value((config or {}).get(key)) for _, config in runs]
                      for mistake, runs in replays.items()}
        return compare_with_variants(function, label, got, expected, candidates)

    # -- no_mutation -------------------------------------------------------------------------
    def _build_mutation(self, rng):
        shape = _shape(rng)
        config = _without_one(hyper_parameters(self.function, rng, int(rng.integers(0, 2))), rng)
        if self.state_keys:
            config.update(prior_state(self.function, rng, shape, config))
        inputs = {"w": rng.normal(size=shape), "dw": _gradients(rng, shape, 1)[0], "config": config}
        probe = Probe(MUTATION_PROBE.format(function=self.function), inputs)
        return Check("no_mutation", [probe], lambda outcomes: self._judge_mutation(inputs, outcomes))

    def _judge_mutation(self, inputs, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        value = outcomes[0].value
        if type(value) is not dict or set(value) != {"out", "w", "dw", "config"}:
            return CheckResult(False, f"{self.function}: no usable result came back.")
        _, problem = _stack(self.function, [value["out"]], inputs["w"].shape, "next_w of call")
        if problem:
            return CheckResult(False, f"{problem} (the no-mutation check needs a well-formed result).")
        for name in ("w", "dw", "config"):
            message = mutation_problem(inputs[name], value[name], name)
            if message:
                advice = (" Copy the dict first (config = dict(config) if config else {}) and store new state in the copy."
                          if name == "config" else "")
                return CheckResult(False, f"{self.function}: {message}. {CATALOGUE['mutation']}{advice}", ["mutation"])
        return CheckResult(True, "leaves w, dw and the config it was given (and its arrays) unchanged")

    # -- convergence -------------------------------------------------------------------------
    def _build_convergence(self, rng):
        problems = [quadratic_problem(rng) for _ in range(2)]
        trials = []
        for A, b, w0 in problems:
            config, steps, _ = self.convergence(A)
            trials.append({"A": A, "b": b, "w0": w0, "config": config, "steps": steps})
        probes = [Probe(CONVERGENCE_PROBE.format(function=self.function), t) for t in trials]
        return Check("convergence", probes, lambda outcomes: self._judge_convergence(trials, outcomes))

    def _judge_convergence(self, trials, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        for trial, outcome in zip(trials, outcomes):
            A, b, w0, steps = trial["A"], trial["b"], trial["w0"], trial["steps"]
            got = outcome.value
            if type(got) is not list or len(got) != 1:
                return CheckResult(False, f"{self.function}: no usable result came back.")
            _, problem = _stack(self.function, got, w0.shape, "the final w of run")
            if problem:
                return CheckResult(False, problem)
            w = got[0]
            kappa = condition_number(A)
            f_star = quadratic_loss(A, b, np.linalg.solve(A, b))
            start_gap = quadratic_loss(A, b, w0) - f_star
            _, _, tolerance = self.convergence(A)
            where = (f"on an ill-conditioned quadratic (dimension {len(b)}, condition number {kappa:.0f}) with config "
                     f"{_config_text(trial['config'])}, {steps} steps")
            if not np.all(np.isfinite(w)):
                return CheckResult(False, f"{self.function} diverged {where}: w has non-finite entries.")
            gap = quadratic_loss(A, b, w) - f_star
            if not gap <= tolerance * start_gap:
                ref_w = minimise(self.reference, A, b, w0, trial["config"], steps)
                ref_gap = (quadratic_loss(A, b, ref_w) - f_star) / start_gap
                reached = "the minimum up to rounding" if ref_gap < 1e-12 else f"{ref_gap:.1g}"
                if gap > start_gap:
                    return CheckResult(False, f"{self.function} moved away from the minimum {where}: the loss ended "
                                              f"{gap / start_gap:.2g} times further above its minimum than it started "
                                              f"(the reference reaches {reached}).")
                return CheckResult(False, f"{self.function} did not get close enough to the minimum {where}: the loss "
                                          f"ended {gap / start_gap:.2g} of its starting distance above the minimum, the "
                                          f"check asks for {tolerance:g} (the reference reaches {reached}).")
        return CheckResult(True, f"minimises {len(trials)} ill-conditioned quadratics the judge drew")


def _copy_config(config):
    if config is None:
        return None
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in config.items()}


def _config_text(config):
    return "{" + ", ".join(f"{k!r}: {_short(v)}" for k, v in config.items()) + "}"


# ---- convergence problems ----------------------------------------------------------------------

def quadratic_problem(rng):
    """(A, b, w0): f(w) = 1/2 w.A.w - b.w with A symmetric positive definite, condition number 10 to 32."""
    d = int(rng.integers(5, 9))
    eigenvalues = np.geomspace(1.0, 10 ** rng.uniform(1.0, 1.5), d)
    rng.shuffle(eigenvalues)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    A = (q * eigenvalues) @ q.T
    A = (A + A.T) / 2
    w_star = rng.normal(size=d)
    return A, A @ w_star, w_star + 2 * rng.normal(size=d)


def quadratic_loss(A, b, w):
    return float(0.5 * w @ A @ w - b @ w)


def condition_number(A):
    eigenvalues = np.linalg.eigvalsh(A)
    return float(eigenvalues[-1] / eigenvalues[0])


def minimise(rule, A, b, w0, config, steps):
    w, config = w0.copy(), _copy_config(config)
    for _ in range(steps):
        w, config = rule(w, A @ w - b, config)
    return w


def _largest_eigenvalue(A):
    return float(np.linalg.eigvalsh(A)[-1])


# config, step budget and tolerance (loss gap as a fraction of the starting gap) per rule; the
# reference stays at least 20x below each tolerance on every problem quadratic_problem draws.
CONVERGENCE = {
    "sgd": lambda A: ({"lr": 1.0 / _largest_eigenvalue(A)}, 400, 1e-6),
    "sgd_momentum": lambda A: ({"lr": 0.5 / _largest_eigenvalue(A), "momentum": 0.8}, 300, 1e-6),
    "rmsprop": lambda A: ({"lr": 0.01, "alpha": 0.99}, 1500, 1e-2),
    "adagrad": lambda A: ({"lr": 0.5}, 600, 1e-3),
    "adam": lambda A: ({"lr": 0.05, "betas": (0.9, 0.99)}, 600, 1e-3),
}

register(UpdateRuleCase("sgd", ("value", "no_mutation", "convergence"), CONVERGENCE["sgd"]))
register(UpdateRuleCase("sgd_momentum", ("value", "state", "no_mutation", "convergence"), CONVERGENCE["sgd_momentum"]))
register(UpdateRuleCase("rmsprop", ("value", "state", "tiny_gradient", "no_mutation", "convergence"),
                        CONVERGENCE["rmsprop"]))
register(UpdateRuleCase("adagrad", ("value", "state", "no_mutation", "convergence"), CONVERGENCE["adagrad"]))
register(UpdateRuleCase("adam", ("value", "state", "first_step", "tiny_gradient", "no_mutation", "convergence"),
                        CONVERGENCE["adam"]))


# ---- minibatches -----------------------------------------------------------------------------

MINIBATCH_PROBE = """\
import inspect
import itertools
import numpy as np
X, y, batch_size = inputs['X'], inputs['y'], inputs['batch_size']
runs = []
for seed in inputs['seeds']:
    batches = minibatches(X, y, batch_size, np.random.default_rng(seed))
    is_generator = inspect.isgenerator(batches)
    taken = [list(item) if type(item) in (tuple, list) else item
             for item in itertools.islice(iter(batches), inputs['max_batches'])]
    runs.append({'generator': is_generator, 'batches': taken})
return {'runs': runs, 'X': X, 'y': y}
"""


def minibatch_inputs(rng, divisible):
    """X with distinct rows (N, D), targets y paired with X by construction, a batch size and three seeds."""
    d = int(rng.integers(2, 6))
    batch_size = int(rng.integers(3, 8))
    batches = int(rng.integers(4, 8))
    n = batch_size * batches + (0 if divisible else int(rng.integers(1, batch_size)))
    X = rng.normal(size=(n, d))
    y = rng.integers(0, 5, size=n) if not divisible else rng.normal(size=(n, 2))
    first, second = (int(s) for s in rng.integers(0, 2**31, size=2))
    return {"X": X, "y": y, "batch_size": batch_size, "seeds": [first, second, first], "max_batches": n + 3}


class MinibatchesCase(Case):
    """``minibatches(X, y, batch_size, rng)``: judged by the properties of the batches it yields."""

    function = "minibatches"
    kinds = ("property", "no_mutation")

    def build(self, kind, rng):
        if kind not in self.kinds:
            raise KeyError(f"minibatches has no {kind!r} check; it offers {', '.join(self.kinds)}")
        trials = [minibatch_inputs(rng, divisible=False)]
        if kind == "property":
            trials.append(minibatch_inputs(rng, divisible=True))
        probes = [Probe(MINIBATCH_PROBE, t) for t in trials]
        judge = self._judge_properties if kind == "property" else self._judge_mutation
        return Check(kind, probes, lambda outcomes: judge(trials, outcomes))

    def _runs(self, outcome):
        value = outcome.value
        if type(value) is not dict or type(value.get("runs")) is not list or len(value["runs"]) != 3:
            return None
        return value

    def _judge_properties(self, trials, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        for trial, outcome in zip(trials, outcomes):
            value = self._runs(outcome)
            if value is None:
                return CheckResult(False, "minibatches: no usable result came back.")
            orders = []
            for run in value["runs"]:
                order, message = self._judge_run(trial, run)
                if message:
                    return CheckResult(False, message, mistakes_in(message))
                orders.append(order)
            n, batch_size = trial["X"].shape[0], trial["batch_size"]
            setting = f"(N = {n}, batch_size = {batch_size})"
            if orders[0] == orders[2] and orders[0] == orders[1]:
                unshuffled = orders[0] == list(range(n))
                return CheckResult(False, f"minibatches: two generators with different rng gave the same order {setting}"
                                          + (", the rows' own order: the rows are not shuffled" if unshuffled else "")
                                          + ". Draw the order from the rng argument, e.g. order = rng.permutation(N).")
            if orders[0] != orders[2]:
                return CheckResult(False, f"minibatches: two generators with equally seeded rngs gave different orders "
                                          f"{setting}. Draw the order from the rng argument (rng.permutation), not from "
                                          "np.random.")
        return CheckResult(True, "a generator that yields every row exactly once, X and y rows paired, full batches and one "
                                 "smaller last batch, in an order drawn from rng")

    def _judge_run(self, trial, run):
        X, y, batch_size = trial["X"], trial["y"], trial["batch_size"]
        n = X.shape[0]
        setting = f"(N = {n}, batch_size = {batch_size})"
        if type(run) is not dict or not run.get("generator"):
            return None, ("minibatches did not return a generator: write it with yield, one (X_batch, y_batch) pair at a "
                          "time, so a whole epoch is never held in memory.")
        batches = run.get("batches")
        if type(batches) is not list:
            return None, "minibatches: no usable result came back."
        if len(batches) > n:
            return None, f"minibatches yielded more than N = {n} batches: it does not stop after one pass over the data."
        rows = {X[i].tobytes(): i for i in range(n)}
        order, sizes = [], []
        for k, batch in enumerate(batches, start=1):
            if type(batch) is not list or len(batch) != 2:
                return None, f"minibatches: batch {k} is not an (X_batch, y_batch) pair."
            X_batch, y_batch = batch
            for name, got, full in (("X_batch", X_batch, X), ("y_batch", y_batch, y)):
                problem = rejected_problem(got)
                if not problem and type(got) is not np.ndarray:
                    problem = f"is a {type(got).__module__}.{type(got).__qualname__}, expected a numpy.ndarray"
                if not problem and (got.ndim != full.ndim or got.shape[1:] != full.shape[1:] or got.dtype != full.dtype):
                    problem = (f"has shape {got.shape} and dtype {got.dtype}; expected rows of {name[0]}: "
                               f"shape (B,) + {full.shape[1:]}, dtype {full.dtype}")
                if problem:
                    return None, f"minibatches: {name} of batch {k} {problem}."
            if X_batch.shape[0] != y_batch.shape[0]:
                return None, f"minibatches: batch {k} has {X_batch.shape[0]} rows of X but {y_batch.shape[0]} of y."
            sizes.append(X_batch.shape[0])
            for j in range(X_batch.shape[0]):
                index = rows.get(X_batch[j].tobytes())
                if index is None:
                    return None, f"minibatches: row {j} of X_batch in batch {k} is not a row of X."
                if not np.array_equal(y_batch[j], y[index]):
                    return None, (f"minibatches: the rows of X and y are no longer paired (batch {k}, row {j}): "
                                  "index X and y with the same permutation.")
                order.append(index)
        full, rest = divmod(n, batch_size)
        wanted = [batch_size] * full + ([rest] if rest else [])
        if sizes != wanted:
            shown = ", ".join(map(str, sizes[:12])) + (", ..." if len(sizes) > 12 else "")
            hint = describe(["minibatch_last_dropped"]) if sizes == [batch_size] * full and rest else ""
            return None, (f"minibatches yielded batches of sizes [{shown}] {setting}, expected "
                          f"[{', '.join(map(str, wanted))}].{hint}")
        if sorted(order) != list(range(n)):
            seen = np.bincount(order, minlength=n)
            return None, (f"minibatches: over one pass {int(np.sum(seen == 0))} rows never appeared and "
                          f"{int(np.sum(seen > 1))} appeared more than once {setting}; each row belongs to exactly one "
                          "batch (shuffle a permutation of the indices, do not sample with replacement).")
        return order, ""

    def _judge_mutation(self, trials, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        value = self._runs(outcomes[0])
        if value is None:
            return CheckResult(False, "minibatches: no usable result came back.")
        run = value["runs"][0]
        if type(run) is not dict or type(run.get("batches")) is not list or not run["batches"]:
            return CheckResult(False, "minibatches yielded no batches (the no-mutation check needs at least one).")
        for name in ("X", "y"):
            problem = mutation_problem(trials[0][name], value[name], name)
            if problem:
                return CheckResult(False, f"minibatches: {problem}. {CATALOGUE['mutation']} (Shuffle an index array, "
                                          "not the data.)", ["mutation"])
        return CheckResult(True, "leaves X and y unchanged")


register(MinibatchesCase())
