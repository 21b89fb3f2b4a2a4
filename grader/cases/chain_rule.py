"""Hidden checks of notebook 01 (chain rule): the central difference and the scalar autodiff `Value`.

Neither graded piece can be called on plain data: `numerical_derivative` takes a function and
`Value` builds graphs of objects. So the judge sends descriptions and the probes rebuild the
objects inside the student's kernel, with code the judge runs too (one source, two places):

* ``numerical_derivative``: a function family with its parameters, a point x and a step h
  (``None`` for the default); ``FUNCTION_SOURCE`` turns the description into f.
* ``Value``: an op-list program (leaf values, then operations on earlier nodes, with numbers on
  either side); ``PROGRAM_SOURCE`` builds it with ``Value``, calls ``backward()`` on the last
  node and returns ``out.data`` and every leaf's ``grad`` as floats.

The expected numbers come from running the same code on ``solutions.chain_rule``. The likely
mistake is named by running it on :func:`faulty_value_class`, a small engine with one known
mistake built in (a gradient overwritten, tanh's derivative taken at its input, ...).

``Value``'s kinds are built so that each of those mistakes breaks exactly one kind:
``arithmetic`` (one binary operation on leaves or numbers), ``unary`` (exp, log, tanh, sigmoid,
relu of a leaf or of a sum/product of leaves), ``reuse`` (leaves used more than once, at most
two levels below the output) and ``backward_order`` (long chains, and a node reached by a short
and a long path, built only from operations none of the other mistakes touch).
"""
import functools
import math

import numpy as np

from solutions import chain_rule as ref

from . import register
from .base import Case, Check, CheckResult, InternalCheckError, Probe, first_failure, rejected_problem
from ..checks import compare
from ..diagnostics import CATALOGUE, describe

# ---- numerical_derivative ----------------------------------------------------------------------

FUNCTION_SOURCE = '''\
import math

def build_function(spec):
    kind, p = spec["kind"], spec["params"]
    if kind == "poly":
        def f(t):
            total = 0.0
            for coefficient in reversed(p):
                total = total * t + coefficient
            return total
    elif kind == "sin":
        def f(t):
            return p[0] * math.sin(p[1] * t + p[2])
    elif kind == "exp":
        def f(t):
            return p[0] * math.exp(p[1] * t)
    else:
        def f(t):
            return p[0] * math.log(p[1] * t + p[2])
    return f
'''

DERIVATIVE_PROBE = FUNCTION_SOURCE + '''
estimates = []
for trial in inputs["trials"]:
    f = build_function(trial["function"])
    if trial["h"] is None:
        estimates.append(numerical_derivative(f, trial["x"]))
    else:
        estimates.append(numerical_derivative(f, trial["x"], trial["h"]))
return estimates
'''

GIVEN_STEPS = (0.2, 0.1, 0.05, 0.02, 0.01)
DERIVATIVE_TOL = 1e-9   # relative to the central difference; equivalent formulas agree to ~1e-11
# Every known mistake lands at least this far (relative) from the right estimate; with the default
# h = 1e-5 a one-sided difference is off by only about h/2 * f''/f', hence the smaller gap there.
SEPARATION = {"given": 1e-5, "default": 1e-6}


@functools.lru_cache(maxsize=None)
def _compiled(body):
    source = "def __bpl_probe(inputs, select):\n" + "".join("    " + line + "\n" for line in body.splitlines())
    return compile(source, "<chain_rule probe>", "exec")


def _run_body(body, inputs, **names):
    """Run a probe body in this process, the way probe_support runs it in the kernel."""
    scope = {}
    exec(_compiled(body), dict(names), scope)
    return scope["__bpl_probe"](inputs, None)


def _one_sided_forward(f, x, h=1e-5):
    return (f(x + h) - f(x)) / h


def _one_sided_backward(f, x, h=1e-5):
    return (f(x) - f(x - h)) / h


