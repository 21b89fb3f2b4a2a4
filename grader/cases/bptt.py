"""Hidden checks of notebook 06 (backpropagation through time): the RNN step, the unrolled
forward pass, full and truncated BPTT, and training on the recall task.

* Forward functions are compared with the reference on fresh shapes (T >= 5; N, D, H distinct).
* Backward functions get the reference cache, built here from the reference forward, and are
  compared with the reference backward, which is itself confirmed by central differences
  (truncated BPTT: of the loss whose term t sees h_{t-k} as a constant).
* A function that uses another graded one (``rnn_backward`` calling ``rnn_step_backward``,
  ``train_rnn`` calling the backward pass) loses points with it, and the judge's message points
  at the broken one. No reference code ever enters the sandbox.
* ``train_rnn`` is judged by what it learns: it trains on the judge's recall data from the
  judge's initial weights, and the judge evaluates the returned weights with the reference
  forward pass on held-out sequences.

A known mistake often has several realistic forms (weight gradients kept from the first step,
the last step or averaged over T), so ``alternatives`` are lists of (mistake id, outputs) tried
in order; the first one that explains a wrong output names the mistake.
"""
import copy

import numpy as np

from solutions import bptt as ref

from ..checks import (array_problem, compare, float_problem, mutation_problem, numerical_gradient, numerical_gradient_array)
from ..diagnostics import CATALOGUE, diagnose
from . import register
from .base import (Case, Check, CheckResult, FunctionCase, Probe, bad_return, first_failure, mistakes_in,
                   rejected_problem)

GRADED = ("rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward", "rnn_backward_truncated")
# ---- inputs -------------------------------------------------------------------------------------

def _dims(rng):
    """T in 5..8 and N, D, H in 3..8, distinct from each other and from T."""
    T = int(rng.integers(5, 9))
    n, d, h = (int(v) for v in rng.choice([v for v in range(3, 9) if v != T], size=3, replace=False))
    return n, T, d, h


def _weights(rng, d, h):
    return {"Wx": rng.normal(0.0, 1.0 / np.sqrt(d), (d, h)),
            "Wh": rng.normal(0.0, rng.uniform(0.7, 1.1) / np.sqrt(h), (h, h)),
            "b": rng.normal(0.0, 0.3, h)}


def step_forward_inputs(rng):
    n, _, d, h = _dims(rng)
    w = _weights(rng, d, h)
    return {"x": rng.normal(size=(n, d)), "h_prev": rng.uniform(-0.9, 0.9, (n, h)), "Wx": w["Wx"], "Wh": w["Wh"],
            "b": w["b"]}


def rnn_forward_inputs(rng):
    n, T, d, h = _dims(rng)
    w = _weights(rng, d, h)
    return {"x": rng.normal(size=(n, T, d)), "h0": rng.uniform(-0.9, 0.9, (n, h)), "Wx": w["Wx"], "Wh": w["Wh"],
            "b": w["b"]}


def step_backward_inputs(rng):
    _, cache = ref.rnn_step_forward(**step_forward_inputs(rng))
    return {"dh_next": rng.normal(size=cache[4].shape), "cache": cache}


def rnn_backward_inputs(rng):
    _, cache = ref.rnn_forward(**rnn_forward_inputs(rng))
    return {"dh": rng.normal(size=cache[4].shape), "cache": cache}


def truncated_trials(rng):
    """Three input sets: a window inside the sequence, a window of T or more, and any k < T."""
    trials = []
    for mode in ("inside", "whole", "any"):
        inputs = rnn_backward_inputs(rng)
        T = inputs["dh"].shape[1]
        low, high = {"inside": (2, T - 1), "whole": (T, T + 4), "any": (1, T)}[mode]
        inputs["k"] = int(rng.integers(low, high))
        trials.append(inputs)
    return trials


def truncated_inputs(rng):
    return truncated_trials(rng)[2]


# ---- what the reference and known mistakes give -------------------------------------------------

def _bias_of(x_t, h_prev, Wx, Wh, h_next):
    """The b a cache was made with: tanh is invertible, and every row saw the same b."""
    return np.mean(np.arctanh(h_next) - x_t @ Wx - h_prev @ Wh, axis=0)


def _previous_states(h0, h):
    return np.concatenate([h0[:, None], h[:, :-1]], axis=1)


