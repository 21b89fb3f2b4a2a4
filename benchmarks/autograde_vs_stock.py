"""Hardened parallel grading against stock serial nbgrader, side by side in one run.

Builds two course folders holding the same submissions (STUDENTS students x the chosen
assignments, each handing in the reference work): one graded by stock ``nbgrader autograde``
with nbgrader's default pipeline (serial, in-kernel execution), the other by
``backprop-lab autograde --jobs JOBS`` with the hardened pipeline (sandbox, judge, records).
Prints wall-clock times, the ratio, the per-notebook times, and how many submissions each
pipeline graded with full marks (all of them, or the comparison means nothing). With
``--rounds 2`` or more the pair is repeated in alternating order, and the ratio is over all rounds.

    python benchmarks/autograde_vs_stock.py [--students 20] [--jobs 2] [--rounds 1] [ASSIGNMENT ...]
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STOCK_CONFIG = '''c = get_config()
c.CourseDirectory.course_id = "backprop-lab"
c.CourseDirectory.root = {root!r}
c.CourseDirectory.db_url = "sqlite:///" + {root!r} + "/gradebook.db"
'''


def make_course(root, assignments, students, hardened):
    course = Path(root)
    (course / "source").mkdir(parents=True)
    if hardened:
        shutil.copy(REPO / "course" / "nbgrader_config.py", course / "nbgrader_config.py")
    else:
        (course / "nbgrader_config.py").write_text(STOCK_CONFIG.format(root=str(course)))
    for assignment in assignments:
        shutil.copytree(REPO / "course" / "source" / assignment, course / "source" / assignment)
        subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", assignment, "--force"], cwd=course,
                       check=True, capture_output=True)
        for i in range(students):
            target = course / "submitted" / f"student{i:02d}" / assignment
            target.mkdir(parents=True)
            for notebook in (course / "source" / assignment).glob("*.ipynb"):
                shutil.copy(notebook, target / notebook.name)
    return course


def grade_stock(course, assignments, jobs):
    for assignment in assignments:
        subprocess.run([sys.executable, "-m", "nbgrader", "autograde", assignment], cwd=course, check=True, capture_output=True)


def grade_ours(course, assignments, jobs):
    subprocess.run([sys.executable, "-m", "grader.instructor.cli", "--course-dir", str(course), "autograde", "--jobs", str(jobs),
                    *assignments], check=True, capture_output=True)


def full_marks(course):
    """(submissions graded, submissions with every point): both pipelines must grade all of the reference work."""
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = [(s.score, s.max_score) for a in gb.assignments for s in a.submissions]
    return len(scores), sum(1 for score, top in scores if top and abs(score - top) < 1e-9)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignments", nargs="*", default=sorted(p.name for p in (REPO / "course" / "source").iterdir()))
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the pair; rounds alternate which pipeline goes first (stock, ours / ours, stock) "
                             "so that a machine getting slower or faster mid-run does not favour either")
    args = parser.parse_args()
    notebooks = args.students * sum(len(list((REPO / "course" / "source" / a).glob("*.ipynb"))) for a in args.assignments)
    label_stock = "stock nbgrader autograde (serial, in-kernel Execute)"
    label_ours = f"backprop-lab autograde --jobs {args.jobs} (sandbox + judge)"
    times = {label_stock: [], label_ours: []}
    marks = {}
    for round_number in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            courses = {label_stock: make_course(Path(tmp) / "stock", args.assignments, args.students, hardened=False),
                       label_ours: make_course(Path(tmp) / "ours", args.assignments, args.students, hardened=True)}
            order = [(label_stock, grade_stock), (label_ours, grade_ours)]
            for label, grade in (order if round_number % 2 == 0 else order[::-1]):
                started = time.perf_counter()
                grade(courses[label], args.assignments, args.jobs)
                times[label].append(time.perf_counter() - started)
                marks[label] = full_marks(courses[label])

    print(f"{notebooks} notebooks ({args.students} students x {', '.join(args.assignments)}), {args.rounds} round(s)")
    rounds = "".join(f"{f'round {r + 1} s':>11}" for r in range(args.rounds))
    print(f"{'pipeline':<58}{rounds}{'s/notebook':>12}{'full marks':>12}")
    for label, seconds in times.items():
        graded, full = marks[label]
        print(f"{label:<58}{''.join(f'{t:>11.1f}' for t in seconds)}{sum(seconds) / len(seconds) / notebooks:>12.2f}"
              f"{f'{full}/{graded}':>12}")
    stock, ours = sum(times[label_stock]), sum(times[label_ours])
    per_round = ", ".join(f"{a / b:.2f}x" for a, b in zip(times[label_stock], times[label_ours]))
    print(f"speed-up of ours over stock: {stock / ours:.2f}x (target >= 2.5x; per round: {per_round}); "
          f"per-notebook time ratio ours/stock at equal parallelism: {ours * args.jobs / stock:.2f} (target <= 1.3)")


if __name__ == "__main__":
    main()
