"""Building blocks of hidden checks: probes, outcomes, checks and the common function case."""
import copy
import dataclasses
from typing import Any, Callable

import numpy as np

from ..checks import array_problem, compare, float_problem, mutation_problem, norm_error
from ..diagnostics import CATALOGUE
from ..sandbox.codec import Rejected


class InternalCheckError(RuntimeError):
    """A hidden check is itself wrong (e.g. the reference disagrees with central differences)."""


@dataclasses.dataclass
class Probe:
    """A function body run in the student's kernel; sees ``inputs`` and ``select``, returns plain data."""

    code: str
    inputs: Any = None
    timeout: float | None = None


@dataclasses.dataclass
class Outcome:
    """What one probe brought back. ``status`` is ok, error, timeout, crashed, no-result, malformed or not-run."""

    status: str
    value: Any = None
    message: str = ""
    line: str = ""
    error_type: str = ""

    @property
    def ok(self):
        return self.status == "ok"

    def explain(self, function):
        """Why this probe produced no usable value, in the student's terms."""
        if self.status == "error":
            if self.error_type == "NotImplementedError":
                return f"{function} is not implemented yet (it raised NotImplementedError)."
            where = f" at `{self.line.strip()}`" if self.line else ""
            return f"{function} raised {self.error_type}{where}: {self.message}".rstrip(": ")
        if self.status == "timeout":
            return f"{function} {self.message} (an endless loop, or far too slow)."
        if self.status == "crashed":
            return f"running {function}, {self.message}."
        if self.status == "not-run":
            return f"{function} could not be called: {self.message or 'the notebook stopped before this check'}."
        return f"{function}: {self.message or 'no usable result came back'}."


@dataclasses.dataclass
class CheckResult:
    passed: bool
    message: str = ""
    mistakes: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Check:
    """One kind of check for one function: its probes and how to judge their outcomes."""

    kind: str
    probes: list
    evaluate: Callable[[list], CheckResult]


def bad_return(value):
    """The description ``select`` leaves when a return value has the wrong form, or ''."""
    if isinstance(value, dict) and set(value) == {"__bad_return__"}:
        return str(value["__bad_return__"])
    return ""


def first_failure(function, outcomes):
    """A CheckResult for the first outcome that is not ok, or None when all are ok."""
    for outcome in outcomes:
        if not outcome.ok:
            return CheckResult(False, outcome.explain(function))
        problem = bad_return(outcome.value)
        if problem:
            return CheckResult(False, f"{function} {problem}.")
    return None


def rejected_problem(value):
    if isinstance(value, Rejected):
        return f"returned {value.type_name}, which the grader does not accept (plain numpy.ndarray or float only)"
    return ""


def mistakes_in(message):
    return [key for key, text in CATALOGUE.items() if text in message]


def compare_outputs(function, names, got, expected, *, tol, context, variants):
    """Compare selected outputs one by one; returns CheckResult."""
    if len(got) != len(expected):
        return CheckResult(False, f"{function} returned {len(got)} values, expected {len(expected)} ({', '.join(names)}).")
    for position, (name, g, e) in enumerate(zip(names, got, expected)):
        problem = rejected_problem(g)
        if problem:
            return CheckResult(False, f"{function}: {name} {problem}.")
        variant_outputs = {k: v[position] for k, v in variants.items()}
        message = compare(function, name, g, e, tol=tol, context=context, variants=variant_outputs)
        if message:
            return CheckResult(False, message, mistakes_in(message))
    return CheckResult(True)


def well_formed(function, names, got, expected):
    """'' when every output has the right type, dtype, shape and is finite."""
    if len(got) != len(expected):
        return f"{function} returned {len(got)} values, expected {len(expected)}"
    for name, g, e in zip(names, got, expected):
        problem = rejected_problem(g)
        if not problem:
            problem = float_problem(g) if not isinstance(e, np.ndarray) else array_problem(g, shape=e.shape)
        if problem:
            return f"{function}: {name} {problem}"
    return ""


