"""Assignment 06-bptt: its hidden checks, its notebook, its release and the real pipeline.

The fast tests run the hidden checks of ``grader/cases/bptt.py`` in this process: each probe's
code runs as the sandbox runs it (a function body over a namespace holding the "student's"
functions, inputs and result passed through the codec), then the check's ``evaluate`` judges
the outcomes. The slow tests drive a real kernel and the stock nbgrader CLI.
"""
import html
import json
import re
import time
from datetime import datetime
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from grader.authoring import reference_source, sync
from grader.cases import Outcome, get_case
from grader.cases import bptt as cases
from grader.diagnostics import CATALOGUE
from grader.judge import parse_spec
from tests import pipeline
from tests.inprocess import judge, namespace, roundtrip as _roundtrip

ASSIGNMENT, NOTEBOOK = "06-bptt", "bptt.ipynb"
SOURCE = pipeline.COURSE / "source" / ASSIGNMENT / NOTEBOOK
FUNCTIONS = ("rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward", "rnn_backward_truncated",
             "train_rnn")
POINTS = {"rnn_step_forward": {"value": 2, "no_mutation": 1},
          "rnn_step_backward": {"gradient": 3, "no_mutation": 1},
          "rnn_forward": {"value": 3, "no_mutation": 1},
          "rnn_backward": {"gradient": 4, "no_mutation": 1},
          "rnn_backward_truncated": {"gradient": 3, "no_mutation": 1},
          "train_rnn": {"convergence": 4, "no_mutation": 1}}
REFERENCE = "\n\n".join([reference_source("vanishing_gradients.clip_by_global_norm"),
                         reference_source("bptt.make_recall_task")]
                        + [reference_source(f"bptt.{name}") for name in FUNCTIONS])


# ---- running a probe as the sandbox does -------------------------------------------------------


def student(*sources):
    """A kernel namespace: the given code and the reference solutions, then each source run over them."""
    return namespace(REFERENCE, *sources)


# ---- the hidden checks: the reference ------------------------------------------------------------

SEEDS = {"rnn_step_forward": 40, "rnn_step_backward": 40, "rnn_forward": 40, "rnn_backward": 12,
         "rnn_backward_truncated": 8}


@pytest.mark.parametrize("function", list(SEEDS))
def test_reference_passes_every_check_on_every_seed(function):
    namespace = student()
    assert set(get_case(function).kinds) == set(POINTS[function])
    for seed in range(SEEDS[function]):
        for kind in get_case(function).kinds:
            result = judge(function, kind, namespace, seed)
            assert result.passed, (seed, kind, result.message)


@pytest.mark.slow
def test_reference_training_converges_on_every_seed():
    namespace = student()
    for seed in range(6):
        for kind in ("convergence", "no_mutation"):
            result = judge("train_rnn", kind, namespace, seed)
            assert result.passed, (seed, kind, result.message)
    assert "held-out losses" in result.message or "unchanged" in result.message


def test_reference_training_margin_and_divergence_without_clipping():
    """The judge's settings: the reference ends far below the threshold and unclipped training diverges."""
    rng = np.random.default_rng(123)
    x, y, params = cases.TrainRnnCase._recall_data(rng)
    x_test, y_test = cases.ref.make_recall_task(cases.HELD_OUT, cases.RECALL["T"], rng)
    settings = [cases.RECALL[name] for name in ("learning_rate", "num_steps", "clip_norm")]
    trained, _ = cases.ref.train_rnn(x, y, params, *settings)
    trivial = 0.5 * np.mean((y_test - y_test.mean()) ** 2)
    assert cases.recall_loss(trained, x_test, y_test) < 0.4 * cases.LOSS_FRACTION * trivial
    with np.errstate(all="ignore"):
        raw, _ = cases.ref.train_rnn(x, y, params, settings[0], settings[1], np.inf)
        assert not np.isfinite(cases.recall_loss(raw, x_test, y_test))


# ---- correct work written differently -----------------------------------------------------------

