"""Tests of solutions.backward_pass: every backward function against central differences,
the gradient-check tools themselves, the seed article's worked example and the training loop.

Shapes use distinct N, D, H, M, C so a transposition cannot pass; biases are non-zero and
ReLU inputs stay away from the kink at 0, where a central difference straddles two slopes.
"""

import copy
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solutions.backward_pass import (
    affine_backward,
    binary_cross_entropy_backward,
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    mlp_backward,
    mse_loss_backward,
    rel_error,
    relu_backward,
    sigmoid_backward,
    softmax_cross_entropy_backward,
    tanh_backward,
    train_mlp,
)
from solutions.forward_pass import (
    affine_forward,
    binary_cross_entropy,
    mlp_forward,
    mse_loss,
    relu_forward,
    sigmoid_forward,
    softmax_cross_entropy,
    tanh_forward,
)

N, D, H, M, C = 4, 5, 6, 3, 7
ACTIVATIONS = {
    "relu": (relu_forward, relu_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
}


def away_from_zero(rng, shape, low=0.05, high=3.0):
    """Random entries with low <= |z| <= high and random signs."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)


def init_params(rng, sizes, bias_scale=0.5):
    """He-scaled weights and non-zero biases for an MLP with the given layer sizes."""
    params = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{layer}"] = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in)
        params[f"b{layer}"] = rng.standard_normal(fan_out) * bias_scale
    return params


def assert_same(actual, expected):
    """Exact equality of nested tuples, lists and dicts of arrays, names and None."""
    assert type(actual) is type(expected)
    if isinstance(actual, dict):
        assert actual.keys() == expected.keys()
        for key in actual:
            assert_same(actual[key], expected[key])
    elif isinstance(actual, (tuple, list)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_same(a, e)
    elif isinstance(actual, np.ndarray):
        assert actual.dtype == expected.dtype
        np.testing.assert_array_equal(actual, expected)
    else:
        assert actual == expected


def call_twice_without_mutation(function, *args):
    """Call function twice; assert its arguments are unchanged and both results equal."""
    before = copy.deepcopy(args)
    first = function(*args)
    second = function(*args)
    assert_same(args, before)
    assert_same(first, second)
    return first


# ---- layers against central differences ----------------------------------------------------


def test_affine_backward_matches_central_differences():
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((N, D)), rng.standard_normal((D, M)), rng.standard_normal(M)
    dout = rng.standard_normal((N, M))
    _, cache = affine_forward(x, W, b)
    dx, dW, db = affine_backward(dout, cache)

    assert (dx.shape, dW.shape, db.shape) == (x.shape, W.shape, b.shape)
    dx_num = eval_numerical_gradient_array(lambda x: affine_forward(x, W, b)[0], x, dout)
    dW_num = eval_numerical_gradient_array(lambda W: affine_forward(x, W, b)[0], W, dout)
    db_num = eval_numerical_gradient_array(lambda b: affine_forward(x, W, b)[0], b, dout)
    assert rel_error(dx, dx_num) < 1e-7
    assert rel_error(dW, dW_num) < 1e-7
    assert rel_error(db, db_num) < 1e-7


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_backward_matches_central_differences(name):
    forward, backward = ACTIVATIONS[name]
    rng = np.random.default_rng(1)
    z = away_from_zero(rng, (N, H))
    dout = rng.standard_normal((N, H))
    _, cache = forward(z)
    dz = backward(dout, cache)
    assert dz.shape == z.shape
    assert rel_error(dz, eval_numerical_gradient_array(lambda z: forward(z)[0], z, dout)) < 1e-7


def test_relu_backward_uses_the_input_sign_and_zero_at_the_kink():
    z = np.array([[-1.0, 0.0, 2.0]])
    dz = relu_backward(np.array([[5.0, 5.0, 5.0]]), relu_forward(z)[1])
    np.testing.assert_array_equal(dz, [[0.0, 0.0, 5.0]])


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_saturated_activation_backward_is_zero_at_plus_minus_1000(name, strict):
    forward, backward = ACTIVATIONS[name]
    z = np.array([[-1000.0, 1000.0, 0.0]])
    dz = backward(np.ones_like(z), forward(z)[1])
    assert np.all(np.isfinite(dz))
    np.testing.assert_array_equal(dz[0, :2], [0.0, 0.0])


# ---- losses against central differences and torch -------------------------------------------


def loss_cases():
    """(name, loss, loss backward, input, target) with N examples each, inputs of moderate size."""
    rng = np.random.default_rng(2)
    return [
        (
            "mse (N, M)",
            mse_loss,
            mse_loss_backward,
            rng.standard_normal((N, M)),
            rng.standard_normal((N, M)),
        ),
        ("mse (N,)", mse_loss, mse_loss_backward, rng.standard_normal(N), rng.standard_normal(N)),
        (
            "bce (N,)",
            binary_cross_entropy,
            binary_cross_entropy_backward,
            rng.standard_normal(N) * 2,
            np.array([0.0, 1.0, 1.0, 0.0]),
        ),
        (
            "bce (N, 1)",
            binary_cross_entropy,
            binary_cross_entropy_backward,
            rng.standard_normal((N, 1)) * 2,
            np.array([[1.0], [1.0], [0.0], [0.0]]),
        ),
        (
            "softmax ce (N, C)",
            softmax_cross_entropy,
            softmax_cross_entropy_backward,
            rng.standard_normal((N, C)),
            np.array([0, 6, 2, 2]),
        ),
    ]


@pytest.mark.parametrize(
    "name, loss, backward, inputs, target", loss_cases(), ids=[c[0] for c in loss_cases()]
)
def test_loss_backward_matches_central_differences(name, loss, backward, inputs, target):
    dinputs = backward(inputs, target)
    assert dinputs.shape == inputs.shape
    assert rel_error(dinputs, eval_numerical_gradient(lambda p: loss(p, target), inputs)) < 1e-7


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_loss_backward_matches_torch_autograd(scale, strict):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(3)

    def torch_grad(loss, inputs, *targets):
        t = torch.tensor(inputs, requires_grad=True)
        loss(t, *[torch.from_numpy(target) for target in targets]).backward()
        return t.grad.numpy()

    pred, y = rng.standard_normal((N, M)) * scale, rng.standard_normal((N, M))
    expected = torch_grad(lambda p, y: 0.5 * F.mse_loss(p, y, reduction="sum") / N, pred, y)
    np.testing.assert_allclose(mse_loss_backward(pred, y), expected, rtol=1e-13)

    logits, labels = rng.standard_normal((N, 1)) * scale, np.array([[1.0], [0.0], [1.0], [0.0]])
    expected = torch_grad(F.binary_cross_entropy_with_logits, logits, labels)
    actual = binary_cross_entropy_backward(logits, labels)
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-300)

    logits, classes = rng.standard_normal((N, C)) * scale, np.array([0, 6, 2, 2])
    expected = torch_grad(F.cross_entropy, logits, classes)
    actual = softmax_cross_entropy_backward(logits, classes)
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-300)


def test_loss_backward_at_plus_minus_1000(strict):
    logits = np.array([1000.0, 1000.0, -1000.0, -1000.0])
    labels = np.array([1.0, 0.0, 1.0, 0.0])
    dlogits = binary_cross_entropy_backward(logits, labels)
    np.testing.assert_array_equal(dlogits, [0.0, 0.25, -0.25, 0.0])

    logits = np.array([[1000.0, 0.0, -1000.0], [1000.0, 0.0, -1000.0]])
    dlogits = softmax_cross_entropy_backward(logits, np.array([0, 2]))
    np.testing.assert_array_equal(dlogits, [[0.0, 0.0, 0.0], [0.5, 0.0, -0.5]])


# ---- mlp_backward ----------------------------------------------------------------------------


def numerical_mlp_grads(X, params, loss_of_output, hidden, output):
    """Central differences of loss_of_output(network output) for every parameter."""

    def loss(_):
        return loss_of_output(mlp_forward(X, params, hidden, output)[0])

    return {name: eval_numerical_gradient(loss, params[name]) for name in params}


@pytest.mark.parametrize("hidden", ["relu", "sigmoid", "tanh", None])
def test_mlp_backward_matches_central_differences_on_softmax_cross_entropy(hidden):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((N, D))
    y = np.array([0, 2, 1, 2])
    params = init_params(rng, [D, H, 7, M])
    scores, caches = mlp_forward(X, params, hidden)
    # Precondition: no pre-activation close enough to 0 for a nudge to cross the ReLU kink.
    for (x, W, b), _, _ in caches:
        assert np.abs(x @ W + b).min() > 1e-3

    grads = mlp_backward(softmax_cross_entropy_backward(scores, y), caches)
    expected = numerical_mlp_grads(X, params, lambda s: softmax_cross_entropy(s, y), hidden, None)
    assert grads.keys() == params.keys()
    for name in params:
        assert grads[name].shape == params[name].shape
        assert rel_error(grads[name], expected[name]) < 1e-6, name


def test_mlp_backward_matches_central_differences_with_sigmoid_output_and_mse():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((N, D))
    y = rng.uniform(0, 1, (N, M))
    params = init_params(rng, [D, H, M])
    out, caches = mlp_forward(X, params, "tanh", "sigmoid")
    grads = mlp_backward(mse_loss_backward(out, y), caches)
    expected = numerical_mlp_grads(X, params, lambda out: mse_loss(out, y), "tanh", "sigmoid")
    for name in params:
        assert rel_error(grads[name], expected[name]) < 1e-6, name


@pytest.mark.parametrize("hidden", ["relu", "sigmoid", "tanh"])
def test_mlp_backward_matches_torch_autograd(hidden):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    X = rng.standard_normal((N, D))
    y = np.array([1, 0, 2, 2])
    params = init_params(rng, [D, H, 7, M])
    scores, caches = mlp_forward(X, params, hidden)
    grads = mlp_backward(softmax_cross_entropy_backward(scores, y), caches)

    tparams = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}
    act = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[hidden]
    h = torch.from_numpy(X)
    h = act(h @ tparams["W1"] + tparams["b1"])
    h = act(h @ tparams["W2"] + tparams["b2"])
    t_scores = h @ tparams["W3"] + tparams["b3"]
    torch.nn.functional.cross_entropy(t_scores, torch.from_numpy(y)).backward()

    np.testing.assert_allclose(scores, t_scores.detach().numpy(), rtol=1e-12, atol=1e-14)
    for name in params:
        np.testing.assert_allclose(grads[name], tparams[name].grad.numpy(), rtol=1e-10, atol=1e-14)


# ---- the seed article's worked example -----------------------------------------------------


def test_seed_article_worked_example_one_step_of_gradient_descent():
    # The article writes W as (out, in) acting on a column; our W is (in, out), its transpose.
    X = np.array([[0.5, 0.8]])
    y = np.array([[1.0]])
    params = {
        "W1": np.array([[0.15, 0.25], [0.20, 0.30]]).T,
        "b1": np.array([0.35, 0.35]),
        "W2": np.array([[0.40, 0.50]]).T,
        "b2": np.array([0.60]),
    }
    out, caches = mlp_forward(X, params, hidden_activation="sigmoid", output_activation="sigmoid")
    (_, _, (z1, a1)), (_, _, (z2, _)) = caches
    np.testing.assert_allclose(z1, [[0.625, 0.69]], atol=1e-12)
    np.testing.assert_allclose(a1, [[0.65135, 0.66597]], atol=1e-5)
    np.testing.assert_allclose(z2, [[1.19353]], atol=1e-5)
    np.testing.assert_allclose(out, [[0.76737]], atol=1e-5)
    assert mse_loss(out, y) == pytest.approx(0.027058, abs=1e-6)

    grads = mlp_backward(mse_loss_backward(out, y), caches)
    # With one example db is the gradient of the pre-activation, dZ.
    np.testing.assert_allclose(grads["b2"], [-0.041527], atol=1e-6)
    np.testing.assert_allclose(grads["W2"], [[-0.027049], [-0.027656]], atol=1e-6)
    np.testing.assert_allclose(grads["b1"], [-0.0037722, -0.0046190], atol=1e-7)
    np.testing.assert_allclose(grads["W1"], X.T @ grads["b1"][None, :], atol=1e-15)
    assert np.round(grads["b2"], 4).tolist() == [-0.0415]
    assert np.round(grads["b1"], 4).tolist() == [-0.0038, -0.0046]

    stepped = {name: params[name] - 0.5 * grads[name] for name in params}
    article_W1 = np.array([[0.150943, 0.251509], [0.201155, 0.301848]])
    np.testing.assert_allclose(stepped["W1"], article_W1.T, atol=1e-6)
    np.testing.assert_allclose(stepped["b1"], [0.351886, 0.352309], atol=1e-6)
    np.testing.assert_allclose(stepped["W2"], [[0.413524], [0.513828]], atol=1e-6)
    np.testing.assert_allclose(stepped["b2"], [0.620764], atol=1e-6)

    new_out, _ = mlp_forward(X, stepped, hidden_activation="sigmoid", output_activation="sigmoid")
    new_loss = mse_loss(new_out, y)
    assert new_out[0, 0] == pytest.approx(0.7744, abs=5e-5)
    assert new_loss == pytest.approx(0.0255, abs=5e-5)
    # The article prints 0.772 and 0.0265: off by more than their own rounding.
    assert abs(new_out[0, 0] - 0.772) > 5e-4
    assert abs(new_loss - 0.0265) > 5e-5


# ---- the gradient-check tools ---------------------------------------------------------------


def test_eval_numerical_gradient_of_a_known_function():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 4))
    weights = rng.standard_normal((2, 3, 4))
    grad = eval_numerical_gradient(lambda x: float(np.sum(weights * x**2)), x)
    assert grad.shape == x.shape and grad.dtype == np.float64 and grad is not x
    np.testing.assert_allclose(grad, 2 * weights * x, rtol=1e-7, atol=1e-9)


def test_eval_numerical_gradient_nudges_one_entry_at_a_time_and_restores_x():
    x = np.random.default_rng(8).standard_normal((3, 2))
    original = x.copy()
    changed_per_call = []

    def f(arr):
        changed_per_call.append(int(np.sum(arr != original)))
        return float(np.sum(arr))

    eval_numerical_gradient(f, x)
    assert changed_per_call == [1] * (2 * x.size)
    np.testing.assert_array_equal(x, original)


def test_eval_numerical_gradient_restores_x_when_f_raises():
    x = np.arange(6.0).reshape(2, 3)
    calls = []

    def f(arr):
        calls.append(None)
        if len(calls) == 4:
            raise ValueError("boom")
        return float(arr.sum())

    with pytest.raises(ValueError):
        eval_numerical_gradient(f, x)
    np.testing.assert_array_equal(x, np.arange(6.0).reshape(2, 3))


def test_eval_numerical_gradient_array_of_a_linear_map():
    rng = np.random.default_rng(9)
    x, A = rng.standard_normal((N, D)), rng.standard_normal((D, M))
    dout = rng.standard_normal((N, M))
    originals = (x.copy(), dout.copy())
    grad = eval_numerical_gradient_array(lambda x: x @ A, x, dout)
    assert grad.shape == x.shape
    assert rel_error(grad, dout @ A.T) < 1e-8
    np.testing.assert_array_equal(x, originals[0])
    np.testing.assert_array_equal(dout, originals[1])


def test_eval_numerical_gradient_array_when_f_returns_x_itself():
    # f returns its argument, not a copy: the estimate must not change as x is nudged back.
    rng = np.random.default_rng(10)
    x, dout = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    grad = eval_numerical_gradient_array(lambda x: x, x, dout)
    assert rel_error(grad, dout) < 1e-8


def test_rel_error():
    a = np.array([1.0, 2.0, -3.0])
    assert rel_error(a, a.copy()) == 0.0
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(a, np.array([1.0, 2.2, -3.0])) == pytest.approx(0.2 / 4.2)
    # Below 1e-8 in magnitude the denominator is floored, so tiny absolute errors stay tiny.
    assert rel_error(np.array([1e-12]), np.array([-1e-12])) == pytest.approx(2e-4)
    assert type(rel_error(a, a)) is float
    assert rel_error(1.0, 1.5) == pytest.approx(0.2)


# ---- train_mlp -------------------------------------------------------------------------------


def two_spirals(n_per_class, rng, noise=0.2):
    """Two interleaved spiral arms of 1.5 turns in the unit disc, labels 0 and 1."""
    t = np.sqrt(rng.uniform(0, 1, n_per_class)) * 3 * np.pi
    arm = np.column_stack([t * np.cos(t), t * np.sin(t)]) / (3 * np.pi)
    X = np.concatenate([arm, -arm]) + rng.normal(0, noise / (3 * np.pi), (2 * n_per_class, 2))
    y = np.repeat([0, 1], n_per_class)
    return X, y


@pytest.mark.parametrize("seed", [0, 1])
def test_train_mlp_learns_two_spirals_without_touching_its_inputs(seed):
    rng = np.random.default_rng(seed)
    X, y = two_spirals(100, rng)
    params = init_params(rng, [2, 32, 32, 2], bias_scale=0.0)
    before = copy.deepcopy((X, y, params))

    trained, losses = train_mlp(X, y, params, learning_rate=0.5, num_epochs=1000)

    assert_same((X, y, params), before)
    assert trained is not params and trained.keys() == params.keys()
    assert all(trained[name] is not params[name] for name in params)
    accuracy = np.mean(mlp_forward(X, trained)[0].argmax(axis=1) == y)
    assert accuracy > 0.95
    assert len(losses) == 1000 and all(type(loss) is float for loss in losses)
    assert losses[0] == softmax_cross_entropy(mlp_forward(X, params)[0], y)
    assert np.mean(losses[-100:]) < 0.1 * np.mean(losses[:100])
    assert np.all(np.diff(np.convolve(losses, np.ones(100) / 100, mode="valid")) < 0)


def test_train_mlp_one_epoch_is_one_gradient_step():
    rng = np.random.default_rng(11)
    X, y = rng.standard_normal((N, D)), np.array([0, 2, 1, 0])
    params = init_params(rng, [D, H, M])
    scores, caches = mlp_forward(X, params, "tanh")
    grads = mlp_backward(softmax_cross_entropy_backward(scores, y), caches)

    trained, losses = train_mlp(X, y, params, 0.1, 1, hidden_activation="tanh")
    assert losses == [softmax_cross_entropy(scores, y)]
    for name in params:
        np.testing.assert_array_equal(trained[name], params[name] - 0.1 * grads[name])


def test_train_mlp_with_zero_epochs_returns_copies():
    rng = np.random.default_rng(12)
    params = init_params(rng, [D, M])
    trained, losses = train_mlp(rng.standard_normal((N, D)), np.zeros(N, dtype=int), params, 0.1, 0)
    assert losses == []
    assert_same(trained, params)
    assert all(trained[name] is not params[name] for name in params)


# ---- properties ---------------------------------------------------------------------------------

dims = st.integers(min_value=1, max_value=6)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
classes = st.integers(min_value=2, max_value=6)
scales = st.sampled_from([1.0, 1000.0])


@settings(max_examples=25, deadline=None)
@given(n=dims, d=dims, m=dims, seed=seeds)
def test_affine_backward_is_pure_and_right_on_random_shapes(n, d, m, seed):
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((n, d)), rng.standard_normal((d, m)), rng.standard_normal(m)
    dout = rng.standard_normal((n, m))
    dx, dW, db = call_twice_without_mutation(affine_backward, dout, affine_forward(x, W, b)[1])
    # The layer is linear, so central differences are exact up to rounding.
    for grad, numerical in [
        (dx, eval_numerical_gradient_array(lambda x: x @ W + b, x, dout)),
        (dW, eval_numerical_gradient_array(lambda W: x @ W + b, W, dout)),
        (db, eval_numerical_gradient_array(lambda b: x @ W + b, b, dout)),
    ]:
        np.testing.assert_allclose(grad, numerical, rtol=1e-6, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(n=dims, h=dims, seed=seeds, name=st.sampled_from(sorted(ACTIVATIONS)))
def test_activation_backward_is_pure_and_right_on_random_shapes(n, h, seed, name):
    forward, backward = ACTIVATIONS[name]
    rng = np.random.default_rng(seed)
    z, dout = away_from_zero(rng, (n, h)), rng.standard_normal((n, h))
    dz = call_twice_without_mutation(backward, dout, forward(z)[1])
    numerical = eval_numerical_gradient_array(lambda z: forward(z)[0], z, dout)
    np.testing.assert_allclose(dz, numerical, rtol=1e-6, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(n=dims, c=classes, seed=seeds, scale=scales)
def test_loss_backward_is_pure_and_finite_on_random_shapes(n, c, seed, scale):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, c)) * scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cases = [
            (mse_loss_backward, logits, rng.standard_normal((n, c))),
            (binary_cross_entropy_backward, logits[:, :1], rng.integers(0, 2, (n, 1)) * 1.0),
            (softmax_cross_entropy_backward, logits, rng.integers(0, c, n)),
        ]
        for backward, inputs, target in cases:
            dinputs = call_twice_without_mutation(backward, inputs, target)
            assert dinputs.shape == inputs.shape and np.all(np.isfinite(dinputs))
    # Each row of the softmax gradient sums to 0: probabilities and the one-hot both sum to 1.
    np.testing.assert_allclose(dinputs.sum(axis=1), np.zeros(n), atol=1e-15)


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(dims, min_size=2, max_size=5),
    n=dims,
    seed=seeds,
    hidden=st.sampled_from(["relu", "sigmoid", "tanh", None]),
    output=st.sampled_from(["relu", "sigmoid", "tanh", None]),
)
def test_mlp_backward_is_pure_on_random_shapes(sizes, n, seed, hidden, output):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0]))
    params = init_params(rng, sizes)
    out, caches = mlp_forward(X, params, hidden, output)
    dout = rng.standard_normal(out.shape)
    grads = call_twice_without_mutation(mlp_backward, dout, caches)
    assert grads.keys() == params.keys()
    assert all(grads[name].shape == params[name].shape for name in params)
    if "relu" not in (hidden, output):  # smooth everywhere, so no kink can spoil the estimate
        expected = numerical_mlp_grads(X, params, lambda out: np.sum(dout * out), hidden, output)
        for name in params:
            np.testing.assert_allclose(grads[name], expected[name], rtol=1e-5, atol=1e-8)