def _not_halved(f, x, h=1e-5):
    return (f(x + h) - f(x - h)) / h


def _step_ignored(f, x, h=1e-5):
    return ref.numerical_derivative(f, x)


DERIVATIVE_VARIANTS = (
    ("one_sided_difference", _one_sided_forward),
    ("one_sided_difference", _one_sided_backward),
    ("difference_not_halved", _not_halved),
    ("h_ignored", _step_ignored),
)


def estimates_with(implementation, trials):
    """What ``implementation`` (a numerical_derivative) returns on every trial."""
    return _run_body(DERIVATIVE_PROBE, {"trials": trials}, numerical_derivative=implementation)


def _random_function(rng):
    kind = str(rng.choice(["poly", "sin", "exp", "log"]))
    if kind == "poly":
        params = [round(float(c), 3) for c in rng.uniform(-2.0, 2.0, size=int(rng.integers(3, 6)))]
    elif kind == "sin":
        params = [round(float(rng.uniform(0.5, 3.0)), 3), round(float(rng.uniform(0.5, 2.5)), 3),
                  round(float(rng.uniform(-1.0, 1.0)), 3)]
    elif kind == "exp":
        params = [round(float(rng.uniform(0.5, 2.0)), 3), round(float(rng.choice([-1, 1]) * rng.uniform(0.5, 1.5)), 3)]
    else:
        params = [round(float(rng.uniform(0.5, 2.0)), 3), round(float(rng.uniform(0.5, 2.0)), 3),
                  round(float(rng.uniform(2.5, 4.0)), 3)]
    return {"kind": kind, "params": params}


def describe_function(spec):
    """The function of a trial as a formula, for feedback."""
    p = spec["params"]
    if spec["kind"] == "poly":
        terms = [f"{c:g}" + ("" if k == 0 else " t" if k == 1 else f" t^{k}") for k, c in enumerate(p) if c != 0]
        return "f(t) = " + " + ".join(terms).replace("+ -", "- ")
    if spec["kind"] == "sin":
        return f"f(t) = {p[0]:g} sin({p[1]:g} t + {p[2]:g})".replace("+ -", "- ")
    if spec["kind"] == "exp":
        return f"f(t) = {p[0]:g} exp({p[1]:g} t)"
    return f"f(t) = {p[0]:g} log({p[1]:g} t + {p[2]:g})"


def derivative_trial(rng, h):
    """A trial whose right estimate is not small and is far from what every known mistake gives."""
    for _ in range(1000):
        trial = {"function": _random_function(rng), "x": round(float(rng.uniform(-1.5, 1.5)), 3), "h": h}
        try:
            expected = estimates_with(ref.numerical_derivative, [trial])[0]
            wrong = [estimates_with(variant, [trial])[0] for mistake, variant in DERIVATIVE_VARIANTS
                     if not (mistake == "h_ignored" and h is None)]
        except (ValueError, OverflowError):
            continue
        gap = SEPARATION["default" if h is None else "given"]
        if 0.3 <= abs(expected) <= 50 and all(abs(w - expected) > gap * abs(expected) for w in wrong):
            return trial
    raise InternalCheckError("could not draw a numerical_derivative trial far enough from the known mistakes")


