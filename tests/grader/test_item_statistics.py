"""Item statistics in ``backprop-lab report`` on a synthetic cohort whose answers are known by hand."""
import math

from grader import records
from grader.instructor import report
from grader.judge import CellVerdict, CheckVerdict, NotebookVerdict

# Five students, one assignment, two functions. Points: f/value 4, f/repeat 1, g/value 5.
#            f/value  f/repeat  g/value   mistakes
COHORT = {
    "s1": (1, 1, 1, []),
    "s2": (1, 1, 1, []),
    "s3": (1, 1, 0, ["g-sign"]),
    "s4": (0, 1, 0, ["f-bias", "g-sign"]),
    "s5": (0, 1, 0, ["f-bias", "g-sign"]),
}
POINTS = {("f", "value"): 4, ("f", "repeat"): 1, ("g", "value"): 5}


def _verdict(passes, mistakes):
    cells = []
    for index, function in enumerate(("f", "g")):
        checks = []
        for (fn, kind), flag in zip(POINTS, passes):
            if fn == function:
                points = POINTS[(fn, kind)]
                wrong = [m for m in mistakes if m.startswith(fn + "-")] if not flag else []
                # the judge names a mistake on every failed check of the function: once per check here
                checks.append(CheckVerdict(fn, kind, points, points if flag else 0.0, "", wrong))
        cells.append(CellVerdict(index, f"test_{function}", function, sum(c.points for c in checks), checks))
    return NotebookVerdict(seed=1, sandbox="test", cells=cells, seconds=0.1, notes=[])


def _by_hand(item):
    """r_pb = (M1 - M0) / s_n * sqrt(p q), rest scores leaving the item out (population s.d.)."""
    rest, passed = [], []
    for passes, _ in ((v[:3], v[3]) for v in COHORT.values()):
        total = sum(POINTS[k] * p for k, p in zip(POINTS, passes))
        flag = passes[list(POINTS).index(item)]
        rest.append(total - POINTS[item] * flag)
        passed.append(flag)
    n = len(rest)
    mean = sum(rest) / n
    sd = math.sqrt(sum((r - mean) ** 2 for r in rest) / n)
    m1 = sum(r for r, p in zip(rest, passed) if p) / sum(passed)
    m0 = sum(r for r, p in zip(rest, passed) if not p) / (n - sum(passed))
    p = sum(passed) / n
    return (m1 - m0) / sd * math.sqrt(p * (1 - p))


def test_pass_rates_discrimination_flags_and_mistakes_counted_once_per_student(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    for student, (*passes, mistakes) in COHORT.items():
        records.save(db_url, "a1", student, "nb.ipynb", _verdict(passes, mistakes))
    data = report.summarise(db_url, ["a1"])["a1"]
    items = {(i.function, i.kind): i for i in data["items"]}

    assert (items[("f", "value")].passed, items[("f", "value")].total) == (3, 5)
    assert (items[("g", "value")].passed, items[("g", "value")].total) == (2, 5)
    for key in (("f", "value"), ("g", "value")):
        assert math.isclose(items[key].discrimination, _by_hand(key), rel_tol=1e-12), key
    assert math.isclose(items[("f", "value")].discrimination, 0.6666666666666666, rel_tol=1e-9)  # 2/3, by hand too
    assert items[("f", "repeat")].flag == "everyone passes" and math.isnan(items[("f", "repeat")].discrimination)
    assert items[("f", "value")].flag == ""

    # g-sign: three students, named on one check each -> 3, not once per check or per notebook row
    passed, total, mistakes = data["functions"]["g"]
    assert (passed, total, mistakes["g-sign"]) == (2, 5, 3)
    assert data["functions"]["f"][2]["f-bias"] == 2

    text, png = report.write_report(tmp_path, db_url, ["a1"], tmp_path / "out")
    assert "f / repeat" in text and "everyone passes" in text and "+0.67" in text
    assert png.stat().st_size > 10_000


def test_a_check_that_weak_students_pass_and_strong_ones_fail_is_flagged_for_review():
    item = report.Item("h", "edge", 1, 2, 5, report.point_biserial([0, 0, 0, 1, 1], [9, 8, 7, 2, 1]))
    assert item.discrimination < -0.9 and item.flag.startswith("discrimination -0.9") and item.flag.endswith("review")
    assert math.isnan(report.point_biserial([1, 0], [3, 1]))   # two students tell nothing
