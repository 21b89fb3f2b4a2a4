"""Tests of solutions.forward_pass: layers, activations, losses and mlp_forward.

Values are checked against hand-computed cases, known limits at +-1000 and, when PyTorch is
installed, against torch. Shapes use distinct N, D, H, M, C so a transposition cannot pass.
"""

import copy
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solutions.forward_pass import (
    affine_forward,
    binary_cross_entropy,
    mlp_forward,
    mse_loss,
    relu_forward,
    sigmoid_forward,
    softmax,
    softmax_cross_entropy,
    tanh_forward,
)

ACTIVATIONS = {"relu": relu_forward, "sigmoid": sigmoid_forward, "tanh": tanh_forward}
EXTREMES = np.array(
    [[-1000.0, -50.0, -1.0, 0.0], [1.0, 50.0, 1000.0, -0.5], [1000.0, -1000.0, 3.0, 2.0]]
)


def random_mlp_params(rng, sizes):
    """Weights scaled by 1/sqrt(fan_in) and non-zero biases for the given layer sizes."""
    params = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{layer}"] = rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)
        params[f"b{layer}"] = rng.standard_normal(fan_out)
    return params


# ---- affine and activations ----------------------------------------------------------------


def test_affine_forward_values_and_cache():
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    out, cache = affine_forward(x, W, b)
    expected = np.array(
        [[sum(x[n, d] * W[d, m] for d in range(5)) + b[m] for m in range(3)] for n in range(4)]
    )
    assert out.shape == (4, 3) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-13)
    assert len(cache) == 3 and all(c is a for c, a in zip(cache, (x, W, b)))


def test_activations_on_known_points(strict):
    z = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_allclose(sigmoid_forward(z)[0], 1 / (1 + np.exp(-z)), rtol=1e-15)
    np.testing.assert_allclose(tanh_forward(z)[0], np.tanh(z), rtol=1e-15)
    np.testing.assert_array_equal(relu_forward(z)[0], [[0.0, 0.0, 3.0]])
    assert sigmoid_forward(np.zeros(1))[0][0] == 0.5


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_cache_is_input_and_output(name):
    z = np.random.default_rng(1).standard_normal((4, 6))
    a, cache = ACTIVATIONS[name](z)
    assert len(cache) == 2
    assert cache[0] is z and cache[1] is a
    assert a.shape == z.shape and a.dtype == np.float64


def test_activations_at_plus_minus_1000_are_finite_and_at_their_limits(strict):
    z = EXTREMES
    s = sigmoid_forward(z)[0]
    t = tanh_forward(z)[0]
    r = relu_forward(z)[0]
    for a in (s, t, r):
        assert np.all(np.isfinite(a))
    assert s[0, 0] == 0.0 and s[1, 2] == 1.0
    assert t[0, 0] == -1.0 and t[1, 2] == 1.0
    assert r[0, 0] == 0.0 and r[1, 2] == 1000.0
    assert np.all((s >= 0) & (s <= 1))
    # Far from saturation the stable form loses nothing.
    np.testing.assert_allclose(s[0, 1], np.exp(-50.0) / (1 + np.exp(-50.0)), rtol=1e-14)


# ---- softmax ---------------------------------------------------------------------------------


def test_softmax_rows_sum_to_one_with_n_not_c(strict):
    z = np.random.default_rng(2).standard_normal((4, 7)) * 30
    p = softmax(z)
    assert p.shape == (4, 7)
    np.testing.assert_allclose(p.sum(axis=1), np.ones(4), rtol=1e-14)
    assert np.all(p >= 0)
    np.testing.assert_allclose(softmax(z + 123.0), p, rtol=1e-12, atol=1e-300)


def test_softmax_at_plus_minus_1000(strict):
    p = softmax(EXTREMES)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), np.ones(3), rtol=1e-14)
    np.testing.assert_allclose(p[1], [0.0, 0.0, 1.0, 0.0], atol=1e-300)
    np.testing.assert_allclose(softmax(np.full((2, 3), 1000.0)), np.full((2, 3), 1 / 3), rtol=1e-15)


# ---- losses ----------------------------------------------------------------------------------