class Case:
    """Base class: the hidden checks of one graded function."""

    function = ""
    depends = ()
    kinds = ()

    def build(self, kind, rng):
        """A :class:`Check` of ``kind`` with inputs drawn from ``rng``."""
        raise NotImplementedError


SELECT_MODES = ("pair", "tuple", "single")


class FunctionCase(Case):
    """A function called with arrays, whose outputs are compared with the reference.

    Kinds: ``value`` (outputs against the reference on ``trials`` fresh input sets),
    ``gradient`` (the same for backward functions, plus the reference confirmed by central
    differences through ``numeric``), ``no_mutation`` and ``repeat`` (properties, awarded only
    when the outputs are well formed).

    ``make_inputs(rng) -> dict`` gives the positional arguments in order (names in
    ``keywords`` are passed by keyword). ``returns``: ``"pair"`` for ``(out, cache)``,
    ``"tuple"`` for several outputs, ``"single"`` for one array or float. ``outputs`` names
    the compared outputs. ``variants(**inputs) -> {mistake_id: outputs}`` computes what known
    mistakes return; ``context(**inputs) -> dict`` feeds generic diagnoses (N, T).
    ``numeric(**inputs) -> outputs`` gives central-difference gradients of the reference forward.
    """

    def __init__(self, function, reference, make_inputs, *, outputs, returns="single",
                 kinds=("value", "no_mutation", "repeat"), keywords=(), trials=3, tol=1e-6,
                 variants=None, context=None, numeric=None, numeric_tol=1e-5, depends=(), timeout=None, budget=None):
        if returns not in SELECT_MODES:
            raise ValueError(f"returns must be one of {SELECT_MODES}")
        self.function = function
        self.reference = reference
        self.make_inputs = make_inputs
        self.outputs = tuple(outputs)
        self.returns = returns
        self.kinds = tuple(kinds)
        self.keywords = tuple(keywords)
        self.trials = trials
        self.tol = tol
        self.variants = variants or (lambda **inputs: {})
        self.context = context or (lambda **inputs: {"N": _batch_size(inputs)})
        self.numeric = numeric
        self.numeric_tol = numeric_tol
        self.depends = tuple(depends)
        self.timeout = timeout
        self.budget = budget  # (make_large_inputs, seconds): one more trial, too big for finite differences

    # -- helpers -------------------------------------------------------------------
    def _split(self, inputs):
        args = [v for k, v in inputs.items() if k not in self.keywords]
        kwargs = {k: v for k, v in inputs.items() if k in self.keywords}
        return args, kwargs

    def _call_code(self):
        return f"ret = {self.function}(*inputs['args'], **inputs['kwargs'])\n"

    def _select_code(self, name="ret"):
        return f"select({name}, {self.returns!r}, {len(self.outputs)})"

    def expected(self, inputs):
        args, kwargs = self._split(copy.deepcopy(inputs))
        ret = self.reference(*args, **kwargs)
        if self.returns == "pair":
            return [ret[0]]
        if self.returns == "tuple":
            return list(ret)
        return [ret]

    def _probe(self, inputs, body):
        args, kwargs = self._split(inputs)
        return Probe(self._call_code() + body, {"args": args, "kwargs": kwargs}, self.timeout)

    # -- kinds ---------------------------------------------------------------------
    def build(self, kind, rng):
        if kind not in self.kinds:
            raise KeyError(f"{self.function} has no {kind!r} check; it offers {', '.join(self.kinds)}")
        trials = [self.make_inputs(rng) for _ in range(self.trials if kind in ("value", "gradient") else 1)]
        if kind in ("value", "gradient"):
            probes = [self._probe(t, f"return {self._select_code()}") for t in trials]
            if self.budget is not None:
                make_large, seconds = self.budget
                trials.append(make_large(rng))
                probes.append(dataclasses.replace(self._probe(trials[-1], f"return {self._select_code()}"), timeout=seconds))
            return Check(kind, probes, lambda outcomes: self._judge_values(kind, trials, outcomes))
        if kind == "no_mutation":
            probe = self._probe(trials[0], f"return {{'out': {self._select_code()}, 'args': inputs['args'], 'kwargs': inputs['kwargs']}}")
            return Check(kind, [probe], lambda outcomes: self._judge_mutation(trials[0], outcomes))
        if kind == "repeat":
            # Each call gets its own copy of the inputs, so this catches hidden state, not mutation.
            call = f"ret = {self.function}(*copy.deepcopy(inputs['args']), **copy.deepcopy(inputs['kwargs']))\n"
            probe = self._probe(trials[0], "import copy\n" + call + f"first = {self._select_code()}\n" + call
                                + f"return [first, {self._select_code()}]")
            return Check(kind, [probe], lambda outcomes: self._judge_repeat(trials[0], outcomes))
        raise KeyError(kind)

    def _judge_values(self, kind, trials, outcomes):
        if self.budget is not None and all(o.ok for o in outcomes[:-1]) and outcomes[-1].status == "timeout":
            shapes = ", ".join(f"{name} {value.shape}" for name, value in trials[-1].items() if isinstance(value, np.ndarray))
            return CheckResult(False, f"{self.function} gave the right values on small inputs but did not finish within "
                                      f"{self.budget[1]:g} s on larger ones ({shapes}). {CATALOGUE['finite_differences']}",
                               ["finite_differences"])
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        for number, (inputs, outcome) in enumerate(zip(trials, outcomes)):
            expected = self.expected(inputs)
            if kind == "gradient" and self.numeric is not None and number < self.trials:
                numeric = self.numeric(**copy.deepcopy(inputs))
                for name, e, n in zip(self.outputs, expected, numeric):
                    if norm_error(e, n) > self.numeric_tol:
                        raise InternalCheckError(f"reference {self.function} {name} disagrees with central differences")
            result = self._compare(inputs, list(outcome.value), expected)
            if not result.passed:
                return result
        note = " and central differences" if kind == "gradient" and self.numeric is not None else ""
        size = " (one of them large)" if self.budget is not None else ""
        return CheckResult(True, f"matches the reference{note} on {len(trials)} fresh input sets{size}")

    def _compare(self, inputs, got, expected):
        """One trial's outputs against the reference, with the known mistakes as variants."""
        return compare_outputs(self.function, self.outputs, got, expected, tol=self.tol,
                               context=self.context(**inputs), variants=self.variants(**copy.deepcopy(inputs)))

    def _judge_mutation(self, inputs, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        value = outcomes[0].value
        problem = well_formed(self.function, self.outputs, list(value["out"]), self.expected(inputs))
        if problem:
            return CheckResult(False, f"{problem} (the no-mutation check needs a well-formed result).")
        args, kwargs = self._split(inputs)
        message = mutation_problem(args, list(value["args"]), "argument") or mutation_problem(kwargs, value["kwargs"], "argument")
        if message:
            names = [k for k in inputs if k not in self.keywords]
            for i, name in enumerate(names):
                message = message.replace(f"argument[{i}]", name)
            return CheckResult(False, f"{self.function}: {message}. {CATALOGUE['mutation']}", ["mutation"])
        return CheckResult(True, "leaves its arguments unchanged")

    def _judge_repeat(self, inputs, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        first, second = outcomes[0].value
        expected = self.expected(inputs)
        problem = well_formed(self.function, self.outputs, list(first), expected)
        if problem:
            return CheckResult(False, f"{problem} (the repeat check needs a well-formed result).")
        for name, a, b in zip(self.outputs, first, second):
            same = (np.array_equal(a, b) if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                    else (not isinstance(a, np.ndarray) and a == b))
            if not same:
                return CheckResult(False, f"{self.function}: {name} differs between two calls with the same inputs. "
                                          f"{CATALOGUE['not_deterministic']}", ["not_deterministic"])
        return CheckResult(True, "gives the same result when called twice")


def _batch_size(inputs):
    for value in inputs.values():
        if isinstance(value, np.ndarray) and value.ndim >= 1:
            return value.shape[0]
        if isinstance(value, tuple):
            found = _batch_size({str(i): v for i, v in enumerate(value)})
            if found:
                return found
    return None
