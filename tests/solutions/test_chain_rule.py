"""Tests of solutions.chain_rule: the central difference and the scalar autodiff `Value`.

Every operation is checked against `numerical_derivative` and, when PyTorch is installed,
against torch autograd on the same expression.
"""

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from solutions.chain_rule import Value, numerical_derivative

# (name, operation on a Value, the same operation on a float, whether its domain is x > 0 only)
UNARY_OPS = [
    ("v + 2.5", lambda v: v + 2.5, lambda x: x + 2.5, False),
    ("2.5 + v", lambda v: 2.5 + v, lambda x: 2.5 + x, False),
    ("v - 1.5", lambda v: v - 1.5, lambda x: x - 1.5, False),
    ("1.5 - v", lambda v: 1.5 - v, lambda x: 1.5 - x, False),
    ("v * 3", lambda v: v * 3, lambda x: x * 3, False),
    ("3 * v", lambda v: 3 * v, lambda x: 3 * x, False),
    ("v / 4", lambda v: v / 4, lambda x: x / 4, False),
    ("4 / v", lambda v: 4 / v, lambda x: 4 / x, False),
    ("v ** 3", lambda v: v**3, lambda x: x**3, False),
    ("v ** -2", lambda v: v**-2, lambda x: x**-2, False),
    ("v ** 0.5", lambda v: v**0.5, math.sqrt, True),
    ("-v", lambda v: -v, lambda x: -x, False),
    ("v.exp()", Value.exp, math.exp, False),
    ("v.log()", Value.log, math.log, True),
    ("v.tanh()", Value.tanh, math.tanh, False),
    ("v.sigmoid()", Value.sigmoid, lambda x: 1 / (1 + math.exp(-x)), False),
    ("v.relu()", Value.relu, lambda x: max(x, 0.0), False),
]

BINARY_OPS = [
    ("a + b", lambda a, b: a + b),
    ("a - b", lambda a, b: a - b),
    ("a * b", lambda a, b: a * b),
    ("a / b", lambda a, b: a / b),
    ("(a * b).tanh() + a.exp() / b", lambda a, b: (a * b).tanh() + a.exp() / b),
    ("(a - b).sigmoid() * (b ** 2).log()", lambda a, b: (a - b).sigmoid() * (b**2).log()),
]

# Away from 0, where relu has its kink and 1/v its pole.
magnitudes = st.floats(min_value=0.1, max_value=3.0)


def assert_close(actual, expected, rel=1e-6, abs_=1e-8):
    assert math.isclose(actual, expected, rel_tol=rel, abs_tol=abs_), (actual, expected)


# ---- numerical_derivative ----------------------------------------------------------------


def test_numerical_derivative_of_a_cubic():
    estimate = numerical_derivative(lambda x: x**3, 2.0)
    assert type(estimate) is float
    assert_close(estimate, 12.0, rel=1e-9)


def test_numerical_derivative_error_shrinks_like_h_squared():
    errors = [abs(numerical_derivative(math.sin, 1.0, h) - math.cos(1.0)) for h in (1e-2, 1e-3)]
    assert 80 < errors[0] / errors[1] < 120


@settings(max_examples=50, deadline=None)
@given(
    a=st.floats(-5, 5),
    b=st.floats(-5, 5),
    c=st.floats(-5, 5),
    x=st.floats(-5, 5),
    h=st.sampled_from([1e-3, 1e-4, 1e-5]),
)
def test_numerical_derivative_is_exact_on_quadratics(a, b, c, x, h):
    estimate = numerical_derivative(lambda t: a * t**2 + b * t + c, x, h)
    assert math.isclose(estimate, 2 * a * x + b, rel_tol=1e-6, abs_tol=1e-5)


# ---- Value: each operation against the central difference --------------------------------


@pytest.mark.parametrize(
    "name, op, reference, positive_only", UNARY_OPS, ids=[op[0] for op in UNARY_OPS]
)
@settings(max_examples=20, deadline=None)
@given(magnitude=magnitudes, negative=st.booleans())
def test_unary_operation_gradient_matches_central_difference(
    name, op, reference, positive_only, magnitude, negative
):
    x = -magnitude if negative and not positive_only else magnitude
    v = Value(x)
    out = op(v)
    out.backward()
    assert type(out.data) is float
    assert_close(out.data, reference(x), rel=1e-15, abs_=0)
    assert_close(v.grad, numerical_derivative(lambda t: op(Value(t)).data, x))


@pytest.mark.parametrize("name, op", BINARY_OPS, ids=[op[0] for op in BINARY_OPS])
@settings(max_examples=20, deadline=None)
@given(a=magnitudes, b=magnitudes, negate_a=st.booleans())
def test_binary_operation_gradients_match_central_differences(name, op, a, b, negate_a):
    a = -a if negate_a else a
    va, vb = Value(a), Value(b)
    op(va, vb).backward()
    assert_close(va.grad, numerical_derivative(lambda t: op(Value(t), Value(b)).data, a))
    assert_close(vb.grad, numerical_derivative(lambda t: op(Value(a), Value(t)).data, b))