ALTERNATIVES = [
    ("rnn_step_forward", """
def rnn_step_forward(x, h_prev, Wx, Wh, b):
    z = np.einsum('nd,dh->nh', x, Wx) + np.einsum('ni,ih->nh', h_prev, Wh) + b[None, :]
    h_next = (1 - np.exp(-2 * z)) / (1 + np.exp(-2 * z))
    return h_next, (x, h_prev, Wx, Wh, h_next)
"""),
    ("rnn_step_backward", """
def rnn_step_backward(dh_next, cache):
    x, h_prev, Wx, Wh, h_next = cache
    dz = dh_next - dh_next * h_next * h_next
    dWh = np.zeros_like(Wh)
    for n in range(x.shape[0]):
        dWh += np.outer(h_prev[n], dz[n])
    return np.dot(dz, Wx.T), np.dot(dz, Wh.T), np.einsum('nd,nh->dh', x, dz), dWh, np.sum(dz, axis=0)
"""),
    ("rnn_forward", """
def rnn_forward(x, h0, Wx, Wh, b):
    states = [h0]
    for t in range(x.shape[1]):
        states.append(np.tanh(x[:, t, :] @ Wx + states[-1] @ Wh + b))
    h = np.stack(states[1:], axis=1)
    return h, (x, h0, Wx, Wh, h)
"""),
    ("rnn_backward", """
def rnn_backward(dh, cache):
    x, h0, Wx, Wh, h = cache
    N, T, H = dh.shape
    h_prev = np.concatenate([h0[:, None, :], h[:, :-1, :]], axis=1)
    dz = np.zeros((N, T, H))
    carried = np.zeros((N, H))
    for t in range(T - 1, -1, -1):
        dz[:, t] = (dh[:, t] + carried) * (1 - h[:, t] ** 2)
        carried = dz[:, t] @ Wh.T
    dWx = np.einsum('ntd,nth->dh', x, dz)
    dWh = np.einsum('nti,nth->ih', h_prev, dz)
    return dz @ Wx.T, carried, dWx, dWh, dz.sum(axis=(0, 1))
"""),
    ("rnn_backward_truncated", """
def rnn_backward_truncated(dh, cache, k):
    x, h0, Wx, Wh, h = cache
    N, T, H = dh.shape
    dx, dh0 = np.zeros_like(x), np.zeros_like(h0)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(H)
    for t in range(T):
        upstream = dh[:, t]
        for s in range(t, max(t - k, -1), -1):
            dz = upstream * (1 - h[:, s] ** 2)
            before = h0 if s == 0 else h[:, s - 1]
            dx[:, s] += dz @ Wx.T
            dWx += x[:, s].T @ dz
            dWh += before.T @ dz
            db += dz.sum(axis=0)
            upstream = dz @ Wh.T
            if s == 0:
                dh0 += upstream
    return dx, dh0, dWx, dWh, db
"""),
    ("rnn_backward_truncated", """
def rnn_backward_truncated(dh, cache, k):
    x, h0, Wx, Wh, h = cache
    N, T, H = dh.shape
    if k >= T:
        return rnn_backward(dh, cache)
    total = None
    for t in range(T):
        start = max(t - k + 1, 0)
        window_dh = np.zeros((N, t + 1 - start, H))
        window_dh[:, -1] = dh[:, t]
        first_state = h0 if start == 0 else h[:, start - 1]
        grads = rnn_backward(window_dh, (x[:, start:t + 1], first_state, Wx, Wh, h[:, start:t + 1]))
        dx = np.zeros_like(x)
        dx[:, start:t + 1] = grads[0]
        dh0 = grads[1] if start == 0 else np.zeros_like(h0)
        parts = (dx, dh0) + tuple(grads[2:])
        total = parts if total is None else tuple(a + b for a, b in zip(total, parts))
    return total
"""),
    ("train_rnn", """
def train_rnn(x, y, params, learning_rate, num_steps, clip_norm):
    params = {name: value.copy() for name, value in params.items()}
    N, T, _ = x.shape
    losses = []
    for step in range(num_steps):
        h0 = np.zeros((N, params["Wh"].shape[0]))
        h, cache = rnn_forward(x, h0, params["Wx"], params["Wh"], params["b"])
        last = h[:, T - 1]
        error = last @ params["Wy"] + params["by"] - y
        losses.append(np.float64(np.mean(np.sum(error ** 2, axis=1)) / 2))
        dpred = error / N
        dh = np.zeros_like(h)
        dh[:, T - 1] = dpred @ params["Wy"].T
        _, _, dWx, dWh, db = rnn_backward_truncated(dh, cache, T)
        grads = {"Wy": last.T @ dpred, "by": dpred.sum(axis=0), "Wx": dWx, "Wh": dWh, "b": db}
        clipped, _ = clip_by_global_norm(grads, clip_norm)
        for name in params:
            params[name] -= learning_rate * clipped[name]
    return params, losses
"""),
]


