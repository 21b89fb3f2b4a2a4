"""Per assignment: the score distribution; per graded function: pass rate and frequent mistakes."""
import collections
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .. import records


def summarise(db_url, assignments):
    """{assignment: {"scores": [fraction per student], "functions": {fn: (passed, total, Counter)}}}."""
    summary = {}
    for assignment in assignments:
        rows = records.latest(db_url, assignment=assignment)
        per_student = collections.defaultdict(lambda: [0.0, 0.0])
        functions = collections.defaultdict(lambda: [0, 0, collections.Counter()])
        for row in rows:
            per_student[row["student"]][0] += row["score"]
            per_student[row["student"]][1] += row["max_score"]
            by_function = collections.defaultdict(list)
            for check in row["checks"]:
                by_function[check["function"]].append(check)
            for function, checks in by_function.items():
                entry = functions[function]
                entry[1] += 1
                entry[0] += all(c["earned"] == c["points"] for c in checks)
                for check in checks:
                    entry[2].update(check["mistakes"])
        summary[assignment] = {
            "scores": sorted(s / m if m else 0.0 for s, m in per_student.values()),
            "functions": {f: tuple(v) for f, v in functions.items()},
        }
    return summary


def write_report(course, db_url, assignments, out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(db_url, assignments)
    lines = []
    for assignment, data in summary.items():
        scores = data["scores"]
        if not scores:
            lines.append(f"{assignment}: no judged submissions")
            continue
        mean = sum(scores) / len(scores)
        lines.append(f"{assignment}: {len(scores)} students, mean {100 * mean:.0f}%, "
                     f"min {100 * min(scores):.0f}%, max {100 * max(scores):.0f}%")
        lines.append(f"  {'function':<32}{'pass rate':>10}  most frequent diagnosed mistakes")
        for function, (passed, total, mistakes) in sorted(data["functions"].items()):
            common = ", ".join(f"{m} ({n})" for m, n in mistakes.most_common(3)) or "-"
            lines.append(f"  {function:<32}{passed:>4}/{total:<5}  {common}")
    text = "\n".join(lines)
    (out_dir / "report.txt").write_text(text + "\n")

    shown = [a for a in summary if summary[a]["scores"]] or list(summary)
    fig, axes = plt.subplots(2, max(len(shown), 1), figsize=(4.2 * max(len(shown), 1), 7.5), squeeze=False)
    for column, assignment in enumerate(shown):
        data = summary[assignment]
        top, bottom = axes[0][column], axes[1][column]
        top.hist([100 * s for s in data["scores"]], bins=10, range=(0, 100), color="#4c72b0", edgecolor="white")
        top.set_title(assignment, fontsize=10)
        top.set_xlabel("score (%)")
        top.set_ylabel("students")
        names = sorted(data["functions"])
        rates = [100 * data["functions"][n][0] / max(data["functions"][n][1], 1) for n in names]
        bottom.barh(names, rates, color="#55a868")
        bottom.set_xlim(0, 100)
        bottom.set_xlabel("pass rate (%)")
        bottom.tick_params(axis="y", labelsize=7)
    fig.suptitle("Backprop Lab: score distributions and pass rate per graded function")
    fig.tight_layout()
    png = out_dir / "report.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return text, png