class NumericalDerivativeCase(Case):
    """``value``: the student's estimate equals the central difference, on given and default steps."""

    function = "numerical_derivative"
    kinds = ("value",)

    def build(self, kind, rng):
        if kind not in self.kinds:
            raise KeyError(f"{self.function} has no {kind!r} check; it offers {', '.join(self.kinds)}")
        steps = [float(h) for h in rng.choice(GIVEN_STEPS, size=4, replace=False)] + [None, None]
        trials = [derivative_trial(rng, steps[i]) for i in rng.permutation(len(steps))]
        probe = Probe(DERIVATIVE_PROBE, {"trials": trials})
        return Check(kind, [probe], lambda outcomes: self.judge(trials, outcomes))

    def judge(self, trials, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        got = outcomes[0].value
        if type(got) is not list or len(got) != len(trials):
            return CheckResult(False, f"{self.function}: the check's result had an unexpected form.")
        expected = estimates_with(ref.numerical_derivative, trials)
        wrong = [(mistake, estimates_with(implementation, trials)) for mistake, implementation in DERIVATIVE_VARIANTS]
        for index, (trial, g, e) in enumerate(zip(trials, got, expected)):
            if rejected_problem(g):
                return CheckResult(False, f"{self.function} {rejected_problem(g)}.")
            step = "the default h" if trial["h"] is None else f"h = {trial['h']:g}"
            name = f"the estimate for {describe_function(trial['function'])} at x = {trial['x']:g} with {step}"
            message = compare(self.function, name, g, e, tol=DERIVATIVE_TOL,
                              variants=self._closest_variants(g, index, trial, wrong))
            if message:
                return CheckResult(False, message, [k for k, text in CATALOGUE.items() if text in message])
        return CheckResult(True, f"equals the central difference on {len(trials)} fresh functions, points and steps")

    @staticmethod
    def _closest_variants(got, index, trial, wrong):
        """{mistake: estimate} with, per mistake, the estimate closest to ``got`` (one mistake may have two forms).

        As 0-d arrays: diagnose() matches a variant only when both sides are arrays or both scalars.
        """
        closest = {}
        for mistake, estimates in wrong:
            if mistake == "h_ignored" and trial["h"] is None:
                continue
            value = estimates[index]
            try:
                distance = abs(float(got) - value)
            except (TypeError, ValueError):
                distance = 0.0
            if mistake not in closest or distance < closest[mistake][0]:
                closest[mistake] = (distance, value)
        return {mistake: np.array(value) for mistake, (_, value) in closest.items()}


# ---- Value --------------------------------------------------------------------------------------

PROGRAM_SOURCE = '''\
binary = {
    "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y, "div": lambda x, y: x / y,
    "radd": lambda x, y: y + x, "rsub": lambda x, y: y - x, "rmul": lambda x, y: y * x, "rtruediv": lambda x, y: y / x,
    "pow": lambda x, y: x ** y,
}
unary = {
    "neg": lambda x: -x, "exp": lambda x: x.exp(), "log": lambda x: x.log(), "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(), "relu": lambda x: x.relu(),
}
results = []
for program in inputs["programs"]:
    nodes = [Value(leaf) for leaf in program["leaves"]]
    for op in program["ops"]:
        x = nodes[op["x"]]
        if "y" in op:
            nodes.append(binary[op["op"]](x, nodes[op["y"]]))
        elif "c" in op:
            nodes.append(binary[op["op"]](x, op["c"]))
        else:
            nodes.append(unary[op["op"]](x))
    out = nodes[-1]
    out.backward()
    results.append([float(out.data)] + [float(leaf.grad) for leaf in nodes[:len(program["leaves"])]])
return results
'''

RTOL, ATOL = 1e-7, 1e-9          # a correct Value agrees with the reference to ~1e-14
VARIANT_GAP = 1e-4               # a mistake that changes a program changes it by at least this much


def run_programs(value_class, programs):
    """[out.data, leaf grads...] of every program, evaluated with ``value_class``."""
    return _run_body(PROGRAM_SOURCE, {"programs": programs}, Value=value_class)


def faulty_value_class(faults=(), order="topological"):
    """A Value like the reference with known mistakes built in (judge side only, for diagnosis).

    ``faults``: overwrite_add / overwrite_mul (``grad =`` instead of ``+=``), tanh_at_z,
    sigmoid_at_z, log_at_output (1 / log x), log_times_input (x instead of 1 / x),
    pow_no_exponent, rsub_swapped (self - other), rtruediv_swapped (self / other).
    ``order`` of backward: ``topological`` (the reference's depth-first order), ``recursive``
    (micrograd's recursive sort, children first in the other order), ``shallow`` (the output and
    its direct children only), ``output_only``, ``forward`` (the sort not reversed), ``bfs``
    (breadth-first from the output) and ``recursive_no_sort`` (each node calls its children's
    backward, once per path).
    """
    faults = frozenset(faults)

    def give(node, amount, fault):
        if fault in faults:
            node.grad = amount
        else:
            node.grad += amount

    class Faulty:
        def __init__(self, data, children=()):
            self.data = float(data)
            self.grad = 0.0
            self._backward = lambda: None
            self._prev = tuple(children)

        def __add__(self, other):
            other = other if isinstance(other, Faulty) else Faulty(other)
            out = Faulty(self.data + other.data, (self, other))

            def _backward():
                give(self, out.grad, "overwrite_add")
                give(other, out.grad, "overwrite_add")

            out._backward = _backward
            return out

        def __mul__(self, other):
            other = other if isinstance(other, Faulty) else Faulty(other)
            out = Faulty(self.data * other.data, (self, other))

            def _backward():
                give(self, other.data * out.grad, "overwrite_mul")
                give(other, self.data * out.grad, "overwrite_mul")

            out._backward = _backward
            return out

        def __pow__(self, exponent):
            out = Faulty(self.data**exponent, (self,))
            factor = 1 if "pow_no_exponent" in faults else exponent

            def _backward():
                self.grad += factor * self.data ** (exponent - 1) * out.grad

            out._backward = _backward
            return out

        def __neg__(self):
            return self * -1

        def __sub__(self, other):
            return self + (-other)

        def __truediv__(self, other):
            return self * other**-1

        def __radd__(self, other):
            return self + other

        def __rsub__(self, other):
            return self - other if "rsub_swapped" in faults else other + (-self)

        def __rmul__(self, other):
            return self * other

        def __rtruediv__(self, other):
            return self / other if "rtruediv_swapped" in faults else other * self**-1

        def _unary(self, data, derivative):
            out = Faulty(data, (self,))

            def _backward():
                self.grad += derivative(out) * out.grad

            out._backward = _backward
            return out

        def exp(self):
            return self._unary(math.exp(self.data), lambda out: out.data)

        def log(self):
            if "log_at_output" in faults:
                return self._unary(math.log(self.data), lambda out: 1 / out.data)
            if "log_times_input" in faults:
                return self._unary(math.log(self.data), lambda out: self.data)
            return self._unary(math.log(self.data), lambda out: 1 / self.data)

        def tanh(self):
            at = (lambda out: self.data) if "tanh_at_z" in faults else (lambda out: out.data)
            return self._unary(math.tanh(self.data), lambda out: 1 - at(out) ** 2)

        def sigmoid(self):
            e = math.exp(-abs(self.data))
            s = 1 / (1 + e) if self.data >= 0 else e / (1 + e)
            at = (lambda out: self.data) if "sigmoid_at_z" in faults else (lambda out: out.data)
            return self._unary(s, lambda out: at(out) * (1 - at(out)))

        def relu(self):
            return self._unary(max(0.0, self.data), lambda out: float(self.data > 0))

        def backward(self):
            self.grad = 1.0
            if order in ("shallow", "output_only"):
                self._backward()
                for child in self._prev if order == "shallow" else ():
                    child._backward()
            elif order == "recursive_no_sort":
                _backward_every_path(self)
            else:
                for node in _visit_order(self, order):
                    node._backward()

    return Faulty


def _backward_every_path(node):
    stack = [node]
    while stack:
        current = stack.pop()
        current._backward()
        stack.extend(current._prev)


def _visit_order(root, order):
    if order == "bfs":
        seen, queue = {root}, [root]
        for node in queue:
            for child in node._prev:
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        return queue
    topo, visited = [], set()
    if order == "recursive":
        def build(node):
            if node not in visited:
                visited.add(node)
                for child in node._prev:
                    build(child)
                topo.append(node)
        build(root)
    else:
        stack = [(root, False)]
        while stack:
            node, inputs_done = stack.pop()
            if inputs_done:
                topo.append(node)
            elif node not in visited:
                visited.add(node)
                stack.append((node, True))
                stack.extend((child, False) for child in node._prev)
    return topo if order == "forward" else topo[::-1]


VALUE_VARIANTS = tuple(
    [("overwrite_not_accumulate", faults, order) for faults in (("overwrite_add",), ("overwrite_mul",),
                                                               ("overwrite_add", "overwrite_mul"))
     for order in ("topological", "recursive")]
    + [("tanh_at_z", ("tanh_at_z",), "topological"), ("sigmoid_at_z", ("sigmoid_at_z",), "topological"),
       ("log_derivative_wrong", ("log_at_output",), "topological"),
       ("log_derivative_wrong", ("log_times_input",), "topological"),
       ("pow_missing_exponent", ("pow_no_exponent",), "topological"),
       ("reflected_operands_swapped", ("rsub_swapped",), "topological"),
       ("reflected_operands_swapped", ("rtruediv_swapped",), "topological")]
    + [("backward_not_topological", (), order) for order in ("shallow", "output_only", "forward", "bfs",
                                                              "recursive_no_sort")]
)
_VARIANT_CLASSES = [(mistake, faulty_value_class(faults, order)) for mistake, faults, order in VALUE_VARIANTS]


def variant_result(cls, program):
    """[out.data, leaf grads...] of ``program`` under a faulty class, or None where that class breaks down."""
    try:
        return run_programs(cls, [program])[0]
    except (ArithmeticError, ValueError):
        return None


def _agrees(got, expected):
    return len(got) == len(expected) and all(abs(g - e) <= ATOL + RTOL * abs(e) for g, e in zip(got, expected))


def _clearly_apart_or_equal(result, reference):
    """True when a variant leaves a program alone or changes it unmistakably."""
    gaps = [abs(r - e) / max(abs(e), 1.0) for r, e in zip(result, reference)]
    return max(gaps) <= 1e-12 or max(gaps) >= VARIANT_GAP


def _well_separated(program):
    reference = run_programs(ref.Value, [program])[0]
    if not all(math.isfinite(v) and abs(v) < 1e4 for v in reference):
        return False
    results = [variant_result(cls, program) for _, cls in _VARIANT_CLASSES]
    return all(result is None or _clearly_apart_or_equal(result, reference) for result in results)


def _signed(rng, low, high):
    return round(float(rng.choice([-1.0, 1.0]) * rng.uniform(low, high)), 3)


def _draw(rng, make):
    """A program from ``make(rng)`` (None means rejected) that every known mistake either spares or breaks clearly."""
    for _ in range(1000):
        program = make(rng)
        if program is not None and _well_separated(program):
            return program
    raise InternalCheckError("could not draw a Value program away from kinks and coincidences")


ARITHMETIC_FORMS = (("add", "y"), ("sub", "y"), ("mul", "y"), ("div", "y"), ("add", "c"), ("sub", "c"), ("mul", "c"),
                    ("div", "c"), ("radd", "c"), ("rsub", "c"), ("rmul", "c"), ("rtruediv", "c"), ("pow", "c"),
                    ("pow", "c"), ("pow", "c"), ("neg", None))
EXPONENTS = (2, 3, -1, -2, 0.5, 1.5)


def _arithmetic(form):
    name, operand = form

    def make(rng):
        a = _signed(rng, 0.3, 2.5)
        if name == "pow":
            exponent = EXPONENTS[int(rng.integers(len(EXPONENTS)))]
            a = abs(a) if isinstance(exponent, float) else a
            if exponent < 0 and abs(a) < 0.5:
                return None
            return {"leaves": [a], "ops": [{"op": "pow", "x": 0, "c": exponent}]}
        if operand is None:
            return {"leaves": [a], "ops": [{"op": name, "x": 0}]}
        other = _signed(rng, 0.5, 3.0)
        if name == "rtruediv" and abs(a) < 0.5:
            return None
        if operand == "y":
            return {"leaves": [a, other], "ops": [{"op": name, "x": 0, "y": 1}]}
        return {"leaves": [a], "ops": [{"op": name, "x": 0, "c": other}]}

    return make


UNARY_DOMAINS = {
    "exp": lambda z: abs(z) <= 2.5,
    "log": lambda z: 0.2 <= z <= 0.8 or 1.3 <= z <= 5.0,
    "tanh": lambda z: 0.3 <= abs(z) <= 2.5,
    "sigmoid": lambda z: 0.3 <= abs(z) <= 4.0,
    "relu": lambda z: 0.2 <= abs(z) <= 3.0,
}


def _unary(name, inner):
    def make(rng):
        if inner is None:
            z = _signed(rng, 0.2, 5.0) if name != "log" else round(float(rng.uniform(0.2, 5.0)), 3)
            program = {"leaves": [z], "ops": [{"op": name, "x": 0}]}
        else:
            a, b = _signed(rng, 0.3, 2.5), _signed(rng, 0.3, 2.5)
            z = a + b if inner == "add" else a * b
            program = {"leaves": [a, b], "ops": [{"op": inner, "x": 0, "y": 1}, {"op": name, "x": 2}]}
        return program if UNARY_DOMAINS[name](z) else None

    return make


def _reuse(template):
    """Leaves used more than once, every path at most two operations long (so order cannot matter)."""
    def make(rng):
        a, b, c = (_signed(rng, 0.3, 2.5) for _ in range(3))
        k = _signed(rng, 0.5, 3.0)
        ops = {
            "a+a": [{"op": "add", "x": 0, "y": 0}],
            "a*a": [{"op": "mul", "x": 0, "y": 0}],
            "a*a+a": [{"op": "mul", "x": 0, "y": 0}, {"op": "add", "x": 3, "y": 0}],
            "(a+a)*b": [{"op": "add", "x": 0, "y": 0}, {"op": "mul", "x": 3, "y": 1}],
            "(a*b)*(a+c)": [{"op": "mul", "x": 0, "y": 1}, {"op": "add", "x": 0, "y": 2}, {"op": "mul", "x": 3, "y": 4}],
            "(a*b)+(c*a)": [{"op": "mul", "x": 0, "y": 1}, {"op": "mul", "x": 2, "y": 0}, {"op": "add", "x": 3, "y": 4}],
            "(a+b)*(a+k)": [{"op": "add", "x": 0, "y": 1}, {"op": "add", "x": 0, "c": k}, {"op": "mul", "x": 3, "y": 4}],
            "(k*a)+(a*b)": [{"op": "rmul", "x": 0, "c": k}, {"op": "mul", "x": 0, "y": 1}, {"op": "add", "x": 3, "y": 4}],
        }[template]
        return {"leaves": [a, b, c], "ops": ops}

    return make


REUSE_TEMPLATES = ("a+a", "a*a", "a*a+a", "(a+a)*b", "(a*b)*(a+c)", "(a*b)+(c*a)", "(a+b)*(a+k)", "(k*a)+(a*b)")
CHAIN_STEPS = (("mul", "y"), ("add", "y"), ("sub", "y"), ("mul", "c"), ("rmul", "c"), ("add", "c"), ("radd", "c"),
               ("sub", "c"))


def _chain_steps(rng, length):
    """(name, operand kind, value) of a chain in which each operation takes a fresh leaf or a number."""
    steps = []
    for _ in range(length):
        name, operand = CHAIN_STEPS[int(rng.integers(len(CHAIN_STEPS)))]
        value = _signed(rng, 0.7, 1.3) if name in ("mul", "rmul") else _signed(rng, 0.3, 2.0)
        steps.append((name, operand, value))
    return steps


def _chain_program(leaves, head_ops, steps, tail):
    """Leaves, ``head_ops`` (whose last node starts the chain), the chain, then ``tail(last_node)`` ops.

    Nodes are numbered leaves first, then one per operation in order.
    """
    leaves = leaves + [value for _, operand, value in steps if operand == "y"]
    leaf = len(leaves) - sum(operand == "y" for _, operand, _ in steps)
    ops = [dict(op) for op in head_ops]
    current = len(leaves) + len(ops) - 1 if ops else 0
    for name, operand, value in steps:
        op = {"op": name, "x": current}
        if operand == "y":
            op["y"], leaf = leaf, leaf + 1
        else:
            op["c"] = value
        ops.append(op)
        current = len(leaves) + len(ops) - 1
    return {"leaves": leaves, "ops": ops + tail(current)}


def _long_chain(rng):
    return _chain_program([_signed(rng, 0.5, 2.0)], [], _chain_steps(rng, int(rng.integers(12, 21))), lambda last: [])


def _short_and_long_path(rng):
    """x = a * b reaches the output twice: directly through exp, and through relu and a chain."""
    a, b = round(float(rng.uniform(0.4, 1.4)), 3), round(float(rng.uniform(0.4, 1.4)), 3)
    if a * b < 0.25:
        return None
    steps = _chain_steps(rng, int(rng.integers(4, 8)))
    n = 2 + sum(operand == "y" for _, operand, _ in steps)
    x, p = n, n + 1
    head = [{"op": "mul", "x": 0, "y": 1}, {"op": "exp", "x": x}, {"op": "relu", "x": x}]
    swap = bool(rng.random() < 0.5)
    return _chain_program([a, b], head, steps,
                          lambda last: [{"op": "add", "x": last, "y": p} if swap else {"op": "add", "x": p, "y": last}])


def value_programs(kind, rng):
    """The programs of one check of ``kind``, drawn from ``rng``."""
    if kind == "arithmetic":
        makers = [_arithmetic(form) for form in ARITHMETIC_FORMS]
    elif kind == "unary":
        makers = [_unary(name, inner) for name in UNARY_DOMAINS for inner in (None, str(rng.choice(["add", "mul"])))]
    elif kind == "reuse":
        makers = [_reuse(template) for template in REUSE_TEMPLATES]
    elif kind == "backward_order":
        makers = [_long_chain, _long_chain, _short_and_long_path, _short_and_long_path]
    else:
        raise KeyError(kind)
    return [_draw(rng, makers[i]) for i in rng.permutation(len(makers))]


LEAF_NAMES = "abcdefghjkmnpqrsuwxyz"
FORMS = {"add": "{x} + {y}", "sub": "{x} - {y}", "mul": "{x} * {y}", "div": "{x} / {y}", "radd": "{y} + {x}",
         "rsub": "{y} - {x}", "rmul": "{y} * {x}", "rtruediv": "{y} / {x}", "pow": "{x} ** {y}", "neg": "-{x}",
         "exp": "{x}.exp()", "log": "{x}.log()", "tanh": "{x}.tanh()", "sigmoid": "{x}.sigmoid()", "relu": "{x}.relu()"}


def leaf_names(count):
    return [LEAF_NAMES[i] if i < len(LEAF_NAMES) else f"x{i}" for i in range(count)]


METHODS = ("exp", "log", "tanh", "sigmoid", "relu")


def _format(op, texts):
    y = texts[op["y"]] if "y" in op else _number(op["c"], op["op"]) if "c" in op else ""
    return FORMS[op["op"]].format(x=texts[op["x"]], y=y)


def _number(value, name):
    """A constant as written: in parentheses when negative and on the right (reflected ops put it on the left)."""
    return f"({value:g})" if value < 0 and not name.startswith("r") else f"{value:g}"


def render_program(program):
    """The program as Python a student could type: ``out = (a * b).tanh()``, or its steps when long."""
    names = leaf_names(len(program["leaves"]))
    count = len(program["ops"])
    nested, steps = list(names), list(names)
    lines = []
    for index, op in enumerate(program["ops"]):
        text = _format(op, nested)
        nested.append(text if op["op"] in METHODS else f"({text})")
        node = "out" if index == count - 1 else f"v{index + 1}"
        lines.append(f"{node} = {_format(op, steps)}")
        steps.append(node)
    expression = "out = " + (text if count else names[0])
    if len(expression) <= 90:
        return expression
    shown = lines[:2] + ["..."] + lines[-1:] if count > 4 else lines
    return f"the graph of {count} operations {'; '.join(shown)}"


def _mismatch_message(program, got, expected):
    names = leaf_names(len(program["leaves"]))
    where = render_program(program)
    wrong = [i for i, (g, e) in enumerate(zip(got[1:], expected[1:])) if not abs(g - e) <= ATOL + RTOL * abs(e)]
    shown = wrong[:2]
    used = sorted({op[key] for op in program["ops"] for key in ("x", "y") if key in op and op[key] < len(names)})
    listed = used if len(used) <= 4 else shown
    leaves = " with " + ", ".join(f"{names[i]} = {program['leaves'][i]:g}" for i in listed) if listed else ""
    if not abs(got[0] - expected[0]) <= ATOL + RTOL * abs(expected[0]):
        detail = f"out.data is {got[0]:.6g}, expected {expected[0]:.6g} (the forward value is wrong)"
    else:
        detail = "; ".join(f"{names[i]}.grad is {got[1 + i]:.6g}, expected {expected[1 + i]:.6g}" for i in shown)
        if len(wrong) > len(shown):
            detail += f" ({len(wrong)} of {len(names)} leaf gradients are off)"
    return f"Value: for {where}{leaves}, after out.backward(): {detail}."


def _result_problem(value, programs):
    if type(value) is not list or len(value) != len(programs):
        return "the check's result had an unexpected form"
    for row, program in zip(value, programs):
        if type(row) is not list or len(row) != 1 + len(program["leaves"]) or any(type(v) is not float for v in row):
            return "the check's result had an unexpected form"
    return ""


class ValueCase(Case):
    """The scalar autodiff class; each kind evaluates fresh op-list programs with the student's Value."""

    function = "Value"
    kinds = ("arithmetic", "unary", "reuse", "backward_order")
    descriptions = {
        "arithmetic": "graphs of one operation (+ - * / ** and -v, numbers on either side)",
        "unary": "graphs with exp, log, tanh, sigmoid and relu",
        "reuse": "graphs that use a leaf more than once",
        "backward_order": "long chains and graphs with a short and a long path to a node",
    }

    def build(self, kind, rng):
        if kind not in self.kinds:
            raise KeyError(f"{self.function} has no {kind!r} check; it offers {', '.join(self.kinds)}")
        programs = value_programs(kind, rng)
        probe = Probe(PROGRAM_SOURCE, {"programs": programs})
        return Check(kind, [probe], lambda outcomes: self.judge(kind, programs, outcomes))

    def judge(self, kind, programs, outcomes):
        failure = first_failure(self.function, outcomes)
        if failure:
            return failure
        got = outcomes[0].value
        problem = _result_problem(got, programs)
        if problem:
            return CheckResult(False, f"{self.function}: {problem}.")
        expected = run_programs(ref.Value, programs)
        for program, g, e in zip(programs, got, expected):
            if _agrees(g, e):
                continue
            mistakes = []
            for mistake, cls in _VARIANT_CLASSES:
                result = variant_result(cls, program)
                if mistake not in mistakes and result is not None and _agrees(g, result):
                    mistakes.append(mistake)
            return CheckResult(False, _mismatch_message(program, g, e) + describe(mistakes), mistakes)
        return CheckResult(True, f"matches the reference on {len(programs)} fresh {self.descriptions[kind]}")


register(NumericalDerivativeCase())
register(ValueCase())