@pytest.mark.parametrize("function,source", ALTERNATIVES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(ALTERNATIVES)])
def test_correct_work_written_differently_passes(function, source):
    namespace = student(source)
    seeds = range(1) if function == "train_rnn" else range(3 if function == "rnn_backward_truncated" else 6)
    for seed in seeds:
        for kind in get_case(function).kinds:
            result = judge(function, kind, namespace, seed)
            assert result.passed, (seed, kind, result.message)


# ---- known mistakes -------------------------------------------------------------------------------

STEP_BACKWARD = """
def rnn_step_backward(dh_next, cache):
    x, h_prev, Wx, Wh, h_next = cache
    dz = {dz}
    return dz @ Wx.T, {dh_prev}, x.T @ dz, {dWh}, {db}
"""


def step_backward(dz="dh_next * (1 - h_next**2)", dh_prev="dz @ Wh.T", dWh="h_prev.T @ dz", db="dz.sum(axis=0)"):
    return STEP_BACKWARD.format(dz=dz, dh_prev=dh_prev, dWh=dWh, db=db)


RNN_BACKWARD = """
def rnn_backward(dh, cache):
    x, h0, Wx, Wh, h = cache
    T = x.shape[1]
    dx = np.zeros_like(x)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[0])
    dh_prev = {start}
    for t in reversed(range(T)):
        h_before = {h_before}
        dx[:, t], dh_prev, dWx_t, dWh_t, db_t = rnn_step_backward({upstream}, (x[:, t], h_before, Wx, Wh, h[:, t]))
        {accumulate}
    return dx, dh_prev, {finish}
"""


def rnn_backward(start="np.zeros_like(h0)", h_before="h0 if t == 0 else h[:, t - 1]", upstream="dh[:, t] + dh_prev",
                 accumulate="dWx += dWx_t; dWh += dWh_t; db += db_t", finish="dWx, dWh, db"):
    return RNN_BACKWARD.format(start=start, h_before=h_before, upstream=upstream, accumulate=accumulate, finish=finish)


def truncated(window):
    """The per-term definition, each term carried back through `window` steps (an expression of k)."""
    return """
def rnn_backward_truncated(dh, cache, k):
    x, h0, Wx, Wh, h = cache
    N, T, H = dh.shape
    dx, dh0 = np.zeros_like(x), np.zeros_like(h0)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(H)
    for t in range(T):
        upstream = dh[:, t]
        for s in range(t, max(t - (WINDOW), -1), -1):
            dz = upstream * (1 - h[:, s] ** 2)
            dx[:, s] += dz @ Wx.T
            dWx += x[:, s].T @ dz
            dWh += (h0 if s == 0 else h[:, s - 1]).T @ dz
            db += dz.sum(axis=0)
            upstream = dz @ Wh.T
            if s == 0:
                dh0 += upstream
    return dx, dh0, dWx, dWh, db
""".replace("WINDOW", window)


