"""Tests of solutions.optimizers: the update rules and mini-batching.

Every rule is checked three ways: against values derived by hand for its first two steps,
against torch.optim over a 20-step trajectory when PyTorch is installed, and for the
no-mutation contract as a property over random arrays and states.
"""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from solutions.optimizers import adagrad, adam, minibatches, rmsprop, sgd, sgd_momentum

STATE_KEYS = {"velocity", "square_avg", "sum", "m", "v", "t"}

# (id, rule, our config, torch.optim class name, torch keyword arguments)
TORCH_CASES = [
    ("sgd", sgd, {"lr": 0.1}, "SGD", {"lr": 0.1}),
    ("sgd-weight-decay", sgd, {"lr": 0.1, "weight_decay": 0.05}, "SGD", {"lr": 0.1, "weight_decay": 0.05}),
    ("momentum-defaults", sgd_momentum, {}, "SGD", {"momentum": 0.9}),
    ("momentum", sgd_momentum, {"lr": 0.05, "momentum": 0.9}, "SGD", {"lr": 0.05, "momentum": 0.9}),
    (
        "momentum-dampening-weight-decay",
        sgd_momentum,
        {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01},
        "SGD",
        {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01},
    ),
    (
        "nesterov-weight-decay",
        sgd_momentum,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
        "SGD",
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    ),
    ("rmsprop-defaults", rmsprop, {}, "RMSprop", {}),
    (
        "rmsprop",
        rmsprop,
        {"lr": 0.02, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.1},
        "RMSprop",
        {"lr": 0.02, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.1},
    ),
    ("adagrad-defaults", adagrad, {}, "Adagrad", {}),
    (
        "adagrad-lr-decay",
        adagrad,
        {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.1, "eps": 1e-8, "weight_decay": 0.02},
        "Adagrad",
        {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.1, "eps": 1e-8, "weight_decay": 0.02},
    ),
    ("adam-defaults", adam, {}, "Adam", {}),
    (
        "adam",
        adam,
        {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1},
        "Adam",
        {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1},
    ),
]

