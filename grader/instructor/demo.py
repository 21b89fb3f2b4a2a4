"""The README's main job: the whole instructor pipeline on a temporary course.

Generate and verify the releases, hand in a synthetic cohort (grader/cohort.py), autograde in
parallel on a SQLite gradebook in the course (or the database of ``--db-url``), generate feedback,
export the CSV, write the report, print the score table and check every student lost points
exactly where expected.
"""
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
from sqlalchemy.engine import make_url

from . import cohort, commands
from ..course import REPO_COURSE, gradebook, prepare_database, run_nbgrader
from ..canary import GRADER_BROKEN, CanaryFailed


def _pin_database(course, db_url):
    """Write the demo's gradebook into its course config, so that nbgrader typed in the folder later uses it too.

    Pinned rather than read from ``$BACKPROP_LAB_DB_URL``: a demo's synthetic cohort must never land in
    a real course's gradebook by accident. A config holding a password is readable by its owner only.
    """
    config = course / "nbgrader_config.py"
    with config.open("a") as handle:
        handle.write(f"\n# The demo's gradebook (backprop-lab demo --db-url).\nc.CourseDirectory.db_url = {db_url!r}\n")
    if make_url(db_url).password is not None:
        config.chmod(0o600)


def shown_db_url(db_url):
    """The gradebook as a person reads it: a SQLite file's path, or the URL with its password hidden."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database:
        return url.database
    return url.render_as_string(hide_password=True)


def _cell_scores(course, assignment, student):
    with gradebook(course) as gb:
        submission = gb.find_submission(assignment, student)
        return {g.name: (g.score, g.max_score) for nb in submission.notebooks for g in nb.grades if g.cell_type == "code"}


def _expectation_problems(course, assignments):
    problems = []
    for student in cohort.COHORT:
        for assignment in assignments:
            try:
                scores = _cell_scores(course, assignment, student.name)
            except Exception as error:  # a missing submission is itself a problem to report
                problems.append(f"{student.name}/{assignment}: no grades ({error})")
                continue
            lost = {name[len("test_"):] for name, (score, maximum) in scores.items() if score < maximum}
            if student.blank:
                if any(score > 0 for score, _ in scores.values()):
                    problems.append(f"{student.name}/{assignment}: blank work earned points")
                continue
            required = student.breaks.get(assignment, set())
            allowed = required | student.may_break.get(assignment, set())
            lost_functions = {name.split("-")[0] for name in lost}
            if not required <= lost_functions or not lost_functions <= allowed:
                problems.append(f"{student.name}/{assignment}: lost points on {sorted(lost_functions) or 'nothing'}, "
                                f"expected {sorted(required) or 'nothing'}")
    return problems


def run_demo(args):
    started = time.monotonic()
    course = Path(args.course_dir).resolve() if args.course_dir else Path(tempfile.mkdtemp(prefix="backprop-lab-demo-")) / "course"
    course.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_COURSE / "nbgrader_config.py", course / "nbgrader_config.py")
    db_url = args.db_url or f"sqlite:///{course / 'gradebook.db'}"
    _pin_database(course, db_url)
    try:
        prepare_database(course)
    except Exception as error:  # unreachable server, missing driver, bad credentials: say so before any work
        print(f"✗ cannot use the gradebook {shown_db_url(db_url)}: {type(error).__name__}: {error}")
        return 1
    for assignment in args.assignments:
        target = course / "source" / assignment
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(REPO_COURSE / "source" / assignment, target,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    print(f"== Backprop Lab demo in {course}")

    print("\n== 1. Release (nbgrader generate_assignment, then verified)")
    release_args = type("Args", (), {"course_dir": str(course), "assignments": args.assignments, "no_execute": True})
    if commands.cmd_release(release_args) != 0:
        return 1

    print(f"\n== 2. A cohort of {len(cohort.COHORT)} students hands in their release notebooks")
    for student in cohort.COHORT:
        print(f"  {student.name:<9} {student.description}")
        for assignment in args.assignments:
            folder = course / "submitted" / student.name / assignment
            folder.mkdir(parents=True, exist_ok=True)
            for source_path in sorted((course / "source" / assignment).glob("*.ipynb")):
                source_nb = nbformat.read(source_path, as_version=4)
                release_nb = nbformat.read(course / "release" / assignment / source_path.name, as_version=4)
                nbformat.write(cohort.build_notebook(student, assignment, source_nb, release_nb), folder / source_path.name)

    print(f"\n== 3. Autograde in parallel (sandboxed judge, {make_url(db_url).get_backend_name()} gradebook)")
    try:
        results = commands.autograde(course, args.assignments, jobs=args.jobs)
    except CanaryFailed as failure:
        print(f"✗ {failure}")
        return GRADER_BROKEN
    commands.print_scores(course, args.assignments, results)

    print("\n== 4. Feedback, CSV export, report")
    for assignment in args.assignments:
        run_nbgrader(course, "generate_feedback", assignment, "--force")
    csv_path = commands.export_csv(course, course / "grades.csv")
    from .report import write_report
    text, png = write_report(course, db_url, args.assignments, course / "reports")
    print(text)

    problems = _expectation_problems(course, args.assignments)
    print("\n== Outputs")
    print(f"  course folder : {course}")
    print(f"  gradebook     : {shown_db_url(db_url)}")
    print(f"  feedback      : {course / 'feedback'}/<student>/<assignment>/*.html")
    print(f"  grades (CSV)  : {csv_path}")
    print(f"  report        : {png} and {course / 'reports' / 'report.txt'}")
    print(f"  grading logs  : {course / 'logs'}")
    if problems:
        print("\n✗ Unexpected results:")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"\n✓ Every student scored as expected ({time.monotonic() - started:.0f} s).")
    return 0