MISTAKES = [
    ("rnn_forward", "state_not_fed_back", """
def rnn_forward(x, h0, Wx, Wh, b):
    h = np.stack([rnn_step_forward(x[:, t], h0, Wx, Wh, b)[0] for t in range(x.shape[1])], axis=1)
    return h, (x, h0, Wx, Wh, h)
"""),
    ("rnn_step_backward", "tanh_at_z", step_backward(dz="dh_next * (1 - np.arctanh(h_next) ** 2)")),
    ("rnn_step_backward", "tanh_applied_twice", step_backward(dz="dh_next * (1 - np.tanh(h_next) ** 2)")),
    ("rnn_step_backward", "transposed", step_backward(dh_prev="dz @ Wh")),
    ("rnn_step_backward", "transposed", step_backward(dWh="dz.T @ h_prev")),
    ("rnn_step_backward", "bias_not_summed", step_backward(db="dz")),
    ("rnn_backward", "time_not_summed", rnn_backward(accumulate="dWx = dWx_t; dWh = dWh_t; db += db_t")),
    ("rnn_backward", "time_not_summed", rnn_backward(finish="dWx / T, dWh / T, db / T")),
    ("rnn_backward", "dh_not_carried", rnn_backward(upstream="dh[:, t]")),
    ("rnn_backward", "only_carried", rnn_backward(upstream="dh_prev")),
    ("rnn_backward", "only_carried", rnn_backward(start="dh[:, -1]", upstream="dh_prev")),
    ("rnn_backward", "cache_off_by_one", rnn_backward(h_before="h[:, t]")),
    ("rnn_backward", "cache_off_by_one", rnn_backward(h_before="h[:, t - 1]")),
    ("rnn_backward", "tanh_applied_twice", """
def rnn_backward(dh, cache):
    x, h0, Wx, Wh, h = cache
    dz = np.zeros_like(h)
    carried = np.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        dz[:, t] = (dh[:, t] + carried) * (1 - np.tanh(h[:, t]) ** 2)
        carried = dz[:, t] @ Wh.T
    h_prev = np.concatenate([h0[:, None], h[:, :-1]], axis=1)
    return (dz @ Wx.T, carried, np.einsum('ntd,nth->dh', x, dz), np.einsum('nti,nth->ih', h_prev, dz),
            dz.sum(axis=(0, 1)))
"""),
    ("rnn_backward", "bias_not_summed", """
def rnn_backward(dh, cache):
    x, h0, Wx, Wh, h = cache
    dz = np.zeros_like(h)
    carried = np.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        dz[:, t] = (dh[:, t] + carried) * (1 - h[:, t] ** 2)
        carried = dz[:, t] @ Wh.T
    h_prev = np.concatenate([h0[:, None], h[:, :-1]], axis=1)
    return (dz @ Wx.T, carried, np.einsum('ntd,nth->dh', x, dz), np.einsum('nti,nth->ih', h_prev, dz),
            dz.sum(axis=1))
"""),
    ("rnn_backward_truncated", "truncation_wrong", truncated("k + 1")),
    ("rnn_backward_truncated", "truncation_wrong", truncated("max(k - 1, 1)")),
    ("rnn_backward_truncated", "truncation_wrong",
     "def rnn_backward_truncated(dh, cache, k):\n    return rnn_backward(dh, cache)\n"),
    ("rnn_backward_truncated", "dh_not_carried truncation_wrong", truncated("1")),  # k = 2: both fit
]


@pytest.mark.parametrize("function,mistake,source", MISTAKES,
                         ids=[f"{f}-{m}-{i}" for i, (f, m, _) in enumerate(MISTAKES)])
def test_each_known_mistake_fails_and_is_named(function, mistake, source):
    namespace = student(source)
    kind = "gradient" if "gradient" in get_case(function).kinds else "value"
    for seed in range(4):
        result = judge(function, kind, namespace, seed)
        assert not result.passed, seed
        named = [m for m in mistake.split() if m in result.mistakes]
        assert named, (seed, result.message)
        assert CATALOGUE[named[0]] in result.message


@pytest.mark.parametrize("function,alternatives", [
    ("rnn_step_backward", cases.step_backward_alternatives),
    ("rnn_forward", cases.rnn_forward_alternatives),
    ("rnn_backward", cases.rnn_backward_alternatives),
])
def test_every_alternative_is_recognised_from_fabricated_outcomes(function, alternatives, monkeypatch):
    """Each known mistake's outputs, handed to the check as if a student had returned them, are named.
    (The reference's own agreement with central differences is covered above; it is skipped here.)"""
    monkeypatch.setattr(get_case(function), "numeric", None)
    kind = "gradient" if "gradient" in get_case(function).kinds else "value"
    for seed in range(4):
        check = get_case(function).build(kind, np.random.default_rng(seed))
        per_probe = [alternatives(*probe.inputs["args"]) for probe in check.probes]
        for index, (mistake, _) in enumerate(per_probe[0]):
            outcomes = [Outcome("ok", value=_roundtrip(list(found[index][1]))) for found in per_probe]
            result = check.evaluate(outcomes)
            assert not result.passed, (seed, mistake)
            assert mistake in result.mistakes and CATALOGUE[mistake] in result.message, (seed, mistake, result.message)


