"""Unit tests of the grader's pure parts: codec, strict checks, diagnostics, grade-cell declarations."""
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader import checks, diagnostics, judge
from grader.sandbox import codec

with warnings.catch_warnings():
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    MATRIX = np.matrix([[1.0, 2.0]])


def test_codec_round_trips_plain_data(tmp_path):
    value = {"a": np.arange(6.0).reshape(2, 3), "b": (1, 2.5, None, "x", True), "c": [np.float64(3.5), np.int64(4)],
             "nan": float("nan")}
    codec.save(value, tmp_path)
    back = codec.load(tmp_path)
    assert type(back["a"]) is np.ndarray and np.array_equal(back["a"], value["a"])
    assert back["b"] == (1, 2.5, None, "x", True) and type(back["b"]) is tuple
    assert type(back["c"][0]) is np.float64 and back["c"][1] == 4
    assert np.isnan(back["nan"])


@pytest.mark.parametrize("odd", [np.ma.array([1.0]), MATRIX, np.array([object()], dtype=object),
                                 object(), {1: 2}, lambda: 0])
def test_codec_refuses_anything_but_plain_data(tmp_path, odd):
    codec.save({"v": odd}, tmp_path)
    assert isinstance(codec.load(tmp_path)["v"], codec.Rejected)


@pytest.mark.parametrize("bad", [np.array([np.nan, 1.0]), np.array([]), 3.0, np.float32(1.0) * np.ones(2, np.float32),
                                 np.ma.array([1.0, 2.0]), MATRIX, [1.0, 2.0]])
def test_strict_comparison_never_passes_odd_values(bad):
    assert checks.compare("f", "out", bad, np.array([1.0, 2.0]))


def test_strict_comparison_passes_equivalent_arrays():
    x = np.random.default_rng(0).normal(size=(4, 3))
    assert checks.compare("f", "out", x + 1e-12, x) == ""


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 7), st.integers(2, 7), st.sampled_from(["missing_mean", "double_mean", "negated", "transposed"]))
def test_generic_diagnoses_recognise_their_signature(n, m, mistake):
    expected = np.random.default_rng(n * 10 + m).normal(size=(n, m))
    if n == m and mistake == "transposed":
        return
    got = {"missing_mean": expected * n, "double_mean": expected / n, "negated": -expected, "transposed": expected.T}[mistake]
    assert diagnostics.diagnose(got, expected, {"N": n}) == [mistake]
    assert diagnostics.CATALOGUE[mistake] in checks.compare("f", "dW", got, expected, context={"N": n})


def test_catalogue_is_large_enough_and_bias_sum_is_recognised():
    assert len(diagnostics.CATALOGUE) >= 15
    db = np.random.default_rng(1).normal(size=(5, 3))
    assert diagnostics.diagnose(db, db.sum(axis=0)) == ["bias_not_summed"]
    assert diagnostics.diagnose(np.zeros(3), np.ones(3)) == ["zero"]


def test_numerical_gradient_restores_its_input():
    x = np.random.default_rng(2).normal(size=(3, 4))
    saved = x.copy()
    grad = checks.numerical_gradient(lambda: float(np.sum(x**3)), x)
    assert np.array_equal(x, saved)
    assert checks.norm_error(grad, 3 * saved**2) < 1e-8


def test_mutation_problem_names_the_changed_argument():
    before = {"w": np.ones(3), "config": {"m": np.zeros(2)}}
    after = checks.snapshot(before)
    after["config"]["m"][0] = 1.0
    assert "['config']['m']" in checks.mutation_problem(before, after)


def test_grade_cell_declaration_is_read_without_running_it():
    spec = judge.parse_spec('# text\n### BEGIN HIDDEN TESTS\njudge("affine_backward", gradient=3, no_mutation=1)\n### END HIDDEN TESTS')
    assert spec.function == "affine_backward" and spec.points == {"gradient": 3.0, "no_mutation": 1.0}
    assert judge.parse_spec("print('hello')") is None
    for bad in ['judge("f")', 'judge(f, value=1)', 'judge("f", value=-1)', 'judge("f", value=__import__("os"))',
                'judge("f", value=1)\njudge("g", value=1)', "judge('f', value=1"]:
        with pytest.raises(judge.SpecError):
            judge.parse_spec(bad)


def test_check_rngs_are_reproducible_and_independent():
    a = judge.derive_rng(7, "affine_forward", "value").normal(size=3)
    assert np.array_equal(a, judge.derive_rng(7, "affine_forward", "value").normal(size=3))
    assert not np.array_equal(a, judge.derive_rng(8, "affine_forward", "value").normal(size=3))
    assert not np.array_equal(a, judge.derive_rng(7, "affine_forward", "no_mutation").normal(size=3))


def test_labcheck_bundles_match_the_grader():
    from grader.authoring import sync
    course = os.path.join(os.path.dirname(__file__), "..", "..", "course")
    assert sync(course, check=True) == []


def test_only_plain_student_ids_are_graded_the_rest_is_refused_with_a_reason(tmp_path):
    from grader.course import submissions
    from grader.intake import student_id_problem
    for name in ("ann", "b.smith@uni.edu", "x-1_2", '<img src=x onerror="alert(1)">', ".hidden", "a b", "é", "\x1b[31mred"):
        (tmp_path / "submitted" / name / "a1").mkdir(parents=True)
    refused = []
    assert submissions(tmp_path, ["a1"], refused=refused) == [("a1", "ann"), ("a1", "b.smith@uni.edu"), ("a1", "x-1_2")]
    assert sorted(name for _, name, _ in refused) == sorted(['<img src=x onerror="alert(1)">', ".hidden", "a b", "é",
                                                             "\\x1b[31mred"])
    assert all("\x1b" not in reason and "refused" in reason for _, _, reason in refused)
    assert student_id_problem("a" * 100) == "" and student_id_problem("a" * 101)