def test_mse_loss_is_half_the_batch_mean_of_squared_norms():
    pred = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]])
    y = np.array([[0.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    loss = mse_loss(pred, y)
    assert type(loss) is float
    assert loss == pytest.approx((5.0 + 4.0 + 4.0) / (2 * 3), rel=1e-15)
    assert mse_loss(np.array([1.0, 3.0]), np.array([0.0, 0.0])) == pytest.approx(10.0 / 4)


@pytest.mark.parametrize("shape", [(5,), (5, 1)])
def test_binary_cross_entropy_matches_its_definition(shape):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal(shape) * 2
    y = rng.integers(0, 2, size=shape).astype(float)
    p = 1 / (1 + np.exp(-logits))
    loss = binary_cross_entropy(logits, y)
    assert type(loss) is float
    assert loss == pytest.approx(np.mean(-y * np.log(p) - (1 - y) * np.log(1 - p)), rel=1e-13)


def test_binary_cross_entropy_at_plus_minus_1000(strict):
    logits = np.array([1000.0, 1000.0, -1000.0, -1000.0])
    # Right with certainty costs 0, wrong with certainty costs |logit|.
    assert binary_cross_entropy(logits, np.array([1.0, 0.0, 0.0, 1.0])) == pytest.approx(2000.0 / 4)
    assert binary_cross_entropy(logits, np.array([1.0, 0.0, 1.0, 0.0])) == pytest.approx(1000.0 / 2)
    assert binary_cross_entropy(logits, np.array([1.0, 1.0, 0.0, 0.0])) == 0.0


def test_softmax_cross_entropy_matches_its_definition():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((4, 7))
    y = np.array([0, 6, 3, 3])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    loss = softmax_cross_entropy(logits, y)
    assert type(loss) is float
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(4), y])), rel=1e-13)
    assert softmax_cross_entropy(np.zeros((3, 5)), np.array([0, 1, 4])) == pytest.approx(np.log(5))


def test_softmax_cross_entropy_at_plus_minus_1000(strict):
    logits = np.array([[1000.0, 0.0, -1000.0], [1000.0, 0.0, -1000.0]])
    assert softmax_cross_entropy(logits, np.array([0, 0])) == 0.0
    assert softmax_cross_entropy(logits, np.array([2, 1])) == pytest.approx((2000.0 + 1000.0) / 2)


def test_losses_match_torch_on_random_and_extreme_inputs(strict):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(5)
    for scale in (1.0, 1000.0):
        pred, y = rng.standard_normal((4, 3)) * scale, rng.standard_normal((4, 3))
        squared_sum = F.mse_loss(torch.from_numpy(pred), torch.from_numpy(y), reduction="sum")
        expected = 0.5 * squared_sum / 4
        assert mse_loss(pred, y) == pytest.approx(expected.item(), rel=1e-13)

        logits, labels = rng.standard_normal((6, 1)) * scale, rng.integers(0, 2, (6, 1)) * 1.0
        expected = F.binary_cross_entropy_with_logits(
            torch.from_numpy(logits), torch.from_numpy(labels)
        )
        assert binary_cross_entropy(logits, labels) == pytest.approx(expected.item(), rel=1e-12)

        logits, classes = rng.standard_normal((4, 7)) * scale, rng.integers(0, 7, 4)
        expected = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(classes))
        assert softmax_cross_entropy(logits, classes) == pytest.approx(expected.item(), rel=1e-12)


def test_activations_and_softmax_match_torch(strict):
    torch = pytest.importorskip("torch")
    z = np.concatenate([EXTREMES, np.random.default_rng(6).standard_normal((2, 4)) * 5])
    tz = torch.from_numpy(z)
    # atol=1e-300 makes the comparison relative even for entries that underflow towards 0.
    for ours, theirs in [
        (sigmoid_forward(z)[0], torch.sigmoid(tz)),
        (tanh_forward(z)[0], torch.tanh(tz)),
        (softmax(z), torch.softmax(tz, dim=1)),
    ]:
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-13, atol=1e-300)
    np.testing.assert_array_equal(relu_forward(z)[0], torch.relu(tz).numpy())


# ---- mlp_forward -----------------------------------------------------------------------------


@pytest.mark.parametrize("hidden", ["relu", "sigmoid", "tanh", None])
@pytest.mark.parametrize("output", [None, "sigmoid"])
def test_mlp_forward_composes_the_layers(hidden, output):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((4, 5))
    params = random_mlp_params(rng, [5, 6, 7, 3])
    out, caches = mlp_forward(X, params, hidden_activation=hidden, output_activation=output)

    h = X
    for layer in (1, 2, 3):
        h = h @ params[f"W{layer}"] + params[f"b{layer}"]
        activation = output if layer == 3 else hidden
        if activation is not None:
            h = ACTIVATIONS[activation](h)[0]
    np.testing.assert_allclose(out, h, rtol=1e-14)
    assert out.shape == (4, 3)

    assert len(caches) == 3
    for layer, (affine_cache, activation, activation_cache) in enumerate(caches, start=1):
        x, W, b = affine_cache
        assert W is params[f"W{layer}"] and b is params[f"b{layer}"]
        assert activation == (output if layer == 3 else hidden)
        if activation is None:
            assert activation_cache is None
        else:
            z, a = activation_cache
            np.testing.assert_array_equal(z, x @ W + b)
            np.testing.assert_array_equal(a, ACTIVATIONS[activation](z)[0])
    assert caches[0][0][0] is X