def test_every_truncation_alternative_is_recognised_from_fabricated_outcomes(monkeypatch):
    """One trial at a time returns a known mistake's outputs (the others the reference's); it is named,
    unless on that trial the mistake changes nothing (a window off by one when k >= T) or coincides
    with an earlier alternative (k = 2: the window k - 1 is the window 1 of dh_not_carried)."""
    case = get_case("rnn_backward_truncated")
    monkeypatch.setattr(case, "numeric", None)
    for seed in range(6):
        check = case.build("gradient", np.random.default_rng(seed))
        trials = [dict(zip(("dh", "cache", "k"), probe.inputs["args"])) for probe in check.probes]
        correct = [Outcome("ok", value=_roundtrip(list(cases.ref.rnn_backward_truncated(**t)))) for t in trials]
        for position, trial in enumerate(trials):
            reference = cases.ref.rnn_backward_truncated(**trial)
            found = cases.truncated_alternatives(**trial)
            for index, (mistake, outputs) in enumerate(found):
                if all(np.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(outputs, reference)):
                    continue
                outcomes = list(correct)
                outcomes[position] = Outcome("ok", value=_roundtrip(list(outputs)))
                result = check.evaluate(outcomes)
                same = {m for m, other in found[:index]
                        if all(np.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(outputs, other))}
                assert not result.passed, (seed, mistake)
                assert set(result.mistakes) & ({mistake} | same), (seed, trial["k"], mistake, result.message)


UNCLIPPED = reference_source("bptt.train_rnn").replace(
    "params = {name: params[name] - learning_rate * clipped[name] for name in params}",
    "params = {name: params[name] - learning_rate * grads[name] for name in params}")
NOT_CARRIED = reference_source("bptt.train_rnn").replace(
    "params = {name: params[name] - learning_rate * clipped[name] for name in params}",
    "trained = {name: params[name] - learning_rate * clipped[name] for name in params}").replace(
    "return params, losses", "return trained, losses")
IN_PLACE = reference_source("bptt.train_rnn").replace(
    "params = {name: params[name] - learning_rate * clipped[name] for name in params}",
    "for name in params:\n            params[name] -= learning_rate * clipped[name]")
ASCENT = reference_source("bptt.train_rnn").replace("- learning_rate * clipped[name]",
                                                    "+ learning_rate * clipped[name]")


@pytest.mark.slow
@pytest.mark.parametrize("source,mistake,words", [
    (UNCLIPPED, "clip_not_applied", "diverged"),
    (ASCENT, "negated", ""),
    (NOT_CARRIED, None, "matches the reference, so look at what changes from one step"),
], ids=["unclipped", "ascent", "params-not-carried"])
def test_training_mistakes_fail_convergence_and_are_named(source, mistake, words):
    assert source != reference_source("bptt.train_rnn")
    namespace = student(source)
    result = judge("train_rnn", "convergence", namespace, 3)
    assert not result.passed
    assert words in result.message
    if mistake:
        assert mistake in result.mistakes and CATALOGUE[mistake] in result.message, result.message


def test_training_in_place_loses_only_no_mutation():
    namespace = student(IN_PLACE)
    result = judge("train_rnn", "no_mutation", namespace, 0)
    assert not result.passed and "mutation" in result.mistakes and "params" in result.message


@pytest.mark.parametrize("function,source", [
    ("rnn_step_backward", "def rnn_step_backward(dh_next, cache):\n    x, h_prev, Wx, Wh, h_next = cache\n"
                          "    dh_next *= 1 - h_next**2\n    dz = dh_next\n"
                          "    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, h_prev.T @ dz, dz.sum(axis=0)\n"),
    ("rnn_backward", rnn_backward(upstream="dh[:, t].__iadd__(dh_prev)")),
    ("rnn_forward", "def rnn_forward(x, h0, Wx, Wh, b):\n    h = np.zeros(x.shape[:2] + h0.shape[1:])\n"
                    "    for t in range(x.shape[1]):\n"
                    "        h0[:] = rnn_step_forward(x[:, t], h0.copy(), Wx, Wh, b)[0]\n"
                    "        h[:, t] = h0\n    return h, (x, h0, Wx, Wh, h)\n"),
])
def test_mutation_is_caught(function, source):
    result = judge(function, "no_mutation", student(source), 0)
    assert not result.passed and "mutation" in result.mistakes, result.message


# ---- blank stubs, inputs -------------------------------------------------------------------------

def test_blank_stubs_are_reported_as_not_implemented():
    stubs = "\n".join(f"def {name}(*args, **kwargs):\n    raise NotImplementedError()\n" for name in FUNCTIONS)
    namespace = student(stubs)
    for function in FUNCTIONS:
        for kind in get_case(function).kinds:
            result = judge(function, kind, namespace, 0)
            assert not result.passed and "not implemented yet" in result.message, (function, kind, result.message)


