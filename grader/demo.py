"""The README's main job: the whole instructor pipeline on a temporary course.

Generate and verify the releases, hand in a synthetic cohort (grader/cohort.py), autograde in
parallel on the embedded SQLite gradebook, generate feedback, export the CSV, write the report,
print the score table and check every student lost points exactly where expected.
"""
import shutil
import tempfile
import time
from pathlib import Path

import nbformat

from . import cli, cohort


def _cell_scores(course, assignment, student):
    with cli.gradebook(course) as gb:
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
    shutil.copy(cli.REPO_COURSE / "nbgrader_config.py", course / "nbgrader_config.py")
    for assignment in args.assignments:
        target = course / "source" / assignment
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(cli.REPO_COURSE / "source" / assignment, target,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    print(f"== Backprop Lab demo in {course}")

    print("\n== 1. Release (nbgrader generate_assignment, then verified)")
    release_args = type("Args", (), {"course_dir": str(course), "assignments": args.assignments, "no_execute": True})
    if cli.cmd_release(release_args) != 0:
        return 1

    print(f"\n== 2. A cohort of {len(cohort.COHORT)} students hands in")
    for student in cohort.COHORT:
        print(f"  {student.name:<9} {student.description}")
        for assignment in args.assignments:
            folder = course / "submitted" / student.name / assignment
            folder.mkdir(parents=True, exist_ok=True)
            for source_path in sorted((course / "source" / assignment).glob("*.ipynb")):
                source_nb = nbformat.read(source_path, as_version=4)
                release_nb = nbformat.read(course / "release" / assignment / source_path.name, as_version=4)
                nbformat.write(cohort.build_notebook(student, assignment, source_nb, release_nb), folder / source_path.name)

    print("\n== 3. Autograde in parallel (sandboxed judge, SQLite gradebook)")
    results = cli.autograde(course, args.assignments, jobs=args.jobs)
    cli.print_scores(course, args.assignments, results)

    print("\n== 4. Feedback, CSV export, report")
    for assignment in args.assignments:
        cli.run_nbgrader(course, "generate_feedback", assignment, "--force")
    csv_path = cli.export_csv(course, course / "grades.csv")
    from .report import write_report
    text, png = write_report(course, cli._db_url(course), args.assignments, course / "reports")
    print(text)

    problems = _expectation_problems(course, args.assignments)
    print("\n== Outputs")
    print(f"  course folder : {course}")
    print(f"  gradebook     : {course / 'gradebook.db'}")
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
