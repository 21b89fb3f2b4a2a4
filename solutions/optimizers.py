"""Update rules and mini-batching for notebook 04 (optimizers).

Every update rule has the same interface: ``next_w, config = rule(w, dw, config=None)``
takes the current weights ``w`` (any shape), their gradient ``dw`` (the shape of ``w``) and
a dict ``config`` holding the hyper-parameters and whatever state the rule carries from one
step to the next (moving averages, a step count), and returns the new weights together with
the config to pass on the next step. A missing config or missing key takes the default.
Hyper-parameter names, defaults and arithmetic are those of ``torch.optim`` (2.x), so a rule
fed the same gradients follows the same trajectory as its torch counterpart, including
torch's coupled ``weight_decay`` (``dw + weight_decay * w``). One config belongs to one
weight array. A rule never modifies ``w``, ``dw`` or the config it was given: it works on a
copy of the dict and stores new state arrays in it.
"""

import numpy as np


def sgd(w, dw, config=None):
    """Plain stochastic gradient descent, as ``torch.optim.SGD`` with ``momentum=0``.

    next_w = w - lr * (dw + weight_decay * w)

    config keys:
    - lr: learning rate (default 1e-3).
    - weight_decay: L2 penalty coefficient added to the gradient (default 0).

    Inputs:
    - w: weights, an array of any shape, e.g. (D, M) or (M,).
    - dw: gradient of the loss with respect to w, shaped like w.
    - config: dict of the keys above, or None.

    Returns a tuple of:
    - next_w: updated weights, shaped like w.
    - config: a new dict with every key above filled in.
    """
    config = dict(config) if config else {}
    config.setdefault("lr", 1e-3)
    config.setdefault("weight_decay", 0.0)

    # The coupled L2 penalty; skipped at 0 as torch does, which saves two passes over w.
    grad = dw + config["weight_decay"] * w if config["weight_decay"] != 0 else dw
    next_w = w - config["lr"] * grad
    return next_w, config