def test_hidden_inputs_have_fresh_distinct_shapes_and_both_kinds_of_window():
    for seed in range(30):
        rng = np.random.default_rng(seed)
        for function in ("rnn_forward", "rnn_backward"):
            for probe in get_case(function).build("value" if function == "rnn_forward" else "gradient", rng).probes:
                x = probe.inputs["args"][0] if function == "rnn_forward" else probe.inputs["args"][1][0]
                N, T, D = x.shape
                H = probe.inputs["args"][1].shape[1] if function == "rnn_forward" else probe.inputs["args"][0].shape[2]
                assert T >= 5 and len({N, T, D, H}) == 4
        probes = get_case("rnn_backward_truncated").build("gradient", rng).probes
        windows = [(p.inputs["args"][2], p.inputs["args"][0].shape[1]) for p in probes]
        assert any(k < T for k, T in windows) and any(k >= T for k, T in windows)


def test_inputs_come_from_the_seed_alone():
    for function in FUNCTIONS:
        kind = sorted(get_case(function).kinds)[0]
        first, second = (get_case(function).build(kind, np.random.default_rng(7)).probes for _ in range(2))
        for a, b in zip(first, second):
            assert a.code == b.code
            assert repr(a.inputs) == repr(b.inputs)


def test_every_named_mistake_is_catalogued():
    rng = np.random.default_rng(0)
    inputs = cases.truncated_inputs(rng)
    named = {m for m, _ in cases.truncated_alternatives(**inputs)}
    named |= {m for m, _ in cases.step_backward_alternatives(**cases.step_backward_inputs(rng))}
    named |= {m for m, _ in cases.rnn_forward_alternatives(**cases.rnn_forward_inputs(rng))}
    named |= {"clip_not_applied", "clip_per_parameter", "clip_per_element"}
    assert named <= set(CATALOGUE)


# ---- the notebook -----------------------------------------------------------------------------------

def _cells(nb):
    return {cell.get("id"): cell for cell in nb.cells}


def test_notebook_structure_and_sync():
    assert not [drift for drift in sync(str(pipeline.COURSE), check=True) if ASSIGNMENT in drift]
    nb = nbformat.read(SOURCE, as_version=4)
    nbformat.validate(nb)
    cells = _cells(nb)
    assert nb.cells[1].id == "setup" and "from labcheck import" in nb.cells[1].source
    for function in FUNCTIONS:
        solution = cells[function]
        assert solution.metadata.nbgrader["solution"]
        assert solution.metadata.backprop_lab["reference"] == f"bptt.{function}"
        assert cells[f"selfcheck-{function}"].metadata.nbgrader["locked"]
        test = cells[f"test_{function}"]
        spec = parse_spec(test.source)
        assert spec.function == function and spec.points == {k: float(v) for k, v in POINTS[function].items()}
        assert test.metadata.nbgrader["points"] == sum(POINTS[function].values())
        assert test.metadata.nbgrader["grade"] and test.metadata.nbgrader["locked"]
    assert cells["given-helpers"].metadata.backprop_lab["provides"] == ["vanishing_gradients.clip_by_global_norm",
                                                                       "bptt.make_recall_task"]
    for cell in nb.cells:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cell.id)
        if cell.cell_type == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None


def _timed(nb, cwd, extra=None, allow_errors=False):
    """Execute nb (and then the extra cells, in the same kernel); returns (seconds for nb, nb with outputs)."""
    nb = nbformat.from_dict(nb)
    count = len(nb.cells)
    for source in extra or []:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=allow_errors,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    stamps = [datetime.fromisoformat(c.metadata["execution"][key].replace("Z", "+00:00"))
              for c in nb.cells[:count] if c.cell_type == "code" and "execution" in c.metadata
              for key in ("iopub.status.busy", "shell.execute_reply")]
    return (max(stamps) - min(stamps)).total_seconds(), nb


EXPLORER_TIMING = r'''
import base64, io, json, time
settings = [dict(spectral_radius=r, T=T, H=H, input_scale=s, matrix=m)
            for r, T, H, s, m in [(0.5, 60, 32, 0.0, "orthogonal"), (1.0, 150, 64, 1.0, "gaussian"),
                                  (1.5, 10, 8, 2.0, "orthogonal")]]
wall, cpu, images = [], [], []
for setting in settings * 2:
    started, started_cpu = time.perf_counter(), time.process_time()
    fig = draw_lag_explorer(**setting)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    wall.append(time.perf_counter() - started)
    cpu.append(time.process_time() - started_cpu)
    images.append(buffer.getvalue())
print(json.dumps({"wall": wall, "cpu": cpu, "distinct": len(set(images))}))
'''


