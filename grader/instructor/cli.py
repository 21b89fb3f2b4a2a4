"""``backprop-lab``: the instructor's commands that nbgrader lacks, thin over nbgrader itself.

Every grading step runs nbgrader (its Python API or its CLI in the course folder, with the
course's ``nbgrader_config.py``), so ``nbgrader autograde`` typed by hand gives the same grades.
What this adds: parallel autograding with a progress bar and a summary, regrading with the
recorded seeds, release verification, a wide CSV export, a report of mistakes, and the demo.
"""
import argparse
import os
import sys

from ..course import ASSIGNMENTS
from .commands import (cmd_autograde, cmd_collect, cmd_doctor, cmd_export, cmd_feedback, cmd_regrade,
                       cmd_extensions, cmd_release, cmd_report, cmd_roster, cmd_sync)


def cmd_demo(args):
    from .demo import run_demo
    return run_demo(args)


def cmd_similarity(args):
    from .similarity import cmd_similarity
    return cmd_similarity(args)


def build_parser():
    parser = argparse.ArgumentParser(prog="backprop-lab", description=__doc__.splitlines()[0])
    parser.add_argument("--course-dir", default=None,
                        help="the nbgrader course folder (default: $BACKPROP_LAB_COURSE, else the current folder if it "
                             "holds nbgrader_config.py, else the repository's course/; for demo: a new temporary folder)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("release", help="generate release versions (all six by default) and verify each")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--no-execute", action="store_true", help="skip running each release notebook")
    p.add_argument("--force", action="store_true",
                   help="release even when it gives away solutions of an assignment not yet due (with a warning)")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("collect", help="collect submissions from nbgrader's exchange or from an LMS-style zip")
    p.add_argument("assignment")
    p.add_argument("--zip", help="an LMS download: <student>_<notebook>.ipynb, Canvas or Moodle names")
    p.add_argument("--roster", help="with --zip: CSV of the course's students (column id, optional first_name, "
                                    "last_name); only they are collected (default: the gradebook's students)")
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

    p = sub.add_parser("export", help="grades: nbgrader's wide CSV, or the file Canvas's or Moodle's grade import reads")
    p.add_argument("--to", help="output file (default: <course>/grades.csv, grades-canvas.csv, grades-moodle.csv)")
    p.add_argument("--format", choices=("csv", "canvas", "moodle"), default="csv",
                   help="csv: one row per nbgrader student; canvas, moodle: LMS ids from the roster (roster import)")
    p.add_argument("--missing-as-zero", action="store_true",
                   help="canvas, moodle: an assignment never handed in scores 0 (default: empty, the LMS keeps its value)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("roster", help="import the course roster: nbgrader ids, names, emails and LMS ids (CSV)")
    p.add_argument("action", choices=("import",))
    p.add_argument("file", help="CSV with columns id, first_name, last_name, email, lms_id, sis_user_id, "
                                "sis_login_id, section (only id is required)")
    p.set_defaults(func=cmd_roster)

    p = sub.add_parser("extensions", help="import per-student due-date extensions (CSV: student_id, assignment, days); "
                                          "late penalties of graded work are recomputed")
    p.add_argument("action", choices=("import",))
    p.add_argument("file")
    p.set_defaults(func=cmd_extensions)

    p = sub.add_parser("report", help="score distributions, pass rates and frequent mistakes (PNG + text)")
    p.add_argument("assignments", nargs="*")
    p.add_argument("--out", help="output folder (default: <course>/reports)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("similarity", help="pairs of students whose solution cells share unusual code (HTML + CSV): "
                                          "a lead for a human, never a verdict")
    p.add_argument("assignment")
    p.add_argument("--out", help="output folder (default: <course>/reports)")
    p.add_argument("--threshold", type=float, default=0.6, help="pairs at or above this share are flagged (default 0.6)")
    p.add_argument("--top", type=int, default=25, help="pairs shown in the HTML (default 25)")
    p.add_argument("--common", type=float, default=0.5,
                   help="code shared by more than this fraction of the class does not count (default 0.5)")
    p.add_argument("--min-tokens", type=int, default=40,
                   help="functions shorter than this (filtered tokens) on either side are not compared (default 40)")
    p.set_defaults(func=cmd_similarity)

    p = sub.add_parser("sync", help="regenerate solution cells and labcheck bundles from the single sources")
    p.add_argument("--check", action="store_true", help="only report drift (exit 1 if any)")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("doctor", help="check that grading works here: bubblewrap, the sandbox's Python and kernel, "
                                      "the gradebook, the exchange; prints the fix for each problem")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("demo", help="the whole instructor pipeline on a temporary course with a synthetic cohort")
    p.add_argument("--assignments", nargs="*", default=list(ASSIGNMENTS))
    p.add_argument("--jobs", "-j", type=int, default=None)
    p.add_argument("--db-url", help="the gradebook's database, e.g. postgresql+psycopg://user:password@host/db "
                                    "(default: SQLite in the demo course; $BACKPROP_LAB_DB_URL is not used)")
    p.set_defaults(func=cmd_demo)

    # README says "pass --course-dir DIR": accepted after the subcommand too (there it overrides).
    for subparser in {id(p): p for p in sub.choices.values()}.values():
        subparser.add_argument("--course-dir", default=argparse.SUPPRESS, help="the nbgrader course folder")
    return parser


def main(argv=None):
    # nbgrader runs the `alembic` command from PATH to create a gradebook (the canary makes one per
    # batch): the one of this Python's installation, even when its venv is not activated.
    if os.path.dirname(sys.executable) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