DEFAULTS = {
    sgd: {"lr": 1e-3, "weight_decay": 0.0},
    sgd_momentum: {"lr": 1e-3, "momentum": 0.9, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0},
    rmsprop: {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0},
    adagrad: {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10},
    adam: {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
}
TORCH_CLASS = {sgd: "SGD", sgd_momentum: "SGD", rmsprop: "RMSprop", adagrad: "Adagrad", adam: "Adam"}


# ---- hand-derived first two steps ---------------------------------------------------------
# w0 = [1, -2]; the gradients are given, not computed from w: g1 = [0.5, -1], g2 = [0.2, 0.4].
# eps = 0 where the rule has one, so the numbers below are exact; eps is tested on its own.

W0 = np.array([1.0, -2.0])
G1 = np.array([0.5, -1.0])
G2 = np.array([0.2, 0.4])

HAND_CASES = [
    # w1 = w0 - 0.1 g1;  w2 = w1 - 0.1 g2
    ("sgd", sgd, {"lr": 0.1}, [0.95, -1.9], [0.93, -1.94]),
    # g1' = g1 + 0.1 w0 = [0.6, -1.2];  g2' = g2 + 0.1 w1 = [0.294, 0.212]
    ("sgd-weight-decay", sgd, {"lr": 0.1, "weight_decay": 0.1}, [0.94, -1.88], [0.9106, -1.9012]),
    # v1 = g1;  v2 = 0.9 v1 + g2 = [0.65, -0.5]
    ("momentum", sgd_momentum, {"lr": 0.1, "momentum": 0.9}, [0.95, -1.9], [0.885, -1.85]),
    # v1 = g1 (the first step is not damped);  v2 = 0.9 v1 + 0.5 g2 = [0.55, -0.7]
    (
        "momentum-dampening",
        sgd_momentum,
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.5},
        [0.95, -1.9],
        [0.895, -1.83],
    ),
    # step1 = g1 + 0.9 v1 = 1.9 g1;  step2 = g2 + 0.9 [0.65, -0.5] = [0.785, -0.05]
    (
        "nesterov",
        sgd_momentum,
        {"lr": 0.1, "momentum": 0.9, "nesterov": True},
        [0.905, -1.81],
        [0.8265, -1.805],
    ),
    # s1 = 0.01 g1^2 = [0.0025, 0.01], sqrt = [0.05, 0.1];  s2 = 0.99 s1 + 0.01 g2^2
    (
        "rmsprop",
        rmsprop,
        {"lr": 0.01, "eps": 0.0},
        [0.9, -1.9],
        [0.9 - 0.002 / np.sqrt(0.002875), -1.9 - 0.004 / np.sqrt(0.0115)],
    ),
    # sum1 = g1^2 = [0.25, 1];  sum2 = [0.29, 1.16]
    (
        "adagrad",
        adagrad,
        {"lr": 0.1, "eps": 0.0},
        [0.9, -1.9],
        [0.9 - 0.02 / np.sqrt(0.29), -1.9 - 0.04 / np.sqrt(1.16)],
    ),
    # the second step's learning rate is 0.1 / (1 + 1 * 0.5)
    (
        "adagrad-lr-decay",
        adagrad,
        {"lr": 0.1, "lr_decay": 0.5, "eps": 0.0},
        [0.9, -1.9],
        [0.9 - 0.02 / 1.5 / np.sqrt(0.29), -1.9 - 0.04 / 1.5 / np.sqrt(1.16)],
    ),
    # sum0 = 1:  sum1 = [1.25, 2]
    (
        "adagrad-initial-accumulator",
        adagrad,
        {"lr": 0.1, "initial_accumulator_value": 1.0, "eps": 0.0},
        [1.0 - 0.05 / np.sqrt(1.25), -2.0 + 0.1 / np.sqrt(2.0)],
        [
            1.0 - 0.05 / np.sqrt(1.25) - 0.02 / np.sqrt(1.29),
            -2.0 + 0.1 / np.sqrt(2.0) - 0.04 / np.sqrt(2.16),
        ],
    ),
    # step 1 is -lr sign(g1).  m2 = 0.09 g1 + 0.1 g2 = [0.065, -0.05],
    # v2 = 0.999 * 0.001 g1^2 + 0.001 g2^2 = [0.00028975, 0.001159];
    # w2 = w1 - 0.1 * (m2 / 0.19) / sqrt(v2 / 0.001999)
    (
        "adam",
        adam,
        {"lr": 0.1, "eps": 0.0},
        [0.9, -1.9],
        [
            0.9 - 0.1 * (0.065 / 0.19) / np.sqrt(0.00028975 / 0.001999),
            -1.9 - 0.1 * (-0.05 / 0.19) / np.sqrt(0.001159 / 0.001999),
        ],
    ),
]


@pytest.mark.parametrize("rule, config, w1, w2", [case[1:] for case in HAND_CASES], ids=[c[0] for c in HAND_CASES])
def test_first_two_steps_match_hand_derived_values(rule, config, w1, w2):
    next_w, config = rule(W0, G1, config)
    np.testing.assert_allclose(next_w, w1, rtol=1e-12)
    next_w, config = rule(next_w, G2, config)
    np.testing.assert_allclose(next_w, w2, rtol=1e-12)


@pytest.mark.parametrize("rule", list(DEFAULTS), ids=lambda rule: rule.__name__)
def test_missing_config_takes_the_documented_defaults(rule):
    _, config = rule(W0, G1)
    assert {key: config[key] for key in DEFAULTS[rule]} == DEFAULTS[rule]
    assert set(config) - set(DEFAULTS[rule]) <= STATE_KEYS


@pytest.mark.parametrize("rule", list(DEFAULTS), ids=lambda rule: rule.__name__)
def test_defaults_are_torch_defaults(rule):
    torch = pytest.importorskip("torch")
    optimizer = getattr(torch.optim, TORCH_CLASS[rule])([torch.zeros(2, requires_grad=True)])
    ours = dict(DEFAULTS[rule])
    if rule is sgd_momentum:
        # Our documented exception: torch's SGD defaults to momentum 0, which is plain sgd.
        assert ours.pop("momentum") == 0.9 and optimizer.defaults["momentum"] == 0
    assert ours == {key: optimizer.defaults[key] for key in ours}