def _stdout(cell):
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


@pytest.mark.slow
def test_source_notebook_runs_and_the_explorer_redraws_fast():
    seconds, nb = _timed(nbformat.read(SOURCE, as_version=4), SOURCE.parent, [EXPLORER_TIMING])
    assert seconds < 30, seconds
    cells = _cells(nb)
    for cell in nb.cells:
        assert not any(o.get("output_type") == "error" for o in cell.get("outputs", [])), (cell.id, cell.outputs)
    for function in FUNCTIONS:
        assert "✓" in _stdout(cells[f"selfcheck-{function}"])
    for figure in ("experiment-unrolled-graph", "experiment-gradient-lag", "experiment-truncation-tradeoff",
                   "experiment-recall", "experiment-clipping", "experiment-gradient-highway"):
        assert any("image/png" in o.get("data", {}) for o in cells[figure].outputs), figure
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for o in cells["experiment-lag-explorer"].outputs)
    timing = json.loads(_stdout(nb.cells[-1]))
    assert timing["distinct"] == 3, timing  # each setting draws a different PNG, the same setting the same one
    # CPU time is the work a redraw needs whatever else the machine runs; wall time on a quiet machine is close.
    assert max(timing["cpu"]) < 0.5, timing
    print(f"explorer redraw: wall {', '.join(f'{s * 1000:.0f}' for s in timing['wall'])} ms, "
          f"cpu {', '.join(f'{s * 1000:.0f}' for s in timing['cpu'])} ms; notebook {seconds:.1f} s")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("bptt-pipeline")
    course = pipeline.make_course(root, [ASSIGNMENT])
    pipeline.nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    return course


def _solution_lines(nb):
    lines = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            inside = False
            for line in cell.source.splitlines():
                if "### BEGIN SOLUTION" in line:
                    inside = True
                elif "### END SOLUTION" in line:
                    inside = False
                elif inside and len(line.strip()) > 12:
                    lines.add(line.strip())
    return lines


