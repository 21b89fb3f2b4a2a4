"""Tests of solutions.vanishing_gradients: initialisers, the gradient-norm probe, clipping,
Leaky ReLU and the residual block.

Gradients are checked against central differences, the probe and clipping against torch when
it is installed, and the no-mutation contract as a property.
"""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from solutions.backward_pass import eval_numerical_gradient_array, rel_error
from solutions.vanishing_gradients import (
    clip_by_global_norm,
    clip_by_value,
    he_init,
    layer_gradient_norms,
    leaky_relu_backward,
    leaky_relu_forward,
    residual_backward,
    residual_forward,
    xavier_init,
)

ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu"]


def away_from_zero(rng, shape, low=0.1, high=2.0):
    """Values whose magnitude is in [low, high], with random signs: no entry near a kink."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def mlp_params(rng, sizes, std=None):
    """params "W1", "b1", ... for layer sizes [D, H1, ..., C]; He-scaled unless std is given."""
    params = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        scale = np.sqrt(2.0 / fan_in) if std is None else std
        params[f"W{layer}"] = rng.normal(0.0, scale, (fan_in, fan_out))
        params[f"b{layer}"] = rng.normal(0.0, 0.1, fan_out)
    return params


# ---- initialisers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "init, expected_std",
    [
        (xavier_init, lambda fan_in, fan_out: np.sqrt(2 / (fan_in + fan_out))),
        (he_init, lambda fan_in, _: np.sqrt(2 / fan_in)),
    ],
    ids=["xavier", "he"],
)
@pytest.mark.parametrize("fan_in, fan_out", [(1000, 1000), (500, 2000)])
def test_initialiser_statistics(init, expected_std, fan_in, fan_out):
    W = init(fan_in, fan_out, np.random.default_rng(0))
    std = expected_std(fan_in, fan_out)
    assert W.shape == (fan_in, fan_out) and W.dtype == np.float64
    assert abs(W.std() / std - 1) < 0.05
    # Five standard errors of the mean of fan_in * fan_out draws.
    assert abs(W.mean()) < 5 * std / np.sqrt(W.size)


@pytest.mark.parametrize("init", [xavier_init, he_init])
def test_initialisers_draw_only_from_the_given_rng(init):
    np.testing.assert_array_equal(init(7, 3, np.random.default_rng(5)), init(7, 3, np.random.default_rng(5)))
    assert not np.array_equal(init(7, 3, np.random.default_rng(5)), init(7, 3, np.random.default_rng(6)))


# ---- Leaky ReLU -------------------------------------------------------------------------------


def test_leaky_relu_forward_values_and_cache():
    z = np.array([[-2.0, 0.0, 3.0], [0.5, -0.1, -4.0]])
    a, cache = leaky_relu_forward(z, alpha=0.1)
    np.testing.assert_allclose(a, [[-0.2, 0.0, 3.0], [0.5, -0.01, -0.4]], rtol=1e-15)
    assert cache[0] is z and cache[1] == 0.1
    np.testing.assert_array_equal(leaky_relu_forward(z)[0], np.where(z > 0, z, 0.01 * z))


@pytest.mark.parametrize("alpha", [0.01, 0.2])
@pytest.mark.parametrize("seed", range(3))
def test_leaky_relu_backward_matches_central_differences(alpha, seed):
    rng = np.random.default_rng(seed)
    z = away_from_zero(rng, (4, 6))
    dout = rng.standard_normal((4, 6))
    _, cache = leaky_relu_forward(z, alpha)
    dz = leaky_relu_backward(dout, cache)
    dz_num = eval_numerical_gradient_array(lambda v: leaky_relu_forward(v, alpha)[0], z.copy(), dout)
    assert rel_error(dz, dz_num) < 1e-7


def test_leaky_relu_keeps_a_gradient_where_relu_has_none():
    z = -np.ones((2, 3))
    dz = leaky_relu_backward(np.ones_like(z), leaky_relu_forward(z)[1])
    np.testing.assert_array_equal(dz, 0.01)


# ---- residual block ---------------------------------------------------------------------------


def residual_inputs(seed, N=4, D=5):
    """x, W, b, dout for a residual block with every pre-activation at least 1e-3 from 0."""
    rng = np.random.default_rng(seed)
    while True:
        x = rng.standard_normal((N, D))
        W = rng.standard_normal((D, D)) / np.sqrt(D)
        b = rng.normal(0.0, 0.5, D)
        if np.abs(x @ W + b).min() > 1e-3:
            return x, W, b, rng.standard_normal((N, D))


def test_residual_forward_value_and_cache():
    x, W, b, _ = residual_inputs(0)
    out, cache = residual_forward(x, W, b)
    np.testing.assert_allclose(out, x + np.maximum(x @ W + b, 0), rtol=1e-15)
    cx, cW, cb, cz = cache
    assert cx is x and cW is W and cb is b
    np.testing.assert_allclose(cz, x @ W + b, rtol=1e-15)


@pytest.mark.parametrize("seed", range(3))
def test_residual_backward_matches_central_differences(seed):
    x, W, b, dout = residual_inputs(seed)
    _, cache = residual_forward(x, W, b)
    dx, dW, db = residual_backward(dout, cache)
    assert dx.shape == x.shape and dW.shape == W.shape and db.shape == b.shape
    dx_num = eval_numerical_gradient_array(lambda v: residual_forward(v, W, b)[0], x.copy(), dout)
    dW_num = eval_numerical_gradient_array(lambda v: residual_forward(x, v, b)[0], W.copy(), dout)
    db_num = eval_numerical_gradient_array(lambda v: residual_forward(x, W, v)[0], b.copy(), dout)
    assert rel_error(dx, dx_num) < 1e-7
    assert rel_error(dW, dW_num) < 1e-7
    assert rel_error(db, db_num) < 1e-7


def test_residual_identity_path_passes_dout_when_the_branch_is_dead():
    x = np.ones((3, 4))
    dout = np.arange(12.0).reshape(3, 4)
    _, cache = residual_forward(x, np.zeros((4, 4)), -np.ones(4))
    dx, dW, db = residual_backward(dout, cache)
    np.testing.assert_array_equal(dx, dout)
    np.testing.assert_array_equal(dW, 0.0)
    np.testing.assert_array_equal(db, 0.0)


# ---- layer_gradient_norms -------------------------------------------------------------------


def torch_layer_gradient_norms(torch, X, y, params, activation):
    """The same probe with torch autograd: retain_grad on every hidden activation."""
    act = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.01),
    }[activation]
    num_layers = len(params) // 2
    h, hidden = torch.from_numpy(X), []
    for layer in range(1, num_layers + 1):
        W = torch.tensor(params[f"W{layer}"], requires_grad=True)
        b = torch.tensor(params[f"b{layer}"], requires_grad=True)
        h = h @ W + b
        if layer < num_layers:
            h = act(h)
            h.retain_grad()
            hidden.append(h)
    torch.nn.functional.cross_entropy(h, torch.from_numpy(y)).backward()
    return [float(layer_output.grad.norm()) for layer_output in hidden]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("seed", range(2))
def test_layer_gradient_norms_match_torch_autograd(activation, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    sizes = [6, 7, 5, 4, 3]
    X = rng.standard_normal((10, sizes[0]))
    y = rng.integers(0, sizes[-1], 10)
    params = mlp_params(rng, sizes)
    norms = layer_gradient_norms(X, y, params, activation)
    assert isinstance(norms, list) and len(norms) == 3
    assert all(type(norm) is float for norm in norms)
    np.testing.assert_allclose(norms, torch_layer_gradient_norms(torch, X, y, params, activation), rtol=1e-10)


def deep_net(rng, activation_std, depth=10, width=32, N=64, D=32, C=10):
    X = rng.standard_normal((N, D))
    y = rng.integers(0, C, N)
    params = mlp_params(rng, [D] + [width] * depth + [C], std=activation_std)
    return X, y, params


def test_deep_sigmoid_net_with_small_init_has_vanishing_gradients():
    X, y, params = deep_net(np.random.default_rng(0), activation_std=0.1)
    norms = layer_gradient_norms(X, y, params, "sigmoid")
    assert len(norms) == 10
    assert all(earlier < later for earlier, later in zip(norms[:-1], norms[1:]))
    assert norms[0] < 1e-6 * norms[-1]


def test_deep_relu_net_with_he_init_keeps_its_gradient():
    X, y, params = deep_net(np.random.default_rng(0), activation_std=None)
    norms = layer_gradient_norms(X, y, params, "relu")
    assert 1 / 3 < norms[0] / norms[-1] < 3


def test_layer_gradient_norms_leaves_its_inputs_alone_and_rejects_unknown_activations():
    X, y, params = deep_net(np.random.default_rng(1), activation_std=0.2, depth=3)
    before = copy.deepcopy((X, y, params))
    layer_gradient_norms(X, y, params, "tanh")
    np.testing.assert_array_equal(X, before[0])
    np.testing.assert_array_equal(y, before[1])
    for name in params:
        np.testing.assert_array_equal(params[name], before[2][name])
    with pytest.raises(ValueError):
        layer_gradient_norms(X, y, params, "softplus")


# ---- clipping ---------------------------------------------------------------------------------


def gradient_dict(rng, scale=1.0):
    shapes = {"W1": (3, 4), "b1": (4,), "W2": (2, 3, 2)}
    return {name: scale * rng.standard_normal(shape) for name, shape in shapes.items()}


def torch_parameters(torch, grads):
    parameters = []
    for grad in grads.values():
        p = torch.zeros(grad.shape, dtype=torch.float64, requires_grad=True)
        p.grad = torch.tensor(grad)
        parameters.append(p)
    return parameters


@pytest.mark.parametrize("max_norm", [0.5, 2.0, 1e3])
def test_clip_by_global_norm_matches_torch(max_norm):
    torch = pytest.importorskip("torch")
    grads = gradient_dict(np.random.default_rng(0))
    before = copy.deepcopy(grads)
    clipped, total_norm = clip_by_global_norm(grads, max_norm)
    parameters = torch_parameters(torch, grads)
    torch_total = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    assert type(total_norm) is float
    assert total_norm == pytest.approx(float(torch_total), rel=1e-13)
    for name, p in zip(grads, parameters):
        np.testing.assert_allclose(clipped[name], p.grad.numpy(), rtol=1e-13)
        np.testing.assert_array_equal(grads[name], before[name])


@pytest.mark.parametrize("clip_value", [0.3, 1.0, 10.0])
def test_clip_by_value_matches_torch(clip_value):
    torch = pytest.importorskip("torch")
    grads = gradient_dict(np.random.default_rng(1), scale=2.0)
    before = copy.deepcopy(grads)
    clipped = clip_by_value(grads, clip_value)
    parameters = torch_parameters(torch, grads)
    torch.nn.utils.clip_grad_value_(parameters, clip_value)
    for name, p in zip(grads, parameters):
        np.testing.assert_array_equal(clipped[name], p.grad.numpy())
        np.testing.assert_array_equal(grads[name], before[name])


gradient_arrays = hnp.arrays(
    np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), elements=st.floats(-100, 100)
)


@settings(max_examples=50, deadline=None)
@given(
    grads=st.dictionaries(st.sampled_from(["W1", "b1", "W2", "b2"]), gradient_arrays, min_size=1),
    max_norm=st.floats(1e-3, 1e3),
)
def test_clip_by_global_norm_properties(grads, max_norm):
    before = copy.deepcopy(grads)
    clipped, total_norm = clip_by_global_norm(grads, max_norm)
    everything = np.concatenate([grad.ravel() for grad in grads.values()])
    assert total_norm == pytest.approx(np.sqrt(np.sum(everything**2)), rel=1e-12, abs=1e-300)
    clipped_norm = np.sqrt(sum(np.sum(grad**2) for grad in clipped.values()))
    assert clipped_norm <= max_norm * (1 + 1e-12) or clipped_norm == pytest.approx(total_norm, rel=1e-12)
    scale = min(1.0, max_norm / (total_norm + 1e-6))
    for name in grads:
        np.testing.assert_array_equal(grads[name], before[name])
        np.testing.assert_allclose(clipped[name], scale * grads[name], rtol=1e-15)
        assert not np.shares_memory(clipped[name], grads[name])


@settings(max_examples=50, deadline=None)
@given(
    grads=st.dictionaries(st.sampled_from(["W1", "b1"]), gradient_arrays, min_size=1),
    clip_value=st.floats(1e-3, 50),
)
def test_clip_by_value_properties(grads, clip_value):
    before = copy.deepcopy(grads)
    clipped = clip_by_value(grads, clip_value)
    for name in grads:
        np.testing.assert_array_equal(grads[name], before[name])
        assert np.all(np.abs(clipped[name]) <= clip_value)
        inside = np.abs(grads[name]) <= clip_value
        np.testing.assert_array_equal(clipped[name][inside], grads[name][inside])
        assert not np.shares_memory(clipped[name], grads[name])