def test_state_is_stored_under_the_documented_keys():
    w = np.ones(3)
    assert "velocity" in sgd_momentum(w, w)[1]
    assert "square_avg" in rmsprop(w, w)[1]
    assert {"sum", "t"} <= set(adagrad(w, w)[1])
    assert {"m", "v", "t"} <= set(adam(w, w)[1])
    assert adam(w, w, adam(w, w)[1])[1]["t"] == 2


def test_nesterov_needs_zero_dampening_as_in_torch():
    with pytest.raises(ValueError):
        sgd_momentum(W0, G1, {"nesterov": True, "dampening": 0.1})


# ---- eps and bias correction --------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    magnitudes=hnp.arrays(np.float64, (3, 4), elements=st.floats(1e-3, 1e3)),
    signs=hnp.arrays(np.bool_, (3, 4)),
    lr=st.floats(1e-4, 1.0),
)
def test_adam_first_step_is_minus_lr_times_sign(magnitudes, signs, lr):
    g = np.where(signs, magnitudes, -magnitudes)
    # From w = 0 there is no cancellation; with eps = 0 the bias correction alone decides.
    next_w, _ = adam(np.zeros_like(g), g, {"lr": lr, "eps": 0.0})
    np.testing.assert_allclose(next_w, -lr * np.sign(g), rtol=1e-12)


def test_adam_first_step_with_default_eps_is_minus_lr_times_sign_for_large_gradients():
    g = np.array([[1e5, -3e6], [2.5e7, -4e5]])
    next_w, _ = adam(np.zeros_like(g), g)
    np.testing.assert_allclose(next_w, -1e-3 * np.sign(g), rtol=1e-12)


def test_adam_adds_eps_outside_the_square_root():
    g = np.array([1e-6, -2e-6])
    next_w, _ = adam(np.zeros(2), g)
    # After bias correction m_hat = g and v_hat = g^2 on the first step.
    eps_outside = -1e-3 * g / (np.abs(g) + 1e-8)
    eps_inside = -1e-3 * g / np.sqrt(g**2 + 1e-8)
    np.testing.assert_allclose(next_w, eps_outside, rtol=1e-10)
    assert np.all(np.abs(eps_inside - eps_outside) > 0.5 * np.abs(eps_outside))


def test_rmsprop_adds_eps_outside_the_square_root():
    g = np.array([1e-6, -2e-6])
    next_w, _ = rmsprop(np.zeros(2), g)
    square_avg = 0.01 * g**2
    eps_outside = -1e-2 * g / (np.sqrt(square_avg) + 1e-8)
    eps_inside = -1e-2 * g / np.sqrt(square_avg + 1e-8)
    np.testing.assert_allclose(next_w, eps_outside, rtol=1e-10)
    assert np.all(np.abs(eps_inside - eps_outside) > 0.5 * np.abs(eps_outside))


