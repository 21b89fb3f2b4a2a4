"""Tests of solutions.bptt: the RNN step, backpropagation through time, its truncated form and
the recall task trained with clipping.

Gradients are checked against central differences and torch autograd; the truncated backward
against a per-loss-term definition written out here and against torch with the hidden state
detached k steps back.
"""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solutions.backward_pass import eval_numerical_gradient_array, rel_error
from solutions.bptt import (
    make_recall_task,
    rnn_backward,
    rnn_backward_truncated,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
    train_rnn,
)

INPUT_NAMES = ("x", "h0", "Wx", "Wh", "b")


def rnn_inputs(seed, N=3, T=5, D=4, H=6):
    """x (N, T, D), h0, Wx, Wh, b and an upstream dh (N, T, H), all with distinct sizes."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((N, H))
    Wx = rng.normal(0.0, 1 / np.sqrt(D), (D, H))
    Wh = rng.normal(0.0, 1 / np.sqrt(H), (H, H))
    b = rng.normal(0.0, 0.5, H)
    dh = rng.standard_normal((N, T, H))
    return (x, h0, Wx, Wh, b), dh


def numerical_gradients(forward, inputs, dout):
    """Central-difference gradient of sum(dout * forward(*inputs)[0]) for every input."""
    gradients = []
    for i, value in enumerate(inputs):
        def output_of(v, i=i):
            return forward(*inputs[:i], v, *inputs[i + 1:])[0]

        gradients.append(eval_numerical_gradient_array(output_of, value.copy(), dout))
    return gradients


# ---- one step ---------------------------------------------------------------------------------


def test_rnn_step_forward_value_and_cache():
    (x, h0, Wx, Wh, b), _ = rnn_inputs(0)
    h_next, cache = rnn_step_forward(x[:, 0], h0, Wx, Wh, b)
    np.testing.assert_allclose(h_next, np.tanh(x[:, 0] @ Wx + h0 @ Wh + b), rtol=1e-15)
    assert h_next.shape == (3, 6)
    cx, ch, cWx, cWh, ch_next = cache
    assert ch is h0 and cWx is Wx and cWh is Wh and ch_next is h_next
    np.testing.assert_array_equal(cx, x[:, 0])


@pytest.mark.parametrize("seed", range(3))
def test_rnn_step_backward_matches_central_differences(seed):
    (x, h0, Wx, Wh, b), dh = rnn_inputs(seed)
    inputs = (x[:, 0].copy(), h0, Wx, Wh, b)
    _, cache = rnn_step_forward(*inputs)
    grads = rnn_step_backward(dh[:, 0], cache)
    for name, grad, value, numeric in zip(
        INPUT_NAMES, grads, inputs, numerical_gradients(rnn_step_forward, inputs, dh[:, 0])
    ):
        assert grad.shape == value.shape, name
        assert rel_error(grad, numeric) < 1e-6, name


# ---- whole sequence -----------------------------------------------------------------------------


def test_rnn_forward_steps_the_recurrence_and_caches_its_inputs():
    inputs, _ = rnn_inputs(1)
    x, h0, Wx, Wh, b = inputs
    h, cache = rnn_forward(*inputs)
    assert h.shape == (3, 5, 6)
    h_prev = h0
    for t in range(5):
        h_prev = np.tanh(x[:, t] @ Wx + h_prev @ Wh + b)
        np.testing.assert_allclose(h[:, t], h_prev, rtol=1e-14)
    assert all(cached is value for cached, value in zip(cache[:4], inputs[:4]))
    assert cache[4] is h


@pytest.mark.parametrize("seed", range(3))
def test_rnn_backward_matches_central_differences(seed):
    inputs, dh = rnn_inputs(seed)
    _, cache = rnn_forward(*inputs)
    grads = rnn_backward(dh, cache)
    for name, grad, value, numeric in zip(INPUT_NAMES, grads, inputs, numerical_gradients(rnn_forward, inputs, dh)):
        assert grad.shape == value.shape, name
        assert rel_error(grad, numeric) < 1e-6, name


def torch_rnn_gradients(torch, inputs, dh, k=None):
    """Gradients of sum_t <dh[:, t], h_t> by torch autograd; with k, loss term t sees the
    hidden state h_{t-k} detached (a constant) whenever it is a computed state (t - k >= 0)."""
    x, h0, Wx, Wh, b = [torch.tensor(value, requires_grad=True) for value in inputs]
    T = x.shape[1]

    def run(start_state, start, stop):
        hidden = start_state
        for t in range(start, stop):
            hidden = torch.tanh(x[:, t] @ Wx + hidden @ Wh + b)
        return hidden

    loss = 0.0
    for t in range(T):
        if k is None or t - k < 0:
            state = run(h0, 0, t + 1)
        else:
            state = run(run(h0, 0, t - k + 1).detach(), t - k + 1, t + 1)
        loss = loss + (state * torch.from_numpy(dh[:, t])).sum()
    return [g.numpy() for g in torch.autograd.grad(loss, (x, h0, Wx, Wh, b))]


def test_rnn_backward_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    inputs, dh = rnn_inputs(7, N=4, T=9, D=5, H=8)
    _, cache = rnn_forward(*inputs)
    for name, grad, expected in zip(INPUT_NAMES, rnn_backward(dh, cache), torch_rnn_gradients(torch, inputs, dh)):
        np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-13, err_msg=name)


def test_rnn_functions_leave_their_inputs_alone():
    inputs, dh = rnn_inputs(2)
    before = copy.deepcopy((inputs, dh))
    h, cache = rnn_forward(*inputs)
    h_before = h.copy()
    rnn_backward(dh, cache)
    rnn_backward_truncated(dh, cache, 2)
    rnn_step_backward(dh[:, 0], rnn_step_forward(inputs[0][:, 0], *inputs[1:])[1])
    for value, original in zip((*inputs, dh), (*before[0], before[1])):
        np.testing.assert_array_equal(value, original)
    np.testing.assert_array_equal(cache[4], h_before)


# ---- truncated BPTT -----------------------------------------------------------------------------


def brute_force_truncated(dh, cache, k):
    """The definition, one loss term at a time: dh[:, t] is carried back through steps
    t, t-1, ..., max(t-k+1, 0); h0 gets what leaves step 0."""
    x, h0, Wx, Wh, h = cache
    N, T, H = dh.shape
    dx, dh0 = np.zeros_like(x), np.zeros_like(h0)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(H)
    for t in range(T):
        upstream = dh[:, t]
        for s in range(t, max(t - k, -1), -1):
            dz = upstream * (1 - h[:, s] ** 2)
            h_before = h0 if s == 0 else h[:, s - 1]
            dx[:, s] += dz @ Wx.T
            dWx += x[:, s].T @ dz
            dWh += h_before.T @ dz
            db += dz.sum(axis=0)
            upstream = dz @ Wh.T
            if s == 0:
                dh0 += upstream
    return dx, dh0, dWx, dWh, db


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), T=st.integers(1, 7), k=st.integers(1, 9))
def test_truncated_backward_matches_the_per_term_definition(seed, T, k):
    inputs, dh = rnn_inputs(seed, T=T)
    _, cache = rnn_forward(*inputs)
    grads = rnn_backward_truncated(dh, cache, k)
    for name, grad, expected in zip(INPUT_NAMES, grads, brute_force_truncated(dh, cache, k)):
        np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("extra", [0, 1, 5])
def test_truncated_backward_with_k_at_least_T_is_full_bptt(extra):
    inputs, dh = rnn_inputs(3, T=6)
    _, cache = rnn_forward(*inputs)
    full = rnn_backward(dh, cache)
    for name, grad, expected in zip(INPUT_NAMES, rnn_backward_truncated(dh, cache, 6 + extra), full):
        np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-13, err_msg=name)


def test_truncated_backward_with_k_1_keeps_only_local_gradients():
    inputs, dh = rnn_inputs(4)
    x, h0, Wx, Wh, b = inputs
    h, cache = rnn_forward(*inputs)
    dx, dh0, _, _, db = rnn_backward_truncated(dh, cache, 1)
    dz = dh * (1 - h**2)
    np.testing.assert_allclose(dx, dz @ Wx.T, rtol=1e-12)
    np.testing.assert_allclose(dh0, dz[:, 0] @ Wh.T, rtol=1e-12)
    np.testing.assert_allclose(db, dz.sum(axis=(0, 1)), rtol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_truncated_backward_matches_torch_with_detached_states(k):
    torch = pytest.importorskip("torch")
    inputs, dh = rnn_inputs(5, T=6)
    _, cache = rnn_forward(*inputs)
    grads = rnn_backward_truncated(dh, cache, k)
    for name, grad, expected in zip(INPUT_NAMES, grads, torch_rnn_gradients(torch, inputs, dh, k)):
        np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-13, err_msg=name)


def test_truncated_backward_rejects_k_below_1():
    inputs, dh = rnn_inputs(0)
    _, cache = rnn_forward(*inputs)
    with pytest.raises(ValueError):
        rnn_backward_truncated(dh, cache, 0)


# ---- recall task and training with clipping ---------------------------------------------------


def test_make_recall_task_shows_the_target_at_the_first_step_only():
    x, y = make_recall_task(50, 8, np.random.default_rng(0))
    assert x.shape == (50, 8, 1) and y.shape == (50, 1)
    np.testing.assert_array_equal(y, x[:, 0])
    np.testing.assert_array_equal(x[:, 1:], 0.0)
    assert np.all(np.abs(y) <= 1) and y.std() > 0.3
    np.testing.assert_array_equal(x, make_recall_task(50, 8, np.random.default_rng(0))[0])


def initial_rnn_params(rng, D=1, H=16, M=1):
    return {
        "Wx": rng.normal(0.0, 1.0, (D, H)),
        "Wh": rng.normal(0.0, 1 / np.sqrt(H), (H, H)),
        "b": np.zeros(H),
        "Wy": rng.normal(0.0, 1 / np.sqrt(H), (H, M)),
        "by": np.zeros(M),
    }


def recall_loss(params, x, y):
    h, _ = rnn_forward(x, np.zeros((x.shape[0], params["Wh"].shape[0])), params["Wx"], params["Wh"], params["b"])
    pred = h[:, -1] @ params["Wy"] + params["by"]
    return 0.5 * np.sum((pred - y) ** 2) / x.shape[0]


@pytest.mark.parametrize("seed", range(2))
def test_train_rnn_learns_the_recall_task(seed):
    rng = np.random.default_rng(seed)
    x, y = make_recall_task(256, 8, rng)
    params = initial_rnn_params(rng)
    before = copy.deepcopy((x, y, params))
    trained, losses = train_rnn(x, y, params, learning_rate=0.3, num_steps=300, clip_norm=1.0)

    assert len(losses) == 300 and all(type(loss) is float for loss in losses)
    assert losses[0] == pytest.approx(recall_loss(params, x, y), rel=1e-12)
    # Judged on fresh sequences with the trained weights, against predicting the mean.
    x_new, y_new = make_recall_task(512, 8, rng)
    trivial = 0.5 * np.mean((y_new - y_new.mean()) ** 2)
    assert recall_loss(trained, x_new, y_new) < 0.05 * trivial

    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(y, before[1])
    assert trained.keys() == params.keys()
    for name in params:
        np.testing.assert_array_equal(params[name], before[2][name])
        assert trained[name].shape == params[name].shape
        assert not np.shares_memory(trained[name], params[name])


def test_train_rnn_clips_the_joint_gradient_norm():
    rng = np.random.default_rng(3)
    x, y = make_recall_task(64, 6, rng)
    params = initial_rnn_params(rng)
    learning_rate, clip_norm = 0.5, 1e-3
    trained, _ = train_rnn(x, y, params, learning_rate, num_steps=1, clip_norm=clip_norm)
    step_norm = np.sqrt(sum(np.sum((params[name] - trained[name]) ** 2) for name in params))
    # Not exact: clipping divides by total_norm + 1e-6, and the total norm here is about 0.1.
    assert step_norm == pytest.approx(learning_rate * clip_norm, rel=1e-4)
