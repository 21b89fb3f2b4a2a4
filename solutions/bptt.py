"""Notebook 06, backpropagation through time for a vanilla tanh RNN.

One step computes h_t = tanh(x_t @ Wx + h_{t-1} @ Wh + b). Unrolled over T steps the
network is a deep feed-forward net whose layers share Wx, Wh and b, so backpropagation
through time is the ordinary backward pass of that net with the weight gradients summed
over the steps. Layers follow the forward/backward pairs of the earlier notebooks:

- rnn_step:  cache = (x, h_prev, Wx, Wh, h_next)
- rnn:       cache = (x, h0, Wx, Wh, h)

Arrays are float64 with the batch first. Shapes: N batch, T time, D input, H hidden,
M output.
"""

import numpy as np

from solutions.vanishing_gradients import clip_by_global_norm


def rnn_step_forward(x, h_prev, Wx, Wh, b):
    """One step of a tanh RNN, h_next = tanh(x @ Wx + h_prev @ Wh + b).

    Inputs:
    - x: array (N, D), the input at this step.
    - h_prev: array (N, H), the hidden state of the previous step.
    - Wx: array (D, H), input-to-hidden weights.
    - Wh: array (H, H), hidden-to-hidden weights.
    - b: array (H,), biases.

    Returns a tuple of:
    - h_next: array (N, H), the new hidden state.
    - cache: (x, h_prev, Wx, Wh, h_next).
    """
    h_next = np.tanh(x @ Wx + h_prev @ Wh + b)
    cache = (x, h_prev, Wx, Wh, h_next)
    return h_next, cache


def rnn_step_backward(dh_next, cache):
    """Backward pass of rnn_step_forward, using tanh'(z) = 1 - tanh(z)^2.

    Inputs:
    - dh_next: array (N, H), upstream gradient dL/dh_next.
    - cache: (x, h_prev, Wx, Wh, h_next) from rnn_step_forward.

    Returns a tuple of:
    - dx: array (N, D), dL/dx.
    - dh_prev: array (N, H), dL/dh_prev.
    - dWx: array (D, H), dL/dWx.
    - dWh: array (H, H), dL/dWh.
    - db: array (H,), dL/db.
    """
    x, h_prev, Wx, Wh, h_next = cache
    dz = dh_next * (1 - h_next**2)
    dx = dz @ Wx.T
    dh_prev = dz @ Wh.T
    dWx = x.T @ dz
    dWh = h_prev.T @ dz
    db = dz.sum(axis=0)
    return dx, dh_prev, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    """Run a tanh RNN over a whole sequence.

    Inputs:
    - x: array (N, T, D), the input sequence.
    - h0: array (N, H), the initial hidden state.
    - Wx: array (D, H), input-to-hidden weights.
    - Wh: array (H, H), hidden-to-hidden weights.
    - b: array (H,), biases.

    Returns a tuple of:
    - h: array (N, T, H), the hidden state after every step.
    - cache: (x, h0, Wx, Wh, h).
    """
    N, T, _ = x.shape
    h = np.empty((N, T, Wh.shape[0]))
    h_prev = h0
    for t in range(T):
        h_prev, _ = rnn_step_forward(x[:, t], h_prev, Wx, Wh, b)
        h[:, t] = h_prev
    cache = (x, h0, Wx, Wh, h)
    return h, cache


def rnn_backward(dh, cache):
    """Backpropagation through time for rnn_forward.

    The gradient reaching h_t is the upstream dh[:, t] plus what flows back from step t + 1;
    the weights are shared by all steps, so their gradients are summed over time.

    Inputs:
    - dh: array (N, T, H), upstream gradient dL/dh_t of every step's hidden state.
    - cache: (x, h0, Wx, Wh, h) from rnn_forward.

    Returns a tuple of:
    - dx: array (N, T, D), dL/dx.
    - dh0: array (N, H), dL/dh0.
    - dWx: array (D, H), dL/dWx.
    - dWh: array (H, H), dL/dWh.
    - db: array (H,), dL/db.
    """
    x, h0, Wx, Wh, h = cache
    T = x.shape[1]
    dx = np.empty_like(x)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[0])
    dh_prev = np.zeros_like(h0)
    for t in reversed(range(T)):
        h_before = h0 if t == 0 else h[:, t - 1]
        step_cache = (x[:, t], h_before, Wx, Wh, h[:, t])
        dx[:, t], dh_prev, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dh_prev, step_cache)
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    dh0 = dh_prev
    return dx, dh0, dWx, dWh, db


