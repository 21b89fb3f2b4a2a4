"""``backprop-lab``: the instructor's commands that nbgrader lacks, thin over nbgrader itself.

Every grading step runs nbgrader (its Python API or its CLI in the course folder, with the
course's ``nbgrader_config.py``), so ``nbgrader autograde`` typed by hand gives the same grades.
What this adds: parallel autograding with a progress bar and a summary, regrading with the
recorded seeds, release verification, a wide CSV export, a report of mistakes, and the demo.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_COURSE = Path(__file__).resolve().parents[1] / "course"
ASSIGNMENTS = ("01-chain-rule", "02-forward-pass", "03-backward-pass", "04-optimizers", "05-vanishing-gradients", "06-bptt")


def _course(args):
    return Path(args.course_dir or os.environ.get("BACKPROP_LAB_COURSE") or REPO_COURSE).resolve()


def run_nbgrader(course, *args, timeout=None):
    """Run nbgrader's CLI in ``course`` (see ``grader.nbgrader_main``); returns the CompletedProcess (output captured)."""
    return subprocess.run([sys.executable, "-m", "grader.nbgrader_main", *args], cwd=course, capture_output=True,
                          text=True, timeout=timeout)


def _fail(message):
    print(f"backprop-lab: {message}", file=sys.stderr)
    return 2


def _assignments(course, names):
    available = sorted(p.name for p in (course / "source").iterdir() if p.is_dir()) if (course / "source").is_dir() else []
    if not available:
        raise SystemExit(_fail(f"no assignments under {course / 'source'} (is --course-dir the nbgrader course folder?)"))
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(_fail(f"unknown assignment(s) {', '.join(unknown)}; available: {', '.join(available)}"))
    return list(names) or available


# -- release ------------------------------------------------------------------------
def verify_release(course, assignment, execute=True):
    """Problems with a generated release: leaked solution or hidden-test lines, unexpected errors."""
    from .release_check import release_problems
    return release_problems(course, assignment, execute=execute)


def cmd_release(args):
    course = _course(args)
    status = 0
    for assignment in _assignments(course, args.assignments):
        result = run_nbgrader(course, "generate_assignment", assignment, "--force")
        if result.returncode != 0:
            print(f"✗ {assignment}: nbgrader generate_assignment failed\n{result.stderr[-2000:]}")
            status = 1
            continue
        problems = verify_release(course, assignment, execute=not args.no_execute)
        if problems:
            status = 1
            print(f"✗ {assignment}: release generated but not clean:")
            for problem in problems:
                print(f"    {problem}")
        else:
            checked = "no solution or hidden-test line" + ("; runs with only NotImplementedError" if not args.no_execute else "")
            print(f"✓ {assignment}: release/{assignment} ({checked})")
    return status


# -- collect ------------------------------------------------------------------------
def cmd_collect(args):
    course = _course(args)
    if args.zip:
        from .zip_collect import collect_zip
        report = collect_zip(course, args.assignment, Path(args.zip))
        for line in report:
            print(line)
        return 0
    result = run_nbgrader(course, "collect", args.assignment, *(["--update"] if args.update else []))
    sys.stdout.write(result.stdout + result.stderr)
    return result.returncode


# -- autograde ----------------------------------------------------------------------
def submissions(course, assignments, students=None):
    found = []
    submitted = course / "submitted"
    if not submitted.is_dir():
        return found
    for student_dir in sorted(submitted.iterdir()):
        if not student_dir.is_dir() or (students and student_dir.name not in students):
            continue
        for assignment in assignments:
            if (student_dir / assignment).is_dir():
                found.append((assignment, student_dir.name))
    return found