def sgd_momentum(w, dw, config=None):
    """SGD with (optionally Nesterov) momentum, as ``torch.optim.SGD`` with ``momentum > 0``.

    With g = dw + weight_decay * w, the velocity is g on the first step and
    momentum * velocity + (1 - dampening) * g afterwards; the step is
    next_w = w - lr * velocity, or with Nesterov next_w = w - lr * (g + momentum * velocity).
    The velocity is torch's ``momentum_buffer``: it is in gradient units, lr is applied after.

    config keys:
    - lr: learning rate (default 1e-3).
    - momentum: momentum factor in (0, 1) (default 0.9; ours, since torch's SGD defaults to
      momentum 0, which is plain ``sgd``).
    - dampening: dampening of the new gradient in the velocity (default 0).
    - nesterov: use Nesterov momentum (default False); needs dampening 0, as in torch.
    - weight_decay: L2 penalty coefficient added to the gradient (default 0).
    - velocity: state, shaped like w; absent before the first step.

    Inputs:
    - w: weights, an array of any shape, e.g. (D, M) or (M,).
    - dw: gradient of the loss with respect to w, shaped like w.
    - config: dict of the keys above, or None.

    Returns a tuple of:
    - next_w: updated weights, shaped like w.
    - config: a new dict with every key above filled in and the new velocity.
    """
    config = dict(config) if config else {}
    config.setdefault("lr", 1e-3)
    config.setdefault("momentum", 0.9)
    config.setdefault("dampening", 0.0)
    config.setdefault("nesterov", False)
    config.setdefault("weight_decay", 0.0)
    if config["nesterov"] and (config["momentum"] <= 0 or config["dampening"] != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    grad = dw + config["weight_decay"] * w if config["weight_decay"] != 0 else dw
    if "velocity" in config:
        velocity = config["momentum"] * config["velocity"] + (1 - config["dampening"]) * grad
    else:
        # torch starts the buffer at the first gradient, undamped, rather than at zero; a copy,
        # since grad may be the caller's dw.
        velocity = grad.copy()
    step = grad + config["momentum"] * velocity if config["nesterov"] else velocity
    next_w = w - config["lr"] * step
    config["velocity"] = velocity
    return next_w, config


def rmsprop(w, dw, config=None):
    """RMSprop, as ``torch.optim.RMSprop`` (not centered, no momentum).

    With g = dw + weight_decay * w:
    square_avg = alpha * square_avg + (1 - alpha) * g**2   (starting from zeros)
    next_w = w - lr * g / (sqrt(square_avg) + eps)          (eps outside the root)

    config keys:
    - lr: learning rate (default 1e-2).
    - alpha: decay rate of the squared-gradient average (default 0.99).
    - eps: added to the root for numerical stability (default 1e-8).
    - weight_decay: L2 penalty coefficient added to the gradient (default 0).
    - square_avg: state, shaped like w (default zeros).

    Inputs:
    - w: weights, an array of any shape, e.g. (D, M) or (M,).
    - dw: gradient of the loss with respect to w, shaped like w.
    - config: dict of the keys above, or None.

    Returns a tuple of:
    - next_w: updated weights, shaped like w.
    - config: a new dict with every key above filled in and the new square_avg.
    """
    config = dict(config) if config else {}
    config.setdefault("lr", 1e-2)
    config.setdefault("alpha", 0.99)
    config.setdefault("eps", 1e-8)
    config.setdefault("weight_decay", 0.0)
    config.setdefault("square_avg", np.zeros_like(w))

    grad = dw + config["weight_decay"] * w if config["weight_decay"] != 0 else dw
    square_avg = config["alpha"] * config["square_avg"] + (1 - config["alpha"]) * grad**2
    next_w = w - config["lr"] * grad / (np.sqrt(square_avg) + config["eps"])
    config["square_avg"] = square_avg
    return next_w, config


def adagrad(w, dw, config=None):
    """Adagrad, as ``torch.optim.Adagrad``.

    With g = dw + weight_decay * w and t the step count starting at 1:
    sum = sum + g**2                                   (starting at initial_accumulator_value)
    next_w = w - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)

    config keys:
    - lr: learning rate (default 1e-2).
    - lr_decay: learning-rate decay per step (default 0).
    - weight_decay: L2 penalty coefficient added to the gradient (default 0).
    - initial_accumulator_value: starting value of every entry of sum (default 0).
    - eps: added to the root for numerical stability (default 1e-10).
    - sum: state, shaped like w.
    - t: state, number of steps taken (default 0).

    Inputs:
    - w: weights, an array of any shape, e.g. (D, M) or (M,).
    - dw: gradient of the loss with respect to w, shaped like w.
    - config: dict of the keys above, or None.

    Returns a tuple of:
    - next_w: updated weights, shaped like w.
    - config: a new dict with every key above filled in, the new sum and t.
    """
    config = dict(config) if config else {}
    config.setdefault("lr", 1e-2)
    config.setdefault("lr_decay", 0.0)
    config.setdefault("weight_decay", 0.0)
    config.setdefault("initial_accumulator_value", 0.0)
    config.setdefault("eps", 1e-10)
    config.setdefault("sum", np.full_like(w, config["initial_accumulator_value"]))
    config.setdefault("t", 0)

    t = config["t"] + 1
    grad = dw + config["weight_decay"] * w if config["weight_decay"] != 0 else dw
    learning_rate = config["lr"] / (1 + (t - 1) * config["lr_decay"])
    grad_sum = config["sum"] + grad**2
    next_w = w - learning_rate * grad / (np.sqrt(grad_sum) + config["eps"])
    config["sum"] = grad_sum
    config["t"] = t
    return next_w, config


def adam(w, dw, config=None):
    """Adam with bias correction, as ``torch.optim.Adam`` (not amsgrad).

    With g = dw + weight_decay * w and t the step count starting at 1:
    m = beta1 * m + (1 - beta1) * g,  v = beta2 * v + (1 - beta2) * g**2   (from zeros)
    next_w = w - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    eps is added outside the square root, after the bias correction of v.

    config keys:
    - lr: learning rate (default 1e-3).
    - betas: tuple (beta1, beta2) of decay rates of m and v (default (0.9, 0.999)).
    - eps: added to the root for numerical stability (default 1e-8).
    - weight_decay: L2 penalty coefficient added to the gradient (default 0).
    - m: state, moving average of the gradient, shaped like w (default zeros).
    - v: state, moving average of the squared gradient, shaped like w (default zeros).
    - t: state, number of steps taken (default 0).

    Inputs:
    - w: weights, an array of any shape, e.g. (D, M) or (M,).
    - dw: gradient of the loss with respect to w, shaped like w.
    - config: dict of the keys above, or None.

    Returns a tuple of:
    - next_w: updated weights, shaped like w.
    - config: a new dict with every key above filled in, the new m, v and t.
    """
    config = dict(config) if config else {}
    config.setdefault("lr", 1e-3)
    config.setdefault("betas", (0.9, 0.999))
    config.setdefault("eps", 1e-8)
    config.setdefault("weight_decay", 0.0)
    config.setdefault("m", np.zeros_like(w))
    config.setdefault("v", np.zeros_like(w))
    config.setdefault("t", 0)

    beta1, beta2 = config["betas"]
    t = config["t"] + 1
    grad = dw + config["weight_decay"] * w if config["weight_decay"] != 0 else dw
    m = beta1 * config["m"] + (1 - beta1) * grad
    v = beta2 * config["v"] + (1 - beta2) * grad**2
    step_size = config["lr"] / (1 - beta1**t)
    denom = np.sqrt(v) / np.sqrt(1 - beta2**t) + config["eps"]
    next_w = w - step_size * m / denom
    config["m"] = m
    config["v"] = v
    config["t"] = t
    return next_w, config


def minibatches(X, y, batch_size, rng):
    """Yield the rows of (X, y) once, in a random order, in batches of batch_size.

    Inputs:
    - X: data, shape (N, D).
    - y: targets whose first axis is N, e.g. labels of shape (N,).
    - batch_size: int, the number of rows per batch; the last batch has N % batch_size rows
      when that is not zero.
    - rng: np.random.Generator that draws the permutation.

    Yields tuples of:
    - X_batch: array (batch_size, D), or fewer rows in the last batch.
    - y_batch: the matching rows of y.
    """
    order = rng.permutation(X.shape[0])
    for start in range(0, X.shape[0], batch_size):
        batch = order[start:start + batch_size]
        yield X[batch], y[batch]