def bptt_variant(dh, cache, k=None, *, slope="output", previous="before", carry="transposed", weights="sum"):
    """Gradients of BPTT over a window of k steps (all of them by default), with one knob per mistake.

    slope: tanh' from the output 1 - h^2 ("output"), 1 - z^2 ("at_z") or 1 - tanh(h)^2 ("tanh_twice").
    previous: the state dWh pairs with step t: h[t-1] ("before"), h[t] ("same") or h[t-1] with
    Python's wrap-around at t = 0 ("wrapped"). carry: dh_prev = dz @ Wh.T ("transposed") or dz @ Wh.
    weights: per-step weight gradients summed ("sum"), from step 0 only ("first"), from step T-1
    only ("last") or averaged ("mean").
    """
    x, h0, Wx, Wh, h = cache
    N, T, H = dh.shape
    k = T if k is None else min(k, T)
    local = {"output": lambda: 1 - h**2, "at_z": lambda: 1 - np.arctanh(h) ** 2,
             "tanh_twice": lambda: 1 - np.tanh(h) ** 2}[slope]()
    back = Wh.T if carry == "transposed" else Wh
    dz = np.empty((N, T, H))
    in_flight = np.zeros((0, N, H))
    for t in reversed(range(T)):
        in_flight = np.concatenate([dh[None, :, t], in_flight[: k - 1]])
        terms = in_flight * local[:, t]
        dz[:, t] = terms.sum(axis=0)
        in_flight = terms @ back
    dh0 = in_flight.sum(axis=0)
    before = {"before": lambda: _previous_states(h0, h), "same": lambda: h,
              "wrapped": lambda: np.roll(h, 1, axis=1)}[previous]()
    per_step = [np.einsum("ntd,nth->tdh", x, dz), np.einsum("nti,nth->tih", before, dz), dz.sum(axis=0)]
    combine = {"sum": lambda g: g.sum(axis=0), "first": lambda g: g[0], "last": lambda g: g[-1],
               "mean": lambda g: g.mean(axis=0)}[weights]
    return [dz @ Wx.T, dh0] + [combine(g) for g in per_step]


def _bptt_alternatives(dh, cache, k=None):
    x, h0, Wx, Wh, h = cache
    full = bptt_variant(dh, cache, k)
    last_only = np.zeros_like(dh)
    last_only[:, -1] = dh[:, -1]
    return [
        ("time_not_summed", bptt_variant(dh, cache, k, weights="first")),
        ("time_not_summed", bptt_variant(dh, cache, k, weights="last")),
        ("time_not_summed", bptt_variant(dh, cache, k, weights="mean")),
        ("dh_not_carried", bptt_variant(dh, cache, 1)),
        ("only_carried", [np.zeros_like(a) for a in full]),
        ("only_carried", bptt_variant(last_only, cache, k)),
        ("cache_off_by_one", bptt_variant(dh, cache, k, previous="same")),
        ("cache_off_by_one", bptt_variant(dh, cache, k, previous="wrapped")),
        ("tanh_at_z", bptt_variant(dh, cache, k, slope="at_z")),
        ("tanh_applied_twice", bptt_variant(dh, cache, k, slope="tanh_twice")),
        ("transposed", bptt_variant(dh, cache, k, carry="plain")),
        ("transposed", full[:3] + [full[3].T, full[4]]),
    ]


def rnn_backward_alternatives(dh, cache):
    return _bptt_alternatives(dh, cache)


def truncated_alternatives(dh, cache, k):
    T = dh.shape[1]
    wrong_windows = [bptt_variant(dh, cache, k + 1)]
    if k > 1:
        wrong_windows.append(bptt_variant(dh, cache, k - 1))
    if k < T - 1:
        wrong_windows.append(bptt_variant(dh, cache))
    return [("truncation_wrong", grads) for grads in wrong_windows] + _bptt_alternatives(dh, cache, k)


def step_backward_alternatives(dh_next, cache):
    x, h_prev, Wx, Wh, h_next = cache

    def grads(dz, back=Wh.T):
        return [dz @ Wx.T, dz @ back, x.T @ dz, h_prev.T @ dz, dz.sum(axis=0)]

    correct = grads(dh_next * (1 - h_next**2))
    return [
        ("tanh_at_z", grads(dh_next * (1 - np.arctanh(h_next) ** 2))),
        ("tanh_applied_twice", grads(dh_next * (1 - np.tanh(h_next) ** 2))),
        ("transposed", grads(dh_next * (1 - h_next**2), back=Wh)),
        ("transposed", correct[:3] + [correct[3].T, correct[4]]),
    ]