# ---- Value: graph structure ---------------------------------------------------------------


def test_node_used_twice_by_one_operation_gets_both_contributions():
    a = Value(3.0)
    b = a + a
    b.backward()
    assert a.grad == 2.0

    a = Value(3.0)
    (a * a).backward()
    assert a.grad == 6.0


def test_diamond_graph_sums_the_gradients_of_both_paths():
    # d = (2a) * (a + 3): dd/da = 2 (a + 3) + 2a = 4a + 6
    a = Value(1.5)
    left = a * 2
    right = a + 3
    d = left * right
    d.backward()
    assert d.data == 13.5
    assert a.grad == 12.0
    assert left.grad == right.data and right.grad == left.data


def test_numbers_on_the_left_of_operators():
    a = Value(4.0)
    results = [2 + a, 2 - a, 2 * a, 2 / a]
    assert [r.data for r in results] == [6.0, -2.0, 8.0, 0.5]
    expected_grads = [1.0, -1.0, 2.0, -2 / 16]
    for result, expected in zip(results, expected_grads):
        a.grad = 0.0
        result.backward()
        assert_close(a.grad, expected, rel=1e-15)


def test_operations_leave_their_inputs_alone_until_backward():
    a, b = Value(2.0), Value(-3.0)
    c = (a * b + a).tanh() - b.exp() / a
    assert (a.data, b.data, a.grad, b.grad) == (2.0, -3.0, 0.0, 0.0)
    c.backward()
    assert (a.data, b.data) == (2.0, -3.0)


def test_repeated_builds_agree_exactly():
    def run():
        a, b = Value(0.7), Value(-1.3)
        out = ((a * b).sigmoid() + (a - b) ** 2).log() * a.tanh()
        out.backward()
        return out.data, a.grad, b.grad

    assert run() == run()


def test_long_chain_does_not_hit_the_recursion_limit():
    x = Value(1.0)
    out = x
    for _ in range(5000):
        out = out * 1.0 + 0.0
    out.backward()
    assert x.grad == 1.0


def test_relu_derivative_at_zero_is_zero():
    v = Value(0.0)
    v.relu().backward()
    assert v.grad == 0.0


def test_saturating_operations_are_finite_at_plus_minus_1000(strict):
    for x, expected in [(1000.0, 1.0), (-1000.0, 0.0)]:
        for op, expected_data in [("sigmoid", expected), ("tanh", 2 * expected - 1)]:
            v = Value(x)
            out = getattr(v, op)()
            out.backward()
            assert out.data == expected_data
            assert v.grad == 0.0


def test_repr_shows_data_and_grad():
    assert repr(Value(1.5)) == "Value(data=1.5, grad=0.0)"


# ---- Value against torch autograd ---------------------------------------------------------


def build_expression(a, b, exp, log, tanh, sigmoid, relu):
    """One expression touching every operation, written once for Value and for torch."""
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + relu(b + a)
    d = d + 3 * d + relu(b - a)
    e = c - d
    f = e**2
    g = f / 2.0
    g = g + 10.0 / (f + 1)
    h = tanh(g / 100) * exp(a / 4) + log(b * b + 1) - sigmoid(c - 2 * d / 10)
    return 1 - h / (2 - a) + (5 - b) * sigmoid(a)


def assert_matches_torch(a, b):
    torch = pytest.importorskip("torch")
    va, vb = Value(a), Value(b)
    out = build_expression(va, vb, Value.exp, Value.log, Value.tanh, Value.sigmoid, Value.relu)
    out.backward()

    ta = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    t_out = build_expression(ta, tb, torch.exp, torch.log, torch.tanh, torch.sigmoid, torch.relu)
    t_out.backward()

    for ours, theirs in [(out.data, t_out), (va.grad, ta.grad), (vb.grad, tb.grad)]:
        assert math.isclose(ours, theirs.item(), rel_tol=1e-10, abs_tol=1e-10), (ours, theirs)


@pytest.mark.parametrize("a, b", [(-4.0, 2.0), (0.3, -1.7), (1.9, 0.6)])
def test_value_matches_torch_autograd(a, b):
    assert_matches_torch(a, b)


@settings(max_examples=30, deadline=None)
@given(a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_value_matches_torch_on_random_points(a, b):
    # Keep 2 - a and the relu arguments away from 0, where either side may be taken.
    assume(abs(2 - a) > 0.1 and min(abs(a + b), abs(b - a)) > 1e-3)
    assert_matches_torch(a, b)
