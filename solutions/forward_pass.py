"""Notebook 02, the forward pass: layers, activations, losses and a whole MLP.

Every layer is a function `<name>_forward(...) -> (out, cache)`. The cache is a plain tuple
holding what the matching backward function (notebook 03) needs, in exactly this layout:

- affine:                      cache = (x, W, b)
- sigmoid, tanh, relu:         cache = (z, a), the activation's input and output
- mlp_forward:                 caches = [(affine_cache, activation, activation_cache), ...],
                               one entry per layer, first to last; `activation` is "relu",
                               "sigmoid", "tanh" or None, and activation_cache is None when
                               activation is None.

Arrays are float64 with the batch first. An affine layer is `x @ W + b` with W of shape
(D, M). A loss returns a Python float and owns the batch mean, L = (1/N) sum_i loss_i.
Shapes: N batch, D input, H hidden, M output, C classes.
"""

import numpy as np


def affine_forward(x, W, b):
    """Compute the affine (fully connected) layer out = x @ W + b.

    Inputs:
    - x: array (N, D), the input batch
    - W: array (D, M), the weights
    - b: array (M,), the biases

    Returns a tuple of:
    - out: array (N, M)
    - cache: (x, W, b)
    """
    out = x @ W + b
    cache = (x, W, b)
    return out, cache


def sigmoid_forward(z):
    """Compute the logistic sigmoid a = 1 / (1 + exp(-z)) elementwise, without overflow.

    Inputs:
    - z: array of any shape, e.g. (N, H)

    Returns a tuple of:
    - a: array like z, every entry in [0, 1]
    - cache: (z, a)
    """
    # exp(-|z|) is at most 1, so neither form below can overflow; each is exact for its sign.
    e = np.exp(-np.abs(z))
    a = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    cache = (z, a)
    return a, cache


def tanh_forward(z):
    """Compute the hyperbolic tangent a = tanh(z) elementwise.

    Inputs:
    - z: array of any shape, e.g. (N, H)

    Returns a tuple of:
    - a: array like z, every entry in [-1, 1]
    - cache: (z, a)
    """
    a = np.tanh(z)
    cache = (z, a)
    return a, cache


def relu_forward(z):
    """Compute the rectified linear unit a = max(z, 0) elementwise.

    Inputs:
    - z: array of any shape, e.g. (N, H)

    Returns a tuple of:
    - a: array like z
    - cache: (z, a)
    """
    a = np.maximum(z, 0)
    cache = (z, a)
    return a, cache


def softmax(z):
    """Turn each row of scores into probabilities, p[i, j] = exp(z[i, j]) / sum_k exp(z[i, k]).

    Inputs:
    - z: array (N, C), one row of class scores per example

    Returns:
    - p: array (N, C), non-negative, each row summing to 1
    """
    # Softmax is unchanged by subtracting a constant per row; after it the largest exponent is 0.
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def mse_loss(pred, y):
    """Compute the mean squared error L = (1/2N) sum_i ||pred[i] - y[i]||^2.

    The 1/2 cancels the 2 of the derivative; the sum runs over the M outputs of an example
    and the mean over the N examples.

    Inputs:
    - pred: array (N, M) or (N,), the predictions
    - y: array like pred, the targets

    Returns:
    - loss: float
    """
    N = pred.shape[0]
    return float(0.5 * np.sum((pred - y) ** 2) / N)


def binary_cross_entropy(logits, y):
    """Compute the mean binary cross-entropy of labels given the logit of P(y = 1).

    With p = sigmoid(s), the loss of one example is -y log p - (1 - y) log(1 - p), which equals
    log(1 + exp(s)) - y s; the right-hand side is evaluated stably as logaddexp(0, s) - y s.
    The loss is averaged over the N examples.

    Inputs:
    - logits: array (N,) or (N, 1), the scores s before the sigmoid
    - y: array like logits, the labels in {0, 1}

    Returns:
    - loss: float
    """
    N = logits.shape[0]
    return float(np.sum(np.logaddexp(0, logits) - y * logits) / N)


def softmax_cross_entropy(logits, y):
    """Compute the mean categorical cross-entropy L = -(1/N) sum_i log softmax(logits)[i, y[i]].

    The log-probabilities come from the log-sum-exp with the row maximum taken out, so no
    exponent overflows and no probability is rounded to 0 before its log is taken.

    Inputs:
    - logits: array (N, C), the class scores
    - y: integer array (N,), the correct class of each example, 0 <= y[i] < C

    Returns:
    - loss: float
    """
    N = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probs[np.arange(N), y]))


def mlp_forward(X, params, hidden_activation="relu", output_activation=None):
    """Run a multi-layer perceptron: L affine layers, each followed by an activation.

    Layer l computes h_l = act(h_{l-1} @ Wl + bl) with h_0 = X; every layer but the last uses
    `hidden_activation`, the last uses `output_activation`. None means no activation.

    Inputs:
    - X: array (N, D), the input batch
    - params: dict with "W1", "b1", ..., "WL", "bL"; W1 is (D, H1), Wl is (H_{l-1}, H_l),
      WL is (H_{L-1}, M), and bl has shape (H_l,)
    - hidden_activation: "relu", "sigmoid", "tanh" or None
    - output_activation: "relu", "sigmoid", "tanh" or None

    Returns a tuple of:
    - out: array (N, M), the network's output
    - caches: list of L tuples (affine_cache, activation, activation_cache), first layer
      first, where activation is the name used by that layer and activation_cache is None
      when activation is None
    """
    activation_forward = {
        "relu": relu_forward,
        "sigmoid": sigmoid_forward,
        "tanh": tanh_forward,
    }
    num_layers = len(params) // 2
    out, caches = X, []
    for layer in range(1, num_layers + 1):
        out, affine_cache = affine_forward(out, params[f"W{layer}"], params[f"b{layer}"])
        activation = output_activation if layer == num_layers else hidden_activation
        activation_cache = None
        if activation is not None:
            out, activation_cache = activation_forward[activation](out)
        caches.append((affine_cache, activation, activation_cache))
    return out, caches
