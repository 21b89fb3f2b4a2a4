"""Notebook 03, the backward pass: gradients layer by layer, checked against finite differences.

Every layer's backward function takes the upstream gradient `dout` (the gradient of the loss
with respect to the layer's output, same shape as that output) and the cache its forward
function returned, and gives the gradient with respect to each forward input, in the order
of the forward's inputs. The cache layouts are those of `solutions.forward_pass`:

- affine:                      cache = (x, W, b)
- sigmoid, tanh, relu:         cache = (z, a), the activation's input and output
- mlp_forward:                 caches = [(affine_cache, activation, activation_cache), ...],
                               one entry per layer, first to last; activation_cache is None
                               when activation is None.

The loss backward functions include the loss's 1/N, so no other backward function divides by
N. Shapes: N batch, D input, H hidden, M output, C classes.
"""

import numpy as np

from solutions.forward_pass import (
    mlp_forward,
    sigmoid_forward,
    softmax,
    softmax_cross_entropy,
)


def affine_backward(dout, cache):
    """Backward pass of the affine layer out = x @ W + b.

    Inputs:
    - dout: array (N, M), upstream gradient dL/dout
    - cache: (x, W, b) from affine_forward, with x (N, D), W (D, M), b (M,)

    Returns a tuple of:
    - dx: array (N, D), dL/dx
    - dW: array (D, M), dL/dW
    - db: array (M,), dL/db
    """
    x, W, b = cache
    dx = dout @ W.T
    dW = x.T @ dout
    # b is added to every row of the batch, so its gradient sums over the rows.
    db = dout.sum(axis=0)
    return dx, dW, db


def sigmoid_backward(dout, cache):
    """Backward pass of the sigmoid a = sigmoid(z), using sigmoid'(z) = a (1 - a).

    Inputs:
    - dout: array like z, upstream gradient dL/da
    - cache: (z, a) from sigmoid_forward

    Returns:
    - dz: array like z, dL/dz
    """
    _, a = cache
    dz = dout * a * (1 - a)
    return dz


def tanh_backward(dout, cache):
    """Backward pass of a = tanh(z), using tanh'(z) = 1 - a^2.

    Inputs:
    - dout: array like z, upstream gradient dL/da
    - cache: (z, a) from tanh_forward

    Returns:
    - dz: array like z, dL/dz
    """
    _, a = cache
    dz = dout * (1 - a**2)
    return dz


def relu_backward(dout, cache):
    """Backward pass of a = max(z, 0); the derivative at z = 0 is taken to be 0.

    Inputs:
    - dout: array like z, upstream gradient dL/da
    - cache: (z, a) from relu_forward

    Returns:
    - dz: array like z, dL/dz
    """
    z, _ = cache
    dz = dout * (z > 0)
    return dz


def mse_loss_backward(pred, y):
    """Gradient of mse_loss, L = (1/2N) sum_i ||pred[i] - y[i]||^2, with respect to pred.

    Inputs:
    - pred: array (N, M) or (N,), the predictions
    - y: array like pred, the targets

    Returns:
    - dpred: array like pred, dL/dpred = (pred - y) / N
    """
    N = pred.shape[0]
    dpred = (pred - y) / N
    return dpred


def binary_cross_entropy_backward(logits, y):
    """Gradient of binary_cross_entropy (mean over N) with respect to the logits.

    Inputs:
    - logits: array (N,) or (N, 1), the scores before the sigmoid
    - y: array like logits, the labels in {0, 1}

    Returns:
    - dlogits: array like logits, dL/dlogits = (sigmoid(logits) - y) / N
    """
    N = logits.shape[0]
    probs, _ = sigmoid_forward(logits)
    dlogits = (probs - y) / N
    return dlogits


def softmax_cross_entropy_backward(logits, y):
    """Gradient of softmax_cross_entropy (mean over N) with respect to the logits.

    Inputs:
    - logits: array (N, C), the class scores
    - y: integer array (N,), the correct class of each example

    Returns:
    - dlogits: array (N, C), dL/dlogits = (softmax(logits) - one_hot(y)) / N
    """
    N = logits.shape[0]
    dlogits = softmax(logits)
    dlogits[np.arange(N), y] -= 1
    return dlogits / N