def rnn_backward_truncated(dh, cache, k):
    """Truncated backpropagation through time: each loss term's gradient travels k steps.

    The upstream gradient dh[:, t] of step t reaches steps t, t-1, ..., t-k+1 and no
    further: for those steps it contributes to dx and to the weight gradients; the hidden
    state h_{t-k} entering the oldest of them is treated as a constant, except that h0 gets
    the gradient of every term whose window includes step 0 (t < k). With k >= T nothing is
    cut and the result equals rnn_backward; k = 1 keeps only each step's local gradient.

    Inputs:
    - dh: array (N, T, H), upstream gradient dL/dh_t of every step's hidden state.
    - cache: (x, h0, Wx, Wh, h) from rnn_forward.
    - k: int >= 1, the number of steps a gradient travels back.

    Returns a tuple of the truncated gradients:
    - dx: array (N, T, D).
    - dh0: array (N, H).
    - dWx: array (D, H).
    - dWh: array (H, H).
    - db: array (H,).
    """
    x, h0, Wx, Wh, h = cache
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    N, T, H = dh.shape
    # Going back from the last step, `in_flight` holds one gradient dL_s/dh_t per loss term
    # s that still reaches step t, newest first. The backward map of a step is linear, so
    # all terms pass through it in one product; a term is dropped after k steps. This is
    # exact and costs T products of k*N rows rather than T*k small ones.
    dz = np.empty((N, T, H))
    in_flight = np.zeros((0, N, H))
    for t in reversed(range(T)):
        in_flight = np.concatenate([dh[None, :, t], in_flight[: k - 1]])
        dz_terms = in_flight * (1 - h[:, t] ** 2)
        dz[:, t] = dz_terms.sum(axis=0)
        in_flight = dz_terms @ Wh.T
    dh0 = in_flight.sum(axis=0)
    # dz[:, t] is the truncated gradient at step t's tanh input; the rest follows from it
    # with one product over all steps at once. h_prev[:, t] is the state entering step t.
    h_prev = np.concatenate([h0[:, None], h[:, :-1]], axis=1)
    dx = dz @ Wx.T
    dWx = x.reshape(N * T, -1).T @ dz.reshape(N * T, H)
    dWh = h_prev.reshape(N * T, H).T @ dz.reshape(N * T, H)
    db = dz.sum(axis=(0, 1))
    return dx, dh0, dWx, dWh, db


def make_recall_task(n, T, rng):
    """Make a recall task: remember the number shown at the first step for T steps.

    Each sequence shows a value drawn uniformly from [-1, 1] at step 0 and zeros at the
    T - 1 steps after it; the target is that value. Predicting the mean (0) gives a loss of
    about 1/6 under the mean-squared error with the factor 1/2.

    Inputs:
    - n: N, the number of sequences.
    - T: the sequence length.
    - rng: np.random.Generator.

    Returns a tuple of:
    - x: array (N, T, 1), the input sequences.
    - y: array (N, 1), the targets.
    """
    x = np.zeros((n, T, 1))
    x[:, 0, 0] = rng.uniform(-1.0, 1.0, size=n)
    y = x[:, 0].copy()
    return x, y


def train_rnn(x, y, params, learning_rate, num_steps, clip_norm):
    """Train a tanh RNN regressor by full-batch gradient descent with gradient clipping.

    The prediction is read from the last hidden state, pred = h[:, -1] @ Wy + by, with
    h0 = 0; the loss is (1/2N) sum_i ||pred[i] - y[i]||^2. Each step records the loss,
    backpropagates through time, clips all gradients together with clip_by_global_norm and
    moves every parameter by -learning_rate times its clipped gradient.

    Inputs:
    - x: array (N, T, D), the input sequences.
    - y: array (N, M), the targets.
    - params: dict with "Wx" (D, H), "Wh" (H, H), "b" (H,), "Wy" (H, M), "by" (M,).
    - learning_rate: float.
    - num_steps: int, the number of gradient steps.
    - clip_norm: float, the max_norm passed to clip_by_global_norm.

    Returns a tuple of:
    - trained_params: a new dict with the keys and shapes of params.
    - losses: list of num_steps floats, the loss before each step's update.
    """
    N = x.shape[0]
    h0 = np.zeros((N, params["Wh"].shape[0]))
    losses = []
    for _ in range(num_steps):
        h, cache = rnn_forward(x, h0, params["Wx"], params["Wh"], params["b"])
        pred = h[:, -1] @ params["Wy"] + params["by"]
        losses.append(float(0.5 * np.sum((pred - y) ** 2) / N))

        dpred = (pred - y) / N
        # Only the last hidden state feeds the loss; every earlier step gets gradient
        # through the recurrence alone.
        dh = np.zeros_like(h)
        dh[:, -1] = dpred @ params["Wy"].T
        _, _, dWx, dWh, db = rnn_backward(dh, cache)
        grads = {
            "Wx": dWx,
            "Wh": dWh,
            "b": db,
            "Wy": h[:, -1].T @ dpred,
            "by": dpred.sum(axis=0),
        }
        clipped, _ = clip_by_global_norm(grads, clip_norm)
        params = {name: params[name] - learning_rate * clipped[name] for name in params}
    return params, losses
