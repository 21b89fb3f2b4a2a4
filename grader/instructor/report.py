"""``backprop-lab report``: per assignment the score distribution; per graded function and check
the pass rate, how well the check separates strong from weak work, and the frequent mistakes.

An *item* is one check of one graded function (``affine_backward`` / ``value``), as the judge
recorded it. Its statistics, over the students whose work was judged:

* **pass rate**: the share who earned all of its points;
* **discrimination**: the point-biserial correlation between passing the item (1/0) and the
  student's score on the *rest* of the assignment (the item's own points left out, so that a
  heavy item does not correlate with itself). Near 0 or negative: the item does not tell strong
  from weak work (a check to review); undefined when everyone or nobody passes, which is flagged;
* **mistakes**: the diagnosed mistakes behind the failures, each counted once per student.
"""
import collections
import dataclasses
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .. import records

REVIEW_BELOW = 0.2     # discrimination under this: the check does not separate strong from weak work


@dataclasses.dataclass
class Item:
    function: str
    kind: str
    points: float
    passed: int
    total: int
    discrimination: float          # nan when everyone or nobody passes (or fewer than 3 students)

    @property
    def rate(self):
        return self.passed / self.total if self.total else 0.0

    @property
    def flag(self):
        if self.total and self.passed == self.total:
            return "everyone passes"
        if self.total and self.passed == 0:
            return "nobody passes"
        if not math.isnan(self.discrimination) and self.discrimination < REVIEW_BELOW:
            return f"discrimination {self.discrimination:+.2f}: review"
        return ""


def point_biserial(passed, rest):
    """Pearson's r of a 0/1 item against scores (the point-biserial); nan when either does not vary."""
    n = len(passed)
    if n < 3:
        return float("nan")
    mean_p, mean_r = sum(passed) / n, sum(rest) / n
    cov = sum((p - mean_p) * (r - mean_r) for p, r in zip(passed, rest))
    var_p = sum((p - mean_p) ** 2 for p in passed)
    var_r = sum((r - mean_r) ** 2 for r in rest)
    if var_p == 0 or var_r == 0:
        return float("nan")
    return cov / math.sqrt(var_p * var_r)


def summarise(db_url, assignments):
    """{assignment: {"scores": [fraction per student], "functions": {fn: (passed, total, Counter)},
    "items": [Item]}}; mistakes are counted once per student and function."""
    summary = {}
    for assignment in assignments:
        per_student = collections.defaultdict(lambda: [0.0, 0.0])
        earned = collections.defaultdict(dict)            # student -> {(function, kind): (earned, points)}
        mistakes = collections.defaultdict(lambda: collections.defaultdict(set))   # function -> student -> set
        for row in records.latest(db_url, assignment=assignment):
            student = row["student"]
            per_student[student][0] += row["score"]
            per_student[student][1] += row["max_score"]
            for check in row["checks"]:
                key = (check["function"], check["kind"])
                before = earned[student].get(key, (0.0, 0.0))
                earned[student][key] = (before[0] + check["earned"], before[1] + check["points"])
                mistakes[check["function"]][student].update(check["mistakes"])
        students = sorted(earned)
        totals = {s: sum(e for e, _ in earned[s].values()) for s in students}
        keys = sorted({key for s in students for key in earned[s]})
        items = []
        for function, kind in keys:
            takers = [s for s in students if (function, kind) in earned[s]]
            passes = [1 if earned[s][(function, kind)][0] >= earned[s][(function, kind)][1] else 0 for s in takers]
            rest = [totals[s] - earned[s][(function, kind)][0] for s in takers]
            points = max(earned[s][(function, kind)][1] for s in takers)
            items.append(Item(function, kind, points, sum(passes), len(takers), point_biserial(passes, rest)))
        functions = {}
        for function in sorted({f for f, _ in keys}):
            takers = [s for s in students if any(k[0] == function for k in earned[s])]
            whole = sum(all(e >= p for (f, _), (e, p) in earned[s].items() if f == function) for s in takers)
            counts = collections.Counter(m for found in mistakes[function].values() for m in found)
            functions[function] = (whole, len(takers), counts)
        summary[assignment] = {
            "scores": sorted(s / m if m else 0.0 for s, m in per_student.values()),
            "functions": functions,
            "items": items,
        }
    return summary