@pytest.mark.slow
def test_release_hides_solutions_and_runs_with_only_not_implemented_errors(course):
    release = pipeline.release_notebook(course, ASSIGNMENT, NOTEBOOK)
    text = "\n".join(cell.source for cell in release.cells)
    hidden = _solution_lines(pipeline.source_notebook(course, ASSIGNMENT, NOTEBOOK))
    assert len(hidden) > 40
    assert not hidden & {line.strip() for line in text.splitlines()}
    assert "BEGIN HIDDEN TESTS" not in text and "judge(" not in text
    folder = Path(course) / "release" / ASSIGNMENT
    assert {p.name for p in (folder / "labcheck").iterdir() if p.suffix == ".py"} >= {"__init__.py", "checks.py",
                                                                                        "diagnostics.py"}
    _, nb = _timed(release, folder, ["show_lag_explorer(spectral_radius=1.1)"], allow_errors=True)
    errors = [(cell.id, o.ename) for cell in nb.cells for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors and {name for _, name in errors} == {"NotImplementedError"}, errors
    assert "implement them above" in _stdout(nb.cells[-1])
    assert not any(o.get("output_type") == "error" for o in nb.cells[-1].outputs)


# Planted mistakes: (student, function, kind lost, old, new, mistake id). A student combines mistakes
# only in functions that do not use each other; a function that uses a broken one (train_rnn uses the
# backward pass) may lose points too, and its message points at the broken one.
PLANTED = [
    ("bug_a", "rnn_backward", "gradient", "        dWx += dWx_t\n        dWh += dWh_t\n",
     "        dWx = dWx_t\n        dWh = dWh_t\n", "time_not_summed"),
    ("bug_a", "rnn_forward", "value", "h_prev, _ = rnn_step_forward(x[:, t], h_prev, Wx, Wh, b)",
     "h_next, _ = rnn_step_forward(x[:, t], h0, Wx, Wh, b)\n        h_prev = h_next", "state_not_fed_back"),
    ("bug_a", "rnn_backward_truncated", "gradient", "in_flight[: k - 1]", "in_flight[:k]", "truncation_wrong"),
    ("bug_b", "rnn_step_backward", "gradient", "dz = dh_next * (1 - h_next**2)",
     "dz = dh_next * (1 - np.tanh(h_next) ** 2)", "tanh_applied_twice"),
    ("bug_c", "rnn_backward", "gradient", "rnn_step_backward(dh[:, t] + dh_prev, step_cache)",
     "rnn_step_backward(dh_prev, step_cache)", "only_carried"),
    ("bug_d", "rnn_step_backward", "gradient", "dz = dh_next * (1 - h_next**2)",
     "dz = dh_next * (1 - np.arctanh(h_next) ** 2)", "tanh_at_z"),
    ("bug_e", "rnn_backward", "gradient", "h_before = h0 if t == 0 else h[:, t - 1]", "h_before = h[:, t]",
     "cache_off_by_one"),
    ("bug_f", "train_rnn", "convergence", "params[name] - learning_rate * clipped[name]",
     "params[name] - learning_rate * grads[name]", "clip_not_applied"),
    ("bug_g", "train_rnn", "no_mutation",
     "params = {name: params[name] - learning_rate * clipped[name] for name in params}",
     "for name in params:\n            params[name] -= learning_rate * clipped[name]", "mutation"),
]
STUDENTS = ("bug_a", "bug_b", "bug_c", "bug_d", "bug_e", "bug_f", "bug_g")


@pytest.fixture(scope="module")
def graded(course):
    source = pipeline.source_notebook(course, ASSIGNMENT, NOTEBOOK)
    pipeline.submit_reference(course, "reference", ASSIGNMENT)
    pipeline.submit_release(course, "blank", ASSIGNMENT)
    for name in STUDENTS:
        nb = pipeline.mutate(source, {old: new for s, _, _, old, new, _ in PLANTED if s == name})
        pipeline.submit(course, name, ASSIGNMENT, {NOTEBOOK: nb})
    started = time.monotonic()
    pipeline.nbgrader(course, "autograde", ASSIGNMENT)
    pipeline.nbgrader(course, "generate_feedback", ASSIGNMENT)
    print(f"autograde + feedback of {2 + len(STUDENTS)} students: {time.monotonic() - started:.0f} s")
    return course


FULL = {f"test_{f}": float(sum(p.values())) for f, p in POINTS.items()}


@pytest.mark.slow
def test_reference_full_marks_and_release_zero(graded):
    assert pipeline.cell_scores(graded, ASSIGNMENT, "reference") == {k: (v, v) for k, v in FULL.items()}
    assert pipeline.cell_scores(graded, ASSIGNMENT, "blank") == {k: (0.0, v) for k, v in FULL.items()}
    messages = pipeline.judge_messages(graded, ASSIGNMENT, "blank", NOTEBOOK)
    assert all("not implemented yet" in text for text in messages.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDENTS)
def test_planted_mistakes_lose_points_only_where_they_are(graded, name):
    scores = pipeline.cell_scores(graded, ASSIGNMENT, name)
    messages = pipeline.judge_messages(graded, ASSIGNMENT, name, NOTEBOOK)
    feedback = html.unescape(pipeline.feedback_html(graded, ASSIGNMENT, name, NOTEBOOK))
    planted = {function: (kind, mistake) for s, function, kind, _, _, mistake in PLANTED if s == name}
    users = set(planted)
    while True:  # everything that uses a broken function, directly or through another
        grown = users | {f for f in POINTS if set(get_case(f).depends) & users}
        if grown == users:
            break
        users = grown
    users -= set(planted)
    for grade_id, full in FULL.items():
        function = grade_id[len("test_"):]
        if function in users:
            if scores[grade_id][0] < full:
                assert "which failed its own checks" in messages[grade_id] or \
                    "which failed their own checks" in messages[grade_id], messages[grade_id]
            continue
        if function not in planted:
            assert scores[grade_id] == (full, full), (grade_id, messages[grade_id])
            continue
        kind, mistake = planted[function]
        assert scores[grade_id] == (pipeline.score_after_losing(POINTS[function], {kind}), full), (grade_id, messages[grade_id])
        assert CATALOGUE[mistake] in messages[grade_id], messages[grade_id]
        assert CATALOGUE[mistake] in feedback
    assert "judge(" not in feedback and "BEGIN HIDDEN TESTS" not in feedback
