"""Checks toolkit, shared by the students' visible self-checks and the judge.

Numerical gradients, relative errors, strict comparison of arrays, and the no-mutation and
repeat checks. Imports only numpy (and, inside the package, ``diagnostics``), because a copy of
this module ships with every release as ``labcheck/checks.py`` (generated; a test fails on drift).
"""
import copy

import numpy as np

from .diagnostics import diagnose, describe

VALUE_TOL = 1e-6
ABS_TOL = 1e-14  # rounding noise around an exact zero (e.g. row sums of a softmax gradient)


class SelfCheckFailed(AssertionError):
    """A visible self-check found a problem; the message says what and the likely cause."""


def rel_error(a, b):
    """Largest elementwise relative error, ``|a - b| / max(1e-8, |a| + |b|)``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)))) if a.size else 0.0


def norm_error(got, expected):
    """Relative error of the whole array: ``max|got - expected| / max(max|expected|, 1e-12)``."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    if expected.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(expected))), 1e-12)
    return float(np.max(np.abs(got - expected))) / scale


def numerical_gradient(f, x, h=1e-5):
    """Central-difference gradient of a scalar function ``f()`` of the array ``x`` (perturbed in place, restored)."""
    grad = np.zeros_like(x, dtype=float)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        index = it.multi_index
        saved = x[index]
        x[index] = saved + h
        plus = f()
        x[index] = saved - h
        minus = f()
        x[index] = saved
        grad[index] = (plus - minus) / (2 * h)
        it.iternext()
    return grad


def numerical_gradient_array(f, x, dout, h=1e-5):
    """Central-difference ``sum(dout * df/dx)`` for an array-valued ``f()`` of ``x`` (restored)."""
    return numerical_gradient(lambda: float(np.sum(f() * dout)), x, h)


def array_problem(value, shape=None, dtype=np.float64):
    """Why ``value`` is not an acceptable array (exact ndarray, dtype, shape, finite), or ''."""
    if type(value) is not np.ndarray:
        kind = type(value)
        return f"returned {kind.__module__}.{kind.__qualname__}, expected a plain numpy.ndarray"
    if value.dtype != dtype:
        return f"has dtype {value.dtype}, expected {np.dtype(dtype)}"
    if shape is not None and value.shape != tuple(shape):
        return f"has shape {value.shape}, expected {tuple(shape)}"
    if value.size == 0 and (shape is None or int(np.prod(shape)) != 0):
        return "is empty"
    if not np.all(np.isfinite(value)):
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        return f"has {bad} non-finite entr{'y' if bad == 1 else 'ies'} (NaN or inf)"
    return ""


def float_problem(value):
    """Why ``value`` is not an acceptable scalar float result, or ''."""
    if type(value) not in (float, np.float64):
        kind = type(value)
        return f"returned {kind.__module__}.{kind.__qualname__}, expected a float (use float(...))"
    if not np.isfinite(value):
        return f"is {value}, not a finite number"
    return ""


def worst_entries(got, expected, count=3):
    """The ``count`` entries with the largest absolute difference, as (index, got, expected)."""
    diff = np.abs(got - expected)
    flat = np.argsort(diff, axis=None)[::-1][:count]
    return [(tuple(int(i) for i in np.unravel_index(k, diff.shape)), float(got.flat[k]), float(expected.flat[k]))
            for k in flat if diff.flat[k] > 0]


def compare(function, name, got, expected, tol=VALUE_TOL, context=None, variants=None):
    """Compare one output; returns '' when it matches, else a teaching message.

    ``context`` carries what generic diagnoses need (e.g. ``{"N": 4, "T": 5}``); ``variants``
    maps known-mistake ids to what that mistake would have produced.
    """
    expected_is_float = not isinstance(expected, np.ndarray)
    problem = float_problem(got) if expected_is_float else array_problem(got, shape=None)
    label = f"{function}: {name}"
    if problem:
        hint = ""
        if not expected_is_float and type(got) is np.ndarray:
            hint = describe(diagnose(got, expected, context or {}, variants or {}))
        return f"{label} {problem}.{hint}"
    if expected_is_float:
        error = abs(float(got) - float(expected)) / max(abs(float(expected)), 1e-12)
        if error <= tol:
            return ""
        hint = describe(diagnose(np.array(float(got)), np.array(float(expected)), context or {}, variants or {}))
        return f"{label} is {float(got):.6g}, expected {float(expected):.6g} (relative error {error:.1e}).{hint}"
    if got.shape != expected.shape:
        hint = describe(diagnose(got, expected, context or {}, variants or {}))
        return f"{label} has shape {got.shape}, expected {expected.shape}.{hint}"
    error = norm_error(got, expected)
    if error <= tol or float(np.max(np.abs(got - expected))) <= ABS_TOL:
        return ""
    entries = "; ".join(f"{list(i)} got {g:.4g} expected {e:.4g}" for i, g, e in worst_entries(got, expected))
    hint = describe(diagnose(got, expected, context or {}, variants or {}))
    return f"{label}: relative error {error:.1e} (worst entries: {entries}).{hint}"


def snapshot(value):
    """A deep copy used to detect in-place mutation."""
    return copy.deepcopy(value)


def mutation_problem(before, after, path="argument"):
    """Describe the first difference between ``before`` and ``after`` (same nesting), or ''."""
    if isinstance(before, np.ndarray):
        if not isinstance(after, np.ndarray) or before.shape != after.shape or not np.array_equal(before, after, equal_nan=True):
            return f"{path} was modified in place"
        return ""
    if isinstance(before, dict):
        if not isinstance(after, dict) or set(before) != set(after):
            return f"{path} (a dict) had keys added or removed"
        for key in before:
            found = mutation_problem(before[key], after[key], f"{path}[{key!r}]")
            if found:
                return found
        return ""
    if isinstance(before, (list, tuple)):
        if not isinstance(after, (list, tuple)) or len(before) != len(after):
            return f"{path} changed length"
        for i, (b, a) in enumerate(zip(before, after)):
            found = mutation_problem(b, a, f"{path}[{i}]")
            if found:
                return found
        return ""
    return "" if before == after or (before != before and after != after) else f"{path} changed"


def expect_close(function, name, got, expected, tol=VALUE_TOL, context=None, variants=None):
    """Self-check: raise :class:`SelfCheckFailed` with a teaching message unless ``got`` matches.

    ``variants`` maps catalogue ids to what that mistake returns on this input, so the message can name it.
    """
    message = compare(function, name, got, np.asarray(expected, dtype=float) if not np.isscalar(expected) else expected,
                      tol=tol, context=context, variants=variants)
    if message:
        raise SelfCheckFailed(message)
    print(f"✓ {function}: {name} matches.")


def expect_gradient(function, name, analytic, numeric, tol=1e-6, context=None):
    """Self-check: an analytic gradient against its central-difference estimate."""
    message = compare(function, name, analytic, numeric, tol=tol, context=context)
    if message:
        raise SelfCheckFailed(message + " (compared with central differences of your forward pass)")
    print(f"✓ {function}: {name} agrees with central differences (relative error {rel_error(analytic, numeric):.1e}).")


def expect_unchanged(function, before, after):
    """Self-check: the arguments after a call equal the snapshot taken before it."""
    message = mutation_problem(before, after)
    if message:
        raise SelfCheckFailed(f"{function}: {message}. Work on copies (x = x.copy(), np.where(...)) "
                              "instead of writing into your inputs.")
    print(f"✓ {function}: leaves its arguments unchanged.")