# ---- against torch.optim ------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule, config, torch_name, torch_kwargs", [case[1:] for case in TORCH_CASES], ids=[c[0] for c in TORCH_CASES]
)
def test_twenty_step_trajectory_matches_torch_optim(rule, config, torch_name, torch_kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    # A fixed quadratic per parameter, L = sum(scale * (w - target)^2) / 2, whose gradients
    # change sign along the way; both sides receive exactly the same gradient at every step.
    shapes = [(3, 4), (5,)]
    ws = [rng.standard_normal(shape) for shape in shapes]
    scales = [rng.uniform(0.5, 3.0, shape) for shape in shapes]
    targets = [rng.standard_normal(shape) for shape in shapes]
    configs = [dict(config) for _ in shapes]
    params_t = [torch.tensor(w, requires_grad=True) for w in ws]
    optimizer = getattr(torch.optim, torch_name)(params_t, **torch_kwargs)

    for _ in range(20):
        grads = [scale * (w - target) for w, scale, target in zip(ws, scales, targets)]
        for i, grad in enumerate(grads):
            ws[i], configs[i] = rule(ws[i], grad, configs[i])
        for p, grad in zip(params_t, grads):
            p.grad = torch.tensor(grad)
        optimizer.step()
        for w, p in zip(ws, params_t):
            np.testing.assert_allclose(w, p.detach().numpy(), rtol=1e-10, atol=1e-12)


# ---- no mutation ---------------------------------------------------------------------------

RULE_CONFIGS = [(case[1], case[2]) for case in TORCH_CASES]


def assert_same_config(before, after):
    assert before.keys() == after.keys()
    for key in before:
        if isinstance(before[key], np.ndarray):
            np.testing.assert_array_equal(after[key], before[key])
        else:
            assert after[key] == before[key]


@settings(max_examples=40, deadline=None)
@given(
    case=st.sampled_from(RULE_CONFIGS),
    shape=hnp.array_shapes(max_dims=3, max_side=4),
    data=st.data(),
)
def test_rules_never_mutate_w_dw_or_config(case, shape, data):
    rule, hyper = case
    elements = st.floats(-10, 10)
    w = data.draw(hnp.arrays(np.float64, shape, elements=elements))
    dw = data.draw(hnp.arrays(np.float64, shape, elements=elements))

    # A config straight from the caller, then one carrying state from an earlier step.
    for config in (dict(hyper), rule(w, dw, dict(hyper))[1]):
        w_before, dw_before = w.copy(), dw.copy()
        config_before = copy.deepcopy(config)
        next_w, next_config = rule(w, dw, config)
        np.testing.assert_array_equal(w, w_before)
        np.testing.assert_array_equal(dw, dw_before)
        assert_same_config(config_before, config)
        assert next_config is not config
        assert not np.shares_memory(next_w, w)
        for key in STATE_KEYS & next_config.keys():
            if isinstance(next_config[key], np.ndarray):
                for other in (w, dw, *[config[k] for k in STATE_KEYS & config.keys()]):
                    assert not np.shares_memory(next_config[key], other), key


def test_none_config_is_allowed_and_repeated_calls_agree():
    for rule in DEFAULTS:
        first = rule(W0, G1, None)
        second = rule(W0, G1, None)
        np.testing.assert_array_equal(first[0], second[0])


# ---- minibatches ---------------------------------------------------------------------------


def paired_data(N):
    X = np.arange(N * 3, dtype=float).reshape(N, 3)
    y = np.arange(N)
    return X, y


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 60), batch_size=st.integers(1, 25), seed=st.integers(0, 2**32 - 1))
def test_minibatches_cover_every_row_once_with_rows_paired(N, batch_size, seed):
    X, y = paired_data(N)
    batches = list(minibatches(X, y, batch_size, np.random.default_rng(seed)))
    sizes = [len(y_batch) for _, y_batch in batches]
    expected_sizes = [batch_size] * (N // batch_size) + ([N % batch_size] if N % batch_size else [])
    assert sizes == expected_sizes
    for X_batch, y_batch in batches:
        assert X_batch.shape == (len(y_batch), 3)
        np.testing.assert_array_equal(X_batch, X[y_batch])
    assert sorted(np.concatenate([y_batch for _, y_batch in batches])) == list(range(N))


def test_minibatches_follow_the_rng_permutation():
    X, y = paired_data(50)
    order = np.concatenate([y_batch for _, y_batch in minibatches(X, y, 7, np.random.default_rng(3))])
    np.testing.assert_array_equal(order, np.random.default_rng(3).permutation(50))
    other = np.concatenate([y_batch for _, y_batch in minibatches(X, y, 7, np.random.default_rng(4))])
    assert not np.array_equal(order, other)


def test_minibatches_is_a_generator_that_leaves_the_data_alone():
    X, y = paired_data(10)
    batches = minibatches(X, y, 4, np.random.default_rng(0))
    assert iter(batches) is batches
    for X_batch, _ in batches:
        X_batch += 1.0
    np.testing.assert_array_equal(X, paired_data(10)[0])