class Progress:
    """A one-line progress bar with counts and an ETA, on stderr."""

    def __init__(self, total):
        self.total, self.done, self.failed, self.started = total, 0, 0, time.monotonic()
        # On a terminal the bar redraws in place; in a log file it would be one endless line,
        # so there it is written as a line at each tenth of the way and at the end.
        self.live = sys.stderr.isatty()

    def step(self, ok):
        self.done += 1
        self.failed += 0 if ok else 1
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} graded, "
                f"{self.failed} failed, {elapsed:5.0f} s elapsed, ETA {eta:4.0f} s")
        if self.live:
            sys.stderr.write(f"\r{line} " + ("\n" if self.done == self.total else ""))
        elif self.done == self.total or 10 * self.done // self.total != 10 * (self.done - 1) // self.total:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def autograde(course, assignments, students=None, jobs=None, force=False, extra=()):
    """Grade every submission in parallel worker processes; returns [(assignment, student, reason, seconds, problems)]."""
    from .workers import grade_all
    todo = submissions(course, assignments, students)
    jobs = jobs or os.cpu_count() or 1
    extra = list(extra) + (["--force"] if force else [])
    register_students(course, sorted({student for _, student in todo}))
    progress = Progress(len(todo))
    results = grade_all(course, todo, jobs, extra, on_done=lambda a, s, reason, *_: progress.step(not reason))
    return sorted(results)


def register_students(course, students):
    """Create the gradebook's missing students before the workers start.

    nbgrader's autograde creates its student itself, but two workers grading the same student's
    assignments at once would both insert the row and one would fail on the unique key. Honours
    ``Autograde.create_student = False`` (then an unknown student fails in its worker, as in nbgrader).
    """
    config = _course_config(course)
    if not config.get("Autograde", {}).get("create_student", True) or not students:
        return
    with gradebook(course, config) as gb:
        known = {student.id for student in gb.students}
        for student in students:
            if student not in known:
                gb.add_student(student)


def score_table(course, assignments):
    """{student: {assignment: (score, max_score)}} from nbgrader's gradebook."""
    from nbgrader.api import MissingEntry
    table = {}
    with gradebook(course) as gb:
        for assignment in assignments:
            try:
                gb.find_assignment(assignment)
            except MissingEntry:
                continue
            for student in gb.students:
                try:
                    submission = gb.find_submission(assignment, student.id)
                except MissingEntry:
                    continue
                table.setdefault(student.id, {})[assignment] = (submission.score, submission.max_score)
    return table


def _course_config(course):
    from traitlets.config import Config, PyFileConfigLoader
    if not (course / "nbgrader_config.py").exists():
        return Config()
    return PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()


def gradebook(course, config=None):
    """nbgrader's gradebook for the course, at its configured ``db_url`` and ``course_id``."""
    from nbgrader.api import Gradebook
    config = config if config is not None else _course_config(course)
    course_id = config.get("CourseDirectory", {}).get("course_id", "default_course")
    return Gradebook(_db_url(course, config), course_id)


def _db_url(course, config=None):
    config = config if config is not None else _course_config(course)
    url = config.get("CourseDirectory", {}).get("db_url")
    return url or f"sqlite:///{course / 'gradebook.db'}"


def print_scores(course, assignments, failures=()):
    table = score_table(course, assignments)
    short = [a.split("-", 1)[0] for a in assignments]
    header = f"{'student':<14}" + "".join(f"{s:>9}" for s in short) + f"{'total':>10}"
    print(header)
    print("-" * len(header))
    for student in sorted(table):
        row = table[student]
        cells = "".join(f"{row[a][0]:>5g}/{row[a][1]:<3g}" if a in row else f"{'-':>9}" for a in assignments)
        total = sum(v[0] for v in row.values())
        maximum = sum(v[1] for v in row.values())
        print(f"{student:<14}{cells}{total:>6g}/{maximum:<3g}")
    for assignment, student, reason, _, problems in failures:
        if reason:
            print(f"✗ {student}/{assignment}: {reason} (log: logs/{assignment}/{student}.log)")
        for problem in problems:
            if problem != reason:
                print(f"! {student}/{assignment}: {problem}")
    return table


def cmd_autograde(args, extra=()):
    course = _course(args)
    assignments = _assignments(course, args.assignments)
    todo = submissions(course, assignments, args.student)
    if not todo:
        return _fail(f"no submissions under {course / 'submitted'} for {', '.join(assignments)}")
    print(f"Grading {len(todo)} submission(s) with {args.jobs or os.cpu_count()} parallel worker(s)...")
    results = autograde(course, assignments, args.student, args.jobs, getattr(args, "force", False), extra)
    print_scores(course, assignments, results)
    return 1 if any(result[2] for result in results) else 0


