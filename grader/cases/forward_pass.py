"""Hidden checks of notebook 02 (forward pass): layers, activations, softmax, losses, the MLP."""
import numpy as np

from solutions import forward_pass as ref

from . import register
from .base import FunctionCase


def _dims(rng):
    """Distinct, non-square sizes so a transposed or broadcast mistake cannot pass by accident."""
    n, d, m = rng.choice(np.arange(3, 9), size=3, replace=False)
    return int(n), int(d), int(m)


def affine_inputs(rng):
    n, d, m = _dims(rng)
    return {"x": rng.normal(size=(n, d)), "W": rng.normal(size=(d, m)), "b": rng.normal(size=m)}


def activation_inputs(rng):
    n, d, _ = _dims(rng)
    z = rng.normal(scale=3.0, size=(n, d))
    z[0, 0], z[-1, -1] = 800.0, -800.0  # extreme entries expose an unstable formula
    return {"z": z}


def _sigmoid_naive(z):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


register(FunctionCase(
    "affine_forward", ref.affine_forward, affine_inputs, outputs=("out",), returns="pair",
    variants=lambda x, W, b: {"bias_not_summed": [x @ W], "transposed": [(x @ W + b).T]},
))
register(FunctionCase(
    "sigmoid_forward", ref.sigmoid_forward, activation_inputs, outputs=("a",), returns="pair",
    variants=lambda z: {"unstable_sigmoid": [_sigmoid_naive(z)]},
))
register(FunctionCase("tanh_forward", ref.tanh_forward, activation_inputs, outputs=("a",), returns="pair"))
register(FunctionCase(
    "relu_forward", ref.relu_forward, activation_inputs, outputs=("a",), returns="pair",
    variants=lambda z: {"relu_mask_flipped": [np.minimum(z, 0)]},
))


def softmax_inputs(rng):
    n, c, _ = _dims(rng)
    z = rng.normal(scale=4.0, size=(n, c))
    z[0] += 1000.0
    return {"z": z}


register(FunctionCase("softmax", ref.softmax, softmax_inputs, outputs=("p",)))


def regression_inputs(rng):
    n, m, _ = _dims(rng)
    return {"pred": rng.normal(size=(n, m)), "y": rng.normal(size=(n, m))}


def binary_inputs(rng):
    n = int(rng.integers(5, 12))
    logits = rng.normal(scale=3.0, size=n)
    logits[0], logits[1] = 900.0, -900.0
    return {"logits": logits, "y": rng.integers(0, 2, size=n).astype(float)}


def categorical_inputs(rng):
    n, c, _ = _dims(rng)
    logits = rng.normal(scale=3.0, size=(n, c))
    logits[0] += 1000.0
    return {"logits": logits, "y": rng.integers(0, c, size=n)}


register(FunctionCase(
    "mse_loss", ref.mse_loss, regression_inputs, outputs=("loss",),
    variants=lambda pred, y: {"factor_two": [float(np.mean((pred - y) ** 2) * pred.shape[1])],
                              "missing_mean": [float(0.5 * np.sum((pred - y) ** 2))]},
))
register(FunctionCase("binary_cross_entropy", ref.binary_cross_entropy, binary_inputs, outputs=("loss",)))
register(FunctionCase("softmax_cross_entropy", ref.softmax_cross_entropy, categorical_inputs, outputs=("loss",)))


def mlp_inputs(rng):
    n, d, m = _dims(rng)
    sizes = [d] + [int(h) for h in rng.integers(4, 9, size=int(rng.integers(1, 3)))] + [m]
    params = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{layer}"] = rng.normal(scale=np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))
        params[f"b{layer}"] = rng.normal(scale=0.1, size=fan_out)
    activation = str(rng.choice(["relu", "tanh", "sigmoid"]))
    return {"X": rng.normal(size=(n, d)), "params": params, "hidden_activation": activation}


register(FunctionCase(
    "mlp_forward", ref.mlp_forward, mlp_inputs, outputs=("out",), returns="pair", keywords=("hidden_activation",),
    depends=("affine_forward", "relu_forward", "sigmoid_forward", "tanh_forward"),
))