def rnn_forward_alternatives(x, h0, Wx, Wh, b):
    return [("state_not_fed_back", [np.tanh(x @ Wx + (h0 @ Wh + b)[:, None])])]


def step_numeric(dh_next, cache):
    x, h_prev, Wx, Wh, h_next = (a.copy() for a in cache)
    b = _bias_of(x, h_prev, Wx, Wh, h_next)

    def out():
        return ref.rnn_step_forward(x, h_prev, Wx, Wh, b)[0]

    return [numerical_gradient_array(out, value, dh_next) for value in (x, h_prev, Wx, Wh, b)]


def rnn_numeric(dh, cache):
    x, h0, Wx, Wh, h = (a.copy() for a in cache)
    b = _bias_of(x[:, 0], h0, Wx, Wh, h[:, 0])

    def out():
        return ref.rnn_forward(x, h0, Wx, Wh, b)[0]

    return [numerical_gradient_array(out, value, dh) for value in (x, h0, Wx, Wh, b)]


def truncated_numeric(dh, cache, k):
    """Central differences of sum_t <dh_t, h_t>, where term t starts from the constant h_{t-k}
    (the cached state) when t - k >= 0 and from the input h0 otherwise."""
    x, h0, Wx, Wh, h = (a.copy() for a in cache)
    b = _bias_of(x[:, 0], h0, Wx, Wh, h[:, 0])
    T = dh.shape[1]
    ends = np.arange(T)
    starts = np.maximum(ends - k + 1, 0)

    def loss():
        # All T terms advance together: term t runs steps starts[t], ..., t and then holds its state.
        state = np.where((starts == 0)[:, None, None], h0[None], h[:, np.maximum(starts - 1, 0)].transpose(1, 0, 2))
        for offset in range(min(k, T)):
            steps = np.minimum(starts + offset, T - 1)
            advanced = np.tanh(x[:, steps].transpose(1, 0, 2) @ Wx + state @ Wh + b)
            state = np.where((starts + offset <= ends)[:, None, None], advanced, state)
        return float(np.sum(dh.transpose(1, 0, 2) * state))

    return [numerical_gradient(loss, value) for value in (x, h0, Wx, Wh, b)]


# ---- comparing with a list of alternatives ------------------------------------------------------

def compare_with_alternatives(function, names, got, expected, *, tol, context, alternatives):
    """Like base.compare_outputs, but a mistake may be given by several alternative outputs."""
    if len(got) != len(expected):
        return CheckResult(False, f"{function} returned {len(got)} values, expected {len(expected)} "
                                  f"({', '.join(names)}).")
    for position, (name, g, e) in enumerate(zip(names, got, expected)):
        problem = rejected_problem(g)
        if problem:
            return CheckResult(False, f"{function}: {name} {problem}.")
        message = compare(function, name, g, e, tol=tol, context=context)
        if not message:
            continue
        if type(g) is np.ndarray:
            for mistake, outputs in alternatives:
                if mistake in diagnose(g, e, context, {mistake: outputs[position]}):
                    message = compare(function, name, g, e, tol=tol, context=context,
                                      variants={mistake: outputs[position]})
                    break
        return CheckResult(False, message, mistakes_in(message))
    return CheckResult(True)


class RnnCase(FunctionCase):
    """A FunctionCase whose probes run with the other RNN functions swapped for the reference,
    whose mistakes are lists of alternatives, and whose trials may be drawn together."""

    def __init__(self, function, reference, make_inputs, *, alternatives=None, trials_of=None, **options):
        options.setdefault("kinds", ("gradient", "no_mutation") if options.get("numeric") else ("value", "no_mutation"))
        super().__init__(function, reference, make_inputs, **options)
        self.alternatives = alternatives or (lambda **inputs: [])
        self.trials_of = trials_of

    def build(self, kind, rng):
        if kind == "repeat":
            raise KeyError(f"{self.function} has no 'repeat' check; it offers {', '.join(self.kinds)}")
        if kind in ("value", "gradient") and kind in self.kinds and self.trials_of is not None:
            trials = self.trials_of(rng)
            probes = [self._probe(t, f"return {self._select_code()}") for t in trials]
            return Check(kind, probes, lambda outcomes: self._judge_values(kind, trials, outcomes))
        return super().build(kind, rng)

    def _compare(self, inputs, got, expected):
        result = compare_with_alternatives(self.function, self.outputs, got, expected, tol=self.tol,
                                           context=self.context(**inputs),
                                           alternatives=self.alternatives(**copy.deepcopy(inputs)))
        if not result.passed:
            result.message = f"{result.message} (Inputs: {_describe_inputs(**inputs)}.)"
        return result


