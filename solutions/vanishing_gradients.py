"""Notebook 05, vanishing and exploding gradients: diagnosis and remedies.

Initialisers that keep the signal's scale from layer to layer, a probe that measures the
gradient reaching each hidden layer, gradient clipping, Leaky ReLU against dead units, and a
residual block whose identity path carries the gradient past the layer. Layers follow the
forward/backward pairs of `solutions.forward_pass` and `solutions.backward_pass`:

- leaky_relu:  cache = (z, alpha)
- residual:    cache = (x, W, b, z) with z = x @ W + b

Arrays are float64 with the batch first. Shapes: N batch, D input, H hidden, C classes.
"""

import numpy as np

from solutions.backward_pass import (
    affine_backward,
    relu_backward,
    sigmoid_backward,
    softmax_cross_entropy_backward,
    tanh_backward,
)
from solutions.forward_pass import affine_forward, relu_forward, sigmoid_forward, tanh_forward


def xavier_init(fan_in, fan_out, rng):
    """Draw a weight matrix with Glorot (Xavier) normal initialisation.

    Entries are normal with mean 0 and standard deviation sqrt(2 / (fan_in + fan_out)),
    which keeps the variance of activations and of gradients roughly constant through
    layers with a symmetric activation such as tanh (torch.nn.init.xavier_normal_).

    Inputs:
    - fan_in: D, the number of inputs of the layer.
    - fan_out: H, the number of outputs of the layer.
    - rng: np.random.Generator.

    Returns:
    - W: array (D, H), float64.
    """
    std = np.sqrt(2.0 / (fan_in + fan_out))
    return rng.normal(0.0, std, size=(fan_in, fan_out))


def he_init(fan_in, fan_out, rng):
    """Draw a weight matrix with He (Kaiming) normal initialisation.

    Entries are normal with mean 0 and standard deviation sqrt(2 / fan_in): ReLU zeroes half
    of its inputs on average, and the factor 2 makes up for it
    (torch.nn.init.kaiming_normal_ with its defaults).

    Inputs:
    - fan_in: D, the number of inputs of the layer.
    - fan_out: H, the number of outputs of the layer.
    - rng: np.random.Generator.

    Returns:
    - W: array (D, H), float64.
    """
    std = np.sqrt(2.0 / fan_in)
    return rng.normal(0.0, std, size=(fan_in, fan_out))


def leaky_relu_forward(z, alpha=0.01):
    """Leaky ReLU a = z where z > 0, alpha * z elsewhere.

    The small slope alpha keeps a gradient flowing through units whose input is negative,
    so they cannot die the way ReLU units can.

    Inputs:
    - z: array of any shape, e.g. (N, H).
    - alpha: float, the slope for z <= 0.

    Returns a tuple of:
    - a: array like z.
    - cache: (z, alpha).
    """
    a = np.where(z > 0, z, alpha * z)
    cache = (z, alpha)
    return a, cache


def leaky_relu_backward(dout, cache):
    """Backward pass of leaky_relu_forward; the slope at z = 0 is taken to be alpha.

    Inputs:
    - dout: array like z, upstream gradient dL/da.
    - cache: (z, alpha) from leaky_relu_forward.

    Returns:
    - dz: array like z, dL/dz.
    """
    z, alpha = cache
    dz = np.where(z > 0, dout, alpha * dout)
    return dz


def residual_forward(x, W, b):
    """Residual block out = x + relu(x @ W + b).

    Inputs:
    - x: array (N, D), the block's input.
    - W: array (D, D), the weights; square so that the branch can be added to x.
    - b: array (D,), the biases.

    Returns a tuple of:
    - out: array (N, D).
    - cache: (x, W, b, z) with z = x @ W + b, array (N, D).
    """
    z = x @ W + b
    out = x + np.maximum(z, 0)
    cache = (x, W, b, z)
    return out, cache