def mlp_backward(dout, caches):
    """Backward pass of mlp_forward: the gradient of the loss for every weight and bias.

    Inputs:
    - dout: array (N, M), upstream gradient dL/dout for the network's output
    - caches: the list returned by mlp_forward, one (affine_cache, activation,
      activation_cache) per layer, first layer first

    Returns:
    - grads: dict with "W1", "b1", ..., "WL", "bL", each shaped like its parameter
    """
    activation_backward = {
        "relu": relu_backward,
        "sigmoid": sigmoid_backward,
        "tanh": tanh_backward,
    }
    grads = {}
    dh = dout
    for layer in range(len(caches), 0, -1):
        affine_cache, activation, activation_cache = caches[layer - 1]
        if activation is not None:
            dh = activation_backward[activation](dh, activation_cache)
        dh, grads[f"W{layer}"], grads[f"b{layer}"] = affine_backward(dh, affine_cache)
    return grads


def eval_numerical_gradient(f, x, h=1e-5):
    """Estimate the gradient of a scalar function f at x by central differences.

    Each entry of x is nudged by +h and -h in place and then restored exactly, so x holds its
    original values on return (also when f raises).

    Inputs:
    - f: function taking an array like x and returning a float
    - x: float array of any shape, the point at which to differentiate
    - h: float, the nudge

    Returns:
    - grad: array like x, grad[i] ~ df/dx[i]
    """
    grad = np.zeros_like(x)
    for ix in np.ndindex(x.shape):
        original = x[ix]
        try:
            x[ix] = original + h
            f_plus = f(x)
            x[ix] = original - h
            f_minus = f(x)
        finally:
            x[ix] = original
        grad[ix] = (f_plus - f_minus) / (2 * h)
    return grad


def eval_numerical_gradient_array(f, x, dout, h=1e-5):
    """Estimate sum(dout * f(x)) differentiated with respect to x, by central differences.

    This is what a backward function returns for the layer f given the upstream gradient dout.
    Each entry of x is nudged in place and then restored exactly, as in eval_numerical_gradient.

    Inputs:
    - f: function taking an array like x and returning an array like dout
    - x: float array of any shape, the point at which to differentiate
    - dout: array shaped like f(x), the upstream gradient
    - h: float, the nudge

    Returns:
    - grad: array like x, grad[i] ~ sum_j dout[j] * df(x)[j]/dx[i]
    """
    grad = np.zeros_like(x)
    for ix in np.ndindex(x.shape):
        original = x[ix]
        try:
            x[ix] = original + h
            # Copies, because f may return a view of x that the next nudge would change.
            f_plus = f(x).copy()
            x[ix] = original - h
            f_minus = f(x).copy()
        finally:
            x[ix] = original
        grad[ix] = np.sum((f_plus - f_minus) * dout) / (2 * h)
    return grad


def rel_error(a, b):
    """Largest elementwise relative error |a - b| / max(1e-8, |a| + |b|) between two arrays.

    Inputs:
    - a, b: arrays of the same shape (or numbers)

    Returns:
    - error: float; about 1e-7 or less means a gradient is right
    """
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def train_mlp(X, y, params, learning_rate, num_epochs, hidden_activation="relu"):
    """Train an MLP classifier by full-batch gradient descent on the softmax cross-entropy.

    Each epoch runs the forward pass on all of X, records the loss, backpropagates and moves
    every parameter by -learning_rate times its gradient. The inputs are left untouched.

    Inputs:
    - X: array (N, D), the training inputs
    - y: integer array (N,), the class of each example, 0 <= y[i] < C
    - params: dict "W1", "b1", ..., "WL", "bL" as for mlp_forward, WL of shape (H, C)
    - learning_rate: float
    - num_epochs: int, the number of gradient steps
    - hidden_activation: "relu", "sigmoid" or "tanh"

    Returns a tuple of:
    - trained_params: a new dict with the same keys and shapes as params
    - losses: list of num_epochs floats, the loss before each epoch's update
    """
    # Updates happen in place below, so work on copies that the caller does not hold.
    params = {name: value.copy() for name, value in params.items()}
    losses = []
    for _ in range(num_epochs):
        scores, caches = mlp_forward(X, params, hidden_activation)
        losses.append(softmax_cross_entropy(scores, y))
        grads = mlp_backward(softmax_cross_entropy_backward(scores, y), caches)
        for name in params:
            params[name] -= learning_rate * grads[name]
    return params, losses