def _text(summary):
    lines = []
    for assignment, data in summary.items():
        scores = data["scores"]
        if not scores:
            lines.append(f"{assignment}: no judged submissions")
            continue
        mean = sum(scores) / len(scores)
        lines.append(f"{assignment}: {len(scores)} students, mean {100 * mean:.0f}%, "
                     f"min {100 * min(scores):.0f}%, max {100 * max(scores):.0f}%")
        lines.append(f"  {'function':<32}{'pass rate':>10}  most frequent diagnosed mistakes (students)")
        for function, (passed, total, mistakes) in sorted(data["functions"].items()):
            common = ", ".join(f"{m} ({n})" for m, n in mistakes.most_common(3)) or "-"
            lines.append(f"  {function:<32}{passed:>4}/{total:<5}  {common}")
        lines.append(f"  {'check':<40}{'points':>7}{'pass rate':>11}{'discrimination':>16}  flag")
        for item in data["items"]:
            disc = "-" if math.isnan(item.discrimination) else f"{item.discrimination:+.2f}"
            lines.append(f"  {item.function + ' / ' + item.kind:<40}{item.points:>7g}{item.passed:>5}/{item.total:<5}"
                         f"{disc:>16}  {item.flag}")
    return "\n".join(lines)


def _plot(summary, png):
    shown = [a for a in summary if summary[a]["scores"]] or list(summary)
    columns = max(len(shown), 1)
    fig, axes = plt.subplots(3, columns, figsize=(4.6 * columns, 11), squeeze=False)
    for column, assignment in enumerate(shown):
        data = summary[assignment]
        top, middle, bottom = axes[0][column], axes[1][column], axes[2][column]
        top.hist([100 * s for s in data["scores"]], bins=10, range=(0, 100), color="#4c72b0", edgecolor="white")
        top.set_title(assignment, fontsize=10)
        top.set_xlabel("score (%)")
        top.set_ylabel("students")
        top.yaxis.set_major_locator(MaxNLocator(integer=True))
        names = sorted(data["functions"])
        rates = [100 * data["functions"][n][0] / max(data["functions"][n][1], 1) for n in names]
        middle.barh(names, rates, color="#55a868")
        middle.set_xlim(0, 100)
        middle.set_xlabel("students passing every check (%)")
        middle.tick_params(axis="y", labelsize=7)
        middle.invert_yaxis()
        items = data["items"]
        xs = [100 * item.rate for item in items]
        ys = [0.0 if math.isnan(item.discrimination) else item.discrimination for item in items]
        colours = ["#c44e52" if item.flag else "#4c72b0" for item in items]
        bottom.axhspan(-1, REVIEW_BELOW, color="#f2d7d5", alpha=0.5, zorder=0)
        bottom.scatter(xs, ys, c=colours, s=28, zorder=2)
        for item, x, y in zip(items, xs, ys):
            if item.flag:
                bottom.annotate(f"{item.function}/{item.kind}", (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        bottom.set_xlim(-5, 105)
        bottom.set_ylim(-1, 1)
        bottom.set_xlabel("pass rate of the check (%)")
        bottom.set_ylabel("discrimination (point-biserial)")
        bottom.text(2, -0.95, "red band: checks that do not separate strong from weak work", fontsize=6)
    fig.suptitle("Backprop Lab: scores, pass rates, check discrimination", fontsize=11)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def write_report(course, db_url, assignments, out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(db_url, assignments)
    text = _text(summary)
    (out_dir / "report.txt").write_text(text + "\n")
    png = out_dir / "report.png"
    _plot(summary, png)
    return text, png