def cmd_regrade(args):
    args.force = True
    seeds = [] if args.new_seeds else ["--JudgeInSandbox.reuse_recorded_seed=True"]
    return cmd_autograde(args, extra=seeds)


# -- feedback, export, report -------------------------------------------------------
def cmd_feedback(args):
    course = _course(args)
    status = 0
    for assignment in _assignments(course, args.assignments):
        result = run_nbgrader(course, "generate_feedback", assignment, "--force")
        print(f"{'✓' if result.returncode == 0 else '✗'} feedback/{'*'}/{assignment}")
        status |= result.returncode
    return status


def export_csv(course, path):
    """One row per student, one column per assignment and the total, via nbgrader's exporter plugin."""
    result = run_nbgrader(course, "export", "--exporter=grader.export.WideCsvExportPlugin", f"--to={path}")
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return path


def cmd_export(args):
    course = _course(args)
    path = Path(args.to).resolve() if args.to else course / "grades.csv"
    export_csv(course, path)
    print(f"grades written to {path}")
    return 0


def cmd_report(args):
    from .report import write_report
    course = _course(args)
    out = Path(args.out).resolve() if args.out else course / "reports"
    text, png = write_report(course, _db_url(course), _assignments(course, args.assignments), out)
    print(text)
    print(f"report written to {out} ({png.name})")
    return 0


def cmd_sync(args):
    from .authoring import sync
    drift = sync(str(_course(args)), check=args.check)
    for item in drift:
        print(("drift: " if args.check else "updated: ") + item)
    return 1 if (args.check and drift) else 0


def cmd_demo(args):
    from .demo import run_demo
    return run_demo(args)


def build_parser():
    parser = argparse.ArgumentParser(prog="backprop-lab", description=__doc__.splitlines()[0])
    parser.add_argument("--course-dir", default=None,
                        help="the nbgrader course folder (default: $BACKPROP_LAB_COURSE or the repository's course/; "
                             "for demo: a new temporary folder)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="generate release versions (all six by default) and verify each")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--no-execute", action="store_true", help="skip running each release notebook")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("collect", help="collect submissions from nbgrader's exchange or from an LMS-style zip")
    p.add_argument("assignment")
    p.add_argument("--zip", help="a zip of files named like <student>_<notebook>.ipynb (LMS download)")
    p.add_argument("--update", action="store_true")
    p.set_defaults(func=cmd_collect)

    for name, func, text in (("autograde", cmd_autograde, "grade submissions in parallel with the hardened judge"),
                             ("regrade", cmd_regrade, "grade again with the recorded seeds (or --new-seeds)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("assignments", nargs="*")
        p.add_argument("--student", action="append", help="only this student (repeatable)")
        p.add_argument("--jobs", "-j", type=int, default=None, help="parallel workers (default: number of cores)")
        if name == "autograde":
            p.add_argument("--force", action="store_true", help="grade again what was already graded")
        else:
            p.add_argument("--new-seeds", action="store_true", help="draw fresh hidden inputs instead")
        p.set_defaults(func=func)

    p = sub.add_parser("feedback", help="generate feedback HTML (hidden declarations removed)")
    p.add_argument("assignments", nargs="*")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("export", help="CSV: one row per student, one column per assignment and the total")
    p.add_argument("--to", help="output file (default: <course>/grades.csv)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="score distributions, pass rates and frequent mistakes (PNG + text)")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--out", help="output folder (default: <course>/reports)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sync", help="regenerate solution cells and labcheck bundles from the single sources")
    p.add_argument("--check", action="store_true", help="only report drift (exit 1 if any)")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("demo", help="the whole instructor pipeline on a temporary course with a synthetic cohort")
    p.add_argument("--assignments", nargs="*", default=list(ASSIGNMENTS))
    p.add_argument("--jobs", "-j", type=int, default=None)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