def test_mlp_forward_defaults_to_relu_hidden_and_linear_output():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((3, 2))
    params = random_mlp_params(rng, [2, 4, 5])
    out, caches = mlp_forward(X, params)
    assert [c[1] for c in caches] == ["relu", None]
    hidden = np.maximum(X @ params["W1"] + params["b1"], 0)
    np.testing.assert_allclose(out, hidden @ params["W2"] + params["b2"], rtol=1e-14)


def test_single_layer_mlp_is_one_affine_layer():
    rng = np.random.default_rng(9)
    X = rng.standard_normal((4, 5))
    params = random_mlp_params(rng, [5, 3])
    out, caches = mlp_forward(X, params, output_activation="tanh")
    np.testing.assert_allclose(out, np.tanh(X @ params["W1"] + params["b1"]), rtol=1e-15)
    assert len(caches) == 1 and caches[0][1] == "tanh"


# ---- properties --------------------------------------------------------------------------------

dims = st.integers(min_value=1, max_value=6)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
classes = st.integers(min_value=2, max_value=6)
scales = st.sampled_from([1.0, 1000.0])


def call_twice_without_mutation(function, *args):
    """Call function twice on the same arguments; assert they are unchanged, return both results."""
    before = copy.deepcopy(args)
    first = function(*args)
    second = function(*args)
    for arg, original in zip(args, before):
        if isinstance(arg, dict):
            assert arg.keys() == original.keys()
            for key in arg:
                np.testing.assert_array_equal(arg[key], original[key])
        else:
            np.testing.assert_array_equal(arg, original)
    return first, second


@settings(max_examples=25, deadline=None)
@given(N=dims, D=dims, M=dims, seed=seeds, scale=scales)
def test_layers_and_activations_are_pure(N, D, M, seed, scale):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D)) * scale
    W, b = rng.standard_normal((D, M)), rng.standard_normal(M)
    (out, _), (again, _) = call_twice_without_mutation(affine_forward, x, W, b)
    assert out.shape == (N, M)
    np.testing.assert_array_equal(out, again)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for forward in ACTIVATIONS.values():
            (a, _), (again, _) = call_twice_without_mutation(forward, x)
            assert a.shape == x.shape and np.all(np.isfinite(a))
            np.testing.assert_array_equal(a, again)
        p, again = call_twice_without_mutation(softmax, x)
    np.testing.assert_array_equal(p, again)
    np.testing.assert_allclose(p.sum(axis=1), np.ones(N), rtol=1e-13)


@settings(max_examples=25, deadline=None)
@given(N=dims, C=classes, seed=seeds, scale=scales)
def test_losses_are_pure_and_finite(N, C, seed, scale):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((N, C)) * scale
    targets = rng.standard_normal((N, C))
    classes = rng.integers(0, C, N)
    labels = rng.integers(0, 2, (N, 1)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for loss, args in [
            (mse_loss, (logits, targets)),
            (binary_cross_entropy, (logits[:, :1], labels)),
            (softmax_cross_entropy, (logits, classes)),
        ]:
            first, second = call_twice_without_mutation(loss, *args)
            assert type(first) is float and np.isfinite(first) and first >= 0
            assert first == second


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(dims, min_size=2, max_size=5),
    N=dims,
    seed=seeds,
    hidden=st.sampled_from(["relu", "sigmoid", "tanh", None]),
    output=st.sampled_from(["relu", "sigmoid", "tanh", None]),
)
def test_mlp_forward_is_pure(sizes, N, seed, hidden, output):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, sizes[0]))
    params = random_mlp_params(rng, sizes)
    (out, caches), (again, _) = call_twice_without_mutation(
        lambda X, params: mlp_forward(X, params, hidden, output), X, params
    )
    assert out.shape == (N, sizes[-1]) and len(caches) == len(sizes) - 1
    np.testing.assert_array_equal(out, again)