def residual_backward(dout, cache):
    """Backward pass of residual_forward.

    Inputs:
    - dout: array (N, D), upstream gradient dL/dout.
    - cache: (x, W, b, z) from residual_forward.

    Returns a tuple of:
    - dx: array (N, D), dL/dx.
    - dW: array (D, D), dL/dW.
    - db: array (D,), dL/db.
    """
    x, W, b, z = cache
    dz = dout * (z > 0)
    # The identity path hands dout to x unchanged, however small the branch's gradient is.
    dx = dout + dz @ W.T
    dW = x.T @ dz
    db = dz.sum(axis=0)
    return dx, dW, db


def layer_gradient_norms(X, y, params, activation):
    """Measure how much gradient reaches each hidden layer of a classifier.

    The network has L affine layers; the L - 1 hidden ones are followed by `activation`,
    the last one is linear and feeds a softmax cross-entropy loss (mean over the batch).
    For each hidden layer l the result holds ||dL/dh_l||, the Frobenius norm over the batch
    of the gradient of the loss with respect to the layer's output h_l.

    Inputs:
    - X: array (N, D), the input batch.
    - y: integer array (N,), labels with 0 <= y[i] < C.
    - params: dict "W1", "b1", ..., "WL", "bL"; W1 is (D, H1), Wl is (H_{l-1}, H_l),
      WL is (H_{L-1}, C), and bl is (H_l,).
    - activation: "sigmoid", "tanh", "relu" or "leaky_relu" (default slope).

    Returns:
    - norms: list of L - 1 floats, first hidden layer first.
    """
    forward = {
        "sigmoid": sigmoid_forward,
        "tanh": tanh_forward,
        "relu": relu_forward,
        "leaky_relu": leaky_relu_forward,
    }
    backward = {
        "sigmoid": sigmoid_backward,
        "tanh": tanh_backward,
        "relu": relu_backward,
        "leaky_relu": leaky_relu_backward,
    }
    if activation not in forward:
        raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(forward)}")
    num_layers = len(params) // 2

    h, caches = X, []
    for layer in range(1, num_layers):
        z, affine_cache = affine_forward(h, params[f"W{layer}"], params[f"b{layer}"])
        h, activation_cache = forward[activation](z)
        caches.append((affine_cache, activation_cache))
    scores, scores_cache = affine_forward(h, params[f"W{num_layers}"], params[f"b{num_layers}"])

    dh, _, _ = affine_backward(softmax_cross_entropy_backward(scores, y), scores_cache)
    norms = []
    for affine_cache, activation_cache in reversed(caches):
        norms.append(float(np.linalg.norm(dh)))
        dz = backward[activation](dh, activation_cache)
        dh, _, _ = affine_backward(dz, affine_cache)
    return norms[::-1]


def clip_by_value(grads, clip_value):
    """Clip every gradient entry to [-clip_value, clip_value], as torch.nn.utils.clip_grad_value_.

    Inputs:
    - grads: dict of name -> gradient array (any shapes).
    - clip_value: positive float.

    Returns:
    - clipped: a new dict with the same keys, each array of its gradient's shape.
    """
    return {name: np.clip(grad, -clip_value, clip_value) for name, grad in grads.items()}


def clip_by_global_norm(grads, max_norm):
    """Rescale all gradients together so that their joint 2-norm is at most max_norm.

    Same semantics as torch.nn.utils.clip_grad_norm_: the total norm is the 2-norm of all
    entries of all arrays; every array is multiplied by min(1, max_norm / (total_norm + 1e-6)).
    Scaling all arrays by one factor keeps the direction of the whole update.

    Inputs:
    - grads: dict of name -> gradient array (any shapes).
    - max_norm: positive float.

    Returns a tuple of:
    - clipped: a new dict with the same keys, each array of its gradient's shape.
    - total_norm: float, the total norm of grads before clipping.
    """
    total_norm = float(np.linalg.norm([np.linalg.norm(grad) for grad in grads.values()]))
    # The 1e-6 is torch's guard against dividing by a zero norm.
    scale = min(1.0, max_norm / (total_norm + 1e-6))
    clipped = {name: grad * scale for name, grad in grads.items()}
    return clipped, total_norm