def _describe_inputs(**inputs):
    first = next(iter(inputs.values()))
    array = first[0] if isinstance(first, tuple) else first
    if array.ndim == 3:
        text = f"N = {array.shape[0]}, T = {array.shape[1]}"
    else:
        text = f"N = {array.shape[0]}"
    if "k" in inputs:
        text += f", k = {inputs['k']}"
    return text


def _time_context(**inputs):
    first = next(iter(inputs.values()))
    array = first[0] if isinstance(first, tuple) else first
    return {"N": array.shape[0], "T": array.shape[1] if array.ndim == 3 else None}


register(RnnCase("rnn_step_forward", ref.rnn_step_forward, step_forward_inputs, outputs=("h_next",), returns="pair"))
register(RnnCase(
    "rnn_step_backward", ref.rnn_step_backward, step_backward_inputs,
    outputs=("dx", "dh_prev", "dWx", "dWh", "db"), returns="tuple", numeric=step_numeric,
    alternatives=step_backward_alternatives,
))
register(RnnCase(
    "rnn_forward", ref.rnn_forward, rnn_forward_inputs, outputs=("h",), returns="pair",
    alternatives=rnn_forward_alternatives, context=_time_context, depends=("rnn_step_forward",),
))
register(RnnCase(
    "rnn_backward", ref.rnn_backward, rnn_backward_inputs,
    outputs=("dx", "dh0", "dWx", "dWh", "db"), returns="tuple", numeric=rnn_numeric,
    alternatives=rnn_backward_alternatives, context=_time_context, depends=("rnn_step_backward",),
))
register(RnnCase(
    "rnn_backward_truncated", ref.rnn_backward_truncated, truncated_inputs,
    outputs=("dx", "dh0", "dWx", "dWh", "db"), returns="tuple", numeric=truncated_numeric,
    alternatives=truncated_alternatives, context=_time_context, trials_of=truncated_trials,
    depends=("rnn_step_backward",),
))


# ---- train_rnn ----------------------------------------------------------------------------------

PARAM_NAMES = ("Wx", "Wh", "b", "Wy", "by")
RECALL = {"N": 128, "T": 8, "H": 16, "learning_rate": 1.0, "num_steps": 400, "clip_norm": 0.5}
HELD_OUT = 512
LOSS_FRACTION = 0.2   # the held-out loss must be below this fraction of the loss of predicting the mean
RUNS = 2


def initial_params(rng, D=1, H=RECALL["H"], M=1):
    return {"Wx": rng.normal(0.0, 1.0, (D, H)), "Wh": rng.normal(0.0, 1.0 / np.sqrt(H), (H, H)), "b": np.zeros(H),
            "Wy": rng.normal(0.0, 1.0 / np.sqrt(H), (H, M)), "by": np.zeros(M)}


def recall_loss(params, x, y):
    """The loss of train_rnn's model, computed with the reference forward pass."""
    h0 = np.zeros((x.shape[0], params["Wh"].shape[0]))
    h, _ = ref.rnn_forward(x, h0, params["Wx"], params["Wh"], params["b"])
    pred = h[:, -1] @ params["Wy"] + params["by"]
    return float(0.5 * np.sum((pred - y) ** 2) / x.shape[0])


def _params_problem(got, initial, label="trained params"):
    if type(got) is not dict:
        kind = type(got)
        return f"{label} is a {kind.__module__}.{kind.__qualname__}, expected a dict with the keys of params"
    if set(got) != set(initial):
        return f"{label} has keys {sorted(got)}, expected {sorted(initial)}"
    for name in PARAM_NAMES:
        problem = rejected_problem(got[name]) or array_problem(got[name], shape=initial[name].shape)
        if problem:
            return f"{label}[{name!r}] {problem}"
    return ""


