"""Hardened parallel grading against stock serial nbgrader, side by side in one run.

Builds two course folders holding the same submissions (STUDENTS students x the chosen
assignments, each handing in the reference work): one graded by stock ``nbgrader autograde``
with nbgrader's default pipeline (serial, in-kernel execution), the other by
``backprop-lab autograde --jobs JOBS`` with the hardened pipeline (sandbox, judge, records).
Prints wall-clock times, the ratio, and the per-notebook times.

    python benchmarks/autograde_vs_stock.py [--students 20] [--jobs 2] [ASSIGNMENT ...]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignments", nargs="*", default=sorted(p.name for p in (REPO / "course" / "source").iterdir()))
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    notebooks = args.students * sum(len(list((REPO / "course" / "source" / a).glob("*.ipynb"))) for a in args.assignments)
    with tempfile.TemporaryDirectory() as tmp:
        stock = make_course(Path(tmp) / "stock", args.assignments, args.students, hardened=False)
        ours = make_course(Path(tmp) / "ours", args.assignments, args.students, hardened=True)

        started = time.perf_counter()
        for assignment in args.assignments:
            subprocess.run([sys.executable, "-m", "nbgrader", "autograde", assignment], cwd=stock, check=True, capture_output=True)
        stock_seconds = time.perf_counter() - started

        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grader.cli", "--course-dir", str(ours), "autograde", "--jobs", str(args.jobs),
                        *args.assignments], check=True, capture_output=True)
        our_seconds = time.perf_counter() - started

    print(f"{notebooks} notebooks ({args.students} students x {', '.join(args.assignments)})")
    print(f"{'pipeline':<58}{'wall s':>9}{'s/notebook':>12}")
    print(f"{'stock nbgrader autograde (serial, in-kernel Execute)':<58}{stock_seconds:>9.1f}{stock_seconds / notebooks:>12.2f}")
    print(f"{f'backprop-lab autograde --jobs {args.jobs} (sandbox + judge)':<58}{our_seconds:>9.1f}{our_seconds / notebooks:>12.2f}")
    print(f"speed-up of ours over stock: {stock_seconds / our_seconds:.2f}x (target >= 2.5x); "
          f"per-notebook time ratio ours/stock at equal parallelism: {our_seconds * args.jobs / stock_seconds:.2f} (target <= 1.3)")


if __name__ == "__main__":
    main()