def _losses_problem(losses, count):
    if type(losses) is np.ndarray:
        problem = array_problem(losses, shape=(count,))
        return f"losses {problem}" if problem else ""
    if type(losses) not in (list, tuple):
        kind = type(losses)
        return f"losses is a {kind.__module__}.{kind.__qualname__}, expected a list of {count} floats"
    if len(losses) != count:
        return f"losses has {len(losses)} entries, expected one per step ({count})"
    for position, loss in enumerate(losses):
        problem = rejected_problem(loss) or float_problem(loss)
        if problem:
            return f"losses[{position}] {problem}"
    return ""


def _one_step_alternatives(grads, learning_rate, clip_norm):
    per_parameter = {k: g * min(1.0, clip_norm / (np.linalg.norm(g) + 1e-6)) for k, g in grads.items()}
    per_element = {k: np.clip(g, -clip_norm, clip_norm) for k, g in grads.items()}
    return [("clip_not_applied", {k: -learning_rate * g for k, g in grads.items()}),
            ("clip_per_parameter", {k: -learning_rate * g for k, g in per_parameter.items()}),
            ("clip_per_element", {k: -learning_rate * g for k, g in per_element.items()})]


class TrainRnnCase(Case):
    """``train_rnn(x, y, params, learning_rate, num_steps, clip_norm) -> (params, losses)``.

    ``convergence``: on ``RUNS`` fresh recall data sets, from the judge's initial weights, with a
    learning rate at which unclipped gradient descent diverges, the returned weights must reach a
    held-out loss below ``LOSS_FRACTION`` of the loss of predicting the mean (the judge evaluates
    them with the reference forward pass), and ``losses`` must be num_steps floats whose last
    tenth averages below their first tenth. When it fails, one more probe (a single step with
    clipping active) is compared with the reference update to name the likely mistake.
    ``no_mutation``: x, y and params unchanged after a short run.
    """

    function = "train_rnn"
    kinds = ("convergence", "no_mutation")
    depends = ("rnn_forward", "rnn_backward")

    def _probe(self, args, body):
        return Probe(f"ret = {self.function}(*inputs['args'])\n" + body, {"args": args})

    @staticmethod
    def _recall_data(rng):
        x, y = ref.make_recall_task(RECALL["N"], RECALL["T"], rng)
        return x, y, initial_params(rng)

    def build(self, kind, rng):
        if kind == "convergence":
            runs = []
            for _ in range(RUNS):
                x, y, params = self._recall_data(rng)
                x_test, y_test = ref.make_recall_task(HELD_OUT, RECALL["T"], rng)
                runs.append({"args": [x, y, params, RECALL["learning_rate"], RECALL["num_steps"], RECALL["clip_norm"]],
                             "x_test": x_test, "y_test": y_test})
            x, y, params = self._recall_data(rng)
            grads = self._gradients(x, y, params)
            total = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
            step = [x, y, params, 0.5, 1, float(total * rng.uniform(0.2, 0.4))]
            probes = [self._probe(run["args"], "return select(ret, 'tuple', 2)") for run in runs]
            probes.append(self._probe(step, "return select(ret, 'tuple', 2)"))
            return Check(kind, probes, lambda outcomes: self._judge_convergence(runs, step, grads, outcomes))
        if kind == "no_mutation":
            x, y, params = self._recall_data(rng)
            args = [x, y, params, 0.5, 3, 1.0]
            probe = self._probe(args, "return {'out': select(ret, 'tuple', 2), 'args': inputs['args']}")
            return Check(kind, [probe], lambda outcomes: self._judge_mutation(args, outcomes))
        raise KeyError(f"{self.function} has no {kind!r} check; it offers {', '.join(self.kinds)}")

    @staticmethod
    def _gradients(x, y, params):
        """The gradient train_rnn's first step takes: one unclipped reference step of size 1."""
        moved, _ = ref.train_rnn(x, y, copy.deepcopy(params), 1.0, 1, np.inf)
        return {name: params[name] - moved[name] for name in PARAM_NAMES}

    def _judge_convergence(self, runs, step, grads, outcomes):
        failure = first_failure(self.function, outcomes[:RUNS])
        if failure:
            return failure
        held_out, trivial_losses = [], []
        for number, (run, outcome) in enumerate(zip(runs, outcomes), start=1):
            trained, losses = outcome.value
            where = f" (run {number} of {RUNS})"
            problem = _params_problem(trained, run["args"][2])
            if problem:
                diverged = ": the training diverged" if "non-finite" in problem else ""
                return self._failure(f"{self.function}: {problem}{where}{diverged}.", step, grads, outcomes[-1])
            problem = _losses_problem(losses, RECALL["num_steps"])
            if problem:
                return self._failure(f"{self.function}: {problem}{where}.", step, grads, outcomes[-1])
            tenth = RECALL["num_steps"] // 10
            first, last = float(np.mean(losses[:tenth])), float(np.mean(losses[-tenth:]))
            if not last < first:
                return self._failure(f"{self.function}: the recorded losses do not decrease: the first {tenth} steps "
                                     f"average {first:.4g}, the last {tenth} {last:.4g}{where}.",
                                     step, grads, outcomes[-1])
            y_test = run["y_test"]
            trivial = 0.5 * float(np.mean((y_test - y_test.mean()) ** 2))
            loss = recall_loss(trained, run["x_test"], y_test)
            if not loss < LOSS_FRACTION * trivial:
                return self._failure(
                    f"{self.function}: after {RECALL['num_steps']} steps on the judge's recall data "
                    f"(N = {RECALL['N']}, T = {RECALL['T']}, learning_rate {RECALL['learning_rate']:g}, "
                    f"clip_norm {RECALL['clip_norm']:g}) "
                    f"the trained weights reach a held-out loss of {loss:.4g}; predicting the mean gives {trivial:.4g} "
                    f"and the check needs below {LOSS_FRACTION * trivial:.4g}{where}.", step, grads, outcomes[-1])
            held_out.append(loss)
            trivial_losses.append(trivial)
        return CheckResult(True, f"on {RUNS} fresh recall data sets the trained weights reach held-out losses of "
                                 f"{', '.join(f'{v:.3g}' for v in held_out)} (predicting the mean: "
                                 f"{', '.join(f'{v:.3g}' for v in trivial_losses)}) and the losses decrease")

    def _failure(self, message, step, grads, outcome):
        """A failed convergence check, with what the single clipped step reveals."""
        hint = self._first_step_hint(step, grads, outcome)
        full = message + hint
        return CheckResult(False, full, mistakes_in(full))

    def _first_step_hint(self, step, grads, outcome):
        if not outcome.ok or type(outcome.value) is not list:
            return ""
        x, y, params, learning_rate, _, clip_norm = step
        trained, _ = outcome.value
        if _params_problem(trained, params):
            return ""
        expected, _ = ref.train_rnn(x, y, copy.deepcopy(params), learning_rate, 1, clip_norm)
        alternatives = _one_step_alternatives(grads, learning_rate, clip_norm)
        for name in PARAM_NAMES:
            got_update, expected_update = trained[name] - params[name], expected[name] - params[name]
            result = compare_with_alternatives(
                self.function, [f"the update of {name}"], [got_update], [expected_update], tol=1e-6, context={},
                alternatives=[(mistake, [update[name]]) for mistake, update in alternatives])
            if not result.passed:
                return (f" A single step with clipping active (learning_rate {learning_rate:g}, clip_norm "
                        f"{clip_norm:.3g}) does not match the reference either: {result.message}")
        return (" A single step with clipping active matches the reference, so look at what changes from one step "
                "to the next: are the updated parameters used by the following step, and is each loss recorded "
                "before its update?")

    def _judge_mutation(self, args, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        value = outcomes[0].value
        problem = bad_return(value["out"])
        if problem:
            return CheckResult(False, f"{self.function} {problem}.")
        trained, losses = value["out"]
        problem = _params_problem(trained, args[2]) or _losses_problem(losses, args[4])
        if problem:
            return CheckResult(False, f"{self.function}: {problem} (the no-mutation check needs a well-formed result).")
        message = mutation_problem(args, list(value["args"]), "argument")
        if message:
            for position, name in enumerate(("x", "y", "params", "learning_rate", "num_steps", "clip_norm")):
                message = message.replace(f"argument[{position}]", name)
            return CheckResult(False, f"{self.function}: {message}. {CATALOGUE['mutation']}", ["mutation"])
        return CheckResult(True, "leaves x, y and params unchanged")


register(TrainRnnCase())
